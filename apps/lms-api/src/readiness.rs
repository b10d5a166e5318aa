//! Readiness: named dependency checks run concurrently for `GET /ready`.
//!
//! Each dependency (database now; DCS, object storage and Redis as they are wired) is one
//! [`ReadinessCheck`]. The report lists every check; any failure makes the whole answer 503.
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

/// How long one check may take before it counts as failed.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency the server needs in order to serve traffic.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + Debug {
    /// Key in the report, e.g. `database`.
    fn name(&self) -> &'static str;

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
/// instance unready; login problems show up as request errors instead).
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

    async fn check(&self) -> Result<(), String> {
        self.dcs.health().await.map(|_| ()).map_err(|err| {
            tracing::warn!(error = %err, code = err.code(), "readiness: DCS check failed");
            format!("content storage unavailable ({})", err.code())
        })
    }
}

/// Redis answers `PING` (only when `REDIS_URL` is set).
#[derive(Clone)]
pub struct RedisCheck {
    client: redis::Client,
}

impl Debug for RedisCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheck").finish_non_exhaustive()
    }
}

impl RedisCheck {
    /// A check against `url` (the URL may hold a password; it is never logged).
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
        })
    }
}

#[async_trait]
impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        let ping = async {
            let mut conn = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        ping.await.map(|_| ()).map_err(|err| {
            tracing::warn!(error_kind = ?err.kind(), "readiness: Redis check failed");
            "redis unavailable".to_owned()
        })
    }
}

/// Overall outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadyStatus {
    /// Every check passed.
    Ok,
    /// At least one check failed.
    Unavailable,
}

/// Result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckReport {
    /// Whether the dependency answered in time.
    pub ok: bool,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// Body of `GET /ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadinessReport {
    /// `ok` when every check passed.
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
                latency_ms,
                error: outcome.err(),
            };
            (check.name().to_owned(), report)
        }))
        .await;

        let status = if results.iter().all(|(_, report)| report.ok) {
            ReadyStatus::Ok
        } else {
            ReadyStatus::Unavailable
        };
        ReadinessReport {
            status,
            checks: results.into_iter().collect(),
        }
    }
}
