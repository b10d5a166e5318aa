//! DCS webhook deliveries: signature verification over the raw body, parsing, and the cache
//! invalidation plan for each event.
//!
//! DCS signs `sha256=<hex HMAC-SHA256(secret, raw body)>` and sends no delivery id, so the body
//! digest is the idempotency key: DCS retries with identical bytes.

use dcs_client::WebhookEventType;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::errors::{Code, Problem, ToProblem};
use crate::keys;

/// Header DCS puts the signature in.
pub const SIGNATURE_HEADER: &str = "X-Webhook-Signature";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    #[error("missing X-Webhook-Signature header")]
    MissingSignature,
    #[error("invalid webhook signature")]
    InvalidSignature,
    #[error("malformed webhook body: {0}")]
    MalformedBody(String),
}

impl ToProblem for WebhookError {
    fn problem(&self) -> Problem {
        match self {
            Self::MissingSignature => Problem::new(Code::WebhookSignatureMissing),
            Self::InvalidSignature => Problem::new(Code::WebhookSignatureInvalid),
            Self::MalformedBody(reason) => Problem::new(Code::WebhookBodyMalformed)
                .with_detail(format!("Malformed webhook body: {reason}")),
        }
    }
}

/// Checks `X-Webhook-Signature` against the shared secret.
pub struct SignatureVerifier {
    secret: SecretString,
}

impl std::fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureVerifier").finish_non_exhaustive()
    }
}

impl SignatureVerifier {
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    /// Verifies the header value over the exact raw body bytes, in constant time.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), WebhookError> {
        let header = header.ok_or(WebhookError::MissingSignature)?.trim();
        let hex_digest = header
            .strip_prefix("sha256=")
            .ok_or(WebhookError::InvalidSignature)?;
        let expected = hex::decode(hex_digest).map_err(|_| WebhookError::InvalidSignature)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&expected)
            .map_err(|_| WebhookError::InvalidSignature)
    }

    /// The header value DCS would send for `body` (for tests and the fake DCS).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Hex SHA-256 of the raw body: identical retries share it.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The six events DCS emits, as the DCS client names them: the one table of event names the
/// domain uses (for parsing deliveries, for metric labels and for the subscription filter).
pub const DCS_EVENTS: [WebhookEventType; 6] = [
    WebhookEventType::BookCreated,
    WebhookEventType::BookUpdated,
    WebhookEventType::BookDeleted,
    WebhookEventType::PublisherCreated,
    WebhookEventType::PublisherUpdated,
    WebhookEventType::PublisherDeleted,
];

/// [`DCS_EVENTS`] with a `'static` address, so their names can be handed out as `&'static str`.
static DCS_EVENT_TYPES: [WebhookEventType; 6] = DCS_EVENTS;

/// What the domain makes of a delivery's `event`: one of the events DCS emits, or anything
/// else (acknowledged and ignored, including the `processing.*` types DCS declares but never
/// sends). The names are [`DCS_EVENTS`]'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    BookCreated,
    BookUpdated,
    BookDeleted,
    PublisherCreated,
    PublisherUpdated,
    PublisherDeleted,
    Unknown(String),
}

impl EventKind {
    /// The DCS client's type of a known event (`None` for unknown ones).
    pub fn event_type(&self) -> Option<&'static WebhookEventType> {
        let index = match self {
            Self::BookCreated => 0,
            Self::BookUpdated => 1,
            Self::BookDeleted => 2,
            Self::PublisherCreated => 3,
            Self::PublisherUpdated => 4,
            Self::PublisherDeleted => 5,
            Self::Unknown(_) => return None,
        };
        Some(&DCS_EVENT_TYPES[index])
    }

    /// The DCS name of a known event (`None` for unknown ones, whose names are the sender's).
    pub fn known_name(&self) -> Option<&'static str> {
        self.event_type().map(WebhookEventType::as_str)
    }

    fn parse(name: &str) -> Self {
        match WebhookEventType::from(name) {
            WebhookEventType::BookCreated => Self::BookCreated,
            WebhookEventType::BookUpdated => Self::BookUpdated,
            WebhookEventType::BookDeleted => Self::BookDeleted,
            WebhookEventType::PublisherCreated => Self::PublisherCreated,
            WebhookEventType::PublisherUpdated => Self::PublisherUpdated,
            WebhookEventType::PublisherDeleted => Self::PublisherDeleted,
            _ => Self::Unknown(name.to_owned()),
        }
    }
}

/// A parsed delivery. The payload is a notification: full records are fetched from DCS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// The event name as sent (`book.created`, ...).
    pub name: String,
    pub kind: EventKind,
    /// The book or publisher id; `None` only for unknown events.
    pub entity_id: Option<i64>,
    pub timestamp: Option<String>,
}

#[derive(Deserialize)]
struct RawDelivery {
    event: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

impl WebhookEvent {
    /// Parses a delivery body: `event` and a `data` object, as every DCS delivery has (an
    /// unknown event type too); known events must carry an integer `data.id`.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        let raw: RawDelivery =
            serde_json::from_slice(body).map_err(|e| WebhookError::MalformedBody(e.to_string()))?;
        let Some(serde_json::Value::Object(data)) = raw.data else {
            return Err(WebhookError::MalformedBody(
                "data must be a JSON object".to_owned(),
            ));
        };
        let kind = EventKind::parse(&raw.event);
        let entity_id = data.get("id").and_then(serde_json::Value::as_i64);
        if entity_id.is_none() && !matches!(kind, EventKind::Unknown(_)) {
            return Err(WebhookError::MalformedBody(format!(
                "event {} has no integer data.id",
                raw.event
            )));
        }
        Ok(Self {
            name: raw.event,
            kind,
            entity_id,
            timestamp: raw.timestamp,
        })
    }

    /// What to drop from the cache so the next read sees the change.
    pub fn invalidation_plan(&self) -> Vec<Invalidation> {
        use Invalidation::Prefix;
        let Some(id) = self.entity_id else {
            return Vec::new();
        };
        match self.kind {
            // The record (and its cover and config) and every list that may show it. A created
            // book may sit in the negative cache as "not found", so it is dropped too.
            EventKind::BookCreated | EventKind::BookUpdated | EventKind::BookDeleted => {
                vec![Prefix(keys::book(id)), Prefix(keys::BOOK_LISTS.to_owned())]
            }
            // A new or restored publisher only changes the publisher list and its own record.
            EventKind::PublisherCreated => vec![
                Prefix(keys::publisher(id)),
                Prefix(keys::PUBLISHER_LISTS.to_owned()),
            ],
            // Books carry their publisher's name and storage paths are keyed by it, and the
            // payload does not say which books are the publisher's: drop every book entry.
            EventKind::PublisherUpdated | EventKind::PublisherDeleted => vec![
                Prefix(keys::publisher(id)),
                Prefix(keys::PUBLISHER_LISTS.to_owned()),
                Prefix(keys::BOOKS.to_owned()),
            ],
            EventKind::Unknown(_) => Vec::new(),
        }
    }
}

/// One step of an invalidation plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Every entry whose key is this prefix on whole segments.
    Prefix(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> serde_json::Value {
        let path = format!(
            "{}/../../testdata/dcs-samples/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    const SAMPLES: [&str; 8] = [
        "webhook-book-created",
        "webhook-book-created-id2",
        "webhook-book-updated",
        "webhook-book-deleted",
        "webhook-publisher-created",
        "webhook-publisher-created-id3",
        "webhook-publisher-updated",
        "webhook-publisher-deleted",
    ];

    fn recorded(name: &str) -> (Vec<u8>, String, String) {
        use base64::Engine;
        let s = sample(name);
        let body = base64::engine::general_purpose::STANDARD
            .decode(s["delivery"]["body_base64"].as_str().unwrap())
            .unwrap();
        let header = s["delivery"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "X-Webhook-Signature")
            .map(|h| h[1].as_str().unwrap().to_owned())
            .unwrap();
        let secret = s["signature_check"]["test_secret"]
            .as_str()
            .unwrap()
            .to_owned();
        (body, header, secret)
    }

    #[test]
    fn every_recorded_delivery_verifies_and_parses() {
        for name in SAMPLES {
            let (body, header, secret) = recorded(name);
            let verifier = SignatureVerifier::new(secret.into());
            assert_eq!(verifier.verify(Some(&header), &body), Ok(()), "{name}");
            assert_eq!(verifier.sign(&body), header, "{name}");
            let event = WebhookEvent::parse(&body).unwrap();
            assert_eq!(event.name, sample(name)["event"].as_str().unwrap());
            assert!(!matches!(event.kind, EventKind::Unknown(_)), "{name}");
            assert_eq!(event.kind.known_name(), Some(event.name.as_str()), "{name}");
            assert!(!event.invalidation_plan().is_empty(), "{name}");
        }
    }

    #[test]
    fn tampered_body_wrong_secret_or_bad_header_is_rejected() {
        let (body, header, secret) = recorded("webhook-book-created");
        let verifier = SignatureVerifier::new(secret.into());
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert_eq!(
            verifier.verify(Some(&header), &tampered),
            Err(WebhookError::InvalidSignature)
        );
        // Re-serialised JSON (same meaning, other bytes) must not verify: the HMAC is over bytes.
        let reserialised =
            serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&body).unwrap())
                .unwrap();
        assert_eq!(
            verifier.verify(Some(&header), &reserialised),
            Err(WebhookError::InvalidSignature)
        );
        let other = SignatureVerifier::new("another-secret-of-enough-length".into());
        assert_eq!(
            other.verify(Some(&header), &body),
            Err(WebhookError::InvalidSignature)
        );
        for bad in [
            "",
            "sha256=",
            "sha256=zz",
            "md5=abc",
            header.trim_start_matches("sha256="),
        ] {
            assert_eq!(
                verifier.verify(Some(bad), &body),
                Err(WebhookError::InvalidSignature),
                "{bad:?}"
            );
        }
        assert_eq!(
            verifier.verify(None, &body),
            Err(WebhookError::MissingSignature)
        );
    }

    #[test]
    fn digest_is_stable_for_identical_retries() {
        let s = sample("webhook-retry-sequence");
        let digests: Vec<String> = s["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| body_digest(a["delivery"]["body_utf8"].as_str().unwrap().as_bytes()))
            .collect();
        assert_eq!(digests.len(), 3);
        assert!(digests.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn malformed_bodies_are_errors_and_unknown_events_are_not() {
        for body in [
            &b"not json"[..],
            b"{}",
            b"{\"event\":\"book.created\",\"data\":{}}",
            // Whatever the event, `data` is an object.
            b"{\"event\":\"processing.completed\"}",
            b"{\"event\":\"processing.completed\",\"data\":5}",
            b"{\"event\":\"processing.completed\",\"data\":null}",
            b"{\"event\":\"book.updated\",\"data\":[{\"id\":1}]}",
        ] {
            assert!(matches!(
                WebhookEvent::parse(body),
                Err(WebhookError::MalformedBody(_))
            ));
        }
        let event = WebhookEvent::parse(br#"{"event":"processing.completed","data":{}}"#).unwrap();
        assert_eq!(
            event.kind,
            EventKind::Unknown("processing.completed".into())
        );
        assert!(event.invalidation_plan().is_empty());
    }

    fn plan(body: &str) -> Vec<String> {
        WebhookEvent::parse(body.as_bytes())
            .unwrap()
            .invalidation_plan()
            .into_iter()
            .map(|Invalidation::Prefix(p)| p)
            .collect()
    }

    #[test]
    fn plans_cover_records_lists_covers_and_configs() {
        for event in ["book.created", "book.updated", "book.deleted"] {
            let p = plan(&format!(r#"{{"event":"{event}","data":{{"id":1}}}}"#));
            assert_eq!(p, vec!["dcs:books:id:1", "dcs:books:list"], "{event}");
            // The book's config and cover live under its record's prefix.
            assert!(keys::book_config(1).starts_with(&format!("{}:", p[0])));
            assert!(keys::book_cover(1).starts_with(&format!("{}:", p[0])));
            assert!(
                keys::book_list_view(format_args!("publisher=1"))
                    .starts_with(&format!("{}:", p[1]))
            );
        }
        assert_eq!(
            plan(r#"{"event":"publisher.created","data":{"id":3}}"#),
            vec!["dcs:publishers:id:3", "dcs:publishers:list"]
        );
        for event in ["publisher.updated", "publisher.deleted"] {
            assert_eq!(
                plan(&format!(r#"{{"event":"{event}","data":{{"id":3}}}}"#)),
                vec!["dcs:publishers:id:3", "dcs:publishers:list", "dcs:books"],
                "{event}"
            );
        }
        assert!(keys::publisher_logo(3).starts_with("dcs:publishers:id:3:"));
    }
}
