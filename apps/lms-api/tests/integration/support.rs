//! Shared fixtures: settings, databases (SQLite and PostgreSQL), app construction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::test as actix_test;
use chrono::{DateTime, Utc};
use domain::ports::Clock;
use lms_api::settings::DatabaseUrl;
use lms_api::{AppState, Settings};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

pub const TEST_JWT_SECRET: &str = "integration-test-jwt-secret-0123456789";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Settings from exactly these variables (nothing from the process environment).
pub fn settings_from(vars: &[(&str, &str)]) -> Result<Settings, lms_api::settings::SettingsError> {
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    // The filesystem store of tests lives in a temporary folder, never under the crate.
    map.entry("STORAGE_FS_ROOT".to_owned())
        .or_insert_with(|| test_objects_root().display().to_string());
    Settings::from_lookup(|name| map.get(name).cloned())
}

/// One temporary object root for this test process.
pub fn test_objects_root() -> &'static std::path::Path {
    static ROOT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// Local settings with a known JWT secret over the given database URL, talking to the
/// process-wide fake DCS.
pub fn test_settings(database_url: &str) -> Settings {
    settings_from(&[
        ("LMS_JWT_SECRET", TEST_JWT_SECRET),
        ("DATABASE_URL", database_url),
        ("DREAM_CENTRAL_STORAGE_URL", shared_dcs_url()),
    ])
    .expect("test settings are valid")
}

/// A fake DCS shared by the tests of this process that only need one to answer (readiness).
/// It runs on its own thread and runtime, since each actix test has a runtime of its own.
pub fn shared_dcs_url() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for the shared fake DCS");
            runtime.block_on(async move {
                let dcs = dcs_mock::MockDcs::start(dcs_mock::MockConfig::default())
                    .await
                    .expect("start the shared fake DCS");
                tx.send(dcs.base_url().to_owned()).expect("send URL");
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("shared fake DCS URL")
    })
}

/// A DCS client for tests with fast, jitter-free retries; `breaker_threshold` 0 turns the
/// circuit breaker off (tests that count requests exactly), otherwise it opens after that many
/// failures.
pub fn fast_dcs_client(
    mut config: dcs_client::DcsConfig,
    breaker_threshold: u32,
) -> dcs_client::DcsClient {
    config.retry = dcs_client::RetryConfig {
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(5),
        jitter: dcs_client::Jitter::None,
        ..dcs_client::RetryConfig::default()
    };
    config.breaker.failure_threshold = breaker_threshold;
    config.breaker.cool_down = std::time::Duration::from_secs(60);
    config.connect_timeout = std::time::Duration::from_secs(2);
    dcs_client::DcsClient::new(config).expect("DCS client")
}

/// [`fast_dcs_client`] for the fake DCS at `base_url` with its admin login.
pub fn test_dcs_client(base_url: &str, breaker_threshold: u32) -> dcs_client::DcsClient {
    let config = dcs_client::DcsConfig::new(
        base_url,
        dcs_client::Credentials::password("admin@admin.com", "admin"),
    );
    fast_dcs_client(config, breaker_threshold)
}

/// A bearer token for `role`, signed with the test settings' secret.
pub fn token(role: lms_api::auth::Role) -> String {
    lms_api::auth::JwtKeys::from_secret(&TEST_JWT_SECRET.to_owned().into())
        .issue(
            uuid::Uuid::new_v4(),
            role,
            std::time::Duration::from_secs(600),
        )
        .expect("token")
}

/// App state over `db` whose catalog talks to the fake DCS at `base_url`.
pub fn state_with_dcs(db: &TestDatabase, base_url: &str, cache: cache::Cache) -> AppState {
    let mut settings = db.settings();
    settings.dcs.url = base_url.parse().expect("fake DCS URL");
    let dcs = Arc::new(test_dcs_client(base_url, 1000));
    let services = lms_api::services::Services::new(&settings, dcs, cache).expect("services");
    AppState::with_services(settings, db.db.clone(), services)
}

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A migrated, isolated database: a temp SQLite file, or a fresh PostgreSQL schema that is
/// dropped when this value is dropped.
pub struct TestDatabase {
    pub engine: Engine,
    /// URL that opens this database (includes the schema search path on PostgreSQL).
    pub url: String,
    pub db: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
    postgres_schema: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn open(engine: Engine) -> Option<Self> {
        let fresh = Self::open_empty(engine).await?;
        lms_api::db::migrate(&fresh.db).await.expect("migrate");
        Some(fresh)
    }

    /// An isolated database without migrations applied. `None` only when PostgreSQL tests are
    /// explicitly skipped.
    pub async fn open_empty(engine: Engine) -> Option<Self> {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("lms.db").display());
                let db = connect(&url).await;
                Some(Self {
                    engine,
                    url,
                    db,
                    _dir: Some(dir),
                    postgres_schema: None,
                })
            }
            Engine::Postgres => {
                if postgres_skipped() {
                    return None;
                }
                let admin_url = postgres_admin_url();
                let admin = connect_admin(&admin_url).await.unwrap_or_else(|err| {
                    panic!(
                        "PostgreSQL at {} is unreachable ({err}). Start it, point \
                         TEST_DATABASE_URL at a server, or set LMS_SKIP_POSTGRES_TESTS=1",
                        DatabaseUrl::parse(&admin_url)
                            .map(|u| u.redacted().to_owned())
                            .unwrap_or_default()
                    )
                });
                let schema = format!(
                    "lms_test_{}_{}",
                    std::process::id(),
                    &uuid::Uuid::new_v4().simple().to_string()[..12]
                );
                admin
                    .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
                    .await
                    .expect("create test schema");
                admin.close().await.expect("close admin connection");
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
                let db = connect(&url).await;
                Some(Self {
                    engine,
                    url,
                    db,
                    _dir: None,
                    postgres_schema: Some((admin_url, schema)),
                })
            }
        }
    }

    pub fn settings(&self) -> Settings {
        test_settings(&self.url)
    }

    pub fn state(&self) -> AppState {
        AppState::new(self.settings(), self.db.clone()).expect("services from test settings")
    }

    /// Names of the tables this database can see in its own schema.
    pub async fn table_names(&self) -> Vec<String> {
        let sql = match self.engine {
            Engine::Sqlite => {
                // SQLite's own bookkeeping (`sqlite_sequence` for AUTOINCREMENT) is not our schema.
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
                    .to_owned()
            }
            Engine::Postgres => "SELECT table_name AS name FROM information_schema.tables \
                                 WHERE table_schema = current_schema() ORDER BY table_name"
                .to_owned(),
        };
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql,
            ))
            .await
            .expect("list tables");
        rows.iter()
            .map(|row| row.try_get::<String>("", "name").expect("name column"))
            .collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, schema)) = self.postgres_schema.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; use a private one.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                let admin = connect_admin(&admin_url).await?;
                admin
                    .execute_unprepared(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await?;
                admin.close().await
            })
        });
        if let Ok(Err(err)) = cleanup.join() {
            eprintln!("warning: could not drop test schema: {err}");
        }
    }
}

/// True (with a note on stderr) when `LMS_SKIP_POSTGRES_TESTS=1`.
pub fn postgres_skipped() -> bool {
    let skipped = std::env::var("LMS_SKIP_POSTGRES_TESTS").is_ok_and(|v| v == "1");
    if skipped {
        eprintln!("skipping PostgreSQL test: LMS_SKIP_POSTGRES_TESTS=1");
    }
    skipped
}

/// The server PostgreSQL tests use (`TEST_DATABASE_URL` or the local default).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// Administrative connection; fails within seconds when the server is down (the driver keeps
/// retrying a refused connection until the acquire timeout).
async fn connect_admin(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options
        .acquire_timeout(std::time::Duration::from_secs(3))
        .max_connections(1)
        .sqlx_logging(false);
    Database::connect(options).await
}

async fn connect(url: &str) -> DatabaseConnection {
    let url = DatabaseUrl::parse(url).expect("valid test database URL");
    lms_api::db::connect(&url)
        .await
        .expect("connect test database")
}

/// Runs a database scenario once on SQLite and once on PostgreSQL.
macro_rules! on_both_databases {
    ($scenario:ident) => {
        mod $scenario {
            #[actix_web::test]
            async fn sqlite() {
                if let Some(db) =
                    $crate::support::TestDatabase::open($crate::support::Engine::Sqlite).await
                {
                    super::$scenario(db).await;
                }
            }

            #[actix_web::test]
            async fn postgres() {
                if let Some(db) =
                    $crate::support::TestDatabase::open($crate::support::Engine::Postgres).await
                {
                    super::$scenario(db).await;
                }
            }
        }
    };
}
pub(crate) use on_both_databases;

/// An app over a fresh SQLite database. Keep the returned database alive for the test.
pub async fn sqlite_app_state() -> (TestDatabase, AppState) {
    let db = TestDatabase::open(Engine::Sqlite)
        .await
        .expect("SQLite is always available");
    let state = db.state();
    (db, state)
}

/// The body of a response parsed as JSON.
pub async fn json_body<B: MessageBody>(response: ServiceResponse<B>) -> serde_json::Value {
    let bytes = actix_test::read_body(response).await;
    serde_json::from_slice(&bytes).unwrap_or_else(|err| {
        panic!(
            "body is not JSON ({err}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

/// A clock the test moves by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn at(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self(Mutex::new(start)))
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// A response header as a string; panics when absent.
pub fn header<B>(response: &ServiceResponse<B>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ASCII header")
        .to_owned()
}
