//! Work the server does besides answering requests: sweeping expired cache entries, the
//! optional warm-up, and the periodic publisher re-sync (DCS may never send publisher
//! webhooks, see the domain's catalog docs).

use std::time::Duration;

use std::sync::Arc;

use cache::{Cache, SweeperHandle};
use domain::catalog::Catalog;
use tokio::task::JoinHandle;

use crate::settings::CacheSettings;

/// Shortest re-sync period, whatever the publisher TTL.
const MIN_RESYNC_PERIOD: Duration = Duration::from_secs(30);

/// The running tasks; dropping this stops them.
#[derive(Debug)]
pub struct BackgroundTasks {
    _sweeper: SweeperHandle,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How often publishers are re-read: half their TTL, so a change DCS did not announce is
/// visible within one TTL at worst.
pub fn resync_period(publisher_ttl: Duration) -> Duration {
    (publisher_ttl / 2).max(MIN_RESYNC_PERIOD)
}

/// Starts the tasks on the current Tokio runtime: sweeping `cache`, and the warm-up and
/// publisher re-sync of `catalog` as `settings` say.
pub fn start(catalog: Arc<Catalog>, cache: &Cache, settings: &CacheSettings) -> BackgroundTasks {
    let sweeper = cache.start_sweeper();
    let mut tasks = Vec::new();

    if settings.warmup_enabled {
        let catalog = catalog.clone();
        tasks.push(tokio::spawn(async move {
            match catalog.warm_up().await {
                Ok(()) => tracing::info!("cache warm-up done"),
                Err(err) => tracing::warn!(error = %err, "cache warm-up failed"),
            }
        }));
    }

    let period = resync_period(settings.publisher_ttl);
    tasks.push(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match catalog.resync_publishers().await {
                Ok(report) if report.changed > 0 => tracing::info!(
                    publishers = report.publishers,
                    changed = report.changed,
                    "publisher re-sync dropped changed entries"
                ),
                Ok(report) => {
                    tracing::debug!(
                        publishers = report.publishers,
                        "publisher re-sync: no change"
                    )
                }
                Err(err) => tracing::warn!(error = %err, "publisher re-sync failed"),
            }
        }
    }));

    BackgroundTasks {
        _sweeper: sweeper,
        tasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resync_runs_twice_per_ttl_but_not_too_often() {
        assert_eq!(
            resync_period(Duration::from_secs(600)),
            Duration::from_secs(300)
        );
        assert_eq!(resync_period(Duration::from_secs(10)), MIN_RESYNC_PERIOD);
    }
}
