//! The webhook receiver and the subscription registrar over the in-memory ports: the rules,
//! without a database or a network.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use dcs_client::{DcsError, WebhookSubscriptionCreate};
use domain::errors::{Code, ToProblem};
use domain::leases::LeaderLocks;
use domain::memory::{
    CountingObserver, ManualClock, MemoryDeliveryStore, MemoryInvalidator, MemoryLeaseStore,
    MemorySubscriptions,
};
use domain::ports::{DeliveryOutcome, DeliveryStatus};
use domain::webhook_log::{Claim, DeliveryLog, NewDelivery};
use domain::webhook_receiver::{AckOutcome, ReceiveError, ReceiverTiming, WebhookReceiver};
use domain::webhook_registration::{
    REGISTRATION_LEASE, REGISTRATION_LOCK, RegistrationAction, RegistrationError,
    SUBSCRIBED_EVENTS, StartupOutcome, StartupRetry, WebhookRegistrar,
};
use domain::webhooks::{SignatureVerifier, body_digest};

const SECRET: &str = "webhook-secret-for-domain-tests";
const CALLBACK: &str = "https://lms.example/api/v1/webhooks/dream-storage";

struct Receiver {
    receiver: WebhookReceiver,
    verifier: SignatureVerifier,
    invalidator: MemoryInvalidator,
    observer: CountingObserver,
    log: DeliveryLog,
    clock: Arc<ManualClock>,
}

fn receiver() -> Receiver {
    let clock = ManualClock::at(Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap());
    let log = DeliveryLog::with_clock(MemoryDeliveryStore::new(), clock.clone());
    let invalidator = MemoryInvalidator::new();
    let observer = CountingObserver::new();
    let receiver = WebhookReceiver::new(
        log.clone(),
        Arc::new(invalidator.clone()),
        Arc::new(SignatureVerifier::new(SECRET.into())),
        Arc::new(observer.clone()),
    )
    .with_timing(ReceiverTiming {
        claim_lease: Duration::from_secs(4),
        in_progress_wait: Duration::from_millis(30),
        poll_interval: Duration::from_millis(5),
    });
    Receiver {
        receiver,
        verifier: SignatureVerifier::new(SECRET.into()),
        invalidator,
        observer,
        log,
        clock,
    }
}

const BOOK_UPDATED: &[u8] =
    br#"{"event":"book.updated","timestamp":"2026-11-22T09:32:53.499233Z","data":{"id":7}}"#;

#[tokio::test]
async fn a_delivery_is_processed_once_and_duplicates_are_acknowledged() {
    let r = receiver();
    let signature = r.verifier.sign(BOOK_UPDATED);
    let first = r
        .receiver
        .receive(Some(&signature), BOOK_UPDATED)
        .await
        .unwrap();
    assert_eq!(first.outcome, AckOutcome::Processed);
    assert!(!first.duplicate);
    assert_eq!(r.invalidator.plans().len(), 1);

    let again = r
        .receiver
        .receive(Some(&signature), BOOK_UPDATED)
        .await
        .unwrap();
    assert_eq!(again.event_id, first.event_id);
    assert!(again.duplicate);
    assert_eq!(r.invalidator.plans().len(), 1, "nothing is done twice");
    assert_eq!(
        r.observer.count("book.updated", DeliveryOutcome::Processed),
        1
    );
    assert_eq!(
        r.observer.count("book.updated", DeliveryOutcome::Duplicate),
        1
    );
    let record = r.log.find(first.event_id).await.unwrap().unwrap();
    assert_eq!(record.status, DeliveryStatus::Processed);
}

#[tokio::test]
async fn unsigned_and_malformed_deliveries_are_refused_with_their_codes() {
    let r = receiver();
    let missing = r.receiver.receive(None, BOOK_UPDATED).await.unwrap_err();
    assert_eq!(missing.problem().code, Code::WebhookSignatureMissing);
    let wrong = r
        .receiver
        .receive(Some("sha256=00"), BOOK_UPDATED)
        .await
        .unwrap_err();
    assert_eq!(wrong.problem().code, Code::WebhookSignatureInvalid);
    assert_eq!(r.observer.count("unverified", DeliveryOutcome::Rejected), 2);

    let body = br#"{"event":"book.created","data":{}}"#;
    let error = r
        .receiver
        .receive(Some(&r.verifier.sign(body)), body)
        .await
        .unwrap_err();
    let ReceiveError::Malformed { event_id, .. } = &error else {
        panic!("expected malformed, got {error:?}");
    };
    let problem = error.problem();
    assert_eq!(problem.code, Code::WebhookBodyMalformed);
    assert_eq!(problem.code.status(), 400);
    assert!(
        problem
            .fields
            .contains(&("event_id", event_id.to_string().into()))
    );
    let record = r.log.find(*event_id).await.unwrap().unwrap();
    assert_eq!(record.status, DeliveryStatus::Failed);
}

#[tokio::test]
async fn unknown_events_are_ignored_and_incomplete_invalidation_asks_for_a_retry() {
    let r = receiver();
    let unknown = br#"{"event":"processing.completed","data":{"id":1}}"#;
    let receipt = r
        .receiver
        .receive(Some(&r.verifier.sign(unknown)), unknown)
        .await
        .unwrap();
    assert_eq!(receipt.outcome, AckOutcome::Ignored);
    assert!(r.invalidator.plans().is_empty());

    r.invalidator.set_failing(true);
    let signature = r.verifier.sign(BOOK_UPDATED);
    let error = r
        .receiver
        .receive(Some(&signature), BOOK_UPDATED)
        .await
        .unwrap_err();
    let problem = error.problem();
    assert_eq!(problem.code, Code::CacheInvalidationIncomplete);
    assert_eq!(problem.retry_after_secs(), Some(1));

    // The retry processes it again.
    r.invalidator.set_failing(false);
    let receipt = r
        .receiver
        .receive(Some(&signature), BOOK_UPDATED)
        .await
        .unwrap();
    assert!(!receipt.duplicate);
    assert_eq!(r.invalidator.plans().len(), 2);
}

#[tokio::test]
async fn a_duplicate_of_a_delivery_in_progress_waits_then_asks_for_a_retry() {
    let r = receiver();
    let digest = body_digest(BOOK_UPDATED);
    let payload = String::from_utf8(BOOK_UPDATED.to_vec()).unwrap();
    let Claim::New(crashed) = r
        .log
        .claim(
            &NewDelivery {
                body_sha256: &digest,
                event_type: "book.updated",
                payload: &payload,
            },
            Duration::from_secs(4),
        )
        .await
        .unwrap()
    else {
        panic!("expected a new claim");
    };
    let signature = r.verifier.sign(BOOK_UPDATED);
    let error = r
        .receiver
        .receive(Some(&signature), BOOK_UPDATED)
        .await
        .unwrap_err();
    assert_eq!(error.problem().code, Code::WebhookInProgress);

    r.clock
        .set(crashed.received_at + chrono::Duration::seconds(4));
    let receipt = r
        .receiver
        .receive(Some(&signature), BOOK_UPDATED)
        .await
        .unwrap();
    assert_eq!(receipt.event_id, crashed.id);
    assert!(!r.log.mark_failed(&crashed, "late").await.unwrap());
}

fn registrar(
    dcs: &MemorySubscriptions,
    leases: &MemoryLeaseStore,
    holder: &str,
) -> WebhookRegistrar {
    WebhookRegistrar::new(
        Arc::new(dcs.clone()),
        LeaderLocks::new(leases.clone()),
        CALLBACK,
        SECRET.to_owned().into(),
        holder,
    )
}

#[tokio::test]
async fn registration_creates_then_leaves_alone_then_repairs() {
    let dcs = MemorySubscriptions::new();
    let leases = MemoryLeaseStore::new();
    let registrar = registrar(&dcs, &leases, "a");

    let created = registrar.register().await.unwrap();
    assert_eq!(created.action, RegistrationAction::Created);
    assert_eq!(created.url, CALLBACK);
    assert_eq!(created.events.len(), SUBSCRIBED_EVENTS.len());
    assert_eq!(
        registrar.register().await.unwrap().action,
        RegistrationAction::Unchanged
    );

    // Another secret, and a duplicate left by a race: updated, duplicate removed.
    let duplicate = dcs.seed(&WebhookSubscriptionCreate::new(
        CALLBACK,
        "an-older-secret-value",
    ));
    let outcome = WebhookRegistrar::new(
        Arc::new(dcs.clone()),
        LeaderLocks::new(leases.clone()),
        CALLBACK,
        "a-rotated-secret-of-length".to_owned().into(),
        "b",
    )
    .register()
    .await
    .unwrap();
    assert_eq!(outcome.action, RegistrationAction::Updated);
    assert_eq!(outcome.removed_duplicates, vec![duplicate]);
    let all = dcs.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].secret, "a-rotated-secret-of-length");
}

#[tokio::test]
async fn registration_under_a_foreign_lease_is_busy_and_dcs_outages_are_retried() {
    let dcs = MemorySubscriptions::new();
    let leases = MemoryLeaseStore::new();
    let locks = LeaderLocks::new(leases.clone());
    locks
        .try_acquire(REGISTRATION_LOCK, "other", REGISTRATION_LEASE)
        .await
        .unwrap()
        .unwrap();
    let registrar = registrar(&dcs, &leases, "a");
    let busy = registrar.register().await.unwrap_err();
    assert!(matches!(busy, RegistrationError::Busy));
    assert_eq!(busy.problem().code, Code::WebhookRegistrationInProgress);
    assert_eq!(busy.problem().retry_after_secs(), Some(5));
    assert!(matches!(
        registrar
            .register_at_startup(&StartupRetry::default())
            .await,
        StartupOutcome::Skipped
    ));
    locks.release(REGISTRATION_LOCK, "other").await.unwrap();

    dcs.fail_with(Some(DcsError::Network {
        message: "refused".into(),
    }));
    let retry = StartupRetry {
        max_attempts: 3,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };
    match registrar.register_at_startup(&retry).await {
        StartupOutcome::GaveUp(error) => {
            assert!(error.is_transient());
            assert_eq!(error.problem().code, Code::ContentStorageUnavailable);
        }
        other => panic!("expected to give up, got {other:?}"),
    }
    assert_eq!(dcs.calls().len(), 3, "one list per attempt");
    assert_eq!(
        locks.current(REGISTRATION_LOCK).await.unwrap(),
        None,
        "released"
    );

    dcs.fail_with(Some(DcsError::ApiKeyUnsupported {
        route: "/webhooks/*",
    }));
    let error = registrar.register().await.unwrap_err();
    assert!(!error.is_transient());
    assert_eq!(error.problem().code, Code::DcsApiKeyUnsupported);
    assert_eq!(error.problem().code.status(), 502);
}
