//! Two lms-api instances on one Redis: a webhook delivered to one makes the other serve fresh
//! data (the shared tier is cleared and the other instance's local tier is told over pub/sub).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use cache::{Cache, CacheConfig, RedisConfig};
use dcs_mock::{BookUpdate, MockConfig, MockDcs};
use lms_api::auth::Role;
use lms_api::create_app;
use uuid::Uuid;

use crate::support::{TestDatabase, header, json_body, on_both_databases, state_with_dcs, token};

/// The Redis the tests use (`REDIS_URL`, default the local server).
fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

async fn two_instances_share_invalidations(db: TestDatabase) {
    let dcs = MockDcs::start(MockConfig::default())
        .await
        .expect("fake DCS");
    // One namespace per test run, so parallel runs do not see each other.
    let namespace = format!("lms-test:{}:", Uuid::new_v4().simple());
    let redis = RedisConfig::new(redis_url()).with_namespace(namespace.clone());
    let cache_a = Cache::with_redis(CacheConfig::default(), &redis).expect("cache A");
    let cache_b = Cache::with_redis(CacheConfig::default(), &redis).expect("cache B");
    // Each instance drops its local tier when its pub/sub subscription (re)connects, and a
    // fetch racing with that is not cached: start once both are subscribed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cache_a.stats().resyncs == 0 || cache_b.stats().resyncs == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "pub/sub never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let state_a = state_with_dcs(&db, dcs.base_url(), cache_a.clone());
    let state_b = state_with_dcs(&db, dcs.base_url(), cache_b.clone());
    let a = actix_test::init_service(create_app(state_a.clone())).await;
    let b = actix_test::init_service(create_app(state_b)).await;
    let get_book = || {
        actix_test::TestRequest::get()
            .uri("/api/v1/books/1")
            .insert_header(("Authorization", format!("Bearer {}", token(Role::Teacher))))
            .to_request()
    };

    // A fetches from DCS; B is served from the shared Redis tier, without asking DCS.
    let response = actix_test::call_service(&a, get_book()).await;
    assert_eq!(header(&response, "x-cache"), "MISS");
    let requests = dcs.request_count("GET /books/1");
    let response = actix_test::call_service(&b, get_book()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_body(response).await["book_title"],
        "Flow Demo English 1"
    );
    assert_eq!(
        dcs.request_count("GET /books/1"),
        requests,
        "B read Redis, not DCS"
    );
    assert!(cache_b.local_contains("dcs:books:id:1"));

    // The book changes in DCS; the webhook reaches instance A only.
    dcs.update_book(
        1,
        BookUpdate {
            book_title: Some("Flow Demo English 2".into()),
            ..BookUpdate::default()
        },
    )
    .unwrap();
    let body = br#"{"event":"book.updated","timestamp":"2026-11-22T09:32:53.499233Z","data":{"id":1,"book_name":"FLOWDEMO","book_title":"Flow Demo English 2","publisher":"Dream Press","language":"en","category":"English","status":"published"}}"#;
    let signature = state_a.services.webhook_verifier.sign(body);
    let response = actix_test::call_service(
        &a,
        actix_test::TestRequest::post()
            .uri("/api/v1/webhooks/dream-storage")
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("X-Webhook-Signature", signature))
            .set_payload(body.to_vec())
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    // B drops its local copy when the broadcast arrives (bounded wait, no fixed sleep).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while cache_b.local_contains("dcs:books:id:1") {
        assert!(
            std::time::Instant::now() < deadline,
            "instance B never heard of the invalidation"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let response = actix_test::call_service(&b, get_book()).await;
    assert_eq!(header(&response, "x-cache"), "MISS");
    assert_eq!(
        json_body(response).await["book_title"],
        "Flow Demo English 2"
    );

    // Clean up this run's keys.
    cache_a.clear().await.expect("clear the test namespace");
}
on_both_databases!(two_instances_share_invalidations);
