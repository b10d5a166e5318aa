//! `/health`, `/ready`, `/metrics`, `/openapi.json` and the request-id header.

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use lms_api::create_app;

use crate::support::{TestDatabase, header, json_body, on_both_databases, sqlite_app_state};

#[actix_web::test]
async fn health_reports_ok_and_version() {
    let (_db, state) = sqlite_app_state().await;
    let app = actix_test::init_service(create_app(state)).await;

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/health").to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

async fn ready_when_database_answers(db: TestDatabase) {
    let app = actix_test::init_service(create_app(db.state())).await;

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/ready").to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["status"], "ok");
    let database = &body["checks"]["database"];
    assert_eq!(database["ok"], true);
    assert_eq!(database["required"], true);
    assert_eq!(body["checks"]["dcs"]["ok"], true, "{body}");
    assert!(database["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert!(
        database.get("error").is_none(),
        "no error on success: {database}"
    );
}
on_both_databases!(ready_when_database_answers);

async fn ready_is_503_when_database_is_gone(db: TestDatabase) {
    let state = db.state();
    let app = actix_test::init_service(create_app(state.clone())).await;
    state.db.close_by_ref().await.expect("close pool");

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/ready").to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json_body(response).await;
    assert_eq!(body["status"], "unavailable");
    let database = &body["checks"]["database"];
    assert_eq!(database["ok"], false);
    assert_eq!(database["error"], "database query failed");
}
on_both_databases!(ready_is_503_when_database_is_gone);

#[actix_web::test]
async fn ready_answers_within_a_probe_timeout_when_dcs_is_down() {
    let db = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite is always available");
    // Nothing listens there; the DCS client (default retries and backoff) keeps retrying.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("ephemeral port")
        .port();
    let dcs_url = format!("http://127.0.0.1:{closed_port}");
    let settings = crate::support::settings_from(&[
        ("LMS_JWT_SECRET", crate::support::TEST_JWT_SECRET),
        ("DATABASE_URL", &db.url),
        ("DREAM_CENTRAL_STORAGE_URL", &dcs_url),
    ])
    .expect("valid settings");
    let state = lms_api::AppState::new(settings, db.db.clone()).expect("state");
    let app = actix_test::init_service(create_app(state)).await;

    let started = std::time::Instant::now();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/ready").to_request(),
    )
    .await;
    let elapsed = started.elapsed();

    assert!(
        elapsed < std::time::Duration::from_secs(1),
        "a 1 s probe timeout would fail: {elapsed:?}"
    );
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["dcs"]["ok"], false, "{body}");
}

#[actix_web::test]
async fn ready_is_degraded_not_unavailable_when_redis_is_down() {
    let db = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite is always available");
    // Nothing listens on this port: Redis is down for this instance.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("ephemeral port")
        .port();
    let settings = crate::support::settings_from(&[
        ("LMS_JWT_SECRET", crate::support::TEST_JWT_SECRET),
        ("DATABASE_URL", &db.url),
        (
            "DREAM_CENTRAL_STORAGE_URL",
            crate::support::shared_dcs_url(),
        ),
        ("REDIS_URL", &format!("redis://127.0.0.1:{closed_port}")),
    ])
    .expect("valid settings");
    let state = lms_api::AppState::new(settings, db.db.clone()).expect("state");
    let app = actix_test::init_service(create_app(state)).await;

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/ready").to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["redis"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["redis"]["required"], false, "{body}");
    assert_eq!(body["checks"]["redis"]["error"], "redis unavailable");
    assert_eq!(body["checks"]["database"]["ok"], true, "{body}");
}

#[actix_web::test]
async fn metrics_count_requests_per_route_pattern_and_status() {
    let (_db, state) = sqlite_app_state().await;
    let app = actix_test::init_service(create_app(state)).await;

    for _ in 0..2 {
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::get().uri("/health").to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/no/such/page?token=secret")
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/metrics").to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = header(&response, "content-type");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = String::from_utf8(actix_test::read_body(response).await.to_vec()).unwrap();

    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/health",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{method="GET",route="/health",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/health",status="200",le="+Inf"} 2"#),
        "{text}"
    );
    // Raw paths and query strings never become labels.
    assert!(!text.contains("/no/such/page"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[actix_web::test]
async fn metrics_include_this_instances_cache_counters() {
    let (_db, state) = sqlite_app_state().await;
    let app = actix_test::init_service(create_app(state)).await;
    let keys =
        lms_api::auth::JwtKeys::from_secret(&crate::support::TEST_JWT_SECRET.to_owned().into());
    let token = keys
        .issue(
            uuid::Uuid::new_v4(),
            lms_api::auth::Role::Teacher,
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    for _ in 0..3 {
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::get()
                .uri("/api/v1/publishers")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/metrics").to_request(),
    )
    .await;
    let text = String::from_utf8(actix_test::read_body(response).await.to_vec()).unwrap();
    for line in [
        "lms_cache_hits_total 2",
        "lms_cache_misses_total 1",
        "lms_cache_fetches_total 1",
        "lms_cache_entries 1",
        "# TYPE lms_cache_hits_total counter",
        "# TYPE lms_cache_entries gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}

#[actix_web::test]
async fn metrics_do_not_take_label_values_from_made_up_methods() {
    let (_db, state) = sqlite_app_state().await;
    let app = actix_test::init_service(create_app(state)).await;
    for method in ["FROBNICATE1", "FROBNICATE2"] {
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::default()
                .method(actix_web::http::Method::from_bytes(method.as_bytes()).unwrap())
                .uri("/health")
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/metrics").to_request(),
    )
    .await;
    let text = String::from_utf8(actix_test::read_body(response).await.to_vec()).unwrap();
    assert!(!text.contains("FROBNICATE"), "{text}");
    assert!(
        text.contains(r#"http_requests_total{method="OTHER",route="/health",status="405"} 2"#),
        "{text}"
    );
}

#[actix_web::test]
async fn openapi_document_lists_routes_error_schema_and_bearer_scheme() {
    let (_db, state) = sqlite_app_state().await;
    let app = actix_test::init_service(create_app(state)).await;

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/openapi.json")
            .to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::OK);
    let doc = json_body(response).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/api/v1/auth/me",
        "/api/v1/publishers",
        "/api/v1/publishers/{id}",
        "/api/v1/publishers/{id}/logo",
        "/api/v1/books",
        "/api/v1/books/{id}",
        "/api/v1/books/{id}/cover",
        "/api/v1/admin/cache/stats",
    ] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "missing GET {path}: {}",
            doc["paths"]
        );
    }
    let error_schema = &doc["components"]["schemas"]["ErrorBody"];
    assert!(
        error_schema["properties"]["detail"].is_object(),
        "{error_schema}"
    );
    assert!(
        error_schema["properties"]["code"].is_object(),
        "{error_schema}"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for path in [
        "/api/v1/admin/cache/clear",
        "/api/v1/admin/webhooks/register",
        "/api/v1/webhooks/dream-storage",
    ] {
        assert!(
            doc["paths"][path]["post"].is_object(),
            "missing POST {path}: {}",
            doc["paths"]
        );
    }
    let ready_responses = &doc["paths"]["/ready"]["get"]["responses"];
    assert!(ready_responses["503"].is_object(), "{ready_responses}");
}

#[actix_web::test]
async fn request_id_is_echoed_or_generated() {
    let (_db, state) = sqlite_app_state().await;
    let app = actix_test::init_service(create_app(state)).await;

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/health")
            .insert_header(("x-request-id", "abc-123"))
            .to_request(),
    )
    .await;
    assert_eq!(header(&response, "x-request-id"), "abc-123");

    // Ids that could break log lines are replaced by a generated UUID.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/health")
            .insert_header(("x-request-id", "bad id with spaces"))
            .to_request(),
    )
    .await;
    let generated = header(&response, "x-request-id");
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
}

/// The DCS client's failures that DCS never answered are visible per instance in `/metrics`.
#[actix_web::test]
async fn metrics_show_the_dcs_client_counters() {
    let db = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite is always available");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("ephemeral port")
        .port();
    let dcs_url = format!("http://127.0.0.1:{closed_port}");
    // One failure opens the breaker; the next call is refused without trying DCS.
    let mut settings = db.settings();
    settings.dcs.url = dcs_url.parse().expect("URL");
    let dcs = std::sync::Arc::new(crate::support::test_dcs_client(&dcs_url, 1));
    let services =
        lms_api::services::Services::new(&settings, dcs, cache::Cache::new(Default::default()))
            .expect("services");
    let state = lms_api::AppState::with_services(settings, db.db.clone(), services);
    assert!(state.services.dcs.list_publishers().await.is_err());
    assert!(state.services.dcs.list_publishers().await.is_err());
    let app = actix_test::init_service(create_app(state)).await;
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/metrics").to_request(),
    )
    .await;
    let text = String::from_utf8(actix_test::read_body(response).await.to_vec()).unwrap();
    for line in [
        "lms_dcs_breaker_open_rejections_total 1",
        "lms_dcs_pool_exhausted_total 0",
        "lms_dcs_deadline_exceeded_total 0",
        "lms_dcs_api_in_flight 0",
        "lms_dcs_streams_in_flight 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}
