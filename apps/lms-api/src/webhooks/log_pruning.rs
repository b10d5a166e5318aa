//! Pruning of `webhook_event_logs`: deliveries older than `DCS_WEBHOOK_LOG_RETENTION` are
//! deleted, so the table does not grow forever. Every instance may run it; a delete by age is
//! idempotent, so no lease is needed.

use std::time::Duration;

use domain::webhook_log::DeliveryLog;
use tokio::task::JoinHandle;

/// Longest pause between two prunes.
const MAX_PERIOD: Duration = Duration::from_secs(3600);

/// The running task; dropping this stops it.
#[derive(Debug)]
pub struct PruningTask(JoinHandle<()>);

impl Drop for PruningTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the log is pruned: a tenth of the retention, at most hourly (at least every
/// 100 ms, for the short retentions of tests).
pub fn period(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_millis(100), MAX_PERIOD)
}

/// Prunes `log` now and then every [`period`].
pub fn start(log: DeliveryLog, retention: Duration) -> PruningTask {
    PruningTask(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period(retention));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match log.prune(retention).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(
                    deleted,
                    retention_secs = retention.as_secs(),
                    "old webhook deliveries pruned"
                ),
                Err(error) => tracing::warn!(%error, "pruning webhook deliveries failed"),
            }
        }
    }))
}
