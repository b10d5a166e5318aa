//! The log of DCS webhook deliveries (`webhook_event_logs`), and the claim protocol that makes
//! their processing idempotent.
//!
//! DCS sends no delivery id and retries with identical bytes, so a delivery is identified by
//! the SHA-256 of its raw body (unique in the table). Whoever inserts the row first owns the
//! processing; later deliveries of the same bytes see the row:
//!
//! | row status | what a later delivery gets |
//! |---|---|
//! | `processed`, `ignored` | [`Claim::Done`]: acknowledge, do nothing |
//! | `received`, younger than the lease | [`Claim::InProgress`]: someone is processing it |
//! | `received`, older than the lease | [`Claim::Retry`]: the processor died; take it over |
//! | `failed` | [`Claim::Retry`]: process it again (that is why DCS retries) |
//!
//! Taking a row over is one conditional `UPDATE`, so of several concurrent retries exactly one
//! wins. A take-over stamps `received_at` with the time of the new claim; that value is the
//! claim's token, and finishing (`mark_*`) only updates the row while it still carries it, so a
//! slow processor whose claim was taken over cannot overwrite the new owner's outcome.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    TryInsertResult,
};
use uuid::Uuid;

use crate::clock::{Clock, SystemClock};
use crate::entities::webhook_event_log::{ActiveModel, Column, Entity, Model, WebhookEventStatus};

/// One row of `webhook_event_logs`.
pub type WebhookEventLog = Model;

/// Longest `event_type` the column holds.
pub const EVENT_TYPE_MAX_CHARS: usize = 64;

/// How many times a claim re-reads a row that changed under it before giving up. Each round
/// needs another writer to have changed the row in between, so this is only reached under
/// pathological contention.
const CLAIM_ROUNDS: usize = 4;

/// A delivery about to be logged.
#[derive(Debug, Clone, Copy)]
pub struct NewWebhookEvent<'a> {
    /// Lowercase hex SHA-256 of the raw body.
    pub body_sha256: &'a str,
    /// The `event` of the payload (cut to [`EVENT_TYPE_MAX_CHARS`]), or a marker when the body
    /// did not parse.
    pub event_type: &'a str,
    /// The raw body as text.
    pub payload: &'a str,
}

/// The outcome of [`WebhookEvents::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First delivery of these bytes: the row was created in `received` and the caller
    /// processes it.
    New(WebhookEventLog),
    /// A redelivery of an event whose processing failed or was abandoned: the row is back in
    /// `received` for the caller, who processes it again.
    Retry {
        /// The row as claimed.
        record: WebhookEventLog,
        /// `failed`, or `received` for an abandoned claim.
        previous_status: WebhookEventStatus,
        /// The error of the failed attempt.
        previous_error: Option<String>,
    },
    /// Already handled (`processed` or `ignored`); nothing to do.
    Done(WebhookEventLog),
    /// Another delivery holds a live claim on it.
    InProgress(WebhookEventLog),
}

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
pub enum WebhookEventsError {
    /// The database failed.
    #[error("webhook event log storage failed: {0}")]
    Database(#[from] DbErr),
    /// The claim lease does not fit a timestamp.
    #[error("claim lease {0:?} is out of range")]
    LeaseOutOfRange(Duration),
    /// The row kept changing while it was being claimed.
    #[error("the log row of this delivery kept changing while it was claimed")]
    Contended,
}

/// Repository over `webhook_event_logs`.
#[derive(Debug, Clone)]
pub struct WebhookEvents {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
}

impl WebhookEvents {
    /// The log, timed by the system clock.
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    /// The log, timed by `clock` (tests use a manual clock).
    pub fn with_clock(db: DatabaseConnection, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// Logs a delivery, or finds its earlier delivery and decides who processes it (see the
    /// module docs). A `received` row older than `lease` counts as abandoned.
    pub async fn claim(
        &self,
        event: &NewWebhookEvent<'_>,
        lease: Duration,
    ) -> Result<Claim, WebhookEventsError> {
        let lease = chrono::Duration::from_std(lease)
            .map_err(|_| WebhookEventsError::LeaseOutOfRange(lease))?;
        for _ in 0..CLAIM_ROUNDS {
            if let Some(created) = self.insert(event).await? {
                return Ok(Claim::New(created));
            }
            // The row may be deleted (retention) between the insert and this read; go round.
            let Some(existing) = self.find_by_digest(event.body_sha256).await? else {
                continue;
            };
            let now = self.now();
            let abandoned_before = now
                .checked_sub_signed(lease)
                .ok_or(WebhookEventsError::LeaseOutOfRange(Duration::MAX))?;
            match existing.status {
                WebhookEventStatus::Processed | WebhookEventStatus::Ignored => {
                    return Ok(Claim::Done(existing));
                }
                WebhookEventStatus::Received if existing.received_at > abandoned_before => {
                    return Ok(Claim::InProgress(existing));
                }
                WebhookEventStatus::Received | WebhookEventStatus::Failed => {
                    if let Some(record) = self
                        .take_over(&existing, event.event_type, now, abandoned_before)
                        .await?
                    {
                        return Ok(Claim::Retry {
                            record,
                            previous_status: existing.status,
                            previous_error: existing.error,
                        });
                    }
                    // Someone else changed it first; look again.
                }
            }
        }
        Err(WebhookEventsError::Contended)
    }

    /// Marks a claimed event processed. Returns `false` when the claim was taken over in the
    /// meantime (the row is then left to its new owner).
    pub async fn mark_processed(&self, claimed: &WebhookEventLog) -> Result<bool, DbErr> {
        self.finish(claimed, WebhookEventStatus::Processed, None)
            .await
    }

    /// Marks a claimed event ignored (valid, but nothing the LMS acts on).
    pub async fn mark_ignored(&self, claimed: &WebhookEventLog) -> Result<bool, DbErr> {
        self.finish(claimed, WebhookEventStatus::Ignored, None)
            .await
    }

    /// Marks a claimed event failed with `error`; the next delivery of the same bytes
    /// processes it again.
    pub async fn mark_failed(&self, claimed: &WebhookEventLog, error: &str) -> Result<bool, DbErr> {
        self.finish(claimed, WebhookEventStatus::Failed, Some(error))
            .await
    }

    /// The event with this id.
    pub async fn find(&self, id: Uuid) -> Result<Option<WebhookEventLog>, DbErr> {
        Entity::find_by_id(id).one(&self.db).await
    }

    /// The event whose raw body has this SHA-256 (lowercase hex).
    pub async fn find_by_digest(
        &self,
        body_sha256: &str,
    ) -> Result<Option<WebhookEventLog>, DbErr> {
        Entity::find()
            .filter(Column::BodySha256.eq(body_sha256))
            .one(&self.db)
            .await
    }

    /// How many events are in the given status.
    pub async fn count_with_status(&self, status: WebhookEventStatus) -> Result<u64, DbErr> {
        Entity::find()
            .filter(Column::Status.eq(status))
            .count(&self.db)
            .await
    }

    /// Inserts the row in `received` unless one with the same digest exists.
    async fn insert(&self, event: &NewWebhookEvent<'_>) -> Result<Option<WebhookEventLog>, DbErr> {
        let record = Model {
            // Time-ordered ids keep the primary key index append-mostly.
            id: Uuid::now_v7(),
            event_type: event.event_type.to_owned(),
            body_sha256: event.body_sha256.to_owned(),
            payload: event.payload.to_owned(),
            status: WebhookEventStatus::Received,
            error: None,
            received_at: self.now(),
            processed_at: None,
        };
        let row = ActiveModel {
            id: ActiveValue::Set(record.id),
            event_type: ActiveValue::Set(record.event_type.clone()),
            body_sha256: ActiveValue::Set(record.body_sha256.clone()),
            payload: ActiveValue::Set(record.payload.clone()),
            status: ActiveValue::Set(record.status),
            error: ActiveValue::Set(None),
            received_at: ActiveValue::Set(record.received_at),
            processed_at: ActiveValue::Set(None),
        };
        // The unique digest decides between concurrent deliveries: the losers insert nothing.
        let inserted = Entity::insert(row)
            .on_conflict_do_nothing_on([Column::BodySha256])
            .exec_without_returning(&self.db)
            .await?;
        Ok(match inserted {
            TryInsertResult::Inserted(rows) if rows > 0 => Some(record),
            _ => None,
        })
    }

    /// Puts a `failed` or abandoned row back into `received` for a new claim, if it is still in
    /// the state it was read in.
    async fn take_over(
        &self,
        existing: &WebhookEventLog,
        event_type: &str,
        now: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<Option<WebhookEventLog>, DbErr> {
        let still_claimable = match existing.status {
            WebhookEventStatus::Failed => Column::Status.eq(WebhookEventStatus::Failed),
            // Compared with the cut-off, not the value read: a concurrent take-over stamps a
            // fresh `received_at`, after which this condition no longer holds.
            _ => Column::Status
                .eq(WebhookEventStatus::Received)
                .and(Column::ReceivedAt.lte(abandoned_before)),
        };
        let result = Entity::update_many()
            .col_expr(Column::Status, Expr::value(WebhookEventStatus::Received))
            .col_expr(Column::EventType, Expr::value(event_type))
            .col_expr(Column::Error, Expr::value(Option::<String>::None))
            .col_expr(Column::ReceivedAt, Expr::value(now))
            .col_expr(
                Column::ProcessedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(Column::Id.eq(existing.id))
            .filter(still_claimable)
            .exec(&self.db)
            .await?;
        if result.rows_affected == 0 {
            return Ok(None);
        }
        Ok(Some(Model {
            event_type: event_type.to_owned(),
            status: WebhookEventStatus::Received,
            error: None,
            received_at: now,
            processed_at: None,
            ..existing.clone()
        }))
    }

    async fn finish(
        &self,
        claimed: &WebhookEventLog,
        status: WebhookEventStatus,
        error: Option<&str>,
    ) -> Result<bool, DbErr> {
        let result = Entity::update_many()
            .col_expr(Column::Status, Expr::value(status))
            .col_expr(Column::Error, Expr::value(error.map(str::to_owned)))
            .col_expr(Column::ProcessedAt, Expr::value(Some(self.now())))
            .filter(Column::Id.eq(claimed.id))
            .filter(Column::Status.eq(WebhookEventStatus::Received))
            .filter(Column::ReceivedAt.eq(claimed.received_at))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Now, at the microsecond precision both databases store, so a claim token read back
    /// compares equal to the one written.
    fn now(&self) -> DateTime<Utc> {
        let now = self.clock.now();
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}
