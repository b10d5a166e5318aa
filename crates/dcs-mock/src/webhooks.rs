//! Webhook events and their delivery, byte for byte as DCS sends them.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::{HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::app::App;
use crate::json;
use crate::model::{Book, DeliveryStatus, Publisher};
use crate::state::Subscription;

/// The events DCS actually emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    BookCreated,
    BookUpdated,
    BookDeleted,
    PublisherCreated,
    PublisherUpdated,
    PublisherDeleted,
}

impl EventKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventKind::BookCreated => "book.created",
            EventKind::BookUpdated => "book.updated",
            EventKind::BookDeleted => "book.deleted",
            EventKind::PublisherCreated => "publisher.created",
            EventKind::PublisherUpdated => "publisher.updated",
            EventKind::PublisherDeleted => "publisher.deleted",
        }
    }
}

/// `WebhookEventBookData`: no publisher id, title falls back to the book name, and a null
/// category becomes `""`.
#[derive(Clone, Debug, Serialize)]
struct BookData {
    id: i64,
    book_name: String,
    book_title: String,
    publisher: String,
    language: String,
    category: String,
    status: &'static str,
}

/// `WebhookEventPublisherData`: `logo_url` is always the relative logo route.
#[derive(Clone, Debug, Serialize)]
struct PublisherData {
    id: i64,
    name: String,
    contact_email: Option<String>,
    logo_url: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
enum EventData {
    Book(BookData),
    Publisher(PublisherData),
}

/// A content change to announce. The data is captured when the change happens.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    kind: EventKind,
    data: EventData,
}

#[derive(Serialize)]
struct Payload<'a> {
    event: &'static str,
    timestamp: String,
    data: &'a EventData,
}

impl Event {
    pub(crate) fn book(kind: EventKind, book: &Book) -> Self {
        let title = book
            .book_title
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or(&book.book_name);
        Event {
            kind,
            data: EventData::Book(BookData {
                id: book.id,
                book_name: book.book_name.clone(),
                book_title: title.to_owned(),
                publisher: book.publisher.clone(),
                language: book.language.clone(),
                category: book.category.clone().unwrap_or_default(),
                status: book.status.as_str(),
            }),
        }
    }

    fn publisher(kind: EventKind, publisher: &Publisher) -> Self {
        Event {
            kind,
            data: EventData::Publisher(PublisherData {
                id: publisher.id,
                name: publisher.name.clone(),
                contact_email: publisher.contact_email.clone(),
                logo_url: format!("/publishers/{}/logo", publisher.id),
            }),
        }
    }

    pub(crate) fn publisher_created(publisher: &Publisher) -> Self {
        Self::publisher(EventKind::PublisherCreated, publisher)
    }

    pub(crate) fn publisher_updated(publisher: &Publisher) -> Self {
        Self::publisher(EventKind::PublisherUpdated, publisher)
    }

    pub(crate) fn publisher_deleted(publisher: &Publisher) -> Self {
        Self::publisher(EventKind::PublisherDeleted, publisher)
    }

    pub(crate) fn kind(&self) -> EventKind {
        self.kind
    }

    /// The compact body (`model_dump_json`): `{"event","timestamp","data"}`.
    pub(crate) fn payload(&self, at: &DateTime<Utc>) -> String {
        let payload = Payload {
            event: self.kind.as_str(),
            timestamp: json::format_timestamp(at),
            data: &self.data,
        };
        // Plain structs of strings and integers always serialize.
        serde_json::to_string(&payload).unwrap_or_default()
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Keeps `wait_for_deliveries` waiting while it lives.
pub(crate) struct InFlight(App);

impl InFlight {
    pub(crate) fn new(app: &App) -> Self {
        app.in_flight.send_modify(|n| *n += 1);
        InFlight(app.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// An event waiting to be delivered. Dropping it starts the deliveries, so an event tied to an
/// HTTP response goes out once the response body is done, like a FastAPI background task.
pub(crate) struct PendingEvent {
    app: App,
    event: Option<Event>,
    in_flight: Option<InFlight>,
}

impl PendingEvent {
    pub(crate) fn new(app: &App, event: Event) -> Self {
        PendingEvent {
            in_flight: Some(InFlight::new(app)),
            app: app.clone(),
            event: Some(event),
        }
    }
}

impl Drop for PendingEvent {
    fn drop(&mut self) {
        if let (Some(event), Some(in_flight)) = (self.event.take(), self.in_flight.take()) {
            let app = self.app.clone();
            self.app.runtime.spawn(deliver_event(app, event, in_flight));
        }
    }
}

/// Events to send after the response that carries them (a response extension).
#[derive(Clone, Default)]
pub(crate) struct ResponseEvents(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<PendingEvent>>>);

impl ResponseEvents {
    pub(crate) fn take(&self) -> Vec<PendingEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Sends one event to every active subscription that wants it, all at once.
async fn deliver_event(app: App, event: Event, _in_flight: InFlight) {
    let subscriptions: Vec<Subscription> = app
        .lock()
        .subscriptions
        .values()
        .filter(|s| s.is_active && s.wants(event.kind().as_str()))
        .cloned()
        .collect();
    if subscriptions.is_empty() {
        tracing::debug!(
            event = event.kind().as_str(),
            "no active subscription wants this event"
        );
        return;
    }
    let mut deliveries = JoinSet::new();
    for subscription in subscriptions {
        deliveries.spawn(deliver_to(app.clone(), subscription, event.clone()));
    }
    while deliveries.join_next().await.is_some() {}
}

/// DCS's `deliver_webhook`: one log row, up to `1 + retry delays` attempts with identical bytes.
async fn deliver_to(app: App, subscription: Subscription, event: Event) {
    let event_type = event.kind().as_str();
    let payload = event.payload(&json::now());
    let signature = signature(&subscription.secret, payload.as_bytes());
    let log_id = app
        .lock()
        .new_delivery_log(subscription.id, event_type, &payload);
    let body = Bytes::from(payload);
    let attempts = app.settings.retry_delays.len() + 1;

    for attempt in 0..attempts {
        app.update_log(log_id, |log| log.attempt_count = attempt as u32 + 1);
        let outcome = send(&app, &subscription.url, &signature, body.clone()).await;
        match outcome {
            Ok((status, response_body)) => {
                let succeeded = (200..300).contains(&status);
                app.update_log(log_id, |log| {
                    log.response_status = Some(status);
                    log.response_body = Some(response_body.chars().take(1000).collect());
                    log.delivered_at = Some(json::now());
                    if succeeded {
                        log.status = DeliveryStatus::Success;
                    } else {
                        let excerpt: String = response_body.chars().take(200).collect();
                        log.error_message = Some(format!("HTTP {status}: {excerpt}"));
                    }
                });
                if succeeded {
                    tracing::info!(
                        log_id,
                        subscription = subscription.id,
                        event = event_type,
                        status,
                        "webhook delivered"
                    );
                    return;
                }
                tracing::warn!(
                    log_id,
                    subscription = subscription.id,
                    event = event_type,
                    status,
                    "webhook rejected"
                );
            }
            Err(error) => {
                tracing::warn!(log_id, subscription = subscription.id, event = event_type, %error, "webhook delivery failed");
                app.update_log(log_id, |log| {
                    log.error_message = Some(format!("Exception: {error}"))
                });
            }
        }
        match app.settings.retry_delays.get(attempt) {
            Some(delay) => tokio::time::sleep(*delay).await,
            None => app.update_log(log_id, |log| log.status = DeliveryStatus::Failed),
        }
    }
}

/// One POST with DCS's headers, in the order DCS's HTTP client sends them.
async fn send(app: &App, url: &str, signature: &str, body: Bytes) -> Result<(u16, String), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "unsupported URL scheme in {url:?}: the mock delivers over plain http only"
        ));
    }
    let authority = uri
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or_default().to_owned())
        .ok_or_else(|| format!("invalid URL {url:?}: no host"))?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::HOST, authority)
        .header(header::ACCEPT, "*/*")
        .header(header::ACCEPT_ENCODING, "gzip, deflate")
        .header(header::CONNECTION, "keep-alive")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            "x-webhook-signature",
            HeaderValue::from_str(signature).map_err(|e| e.to_string())?,
        )
        .header(header::USER_AGENT, "Dream-Central-Storage-Webhook/1.0")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = app
            .http
            .request(request)
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| error_chain(&e))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    match tokio::time::timeout(app.settings.webhook_timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "timed out after {:?}",
            app.settings.webhook_timeout
        )),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Default pause between attempts, as DCS sleeps 1 s then 2 s.
pub(crate) fn default_retry_delays() -> Vec<Duration> {
    vec![Duration::from_secs(1), Duration::from_secs(2)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(micros: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 32, 53).unwrap()
            + chrono::Duration::microseconds(micros)
    }

    #[test]
    fn book_payload_matches_the_recording() {
        let book = Book {
            publisher: "Dream Press".into(),
            book_name: "TEMPBOOK".into(),
            book_title: Some("Temporary Book".into()),
            book_cover: None,
            activity_count: None,
            activity_details: None,
            total_size: None,
            language: "en".into(),
            category: None,
            status: crate::model::BookStatus::Draft,
            id: 2,
            publisher_id: 1,
            created_at: at(0),
            updated_at: at(0),
        };
        let event = Event::book(EventKind::BookCreated, &book);
        assert_eq!(
            event.payload(&at(826_675)),
            r#"{"event":"book.created","timestamp":"2026-11-22T09:32:53.826675Z","data":{"id":2,"book_name":"TEMPBOOK","book_title":"Temporary Book","publisher":"Dream Press","language":"en","category":"","status":"draft"}}"#
        );
        let untitled = Book {
            book_title: None,
            ..book
        };
        assert!(
            Event::book(EventKind::BookUpdated, &untitled)
                .payload(&at(1))
                .contains(r#""book_title":"TEMPBOOK""#)
        );
    }

    #[test]
    fn deliveries_make_three_attempts_one_and_two_seconds_apart_by_default() {
        assert_eq!(
            default_retry_delays(),
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(
            crate::MockConfig::default().webhook_retry_delays,
            default_retry_delays()
        );
    }

    #[test]
    fn signature_matches_a_recorded_delivery() {
        let body = r#"{"event":"publisher.deleted","timestamp":"2026-11-22T09:33:00.960135Z","data":{"id":3,"name":"Temp Publisher","contact_email":"temp@example.com","logo_url":"/publishers/3/logo"}}"#;
        assert_eq!(
            signature("lms-local-test-webhook-secret-0001-fail", body.as_bytes()),
            "sha256=ba8f9a45df310068c3287dd32deb3e850e2221605fb453c8e06025207ac3262d"
        );
    }
}
