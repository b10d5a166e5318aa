//! The contract every `CacheStore` adapter must meet (see the trait's documentation).

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use cache::{CacheStore, Fetched, SegmentPrefix, StoredEntry};

/// TTL used by the expiry checks; short because the Redis run waits for it for real.
pub const SHORT_TTL: Duration = Duration::from_millis(150);
/// Margin added when waiting past a deadline, for clock granularity and network time.
const MARGIN: Duration = Duration::from_millis(60);

fn found(text: &'static str) -> Fetched {
    Fetched::Found(Bytes::from_static(text.as_bytes()))
}

fn entry(value: Fetched, fresh_for: Duration, stale_for: Duration) -> StoredEntry {
    StoredEntry {
        value,
        fresh_for,
        stale_for,
    }
}

fn long(value: Fetched) -> StoredEntry {
    entry(value, Duration::from_secs(60), Duration::ZERO)
}

async fn get(store: &dyn CacheStore, key: &str) -> Option<StoredEntry> {
    store.get(key).await.expect("get succeeds")
}

async fn put(store: &dyn CacheStore, key: &str, entry: StoredEntry) {
    store.put(key, entry).await.expect("put succeeds");
}

/// Runs every check against `store`, which must start empty. `advance` moves the store's
/// notion of time forward (a manual clock, or real waiting for a server-side clock).
pub async fn run(store: &dyn CacheStore, advance: impl AsyncFn(Duration)) {
    missing_keys_are_absent(store).await;
    values_round_trip(store).await;
    a_put_replaces_the_previous_entry(store).await;
    expired_entries_are_not_fresh_and_vanish_after_their_stale_window(store, &advance).await;
    entries_without_freshness_are_not_stored(store).await;
    remove_reports_whether_the_key_existed(store).await;
    prefix_removal_follows_whole_segments(store).await;
    prefix_removal_treats_glob_characters_literally(store).await;
    removals_refuse_writes_fetched_before_them(store).await;
    clear_removes_everything_and_counts_it(store).await;
}

/// A store with an invalidation mark refuses a write whose mark was read before a removal
/// (`remove`, `remove_prefix` or `clear`); a store without one stores every write.
async fn removals_refuse_writes_fetched_before_them(store: &dyn CacheStore) {
    let mark = store.invalidation_mark().await.expect("mark");
    let put_with = async |text: &'static str, mark: Option<u64>| {
        store
            .put_unless_invalidated("conf:mark:k", long(found(text)), mark)
            .await
            .expect("put")
    };
    assert!(put_with("a", mark).await, "nothing removed since the mark");
    if mark.is_none() {
        store.remove("conf:mark:k").await.expect("remove");
        return;
    }
    let prefix = SegmentPrefix::new("conf:mark:other").expect("prefix");
    for removal in 0..3 {
        let before = store.invalidation_mark().await.expect("mark");
        match removal {
            0 => drop(store.remove("conf:mark:other").await.expect("remove")),
            1 => drop(store.remove_prefix(&prefix).await.expect("remove_prefix")),
            _ => drop(store.clear().await.expect("clear")),
        }
        assert!(!put_with("stale", before).await, "removal {removal}");
        assert_ne!(
            get(store, "conf:mark:k").await.map(|e| e.value),
            Some(found("stale"))
        );
        let after = store.invalidation_mark().await.expect("mark");
        assert!(put_with("current", after).await, "after removal {removal}");
    }
    store.remove("conf:mark:k").await.expect("remove");
}

async fn missing_keys_are_absent(store: &dyn CacheStore) {
    assert_eq!(get(store, "conf:missing").await, None);
}

async fn values_round_trip(store: &dyn CacheStore) {
    let ttl = Duration::from_secs(60);
    for (key, value) in [
        (
            "conf:round-trip:json",
            found("{\"id\":1,\"name\":\"Dream Press\"}"),
        ),
        ("conf:round-trip:empty", Fetched::Found(Bytes::new())),
        (
            "conf:round-trip:binary",
            Fetched::Found(Bytes::from(vec![0_u8, 255, 10, 13, 0])),
        ),
        ("conf:round-trip:not-found", Fetched::NotFound),
    ] {
        put(store, key, entry(value.clone(), ttl, Duration::ZERO)).await;
        let seen = get(store, key)
            .await
            .unwrap_or_else(|| panic!("{key} is stored"));
        assert_eq!(seen.value, value, "{key}");
        assert!(seen.is_fresh(), "{key} is fresh");
        assert!(
            seen.fresh_for <= ttl,
            "{key}: {:?} > {ttl:?}",
            seen.fresh_for
        );
        assert!(
            seen.fresh_for > ttl - Duration::from_secs(5),
            "{key}: {:?}",
            seen.fresh_for
        );
    }
}

async fn a_put_replaces_the_previous_entry(store: &dyn CacheStore) {
    put(store, "conf:replace", long(found("first"))).await;
    put(store, "conf:replace", long(found("second"))).await;
    assert_eq!(
        get(store, "conf:replace").await.map(|e| e.value),
        Some(found("second"))
    );
    put(store, "conf:replace", long(Fetched::NotFound)).await;
    assert_eq!(
        get(store, "conf:replace").await.map(|e| e.value),
        Some(Fetched::NotFound)
    );
}

async fn expired_entries_are_not_fresh_and_vanish_after_their_stale_window(
    store: &dyn CacheStore,
    advance: &impl AsyncFn(Duration),
) {
    let stale_window = SHORT_TTL;
    put(
        store,
        "conf:expiry",
        entry(found("v"), SHORT_TTL, stale_window),
    )
    .await;
    put(store, "conf:expiry:long", long(found("stays"))).await;
    assert!(
        get(store, "conf:expiry")
            .await
            .is_some_and(|e| e.is_fresh())
    );

    advance(SHORT_TTL + MARGIN).await;
    match get(store, "conf:expiry").await {
        None => assert!(
            !store.retains_stale(),
            "a store that retains stale copies keeps the entry for its stale window"
        ),
        Some(seen) => {
            assert!(
                store.retains_stale(),
                "only stale-retaining stores return expired entries"
            );
            assert!(!seen.is_fresh(), "past its TTL the entry is not fresh");
            assert_eq!(seen.value, found("v"));
            assert!(seen.stale_for <= stale_window);
        }
    }

    advance(stale_window).await;
    assert_eq!(
        get(store, "conf:expiry").await,
        None,
        "gone after the stale window"
    );
    assert!(
        get(store, "conf:expiry:long")
            .await
            .is_some_and(|e| e.is_fresh()),
        "a longer-lived entry is untouched"
    );
}

async fn entries_without_freshness_are_not_stored(store: &dyn CacheStore) {
    put(
        store,
        "conf:zero-ttl",
        entry(found("v"), Duration::ZERO, Duration::from_secs(60)),
    )
    .await;
    assert_eq!(get(store, "conf:zero-ttl").await, None);
}

async fn remove_reports_whether_the_key_existed(store: &dyn CacheStore) {
    put(store, "conf:remove", long(found("v"))).await;
    put(store, "conf:remove:child", long(found("child"))).await;
    assert!(store.remove("conf:remove").await.expect("remove succeeds"));
    assert!(!store.remove("conf:remove").await.expect("remove succeeds"));
    assert_eq!(get(store, "conf:remove").await, None);
    assert!(
        get(store, "conf:remove:child").await.is_some(),
        "removing a key leaves the keys below it"
    );
}

async fn prefix_removal_follows_whole_segments(store: &dyn CacheStore) {
    let removed_keys = [
        "dcs:books:id:1",
        "dcs:books:id:1:cover",
        "dcs:books:id:1:config:page:2",
    ];
    let kept_keys = [
        "dcs:books:id:10",
        "dcs:books:id:10:cover",
        "dcs:books:id",
        "dcs:publishers:id:1",
    ];
    for key in removed_keys.iter().chain(&kept_keys) {
        put(store, key, long(found("v"))).await;
    }
    let prefix = SegmentPrefix::new("dcs:books:id:1").expect("valid prefix");
    let removed: BTreeSet<String> = store
        .remove_prefix(&prefix)
        .await
        .expect("remove_prefix succeeds")
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = removed_keys.iter().map(|key| (*key).to_owned()).collect();
    assert_eq!(removed, expected);
    for key in removed_keys {
        assert_eq!(get(store, key).await, None, "{key} removed");
    }
    for key in kept_keys {
        assert!(get(store, key).await.is_some(), "{key} kept");
    }
    let nothing = SegmentPrefix::new("dcs:books:id:1").expect("valid prefix");
    assert!(
        store
            .remove_prefix(&nothing)
            .await
            .expect("succeeds")
            .is_empty()
    );
}

async fn prefix_removal_treats_glob_characters_literally(store: &dyn CacheStore) {
    for key in [
        "glob:a*b",
        "glob:a*b:1",
        "glob:aXb:1",
        "glob:a?b:1",
        "glob:[ab]:1",
        "glob:a:1",
    ] {
        put(store, key, long(found("v"))).await;
    }
    let star = SegmentPrefix::new("glob:a*b").expect("valid prefix");
    let mut removed = store.remove_prefix(&star).await.expect("succeeds");
    removed.sort();
    assert_eq!(
        removed,
        vec!["glob:a*b".to_owned(), "glob:a*b:1".to_owned()]
    );
    let brackets = SegmentPrefix::new("glob:[ab]").expect("valid prefix");
    let removed = store.remove_prefix(&brackets).await.expect("succeeds");
    assert_eq!(removed, vec!["glob:[ab]:1".to_owned()]);
    for key in ["glob:aXb:1", "glob:a?b:1", "glob:a:1"] {
        assert!(get(store, key).await.is_some(), "{key} kept");
    }
}

async fn clear_removes_everything_and_counts_it(store: &dyn CacheStore) {
    store.clear().await.expect("clear succeeds");
    for key in ["clear:1", "clear:2", "clear:3:deep"] {
        put(store, key, long(found("v"))).await;
    }
    assert_eq!(store.clear().await.expect("clear succeeds"), 3);
    for key in ["clear:1", "clear:2", "clear:3:deep"] {
        assert_eq!(get(store, key).await, None);
    }
    assert_eq!(store.clear().await.expect("clear succeeds"), 0);
}
