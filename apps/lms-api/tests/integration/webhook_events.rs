//! The webhook event log and its claim protocol, on SQLite and PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lms_api::entities::webhook_event_log::WebhookEventStatus;
use lms_api::webhook_events::{Claim, NewWebhookEvent, WebhookEventLog, WebhookEvents};

use crate::support::{ManualClock, TestDatabase, on_both_databases};

const LEASE: Duration = Duration::from_secs(4);
const DIGEST: &str = "7b74c8c719acd87a0c71d4302f87ffec162d6dfc689c8735558b347746162052";
const PAYLOAD: &str =
    r#"{"event":"book.created","timestamp":"2026-11-22T09:32:53.499233Z","data":{"id":1}}"#;

fn start() -> DateTime<Utc> {
    // A fractional second, so text timestamps (SQLite) carry sub-second parts.
    Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + chrono::Duration::microseconds(123_456)
}

fn delivery() -> NewWebhookEvent<'static> {
    NewWebhookEvent {
        body_sha256: DIGEST,
        event_type: "book.created",
        payload: PAYLOAD,
    }
}

fn new_record(claim: Claim) -> WebhookEventLog {
    match claim {
        Claim::New(record) => record,
        other => panic!("expected a new claim, got {other:?}"),
    }
}

async fn claim_lifecycle(database: TestDatabase) {
    let clock = ManualClock::at(start());
    let events = WebhookEvents::with_clock(database.db.clone(), clock.clone());

    let record = new_record(events.claim(&delivery(), LEASE).await.unwrap());
    assert_eq!(record.status, WebhookEventStatus::Received);
    assert_eq!(record.received_at, start());
    assert_eq!(record.payload, PAYLOAD);
    assert_eq!(events.find(record.id).await.unwrap(), Some(record.clone()));

    // While it is processed, an identical delivery is told so.
    match events.claim(&delivery(), LEASE).await.unwrap() {
        Claim::InProgress(existing) => assert_eq!(existing.id, record.id),
        other => panic!("expected in progress, got {other:?}"),
    }

    // Failed: the next delivery gets it back, with what went wrong before.
    clock.set(start() + chrono::Duration::seconds(1));
    assert!(events.mark_failed(&record, "redis down").await.unwrap());
    let failed = events.find(record.id).await.unwrap().unwrap();
    assert_eq!(failed.status, WebhookEventStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("redis down"));
    assert_eq!(
        failed.processed_at,
        Some(start() + chrono::Duration::seconds(1))
    );

    clock.set(start() + chrono::Duration::seconds(2));
    let retried = match events.claim(&delivery(), LEASE).await.unwrap() {
        Claim::Retry {
            record: retried,
            previous_status,
            previous_error,
        } => {
            assert_eq!(previous_status, WebhookEventStatus::Failed);
            assert_eq!(previous_error.as_deref(), Some("redis down"));
            retried
        }
        other => panic!("expected a retry, got {other:?}"),
    };
    assert_eq!(retried.id, record.id, "same event, same id");
    assert_eq!(retried.status, WebhookEventStatus::Received);
    assert_eq!(retried.received_at, start() + chrono::Duration::seconds(2));
    assert_eq!(events.find(record.id).await.unwrap(), Some(retried.clone()));

    // The first claim's token is spent: only the retry can finish it.
    assert!(!events.mark_processed(&record).await.unwrap());
    assert!(events.mark_processed(&retried).await.unwrap());
    let processed = events.find(record.id).await.unwrap().unwrap();
    assert_eq!(processed.status, WebhookEventStatus::Processed);
    assert_eq!(processed.error, None);

    // Done: acknowledged from now on, whatever the time.
    clock.set(start() + chrono::Duration::days(1));
    match events.claim(&delivery(), LEASE).await.unwrap() {
        Claim::Done(done) => assert_eq!(done, processed),
        other => panic!("expected done, got {other:?}"),
    }
    assert!(!events.mark_failed(&retried, "twice").await.unwrap());
    assert_eq!(
        events
            .count_with_status(WebhookEventStatus::Processed)
            .await
            .unwrap(),
        1
    );
}
on_both_databases!(claim_lifecycle);

async fn abandoned_claims_are_taken_over_after_the_lease(database: TestDatabase) {
    let clock = ManualClock::at(start());
    let events = WebhookEvents::with_clock(database.db.clone(), clock.clone());
    let abandoned = new_record(events.claim(&delivery(), LEASE).await.unwrap());

    clock.set(
        start() + chrono::Duration::from_std(LEASE).unwrap() - chrono::Duration::microseconds(1),
    );
    assert!(matches!(
        events.claim(&delivery(), LEASE).await.unwrap(),
        Claim::InProgress(_)
    ));

    clock.set(start() + chrono::Duration::from_std(LEASE).unwrap());
    let taken = match events.claim(&delivery(), LEASE).await.unwrap() {
        Claim::Retry {
            record,
            previous_status,
            previous_error,
        } => {
            assert_eq!(previous_status, WebhookEventStatus::Received);
            assert_eq!(previous_error, None);
            record
        }
        other => panic!("expected a take-over, got {other:?}"),
    };
    assert_eq!(taken.id, abandoned.id);

    // The new claim is live again: nobody else takes it right away.
    assert!(matches!(
        events.claim(&delivery(), LEASE).await.unwrap(),
        Claim::InProgress(_)
    ));
    assert!(!events.mark_processed(&abandoned).await.unwrap());
    assert!(events.mark_ignored(&taken).await.unwrap());
    assert_eq!(
        events.find(taken.id).await.unwrap().unwrap().status,
        WebhookEventStatus::Ignored
    );
}
on_both_databases!(abandoned_claims_are_taken_over_after_the_lease);

async fn concurrent_claims_have_one_owner(database: TestDatabase) {
    let events = WebhookEvents::new(database.db.clone());

    let new = delivery();
    let claims = futures_util::future::join_all((0..8).map(|_| events.claim(&new, LEASE)))
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
    let retries = futures_util::future::join_all((0..8).map(|_| events.claim(&new, LEASE)))
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
on_both_databases!(concurrent_claims_have_one_owner);

async fn digests_are_independent(database: TestDatabase) {
    let events = WebhookEvents::new(database.db.clone());
    let first = new_record(events.claim(&delivery(), LEASE).await.unwrap());
    let other_digest = "0".repeat(64);
    let second = new_record(
        events
            .claim(
                &NewWebhookEvent {
                    body_sha256: &other_digest,
                    event_type: "book.updated",
                    payload: "{}",
                },
                LEASE,
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
            .count_with_status(WebhookEventStatus::Received)
            .await
            .unwrap(),
        2
    );
}
on_both_databases!(digests_are_independent);
