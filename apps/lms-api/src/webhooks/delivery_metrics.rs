//! `dcs_webhook_deliveries_total{event, outcome}`: the Prometheus side of the domain's
//! [`DeliveryObserver`] port.

use std::fmt;

use domain::ports::{DeliveryObserver, DeliveryOutcome};
use prometheus::{IntCounterVec, Opts, Registry};

/// The delivery counter. The `event` label is one of the six DCS events or `unknown`,
/// `malformed`, `unverified`, never a value taken from the body as is, so its cardinality
/// stays bounded.
#[derive(Clone)]
pub struct WebhookMetrics {
    deliveries: IntCounterVec,
}

impl fmt::Debug for WebhookMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookMetrics").finish_non_exhaustive()
    }
}

impl WebhookMetrics {
    /// Creates the counter and registers it in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let deliveries = IntCounterVec::new(
            Opts::new(
                "dcs_webhook_deliveries_total",
                "DCS webhook deliveries by event and outcome.",
            ),
            &["event", "outcome"],
        )?;
        registry.register(Box::new(deliveries.clone()))?;
        Ok(Self { deliveries })
    }

    /// Deliveries counted so far with these labels.
    pub fn count(&self, event: &str, outcome: DeliveryOutcome) -> u64 {
        self.deliveries
            .with_label_values(&[event, outcome.as_str()])
            .get()
    }
}

impl DeliveryObserver for WebhookMetrics {
    fn record(&self, event: &str, outcome: DeliveryOutcome) {
        self.deliveries
            .with_label_values(&[event, outcome.as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_by_event_and_outcome() {
        let registry = Registry::new();
        let metrics = WebhookMetrics::register(&registry).unwrap();
        metrics.record("book.created", DeliveryOutcome::Processed);
        metrics.record("book.created", DeliveryOutcome::Processed);
        metrics.record("book.created", DeliveryOutcome::Duplicate);
        assert_eq!(metrics.count("book.created", DeliveryOutcome::Processed), 2);
        assert_eq!(metrics.count("book.created", DeliveryOutcome::Duplicate), 1);
        assert!(
            WebhookMetrics::register(&registry).is_err(),
            "one per registry"
        );
    }
}
