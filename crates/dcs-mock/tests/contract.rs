//! Replays every recorded DCS request/response pair the mock serves and compares status,
//! important headers and the JSON shape (keys, key order, types and content-derived values).

mod common;

use std::collections::BTreeSet;

use common::{Http, OJson, Reply, assert_same_shape, fast_config, sample, samples_dir};
use dcs_mock::{
    BookStatus, BookUpdate, MockConfig, MockDcs, NewBook, NewPublisher, PublisherUpdate,
};
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, PartialEq)]
enum Books {
    Sample,
    Empty,
}

/// State the recording had when the sample was taken.
#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Nothing,
    /// Publisher 1 with the details the recording gave it.
    DreamPress,
    /// DreamPress, plus publisher 2, so the next publisher gets id 3.
    SecondPublisher,
    /// SecondPublisher, plus "Temp Publisher" as id 3.
    TempPublisher,
    /// TempPublisher, with publishers 2 and 3 soft-deleted.
    TempPublisherDeleted,
    /// A draft metadata-only book "TEMPBOOK" as id 2.
    TempBook,
    /// Book 1's category changed as in books-update-200.
    CategoryUpdated,
    OneApiKey,
    TwoApiKeys,
    /// The first recorded subscription (id 1).
    OneSubscription,
    /// Both recorded subscriptions.
    TwoSubscriptions,
}

#[derive(Clone, Copy)]
struct Case {
    sample: &'static str,
    books: Books,
    setup: Setup,
    /// Log in as the recording's user instead of the default admin.
    recorded_user: bool,
    /// Send the recorded Authorization header as is (e.g. a tampered token).
    literal_auth: bool,
    /// Replaces the recorded URL (path and query).
    url: Option<&'static str>,
    /// Keys whose values may differ (their types must not).
    ignored: &'static [&'static str],
    /// Watched headers whose values may differ.
    header_exceptions: &'static [&'static str],
}

const CASE: Case = Case {
    sample: "",
    books: Books::Sample,
    setup: Setup::Nothing,
    recorded_user: false,
    literal_auth: false,
    url: None,
    ignored: &[],
    header_exceptions: &[],
};

const CASES: &[Case] = &[
    Case {
        sample: "api-keys-create-201",
        setup: Setup::OneApiKey,
        ignored: &["key"],
        ..CASE
    },
    Case {
        sample: "api-keys-list-200",
        setup: Setup::TwoApiKeys,
        ignored: &["key_prefix"],
        ..CASE
    },
    Case {
        sample: "apikey-publishers-list-200",
        setup: Setup::DreamPress,
        ..CASE
    },
    Case {
        sample: "apikey-storage-config-401",
        ..CASE
    },
    Case {
        sample: "apikey-webhooks-list-401",
        ..CASE
    },
    Case {
        sample: "auth-login-200",
        recorded_user: true,
        ignored: &["access_token"],
        ..CASE
    },
    Case {
        sample: "auth-login-401-bad-credentials",
        recorded_user: true,
        ..CASE
    },
    Case {
        sample: "auth-login-422-missing-password",
        ..CASE
    },
    // The recording's user was the second one (id 2); the mock's only user is the admin (id 1).
    Case {
        sample: "auth-session-200",
        recorded_user: true,
        ignored: &["user_id"],
        ..CASE
    },
    Case {
        sample: "books-batch-200",
        ..CASE
    },
    Case {
        sample: "books-create-201-metadata-only",
        ..CASE
    },
    Case {
        sample: "books-delete-200-soft",
        setup: Setup::TempBook,
        ..CASE
    },
    Case {
        sample: "books-get-200",
        ..CASE
    },
    Case {
        sample: "books-list-200",
        ..CASE
    },
    Case {
        sample: "books-list-200-after-delete",
        setup: Setup::CategoryUpdated,
        ..CASE
    },
    Case {
        sample: "books-list-200-by-publisher",
        ..CASE
    },
    Case {
        sample: "books-update-200",
        ..CASE
    },
    Case {
        sample: "error-400-path-traversal",
        ..CASE
    },
    Case {
        sample: "error-401-bad-token",
        ..CASE
    },
    Case {
        sample: "error-401-expired-or-tampered-jwt",
        literal_auth: true,
        ..CASE
    },
    Case {
        sample: "error-403-no-auth-header",
        ..CASE
    },
    Case {
        sample: "error-404-book",
        ..CASE
    },
    Case {
        sample: "error-404-publisher",
        ..CASE
    },
    Case {
        sample: "error-404-publisher-logo-missing",
        ..CASE
    },
    Case {
        sample: "error-404-storage-config-missing-book",
        ..CASE
    },
    Case {
        sample: "error-404-storage-cover-unknown-book",
        ..CASE
    },
    Case {
        sample: "error-404-storage-object-missing",
        ..CASE
    },
    Case {
        sample: "error-405-method",
        ..CASE
    },
    Case {
        sample: "error-422-book-id-not-int",
        ..CASE
    },
    Case {
        sample: "error-422-object-missing-path-param",
        ..CASE
    },
    Case {
        sample: "error-422-publisher-create-missing-name",
        ..CASE
    },
    Case {
        sample: "error-422-publishers-limit-0",
        ..CASE
    },
    Case {
        sample: "health",
        ..CASE
    },
    // The mock's logo file keeps the book's file name (DCS's was uploaded separately).
    Case {
        sample: "publishers-asset-file-200-no-auth",
        url: Some("/publishers/1/assets/logos/publisher_logo.png"),
        header_exceptions: &["content-disposition"],
        ..CASE
    },
    Case {
        sample: "publishers-assets-200",
        ..CASE
    },
    Case {
        sample: "publishers-books-200",
        ..CASE
    },
    Case {
        sample: "publishers-by-name-200",
        setup: Setup::DreamPress,
        ..CASE
    },
    Case {
        sample: "publishers-create-201",
        books: Books::Empty,
        ..CASE
    },
    Case {
        sample: "publishers-create-201-temp",
        setup: Setup::SecondPublisher,
        ..CASE
    },
    Case {
        sample: "publishers-create-409-duplicate",
        ..CASE
    },
    Case {
        sample: "publishers-delete-200-soft",
        setup: Setup::TempPublisher,
        ..CASE
    },
    Case {
        sample: "publishers-get-200",
        setup: Setup::DreamPress,
        ..CASE
    },
    Case {
        sample: "publishers-list-200",
        setup: Setup::DreamPress,
        ..CASE
    },
    Case {
        sample: "publishers-list-200-after-delete",
        setup: Setup::TempPublisherDeleted,
        ..CASE
    },
    Case {
        sample: "publishers-list-200-paged",
        setup: Setup::DreamPress,
        ..CASE
    },
    Case {
        sample: "publishers-logo-200",
        header_exceptions: &["content-disposition"],
        ..CASE
    },
    Case {
        sample: "publishers-update-200",
        setup: Setup::DreamPress,
        ..CASE
    },
    Case {
        sample: "storage-book-config-200",
        ..CASE
    },
    Case {
        sample: "storage-book-cover-200",
        ..CASE
    },
    Case {
        sample: "storage-book-cover-304",
        ..CASE
    },
    Case {
        sample: "storage-book-listing-200",
        ..CASE
    },
    Case {
        sample: "storage-book-listing-200-unknown-book",
        ..CASE
    },
    Case {
        sample: "storage-book-object-200-audio",
        ..CASE
    },
    Case {
        sample: "storage-book-object-200-config-json",
        ..CASE
    },
    Case {
        sample: "storage-book-object-200-image",
        ..CASE
    },
    Case {
        sample: "storage-book-object-206-range",
        ..CASE
    },
    Case {
        sample: "storage-book-object-304-if-none-match",
        ..CASE
    },
    Case {
        sample: "storage-book-object-416-bad-range",
        ..CASE
    },
    // The URL points at the mock instead of MinIO (see the presigned test in faults.rs).
    Case {
        sample: "storage-book-presigned-200",
        ignored: &["url"],
        ..CASE
    },
    Case {
        sample: "webhooks-create-201",
        ..CASE
    },
    Case {
        sample: "webhooks-create-201-filtered-failing",
        setup: Setup::OneSubscription,
        ..CASE
    },
    Case {
        sample: "webhooks-create-422-short-secret",
        ..CASE
    },
    Case {
        sample: "webhooks-list-200",
        setup: Setup::TwoSubscriptions,
        ..CASE
    },
];

/// Samples not replayed here, and why.
const NOT_REPLAYED: &[(&str, &str)] = &[
    (
        "auth-jwt-claims",
        "not a request; the token format is checked in faults.rs",
    ),
    (
        "books-upload-201",
        "multipart zip upload is not served; books come from the books directory",
    ),
    (
        "books-upload-409-exists",
        "multipart zip upload is not served",
    ),
    (
        "publishers-assets-upload-logo-201",
        "multipart asset upload is not served",
    ),
    (
        "storage-presigned-url-direct-fetch",
        "the URL targets MinIO; checked against the mock in faults.rs",
    ),
    ("webhook-book-created", "a delivery; checked in webhooks.rs"),
    (
        "webhook-book-created-id2",
        "a delivery; checked in webhooks.rs",
    ),
    ("webhook-book-deleted", "a delivery; checked in webhooks.rs"),
    ("webhook-book-updated", "a delivery; checked in webhooks.rs"),
    (
        "webhook-publisher-created",
        "a delivery; checked in webhooks.rs",
    ),
    (
        "webhook-publisher-created-id3",
        "a delivery; checked in webhooks.rs",
    ),
    (
        "webhook-publisher-deleted",
        "a delivery; checked in webhooks.rs",
    ),
    (
        "webhook-publisher-updated",
        "a delivery; checked in webhooks.rs",
    ),
    (
        "webhook-publisher-events-unfixed-schema",
        "documents a DCS database bug the mock does not reproduce",
    ),
    ("webhook-retry-sequence", "checked in webhooks.rs"),
    (
        "webhooks-logs-200",
        "needs real deliveries; checked in webhooks.rs",
    ),
    (
        "webhooks-logs-200-failing",
        "needs real deliveries; checked in webhooks.rs",
    ),
];

/// Values that change from run to run.
const VOLATILE: &[&str] = &[
    "created_at",
    "updated_at",
    "delivered_at",
    "last_used_at",
    "timestamp",
    "access_token",
];

/// Headers whose presence and value must match the recording.
const WATCHED_HEADERS: &[&str] = &[
    "content-type",
    "content-disposition",
    "cache-control",
    "etag",
    "accept-ranges",
    "content-range",
    "allow",
    "location",
    "retry-after",
];

const RECORDED_EMAIL: &str = "lms-integration@example.com";
const RECORDED_PASSWORD: &str = "<redacted-password>";

async fn prepare(dcs: &MockDcs, setup: Setup) {
    let dream_press = || {
        let details = PublisherUpdate {
            display_name: Some("Dream Press Publishing".into()),
            description: Some("Demo ELT publisher (updated)".into()),
            contact_email: Some("books@dreampress.example".into()),
            ..PublisherUpdate::default()
        };
        dcs.update_publisher(1, details).expect("publisher 1");
    };
    let second = || {
        dream_press();
        dcs.add_publisher(NewPublisher::new("Second Publisher"))
            .expect("publisher 2");
    };
    match setup {
        Setup::Nothing => {}
        Setup::DreamPress => dream_press(),
        Setup::SecondPublisher => second(),
        Setup::TempPublisher | Setup::TempPublisherDeleted => {
            second();
            let temp = NewPublisher::new("Temp Publisher").contact_email("temp@example.com");
            assert_eq!(dcs.add_publisher(temp).expect("publisher 3").id, 3);
            if setup == Setup::TempPublisherDeleted {
                dcs.delete_publisher(2).expect("publisher 2");
                dcs.delete_publisher(3).expect("publisher 3");
            }
        }
        Setup::TempBook => {
            let book = NewBook::new("Dream Press", "TEMPBOOK")
                .title("Temporary Book")
                .status(BookStatus::Draft);
            assert_eq!(dcs.add_book(book).expect("book 2").id, 2);
        }
        Setup::CategoryUpdated => {
            let update = BookUpdate {
                category: Some("English Language Teaching".into()),
                ..BookUpdate::default()
            };
            dcs.update_book(1, update).expect("book 1");
        }
        Setup::OneApiKey => {
            dcs.create_api_key("LMS dev integration");
        }
        Setup::TwoApiKeys => {
            dcs.create_api_key("LMS dev integration");
            dcs.create_api_key("LMS docs example key");
        }
        Setup::OneSubscription | Setup::TwoSubscriptions => {
            let http = Http::default();
            let token = dcs.issue_token();
            let mut recordings = vec!["webhooks-create-201"];
            if setup == Setup::TwoSubscriptions {
                recordings.push("webhooks-create-201-filtered-failing");
            }
            for name in recordings {
                let body = sample(name).at(&["request", "json"]).to_value();
                let reply = http
                    .json(
                        Method::POST,
                        &format!("{}/webhooks/", dcs.base_url()),
                        &token,
                        body,
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
            }
        }
    }
}

async fn replay(case: &Case) {
    let recording = sample(case.sample);
    let context = case.sample;
    let empty_books = tempfile::tempdir().expect("tempdir");
    let mut config: MockConfig = fast_config();
    if case.books == Books::Empty {
        config.books_dir = empty_books.path().to_owned();
    }
    if case.recorded_user {
        config.admin_email = RECORDED_EMAIL.into();
        config.admin_password = RECORDED_PASSWORD.into();
    }
    let dcs = MockDcs::start(config).await.expect("mock starts");
    prepare(&dcs, case.setup).await;

    let request = recording.at(&["request"]);
    let method: Method = request
        .at(&["method"])
        .as_str()
        .expect("method")
        .parse()
        .expect("a method");
    let path = case
        .url
        .unwrap_or_else(|| request.at(&["url"]).as_str().expect("url"));
    let url = format!("{}{path}", dcs.base_url());
    let mut headers: Vec<(String, String)> = Vec::new();
    if let OJson::Object(recorded) = request.at(&["headers"]) {
        for (name, value) in recorded {
            let value = value.as_str().expect("header value");
            let value = if name.eq_ignore_ascii_case("authorization") && !case.literal_auth {
                if value.starts_with("Bearer eyJ") {
                    format!("Bearer {}", dcs.issue_token())
                } else if value.starts_with("Bearer dcs_") {
                    format!("Bearer {}", dcs.create_api_key("LMS dev integration"))
                } else {
                    value.to_owned()
                }
            } else {
                value.to_owned()
            };
            headers.push((name.clone(), value));
        }
    }
    let body = request
        .get("json")
        .map(|json| json.to_value().to_string().into_bytes());
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let reply = Http::default().send(method, &url, &header_refs, body).await;

    let response = recording.at(&["response"]);
    let status = response
        .at(&["status"])
        .to_value()
        .as_u64()
        .expect("status");
    assert_eq!(
        u64::from(reply.status.as_u16()),
        status,
        "{context}: status; body {}",
        reply.text()
    );
    compare_headers(case, response, &reply);
    compare_body(case, response, &reply);
}

fn recorded_header<'a>(response: &'a OJson, name: &str) -> Option<&'a str> {
    match response.at(&["headers"]) {
        OJson::Array(pairs) => pairs.iter().find_map(|pair| match pair {
            OJson::Array(kv) if kv[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)) => {
                kv[1].as_str()
            }
            _ => None,
        }),
        _ => None,
    }
}

fn compare_headers(case: &Case, response: &OJson, reply: &Reply) {
    for name in WATCHED_HEADERS {
        let expected = recorded_header(response, name);
        let actual = reply.header(name);
        if case.header_exceptions.contains(name) {
            assert_eq!(
                expected.is_some(),
                actual.is_some(),
                "{}: presence of {name}",
                case.sample
            );
        } else {
            assert_eq!(actual, expected, "{}: header {name}", case.sample);
        }
    }
}

fn compare_body(case: &Case, response: &OJson, reply: &Reply) {
    let context = case.sample;
    if let Some(json) = response.get("json") {
        let mut ignored: Vec<&str> = VOLATILE.to_vec();
        ignored.extend_from_slice(case.ignored);
        assert_same_shape(context, json, &reply.ordered(), &ignored);
        // Without run-dependent values, the compact body has the recorded length too.
        if !json.contains_key(&ignored) {
            assert_eq!(
                reply.header("content-length"),
                recorded_header(response, "content-length"),
                "{context}: content-length"
            );
        }
    } else {
        let size = response
            .at(&["body_size"])
            .to_value()
            .as_u64()
            .expect("body_size");
        assert_eq!(reply.body.len() as u64, size, "{context}: body size");
        let digest = hex::encode(Sha256::digest(&reply.body));
        assert_eq!(
            Some(digest.as_str()),
            response.at(&["body_sha256"]).as_str(),
            "{context}: body sha256"
        );
        if size > 0 {
            assert_eq!(
                reply.header("content-length"),
                recorded_header(response, "content-length"),
                "{context}: content-length"
            );
        }
    }
}

#[tokio::test]
async fn every_served_sample_replays_like_the_recording() {
    for case in CASES {
        replay(case).await;
    }
}

#[test]
fn every_sample_is_replayed_or_explained() {
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(samples_dir()).expect("samples dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(stem) = name.strip_suffix(".json") {
            on_disk.insert(stem.to_owned());
        }
    }
    let mut covered = BTreeSet::new();
    for name in CASES
        .iter()
        .map(|c| c.sample)
        .chain(NOT_REPLAYED.iter().map(|(n, _)| *n))
    {
        assert!(covered.insert(name.to_owned()), "{name} is listed twice");
    }
    assert_eq!(
        on_disk, covered,
        "samples on disk vs. samples the contract test knows"
    );
}

fn ordered(raw: &str) -> OJson {
    serde_json::from_str(raw).expect("JSON")
}

#[test]
fn the_shape_comparison_ignores_only_the_listed_values() {
    let recorded = ordered(r#"{"id":1,"created_at":"2026-11-22T09:32:53.445746Z","tags":["a"]}"#);
    let actual = ordered(r#"{"id":1,"created_at":"2030-01-01T00:00:00.000001Z","tags":["a"]}"#);
    assert_same_shape("same", &recorded, &actual, &["created_at"]);
}

#[test]
#[should_panic(expected = "keys or key order differ")]
fn the_shape_comparison_rejects_another_key_order() {
    assert_same_shape(
        "order",
        &ordered(r#"{"a":1,"b":2}"#),
        &ordered(r#"{"b":2,"a":1}"#),
        &[],
    );
}

#[test]
#[should_panic(expected = "values differ")]
fn the_shape_comparison_rejects_another_value() {
    assert_same_shape(
        "value",
        &ordered(r#"{"a":[1,2]}"#),
        &ordered(r#"{"a":[1,3]}"#),
        &[],
    );
}

#[test]
#[should_panic(expected = "expected a string")]
fn the_shape_comparison_rejects_another_type_even_when_ignored() {
    assert_same_shape(
        "type",
        &ordered(r#"{"a":"x"}"#),
        &ordered(r#"{"a":null}"#),
        &["a"],
    );
}
