//! Counters and the serialisable snapshot served by the admin endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// A snapshot of the cache's state and counters since start (or since the process started
/// counting; `clear` does not reset counters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Entries in the local tier (including expired ones not yet swept).
    pub entries: u64,
    /// Weight of the local tier, in bytes.
    pub weight_bytes: u64,
    /// Weight bound of the local tier, in bytes.
    pub capacity_bytes: u64,
    /// Lookups answered from a tier without fetching (fresh local or shared entries, including
    /// cached "not found" answers).
    pub hits: u64,
    /// Lookups that found nothing fresh and waited for the source, as the fetching caller or as
    /// a coalesced waiter; includes lookups that ended stale or in an error.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 when there were no lookups.
    pub hit_rate: f64,
    /// Lookups answered with an expired value because the refresh failed.
    pub stale_served: u64,
    /// Lookups that joined a fetch already in flight for the same key instead of fetching.
    pub coalesced_waits: u64,
    /// Hits on a cached "not found" (part of `hits`).
    pub negative_hits: u64,
    /// Calls to a fetch function.
    pub fetches: u64,
    /// Fetch calls that returned an error.
    pub fetch_errors: u64,
    /// Entries the local tier dropped to stay within its weight bound.
    pub evictions: u64,
    /// Invalidations applied: local calls plus those received from other instances.
    pub invalidations: u64,
    /// Local entries removed by invalidations.
    pub invalidated_entries: u64,
    /// Local entries removed by the sweeper after their stale window ended.
    pub expired_swept: u64,
    /// The shared tier's name (`redis`), or `None` when the cache is local only.
    pub shared_tier: Option<String>,
    /// Shared-tier reads that found a fresh entry and so avoided a fetch (part of `hits`;
    /// callers coalesced onto such a read count as hits only).
    pub shared_hits: u64,
    /// Failed shared-tier or bus operations; reads fell back to the local tier and the source.
    pub shared_errors: u64,
    /// Times the whole local tier was dropped because invalidations may have been missed
    /// (bus reconnect or lag).
    pub resyncs: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_errors: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) invalidated_entries: AtomicU64,
    pub(crate) expired_swept: AtomicU64,
    pub(crate) shared_hits: AtomicU64,
    pub(crate) shared_errors: AtomicU64,
    pub(crate) resyncs: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub(crate) fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// `hits / (hits + misses)`, 0 when both are 0.
pub(crate) fn hit_rate(hits: u64, misses: u64) -> f64 {
    let total = hits + misses;
    if total == 0 {
        0.0
    } else {
        hits as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_rate_is_zero_without_lookups() {
        assert_eq!(hit_rate(0, 0), 0.0);
        assert_eq!(hit_rate(3, 1), 0.75);
        assert_eq!(hit_rate(0, 4), 0.0);
        assert_eq!(hit_rate(2, 0), 1.0);
    }
}
