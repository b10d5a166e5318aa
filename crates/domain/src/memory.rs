//! In-memory implementations of the [ports](crate::ports): the domain's tests run on them, and
//! so can a single-process tool. Each passes the same conformance suite as the database
//! adapters (`crate::conformance`, feature `testing`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cache::{BackendError, CacheError};
use chrono::{DateTime, Utc};
use dcs_client::{
    DcsError, WebhookSubscription, WebhookSubscriptionCreate, WebhookSubscriptionUpdate,
};
use uuid::Uuid;

use crate::materials::{MaterialChanges, MaterialPage, MaterialQuery, MaterialRecord, Quota};
use crate::ports::{
    CacheInvalidator, Clock, DeliveryObserver, DeliveryOutcome, DeliveryRecord, DeliveryStatus,
    DeliveryStore, Lease, LeaseStore, MaterialRepository, ScanError, ScanSession, ScanVerdict,
    StoreError, SubscriptionApi, VirusScanner,
};
use crate::webhooks::Invalidation;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A clock that stands still until moved. Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    /// A clock showing `now`, as a shareable [`Clock`].
    pub fn at(now: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Arc::new(Mutex::new(now))))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *lock(&self.0) = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.0)
    }
}

/// A [`DeliveryStore`] in memory. Clones share the records.
#[derive(Debug, Clone, Default)]
pub struct MemoryDeliveryStore(Arc<Mutex<HashMap<Uuid, DeliveryRecord>>>);

impl MemoryDeliveryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl DeliveryStore for MemoryDeliveryStore {
    async fn insert_if_absent(&self, record: &DeliveryRecord) -> Result<bool, StoreError> {
        let mut records = lock(&self.0);
        if records
            .values()
            .any(|existing| existing.body_sha256 == record.body_sha256)
        {
            return Ok(false);
        }
        records.insert(record.id, record.clone());
        Ok(true)
    }

    async fn find(&self, id: Uuid) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(lock(&self.0).get(&id).cloned())
    }

    async fn find_by_digest(
        &self,
        body_sha256: &str,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(lock(&self.0)
            .values()
            .find(|record| record.body_sha256 == body_sha256)
            .cloned())
    }

    async fn take_over(
        &self,
        id: Uuid,
        event_type: &str,
        now: DateTime<Utc>,
        abandoned_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut records = lock(&self.0);
        let Some(record) = records.get_mut(&id) else {
            return Ok(false);
        };
        let claimable = match record.status {
            DeliveryStatus::Failed => true,
            DeliveryStatus::Received => record.received_at <= abandoned_before,
            DeliveryStatus::Processed | DeliveryStatus::Ignored => false,
        };
        if !claimable {
            return Ok(false);
        }
        record.status = DeliveryStatus::Received;
        record.event_type = event_type.to_owned();
        record.error = None;
        record.received_at = now;
        record.processed_at = None;
        Ok(true)
    }

    async fn finish(
        &self,
        id: Uuid,
        claim_token: DateTime<Utc>,
        status: DeliveryStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut records = lock(&self.0);
        let Some(record) = records.get_mut(&id) else {
            return Ok(false);
        };
        if record.status != DeliveryStatus::Received || record.received_at != claim_token {
            return Ok(false);
        }
        record.status = status;
        record.error = error.map(str::to_owned);
        record.processed_at = Some(now);
        Ok(true)
    }

    async fn count_with_status(&self, status: DeliveryStatus) -> Result<u64, StoreError> {
        Ok(lock(&self.0)
            .values()
            .filter(|record| record.status == status)
            .count() as u64)
    }

    async fn delete_received_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut records = lock(&self.0);
        let before = records.len();
        records.retain(|_, record| record.received_at >= cutoff);
        Ok((before - records.len()) as u64)
    }
}

/// A [`LeaseStore`] in memory. Clones share the leases.
#[derive(Debug, Clone, Default)]
pub struct MemoryLeaseStore(Arc<Mutex<HashMap<String, Lease>>>);

impl MemoryLeaseStore {
    /// No leases.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl LeaseStore for MemoryLeaseStore {
    async fn acquire(&self, lease: &Lease, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut leases = lock(&self.0);
        let free = leases
            .get(&lease.name)
            .is_none_or(|held| held.expires_at <= now || held.holder == lease.holder);
        if free {
            leases.insert(lease.name.clone(), lease.clone());
        }
        Ok(free)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let mut leases = lock(&self.0);
        if leases.get(name).is_some_and(|held| held.holder == holder) {
            leases.remove(name);
            return Ok(true);
        }
        Ok(false)
    }

    async fn current(&self, name: &str, now: DateTime<Utc>) -> Result<Option<Lease>, StoreError> {
        Ok(lock(&self.0)
            .get(name)
            .filter(|held| held.expires_at > now)
            .cloned())
    }
}

/// DCS's webhook subscriptions in memory, with a switch that makes every call fail.
#[derive(Clone, Default)]
pub struct MemorySubscriptions {
    state: Arc<Mutex<SubscriptionsState>>,
}

#[derive(Default)]
struct SubscriptionsState {
    subscriptions: Vec<WebhookSubscription>,
    next_id: i64,
    failure: Option<DcsError>,
    calls: Vec<String>,
}

impl fmt::Debug for MemorySubscriptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySubscriptions")
            .finish_non_exhaustive()
    }
}

impl MemorySubscriptions {
    /// No subscriptions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscription as if created earlier; returns its id.
    pub fn seed(&self, create: &WebhookSubscriptionCreate) -> i64 {
        let mut state = lock(&self.state);
        Self::create_in(&mut state, create).id
    }

    /// The subscriptions as DCS holds them.
    pub fn all(&self) -> Vec<WebhookSubscription> {
        lock(&self.state).subscriptions.clone()
    }

    /// Every call from now on fails with `error` (`None`: calls work again).
    pub fn fail_with(&self, error: Option<DcsError>) {
        lock(&self.state).failure = error;
    }

    /// The calls made so far (`list`, `create`, `update {id}`, `delete {id}`).
    pub fn calls(&self) -> Vec<String> {
        lock(&self.state).calls.clone()
    }

    fn create_in(
        state: &mut SubscriptionsState,
        create: &WebhookSubscriptionCreate,
    ) -> WebhookSubscription {
        state.next_id += 1;
        let now = Utc::now();
        let subscription = WebhookSubscription {
            url: create.url.clone(),
            secret: create.secret.clone(),
            description: create.description.clone(),
            is_active: create.is_active,
            event_types: create.event_types.clone(),
            id: state.next_id,
            created_at: now,
            updated_at: now,
        };
        state.subscriptions.push(subscription.clone());
        subscription
    }

    fn call(
        &self,
        name: String,
    ) -> Result<std::sync::MutexGuard<'_, SubscriptionsState>, DcsError> {
        let mut state = lock(&self.state);
        state.calls.push(name);
        match &state.failure {
            Some(error) => Err(error.clone()),
            None => Ok(state),
        }
    }
}

#[async_trait]
impl SubscriptionApi for MemorySubscriptions {
    async fn list_webhooks(&self) -> Result<Vec<WebhookSubscription>, DcsError> {
        Ok(self.call("list".into())?.subscriptions.clone())
    }

    async fn create_webhook(
        &self,
        subscription: &WebhookSubscriptionCreate,
    ) -> Result<WebhookSubscription, DcsError> {
        let mut state = self.call("create".into())?;
        Ok(Self::create_in(&mut state, subscription))
    }

    async fn update_webhook(
        &self,
        id: i64,
        update: &WebhookSubscriptionUpdate,
    ) -> Result<WebhookSubscription, DcsError> {
        let mut state = self.call(format!("update {id}"))?;
        let Some(subscription) = state.subscriptions.iter_mut().find(|s| s.id == id) else {
            return Err(DcsError::NotFound {
                detail: "Webhook not found".into(),
            });
        };
        if let Some(url) = &update.url {
            subscription.url = url.clone();
        }
        if let Some(secret) = &update.secret {
            subscription.secret = secret.clone();
        }
        if let Some(description) = &update.description {
            subscription.description = Some(description.clone());
        }
        if let Some(is_active) = update.is_active {
            subscription.is_active = is_active;
        }
        if let Some(event_types) = &update.event_types {
            subscription.event_types = Some(event_types.clone());
        }
        subscription.updated_at = Utc::now();
        Ok(subscription.clone())
    }

    async fn delete_webhook(&self, id: i64) -> Result<(), DcsError> {
        let mut state = self.call(format!("delete {id}"))?;
        let before = state.subscriptions.len();
        state.subscriptions.retain(|s| s.id != id);
        if state.subscriptions.len() == before {
            return Err(DcsError::NotFound {
                detail: "Webhook not found".into(),
            });
        }
        Ok(())
    }
}

/// A [`CacheInvalidator`] that records the plans it is given and can be told to report that
/// other instances were not reached.
#[derive(Debug, Clone, Default)]
pub struct MemoryInvalidator {
    state: Arc<Mutex<(Vec<Vec<Invalidation>>, bool)>>,
}

impl MemoryInvalidator {
    /// Succeeds until told otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, every invalidation reports the shared tier unreachable (or stops doing so).
    pub fn set_failing(&self, failing: bool) {
        lock(&self.state).1 = failing;
    }

    /// The plans applied so far.
    pub fn plans(&self) -> Vec<Vec<Invalidation>> {
        lock(&self.state).0.clone()
    }
}

#[async_trait]
impl CacheInvalidator for MemoryInvalidator {
    async fn invalidate(&self, plan: &[Invalidation]) -> Result<u64, CacheError> {
        let mut state = lock(&self.state);
        state.0.push(plan.to_vec());
        if state.1 {
            return Err(CacheError::Bus(BackendError::new(
                "memory",
                "publish",
                "shared tier unreachable",
            )));
        }
        Ok(plan.len() as u64)
    }
}

/// A [`DeliveryObserver`] that counts in memory.
#[derive(Debug, Clone, Default)]
pub struct CountingObserver(Arc<Mutex<HashMap<(String, DeliveryOutcome), u64>>>);

impl CountingObserver {
    /// Nothing counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deliveries counted with these labels.
    pub fn count(&self, event: &str, outcome: DeliveryOutcome) -> u64 {
        lock(&self.0)
            .get(&(event.to_owned(), outcome))
            .copied()
            .unwrap_or(0)
    }
}

impl DeliveryObserver for CountingObserver {
    fn record(&self, event: &str, outcome: DeliveryOutcome) {
        *lock(&self.0)
            .entry((event.to_owned(), outcome))
            .or_insert(0) += 1;
    }
}

// ----- teacher materials ----------------------------------------------------------------------

#[derive(Debug, Default)]
struct MaterialTables {
    materials: HashMap<Uuid, MaterialRecord>,
    /// teacher -> (used, quota)
    quotas: HashMap<Uuid, Quota>,
    /// Fail the next `insert` (tests of the "database fails after the upload" path).
    fail_next_insert: bool,
    /// Fail every `quota` read (tests of answers that must not need one).
    fail_quota_reads: bool,
    /// Hold back the answers of `reserve` and `insert` (tests of cancelled requests).
    held_answers: Option<HeldAnswers>,
}

#[derive(Debug, Clone)]
struct HeldAnswers {
    open: tokio::sync::watch::Receiver<bool>,
    waiting: Arc<AtomicUsize>,
}

impl HeldAnswers {
    async fn wait(mut self) {
        /// Counts a waiting call until it answers or is dropped.
        struct Waiting(Arc<AtomicUsize>);
        impl Drop for Waiting {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(self.waiting.clone());
        let _ = self.open.wait_for(|open| *open).await;
    }
}

/// Opens the answers held back by [`MemoryMaterials::hold_answers`].
#[derive(Debug)]
pub struct AnswerGate {
    open: tokio::sync::watch::Sender<bool>,
    waiting: Arc<AtomicUsize>,
}

impl AnswerGate {
    /// How many calls have made their change and wait to answer.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Lets every held call answer, and later ones answer at once.
    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

/// A [`MaterialRepository`] in memory; one lock makes every call atomic. Clones share the
/// tables.
#[derive(Debug, Clone, Default)]
pub struct MemoryMaterials(Arc<Mutex<MaterialTables>>);

impl MemoryMaterials {
    /// No materials, no quota rows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next [`MaterialRepository::insert`] fail (and change nothing).
    pub fn fail_next_insert(&self) {
        lock(&self.0).fail_next_insert = true;
    }

    /// Makes every later [`MaterialRepository::quota`] fail, as a database that went away
    /// would.
    pub fn fail_quota_reads(&self) {
        lock(&self.0).fail_quota_reads = true;
    }

    /// From now on `reserve` and `insert` make their change and then wait to answer until the
    /// returned gate is opened: a database whose answer is still on its way when the caller
    /// gives up (a client that disconnects cancels its request).
    pub fn hold_answers(&self) -> AnswerGate {
        let (open, receiver) = tokio::sync::watch::channel(false);
        let waiting = Arc::new(AtomicUsize::new(0));
        lock(&self.0).held_answers = Some(HeldAnswers {
            open: receiver,
            waiting: waiting.clone(),
        });
        AnswerGate { open, waiting }
    }

    fn held_answers(&self) -> Option<HeldAnswers> {
        lock(&self.0).held_answers.clone()
    }

    fn reserve_now(
        &self,
        teacher: Uuid,
        bytes: u64,
        default_quota: u64,
    ) -> Result<Option<Quota>, StoreError> {
        let mut tables = lock(&self.0);
        let quota = tables.quotas.get(&teacher).copied().unwrap_or(Quota {
            used_bytes: 0,
            quota_bytes: default_quota,
        });
        match quota.used_bytes.checked_add(bytes) {
            Some(used) if used <= quota.quota_bytes => {
                let taken = Quota {
                    used_bytes: used,
                    ..quota
                };
                tables.quotas.insert(teacher, taken);
                Ok(Some(taken))
            }
            _ => Ok(None),
        }
    }

    fn insert_now(
        &self,
        record: &MaterialRecord,
        unused_reservation: u64,
    ) -> Result<Option<Quota>, StoreError> {
        let mut tables = lock(&self.0);
        if std::mem::take(&mut tables.fail_next_insert) {
            return Err(StoreError::new("injected insert failure"));
        }
        if tables.materials.contains_key(&record.id) {
            return Err(StoreError::new(format!("material {} exists", record.id)));
        }
        tables.materials.insert(record.id, record.clone());
        let quota = tables.quotas.get_mut(&record.teacher_id).map(|quota| {
            quota.used_bytes = quota.used_bytes.saturating_sub(unused_reservation);
            *quota
        });
        Ok(quota)
    }

    /// Every stored record, any teacher.
    pub fn all(&self) -> Vec<MaterialRecord> {
        lock(&self.0).materials.values().cloned().collect()
    }
}

#[async_trait]
impl MaterialRepository for MemoryMaterials {
    async fn quota(&self, teacher: Uuid, default_quota: u64) -> Result<Quota, StoreError> {
        let tables = lock(&self.0);
        if tables.fail_quota_reads {
            return Err(StoreError::new("injected quota read failure"));
        }
        Ok(tables.quotas.get(&teacher).copied().unwrap_or(Quota {
            used_bytes: 0,
            quota_bytes: default_quota,
        }))
    }

    async fn reserve(
        &self,
        teacher: Uuid,
        bytes: u64,
        default_quota: u64,
    ) -> Result<Option<Quota>, StoreError> {
        let answer = self.reserve_now(teacher, bytes, default_quota);
        if let Some(held) = self.held_answers() {
            held.wait().await;
        }
        answer
    }

    async fn release(&self, teacher: Uuid, bytes: u64) -> Result<(), StoreError> {
        if let Some(quota) = lock(&self.0).quotas.get_mut(&teacher) {
            quota.used_bytes = quota.used_bytes.saturating_sub(bytes);
        }
        Ok(())
    }

    async fn insert(
        &self,
        record: &MaterialRecord,
        unused_reservation: u64,
    ) -> Result<Option<Quota>, StoreError> {
        let answer = self.insert_now(record, unused_reservation);
        if let Some(held) = self.held_answers() {
            held.wait().await;
        }
        answer
    }

    async fn get(&self, teacher: Uuid, id: Uuid) -> Result<Option<MaterialRecord>, StoreError> {
        Ok(lock(&self.0)
            .materials
            .get(&id)
            .filter(|record| record.teacher_id == teacher)
            .cloned())
    }

    async fn list(&self, teacher: Uuid, query: &MaterialQuery) -> Result<MaterialPage, StoreError> {
        let tables = lock(&self.0);
        let mut items: Vec<MaterialRecord> = tables
            .materials
            .values()
            .filter(|r| r.teacher_id == teacher && query.kind.is_none_or(|kind| r.kind == kind))
            .cloned()
            .collect();
        items.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
        let total = items.len() as u64;
        let items = items
            .into_iter()
            .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
            .collect();
        Ok(MaterialPage { items, total })
    }

    async fn update(
        &self,
        teacher: Uuid,
        id: Uuid,
        changes: &MaterialChanges,
    ) -> Result<Option<MaterialRecord>, StoreError> {
        let mut tables = lock(&self.0);
        let Some(record) = tables
            .materials
            .get_mut(&id)
            .filter(|record| record.teacher_id == teacher)
        else {
            return Ok(None);
        };
        if let Some(name) = &changes.name {
            record.name.clone_from(name);
        }
        if let Some(content) = &changes.text_content {
            record.text_content = Some(content.clone());
        }
        if let Some(url) = &changes.url {
            record.url = Some(url.clone());
        }
        record.updated_at = changes.updated_at;
        Ok(Some(record.clone()))
    }

    async fn delete(&self, teacher: Uuid, id: Uuid) -> Result<Option<MaterialRecord>, StoreError> {
        let mut tables = lock(&self.0);
        if tables
            .materials
            .get(&id)
            .is_none_or(|record| record.teacher_id != teacher)
        {
            return Ok(None);
        }
        let record = tables.materials.remove(&id);
        if let Some(size) = record.as_ref().and_then(|r| r.file_size)
            && let Some(quota) = tables.quotas.get_mut(&teacher)
        {
            quota.used_bytes = quota.used_bytes.saturating_sub(size);
        }
        Ok(record)
    }

    async fn set_quota(&self, teacher: Uuid, quota_bytes: u64) -> Result<Quota, StoreError> {
        let mut tables = lock(&self.0);
        let quota = tables.quotas.entry(teacher).or_insert(Quota {
            used_bytes: 0,
            quota_bytes,
        });
        quota.quota_bytes = quota_bytes;
        Ok(*quota)
    }
}

/// A [`VirusScanner`] that finds one byte pattern anywhere in a stream (also across chunk
/// boundaries), for tests without clamd. It can be switched to unreachable.
#[derive(Debug, Clone)]
pub struct PatternScanner {
    pattern: Arc<[u8]>,
    signature: Arc<str>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl PatternScanner {
    /// Reports `signature` for streams that contain `pattern`.
    pub fn new(pattern: &[u8], signature: &str) -> Self {
        Self {
            pattern: pattern.into(),
            signature: signature.into(),
            down: Arc::default(),
        }
    }

    /// Makes the scanner unreachable (`true`) or reachable again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn check_up(&self) -> Result<(), ScanError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(ScanError("scanner unreachable (test switch)".into()))
        } else {
            Ok(())
        }
    }
}

struct PatternSession {
    scanner: PatternScanner,
    /// The last `pattern.len() - 1` bytes seen, so a match across chunks is found.
    tail: Vec<u8>,
    found: bool,
}

#[async_trait]
impl VirusScanner for PatternScanner {
    async fn start(&self) -> Result<Box<dyn ScanSession>, ScanError> {
        self.check_up()?;
        Ok(Box::new(PatternSession {
            scanner: self.clone(),
            tail: Vec::new(),
            found: false,
        }))
    }

    async fn ready(&self) -> Result<(), ScanError> {
        self.check_up()
    }
}

#[async_trait]
impl ScanSession for PatternSession {
    async fn feed(&mut self, chunk: &[u8]) -> Result<(), ScanError> {
        self.scanner.check_up()?;
        let pattern = &self.scanner.pattern;
        self.tail.extend_from_slice(chunk);
        if !self.found && self.tail.windows(pattern.len()).any(|w| w == &pattern[..]) {
            self.found = true;
        }
        let keep = pattern.len().saturating_sub(1);
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ScanVerdict, ScanError> {
        self.scanner.check_up()?;
        Ok(if self.found {
            ScanVerdict::Infected {
                signature: self.scanner.signature.to_string(),
            }
        } else {
            ScanVerdict::Clean
        })
    }
}
