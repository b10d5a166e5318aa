//! Several `lms-api serve` processes sharing one PostgreSQL database, one Redis and the fake DCS,
//! as in production behind a load balancer:
//! - a webhook delivered by DCS to one instance makes every instance serve fresh data within 1 s,
//!   and exactly one instance registers the DCS webhook;
//! - an instance killed (SIGKILL) while it receives webhooks loses no acknowledged work: every
//!   delivery it answered 200 has had its effect, and the one it died on is completed by another
//!   instance when DCS retries.
//!
//! Each test runs its own Redis server (so the fixed cache namespace of the binary is private to
//! it) and its own PostgreSQL schema; PostgreSQL-only, as SQLite is the single-instance default.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcs_client::DcsApi;
use dcs_mock::{BookUpdate, MockConfig, MockDcs};
use domain::webhooks::SignatureVerifier;
use lms_api::auth::Role;
use sea_orm::ConnectionTrait;

use cache::testing::RedisServer;

use crate::processes::free_port;
use crate::support::{Engine, TEST_JWT_SECRET, TestDatabase, test_dcs_client, token};

const BINARY: &str = env!("CARGO_BIN_EXE_lms-api");
const WEBHOOK_SECRET: &str = "instances-test-webhook-secret";
const WEBHOOK_PATH: &str = "/api/v1/webhooks/dream-storage";
/// The target: a webhook on one instance refreshes every instance within this.
const FRESH_EVERYWHERE_WITHIN: Duration = Duration::from_secs(1);
/// Start-up (listening, ready, registration decided) of a debug build on a loaded machine.
const START_UP_BOUND: Duration = Duration::from_secs(30);

/// One `lms-api serve` process; its log is collected in the background. Killed on drop.
struct Instance {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Instance {
    /// Starts `serve` on `port` with the shared `env`.
    fn spawn(port: u16, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("working directory");
        let mut child = Command::new(BINARY)
            .arg("serve")
            .current_dir(dir.path())
            .env_clear()
            .env("LMS_BIND", format!("127.0.0.1:{port}"))
            .env("LMS_JWT_SECRET", TEST_JWT_SECRET)
            .env("DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lms-api");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds any of `needles`.
    async fn wait_for_log(&self, needles: &[&str]) {
        let deadline = Instant::now() + START_UP_BOUND;
        loop {
            let log = self.log();
            if needles.iter().any(|needle| log.contains(needle)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never logged any of {needles:?}:\n{log}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `/ready` answers 200.
    async fn wait_ready(&self, http: &reqwest::Client) {
        let deadline = Instant::now() + START_UP_BOUND;
        loop {
            if let Ok(response) = http.get(self.url("/ready")).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never became ready:\n{}",
                self.base,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment every instance of a test shares.
fn shared_env(
    db: &TestDatabase,
    redis: &RedisServer,
    dcs: &MockDcs,
    public_url: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis.url()),
        ("DREAM_CENTRAL_STORAGE_URL", dcs.base_url().to_owned()),
        ("LMS_PUBLIC_URL", public_url.to_owned()),
    ]
}

/// `book_title` of book 1 as `instance` serves it to a teacher.
async fn title_of_book_1(http: &reqwest::Client, instance: &Instance, bearer: &str) -> String {
    let response = http
        .get(instance.url("/api/v1/books/1"))
        .bearer_auth(bearer)
        .send()
        .await
        .expect("GET /api/v1/books/1");
    assert_eq!(response.status(), 200, "{}", instance.base);
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON book");
    body["book_title"].as_str().expect("book_title").to_owned()
}

/// Polls `instance` until it serves `title` for book 1; the time it took, or `None` after
/// `within`.
async fn time_until_served(
    http: &reqwest::Client,
    instance: &Instance,
    bearer: &str,
    title: &str,
    since: Instant,
    within: Duration,
) -> Option<Duration> {
    loop {
        if title_of_book_1(http, instance, bearer).await == title {
            return Some(since.elapsed());
        }
        if since.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A `book.updated` delivery for book 1 as DCS sends it; `n` makes its bytes unique.
fn book_updated(title: &str, n: usize) -> Vec<u8> {
    format!(
        r#"{{"event":"book.updated","timestamp":"2026-12-02T10:00:00.{n:06}Z","data":{{"id":1,"book_name":"FLOWDEMO","book_title":"{title}","publisher":"Dream Press","language":"en","category":"English","status":"published"}}}}"#
    )
    .into_bytes()
}

async fn deliver(
    http: &reqwest::Client,
    instance: &Instance,
    body: &[u8],
) -> reqwest::Result<(u16, serde_json::Value)> {
    let signature = SignatureVerifier::new(WEBHOOK_SECRET.to_owned().into()).sign(body);
    let response = http
        .post(instance.url(WEBHOOK_PATH))
        .header("Content-Type", "application/json")
        .header("X-Webhook-Signature", signature)
        .body(body.to_vec())
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
}

/// `status` of every row of the delivery log, by id.
async fn delivery_statuses(db: &TestDatabase) -> HashMap<String, String> {
    let rows = db
        .db
        .query_all_raw(sea_orm::Statement::from_string(
            db.db.get_database_backend(),
            "SELECT CAST(id AS TEXT) AS id, status FROM webhook_event_logs".to_owned(),
        ))
        .await
        .expect("read webhook_event_logs");
    rows.iter()
        .map(|row| {
            (
                row.try_get::<String>("", "id").unwrap(),
                row.try_get::<String>("", "status").unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dcs_webhook_refreshes_every_instance_within_a_second_and_one_instance_registers() {
    let Some(db) = TestDatabase::open(Engine::Postgres).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let dcs = MockDcs::start(MockConfig::default())
        .await
        .expect("fake DCS");
    let http = reqwest::Client::new();
    let bearer = token(Role::Teacher);

    // Three instances start together; DCS calls back the first one (the load balancer's
    // address, in production), whichever instance registered the subscription.
    let ports = [free_port(), free_port(), free_port()];
    let public_url = format!("http://127.0.0.1:{}", ports[0]);
    let env = shared_env(&db, &redis, &dcs, &public_url);
    let instances: Vec<Instance> = ports
        .iter()
        .map(|&port| Instance::spawn(port, &env))
        .collect();
    for instance in &instances {
        instance.wait_ready(&http).await;
        instance
            .wait_for_log(&[
                "DCS webhook subscription registered",
                "another instance is registering the DCS webhook; skipping",
            ])
            .await;
    }

    // Exactly one subscription, created once.
    assert_eq!(
        dcs.request_count("POST /webhooks/"),
        1,
        "logs:\n{}",
        instances.iter().map(Instance::log).collect::<String>()
    );
    let subscriptions = test_dcs_client(dcs.base_url(), 0)
        .list_webhooks()
        .await
        .expect("list DCS subscriptions");
    assert_eq!(subscriptions.len(), 1, "{subscriptions:?}");
    assert_eq!(subscriptions[0].url, format!("{public_url}{WEBHOOK_PATH}"));

    // Every instance holds book 1 in its own memory tier.
    for instance in &instances {
        assert_eq!(
            title_of_book_1(&http, instance, &bearer).await,
            "Flow Demo English 1"
        );
        let response = http
            .get(instance.url("/api/v1/books/1"))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-cache"], "HIT", "{}", instance.base);
    }

    // The book changes in DCS, which delivers `book.updated` to the first instance only.
    let changed_at = Instant::now();
    dcs.update_book(
        1,
        BookUpdate {
            book_title: Some("Flow Demo English 2".into()),
            ..BookUpdate::default()
        },
    )
    .unwrap();
    let mut slowest = Duration::ZERO;
    for instance in &instances {
        let took = time_until_served(
            &http,
            instance,
            &bearer,
            "Flow Demo English 2",
            changed_at,
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|| panic!("{} kept serving the old title", instance.base));
        slowest = slowest.max(took);
    }
    assert!(
        slowest < FRESH_EVERYWHERE_WITHIN,
        "the last instance served fresh data after {slowest:?}"
    );

    // DCS's own log: delivered at the first attempt.
    dcs.wait_for_deliveries().await;
    let deliveries = dcs.delivery_logs();
    let delivery = deliveries
        .iter()
        .find(|d| d.event_type == "book.updated")
        .expect("a book.updated delivery");
    assert_eq!(delivery.response_status, Some(200), "{delivery:?}");
    assert_eq!(delivery.attempt_count, 1, "{delivery:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_no_acknowledged_webhook_work() {
    let Some(db) = TestDatabase::open(Engine::Postgres).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let dcs = MockDcs::start(MockConfig::default())
        .await
        .expect("fake DCS");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let bearer = token(Role::Teacher);

    // The test delivers the webhooks itself, so that it knows which ones were acknowledged;
    // DCS's own deliveries go to a closed port.
    let env = shared_env(&db, &redis, &dcs, "http://127.0.0.1:1");
    let mut a = Instance::spawn(free_port(), &env);
    let b = Instance::spawn(free_port(), &env);
    a.wait_ready(&http).await;
    b.wait_ready(&http).await;

    // A is killed at a random moment while it receives a stream of deliveries.
    let a_pid = a.child.id();
    let kill_after = Duration::from_millis(300 + fastrand::u64(0..700));
    let killer = std::thread::spawn(move || {
        std::thread::sleep(kill_after);
        let status = Command::new("kill")
            .args(["-KILL", &a_pid.to_string()])
            .status()
            .expect("send SIGKILL");
        assert!(status.success());
    });

    let mut acknowledged = Vec::new();
    let mut current = "Flow Demo English 1".to_owned();
    let unacknowledged = loop {
        let n = acknowledged.len() + 1;
        // B holds the current version in both tiers.
        assert_eq!(title_of_book_1(&http, &b, &bearer).await, current);
        let title = format!("Flow Demo English v{n}");
        dcs.update_book(
            1,
            BookUpdate {
                book_title: Some(title.clone()),
                ..BookUpdate::default()
            },
        )
        .unwrap();
        let body = book_updated(&title, n);
        match deliver(&http, &a, &body).await {
            Ok((200, receipt)) => {
                // Acknowledged: its effect is there, whatever happens to A next.
                let since = Instant::now();
                let took =
                    time_until_served(&http, &b, &bearer, &title, since, FRESH_EVERYWHERE_WITHIN)
                        .await;
                assert!(
                    took.is_some(),
                    "delivery {n} was acknowledged, but B kept the old title"
                );
                acknowledged.push(receipt["event_id"].as_str().expect("event_id").to_owned());
                current = title;
            }
            Ok((status, body)) => panic!("delivery {n}: {status} {body}"),
            // A died before answering: not acknowledged, so DCS will send it again.
            Err(_) => break (title, body),
        }
        assert!(n < 100_000, "A was never killed");
    };
    killer.join().unwrap();
    a.child.wait().expect("reap A");
    assert!(
        !acknowledged.is_empty(),
        "A was killed before its first delivery"
    );

    // DCS retries the unacknowledged delivery (same bytes) and the load balancer sends it to B.
    // If A had claimed it, B answers 503 `webhook_in_progress` until A's claim lease runs out,
    // then takes it over.
    let (title, body) = unacknowledged;
    let retry_deadline = Instant::now() + Duration::from_secs(15);
    let receipt = loop {
        let (status, answer) = deliver(&http, &b, &body).await.expect("B answers");
        match status {
            200 => break answer,
            503 => {
                assert_eq!(answer["code"], "webhook_in_progress", "{answer}");
                assert!(
                    Instant::now() < retry_deadline,
                    "B never took the delivery over"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => panic!("retry on B: {other} {answer}"),
        }
    };
    assert_eq!(receipt["outcome"], "processed", "{receipt}");
    assert_eq!(title_of_book_1(&http, &b, &bearer).await, title);

    // The shared log: every acknowledged delivery and the retried one are processed; nothing
    // is left half-done.
    let statuses = delivery_statuses(&db).await;
    for id in &acknowledged {
        assert_eq!(
            statuses.get(id).map(String::as_str),
            Some("processed"),
            "{id}"
        );
    }
    let retried = receipt["event_id"].as_str().unwrap();
    assert_eq!(statuses.get(retried).map(String::as_str), Some("processed"));
    assert!(
        statuses.values().all(|status| status == "processed"),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), acknowledged.len() + 1);
}
