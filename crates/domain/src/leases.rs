//! Named, expiring leases, so that one instance out of many does a task (for example
//! registering the webhook subscription with DCS at start-up), over a [`LeaseStore`].
//!
//! Taking a lease is one atomic store operation: create it, or take over the existing one when
//! it has expired or is already ours. Exactly one of competing callers wins; no lock is held
//! between calls. A holder that crashes simply stops renewing and its lease lapses after its
//! TTL. [`LeaderLocks::hold`] keeps a lease renewed in the background while work runs, so the
//! TTL can be short (a crashed holder is replaced within seconds) whatever the work's length.

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

    /// Takes the lease like [`try_acquire`](Self::try_acquire) and keeps renewing it every
    /// third of `ttl` until the returned [`HeldLease`] is released or dropped. `None` while
    /// another holder's lease is unexpired. If renewing fails, the lease lapses at its last
    /// expiry (the failure is logged).
    pub async fn hold(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<HeldLease>, LeaderLockError> {
        if self.try_acquire(name, holder, ttl).await?.is_none() {
            return Ok(None);
        }
        let (locks, lease_name, lease_holder) = (self.clone(), name.to_owned(), holder.to_owned());
        let renewal = tokio::spawn(async move {
            let period = ttl / 3;
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match locks.try_acquire(&lease_name, &lease_holder, ttl).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        tracing::warn!(lease = %lease_name, "lease lost to another holder");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(lease = %lease_name, %error, "lease renewal failed");
                    }
                }
            }
        });
        Ok(Some(HeldLease {
            locks: self.clone(),
            name: name.to_owned(),
            holder: holder.to_owned(),
            renewal,
        }))
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

/// A lease kept renewed by a background task (see [`LeaderLocks::hold`]). Dropping it stops
/// the renewal (the lease then lapses after its TTL, as for a crashed holder);
/// [`release`](Self::release) gives it up at once.
#[derive(Debug)]
pub struct HeldLease {
    locks: LeaderLocks,
    name: String,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl HeldLease {
    /// Stops renewing and releases the lease. Returns whether it was still ours.
    pub async fn release(self) -> Result<bool, LeaderLockError> {
        self.renewal.abort();
        self.locks.release(&self.name, &self.holder).await
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{ManualClock, MemoryLeaseStore};

    #[tokio::test(start_paused = true)]
    async fn a_held_lease_is_renewed_and_a_crashed_holder_is_replaced_within_its_ttl() {
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::at(t0);
        let locks = LeaderLocks::with_clock(MemoryLeaseStore::new(), clock.clone());
        let ttl = Duration::from_secs(15);
        let at = |secs: i64| t0 + chrono::Duration::seconds(secs);

        let held = locks.hold("job", "a", ttl).await.unwrap().expect("free");
        // 40 s of work, longer than the TTL: the renewals keep it.
        for step in 1..=8 {
            clock.set(at(5 * step));
            tokio::time::advance(Duration::from_secs(5)).await;
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            assert!(
                locks.try_acquire("job", "b", ttl).await.unwrap().is_none(),
                "taken at {}s",
                5 * step
            );
        }
        // The holder crashes (renewal stops without a release): another takes over once the
        // last renewal's TTL has passed, not before.
        drop(held);
        clock.set(at(54));
        assert!(locks.try_acquire("job", "b", ttl).await.unwrap().is_none());
        clock.set(at(56));
        assert!(locks.try_acquire("job", "b", ttl).await.unwrap().is_some());

        // A released lease is free at once.
        let other = LeaderLocks::with_clock(MemoryLeaseStore::new(), clock.clone());
        let held = other.hold("job", "a", ttl).await.unwrap().unwrap();
        assert!(held.release().await.unwrap());
        assert!(other.try_acquire("job", "b", ttl).await.unwrap().is_some());
    }
}
