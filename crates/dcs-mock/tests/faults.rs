//! The fault knobs, token expiry and counters, through the library and the `/_mock/` API,
//! observed over real connections.

mod common;

use std::time::{Duration, Instant};

use common::{Http, Receiver, raw_request};
use dcs_mock::Fault;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn reset_closes_the_connection_without_an_answer() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = dcs.issue_token();
    dcs.inject("GET /books/", Fault::Reset, Some(1));

    let url = format!("{}/books/", dcs.base_url());
    let auth = format!("Bearer {token}");
    let error = http
        .try_send(Method::GET, &url, &[("authorization", &auth)], None)
        .await
        .expect_err("the connection is dropped");
    assert!(
        error.is_connect() || format!("{error:?}").contains("IncompleteMessage"),
        "{error:?}"
    );
    assert_eq!(
        http.get(&url, &token).await.status,
        StatusCode::OK,
        "only once"
    );

    // On the wire: the request is read, then the socket closes with no bytes written.
    dcs.inject("GET /health", Fault::Reset, None);
    let address = dcs.base_url().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: mock\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(
        answer.is_empty(),
        "got {}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(dcs.request_count("GET /health"), 1);
}

#[tokio::test]
async fn a_limited_status_fault_applies_exactly_that_many_times() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = dcs.issue_token();
    dcs.inject("GET /books/", Fault::Status(503), Some(2));
    let url = format!("{}/books/1", dcs.base_url());
    for _ in 0..2 {
        let reply = http.get(&url, &token).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            reply.json(),
            serde_json::json!({"detail": "Service Unavailable"})
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    assert_eq!(http.get(&url, &token).await.status, StatusCode::OK);
    // Other routes and methods were never affected.
    assert_eq!(
        http.get(&format!("{}/publishers/1", dcs.base_url()), &token)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(dcs.request_count("GET /books/"), 3);
    assert_eq!(dcs.request_count("/books/1"), 3);
    assert_eq!(dcs.request_count("PUT /books/"), 0);
    assert_eq!(dcs.request_count("*  /publishers/"), 1);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let dcs = common::start().await;
    let http = Http::default();
    let delay = Duration::from_millis(120);
    dcs.inject("* /health", Fault::Latency(delay), Some(1));
    let url = format!("{}/health", dcs.base_url());
    let started = Instant::now();
    let reply = http.send(Method::GET, &url, &[], None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        started.elapsed() >= delay,
        "answered after {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    http.send(Method::GET, &url, &[], None).await;
    assert!(started.elapsed() < delay, "the latency was used up");
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let dcs = common::start().await;
    let http = Http::default();
    dcs.inject(
        "POST /auth/login",
        Fault::TooManyRequests {
            retry_after: "7".into(),
        },
        None,
    );
    let reply = http
        .send(
            Method::POST,
            &format!("{}/auth/login", dcs.base_url()),
            &[],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.header("retry-after"), Some("7"));
    assert_eq!(
        reply.json(),
        serde_json::json!({"detail": "Too Many Requests"})
    );
    assert_eq!(dcs.login_count(), 0, "the login never ran");
    dcs.clear_faults();
    http.login(dcs.base_url()).await;
    assert_eq!(dcs.login_count(), 1);
    assert_eq!(dcs.request_count("POST /auth/login"), 2);
}

#[tokio::test]
async fn malformed_answers_200_with_a_body_that_is_not_json() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = dcs.issue_token();
    dcs.inject("GET /publishers/", Fault::Malformed, Some(1));
    let reply = http
        .get(&format!("{}/publishers/", dcs.base_url()), &token)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(serde_json::from_slice::<serde_json::Value>(&reply.body).is_err());
}

#[tokio::test]
async fn routes_match_decoded_paths_and_any_method() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = dcs.issue_token();
    dcs.inject("* /storage/books/Dream Press/", Fault::Status(502), None);
    let url = format!(
        "{}/storage/books/Dream%20Press/FLOWDEMO/config",
        dcs.base_url()
    );
    assert_eq!(http.get(&url, &token).await.status, StatusCode::BAD_GATEWAY);
    assert_eq!(http.get(&url, &token).await.status, StatusCode::BAD_GATEWAY);
    dcs.clear_faults();
    assert_eq!(http.get(&url, &token).await.status, StatusCode::OK);
    assert_eq!(dcs.request_count("GET /storage/books/Dream%20Press/"), 3);
}

#[tokio::test]
async fn expired_tokens_get_401_until_the_client_logs_in_again() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = http.login(dcs.base_url()).await;
    let url = format!(
        "{}/storage/books/Dream%20Press/FLOWDEMO/config",
        dcs.base_url()
    );
    assert_eq!(http.get(&url, &token).await.status, StatusCode::OK);

    dcs.expire_tokens();
    let reply = http.get(&url, &token).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json(), serde_json::json!({"detail": "Invalid token"}));

    let fresh = http.login(dcs.base_url()).await;
    assert_ne!(fresh, token);
    assert_eq!(http.get(&url, &fresh).await.status, StatusCode::OK);
    assert_eq!(dcs.login_count(), 2);
}

#[tokio::test]
async fn token_ttl_sets_the_lifetime_of_new_tokens() {
    let dcs = common::start().await;
    let http = Http::default();
    let url = format!("{}/books/", dcs.base_url());
    dcs.set_token_ttl(Duration::ZERO);
    let expired = http.login(dcs.base_url()).await;
    assert_eq!(
        http.get(&url, &expired).await.status,
        StatusCode::UNAUTHORIZED
    );

    dcs.set_token_ttl(Duration::from_secs(90));
    let token = http.login(dcs.base_url()).await;
    assert_eq!(http.get(&url, &token).await.status, StatusCode::OK);
    let claims = common::jwt_claims(&token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        90
    );
}

async fn control(
    http: &Http,
    base: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> common::Reply {
    http.send(
        method,
        &format!("{base}{path}"),
        &[],
        body.map(|b| b.to_string().into_bytes()),
    )
    .await
}

#[tokio::test]
async fn the_control_api_drives_the_same_knobs() {
    let dcs = common::start().await;
    let http = Http::default();
    let base = dcs.base_url().to_owned();

    // A token without a login, and a limited fault.
    let issued = control(&http, &base, Method::POST, "/_mock/token", None).await;
    assert_eq!(issued.status, StatusCode::CREATED);
    let token = issued.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let fault = serde_json::json!({"route": "GET /books/", "fault": {"kind": "status", "status": 503}, "times": 1});
    assert_eq!(
        control(&http, &base, Method::POST, "/_mock/faults", Some(fault))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get(&format!("{base}/books/"), &token).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        http.get(&format!("{base}/books/"), &token).await.status,
        StatusCode::OK
    );

    // Latency, 429 and malformed, then clearing them all.
    let latency = serde_json::json!({"route": "/health", "fault": {"kind": "latency", "ms": 1}});
    assert_eq!(
        control(&http, &base, Method::POST, "/_mock/faults", Some(latency))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let limited = serde_json::json!({"route": "* /health", "fault": {"kind": "too_many_requests", "retry_after": "2"}, "times": 1});
    control(&http, &base, Method::POST, "/_mock/faults", Some(limited)).await;
    let reply = http
        .send(Method::GET, &format!("{base}/health"), &[], None)
        .await;
    assert_eq!(
        (reply.status, reply.header("retry-after")),
        (StatusCode::TOO_MANY_REQUESTS, Some("2"))
    );
    let malformed = serde_json::json!({"route": "/health", "fault": {"kind": "malformed"}});
    control(&http, &base, Method::POST, "/_mock/faults", Some(malformed)).await;
    assert!(
        serde_json::from_slice::<serde_json::Value>(
            &http
                .send(Method::GET, &format!("{base}/health"), &[], None)
                .await
                .body
        )
        .is_err()
    );
    assert_eq!(
        control(&http, &base, Method::DELETE, "/_mock/faults", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.send(Method::GET, &format!("{base}/health"), &[], None)
            .await
            .status,
        StatusCode::OK
    );

    // Reset over the control API.
    let reset = serde_json::json!({"route": "/health", "fault": {"kind": "reset"}, "times": 1});
    control(&http, &base, Method::POST, "/_mock/faults", Some(reset)).await;
    assert!(
        http.try_send(Method::GET, &format!("{base}/health"), &[], None)
            .await
            .is_err()
    );

    // Bad requests are refused with a reason.
    let bad = serde_json::json!({"route": "books", "fault": {"kind": "reset"}});
    let reply = control(&http, &base, Method::POST, "/_mock/faults", Some(bad)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid route")
    );
    let bad = serde_json::json!({"route": "/", "fault": {"kind": "status", "status": 99}});
    assert_eq!(
        control(&http, &base, Method::POST, "/_mock/faults", Some(bad))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    // Counters: control calls are not counted.
    let stats = control(
        &http,
        &base,
        Method::GET,
        "/_mock/stats?route=GET%20/books/",
        None,
    )
    .await;
    assert_eq!(stats.json()["request_count"], 2);
    assert_eq!(stats.json()["login_count"], 0);
    let all = control(&http, &base, Method::GET, "/_mock/stats", None)
        .await
        .json();
    assert_eq!(all["request_count"], 6);

    // Token expiry and lifetime.
    assert_eq!(
        control(&http, &base, Method::POST, "/_mock/expire-tokens", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get(&format!("{base}/books/"), &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let ttl = serde_json::json!({"seconds": 0});
    assert_eq!(
        control(&http, &base, Method::PUT, "/_mock/token-ttl", Some(ttl))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let expired = http.login(&base).await;
    assert_eq!(
        http.get(&format!("{base}/books/"), &expired).await.status,
        StatusCode::UNAUTHORIZED
    );
    let ttl = serde_json::json!({"seconds": 600});
    control(&http, &base, Method::PUT, "/_mock/token-ttl", Some(ttl)).await;
    let token = http.login(&base).await;
    assert_eq!(
        http.get(&format!("{base}/books/"), &token).await.status,
        StatusCode::OK
    );
    assert_eq!(dcs.login_count(), 2);

    // API keys.
    let key = control(
        &http,
        &base,
        Method::POST,
        "/_mock/api-keys",
        Some(serde_json::json!({"name": "LMS dev"})),
    )
    .await;
    assert_eq!(key.status, StatusCode::CREATED);
    let key = key.json()["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("dcs_dev_lms_"), "{key}");
    assert_eq!(
        http.get(&format!("{base}/books/"), &key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn content_changes_over_the_control_api_send_webhooks() {
    let dcs = common::start().await;
    let http = Http::default();
    let base = dcs.base_url().to_owned();
    let token = dcs.issue_token();
    let receiver = Receiver::start("/hook", Vec::new(), 200).await;
    let subscription = serde_json::json!({"url": receiver.url, "secret": "0123456789abcdef"});
    assert_eq!(
        http.json(
            Method::POST,
            &format!("{base}/webhooks/"),
            &token,
            subscription
        )
        .await
        .status,
        StatusCode::CREATED
    );

    let calls: Vec<(Method, &str, Option<serde_json::Value>, StatusCode)> = vec![
        (Method::POST, "/_mock/books/1/touch", None, StatusCode::OK),
        (
            Method::PUT,
            "/_mock/books/1",
            Some(serde_json::json!({"category": "Maths"})),
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/_mock/books",
            Some(
                serde_json::json!({"publisher": "New House", "book_name": "NEWBOOK", "book_title": "New"}),
            ),
            StatusCode::CREATED,
        ),
        (Method::DELETE, "/_mock/books/2", None, StatusCode::OK),
        (
            Method::POST,
            "/_mock/publishers",
            Some(serde_json::json!({"name": "Acme"})),
            StatusCode::CREATED,
        ),
        (
            Method::PUT,
            "/_mock/publishers/3",
            Some(serde_json::json!({"contact_email": "a@acme.test"})),
            StatusCode::OK,
        ),
        (
            Method::POST,
            "/_mock/publishers/3/touch",
            None,
            StatusCode::OK,
        ),
        (Method::DELETE, "/_mock/publishers/3", None, StatusCode::OK),
        (
            Method::POST,
            "/_mock/publishers/3/restore",
            None,
            StatusCode::OK,
        ),
    ];
    for (method, path, body, status) in calls {
        let reply = control(&http, &base, method.clone(), path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
    }
    let missing = control(&http, &base, Method::POST, "/_mock/books/99/touch", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json(),
        serde_json::json!({"detail": "Book not found"})
    );

    let waited = control(
        &http,
        &base,
        Method::POST,
        "/_mock/deliveries/wait?timeout_ms=5000",
        None,
    )
    .await;
    assert_eq!(waited.status, StatusCode::OK);
    let events: Vec<String> = waited
        .json()
        .as_array()
        .expect("logs")
        .iter()
        .map(|log| {
            format!(
                "{} {}",
                log["event_type"].as_str().unwrap_or_default(),
                log["status"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "book.updated success",
            "book.updated success",
            "book.created success",
            "book.deleted success",
            "publisher.created success",
            "publisher.updated success",
            "publisher.updated success",
            "publisher.deleted success",
            "publisher.created success",
        ]
    );
    assert_eq!(receiver.received().len(), 9);
    let listed = control(&http, &base, Method::GET, "/_mock/deliveries", None)
        .await
        .json();
    assert_eq!(listed.as_array().map(Vec::len), Some(9));
    let book = http.get(&format!("{base}/books/1"), &token).await.json();
    assert_eq!(book["category"], "Maths");
}

#[tokio::test]
async fn a_304_closes_the_keep_alive_connection() {
    let dcs = common::start().await;
    let token = dcs.issue_token();
    let request = format!(
        "GET /storage/books/Dream%20Press/FLOWDEMO/cover HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer {token}\r\nIf-None-Match: \"f4acf267fb613e1b43c051dac71605fb\"\r\n\r\n"
    );
    let (mut stream, head) = raw_request(dcs.base_url(), &request).await;
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .await
        .expect("the server closes");
    assert!(rest.is_empty(), "no body after a 304");

    // A normal answer keeps the connection open for the next request.
    let (mut stream, head) =
        raw_request(dcs.base_url(), "GET /health HTTP/1.1\r\nHost: mock\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: mock\r\n\r\n")
        .await
        .expect("the connection is still open");
}
