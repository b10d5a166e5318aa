//! Catalog endpoints through the fake DCS: every route, role and error; cache headers;
//! webhook-free invalidation through the admin endpoints; graceful degradation.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use cache::{Cache, CacheConfig, ManualClock};
use dcs_mock::{BookUpdate, Fault, MockConfig, MockDcs, NewBook};
use lms_api::auth::Role;
use lms_api::create_app;

use crate::support::{TestDatabase, header, json_body, on_both_databases, state_with_dcs, token};

fn get(uri: &str, role: Role) -> actix_test::TestRequest {
    actix_test::TestRequest::get()
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {}", token(role))))
}

struct Fixture {
    dcs: MockDcs,
    clock: Arc<ManualClock>,
    state: lms_api::AppState,
}

async fn fixture(db: &TestDatabase) -> Fixture {
    let dcs = MockDcs::start(MockConfig::default())
        .await
        .expect("fake DCS");
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(CacheConfig::default())
        .clock(clock.clone())
        .build();
    let state = state_with_dcs(db, dcs.base_url(), cache);
    Fixture { dcs, clock, state }
}

async fn catalog_routes_for_every_role(db: TestDatabase) {
    let f = fixture(&db).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    for role in [
        Role::Admin,
        Role::Supervisor,
        Role::Publisher,
        Role::Teacher,
        Role::Student,
    ] {
        for uri in [
            "/api/v1/publishers",
            "/api/v1/publishers/1",
            "/api/v1/publishers/1/logo",
            "/api/v1/books",
            "/api/v1/books/1",
            "/api/v1/books/1/cover",
        ] {
            let response = actix_test::call_service(&app, get(uri, role).to_request()).await;
            assert_eq!(response.status(), StatusCode::OK, "{role:?} {uri}");
        }
    }
    for uri in [
        "/api/v1/publishers",
        "/api/v1/books/1",
        "/api/v1/books/1/cover",
    ] {
        let response =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri(uri).to_request())
                .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{uri}");
        assert!(json_body(response).await["code"].is_string());
    }
}
on_both_databases!(catalog_routes_for_every_role);

async fn publishers_books_and_cache_headers(db: TestDatabase) {
    let f = fixture(&db).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;

    let response =
        actix_test::call_service(&app, get("/api/v1/publishers", Role::Teacher).to_request()).await;
    assert_eq!(header(&response, "x-cache"), "MISS");
    assert_eq!(header(&response, "content-type"), "application/json");
    let body = json_body(response).await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["name"], "Dream Press");
    assert_eq!(body["items"][0]["logo_url"], "/api/v1/publishers/1/logo");

    let response =
        actix_test::call_service(&app, get("/api/v1/publishers", Role::Teacher).to_request()).await;
    assert_eq!(header(&response, "x-cache"), "HIT");

    let book = json_body(
        actix_test::call_service(&app, get("/api/v1/books/1", Role::Student).to_request()).await,
    )
    .await;
    assert_eq!(book["book_name"], "FLOWDEMO");
    assert_eq!(book["publisher"], "Dream Press");
    assert_eq!(book["cover_url"], "/api/v1/books/1/cover");

    for (uri, status, code) in [
        ("/api/v1/books/999", StatusCode::NOT_FOUND, "not_found"),
        ("/api/v1/publishers/999", StatusCode::NOT_FOUND, "not_found"),
        (
            "/api/v1/publishers/999/logo",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/api/v1/books/999/cover",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        ("/api/v1/books/abc", StatusCode::BAD_REQUEST, ""),
        (
            "/api/v1/books?limit=0",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/api/v1/books?limit=1001",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        ("/api/v1/books?skip=-1", StatusCode::BAD_REQUEST, ""),
        ("/api/v1/books?publisher_id=x", StatusCode::BAD_REQUEST, ""),
        (
            "/api/v1/books?include_archived=maybe",
            StatusCode::BAD_REQUEST,
            "",
        ),
    ] {
        let response = actix_test::call_service(&app, get(uri, Role::Teacher).to_request()).await;
        assert_eq!(response.status(), status, "{uri}");
        let body = json_body(response).await;
        assert!(body["detail"].is_string(), "{uri}: {body}");
        if !code.is_empty() {
            assert_eq!(body["code"], code, "{uri}");
        }
    }
}
on_both_databases!(publishers_books_and_cache_headers);

async fn book_list_filters_and_pages(db: TestDatabase) {
    let f = fixture(&db).await;
    for name in ["ALPHA", "BETA", "GAMMA"] {
        let mut book = NewBook::new("Other House", name);
        book.book_title = Some(format!("{name} reader"));
        f.dcs.add_book(book).unwrap();
    }
    f.dcs.delete_book(4).unwrap();
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    let names = |body: &serde_json::Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["book_name"].as_str().unwrap().to_owned())
            .collect()
    };
    let page = |uri: &'static str| {
        let app = &app;
        async move {
            json_body(actix_test::call_service(app, get(uri, Role::Teacher).to_request()).await)
                .await
        }
    };
    let all = page("/api/v1/books").await;
    assert_eq!(names(&all), ["FLOWDEMO", "ALPHA", "BETA"]);
    let archived = page("/api/v1/books?include_archived=true").await;
    assert_eq!(archived["total"], 4);
    let by_publisher = page("/api/v1/books?publisher_id=2").await;
    assert_eq!(names(&by_publisher), ["ALPHA", "BETA"]);
    let search = page("/api/v1/books?search=BeTa").await;
    assert_eq!(names(&search), ["BETA"]);
    let paged = page("/api/v1/books?skip=1&limit=1").await;
    assert_eq!(names(&paged), ["ALPHA"]);
    assert_eq!(
        (
            paged["total"].as_u64(),
            paged["skip"].as_u64(),
            paged["limit"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
}
on_both_databases!(book_list_filters_and_pages);

async fn logo_and_cover_support_etags(db: TestDatabase) {
    let f = fixture(&db).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;

    // Behind bearer auth: private (DCS's `public, immutable` is not passed on), for the logo
    // TTL and the book TTL respectively.
    for (uri, cache_control) in [
        ("/api/v1/publishers/1/logo", "private, max-age=3600"),
        ("/api/v1/books/1/cover", "private, max-age=600"),
    ] {
        let response = actix_test::call_service(&app, get(uri, Role::Teacher).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert_eq!(header(&response, "content-type"), "image/png", "{uri}");
        let etag = header(&response, "etag");
        assert!(etag.starts_with('"'), "{uri}: {etag}");
        assert_eq!(header(&response, "cache-control"), cache_control, "{uri}");
        let bytes = actix_test::read_body(response).await;
        assert!(bytes.starts_with(b"\x89PNG"), "{uri}");

        for if_none_match in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"stale-copy\", {etag}"),
            "*".to_owned(),
        ] {
            let response = actix_test::call_service(
                &app,
                get(uri, Role::Teacher)
                    .insert_header(("If-None-Match", if_none_match.clone()))
                    .to_request(),
            )
            .await;
            assert_eq!(
                response.status(),
                StatusCode::NOT_MODIFIED,
                "{uri} If-None-Match: {if_none_match}"
            );
            assert_eq!(header(&response, "etag"), etag);
            assert_eq!(header(&response, "cache-control"), cache_control, "{uri}");
            assert!(actix_test::read_body(response).await.is_empty());
        }

        let response = actix_test::call_service(
            &app,
            get(uri, Role::Teacher)
                .insert_header(("If-None-Match", "\"other\""))
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
}
on_both_databases!(logo_and_cover_support_etags);

async fn admin_cache_stats_and_clear(db: TestDatabase) {
    let f = fixture(&db).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    for _ in 0..4 {
        actix_test::call_service(&app, get("/api/v1/books", Role::Teacher).to_request()).await;
    }
    let response = actix_test::call_service(
        &app,
        get("/api/v1/admin/cache/stats", Role::Admin).to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let stats = json_body(response).await;
    assert_eq!(stats["hits"], 3);
    assert!(stats["misses"].as_u64().unwrap() >= 1);
    assert!(stats["entries"].as_u64().unwrap() >= 2);
    assert!(stats["hit_rate"].as_f64().unwrap() > 0.5);
    assert_eq!(stats["scope"], "instance");

    for role in [
        Role::Teacher,
        Role::Student,
        Role::Supervisor,
        Role::Publisher,
    ] {
        for request in [
            get("/api/v1/admin/cache/stats", role),
            actix_test::TestRequest::post()
                .uri("/api/v1/admin/cache/clear")
                .insert_header(("Authorization", format!("Bearer {}", token(role)))),
        ] {
            let response = actix_test::call_service(&app, request.to_request()).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role:?}");
            assert_eq!(json_body(response).await["code"], "forbidden");
        }
    }
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/admin/cache/clear")
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A change in DCS is visible after a clear.
    f.dcs
        .update_book(
            1,
            BookUpdate {
                book_title: Some("Renamed".into()),
                ..BookUpdate::default()
            },
        )
        .unwrap();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/admin/cache/clear")
            .insert_header(("Authorization", format!("Bearer {}", token(Role::Admin))))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cleared = json_body(response).await;
    assert!(cleared["local_entries"].as_u64().unwrap() >= 2);
    let page = json_body(
        actix_test::call_service(&app, get("/api/v1/books", Role::Teacher).to_request()).await,
    )
    .await;
    assert_eq!(page["items"][0]["book_title"], "Renamed");
}
on_both_databases!(admin_cache_stats_and_clear);

async fn dcs_down_serves_stale_then_503_with_retry_after(db: TestDatabase) {
    let f = fixture(&db).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    for uri in ["/api/v1/publishers", "/api/v1/books", "/api/v1/books/1"] {
        let response = actix_test::call_service(&app, get(uri, Role::Teacher).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    // DCS goes away: connections are reset, and every cached entry has expired.
    f.dcs.inject("* /", Fault::Reset, None);
    f.clock.advance(Duration::from_secs(3600));

    for uri in ["/api/v1/publishers", "/api/v1/books", "/api/v1/books/1"] {
        let response = actix_test::call_service(&app, get(uri, Role::Teacher).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert_eq!(header(&response, "x-cache"), "STALE", "{uri}");
        assert!(json_body(response).await.is_object());
    }
    for uri in [
        "/api/v1/books/2",
        "/api/v1/publishers/1",
        "/api/v1/books?include_archived=true&limit=5",
    ] {
        let response = actix_test::call_service(&app, get(uri, Role::Teacher).to_request()).await;
        if uri.contains("include_archived") {
            // Rendered from the stale book list.
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
            assert_eq!(header(&response, "x-cache"), "STALE");
            continue;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
        assert!(retry_after >= 1);
        let body = json_body(response).await;
        assert_eq!(
            body["detail"],
            "Content storage temporarily unavailable. Please try again."
        );
        assert_eq!(body["code"], "content_storage_unavailable");
    }

    // /ready says DCS is down, but keeps the instance in rotation: it still serves the cache.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/ready").to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let readiness = json_body(response).await;
    assert_eq!(readiness["status"], "degraded", "{readiness}");
    assert_eq!(readiness["checks"]["dcs"]["ok"], false);
    assert_eq!(readiness["checks"]["dcs"]["required"], false);
    assert_eq!(readiness["checks"]["database"]["ok"], true);

    // DCS back.
    f.dcs.clear_faults();
    let response =
        actix_test::call_service(&app, get("/api/v1/books/2", Role::Teacher).to_request()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response =
        actix_test::call_service(&app, get("/api/v1/books", Role::Teacher).to_request()).await;
    assert_eq!(header(&response, "x-cache"), "MISS");
}
on_both_databases!(dcs_down_serves_stale_then_503_with_retry_after);

async fn open_breaker_answers_in_microseconds_not_timeouts(db: TestDatabase) {
    let dcs = MockDcs::start(MockConfig::default()).await.unwrap();
    let mut settings = db.settings();
    settings.dcs.url = dcs.base_url().parse().unwrap();
    let client = Arc::new(crate::support::test_dcs_client(dcs.base_url(), 3));
    let services =
        lms_api::services::Services::new(&settings, client, Cache::new(CacheConfig::default()))
            .expect("services");
    let state = lms_api::AppState::with_services(settings, db.db.clone(), services);
    let app = actix_test::init_service(create_app(state)).await;

    // DCS fails every request; three failures open the breaker.
    dcs.inject("* /", Fault::Status(502), None);
    for id in 1..=3 {
        let response = actix_test::call_service(
            &app,
            get(&format!("/api/v1/books/{id}"), Role::Teacher).to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let requests_before = dcs.request_count("GET /books/");
    let started = std::time::Instant::now();
    for id in 10..110 {
        let response = actix_test::call_service(
            &app,
            get(&format!("/api/v1/books/{id}"), Role::Teacher).to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry_after: u64 = header(&response, "retry-after").parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    // The breaker is open: nothing reached DCS, and 100 answers took far less than one
    // network round trip each would (generous bound: this is not a benchmark).
    assert_eq!(dcs.request_count("GET /books/"), requests_before);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
on_both_databases!(open_breaker_answers_in_microseconds_not_timeouts);

async fn dcs_process_gone_serves_stale_and_503(db: TestDatabase) {
    let f = fixture(&db).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    let response =
        actix_test::call_service(&app, get("/api/v1/books", Role::Teacher).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);

    // The fake DCS stops: its port refuses connections from now on.
    f.dcs.shutdown().await;
    f.clock.advance(Duration::from_secs(3600));

    let response =
        actix_test::call_service(&app, get("/api/v1/books", Role::Teacher).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-cache"), "STALE");
    let response =
        actix_test::call_service(&app, get("/api/v1/publishers", Role::Teacher).to_request()).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!header(&response, "retry-after").is_empty());
    assert_eq!(
        json_body(response).await["detail"],
        "Content storage temporarily unavailable. Please try again."
    );
}
on_both_databases!(dcs_process_gone_serves_stale_and_503);

async fn dcs_rate_limit_is_503_with_its_retry_after(db: TestDatabase) {
    let f = fixture(&db).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    // Longer than the client waits out by itself, so the 429 reaches the catalog.
    f.dcs.inject(
        "GET /books/",
        Fault::TooManyRequests {
            retry_after: "120".into(),
        },
        None,
    );

    let response =
        actix_test::call_service(&app, get("/api/v1/books/1", Role::Teacher).to_request()).await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&response, "retry-after"), "120");
    let body = json_body(response).await;
    assert_eq!(body["code"], "content_storage_unavailable");
    assert_eq!(
        body["detail"],
        "Content storage temporarily unavailable. Please try again."
    );
}
on_both_databases!(dcs_rate_limit_is_503_with_its_retry_after);

async fn refused_dcs_credentials_are_a_clear_502_not_a_500(db: TestDatabase) {
    let dcs = MockDcs::start(MockConfig::default()).await.unwrap();
    let mut settings = db.settings();
    settings.dcs.url = dcs.base_url().parse().unwrap();
    let wrong_password = "not-the-dcs-password";
    let client = dcs_client::DcsClient::new(dcs_client::DcsConfig::new(
        dcs.base_url(),
        dcs_client::Credentials::password("admin@admin.com", wrong_password),
    ))
    .unwrap();
    let services = lms_api::services::Services::new(
        &settings,
        Arc::new(client),
        Cache::new(CacheConfig::default()),
    )
    .expect("services");
    let state = lms_api::AppState::with_services(settings, db.db.clone(), services);
    let app = actix_test::init_service(create_app(state)).await;

    for uri in ["/api/v1/publishers", "/api/v1/books/1"] {
        let response = actix_test::call_service(&app, get(uri, Role::Teacher).to_request()).await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{uri}");
        let text = String::from_utf8(actix_test::read_body(response).await.to_vec()).unwrap();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["code"], "content_storage_error", "{uri}");
        assert_eq!(body["upstream_code"], "dcs_auth_failed", "{uri}");
        assert!(!text.contains(wrong_password), "{text}");
    }
}
on_both_databases!(refused_dcs_credentials_are_a_clear_502_not_a_500);

/// Cold-cache stampede: 200 concurrent readers of 20 uncached books (DCS answering slowly,
/// so every reader arrives while the first fetch of its key is in flight) cause exactly one
/// DCS call per book.
#[actix_web::test]
async fn a_cold_cache_stampede_makes_one_dcs_call_per_key() {
    let db = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .unwrap();
    let dcs = MockDcs::start(MockConfig::default()).await.unwrap();
    let template = NewBook::from_dir(MockConfig::default().books_dir.join("FLOWDEMO")).unwrap();
    let mut ids = vec![dcs.books()[0].id];
    for number in 2..=20 {
        let mut book = template.clone();
        book.book_name = format!("STAMPEDE{number:02}");
        ids.push(dcs.add_book(book).unwrap().id);
    }
    let state = state_with_dcs(&db, dcs.base_url(), Cache::new(CacheConfig::default()));
    let app = actix_test::init_service(create_app(state)).await;
    // Log in first, so the count below is of book reads only.
    let response =
        actix_test::call_service(&app, get("/api/v1/publishers", Role::Teacher).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    dcs.inject(
        "GET /books/",
        Fault::Latency(Duration::from_millis(300)),
        None,
    );
    let before = dcs.request_count("GET /books/");

    let reads = (0..200).map(|i| {
        let uri = format!("/api/v1/books/{}", ids[i % ids.len()]);
        let app = &app;
        async move {
            let response =
                actix_test::call_service(app, get(&uri, Role::Teacher).to_request()).await;
            response.status()
        }
    });
    let statuses = futures_util::future::join_all(reads).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(dcs.request_count("GET /books/") - before, ids.len());
}
