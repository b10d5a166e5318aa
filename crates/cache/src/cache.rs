//! The cache facade: tiers, single-flight, stale-if-error, negative caching, invalidation.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::bus::{AbortOnDrop, BusEvent, Invalidation, InvalidationBus};
use crate::clock::{Clock, SystemClock};
use crate::config::{CacheConfig, RedisConfig};
use crate::flight::{FlightGuard, Flights, Outcome, Role, wait_for_outcome};
use crate::key::SegmentPrefix;
use crate::local::LocalStore;
use crate::redis_tier::{RedisInvalidationBus, RedisStore};
use crate::stats::{CacheStats, Counters, hit_rate};
use crate::store::{BackendError, CacheStore, Fetched, StoredEntry};

/// How a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// From a cache tier, within its TTL.
    Fresh,
    /// Fetched from the source for this lookup (or for a fetch it joined).
    Miss,
    /// The refresh failed; this is the last value, expired no longer than the maximum staleness ago.
    Stale,
}

impl Freshness {
    /// The conventional `X-Cache` header value: `HIT`, `MISS` or `STALE`.
    pub fn as_header_value(self) -> &'static str {
        match self {
            Self::Fresh => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
        }
    }
}

/// The answer to [`Cache::get_or_fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLookup {
    /// The bytes, or `None` when the source said "not found" (possibly a cached answer).
    pub value: Option<Bytes>,
    /// Whether the answer came from the cache, the source, or a stale copy.
    pub freshness: Freshness,
}

impl CacheLookup {
    fn new(value: Fetched, freshness: Freshness) -> Self {
        Self {
            value: value.into_bytes(),
            freshness,
        }
    }

    /// Whether the answer is an expired copy served because the refresh failed.
    pub fn is_stale(&self) -> bool {
        self.freshness == Freshness::Stale
    }
}

/// What [`Cache::clear`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClearReport {
    /// Entries removed from this instance's local tier.
    pub local_entries: u64,
    /// Keys removed from the shared tier (0 without one).
    pub shared_entries: u64,
}

/// Why an invalidation or clear did not complete everywhere. The local tier is always updated
/// before any of these can happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The prefix has no segment; it would match every key (use [`Cache::clear`] for that).
    #[error("an invalidation prefix needs at least one key segment")]
    EmptyPrefix,
    /// The shared tier could not remove the entries; other instances may still read them there.
    #[error("shared cache tier: {0}")]
    Shared(#[source] BackendError),
    /// Other instances could not be told; they keep their local copies until TTL or resync.
    #[error("invalidation bus: {0}")]
    Bus(#[source] BackendError),
}

/// The cache. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.inner.config)
            .field("local", &self.inner.local)
            .field("shared", &self.inner.shared)
            .field("bus", &self.inner.bus)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Cache`] with optional shared tier, invalidation bus and clock.
#[must_use]
pub struct CacheBuilder {
    config: CacheConfig,
    clock: Arc<dyn Clock>,
    shared: Option<Arc<dyn CacheStore>>,
    bus: Option<Arc<dyn InvalidationBus>>,
}

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("shared", &self.shared)
            .field("bus", &self.bus)
            .finish()
    }
}

impl CacheBuilder {
    /// Reads "now" from `clock` (tests pass a [`crate::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds a shared tier read after the local tier and written through on every fetch.
    pub fn shared_tier(mut self, store: Arc<dyn CacheStore>) -> Self {
        self.shared = Some(store);
        self
    }

    /// Broadcasts invalidations to, and applies those from, other instances.
    pub fn invalidation_bus(mut self, bus: Arc<dyn InvalidationBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Builds the cache. With a bus, this must run inside a Tokio runtime: it spawns the task
    /// that applies other instances' invalidations (stopped when the last clone is dropped).
    pub fn build(self) -> Cache {
        let inner = Arc::new(Inner {
            local: LocalStore::new(self.config.capacity_bytes, self.clock),
            config: self.config,
            shared: self.shared,
            bus: self.bus,
            flights: Flights::default(),
            fill_gate: RwLock::new(()),
            epoch: AtomicU64::new(0),
            counters: Counters::default(),
            listener: Mutex::new(None),
        });
        if let Some(bus) = &inner.bus {
            let listener = spawn_bus_listener(Arc::downgrade(&inner), bus.subscribe());
            *lock(&inner.listener) = Some(listener);
        }
        Cache { inner }
    }
}

struct Inner {
    config: CacheConfig,
    local: LocalStore,
    shared: Option<Arc<dyn CacheStore>>,
    bus: Option<Arc<dyn InvalidationBus>>,
    /// Fetches in flight, by key; callers that miss on a key with a flight wait for it.
    flights: Flights,
    /// Fills of the local tier hold this shared; invalidations hold it exclusively, so a fill
    /// checks the epoch and writes atomically with respect to them.
    fill_gate: RwLock<()>,
    /// Bumped by every invalidation. A fetch that started under an older epoch may have read
    /// data the invalidation was meant to remove, so its result is returned but not cached.
    epoch: AtomicU64,
    counters: Counters,
    listener: Mutex<Option<AbortOnDrop>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cache {
    /// A local-only cache with the real clock.
    pub fn new(config: CacheConfig) -> Self {
        Self::builder(config).build()
    }

    /// Starts building a cache.
    pub fn builder(config: CacheConfig) -> CacheBuilder {
        CacheBuilder {
            config,
            clock: Arc::new(SystemClock),
            shared: None,
            bus: None,
        }
    }

    /// A cache with Redis as shared tier and invalidation bus. Connects lazily: this does not
    /// fail when Redis is down (reads then use the local tier and the source, and the
    /// subscription keeps retrying); it fails only on an unusable URL or an empty namespace.
    /// Needs a Tokio runtime.
    pub fn with_redis(config: CacheConfig, redis: &RedisConfig) -> Result<Self, BackendError> {
        let store = RedisStore::new(redis)?;
        let bus = RedisInvalidationBus::start(redis)?;
        Ok(Self::builder(config)
            .shared_tier(Arc::new(store))
            .invalidation_bus(Arc::new(bus))
            .build())
    }

    /// The configured default TTL.
    pub fn default_ttl(&self) -> Duration {
        self.inner.config.default_ttl
    }

    /// The configuration in use.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// Returns the value under `key`, fetching it with `fetch` when no tier has it fresh.
    ///
    /// - Read order: local tier, shared tier, `fetch`. A fetched value is written to both tiers
    ///   for `ttl` (a `NotFound` answer for the negative TTL).
    /// - Single-flight: concurrent misses on one key run one `fetch`; the others wait for it and
    ///   get its result (counted as coalesced). If the fetching caller is cancelled, one waiter
    ///   takes over.
    /// - Stale-if-error: when `fetch` fails and the last value expired no longer than the
    ///   maximum staleness ago, that value is returned as [`Freshness::Stale`]; otherwise the
    ///   error is returned (to the waiters too, hence `E: Clone`; wrap a non-`Clone` error in
    ///   an `Arc`).
    /// - Shared-tier errors never fail the lookup; they are counted and logged.
    pub async fn get_or_fetch<F, Fut, E>(
        &self,
        key: &str,
        ttl: Duration,
        fetch: F,
    ) -> Result<CacheLookup, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let result = self.resolve(key, ttl, fetch).await;
        self.inner.count_lookup(&result);
        result
    }

    async fn resolve<F, Fut, E>(&self, key: &str, ttl: Duration, fetch: F) -> Result<CacheLookup, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let inner = &*self.inner;
        let mut joined_a_flight = false;
        loop {
            if let Some(entry) = inner.local.lookup(key)
                && entry.is_fresh()
            {
                return Ok(CacheLookup::new(entry.value, Freshness::Fresh));
            }
            match inner.flights.join_or_lead(key) {
                Role::Follower(outcome) => {
                    if !joined_a_flight {
                        joined_a_flight = true;
                        Counters::bump(&inner.counters.coalesced_waits);
                    }
                    let Some(outcome) = wait_for_outcome(outcome).await else {
                        // The fetching caller was cancelled: look again, and lead if nobody does.
                        continue;
                    };
                    match &*outcome {
                        Outcome::Resolved { value, freshness } => {
                            return Ok(CacheLookup::new(value.clone(), *freshness));
                        }
                        Outcome::Stale(bytes) => {
                            return Ok(CacheLookup {
                                value: Some(bytes.clone()),
                                freshness: Freshness::Stale,
                            });
                        }
                        Outcome::Failed(error) => {
                            if let Some(error) = error.downcast_ref::<E>() {
                                return Err(error.clone());
                            }
                            // Another caller fetched this key with another error type: fetch
                            // ourselves rather than invent an error.
                            continue;
                        }
                    }
                }
                Role::Leader(guard) => return self.lead(key, ttl, fetch, guard).await,
            }
        }
    }

    async fn lead<F, Fut, E>(
        &self,
        key: &str,
        ttl: Duration,
        fetch: F,
        guard: FlightGuard<'_>,
    ) -> Result<CacheLookup, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let inner = &*self.inner;
        // A flight that ended between our lookup and taking the lead may have filled the tier.
        if let Some(entry) = inner.local.lookup(key)
            && entry.is_fresh()
        {
            guard.finish(Outcome::Resolved {
                value: entry.value.clone(),
                freshness: Freshness::Fresh,
            });
            return Ok(CacheLookup::new(entry.value, Freshness::Fresh));
        }
        let epoch = inner.epoch.load(Ordering::SeqCst);

        let mut shared_stale = None;
        // The shared tier's invalidation mark, read with the entry, so before the fetch: a
        // removal there from now on (by any instance) makes the write of what the fetch brings
        // back a no-op. `None` (unknown, the read failed, or no shared tier): no write.
        let mut shared_mark = None;
        if let Some(shared) = &inner.shared {
            match shared.get_with_mark(key).await {
                Ok((Some(entry), _)) if entry.is_fresh() => {
                    Counters::bump(&inner.counters.shared_hits);
                    let local_copy = inner.entry_for(entry.value.clone(), entry.fresh_for);
                    inner.fill_local(key, epoch, local_copy);
                    guard.finish(Outcome::Resolved {
                        value: entry.value.clone(),
                        freshness: Freshness::Fresh,
                    });
                    return Ok(CacheLookup::new(entry.value, Freshness::Fresh));
                }
                Ok((entry, mark)) => {
                    shared_mark = Some(mark);
                    if let Some(StoredEntry {
                        value: Fetched::Found(bytes),
                        ..
                    }) = entry
                    {
                        shared_stale = Some(bytes);
                    }
                }
                Err(error) => inner.shared_failed(&error),
            }
        }

        Counters::bump(&inner.counters.fetches);
        match fetch().await {
            Ok(value) => {
                let fresh_for = match value {
                    Fetched::Found(_) => ttl,
                    Fetched::NotFound => inner.config.negative_ttl,
                };
                let entry = inner.entry_for(value.clone(), fresh_for);
                let cached_locally = inner.fill_local(key, epoch, entry.clone());
                guard.finish(Outcome::Resolved {
                    value: value.clone(),
                    freshness: Freshness::Miss,
                });
                if cached_locally && let Some(mark) = shared_mark {
                    self.write_shared(key, epoch, mark, entry).await;
                }
                Ok(CacheLookup::new(value, Freshness::Miss))
            }
            Err(error) => {
                Counters::bump(&inner.counters.fetch_errors);
                // Looked up again: time passed during the fetch, and an invalidation may have
                // removed the copy we saw before.
                let fallback = match inner.local.lookup(key) {
                    Some(entry) if entry.is_fresh() => {
                        let lookup = CacheLookup::new(entry.value.clone(), Freshness::Fresh);
                        guard.finish(Outcome::Resolved {
                            value: entry.value,
                            freshness: Freshness::Fresh,
                        });
                        return Ok(lookup);
                    }
                    Some(StoredEntry {
                        value: Fetched::Found(bytes),
                        ..
                    }) => Some(bytes),
                    _ => shared_stale,
                };
                match fallback {
                    Some(bytes) => {
                        tracing::debug!(key, "refresh failed; serving the stale value");
                        guard.finish(Outcome::Stale(bytes.clone()));
                        Ok(CacheLookup {
                            value: Some(bytes),
                            freshness: Freshness::Stale,
                        })
                    }
                    None => {
                        guard.finish(Outcome::Failed(Box::new(error.clone())));
                        Err(error)
                    }
                }
            }
        }
    }

    /// Writes `entry` to the shared tier unless an invalidation ran since `epoch` (here) or
    /// `mark` (in the shared tier, by any instance) was read.
    async fn write_shared(&self, key: &str, epoch: u64, mark: Option<u64>, entry: StoredEntry) {
        let inner = &*self.inner;
        let Some(shared) = &inner.shared else {
            return;
        };
        match shared.put_unless_invalidated(key, entry, mark).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                inner.shared_failed(&error);
                return;
            }
        }
        if inner.epoch.load(Ordering::SeqCst) != epoch {
            // An invalidation ran while this value was being fetched or written: undo the
            // write, it may carry exactly the data the invalidation was meant to remove.
            if let Err(error) = shared.remove(key).await {
                inner.shared_failed(&error);
            }
        }
    }

    /// Stores `value` under `key` in both tiers for `ttl` (a `NotFound` for the negative TTL),
    /// e.g. to warm the cache. Shared-tier errors are counted and logged, not returned.
    pub async fn insert(&self, key: &str, value: Fetched, ttl: Duration) {
        let inner = &*self.inner;
        let fresh_for = match value {
            Fetched::Found(_) => ttl,
            Fetched::NotFound => inner.config.negative_ttl,
        };
        let epoch = inner.epoch.load(Ordering::SeqCst);
        let entry = inner.entry_for(value, fresh_for);
        if inner.fill_local(key, epoch, entry.clone())
            && let Some(shared) = &inner.shared
        {
            match shared.invalidation_mark().await {
                Ok(mark) => self.write_shared(key, epoch, mark, entry).await,
                Err(error) => inner.shared_failed(&error),
            }
        }
    }

    /// Drops `key` from every tier and tells the other instances. Returns how many entries went
    /// (0 or 1: a key present in several tiers counts once).
    pub async fn invalidate(&self, key: &str) -> Result<u64, CacheError> {
        self.invalidate_everywhere(Invalidation::Key(key.to_owned()))
            .await
            .map(|removed| removed.distinct)
    }

    /// Drops `prefix` and every key below it, on whole segments (`dcs:books:id:1` takes
    /// `dcs:books:id:1:cover` but not `dcs:books:id:10`), from every tier, and tells the other
    /// instances. Returns how many distinct keys went. Costs a scan of the local tier and, with
    /// Redis, a `SCAN` of the namespace.
    pub async fn invalidate_prefix(&self, prefix: &str) -> Result<u64, CacheError> {
        let prefix = SegmentPrefix::new(prefix).ok_or(CacheError::EmptyPrefix)?;
        self.invalidate_everywhere(Invalidation::Prefix(prefix.as_str().to_owned()))
            .await
            .map(|removed| removed.distinct)
    }

    /// Empties the local tier and the shared tier (every key of the namespace in Redis), and
    /// tells the other instances to empty their local tiers. Counters are kept.
    pub async fn clear(&self) -> Result<ClearReport, CacheError> {
        let removed = self.invalidate_everywhere(Invalidation::All).await?;
        Ok(ClearReport {
            local_entries: removed.local,
            shared_entries: removed.shared,
        })
    }

    async fn invalidate_everywhere(
        &self,
        invalidation: Invalidation,
    ) -> Result<Removed, CacheError> {
        let inner = &*self.inner;
        Counters::bump(&inner.counters.invalidations);
        // First bump: fills racing with the shared-tier removal are rejected or undone.
        inner.bump_epoch();
        let mut first_error = None;
        let mut shared_removed = SharedRemoved::default();
        if let Some(shared) = &inner.shared {
            match remove_from_store(shared.as_ref(), &invalidation).await {
                Ok(removed) => shared_removed = removed,
                Err(error) => {
                    inner.shared_failed(&error);
                    first_error = Some(CacheError::Shared(error));
                }
            }
        }
        // Local removal after the shared one, so a local miss in between cannot refill from
        // the shared copy that is about to go.
        let local_removed = inner.drop_local(&invalidation);
        if let Some(bus) = &inner.bus
            && let Err(error) = bus.publish(&invalidation).await
        {
            inner.shared_failed(&error);
            first_error.get_or_insert(CacheError::Bus(error));
        }
        let removed = Removed::combine(local_removed, shared_removed);
        tracing::info!(
            ?invalidation,
            removed = removed.distinct,
            local = removed.local,
            shared = removed.shared,
            failed = first_error.is_some(),
            "cache invalidation"
        );
        match first_error {
            Some(error) => Err(error),
            None => Ok(removed),
        }
    }

    /// Drops entries past their stale window from the local tier; returns how many went.
    pub fn sweep_expired(&self) -> u64 {
        self.inner.sweep_expired()
    }

    /// Starts the periodic sweeper (every `sweep_interval`). It stops when the handle is
    /// dropped or the cache is gone. Needs a Tokio runtime.
    pub fn start_sweeper(&self) -> SweeperHandle {
        let weak = Arc::downgrade(&self.inner);
        let period = self
            .inner
            .config
            .sweep_interval
            .max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                inner.sweep_expired();
            }
        });
        SweeperHandle {
            _task: AbortOnDrop(task),
        }
    }

    /// Whether a shared tier (Redis) is configured.
    pub fn has_shared_tier(&self) -> bool {
        self.inner.shared.is_some()
    }

    /// Checks that the shared tier answers now (`None` without one), for readiness probes.
    pub async fn ping_shared_tier(&self) -> Option<Result<(), BackendError>> {
        let shared = self.inner.shared.as_ref()?;
        Some(shared.ping().await)
    }

    /// Whether the local tier holds an entry under `key` (fresh, stale or not yet swept).
    pub fn local_contains(&self, key: &str) -> bool {
        self.inner.local.contains(key)
    }

    /// A snapshot of sizes and counters.
    pub fn stats(&self) -> CacheStats {
        let inner = &*self.inner;
        let counters = &inner.counters;
        let hits = Counters::read(&counters.hits);
        let misses = Counters::read(&counters.misses);
        CacheStats {
            entries: inner.local.len(),
            weight_bytes: inner.local.weight_bytes(),
            capacity_bytes: inner.local.capacity_bytes(),
            hits,
            misses,
            hit_rate: hit_rate(hits, misses),
            stale_served: Counters::read(&counters.stale_served),
            coalesced_waits: Counters::read(&counters.coalesced_waits),
            negative_hits: Counters::read(&counters.negative_hits),
            fetches: Counters::read(&counters.fetches),
            fetch_errors: Counters::read(&counters.fetch_errors),
            evictions: inner.local.evictions(),
            invalidations: Counters::read(&counters.invalidations),
            invalidated_entries: Counters::read(&counters.invalidated_entries),
            expired_swept: Counters::read(&counters.expired_swept),
            shared_tier: inner.shared.as_ref().map(|store| store.name().to_owned()),
            shared_hits: Counters::read(&counters.shared_hits),
            shared_errors: Counters::read(&counters.shared_errors),
            resyncs: Counters::read(&counters.resyncs),
        }
    }
}

/// Keeps the sweeper running; dropping it stops the sweeper.
#[derive(Debug)]
#[must_use = "the sweeper stops when its handle is dropped"]
pub struct SweeperHandle {
    _task: AbortOnDrop,
}

#[derive(Debug, Default)]
struct SharedRemoved {
    keys: Vec<String>,
    count: u64,
}

struct LocalRemoved {
    keys: Vec<String>,
    count: u64,
}

struct Removed {
    local: u64,
    shared: u64,
    distinct: u64,
}

impl Removed {
    fn combine(local: LocalRemoved, shared: SharedRemoved) -> Self {
        let distinct = if local.keys.is_empty() && shared.keys.is_empty() {
            // `All`: the tiers report counts, not names.
            local.count.max(shared.count)
        } else {
            let mut keys: HashSet<&str> = local.keys.iter().map(String::as_str).collect();
            keys.extend(shared.keys.iter().map(String::as_str));
            keys.len() as u64
        };
        Self {
            local: local.count,
            shared: shared.count,
            distinct,
        }
    }
}

async fn remove_from_store(
    store: &dyn CacheStore,
    invalidation: &Invalidation,
) -> Result<SharedRemoved, BackendError> {
    Ok(match invalidation {
        Invalidation::Key(key) => {
            let keys = if store.remove(key).await? {
                vec![key.clone()]
            } else {
                Vec::new()
            };
            SharedRemoved {
                count: keys.len() as u64,
                keys,
            }
        }
        Invalidation::Prefix(prefix) => match SegmentPrefix::new(prefix) {
            Some(prefix) => {
                let keys = store.remove_prefix(&prefix).await?;
                SharedRemoved {
                    count: keys.len() as u64,
                    keys,
                }
            }
            None => SharedRemoved::default(),
        },
        Invalidation::All => SharedRemoved {
            keys: Vec::new(),
            count: store.clear().await?,
        },
    })
}

fn spawn_bus_listener(
    inner: Weak<Inner>,
    mut events: broadcast::Receiver<BusEvent>,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "invalidation events lost; dropping the local tier");
                    BusEvent::Resync
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner.apply_remote(event);
        }
    }))
}

impl Inner {
    fn entry_for(&self, value: Fetched, fresh_for: Duration) -> StoredEntry {
        // "Not found" is cached only briefly and never served stale.
        let stale_for = match value {
            Fetched::Found(_) => self.config.max_staleness,
            Fetched::NotFound => Duration::ZERO,
        };
        StoredEntry {
            value,
            fresh_for,
            stale_for,
        }
    }

    /// Writes to the local tier unless an invalidation ran since `epoch`. Returns whether it did.
    fn fill_local(&self, key: &str, epoch: u64, entry: StoredEntry) -> bool {
        let _gate = self
            .fill_gate
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(Ordering::SeqCst) != epoch {
            tracing::debug!(key, "invalidated while fetching; result not cached");
            return false;
        }
        self.local.insert(key, entry);
        true
    }

    fn bump_epoch(&self) {
        let _gate = self
            .fill_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn drop_local(&self, invalidation: &Invalidation) -> LocalRemoved {
        let removed = {
            let _gate = self
                .fill_gate
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            self.epoch.fetch_add(1, Ordering::SeqCst);
            match invalidation {
                Invalidation::Key(key) => {
                    self.flights.detach(|flight| flight == key);
                    let keys = if self.local.remove(key) {
                        vec![key.clone()]
                    } else {
                        Vec::new()
                    };
                    LocalRemoved {
                        count: keys.len() as u64,
                        keys,
                    }
                }
                Invalidation::Prefix(prefix) => {
                    let keys = SegmentPrefix::new(prefix)
                        .map(|prefix| {
                            self.flights.detach(|flight| prefix.matches(flight));
                            self.local.remove_prefix(&prefix)
                        })
                        .unwrap_or_default();
                    LocalRemoved {
                        count: keys.len() as u64,
                        keys,
                    }
                }
                Invalidation::All => {
                    self.flights.detach(|_| true);
                    LocalRemoved {
                        keys: Vec::new(),
                        count: self.local.clear(),
                    }
                }
            }
        };
        Counters::add(&self.counters.invalidated_entries, removed.count);
        removed
    }

    fn apply_remote(&self, event: BusEvent) {
        match event {
            BusEvent::Invalidate(invalidation) => {
                Counters::bump(&self.counters.invalidations);
                let removed = self.drop_local(&invalidation);
                tracing::info!(
                    ?invalidation,
                    removed = removed.count,
                    "applied invalidation from another instance"
                );
            }
            BusEvent::Resync => {
                Counters::bump(&self.counters.resyncs);
                let removed = self.drop_local(&Invalidation::All);
                tracing::info!(
                    removed = removed.count,
                    "invalidations may have been missed; dropped the local tier"
                );
            }
        }
    }

    fn sweep_expired(&self) -> u64 {
        let removed = self.local.sweep_expired();
        Counters::add(&self.counters.expired_swept, removed);
        if removed > 0 {
            tracing::debug!(removed, "swept expired cache entries");
        }
        removed
    }

    fn shared_failed(&self, error: &BackendError) {
        Counters::bump(&self.counters.shared_errors);
        tracing::warn!(%error, "shared cache tier error; continuing without it");
    }

    fn count_lookup<E>(&self, result: &Result<CacheLookup, E>) {
        let counters = &self.counters;
        match result {
            Ok(CacheLookup {
                freshness: Freshness::Fresh,
                value,
            }) => {
                Counters::bump(&counters.hits);
                if value.is_none() {
                    Counters::bump(&counters.negative_hits);
                }
            }
            Ok(CacheLookup {
                freshness: Freshness::Stale,
                ..
            }) => {
                Counters::bump(&counters.misses);
                Counters::bump(&counters.stale_served);
            }
            Ok(CacheLookup {
                freshness: Freshness::Miss,
                ..
            })
            | Err(_) => Counters::bump(&counters.misses),
        }
    }
}
