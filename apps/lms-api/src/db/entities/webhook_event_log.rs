//! `webhook_event_logs`: one row per distinct DCS webhook delivery, deduplicated by the SHA-256
//! of the raw body (DCS retries resend identical bytes and carry no delivery id).

use sea_orm::entity::prelude::*;

/// Where an event is in its processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum WebhookEventStatus {
    /// Verified and stored; not processed yet.
    #[sea_orm(string_value = "received")]
    Received,
    /// Processed successfully (caches invalidated).
    #[sea_orm(string_value = "processed")]
    Processed,
    /// Processing failed; see `error`.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Valid but not relevant (an event type the LMS does not act on).
    #[sea_orm(string_value = "ignored")]
    Ignored,
}

/// One delivery.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_event_logs")]
pub struct Model {
    /// Event id, returned to DCS as `event_id`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `event` of the payload, e.g. `book.updated`.
    pub event_type: String,
    /// Lowercase hex SHA-256 of the raw body; unique.
    #[sea_orm(unique)]
    pub body_sha256: String,
    /// The raw body as received.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// Processing state.
    pub status: WebhookEventStatus,
    /// Why processing failed, when it did.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// When the delivery arrived.
    pub received_at: DateTimeUtc,
    /// When processing finished (processed, failed or ignored).
    pub processed_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
