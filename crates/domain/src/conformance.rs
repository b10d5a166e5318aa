//! The ports' conformance suites: every implementation of [`DeliveryStore`] and [`LeaseStore`]
//! passes them (the in-memory ones in this crate's tests, the SQL ones on SQLite and PostgreSQL
//! in the app's). Enabled by the `testing` feature. Each suite panics on a failed assertion.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::leases::LeaderLocks;
use crate::memory::ManualClock;
use crate::ports::{DeliveryRecord, DeliveryStatus, DeliveryStore, LeaseStore, SystemClock};
use crate::webhook_log::{Claim, DeliveryLog, NewDelivery};

// ----- delivery store ---------------------------------------------------------------------------

const CLAIM_LEASE: Duration = Duration::from_secs(4);
const DIGEST: &str = "7b74c8c719acd87a0c71d4302f87ffec162d6dfc689c8735558b347746162052";
const PAYLOAD: &str =
    r#"{"event":"book.created","timestamp":"2026-11-22T09:32:53.499233Z","data":{"id":1}}"#;

fn start() -> DateTime<Utc> {
    // A fractional second, so text timestamps (SQLite) carry sub-second parts.
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::microseconds(123_456)
}

fn delivery() -> NewDelivery<'static> {
    NewDelivery {
        body_sha256: DIGEST,
        event_type: "book.created",
        payload: PAYLOAD,
    }
}

fn new_record(claim: Claim) -> DeliveryRecord {
    match claim {
        Claim::New(record) => record,
        other => panic!("expected a new claim, got {other:?}"),
    }
}

/// The claim protocol over `store`: new, in progress, failed, retried, processed, done.
pub async fn claim_lifecycle(store: impl DeliveryStore + 'static) {
    let clock = ManualClock::at(start());
    let events = DeliveryLog::with_clock(store, clock.clone());

    let record = new_record(events.claim(&delivery(), CLAIM_LEASE).await.unwrap());
    assert_eq!(record.status, DeliveryStatus::Received);
    assert_eq!(record.received_at, start());
    assert_eq!(record.payload, PAYLOAD);
    assert_eq!(events.find(record.id).await.unwrap(), Some(record.clone()));

    // While it is processed, an identical delivery is told so.
    match events.claim(&delivery(), CLAIM_LEASE).await.unwrap() {
        Claim::InProgress(existing) => assert_eq!(existing.id, record.id),
        other => panic!("expected in progress, got {other:?}"),
    }

    // Failed: the next delivery gets it back, with what went wrong before.
    clock.set(start() + chrono::Duration::seconds(1));
    assert!(events.mark_failed(&record, "redis down").await.unwrap());
    let failed = events.find(record.id).await.unwrap().unwrap();
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("redis down"));
    assert_eq!(
        failed.processed_at,
        Some(start() + chrono::Duration::seconds(1))
    );

    clock.set(start() + chrono::Duration::seconds(2));
    let retried = match events.claim(&delivery(), CLAIM_LEASE).await.unwrap() {
        Claim::Retry {
            record: retried,
            previous_status,
            previous_error,
        } => {
            assert_eq!(previous_status, DeliveryStatus::Failed);
            assert_eq!(previous_error.as_deref(), Some("redis down"));
            retried
        }
        other => panic!("expected a retry, got {other:?}"),
    };
    assert_eq!(retried.id, record.id, "same event, same id");
    assert_eq!(retried.status, DeliveryStatus::Received);
    assert_eq!(retried.received_at, start() + chrono::Duration::seconds(2));
    assert_eq!(events.find(record.id).await.unwrap(), Some(retried.clone()));

    // The first claim's token is spent: only the retry can finish it.
    assert!(!events.mark_processed(&record).await.unwrap());
    assert!(events.mark_processed(&retried).await.unwrap());
    let processed = events.find(record.id).await.unwrap().unwrap();
    assert_eq!(processed.status, DeliveryStatus::Processed);
    assert_eq!(processed.error, None);

    // Done: acknowledged from now on, whatever the time.
    clock.set(start() + chrono::Duration::days(1));
    match events.claim(&delivery(), CLAIM_LEASE).await.unwrap() {
        Claim::Done(done) => assert_eq!(done, processed),
        other => panic!("expected done, got {other:?}"),
    }
    assert!(!events.mark_failed(&retried, "twice").await.unwrap());
    assert_eq!(
        events
            .count_with_status(DeliveryStatus::Processed)
            .await
            .unwrap(),
        1
    );
}

/// A `received` record older than the lease is taken over, once.
pub async fn abandoned_claims_are_taken_over_after_the_lease(store: impl DeliveryStore + 'static) {
    let clock = ManualClock::at(start());
    let events = DeliveryLog::with_clock(store, clock.clone());
    let abandoned = new_record(events.claim(&delivery(), CLAIM_LEASE).await.unwrap());

    clock.set(
        start() + chrono::Duration::from_std(CLAIM_LEASE).unwrap()
            - chrono::Duration::microseconds(1),
    );
    assert!(matches!(
        events.claim(&delivery(), CLAIM_LEASE).await.unwrap(),
        Claim::InProgress(_)
    ));

    clock.set(start() + chrono::Duration::from_std(CLAIM_LEASE).unwrap());
    let taken = match events.claim(&delivery(), CLAIM_LEASE).await.unwrap() {
        Claim::Retry {
            record,
            previous_status,
            previous_error,
        } => {
            assert_eq!(previous_status, DeliveryStatus::Received);
            assert_eq!(previous_error, None);
            record
        }
        other => panic!("expected a take-over, got {other:?}"),
    };
    assert_eq!(taken.id, abandoned.id);

    // The new claim is live again: nobody else takes it right away.
    assert!(matches!(
        events.claim(&delivery(), CLAIM_LEASE).await.unwrap(),
        Claim::InProgress(_)
    ));
    assert!(!events.mark_processed(&abandoned).await.unwrap());
    assert!(events.mark_ignored(&taken).await.unwrap());
    assert_eq!(
        events.find(taken.id).await.unwrap().unwrap().status,
        DeliveryStatus::Ignored
    );
}

/// Of concurrent claims (and concurrent retries), exactly one owns the delivery.
pub async fn concurrent_claims_have_one_owner(store: impl DeliveryStore + 'static) {
    let events = DeliveryLog::new(store);

    let new = delivery();
    let claims = futures_util::future::join_all((0..8).map(|_| events.claim(&new, CLAIM_LEASE)))
        .await
        .into_iter()
        .map(|claim| claim.expect("no database error under contention"))
        .collect::<Vec<_>>();
    let owners = claims
        .iter()
        .filter(|claim| matches!(claim, Claim::New(_)))
        .count();
    assert_eq!(owners, 1, "{claims:?}");
    assert!(
        claims
            .iter()
            .all(|claim| matches!(claim, Claim::New(_) | Claim::InProgress(_)))
    );

    // Concurrent retries of a failed delivery: exactly one processes it again.
    let Some(Claim::New(owner)) = claims.into_iter().find(|c| matches!(c, Claim::New(_))) else {
        unreachable!("one owner was counted");
    };
    assert!(events.mark_failed(&owner, "boom").await.unwrap());
    let retries = futures_util::future::join_all((0..8).map(|_| events.claim(&new, CLAIM_LEASE)))
        .await
        .into_iter()
        .map(|claim| claim.expect("no database error under contention"))
        .collect::<Vec<_>>();
    let retried = retries
        .iter()
        .filter(|claim| matches!(claim, Claim::Retry { .. }))
        .count();
    assert_eq!(retried, 1, "{retries:?}");
    assert!(
        retries
            .iter()
            .all(|claim| matches!(claim, Claim::Retry { .. } | Claim::InProgress(_)))
    );
}

/// Deliveries with other bytes are other records.
pub async fn digests_are_independent(store: impl DeliveryStore + 'static) {
    let events = DeliveryLog::new(store);
    let first = new_record(events.claim(&delivery(), CLAIM_LEASE).await.unwrap());
    let other_digest = "0".repeat(64);
    let second = new_record(
        events
            .claim(
                &NewDelivery {
                    body_sha256: &other_digest,
                    event_type: "book.updated",
                    payload: "{}",
                },
                CLAIM_LEASE,
            )
            .await
            .unwrap(),
    );
    assert_ne!(first.id, second.id);
    assert_eq!(
        events.find_by_digest(&other_digest).await.unwrap(),
        Some(second)
    );
    assert_eq!(
        events
            .count_with_status(DeliveryStatus::Received)
            .await
            .unwrap(),
        2
    );
}

// ----- lease store ------------------------------------------------------------------------------

const LEASE_TTL: Duration = Duration::from_secs(30);

fn lease_start() -> DateTime<Utc> {
    // A fractional second, so text timestamps (SQLite) are compared with sub-second parts.
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::microseconds(250_000)
}

/// Take, contend, expire, take over, release.
pub async fn acquire_contend_expire_release(store: impl LeaseStore + 'static) {
    let clock = ManualClock::at(lease_start());
    let locks = LeaderLocks::with_clock(store, clock.clone());

    let lease = locks
        .try_acquire("webhook-registration", "instance-a", LEASE_TTL)
        .await
        .unwrap()
        .expect("free lease is taken");
    assert_eq!(lease.holder, "instance-a");
    assert_eq!(
        lease.expires_at,
        lease_start() + chrono::Duration::seconds(30)
    );
    assert_eq!(
        locks.current("webhook-registration").await.unwrap(),
        Some(lease.clone())
    );

    // Another instance cannot take a live lease, up to the last microsecond.
    assert_eq!(
        locks
            .try_acquire("webhook-registration", "instance-b", LEASE_TTL)
            .await
            .unwrap(),
        None
    );
    clock.set(lease.expires_at - chrono::Duration::microseconds(1));
    assert_eq!(
        locks
            .try_acquire("webhook-registration", "instance-b", LEASE_TTL)
            .await
            .unwrap(),
        None
    );
    // Other names are independent.
    assert!(
        locks
            .try_acquire("cache-warmup", "instance-b", LEASE_TTL)
            .await
            .unwrap()
            .is_some()
    );

    // Once expired, it can be taken over.
    clock.set(lease.expires_at);
    assert_eq!(locks.current("webhook-registration").await.unwrap(), None);
    let taken_over = locks
        .try_acquire("webhook-registration", "instance-b", LEASE_TTL)
        .await
        .unwrap()
        .expect("expired lease is taken over");
    assert_eq!(taken_over.holder, "instance-b");
    assert_eq!(
        locks.current("webhook-registration").await.unwrap(),
        Some(taken_over.clone())
    );

    // The former holder can neither renew nor release it.
    assert_eq!(
        locks
            .try_acquire("webhook-registration", "instance-a", LEASE_TTL)
            .await
            .unwrap(),
        None
    );
    assert!(
        !locks
            .release("webhook-registration", "instance-a")
            .await
            .unwrap()
    );
    assert_eq!(
        locks.current("webhook-registration").await.unwrap(),
        Some(taken_over)
    );

    // The holder releases it and it is free at once.
    assert!(
        locks
            .release("webhook-registration", "instance-b")
            .await
            .unwrap()
    );
    assert_eq!(locks.current("webhook-registration").await.unwrap(), None);
    assert!(
        locks
            .try_acquire("webhook-registration", "instance-a", LEASE_TTL)
            .await
            .unwrap()
            .is_some()
    );
}

/// The holder renews; others stay out until the renewed expiry.
pub async fn holder_renews_its_own_lease(store: impl LeaseStore + 'static) {
    let clock = ManualClock::at(lease_start());
    let locks = LeaderLocks::with_clock(store, clock.clone());

    let first = locks
        .try_acquire("job", "a", LEASE_TTL)
        .await
        .unwrap()
        .unwrap();
    clock.set(lease_start() + chrono::Duration::seconds(20));
    let renewed = locks
        .try_acquire("job", "a", LEASE_TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        renewed.expires_at,
        lease_start() + chrono::Duration::seconds(50)
    );
    assert!(renewed.expires_at > first.expires_at);

    // Past the first expiry but before the renewed one, others are still kept out.
    clock.set(lease_start() + chrono::Duration::seconds(40));
    assert!(
        locks
            .try_acquire("job", "b", LEASE_TTL)
            .await
            .unwrap()
            .is_none()
    );
}

/// Of concurrent contenders, exactly one wins.
pub async fn concurrent_contenders_have_exactly_one_winner(store: impl LeaseStore + 'static) {
    let locks = LeaderLocks::new(store);
    let attempts = (0..8).map(|i| {
        let locks = locks.clone();
        async move {
            locks
                .try_acquire(
                    "startup-task",
                    &format!("instance-{i}"),
                    Duration::from_secs(60),
                )
                .await
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let winners: Vec<_> = results
        .into_iter()
        .filter_map(|result| result.expect("no database error under contention"))
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    let current = locks.current("startup-task").await.unwrap().unwrap();
    assert_eq!(current.holder, winners[0].holder);
}

/// Releasing a lease nobody took is `false`.
pub async fn release_of_an_unknown_lease_is_false(store: impl LeaseStore + 'static) {
    let locks = LeaderLocks::with_clock(store, Arc::new(SystemClock));
    assert!(!locks.release("never-taken", "anyone").await.unwrap());
}

#[cfg(test)]
mod memory_adapters {
    use crate::memory::{MemoryDeliveryStore, MemoryLeaseStore};

    #[tokio::test]
    async fn claim_lifecycle() {
        super::claim_lifecycle(MemoryDeliveryStore::new()).await;
    }

    #[tokio::test]
    async fn abandoned_claims_are_taken_over_after_the_lease() {
        super::abandoned_claims_are_taken_over_after_the_lease(MemoryDeliveryStore::new()).await;
    }

    #[tokio::test]
    async fn concurrent_claims_have_one_owner() {
        super::concurrent_claims_have_one_owner(MemoryDeliveryStore::new()).await;
    }

    #[tokio::test]
    async fn digests_are_independent() {
        super::digests_are_independent(MemoryDeliveryStore::new()).await;
    }

    #[tokio::test]
    async fn acquire_contend_expire_release() {
        super::acquire_contend_expire_release(MemoryLeaseStore::new()).await;
    }

    #[tokio::test]
    async fn holder_renews_its_own_lease() {
        super::holder_renews_its_own_lease(MemoryLeaseStore::new()).await;
    }

    #[tokio::test]
    async fn concurrent_contenders_have_exactly_one_winner() {
        super::concurrent_contenders_have_exactly_one_winner(MemoryLeaseStore::new()).await;
    }

    #[tokio::test]
    async fn release_of_an_unknown_lease_is_false() {
        super::release_of_an_unknown_lease_is_false(MemoryLeaseStore::new()).await;
    }
}
