//! Keeps this LMS's webhook subscription in DCS in shape: one active subscription for
//! `{LMS_PUBLIC_URL}/api/v1/webhooks/dream-storage`, signed with
//! `DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET`, for the six events DCS emits.
//!
//! - **Create or update.** The subscription is found by its callback URL in `GET /webhooks/`.
//!   Missing: created. Present with another secret, inactive, or another event filter:
//!   updated. Several for the same URL (left by an earlier race): the oldest is kept and the
//!   others are deleted, since each would deliver every event once more.
//! - **One instance at a time.** Registration runs under the lease
//!   [`REGISTRATION_LOCK`]; an instance that finds it taken skips (at start-up) or answers
//!   `409` (admin endpoint). Two registrations at once could otherwise both create.
//! - **Credentials.** DCS refuses API keys on `/webhooks/*`; the DCS client logs in with the
//!   configured e-mail and password. Without them DCS cannot be asked at all
//!   (`dcs_api_key_unsupported`).
//! - **At start-up** ([`WebhookRegistrar::register_at_startup`]) it runs in the background, retrying with backoff while DCS is
//!   unreachable, so the server starts serving at once.
//!
//! The secret is sent to DCS and compared with what DCS returns; it is never logged or returned.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dcs_client::{
    DcsError, WebhookEventType, WebhookSubscription, WebhookSubscriptionCreate,
    WebhookSubscriptionUpdate,
};
use secrecy::{ExposeSecret, SecretString};

use crate::errors::{Code, Problem, ToProblem, dcs_is_unavailable};
use crate::leases::{HeldLease, LeaderLockError, LeaderLocks};
use crate::ports::SubscriptionApi;
use crate::webhooks::DCS_EVENTS;

/// Name of the lease registration runs under.
pub const REGISTRATION_LOCK: &str = "dcs-webhook-registration";

/// The lease's TTL. The holder renews it every third of this while it works (including the
/// pauses between start-up attempts), so a crashed holder's lease lapses within this and
/// another instance takes over.
pub const REGISTRATION_LEASE: Duration = Duration::from_secs(15);

/// The events the LMS subscribes to: every event DCS emits.
pub const SUBSCRIBED_EVENTS: [WebhookEventType; 6] = DCS_EVENTS;

/// Description given to a subscription the LMS creates.
const SUBSCRIPTION_DESCRIPTION: &str = "Dream LMS: cache invalidation of DCS content";

/// Gives the registration lease up; on failure it lapses on its own after
/// [`REGISTRATION_LEASE`].
async fn release(lease: HeldLease) {
    if let Err(error) = lease.release().await {
        tracing::warn!(error = %error, "could not release the webhook registration lease");
    }
}

/// What a registration changed in DCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RegistrationAction {
    /// No subscription for the callback URL existed; one was created.
    Created,
    /// The subscription was changed (secret, activation, event filter) or duplicates of it
    /// were deleted.
    Updated,
    /// Everything was already as it should be.
    Unchanged,
}

/// The result of a registration. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegistrationOutcome {
    /// What was done.
    pub action: RegistrationAction,
    /// The DCS id of the subscription.
    pub subscription_id: i64,
    /// The callback URL DCS delivers to.
    pub url: String,
    /// The events DCS delivers.
    #[cfg_attr(feature = "openapi", schema(example = json!(["book.created", "book.updated",
        "book.deleted", "publisher.created", "publisher.updated", "publisher.deleted"])))]
    pub events: Vec<String>,
    /// Ids of further subscriptions for the same URL that were deleted.
    pub removed_duplicates: Vec<i64>,
}

/// Why a registration did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// Another instance holds the registration lease.
    #[error("another instance is registering the DCS webhook")]
    Busy,
    /// DCS failed or refused.
    #[error("DCS webhook registration failed: {0}")]
    Dcs(#[from] DcsError),
    /// The lease could not be taken.
    #[error(transparent)]
    Lease(#[from] LeaderLockError),
}

impl RegistrationError {
    /// Whether trying again later may succeed (DCS or the database unreachable).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Busy | Self::Lease(LeaderLockError::Storage(_)) => true,
            Self::Lease(_) => false,
            Self::Dcs(error) => dcs_is_unavailable(error),
        }
    }

    /// The code for logs: the DCS client's code for DCS errors, else the API code.
    pub fn log_code(&self) -> &'static str {
        match self {
            Self::Dcs(error) => error.code(),
            _ => self.problem().code.name(),
        }
    }
}

impl ToProblem for RegistrationError {
    fn problem(&self) -> Problem {
        match self {
            Self::Busy => Problem::new(Code::WebhookRegistrationInProgress),
            Self::Dcs(source) if dcs_is_unavailable(source) => {
                Problem::new(Code::ContentStorageUnavailable).with_retry_after(source.retry_after())
            }
            Self::Dcs(DcsError::ApiKeyUnsupported { .. }) => {
                Problem::new(Code::DcsApiKeyUnsupported)
            }
            Self::Dcs(DcsError::AuthFailed { .. }) => Problem::new(Code::DcsAuthFailed),
            Self::Dcs(DcsError::NotAuthenticated { .. }) => Problem::new(Code::DcsNotAuthenticated),
            Self::Dcs(source) => crate::errors::UpstreamError::from(source).problem(),
            Self::Lease(_) => Problem::new(Code::Internal),
        }
    }
}

/// Registers this LMS's webhook subscription with DCS.
#[derive(Clone)]
pub struct WebhookRegistrar {
    dcs: Arc<dyn SubscriptionApi>,
    locks: LeaderLocks,
    callback_url: String,
    secret: SecretString,
    holder: String,
}

impl fmt::Debug for WebhookRegistrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRegistrar")
            .field("callback_url", &self.callback_url)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl WebhookRegistrar {
    /// A registrar for `callback_url` and `secret`, taking the lease as `holder`.
    pub fn new(
        dcs: Arc<dyn SubscriptionApi>,
        locks: LeaderLocks,
        callback_url: impl Into<String>,
        secret: SecretString,
        holder: impl Into<String>,
    ) -> Self {
        Self {
            dcs,
            locks,
            callback_url: callback_url.into(),
            secret,
            holder: holder.into(),
        }
    }

    /// A holder id for an instance in `role`: `{role}-{pid}-{random}`, so the lease record says
    /// who holds it.
    pub fn holder_id(role: &str) -> String {
        format!(
            "{role}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        )
    }

    /// The URL DCS is asked to deliver to.
    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }

    /// Registers now, under the lease: [`RegistrationError::Busy`] when another holder has it.
    pub async fn register(&self) -> Result<RegistrationOutcome, RegistrationError> {
        let Some(lease) = self
            .locks
            .hold(REGISTRATION_LOCK, &self.holder, REGISTRATION_LEASE)
            .await?
        else {
            return Err(RegistrationError::Busy);
        };
        let result = self.sync().await;
        release(lease).await;
        Ok(result?)
    }

    /// At start-up: registers under the lease, retrying transient failures with backoff while
    /// keeping the lease, so that other instances starting meanwhile skip. Skips when another
    /// instance holds it.
    pub async fn register_at_startup(&self, retry: &StartupRetry) -> StartupOutcome {
        // Held (and renewed) across the attempts and the pauses between them.
        let lease = match self
            .locks
            .hold(REGISTRATION_LOCK, &self.holder, REGISTRATION_LEASE)
            .await
        {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                tracing::info!(
                    lock = REGISTRATION_LOCK,
                    "another instance is registering the DCS webhook; skipping"
                );
                return StartupOutcome::Skipped;
            }
            Err(error) => {
                let error = RegistrationError::from(error);
                log_startup_failure(&error, 1);
                return StartupOutcome::GaveUp(error);
            }
        };
        let mut attempt = 1;
        loop {
            match self.sync().await.map_err(RegistrationError::from) {
                Ok(outcome) => {
                    release(lease).await;
                    log_outcome(&outcome);
                    return StartupOutcome::Registered(outcome);
                }
                Err(error) if error.is_transient() && attempt < retry.max_attempts => {
                    let pause = retry.delay_before(attempt + 1);
                    tracing::warn!(
                        attempt,
                        max_attempts = retry.max_attempts,
                        retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        code = error.log_code(),
                        error = %error,
                        "DCS webhook registration failed; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(error) => {
                    release(lease).await;
                    log_startup_failure(&error, attempt);
                    return StartupOutcome::GaveUp(error);
                }
            }
        }
    }

    /// Brings DCS's subscriptions for the callback URL in line. Not safe to run concurrently
    /// with itself: callers hold the lease.
    async fn sync(&self) -> Result<RegistrationOutcome, DcsError> {
        let secret = self.secret.expose_secret();
        let mut ours: Vec<WebhookSubscription> = self
            .dcs
            .list_webhooks()
            .await?
            .into_iter()
            .filter(|subscription| same_url(&subscription.url, &self.callback_url))
            .collect();
        ours.sort_by_key(|subscription| subscription.id);

        if ours.is_empty() {
            let created = self
                .dcs
                .create_webhook(
                    &WebhookSubscriptionCreate::new(&self.callback_url, secret)
                        .description(SUBSCRIPTION_DESCRIPTION)
                        .event_types(&SUBSCRIBED_EVENTS),
                )
                .await?;
            return Ok(self.outcome(RegistrationAction::Created, &created, Vec::new()));
        }

        let kept = ours.remove(0);
        let mut removed_duplicates = Vec::new();
        for duplicate in &ours {
            match self.dcs.delete_webhook(duplicate.id).await {
                // Already gone is what was wanted.
                Ok(()) | Err(DcsError::NotFound { .. }) => removed_duplicates.push(duplicate.id),
                Err(error) => return Err(error),
            }
        }

        let secret_differs = kept.secret != secret;
        if !secret_differs && kept.is_active && has_subscribed_events(&kept) {
            let action = if removed_duplicates.is_empty() {
                RegistrationAction::Unchanged
            } else {
                RegistrationAction::Updated
            };
            return Ok(self.outcome(action, &kept, removed_duplicates));
        }
        let update = WebhookSubscriptionUpdate {
            secret: secret_differs.then(|| secret.to_owned()),
            is_active: Some(true),
            event_types: Some(joined_events()),
            ..WebhookSubscriptionUpdate::default()
        };
        let updated = self.dcs.update_webhook(kept.id, &update).await?;
        Ok(self.outcome(RegistrationAction::Updated, &updated, removed_duplicates))
    }

    fn outcome(
        &self,
        action: RegistrationAction,
        subscription: &WebhookSubscription,
        removed_duplicates: Vec<i64>,
    ) -> RegistrationOutcome {
        RegistrationOutcome {
            action,
            subscription_id: subscription.id,
            url: subscription.url.clone(),
            events: subscription
                .event_type_list()
                .iter()
                .map(|event| event.as_str().to_owned())
                .collect(),
            removed_duplicates,
        }
    }
}

/// Backoff of the start-up registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupRetry {
    /// Attempts in total.
    pub max_attempts: u32,
    /// Pause before the second attempt; doubled for each further one.
    pub first_delay: Duration,
    /// Longest pause.
    pub max_delay: Duration,
}

impl Default for StartupRetry {
    /// 8 attempts over about three minutes: pauses of 2 s, 4 s, ... capped at 60 s.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl StartupRetry {
    /// The pause before attempt `attempt` (2-based: there is none before the first).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(30);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

/// How the start-up registration ended.
#[derive(Debug)]
pub enum StartupOutcome {
    /// Done (possibly after retries).
    Registered(RegistrationOutcome),
    /// Another instance held the lease.
    Skipped,
    /// A permanent error, or the attempts ran out.
    GaveUp(RegistrationError),
}

fn log_outcome(outcome: &RegistrationOutcome) {
    tracing::info!(
        action = ?outcome.action,
        subscription_id = outcome.subscription_id,
        url = %outcome.url,
        events = %outcome.events.join(","),
        removed_duplicates = ?outcome.removed_duplicates,
        "DCS webhook subscription registered"
    );
}

fn log_startup_failure(error: &RegistrationError, attempts: u32) {
    match error {
        RegistrationError::Dcs(DcsError::ApiKeyUnsupported { .. }) => tracing::error!(
            code = error.log_code(),
            "DCS webhook registration impossible: DCS refuses API keys on /webhooks/; set \
             DREAM_CENTRAL_STORAGE_EMAIL and DREAM_CENTRAL_STORAGE_PASSWORD"
        ),
        _ => tracing::error!(
            attempts,
            code = error.log_code(),
            error = %error,
            "DCS webhook registration failed; POST /api/v1/admin/webhooks/register retries it"
        ),
    }
}

/// Whether a subscription delivers to the callback. DCS stores and calls the URL exactly as
/// given, and `.../dream-storage/` would not reach the route, so only an exact match counts.
fn same_url(registered: &str, callback: &str) -> bool {
    registered == callback
}

/// Whether the subscription's filter is exactly [`SUBSCRIBED_EVENTS`].
fn has_subscribed_events(subscription: &WebhookSubscription) -> bool {
    let current: BTreeSet<String> = subscription
        .event_type_list()
        .iter()
        .map(|event| event.as_str().to_owned())
        .collect();
    let wanted: BTreeSet<String> = SUBSCRIBED_EVENTS
        .iter()
        .map(|event| event.as_str().to_owned())
        .collect();
    current == wanted
}

fn joined_events() -> String {
    SUBSCRIBED_EVENTS
        .iter()
        .map(WebhookEventType::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_backoff_doubles_up_to_the_cap() {
        let retry = StartupRetry {
            max_attempts: 8,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(10),
        };
        assert_eq!(retry.delay_before(2), Duration::from_secs(2));
        assert_eq!(retry.delay_before(3), Duration::from_secs(4));
        assert_eq!(retry.delay_before(4), Duration::from_secs(8));
        assert_eq!(retry.delay_before(5), Duration::from_secs(10));
        assert_eq!(retry.delay_before(60), Duration::from_secs(10));
    }

    #[test]
    fn only_the_exact_callback_url_matches() {
        let callback = "https://lms.example/api/v1/webhooks/dream-storage";
        assert!(same_url(callback, callback));
        assert!(!same_url(&format!("{callback}/"), callback));
        assert!(!same_url("https://lms.example/other", callback));
        assert!(!same_url(
            "https://other.example/api/v1/webhooks/dream-storage",
            callback
        ));
    }

    #[test]
    fn only_busy_unavailable_and_database_errors_are_retried() {
        assert!(RegistrationError::Busy.is_transient());
        assert!(
            RegistrationError::Dcs(DcsError::Network {
                message: "refused".into()
            })
            .is_transient()
        );
        assert!(
            !RegistrationError::Dcs(DcsError::ApiKeyUnsupported {
                route: "/webhooks/*"
            })
            .is_transient()
        );
        assert!(
            !RegistrationError::Dcs(DcsError::AuthFailed {
                detail: "Invalid credentials".into()
            })
            .is_transient()
        );
        assert!(
            RegistrationError::Lease(LeaderLockError::Storage(crate::ports::StoreError::new(
                "down"
            )))
            .is_transient()
        );
    }

    #[test]
    fn the_event_filter_is_the_six_emitted_events() {
        assert_eq!(
            joined_events(),
            "book.created,book.updated,book.deleted,publisher.created,publisher.updated,\
             publisher.deleted"
        );
    }
}
