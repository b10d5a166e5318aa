//! The in-process tier: a weight-bounded quick_cache with per-entry expiry.
//!
//! quick_cache has no notion of time, so every entry carries its own deadlines. Expired entries
//! are dropped lazily when read past their stale window, and in bulk by [`LocalStore::sweep_expired`]
//! (run periodically by the cache's sweeper).

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use quick_cache::sync::Cache as QuickCache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use crate::clock::Clock;
use crate::key::SegmentPrefix;
use crate::store::{BackendError, CacheStore, Fetched, StoredEntry};

/// Bytes charged per entry on top of key and value: the entry struct, the key's heap header and
/// quick_cache's slot and hash-table bookkeeping, rounded up. An estimate, not a measurement.
pub const ENTRY_OVERHEAD_BYTES: u64 = 128;

/// Assumed average entry weight, used only to size quick_cache's internal tables.
const ASSUMED_AVERAGE_ENTRY_BYTES: u64 = 2048;

#[derive(Debug, Clone)]
struct LocalEntry {
    value: Fetched,
    expires_at: Instant,
    stale_until: Instant,
}

impl LocalEntry {
    fn view(&self, now: Instant) -> StoredEntry {
        StoredEntry {
            value: self.value.clone(),
            fresh_for: self.expires_at.saturating_duration_since(now),
            stale_for: self
                .stale_until
                .saturating_duration_since(now.max(self.expires_at)),
        }
    }

    fn is_dead(&self, now: Instant) -> bool {
        now >= self.stale_until
    }
}

/// Weight = key length + value length + a fixed overhead, so the bound is in bytes.
#[derive(Debug, Clone, Copy)]
struct EntryWeighter;

impl Weighter<String, LocalEntry> for EntryWeighter {
    fn weight(&self, key: &String, entry: &LocalEntry) -> u64 {
        entry_weight(key, &entry.value)
    }
}

fn entry_weight(key: &str, value: &Fetched) -> u64 {
    key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD_BYTES
}

/// Counts entries quick_cache drops to stay within its weight bound.
#[derive(Debug, Clone, Default)]
struct EvictionCounter(Arc<AtomicU64>);

impl Lifecycle<String, LocalEntry> for EvictionCounter {
    type RequestState = ();

    fn on_evict(&self, _state: &mut Self::RequestState, _key: String, _entry: LocalEntry) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

type Inner = QuickCache<String, LocalEntry, EntryWeighter, DefaultHashBuilder, EvictionCounter>;

/// The in-process tier. Synchronous: a hit takes a shard read lock and clones a `Bytes`
/// (a reference-count increment); nothing is serialised and nothing awaits.
pub struct LocalStore {
    entries: Inner,
    evictions: EvictionCounter,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("entries", &self.entries.len())
            .field("weight_bytes", &self.entries.weight())
            .field("capacity_bytes", &self.entries.capacity())
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// A store bounded to about `capacity_bytes` (quick_cache rounds the bound per shard).
    pub fn new(capacity_bytes: u64, clock: Arc<dyn Clock>) -> Self {
        let capacity_bytes = capacity_bytes.max(ENTRY_OVERHEAD_BYTES);
        let estimated_items = (capacity_bytes / ASSUMED_AVERAGE_ENTRY_BYTES).clamp(64, 1 << 20);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(usize::try_from(estimated_items).unwrap_or(usize::MAX))
            .weight_capacity(capacity_bytes)
            .build()
            .expect("estimated items and weight capacity are set");
        let evictions = EvictionCounter::default();
        let entries = QuickCache::with_options(
            options,
            EntryWeighter,
            DefaultHashBuilder::default(),
            evictions.clone(),
        );
        Self {
            entries,
            evictions,
            clock,
        }
    }

    /// The entry under `key` if it can still be served (fresh or within its stale window).
    /// An entry past its stale window is removed here (lazy expiry).
    pub fn lookup(&self, key: &str) -> Option<StoredEntry> {
        let entry = self.entries.get(key)?;
        let now = self.clock.now();
        if entry.is_dead(now) {
            self.entries
                .remove_if(key, |current| current.is_dead(self.clock.now()));
            return None;
        }
        Some(entry.view(now))
    }

    /// Stores `entry`; skipped when it is already expired or heavier than one shard can hold
    /// (quick_cache would reject it anyway).
    pub fn insert(&self, key: &str, entry: StoredEntry) {
        if entry.fresh_for.is_zero() {
            return;
        }
        if entry_weight(key, &entry.value) > self.max_entry_weight() {
            tracing::debug!(
                key,
                bytes = entry.value.len(),
                "value too large for the local tier; not cached locally"
            );
            self.entries.remove(key);
            return;
        }
        let now = self.clock.now();
        let expires_at = now + entry.fresh_for;
        let stale_until = expires_at + entry.stale_for;
        self.entries.insert(
            key.to_owned(),
            LocalEntry {
                value: entry.value,
                expires_at,
                stale_until,
            },
        );
    }

    /// Removes `key`; `true` if it was there.
    pub fn remove(&self, key: &str) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Removes every key `prefix` matches and returns them. Costs a full scan of the tier
    /// (every shard is write-locked in turn): invalidations are rare, lookups are not, so no
    /// prefix index is kept on the hot path.
    pub fn remove_prefix(&self, prefix: &SegmentPrefix) -> Vec<String> {
        let matching: Vec<String> = self
            .entries
            .iter()
            .map(|(key, _)| key)
            .filter(|key| prefix.matches(key))
            .collect();
        matching
            .into_iter()
            .filter(|key| self.entries.remove(key.as_str()).is_some())
            .collect()
    }

    /// Empties the tier; returns how many entries went.
    pub fn clear(&self) -> u64 {
        let removed = Cell::new(0_u64);
        self.entries.retain(|_, _| {
            removed.set(removed.get() + 1);
            false
        });
        removed.get()
    }

    /// Drops every entry past its stale window; returns how many went. Full scan.
    pub fn sweep_expired(&self) -> u64 {
        let now = self.clock.now();
        let removed = Cell::new(0_u64);
        self.entries.retain(|_, entry| {
            let dead = entry.is_dead(now);
            if dead {
                removed.set(removed.get() + 1);
            }
            !dead
        });
        removed.get()
    }

    /// Whether an entry (servable or not yet swept) is held under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of entries held.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether the tier holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total weight of the entries held, in bytes.
    pub fn weight_bytes(&self) -> u64 {
        self.entries.weight()
    }

    /// The weight bound, in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.entries.capacity()
    }

    /// Entries dropped so far to stay within the bound.
    pub fn evictions(&self) -> u64 {
        self.evictions.0.load(Ordering::Relaxed)
    }

    /// The heaviest entry the tier accepts (one shard's capacity).
    pub fn max_entry_weight(&self) -> u64 {
        self.entries.shard_capacity()
    }
}

#[async_trait]
impl CacheStore for LocalStore {
    fn name(&self) -> &'static str {
        "local"
    }

    fn retains_stale(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> Result<Option<StoredEntry>, BackendError> {
        Ok(self.lookup(key))
    }

    async fn put(&self, key: &str, entry: StoredEntry) -> Result<(), BackendError> {
        self.insert(key, entry);
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<bool, BackendError> {
        Ok(LocalStore::remove(self, key))
    }

    async fn remove_prefix(&self, prefix: &SegmentPrefix) -> Result<Vec<String>, BackendError> {
        Ok(LocalStore::remove_prefix(self, prefix))
    }

    async fn clear(&self) -> Result<u64, BackendError> {
        Ok(LocalStore::clear(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use bytes::Bytes;
    use std::time::Duration;

    fn entry(value: &'static [u8], fresh: u64, stale: u64) -> StoredEntry {
        StoredEntry {
            value: Fetched::Found(Bytes::from_static(value)),
            fresh_for: Duration::from_secs(fresh),
            stale_for: Duration::from_secs(stale),
        }
    }

    #[test]
    fn weight_is_key_plus_value_plus_overhead() {
        let clock = Arc::new(ManualClock::new());
        let store = LocalStore::new(1024 * 1024, clock);
        store.insert("k:1", entry(b"0123456789", 10, 0));
        assert_eq!(store.weight_bytes(), 3 + 10 + ENTRY_OVERHEAD_BYTES);
        store.insert(
            "k:2",
            StoredEntry {
                value: Fetched::NotFound,
                fresh_for: Duration::from_secs(1),
                stale_for: Duration::ZERO,
            },
        );
        assert_eq!(
            store.weight_bytes(),
            3 + 10 + ENTRY_OVERHEAD_BYTES + 3 + ENTRY_OVERHEAD_BYTES
        );
    }

    #[test]
    fn lookup_reports_remaining_fresh_and_stale_time() {
        let clock = Arc::new(ManualClock::new());
        let store = LocalStore::new(1024 * 1024, clock.clone());
        store.insert("k", entry(b"v", 10, 20));
        clock.advance(Duration::from_secs(4));
        let seen = store.lookup("k").expect("entry is fresh");
        assert_eq!(seen.fresh_for, Duration::from_secs(6));
        assert_eq!(seen.stale_for, Duration::from_secs(20));
        clock.advance(Duration::from_secs(11));
        let seen = store.lookup("k").expect("entry is stale but servable");
        assert!(!seen.is_fresh());
        assert_eq!(seen.stale_for, Duration::from_secs(15));
    }

    #[test]
    fn lookup_past_the_stale_window_removes_the_entry() {
        let clock = Arc::new(ManualClock::new());
        let store = LocalStore::new(1024 * 1024, clock.clone());
        store.insert("k", entry(b"v", 1, 1));
        clock.advance(Duration::from_secs(2));
        assert!(store.contains("k"));
        assert_eq!(store.lookup("k"), None);
        assert!(!store.contains("k"));
    }

    #[test]
    fn entries_heavier_than_a_shard_are_not_stored_and_do_not_count_as_evictions() {
        let clock = Arc::new(ManualClock::new());
        let store = LocalStore::new(4096, clock);
        let too_big = Bytes::from(vec![
            7_u8;
            usize::try_from(store.max_entry_weight()).unwrap()
        ]);
        store.insert(
            "big",
            StoredEntry {
                value: Fetched::Found(too_big),
                fresh_for: Duration::from_secs(1),
                stale_for: Duration::ZERO,
            },
        );
        assert!(!store.contains("big"));
        assert_eq!(store.evictions(), 0);
    }

    #[test]
    fn clear_and_sweep_report_how_many_entries_went() {
        let clock = Arc::new(ManualClock::new());
        let store = LocalStore::new(1024 * 1024, clock.clone());
        store.insert("a", entry(b"1", 1, 0));
        store.insert("b", entry(b"2", 1, 5));
        store.insert("c", entry(b"3", 100, 0));
        clock.advance(Duration::from_secs(2));
        assert_eq!(
            store.sweep_expired(),
            1,
            "only `a` is past its stale window"
        );
        assert_eq!(store.len(), 2);
        assert_eq!(store.clear(), 2);
        assert!(store.is_empty());
    }
}
