//! Webhook deliveries against a loopback receiver: bytes, headers, signature, retries, logs.

mod common;

use std::time::Duration;

use common::{
    FAST_RETRIES, Http, OJson, Received, Receiver, assert_same_shape, fast_config, sample,
};
use dcs_mock::{DeliveryStatus, MockDcs, NewBook, PublisherUpdate, default_books_dir};
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use sha2::Sha256;

const SECRET: &str = "lms-local-test-webhook-secret-0001";

fn hmac_header(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn subscribe(
    http: &Http,
    dcs: &MockDcs,
    token: &str,
    url: &str,
    secret: &str,
    event_types: Option<&str>,
) -> i64 {
    let body = serde_json::json!({"url": url, "secret": secret, "description": "test receiver", "event_types": event_types});
    let reply = http
        .json(
            Method::POST,
            &format!("{}/webhooks/", dcs.base_url()),
            token,
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.json()["id"].as_i64().expect("subscription id")
}

/// The recorded body with its timestamp replaced by the one actually sent.
fn expected_body(recorded: &str, sent: &[u8]) -> String {
    let sent: serde_json::Value = serde_json::from_slice(sent).expect("JSON body");
    let recorded_value: serde_json::Value = serde_json::from_str(recorded).expect("recorded JSON");
    recorded.replace(
        recorded_value["timestamp"]
            .as_str()
            .expect("recorded timestamp"),
        sent["timestamp"].as_str().expect("sent timestamp"),
    )
}

fn body_json(received: &Received) -> serde_json::Value {
    serde_json::from_slice(&received.body).expect("JSON body")
}

fn find<'a>(received: &'a [Received], event: &str, id: i64) -> &'a Received {
    received
        .iter()
        .find(|r| {
            let body = body_json(r);
            body["event"] == event && body["data"]["id"] == id
        })
        .unwrap_or_else(|| panic!("no {event} delivery for id {id}"))
}

fn assert_like_recording(name: &str, received: &Received) {
    let recording = sample(name);
    let delivery = recording.at(&["delivery"]);
    let recorded_body = delivery.at(&["body_utf8"]).as_str().expect("body_utf8");
    assert_eq!(
        String::from_utf8_lossy(&received.body),
        expected_body(recorded_body, &received.body),
        "{name}: body bytes"
    );
    let timestamp = body_json(received)["timestamp"]
        .as_str()
        .expect("timestamp")
        .to_owned();
    assert_eq!(
        timestamp.len(),
        "2026-11-22T09:32:53.499233Z".len(),
        "{name}: {timestamp}"
    );
    assert!(timestamp.ends_with('Z'), "{name}: {timestamp}");

    let method = delivery.at(&["method"]).as_str().expect("method");
    let path = delivery.at(&["path"]).as_str().expect("path");
    assert_eq!(
        received.request_line,
        format!("{method} {path} HTTP/1.1"),
        "{name}"
    );

    let OJson::Array(recorded_headers) = delivery.at(&["headers"]) else {
        panic!("{name}: headers")
    };
    let recorded: Vec<(&str, &str)> = recorded_headers
        .iter()
        .map(|pair| match pair {
            OJson::Array(kv) => (
                kv[0].as_str().expect("name"),
                kv[1].as_str().expect("value"),
            ),
            other => panic!("{name}: header {other:?}"),
        })
        .collect();
    let names: Vec<&str> = received.headers.iter().map(|(n, _)| n.as_str()).collect();
    let recorded_names: Vec<&str> = recorded.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names, recorded_names,
        "{name}: header names, case and order"
    );
    for ((header, value), (_, recorded_value)) in received.headers.iter().zip(&recorded) {
        match header.as_str() {
            "Host" => assert!(received.request_line.contains(path)),
            "X-Webhook-Signature" => assert_eq!(
                value,
                &hmac_header(SECRET, &received.body),
                "{name}: signature"
            ),
            "Content-Length" => {
                assert_eq!(value, &received.body.len().to_string(), "{name}: length")
            }
            _ => assert_eq!(value, recorded_value, "{name}: {header}"),
        }
    }
}

#[tokio::test]
async fn the_six_events_are_sent_like_the_recorded_deliveries() {
    let empty = tempfile::tempdir().expect("tempdir");
    let dcs = MockDcs::start(dcs_mock::MockConfig {
        books_dir: empty.path().to_owned(),
        ..fast_config()
    })
    .await
    .expect("mock");
    let receiver = Receiver::start("/dcs-webhook", Vec::new(), 200).await;
    let http = Http::default();
    let token = http.login(dcs.base_url()).await;
    let base = dcs.base_url().to_owned();
    let subscription = subscribe(&http, &dcs, &token, &receiver.url, SECRET, None).await;

    // The calls of the recording, in its order.
    let create = sample("publishers-create-201")
        .at(&["request", "json"])
        .to_value();
    let reply = http
        .json(Method::POST, &format!("{base}/publishers/"), &token, create)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let update = sample("publishers-update-200")
        .at(&["request", "json"])
        .to_value();
    let reply = http
        .json(Method::PUT, &format!("{base}/publishers/1"), &token, update)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let flowdemo = NewBook::from_dir(default_books_dir().join("FLOWDEMO")).expect("sample book");
    assert_eq!(dcs.add_book(flowdemo).expect("book").id, 1);
    let update = sample("books-update-200")
        .at(&["request", "json"])
        .to_value();
    let reply = http
        .json(Method::PUT, &format!("{base}/books/1"), &token, update)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let create = sample("books-create-201-metadata-only")
        .at(&["request", "json"])
        .to_value();
    let reply = http
        .json(Method::POST, &format!("{base}/books/"), &token, create)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = http
        .send(
            Method::DELETE,
            &format!("{base}/books/2"),
            &[("authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // The recording had a publisher 2 by then.
    let second = serde_json::json!({"name": "Second Publisher"});
    assert_eq!(
        http.json(Method::POST, &format!("{base}/publishers/"), &token, second)
            .await
            .status,
        StatusCode::CREATED
    );
    let create = sample("publishers-create-201-temp")
        .at(&["request", "json"])
        .to_value();
    let reply = http
        .json(Method::POST, &format!("{base}/publishers/"), &token, create)
        .await;
    assert_eq!(reply.json()["id"], 3);
    let reply = http
        .send(
            Method::DELETE,
            &format!("{base}/publishers/3"),
            &[("authorization", &format!("Bearer {token}"))],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    dcs.wait_for_deliveries().await;
    let received = receiver.received();
    assert_eq!(received.len(), 9, "one delivery per change");
    assert_like_recording(
        "webhook-publisher-created",
        find(&received, "publisher.created", 1),
    );
    assert_like_recording(
        "webhook-publisher-updated",
        find(&received, "publisher.updated", 1),
    );
    assert_like_recording("webhook-book-created", find(&received, "book.created", 1));
    assert_like_recording("webhook-book-updated", find(&received, "book.updated", 1));
    assert_like_recording(
        "webhook-book-created-id2",
        find(&received, "book.created", 2),
    );
    assert_like_recording("webhook-book-deleted", find(&received, "book.deleted", 2));
    assert_like_recording(
        "webhook-publisher-created-id3",
        find(&received, "publisher.created", 3),
    );
    assert_like_recording(
        "webhook-publisher-deleted",
        find(&received, "publisher.deleted", 3),
    );

    // The delivery log, newest first, shaped like the recorded one.
    let logs = http
        .get(&format!("{base}/webhooks/{subscription}/logs"), &token)
        .await;
    assert_eq!(logs.status, StatusCode::OK);
    let logs_json = logs.json();
    let rows = logs_json.as_array().expect("a list");
    assert_eq!(rows.len(), 9);
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().expect("id")).collect();
    assert_eq!(ids, (1..=9).rev().collect::<Vec<_>>());
    let recorded = sample("webhooks-logs-200")
        .at(&["response", "json"])
        .clone();
    let OJson::Array(recorded_rows) = &recorded else {
        panic!("recorded logs")
    };
    let OJson::Array(actual_rows) = logs.ordered() else {
        panic!("logs")
    };
    // Newest: publisher.deleted of publisher 3, as in the recording.
    assert_same_shape(
        "webhooks-logs-200",
        &recorded_rows[0],
        &actual_rows[0],
        &[
            "id",
            "payload",
            "response_body",
            "created_at",
            "delivered_at",
        ],
    );
    let newest = &rows[0];
    assert_eq!(
        newest["payload"].as_str().map(str::as_bytes),
        Some(find(&received, "publisher.deleted", 3).body.as_slice())
    );
    assert_eq!(newest["response_body"], "{\"received\": true, \"seq\": 9}");
}

#[tokio::test]
async fn a_flaky_receiver_gets_identical_retries_until_it_succeeds() {
    let dcs = common::start().await;
    let receiver = Receiver::start("/flaky", vec![500, 500], 200).await;
    let http = Http::default();
    let token = dcs.issue_token();
    subscribe(
        &http,
        &dcs,
        &token,
        &receiver.url,
        SECRET,
        Some("publisher.deleted"),
    )
    .await;

    dcs.update_publisher(1, PublisherUpdate::default())
        .expect("filtered out");
    dcs.delete_publisher(1).expect("publisher 1");
    dcs.wait_for_deliveries().await;

    let received = receiver.received();
    assert_eq!(received.len(), 3, "500, 500, then 200");
    for attempt in &received[1..] {
        assert_eq!(attempt.body, received[0].body, "identical bytes");
        assert_eq!(
            attempt.header("X-Webhook-Signature"),
            received[0].header("X-Webhook-Signature")
        );
    }
    assert!(
        received[1].at - received[0].at >= FAST_RETRIES[0],
        "first pause"
    );
    assert!(
        received[2].at - received[1].at >= FAST_RETRIES[1],
        "second pause"
    );

    let logs = dcs.delivery_logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].status, DeliveryStatus::Success);
    assert_eq!(logs[0].attempt_count, 3);
    assert_eq!(logs[0].response_status, Some(200));
    assert_eq!(logs[0].event_type, "publisher.deleted");
}

#[tokio::test]
async fn a_failing_receiver_gets_exactly_three_attempts_and_a_failed_log() {
    let dcs = common::start().await;
    let receiver = Receiver::start("/fail/dcs-webhook", Vec::new(), 500).await;
    let http = Http::default();
    let token = dcs.issue_token();
    let id = subscribe(
        &http,
        &dcs,
        &token,
        &receiver.url,
        "lms-local-test-webhook-secret-0001-fail",
        None,
    )
    .await;

    dcs.delete_publisher(1).expect("publisher 1");
    // The delivery task has ended here, so nothing more can arrive.
    dcs.wait_for_deliveries().await;
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.body == received[0].body));

    let logs = http
        .get(&format!("{}/webhooks/{id}/logs", dcs.base_url()), &token)
        .await;
    let recorded = sample("webhooks-logs-200-failing")
        .at(&["response", "json"])
        .clone();
    assert_same_shape(
        "webhooks-logs-200-failing",
        &recorded,
        &logs.ordered(),
        &[
            "id",
            "subscription_id",
            "payload",
            "created_at",
            "delivered_at",
        ],
    );
    let row = &logs.json()[0];
    assert_eq!(row["status"], "failed");
    assert_eq!(row["attempt_count"], 3);
    assert_eq!(
        row["error_message"],
        "HTTP 500: {\"error\": \"simulated failure\"}"
    );
}

#[tokio::test]
async fn filters_and_inactive_subscriptions_decide_who_gets_what() {
    let dcs = common::start().await;
    let filtered = Receiver::start("/filtered", Vec::new(), 200).await;
    let inactive = Receiver::start("/inactive", Vec::new(), 200).await;
    let everything = Receiver::start("/all", Vec::new(), 200).await;
    let http = Http::default();
    let token = dcs.issue_token();
    let base = dcs.base_url().to_owned();
    subscribe(
        &http,
        &dcs,
        &token,
        &filtered.url,
        SECRET,
        Some("book.updated, book.deleted"),
    )
    .await;
    let inactive_id = subscribe(&http, &dcs, &token, &inactive.url, SECRET, Some("")).await;
    let off = serde_json::json!({"is_active": false});
    let reply = http
        .json(
            Method::PUT,
            &format!("{base}/webhooks/{inactive_id}"),
            &token,
            off,
        )
        .await;
    assert_eq!(reply.json()["is_active"], false);
    subscribe(&http, &dcs, &token, &everything.url, SECRET, None).await;

    dcs.update_publisher(1, PublisherUpdate::default())
        .expect("publisher 1");
    dcs.update_book(1, dcs_mock::BookUpdate::default())
        .expect("book 1");
    dcs.wait_for_deliveries().await;

    let events = |receiver: &Receiver| -> Vec<String> {
        receiver
            .received()
            .iter()
            .map(|r| body_json(r)["event"].as_str().expect("event").to_owned())
            .collect()
    };
    assert_eq!(events(&filtered), ["book.updated"]);
    assert!(events(&inactive).is_empty());
    let mut all = events(&everything);
    all.sort();
    assert_eq!(all, ["book.updated", "publisher.updated"]);
}

#[tokio::test]
async fn an_unreachable_receiver_is_logged_as_an_exception() {
    let dcs = common::start().await;
    // A port that was free a moment ago: connecting is refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/gone", closed.local_addr().expect("addr"));
    drop(closed);
    let http = Http::default();
    let token = dcs.issue_token();
    subscribe(&http, &dcs, &token, &url, SECRET, None).await;

    dcs.delete_book(1).expect("book 1");
    tokio::time::timeout(Duration::from_secs(10), dcs.wait_for_deliveries())
        .await
        .expect("deliveries finish");
    let logs = dcs.delivery_logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].status, DeliveryStatus::Failed);
    assert_eq!(logs[0].attempt_count, 3);
    assert_eq!(logs[0].response_status, None);
    assert_eq!(logs[0].delivered_at, None);
    let message = logs[0].error_message.as_deref().unwrap_or_default();
    assert!(message.starts_with("Exception: "), "{message}");
}

#[tokio::test]
async fn empty_updates_over_http_send_nothing() {
    let dcs = common::start().await;
    let receiver = Receiver::start("/hook", Vec::new(), 200).await;
    let http = Http::default();
    let token = dcs.issue_token();
    let base = dcs.base_url().to_owned();
    subscribe(&http, &dcs, &token, &receiver.url, SECRET, None).await;

    let reply = http
        .json(
            Method::PUT,
            &format!("{base}/books/1"),
            &token,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = http
        .json(
            Method::PUT,
            &format!("{base}/publishers/1"),
            &token,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Deleting an archived book again changes nothing either.
    let auth = format!("Bearer {token}");
    for _ in 0..2 {
        let reply = http
            .send(
                Method::DELETE,
                &format!("{base}/books/1"),
                &[("authorization", &auth)],
                None,
            )
            .await;
        assert_eq!(reply.json()["status"], "archived");
    }
    dcs.wait_for_deliveries().await;
    let events: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| body_json(r)["event"].as_str().expect("event").to_owned())
        .collect();
    assert_eq!(events, ["book.deleted"]);
}
