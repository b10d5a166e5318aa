//! Slow and greedy clients against a real server on a loopback socket: stalled bodies, held
//! connections, readers that stop reading, too many streams from one client; and the
//! correctness details of the same probe (book list 404, `nbf`, `nosniff`, HTML covers).
//! Every wait is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use bytes::Bytes;
use cache::{Cache, CacheConfig};
use dcs_mock::{MockConfig, MockDcs, NewBook};
use lms_api::AppState;
use lms_api::auth::Role;
use lms_api::services::Services;
use lms_api::settings::GuardSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestDatabase, test_dcs_client, token};

/// A server as `serve` runs it, on an ephemeral loopback port.
struct Running {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl Running {
    async fn start(state: AppState) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let server = lms_api::cli::http_server(state, listener).expect("server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { addr, handle }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }

    /// One request on a fresh connection (`Connection: close`); the whole answer as text and
    /// how long it took. Fails the test after 10 s.
    async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (String, Duration) {
        let started = Instant::now();
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: lms.test\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        let answer = read_to_close(&mut stream, Duration::from_secs(10))
            .await
            .expect("answer before the connection closes");
        (
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    }

    async fn metrics(&self) -> String {
        self.request("GET", "/metrics", &[]).await.0
    }
}

/// Reads until the peer closes; `None` when it is still open after `limit`.
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) => return Some(answer),
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
            // A reset after the answer is a close too.
            Ok(Err(_)) => return Some(answer),
            Err(_) => {
                eprintln!(
                    "still open after {limit:?}; received: {:?}",
                    String::from_utf8_lossy(&answer)
                );
                return None;
            }
        }
    }
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn sqlite() -> TestDatabase {
    TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .expect("SQLite is always available")
}

// ----- 1. request bodies and held connections ------------------------------------------------

#[actix_web::test]
async fn a_stalled_body_is_answered_408_and_closed_within_the_body_timeout() {
    let db = sqlite().await;
    let mut settings = db.settings();
    settings.guards.body_read_timeout = Duration::from_millis(400);
    settings.guards.client_disconnect_timeout = Duration::from_secs(1);
    let server = Running::start(AppState::new(settings, db.db.clone()).expect("state")).await;

    // Half of the declared body, then nothing.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    stalled
        .write_all(
            b"POST /api/v1/webhooks/dream-storage HTTP/1.1\r\nHost: lms.test\r\n\
              Content-Type: application/json\r\nX-Webhook-Signature: sha256=00\r\n\
              Content-Length: 100\r\n\r\n{\"event\":\"book.updated\",\"data\":{",
        )
        .await
        .expect("write half a body");

    // Meanwhile the server answers others at once.
    let (health, took) = server.request("GET", "/health", &[]).await;
    assert_eq!(status_of(&health), 200, "{health}");
    assert!(took < Duration::from_secs(1), "/health took {took:?}");

    let answer = read_to_close(&mut stalled, Duration::from_secs(5))
        .await
        .expect("the stalled connection is closed by the server");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "closed after {elapsed:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(
        elapsed >= Duration::from_millis(350),
        "closed after {elapsed:?}"
    );

    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, "lms_body_read_timeouts_total"),
        1.0,
        "{metrics}"
    );
    server.stop().await;
}

#[actix_web::test]
async fn a_body_that_arrives_in_time_is_read() {
    let db = sqlite().await;
    let mut settings = db.settings();
    settings.guards.body_read_timeout = Duration::from_millis(400);
    let server = Running::start(AppState::new(settings, db.db.clone()).expect("state")).await;

    // A slow but steady body: well within the timeout, so the webhook route judges it (401,
    // not 408).
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(
            b"POST /api/v1/webhooks/dream-storage HTTP/1.1\r\nHost: lms.test\r\nConnection: close\r\n\
              X-Webhook-Signature: sha256=00\r\nContent-Length: 4\r\n\r\n{}",
        )
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(b"  ").await.expect("write the rest");
    let answer = read_to_close(&mut stream, Duration::from_secs(5))
        .await
        .expect("answer");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), 401, "{answer}");
    assert_eq!(
        metric(&server.metrics().await, "lms_body_read_timeouts_total"),
        0.0
    );
    server.stop().await;
}

#[actix_web::test]
async fn held_connections_without_a_request_are_closed() {
    let db = sqlite().await;
    let mut settings = db.settings();
    settings.guards.client_request_timeout = Duration::from_millis(300);
    let server = Running::start(AppState::new(settings, db.db.clone()).expect("state")).await;

    // Twenty sockets that send nothing, and twenty that send half a request head.
    let mut held = Vec::new();
    for i in 0..40 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        if i % 2 == 1 {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: lm")
                .await
                .expect("write");
        }
        held.push(stream);
    }
    let (health, took) = server.request("GET", "/health", &[]).await;
    assert_eq!(status_of(&health), 200);
    assert!(took < Duration::from_secs(1), "/health took {took:?}");

    let started = Instant::now();
    for stream in &mut held {
        assert!(
            read_to_close(stream, Duration::from_secs(5))
                .await
                .is_some(),
            "a held connection is still open after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[actix_web::test]
async fn connections_beyond_the_cap_wait_until_held_ones_are_closed() {
    let db = sqlite().await;
    let mut settings = db.settings();
    settings.guards.workers = Some(1);
    settings.guards.max_connections = 2;
    settings.guards.client_request_timeout = Duration::from_millis(800);
    let server = Running::start(AppState::new(settings, db.db.clone()).expect("state")).await;

    // Two sockets that send nothing fill the only worker.
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third is not served while they are held, and is once the head timeout closed them.
    let (answer, _) = server.request("GET", "/health", &[]).await;
    let took = started.elapsed();
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "served after {took:?}"
    );
    for stream in &mut held {
        assert!(
            read_to_close(stream, Duration::from_secs(1))
                .await
                .is_some()
        );
    }
    server.stop().await;
}

#[test]
fn guard_variables_are_read_and_checked() {
    let settings = crate::support::settings_from(&[
        ("LMS_BODY_READ_TIMEOUT", "3"),
        ("LMS_MAX_CONNECTIONS", "50"),
        ("LMS_WORKERS", "3"),
        ("LMS_CLIENT_REQUEST_TIMEOUT", "1500ms"),
        ("LMS_CLIENT_DISCONNECT_TIMEOUT", "1"),
        ("LMS_STREAM_IDLE_TIMEOUT", "20"),
        ("LMS_MAX_STREAMS_PER_CLIENT", "4"),
        ("DCS_WEBHOOK_RECHECK_INTERVAL", "60"),
        ("DCS_WEBHOOK_LOG_RETENTION", "86400"),
    ])
    .expect("valid");
    let g = &settings.guards;
    assert_eq!(g.body_read_timeout, Duration::from_secs(3));
    assert_eq!(g.max_connections, 50);
    assert_eq!(g.workers, Some(3));
    assert_eq!(g.client_request_timeout, Duration::from_millis(1500));
    assert_eq!(g.client_disconnect_timeout, Duration::from_secs(1));
    assert_eq!(g.stream_idle_timeout, Duration::from_secs(20));
    assert_eq!(g.max_streams_per_client, 4);
    assert_eq!(g.webhook_recheck_interval, Duration::from_secs(60));
    assert_eq!(g.webhook_log_retention, Duration::from_secs(86_400));

    let defaults = crate::support::settings_from(&[]).expect("valid").guards;
    assert_eq!(defaults.body_read_timeout, Duration::from_secs(10));
    assert_eq!(defaults.max_connections, 1024);
    assert_eq!(defaults.workers, None);
    assert_eq!(defaults.stream_idle_timeout, Duration::from_secs(30));
    assert_eq!(defaults.max_streams_per_client, 8);
    assert_eq!(defaults.webhook_recheck_interval, Duration::from_secs(900));
    assert_eq!(
        defaults.webhook_log_retention,
        Duration::from_secs(30 * 24 * 3600)
    );

    let err = crate::support::settings_from(&[
        ("LMS_BODY_READ_TIMEOUT", "0"),
        ("LMS_MAX_STREAMS_PER_CLIENT", "many"),
        ("LMS_STREAM_IDLE_TIMEOUT", "5 minutes"),
    ])
    .expect_err("invalid")
    .to_string();
    for name in [
        "LMS_BODY_READ_TIMEOUT",
        "LMS_MAX_STREAMS_PER_CLIENT",
        "LMS_STREAM_IDLE_TIMEOUT",
    ] {
        assert!(err.contains(name), "{err}");
    }
}

// ----- 2. streamed answers --------------------------------------------------------------------

const BIG_COVER_BYTES: usize = 24 << 20;

/// A fake DCS with a book whose cover is 24 MiB (more than loopback socket buffers hold), and
/// one whose "cover" is an HTML page; their ids.
async fn dcs_with_covers() -> (MockDcs, i64, i64) {
    let dcs = MockDcs::start(MockConfig::default())
        .await
        .expect("fake DCS");
    let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
    big.resize(BIG_COVER_BYTES, 7);
    let big = Bytes::from(big);
    let big = dcs
        .add_book(NewBook {
            book_cover: Some("big.png".to_owned()),
            files: vec![
                ("images/big.png".to_owned(), big.clone()),
                ("audio/big.mp3".to_owned(), big),
            ],
            ..NewBook::new("Dream Press", "BIGCOVER")
        })
        .expect("book with a big cover");
    let html = dcs
        .add_book(NewBook {
            book_cover: Some("cover.png".to_owned()),
            files: vec![(
                "images/cover.png".to_owned(),
                Bytes::from_static(
                    b"\n  <!DOCTYPE html><html><script>alert(document.cookie)</script></html>",
                ),
            )],
            ..NewBook::new("Dream Press", "HTMLCOVER")
        })
        .expect("book with an HTML cover");
    (dcs, big.id, html.id)
}

fn state_over(
    db: &TestDatabase,
    dcs: &MockDcs,
    guards: impl FnOnce(&mut GuardSettings),
) -> AppState {
    let mut settings = db.settings();
    settings.dcs.url = dcs.base_url().parse().expect("fake DCS URL");
    guards(&mut settings.guards);
    let client = Arc::new(test_dcs_client(dcs.base_url(), 1000));
    let services =
        Services::new(&settings, client, Cache::new(CacheConfig::default())).expect("services");
    AppState::with_services(settings, db.db.clone(), services)
}

/// Sends a GET and reads only the answer's head; the body is left unread.
async fn open_download(addr: SocketAddr, path: &str, bearer: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: lms.test\r\nAuthorization: Bearer {bearer}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !received.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("read head");
            assert!(
                n > 0,
                "closed before the head: {:?}",
                String::from_utf8_lossy(&received)
            );
            received.push(byte[0]);
        }
    })
    .await
    .expect("answer head within 5 s");
    (stream, String::from_utf8_lossy(&received).into_owned())
}

#[actix_web::test]
async fn a_client_beyond_its_stream_cap_gets_429_and_others_are_served() {
    let db = sqlite().await;
    let (dcs, big, _) = dcs_with_covers().await;
    let server = Running::start(state_over(&db, &dcs, |g| {
        g.max_streams_per_client = 2;
        g.stream_idle_timeout = Duration::from_secs(20);
    }))
    .await;
    let cover = format!("/api/v1/books/{big}/cover");
    let greedy = token(Role::Student);

    // Two covers held open without reading.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (stream, head) = open_download(server.addr, &cover, &greedy).await;
        assert_eq!(status_of(&head), 200, "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        held.push(stream);
    }

    // The third is refused at once, with Retry-After and the JSON body.
    let (answer, took) = server
        .request(
            "GET",
            &cover,
            &[("Authorization", &format!("Bearer {greedy}"))],
        )
        .await;
    assert_eq!(status_of(&answer), 429, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 5"),
        "{answer}"
    );
    assert!(
        answer.contains("\"code\":\"too_many_requests\""),
        "{answer}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");

    // Another user, and an unrelated uncached catalog read, are served meanwhile.
    let (answer, took) = server
        .request(
            "GET",
            &cover,
            &[("Authorization", &format!("Bearer {}", token(Role::Student)))],
        )
        .await;
    assert_eq!(status_of(&answer), 200);
    assert!(
        answer.len() > BIG_COVER_BYTES,
        "the whole cover: {} bytes",
        answer.len()
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (answer, took) = server
        .request(
            "GET",
            "/api/v1/publishers/1",
            &[("Authorization", &format!("Bearer {greedy}"))],
        )
        .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    let metrics = server.metrics().await;
    assert_eq!(
        metric(&metrics, "lms_stream_rejections_total"),
        1.0,
        "{metrics}"
    );

    // Hanging up gives the slots back.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (stream, head) = open_download(server.addr, &cover, &greedy).await;
        drop(stream);
        if status_of(&head) == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slots not given back: {head}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
    dcs.shutdown().await;
}

#[actix_web::test]
async fn a_reader_who_stops_reading_is_dropped_after_the_idle_timeout() {
    let db = sqlite().await;
    let (dcs, big, _) = dcs_with_covers().await;
    let server = Running::start(state_over(&db, &dcs, |g| {
        g.max_streams_per_client = 1;
        g.stream_idle_timeout = Duration::from_millis(500);
    }))
    .await;
    let cover = format!("/api/v1/books/{big}/cover");
    let bearer = token(Role::Teacher);

    let started = Instant::now();
    let (mut stalled, head) = open_download(server.addr, &cover, &bearer).await;
    assert_eq!(status_of(&head), 200, "{head}");

    // The idle timeout ends the stream and frees the upstream and the client's slot: the same
    // client can download again (its cap is 1).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = server.metrics().await;
        if metric(&metrics, "lms_stream_idle_timeouts_total") >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no idle timeout after 5 s: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let (answer, _) = server
        .request(
            "GET",
            &cover,
            &[("Authorization", &format!("Bearer {bearer}"))],
        )
        .await;
    assert_eq!(status_of(&answer), 200, "the slot was given back");
    assert!(answer.len() > BIG_COVER_BYTES);

    // The stalled reader gets less than the cover, then the connection ends.
    let rest = read_to_close(&mut stalled, Duration::from_secs(5))
        .await
        .expect("the stalled download is closed");
    assert!(rest.len() < BIG_COVER_BYTES, "{} bytes", rest.len());
    server.stop().await;
    dcs.shutdown().await;
}

#[actix_web::test]
async fn media_streams_count_against_the_same_cap() {
    let db = sqlite().await;
    let (dcs, big, _) = dcs_with_covers().await;
    let server = Running::start(state_over(&db, &dcs, |g| {
        g.max_streams_per_client = 1;
        g.stream_idle_timeout = Duration::from_secs(20);
    }))
    .await;
    let admin = token(Role::Admin);
    let media = format!("/api/v1/books/{big}/media/audio/big.mp3");
    let (held, head) = open_download(server.addr, &media, &admin).await;
    assert_eq!(status_of(&head), 200, "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");

    for path in [media.clone(), format!("/api/v1/books/{big}/cover")] {
        let (answer, took) = server
            .request(
                "GET",
                &path,
                &[("Authorization", &format!("Bearer {admin}"))],
            )
            .await;
        assert_eq!(status_of(&answer), 429, "{path}: {answer}");
        assert!(
            answer.contains("\"code\":\"too_many_requests\""),
            "{answer}"
        );
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    drop(held);
    server.stop().await;
    dcs.shutdown().await;
}

// ----- 3. correctness details ------------------------------------------------------------------

#[actix_web::test]
async fn covers_and_logos_say_nosniff_and_an_html_cover_is_not_served() {
    let db = sqlite().await;
    let (dcs, _, html) = dcs_with_covers().await;
    let server = Running::start(state_over(&db, &dcs, |_| {})).await;
    let bearer = format!("Bearer {}", token(Role::Student));

    for path in ["/api/v1/books/1/cover", "/api/v1/publishers/1/logo"] {
        let (answer, _) = server
            .request("GET", path, &[("Authorization", &bearer)])
            .await;
        assert_eq!(status_of(&answer), 200, "{path}");
        assert!(
            answer.contains("x-content-type-options: nosniff"),
            "{path}: {}",
            &answer[..answer.find("\r\n\r\n").unwrap_or(answer.len())]
        );
    }

    let (answer, _) = server
        .request(
            "GET",
            &format!("/api/v1/books/{html}/cover"),
            &[("Authorization", &bearer)],
        )
        .await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    assert!(
        answer.contains("\"code\":\"content_storage_error\""),
        "{answer}"
    );
    assert!(!answer.contains("<script>"), "{answer}");
    server.stop().await;
    dcs.shutdown().await;
}

#[actix_web::test]
async fn a_dcs_404_on_the_book_list_is_404_book_not_found() {
    let db = sqlite().await;
    let (dcs, _, _) = dcs_with_covers().await;
    let server = Running::start(state_over(&db, &dcs, |_| {})).await;
    dcs.inject("GET /books/", dcs_mock::Fault::Status(404), None);
    let bearer = format!("Bearer {}", token(Role::Student));
    for path in ["/api/v1/books", "/api/v1/books?limit=5&skip=1"] {
        let (answer, _) = server
            .request("GET", path, &[("Authorization", &bearer)])
            .await;
        assert_eq!(status_of(&answer), 404, "{path}: {answer}");
        assert!(answer.contains("\"detail\":\"Book not found\""), "{answer}");
        assert!(answer.contains("\"code\":\"not_found\""), "{answer}");
    }
    server.stop().await;
    dcs.shutdown().await;
}

#[actix_web::test]
async fn a_token_not_yet_valid_is_refused_like_an_expired_one() {
    let (_db, state) = crate::support::sqlite_app_state().await;
    let app = actix_web::test::init_service(lms_api::create_app(state)).await;
    let now = chrono::Utc::now().timestamp();
    let sign = |nbf: i64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &serde_json::json!({
                "sub": uuid::Uuid::new_v4(), "role": "admin",
                "iat": now, "exp": now + 3600, "nbf": nbf,
            }),
            &jsonwebtoken::EncodingKey::from_secret(crate::support::TEST_JWT_SECRET.as_bytes()),
        )
        .expect("sign")
    };
    for (nbf, status) in [(now + 600, 401), (now - 10, 200)] {
        let response = actix_web::test::call_service(
            &app,
            actix_web::test::TestRequest::get()
                .uri("/api/v1/auth/me")
                .insert_header(("Authorization", format!("Bearer {}", sign(nbf))))
                .to_request(),
        )
        .await;
        assert_eq!(response.status().as_u16(), status, "nbf {nbf} (now {now})");
        if status == 401 {
            assert!(response.headers().contains_key("www-authenticate"));
            let body = crate::support::json_body(response).await;
            assert_eq!(body["code"], "invalid_token", "{body}");
        }
    }
}

#[actix_web::test]
async fn the_webhook_subscription_is_rechecked_and_restored() {
    use dcs_client::WebhookSubscriptionUpdate;

    let database = sqlite().await;
    let crate::webhooks::Fixture { dcs: _dcs, state } = crate::webhooks::fixture(&database).await;
    let dcs = state.services.dcs.clone();
    let task = lms_api::webhooks::startup_registration::start_with(
        state.webhook_registrar("startup"),
        domain::webhook_registration::StartupRetry {
            max_attempts: 3,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        Duration::from_millis(200),
    );
    let wait_for = |what: &'static str, check: fn(&[dcs_client::WebhookSubscription]) -> bool| {
        let dcs = dcs.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let listed = dcs.list_webhooks().await.expect("list");
                if check(&listed) {
                    return listed;
                }
                assert!(Instant::now() < deadline, "{what}: {listed:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let listed = wait_for("registered at start", |l| l.len() == 1 && l[0].is_active).await;

    // DCS loses it: it is created again.
    dcs.delete_webhook(listed[0].id).await.expect("delete");
    assert!(dcs.list_webhooks().await.expect("list").is_empty());
    let listed = wait_for("re-created", |l| l.len() == 1 && l[0].is_active).await;

    // DCS deactivates it: it is activated again.
    dcs.update_webhook(
        listed[0].id,
        &WebhookSubscriptionUpdate {
            is_active: Some(false),
            ..WebhookSubscriptionUpdate::default()
        },
    )
    .await
    .expect("deactivate");
    let again = wait_for("re-activated", |l| l.len() == 1 && l[0].is_active).await;
    assert_eq!(
        again[0].id, listed[0].id,
        "updated in place, not duplicated"
    );
    drop(task);
}

// ----- 4. upstream failures are counted by cause -----------------------------------------------

#[actix_web::test]
async fn dcs_unavailable_answers_are_counted_by_cause() {
    let db = sqlite().await;
    let (dcs, _, _) = dcs_with_covers().await;
    let server = Running::start(state_over(&db, &dcs, |_| {})).await;
    dcs.inject("* /", dcs_mock::Fault::Reset, None);
    let bearer = format!("Bearer {}", token(Role::Student));
    let (answer, took) = server
        .request("GET", "/api/v1/publishers/1", &[("Authorization", &bearer)])
        .await;
    assert_eq!(status_of(&answer), 503, "{answer}");
    assert!(answer.contains("content_storage_unavailable"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    let metrics = server.metrics().await;
    let counted: Vec<&str> = metrics
        .lines()
        .filter(|line| line.starts_with("lms_upstream_unavailable_total{cause=\"dcs_"))
        .collect();
    assert_eq!(counted.len(), 1, "{metrics}");
    assert!(counted[0].ends_with(" 1"), "{counted:?}");
    server.stop().await;
    dcs.shutdown().await;
}

#[actix_web::test]
async fn the_openapi_document_states_the_validation_and_the_errors() {
    let (_db, state) = crate::support::sqlite_app_state().await;
    let app = actix_web::test::init_service(lms_api::create_app(state)).await;
    let response = actix_web::test::call_service(
        &app,
        actix_web::test::TestRequest::get()
            .uri("/openapi.json")
            .to_request(),
    )
    .await;
    let doc = crate::support::json_body(response).await;
    let paths = &doc["paths"];
    let param = |path: &str, name: &str| {
        paths[path]["get"]["parameters"]
            .as_array()
            .and_then(|params| params.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))
            .clone()
    };
    let limit = param("/api/v1/books", "limit");
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    assert_eq!(limit["schema"]["maximum"], 1000, "{limit}");
    let publisher = param("/api/v1/books", "publisher_id");
    assert_eq!(publisher["schema"]["minimum"], 1, "{publisher}");
    let id = param("/api/v1/publishers/{id}", "id");
    assert_eq!(id["schema"]["minimum"], 1, "{id}");

    let responses = |path: &str| paths[path]["get"]["responses"].clone();
    for path in [
        "/api/v1/publishers/{id}",
        "/api/v1/publishers/{id}/logo",
        "/api/v1/books/{id}",
        "/api/v1/books/{id}/cover",
    ] {
        let answers = responses(path);
        for status in ["400", "502"] {
            assert!(
                answers.get(status).is_some(),
                "{path} lacks {status}: {answers}"
            );
        }
    }
    for path in ["/api/v1/publishers", "/api/v1/books"] {
        assert!(responses(path).get("502").is_some(), "{path}");
    }
    assert!(responses("/api/v1/books/{id}/cover").get("429").is_some());
}

/// The errors actix-http answers before any application code (a head it cannot parse, one too
/// large, one that does not arrive in time) carry the same JSON `{detail, code}` body as every
/// other error.
#[actix_web::test]
async fn protocol_level_errors_carry_the_json_error_body() {
    let db = sqlite().await;
    let mut settings = db.settings();
    // Over 500 ms: actix-http measures this deadline from a clock it refreshes every 500 ms.
    settings.guards.client_request_timeout = Duration::from_millis(1000);
    let server = Running::start(AppState::new(settings, db.db.clone()).expect("state")).await;

    let huge = "x".repeat(200 * 1024);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "oversized headers",
            format!("GET /health HTTP/1.1\r\nHost: t\r\nX-Big: {huge}\r\n\r\n").into_bytes(),
            431,
            "request_header_fields_too_large",
        ),
        (
            "a malformed header line",
            b"GET /health HTTP/1.1\r\nHost: t\r\nthis is not a header\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "Content-Length and Transfer-Encoding together",
            b"POST /api/v1/webhooks/dream-storage HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            400,
            "bad_request",
        ),
        (
            "a garbled request line",
            b"GARBAGE\x01\x02 / HTTP/9.9\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "a request head that never ends",
            b"GET /health HTTP/1.1\r\nHost: t\r\n".to_vec(),
            408,
            "request_timeout",
        ),
    ];
    for (case, bytes, status, code) in cases {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(&bytes).await.expect("write");
        let answer = read_to_close(&mut stream, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{case}: no answer"));
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(status_of(&answer), status, "{case}: {answer}");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{case}: {head}"
        );
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{case}: {e}: {body:?}"));
        assert_eq!(json["code"], code, "{case}");
        assert!(
            json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}"
        );
    }
    // Ordinary answers are untouched.
    let (health, took) = server.request("GET", "/health", &[]).await;
    assert_eq!(status_of(&health), 200, "{health} after {took:?}");
    let (missing, _) = server.request("GET", "/nope", &[]).await;
    assert_eq!(status_of(&missing), 404);
    assert!(missing.contains("\"code\":\"not_found\""), "{missing}");
    server.stop().await;
}
