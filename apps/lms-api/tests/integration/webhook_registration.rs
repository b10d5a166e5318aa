//! Webhook self-registration with DCS (against the fake DCS) and
//! `POST /api/v1/admin/webhooks/register`, on SQLite and PostgreSQL.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use cache::Cache;
use dcs_client::{
    Credentials, DcsApi, DcsConfig, DcsError, WebhookSubscription, WebhookSubscriptionCreate,
    WebhookSubscriptionUpdate,
};
use dcs_mock::Fault;
use domain::leases::LeaderLocks;
use domain::webhook_registration::{
    REGISTRATION_LEASE, REGISTRATION_LOCK, RegistrationAction, RegistrationError, StartupOutcome,
    StartupRetry,
};
use lms_api::auth::Role;
use lms_api::db::SqlLeaseStore;
use lms_api::services::{cache_config, dcs_config};
use lms_api::{AppState, create_app};

use crate::support::{TestDatabase, header, json_body, on_both_databases};
use crate::webhooks::{
    CapturedLogs, Fixture, PUBLIC_URL, RECORDED_SECRET, fast_client, fixture, settings_for,
    sign_with, state_with,
};

const REGISTER_PATH: &str = "/api/v1/admin/webhooks/register";
const CALLBACK: &str = "http://lms.test.invalid/api/v1/webhooks/dream-storage";
const OTHER_SECRET: &str = "a-previous-webhook-secret-0000";
const SIX_EVENTS: [&str; 6] = [
    "book.created",
    "book.updated",
    "book.deleted",
    "publisher.created",
    "publisher.updated",
    "publisher.deleted",
];

fn token(state: &AppState, role: Role) -> String {
    state
        .jwt
        .issue(uuid::Uuid::new_v4(), role, Duration::from_secs(600))
        .expect("token")
}

fn register_request(token: Option<&str>) -> actix_test::TestRequest {
    let request = actix_test::TestRequest::post().uri(REGISTER_PATH);
    match token {
        Some(token) => request.insert_header(("Authorization", format!("Bearer {token}"))),
        None => request,
    }
}

async fn subscriptions(state: &AppState) -> Vec<WebhookSubscription> {
    state
        .services
        .dcs
        .list_webhooks()
        .await
        .expect("list subscriptions")
}

fn events_of(subscription: &WebhookSubscription) -> Vec<String> {
    let mut events: Vec<String> = subscription
        .event_type_list()
        .iter()
        .map(|event| event.as_str().to_owned())
        .collect();
    events.sort();
    events
}

fn six_sorted() -> Vec<String> {
    let mut events: Vec<String> = SIX_EVENTS.iter().map(|e| (*e).to_owned()).collect();
    events.sort();
    events
}

fn fast_startup_retry(max_attempts: u32) -> StartupRetry {
    StartupRetry {
        max_attempts,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

async fn admin_registration_creates_then_leaves_alone(database: TestDatabase) {
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;
    let admin = token(&state, Role::Admin);

    let response =
        actix_test::call_service(&app, register_request(Some(&admin)).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let raw = actix_test::read_body(response).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(
        !text.contains(RECORDED_SECRET),
        "secret in the answer: {text}"
    );
    let created: serde_json::Value = serde_json::from_slice(&raw).expect("JSON");
    assert_eq!(created["action"], "created", "{created}");
    assert_eq!(created["url"], CALLBACK);
    assert_eq!(created["events"], serde_json::json!(SIX_EVENTS));
    assert!(created.get("secret").is_none());

    let listed = subscriptions(&state).await;
    assert_eq!(listed.len(), 1);
    let subscription = &listed[0];
    assert_eq!(created["subscription_id"], subscription.id);
    assert_eq!(subscription.url, CALLBACK);
    assert_eq!(subscription.secret, RECORDED_SECRET);
    assert!(subscription.is_active);
    assert_eq!(events_of(subscription), six_sorted());

    let response =
        actix_test::call_service(&app, register_request(Some(&admin)).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let again = json_body(response).await;
    assert_eq!(again["action"], "unchanged");
    assert_eq!(again["subscription_id"], subscription.id);
    assert_eq!(
        subscriptions(&state).await,
        listed,
        "nothing changed in DCS"
    );

    // The lease is given back after each registration.
    assert_eq!(
        LeaderLocks::new(SqlLeaseStore::new(state.db.clone()))
            .current(REGISTRATION_LOCK)
            .await
            .unwrap(),
        None
    );
}
on_both_databases!(admin_registration_creates_then_leaves_alone);

async fn registration_repairs_secret_activation_filter_and_duplicates(database: TestDatabase) {
    let Fixture { dcs, state } = fixture(&database).await;
    // A client of its own: `get_webhook` is not part of the port the state holds.
    let api = crate::support::test_dcs_client(dcs.base_url(), 1000);
    let registrar = state.webhook_registrar("test");

    // Registered earlier with another secret, then deactivated.
    let old = api
        .create_webhook(
            &WebhookSubscriptionCreate::new(CALLBACK, OTHER_SECRET)
                .event_types(&domain::webhook_registration::SUBSCRIBED_EVENTS),
        )
        .await
        .unwrap();
    api.update_webhook(
        old.id,
        &WebhookSubscriptionUpdate {
            is_active: Some(false),
            ..WebhookSubscriptionUpdate::default()
        },
    )
    .await
    .unwrap();
    // Someone else's subscription is left alone.
    let foreign = api
        .create_webhook(&WebhookSubscriptionCreate::new(
            "http://other.test.invalid/hook",
            "someone-elses-secret-00000",
        ))
        .await
        .unwrap();

    let outcome = registrar.register().await.expect("register");
    assert_eq!(outcome.action, RegistrationAction::Updated);
    assert_eq!(outcome.subscription_id, old.id);
    assert!(outcome.removed_duplicates.is_empty());
    let repaired = api.get_webhook(old.id).await.unwrap();
    assert_eq!(repaired.secret, RECORDED_SECRET);
    assert!(repaired.is_active);
    assert_eq!(events_of(&repaired), six_sorted());
    assert_eq!(api.get_webhook(foreign.id).await.unwrap(), foreign);

    // A filter of "all events" (null) becomes the six events.
    api.update_webhook(
        old.id,
        &WebhookSubscriptionUpdate {
            event_types: Some(String::new()),
            ..WebhookSubscriptionUpdate::default()
        },
    )
    .await
    .unwrap();
    let outcome = registrar.register().await.expect("register");
    assert_eq!(outcome.action, RegistrationAction::Updated);
    assert_eq!(
        events_of(&api.get_webhook(old.id).await.unwrap()),
        six_sorted()
    );

    // Duplicates for the same URL (each would deliver every event again) are removed.
    let duplicate = api
        .create_webhook(&WebhookSubscriptionCreate::new(CALLBACK, RECORDED_SECRET))
        .await
        .unwrap();
    let outcome = registrar.register().await.expect("register");
    assert_eq!(outcome.action, RegistrationAction::Updated);
    assert_eq!(outcome.subscription_id, old.id);
    assert_eq!(outcome.removed_duplicates, vec![duplicate.id]);
    let remaining: Vec<i64> = subscriptions(&state).await.iter().map(|s| s.id).collect();
    assert_eq!(remaining, vec![old.id, foreign.id]);

    assert_eq!(
        registrar.register().await.expect("register").action,
        RegistrationAction::Unchanged
    );
}
on_both_databases!(registration_repairs_secret_activation_filter_and_duplicates);

#[actix_web::test]
async fn admin_registration_needs_an_admin() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite");
    let Fixture { dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;

    let response = actix_test::call_service(&app, register_request(None).to_request()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(response).await["code"], "not_authenticated");

    for role in [
        Role::Teacher,
        Role::Supervisor,
        Role::Student,
        Role::Publisher,
    ] {
        let teacher = token(&state, role);
        let response =
            actix_test::call_service(&app, register_request(Some(&teacher)).to_request()).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role}");
        assert_eq!(json_body(response).await["code"], "forbidden");
    }
    assert_eq!(dcs.request_count("* /webhooks/"), 0, "DCS was not asked");
}

async fn admin_registration_when_dcs_is_down_is_503(database: TestDatabase) {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let settings = settings_for(&database, &url, PUBLIC_URL);
    let client = fast_client(dcs_config(&settings));
    let cache = Cache::new(cache_config(&settings));
    let state = state_with(settings, &database, client, cache);
    let app = actix_test::init_service(create_app(state.clone())).await;

    let admin = token(&state, Role::Admin);
    let response =
        actix_test::call_service(&app, register_request(Some(&admin)).to_request()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&response, "retry-after").parse::<u64>().unwrap() >= 1);
    let body = json_body(response).await;
    assert_eq!(body["code"], "content_storage_unavailable", "{body}");
    assert_eq!(
        body["detail"],
        "Content storage temporarily unavailable. Please try again."
    );
    // The lease is not left behind.
    assert_eq!(
        LeaderLocks::new(SqlLeaseStore::new(state.db.clone()))
            .current(REGISTRATION_LOCK)
            .await
            .unwrap(),
        None
    );
}
on_both_databases!(admin_registration_when_dcs_is_down_is_503);

async fn startup_registration_retries_until_dcs_answers(database: TestDatabase) {
    let Fixture { dcs, state } = fixture(&database).await;
    // The client retries a GET three times itself; six failures outlast its first call.
    dcs.inject("GET /webhooks/", Fault::Status(503), Some(6));
    let registrar = state.webhook_registrar("startup");

    match registrar.register_at_startup(&fast_startup_retry(5)).await {
        StartupOutcome::Registered(outcome) => {
            assert_eq!(outcome.action, RegistrationAction::Created)
        }
        other => panic!("expected a registration, got {other:?}"),
    }
    assert!(dcs.request_count("GET /webhooks/") >= 7);
    assert_eq!(subscriptions(&state).await.len(), 1);
    assert_eq!(
        LeaderLocks::new(SqlLeaseStore::new(state.db.clone()))
            .current(REGISTRATION_LOCK)
            .await
            .unwrap(),
        None,
        "lease released"
    );

    // Attempts are bounded.
    dcs.inject("GET /webhooks/", Fault::Status(503), None);
    match registrar.register_at_startup(&fast_startup_retry(2)).await {
        StartupOutcome::GaveUp(RegistrationError::Dcs(error)) => {
            assert!(error.is_unavailable(), "{error}")
        }
        other => panic!("expected to give up, got {other:?}"),
    }
}
on_both_databases!(startup_registration_retries_until_dcs_answers);

async fn only_the_lease_holder_registers(database: TestDatabase) {
    let Fixture { dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;
    let locks = LeaderLocks::new(SqlLeaseStore::new(state.db.clone()));

    // Another instance is registering right now.
    locks
        .try_acquire(REGISTRATION_LOCK, "other-instance", REGISTRATION_LEASE)
        .await
        .unwrap()
        .expect("free lease");
    let registrar = state.webhook_registrar("startup");
    assert!(matches!(
        registrar.register_at_startup(&fast_startup_retry(3)).await,
        StartupOutcome::Skipped
    ));
    let admin = token(&state, Role::Admin);
    let response =
        actix_test::call_service(&app, register_request(Some(&admin)).to_request()).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        json_body(response).await["code"],
        "webhook_registration_in_progress"
    );
    assert_eq!(dcs.request_count("* /webhooks/"), 0, "DCS was not asked");
    assert!(
        locks
            .release(REGISTRATION_LOCK, "other-instance")
            .await
            .unwrap()
    );

    // Two instances starting together: one subscription.
    let first = state.webhook_registrar("instance-a");
    let second = state.webhook_registrar("instance-b");
    let retry = fast_startup_retry(3);
    let (a, b) = futures_util::future::join(
        first.register_at_startup(&retry),
        second.register_at_startup(&retry),
    )
    .await;
    let created = [&a, &b]
        .iter()
        .filter(|outcome| {
            matches!(outcome, StartupOutcome::Registered(o) if o.action == RegistrationAction::Created)
        })
        .count();
    assert_eq!(created, 1, "{a:?} {b:?}");
    for outcome in [&a, &b] {
        assert!(
            matches!(
                outcome,
                StartupOutcome::Skipped | StartupOutcome::Registered(_)
            ),
            "{outcome:?}"
        );
    }
    assert_eq!(subscriptions(&state).await.len(), 1);
    assert_eq!(dcs.request_count("POST /webhooks/"), 1);
}
on_both_databases!(only_the_lease_holder_registers);

#[actix_web::test]
async fn an_api_key_alone_cannot_register() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite");
    let Fixture { dcs, state } = fixture(&database).await;
    let key = dcs.create_api_key("lms dev");
    let settings = settings_for(&database, dcs.base_url(), PUBLIC_URL);
    let client = fast_client(DcsConfig::new(dcs.base_url(), Credentials::api_key(key)));
    let state = state_with(
        settings,
        &database,
        client,
        Cache::new(cache_config(&state.settings)),
    );
    let app = actix_test::init_service(create_app(state.clone())).await;

    let admin = token(&state, Role::Admin);
    let response =
        actix_test::call_service(&app, register_request(Some(&admin)).to_request()).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = json_body(response).await;
    assert_eq!(body["code"], "dcs_api_key_unsupported", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("DREAM_CENTRAL_STORAGE_PASSWORD")),
        "{body}"
    );

    // Not retried at start-up: it cannot get better by waiting.
    match state
        .webhook_registrar("startup")
        .register_at_startup(&fast_startup_retry(5))
        .await
    {
        StartupOutcome::GaveUp(RegistrationError::Dcs(DcsError::ApiKeyUnsupported { .. })) => {}
        other => panic!("expected dcs_api_key_unsupported, got {other:?}"),
    }
    assert_eq!(dcs.request_count("* /webhooks/"), 0);
}

#[actix_web::test]
async fn the_webhook_secret_never_reaches_logs_or_answers() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite");
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;
    let admin = token(&state, Role::Admin);
    let logs = CapturedLogs::default();
    let guard = logs.install();

    let mut answers = String::new();
    // Created, then updated from another secret (both secrets travel to and from DCS).
    let response =
        actix_test::call_service(&app, register_request(Some(&admin)).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    answers.push_str(&String::from_utf8_lossy(
        &actix_test::read_body(response).await,
    ));
    let id = subscriptions(&state).await[0].id;
    state
        .services
        .dcs
        .update_webhook(
            id,
            &WebhookSubscriptionUpdate {
                secret: Some(OTHER_SECRET.to_owned()),
                ..WebhookSubscriptionUpdate::default()
            },
        )
        .await
        .unwrap();
    let response =
        actix_test::call_service(&app, register_request(Some(&admin)).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    answers.push_str(&String::from_utf8_lossy(
        &actix_test::read_body(response).await,
    ));

    // A delivery signed with the old secret, and a good one.
    let body = crate::webhooks::book_delivery("book.updated", 1, "Secret test");
    for secret in [OTHER_SECRET, RECORDED_SECRET] {
        let request = actix_test::TestRequest::post()
            .uri(crate::webhooks::WEBHOOK_PATH)
            .insert_header((domain::webhooks::SIGNATURE_HEADER, sign_with(secret, &body)))
            .set_payload(body.clone());
        let response = actix_test::call_service(&app, request.to_request()).await;
        answers.push_str(&String::from_utf8_lossy(
            &actix_test::read_body(response).await,
        ));
    }
    drop(guard);

    let text = logs.text();
    assert!(
        text.contains("DCS webhook subscription registered"),
        "logs were captured: {text}"
    );
    assert!(text.contains("webhook processed"), "{text}");
    for secret in [RECORDED_SECRET, OTHER_SECRET] {
        assert!(!text.contains(secret), "secret in the logs:\n{text}");
        assert!(!answers.contains(secret), "secret in an answer: {answers}");
    }
    assert!(
        !format!("{:?}", state.webhooks).contains(RECORDED_SECRET)
            && !format!("{:?}", state.webhook_registrar("debug")).contains(RECORDED_SECRET)
    );
}

#[actix_web::test]
async fn startup_task_registers_in_the_background() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite");
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let task = lms_api::webhooks::startup_registration::start(
        state.webhook_registrar("startup"),
        Duration::from_secs(900),
    );
    // The default backoff is seconds long, but the fake DCS answers at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if subscriptions(&state).await.len() == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the start-up registration did not happen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(task);
    let subscription = &subscriptions(&state).await[0];
    assert_eq!(subscription.url, CALLBACK);
}
