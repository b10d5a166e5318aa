//! What the domain needs from outside, as small traits. Each has an in-memory implementation
//! in [`crate::memory`] (the domain's tests use those) and a conformance suite in
//! `crate::conformance` (feature `testing`) that every implementation passes; the app's
//! database adapters implement them over sea-orm.
//!
//! | port | what for | adapters |
//! |---|---|---|
//! | [`Clock`] | lease and claim expiry | [`SystemClock`], [`crate::memory::ManualClock`] |
//! | [`DeliveryStore`] | the webhook delivery log | memory, SQL (`webhook_event_logs`) |
//! | [`LeaseStore`] | named expiring leases (one instance does a task) | memory, SQL (`leader_locks`) |
//! | [`SubscriptionApi`] | DCS's webhook subscriptions | [`DcsSubscriptions`] over `dcs_client::DcsApi`, memory |
//! | [`CacheInvalidator`] | applying an invalidation plan | [`crate::catalog::Catalog`], memory |
//! | [`DeliveryObserver`] | counting webhook deliveries | [`NoObserver`], the app's Prometheus counter |
//! | [`MaterialRepository`] | teacher materials and quotas | memory, SQL (`teacher_materials`, `teacher_storage_quotas`) |
//! | [`VirusScanner`] | scanning uploads as they stream | [`crate::materials::ClamdScanner`] over clamd, memory |
//!
//! The catalog's ports are `dcs_client::DcsApi` and `cache::Cache` themselves.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use cache::CacheError;
use chrono::{DateTime, Utc};
use dcs_client::{
    DcsApi, DcsError, WebhookSubscription, WebhookSubscriptionCreate, WebhookSubscriptionUpdate,
};
use uuid::Uuid;

use crate::materials::{MaterialChanges, MaterialPage, MaterialQuery, MaterialRecord, Quota};
use crate::webhooks::Invalidation;

// ----- time -----------------------------------------------------------------------------------

/// A source of the current time.
pub trait Clock: Send + Sync + Debug {
    /// The current instant in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Now, at the microsecond precision both databases store, so values read back compare equal
/// to the ones written.
pub fn now_micros(clock: &dyn Clock) -> DateTime<Utc> {
    let now = clock.now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

// ----- storage errors -------------------------------------------------------------------------

/// A store failed (database down, constraint the adapter did not expect, ...). The message is
/// for logs. [`StoreError::unavailable`] marks a failure to reach the store at all (no
/// connection within the pool's timeout, a connection lost mid-query): clients get a 503 with
/// `Retry-After` for those, and a 500 for the rest.
#[derive(Debug)]
pub struct StoreError {
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
    unavailable: bool,
}

/// Transparent: the adapter's message and its source.
impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl StoreError {
    /// Wraps an adapter's error.
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Self {
            source: error.into(),
            unavailable: false,
        }
    }

    /// Wraps an adapter's error that means the store cannot be reached right now.
    pub fn unavailable(
        error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            source: error.into(),
            unavailable: true,
        }
    }

    /// Whether the store could not be reached (a retry later may succeed).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// The adapter's error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.source.as_ref()
    }
}

// ----- webhook delivery log -------------------------------------------------------------------

/// Where a delivery is in its processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Verified and stored; not processed yet (or being processed).
    Received,
    /// Processed successfully (caches invalidated).
    Processed,
    /// Processing failed; see `error`.
    Failed,
    /// Valid but not relevant (an event type the LMS does not act on).
    Ignored,
}

/// One logged delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Event id, returned to DCS as `event_id` (a UUIDv7).
    pub id: Uuid,
    /// `event` of the payload, e.g. `book.updated`.
    pub event_type: String,
    /// Lowercase hex SHA-256 of the raw body; unique.
    pub body_sha256: String,
    /// The raw body as text.
    pub payload: String,
    /// Processing state.
    pub status: DeliveryStatus,
    /// Why processing failed, when it did.
    pub error: Option<String>,
    /// When the delivery (or the current claim on it) arrived: the claim's token.
    pub received_at: DateTime<Utc>,
    /// When processing finished.
    pub processed_at: Option<DateTime<Utc>>,
}

/// The rows of delivered webhooks. Every write is conditional, so that of concurrent writers
/// exactly one wins; the claim protocol built on these lives in
/// [`crate::webhook_log::DeliveryLog`].
#[async_trait]
pub trait DeliveryStore: Send + Sync + Debug {
    /// Inserts `record` unless a record with the same `body_sha256` exists. `true` when
    /// inserted.
    async fn insert_if_absent(&self, record: &DeliveryRecord) -> Result<bool, StoreError>;

    /// The record with this id.
    async fn find(&self, id: Uuid) -> Result<Option<DeliveryRecord>, StoreError>;

    /// The record with this body digest.
    async fn find_by_digest(&self, body_sha256: &str)
    -> Result<Option<DeliveryRecord>, StoreError>;

    /// Puts record `id` back into `received` (new `event_type`, no error, `received_at = now`,
    /// no `processed_at`) if it is still claimable: `failed`, or `received` with
    /// `received_at <= abandoned_before`. `true` when it changed.
    async fn take_over(
        &self,
        id: Uuid,
        event_type: &str,
        now: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Sets `status`, `error` and `processed_at = now` on record `id` if it is still
    /// `received` with `received_at == claim_token`. `true` when it changed.
    async fn finish(
        &self,
        id: Uuid,
        claim_token: DateTime<Utc>,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// How many records are in `status`.
    async fn count_with_status(&self, status: DeliveryStatus) -> Result<u64, StoreError>;

    /// Deletes every record received before `cutoff` (whatever its status: a claim that old
    /// was abandoned long ago). Returns how many went.
    async fn delete_received_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
}

// ----- leases ---------------------------------------------------------------------------------

/// A lease held by someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What the lease is for.
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// Named expiring leases. The rules over it (TTLs, the clock) live in
/// [`crate::leases::LeaderLocks`].
#[async_trait]
pub trait LeaseStore: Send + Sync + Debug {
    /// Stores `lease` when no lease of that name exists, or when the existing one has
    /// `expires_at <= now` or the same holder; one atomic step. `true` when stored.
    async fn acquire(&self, lease: &Lease, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Removes the lease `name` if `holder` holds it. `true` when removed.
    async fn release(&self, name: &str, holder: &str) -> Result<bool, StoreError>;

    /// The lease `name` if it expires after `now`.
    async fn current(&self, name: &str, now: DateTime<Utc>) -> Result<Option<Lease>, StoreError>;
}

// ----- DCS webhook subscriptions --------------------------------------------------------------

/// The part of the DCS API the registrar uses.
#[async_trait]
pub trait SubscriptionApi: Send + Sync {
    /// `GET /webhooks/`.
    async fn list_webhooks(&self) -> Result<Vec<WebhookSubscription>, DcsError>;
    /// `POST /webhooks/`.
    async fn create_webhook(
        &self,
        subscription: &WebhookSubscriptionCreate,
    ) -> Result<WebhookSubscription, DcsError>;
    /// `PUT /webhooks/{id}`.
    async fn update_webhook(
        &self,
        id: i64,
        update: &WebhookSubscriptionUpdate,
    ) -> Result<WebhookSubscription, DcsError>;
    /// `DELETE /webhooks/{id}`.
    async fn delete_webhook(&self, id: i64) -> Result<(), DcsError>;
}

/// [`SubscriptionApi`] over a DCS client.
#[derive(Clone)]
pub struct DcsSubscriptions(pub Arc<dyn DcsApi>);

impl Debug for DcsSubscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcsSubscriptions").finish_non_exhaustive()
    }
}

#[async_trait]
impl SubscriptionApi for DcsSubscriptions {
    async fn list_webhooks(&self) -> Result<Vec<WebhookSubscription>, DcsError> {
        self.0.list_webhooks().await
    }

    async fn create_webhook(
        &self,
        subscription: &WebhookSubscriptionCreate,
    ) -> Result<WebhookSubscription, DcsError> {
        self.0.create_webhook(subscription).await
    }

    async fn update_webhook(
        &self,
        id: i64,
        update: &WebhookSubscriptionUpdate,
    ) -> Result<WebhookSubscription, DcsError> {
        self.0.update_webhook(id, update).await
    }

    async fn delete_webhook(&self, id: i64) -> Result<(), DcsError> {
        self.0.delete_webhook(id).await
    }
}

// ----- cache invalidation ---------------------------------------------------------------------

/// Applies invalidation plans to the cache.
#[async_trait]
pub trait CacheInvalidator: Send + Sync {
    /// Drops what `plan` names; returns how many entries went. This instance's entries are
    /// always dropped; an error means other instances (or the shared tier) may not have been.
    async fn invalidate(&self, plan: &[Invalidation]) -> Result<u64, CacheError>;
}

// ----- observing deliveries -------------------------------------------------------------------

/// How a delivery ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// Larger than the body limit.
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

/// Told about every delivery once, with a bounded `event` label (one of the six DCS events,
/// `unknown`, `malformed` or `unverified`).
pub trait DeliveryObserver: Send + Sync {
    /// Counts one delivery.
    fn record(&self, event: &str, outcome: DeliveryOutcome);
}

/// Observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl DeliveryObserver for NoObserver {
    fn record(&self, _event: &str, _outcome: DeliveryOutcome) {}
}

// ----- following events -----------------------------------------------------------------------

/// Told about each delivery after the cache was invalidated, to bring what lives outside the
/// cache up to date (a book's activities). A failure that a retry can fix (DCS or the
/// database down) is an `Err`: the delivery is then logged `failed` and answered 503, so DCS
/// sends it again. Failures no retry fixes (a broken config) are the follower's to log.
#[async_trait]
pub trait EventFollower: Send + Sync {
    async fn follow(&self, event: &crate::webhooks::WebhookEvent) -> Result<(), FollowUpError>;
}

/// Why a follow-up should be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FollowUpError(pub String);

// ----- teacher materials ----------------------------------------------------------------------

/// Teacher materials and quotas. Every call is scoped to one teacher: a material of another
/// teacher is as absent as one that never existed.
///
/// Quota arithmetic is the adapter's to make atomic: [`reserve`](Self::reserve) must never
/// let concurrent callers (in this process or another) take usage over the quota, and
/// [`insert`](Self::insert) / [`delete`](Self::delete) change rows and usage together or not
/// at all, so usage always equals the sizes of stored files plus reservations in flight.
#[async_trait]
pub trait MaterialRepository: Send + Sync + Debug {
    /// The teacher's quota. A teacher without a quota row has `default_quota` and nothing used
    /// (nothing is written).
    async fn quota(&self, teacher: Uuid, default_quota: u64) -> Result<Quota, StoreError>;

    /// Adds `bytes` to the teacher's usage if the result stays within the quota, creating the
    /// row with `default_quota` first when there is none. `Some(quota after)` when reserved,
    /// `None` (and nothing changed) when it would not fit.
    async fn reserve(
        &self,
        teacher: Uuid,
        bytes: u64,
        default_quota: u64,
    ) -> Result<Option<Quota>, StoreError>;

    /// Gives back `bytes` of an earlier reservation (usage never goes below zero).
    async fn release(&self, teacher: Uuid, bytes: u64) -> Result<(), StoreError>;

    /// Inserts `record` and gives back `unused_reservation` bytes, in one transaction. A file's
    /// `file_size` is already counted by the reservations that preceded it. Returns the
    /// teacher's quota as that transaction left it (`None` when the teacher has no quota row,
    /// which only a material without a file can meet), so that an upload's answer does not
    /// depend on a second read that could fail after the material is stored.
    async fn insert(
        &self,
        record: &MaterialRecord,
        unused_reservation: u64,
    ) -> Result<Option<Quota>, StoreError>;

    /// The teacher's material `id`.
    async fn get(&self, teacher: Uuid, id: Uuid) -> Result<Option<MaterialRecord>, StoreError>;

    /// The teacher's materials, newest first (`created_at`, then `id`, descending).
    async fn list(&self, teacher: Uuid, query: &MaterialQuery) -> Result<MaterialPage, StoreError>;

    /// Applies `changes` to the teacher's material `id`; `None` when there is none.
    async fn update(
        &self,
        teacher: Uuid,
        id: Uuid,
        changes: &MaterialChanges,
    ) -> Result<Option<MaterialRecord>, StoreError>;

    /// Deletes the teacher's material `id` and gives back its `file_size`, in one transaction.
    /// `None` when there is none.
    async fn delete(&self, teacher: Uuid, id: Uuid) -> Result<Option<MaterialRecord>, StoreError>;

    /// Sets the teacher's quota (creating the row; usage is kept even when above it).
    async fn set_quota(&self, teacher: Uuid, quota_bytes: u64) -> Result<Quota, StoreError>;
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanVerdict {
    Clean,
    /// The scanner's name for what it found.
    Infected {
        signature: String,
    },
}

/// The scanner could not give a verdict (unreachable, timed out, refused the stream). The
/// message is for logs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScanError(pub String);

/// Scans uploads while they stream: one [`ScanSession`] per upload, fed the same chunks that
/// go to storage, with the verdict at the end.
#[async_trait]
pub trait VirusScanner: Send + Sync + Debug {
    /// Opens a scan of one stream.
    async fn start(&self) -> Result<Box<dyn ScanSession>, ScanError>;

    /// The scanner answers (for `/ready`).
    async fn ready(&self) -> Result<(), ScanError>;
}

/// One stream being scanned.
#[async_trait]
pub trait ScanSession: Send {
    /// The next bytes of the stream.
    async fn feed(&mut self, chunk: &[u8]) -> Result<(), ScanError>;

    /// The end of the stream: the verdict.
    async fn finish(self: Box<Self>) -> Result<ScanVerdict, ScanError>;
}
