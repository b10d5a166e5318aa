//! The DCS webhook registration that `serve` starts in the background, so that start-up never
//! waits for DCS, and its periodic re-check (DCS may lose or deactivate the subscription:
//! a restored database, an operator). The rules (lease, create or update, duplicates, backoff)
//! are the domain's [`WebhookRegistrar`].

use std::time::Duration;

use domain::webhook_registration::{
    RegistrationAction, RegistrationError, StartupRetry, WebhookRegistrar,
};
use tokio::task::JoinHandle;

/// The start-up registration and the re-check running in the background; dropping it stops
/// them.
#[derive(Debug)]
pub struct RegistrationTask(JoinHandle<()>);

impl Drop for RegistrationTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts `registrar` on the current Tokio runtime with the default backoff, then checks the
/// subscription again every `recheck` (`DCS_WEBHOOK_RECHECK_INTERVAL`).
pub fn start(registrar: WebhookRegistrar, recheck: Duration) -> RegistrationTask {
    start_with(registrar, StartupRetry::default(), recheck)
}

/// [`start`] with a given start-up backoff (tests).
pub fn start_with(
    registrar: WebhookRegistrar,
    retry: StartupRetry,
    recheck: Duration,
) -> RegistrationTask {
    RegistrationTask(tokio::spawn(async move {
        registrar.register_at_startup(&retry).await;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + recheck, recheck);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            recheck_once(&registrar).await;
        }
    }))
}

/// One re-check: registers again under the lease and says what DCS had lost.
async fn recheck_once(registrar: &WebhookRegistrar) {
    match registrar.register().await {
        Ok(outcome) => match outcome.action {
            RegistrationAction::Unchanged => tracing::debug!(
                subscription_id = outcome.subscription_id,
                "DCS webhook subscription re-checked: unchanged"
            ),
            action => tracing::warn!(
                ?action,
                subscription_id = outcome.subscription_id,
                removed_duplicates = outcome.removed_duplicates.len(),
                "DCS webhook subscription was missing or changed in DCS; restored"
            ),
        },
        Err(RegistrationError::Busy) => tracing::debug!(
            "DCS webhook re-check skipped: another instance holds the registration lease"
        ),
        Err(error) => tracing::warn!(
            code = error.log_code(),
            error = %error,
            "DCS webhook subscription re-check failed; trying again at the next interval"
        ),
    }
}
