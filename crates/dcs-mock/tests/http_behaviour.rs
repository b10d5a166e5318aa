//! Auth rules, tokens, API keys, presigned URLs, routing quirks and library content changes.

mod common;

use common::{Http, OJson, jwt_parts, sample};
use dcs_mock::{BookStatus, ContentError, NewBook, NewPublisher};
use http::{Method, StatusCode};

const CONFIG: &str = "/storage/books/Dream%20Press/FLOWDEMO/config";

#[tokio::test]
async fn missing_bad_and_misplaced_credentials_are_refused_like_dcs() {
    let dcs = common::start().await;
    let http = Http::default();
    let base = dcs.base_url().to_owned();
    let protected = [
        "/books/",
        "/publishers/1",
        CONFIG,
        "/webhooks/",
        "/api-keys/",
        "/auth/session",
    ];
    for path in protected {
        let reply = http
            .send(Method::GET, &format!("{base}{path}"), &[], None)
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            reply.json(),
            serde_json::json!({"detail": "Not authenticated"}),
            "{path}"
        );
        let reply = http
            .send(
                Method::GET,
                &format!("{base}{path}"),
                &[("authorization", "Basic YTpi")],
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            reply.json()["detail"],
            "Invalid authentication credentials",
            "{path}"
        );
        let reply = http
            .get(&format!("{base}{path}"), "not-a-valid-token")
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            reply.json(),
            serde_json::json!({"detail": "Invalid token"}),
            "{path}"
        );
    }

    // A token signed with another secret is refused.
    let other = dcs_mock::MockDcs::start(common::fast_config())
        .await
        .expect("second mock");
    let foreign = other.issue_token();
    assert_eq!(
        http.get(&format!("{base}/books/"), &foreign).await.status,
        StatusCode::UNAUTHORIZED
    );

    // API keys: books and publishers only.
    let key = dcs.create_api_key("LMS dev integration");
    for path in ["/books/", "/books/1", "/publishers/", "/publishers/1/logo"] {
        assert_eq!(
            http.get(&format!("{base}{path}"), &key).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    for path in [CONFIG, "/webhooks/", "/api-keys/", "/auth/session"] {
        let reply = http.get(&format!("{base}{path}"), &key).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(reply.json()["detail"], "Invalid token", "{path}");
    }

    // Validation runs before the token check, as in FastAPI handlers.
    let reply = http
        .get(&format!("{base}/books/abc"), "not-a-valid-token")
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Unknown routes are 404 whatever the credentials.
    let reply = http
        .send(Method::GET, &format!("{base}/no/such/route"), &[], None)
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            serde_json::json!({"detail": "Not Found"})
        )
    );
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_like_dcs() {
    let dcs = common::start().await;
    let http = Http::default();
    let base = dcs.base_url().to_owned();
    let token = dcs.issue_token();
    let created = http
        .json(
            Method::POST,
            &format!("{base}/api-keys/"),
            &token,
            serde_json::json!({"name": "LMS dev integration", "rate_limit": 50}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let created = created.json();
    let key = created["key"].as_str().expect("key").to_owned();
    assert!(
        key.starts_with("dcs_dev_lms_") && key.len() == "dcs_dev_lms_".len() + 24,
        "{key}"
    );
    assert!(
        key["dcs_dev_lms_".len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    );

    assert_eq!(
        http.get(&format!("{base}/books/"), &key).await.status,
        StatusCode::OK
    );
    let listed = http.get(&format!("{base}/api-keys/"), &token).await.json();
    let row = &listed["api_keys"][0];
    assert_eq!(row["key_prefix"], format!("{}...", &key[..16]));
    assert_eq!(row["rate_limit"], 50);
    assert!(row["last_used_at"].is_string(), "used once: {row}");

    let id = created["id"].as_i64().expect("id");
    let auth = format!("Bearer {token}");
    let revoked = http
        .send(
            Method::DELETE,
            &format!("{base}/api-keys/{id}"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(
        revoked.json(),
        serde_json::json!({"status": "revoked", "id": id})
    );
    assert_eq!(
        http.get(&format!("{base}/books/"), &key).await.status,
        StatusCode::UNAUTHORIZED
    );
    let missing = http
        .send(
            Method::DELETE,
            &format!("{base}/api-keys/99"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(
        (missing.status, missing.json()["detail"].clone()),
        (StatusCode::NOT_FOUND, "API key not found".into())
    );
}

#[tokio::test]
async fn login_tokens_have_the_recorded_format() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = http.login(dcs.base_url()).await;
    let (header, claims) = jwt_parts(&token);
    let recorded = sample("auth-jwt-claims");
    assert_eq!(header, *recorded.at(&["jwt_header"]));
    assert_eq!(claims.keys(), recorded.at(&["jwt_claims"]).keys());
    assert_eq!(claims.at(&["sub"]), &OJson::String("1".into()));
    let claims = claims.to_value();
    let lifetime = recorded.at(&["lifetime_seconds"]).to_value();
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        lifetime.as_i64().unwrap()
    );
    let recorded_first_segment = sample("auth-login-200")
        .at(&["response", "json", "access_token"])
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        token.split('.').next(),
        Some(recorded_first_segment.as_str())
    );

    // The email is trimmed and lowercased; the password is exact.
    let reply = http
        .send(
            Method::POST,
            &format!("{}/auth/login", dcs.base_url()),
            &[],
            Some(br#"{"email":"  ADMIN@Admin.com ","password":"admin"}"#.to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = http
        .send(
            Method::POST,
            &format!("{}/auth/login", dcs.base_url()),
            &[],
            Some(br#"{"email":"admin@admin.com","password":"Admin"}"#.to_vec()),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()["detail"].clone()),
        (StatusCode::UNAUTHORIZED, "Invalid credentials".into())
    );
    let session = http
        .get(&format!("{}/auth/session", dcs.base_url()), &token)
        .await
        .json();
    assert_eq!(
        session,
        serde_json::json!({"user_id": 1, "email": "admin@admin.com", "token_type": "bearer"})
    );
}

#[tokio::test]
async fn presigned_urls_serve_the_object_without_auth_until_tampered() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = dcs.issue_token();
    let base = dcs.base_url().to_owned();
    let presigned = http
        .get(&format!("{base}/storage/books/Dream%20Press/FLOWDEMO/presigned?path=audio%2F01.mp3&expires=600"), &token)
        .await
        .json();
    assert_eq!(presigned["expires_in"], 600);
    let url = presigned["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&format!(
            "{base}/_presigned/publishers/Dream%20Press/books/FLOWDEMO/audio/01.mp3?"
        )),
        "{url}"
    );
    assert!(
        url.contains("X-Amz-Expires=600") && url.contains("X-Amz-Date="),
        "{url}"
    );

    let recorded = sample("storage-presigned-url-direct-fetch");
    let direct = http.send(Method::GET, &url, &[], None).await;
    assert_eq!(
        u64::from(direct.status.as_u16()),
        recorded
            .at(&["direct_get", "status"])
            .to_value()
            .as_u64()
            .unwrap()
    );
    assert_eq!(
        direct.body.len() as u64,
        recorded
            .at(&["direct_get", "body_size"])
            .to_value()
            .as_u64()
            .unwrap()
    );
    assert_eq!(
        direct.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        direct.header("etag"),
        Some("\"9ff26ab7e1ab62f5cfe4038bbfddb1c4\"")
    );
    assert!(direct.header("last-modified").is_some());

    // One signature digit changed, as in the recording.
    let (rest, signature) = url.rsplit_once("X-Amz-Signature=").expect("signature");
    let first = signature.chars().next().expect("a digit");
    let flipped = if first == '0' { '1' } else { '0' };
    let tampered = format!("{rest}X-Amz-Signature={flipped}{}", &signature[1..]);
    let reply = http.send(Method::GET, &tampered, &[], None).await;
    assert_eq!(
        u64::from(reply.status.as_u16()),
        recorded
            .at(&["tampered_get", "status"])
            .to_value()
            .as_u64()
            .unwrap()
    );
    assert_eq!(
        reply.text(),
        recorded.at(&["tampered_get", "body"]).as_str().unwrap()
    );

    // Expiry bounds are validated like FastAPI does.
    let reply = http
        .get(
            &format!("{base}/storage/books/Dream%20Press/FLOWDEMO/presigned?path=a&expires=59"),
            &token,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.json()["detail"][0]["ctx"],
        serde_json::json!({"ge": 60})
    );
}

#[tokio::test]
async fn object_ranges_and_conditional_requests() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = dcs.issue_token();
    let url = format!(
        "{}/storage/books/Dream%20Press/FLOWDEMO/object?path=audio/01.mp3",
        dcs.base_url()
    );
    let whole = http.get(&url, &token).await;
    assert_eq!(whole.body.len(), 6032);
    let auth = format!("Bearer {token}");
    let tail = http
        .send(
            Method::GET,
            &url,
            &[("authorization", &auth), ("range", "bytes=-100")],
            None,
        )
        .await;
    assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.header("content-range"), Some("bytes 5932-6031/6032"));
    assert_eq!(tail.body, whole.body.slice(5932..));
    let from = http
        .send(
            Method::GET,
            &url,
            &[("authorization", &auth), ("range", "bytes=6000-")],
            None,
        )
        .await;
    assert_eq!(from.body, whole.body.slice(6000..));
    let bad = http
        .send(
            Method::GET,
            &url,
            &[("authorization", &auth), ("range", "pages=1")],
            None,
        )
        .await;
    assert_eq!(
        (bad.status, bad.json()["detail"].clone()),
        (
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Invalid Range header format".into()
        )
    );
    // With a Range header, If-None-Match does not turn the answer into a 304.
    let etag = whole.header("etag").expect("etag").to_owned();
    let ranged = http
        .send(
            Method::GET,
            &url,
            &[
                ("authorization", &auth),
                ("range", "bytes=0-0"),
                ("if-none-match", &etag),
            ],
            None,
        )
        .await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    let plain = http
        .send(
            Method::GET,
            &url,
            &[("authorization", &auth), ("if-none-match", "\"other\"")],
            None,
        )
        .await;
    assert_eq!(plain.status, StatusCode::OK);
}

#[tokio::test]
async fn paths_without_the_trailing_slash_redirect_like_starlette() {
    let dcs = common::start().await;
    let http = Http::default();
    let base = dcs.base_url().to_owned();
    let reply = http
        .send(
            Method::GET,
            &format!("{base}/publishers?skip=0&limit=1"),
            &[],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    let host = base.trim_start_matches("http://");
    assert_eq!(
        reply.header("location"),
        Some(format!("http://{host}/publishers/?skip=0&limit=1").as_str())
    );
    let reply = http
        .send(Method::GET, &format!("{base}/books/1/"), &[], None)
        .await;
    assert_eq!(
        reply.header("location"),
        Some(format!("http://{host}/books/1").as_str())
    );
    let reply = http
        .send(Method::POST, &format!("{base}/webhooks"), &[], None)
        .await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    let reply = http
        .send(Method::DELETE, &format!("{base}/books/"), &[], None)
        .await;
    assert_eq!(
        (reply.status, reply.header("allow")),
        (StatusCode::METHOD_NOT_ALLOWED, Some("POST"))
    );
}

#[tokio::test]
async fn library_content_changes_are_served_over_http() {
    let dcs = common::start().await;
    let http = Http::default();
    let token = dcs.issue_token();
    let base = dcs.base_url().to_owned();
    let config = br#"{"publisher_name":"Ignored","book_title":"From Config","category":"Science",
        "books":[{"modules":[{"pages":[{"sections":[{"activity":{"type":"circle"}},{"activity":{"type":"circle"}}]}]}]}]}"#;
    let book = dcs
        .add_book(
            NewBook::new("New House", "NEWBOOK")
                .file("config.json", config.to_vec())
                .file("images/book_cover.png", b"not really a png".to_vec())
                .file("audio/a.mp3", vec![0u8; 10]),
        )
        .expect("book");
    assert_eq!((book.id, book.publisher_id), (2, 2));
    assert_eq!(book.book_title.as_deref(), Some("From Config"));
    assert_eq!(book.category.as_deref(), Some("Science"));
    assert_eq!(book.activity_count, Some(2));
    assert_eq!(book.total_size, Some(config.len() as i64 + 16 + 10));
    assert_eq!(book.status, BookStatus::Published);

    let over_http = http.get(&format!("{base}/books/2"), &token).await.json();
    assert_eq!(over_http["publisher"], "New House");
    assert_eq!(
        over_http["activity_details"],
        serde_json::json!({"circle": 2})
    );
    let tree = http
        .get(&format!("{base}/storage/books/New%20House/NEWBOOK"), &token)
        .await
        .json();
    assert_eq!(tree["children"].as_array().map(Vec::len), Some(3));
    let cover = http
        .get(
            &format!("{base}/storage/books/New%20House/NEWBOOK/cover"),
            &token,
        )
        .await;
    assert_eq!(cover.body.as_ref(), b"not really a png");

    // Archiving removes the files from storage but keeps the record listed.
    dcs.delete_book(2).expect("archive");
    let object = http
        .get(
            &format!("{base}/storage/books/New%20House/NEWBOOK/object?path=audio/a.mp3"),
            &token,
        )
        .await;
    assert_eq!(object.status, StatusCode::NOT_FOUND);
    let cover = http
        .get(
            &format!("{base}/storage/books/New%20House/NEWBOOK/cover"),
            &token,
        )
        .await;
    assert_eq!(cover.json()["detail"], "Book cover not found");
    let listed = http.get(&format!("{base}/books/"), &token).await.json();
    assert_eq!(listed[1]["status"], "archived");
    let batch = http
        .json(
            Method::POST,
            &format!("{base}/books/batch"),
            &token,
            serde_json::json!({"ids": [2, 1]}),
        )
        .await
        .json();
    assert_eq!(
        batch.as_array().map(Vec::len),
        Some(1),
        "archived books are skipped"
    );

    // Publishers: duplicates, soft delete, restore.
    assert_eq!(
        dcs.add_publisher(NewPublisher::new("Dream Press")),
        Err(ContentError::DuplicatePublisher("Dream Press".into()))
    );
    assert_eq!(
        dcs.restore_publisher(1),
        Err(ContentError::PublisherNotInTrash)
    );
    dcs.delete_publisher(2).expect("soft delete");
    let active = http
        .get(&format!("{base}/publishers/"), &token)
        .await
        .json();
    assert_eq!(active["total"], 1);
    let trash = http
        .get(&format!("{base}/publishers/trash"), &token)
        .await
        .json();
    assert_eq!(trash["items"][0]["name"], "New House");
    assert_eq!(
        http.get(&format!("{base}/publishers/2"), &token)
            .await
            .json()["status"],
        "inactive"
    );
    dcs.restore_publisher(2).expect("restore");
    assert_eq!(
        dcs.publisher(2).map(|p| p.status),
        Some("active".to_owned())
    );
    assert_eq!(
        dcs.update_book(99, Default::default()),
        Err(ContentError::BookNotFound)
    );
    assert!(matches!(
        dcs.add_book(NewBook::new("Dream Press", "FLOWDEMO")),
        Err(ContentError::BookExists { .. })
    ));
}

#[tokio::test]
async fn a_missing_books_directory_is_a_clear_error() {
    let missing = std::env::temp_dir().join("dcs-mock-no-such-books-dir");
    let error = dcs_mock::MockDcs::start(dcs_mock::MockConfig {
        books_dir: missing.clone(),
        ..common::fast_config()
    })
    .await
    .expect_err("no books directory");
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );

    let broken = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(broken.path().join("NOCONFIG")).expect("mkdir");
    let error = dcs_mock::MockDcs::start(dcs_mock::MockConfig {
        books_dir: broken.path().to_owned(),
        ..common::fast_config()
    })
    .await
    .expect_err("a book without config.json");
    assert!(error.to_string().contains("config.json"), "{error}");
}
