//! The log of DCS webhook deliveries and the claim protocol that makes their processing
//! idempotent, over a [`DeliveryStore`].
//!
//! DCS sends no delivery id and retries with identical bytes, so a delivery is identified by
//! the SHA-256 of its raw body (unique in the store). Whoever inserts the record first owns the
//! processing; later deliveries of the same bytes see the record:
//!
//! | record status | what a later delivery gets |
//! |---|---|
//! | `processed`, `ignored` | [`Claim::Done`]: acknowledge, do nothing |
//! | `received`, younger than the lease | [`Claim::InProgress`]: someone is processing it |
//! | `received`, older than the lease | [`Claim::Retry`]: the processor died; take it over |
//! | `failed` | [`Claim::Retry`]: process it again (that is why DCS retries) |
//!
//! Taking a record over is one conditional update, so of several concurrent retries exactly
//! one wins. A take-over stamps `received_at` with the time of the new claim; that value is the
//! claim's token, and finishing (`mark_*`) only updates the record while it still carries it,
//! so a slow processor whose claim was taken over cannot overwrite the new owner's outcome.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use std::time::Duration;

use uuid::Uuid;

use crate::ports::{
    Clock, DeliveryRecord, DeliveryStatus, DeliveryStore, StoreError, SystemClock, now_micros,
};

/// Longest `event_type` stored.
pub const EVENT_TYPE_MAX_CHARS: usize = 64;

/// How many times a claim re-reads a record that changed under it before giving up. Each round
/// needs another writer to have changed the record in between, so this is only reached under
/// pathological contention.
const CLAIM_ROUNDS: usize = 4;

/// A delivery about to be logged.
#[derive(Debug, Clone, Copy)]
pub struct NewDelivery<'a> {
    /// Lowercase hex SHA-256 of the raw body.
    pub body_sha256: &'a str,
    /// The `event` of the payload (cut to [`EVENT_TYPE_MAX_CHARS`]), or a marker when the body
    /// did not parse.
    pub event_type: &'a str,
    /// The raw body as text.
    pub payload: &'a str,
}

/// The outcome of [`DeliveryLog::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First delivery of these bytes: the record was created in `received` and the caller
    /// processes it.
    New(DeliveryRecord),
    /// A redelivery of an event whose processing failed or was abandoned: the record is back
    /// in `received` for the caller, who processes it again.
    Retry {
        /// The record as claimed.
        record: DeliveryRecord,
        /// `failed`, or `received` for an abandoned claim.
        previous_status: DeliveryStatus,
        /// The error of the failed attempt.
        previous_error: Option<String>,
    },
    /// Already handled (`processed` or `ignored`); nothing to do.
    Done(DeliveryRecord),
    /// Another delivery holds a live claim on it.
    InProgress(DeliveryRecord),
}

/// Errors of the delivery log.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryLogError {
    /// The store failed.
    #[error("webhook event log storage failed: {0}")]
    Storage(#[from] StoreError),
    /// The claim lease does not fit a timestamp.
    #[error("claim lease {0:?} is out of range")]
    LeaseOutOfRange(Duration),
    /// The record kept changing while it was being claimed.
    #[error("the log row of this delivery kept changing while it was claimed")]
    Contended,
}

/// The delivery log. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeliveryLog {
    store: Arc<dyn DeliveryStore>,
    clock: Arc<dyn Clock>,
}

impl DeliveryLog {
    /// The log over `store`, timed by the system clock.
    pub fn new(store: impl DeliveryStore + 'static) -> Self {
        Self::with_clock(store, Arc::new(SystemClock))
    }

    /// The log over `store`, timed by `clock` (tests use a manual clock).
    pub fn with_clock(store: impl DeliveryStore + 'static, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: Arc::new(store),
            clock,
        }
    }

    /// Logs a delivery, or finds its earlier delivery and decides who processes it (see the
    /// module docs). A `received` record older than `lease` counts as abandoned.
    pub async fn claim(
        &self,
        event: &NewDelivery<'_>,
        lease: Duration,
    ) -> Result<Claim, DeliveryLogError> {
        let lease_span = chrono::Duration::from_std(lease)
            .map_err(|_| DeliveryLogError::LeaseOutOfRange(lease))?;
        for _ in 0..CLAIM_ROUNDS {
            let record = DeliveryRecord {
                // Time-ordered ids keep the primary key index append-mostly.
                id: Uuid::now_v7(),
                event_type: event.event_type.to_owned(),
                body_sha256: event.body_sha256.to_owned(),
                payload: event.payload.to_owned(),
                status: DeliveryStatus::Received,
                error: None,
                received_at: self.now(),
                processed_at: None,
            };
            // The unique digest decides between concurrent deliveries: the losers insert
            // nothing.
            if self.store.insert_if_absent(&record).await? {
                return Ok(Claim::New(record));
            }
            // The record may be deleted (retention) between the insert and this read; go round.
            let Some(existing) = self.store.find_by_digest(event.body_sha256).await? else {
                continue;
            };
            let now = self.now();
            let abandoned_before = now
                .checked_sub_signed(lease_span)
                .ok_or(DeliveryLogError::LeaseOutOfRange(Duration::MAX))?;
            match existing.status {
                DeliveryStatus::Processed | DeliveryStatus::Ignored => {
                    return Ok(Claim::Done(existing));
                }
                DeliveryStatus::Received if existing.received_at > abandoned_before => {
                    return Ok(Claim::InProgress(existing));
                }
                DeliveryStatus::Received | DeliveryStatus::Failed => {
                    // Compared with the cut-off, not the value read: a concurrent take-over
                    // stamps a fresh `received_at`, after which the condition no longer holds.
                    if self
                        .store
                        .take_over(existing.id, event.event_type, now, abandoned_before)
                        .await?
                    {
                        let record = DeliveryRecord {
                            event_type: event.event_type.to_owned(),
                            status: DeliveryStatus::Received,
                            error: None,
                            received_at: now,
                            processed_at: None,
                            ..existing.clone()
                        };
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
        Err(DeliveryLogError::Contended)
    }

    /// Marks a claimed delivery processed. Returns `false` when the claim was taken over in
    /// the meantime (the record is then left to its new owner).
    pub async fn mark_processed(&self, claimed: &DeliveryRecord) -> Result<bool, StoreError> {
        self.finish(claimed, DeliveryStatus::Processed, None).await
    }

    /// Marks a claimed delivery ignored (valid, but nothing the LMS acts on).
    pub async fn mark_ignored(&self, claimed: &DeliveryRecord) -> Result<bool, StoreError> {
        self.finish(claimed, DeliveryStatus::Ignored, None).await
    }

    /// Marks a claimed delivery failed with `error`; the next delivery of the same bytes
    /// processes it again.
    pub async fn mark_failed(
        &self,
        claimed: &DeliveryRecord,
        error: &str,
    ) -> Result<bool, StoreError> {
        self.finish(claimed, DeliveryStatus::Failed, Some(error))
            .await
    }

    /// The delivery with this id.
    pub async fn find(&self, id: Uuid) -> Result<Option<DeliveryRecord>, StoreError> {
        self.store.find(id).await
    }

    /// The delivery whose raw body has this SHA-256 (lowercase hex).
    pub async fn find_by_digest(
        &self,
        body_sha256: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        self.store.find_by_digest(body_sha256).await
    }

    /// How many deliveries are in the given status.
    pub async fn count_with_status(&self, status: DeliveryStatus) -> Result<u64, StoreError> {
        self.store.count_with_status(status).await
    }

    /// Deletes the deliveries received more than `retention` ago; returns how many went. A
    /// pruned delivery that DCS sends again is simply processed again (invalidation is
    /// idempotent), so the retention only needs to outlast DCS's retries.
    pub async fn prune(&self, retention: std::time::Duration) -> Result<u64, StoreError> {
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = self
            .clock
            .now()
            .checked_sub_signed(retention)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        self.store.delete_received_before(cutoff).await
    }

    async fn finish(
        &self,
        claimed: &DeliveryRecord,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.store
            .finish(claimed.id, claimed.received_at, status, error, self.now())
            .await
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        now_micros(self.clock.as_ref())
    }
}
