//! `POST /api/v1/webhooks/dream-storage`: the recorded DCS deliveries, signatures, idempotency,
//! concurrency, failed and abandoned processing, and invalidation reaching fresh data, on
//! SQLite and PostgreSQL. Also the fixtures the registration tests share.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use async_trait::async_trait;
use base64::Engine as _;
use cache::{BackendError, Cache, CacheStore, SegmentPrefix, StoredEntry};
use chrono::{TimeZone, Utc};
use dcs_client::{DcsApi, DcsConfig};
use dcs_mock::{BookUpdate, MockConfig, MockDcs, PublisherUpdate};
use domain::ports::{DeliveryOutcome, DeliveryStatus};
use domain::webhook_log::{DeliveryLog, NewDelivery};
use domain::webhook_receiver::{MAX_BODY_BYTES, ReceiverTiming};
use domain::webhook_registration::RegistrationAction;
use domain::webhooks::{SIGNATURE_HEADER, SignatureVerifier, body_digest};
use lms_api::db::SqlDeliveryStore;
use lms_api::db::entities::webhook_event_log::{self, WebhookEventStatus};
use lms_api::services::{Services, cache_config, dcs_config};
use lms_api::{AppState, Settings, create_app};
use sea_orm::EntityTrait;

use crate::support::{
    ManualClock, TEST_JWT_SECRET, TestDatabase, header, json_body, on_both_databases, settings_from,
};

pub const WEBHOOK_PATH: &str = "/api/v1/webhooks/dream-storage";
/// The secret the recorded deliveries were signed with.
pub const RECORDED_SECRET: &str = "lms-local-test-webhook-secret-0001";
/// `LMS_PUBLIC_URL` of tests that do not need DCS to reach the LMS.
pub const PUBLIC_URL: &str = "http://lms.test.invalid";

// ----- fixtures -------------------------------------------------------------------------------

/// A fake DCS whose webhook retries are fast.
pub async fn start_dcs() -> MockDcs {
    MockDcs::start(MockConfig {
        webhook_retry_delays: vec![Duration::from_millis(5), Duration::from_millis(10)],
        webhook_timeout: Duration::from_secs(5),
        ..MockConfig::default()
    })
    .await
    .expect("start the fake DCS")
}

/// Settings over `database`, DCS at `dcs_url`, the recorded webhook secret and `public_url`.
pub fn settings_for(database: &TestDatabase, dcs_url: &str, public_url: &str) -> Settings {
    settings_from(&[
        ("LMS_JWT_SECRET", TEST_JWT_SECRET),
        ("DATABASE_URL", &database.url),
        ("DREAM_CENTRAL_STORAGE_URL", dcs_url),
        ("DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET", RECORDED_SECRET),
        ("LMS_PUBLIC_URL", public_url),
    ])
    .expect("valid test settings")
}

/// A DCS client with fast retries and no circuit breaker (tests count requests exactly).
pub fn fast_client(config: DcsConfig) -> Arc<dyn DcsApi> {
    Arc::new(crate::support::fast_dcs_client(config, 0))
}

/// App state over `database` with the given DCS client and cache.
pub fn state_with(
    settings: Settings,
    database: &TestDatabase,
    dcs: Arc<dyn DcsApi>,
    cache: Cache,
) -> AppState {
    let services = Services::new(&settings, dcs, cache).expect("services");
    AppState::with_services(settings, database.db.clone(), services)
}

/// A fake DCS and an app state talking to it.
pub struct Fixture {
    pub dcs: MockDcs,
    pub state: AppState,
}

pub async fn fixture(database: &TestDatabase) -> Fixture {
    let dcs = start_dcs().await;
    let settings = settings_for(database, dcs.base_url(), PUBLIC_URL);
    let client = fast_client(dcs_config(&settings));
    let cache = Cache::new(cache_config(&settings));
    let state = state_with(settings, database, client, cache);
    Fixture { dcs, state }
}

/// One recorded delivery from `testdata/dcs-samples/webhook-*.json`.
#[derive(Debug, Clone)]
pub struct RecordedDelivery {
    pub name: String,
    pub event: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedDelivery {
    pub fn signature(&self) -> &str {
        &self
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(SIGNATURE_HEADER))
            .expect("recorded signature header")
            .1
    }

    /// The request exactly as DCS sent it (minus the connection-level `Host` and `Connection`).
    pub fn replay(&self) -> actix_test::TestRequest {
        let mut request = actix_test::TestRequest::post().uri(WEBHOOK_PATH);
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("connection") {
                continue;
            }
            request = request.insert_header((name.as_str(), value.as_str()));
        }
        request.set_payload(self.body.clone())
    }
}

/// Every recorded delivery that carries its raw body (there are eight).
pub fn recorded_deliveries() -> Vec<RecordedDelivery> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dcs-samples");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("samples directory") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.starts_with("webhook-") || path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let sample: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read sample"))
                .expect("sample is JSON");
        let Some(body_base64) = sample["delivery"]["body_base64"].as_str() else {
            continue;
        };
        assert_eq!(
            sample["signature_check"]["test_secret"], RECORDED_SECRET,
            "{name}"
        );
        let headers = sample["delivery"]["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().expect("name").to_owned(),
                    pair[1].as_str().expect("value").to_owned(),
                )
            })
            .collect();
        found.push(RecordedDelivery {
            event: sample["event"].as_str().expect("event").to_owned(),
            body: base64::engine::general_purpose::STANDARD
                .decode(body_base64)
                .expect("base64 body"),
            headers,
            name,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(found.len(), 8, "recorded deliveries: {found:?}");
    found
}

/// `sha256=<hex>` for `body` under `secret`.
pub fn sign_with(secret: &str, body: &[u8]) -> String {
    SignatureVerifier::new(secret.to_owned().into()).sign(body)
}

/// A delivery as DCS would send it for a book (unique timestamp, so unique bytes).
pub fn book_delivery(event: &str, id: i64, title: &str) -> Vec<u8> {
    let timestamp = Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
    format!(
        r#"{{"event":"{event}","timestamp":"{timestamp}","data":{{"id":{id},"book_name":"FLOWDEMO","book_title":"{title}","publisher":"Dream Press","language":"en","category":"English","status":"published"}}}}"#
    )
    .into_bytes()
}

/// A signed delivery request.
pub fn signed_request(body: &[u8]) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri(WEBHOOK_PATH)
        .insert_header(("Content-Type", "application/json"))
        .insert_header((SIGNATURE_HEADER, sign_with(RECORDED_SECRET, body)))
        .set_payload(body.to_vec())
}

pub async fn all_event_rows(state: &AppState) -> Vec<webhook_event_log::Model> {
    webhook_event_log::Entity::find()
        .all(&state.db)
        .await
        .expect("read webhook_event_logs")
}

async fn book_title(state: &AppState, id: i64) -> String {
    let served = state.services.catalog.book(id).await.expect("book");
    let book: serde_json::Value = serde_json::from_slice(&served.value).expect("book JSON");
    book["book_title"].as_str().expect("title").to_owned()
}

async fn publisher_display_name(state: &AppState, id: i64) -> Option<String> {
    let served = state
        .services
        .catalog
        .publisher(id)
        .await
        .expect("publisher");
    let publisher: serde_json::Value =
        serde_json::from_slice(&served.value).expect("publisher JSON");
    publisher["display_name"].as_str().map(str::to_owned)
}

/// Sends a [`actix_test::TestRequest`] to the app and waits for the response.
macro_rules! call {
    ($app:expr, $request:expr) => {
        actix_test::call_service($app, $request.to_request()).await
    };
}
// ----- recorded deliveries ---------------------------------------------------------------------

async fn every_recorded_delivery_is_processed_once(database: TestDatabase) {
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;
    let deliveries = recorded_deliveries();

    let mut event_ids = Vec::new();
    for delivery in &deliveries {
        let response = call!(&app, delivery.replay());
        assert_eq!(response.status(), StatusCode::OK, "{}", delivery.name);
        let body = json_body(response).await;
        assert_eq!(body["status"], "received", "{}: {body}", delivery.name);
        assert_eq!(body["outcome"], "processed", "{}: {body}", delivery.name);
        assert_eq!(body["duplicate"], false, "{}", delivery.name);
        let event_id = body["event_id"].as_str().expect("event_id").to_owned();
        uuid::Uuid::parse_str(&event_id).expect("event_id is a UUID");
        event_ids.push(event_id);
    }

    // DCS's retries resend the same bytes: acknowledged with the same id, not processed again.
    for (delivery, event_id) in deliveries.iter().zip(&event_ids) {
        let response = call!(&app, delivery.replay());
        assert_eq!(response.status(), StatusCode::OK, "{}", delivery.name);
        let body = json_body(response).await;
        assert_eq!(body["event_id"], event_id.as_str(), "{}", delivery.name);
        assert_eq!(body["duplicate"], true, "{}", delivery.name);
        assert_eq!(body["status"], "received", "{}", delivery.name);
        assert_eq!(body["outcome"], "processed", "{}", delivery.name);
    }

    let rows = all_event_rows(&state).await;
    assert_eq!(
        rows.len(),
        deliveries.len(),
        "one row per distinct delivery"
    );
    for (delivery, event_id) in deliveries.iter().zip(&event_ids) {
        let row = rows
            .iter()
            .find(|row| row.id.to_string() == *event_id)
            .unwrap_or_else(|| panic!("row of {}", delivery.name));
        assert_eq!(
            row.status,
            WebhookEventStatus::Processed,
            "{}",
            delivery.name
        );
        assert_eq!(row.event_type, delivery.event, "{}", delivery.name);
        assert_eq!(row.body_sha256, body_digest(&delivery.body));
        assert_eq!(row.payload.as_bytes(), delivery.body.as_slice());
        assert_eq!(row.error, None);
        let processed_at = row.processed_at.expect("processed_at");
        assert!(processed_at >= row.received_at);
    }

    let metrics = state.webhooks.metrics();
    for event in [
        "book.created",
        "book.updated",
        "book.deleted",
        "publisher.created",
        "publisher.updated",
        "publisher.deleted",
    ] {
        let recorded = deliveries.iter().filter(|d| d.event == event).count() as u64;
        assert!(recorded > 0, "the samples cover {event}");
        assert_eq!(metrics.count(event, DeliveryOutcome::Processed), recorded);
        assert_eq!(metrics.count(event, DeliveryOutcome::Duplicate), recorded);
    }
    let exposition = state.metrics.render().expect("metrics");
    assert!(
        exposition.contains(
            r#"dcs_webhook_deliveries_total{event="book.updated",outcome="processed"} 1"#
        ),
        "{exposition}"
    );
}
on_both_databases!(every_recorded_delivery_is_processed_once);

// ----- refusals --------------------------------------------------------------------------------

async fn bad_signatures_are_refused_before_anything_is_logged(database: TestDatabase) {
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;
    let delivery = &recorded_deliveries()[0];

    let mut tampered = delivery.body.clone();
    let position = tampered.len() / 2;
    tampered[position] ^= 0x01;
    let wrong_secret = sign_with("some-other-webhook-secret-000000", &delivery.body);
    let cases: Vec<(&str, Vec<u8>, Option<String>, &str)> = vec![
        (
            "tampered body",
            tampered,
            Some(delivery.signature().to_owned()),
            "webhook_signature_invalid",
        ),
        (
            "missing header",
            delivery.body.clone(),
            None,
            "webhook_signature_missing",
        ),
        (
            "wrong secret",
            delivery.body.clone(),
            Some(wrong_secret),
            "webhook_signature_invalid",
        ),
        (
            "not hex",
            delivery.body.clone(),
            Some("sha256=zz".to_owned()),
            "webhook_signature_invalid",
        ),
        (
            "no scheme",
            delivery.body.clone(),
            Some(
                delivery
                    .signature()
                    .trim_start_matches("sha256=")
                    .to_owned(),
            ),
            "webhook_signature_invalid",
        ),
    ];
    for (case, body, signature, code) in cases {
        let mut request = actix_test::TestRequest::post()
            .uri(WEBHOOK_PATH)
            .insert_header(("Content-Type", "application/json"));
        if let Some(signature) = signature {
            request = request.insert_header((SIGNATURE_HEADER, signature));
        }
        let response = call!(&app, request.set_payload(body));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        assert!(
            response.headers().get("www-authenticate").is_none(),
            "{case}: not a bearer challenge"
        );
        let body = json_body(response).await;
        assert_eq!(body["code"], code, "{case}: {body}");
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }

    assert!(all_event_rows(&state).await.is_empty(), "nothing logged");
    assert_eq!(
        state
            .webhooks
            .metrics()
            .count("unverified", DeliveryOutcome::Rejected),
        5
    );
}
on_both_databases!(bad_signatures_are_refused_before_anything_is_logged);

async fn signed_but_malformed_bodies_are_400_and_logged_failed(database: TestDatabase) {
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;

    let no_id = br#"{"event":"book.updated","timestamp":"2026-11-22T09:32:53.499233Z","data":{}}"#;
    let not_json = b"this is not json";
    for (body, event_type) in [
        (&no_id[..], "book.updated"),
        (&not_json[..], "(unreadable)"),
    ] {
        let response = call!(&app, signed_request(body));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer = json_body(response).await;
        assert_eq!(answer["code"], "webhook_body_malformed", "{answer}");
        let detail = answer["detail"].as_str().expect("detail");
        assert!(detail.starts_with("Malformed webhook body: "), "{detail}");
        assert!(
            !detail.to_lowercase()[1..].contains("malformed webhook body"),
            "said once: {detail}"
        );
        let event_id = answer["event_id"].as_str().expect("event_id").to_owned();

        let row = state
            .webhooks
            .events()
            .find_by_digest(&body_digest(body))
            .await
            .unwrap()
            .expect("malformed deliveries are logged too");
        assert_eq!(row.id.to_string(), event_id);
        assert_eq!(row.status, DeliveryStatus::Failed);
        assert_eq!(row.event_type, event_type);
        assert!(
            row.error
                .as_deref()
                .is_some_and(|e| e.contains("malformed"))
        );

        // A retry is processed again (the row was failed) and fails the same way.
        let again = call!(&app, signed_request(body));
        assert_eq!(again.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json_body(again).await["event_id"], event_id.as_str());
    }
    assert_eq!(all_event_rows(&state).await.len(), 2);
    assert_eq!(
        state
            .webhooks
            .metrics()
            .count("malformed", DeliveryOutcome::Malformed),
        4
    );
}
on_both_databases!(signed_but_malformed_bodies_are_400_and_logged_failed);

async fn unknown_event_types_are_acknowledged_and_ignored(database: TestDatabase) {
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;
    let body =
        br#"{"event":"processing.completed","timestamp":"2026-11-22T09:40:00.000001Z","data":{"book_id":1}}"#;

    let response = call!(&app, signed_request(body));
    assert_eq!(response.status(), StatusCode::OK);
    let first = json_body(response).await;
    // Acknowledged with the interface's fixed status; the outcome says nothing was done.
    assert_eq!(first["status"], "received", "{first}");
    assert_eq!(first["outcome"], "ignored", "{first}");
    assert_eq!(first["duplicate"], false);

    let again = json_body(call!(&app, signed_request(body))).await;
    assert_eq!(again["status"], "received");
    assert_eq!(again["outcome"], "ignored");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], first["event_id"]);

    let rows = all_event_rows(&state).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, WebhookEventStatus::Ignored);
    assert_eq!(rows[0].event_type, "processing.completed");
    assert!(rows[0].processed_at.is_some());
    assert_eq!(
        state
            .webhooks
            .metrics()
            .count("unknown", DeliveryOutcome::Ignored),
        1
    );
}
on_both_databases!(unknown_event_types_are_acknowledged_and_ignored);

#[actix_web::test]
async fn oversize_bodies_are_413() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite");
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let signature = sign_with(RECORDED_SECRET, &body);

    // Refused on the declared length, and while reading when no length is declared.
    for declare_length in [true, false] {
        let mut request = actix_test::TestRequest::post()
            .uri(WEBHOOK_PATH)
            .insert_header((SIGNATURE_HEADER, signature.clone()));
        if declare_length {
            request = request.insert_header(("Content-Length", body.len().to_string()));
        }
        let response = call!(&app, request.set_payload(body.clone()));
        assert_eq!(
            response.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "declared: {declare_length}"
        );
        assert_eq!(json_body(response).await["code"], "payload_too_large");
    }

    // Exactly at the limit is read (and then refused for what it is: not a delivery).
    let at_limit = vec![b' '; MAX_BODY_BYTES];
    let response = call!(&app, signed_request(&at_limit));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(all_event_rows(&state).await.len(), 1);
}

// ----- invalidation ---------------------------------------------------------------------------

async fn book_updated_delivery_makes_the_catalog_fetch_fresh_data(database: TestDatabase) {
    let Fixture { dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;

    assert_eq!(book_title(&state, 1).await, "Flow Demo English 1");
    dcs.update_book(
        1,
        BookUpdate {
            book_title: Some("Flow Demo English 1 (revised)".to_owned()),
            ..BookUpdate::default()
        },
    )
    .expect("update the book in DCS");
    assert_eq!(
        book_title(&state, 1).await,
        "Flow Demo English 1",
        "served from the cache until DCS says otherwise"
    );

    let body = book_delivery("book.updated", 1, "Flow Demo English 1 (revised)");
    let response = call!(&app, signed_request(&body));
    assert_eq!(response.status(), StatusCode::OK);

    assert_eq!(book_title(&state, 1).await, "Flow Demo English 1 (revised)");
}
on_both_databases!(book_updated_delivery_makes_the_catalog_fetch_fresh_data);

/// The fake DCS delivers over HTTP to a running LMS that registered itself.
async fn deliveries_from_dcs_reach_the_running_lms(database: TestDatabase) {
    let dcs = start_dcs().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let public_url = format!("http://{}", listener.local_addr().expect("address"));
    let settings = settings_for(&database, dcs.base_url(), &public_url);
    let client = fast_client(dcs_config(&settings));
    let cache = Cache::new(cache_config(&settings));
    let state = state_with(settings, &database, client, cache);

    let server_state = state.clone();
    let server = actix_web::HttpServer::new(move || create_app(server_state.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let server_handle = server.handle();
    actix_web::rt::spawn(server);

    let outcome = state
        .webhook_registrar("test")
        .register()
        .await
        .expect("register with the fake DCS");
    assert_eq!(outcome.action, RegistrationAction::Created);
    assert_eq!(
        outcome.url,
        format!("{public_url}/api/v1/webhooks/dream-storage")
    );

    assert_eq!(book_title(&state, 1).await, "Flow Demo English 1");
    let display_name_before = publisher_display_name(&state, 1).await;
    assert_ne!(
        display_name_before.as_deref(),
        Some("Dream Press International")
    );
    dcs.update_book(
        1,
        BookUpdate {
            book_title: Some("Delivered by DCS".to_owned()),
            ..BookUpdate::default()
        },
    )
    .expect("update book");
    dcs.update_publisher(
        1,
        PublisherUpdate {
            display_name: Some("Dream Press International".to_owned()),
            ..PublisherUpdate::default()
        },
    )
    .expect("update publisher");
    dcs.wait_for_deliveries().await;

    let logs = dcs.delivery_logs();
    assert_eq!(logs.len(), 2, "{logs:?}");
    for log in &logs {
        assert_eq!(log.response_status, Some(200), "{log:?}");
        assert_eq!(
            log.attempt_count, 1,
            "answered at the first attempt: {log:?}"
        );
    }
    assert_eq!(book_title(&state, 1).await, "Delivered by DCS");
    assert_eq!(
        publisher_display_name(&state, 1).await.as_deref(),
        Some("Dream Press International")
    );

    let rows = all_event_rows(&state).await;
    let mut events: Vec<&str> = rows.iter().map(|row| row.event_type.as_str()).collect();
    events.sort_unstable();
    assert_eq!(events, ["book.updated", "publisher.updated"]);
    assert!(
        rows.iter()
            .all(|row| row.status == WebhookEventStatus::Processed)
    );
    // The body DCS signed and sent is what was logged.
    for log in &logs {
        assert!(rows.iter().any(|row| row.payload == log.payload), "{log:?}");
    }

    server_handle.stop(true).await;
}
on_both_databases!(deliveries_from_dcs_reach_the_running_lms);

// ----- concurrency and failures ----------------------------------------------------------------

async fn concurrent_identical_deliveries_are_processed_once(database: TestDatabase) {
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state.clone())).await;
    let body = book_delivery("book.updated", 1, "Concurrent");

    let responses = futures_util::future::join_all(
        (0..8).map(|_| actix_test::call_service(&app, signed_request(&body).to_request())),
    )
    .await;
    let mut answers = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
        answers.push(json_body(response).await);
    }
    let fresh = answers.iter().filter(|a| a["duplicate"] == false).count();
    assert_eq!(fresh, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| a["event_id"] == answers[0]["event_id"] && a["status"] == "received")
    );

    let rows = all_event_rows(&state).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, WebhookEventStatus::Processed);
    let metrics = state.webhooks.metrics();
    assert_eq!(metrics.count("book.updated", DeliveryOutcome::Processed), 1);
    assert_eq!(metrics.count("book.updated", DeliveryOutcome::Duplicate), 7);
}
on_both_databases!(concurrent_identical_deliveries_are_processed_once);

/// A shared cache tier whose removals fail while `down` is set (Redis unreachable).
#[derive(Debug)]
struct FlakySharedTier {
    inner: cache::LocalStore,
    down: Arc<AtomicBool>,
}

impl FlakySharedTier {
    fn check(&self, operation: &'static str) -> Result<(), BackendError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BackendError::new("flaky", operation, "connection refused"));
        }
        Ok(())
    }
}

#[async_trait]
impl CacheStore for FlakySharedTier {
    fn name(&self) -> &'static str {
        "flaky"
    }

    fn retains_stale(&self) -> bool {
        self.inner.retains_stale()
    }

    async fn get(&self, key: &str) -> Result<Option<StoredEntry>, BackendError> {
        CacheStore::get(&self.inner, key).await
    }

    async fn put(&self, key: &str, entry: StoredEntry) -> Result<(), BackendError> {
        CacheStore::put(&self.inner, key, entry).await
    }

    async fn remove(&self, key: &str) -> Result<bool, BackendError> {
        self.check("remove")?;
        CacheStore::remove(&self.inner, key).await
    }

    async fn remove_prefix(&self, prefix: &SegmentPrefix) -> Result<Vec<String>, BackendError> {
        self.check("remove_prefix")?;
        CacheStore::remove_prefix(&self.inner, prefix).await
    }

    async fn clear(&self) -> Result<u64, BackendError> {
        self.check("clear")?;
        CacheStore::clear(&self.inner).await
    }
}

async fn incomplete_invalidation_is_503_and_processed_again_on_retry(database: TestDatabase) {
    let dcs = start_dcs().await;
    let settings = settings_for(&database, dcs.base_url(), PUBLIC_URL);
    let client = fast_client(dcs_config(&settings));
    let down = Arc::new(AtomicBool::new(false));
    let shared = FlakySharedTier {
        inner: cache::LocalStore::new(
            cache_config(&settings).capacity_bytes,
            Arc::new(cache::SystemClock),
        ),
        down: down.clone(),
    };
    let cache = Cache::builder(cache_config(&settings))
        .shared_tier(Arc::new(shared))
        .build();
    let state = state_with(settings, &database, client, cache);
    let app = actix_test::init_service(create_app(state.clone())).await;

    assert_eq!(book_title(&state, 1).await, "Flow Demo English 1");
    dcs.update_book(
        1,
        BookUpdate {
            book_title: Some("After the outage".to_owned()),
            ..BookUpdate::default()
        },
    )
    .expect("update book");

    down.store(true, Ordering::SeqCst);
    let body = book_delivery("book.updated", 1, "After the outage");
    let response = call!(&app, signed_request(&body));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), "1");
    let answer = json_body(response).await;
    assert_eq!(answer["code"], "cache_invalidation_incomplete", "{answer}");
    let event_id = answer["event_id"].as_str().expect("event_id").to_owned();
    let row = state
        .webhooks
        .events()
        .find_by_digest(&body_digest(&body))
        .await
        .unwrap()
        .expect("row");
    assert_eq!(row.status, DeliveryStatus::Failed);
    assert!(
        row.error
            .as_deref()
            .is_some_and(|e| e.contains("cache invalidation incomplete")),
        "{row:?}"
    );

    // DCS retries the same bytes once the shared tier is back: processed this time.
    down.store(false, Ordering::SeqCst);
    let response = call!(&app, signed_request(&body));
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_body(response).await;
    assert_eq!(answer["event_id"], event_id.as_str());
    assert_eq!(
        answer["duplicate"], false,
        "processed again, not a duplicate"
    );
    let row = state
        .webhooks
        .events()
        .find(row.id)
        .await
        .unwrap()
        .expect("row");
    assert_eq!(row.status, DeliveryStatus::Processed);
    assert_eq!(row.error, None);
    assert_eq!(book_title(&state, 1).await, "After the outage");

    let metrics = state.webhooks.metrics();
    assert_eq!(metrics.count("book.updated", DeliveryOutcome::Failed), 1);
    assert_eq!(metrics.count("book.updated", DeliveryOutcome::Processed), 1);
    assert_eq!(all_event_rows(&state).await.len(), 1);
}
on_both_databases!(incomplete_invalidation_is_503_and_processed_again_on_retry);

async fn abandoned_processing_is_waited_for_then_taken_over(database: TestDatabase) {
    let Fixture {
        dcs: _dcs,
        mut state,
    } = fixture(&database).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let clock = ManualClock::at(start);
    let timing = ReceiverTiming {
        claim_lease: Duration::from_secs(4),
        in_progress_wait: Duration::from_millis(60),
        poll_interval: Duration::from_millis(10),
    };
    let events = DeliveryLog::with_clock(SqlDeliveryStore::new(state.db.clone()), clock.clone());
    state.webhooks = state
        .webhooks
        .clone()
        .with_events(events.clone())
        .with_timing(timing);
    let app = actix_test::init_service(create_app(state.clone())).await;

    // A processor claims the delivery and dies before finishing.
    let body = book_delivery("book.deleted", 1, "Flow Demo English 1");
    let digest = body_digest(&body);
    let payload = String::from_utf8(body.clone()).unwrap();
    let crashed = match events
        .claim(
            &NewDelivery {
                body_sha256: &digest,
                event_type: "book.deleted",
                payload: &payload,
            },
            timing.claim_lease,
        )
        .await
        .unwrap()
    {
        domain::webhook_log::Claim::New(record) => record,
        other => panic!("expected a new claim, got {other:?}"),
    };

    // Within the lease, DCS's retry waits for the outcome, then asks to be retried.
    let response = call!(&app, signed_request(&body));
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), "1");
    let answer = json_body(response).await;
    assert_eq!(answer["code"], "webhook_in_progress");
    assert_eq!(answer["event_id"], crashed.id.to_string().as_str());

    // Past the lease, the next retry takes the delivery over and processes it.
    clock.set(start + chrono::Duration::seconds(4));
    let response = call!(&app, signed_request(&body));
    assert_eq!(response.status(), StatusCode::OK);
    let answer = json_body(response).await;
    assert_eq!(answer["event_id"], crashed.id.to_string().as_str());
    assert_eq!(answer["duplicate"], false);

    // The dead processor's late outcome does not overwrite it.
    assert!(!events.mark_failed(&crashed, "late").await.unwrap());
    let row = events.find(crashed.id).await.unwrap().expect("row");
    assert_eq!(row.status, DeliveryStatus::Processed);
    assert_eq!(
        state
            .webhooks
            .metrics()
            .count("book.deleted", DeliveryOutcome::InProgress),
        1
    );
}
on_both_databases!(abandoned_processing_is_waited_for_then_taken_over);

// ----- logs and docs ---------------------------------------------------------------------------

/// Log lines written while it is installed on this thread.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Captures every event on this thread (all levels) until the guard is dropped.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

pub struct CapturedWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedWriter;

    fn make_writer(&'a self) -> CapturedWriter {
        CapturedWriter(self.0.clone())
    }
}

#[actix_web::test]
async fn openapi_documents_the_webhook_routes() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite");
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state)).await;
    let response = call!(&app, actix_test::TestRequest::get().uri("/openapi.json"));
    let doc = json_body(response).await;

    let receive = &doc["paths"][WEBHOOK_PATH]["post"];
    assert!(receive.is_object(), "{doc}");
    let parameters = receive["parameters"].as_array().expect("parameters");
    assert!(
        parameters
            .iter()
            .any(|p| p["name"] == SIGNATURE_HEADER && p["in"] == "header"),
        "{parameters:?}"
    );
    for status in ["200", "400", "401", "413", "503"] {
        assert!(receive["responses"][status].is_object(), "{status}");
    }
    assert!(
        receive["requestBody"]["content"]["application/json"].is_object(),
        "{receive}"
    );
    let register = &doc["paths"]["/api/v1/admin/webhooks/register"]["post"];
    for status in ["200", "401", "403", "503"] {
        assert!(register["responses"][status].is_object(), "{status}");
    }
    let receipt = &doc["components"]["schemas"]["Receipt"]["properties"];
    for field in ["status", "event_id", "outcome", "duplicate"] {
        assert!(receipt[field].is_object(), "{field}: {receipt}");
    }
}

#[actix_web::test]
async fn wrong_method_on_the_webhook_route_is_405() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite");
    let Fixture { dcs: _dcs, state } = fixture(&database).await;
    let app = actix_test::init_service(create_app(state)).await;
    let response = call!(&app, actix_test::TestRequest::get().uri(WEBHOOK_PATH));
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&response, "allow"), "POST");
}
