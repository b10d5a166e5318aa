//! Named, expiring leases, so that one instance out of many does a task (for example
//! registering the webhook subscription with DCS at start-up), over a [`LeaseStore`].
//!
//! Taking a lease is one atomic store operation: create it, or take over the existing one when
//! it has expired or is already ours. Exactly one of competing callers wins; no lock is held
//! between calls. A holder that crashes simply stops renewing and its lease lapses after its
//! TTL.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::{Clock, Lease, LeaseStore, StoreError, SystemClock, now_micros};

/// Errors of the leases.
#[derive(Debug, thiserror::Error)]
pub enum LeaderLockError {
    /// The store failed.
    #[error("leader lock storage failed: {0}")]
    Storage(#[from] StoreError),
    /// The TTL does not fit a timestamp.
    #[error("lease TTL {0:?} is out of range")]
    TtlOutOfRange(Duration),
}

/// Leases over a store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LeaderLocks {
    store: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
}

impl LeaderLocks {
    /// Leases timed by the system clock.
    pub fn new(store: impl LeaseStore + 'static) -> Self {
        Self::with_clock(store, Arc::new(SystemClock))
    }

    /// Leases timed by `clock` (tests use a manual clock).
    pub fn with_clock(store: impl LeaseStore + 'static, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: Arc::new(store),
            clock,
        }
    }

    /// Takes the lease `name` for `holder` until now + `ttl`, or renews it when `holder`
    /// already has it. Returns `None` while another holder's lease is unexpired.
    pub async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, LeaderLockError> {
        let now = now_micros(self.clock.as_ref());
        let expires_at = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .ok_or(LeaderLockError::TtlOutOfRange(ttl))?;
        let lease = Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            expires_at,
        };
        Ok(self.store.acquire(&lease, now).await?.then_some(lease))
    }

    /// Gives the lease up early. Returns whether `holder` had it (an expired or foreign lease
    /// is left alone).
    pub async fn release(&self, name: &str, holder: &str) -> Result<bool, LeaderLockError> {
        Ok(self.store.release(name, holder).await?)
    }

    /// The unexpired lease on `name`, whoever holds it.
    pub async fn current(&self, name: &str) -> Result<Option<Lease>, LeaderLockError> {
        let now = now_micros(self.clock.as_ref());
        Ok(self.store.current(name, now).await?)
    }
}
