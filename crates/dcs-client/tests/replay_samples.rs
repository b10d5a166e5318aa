//! Replays every recorded DCS sample (`testdata/dcs-samples`) through the models.
//!
//! Each sample is classified below. A sample with a JSON response must be parsed by a model
//! (and survive `deserialize -> serialize` without loss, timestamps compared as instants) or
//! be listed as not modelled, with a reason. A new, unclassified sample fails the test, and so
//! does a classification whose sample is gone.

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use dcs_client::models::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What a sample holds and how it is checked.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Publisher,
    PublisherPage,
    Book,
    Books,
    StorageTree,
    Presigned,
    Subscription,
    Subscriptions,
    DeliveryLogs,
    UploadResponse,
    Login,
    Health,
    Error,
    /// config.json: passed through as raw JSON.
    RawJson,
    /// A webhook delivery as received (`delivery.body_utf8`).
    Delivery,
    /// Several delivery attempts (`attempts[].delivery.body_utf8`).
    DeliveryAttempts,
    /// The response body is binary (only size + SHA-256 recorded).
    Binary,
    /// Not an HTTP answer the client parses; the reason says what it is.
    NotAResponse(&'static str),
    /// A JSON answer the LMS does not need; the reason says why.
    NotModelled(&'static str),
}

fn classify(name: &str) -> Option<Kind> {
    use Kind::*;
    let kind = match name {
        "api-keys-create-201" | "api-keys-list-200" => {
            NotModelled("API-key management is an admin task in DCS, not something the LMS does")
        }
        "auth-session-200" => {
            NotModelled("session introspection; the client reads exp from the JWT")
        }
        "publishers-assets-200" | "publishers-assets-upload-logo-201" => NotModelled(
            "publisher asset management (upload/listing) is DCS-admin only; the LMS uses /logo",
        ),
        "auth-jwt-claims" => {
            NotAResponse("decoded JWT claims; checked against jwt exp reading below")
        }
        "storage-presigned-url-direct-fetch" => {
            NotAResponse("a direct fetch of the presigned URL from S3, DCS is not involved")
        }
        "webhook-publisher-events-unfixed-schema" => {
            NotAResponse("notes and DCS log lines about undelivered publisher webhooks")
        }
        "webhook-retry-sequence" => DeliveryAttempts,

        "publishers-get-200"
        | "publishers-by-name-200"
        | "publishers-create-201"
        | "publishers-create-201-temp"
        | "publishers-delete-200-soft"
        | "publishers-update-200" => Publisher,
        "publishers-list-200"
        | "publishers-list-200-paged"
        | "publishers-list-200-after-delete"
        | "apikey-publishers-list-200" => PublisherPage,
        "books-get-200"
        | "books-create-201-metadata-only"
        | "books-delete-200-soft"
        | "books-update-200" => Book,
        "books-list-200"
        | "books-list-200-by-publisher"
        | "books-list-200-after-delete"
        | "books-batch-200"
        | "publishers-books-200" => Books,
        "books-upload-201" => UploadResponse,
        "storage-book-listing-200" | "storage-book-listing-200-unknown-book" => StorageTree,
        "storage-book-presigned-200" => Presigned,
        "storage-book-config-200" => RawJson,
        "webhooks-create-201" | "webhooks-create-201-filtered-failing" => Subscription,
        "webhooks-list-200" => Subscriptions,
        "webhooks-logs-200" | "webhooks-logs-200-failing" => DeliveryLogs,
        "auth-login-200" => Login,
        "health" => Health,
        "publishers-logo-200"
        | "publishers-asset-file-200-no-auth"
        | "storage-book-cover-200"
        | "storage-book-cover-304"
        | "storage-book-object-200-audio"
        | "storage-book-object-200-config-json"
        | "storage-book-object-200-image"
        | "storage-book-object-206-range"
        | "storage-book-object-304-if-none-match" => Binary,
        n if n.starts_with("webhook-") => Delivery,
        n if n.starts_with("error-")
            || n.ends_with("-401")
            || n.contains("-401-")
            || n.contains("-409-")
            || n.contains("-422-")
            || n.ends_with("-416-bad-range") =>
        {
            Error
        }
        _ => return None,
    };
    Some(kind)
}

/// Samples listed by name above; each must exist.
const NAMED: &[&str] = &[
    "api-keys-create-201",
    "api-keys-list-200",
    "auth-session-200",
    "publishers-assets-200",
    "publishers-assets-upload-logo-201",
    "auth-jwt-claims",
    "storage-presigned-url-direct-fetch",
    "webhook-publisher-events-unfixed-schema",
    "webhook-retry-sequence",
    "publishers-get-200",
    "publishers-by-name-200",
    "publishers-create-201",
    "publishers-create-201-temp",
    "publishers-delete-200-soft",
    "publishers-update-200",
    "publishers-list-200",
    "publishers-list-200-paged",
    "publishers-list-200-after-delete",
    "apikey-publishers-list-200",
    "books-get-200",
    "books-create-201-metadata-only",
    "books-delete-200-soft",
    "books-update-200",
    "books-list-200",
    "books-list-200-by-publisher",
    "books-list-200-after-delete",
    "books-batch-200",
    "publishers-books-200",
    "books-upload-201",
    "storage-book-listing-200",
    "storage-book-listing-200-unknown-book",
    "storage-book-presigned-200",
    "storage-book-config-200",
    "webhooks-create-201",
    "webhooks-create-201-filtered-failing",
    "webhooks-list-200",
    "webhooks-logs-200",
    "webhooks-logs-200-failing",
    "auth-login-200",
    "health",
    "publishers-logo-200",
    "publishers-asset-file-200-no-auth",
    "storage-book-cover-200",
    "storage-book-cover-304",
    "storage-book-object-200-audio",
    "storage-book-object-200-config-json",
    "storage-book-object-200-image",
    "storage-book-object-206-range",
    "storage-book-object-304-if-none-match",
];

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dcs-samples")
}

fn load_samples() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(samples_dir()).expect("testdata/dcs-samples") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        out.push((name, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 80,
        "expected the recorded samples, found {}",
        out.len()
    );
    out
}

fn as_instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .filter(|s| s.len() >= 20 && s.as_bytes().get(10) == Some(&b'T'))
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// Compares two JSON values; strings that are both RFC 3339 timestamps compare as instants.
fn same(path: &str, a: &Value, b: &Value) -> Result<(), String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<_> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => same(&format!("{path}.{k}"), va, vb)?,
                    (va, vb) => {
                        return Err(format!("{path}.{k}: {va:?} vs {vb:?}"));
                    }
                }
            }
            Ok(())
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{path}: length {} vs {}", x.len(), y.len()));
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                same(&format!("{path}[{i}]"), va, vb)?;
            }
            Ok(())
        }
        _ if a == b => Ok(()),
        _ => match (as_instant(a), as_instant(b)) {
            (Some(x), Some(y)) if x == y => Ok(()),
            _ => Err(format!("{path}: {a} vs {b}")),
        },
    }
}

/// Deserialises `json` as `T`, serialises it back and checks nothing was lost.
fn round_trip<T: DeserializeOwned + Serialize>(name: &str, json: &Value) -> T {
    let model: T = serde_json::from_value(json.clone()).unwrap_or_else(|e| {
        panic!(
            "{name}: does not parse as {}: {e}",
            std::any::type_name::<T>()
        )
    });
    let back = serde_json::to_value(&model).unwrap();
    if let Err(diff) = same("$", json, &back) {
        panic!(
            "{name}: {} lost data on a round trip: {diff}",
            std::any::type_name::<T>()
        );
    }
    model
}

fn check_event_body(name: &str, body: &str, parsed: Option<&Value>) -> WebhookEvent {
    let event = WebhookEvent::from_slice(body.as_bytes())
        .unwrap_or_else(|e| panic!("{name}: delivery body does not parse: {e}"));
    let raw: Value = serde_json::from_str(body).unwrap();
    round_trip::<WebhookEvent>(name, &raw);
    if let Some(p) = parsed {
        same("$", p, &raw).unwrap_or_else(|d| panic!("{name}: parsed_body differs: {d}"));
    }
    match (&event.event, &event.data) {
        (e, WebhookEventData::Book(b)) if e.as_str().starts_with("book.") => {
            assert!(b.id > 0 && !b.book_name.is_empty(), "{name}");
            if *e == WebhookEventType::BookDeleted {
                assert!(
                    b.status.is_archived(),
                    "{name}: book.deleted carries archived"
                );
            }
        }
        (e, WebhookEventData::Publisher(p)) if e.as_str().starts_with("publisher.") => {
            assert!(p.id > 0 && !p.name.is_empty(), "{name}");
        }
        other => panic!("{name}: unexpected event/data pairing {other:?}"),
    }
    event
}

fn check(name: &str, kind: Kind, sample: &Value) {
    let json = &sample["response"]["json"];
    match kind {
        Kind::Publisher => {
            round_trip::<Publisher>(name, json);
        }
        Kind::PublisherPage => {
            let page = round_trip::<PublisherPage>(name, json);
            assert!(page.total as usize >= page.items.len(), "{name}");
            for p in &page.items {
                assert_eq!(
                    p.logo_url.as_deref(),
                    Some(format!("/publishers/{}/logo", p.id).as_str())
                );
            }
        }
        Kind::Book => {
            round_trip::<Book>(name, json);
        }
        Kind::Books => {
            round_trip::<Vec<Book>>(name, json);
        }
        Kind::StorageTree => {
            let tree = round_trip::<StorageNode>(name, json);
            for f in tree.files() {
                dcs_client::AssetPath::parse(&f.path).unwrap_or_else(|e| {
                    panic!("{name}: {} is not a valid asset path: {e}", f.path)
                });
            }
        }
        Kind::Presigned => {
            let p = round_trip::<PresignedUrl>(name, json);
            assert!((60..=86400).contains(&p.expires_in));
        }
        Kind::Subscription => {
            round_trip::<WebhookSubscription>(name, json);
        }
        Kind::Subscriptions => {
            round_trip::<Vec<WebhookSubscription>>(name, json);
        }
        Kind::DeliveryLogs => {
            let rows = round_trip::<Vec<WebhookDeliveryLog>>(name, json);
            for row in rows {
                let ev = row
                    .parsed_payload()
                    .unwrap_or_else(|e| panic!("{name}: log payload {}: {e}", row.id));
                assert_eq!(ev.event, row.event_type, "{name}");
                check_event_body(name, &row.payload, None);
            }
        }
        Kind::UploadResponse => {
            let up = round_trip::<BookUploadResponse>(name, json);
            let total: u64 = up.files.iter().map(|f| f.size).sum();
            assert_eq!(Some(total as i64), up.book.total_size, "{name}");
        }
        Kind::Login => {
            let login = round_trip::<LoginResponse>(name, json);
            assert_eq!(login.token_type, "bearer");
            assert!(!format!("{login:?}").contains(&login.access_token));
        }
        Kind::Health => {
            round_trip::<Health>(name, json);
        }
        Kind::Error => {
            let status = sample["response"]["status"].as_u64().unwrap();
            assert!(status >= 400, "{name}: error sample with status {status}");
            let body = round_trip::<ErrorBody>(name, json);
            let msg = body.detail.message();
            assert!(!msg.is_empty(), "{name}");
            if status == 422 {
                assert!(matches!(body.detail, ErrorDetail::Validation(_)), "{name}");
            }
        }
        Kind::RawJson => {
            assert!(json.is_object(), "{name}: config.json is an object");
        }
        Kind::Delivery => {
            let d = &sample["delivery"];
            let body = d["body_utf8"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no body"));
            if let Some(b64) = d["body_base64"].as_str() {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap();
                assert_eq!(raw, body.as_bytes(), "{name}: utf8 and base64 bodies agree");
            }
            let ev = check_event_body(name, body, sample.get("parsed_body"));
            assert_eq!(
                Some(ev.event.as_str()),
                sample["event"].as_str(),
                "{name}: event field"
            );
        }
        Kind::DeliveryAttempts => {
            let attempts = sample["attempts"].as_array().expect("attempts");
            assert!(!attempts.is_empty());
            let first = attempts[0]["delivery"]["body_utf8"].as_str().unwrap();
            for a in attempts {
                let body = a["delivery"]["body_utf8"].as_str().unwrap();
                assert_eq!(body, first, "{name}: retries resend identical bytes");
                check_event_body(name, body, None);
            }
        }
        Kind::Binary => {
            assert!(
                json.is_null(),
                "{name}: classified binary but has a JSON response"
            );
            assert!(sample["response"]["body_size"].is_u64(), "{name}");
        }
        Kind::NotAResponse(reason) | Kind::NotModelled(reason) => {
            assert!(!reason.is_empty(), "{name}: a reason is required");
            eprintln!("{name}: not modelled: {reason}");
        }
    }
}

#[test]
fn every_recorded_sample_is_classified_and_parses() {
    let samples = load_samples();
    let names: BTreeSet<_> = samples.iter().map(|(n, _)| n.as_str()).collect();
    for n in NAMED {
        assert!(names.contains(n), "classified sample {n} no longer exists");
    }
    let mut unclassified = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (name, sample) in &samples {
        let Some(kind) = classify(name) else {
            unclassified.push(name.clone());
            continue;
        };
        let has_json = !sample["response"]["json"].is_null();
        if has_json {
            assert!(
                !matches!(
                    kind,
                    Kind::Binary | Kind::Delivery | Kind::DeliveryAttempts | Kind::NotAResponse(_)
                ),
                "{name} has a JSON response but is classified {kind:?}"
            );
        }
        check(name, kind, sample);
        let label = format!("{kind:?}");
        let label = label.split('(').next().unwrap().to_owned();
        *counts.entry(label).or_default() += 1;
    }
    assert!(
        unclassified.is_empty(),
        "new samples need a model or a not-modelled reason: {unclassified:?}"
    );
    eprintln!("replayed {} samples: {counts:?}", samples.len());
    assert_eq!(
        counts.get("Delivery"),
        Some(&8),
        "all 8 webhook deliveries parsed"
    );
}

#[test]
fn timestamps_with_z_and_offset_are_the_same_instant() {
    let (_, upload) = load_samples()
        .into_iter()
        .find(|(n, _)| n == "books-upload-201")
        .unwrap();
    let (_, get) = load_samples()
        .into_iter()
        .find(|(n, _)| n == "books-get-200")
        .unwrap();
    let a: BookUploadResponse = serde_json::from_value(upload["response"]["json"].clone()).unwrap();
    let b: Book = serde_json::from_value(get["response"]["json"].clone()).unwrap();
    assert!(
        upload["response"]["json"]["book"]["created_at"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    assert_eq!(a.book.created_at, b.created_at);
}

#[test]
fn recorded_jwt_claims_match_the_login_token() {
    let samples = load_samples();
    let get = |n: &str| {
        samples
            .iter()
            .find(|(name, _)| name == n)
            .unwrap()
            .1
            .clone()
    };
    let claims = get("auth-jwt-claims");
    let login = get("auth-login-200");
    let token = login["response"]["json"]["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let decoded: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded, claims["jwt_claims"]);
    assert_eq!(
        claims["jwt_claims"]["exp"].as_i64().unwrap()
            - claims["jwt_claims"]["iat"].as_i64().unwrap(),
        claims["lifetime_seconds"].as_i64().unwrap()
    );
}

#[test]
fn enums_keep_unknown_values() {
    let mut book: Value = serde_json::from_str(
        r#"{"book_name":"X","id":1,"publisher_id":1,"status":"quarantined",
            "created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00+00:00",
            "some_future_field":42}"#,
    )
    .unwrap();
    let parsed: Book = serde_json::from_value(book.clone()).unwrap();
    assert_eq!(parsed.status, BookStatus::Other("quarantined".into()));
    assert!(!parsed.is_archived());
    assert_eq!(parsed.language, "en", "DCS default");
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(back["status"], "quarantined");
    book.as_object_mut().unwrap().remove("some_future_field");
    assert_eq!(back["book_name"], book["book_name"]);
}
