//! Readiness: named dependency checks run concurrently for `GET /ready`.
//!
//! Each dependency (database, DCS, and Redis when configured) is one [`ReadinessCheck`]. The
//! report lists every check. A failing *required* check (the database) makes the answer 503, so
//! the orchestrator takes the instance out of rotation. A failing *optional* check (DCS, Redis)
//! makes it 200 with `"status": "degraded"`: those are shared by every instance and the server
//! keeps serving without them (cached content marked `X-Cache: STALE`, the local cache tier), so
//! pulling every instance out of rotation would turn a degraded service into an outage.
//! Failure messages are short fixed phrases: the full error goes to the log, since `/ready` is
//! unauthenticated.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How long one check may take before it counts as failed. Checks run concurrently, so this
/// bounds `/ready` too; it stays under the 1 s probe timeout orchestrators use by default
/// (Kubernetes), or a slow dependency would fail the probe itself, whatever the body says. The
/// DCS client retries a refused connection with backoff, so with DCS down its check ends here.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// One dependency the server needs in order to serve traffic.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + Debug {
    /// Key in the report, e.g. `database`.
    fn name(&self) -> &'static str;

    /// Whether the instance cannot serve without this dependency. A failing required check
    /// makes `/ready` 503; a failing optional one only marks the answer `degraded`.
    fn required(&self) -> bool {
        true
    }

    /// `Err` carries a short message that is safe to show publicly.
    async fn check(&self) -> Result<(), String>;
}

/// The database answers `SELECT 1`.
#[derive(Debug, Clone)]
pub struct DatabaseCheck {
    db: DatabaseConnection,
}

impl DatabaseCheck {
    /// Checks the given pool.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        self.db
            .execute_unprepared("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|err| {
                tracing::warn!(error = %err, "readiness: database check failed");
                "database query failed".to_owned()
            })
    }
}

/// DCS answers `GET /health` (no credentials involved, so a bad password does not make every
/// instance unready; login problems show up as request errors instead). Optional: with DCS down
/// the catalog still serves what it has cached.
#[derive(Clone)]
pub struct DcsCheck {
    dcs: Arc<dyn dcs_client::DcsApi>,
}

impl Debug for DcsCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcsCheck").finish_non_exhaustive()
    }
}

impl DcsCheck {
    /// Checks the given DCS client.
    pub fn new(dcs: Arc<dyn dcs_client::DcsApi>) -> Self {
        Self { dcs }
    }
}

#[async_trait]
impl ReadinessCheck for DcsCheck {
    fn name(&self) -> &'static str {
        "dcs"
    }

    fn required(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), String> {
        self.dcs.health().await.map(|_| ()).map_err(|err| {
            tracing::warn!(error = %err, code = err.code(), "readiness: DCS check failed");
            format!("content storage unavailable ({})", err.code())
        })
    }
}

/// Object storage is reachable and its buckets exist. Required with the filesystem backend
/// (this instance's own disk: without it the instance should leave the rotation), optional
/// with S3, which every instance shares (as DCS: an outage there is degraded service).
#[derive(Debug, Clone)]
pub struct StorageCheck {
    stores: Vec<Arc<dyn storage::ObjectStore>>,
    required: bool,
}

impl StorageCheck {
    /// Checks every store in `stores`.
    pub fn new(stores: Vec<Arc<dyn storage::ObjectStore>>, required: bool) -> Self {
        Self { stores, required }
    }
}

#[async_trait]
impl ReadinessCheck for StorageCheck {
    fn name(&self) -> &'static str {
        "storage"
    }

    fn required(&self) -> bool {
        self.required
    }

    async fn check(&self) -> Result<(), String> {
        for store in &self.stores {
            if let Err(err) = store.ready().await {
                tracing::warn!(error = %err, bucket = store.bucket(), "readiness: storage check failed");
                return Err(format!(
                    "object storage unavailable ({}, bucket {})",
                    err.code(),
                    store.bucket()
                ));
            }
        }
        Ok(())
    }
}

/// The shared cache tier (Redis) answers `PING`, asked through the cache itself (only when
/// `REDIS_URL` is set). Optional: without Redis the cache falls back to its local tier.
#[derive(Debug, Clone)]
pub struct SharedCacheCheck {
    cache: cache::Cache,
}

impl SharedCacheCheck {
    /// Checks the shared tier of `cache`.
    pub fn new(cache: cache::Cache) -> Self {
        Self { cache }
    }
}

#[async_trait]
impl ReadinessCheck for SharedCacheCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn required(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), String> {
        match self.cache.ping_shared_tier().await {
            None | Some(Ok(())) => Ok(()),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "readiness: Redis check failed");
                Err("redis unavailable".to_owned())
            }
        }
    }
}

/// Overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    /// Every check passed.
    Ok,
    /// Every required check passed, at least one optional check failed (still served: 200).
    Degraded,
    /// At least one required check failed (503).
    Unavailable,
}

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckReport {
    /// Whether the dependency answered in time.
    pub ok: bool,
    /// Whether a failure of this check makes the instance unready (otherwise: degraded).
    pub required: bool,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// Body of `GET /ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadinessReport {
    /// `ok` when every check passed, `degraded` when only optional ones failed, `unavailable`
    /// when a required one failed.
    pub status: ReadyStatus,
    /// Each check by name.
    pub checks: BTreeMap<String, CheckReport>,
}

/// The set of checks behind `GET /ready`.
#[derive(Debug, Clone)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    timeout: Duration,
}

impl Readiness {
    /// No checks yet; each check gets `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            checks: Vec::new(),
            timeout,
        }
    }

    /// Adds a check.
    pub fn with_check(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// Runs every check concurrently.
    pub async fn run(&self) -> ReadinessReport {
        let timeout = self.timeout;
        let results = join_all(self.checks.iter().map(|check| async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(timeout, check.check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
            };
            let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
            let report = CheckReport {
                ok: outcome.is_ok(),
                required: check.required(),
                latency_ms,
                error: outcome.err(),
            };
            (check.name().to_owned(), report)
        }))
        .await;

        let failing = |required: bool| {
            results
                .iter()
                .any(|(_, report)| !report.ok && report.required == required)
        };
        let status = if failing(true) {
            ReadyStatus::Unavailable
        } else if failing(false) {
            ReadyStatus::Degraded
        } else {
            ReadyStatus::Ok
        };
        ReadinessReport {
            status,
            checks: results.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed {
        name: &'static str,
        required: bool,
        healthy: bool,
    }

    #[async_trait]
    impl ReadinessCheck for Fixed {
        fn name(&self) -> &'static str {
            self.name
        }

        fn required(&self) -> bool {
            self.required
        }

        async fn check(&self) -> Result<(), String> {
            if self.healthy {
                Ok(())
            } else {
                Err("down".to_owned())
            }
        }
    }

    fn readiness(database_up: bool, dcs_up: bool) -> Readiness {
        Readiness::new(Duration::from_secs(1))
            .with_check(Arc::new(Fixed {
                name: "database",
                required: true,
                healthy: database_up,
            }))
            .with_check(Arc::new(Fixed {
                name: "dcs",
                required: false,
                healthy: dcs_up,
            }))
    }

    #[tokio::test]
    async fn only_a_failing_required_check_makes_the_instance_unavailable() {
        assert_eq!(readiness(true, true).run().await.status, ReadyStatus::Ok);
        let degraded = readiness(true, false).run().await;
        assert_eq!(degraded.status, ReadyStatus::Degraded);
        assert!(!degraded.checks["dcs"].ok);
        assert!(!degraded.checks["dcs"].required);
        assert_eq!(degraded.checks["dcs"].error.as_deref(), Some("down"));
        assert_eq!(
            readiness(false, true).run().await.status,
            ReadyStatus::Unavailable
        );
        assert_eq!(
            readiness(false, false).run().await.status,
            ReadyStatus::Unavailable
        );
    }
}

/// The virus scanner answers (only when `CLAMD_ADDR` is set). Optional: without it uploads
/// answer 503, but everything else still works.
#[derive(Debug, Clone)]
pub struct ScannerCheck {
    scanner: Arc<dyn domain::ports::VirusScanner>,
}

impl ScannerCheck {
    pub fn new(scanner: Arc<dyn domain::ports::VirusScanner>) -> Self {
        Self { scanner }
    }
}

#[async_trait]
impl ReadinessCheck for ScannerCheck {
    fn name(&self) -> &'static str {
        "virus_scanner"
    }

    fn required(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), String> {
        self.scanner.ready().await.map_err(|error| {
            tracing::warn!(%error, "readiness: virus scanner check failed");
            "virus scanner unreachable (CLAMD_ADDR)".to_owned()
        })
    }
}
