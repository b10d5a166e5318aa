//! Receiving DCS webhook deliveries: verify the signature over the raw bytes, log the delivery,
//! apply the event's cache invalidation plan, record the outcome, acknowledge.
//!
//! Everything happens before the answer, so an acknowledged delivery has had its effect even if
//! the process stops right after; and nothing here calls DCS, so the answer is fast.
//!
//! - **Idempotency.** DCS retries with identical bytes; the body digest is the key (see
//!   [`crate::webhook_log`]). A delivery already processed or ignored is acknowledged as a
//!   duplicate with the same `event_id`; one whose processing failed is processed again.
//! - **Concurrency.** Of identical deliveries arriving together, the one that inserts the log
//!   record processes; the others wait (up to [`ReceiverTiming::in_progress_wait`]) for its
//!   outcome and answer as duplicates, or `503` so that DCS tries again if it is still running.
//! - **Partial invalidation.** With Redis, the cache always clears this instance's local tier,
//!   but may fail to clear the shared tier or to tell other instances. Such a delivery is
//!   logged `failed` and answered `503`: DCS then retries (three attempts in total), and a
//!   retry processes it again; invalidating twice is harmless. Had it been acknowledged, the
//!   shared tier and the other instances would serve the old data until their TTL.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cache::CacheError;
use uuid::Uuid;

use crate::errors::{Code, Problem, ToProblem};
use crate::ports::{
    CacheInvalidator, DeliveryObserver, DeliveryOutcome, DeliveryRecord, DeliveryStatus,
    EventFollower,
};
use crate::webhook_log::{Claim, DeliveryLog, DeliveryLogError, EVENT_TYPE_MAX_CHARS, NewDelivery};
use crate::webhooks::{EventKind, SignatureVerifier, WebhookError, WebhookEvent, body_digest};

/// Largest accepted delivery. DCS bodies are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `event_type` logged for a body whose `event` could not be read.
pub const UNREADABLE_EVENT_TYPE: &str = "(unreadable)";

/// `event` label of deliveries whose body was not trusted (signature not checked or wrong).
pub const UNVERIFIED_EVENT_LABEL: &str = "unverified";
/// `event` label of event types the LMS does not know.
pub const UNKNOWN_EVENT_LABEL: &str = "unknown";
/// `event` label of bodies that did not parse.
pub const MALFORMED_EVENT_LABEL: &str = "malformed";

/// Timing of the duplicate handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverTiming {
    /// A `received` record older than this is taken to be abandoned (its processor died) and
    /// the next delivery takes it over. Processing takes milliseconds; DCS's last retry comes
    /// about 3 s after its first attempt plus the time each attempt took, so a lease of a few
    /// seconds lets a retry rescue a delivery whose processor crashed.
    pub claim_lease: Duration,
    /// How long a duplicate of a delivery still being processed waits for its outcome before
    /// answering `503`.
    pub in_progress_wait: Duration,
    /// How often the waiting duplicate looks at the record again.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AckStatus {
    /// Accepted; see [`Receipt::outcome`] for what was done.
    Received,
}

/// What an accepted delivery led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AckOutcome {
    /// A known event: its invalidation was applied.
    Processed,
    /// An event type the LMS does not act on (logged `ignored`).
    Ignored,
}

/// The `200` answer to a delivery.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// Always `received`.
    pub status: AckStatus,
    /// Id of the delivery's record in the log; the same for every retry of the same bytes.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
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
        /// The log record.
        event_id: Uuid,
        /// What is wrong with it.
        error: WebhookError,
    },
    /// The cache was cleared here but not everywhere (503, so that DCS retries). Logged
    /// `failed`.
    #[error("cache invalidation incomplete: {source}")]
    InvalidationIncomplete {
        /// The log record.
        event_id: Uuid,
        /// What failed.
        source: CacheError,
    },
    /// The cache is fresh, but what follows an event (re-importing a book's activities) could
    /// not be done now (503, so that DCS retries). Logged `failed`.
    #[error("follow-up failed: {reason}")]
    FollowUpFailed {
        /// The log record.
        event_id: Uuid,
        /// Why (logged, not shown).
        reason: String,
    },
    /// An identical delivery is still being processed (503).
    #[error("an identical delivery is still being processed")]
    InProgress {
        /// The log record.
        event_id: Uuid,
    },
    /// The event log failed (500; 503 `database_unavailable` when the database is unreachable).
    #[error(transparent)]
    Storage(#[from] DeliveryLogError),
}

impl From<crate::ports::StoreError> for ReceiveError {
    fn from(error: crate::ports::StoreError) -> Self {
        Self::Storage(DeliveryLogError::Storage(error))
    }
}

impl ToProblem for ReceiveError {
    fn problem(&self) -> Problem {
        match self {
            Self::Signature(inner) => inner.problem(),
            Self::TooLarge { limit } => Problem::new(Code::PayloadTooLarge)
                .with_detail(format!("Webhook body is larger than {limit} bytes")),
            Self::Unreadable => {
                Problem::new(Code::BadRequest).with_detail("Could not read the request body")
            }
            Self::Malformed { event_id, error } => {
                error.problem().with_field("event_id", event_id.to_string())
            }
            Self::InvalidationIncomplete { event_id, .. } => {
                Problem::new(Code::CacheInvalidationIncomplete)
                    .with_field("event_id", event_id.to_string())
            }
            Self::FollowUpFailed { event_id, .. } => Problem::new(Code::WebhookFollowUpFailed)
                .with_field("event_id", event_id.to_string()),
            Self::InProgress { event_id } => {
                Problem::new(Code::WebhookInProgress).with_field("event_id", event_id.to_string())
            }
            Self::Storage(DeliveryLogError::Storage(error)) if error.is_unavailable() => {
                Problem::new(Code::DatabaseUnavailable)
            }
            Self::Storage(_) => Problem::new(Code::Internal),
        }
    }
}

/// The webhook pipeline. Cheap to clone.
#[derive(Clone)]
pub struct WebhookReceiver {
    log: DeliveryLog,
    invalidator: Arc<dyn CacheInvalidator>,
    verifier: Arc<SignatureVerifier>,
    observer: Arc<dyn DeliveryObserver>,
    followers: Vec<Arc<dyn EventFollower>>,
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
    Ours(DeliveryRecord),
    /// Processed or ignored before.
    AlreadyDone(DeliveryRecord),
}

impl WebhookReceiver {
    /// A receiver with the default timing.
    pub fn new(
        log: DeliveryLog,
        invalidator: Arc<dyn CacheInvalidator>,
        verifier: Arc<SignatureVerifier>,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Self {
        Self {
            log,
            invalidator,
            verifier,
            observer,
            followers: Vec::new(),
            timing: ReceiverTiming::default(),
        }
    }

    /// The same receiver, also telling `follower` about every processed event.
    pub fn with_follower(mut self, follower: Arc<dyn EventFollower>) -> Self {
        self.followers.push(follower);
        self
    }

    /// The same receiver with another timing (tests shorten the waits).
    pub fn with_timing(mut self, timing: ReceiverTiming) -> Self {
        self.timing = timing;
        self
    }

    /// The same receiver over another delivery log (tests use one with a manual clock).
    pub fn with_log(mut self, log: DeliveryLog) -> Self {
        self.log = log;
        self
    }

    /// The delivery log.
    pub fn log(&self) -> &DeliveryLog {
        &self.log
    }

    /// Counts and reports a body over [`MAX_BODY_BYTES`].
    pub fn refuse_oversize(&self) -> ReceiveError {
        self.observer
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
            self.observer
                .record(UNVERIFIED_EVENT_LABEL, DeliveryOutcome::Rejected);
            tracing::warn!(
                code = error.problem().code.name(),
                body_bytes = body.len(),
                "webhook delivery refused: signature"
            );
            return Err(ReceiveError::Signature(error));
        }

        let digest = body_digest(body);
        let parsed = WebhookEvent::parse(body);
        let label = event_label(&parsed);
        let event_type = match &parsed {
            Ok(event) => event_type_text(&event.name),
            Err(_) => readable_event_name(body)
                .map(|name| event_type_text(&name))
                .unwrap_or_else(|| UNREADABLE_EVENT_TYPE.to_owned()),
        };
        let payload = payload_text(body);
        let new = NewDelivery {
            body_sha256: &digest,
            event_type: &event_type,
            payload: &payload,
        };

        let result = match self.claim(&new).await {
            Ok(Claimed::Ours(record)) => self.process(record, parsed, label).await,
            Ok(Claimed::AlreadyDone(record)) => {
                self.observer.record(label, DeliveryOutcome::Duplicate);
                tracing::info!(
                    event = %event_type,
                    event_id = %record.id,
                    "duplicate webhook delivery acknowledged"
                );
                Ok(Receipt {
                    status: AckStatus::Received,
                    event_id: record.id,
                    outcome: match record.status {
                        DeliveryStatus::Ignored => AckOutcome::Ignored,
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
                    self.observer.record(label, DeliveryOutcome::InProgress);
                }
                ReceiveError::Storage(_) => self.observer.record(label, DeliveryOutcome::Error),
                // Counted where they arose.
                _ => {}
            }
        }
        result
    }

    /// Claims the delivery, waiting while an identical one is being processed.
    async fn claim(&self, new: &NewDelivery<'_>) -> Result<Claimed, ReceiveError> {
        let deadline = tokio::time::Instant::now() + self.timing.in_progress_wait;
        loop {
            match self.log.claim(new, self.timing.claim_lease).await? {
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

    /// Processes a claimed delivery and records the outcome in its record.
    async fn process(
        &self,
        record: DeliveryRecord,
        parsed: Result<WebhookEvent, WebhookError>,
        label: &'static str,
    ) -> Result<Receipt, ReceiveError> {
        let event = match parsed {
            Ok(event) => event,
            Err(error) => {
                self.log.mark_failed(&record, &error.to_string()).await?;
                self.observer.record(label, DeliveryOutcome::Malformed);
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
            finish_or_note(self.log.mark_ignored(&record).await?, &record);
            self.observer.record(label, DeliveryOutcome::Ignored);
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

        match self
            .invalidator
            .invalidate(&event.invalidation_plan())
            .await
        {
            Ok(removed) => {
                for follower in &self.followers {
                    if let Err(failure) = follower.follow(&event).await {
                        tracing::warn!(
                            event = %event.name,
                            entity_id = event.entity_id,
                            event_id = %record.id,
                            error = %failure,
                            "webhook: follow-up failed; asking DCS to retry"
                        );
                        self.log
                            .mark_failed(&record, &format!("follow-up failed: {failure}"))
                            .await?;
                        self.observer.record(label, DeliveryOutcome::Failed);
                        return Err(ReceiveError::FollowUpFailed {
                            event_id: record.id,
                            reason: failure.to_string(),
                        });
                    }
                }
                finish_or_note(self.log.mark_processed(&record).await?, &record);
                self.observer.record(label, DeliveryOutcome::Processed);
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
                self.log
                    .mark_failed(&record, &format!("cache invalidation incomplete: {source}"))
                    .await?;
                self.observer.record(label, DeliveryOutcome::Failed);
                Err(ReceiveError::InvalidationIncomplete {
                    event_id: record.id,
                    source,
                })
            }
        }
    }
}

fn finish_or_note(still_ours: bool, record: &DeliveryRecord) {
    if !still_ours {
        // The work is done and idempotent; the record belongs to whoever took it over.
        tracing::warn!(
            event_id = %record.id,
            "webhook claim was taken over while it was processed; its new owner records the outcome"
        );
    }
}

/// The bounded `event` label of a delivery.
pub fn event_label(parsed: &Result<WebhookEvent, WebhookError>) -> &'static str {
    match parsed {
        Err(_) => MALFORMED_EVENT_LABEL,
        Ok(event) => event.kind.known_name().unwrap_or(UNKNOWN_EVENT_LABEL),
    }
}

/// The `event` string of a body that is JSON but not a valid delivery, for the log record.
fn readable_event_name(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("event")?.as_str().map(str::to_owned)
}

/// The event name as logged: cut to the column's length, NUL replaced (a signed body may
/// name any event, and PostgreSQL text cannot hold NUL, so the insert would fail with a 500
/// on every retry).
fn event_type_text(name: &str) -> String {
    truncate_chars(name, EVENT_TYPE_MAX_CHARS).replace('\0', "\u{FFFD}")
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
    fn logged_event_names_hold_no_nul() {
        // Found while writing the webhook fuzz target's checks: `{"event":"\u0000"}` was
        // logged with the NUL.
        assert_eq!(event_type_text("a\0b"), "a\u{FFFD}b");
        assert_eq!(event_type_text(&"\0".repeat(70)).chars().count(), 64);
        assert_eq!(event_type_text("book.created"), "book.created");
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
    fn an_unreachable_event_log_is_a_503_and_other_store_failures_a_500() {
        use crate::ports::StoreError;
        let down = ReceiveError::from(StoreError::unavailable("pool timed out"));
        assert_eq!(down.problem().code, Code::DatabaseUnavailable);
        assert_eq!(down.problem().retry_after_secs(), Some(5));
        let broken = ReceiveError::from(StoreError::new("constraint"));
        assert_eq!(broken.problem().code, Code::Internal);
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
}
