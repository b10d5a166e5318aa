//! The ports' conformance suites: every implementation of [`DeliveryStore`], [`LeaseStore`]
//! and [`MaterialRepository`] passes them (the in-memory ones in this crate's tests, the SQL
//! ones on SQLite and PostgreSQL in the app's). Enabled by the `testing` feature. Each suite
//! panics on a failed assertion.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::leases::LeaderLocks;
use crate::materials::{
    MaterialChanges, MaterialKind, MaterialPage, MaterialQuery, MaterialRecord, Quota,
};
use crate::memory::ManualClock;
use crate::ports::{
    DeliveryRecord, DeliveryStatus, DeliveryStore, LeaseStore, MaterialRepository, SystemClock,
};
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

/// Pruning removes exactly the deliveries received before the retention window, whatever
/// their status, and a pruned delivery sent again is logged afresh.
pub async fn old_deliveries_are_pruned(store: impl DeliveryStore + 'static) {
    let clock = ManualClock::at(start());
    let events = DeliveryLog::with_clock(store, clock.clone());
    let old = new_record(events.claim(&delivery(), CLAIM_LEASE).await.unwrap());
    assert!(events.mark_processed(&old).await.unwrap());
    clock.set(start() + chrono::Duration::hours(1));
    let other_digest = "1".repeat(64);
    let recent = NewDelivery {
        body_sha256: &other_digest,
        event_type: "book.updated",
        payload: "{}",
    };
    let recent = new_record(events.claim(&recent, CLAIM_LEASE).await.unwrap());

    // Retention of two hours at start + 1 h: nothing is old enough.
    assert_eq!(events.prune(Duration::from_secs(7200)).await.unwrap(), 0);
    // 30 minutes: the first delivery (received at start) goes, the second stays.
    assert_eq!(events.prune(Duration::from_secs(1800)).await.unwrap(), 1);
    assert_eq!(events.find(old.id).await.unwrap(), None);
    assert_eq!(events.find(recent.id).await.unwrap(), Some(recent.clone()));
    // Sent again, the pruned delivery is a new record.
    let again = new_record(events.claim(&delivery(), CLAIM_LEASE).await.unwrap());
    assert_ne!(again.id, old.id);
    // An in-progress claim older than the window is pruned too.
    clock.set(start() + chrono::Duration::days(2));
    assert_eq!(events.prune(Duration::from_secs(86_400)).await.unwrap(), 2);
    assert_eq!(
        events
            .count_with_status(DeliveryStatus::Received)
            .await
            .unwrap(),
        0
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

// ----- teacher materials ------------------------------------------------------------------------

/// The default quota the suites pass where the port asks for one.
const DEFAULT_QUOTA: u64 = 1_000_000;

fn materials_start() -> DateTime<Utc> {
    // Microsecond precision (as `ports::now_micros` gives), with a fractional second so text
    // timestamps (SQLite) carry sub-second parts.
    Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap() + chrono::Duration::microseconds(654_321)
}

fn at(seconds: i64) -> DateTime<Utc> {
    materials_start() + chrono::Duration::seconds(seconds)
}

/// A file of `kind` and `size` bytes, created (and last updated) at `created_at`.
fn file(teacher: Uuid, kind: MaterialKind, size: u64, created_at: DateTime<Utc>) -> MaterialRecord {
    let id = Uuid::new_v4();
    let folder = kind.folder().expect("a file kind");
    MaterialRecord {
        id,
        teacher_id: teacher,
        name: format!("{kind} {id}"),
        kind,
        storage_key: Some(format!("{teacher}/{folder}/{id}")),
        file_size: Some(size),
        mime_type: Some("application/octet-stream".to_owned()),
        original_filename: Some(format!("{id}.bin")),
        url: None,
        text_content: None,
        created_at,
        updated_at: created_at,
    }
}

/// A link (`MaterialKind::Url`) or a note (`MaterialKind::TextNote`).
fn entry(teacher: Uuid, kind: MaterialKind, created_at: DateTime<Utc>) -> MaterialRecord {
    let id = Uuid::new_v4();
    MaterialRecord {
        id,
        teacher_id: teacher,
        name: format!("{kind} {id}"),
        kind,
        storage_key: None,
        file_size: None,
        mime_type: None,
        original_filename: None,
        url: (kind == MaterialKind::Url).then(|| format!("https://example.org/{id}")),
        text_content: (kind == MaterialKind::TextNote).then(|| format!("note {id}")),
        created_at,
        updated_at: created_at,
    }
}

fn everything() -> MaterialQuery {
    MaterialQuery {
        kind: None,
        offset: 0,
        limit: 1000,
    }
}

/// Stores a file the way an upload does: reserve its size, then insert it.
async fn upload(store: &dyn MaterialRepository, record: &MaterialRecord) {
    let size = record.file_size.unwrap_or(0);
    assert!(
        store
            .reserve(record.teacher_id, size, DEFAULT_QUOTA)
            .await
            .unwrap()
            .is_some(),
        "the reservation for {} fits",
        record.id
    );
    store.insert(record, 0).await.unwrap();
}

async fn used(store: &dyn MaterialRepository, teacher: Uuid) -> u64 {
    store
        .quota(teacher, DEFAULT_QUOTA)
        .await
        .unwrap()
        .used_bytes
}

/// Insert, read, list, edit and delete one teacher's materials; another teacher sees none.
pub async fn materials_crud_and_scoping(store: impl MaterialRepository + 'static) {
    let teacher = Uuid::new_v4();
    let stranger = Uuid::new_v4();
    let note = entry(teacher, MaterialKind::TextNote, at(0));
    let document = file(teacher, MaterialKind::Document, 1234, at(1));

    assert_eq!(store.get(teacher, note.id).await.unwrap(), None);
    store.insert(&note, 0).await.unwrap();
    upload(&store, &document).await;
    assert_eq!(
        store.get(teacher, note.id).await.unwrap(),
        Some(note.clone())
    );
    assert_eq!(
        store.get(teacher, document.id).await.unwrap(),
        Some(document.clone())
    );
    assert_eq!(
        store.list(teacher, &everything()).await.unwrap(),
        MaterialPage {
            items: vec![document.clone(), note.clone()],
            total: 2,
        }
    );
    assert_eq!(
        store.list(stranger, &everything()).await.unwrap(),
        MaterialPage {
            items: vec![],
            total: 0,
        }
    );
    assert_eq!(store.get(stranger, note.id).await.unwrap(), None);

    let changes = MaterialChanges {
        name: Some("Lesson plan".to_owned()),
        text_content: Some("Read chapter 2".to_owned()),
        url: None,
        updated_at: at(10),
    };
    let edited = store
        .update(teacher, note.id, &changes)
        .await
        .unwrap()
        .expect("the note exists");
    let expected = MaterialRecord {
        name: "Lesson plan".to_owned(),
        text_content: Some("Read chapter 2".to_owned()),
        updated_at: at(10),
        ..note.clone()
    };
    assert_eq!(edited, expected);
    assert_eq!(store.get(teacher, note.id).await.unwrap(), Some(expected));

    assert_eq!(
        store.delete(teacher, document.id).await.unwrap(),
        Some(document.clone())
    );
    assert_eq!(store.get(teacher, document.id).await.unwrap(), None);
    assert_eq!(store.delete(teacher, document.id).await.unwrap(), None);
    assert_eq!(
        store.update(teacher, document.id, &changes).await.unwrap(),
        None
    );
    let page = store.list(teacher, &everything()).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, note.id);
    assert_eq!(used(&store, teacher).await, 0);
}

/// Reservations fit or change nothing; releases never go below zero; an admin's quota sticks.
pub async fn quota_reserve_release_and_set(store: impl MaterialRepository + 'static) {
    let teacher = Uuid::new_v4();

    // Without a row: the default, and nothing is written (another default shows through).
    assert_eq!(
        store.quota(teacher, 1000).await.unwrap(),
        Quota {
            used_bytes: 0,
            quota_bytes: 1000,
        }
    );
    assert_eq!(store.quota(teacher, 700).await.unwrap().quota_bytes, 700);
    // Releasing without a row changes nothing either.
    store.release(teacher, 50).await.unwrap();
    assert_eq!(
        store.quota(teacher, 700).await.unwrap(),
        Quota {
            used_bytes: 0,
            quota_bytes: 700,
        }
    );

    // A first reservation that does not fit writes nothing either.
    assert_eq!(store.reserve(teacher, 1001, 1000).await.unwrap(), None);
    assert_eq!(store.quota(teacher, 700).await.unwrap().quota_bytes, 700);

    // The first reservation creates the row with the default it was given.
    assert_eq!(
        store.reserve(teacher, 400, 1000).await.unwrap(),
        Some(Quota {
            used_bytes: 400,
            quota_bytes: 1000,
        })
    );
    assert_eq!(
        store.quota(teacher, 5).await.unwrap(),
        Quota {
            used_bytes: 400,
            quota_bytes: 1000,
        }
    );
    // Later defaults do not replace the stored quota.
    assert_eq!(store.reserve(teacher, 601, 5000).await.unwrap(), None);
    assert_eq!(used(&store, teacher).await, 400);
    assert_eq!(
        store.reserve(teacher, 600, 5).await.unwrap(),
        Some(Quota {
            used_bytes: 1000,
            quota_bytes: 1000,
        })
    );
    assert_eq!(store.reserve(teacher, 1, 5000).await.unwrap(), None);
    assert_eq!(
        store.reserve(teacher, 0, 5000).await.unwrap(),
        Some(Quota {
            used_bytes: 1000,
            quota_bytes: 1000,
        })
    );

    store.release(teacher, 300).await.unwrap();
    assert_eq!(used(&store, teacher).await, 700);
    store.release(teacher, 10_000).await.unwrap();
    assert_eq!(used(&store, teacher).await, 0);

    // Setting the quota keeps usage, and creates the row for a teacher without one.
    assert!(store.reserve(teacher, 250, 1000).await.unwrap().is_some());
    assert_eq!(
        store.set_quota(teacher, 2000).await.unwrap(),
        Quota {
            used_bytes: 250,
            quota_bytes: 2000,
        }
    );
    assert_eq!(
        store.reserve(teacher, 1750, 1000).await.unwrap(),
        Some(Quota {
            used_bytes: 2000,
            quota_bytes: 2000,
        })
    );
    let newcomer = Uuid::new_v4();
    assert_eq!(
        store.set_quota(newcomer, 300).await.unwrap(),
        Quota {
            used_bytes: 0,
            quota_bytes: 300,
        }
    );
    assert_eq!(
        store.quota(newcomer, DEFAULT_QUOTA).await.unwrap(),
        Quota {
            used_bytes: 0,
            quota_bytes: 300,
        }
    );
    assert_eq!(
        store.reserve(newcomer, 301, DEFAULT_QUOTA).await.unwrap(),
        None
    );

    // The largest quota a database column holds.
    let big = u64::try_from(i64::MAX).unwrap();
    assert_eq!(
        store.set_quota(newcomer, big).await.unwrap(),
        Quota {
            used_bytes: 0,
            quota_bytes: big,
        }
    );
    assert_eq!(
        store.reserve(newcomer, big, DEFAULT_QUOTA).await.unwrap(),
        Some(Quota {
            used_bytes: big,
            quota_bytes: big,
        })
    );
    assert_eq!(
        store.reserve(newcomer, 1, DEFAULT_QUOTA).await.unwrap(),
        None
    );
    store.release(newcomer, big).await.unwrap();
    assert_eq!(used(&store, newcomer).await, 0);
}

/// Of 50 concurrent 1000-byte reservations on a 20 500-byte quota exactly 20 succeed, each
/// seeing its own usage after; two teachers racing at once do not disturb each other (the
/// second one's row is created by the race itself).
pub async fn concurrent_reservations_never_exceed_the_quota(
    store: impl MaterialRepository + 'static,
) {
    const QUOTA: u64 = 20_500;
    let store: Arc<dyn MaterialRepository> = Arc::new(store);
    let first = Uuid::new_v4();
    let second = Uuid::new_v4();
    store.set_quota(first, QUOTA).await.unwrap();

    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(&store);
            let teacher = if i % 2 == 0 { first } else { second };
            tokio::spawn(async move {
                let reserved = store
                    .reserve(teacher, 1000, QUOTA)
                    .await
                    .expect("no database error under contention");
                (teacher, reserved)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("the task ran"));
    }

    for teacher in [first, second] {
        let mut seen: Vec<u64> = results
            .iter()
            .filter(|(t, _)| *t == teacher)
            .filter_map(|(_, reserved)| *reserved)
            .map(|quota| {
                assert_eq!(quota.quota_bytes, QUOTA);
                quota.used_bytes
            })
            .collect();
        seen.sort_unstable();
        let expected: Vec<u64> = (1..=20).map(|n| n * 1000).collect();
        assert_eq!(seen, expected, "each success sees its own usage");
        assert_eq!(
            store.quota(teacher, DEFAULT_QUOTA).await.unwrap(),
            Quota {
                used_bytes: 20_000,
                quota_bytes: QUOTA,
            }
        );
    }

    // Concurrent releases all count.
    let releases: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.release(first, 1000).await })
        })
        .collect();
    for release in releases {
        release
            .await
            .expect("the task ran")
            .expect("no database error under contention");
    }
    assert_eq!(used(store.as_ref(), first).await, 0);
    assert_eq!(used(store.as_ref(), second).await, 20_000);
}

/// Inserting gives back the unused part of a reservation, deleting gives back a file's size,
/// a failed insert changes nothing; usage ends equal to the stored files' sizes.
pub async fn insert_and_delete_move_usage_with_the_rows(store: impl MaterialRepository + 'static) {
    let teacher = Uuid::new_v4();

    // An upload reserved 5000 bytes up front and turned out to be 3000.
    let photo = file(teacher, MaterialKind::Image, 3000, at(0));
    assert!(
        store
            .reserve(teacher, 5000, 10_000)
            .await
            .unwrap()
            .is_some()
    );
    store.insert(&photo, 2000).await.unwrap();
    assert_eq!(used(&store, teacher).await, 3000);

    // Links and notes count nothing.
    let link = entry(teacher, MaterialKind::Url, at(1));
    store.insert(&link, 0).await.unwrap();
    assert_eq!(used(&store, teacher).await, 3000);

    let song = file(teacher, MaterialKind::Audio, 1500, at(2));
    upload(&store, &song).await;
    let clip = file(teacher, MaterialKind::Video, 4000, at(3));
    upload(&store, &clip).await;
    assert_eq!(used(&store, teacher).await, 8500);

    // A failed insert (the id exists) keeps its reservation: the caller releases it.
    assert!(store.reserve(teacher, 700, 10_000).await.unwrap().is_some());
    let duplicate = MaterialRecord {
        id: photo.id,
        ..file(teacher, MaterialKind::Image, 700, at(4))
    };
    assert!(store.insert(&duplicate, 700).await.is_err());
    assert_eq!(used(&store, teacher).await, 9200);
    assert_eq!(
        store.get(teacher, photo.id).await.unwrap(),
        Some(photo.clone())
    );
    store.release(teacher, 700).await.unwrap();

    assert_eq!(
        store.delete(teacher, photo.id).await.unwrap(),
        Some(photo.clone())
    );
    assert_eq!(used(&store, teacher).await, 5500);
    assert_eq!(
        store.delete(teacher, link.id).await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(used(&store, teacher).await, 5500);
    // Deleting again gives nothing back twice.
    assert_eq!(store.delete(teacher, photo.id).await.unwrap(), None);
    assert_eq!(used(&store, teacher).await, 5500);

    let document = file(teacher, MaterialKind::Document, 250, at(5));
    upload(&store, &document).await;
    assert_eq!(store.delete(teacher, song.id).await.unwrap(), Some(song));

    let stored: u64 = store
        .list(teacher, &everything())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|record| record.file_size)
        .sum();
    assert_eq!(stored, 4250);
    assert_eq!(used(&store, teacher).await, stored);

    // Concurrent deletes of one file give its size back once.
    let store: Arc<dyn MaterialRepository> = Arc::new(store);
    let deletes: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            let id = clip.id;
            tokio::spawn(async move { store.delete(teacher, id).await })
        })
        .collect();
    let mut deleted = 0;
    for delete in deletes {
        let result = delete
            .await
            .expect("the task ran")
            .expect("no database error under contention");
        if let Some(record) = result {
            assert_eq!(record, clip);
            deleted += 1;
        }
    }
    assert_eq!(deleted, 1);
    assert_eq!(used(store.as_ref(), teacher).await, 250);
}

/// Newest first (`created_at`, then `id`), of one kind when asked, a page of it, and the
/// count of every match.
pub async fn list_orders_filters_and_paginates(store: impl MaterialRepository + 'static) {
    let teacher = Uuid::new_v4();
    let other = Uuid::new_v4();
    let mut records = vec![
        entry(teacher, MaterialKind::TextNote, at(0)),
        file(teacher, MaterialKind::Document, 10, at(5)),
        entry(teacher, MaterialKind::Url, at(1)),
        file(teacher, MaterialKind::Document, 20, at(3)),
        // Three created in the same microsecond: the id decides.
        file(teacher, MaterialKind::Image, 30, at(2)),
        file(teacher, MaterialKind::Document, 40, at(2)),
        entry(teacher, MaterialKind::TextNote, at(2)),
        // Sub-second differences order too.
        file(
            teacher,
            MaterialKind::Audio,
            50,
            at(2) + chrono::Duration::microseconds(1),
        ),
        file(
            teacher,
            MaterialKind::Video,
            60,
            at(2) - chrono::Duration::microseconds(1),
        ),
    ];
    for record in &records {
        store.insert(record, 0).await.unwrap();
    }
    store
        .insert(&file(other, MaterialKind::Document, 70, at(9)), 0)
        .await
        .unwrap();
    records.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    let total = records.len() as u64;

    assert_eq!(
        store.list(teacher, &everything()).await.unwrap(),
        MaterialPage {
            items: records.clone(),
            total,
        }
    );

    let documents: Vec<MaterialRecord> = records
        .iter()
        .filter(|record| record.kind == MaterialKind::Document)
        .cloned()
        .collect();
    assert_eq!(documents.len(), 3);
    assert_eq!(
        store
            .list(
                teacher,
                &MaterialQuery {
                    kind: Some(MaterialKind::Document),
                    ..everything()
                }
            )
            .await
            .unwrap(),
        MaterialPage {
            items: documents.clone(),
            total: 3,
        }
    );
    assert_eq!(
        store
            .list(
                teacher,
                &MaterialQuery {
                    kind: Some(MaterialKind::Document),
                    offset: 1,
                    limit: 1,
                }
            )
            .await
            .unwrap(),
        MaterialPage {
            items: documents[1..2].to_vec(),
            total: 3,
        }
    );
    assert_eq!(
        store
            .list(
                teacher,
                &MaterialQuery {
                    kind: Some(MaterialKind::Video),
                    ..everything()
                }
            )
            .await
            .unwrap()
            .total,
        1
    );

    for (offset, limit) in [(0, 3), (2, 3), (6, 3), (8, 5), (9, 5), (100, 5), (3, 0)] {
        let page = store
            .list(
                teacher,
                &MaterialQuery {
                    kind: None,
                    offset,
                    limit,
                },
            )
            .await
            .unwrap();
        let start = usize::try_from(offset).unwrap().min(records.len());
        let end = (start + usize::try_from(limit).unwrap()).min(records.len());
        assert_eq!(
            page,
            MaterialPage {
                items: records[start..end].to_vec(),
                total,
            },
            "offset {offset}, limit {limit}"
        );
    }

    // Paging through yields every record once.
    let mut paged = Vec::new();
    for offset in (0..total).step_by(2) {
        let query = MaterialQuery {
            kind: None,
            offset,
            limit: 2,
        };
        paged.extend(store.list(teacher, &query).await.unwrap().items);
    }
    assert_eq!(paged, records);
}

/// An admin may set a quota below the usage: usage stays, nothing more fits until enough is
/// given back.
pub async fn set_quota_below_usage_keeps_usage_and_blocks_reserve(
    store: impl MaterialRepository + 'static,
) {
    let teacher = Uuid::new_v4();
    assert!(store.reserve(teacher, 800, 1000).await.unwrap().is_some());
    let lowered = store.set_quota(teacher, 500).await.unwrap();
    assert_eq!(
        lowered,
        Quota {
            used_bytes: 800,
            quota_bytes: 500,
        }
    );
    assert_eq!(lowered.free_bytes(), 0);
    assert_eq!(store.quota(teacher, DEFAULT_QUOTA).await.unwrap(), lowered);
    assert_eq!(
        store.reserve(teacher, 1, DEFAULT_QUOTA).await.unwrap(),
        None
    );
    assert_eq!(used(&store, teacher).await, 800);

    store.release(teacher, 400).await.unwrap();
    assert_eq!(
        store.reserve(teacher, 101, DEFAULT_QUOTA).await.unwrap(),
        None
    );
    assert_eq!(
        store.reserve(teacher, 100, DEFAULT_QUOTA).await.unwrap(),
        Some(Quota {
            used_bytes: 500,
            quota_bytes: 500,
        })
    );

    // Raising it again makes room.
    assert_eq!(
        store.set_quota(teacher, 600).await.unwrap(),
        Quota {
            used_bytes: 500,
            quota_bytes: 600,
        }
    );
    assert!(
        store
            .reserve(teacher, 100, DEFAULT_QUOTA)
            .await
            .unwrap()
            .is_some()
    );
}

/// Another teacher's material is absent: reading, editing and deleting it finds nothing and
/// changes nothing.
pub async fn other_teachers_materials_are_invisible(store: impl MaterialRepository + 'static) {
    let owner = Uuid::new_v4();
    let intruder = Uuid::new_v4();
    let document = file(owner, MaterialKind::Document, 1000, at(0));
    upload(&store, &document).await;
    // The intruder has files of their own.
    let own = file(intruder, MaterialKind::Image, 200, at(1));
    upload(&store, &own).await;

    assert_eq!(store.get(intruder, document.id).await.unwrap(), None);
    let changes = MaterialChanges {
        name: Some("taken".to_owned()),
        text_content: Some("taken".to_owned()),
        url: Some("https://example.org/taken".to_owned()),
        updated_at: at(10),
    };
    assert_eq!(
        store.update(intruder, document.id, &changes).await.unwrap(),
        None
    );
    assert_eq!(store.delete(intruder, document.id).await.unwrap(), None);

    assert_eq!(
        store.get(owner, document.id).await.unwrap(),
        Some(document.clone())
    );
    assert_eq!(used(&store, owner).await, 1000);
    assert_eq!(used(&store, intruder).await, 200);
    assert_eq!(
        store.list(intruder, &everything()).await.unwrap(),
        MaterialPage {
            items: vec![own],
            total: 1,
        }
    );
    assert_eq!(
        store.list(owner, &everything()).await.unwrap(),
        MaterialPage {
            items: vec![document],
            total: 1,
        }
    );
}

/// An edit replaces the fields it gives and `updated_at`, nothing else.
pub async fn update_changes_only_given_fields(store: impl MaterialRepository + 'static) {
    let teacher = Uuid::new_v4();
    let link = entry(teacher, MaterialKind::Url, at(0));
    let note = entry(teacher, MaterialKind::TextNote, at(1));
    let video = file(teacher, MaterialKind::Video, 4096, at(2));
    store.insert(&link, 0).await.unwrap();
    store.insert(&note, 0).await.unwrap();
    upload(&store, &video).await;

    let mut expected = link.clone();
    let cases = [
        (Some("Renamed"), None, None),
        (None, None, Some("https://example.org/moved")),
        (None, Some("now with a note"), None),
        (None, None, None),
        (
            Some("All of it"),
            Some("and more"),
            Some("https://example.org/again"),
        ),
    ];
    for (step, (name, text, url)) in (1_i64..).zip(cases) {
        let changes = MaterialChanges {
            name: name.map(str::to_owned),
            text_content: text.map(str::to_owned),
            url: url.map(str::to_owned),
            updated_at: at(10 * step) + chrono::Duration::microseconds(step),
        };
        if let Some(name) = name {
            expected.name = name.to_owned();
        }
        if let Some(text) = text {
            expected.text_content = Some(text.to_owned());
        }
        if let Some(url) = url {
            expected.url = Some(url.to_owned());
        }
        expected.updated_at = changes.updated_at;
        assert_eq!(
            store.update(teacher, link.id, &changes).await.unwrap(),
            Some(expected.clone()),
            "step {step}"
        );
        assert_eq!(
            store.get(teacher, link.id).await.unwrap(),
            Some(expected.clone()),
            "step {step}"
        );
    }
    assert_eq!(expected.created_at, link.created_at);
    assert_eq!(expected.kind, MaterialKind::Url);

    // A file's object fields are never touched by an edit.
    let renamed = store
        .update(
            teacher,
            video.id,
            &MaterialChanges {
                name: Some("Field trip".to_owned()),
                text_content: None,
                url: None,
                updated_at: at(100),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        renamed,
        Some(MaterialRecord {
            name: "Field trip".to_owned(),
            updated_at: at(100),
            ..video.clone()
        })
    );
    assert_eq!(used(&store, teacher).await, 4096);

    // The other materials are untouched.
    assert_eq!(store.get(teacher, note.id).await.unwrap(), Some(note));
}

#[cfg(test)]
mod memory_adapters {
    use crate::memory::{MemoryDeliveryStore, MemoryLeaseStore, MemoryMaterials};

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
    async fn old_deliveries_are_pruned() {
        super::old_deliveries_are_pruned(MemoryDeliveryStore::new()).await;
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

    #[tokio::test]
    async fn materials_crud_and_scoping() {
        super::materials_crud_and_scoping(MemoryMaterials::new()).await;
    }

    #[tokio::test]
    async fn quota_reserve_release_and_set() {
        super::quota_reserve_release_and_set(MemoryMaterials::new()).await;
    }

    #[tokio::test]
    async fn concurrent_reservations_never_exceed_the_quota() {
        super::concurrent_reservations_never_exceed_the_quota(MemoryMaterials::new()).await;
    }

    #[tokio::test]
    async fn insert_and_delete_move_usage_with_the_rows() {
        super::insert_and_delete_move_usage_with_the_rows(MemoryMaterials::new()).await;
    }

    #[tokio::test]
    async fn list_orders_filters_and_paginates() {
        super::list_orders_filters_and_paginates(MemoryMaterials::new()).await;
    }

    #[tokio::test]
    async fn set_quota_below_usage_keeps_usage_and_blocks_reserve() {
        super::set_quota_below_usage_keeps_usage_and_blocks_reserve(MemoryMaterials::new()).await;
    }

    #[tokio::test]
    async fn other_teachers_materials_are_invisible() {
        super::other_teachers_materials_are_invisible(MemoryMaterials::new()).await;
    }

    #[tokio::test]
    async fn update_changes_only_given_fields() {
        super::update_changes_only_given_fields(MemoryMaterials::new()).await;
    }
}
