//! Redis mode against a real server: two `Cache` instances on one Redis stand for two LMS
//! instances. Each test uses its own namespace, so tests run in parallel without seeing each
//! other. Unreachable Redis fails these tests unless `CACHE_SKIP_REDIS_TESTS=1`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cache::{
    Cache, CacheConfig, CacheError, CacheLookup, CacheStore, Fetched, Freshness, Invalidation,
    InvalidationBus, RedisConfig, RedisInvalidationBus, RedisStore, StoredEntry,
};
use common::{SourceDown, eventually, redis_or_skip};

const TTL: Duration = Duration::from_secs(30);
const WAIT_LIMIT: Duration = Duration::from_secs(10);

struct Instance {
    cache: Cache,
    subscriber_name: String,
    fetches: Arc<AtomicUsize>,
}

impl Instance {
    /// A cache on Redis, returned once its subscription is up (its first resync happened),
    /// so nothing published afterwards can be missed.
    async fn start(redis: &RedisConfig) -> Self {
        let store = RedisStore::new(redis).expect("store");
        let bus = RedisInvalidationBus::start(redis).expect("bus");
        let subscriber_name = bus.subscriber_client_name().to_owned();
        let cache = Cache::builder(CacheConfig::default())
            .shared_tier(Arc::new(store))
            .invalidation_bus(Arc::new(bus))
            .build();
        eventually("the invalidation subscription is up", WAIT_LIMIT, || {
            cache.stats().resyncs >= 1
        })
        .await;
        Self {
            cache,
            subscriber_name,
            fetches: Arc::default(),
        }
    }

    async fn get(&self, key: &str, text: &'static str) -> CacheLookup {
        let fetches = Arc::clone(&self.fetches);
        self.cache
            .get_or_fetch(key, TTL, || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                Ok::<_, SourceDown>(Fetched::Found(Bytes::from_static(text.as_bytes())))
            })
            .await
            .expect("a succeeding fetch never fails the lookup")
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn lookup(text: &'static str, freshness: Freshness) -> CacheLookup {
    CacheLookup {
        value: Some(Bytes::from_static(text.as_bytes())),
        freshness,
    }
}

async fn cleanup(redis: &RedisConfig) {
    RedisStore::new(redis)
        .expect("store")
        .clear()
        .await
        .expect("clean up the test namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_fetched_by_one_instance_is_served_by_another_from_redis() {
    let Some(redis) = redis_or_skip("shared_read").await else {
        return;
    };
    let a = Instance::start(&redis).await;
    let b = Instance::start(&redis).await;

    assert_eq!(
        a.get("dcs:books:id:1", "book 1").await,
        lookup("book 1", Freshness::Miss)
    );
    assert_eq!(
        b.get("dcs:books:id:1", "unused").await,
        lookup("book 1", Freshness::Fresh)
    );
    assert_eq!(b.fetches(), 0, "b did not fetch");
    let stats = b.cache.stats();
    assert_eq!(stats.shared_hits, 1);
    assert_eq!(stats.shared_tier.as_deref(), Some("redis"));
    assert!(
        b.cache.local_contains("dcs:books:id:1"),
        "copied into b's local tier"
    );

    // Stored under the namespace, with the TTL as Redis expiry.
    let mut connection = common::connect(&redis)
        .await
        .expect("inspection connection");
    let redis_key = format!("{}dcs:books:id:1", redis.namespace);
    let (raw, pttl): (Vec<u8>, i64) = redis::pipe()
        .cmd("GET")
        .arg(&redis_key)
        .cmd("PTTL")
        .arg(&redis_key)
        .query_async(&mut connection)
        .await
        .expect("GET and PTTL");
    assert_eq!(raw, b"Vbook 1");
    let ttl_millis = i64::try_from(TTL.as_millis()).expect("fits");
    assert!(
        pttl > ttl_millis - 5_000 && pttl <= ttl_millis,
        "PTTL {pttl}"
    );

    cleanup(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_answers_are_shared_too() {
    let Some(redis) = redis_or_skip("shared_not_found").await else {
        return;
    };
    let a = Instance::start(&redis).await;
    let b = Instance::start(&redis).await;
    let not_found = a
        .cache
        .get_or_fetch("dcs:books:id:404", TTL, || async {
            Ok::<_, SourceDown>(Fetched::NotFound)
        })
        .await
        .expect("fetch succeeds");
    assert_eq!(not_found.value, None);
    let from_b = b
        .cache
        .get_or_fetch("dcs:books:id:404", TTL, || async {
            Err::<Fetched, _>(SourceDown("must not be called"))
        })
        .await
        .expect("served from Redis");
    assert_eq!(
        from_b,
        CacheLookup {
            value: None,
            freshness: Freshness::Fresh
        }
    );
    assert_eq!(b.cache.stats().negative_hits, 1);
    cleanup(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_on_one_instance_removes_the_entries_from_the_others() {
    let Some(redis) = redis_or_skip("broadcast").await else {
        return;
    };
    let a = Instance::start(&redis).await;
    let b = Instance::start(&redis).await;
    let keys = ["dcs:books:id:1", "dcs:books:id:1:cover", "dcs:books:id:10"];
    for key in keys {
        a.get(key, "v1").await;
        assert_eq!(b.get(key, "unused").await, lookup("v1", Freshness::Fresh));
        assert!(b.cache.local_contains(key));
    }

    assert_eq!(a.cache.invalidate_prefix("dcs:books:id:1").await, Ok(2));
    assert!(!a.cache.local_contains("dcs:books:id:1"));
    eventually("b drops dcs:books:id:1 and its cover", WAIT_LIMIT, || {
        !b.cache.local_contains("dcs:books:id:1") && !b.cache.local_contains("dcs:books:id:1:cover")
    })
    .await;
    assert!(
        b.cache.local_contains("dcs:books:id:10"),
        "id:10 is not below id:1"
    );
    assert_eq!(b.cache.stats().invalidations, 1);

    // Gone from Redis too: b has to fetch, id:10 is still shared.
    assert_eq!(
        b.get("dcs:books:id:1", "v2").await,
        lookup("v2", Freshness::Miss)
    );
    assert_eq!(b.fetches(), 1);

    assert_eq!(b.cache.invalidate("dcs:books:id:10").await, Ok(1));
    eventually("a drops dcs:books:id:10", WAIT_LIMIT, || {
        !a.cache.local_contains("dcs:books:id:10")
    })
    .await;
    cleanup(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_empties_redis_and_every_instance() {
    let Some(redis) = redis_or_skip("clear").await else {
        return;
    };
    let a = Instance::start(&redis).await;
    let b = Instance::start(&redis).await;
    for key in ["dcs:publishers", "dcs:books", "dcs:books:id:1"] {
        a.get(key, "v").await;
        b.get(key, "v").await;
    }
    // A key outside the namespace must survive.
    let mut connection = common::connect(&redis)
        .await
        .expect("inspection connection");
    let outsider = format!("{}outsider", common::unique_namespace("clear_outsider"));
    redis::cmd("SET")
        .arg(&outsider)
        .arg("keep")
        .arg("PX")
        .arg(60_000)
        .exec_async(&mut connection)
        .await
        .expect("SET");

    let report = a.cache.clear().await.expect("clear succeeds");
    assert_eq!(report.local_entries, 3);
    assert_eq!(report.shared_entries, 3);
    eventually("b's local tier is emptied", WAIT_LIMIT, || {
        b.cache.stats().entries == 0
    })
    .await;
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", redis.namespace))
        .query_async(&mut connection)
        .await
        .expect("KEYS");
    // Only the namespace's invalidation counter stays (it never goes back).
    assert_eq!(left, [format!("{}\0invalidations", redis.namespace)]);
    let outsider_value: Option<String> = redis::cmd("GET")
        .arg(&outsider)
        .query_async(&mut connection)
        .await
        .expect("GET");
    assert_eq!(outsider_value.as_deref(), Some("keep"));
    redis::cmd("DEL")
        .arg(&outsider)
        .exec_async(&mut connection)
        .await
        .expect("DEL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_of_the_subscription_drops_the_local_tier() {
    let Some(redis) = redis_or_skip("reconnect").await else {
        return;
    };
    let a = Instance::start(&redis).await;
    let b = Instance::start(&redis).await;
    a.get("dcs:books:id:1", "v1").await;
    a.get("dcs:publishers", "p").await;
    assert_eq!(a.cache.stats().entries, 2);
    let resyncs_before = a.cache.stats().resyncs;

    // Only a's subscription connection is killed, so parallel tests are unaffected.
    assert_eq!(
        common::kill_client_named(&redis, &a.subscriber_name).await,
        1
    );
    eventually(
        "a resubscribes and drops its local tier",
        WAIT_LIMIT,
        || {
            let stats = a.cache.stats();
            stats.resyncs > resyncs_before && stats.entries == 0
        },
    )
    .await;

    // The new subscription carries invalidations again.
    a.get("dcs:books:id:2", "v").await;
    assert_eq!(b.cache.invalidate("dcs:books:id:2").await, Ok(1));
    eventually(
        "a applies b's invalidation after reconnecting",
        WAIT_LIMIT,
        || !a.cache.local_contains("dcs:books:id:2"),
    )
    .await;
    cleanup(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_built_after_the_bus_subscribed_still_counts_the_subscription() {
    let Some(redis) = redis_or_skip("late_cache").await else {
        return;
    };
    let redis = RedisConfig {
        keepalive_interval: Duration::from_millis(10),
        ..redis
    };
    let bus = RedisInvalidationBus::start(&redis).expect("bus");
    // The bus pings only after it has announced its subscription, so a PING seen on its
    // connection proves the announcement went out before any cache was listening.
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    while common::last_command_of_client_named(&redis, bus.subscriber_client_name())
        .await
        .as_deref()
        != Some("ping")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the bus never subscribed and pinged"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let cache = Cache::builder(CacheConfig::default())
        .invalidation_bus(Arc::new(bus))
        .build();
    eventually(
        "the cache counts the subscription made before it was built",
        WAIT_LIMIT,
        || cache.stats().resyncs >= 1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_keep_working_when_redis_is_down() {
    // Nothing listens on this port: every Redis operation fails (connection refused).
    let redis = RedisConfig::new(format!("redis://127.0.0.1:{}", common::closed_port()))
        .with_namespace(common::unique_namespace("down"));
    let cache = Cache::with_redis(CacheConfig::default(), &redis)
        .expect("connections are lazy: building succeeds while Redis is down");
    let fetches = Arc::new(AtomicUsize::new(0));
    let get = |text: &'static str| {
        let fetches = Arc::clone(&fetches);
        let cache = cache.clone();
        async move {
            cache
                .get_or_fetch("dcs:books", TTL, || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, SourceDown>(Fetched::Found(Bytes::from_static(text.as_bytes())))
                })
                .await
        }
    };

    assert_eq!(get("v1").await, Ok(lookup("v1", Freshness::Miss)));
    assert_eq!(get("unused").await, Ok(lookup("v1", Freshness::Fresh)));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert!(
        stats.shared_errors >= 1,
        "the Redis failure is counted: {stats:?}"
    );
    assert_eq!(stats.resyncs, 0, "never subscribed");

    // Invalidation still clears locally, and reports that Redis could not be reached.
    let result = cache.invalidate("dcs:books").await;
    assert!(matches!(result, Err(CacheError::Shared(_))), "{result:?}");
    assert!(!cache.local_contains("dcs:books"));
    assert_eq!(get("v2").await, Ok(lookup("v2", Freshness::Miss)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_skips_reads_while_cooling_down_after_a_failure() {
    let redis = RedisConfig {
        error_cooldown: Duration::from_secs(60),
        ..RedisConfig::new(format!("redis://127.0.0.1:{}", common::closed_port()))
            .with_namespace(common::unique_namespace("cooldown"))
    };
    let store = RedisStore::new(&redis).expect("lazy store");
    let first = store.get("k").await;
    assert!(first.is_err(), "the first failure is reported: {first:?}");
    assert_eq!(store.get("k").await, Ok(None), "then Redis is skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_url_password_stays_out_of_debug_output() {
    let redis = RedisConfig::new("redis://default:do-not-print-me@127.0.0.1:1")
        .with_namespace(common::unique_namespace("debug"));
    let cache = Cache::with_redis(CacheConfig::default(), &redis).expect("lazy");
    let debug = format!("{cache:?} {redis:?}");
    assert!(!debug.contains("do-not-print-me"), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_falls_back_to_the_source_and_recovery_drops_the_local_tier() {
    let Some(redis) = redis_or_skip("outage").await else {
        return;
    };
    let proxy = common::OutageProxy::start(common::redis_address(&redis)).await;
    let via_proxy = RedisConfig {
        error_cooldown: Duration::ZERO,
        ..common::via_address(&redis, proxy.address())
    };
    let a = Instance::start(&via_proxy).await;
    assert_eq!(
        a.get("dcs:books:id:1", "v1").await,
        lookup("v1", Freshness::Miss)
    );

    proxy.cut();
    assert_eq!(
        a.get("dcs:books:id:1", "unused").await,
        lookup("v1", Freshness::Fresh)
    );
    assert_eq!(
        a.get("dcs:books:id:2", "v2").await,
        lookup("v2", Freshness::Miss)
    );
    assert_eq!(a.fetches(), 2, "the source answered while Redis was away");
    assert!(a.cache.stats().shared_errors >= 1, "{:?}", a.cache.stats());
    let resyncs_during_outage = a.cache.stats().resyncs;

    proxy.restore();
    eventually(
        "a resubscribes and drops its local tier",
        WAIT_LIMIT,
        || {
            let stats = a.cache.stats();
            stats.resyncs > resyncs_during_outage && stats.entries == 0
        },
    )
    .await;

    // The store reconnects too: the value written before the outage is readable through it.
    let store = RedisStore::new(&via_proxy).expect("store");
    let deadline = std::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Ok(Some(entry)) = store.get("dcs:books:id:1").await {
            assert_eq!(entry.value, Fetched::Found(Bytes::from_static(b"v1")));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Redis reads did not recover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cleanup(&redis).await;
}

/// Instance A fetches old data just before instance B invalidates it; A's write to Redis lands
/// after B's removal, before A hears of it (here: never, A has no bus). Redis refuses it, so
/// the old data does not come back for every instance until the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_raced_another_instances_invalidation_is_not_written_to_redis() {
    let Some(redis) = redis_or_skip("fill_race").await else {
        return;
    };
    let a = Cache::builder(CacheConfig::default())
        .shared_tier(Arc::new(RedisStore::new(&redis).expect("store")))
        .build();
    let b = Instance::start(&redis).await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let fill = tokio::spawn({
        let (a, release) = (a.clone(), release.clone());
        async move {
            a.get_or_fetch("dcs:books:id:1", TTL, || async move {
                let _ = started_tx.send(());
                release.notified().await;
                Ok::<_, SourceDown>(Fetched::Found(Bytes::from_static(b"old")))
            })
            .await
        }
    });
    started_rx.await.expect("the fetch started");
    b.cache
        .invalidate_prefix("dcs:books:id:1")
        .await
        .expect("invalidation");
    release.notify_one();
    assert_eq!(
        fill.await.expect("fill task"),
        Ok(lookup("old", Freshness::Miss)),
        "its own caller still gets what it fetched"
    );
    let store = RedisStore::new(&redis).expect("store");
    assert_eq!(store.get("dcs:books:id:1").await, Ok(None), "not in Redis");
    // B fetches the current data, and that is written.
    b.get("dcs:books:id:1", "new").await;
    let stored = store
        .get("dcs:books:id:1")
        .await
        .unwrap()
        .expect("in Redis");
    assert_eq!(stored.value, Fetched::Found(Bytes::from_static(b"new")));
    cleanup(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_commands_after_redis_comes_back_succeed() {
    let Some(redis) = redis_or_skip("back").await else {
        return;
    };
    let proxy = common::OutageProxy::start(common::redis_address(&redis)).await;
    let via_proxy = RedisConfig {
        error_cooldown: Duration::ZERO,
        ..common::via_address(&redis, proxy.address())
    };
    let store = RedisStore::new(&via_proxy).expect("store");
    let bus = RedisInvalidationBus::start(&via_proxy).expect("bus");
    let entry = || StoredEntry {
        value: Fetched::Found(Bytes::from_static(b"v1")),
        fresh_for: TTL,
        stale_for: Duration::ZERO,
    };
    store
        .put("k", entry())
        .await
        .expect("put while Redis is up");
    bus.publish(&Invalidation::Key("k".into()))
        .await
        .expect("publish while Redis is up");

    // Both connections die, and attempts while Redis is away fail (each starts a reconnect
    // in the background, which fails too while Redis is away).
    proxy.cut();
    for _ in 0..3 {
        assert!(store.remove("k").await.is_err());
        assert!(bus.publish(&Invalidation::Key("k".into())).await.is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back: the very first command on each connection goes through. (The connection manager
    // reconnects only when a command fails on the dead connection; that command is sent again.)
    proxy.restore();
    assert_eq!(store.remove("k").await, Ok(true));
    bus.publish(&Invalidation::Key("k".into()))
        .await
        .expect("the first publish after Redis is back");
    cleanup(&redis).await;
}
