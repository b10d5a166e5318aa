//! Counters other crates keep, in `/metrics`, read at each scrape: the cache's
//! (`lms_cache_*`, from [`Cache::stats`]) and the DCS client's (`lms_dcs_*`, from
//! `DcsApi::stats`: pool exhaustion, deadline expiry, breaker rejections, slots in use).
//!
//! `GET /api/v1/admin/cache/stats` answers for whichever instance the load balancer picks;
//! Prometheus scrapes every instance, so this is where each instance's figures are visible.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use std::sync::Arc;

use cache::{Cache, CacheStats};
use dcs_client::{DcsApi, DcsStats};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, Opts};

type Read<S> = fn(&S) -> u64;

/// Sizes of the local tier, as gauges.
const CACHE_GAUGES: &[(&str, &str, Read<CacheStats>)] = &[
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
const CACHE_COUNTERS: &[(&str, &str, Read<CacheStats>)] = &[
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

/// Slots of the DCS client in use now.
const DCS_GAUGES: &[(&str, &str, Read<DcsStats>)] = &[
    (
        "lms_dcs_api_in_flight",
        "DCS API (JSON) calls holding a connection slot.",
        |s| s.api_in_flight as u64,
    ),
    (
        "lms_dcs_streams_in_flight",
        "Streamed DCS downloads holding a slot.",
        |s| s.streams_in_flight as u64,
    ),
];

/// Why DCS calls failed without DCS answering, since start.
const DCS_COUNTERS: &[(&str, &str, Read<DcsStats>)] = &[
    (
        "lms_dcs_pool_exhausted_total",
        "DCS calls that found no free slot in time (dcs_pool_exhausted).",
        |s| s.pool_exhausted,
    ),
    (
        "lms_dcs_deadline_exceeded_total",
        "DCS calls that ran past their deadline (dcs_deadline_exceeded).",
        |s| s.deadline_exceeded,
    ),
    (
        "lms_dcs_breaker_open_rejections_total",
        "DCS calls refused at once by the open circuit breaker.",
        |s| s.breaker_open_rejections,
    ),
];

/// A Prometheus collector over statistics another crate keeps: gauges and running totals read
/// from one snapshot per scrape.
pub struct StatsCollector<S> {
    read: Box<dyn Fn() -> Option<S> + Send + Sync>,
    gauges: Vec<(IntGauge, Read<S>)>,
    counters: Vec<(IntCounter, Read<S>)>,
    /// Setting the values and collecting them is one step per scrape.
    scrape: Mutex<()>,
}

impl<S> fmt::Debug for StatsCollector<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsCollector").finish_non_exhaustive()
    }
}

/// The cache's figures (`lms_cache_*`).
pub fn cache_collector(cache: Cache) -> StatsCollector<CacheStats> {
    StatsCollector::new(
        Box::new(move || Some(cache.stats())),
        CACHE_GAUGES,
        CACHE_COUNTERS,
    )
}

/// The DCS client's figures (`lms_dcs_*`); nothing when the client keeps none.
pub fn dcs_collector(dcs: Arc<dyn DcsApi>) -> StatsCollector<DcsStats> {
    StatsCollector::new(Box::new(move || dcs.stats()), DCS_GAUGES, DCS_COUNTERS)
}

impl<S> StatsCollector<S> {
    fn new(
        read: Box<dyn Fn() -> Option<S> + Send + Sync>,
        gauges: &[(&str, &str, Read<S>)],
        counters: &[(&str, &str, Read<S>)],
    ) -> Self {
        let gauges = gauges
            .iter()
            .map(|(name, help, read)| {
                let gauge =
                    IntGauge::with_opts(Opts::new(*name, *help)).expect("valid gauge definition");
                (gauge, *read)
            })
            .collect();
        let counters = counters
            .iter()
            .map(|(name, help, read)| {
                let counter = IntCounter::with_opts(Opts::new(*name, *help))
                    .expect("valid counter definition");
                (counter, *read)
            })
            .collect();
        Self {
            read,
            gauges,
            counters,
            scrape: Mutex::new(()),
        }
    }
}

impl<S> Collector for StatsCollector<S> {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges
            .iter()
            .flat_map(|(gauge, _)| gauge.desc())
            .chain(self.counters.iter().flat_map(|(counter, _)| counter.desc()))
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(stats) = (self.read)() else {
            return Vec::new();
        };
        let mut families = Vec::with_capacity(self.gauges.len() + self.counters.len());
        for (gauge, read) in &self.gauges {
            gauge.set(i64::try_from(read(&stats)).unwrap_or(i64::MAX));
            families.extend(gauge.collect());
        }
        for (counter, read) in &self.counters {
            // The source keeps the running totals; the counter mirrors them.
            counter.reset();
            counter.inc_by(read(&stats));
            families.extend(counter.collect());
        }
        families
    }
}
