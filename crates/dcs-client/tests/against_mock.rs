//! The real adapter against `dcs-mock` over loopback, and against a real DCS when
//! `DCS_TEST_URL`, `DCS_TEST_EMAIL` and `DCS_TEST_PASSWORD` are set.
//!
//! Read-only tests run against every target [`targets()`] returns. Tests that change data or
//! inject faults run against the mock only.

use std::sync::Arc;
use std::time::Duration;

use dcs_client::testing::ManualClock;
use dcs_client::{
    AssetPath, BreakerConfig, Conditional, Credentials, DcsApi, DcsClient, DcsConfig, Jitter,
    RetryConfig, WebhookSubscriptionCreate, WebhookSubscriptionUpdate,
};
use dcs_mock::{Fault, MockConfig, MockDcs};

const MOCK_EMAIL: &str = "admin@admin.com";
const MOCK_PASSWORD: &str = "admin";

/// Where the read-only tests run.
struct Target {
    name: &'static str,
    base_url: String,
    email: String,
    password: String,
    /// Keeps the mock alive (None for a real DCS).
    _mock: Option<MockDcs>,
}

async fn start_mock() -> MockDcs {
    MockDcs::start(MockConfig::default())
        .await
        .expect("dcs-mock starts")
}

/// The mock, plus the real DCS if `DCS_TEST_URL`/`DCS_TEST_EMAIL`/`DCS_TEST_PASSWORD` are set.
async fn targets() -> Vec<Target> {
    let mock = start_mock().await;
    let mut out = vec![Target {
        name: "dcs-mock",
        base_url: mock.base_url().to_string(),
        email: MOCK_EMAIL.to_owned(),
        password: MOCK_PASSWORD.to_owned(),
        _mock: Some(mock),
    }];
    match real_dcs() {
        Ok(t) => out.push(t),
        Err(why) => eprintln!("real DCS tests skipped: {why}"),
    }
    out
}

fn real_dcs() -> Result<Target, String> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{name} not set"))
    };
    Ok(Target {
        name: "real DCS",
        base_url: var("DCS_TEST_URL")?,
        email: var("DCS_TEST_EMAIL")?,
        password: var("DCS_TEST_PASSWORD")?,
        _mock: None,
    })
}

/// Fast, deterministic settings for tests: short backoff (on the system clock).
fn fast_config(base_url: &str, credentials: Credentials) -> DcsConfig {
    let mut cfg = DcsConfig::new(base_url, credentials);
    cfg.retry = RetryConfig {
        base_delay: Duration::from_millis(10),
        jitter: Jitter::None,
        ..RetryConfig::default()
    };
    cfg.api_timeout = Duration::from_secs(10);
    cfg.download_timeout = Duration::from_secs(10);
    cfg.download_idle_timeout = Duration::from_secs(10);
    cfg
}

fn client_for(t: &Target) -> DcsClient {
    DcsClient::new(fast_config(
        &t.base_url,
        Credentials::password(&t.email, t.password.clone()),
    ))
    .expect("client")
}

fn mock_client(mock: &MockDcs) -> DcsClient {
    DcsClient::new(fast_config(
        mock.base_url(),
        Credentials::password(MOCK_EMAIL, MOCK_PASSWORD),
    ))
    .expect("client")
}

/// A mock client whose waits go through a manual clock (no real sleeping for backoff or
/// Retry-After).
fn mock_client_with_clock(
    mock: &MockDcs,
    clock: &ManualClock,
    cfg: impl FnOnce(&mut DcsConfig),
) -> DcsClient {
    let mut c = fast_config(
        mock.base_url(),
        Credentials::password(MOCK_EMAIL, MOCK_PASSWORD),
    );
    c.retry.base_delay = Duration::from_secs(1);
    c.retry.max_delay = Duration::from_secs(30);
    // Backoff on the manual clock counts against the deadline (1 s + 2 s + 4 s).
    c.call_deadline = Duration::from_secs(60);
    cfg(&mut c);
    DcsClient::with_clock(c, Arc::new(clock.clone())).expect("client")
}

/// The first non-archived book: (publisher name, book name, id).
async fn some_book(c: &DcsClient) -> (String, String, i64) {
    let books = c.list_books(None).await.expect("list books");
    let b = books
        .iter()
        .find(|b| !b.is_archived() && b.publisher.is_some())
        .expect("at least one non-archived book");
    (b.publisher.clone().unwrap(), b.book_name.clone(), b.id)
}

// ----- read-only: mock and real DCS ---------------------------------------------------------

#[tokio::test]
async fn login_works_and_bad_passwords_fail() {
    for t in targets().await {
        let c = client_for(&t);
        c.login()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        assert!(c.token_expires_at().is_some(), "{}: exp readable", t.name);
        let bad = DcsClient::new(fast_config(
            &t.base_url,
            Credentials::password(&t.email, "definitely-wrong-password"),
        ))
        .unwrap();
        let err = bad.login().await.unwrap_err();
        assert_eq!(err.code(), "dcs_auth_failed", "{}: {err}", t.name);
        assert!(
            err.to_string().contains("Invalid credentials"),
            "{}: {err}",
            t.name
        );
        let h = c
            .health()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        assert!(!h.status.is_empty());
    }
}

#[tokio::test]
async fn publishers_are_listed_with_paging() {
    for t in targets().await {
        let mut cfg = fast_config(
            &t.base_url,
            Credentials::password(&t.email, t.password.clone()),
        );
        cfg.publishers_page_size = 1;
        let c = DcsClient::new(cfg).unwrap();
        let paged = c.list_publishers().await.unwrap();
        let whole = client_for(&t).list_publishers_page(0, 1000).await.unwrap();
        assert_eq!(paged.len() as u64, whole.total, "{}", t.name);
        assert_eq!(
            paged.iter().map(|p| p.id).collect::<Vec<_>>(),
            whole.items.iter().map(|p| p.id).collect::<Vec<_>>(),
            "{}",
            t.name
        );
        assert!(paged.iter().all(|p| p.status.is_active()));
        if let Some(mock) = &t._mock {
            // limit=1: one request per publisher (at least one).
            assert_eq!(
                mock.request_count("GET /publishers/"),
                paged.len().max(1) + 1,
                "page requests + the whole-list request"
            );
        }
        if let Some(p) = paged.first() {
            let one = c.get_publisher(p.id).await.unwrap();
            assert_eq!(one.name, p.name);
            let by_name = c.get_publisher_by_name(&p.name).await.unwrap();
            assert_eq!(by_name.id, p.id);
        }
        let err = c.get_publisher(999_999).await.unwrap_err();
        assert!(err.is_not_found(), "{}: {err}", t.name);
        assert!(
            err.to_string().contains("Publisher not found"),
            "{}: {err}",
            t.name
        );
    }
}

#[tokio::test]
async fn books_and_batch() {
    for t in targets().await {
        let c = client_for(&t);
        let books = c.list_books(None).await.unwrap();
        assert!(!books.is_empty(), "{}", t.name);
        let (_, _, id) = some_book(&c).await;
        let one = c.get_book(id).await.unwrap();
        assert_eq!(one.id, id);
        let by_pub = c.list_books(Some(one.publisher_id)).await.unwrap();
        assert!(by_pub.iter().all(|b| b.publisher_id == one.publisher_id));
        assert!(by_pub.iter().any(|b| b.id == id));
        let mut ids: Vec<i64> = books.iter().map(|b| b.id).collect();
        ids.push(99_999_999);
        let batch = c.get_books(&ids).await.unwrap();
        assert!(
            batch.iter().all(|b| !b.is_archived()),
            "{}: batch skips archived",
            t.name
        );
        assert_eq!(
            batch.len(),
            books.iter().filter(|b| !b.is_archived()).count(),
            "{}: unknown ids skipped",
            t.name
        );
        let err = c.get_book(99_999_999).await.unwrap_err();
        assert!(err.is_not_found());
        assert!(
            err.to_string().contains("Book not found"),
            "{}: {err}",
            t.name
        );
    }
}

#[tokio::test]
async fn config_and_contents() {
    for t in targets().await {
        let c = client_for(&t);
        let (publisher, book, _) = some_book(&c).await;
        let cfg = c.book_config(&publisher, &book).await.unwrap();
        assert!(cfg.is_object(), "{}", t.name);
        let raw = c.book_config_bytes(&publisher, &book).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&raw).unwrap(),
            cfg
        );
        let files = c.book_contents(&publisher, &book).await.unwrap();
        assert!(
            files.iter().any(|f| f.path == "config.json"),
            "{}: {files:?}",
            t.name
        );
        assert!(files.iter().all(|f| !f.path.starts_with(&publisher)));
        for f in &files {
            AssetPath::parse(&f.path).unwrap_or_else(|e| panic!("{}: {e}", t.name));
        }
        let none = c
            .book_contents(&publisher, "NO_SUCH_BOOK_XYZ")
            .await
            .unwrap();
        assert!(
            none.is_empty(),
            "{}: unknown book has an empty tree",
            t.name
        );
        let err = c
            .book_config(&publisher, "NO_SUCH_BOOK_XYZ")
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{}: {err}", t.name);
    }
}

#[tokio::test]
async fn cover_etag_304_and_the_next_requests() {
    for t in targets().await {
        let c = client_for(&t);
        let (publisher, book, id) = some_book(&c).await;
        let first = c.book_cover(&publisher, &book, None).await.unwrap();
        let Conditional::Modified(dl) = first else {
            panic!("{}: expected a cover body", t.name)
        };
        let etag = dl.etag.clone().expect("cover has an ETag");
        let bytes = dl.bytes().await.unwrap();
        assert!(bytes.starts_with(b"\x89PNG") || !bytes.is_empty());
        let second = c.book_cover(&publisher, &book, Some(&etag)).await.unwrap();
        assert!(second.is_not_modified(), "{}: If-None-Match -> 304", t.name);
        // DCS drops the connection after a 304: whatever follows must not notice.
        for _ in 0..5 {
            c.get_book(id).await.unwrap();
            assert!(
                c.book_cover(&publisher, &book, Some(&etag))
                    .await
                    .unwrap()
                    .is_not_modified()
            );
            c.list_publishers_page(0, 10).await.unwrap();
        }
        let err = c
            .book_cover(&publisher, "NO_SUCH_BOOK_XYZ", None)
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{}: {err}", t.name);
    }
}

#[tokio::test]
async fn asset_download_with_range() {
    for t in targets().await {
        let c = client_for(&t);
        let (publisher, book, _) = some_book(&c).await;
        let files = c.book_contents(&publisher, &book).await.unwrap();
        let file = files
            .iter()
            .filter(|f| f.size > 100)
            .min_by_key(|f| f.size)
            .expect("a file over 100 bytes");
        let path = AssetPath::parse(&file.path).unwrap();

        let full = c
            .download_asset(&publisher, &book, &path, &Default::default())
            .await
            .unwrap()
            .into_download()
            .unwrap();
        assert_eq!(full.status, 200);
        assert_eq!(full.content_length, Some(file.size));
        assert!(full.content_type.is_some());
        assert!(full.cache_control.is_some());
        let etag = full.etag.clone().expect("objects have an ETag");
        let whole = full.bytes().await.unwrap();
        assert_eq!(whole.len() as u64, file.size);

        let part = c
            .download_asset(
                &publisher,
                &book,
                &path,
                &dcs_client::DownloadOptions::new().range("bytes=0-99"),
            )
            .await
            .unwrap()
            .into_download()
            .unwrap();
        assert_eq!(part.status, 206, "{}", t.name);
        assert_eq!(
            part.content_range.as_deref(),
            Some(format!("bytes 0-99/{}", file.size).as_str())
        );
        assert_eq!(part.total_size(), Some(file.size));
        let head = part.bytes().await.unwrap();
        assert_eq!(&head[..], &whole[..100]);

        let tail = c
            .download_asset(
                &publisher,
                &book,
                &path,
                &dcs_client::DownloadOptions::new().range("bytes=-10"),
            )
            .await
            .unwrap()
            .into_download()
            .unwrap();
        assert_eq!(&tail.bytes().await.unwrap()[..], &whole[whole.len() - 10..]);

        let not_modified = c
            .download_asset(
                &publisher,
                &book,
                &path,
                &dcs_client::DownloadOptions::new().if_none_match(etag),
            )
            .await
            .unwrap();
        assert!(not_modified.is_not_modified(), "{}", t.name);

        let err = c
            .download_asset(
                &publisher,
                &book,
                &path,
                &dcs_client::DownloadOptions::new().range(format!("bytes={}-", file.size + 1000)),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "dcs_range_not_satisfiable", "{}: {err}", t.name);

        let missing = AssetPath::parse("images/definitely-missing.png").unwrap();
        let err = c
            .download_asset(&publisher, &book, &missing, &Default::default())
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{}: {err}", t.name);

        assert!(AssetPath::parse("../other/config.json").is_err());
        let url = c.asset_url(&publisher, &book, &path).unwrap();
        assert!(url.starts_with(&t.base_url.trim_end_matches('/').to_string()));
        assert!(url.contains("/object?path="));
    }
}

#[tokio::test]
async fn presigned_url_and_logo() {
    for t in targets().await {
        let c = client_for(&t);
        let (publisher, book, _) = some_book(&c).await;
        let p = c
            .presigned_url(
                &publisher,
                &book,
                &AssetPath::parse("config.json").unwrap(),
                Duration::from_secs(600),
            )
            .await
            .unwrap();
        assert_eq!(p.expires_in, 600, "{}", t.name);
        assert!(p.url.starts_with("http"), "{}", t.name);
        let pubs = c.list_publishers().await.unwrap();
        if let Some(pubr) = pubs.iter().find(|p| p.name == publisher) {
            match c.publisher_logo(pubr.id).await {
                Ok(logo) => {
                    assert!(logo.content_type.is_some(), "{}", t.name);
                    assert!(!logo.bytes().await.unwrap().is_empty());
                }
                Err(e) => assert!(e.is_not_found(), "{}: {e}", t.name),
            }
        }
    }
}

// ----- mock only: changes and faults --------------------------------------------------------

#[tokio::test]
async fn webhooks_crud() {
    let mock = start_mock().await;
    let c = mock_client(&mock);
    let before = c.list_webhooks().await.unwrap();
    let created = c
        .create_webhook(
            &WebhookSubscriptionCreate::new(
                "http://127.0.0.1:9/lms-hook",
                "lms-integration-test-secret-0001",
            )
            .description("dcs-client test")
            .event_types(&[dcs_client::WebhookEventType::BookCreated]),
        )
        .await
        .unwrap();
    assert_eq!(created.secret, "lms-integration-test-secret-0001");
    assert_eq!(created.event_types.as_deref(), Some("book.created"));
    let after = c.list_webhooks().await.unwrap();
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(c.get_webhook(created.id).await.unwrap().url, created.url);
    let updated = c
        .update_webhook(
            created.id,
            &WebhookSubscriptionUpdate {
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!updated.is_active);
    assert_eq!(updated.url, created.url);
    let logs = c.webhook_logs(created.id).await.unwrap();
    assert!(logs.is_empty());
    c.delete_webhook(created.id).await.unwrap();
    let err = c.get_webhook(created.id).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = c
        .create_webhook(&WebhookSubscriptionCreate::new("http://x", "short"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "dcs_bad_request", "{err}");
    assert_eq!(err.status(), Some(422));
}

#[tokio::test]
async fn server_errors_then_recovery() {
    let mock = start_mock().await;
    let clock = ManualClock::new();
    let c = mock_client_with_clock(&mock, &clock, |_| {});
    c.login().await.unwrap();
    mock.inject("GET /books/", Fault::Status(503), Some(2));
    let books = c.list_books(None).await.unwrap();
    assert!(!books.is_empty());
    assert_eq!(mock.request_count("GET /books/"), 3);
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_secs(1), Duration::from_secs(2)]
    );

    // Not retried: a POST.
    mock.inject("POST /webhooks/", Fault::Status(500), Some(1));
    let err = c
        .create_webhook(&WebhookSubscriptionCreate::new(
            "http://127.0.0.1:9/x",
            "lms-integration-test-secret-0002",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "dcs_server_error");
    assert_eq!(mock.request_count("POST /webhooks/"), 1);
}

#[tokio::test]
async fn too_many_requests_is_waited_out() {
    let mock = start_mock().await;
    let clock = ManualClock::new();
    let c = mock_client_with_clock(&mock, &clock, |_| {});
    c.login().await.unwrap();
    mock.inject(
        "GET /publishers/",
        Fault::TooManyRequests {
            retry_after: "3".into(),
        },
        Some(1),
    );
    c.list_publishers().await.unwrap();
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(3)]);

    mock.inject(
        "GET /publishers/",
        Fault::TooManyRequests {
            retry_after: "3600".into(),
        },
        Some(1),
    );
    let err = c.list_publishers().await.unwrap_err();
    assert_eq!(err.code(), "dcs_rate_limited");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn resets_are_retried() {
    let mock = start_mock().await;
    let clock = ManualClock::new();
    let c = mock_client_with_clock(&mock, &clock, |_| {});
    c.login().await.unwrap();
    mock.inject("GET /books/", Fault::Reset, Some(2));
    c.list_books(None).await.unwrap();
    assert_eq!(mock.request_count("GET /books/"), 3);
    assert_eq!(clock.sleeps().len(), 2);
}

#[tokio::test]
async fn latency_beyond_the_timeout() {
    let mock = start_mock().await;
    let clock = ManualClock::new();
    let c = mock_client_with_clock(&mock, &clock, |cfg| {
        cfg.api_timeout = Duration::from_millis(200);
    });
    c.login().await.unwrap();
    mock.inject(
        "GET /books/",
        Fault::Latency(Duration::from_millis(600)),
        Some(1),
    );
    c.list_books(None).await.unwrap();
    assert_eq!(clock.sleeps().len(), 1, "one timed-out attempt, retried");

    let strict = mock_client_with_clock(&mock, &clock, |cfg| {
        cfg.api_timeout = Duration::from_millis(200);
        cfg.retry = RetryConfig::disabled();
    });
    mock.inject(
        "GET /books/",
        Fault::Latency(Duration::from_millis(600)),
        Some(1),
    );
    let err = strict.list_books(None).await.unwrap_err();
    assert_eq!(err.code(), "dcs_timeout", "{err}");
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn malformed_answers_are_decode_errors() {
    let mock = start_mock().await;
    let c = mock_client(&mock);
    mock.inject("GET /books/", Fault::Malformed, Some(1));
    let err = c.list_books(None).await.unwrap_err();
    assert_eq!(err.code(), "dcs_decode", "{err}");
}

#[tokio::test]
async fn expired_tokens_cause_one_relogin() {
    let mock = start_mock().await;
    let c = mock_client(&mock);
    c.list_books(None).await.unwrap();
    assert_eq!(mock.login_count(), 1);
    mock.expire_tokens();
    c.list_books(None).await.unwrap();
    let (publisher, book, _) = some_book(&c).await;
    c.book_config(&publisher, &book).await.unwrap();
    assert_eq!(mock.login_count(), 2, "one re-login after the 401");
}

#[tokio::test]
async fn breaker_opens_against_a_failing_mock() {
    let mock = start_mock().await;
    let clock = ManualClock::new();
    let c = mock_client_with_clock(&mock, &clock, |cfg| {
        cfg.retry = RetryConfig::disabled();
        cfg.breaker = BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(30),
        };
    });
    c.login().await.unwrap();
    mock.inject("GET /books/", Fault::Status(502), Some(3));
    for _ in 0..3 {
        assert_eq!(
            c.list_books(None).await.unwrap_err().code(),
            "dcs_server_error"
        );
    }
    let err = c.list_books(None).await.unwrap_err();
    assert_eq!(err.code(), "dcs_circuit_open");
    assert_eq!(
        mock.request_count("GET /books/"),
        3,
        "failing fast, no request"
    );
    clock.advance(Duration::from_secs(30));
    c.list_books(None).await.unwrap();
    assert_eq!(
        c.breaker_state(),
        dcs_client::BreakerState::Closed { failures: 0 }
    );
}

#[tokio::test]
async fn api_key_mode_against_the_mock() {
    let mock = start_mock().await;
    let key = mock.create_api_key("lms integration");
    let c = DcsClient::new(fast_config(
        mock.base_url(),
        Credentials::api_key(key.clone()),
    ))
    .unwrap();
    // Books and publishers accept the key.
    assert!(!c.list_books(None).await.unwrap().is_empty());
    assert!(!c.list_publishers().await.unwrap().is_empty());
    // Storage and webhooks do not: a typed error, and no request is sent.
    let before = mock.request_count("/storage/");
    let err = c.book_config("Dream Press", "FLOWDEMO").await.unwrap_err();
    assert_eq!(err.code(), "dcs_api_key_unsupported");
    let err = c.list_webhooks().await.unwrap_err();
    assert_eq!(err.code(), "dcs_api_key_unsupported");
    assert_eq!(mock.request_count("/storage/"), before);
    assert_eq!(mock.login_count(), 0);

    // With a password as well, storage calls log in.
    let both = DcsClient::new(fast_config(
        mock.base_url(),
        Credentials::password(MOCK_EMAIL, MOCK_PASSWORD).with_api_key(key),
    ))
    .unwrap();
    both.list_books(None).await.unwrap();
    assert_eq!(mock.login_count(), 0, "the key is used on /books/");
    both.book_config("Dream Press", "FLOWDEMO").await.unwrap();
    assert_eq!(mock.login_count(), 1);

    // An unknown key is DCS's 401, reported as AuthFailed (no login attempted).
    let wrong = DcsClient::new(fast_config(
        mock.base_url(),
        Credentials::api_key("dcs_test_lms_notarealkey000000000000"),
    ))
    .unwrap();
    let err = wrong.list_books(None).await.unwrap_err();
    assert_eq!(err.code(), "dcs_auth_failed", "{err}");
    assert_eq!(mock.login_count(), 1);
}

#[tokio::test]
async fn several_publishers_are_paged_one_by_one() {
    let mock = start_mock().await;
    for name in ["Alpha Books", "Beta Press", "Gamma & Sons"] {
        mock.add_publisher(dcs_mock::NewPublisher::new(name))
            .unwrap();
    }
    let mut cfg = fast_config(
        mock.base_url(),
        Credentials::password(MOCK_EMAIL, MOCK_PASSWORD),
    );
    cfg.publishers_page_size = 1;
    let c = DcsClient::new(cfg).unwrap();
    let pubs = c.list_publishers().await.unwrap();
    assert!(pubs.len() >= 4, "{pubs:?}");
    let mut ids: Vec<i64> = pubs.iter().map(|p| p.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), pubs.len(), "no publisher twice");
    assert_eq!(mock.request_count("GET /publishers/"), pubs.len());
}

#[tokio::test]
async fn odd_names_and_paths_are_encoded_end_to_end() {
    let mock = start_mock().await;
    let cases = [
        ("A&B #1", "100% + más", "images/Ünïcödé #1/a&b+c%.png"),
        ("Dream Press", "Space Book", "audio/track one.mp3"),
        ("Ünïcödé", "a..b", "a..b.png"),
    ];
    for (publisher, book, file) in cases {
        mock.add_book(
            dcs_mock::NewBook::new(publisher, book)
                .file(file, format!("content of {file}").into_bytes()),
        )
        .unwrap_or_else(|e| panic!("mock add_book {publisher}/{book}: {e:?}"));
    }
    let c = mock_client(&mock);
    for (publisher, book, file) in cases {
        let files = c.book_contents(publisher, book).await.unwrap();
        assert!(
            files.iter().any(|f| f.path == file),
            "{publisher}/{book}: {files:?}"
        );
        let path = AssetPath::parse(file).unwrap();
        let dl = c
            .download_asset(publisher, book, &path, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{publisher}/{book}/{file}: {e}"))
            .into_download()
            .unwrap();
        assert_eq!(
            dl.bytes().await.unwrap(),
            format!("content of {file}").as_bytes()
        );
    }
    let books = c.list_books(None).await.unwrap();
    assert!(books.iter().any(|b| b.book_name == "100% + más"));
}
