//! In-memory implementations of the [ports](crate::ports): the domain's tests run on them, and
//! so can a single-process tool. Each passes the same conformance suite as the database
//! adapters (`crate::conformance`, feature `testing`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cache::{BackendError, CacheError};
use chrono::{DateTime, Utc};
use dcs_client::{
    DcsError, WebhookSubscription, WebhookSubscriptionCreate, WebhookSubscriptionUpdate,
};
use uuid::Uuid;

use crate::ports::{
    CacheInvalidator, Clock, DeliveryObserver, DeliveryOutcome, DeliveryRecord, DeliveryStatus,
    DeliveryStore, Lease, LeaseStore, StoreError, SubscriptionApi,
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
