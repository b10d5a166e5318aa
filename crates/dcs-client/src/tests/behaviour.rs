//! Auth, retries, rate limits, breaker, timeouts, resets, API-key mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use mockito::Matcher;

use super::support::*;
use crate::clock::{Clock, ManualClock};
use crate::config::{BreakerConfig, Credentials, RetryConfig};
use crate::{BreakerState, DcsApi, DcsError};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ----- auth ---------------------------------------------------------------------------------

#[tokio::test]
async fn login_success_and_token_reuse() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let token = jwt(t0() + chrono::Duration::minutes(30), "T1");
    let (login, count) = login_sequence(&mut server, vec![token.clone()]).await;
    let books = server
        .mock("GET", "/books/")
        .match_header("authorization", bearer(&token).as_str())
        .with_status(200)
        .with_body(format!("[{}]", book_json(1, "published")))
        .expect(5)
        .create_async()
        .await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    for _ in 0..5 {
        let list = c.list_books(None).await.unwrap();
        assert_eq!(list.len(), 1);
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "one login for many calls");
    login.assert_async().await;
    books.assert_async().await;
    assert_eq!(
        c.token_expires_at().unwrap(),
        t0() + chrono::Duration::minutes(30)
    );
}

#[tokio::test]
async fn explicit_login_checks_credentials() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let token = jwt(t0() + chrono::Duration::minutes(30), "T1");
    let (_login, count) = login_sequence(&mut server, vec![token]).await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    c.login().await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn login_failure_is_auth_failed_and_not_retried() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let login = server
        .mock("POST", "/auth/login")
        .with_status(401)
        .with_body(r#"{"detail":"Invalid credentials"}"#)
        .expect(1)
        .create_async()
        .await;
    let books = server.mock("GET", "/books/").expect(0).create_async().await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    let err = c.list_books(None).await.unwrap_err();
    assert_code(&err, "dcs_auth_failed");
    assert!(err.to_string().contains("Invalid credentials"), "{err}");
    assert!(err.is_auth());
    assert!(!err.is_unavailable());
    login.assert_async().await;
    books.assert_async().await;
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn login_5xx_is_not_retried() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let login = server
        .mock("POST", "/auth/login")
        .with_status(503)
        .with_body(r#"{"detail":"down"}"#)
        .expect(1)
        .create_async()
        .await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_server_error");
    login.assert_async().await;
}

#[tokio::test]
async fn proactive_refresh_before_expiry() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let a = jwt(t0() + chrono::Duration::minutes(30), "A");
    let b = jwt(t0() + chrono::Duration::minutes(60), "B");
    let (_login, count) = login_sequence(&mut server, vec![a.clone(), b.clone()]).await;
    let with_a = book_1_with_token(&mut server, &a, 2).await;
    let with_b = book_1_with_token(&mut server, &b, 1).await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    c.get_book(1).await.unwrap();
    // 24 min later: 6 min left, outside the 5 min margin: token A is still used.
    clock.advance(secs(24 * 60));
    c.get_book(1).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // 26 min: 4 min left, within the margin: a new login happens before the call.
    clock.advance(secs(2 * 60));
    c.get_book(1).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
    with_a.assert_async().await;
    with_b.assert_async().await;
    assert!(clock.sleeps().is_empty(), "no waiting for a refresh");
}

#[tokio::test]
async fn a_failed_early_refresh_keeps_using_the_token_that_still_works() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let a = jwt(t0() + chrono::Duration::minutes(30), "A");
    let b = jwt(t0() + chrono::Duration::minutes(60), "B");
    let (first_login, count) = login_sequence(&mut server, vec![a.clone()]).await;
    let with_a = book_1_with_token(&mut server, &a, 6).await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    c.get_book(1).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // Within the refresh margin, the login fails (DCS's login is slow or down).
    first_login.remove_async().await;
    let failing_login = server
        .mock("POST", "/auth/login")
        .with_status(503)
        .with_body(r#"{"detail":"down"}"#)
        .expect(2)
        .create_async()
        .await;
    clock.advance(secs(26 * 60));
    let (one, two, three) = tokio::join!(c.get_book(1), c.get_book(1), c.get_book(1));
    for result in [one, two, three] {
        result.expect("served with the token that still works");
    }
    // The next refresh waits a little; meanwhile calls go out at once with the same token.
    c.get_book(1).await.unwrap();
    clock.advance(secs(11));
    c.get_book(1).await.unwrap();
    failing_login.assert_async().await;
    with_a.assert_async().await;

    // Once the token has expired, the login's failure is the call's.
    clock.advance(secs(4 * 60));
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_server_error");

    // And once the login works again, the new token is used.
    failing_login.remove_async().await;
    let (_login, _) = login_sequence(&mut server, vec![b.clone()]).await;
    let with_b = book_1_with_token(&mut server, &b, 1).await;
    clock.advance(secs(11));
    c.get_book(1).await.unwrap();
    with_b.assert_async().await;
}

#[tokio::test]
async fn refresh_margin_is_configurable() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let a = jwt(t0() + chrono::Duration::minutes(30), "A");
    let b = jwt(t0() + chrono::Duration::minutes(60), "B");
    let (_login, count) = login_sequence(&mut server, vec![a, b]).await;
    server
        .mock("GET", "/books/1")
        .with_body(book_json(1, "published").to_string())
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), password_creds());
    cfg.token_refresh_margin = secs(60);
    let c = client(cfg, &clock);
    c.get_book(1).await.unwrap();
    clock.advance(secs(28 * 60)); // 2 min left > 1 min margin
    c.get_book(1).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    clock.advance(secs(90)); // 30 s left
    c.get_book(1).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_401_causes_one_relogin_and_one_retry() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let a = jwt(t0() + chrono::Duration::minutes(30), "A");
    let b = jwt(t0() + chrono::Duration::minutes(30), "B");
    let (_login, count) = login_sequence(&mut server, vec![a.clone(), b.clone()]).await;
    let rejected = server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/config")
        .match_header("authorization", bearer(&a).as_str())
        .with_status(401)
        .with_body(r#"{"detail":"Invalid token"}"#)
        .expect(1)
        .create_async()
        .await;
    let accepted = server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/config")
        .match_header("authorization", bearer(&b).as_str())
        .with_body(r#"{"book_title":"x"}"#)
        .expect(1)
        .create_async()
        .await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    let cfg = c.book_config("Dream Press", "FLOWDEMO").await.unwrap();
    assert_eq!(cfg["book_title"], "x");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    rejected.assert_async().await;
    accepted.assert_async().await;
    assert!(
        clock.sleeps().is_empty(),
        "a re-login is not a backoff retry"
    );
}

#[tokio::test]
async fn a_second_401_is_an_auth_error_without_a_loop() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let a = jwt(t0() + chrono::Duration::minutes(30), "A");
    let b = jwt(t0() + chrono::Duration::minutes(30), "B");
    let (login, count) = login_sequence(&mut server, vec![a, b]).await;
    let books = server
        .mock("GET", "/books/")
        .with_status(401)
        .with_body(r#"{"detail":"Invalid token"}"#)
        .expect(2)
        .create_async()
        .await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    let err = c.list_books(None).await.unwrap_err();
    assert_code(&err, "dcs_auth_failed");
    assert!(err.to_string().contains("Invalid token"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    books.assert_async().await;
    drop(login);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_expired_token_causes_exactly_one_login() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let a = jwt(t0() + chrono::Duration::minutes(30), "A");
    let b = jwt(t0() + chrono::Duration::minutes(90), "B");
    let (_login, count) = login_sequence(&mut server, vec![a.clone(), b.clone()]).await;
    book_1_with_token(&mut server, &a, 1).await;
    let with_b = book_1_with_token(&mut server, &b, 100).await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    c.get_book(1).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // Token A has expired.
    clock.advance(secs(31 * 60));
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = c.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.get_book(1).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "100 concurrent calls with an expired token: exactly one login"
    );
    with_b.assert_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_401s_cause_one_relogin() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let a = jwt(t0() + chrono::Duration::minutes(30), "A");
    let b = jwt(t0() + chrono::Duration::minutes(30), "B");
    let (_login, count) = login_sequence(&mut server, vec![a.clone(), b.clone()]).await;
    book_1_with_token(&mut server, &a, 1).await;
    c_reject(&mut server, &a).await;
    server
        .mock("GET", "/books/2")
        .match_header("authorization", bearer(&b).as_str())
        .with_body(book_json(2, "published").to_string())
        .expect(20)
        .create_async()
        .await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    c.get_book(1).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.get_book(2).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(count.load(Ordering::SeqCst), 2);

    async fn c_reject(server: &mut mockito::ServerGuard, a: &str) {
        server
            .mock("GET", "/books/2")
            .match_header("authorization", bearer(a).as_str())
            .with_status(401)
            .with_body(r#"{"detail":"Invalid token"}"#)
            .create_async()
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_failed_login() {
    for (status, body, code) in [
        (
            401,
            r#"{"detail":"Invalid credentials"}"#,
            "dcs_auth_failed",
        ),
        (503, r#"{"detail":"down"}"#, "dcs_server_error"),
    ] {
        let mut server = mockito::Server::new_async().await;
        let clock = ManualClock::starting_at(t0());
        let attempts = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let (counter, all_started) = (attempts.clone(), started.clone());
        server
            .mock("POST", "/auth/login")
            .with_status(status)
            .with_body_from_request(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
                // Answer only once every caller is queued behind this login. (A caller
                // counts itself and reaches the login lock in the same poll.)
                let waiting_since = std::time::Instant::now();
                while all_started.load(Ordering::SeqCst) < 100
                    && waiting_since.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                // The last callers counted themselves but may still be on their way to the
                // lock on another worker thread: give them a moment to queue.
                std::thread::sleep(Duration::from_millis(20));
                body.as_bytes().to_vec()
            })
            .create_async()
            .await;
        let books = server
            .mock("GET", "/books/1")
            .expect(0)
            .create_async()
            .await;
        let c = client(test_config(&server.url(), password_creds()), &clock);
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let c = c.clone();
            let started = started.clone();
            tasks.push(tokio::spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                c.get_book(1).await
            }));
        }
        for t in tasks {
            let err = t.await.unwrap().unwrap_err();
            assert_code(&err, code);
        }
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1,
            "{status}: 100 callers, one failed login, shared"
        );
        // A call that starts after the failure tries again.
        assert_code(&c.get_book(1).await.unwrap_err(), code);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        books.assert_async().await;
    }
}

#[tokio::test]
async fn clock_skew_between_dcs_and_this_host_does_not_matter() {
    // DCS's clock is 40 minutes behind ours: by our clock its fresh 30-minute token "expired"
    // 10 minutes ago. The lifetime (exp - iat) counts from when the token arrived.
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let dcs_now = t0() - chrono::Duration::minutes(40);
    let a = jwt_issued(dcs_now, dcs_now + chrono::Duration::minutes(30), "A");
    let b = jwt_issued(dcs_now, dcs_now + chrono::Duration::minutes(60), "B");
    let (_login, count) = login_sequence(&mut server, vec![a, b]).await;
    server
        .mock("GET", "/books/1")
        .with_body(book_json(1, "published").to_string())
        .create_async()
        .await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    c.get_book(1).await.unwrap();
    c.get_book(1).await.unwrap();
    clock.advance(secs(24 * 60));
    c.get_book(1).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1, "the token is reused");
    clock.advance(secs(2 * 60));
    c.get_book(1).await.unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "refreshed 5 min before it ends"
    );
    assert_eq!(
        c.token_expires_at(),
        Some(dcs_now + chrono::Duration::minutes(60)),
        "exp is reported as DCS wrote it"
    );
}

#[tokio::test]
async fn not_authenticated_403_is_recognised() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/books/")
        .with_status(403)
        .with_body(r#"{"detail":"Not authenticated"}"#)
        .expect(1)
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    );
    let err = c.list_books(None).await.unwrap_err();
    assert_code(&err, "dcs_not_authenticated");
    assert_eq!(err.status(), Some(403));
    m.assert_async().await;
}

// ----- API keys -----------------------------------------------------------------------------

#[tokio::test]
async fn api_key_is_sent_as_bearer_on_books_and_publishers() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let login = server
        .mock("POST", "/auth/login")
        .expect(0)
        .create_async()
        .await;
    let books = server
        .mock("GET", "/books/")
        .match_header("authorization", bearer(API_KEY).as_str())
        .with_body("[]")
        .expect(1)
        .create_async()
        .await;
    let pubs = server
        .mock("GET", "/publishers/")
        .match_query(Matcher::Any)
        .match_header("authorization", bearer(API_KEY).as_str())
        .with_body(r#"{"items":[],"total":0}"#)
        .expect(1)
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    );
    assert!(c.list_books(None).await.unwrap().is_empty());
    assert!(c.list_publishers().await.unwrap().is_empty());
    books.assert_async().await;
    pubs.assert_async().await;
    login.assert_async().await;
}

#[tokio::test]
async fn api_key_only_gets_a_typed_error_on_storage_and_webhooks() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let any = server
        .mock("GET", Matcher::Any)
        .expect(0)
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    );
    let err = c.book_config("Dream Press", "FLOWDEMO").await.unwrap_err();
    assert_code(&err, "dcs_api_key_unsupported");
    assert!(err.to_string().contains("/storage/*"), "{err}");
    let err = c.list_webhooks().await.unwrap_err();
    assert_code(&err, "dcs_api_key_unsupported");
    assert!(err.to_string().contains("/webhooks/*"), "{err}");
    let path = crate::AssetPath::parse("audio/01.mp3").unwrap();
    let err = c
        .download_asset("Dream Press", "FLOWDEMO", &path, &Default::default())
        .await
        .unwrap_err();
    assert_code(&err, "dcs_api_key_unsupported");
    let err = c.login().await.unwrap_err();
    assert_code(&err, "dcs_invalid_config");
    any.assert_async().await;
}

#[tokio::test]
async fn api_key_plus_password_logs_in_for_storage_only() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let token = jwt(t0() + chrono::Duration::minutes(30), "T");
    let (_login, count) = login_sequence(&mut server, vec![token.clone()]).await;
    let books = server
        .mock("GET", "/books/")
        .match_header("authorization", bearer(API_KEY).as_str())
        .with_body("[]")
        .expect(1)
        .create_async()
        .await;
    let hooks = server
        .mock("GET", "/webhooks/")
        .match_header("authorization", bearer(&token).as_str())
        .with_body("[]")
        .expect(1)
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), password_creds().with_api_key(API_KEY)),
        &clock,
    );
    c.list_books(None).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 0, "books use the API key");
    c.list_webhooks().await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
    books.assert_async().await;
    hooks.assert_async().await;
}

#[tokio::test]
async fn rejected_api_key_is_auth_failed_without_login() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/books/")
        .with_status(401)
        .with_body(r#"{"detail":"Invalid token"}"#)
        .expect(1)
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    );
    let err = c.list_books(None).await.unwrap_err();
    assert_code(&err, "dcs_auth_failed");
    assert!(err.to_string().contains("API key rejected"), "{err}");
    m.assert_async().await;
}

#[test]
fn construction_checks_credentials_and_url() {
    let err = crate::DcsClient::new(crate::DcsConfig::default()).unwrap_err();
    assert_code(&err, "dcs_invalid_config");
    let err = crate::DcsClient::new(crate::DcsConfig::new(
        "ftp://x",
        Credentials::api_key(API_KEY),
    ))
    .unwrap_err();
    assert_code(&err, "dcs_invalid_config");
}

// ----- retries ------------------------------------------------------------------------------

fn api_key_client(url: &str, clock: &ManualClock) -> crate::DcsClient {
    client(test_config(url, Credentials::api_key(API_KEY)), clock)
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let failing = server
        .mock("GET", "/books/1")
        .with_status(503)
        .with_body(r#"{"detail":"Service Unavailable"}"#)
        .expect(2)
        .create_async()
        .await;
    let ok = server
        .mock("GET", "/books/1")
        .with_body(book_json(1, "published").to_string())
        .expect(1)
        .create_async()
        .await;
    let c = api_key_client(&server.url(), &clock);
    let book = c.get_book(1).await.unwrap();
    assert_eq!(book.id, 1);
    assert_eq!(clock.sleeps(), vec![secs(1), secs(2)]);
    failing.assert_async().await;
    ok.assert_async().await;
}

#[tokio::test]
async fn max_retries_is_respected() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/books/1")
        .with_status(500)
        .with_body(r#"{"detail":"boom"}"#)
        .expect(4)
        .create_async()
        .await;
    let c = api_key_client(&server.url(), &clock);
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_server_error");
    assert_eq!(err.status(), Some(500));
    assert!(err.to_string().contains("boom"));
    assert!(err.is_unavailable() && err.is_retryable());
    assert_eq!(clock.sleeps(), vec![secs(1), secs(2), secs(4)]);
    m.assert_async().await; // exactly 1 + 3 requests
}

#[tokio::test]
async fn retry_count_and_base_delay_are_configurable() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/books/1")
        .with_status(502)
        .expect(2)
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.retry.max_retries = 1;
    cfg.retry.base_delay = Duration::from_millis(10);
    let c = client(cfg, &clock);
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_server_error");
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(10)]);
    m.assert_async().await;
}

#[tokio::test]
async fn jittered_backoff_stays_within_bounds() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    server
        .mock("GET", "/books/1")
        .with_status(500)
        .expect(4)
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.retry.jitter = crate::Jitter::Equal;
    let c = client(cfg, &clock);
    c.get_book(1).await.unwrap_err();
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    for (d, nominal) in sleeps.iter().zip([1u64, 2, 4]) {
        assert!(
            *d >= secs(nominal) / 2 && *d <= secs(nominal),
            "{d:?} vs {nominal}s"
        );
    }
}

#[tokio::test]
async fn connection_refused_fails_fast_without_retries() {
    let addr = closed_port().await;
    let clock = ManualClock::starting_at(t0());
    let c = api_key_client(&format!("http://{addr}"), &clock);
    let started = std::time::Instant::now();
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_network");
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert!(err.is_unavailable());
    assert!(
        clock.sleeps().is_empty(),
        "nothing listens: no backoff ladder"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn post_is_not_retried_but_batch_is() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let token = jwt(t0() + chrono::Duration::minutes(30), "T");
    let (_login, _) = login_sequence(&mut server, vec![token]).await;
    let create = server
        .mock("POST", "/webhooks/")
        .with_status(503)
        .expect(1)
        .create_async()
        .await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    let err = c
        .create_webhook(&crate::WebhookSubscriptionCreate::new(
            "http://lms/hook",
            "0123456789abcdef0123",
        ))
        .await
        .unwrap_err();
    assert_code(&err, "dcs_server_error");
    assert!(clock.sleeps().is_empty());
    create.assert_async().await;

    let batch_fail = server
        .mock("POST", "/books/batch")
        .with_status(503)
        .expect(1)
        .create_async()
        .await;
    let batch_ok = server
        .mock("POST", "/books/batch")
        .match_body(Matcher::Json(serde_json::json!({"ids": [1, 2]})))
        .with_body(format!("[{}]", book_json(1, "published")))
        .expect(1)
        .create_async()
        .await;
    let books = c.get_books(&[1, 2]).await.unwrap();
    assert_eq!(books.len(), 1);
    assert_eq!(clock.sleeps(), vec![secs(1)]);
    batch_fail.assert_async().await;
    batch_ok.assert_async().await;
}

#[tokio::test]
async fn no_retry_on_403_or_404() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let nf = server
        .mock("GET", "/books/999999")
        .with_status(404)
        .with_body(r#"{"detail":"Book not found"}"#)
        .expect(1)
        .create_async()
        .await;
    let forbidden = server
        .mock("GET", "/publishers/7")
        .with_status(403)
        .with_body(r#"{"detail":"Not enough privileges"}"#)
        .expect(1)
        .create_async()
        .await;
    let c = api_key_client(&server.url(), &clock);
    let err = c.get_book(999999).await.unwrap_err();
    assert_code(&err, "dcs_not_found");
    assert!(err.is_not_found());
    assert!(!err.is_retryable() && !err.is_unavailable());
    assert!(err.to_string().contains("Book not found"), "{err}");
    let err = c.get_publisher(7).await.unwrap_err();
    assert_code(&err, "dcs_forbidden");
    assert!(err.to_string().contains("Not enough privileges"));
    assert!(clock.sleeps().is_empty());
    nf.assert_async().await;
    forbidden.assert_async().await;
}

#[tokio::test]
async fn other_4xx_map_to_typed_errors() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    server
        .mock("GET", "/books/1")
        .with_status(422)
        .with_body(r#"{"detail":[{"type":"int_parsing","loc":["path","book_id"],"msg":"Input should be a valid integer","input":"abc"}]}"#)
        .create_async()
        .await;
    server
        .mock("GET", "/books/2")
        .with_status(409)
        .with_body(r#"{"detail":{"message":"Book 'X' already exists","code":"BOOK_EXISTS"}}"#)
        .create_async()
        .await;
    server
        .mock("GET", "/books/3")
        .with_status(200)
        .with_body("not json")
        .create_async()
        .await;
    let c = api_key_client(&server.url(), &clock);
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_bad_request");
    assert!(
        err.to_string()
            .contains("path.book_id: Input should be a valid integer"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("abc"),
        "input is not echoed: {err}"
    );
    let err = c.get_book(2).await.unwrap_err();
    assert_code(&err, "dcs_conflict");
    assert!(err.to_string().contains("already exists"));
    let err = c.get_book(3).await.unwrap_err();
    assert_code(&err, "dcs_decode");
    assert!(clock.sleeps().is_empty());
}

// ----- 429 ----------------------------------------------------------------------------------

#[tokio::test]
async fn rate_limit_with_delta_seconds_is_honoured() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let limited = server
        .mock("GET", "/books/1")
        .with_status(429)
        .with_header("retry-after", "7")
        .with_body(r#"{"detail":"Too Many Requests"}"#)
        .expect(1)
        .create_async()
        .await;
    let ok = server
        .mock("GET", "/books/1")
        .with_body(book_json(1, "published").to_string())
        .expect(1)
        .create_async()
        .await;
    let c = api_key_client(&server.url(), &clock);
    c.get_book(1).await.unwrap();
    assert_eq!(clock.sleeps(), vec![secs(7)]);
    limited.assert_async().await;
    ok.assert_async().await;
}

#[tokio::test]
async fn rate_limit_with_http_date_is_honoured() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let when: std::time::SystemTime = (t0() + chrono::Duration::seconds(9)).into();
    let limited = server
        .mock("GET", "/books/1")
        .with_status(429)
        .with_header("retry-after", &httpdate::fmt_http_date(when))
        .expect(1)
        .create_async()
        .await;
    server
        .mock("GET", "/books/1")
        .with_body(book_json(1, "published").to_string())
        .expect(1)
        .create_async()
        .await;
    let c = api_key_client(&server.url(), &clock);
    c.get_book(1).await.unwrap();
    assert_eq!(clock.sleeps(), vec![secs(9)]);
    limited.assert_async().await;
}

#[tokio::test]
async fn rate_limit_beyond_the_cap_returns_at_once() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/books/1")
        .with_status(429)
        .with_header("retry-after", "3600")
        .expect(1)
        .create_async()
        .await;
    let c = api_key_client(&server.url(), &clock);
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_rate_limited");
    assert_eq!(err.retry_after(), Some(secs(3600)));
    assert!(err.is_retryable());
    assert!(clock.sleeps().is_empty(), "no waiting");
    m.assert_async().await;
}

#[tokio::test]
async fn rate_limit_beyond_the_call_deadline_returns_at_once() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/books/1")
        .with_status(429)
        .with_header("retry-after", "100")
        .expect(1)
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.retry.max_retry_after = secs(3600);
    cfg.call_deadline = secs(60);
    let c = client(cfg, &clock);
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_rate_limited");
    assert_eq!(err.retry_after(), Some(secs(100)));
    assert!(clock.sleeps().is_empty());
    m.assert_async().await;
}

#[tokio::test]
async fn backoff_stops_at_the_call_deadline() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/books/1")
        .with_status(503)
        .expect(3)
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.call_deadline = secs(5); // 1 s + 2 s fit, the 4 s wait does not
    let c = client(cfg, &clock);
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_server_error");
    assert_eq!(clock.sleeps(), vec![secs(1), secs(2)]);
    m.assert_async().await;
}

#[tokio::test]
async fn parse_retry_after_forms() {
    use crate::client::parse_retry_after;
    let now = t0();
    assert_eq!(parse_retry_after("5", now), Some(secs(5)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(secs(0)));
    let later: std::time::SystemTime = (now + chrono::Duration::seconds(30)).into();
    assert_eq!(
        parse_retry_after(&httpdate::fmt_http_date(later), now),
        Some(secs(30))
    );
    let past: std::time::SystemTime = (now - chrono::Duration::seconds(30)).into();
    assert_eq!(
        parse_retry_after(&httpdate::fmt_http_date(past), now),
        Some(secs(0))
    );
    assert_eq!(parse_retry_after("soon", now), None);
    // Fractions, and values too large for a Duration (a proxy's, not DCS's): the longest wait,
    // which the retry policy then refuses, never a panic.
    assert_eq!(
        parse_retry_after("1.5", now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(parse_retry_after("1e20", now), Some(Duration::MAX));
    assert_eq!(
        parse_retry_after("123456789012345678901234567890", now),
        Some(Duration::MAX)
    );
}

// ----- circuit breaker ----------------------------------------------------------------------

fn breaker_client(url: &str, clock: &ManualClock) -> crate::DcsClient {
    let mut cfg = test_config(url, Credentials::api_key(API_KEY));
    cfg.retry = RetryConfig::disabled();
    cfg.breaker = BreakerConfig {
        failure_threshold: 3,
        cool_down: secs(30),
        // A fixed open time: these tests pin the probe cycle, not the growth.
        max_cool_down: secs(30),
    };
    client(cfg, clock)
}

#[tokio::test]
async fn breaker_opens_after_n_failures_and_fails_fast() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/books/1")
        .with_status(500)
        .expect(3)
        .create_async()
        .await;
    let c = breaker_client(&server.url(), &clock);
    for _ in 0..3 {
        assert_code(&c.get_book(1).await.unwrap_err(), "dcs_server_error");
    }
    assert_eq!(c.breaker_state(), BreakerState::Open { retry_in: secs(30) });
    clock.advance(secs(10));
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_circuit_open");
    assert_eq!(err.retry_after(), Some(secs(20)));
    assert!(err.is_unavailable());
    m.assert_async().await; // no fourth request
}

#[tokio::test]
async fn breaker_probe_success_closes_it() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let failing = server
        .mock("GET", "/books/1")
        .with_status(502)
        .expect(3)
        .create_async()
        .await;
    let ok = server
        .mock("GET", "/books/1")
        .with_body(book_json(1, "published").to_string())
        .expect(2)
        .create_async()
        .await;
    let c = breaker_client(&server.url(), &clock);
    for _ in 0..3 {
        c.get_book(1).await.unwrap_err();
    }
    clock.advance(secs(30));
    assert_eq!(c.breaker_state(), BreakerState::HalfOpen { probing: false });
    c.get_book(1).await.unwrap();
    assert_eq!(c.breaker_state(), BreakerState::Closed { failures: 0 });
    c.get_book(1).await.unwrap();
    failing.assert_async().await;
    ok.assert_async().await;
}

#[tokio::test]
async fn breaker_probe_failure_reopens_it() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let failing = server
        .mock("GET", "/books/1")
        .with_status(503)
        .expect(4)
        .create_async()
        .await;
    let c = breaker_client(&server.url(), &clock);
    for _ in 0..3 {
        c.get_book(1).await.unwrap_err();
    }
    clock.advance(secs(30));
    assert_code(&c.get_book(1).await.unwrap_err(), "dcs_server_error");
    assert_eq!(c.breaker_state(), BreakerState::Open { retry_in: secs(30) });
    assert_code(&c.get_book(1).await.unwrap_err(), "dcs_circuit_open");
    failing.assert_async().await;
}

#[tokio::test]
async fn half_open_lets_exactly_one_probe_through() {
    // A server that fails 3 times, then answers the probe slowly.
    let (addr, conns) = raw_server(|i, mut s| async move {
        while let Some(_req) = read_request(&mut s).await {
            if i < 3 {
                write_all(
                    &mut s,
                    &http_response(
                        "500 Internal Server Error",
                        r#"{"detail":"x"}"#,
                        "connection: close\r\n",
                    ),
                )
                .await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let body = book_json(1, "published").to_string();
            write_all(&mut s, &http_response("200 OK", &body, "")).await;
        }
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let c = breaker_client(&format!("http://{addr}"), &clock);
    for _ in 0..3 {
        assert_code(&c.get_book(1).await.unwrap_err(), "dcs_server_error");
    }
    clock.advance(secs(30));
    let probe = {
        let c = c.clone();
        tokio::spawn(async move { c.get_book(1).await })
    };
    // Let the probe get in flight.
    for _ in 0..50 {
        if c.breaker_state() == (BreakerState::HalfOpen { probing: true }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(c.breaker_state(), BreakerState::HalfOpen { probing: true });
    for _ in 0..5 {
        let err = c.get_book(1).await.unwrap_err();
        assert_code(&err, "dcs_circuit_open");
    }
    probe.await.unwrap().unwrap();
    assert_eq!(c.breaker_state(), BreakerState::Closed { failures: 0 });
    assert_eq!(conns.load(Ordering::SeqCst), 4, "3 failures + 1 probe");
}

#[tokio::test]
async fn client_errors_do_not_trip_the_breaker() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    server
        .mock("GET", "/books/1")
        .with_status(404)
        .with_body(r#"{"detail":"Book not found"}"#)
        .create_async()
        .await;
    server
        .mock("GET", "/books/2")
        .with_status(429)
        .with_header("retry-after", "3600")
        .create_async()
        .await;
    server
        .mock("GET", "/books/3")
        .with_status(422)
        .with_body(r#"{"detail":[]}"#)
        .create_async()
        .await;
    let c = breaker_client(&server.url(), &clock);
    for _ in 0..5 {
        c.get_book(1).await.unwrap_err();
        c.get_book(2).await.unwrap_err();
        c.get_book(3).await.unwrap_err();
    }
    assert_eq!(c.breaker_state(), BreakerState::Closed { failures: 0 });
}

#[tokio::test]
async fn network_failures_trip_the_breaker() {
    let addr = closed_port().await;
    let clock = ManualClock::starting_at(t0());
    let c = breaker_client(&format!("http://{addr}"), &clock);
    for _ in 0..3 {
        assert_code(&c.get_book(1).await.unwrap_err(), "dcs_network");
    }
    assert_code(&c.get_book(1).await.unwrap_err(), "dcs_circuit_open");
}

// ----- timeouts, resets, connection bound ---------------------------------------------------

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let (addr, conns) = raw_server(|_, mut s| async move {
        let _ = read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let mut cfg = test_config(&format!("http://{addr}"), Credentials::api_key(API_KEY));
    cfg.api_timeout = Duration::from_millis(100);
    cfg.retry.max_retries = 2;
    let c = client(cfg, &clock);
    let started = std::time::Instant::now();
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_timeout");
    assert!(err.to_string().contains("100ms"), "{err}");
    assert_eq!(clock.sleeps(), vec![secs(1), secs(2)]);
    assert_eq!(conns.load(Ordering::SeqCst), 3);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn reset_of_a_reused_connection_is_retried() {
    // Connection 0 answers once with keep-alive, then drops the connection when the second
    // request arrives (what uvicorn does after a 304). Connection 1 answers normally.
    let (addr, conns) = raw_server(|i, mut s| async move {
        let body = book_json(1, "published").to_string();
        if i == 0 {
            if read_request(&mut s).await.is_some() {
                write_all(&mut s, &http_response("200 OK", &body, "")).await;
            }
            let _ = read_request(&mut s).await;
            return; // reset: closed without an answer
        }
        while read_request(&mut s).await.is_some() {
            write_all(&mut s, &http_response("200 OK", &body, "")).await;
        }
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let c = api_key_client(&format!("http://{addr}"), &clock);
    c.get_book(1).await.unwrap();
    c.get_book(1).await.unwrap();
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn download_body_idle_timeout_ends_the_stream_with_an_error() {
    let (addr, _) = raw_server(|_, mut s| async move {
        let _ = read_request(&mut s).await;
        write_all(
            &mut s,
            "HTTP/1.1 200 OK\r\ncontent-type: audio/mpeg\r\ncontent-length: 100\r\n\r\n0123456789",
        )
        .await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let mut cfg = test_config(&format!("http://{addr}"), Credentials::api_key(API_KEY));
    cfg.download_idle_timeout = Duration::from_millis(150);
    let c = client(cfg, &clock);
    let dl = c.publisher_logo(1).await.unwrap();
    assert_eq!(dl.content_type.as_deref(), Some("audio/mpeg"));
    let mut body = dl.body;
    assert_eq!(&body.next().await.unwrap().unwrap()[..], b"0123456789");
    let err = body.next().await.unwrap().unwrap_err();
    assert_code(&err, "dcs_timeout");
    assert!(err.to_string().contains("body idle"), "{err}");
    assert!(body.next().await.is_none());
}

#[tokio::test]
async fn download_head_timeout() {
    let (addr, _) = raw_server(|_, mut s| async move {
        let _ = read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let mut cfg = test_config(&format!("http://{addr}"), Credentials::api_key(API_KEY));
    cfg.download_timeout = Duration::from_millis(100);
    cfg.retry = RetryConfig::disabled();
    let c = client(cfg, &clock);
    let err = c.publisher_logo(1).await.unwrap_err();
    assert_code(&err, "dcs_timeout");
    assert!(err.to_string().contains("response head"), "{err}");
}

#[tokio::test]
async fn streamed_bodies_hold_a_connection_slot() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    server
        .mock("GET", "/publishers/1/logo")
        .with_header("content-type", "image/png")
        .with_body(vec![7u8; 64 * 1024])
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.max_streams = 2;
    cfg.pool_wait_timeout = Duration::from_millis(200);
    cfg.retry = RetryConfig::disabled();
    let c = client(cfg, &clock);
    let a = c.publisher_logo(1).await.unwrap();
    let b = c.publisher_logo(1).await.unwrap();
    assert_eq!(c.stats().streams_in_flight, 2);
    // Both stream slots are held by unread bodies: a third stream waits and gives up.
    let err = c.publisher_logo(1).await.unwrap_err();
    assert_code(&err, "dcs_pool_exhausted");
    assert!(err.to_string().contains("all 2 slots for streams"), "{err}");
    assert_eq!(c.stats().pool_exhausted, 1);
    // Reading one body to the end frees its slot.
    assert_eq!(a.bytes().await.unwrap().len(), 64 * 1024);
    let c3 = c.publisher_logo(1).await.unwrap();
    drop(b);
    drop(c3);
    c.publisher_logo(1).await.unwrap();
}

#[tokio::test]
async fn waiting_for_a_connection_slot_is_not_a_dcs_failure_and_streams_do_not_block_api_calls() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let logos = server
        .mock("GET", "/publishers/1/logo")
        .with_header("content-type", "image/png")
        .with_body(vec![7u8; 64 * 1024])
        .expect(2)
        .create_async()
        .await;
    let books = server
        .mock("GET", "/books/1")
        .with_body(book_json(1, "published").to_string())
        .expect(1)
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.max_connections_per_host = 1;
    cfg.max_streams = 1;
    cfg.pool_wait_timeout = Duration::from_millis(100);
    cfg.breaker = BreakerConfig {
        failure_threshold: 1,
        cool_down: secs(30),
        max_cool_down: secs(30),
    };
    let c = client(cfg, &clock);
    // An unread download holds the only stream slot.
    let held = c.publisher_logo(1).await.unwrap();
    let err = c.publisher_logo(1).await.unwrap_err();
    assert_code(&err, "dcs_pool_exhausted");
    assert!(err.is_unavailable());
    assert!(clock.sleeps().is_empty(), "local queueing is not retried");
    assert_eq!(
        c.breaker_state(),
        BreakerState::Closed { failures: 0 },
        "DCS was never asked, so the breaker did not count it"
    );
    // The API budget is separate: the held stream does not block a JSON call.
    c.get_book(1).await.unwrap();
    books.assert_async().await;
    drop(held);
    // The slot is free again.
    c.publisher_logo(1).await.unwrap();
    logos.assert_async().await;
    let stats = c.stats();
    assert_eq!(stats.pool_exhausted, 1);
    assert_eq!(stats.deadline_exceeded, 0);
}

#[tokio::test]
async fn an_attempt_gets_only_what_is_left_of_the_call_deadline() {
    let (addr, conns) = raw_server(|_, mut s| async move {
        let _ = read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let mut cfg = test_config(&format!("http://{addr}"), Credentials::api_key(API_KEY));
    cfg.api_timeout = secs(5);
    cfg.call_deadline = Duration::from_millis(150);
    let c = client(cfg, &clock);
    let started = std::time::Instant::now();
    let err = c.get_book(1).await.unwrap_err();
    assert_code(&err, "dcs_deadline_exceeded");
    assert_eq!(
        err.to_string(),
        "DCS call deadline of 150ms exceeded while waiting for the response"
    );
    assert!(err.is_unavailable());
    assert!(started.elapsed() < secs(2), "{:?}", started.elapsed());
    assert_eq!(c.stats().deadline_exceeded, 1);
    assert!(clock.sleeps().is_empty(), "no retry past the deadline");
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    server
        .mock("GET", "/books/")
        .with_body(format!(
            "[{}]",
            vec![book_json(1, "published").to_string(); 20].join(",")
        ))
        .create_async()
        .await;
    server
        .mock("GET", "/publishers/1/logo")
        .with_status(500)
        .with_body(vec![b'x'; 4096])
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.max_body_bytes = 1024;
    cfg.retry = RetryConfig::disabled();
    let c = client(cfg, &clock);
    let err = c.list_books(None).await.unwrap_err();
    assert_code(&err, "dcs_decode");
    assert!(err.to_string().contains("larger than 1024 bytes"), "{err}");
    let err = c.publisher_logo(1).await.unwrap_err();
    assert_code(&err, "dcs_decode");
    assert_eq!(c.breaker_state(), BreakerState::Closed { failures: 0 });
}

#[tokio::test]
async fn idle_connections_are_reaped() {
    let closed = Arc::new(AtomicUsize::new(0));
    let seen_closed = closed.clone();
    let (addr, conns) = raw_server(move |_, mut s| {
        let closed = seen_closed.clone();
        async move {
            while read_request(&mut s).await.is_some() {
                let body = book_json(1, "published").to_string();
                write_all(&mut s, &http_response("200 OK", &body, "")).await;
            }
            // The client closed the connection.
            closed.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let mut cfg = test_config(&format!("http://{addr}"), Credentials::api_key(API_KEY));
    cfg.pool_idle_timeout = Duration::from_millis(100);
    let c = client(cfg, &clock);
    c.get_book(1).await.unwrap();
    let opened = conns.load(Ordering::SeqCst);
    assert!(opened >= 1);
    // Nothing uses the client now: its idle connections must be closed by the client.
    let started = std::time::Instant::now();
    while closed.load(Ordering::SeqCst) < opened {
        assert!(
            started.elapsed() < secs(3),
            "idle connections were not closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.get_book(1).await.unwrap();
    assert_eq!(
        conns.load(Ordering::SeqCst),
        opened + 1,
        "a new connection after reaping"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_n_requests_in_flight() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (i2, p2) = (in_flight.clone(), peak.clone());
    let (addr, _) = raw_server(move |_, mut s| {
        let (in_flight, peak) = (i2.clone(), p2.clone());
        async move {
            while read_request(&mut s).await.is_some() {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let body = book_json(1, "published").to_string();
                write_all(&mut s, &http_response("200 OK", &body, "")).await;
            }
        }
    })
    .await;
    let clock = ManualClock::starting_at(t0());
    let c = api_key_client(&format!("http://{addr}"), &clock);
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.get_book(1).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 10, "peak {peak} > 10");
    assert!(peak >= 2, "requests did run concurrently (peak {peak})");
}

#[test]
fn manual_clock_records_sleeps() {
    let clock = ManualClock::starting_at(t0());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(clock.sleep(secs(3)));
    assert_eq!(clock.now(), t0() + chrono::Duration::seconds(3));
    assert_eq!(clock.total_slept(), secs(3));
    clock.clear_sleeps();
    assert!(clock.sleeps().is_empty());
}

#[test]
fn error_helpers() {
    let e = DcsError::CircuitOpen { retry_in: secs(3) };
    assert!(e.is_unavailable() && !e.is_retryable());
    assert_eq!(e.retry_after(), Some(secs(3)));
    let e = DcsError::from_response(503, br#"{"detail":"x"}"#, None);
    assert_eq!(e.status(), Some(503));
    let e = DcsError::from_response(416, br#"{"detail":"Range Not Satisfiable"}"#, None);
    assert_code(&e, "dcs_range_not_satisfiable");
    let e = DcsError::from_response(405, b"", None);
    assert_code(&e, "dcs_bad_request");
    assert!(e.to_string().contains("(no detail)"));
}
