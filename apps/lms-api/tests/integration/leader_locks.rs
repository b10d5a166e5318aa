//! Leader leases on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lms_api::leader_lock::LeaderLocks;

use crate::support::{ManualClock, TestDatabase, on_both_databases};

const TTL: Duration = Duration::from_secs(30);

fn start() -> DateTime<Utc> {
    // A fractional second, so text timestamps (SQLite) are compared with sub-second parts.
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::microseconds(250_000)
}

async fn acquire_contend_expire_release(database: TestDatabase) {
    let clock = ManualClock::at(start());
    let locks = LeaderLocks::with_clock(database.db.clone(), clock.clone());

    let lease = locks
        .try_acquire("webhook-registration", "instance-a", TTL)
        .await
        .unwrap()
        .expect("free lease is taken");
    assert_eq!(lease.holder, "instance-a");
    assert_eq!(lease.expires_at, start() + chrono::Duration::seconds(30));
    assert_eq!(
        locks.current("webhook-registration").await.unwrap(),
        Some(lease.clone())
    );

    // Another instance cannot take a live lease, up to the last microsecond.
    assert_eq!(
        locks
            .try_acquire("webhook-registration", "instance-b", TTL)
            .await
            .unwrap(),
        None
    );
    clock.set(lease.expires_at - chrono::Duration::microseconds(1));
    assert_eq!(
        locks
            .try_acquire("webhook-registration", "instance-b", TTL)
            .await
            .unwrap(),
        None
    );
    // Other names are independent.
    assert!(
        locks
            .try_acquire("cache-warmup", "instance-b", TTL)
            .await
            .unwrap()
            .is_some()
    );

    // Once expired, it can be taken over.
    clock.set(lease.expires_at);
    assert_eq!(locks.current("webhook-registration").await.unwrap(), None);
    let taken_over = locks
        .try_acquire("webhook-registration", "instance-b", TTL)
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
            .try_acquire("webhook-registration", "instance-a", TTL)
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
            .try_acquire("webhook-registration", "instance-a", TTL)
            .await
            .unwrap()
            .is_some()
    );
}
on_both_databases!(acquire_contend_expire_release);

async fn holder_renews_its_own_lease(database: TestDatabase) {
    let clock = ManualClock::at(start());
    let locks = LeaderLocks::with_clock(database.db.clone(), clock.clone());

    let first = locks.try_acquire("job", "a", TTL).await.unwrap().unwrap();
    clock.set(start() + chrono::Duration::seconds(20));
    let renewed = locks.try_acquire("job", "a", TTL).await.unwrap().unwrap();
    assert_eq!(renewed.expires_at, start() + chrono::Duration::seconds(50));
    assert!(renewed.expires_at > first.expires_at);

    // Past the first expiry but before the renewed one, others are still kept out.
    clock.set(start() + chrono::Duration::seconds(40));
    assert!(locks.try_acquire("job", "b", TTL).await.unwrap().is_none());
}
on_both_databases!(holder_renews_its_own_lease);

async fn concurrent_contenders_have_exactly_one_winner(database: TestDatabase) {
    let locks = LeaderLocks::new(database.db.clone());
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
on_both_databases!(concurrent_contenders_have_exactly_one_winner);

#[actix_web::test]
async fn release_of_an_unknown_lease_is_false() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .unwrap();
    let locks = LeaderLocks::with_clock(database.db.clone(), Arc::new(lms_api::clock::SystemClock));
    assert!(!locks.release("never-taken", "anyone").await.unwrap());
}
