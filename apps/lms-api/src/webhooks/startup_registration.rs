//! The DCS webhook registration that `serve` starts in the background, so that start-up never
//! waits for DCS. The rules (lease, create or update, duplicates, backoff) are the domain's
//! [`WebhookRegistrar`].

use domain::webhook_registration::{StartupRetry, WebhookRegistrar};
use tokio::task::JoinHandle;

/// The start-up registration running in the background; dropping it stops it.
#[derive(Debug)]
pub struct RegistrationTask(JoinHandle<()>);

impl Drop for RegistrationTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts `registrar` on the current Tokio runtime with the default backoff.
pub fn start(registrar: WebhookRegistrar) -> RegistrationTask {
    RegistrationTask(tokio::spawn(async move {
        registrar
            .register_at_startup(&StartupRetry::default())
            .await;
    }))
}
