//! Shared helpers for the unit tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::clock::ManualClock;
use crate::config::{BreakerConfig, Credentials, DcsConfig, Jitter, RetryConfig};
use crate::{DcsClient, DcsError};

pub(crate) const EMAIL: &str = "lms@example.com";
pub(crate) const PASSWORD: &str = "pw-Secret-Hunter2!";
pub(crate) const API_KEY: &str = "dcs_test_lms_SECRETKEY0123456789abcd";

/// A fixed, whole-second start time (so HTTP dates are exact).
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_339_972, 0).unwrap()
}

/// An unsigned JWT-shaped token issued at `t0()` with `exp`; `tag` makes it unique and
/// recognisable.
pub(crate) fn jwt(exp: DateTime<Utc>, tag: &str) -> String {
    jwt_issued(t0(), exp, tag)
}

/// Like [`jwt`], issued at `iat` (by a server whose clock says `iat`).
pub(crate) fn jwt_issued(iat: DateTime<Utc>, exp: DateTime<Utc>, tag: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig-{tag}",
        b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64.encode(
            serde_json::json!({"sub": "2", "iat": iat.timestamp(), "exp": exp.timestamp()})
                .to_string()
        )
    )
}

pub(crate) fn login_body(token: &str) -> String {
    serde_json::json!({"access_token": token, "token_type": "bearer"}).to_string()
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A config for tests: deterministic backoff (1 s, 2 s, 4 s on the manual clock) within a
/// long call deadline (on the manual clock too), short real timeouts.
pub(crate) fn test_config(base_url: &str, credentials: Credentials) -> DcsConfig {
    let mut cfg = DcsConfig::new(base_url, credentials);
    cfg.retry = RetryConfig {
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(30),
        jitter: Jitter::None,
        ..RetryConfig::default()
    };
    cfg.breaker = BreakerConfig {
        failure_threshold: 50,
        cool_down: Duration::from_secs(30),
        max_cool_down: Duration::from_secs(30),
    };
    cfg.call_deadline = Duration::from_secs(120);
    cfg.download_deadline = Duration::from_secs(120);
    cfg.api_timeout = Duration::from_secs(5);
    cfg.download_timeout = Duration::from_secs(5);
    cfg.download_idle_timeout = Duration::from_secs(5);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg
}

pub(crate) fn password_creds() -> Credentials {
    Credentials::password(EMAIL, PASSWORD)
}

pub(crate) fn client(cfg: DcsConfig, clock: &ManualClock) -> DcsClient {
    DcsClient::with_clock(cfg, Arc::new(clock.clone())).expect("client")
}

/// The recorded `books-get-200` body.
pub(crate) fn book_json(id: i64, status: &str) -> serde_json::Value {
    serde_json::json!({
        "publisher": "Dream Press", "book_name": format!("BOOK{id}"), "book_title": "Flow Demo English 1",
        "book_cover": "book_cover.png", "activity_count": 2,
        "activity_details": {"matchTheWords": 1, "dragdroppicture": 1}, "total_size": 48873,
        "language": "en", "category": "English", "status": status, "id": id, "publisher_id": 1,
        "created_at": "2026-11-22T09:32:53.445746Z", "updated_at": "2026-11-22T09:32:53.445746Z"
    })
}

pub(crate) fn publisher_json(id: i64, name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name, "display_name": null, "description": null,
        "logo_url": format!("/publishers/{id}/logo"), "contact_email": null, "status": "active",
        "id": id, "created_at": "2026-11-22T09:32:52.354533Z", "updated_at": "2026-11-22T09:32:52.400880Z"
    })
}

/// Mocks `GET /books/1` (a published book) for requests carrying `token`, expected `times`.
pub(crate) async fn book_1_with_token(
    server: &mut mockito::ServerGuard,
    token: &str,
    times: usize,
) -> mockito::Mock {
    server
        .mock("GET", "/books/1")
        .match_header("authorization", bearer(token).as_str())
        .with_body(book_json(1, "published").to_string())
        .expect(times)
        .create_async()
        .await
}

/// Mocks `POST /auth/login` handing out `tokens` in turn (the last one repeats).
pub(crate) async fn login_sequence(
    server: &mut mockito::ServerGuard,
    tokens: Vec<String>,
) -> (mockito::Mock, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let mock = server
        .mock("POST", "/auth/login")
        .match_header("content-type", "application/json")
        .match_body(mockito::Matcher::Json(
            serde_json::json!({"email": EMAIL, "password": PASSWORD}),
        ))
        .with_status(200)
        .with_header("content-type", "application/json")
        .with_body_from_request(move |_| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            let token = &tokens[n.min(tokens.len() - 1)];
            login_body(token).into_bytes()
        })
        .create_async()
        .await;
    (mock, count)
}

/// An address where nothing listens (connection refused).
pub(crate) async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// Reads one request head (and a Content-Length body) from a raw connection.
pub(crate) async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut have = buf.len() - end - 4;
            while have < len {
                let n = stream.read(&mut tmp).await.ok()?;
                if n == 0 {
                    return None;
                }
                have += n;
            }
            return Some(head);
        }
        let n = stream.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

pub(crate) fn http_response(status: &str, body: &str, extra_headers: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// A raw TCP server: `behaviour(connection_index, stream)` runs for each accepted connection.
pub(crate) async fn raw_server<F, Fut>(behaviour: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    let behaviour = Arc::new(behaviour);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let i = c.fetch_add(1, Ordering::SeqCst);
            let b = behaviour.clone();
            tokio::spawn(async move { b(i, stream).await });
        }
    });
    (addr, conns)
}

pub(crate) async fn write_all(stream: &mut TcpStream, s: &str) {
    let _ = stream.write_all(s.as_bytes()).await;
    let _ = stream.flush().await;
}

pub(crate) fn assert_code(err: &DcsError, code: &str) {
    assert_eq!(err.code(), code, "unexpected error: {err:?}");
}
