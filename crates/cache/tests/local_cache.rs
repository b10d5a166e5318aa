//! The cache facade on its local tier (and on in-memory fakes of the shared tier and bus):
//! TTL, single-flight, stale-if-error, negative caching, invalidation, stats, sweeping.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cache::{
    Cache, CacheConfig, CacheError, CacheLookup, ENTRY_OVERHEAD_BYTES, Fetched, Freshness,
    InMemoryHub, LocalStore, ManualClock,
};
use common::{SourceDown, eventually};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const TTL: Duration = Duration::from_secs(10);
const WAIT_LIMIT: Duration = Duration::from_secs(10);

fn config() -> CacheConfig {
    CacheConfig {
        max_staleness: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(30),
        ..CacheConfig::default()
    }
}

fn cache_with_clock(config: CacheConfig) -> (Cache, ManualClock) {
    let clock = ManualClock::new();
    let cache = Cache::builder(config)
        .clock(Arc::new(clock.clone()))
        .build();
    (cache, clock)
}

fn bytes(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

/// A fetch source that counts its calls and answers from a script.
#[derive(Clone, Default)]
struct Source {
    calls: Arc<AtomicUsize>,
}

impl Source {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn get(
        &self,
        cache: &Cache,
        key: &str,
        answer: Result<Fetched, SourceDown>,
    ) -> Result<CacheLookup, SourceDown> {
        let calls = Arc::clone(&self.calls);
        cache
            .get_or_fetch(key, TTL, || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                answer
            })
            .await
    }

    async fn found(&self, cache: &Cache, key: &str, text: &'static str) -> CacheLookup {
        self.get(cache, key, Ok(Fetched::Found(bytes(text))))
            .await
            .expect("a succeeding fetch never fails the lookup")
    }
}

fn hit(text: &'static str) -> CacheLookup {
    CacheLookup {
        value: Some(bytes(text)),
        freshness: Freshness::Fresh,
    }
}

fn miss(text: &'static str) -> CacheLookup {
    CacheLookup {
        value: Some(bytes(text)),
        freshness: Freshness::Miss,
    }
}

fn stale(text: &'static str) -> CacheLookup {
    CacheLookup {
        value: Some(bytes(text)),
        freshness: Freshness::Stale,
    }
}

#[tokio::test]
async fn a_miss_fetches_then_hits_until_the_ttl_runs_out() {
    let (cache, clock) = cache_with_clock(config());
    let source = Source::default();

    assert_eq!(source.found(&cache, "dcs:books", "v1").await, miss("v1"));
    assert_eq!(source.found(&cache, "dcs:books", "unused").await, hit("v1"));
    clock.advance(TTL - Duration::from_millis(1));
    assert_eq!(source.found(&cache, "dcs:books", "unused").await, hit("v1"));
    assert_eq!(source.calls(), 1);

    clock.advance(Duration::from_millis(1));
    assert_eq!(source.found(&cache, "dcs:books", "v2").await, miss("v2"));
    assert_eq!(source.calls(), 2);
    assert_eq!(source.found(&cache, "dcs:books", "unused").await, hit("v2"));
}

#[tokio::test]
async fn keys_are_cached_independently() {
    let (cache, _clock) = cache_with_clock(config());
    let source = Source::default();
    assert_eq!(source.found(&cache, "a", "1").await, miss("1"));
    assert_eq!(source.found(&cache, "b", "2").await, miss("2"));
    assert_eq!(source.found(&cache, "a", "x").await, hit("1"));
    assert_eq!(source.found(&cache, "b", "x").await, hit("2"));
}

#[tokio::test]
async fn a_hit_hands_out_the_stored_bytes_without_copying() {
    let (cache, _clock) = cache_with_clock(config());
    let body = Bytes::from(vec![b'x'; 4096]);
    let stored = body.clone();
    cache
        .get_or_fetch("big", TTL, || async move {
            Ok::<_, SourceDown>(Fetched::Found(stored))
        })
        .await
        .expect("fetch succeeds");
    let first = Source::default().found(&cache, "big", "unused").await;
    let second = Source::default().found(&cache, "big", "unused").await;
    let (first, second) = (first.value.expect("found"), second.value.expect("found"));
    assert_eq!(
        first.as_ptr(),
        body.as_ptr(),
        "hits share the fetched buffer"
    );
    assert_eq!(second.as_ptr(), body.as_ptr());
}

#[tokio::test]
async fn the_weight_bound_evicts_entries() {
    let capacity = 64 * 1024;
    let (cache, _clock) = cache_with_clock(CacheConfig {
        capacity_bytes: capacity,
        ..config()
    });
    let value = Bytes::from(vec![0_u8; 1024]);
    let inserted = 300_u64;
    for index in 0..inserted {
        let value = value.clone();
        cache
            .get_or_fetch(&format!("k:{index:03}"), TTL, || async move {
                Ok::<_, SourceDown>(Fetched::Found(value))
            })
            .await
            .expect("fetch succeeds");
    }
    let stats = cache.stats();
    let entry_weight = 5 + 1024 + ENTRY_OVERHEAD_BYTES;
    assert!(stats.capacity_bytes >= capacity, "{stats:?}");
    assert!(stats.weight_bytes <= stats.capacity_bytes, "{stats:?}");
    assert!(stats.entries < inserted, "{stats:?}");
    assert!(stats.evictions > 0, "{stats:?}");
    assert_eq!(stats.entries + stats.evictions, inserted, "{stats:?}");
    assert_eq!(
        stats.weight_bytes,
        stats.entries * entry_weight,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_cause_exactly_one_fetch() {
    let cache = Cache::new(config());
    let fetches = Arc::new(AtomicUsize::new(0));
    // The one fetch is held open until every other caller has joined it.
    let release = Arc::new(Semaphore::new(0));
    let callers = 1000;
    let mut tasks = JoinSet::new();
    for _ in 0..callers {
        let cache = cache.clone();
        let fetches = Arc::clone(&fetches);
        let release = Arc::clone(&release);
        tasks.spawn(async move {
            cache
                .get_or_fetch("dcs:publishers", TTL, || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let _permit = release.acquire().await.expect("semaphore open");
                    tokio::task::yield_now().await;
                    Ok::<_, SourceDown>(Fetched::Found(bytes("publishers")))
                })
                .await
        });
    }
    eventually("999 callers join the fetch in flight", WAIT_LIMIT, || {
        cache.stats().coalesced_waits == callers - 1
    })
    .await;
    release.add_permits(callers as usize);

    while let Some(joined) = tasks.join_next().await {
        let lookup = joined.expect("task completes").expect("fetch succeeds");
        assert_eq!(lookup, miss("publishers"));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.coalesced_waits, callers - 1);
    assert_eq!(stats.misses, callers);
    assert_eq!(stats.hits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_take_over_when_the_fetching_caller_is_cancelled() {
    let cache = Cache::new(config());
    let leader_started = Arc::new(Semaphore::new(0));
    let leader = tokio::spawn({
        let cache = cache.clone();
        let leader_started = Arc::clone(&leader_started);
        async move {
            cache
                .get_or_fetch("dcs:books:id:1", TTL, || async move {
                    leader_started.add_permits(1);
                    std::future::pending::<Result<Fetched, SourceDown>>().await
                })
                .await
        }
    });
    leader_started
        .acquire()
        .await
        .expect("semaphore open")
        .forget();

    let takeover_fetches = Arc::new(AtomicUsize::new(0));
    let waiters = 20;
    let mut tasks = JoinSet::new();
    for _ in 0..waiters {
        let cache = cache.clone();
        let takeover_fetches = Arc::clone(&takeover_fetches);
        tasks.spawn(async move {
            cache
                .get_or_fetch("dcs:books:id:1", TTL, || async move {
                    takeover_fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    Ok::<_, SourceDown>(Fetched::Found(bytes("book 1")))
                })
                .await
        });
    }
    eventually("all waiters join the leader's fetch", WAIT_LIMIT, || {
        cache.stats().coalesced_waits == waiters
    })
    .await;

    leader.abort();
    assert!(leader.await.expect_err("aborted").is_cancelled());

    let results = tokio::time::timeout(WAIT_LIMIT, async {
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            results.push(joined.expect("task completes").expect("fetch succeeds"));
        }
        results
    })
    .await
    .expect("waiters do not hang after the leader is cancelled");
    assert_eq!(results.len(), waiters as usize);
    // Each waiter either joined the takeover fetch (a miss) or, scheduled after it finished,
    // found its value in the cache (a hit); none fetched again.
    assert!(
        results
            .iter()
            .all(|lookup| lookup.value == Some(bytes("book 1"))
                && matches!(lookup.freshness, Freshness::Miss | Freshness::Fresh)),
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|lookup| lookup.freshness == Freshness::Miss),
        "{results:?}"
    );
    assert_eq!(
        takeover_fetches.load(Ordering::SeqCst),
        1,
        "one waiter takes over"
    );
    assert_eq!(
        cache.stats().fetches,
        2,
        "the cancelled fetch and the takeover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_receive_the_fetch_error_without_fetching_again() {
    let cache = Cache::new(config());
    let release = Arc::new(Semaphore::new(0));
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..10 {
        let cache = cache.clone();
        let release = Arc::clone(&release);
        let fetches = Arc::clone(&fetches);
        tasks.spawn(async move {
            cache
                .get_or_fetch("dcs:books", TTL, || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let _permit = release.acquire().await.expect("semaphore open");
                    Err::<Fetched, _>(SourceDown("dcs unreachable"))
                })
                .await
        });
    }
    eventually("nine callers join", WAIT_LIMIT, || {
        cache.stats().coalesced_waits == 9
    })
    .await;
    release.add_permits(10);
    while let Some(joined) = tasks.join_next().await {
        assert_eq!(
            joined.expect("task completes"),
            Err(SourceDown("dcs unreachable"))
        );
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.fetch_errors, 1);
    assert_eq!(stats.misses, 10);
}

#[tokio::test]
async fn a_failed_refresh_serves_the_stale_value_within_the_maximum_staleness() {
    let (cache, clock) = cache_with_clock(config());
    let source = Source::default();
    let down = || Err(SourceDown("dcs unreachable"));

    assert_eq!(
        source.found(&cache, "dcs:books:id:1", "v1").await,
        miss("v1")
    );
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(
        source.get(&cache, "dcs:books:id:1", down()).await,
        Ok(stale("v1"))
    );
    // Errors are not cached: the next lookup tries the source again.
    clock.advance(Duration::from_secs(58));
    assert_eq!(
        source.get(&cache, "dcs:books:id:1", down()).await,
        Ok(stale("v1")),
        "59 s after expiry, within the 60 s maximum staleness"
    );
    assert_eq!(source.calls(), 3);
    let stats = cache.stats();
    assert_eq!(stats.stale_served, 2);
    assert_eq!(stats.fetch_errors, 2);

    // A successful refresh replaces the stale value.
    assert_eq!(
        source.found(&cache, "dcs:books:id:1", "v2").await,
        miss("v2")
    );
    assert_eq!(source.found(&cache, "dcs:books:id:1", "x").await, hit("v2"));
}

#[tokio::test]
async fn a_failed_refresh_beyond_the_maximum_staleness_returns_the_error() {
    let (cache, clock) = cache_with_clock(config());
    let source = Source::default();
    assert_eq!(
        source.found(&cache, "dcs:books:id:1", "v1").await,
        miss("v1")
    );
    clock.advance(TTL + Duration::from_secs(60));
    assert_eq!(
        source
            .get(&cache, "dcs:books:id:1", Err(SourceDown("dcs unreachable")))
            .await,
        Err(SourceDown("dcs unreachable"))
    );
    assert!(
        !cache.local_contains("dcs:books:id:1"),
        "the dead entry is gone"
    );
    let stats = cache.stats();
    assert_eq!(stats.stale_served, 0);
    assert_eq!(stats.fetch_errors, 1);
}

#[tokio::test]
async fn not_found_is_cached_for_the_negative_ttl_and_never_served_stale() {
    let (cache, clock) = cache_with_clock(config());
    let source = Source::default();
    let not_found = CacheLookup {
        value: None,
        freshness: Freshness::Miss,
    };
    let cached_not_found = CacheLookup {
        value: None,
        freshness: Freshness::Fresh,
    };

    assert_eq!(
        source
            .get(&cache, "dcs:books:id:99", Ok(Fetched::NotFound))
            .await,
        Ok(not_found)
    );
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        source
            .get(
                &cache,
                "dcs:books:id:99",
                Ok(Fetched::Found(bytes("unused")))
            )
            .await,
        Ok(cached_not_found)
    );
    assert_eq!(source.calls(), 1);
    assert_eq!(cache.stats().negative_hits, 1);

    clock.advance(Duration::from_secs(1));
    assert_eq!(
        source
            .get(
                &cache,
                "dcs:books:id:99",
                Err(SourceDown("dcs unreachable"))
            )
            .await,
        Err(SourceDown("dcs unreachable")),
        "an expired \"not found\" is not served stale"
    );
    assert_eq!(
        source.found(&cache, "dcs:books:id:99", "now exists").await,
        miss("now exists")
    );
    assert_eq!(source.calls(), 3);
}

#[tokio::test]
async fn invalidation_by_key_and_by_segment_prefix_reports_how_many_went() {
    let (cache, _clock) = cache_with_clock(config());
    let source = Source::default();
    let keys = [
        "dcs:books:id:1",
        "dcs:books:id:1:cover",
        "dcs:books:id:1:config",
        "dcs:books:id:10",
        "dcs:books:id:10:cover",
        "dcs:publishers:id:1",
    ];
    for key in keys {
        source.found(&cache, key, "v").await;
    }

    assert_eq!(cache.invalidate_prefix("dcs:books:id:1").await, Ok(3));
    for key in [
        "dcs:books:id:1",
        "dcs:books:id:1:cover",
        "dcs:books:id:1:config",
    ] {
        assert!(!cache.local_contains(key), "{key} invalidated");
    }
    for key in [
        "dcs:books:id:10",
        "dcs:books:id:10:cover",
        "dcs:publishers:id:1",
    ] {
        assert!(cache.local_contains(key), "{key} kept");
    }

    assert_eq!(cache.invalidate("dcs:books:id:10").await, Ok(1));
    assert_eq!(cache.invalidate("dcs:books:id:10").await, Ok(0));
    assert!(
        cache.local_contains("dcs:books:id:10:cover"),
        "exact invalidation spares children"
    );
    assert_eq!(
        cache.invalidate_prefix("dcs:books:").await,
        Ok(1),
        "trailing ':' ignored"
    );
    assert_eq!(
        cache.invalidate_prefix(":").await,
        Err(CacheError::EmptyPrefix)
    );

    let calls_before = source.calls();
    assert_eq!(
        source.found(&cache, "dcs:books:id:1", "v2").await,
        miss("v2")
    );
    assert_eq!(source.calls(), calls_before + 1);

    let stats = cache.stats();
    assert_eq!(stats.invalidations, 4);
    assert_eq!(stats.invalidated_entries, 5);
}

/// A fetch of `key` that answers `text` once a permit is added to the returned semaphore;
/// returned once the fetch has started.
async fn held_fetch(
    cache: &Cache,
    key: &'static str,
    text: &'static str,
) -> (
    tokio::task::JoinHandle<Result<CacheLookup, SourceDown>>,
    Arc<Semaphore>,
) {
    let fetch_started = Arc::new(Semaphore::new(0));
    let release = Arc::new(Semaphore::new(0));
    let fetching = tokio::spawn({
        let cache = cache.clone();
        let fetch_started = Arc::clone(&fetch_started);
        let release = Arc::clone(&release);
        async move {
            cache
                .get_or_fetch(key, TTL, || async move {
                    fetch_started.add_permits(1);
                    let _permit = release.acquire().await.expect("semaphore open");
                    Ok::<_, SourceDown>(Fetched::Found(bytes(text)))
                })
                .await
        }
    });
    fetch_started
        .acquire()
        .await
        .expect("semaphore open")
        .forget();
    (fetching, release)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_overlapping_an_invalidation_is_returned_but_not_cached() {
    let cache = Cache::new(config());
    let (fetching, release) = held_fetch(&cache, "dcs:books:id:1", "read before the change").await;
    assert_eq!(cache.invalidate_prefix("dcs:books:id:1").await, Ok(0));
    release.add_permits(1);

    let lookup = fetching
        .await
        .expect("task completes")
        .expect("fetch succeeds");
    assert_eq!(lookup, miss("read before the change"));
    assert!(
        !cache.local_contains("dcs:books:id:1"),
        "data fetched across an invalidation must not be cached"
    );
    let source = Source::default();
    assert_eq!(
        source.found(&cache, "dcs:books:id:1", "after").await,
        miss("after")
    );
    assert_eq!(
        source.found(&cache, "dcs:books:id:1", "x").await,
        hit("after")
    );
}

/// A caller that arrives after an invalidation does not join a fetch that started before it
/// (that fetch may bring back exactly what was invalidated): it fetches anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_after_an_invalidation_does_not_join_a_fetch_from_before_it() {
    let cache = Cache::new(config());
    let (early, release) = held_fetch(&cache, "dcs:books:id:1", "before").await;
    cache
        .invalidate_prefix("dcs:books")
        .await
        .expect("invalidation");
    let late = tokio::time::timeout(
        Duration::from_secs(5),
        cache.get_or_fetch("dcs:books:id:1", TTL, || async {
            Ok::<_, SourceDown>(Fetched::Found(bytes("after")))
        }),
    )
    .await
    .expect("not waiting on the fetch from before the invalidation");
    assert_eq!(late, Ok(miss("after")));
    release.add_permits(1);
    assert_eq!(early.await.expect("task"), Ok(miss("before")));
    assert_eq!(
        cache
            .get_or_fetch("dcs:books:id:1", TTL, || async {
                Ok::<_, SourceDown>(Fetched::Found(bytes("unused")))
            })
            .await,
        Ok(hit("after"))
    );
}

#[tokio::test]
async fn stats_report_sizes_counters_and_hit_rate() {
    let (cache, _clock) = cache_with_clock(config());
    let empty = cache.stats();
    assert_eq!(empty.hit_rate, 0.0);
    assert_eq!(empty.entries, 0);
    assert_eq!(empty.capacity_bytes, cache.config().capacity_bytes);
    assert_eq!(empty.shared_tier, None);

    let source = Source::default();
    source.found(&cache, "a", "1").await;
    for _ in 0..3 {
        source.found(&cache, "a", "x").await;
    }
    let stats = cache.stats();
    assert_eq!(stats.hits, 3);
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hit_rate, 0.75);
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.entries, 1);
    assert_eq!(stats.weight_bytes, 1 + 1 + ENTRY_OVERHEAD_BYTES);

    let json = serde_json::to_value(&stats).expect("serialisable");
    for field in [
        "entries",
        "weight_bytes",
        "capacity_bytes",
        "hits",
        "misses",
        "hit_rate",
        "stale_served",
        "coalesced_waits",
        "negative_hits",
        "fetch_errors",
        "evictions",
        "invalidations",
    ] {
        assert!(json.get(field).is_some(), "stats JSON has {field}: {json}");
    }
    assert_eq!(json["hit_rate"], 0.75);

    let report = cache.clear().await.expect("local clear cannot fail");
    assert_eq!(report.local_entries, 1);
    assert_eq!(cache.stats().entries, 0);
    assert_eq!(cache.stats().hits, 3, "clear keeps the counters");
}

#[tokio::test]
async fn sweeping_removes_entries_past_their_stale_window_only() {
    let (cache, clock) = cache_with_clock(config());
    let source = Source::default();
    source.found(&cache, "short", "v").await;
    source
        .get(&cache, "missing", Ok(Fetched::NotFound))
        .await
        .expect("fetch succeeds");
    cache
        .get_or_fetch("long", Duration::from_secs(3600), || async {
            Ok::<_, SourceDown>(Fetched::Found(bytes("v")))
        })
        .await
        .expect("fetch succeeds");

    clock.advance(TTL + Duration::from_secs(30));
    assert_eq!(
        cache.sweep_expired(),
        1,
        "the \"not found\" has no stale window"
    );
    assert!(
        cache.local_contains("short"),
        "still within the stale window"
    );

    clock.advance(Duration::from_secs(30));
    assert_eq!(cache.sweep_expired(), 1);
    assert!(!cache.local_contains("short"));
    assert!(cache.local_contains("long"));
    assert_eq!(cache.stats().expired_swept, 2);
    assert_eq!(cache.stats().entries, 1);
}

#[tokio::test(start_paused = true)]
async fn the_background_sweeper_runs_every_interval_and_stops_with_its_handle() {
    let (cache, clock) = cache_with_clock(CacheConfig {
        sweep_interval: Duration::from_secs(30),
        ..config()
    });
    let source = Source::default();
    let sweeper = cache.start_sweeper();
    source.found(&cache, "a", "v").await;
    clock.advance(TTL + Duration::from_secs(61));
    assert!(cache.local_contains("a"), "dead but not swept yet");

    // Paused Tokio time: this sleep advances the timer instantly.
    tokio::time::sleep(Duration::from_secs(31)).await;
    eventually("the sweeper removes the dead entry", WAIT_LIMIT, || {
        !cache.local_contains("a")
    })
    .await;
    assert_eq!(cache.stats().expired_swept, 1);

    drop(sweeper);
    source.found(&cache, "b", "v").await;
    clock.advance(TTL + Duration::from_secs(61));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(
        cache.local_contains("b"),
        "a dropped handle stops the sweeper"
    );
}

#[tokio::test]
async fn insert_warms_both_tiers() {
    let (cache, _clock) = cache_with_clock(config());
    cache
        .insert("dcs:publishers", Fetched::Found(bytes("warm")), TTL)
        .await;
    assert_eq!(
        Source::default().found(&cache, "dcs:publishers", "x").await,
        hit("warm")
    );
}

#[tokio::test]
async fn freshness_maps_to_x_cache_header_values() {
    assert_eq!(Freshness::Fresh.as_header_value(), "HIT");
    assert_eq!(Freshness::Miss.as_header_value(), "MISS");
    assert_eq!(Freshness::Stale.as_header_value(), "STALE");
}

/// Two instances on an in-memory shared tier and bus: the tier logic without Redis.
#[tokio::test]
async fn instances_share_the_shared_tier_and_apply_each_others_invalidations() {
    let clock = ManualClock::new();
    let shared = Arc::new(LocalStore::new(16 * 1024 * 1024, Arc::new(clock.clone())));
    let hub = InMemoryHub::new();
    let instance = || {
        Cache::builder(config())
            .clock(Arc::new(clock.clone()))
            .shared_tier(shared.clone())
            .invalidation_bus(Arc::new(hub.join()))
            .build()
    };
    let (a, b) = (instance(), instance());
    let (source_a, source_b) = (Source::default(), Source::default());

    assert_eq!(source_a.found(&a, "dcs:books:id:1", "v1").await, miss("v1"));
    assert_eq!(
        source_b.found(&b, "dcs:books:id:1", "unused").await,
        hit("v1")
    );
    assert_eq!(source_b.calls(), 0, "served from the shared tier");
    assert_eq!(b.stats().shared_hits, 1);
    assert!(
        b.local_contains("dcs:books:id:1"),
        "copied into b's local tier"
    );

    assert_eq!(a.invalidate("dcs:books:id:1").await, Ok(1));
    eventually("b drops the invalidated key", WAIT_LIMIT, || {
        !b.local_contains("dcs:books:id:1")
    })
    .await;
    assert_eq!(source_b.found(&b, "dcs:books:id:1", "v2").await, miss("v2"));
    assert_eq!(b.stats().invalidations, 1);
}

#[tokio::test]
async fn a_bus_resync_drops_the_whole_local_tier() {
    let hub = InMemoryHub::new();
    let bus = hub.join();
    let cache = Cache::builder(config())
        .invalidation_bus(Arc::new(bus.clone()))
        .build();
    let source = Source::default();
    source.found(&cache, "a", "1").await;
    source.found(&cache, "b", "2").await;
    bus.announce_resync();
    eventually("the local tier is dropped", WAIT_LIMIT, || {
        cache.stats().entries == 0
    })
    .await;
    assert_eq!(cache.stats().resyncs, 1);
}
