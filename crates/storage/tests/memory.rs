//! The in-memory adapter (feature `mock`) against the conformance suite, plus its knobs.

mod support;

use std::sync::Arc;

use storage::memory::MemoryStore;
use storage::{ManualClock, ObjectStore, PresignWindow};
use support::{Fixture, NOW};

async fn memory() -> Fixture {
    let clock = ManualClock::new(NOW);
    let store = MemoryStore::with_clock("publishers", PresignWindow::default(), clock.clone());
    Fixture {
        store: Box::new(store),
        clock,
        _guard: Box::new(()),
    }
}

conformance_tests!(memory);

#[tokio::test]
async fn outage_and_missing_bucket_knobs() {
    let store = MemoryStore::new("teachers");
    store.set_unavailable(true);
    let e = store.ready().await.unwrap_err();
    assert!(e.is_unavailable());
    assert_eq!((e.code(), e.http_status()), ("storage_unavailable", 503));
    assert!(store.head("a").await.unwrap_err().is_unavailable());
    store.set_unavailable(false);
    store.ready().await.unwrap();

    let store = Arc::new(MemoryStore::without_bucket("teachers"));
    let e = store.ready().await.unwrap_err();
    assert_eq!(e.code(), "storage_bucket_not_found");
    store.create_bucket().await.unwrap();
    store.ready().await.unwrap();
    assert!(store.is_empty());
}
