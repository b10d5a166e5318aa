//! The shared `CacheStore` conformance suite, run against every adapter.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cache::{CacheStore, LocalStore, ManualClock, RedisStore};

#[tokio::test]
async fn local_store_meets_the_store_contract() {
    let clock = ManualClock::new();
    let store = LocalStore::new(16 * 1024 * 1024, Arc::new(clock.clone()));
    common::conformance::run(&store, async |by: Duration| clock.advance(by)).await;
}

#[tokio::test]
async fn redis_store_meets_the_store_contract() {
    let Some(config) = common::redis_or_skip("redis_store_conformance").await else {
        return;
    };
    let store = RedisStore::new(&config).expect("store");
    // Redis expires keys by its own clock: wait for real (a few hundred milliseconds in all).
    common::conformance::run(&store, async |by: Duration| tokio::time::sleep(by).await).await;
    store.clear().await.expect("clean up the test namespace");
}
