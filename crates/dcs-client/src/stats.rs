//! Counters of the client's protective failures, for metrics: [`DcsClient::stats`](crate::DcsClient::stats).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the client's counters (since it was built; shared by its clones) and of its
/// connection budgets. Counters only grow: export them as counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DcsStats {
    /// Calls that failed with [`DcsError::PoolExhausted`](crate::DcsError::PoolExhausted).
    pub pool_exhausted: u64,
    /// Calls that failed with [`DcsError::DeadlineExceeded`](crate::DcsError::DeadlineExceeded).
    pub deadline_exceeded: u64,
    /// Calls refused by the open circuit breaker
    /// ([`DcsError::CircuitOpen`](crate::DcsError::CircuitOpen)).
    pub breaker_open_rejections: u64,
    /// API (JSON) calls holding a connection slot now (at most `max_connections_per_host`).
    pub api_in_flight: usize,
    /// Streamed downloads holding a slot now (at most `max_streams`).
    pub streams_in_flight: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pool_exhausted: AtomicU64,
    deadline_exceeded: AtomicU64,
    breaker_open_rejections: AtomicU64,
}

impl Counters {
    /// Counts a call's final error, if it is one of the counted kinds.
    pub(crate) fn record(&self, err: &crate::DcsError) {
        use crate::DcsError;
        let counter = match err {
            DcsError::PoolExhausted { .. } => &self.pool_exhausted,
            DcsError::DeadlineExceeded { .. } => &self.deadline_exceeded,
            DcsError::CircuitOpen { .. } => &self.breaker_open_rejections,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, api_in_flight: usize, streams_in_flight: usize) -> DcsStats {
        DcsStats {
            pool_exhausted: self.pool_exhausted.load(Ordering::Relaxed),
            deadline_exceeded: self.deadline_exceeded.load(Ordering::Relaxed),
            breaker_open_rejections: self.breaker_open_rejections.load(Ordering::Relaxed),
            api_in_flight,
            streams_in_flight,
        }
    }
}
