//! PostgreSQL stopped and started again under a running lms-api: a private cluster (initdb in a
//! temporary directory, its own port; never the machine's shared server), so stopping it
//! disturbs no other test.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use domain::leases::LeaderLocks;
use lms_api::auth::Role;
use lms_api::db::SqlLeaseStore;
use lms_api::settings::DatabaseUrl;
use lms_api::{AppState, create_app};

use super::{LOAD_MARGIN, assert_within, free_port, poll_until};
use crate::support::{TEST_JWT_SECRET, header, json_body, postgres_skipped, token};

/// How long a request waits for a pooled connection (`lms_api::db::ACQUIRE_TIMEOUT`, 5 s):
/// with the database down, every database-backed answer comes within it.
const DB_WAIT: Duration = lms_api::db::ACQUIRE_TIMEOUT;
/// `/ready` runs its checks concurrently, each within 800 ms (`readiness::DEFAULT_CHECK_TIMEOUT`).
const READY_WAIT: Duration = lms_api::readiness::DEFAULT_CHECK_TIMEOUT;

/// The PostgreSQL server binaries (initdb, pg_ctl): `POSTGRES_BIN_DIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout; scripts/lib.sh checks they exist).
fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: install them \
             (scripts/test.sh does) or set POSTGRES_BIN_DIR"
        )
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

#[track_caller]
fn check(output: std::io::Result<Output>, what: &str) {
    let output = output.unwrap_or_else(|err| panic!("{what}: {err}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL cluster of this test alone. initdb refuses to run as root, so as root the
/// cluster belongs to (and runs as) the `postgres` system user.
struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
    running: bool,
}

impl PgCluster {
    fn init() -> Self {
        let cluster = Self {
            bin: postgres_bin_dir(),
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            as_postgres: running_as_root(),
            running: false,
        };
        if cluster.as_postgres {
            check(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(cluster.dir.path())
                    .output(),
                "chown the cluster directory",
            );
        }
        check(
            cluster
                .tool("initdb")
                .arg("-D")
                .arg(cluster.data())
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
                .output(),
            "initdb",
        );
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut command = self.tool("pg_ctl");
        command.arg("-D").arg(self.data()).args(args);
        command
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    fn start(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        check(
            self.pg_ctl(&["-w", "-t", "60", "-o", &options, "-l"])
                .arg(&log)
                .arg("start")
                .output(),
            "pg_ctl start",
        );
        self.running = true;
    }

    /// Stops the server: `fast` ends every session at once (clients see their connections
    /// closed), as a restart by an operator or an orchestrator does.
    fn stop(&mut self) {
        check(
            self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"])
                .output(),
            "pg_ctl stop",
        );
        self.running = false;
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-w", "-m", "immediate", "stop"]).output();
        }
    }
}

fn teacher(uri: &str, bearer: &str) -> actix_http::Request {
    actix_test::TestRequest::get()
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {bearer}")))
        .to_request()
}

fn delivery(state: &AppState, at: &str) -> actix_http::Request {
    let body = format!(
        r#"{{"event":"book.updated","timestamp":"{at}","data":{{"id":1,"book_name":"FLOWDEMO","book_title":"Flow Demo English 1","publisher":"Dream Press","language":"en","category":"English","status":"published"}}}}"#
    );
    let signature = state.services.webhook_verifier.sign(body.as_bytes());
    actix_test::TestRequest::post()
        .uri("/api/v1/webhooks/dream-storage")
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("X-Webhook-Signature", signature))
        .set_payload(body)
        .to_request()
}

fn ready() -> actix_http::Request {
    actix_test::TestRequest::get().uri("/ready").to_request()
}

/// Routes that answer from the database: teacher materials, and a book's activities (the
/// `activities` table, filled from DCS's config on first read).
const DB_ROUTES: [&str; 3] = [
    "/api/v1/teachers/materials",
    "/api/v1/teachers/materials/quota",
    "/api/v1/books/1/activities",
];

/// The webhook-registration lease's kind of lease, renewed every third of its TTL.
const LEASE: &str = "fault-suite-lease";
const LEASE_TTL: Duration = Duration::from_secs(3);

#[actix_web::test]
async fn postgres_stopped_then_started_under_a_running_instance() {
    if postgres_skipped() {
        return;
    }
    let mut cluster = tokio::task::spawn_blocking(|| {
        let mut cluster = PgCluster::init();
        cluster.start();
        cluster
    })
    .await
    .expect("PostgreSQL cluster");
    let url = cluster.url();
    let db = lms_api::db::connect(&DatabaseUrl::parse(&url).expect("URL"))
        .await
        .expect("connect");
    lms_api::db::migrate(&db).await.expect("migrate");
    let settings = crate::support::settings_from(&[
        ("LMS_JWT_SECRET", TEST_JWT_SECRET),
        ("DATABASE_URL", url.as_str()),
        (
            "DREAM_CENTRAL_STORAGE_URL",
            crate::support::shared_dcs_url(),
        ),
    ])
    .expect("settings");
    let state = AppState::new(settings, db).expect("state");
    let app = actix_test::init_service(create_app(state.clone())).await;
    let bearer = token(Role::Teacher);
    for uri in DB_ROUTES {
        let response = actix_test::call_service(&app, teacher(uri, &bearer)).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
    let response = actix_test::call_service(&app, delivery(&state, "2026-12-01T10:00:00Z")).await;
    assert_eq!(response.status(), StatusCode::OK);
    // A lease held and renewed in the background, as the webhook registrar's is.
    let locks = LeaderLocks::new(SqlLeaseStore::new(state.db.clone()));
    let held = locks
        .hold(LEASE, "holder-a", LEASE_TTL)
        .await
        .expect("lease store")
        .expect("lease free");

    let mut cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .expect("stop PostgreSQL");

    // Database-backed routes: 503 with a retry hint, within the pool's acquire timeout.
    for uri in DB_ROUTES {
        let started = Instant::now();
        let response = actix_test::call_service(&app, teacher(uri, &bearer)).await;
        assert_within(uri, started, DB_WAIT + LOAD_MARGIN);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert!(!header(&response, "retry-after").is_empty());
        assert_eq!(json_body(response).await["code"], "database_unavailable");
    }
    // A webhook cannot be logged: 503, so DCS delivers it again later.
    let started = Instant::now();
    let response = actix_test::call_service(&app, delivery(&state, "2026-12-01T10:05:00Z")).await;
    assert_within("webhook", started, DB_WAIT + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_body(response).await["code"], "database_unavailable");
    // Readiness says so quickly, and takes the instance out of rotation.
    let started = Instant::now();
    let response = actix_test::call_service(&app, ready()).await;
    assert_within("/ready", started, READY_WAIT + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let readiness = json_body(response).await;
    assert_eq!(readiness["status"], "unavailable", "{readiness}");
    assert_eq!(readiness["checks"]["database"]["ok"], false, "{readiness}");
    // Leases: an error within the pool's acquire timeout, not a hang and not a false answer
    // (the holder's renewal meets the same error, logs it and keeps trying).
    let started = Instant::now();
    let refused = locks.try_acquire(LEASE, "holder-b", LEASE_TTL).await;
    assert_within(
        "lease with the database down",
        started,
        DB_WAIT + LOAD_MARGIN,
    );
    assert!(refused.is_err(), "{refused:?}");
    // Routes that need no database keep working.
    let response = actix_test::call_service(&app, teacher("/api/v1/books/1", &bearer)).await;
    assert_eq!(response.status(), StatusCode::OK);

    // The same instance recovers once PostgreSQL is back: no restart.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start();
        cluster
    })
    .await
    .expect("start PostgreSQL again");
    let (_, took) = poll_until(
        "database-backed routes answering again",
        DB_WAIT + LOAD_MARGIN,
        Duration::from_millis(50),
        async || {
            let response = actix_test::call_service(&app, teacher(DB_ROUTES[0], &bearer)).await;
            (response.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    eprintln!("recovered {took:?} after PostgreSQL started");
    let response = actix_test::call_service(&app, ready()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_body(response).await["checks"]["database"]["ok"], true);
    let response = actix_test::call_service(&app, delivery(&state, "2026-12-01T10:05:00Z")).await;
    assert_eq!(response.status(), StatusCode::OK, "DCS's retry is accepted");
    for uri in DB_ROUTES {
        let response = actix_test::call_service(&app, teacher(uri, &bearer)).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
    // The renewal picks up again: the lease is the holder's, renewed after the database came
    // back (an expiry over `back + TTL`; the last renewal before the stop is under it), and
    // nobody else can take it.
    let back = chrono::Utc::now();
    let ttl = chrono::Duration::from_std(LEASE_TTL).expect("TTL");
    poll_until(
        "the lease renewed after PostgreSQL came back",
        LEASE_TTL + LOAD_MARGIN,
        Duration::from_millis(50),
        async || {
            let lease = locks.current(LEASE).await.ok()??;
            (lease.holder == "holder-a" && lease.expires_at > back + ttl).then_some(())
        },
    )
    .await;
    let taken = locks.try_acquire(LEASE, "holder-b", LEASE_TTL).await;
    assert!(matches!(taken, Ok(None)), "{taken:?}");
    assert!(held.release().await.expect("release"));
    drop(cluster);
}
