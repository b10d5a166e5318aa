//! Receiving DCS webhook deliveries: verify the signature over the raw bytes, log the delivery,
//! apply the event's cache invalidation plan, record the outcome, acknowledge.
//!
//! Everything happens before the answer, so an acknowledged delivery has had its effect even if
//! the process stops right after; and nothing here calls DCS, so the answer is fast.
//!
//! - **Idempotency.** DCS retries with identical bytes; the body digest is the key
//!   (see [`crate::webhook_events`]). A delivery already processed or ignored is acknowledged
//!   as a duplicate with the same `event_id`; one whose processing failed is processed again.
//! - **Concurrency.** Of identical deliveries arriving together, the one that inserts the log
//!   row processes; the others wait (up to [`ReceiverTiming::in_progress_wait`]) for its
//!   outcome and answer as duplicates, or `503` so that DCS tries again if it is still running.
//! - **Partial invalidation.** With Redis, [`domain::catalog::Catalog::invalidate`] always
//!   clears this instance's local tier, but may fail to clear the shared tier or to tell other
//!   instances. Such a delivery is logged `failed` and answered `503`: DCS then retries (three
//!   attempts in total), and a retry processes it again; invalidating twice is harmless. Had it
//!   been acknowledged, the shared tier and the other instances would serve the old data until
//!   their TTL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use cache::CacheError;
use domain::catalog::Catalog;
use domain::webhooks::{EventKind, SignatureVerifier, WebhookError, WebhookEvent, body_digest};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::entities::webhook_event_log::WebhookEventStatus;
use crate::error::ApiError;
use crate::webhook_events::{
    Claim, EVENT_TYPE_MAX_CHARS, NewWebhookEvent, WebhookEventLog, WebhookEvents,
    WebhookEventsError,
};

/// Largest accepted delivery. DCS bodies are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `event_type` logged for a body whose `event` could not be read.
pub const UNREADABLE_EVENT_TYPE: &str = "(unreadable)";

/// `Retry-After` (seconds) of the 503 answers; DCS ignores it and waits 1 s, then 2 s.
const RETRY_AFTER_SECS: u32 = 1;

/// Timing of the duplicate handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverTiming {
    /// A `received` row older than this is taken to be abandoned (its processor died) and the
    /// next delivery takes it over. Processing takes milliseconds; DCS's last retry comes about
    /// 3 s after its first attempt plus the time each attempt took, so a lease of a few seconds
    /// lets a retry rescue a delivery whose processor crashed.
    pub claim_lease: Duration,
    /// How long a duplicate of a delivery still being processed waits for its outcome before
    /// answering `503`.
    pub in_progress_wait: Duration,
    /// How often the waiting duplicate looks at the row again.
    pub poll_interval: Duration,
}

impl Default for ReceiverTiming {
    fn default() -> Self {
        Self {
            claim_lease: Duration::from_secs(4),
            in_progress_wait: Duration::from_secs(2),
            poll_interval: Duration::from_millis(20),
        }
    }
}

/// `status` of every `200` answer: the delivery was accepted (fixed by the interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AckStatus {
    /// Accepted; see [`Receipt::outcome`] for what was done.
    Received,
}

/// What an accepted delivery led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AckOutcome {
    /// A known event: its invalidation was applied.
    Processed,
    /// An event type the LMS does not act on (logged `ignored`).
    Ignored,
}

/// The `200` answer to a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Receipt {
    /// Always `received`.
    pub status: AckStatus,
    /// Id of the delivery's row in `webhook_event_logs`; the same for every retry of the same
    /// bytes.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: Uuid,
    /// `processed` or `ignored` (for a duplicate: what the first delivery led to).
    pub outcome: AckOutcome,
    /// `true` when these bytes had already been handled and nothing was done this time.
    pub duplicate: bool,
}

/// Why a delivery was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The signature header is missing or does not match the body (401).
    #[error(transparent)]
    Signature(WebhookError),
    /// The body is larger than [`MAX_BODY_BYTES`] (413).
    #[error("webhook body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The request body could not be read (400).
    #[error("the webhook body could not be read")]
    Unreadable,
    /// Correctly signed, but not a delivery (400). Logged `failed`.
    #[error("{error}")]
    Malformed {
        /// The log row.
        event_id: Uuid,
        /// What is wrong with it.
        error: WebhookError,
    },
    /// The cache was cleared here but not everywhere (503, so that DCS retries). Logged
    /// `failed`.
    #[error("cache invalidation incomplete: {source}")]
    InvalidationIncomplete {
        /// The log row.
        event_id: Uuid,
        /// What failed.
        source: CacheError,
    },
    /// An identical delivery is still being processed (503).
    #[error("an identical delivery is still being processed")]
    InProgress {
        /// The log row.
        event_id: Uuid,
    },
    /// The event log failed (500).
    #[error(transparent)]
    Storage(#[from] WebhookEventsError),
}

impl From<sea_orm::DbErr> for ReceiveError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Storage(WebhookEventsError::Database(error))
    }
}

impl From<ReceiveError> for ApiError {
    fn from(error: ReceiveError) -> Self {
        let retry_after = || (header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        match error {
            ReceiveError::Signature(inner) => {
                let detail = match inner {
                    WebhookError::MissingSignature => "Missing X-Webhook-Signature header",
                    _ => "Invalid webhook signature",
                };
                ApiError::new(StatusCode::UNAUTHORIZED, inner.code(), detail)
            }
            ReceiveError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("Webhook body is larger than {limit} bytes"),
            ),
            ReceiveError::Unreadable => {
                ApiError::bad_request("bad_request", "Could not read the request body")
            }
            ReceiveError::Malformed { event_id, error } => {
                let detail = match &error {
                    WebhookError::MalformedBody(reason) => {
                        format!("Malformed webhook body: {reason}")
                    }
                    other => other.to_string(),
                };
                ApiError::bad_request(error.code(), detail)
                    .with_field("event_id", event_id.to_string())
            }
            ReceiveError::InvalidationIncomplete { event_id, source } => {
                let (name, value) = retry_after();
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cache_invalidation_incomplete",
                    "The cache could not be invalidated on every instance; retry the delivery.",
                )
                .with_field("event_id", event_id.to_string())
                .with_header(name, value)
                .with_source(source)
            }
            ReceiveError::InProgress { event_id } => {
                let (name, value) = retry_after();
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "webhook_in_progress",
                    "An identical delivery is still being processed; retry later.",
                )
                .with_field("event_id", event_id.to_string())
                .with_header(name, value)
            }
            ReceiveError::Storage(source) => ApiError::internal(source),
        }
    }
}

/// How a delivery ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Invalidation applied.
    Processed,
    /// Unknown event type, acknowledged.
    Ignored,
    /// Already handled; acknowledged without doing anything.
    Duplicate,
    /// Invalidation incomplete; logged `failed`, answered 503.
    Failed,
    /// Correctly signed, but not a delivery.
    Malformed,
    /// Missing or wrong signature.
    Rejected,
    /// Larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// An identical delivery was still being processed.
    InProgress,
    /// The event log failed.
    Error,
}

impl DeliveryOutcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Ignored => "ignored",
            Self::Duplicate => "duplicate",
            Self::Failed => "failed",
            Self::Malformed => "malformed",
            Self::Rejected => "rejected",
            Self::TooLarge => "too_large",
            Self::InProgress => "in_progress",
            Self::Error => "error",
        }
    }
}

/// `event` label of deliveries whose body was not trusted (signature not checked or wrong).
pub const UNVERIFIED_EVENT_LABEL: &str = "unverified";
/// `event` label of event types the LMS does not know.
pub const UNKNOWN_EVENT_LABEL: &str = "unknown";
/// `event` label of bodies that did not parse.
pub const MALFORMED_EVENT_LABEL: &str = "malformed";

/// `dcs_webhook_deliveries_total{event, outcome}`. The `event` label is one of the six DCS
/// events or `unknown`, `malformed`, `unverified`, never a value taken from the body as is,
/// so its cardinality stays bounded.
#[derive(Clone)]
pub struct WebhookMetrics {
    deliveries: IntCounterVec,
}

impl fmt::Debug for WebhookMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookMetrics").finish_non_exhaustive()
    }
}

impl WebhookMetrics {
    /// Creates the counter and registers it in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let deliveries = IntCounterVec::new(
            Opts::new(
                "dcs_webhook_deliveries_total",
                "DCS webhook deliveries by event and outcome.",
            ),
            &["event", "outcome"],
        )?;
        registry.register(Box::new(deliveries.clone()))?;
        Ok(Self { deliveries })
    }

    /// Counts one delivery.
    pub fn record(&self, event: &str, outcome: DeliveryOutcome) {
        self.deliveries
            .with_label_values(&[event, outcome.as_str()])
            .inc();
    }

    /// Deliveries counted so far with these labels.
    pub fn count(&self, event: &str, outcome: DeliveryOutcome) -> u64 {
        self.deliveries
            .with_label_values(&[event, outcome.as_str()])
            .get()
    }
}

/// The webhook pipeline. Cheap to clone.
#[derive(Clone)]
pub struct WebhookReceiver {
    events: WebhookEvents,
    catalog: Arc<Catalog>,
    verifier: Arc<SignatureVerifier>,
    metrics: WebhookMetrics,
    timing: ReceiverTiming,
}

impl fmt::Debug for WebhookReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookReceiver")
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

/// What claiming a delivery gave this request.
enum Claimed {
    /// This request processes it.
    Ours(WebhookEventLog),
    /// Processed or ignored before.
    AlreadyDone(WebhookEventLog),
}

impl WebhookReceiver {
    /// A receiver with the default timing.
    pub fn new(
        events: WebhookEvents,
        catalog: Arc<Catalog>,
        verifier: Arc<SignatureVerifier>,
        metrics: WebhookMetrics,
    ) -> Self {
        Self {
            events,
            catalog,
            verifier,
            metrics,
            timing: ReceiverTiming::default(),
        }
    }

    /// The same receiver with another timing (tests shorten the waits).
    pub fn with_timing(mut self, timing: ReceiverTiming) -> Self {
        self.timing = timing;
        self
    }

    /// The same receiver over another event log (tests use one with a manual clock).
    pub fn with_events(mut self, events: WebhookEvents) -> Self {
        self.events = events;
        self
    }

    /// The event log.
    pub fn events(&self) -> &WebhookEvents {
        &self.events
    }

    /// The delivery counters.
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.metrics
    }

    /// Counts and reports a body over [`MAX_BODY_BYTES`].
    pub fn refuse_oversize(&self) -> ReceiveError {
        self.metrics
            .record(UNVERIFIED_EVENT_LABEL, DeliveryOutcome::TooLarge);
        tracing::warn!(
            limit = MAX_BODY_BYTES,
            "webhook delivery refused: body too large"
        );
        ReceiveError::TooLarge {
            limit: MAX_BODY_BYTES,
        }
    }

    /// Handles one delivery: `signature` is the `X-Webhook-Signature` value, `body` the raw
    /// request body.
    pub async fn receive(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Receipt, ReceiveError> {
        if let Err(error) = self.verifier.verify(signature, body) {
            self.metrics
                .record(UNVERIFIED_EVENT_LABEL, DeliveryOutcome::Rejected);
            tracing::warn!(
                code = error.code(),
                body_bytes = body.len(),
                "webhook delivery refused: signature"
            );
            return Err(ReceiveError::Signature(error));
        }

        let digest = body_digest(body);
        let parsed = WebhookEvent::parse(body);
        let label = event_label(&parsed);
        let event_type = match &parsed {
            Ok(event) => truncate_chars(&event.name, EVENT_TYPE_MAX_CHARS),
            Err(_) => readable_event_name(body)
                .map(|name| truncate_chars(&name, EVENT_TYPE_MAX_CHARS))
                .unwrap_or_else(|| UNREADABLE_EVENT_TYPE.to_owned()),
        };
        let payload = payload_text(body);
        let new = NewWebhookEvent {
            body_sha256: &digest,
            event_type: &event_type,
            payload: &payload,
        };

        let result = match self.claim(&new).await {
            Ok(Claimed::Ours(record)) => self.process(record, parsed, label).await,
            Ok(Claimed::AlreadyDone(record)) => {
                self.metrics.record(label, DeliveryOutcome::Duplicate);
                tracing::info!(
                    event = %event_type,
                    event_id = %record.id,
                    "duplicate webhook delivery acknowledged"
                );
                Ok(Receipt {
                    status: AckStatus::Received,
                    event_id: record.id,
                    outcome: match record.status {
                        WebhookEventStatus::Ignored => AckOutcome::Ignored,
                        _ => AckOutcome::Processed,
                    },
                    duplicate: true,
                })
            }
            Err(error) => Err(error),
        };
        if let Err(error) = &result {
            match error {
                ReceiveError::InProgress { .. } => {
                    self.metrics.record(label, DeliveryOutcome::InProgress);
                }
                ReceiveError::Storage(_) => self.metrics.record(label, DeliveryOutcome::Error),
                // Counted where they arose.
                _ => {}
            }
        }
        result
    }

    /// Claims the delivery, waiting while an identical one is being processed.
    async fn claim(&self, new: &NewWebhookEvent<'_>) -> Result<Claimed, ReceiveError> {
        let deadline = tokio::time::Instant::now() + self.timing.in_progress_wait;
        loop {
            match self.events.claim(new, self.timing.claim_lease).await? {
                Claim::New(record) => return Ok(Claimed::Ours(record)),
                Claim::Retry {
                    record,
                    previous_status,
                    previous_error,
                } => {
                    tracing::info!(
                        event = %record.event_type,
                        event_id = %record.id,
                        previous_status = ?previous_status,
                        previous_error = previous_error.as_deref().unwrap_or(""),
                        "processing a redelivered webhook again"
                    );
                    return Ok(Claimed::Ours(record));
                }
                Claim::Done(record) => return Ok(Claimed::AlreadyDone(record)),
                Claim::InProgress(record) => {
                    let now = tokio::time::Instant::now();
                    if now + self.timing.poll_interval > deadline {
                        tracing::warn!(
                            event = %record.event_type,
                            event_id = %record.id,
                            "identical webhook delivery still in progress; asking for a retry"
                        );
                        return Err(ReceiveError::InProgress {
                            event_id: record.id,
                        });
                    }
                    tokio::time::sleep(self.timing.poll_interval).await;
                }
            }
        }
    }

    /// Processes a claimed delivery and records the outcome in its row.
    async fn process(
        &self,
        record: WebhookEventLog,
        parsed: Result<WebhookEvent, WebhookError>,
        label: &'static str,
    ) -> Result<Receipt, ReceiveError> {
        let event = match parsed {
            Ok(event) => event,
            Err(error) => {
                self.events.mark_failed(&record, &error.to_string()).await?;
                self.metrics.record(label, DeliveryOutcome::Malformed);
                tracing::warn!(
                    event_id = %record.id,
                    error = %error,
                    "signed webhook delivery is malformed"
                );
                return Err(ReceiveError::Malformed {
                    event_id: record.id,
                    error,
                });
            }
        };

        if let EventKind::Unknown(_) = event.kind {
            self.finish_or_note(self.events.mark_ignored(&record).await?, &record);
            self.metrics.record(label, DeliveryOutcome::Ignored);
            tracing::info!(
                event = %record.event_type,
                event_id = %record.id,
                "webhook event type not handled; ignored"
            );
            return Ok(Receipt {
                status: AckStatus::Received,
                event_id: record.id,
                outcome: AckOutcome::Ignored,
                duplicate: false,
            });
        }

        match self.catalog.invalidate(&event.invalidation_plan()).await {
            Ok(removed) => {
                self.finish_or_note(self.events.mark_processed(&record).await?, &record);
                self.metrics.record(label, DeliveryOutcome::Processed);
                tracing::info!(
                    event = %event.name,
                    entity_id = event.entity_id,
                    event_id = %record.id,
                    removed_entries = removed,
                    "webhook processed"
                );
                Ok(Receipt {
                    status: AckStatus::Received,
                    event_id: record.id,
                    outcome: AckOutcome::Processed,
                    duplicate: false,
                })
            }
            Err(source) => {
                tracing::warn!(
                    event = %event.name,
                    entity_id = event.entity_id,
                    event_id = %record.id,
                    error = %source,
                    "webhook: local cache cleared, but not on every instance; asking DCS to retry"
                );
                self.events
                    .mark_failed(&record, &format!("cache invalidation incomplete: {source}"))
                    .await?;
                self.metrics.record(label, DeliveryOutcome::Failed);
                Err(ReceiveError::InvalidationIncomplete {
                    event_id: record.id,
                    source,
                })
            }
        }
    }

    fn finish_or_note(&self, still_ours: bool, record: &WebhookEventLog) {
        if !still_ours {
            // The work is done and idempotent; the row belongs to whoever took it over.
            tracing::warn!(
                event_id = %record.id,
                "webhook claim was taken over while it was processed; its new owner records the outcome"
            );
        }
    }
}

fn event_label(parsed: &Result<WebhookEvent, WebhookError>) -> &'static str {
    match parsed {
        Err(_) => MALFORMED_EVENT_LABEL,
        Ok(event) => event.kind.known_name().unwrap_or(UNKNOWN_EVENT_LABEL),
    }
}

/// The `event` string of a body that is JSON but not a valid delivery, for the log row.
fn readable_event_name(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("event")?.as_str().map(str::to_owned)
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The body as text for the log: DCS sends UTF-8 JSON; anything else is kept readable, and NUL
/// (which PostgreSQL text cannot hold) is replaced.
fn payload_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_text_keeps_utf8_and_replaces_what_text_columns_refuse() {
        assert_eq!(payload_text(br#"{"a":"\u00e9"}"#), r#"{"a":"\u00e9"}"#);
        assert_eq!(payload_text("é".as_bytes()), "é");
        assert_eq!(payload_text(b"a\0b\xff"), "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn event_names_are_cut_on_character_boundaries() {
        assert_eq!(truncate_chars("book.created", 64), "book.created");
        assert_eq!(truncate_chars(&"é".repeat(70), 64).chars().count(), 64);
    }

    #[test]
    fn readable_event_name_only_reads_a_string_event() {
        assert_eq!(
            readable_event_name(br#"{"event":"book.created","data":{}}"#).as_deref(),
            Some("book.created")
        );
        assert_eq!(readable_event_name(br#"{"event":1}"#), None);
        assert_eq!(readable_event_name(b"not json"), None);
    }

    #[test]
    fn labels_are_bounded() {
        let unknown = WebhookEvent::parse(br#"{"event":"x.y","data":{}}"#);
        assert_eq!(event_label(&unknown), UNKNOWN_EVENT_LABEL);
        assert_eq!(
            event_label(&WebhookEvent::parse(b"{}")),
            MALFORMED_EVENT_LABEL
        );
        let known = WebhookEvent::parse(br#"{"event":"publisher.deleted","data":{"id":3}}"#);
        assert_eq!(event_label(&known), "publisher.deleted");
    }

    #[test]
    fn metrics_count_by_event_and_outcome() {
        let registry = Registry::new();
        let metrics = WebhookMetrics::register(&registry).unwrap();
        metrics.record("book.created", DeliveryOutcome::Processed);
        metrics.record("book.created", DeliveryOutcome::Processed);
        metrics.record("book.created", DeliveryOutcome::Duplicate);
        assert_eq!(metrics.count("book.created", DeliveryOutcome::Processed), 2);
        assert_eq!(metrics.count("book.created", DeliveryOutcome::Duplicate), 1);
        assert!(
            WebhookMetrics::register(&registry).is_err(),
            "one per registry"
        );
    }
}
