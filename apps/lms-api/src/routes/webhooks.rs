//! `POST /api/v1/webhooks/dream-storage` (DCS deliveries) and
//! `POST /api/v1/admin/webhooks/register` (redo the DCS subscription now).

use actix_web::http::header;
use actix_web::{HttpRequest, post, web};
use domain::webhook_receiver::{MAX_BODY_BYTES, Receipt, ReceiveError};
use domain::webhook_registration::RegistrationOutcome;
use domain::webhooks::SIGNATURE_HEADER;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{AdminOnly, RequireRole};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// A DCS delivery, for the documentation only: the handler verifies the raw bytes and never
/// re-serialises them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "event": "book.updated",
    "timestamp": "2026-11-22T09:32:53.499233Z",
    "data": {"id": 1, "book_name": "FLOWDEMO", "book_title": "Flow Demo English 1",
             "publisher": "Dream Press", "language": "en", "category": "English",
             "status": "published"}
}))]
pub struct DcsWebhookDelivery {
    /// `book.created`, `book.updated`, `book.deleted`, `publisher.created`,
    /// `publisher.updated`, `publisher.deleted`; other types are acknowledged and ignored.
    pub event: String,
    /// When DCS emitted it (ISO 8601, microseconds, `Z`); DCS always sends it, and it is
    /// only logged.
    pub timestamp: Option<String>,
    /// The book or publisher, with at least an integer `id` for the known events; an object
    /// for every event (anything else is 400 `webhook_body_malformed`).
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// Receives a DCS webhook delivery and invalidates the cached content it concerns before
/// answering.
///
/// The signature is checked over the exact raw body before anything else. Retries of the same
/// bytes are acknowledged with the same `event_id` and `duplicate: true`; a delivery whose
/// processing failed is processed again when retried.
#[utoipa::path(
    tag = "webhooks",
    params(
        ("X-Webhook-Signature" = String, Header,
         description = "`sha256=` + lowercase hex HMAC-SHA256 of the raw body, keyed with \
                        DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET",
         example = "sha256=7b74c8c719acd87a0c71d4302f87ffec162d6dfc689c8735558b347746162052"),
    ),
    request_body(
        content = DcsWebhookDelivery,
        content_type = "application/json",
        description = "Compact JSON as DCS sends it, at most 1 MiB"
    ),
    responses(
        (status = 200, description = "Processed, ignored (unknown event type) or a duplicate", body = Receipt,
         example = json!({"status": "received", "event_id": "0193a5c2-7c1e-7d3a-9f5e-2b1c0d4e5f60", "outcome": "processed", "duplicate": false})),
        (status = 400, description = "Correctly signed but not a delivery (`webhook_body_malformed`)", body = ErrorBody),
        (status = 401, description = "Signature missing (`webhook_signature_missing`) or wrong (`webhook_signature_invalid`)", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `LMS_BODY_READ_TIMEOUT` (`request_timeout`); the connection is closed", body = ErrorBody),
        (status = 413, description = "Body larger than 1 MiB (`payload_too_large`)", body = ErrorBody),
        (status = 503, description = "Cache not invalidated on every instance (`cache_invalidation_incomplete`), an identical delivery still in progress (`webhook_in_progress`), or the database unreachable (`database_unavailable`); retry", body = ErrorBody),
        (status = 500, description = "The event log failed; retry", body = ErrorBody),
    )
)]
#[post("/webhooks/dream-storage")]
pub async fn dream_storage_webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<web::Json<Receipt>, ApiError> {
    let receiver = &state.webhooks;
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(receiver.refuse_oversize().into());
    }
    let body = match state
        .guards
        .read_body(payload, MAX_BODY_BYTES, "webhooks/dream-storage")
        .await?
    {
        Some(Ok(body)) => body,
        Some(Err(_)) => return Err(ReceiveError::Unreadable.into()),
        None => return Err(receiver.refuse_oversize().into()),
    };
    // A header that is not visible ASCII cannot be a valid signature, but it was sent.
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .map(|value| value.to_str().unwrap_or_default());
    let receipt = receiver.receive(signature, &body).await?;
    Ok(web::Json(receipt))
}

/// Registers this LMS's webhook subscription with DCS now: creates it, or updates its secret,
/// activation and event filter, and answers what was done. The secret is never returned.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The subscription as it now is", body = RegistrationOutcome),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Another instance is registering (`webhook_registration_in_progress`)", body = ErrorBody),
        (status = 502, description = "DCS refused: credentials (`dcs_auth_failed`), API key only (`dcs_api_key_unsupported`), or an unexpected answer", body = ErrorBody),
        (status = 503, description = "DCS unreachable; see `Retry-After`", body = ErrorBody),
    )
)]
#[post("/admin/webhooks/register")]
pub async fn register_webhook(
    _admin: RequireRole<AdminOnly>,
    state: web::Data<AppState>,
) -> Result<web::Json<RegistrationOutcome>, ApiError> {
    let registrar = state.webhook_registrar("admin");
    // Its own task, so that a client hanging up cannot stop it between taking and releasing
    // the lease (which would block registration until the lease lapses).
    let outcome = tokio::spawn(async move { registrar.register().await })
        .await
        .map_err(ApiError::internal)??;
    tracing::info!(
        action = ?outcome.action,
        subscription_id = outcome.subscription_id,
        "DCS webhook subscription registered on request"
    );
    Ok(web::Json(outcome))
}
