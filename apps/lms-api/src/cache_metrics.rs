//! The cache's counters in `/metrics` (`lms_cache_*`), read from [`Cache::stats`] at each
//! scrape.
//!
//! `GET /api/v1/admin/cache/stats` answers for whichever instance the load balancer picks;
//! Prometheus scrapes every instance, so this is where each instance's hit rate is visible.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use cache::{Cache, CacheStats};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, Opts};

type Read = fn(&CacheStats) -> u64;

/// Sizes of the local tier, as gauges.
const GAUGES: &[(&str, &str, Read)] = &[
    (
        "lms_cache_entries",
        "Entries in the in-process cache tier (expired ones not yet swept included).",
        |s| s.entries,
    ),
    (
        "lms_cache_weight_bytes",
        "Weight of the in-process cache tier in bytes.",
        |s| s.weight_bytes,
    ),
    (
        "lms_cache_capacity_bytes",
        "Weight bound of the in-process cache tier in bytes.",
        |s| s.capacity_bytes,
    ),
];

/// Counters since start, as counters.
const COUNTERS: &[(&str, &str, Read)] = &[
    (
        "lms_cache_hits_total",
        "Lookups answered from a cache tier.",
        |s| s.hits,
    ),
    (
        "lms_cache_misses_total",
        "Lookups that waited for DCS (stale answers and errors included).",
        |s| s.misses,
    ),
    (
        "lms_cache_stale_served_total",
        "Lookups answered with an expired value because DCS failed.",
        |s| s.stale_served,
    ),
    (
        "lms_cache_coalesced_waits_total",
        "Lookups that joined a fetch already in flight.",
        |s| s.coalesced_waits,
    ),
    (
        "lms_cache_negative_hits_total",
        "Hits on a cached \"not found\".",
        |s| s.negative_hits,
    ),
    ("lms_cache_fetches_total", "Fetches from DCS.", |s| {
        s.fetches
    }),
    (
        "lms_cache_fetch_errors_total",
        "Fetches from DCS that failed.",
        |s| s.fetch_errors,
    ),
    (
        "lms_cache_evictions_total",
        "Entries dropped to stay within the weight bound.",
        |s| s.evictions,
    ),
    (
        "lms_cache_invalidations_total",
        "Invalidations applied (local and from other instances).",
        |s| s.invalidations,
    ),
    (
        "lms_cache_invalidated_entries_total",
        "Local entries removed by invalidations.",
        |s| s.invalidated_entries,
    ),
    (
        "lms_cache_expired_swept_total",
        "Local entries removed by the sweeper.",
        |s| s.expired_swept,
    ),
    (
        "lms_cache_shared_hits_total",
        "Lookups answered from the shared Redis tier.",
        |s| s.shared_hits,
    ),
    (
        "lms_cache_shared_errors_total",
        "Failed Redis operations (reads fell back to the local tier and DCS).",
        |s| s.shared_errors,
    ),
    (
        "lms_cache_resyncs_total",
        "Times the local tier was dropped because invalidations may have been missed.",
        |s| s.resyncs,
    ),
];

/// A Prometheus collector over a [`Cache`].
pub struct CacheCollector {
    cache: Cache,
    gauges: Vec<(IntGauge, Read)>,
    counters: Vec<(IntCounter, Read)>,
    /// Setting the values and collecting them is one step per scrape.
    scrape: Mutex<()>,
}

impl fmt::Debug for CacheCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheCollector").finish_non_exhaustive()
    }
}

impl CacheCollector {
    /// A collector reading `cache`.
    pub fn new(cache: Cache) -> Self {
        let gauges = GAUGES
            .iter()
            .map(|(name, help, read)| {
                let gauge =
                    IntGauge::with_opts(Opts::new(*name, *help)).expect("valid gauge definition");
                (gauge, *read)
            })
            .collect();
        let counters = COUNTERS
            .iter()
            .map(|(name, help, read)| {
                let counter = IntCounter::with_opts(Opts::new(*name, *help))
                    .expect("valid counter definition");
                (counter, *read)
            })
            .collect();
        Self {
            cache,
            gauges,
            counters,
            scrape: Mutex::new(()),
        }
    }
}

impl Collector for CacheCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges
            .iter()
            .flat_map(|(gauge, _)| gauge.desc())
            .chain(self.counters.iter().flat_map(|(counter, _)| counter.desc()))
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = self.cache.stats();
        let mut families = Vec::with_capacity(self.gauges.len() + self.counters.len());
        for (gauge, read) in &self.gauges {
            gauge.set(i64::try_from(read(&stats)).unwrap_or(i64::MAX));
            families.extend(gauge.collect());
        }
        for (counter, read) in &self.counters {
            // The cache keeps the running totals; the counter mirrors them.
            counter.reset();
            counter.inc_by(read(&stats));
            families.extend(counter.collect());
        }
        families
    }
}
