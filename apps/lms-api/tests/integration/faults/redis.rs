//! Redis lost and back: a private `redis-server` process (never the machine's shared one) is
//! killed with SIGKILL under two lms-api instances in Redis mode, then started again on the
//! same port.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use dcs_mock::{BookUpdate, MockConfig, MockDcs};
use lms_api::auth::Role;
use lms_api::{AppState, create_app};

use super::{LOAD_MARGIN, assert_within, poll_until};
use crate::support::{Engine, TEST_JWT_SECRET, TestDatabase, header, json_body, token};
use cache::testing::RedisServer;

/// `RedisConfig`'s defaults (crates/cache): 1 s to connect, 500 ms per command; after a
/// connection-level failure Redis is skipped for 1 s. A read or an invalidation never waits
/// longer than one connect plus one command for Redis.
const REDIS_WAIT: Duration = Duration::from_millis(1500);
/// The pub/sub subscriber reconnects with backoff capped at 5 s (`reconnect_max_delay`), then
/// connects within `connect_timeout` (1 s).
const RESUBSCRIBE: Duration = Duration::from_secs(6);
/// `/ready` runs its checks concurrently, each within 800 ms (`readiness::DEFAULT_CHECK_TIMEOUT`).
const READY_WAIT: Duration = lms_api::readiness::DEFAULT_CHECK_TIMEOUT;

fn get(uri: &str) -> actix_http::Request {
    actix_test::TestRequest::get()
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {}", token(Role::Teacher))))
        .to_request()
}

/// A `book.updated` delivery for book 1, signed for `state`.
fn book_updated(state: &AppState, title: &str, at: &str) -> actix_http::Request {
    let body = format!(
        r#"{{"event":"book.updated","timestamp":"{at}","data":{{"id":1,"book_name":"FLOWDEMO","book_title":"{title}","publisher":"Dream Press","language":"en","category":"English","status":"published"}}}}"#
    );
    let signature = state.services.webhook_verifier.sign(body.as_bytes());
    actix_test::TestRequest::post()
        .uri("/api/v1/webhooks/dream-storage")
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Webhook-Signature", signature))
        .set_payload(body)
        .to_request()
}

fn retitle(dcs: &MockDcs, title: &str) {
    dcs.update_book(
        1,
        BookUpdate {
            book_title: Some(title.into()),
            ..BookUpdate::default()
        },
    )
    .expect("update the book in DCS");
}

#[actix_web::test]
async fn redis_killed_and_restarted_under_two_instances() {
    let db = TestDatabase::open(Engine::Sqlite).await.expect("SQLite");
    let dcs = MockDcs::start(MockConfig::default()).await.expect("DCS");
    let mut redis = RedisServer::start().await;
    let redis_url = redis.url();
    let settings = crate::support::settings_from(&[
        ("LMS_JWT_SECRET", TEST_JWT_SECRET),
        ("DATABASE_URL", db.url.as_str()),
        ("DREAM_CENTRAL_STORAGE_URL", dcs.base_url()),
        ("REDIS_URL", redis_url.as_str()),
    ])
    .expect("settings");
    // Two instances as `serve` builds them from these settings, sharing Redis and the database.
    let state_a = AppState::new(settings.clone(), db.db.clone()).expect("instance A");
    let state_b = AppState::new(settings, db.db.clone()).expect("instance B");
    let (cache_a, cache_b) = (
        state_a.services.cache.clone(),
        state_b.services.cache.clone(),
    );
    let subscribed = |cache: &cache::Cache, after: u64| cache.stats().resyncs > after;
    poll_until(
        "both instances subscribed",
        RESUBSCRIBE,
        Duration::from_millis(10),
        async || (subscribed(&cache_a, 0) && subscribed(&cache_b, 0)).then_some(()),
    )
    .await;
    let a = actix_test::init_service(create_app(state_a.clone())).await;
    let b = actix_test::init_service(create_app(state_b.clone())).await;

    // Normal service: A reads DCS, B reads what A put in Redis.
    let response = actix_test::call_service(&a, get("/api/v1/books/1")).await;
    assert_eq!(header(&response, "x-cache"), "MISS");
    let reads = dcs.request_count("GET /books/");
    let response = actix_test::call_service(&b, get("/api/v1/books/1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(dcs.request_count("GET /books/"), reads, "B read Redis");
    assert!(cache_b.local_contains("dcs:books:id:1"));

    // Redis dies.
    redis.kill().await;
    let (resyncs_a, resyncs_b) = (cache_a.stats().resyncs, cache_b.stats().resyncs);

    // Reads still answer: from the local tier, or from DCS without waiting for Redis.
    let started = Instant::now();
    let response = actix_test::call_service(&b, get("/api/v1/books/1")).await;
    assert_within("local-tier hit", started, REDIS_WAIT + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-cache"), "HIT");
    for uri in [
        "/api/v1/books",
        "/api/v1/publishers",
        "/api/v1/publishers/1",
    ] {
        let started = Instant::now();
        let response = actix_test::call_service(&a, get(uri)).await;
        assert_within(uri, started, REDIS_WAIT + LOAD_MARGIN);
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }

    // Readiness: still in rotation, degraded, Redis named.
    let started = Instant::now();
    let response = actix_test::call_service(
        &a,
        actix_test::TestRequest::get().uri("/ready").to_request(),
    )
    .await;
    assert_within("/ready", started, READY_WAIT + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::OK);
    let readiness = json_body(response).await;
    assert_eq!(readiness["status"], "degraded", "{readiness}");
    assert_eq!(readiness["checks"]["redis"]["ok"], false, "{readiness}");
    assert_eq!(readiness["checks"]["redis"]["required"], false);
    assert_eq!(readiness["checks"]["database"]["ok"], true);

    // A webhook reaches A: A's own tier is cleared, but B cannot be told, so the delivery is
    // answered 503 for DCS to retry it.
    retitle(&dcs, "Flow Demo English 2");
    let first_delivery = || book_updated(&state_a, "Flow Demo English 2", "2026-12-01T10:00:00Z");
    let started = Instant::now();
    let response = actix_test::call_service(&a, first_delivery()).await;
    assert_within("webhook with Redis down", started, REDIS_WAIT + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!header(&response, "retry-after").is_empty());
    let body = json_body(response).await;
    assert_eq!(body["code"], "cache_invalidation_incomplete", "{body}");
    assert!(!cache_a.local_contains("dcs:books:id:1"));
    assert!(cache_b.local_contains("dcs:books:id:1"), "B missed it");
    // A real outage outlasts the reconnect attempts that the failed commands started.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Redis is back on its port: both subscriptions reconnect and drop their local tier
    // (messages sent while they were away are lost), so B no longer holds the old book.
    redis.start_again().await;
    let (_, took) = poll_until(
        "both instances resubscribed",
        RESUBSCRIBE + LOAD_MARGIN,
        Duration::from_millis(20),
        async || (subscribed(&cache_a, resyncs_a) && subscribed(&cache_b, resyncs_b)).then_some(()),
    )
    .await;
    eprintln!("resubscribed {took:?} after the restart");
    assert!(!cache_b.local_contains("dcs:books:id:1"));
    let response = actix_test::call_service(&b, get("/api/v1/books/1")).await;
    assert_eq!(header(&response, "x-cache"), "MISS");
    assert_eq!(
        json_body(response).await["book_title"],
        "Flow Demo English 2"
    );
    poll_until(
        "/ready with Redis ok",
        REDIS_WAIT + LOAD_MARGIN,
        Duration::from_millis(50),
        async || {
            let response = actix_test::call_service(
                &a,
                actix_test::TestRequest::get().uri("/ready").to_request(),
            )
            .await;
            let readiness = json_body(response).await;
            (readiness["checks"]["redis"]["ok"] == true).then_some(())
        },
    )
    .await;

    // DCS retries the delivery that failed (twice, 1 s and 2 s apart): the first retry after
    // Redis is back goes through, though the publishing connection has not been used since
    // the outage (its first command meets the dead connection and is sent again).
    let started = Instant::now();
    let response = actix_test::call_service(&a, first_delivery()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_within("the retried delivery", started, REDIS_WAIT + LOAD_MARGIN);

    // And a new change reaches B through Redis again.
    let response = actix_test::call_service(&b, get("/api/v1/books/1")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(cache_b.local_contains("dcs:books:id:1"));
    retitle(&dcs, "Flow Demo English 3");
    let response = actix_test::call_service(
        &a,
        book_updated(&state_a, "Flow Demo English 3", "2026-12-01T10:05:00Z"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    poll_until(
        "B told of the invalidation",
        REDIS_WAIT + LOAD_MARGIN,
        Duration::from_millis(10),
        async || (!cache_b.local_contains("dcs:books:id:1")).then_some(()),
    )
    .await;
    let response = actix_test::call_service(&b, get("/api/v1/books/1")).await;
    assert_eq!(
        json_body(response).await["book_title"],
        "Flow Demo English 3"
    );
}
