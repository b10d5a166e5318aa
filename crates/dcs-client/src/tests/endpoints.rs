//! Each endpoint: URL, encoding, parameters, decoding.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mockito::Matcher;

use super::support::*;
use crate::clock::ManualClock;
use crate::config::Credentials;
use crate::{
    AssetPath, BookStatus, Conditional, DcsApi, DcsClient, DownloadOptions,
    WebhookSubscriptionCreate, WebhookSubscriptionUpdate,
};

async fn jwt_client(server: &mut mockito::ServerGuard, clock: &ManualClock) -> (DcsClient, String) {
    let token = jwt(t0() + chrono::Duration::minutes(30), "T");
    let _ = login_sequence(server, vec![token.clone()]).await;
    (
        client(test_config(&server.url(), password_creds()), clock),
        token,
    )
}

fn sample(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../testdata/dcs-samples/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["response"]["json"].clone()
}

#[tokio::test]
async fn publishers_are_paged_to_the_end() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let all: Vec<_> = (1..=5)
        .map(|i| publisher_json(i, &format!("P{i}")))
        .collect();
    let mut mocks = Vec::new();
    for skip in [0usize, 2, 4] {
        let items: Vec<_> = all.iter().skip(skip).take(2).cloned().collect();
        mocks.push(
            server
                .mock("GET", "/publishers/")
                .match_query(Matcher::Exact(format!("skip={skip}&limit=2")))
                .with_body(serde_json::json!({"items": items, "total": 5}).to_string())
                .expect(1)
                .create_async()
                .await,
        );
    }
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.publishers_page_size = 2;
    let c = client(cfg, &clock);
    let pubs = c.list_publishers().await.unwrap();
    assert_eq!(
        pubs.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(pubs.iter().all(|p| p.status.is_active()));
    for m in mocks {
        m.assert_async().await;
    }
}

#[tokio::test]
async fn publisher_page_size_is_capped_at_1000_and_limit_validated() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/publishers/")
        .match_query(Matcher::Exact("skip=0&limit=1000".into()))
        .with_body(sample("publishers-list-200").to_string())
        .expect(1)
        .create_async()
        .await;
    let mut cfg = test_config(&server.url(), Credentials::api_key(API_KEY));
    cfg.publishers_page_size = 5000;
    let c = client(cfg, &clock);
    let pubs = c.list_publishers().await.unwrap();
    assert_eq!(pubs[0].name, "Dream Press");
    m.assert_async().await;
    let err = c.list_publishers_page(0, 0).await.unwrap_err();
    assert_code(&err, "dcs_invalid_argument");
}

#[tokio::test]
async fn publisher_get_by_id_and_by_name() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    server
        .mock("GET", "/publishers/1")
        .with_body(sample("publishers-get-200").to_string())
        .create_async()
        .await;
    let by_name = server
        .mock("GET", "/publishers/by-name/A%26B%20%231")
        .with_body(sample("publishers-by-name-200").to_string())
        .expect(1)
        .create_async()
        .await;
    server
        .mock("GET", "/publishers/999999")
        .with_status(404)
        .with_body(r#"{"detail":"Publisher not found"}"#)
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    );
    let p = c.get_publisher(1).await.unwrap();
    assert_eq!(p.display_name.as_deref(), Some("Dream Press Publishing"));
    assert_eq!(p.logo_url, None);
    c.get_publisher_by_name("A&B #1").await.unwrap();
    by_name.assert_async().await;
    let err = c.get_publisher(999999).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("Publisher not found"));
}

#[tokio::test]
async fn publisher_logo_is_streamed_with_its_content_type() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let png = b"\x89PNG\r\n\x1a\nrest-of-logo".to_vec();
    server
        .mock("GET", "/publishers/1/logo")
        .with_header("content-type", "image/png")
        .with_header(
            "content-disposition",
            "inline; filename=\"dream-press-logo.png\"",
        )
        .with_header("cache-control", "public, max-age=86400, immutable")
        .with_body(png.clone())
        .create_async()
        .await;
    server
        .mock("GET", "/publishers/2/logo")
        .with_status(404)
        .with_body(r#"{"detail":"Logo not found"}"#)
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    );
    let logo = c.publisher_logo(1).await.unwrap();
    assert_eq!(logo.content_type.as_deref(), Some("image/png"));
    assert_eq!(logo.content_length, Some(png.len() as u64));
    assert_eq!(logo.etag, None);
    assert_eq!(
        logo.cache_control.as_deref(),
        Some("public, max-age=86400, immutable")
    );
    assert!(format!("{logo:?}").contains("image/png"));
    assert_eq!(logo.bytes().await.unwrap().to_vec(), png);
    let err = c.publisher_logo(2).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("Logo not found"));
}

#[tokio::test]
async fn books_list_filter_get_and_archived_status() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    server
        .mock("GET", "/books/")
        // (The recorded `books-list-200-after-delete` lists only the published book,
        // although its note says archived books stay listed; DCS's code includes them.)
        .with_body(
            serde_json::json!([sample("books-get-200"), sample("books-delete-200-soft")])
                .to_string(),
        )
        .create_async()
        .await;
    let filtered = server
        .mock("GET", "/books/")
        .match_query(Matcher::Exact("publisher_id=1".into()))
        .with_body(sample("books-list-200-by-publisher").to_string())
        .expect(1)
        .create_async()
        .await;
    server
        .mock("GET", "/books/1")
        .with_body(sample("books-get-200").to_string())
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    );
    let all = c.list_books(None).await.unwrap();
    assert!(all.iter().any(|b| b.is_archived()));
    assert!(all.iter().any(|b| !b.is_archived()));
    let by_pub = c.list_books(Some(1)).await.unwrap();
    assert!(by_pub.iter().all(|b| b.publisher_id == 1));
    filtered.assert_async().await;
    let b = c.get_book(1).await.unwrap();
    assert_eq!(b.publisher.as_deref(), Some("Dream Press"));
    assert_eq!(b.book_name, "FLOWDEMO");
    assert_eq!(b.status, BookStatus::Published);
}

#[tokio::test]
async fn batch_is_chunked_by_100() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = sizes.clone();
    let m = server
        .mock("POST", "/books/batch")
        .match_header("content-type", "application/json")
        .with_body_from_request(move |req| {
            let body: serde_json::Value = serde_json::from_slice(req.body().unwrap()).unwrap();
            let ids = body["ids"].as_array().unwrap().clone();
            s.lock().unwrap().push(ids.len());
            let books: Vec<_> = ids
                .iter()
                .map(|id| book_json(id.as_i64().unwrap(), "published"))
                .collect();
            serde_json::to_vec(&books).unwrap()
        })
        .expect(3)
        .create_async()
        .await;
    let c = client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    );
    let ids: Vec<i64> = (1..=250).collect();
    let books = c.get_books(&ids).await.unwrap();
    assert_eq!(books.len(), 250);
    assert_eq!(*sizes.lock().unwrap(), vec![100, 100, 50]);
    m.assert_async().await;
    assert!(c.get_books(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn config_uses_encoded_names() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let (c, token) = jwt_client(&mut server, &clock).await;
    let cases = [
        (
            "Dream Press",
            "FLOWDEMO",
            "/storage/books/Dream%20Press/FLOWDEMO/config",
        ),
        (
            "A&B #1",
            "100% + más",
            "/storage/books/A%26B%20%231/100%25%20%2B%20m%C3%A1s/config",
        ),
        (
            "Ünïcödé",
            "a?b=c;d",
            "/storage/books/%C3%9Cn%C3%AFc%C3%B6d%C3%A9/a%3Fb%3Dc%3Bd/config",
        ),
    ];
    for (publisher, book, path) in cases {
        let m = server
            .mock("GET", path)
            .match_header("authorization", bearer(&token).as_str())
            .with_body(sample("storage-book-config-200").to_string())
            .expect(2)
            .create_async()
            .await;
        let cfg = c.book_config(publisher, book).await.unwrap();
        assert_eq!(cfg["publisher_name"], "Dream Press");
        let raw = c.book_config_bytes(publisher, book).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&raw).unwrap(),
            cfg
        );
        m.assert_async().await;
    }
    server
        .mock("GET", "/storage/books/Dream%20Press/NO_SUCH_BOOK/config")
        .with_status(404)
        .with_body(r#"{"detail":"config.json not found"}"#)
        .create_async()
        .await;
    let err = c
        .book_config("Dream Press", "NO_SUCH_BOOK")
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("config.json not found"));
    // Refused before any request: no mock matches these.
    let err = c.book_config("", "x").await.unwrap_err();
    assert_code(&err, "dcs_invalid_argument");
    let err = c
        .book_tree("Dream Press/FLOWDEMO", "config")
        .await
        .unwrap_err();
    assert_code(&err, "dcs_invalid_argument");
    let err = c.get_publisher_by_name("A/B").await.unwrap_err();
    assert_code(&err, "dcs_invalid_argument");
}

#[tokio::test]
async fn contents_flatten_the_tree() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let (c, _) = jwt_client(&mut server, &clock).await;
    server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO")
        .with_body(sample("storage-book-listing-200").to_string())
        .create_async()
        .await;
    server
        .mock("GET", "/storage/books/Dream%20Press/NO_SUCH_BOOK")
        .with_body(sample("storage-book-listing-200-unknown-book").to_string())
        .create_async()
        .await;
    let files = c.book_contents("Dream Press", "FLOWDEMO").await.unwrap();
    assert_eq!(files.len(), 13);
    assert_eq!(files[0].path, "audio/01.mp3");
    assert_eq!(files[0].size, 6032);
    assert!(
        files
            .iter()
            .any(|f| f.path == "config.json" && f.size == 6260)
    );
    assert!(
        files
            .iter()
            .any(|f| f.path == "images/HB/modules/M1/pages/01.png" && f.size == 5187)
    );
    assert!(files.iter().all(|f| !f.path.starts_with("Dream Press")));
    let total: u64 = files.iter().map(|f| f.size).sum();
    assert_eq!(total, 48873, "matches BookRead.total_size");
    for f in &files {
        AssetPath::parse(&f.path).unwrap();
    }
    assert!(
        c.book_contents("Dream Press", "NO_SUCH_BOOK")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn cover_with_etag_and_304() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let (c, _) = jwt_client(&mut server, &clock).await;
    let etag = "\"f4acf267fb613e1b43c051dac71605fb\"";
    server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/cover")
        .match_header("if-none-match", Matcher::Missing)
        .with_header("etag", etag)
        .with_header("content-type", "image/png")
        .with_header("cache-control", "public, max-age=86400, immutable")
        .with_body(b"png-bytes")
        .create_async()
        .await;
    let not_modified = server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/cover")
        .match_header("if-none-match", etag)
        .match_header("connection", "close")
        .with_status(304)
        .with_header("etag", etag)
        .with_header("cache-control", "public, max-age=86400, immutable")
        .expect(1)
        .create_async()
        .await;
    let first = c.book_cover("Dream Press", "FLOWDEMO", None).await.unwrap();
    let Conditional::Modified(dl) = first else {
        panic!("expected a body")
    };
    assert_eq!(dl.etag.as_deref(), Some(etag));
    assert_eq!(dl.content_type.as_deref(), Some("image/png"));
    assert_eq!(&dl.bytes().await.unwrap()[..], b"png-bytes");
    let second = c
        .book_cover("Dream Press", "FLOWDEMO", Some(etag))
        .await
        .unwrap();
    assert!(second.is_not_modified());
    match second {
        Conditional::NotModified {
            etag: e,
            cache_control,
        } => {
            assert_eq!(e.as_deref(), Some(etag));
            assert!(cache_control.unwrap().contains("immutable"));
        }
        Conditional::Modified(_) => unreachable!(),
    }
    not_modified.assert_async().await;
}

#[tokio::test]
async fn asset_download_with_range_and_errors() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let (c, _) = jwt_client(&mut server, &clock).await;
    let ranged = server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/object")
        .match_query(Matcher::Exact("path=audio%2F01.mp3".into()))
        .match_header("range", "bytes=0-99")
        .with_status(206)
        .with_header("content-type", "audio/mpeg")
        .with_header("content-range", "bytes 0-99/6032")
        .with_header("accept-ranges", "bytes")
        .with_header("etag", "\"9ff26ab7e1ab62f5cfe4038bbfddb1c4\"")
        .with_header("cache-control", "public, max-age=86400, immutable")
        .with_body(vec![0xffu8; 100])
        .expect(1)
        .create_async()
        .await;
    server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/object")
        .match_query(Matcher::Exact("path=audio%2F01.mp3".into()))
        .match_header("range", "bytes=99999-")
        .with_status(416)
        .with_body(r#"{"detail":"Range Not Satisfiable"}"#)
        .create_async()
        .await;
    server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/object")
        .match_query(Matcher::Exact("path=images%2Fnope.png".into()))
        .with_status(404)
        .with_body(r#"{"detail":"File not found"}"#)
        .create_async()
        .await;
    let encoded = server
        .mock(
            "GET",
            "/storage/books/A%26B%20%231/100%25%20%2B%20m%C3%A1s/object",
        )
        .match_query(Matcher::Exact(
            "path=images%2F%C3%9Cn%C3%AFc%C3%B6d%C3%A9%20%231%2Fa%26b%2Bc%25.png".into(),
        ))
        .with_header("content-type", "image/png")
        .with_body("x")
        .expect(1)
        .create_async()
        .await;
    let path = AssetPath::parse("audio/01.mp3").unwrap();
    let dl = c
        .download_asset(
            "Dream Press",
            "FLOWDEMO",
            &path,
            &DownloadOptions::new().range("bytes=0-99"),
        )
        .await
        .unwrap()
        .into_download()
        .unwrap();
    assert!(dl.is_partial());
    assert_eq!(dl.status, 206);
    assert_eq!(dl.content_range.as_deref(), Some("bytes 0-99/6032"));
    assert_eq!(dl.total_size(), Some(6032));
    assert_eq!(dl.content_length, Some(100));
    assert_eq!(dl.accept_ranges.as_deref(), Some("bytes"));
    assert_eq!(dl.content_type.as_deref(), Some("audio/mpeg"));
    assert!(dl.cache_control.is_some() && dl.etag.is_some());
    assert_eq!(dl.bytes().await.unwrap().len(), 100);
    ranged.assert_async().await;

    let err = c
        .download_asset(
            "Dream Press",
            "FLOWDEMO",
            &path,
            &DownloadOptions::new().range("bytes=99999-"),
        )
        .await
        .unwrap_err();
    assert_code(&err, "dcs_range_not_satisfiable");
    assert_eq!(err.status(), Some(416));

    let nope = AssetPath::parse("images/nope.png").unwrap();
    let err = c
        .download_asset("Dream Press", "FLOWDEMO", &nope, &DownloadOptions::new())
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("File not found"));

    let odd = AssetPath::parse("images/Ünïcödé #1/a&b+c%.png").unwrap();
    let dl = c
        .download_asset("A&B #1", "100% + más", &odd, &DownloadOptions::new())
        .await
        .unwrap()
        .into_download()
        .unwrap();
    assert_eq!(dl.status, 200);
    encoded.assert_async().await;

    let err = c
        .download_asset(
            "Dream Press",
            "FLOWDEMO",
            &path,
            &DownloadOptions::new().range("bytes=0-1\r\nx: y"),
        )
        .await
        .unwrap_err();
    assert_code(&err, "dcs_invalid_argument");
}

#[tokio::test]
async fn asset_not_modified() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let (c, _) = jwt_client(&mut server, &clock).await;
    server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/object")
        .match_query(Matcher::Any)
        .match_header("if-none-match", "\"abc\"")
        .with_status(304)
        .with_header("etag", "\"abc\"")
        .create_async()
        .await;
    let path = AssetPath::parse("images/HB/modules/M1/pages/01.png").unwrap();
    let r = c
        .download_asset(
            "Dream Press",
            "FLOWDEMO",
            &path,
            &DownloadOptions::new().if_none_match("\"abc\""),
        )
        .await
        .unwrap();
    assert!(r.is_not_modified());
    assert!(r.into_download().is_none());
}

#[tokio::test]
async fn asset_url_and_presigned() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let (c, _) = jwt_client(&mut server, &clock).await;
    let path = AssetPath::parse("audio/01.mp3").unwrap();
    assert_eq!(
        c.asset_url("Dream Press", "FLOWDEMO", &path).unwrap(),
        format!(
            "{}/storage/books/Dream%20Press/FLOWDEMO/object?path=audio%2F01.mp3",
            server.url()
        )
    );
    let m = server
        .mock("GET", "/storage/books/Dream%20Press/FLOWDEMO/presigned")
        .match_query(Matcher::Exact("path=audio%2F01.mp3&expires=600".into()))
        .with_body(sample("storage-book-presigned-200").to_string())
        .expect(1)
        .create_async()
        .await;
    let p = c
        .presigned_url("Dream Press", "FLOWDEMO", &path, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(p.expires_in, 600);
    assert!(p.url.contains("X-Amz-Signature="));
    assert!(
        !format!("{p:?}").contains("X-Amz-Signature"),
        "Debug hides the signature"
    );
    m.assert_async().await;
    for bad in [59, 86401] {
        let err = c
            .presigned_url("Dream Press", "FLOWDEMO", &path, Duration::from_secs(bad))
            .await
            .unwrap_err();
        assert_code(&err, "dcs_invalid_argument");
    }
}

#[tokio::test]
async fn webhooks_crud_and_logs() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let (c, token) = jwt_client(&mut server, &clock).await;
    let auth = bearer(&token);
    let list = server
        .mock("GET", "/webhooks/")
        .match_header("authorization", auth.as_str())
        .with_body(sample("webhooks-list-200").to_string())
        .expect(1)
        .create_async()
        .await;
    let created = sample("webhooks-create-201");
    let create = server
        .mock("POST", "/webhooks/")
        .match_body(Matcher::Json(serde_json::json!({
            "url": "http://127.0.0.1:8099/dcs-webhook",
            "secret": "lms-local-test-webhook-secret-0001",
            "description": "LMS loopback receiver (all events)",
            "is_active": true
        })))
        .with_status(201)
        .with_body(created.to_string())
        .expect(1)
        .create_async()
        .await;
    let get = server
        .mock("GET", "/webhooks/1")
        .with_body(created.to_string())
        .expect(1)
        .create_async()
        .await;
    let mut updated = created.clone();
    updated["is_active"] = serde_json::json!(false);
    updated["event_types"] = serde_json::json!("book.created,book.updated");
    let update = server
        .mock("PUT", "/webhooks/1")
        .match_body(Matcher::Json(serde_json::json!({
            "is_active": false, "event_types": "book.created,book.updated"
        })))
        .with_body(updated.to_string())
        .expect(1)
        .create_async()
        .await;
    let delete = server
        .mock("DELETE", "/webhooks/1")
        .with_status(204)
        .expect(1)
        .create_async()
        .await;
    let logs = server
        .mock("GET", "/webhooks/1/logs")
        .with_body(sample("webhooks-logs-200").to_string())
        .expect(1)
        .create_async()
        .await;

    let subs = c.list_webhooks().await.unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!(
        subs[1].event_type_list(),
        vec![crate::WebhookEventType::PublisherDeleted]
    );
    assert!(subs[0].event_type_list().is_empty());
    assert!(!format!("{:?}", subs[0]).contains("secret-0001"));
    let new = WebhookSubscriptionCreate::new(
        "http://127.0.0.1:8099/dcs-webhook",
        "lms-local-test-webhook-secret-0001",
    )
    .description("LMS loopback receiver (all events)");
    assert!(!format!("{new:?}").contains("secret-0001"));
    let sub = c.create_webhook(&new).await.unwrap();
    assert_eq!(sub.id, 1);
    assert_eq!(c.get_webhook(1).await.unwrap(), sub);
    let upd = WebhookSubscriptionUpdate {
        is_active: Some(false),
        event_types: Some("book.created,book.updated".into()),
        ..Default::default()
    };
    let sub = c.update_webhook(1, &upd).await.unwrap();
    assert!(!sub.is_active);
    let rows = c.webhook_logs(1).await.unwrap();
    assert_eq!(rows.len(), 8);
    let ev = rows[0].parsed_payload().unwrap();
    assert_eq!(ev.event, crate::WebhookEventType::PublisherDeleted);
    c.delete_webhook(1).await.unwrap();
    for m in [list, create, get, update, delete, logs] {
        m.assert_async().await;
    }
}

#[tokio::test]
async fn health_needs_no_auth() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let m = server
        .mock("GET", "/health")
        .match_header("authorization", Matcher::Missing)
        .with_body(sample("health").to_string())
        .expect(1)
        .create_async()
        .await;
    let c = client(test_config(&server.url(), password_creds()), &clock);
    let h = c.health().await.unwrap();
    assert_eq!(h.status, "ok");
    m.assert_async().await;
}

#[tokio::test]
async fn object_safe_port() {
    let mut server = mockito::Server::new_async().await;
    let clock = ManualClock::starting_at(t0());
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    server
        .mock("GET", "/books/")
        .with_body_from_request(move |_| {
            c2.fetch_add(1, Ordering::SeqCst);
            b"[]".to_vec()
        })
        .create_async()
        .await;
    let port: Arc<dyn DcsApi> = Arc::new(client(
        test_config(&server.url(), Credentials::api_key(API_KEY)),
        &clock,
    ));
    assert!(port.list_books(None).await.unwrap().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
