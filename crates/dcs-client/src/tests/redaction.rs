//! Secrets never reach the logs, `Debug` output or error messages.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use super::support::*;
use crate::clock::ManualClock;
use crate::config::Credentials;
use crate::{DcsApi, DcsClient};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

#[tokio::test]
async fn logs_never_contain_passwords_tokens_or_api_keys() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    // The test runs on a current-thread runtime: every task (hyper's connection tasks too)
    // runs on this thread and logs into the capture.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let t1 = jwt(t0() + chrono::Duration::minutes(30), "FIRST-TOKEN-SIG");
    let t2 = jwt(t0() + chrono::Duration::minutes(30), "SECOND-TOKEN-SIG");
    let (_login, _) = login_sequence(&mut server, vec![t1.clone(), t2.clone()]).await;
    // 401 for the first token -> re-login.
    server
        .mock("GET", "/webhooks/")
        .match_header("authorization", bearer(&t1).as_str())
        .with_status(401)
        .with_body(r#"{"detail":"Invalid token"}"#)
        .create_async()
        .await;
    server
        .mock("GET", "/webhooks/")
        .match_header("authorization", bearer(&t2).as_str())
        .with_body(sample_webhooks())
        .create_async()
        .await;
    // A retry (503 then 200), with the API key.
    server
        .mock("GET", "/books/1")
        .with_status(503)
        .with_body(r#"{"detail":"busy"}"#)
        .expect(1)
        .create_async()
        .await;
    server
        .mock("GET", "/books/1")
        .with_body(book_json(1, "published").to_string())
        .create_async()
        .await;

    let creds = password_creds().with_api_key(API_KEY);
    let c =
        DcsClient::with_clock(test_config(&server.url(), creds), Arc::new(clock.clone())).unwrap();
    let subs = c.list_webhooks().await.unwrap();
    c.get_book(1).await.unwrap();

    // A failed login, whose 422 body echoes the password back.
    let mut bad = mockito::Server::new_async().await;
    bad.mock("POST", "/auth/login")
        .with_status(422)
        .with_body(format!(
            r#"{{"detail":[{{"type":"string_type","loc":["body","email"],"msg":"Input should be a valid string","input":{{"email":1,"password":"{PASSWORD}"}}}}]}}"#
        ))
        .create_async()
        .await;
    let c2 = DcsClient::with_clock(
        test_config(&bad.url(), Credentials::password(EMAIL, PASSWORD)),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let err = c2.book_tree("Dream Press", "FLOWDEMO").await.unwrap_err();

    let mut text = capture.text();
    // Everything else a caller might print.
    text.push_str(&format!(
        "{c:?}\n{c2:?}\n{err}\n{err:?}\n{subs:?}\n{:?}\n",
        c.config()
    ));

    assert!(text.contains("DCS login succeeded"), "{text}");
    assert!(text.contains("logging in again"), "{text}");
    assert!(text.contains("attempt 2 of 4"), "{text}");
    assert!(text.contains("DCS login failed"), "{text}");
    assert!(text.contains("DCS request"), "{text}");
    for secret in [
        PASSWORD,
        API_KEY,
        t1.as_str(),
        t2.as_str(),
        "FIRST-TOKEN-SIG",
        "SECOND-TOKEN-SIG",
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked into:\n{text}");
    }
    // The webhook secret DCS returns in plaintext is not in Debug output either.
    assert!(!text.contains("lms-local-test-webhook-secret-0001"));
}

fn sample_webhooks() -> String {
    let path = format!(
        "{}/../../testdata/dcs-samples/webhooks-list-200.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["response"]["json"].to_string()
}

/// Pool exhaustion and deadline expiry are logged at WARN with their cause, counted, and the
/// log carries no secret.
#[tokio::test]
async fn protective_failures_are_logged_with_their_cause_and_counted() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // Logos start a body and stall; books never answer.
    let (addr, _) = raw_server(|_, mut s| async move {
        let Some(head) = read_request(&mut s).await else {
            return;
        };
        if head.contains("/logo") {
            write_all(
                &mut s,
                "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 100\r\n\r\n0123456789",
            )
            .await;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let mut cfg = test_config(&format!("http://{addr}"), Credentials::api_key(API_KEY));
    cfg.call_deadline = Duration::from_millis(150);
    cfg.max_streams = 1;
    cfg.pool_wait_timeout = Duration::from_millis(100);
    let c = DcsClient::with_clock(cfg, Arc::new(clock.clone())).unwrap();

    let deadline = c.get_book(1).await.unwrap_err();
    assert_code(&deadline, "dcs_deadline_exceeded");
    let held = c.publisher_logo(1).await.unwrap();
    let exhausted = c.publisher_logo(1).await.unwrap_err();
    assert_code(&exhausted, "dcs_pool_exhausted");
    drop(held);

    let stats = c.stats();
    assert_eq!(
        (
            stats.deadline_exceeded,
            stats.pool_exhausted,
            stats.breaker_open_rejections
        ),
        (1, 1, 0)
    );
    let text = capture.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains(
            "DCS call failed: DCS call deadline of 150ms exceeded while waiting for the response"
        ),
        "{text}"
    );
    assert!(text.contains("code=\"dcs_deadline_exceeded\""), "{text}");
    assert!(text.contains("path=/books/1"), "{text}");
    assert!(
        text.contains(
            "DCS connection pool exhausted: all 1 slots for streams stayed busy for 100ms"
        ),
        "{text}"
    );
    assert!(text.contains("code=\"dcs_pool_exhausted\""), "{text}");
    assert!(!text.contains(API_KEY), "{text}");
}
