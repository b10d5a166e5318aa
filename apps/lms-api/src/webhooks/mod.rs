//! DCS webhooks, as the app wires them. The rules are the domain's
//! ([`domain::webhook_receiver`], [`domain::webhook_registration`]); here:
//!
//! - [`WebhookService`]: the receiver over the SQL delivery log, the catalog's cache and the
//!   Prometheus counter, as the route uses it;
//! - `delivery_metrics`: the `dcs_webhook_deliveries_total` counter;
//! - `startup_registration`: the background registration `serve` starts;
//! - `log_pruning`: the background deletion of deliveries older than the retention.

pub mod delivery_metrics;
pub mod log_pruning;
pub mod startup_registration;

use std::sync::Arc;

use domain::webhook_log::DeliveryLog;
use domain::webhook_receiver::{Receipt, ReceiveError, ReceiverTiming, WebhookReceiver};

pub use delivery_metrics::WebhookMetrics;

/// The webhook receiver and its counter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookService {
    receiver: WebhookReceiver,
    metrics: WebhookMetrics,
}

impl WebhookService {
    /// The receiver, counting into `metrics` (which it must already report to).
    pub fn new(receiver: WebhookReceiver, metrics: WebhookMetrics) -> Self {
        Self { receiver, metrics }
    }

    /// The delivery log.
    pub fn events(&self) -> &DeliveryLog {
        self.receiver.log()
    }

    /// The delivery counter.
    pub fn metrics(&self) -> &WebhookMetrics {
        &self.metrics
    }

    /// The same service over another delivery log (tests use one with a manual clock).
    pub fn with_events(mut self, log: DeliveryLog) -> Self {
        self.receiver = self.receiver.with_log(log);
        self
    }

    /// The same service with another timing (tests shorten the waits).
    pub fn with_timing(mut self, timing: ReceiverTiming) -> Self {
        self.receiver = self.receiver.with_timing(timing);
        self
    }

    /// Handles one delivery (see [`WebhookReceiver::receive`]).
    pub async fn receive(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Receipt, ReceiveError> {
        self.receiver.receive(signature, body).await
    }

    /// Counts and reports a body over the limit.
    pub fn refuse_oversize(&self) -> ReceiveError {
        self.receiver.refuse_oversize()
    }

    /// The observer to give a receiver so that it counts into `metrics`.
    pub fn observer(metrics: &WebhookMetrics) -> Arc<dyn domain::ports::DeliveryObserver> {
        Arc::new(metrics.clone())
    }
}
