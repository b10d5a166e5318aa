//! DCS faults through lms-api: the fake DCS stopped and started again on its port, slow
//! beyond the call deadline, answering 5xx and 429, resetting connections, and expiring every
//! token while many requests are in flight.
//!
//! The DCS client here is the one the settings build (`DREAM_CENTRAL_STORAGE_*` below, real
//! jittered backoff, real breaker); only the cache's clock is manual, so that cached entries
//! can expire without waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use cache::{Cache, ManualClock};
use dcs_mock::{Fault, MockConfig, MockDcs, NewBook};
use lms_api::auth::Role;
use lms_api::{AppState, create_app};

use super::{LOAD_MARGIN, assert_within, poll_until};
use crate::support::{Engine, TEST_JWT_SECRET, TestDatabase, header, json_body, token};

/// `DREAM_CENTRAL_STORAGE_CALL_DEADLINE_MS` of these tests: one DCS API call, login, attempts,
/// retries and `Retry-After` waits included. Every DCS-caused answer must come within it
/// (plus [`LOAD_MARGIN`]).
const CALL_DEADLINE: Duration = Duration::from_millis(2000);
/// `DREAM_CENTRAL_STORAGE_BREAKER_COOL_DOWN_MS`: the breaker's first open time.
const BREAKER_COOL_DOWN: Duration = Duration::from_millis(200);
/// `DREAM_CENTRAL_STORAGE_BREAKER_MAX_COOL_DOWN_MS`: its longest open time, which bounds how
/// long traffic stays refused once DCS is back.
const BREAKER_MAX_COOL_DOWN: Duration = Duration::from_millis(1000);
/// An answer that must not wait for DCS at all (open breaker, refused connection, a
/// `Retry-After` the deadline cannot hold): well under [`CALL_DEADLINE`], so passing it shows
/// that nothing waited for the deadline.
const FAST_ANSWER: Duration = Duration::from_millis(1000);
/// Past every catalog TTL (`DCS_CACHE_*_TTL` defaults: 600 s for books and publishers) and
/// within `DCS_CACHE_MAX_STALENESS` (3600 s), so cached entries are expired but still servable.
const PAST_TTL: Duration = Duration::from_secs(700);
/// The DCS answer delay of the slow cases: far beyond the call deadline.
const SLOW_DCS: Duration = Duration::from_secs(10);

struct Fixture {
    clock: Arc<ManualClock>,
    state: AppState,
    _db: TestDatabase,
}

/// lms-api over SQLite (the database plays no part in DCS faults) talking to the DCS at
/// `dcs_url` with the deadlines above; `extra` adds settings.
async fn fixture(dcs_url: &str, extra: &[(&str, &str)]) -> Fixture {
    let db = TestDatabase::open(Engine::Sqlite).await.expect("SQLite");
    let deadline = CALL_DEADLINE.as_millis().to_string();
    let cool_down = BREAKER_COOL_DOWN.as_millis().to_string();
    let max_cool_down = BREAKER_MAX_COOL_DOWN.as_millis().to_string();
    let mut vars = vec![
        ("LMS_JWT_SECRET", TEST_JWT_SECRET),
        ("DATABASE_URL", db.url.as_str()),
        ("DREAM_CENTRAL_STORAGE_URL", dcs_url),
        ("DREAM_CENTRAL_STORAGE_CALL_DEADLINE_MS", deadline.as_str()),
        (
            "DREAM_CENTRAL_STORAGE_BREAKER_COOL_DOWN_MS",
            cool_down.as_str(),
        ),
        (
            "DREAM_CENTRAL_STORAGE_BREAKER_MAX_COOL_DOWN_MS",
            max_cool_down.as_str(),
        ),
    ];
    // A later entry wins: `extra` may override the deadlines above.
    vars.extend_from_slice(extra);
    let settings = crate::support::settings_from(&vars).expect("settings");
    let client =
        dcs_client::DcsClient::new(lms_api::services::dcs_config(&settings)).expect("DCS client");
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(lms_api::services::cache_config(&settings))
        .clock(clock.clone())
        .build();
    let services =
        lms_api::services::Services::new(&settings, Arc::new(client), cache).expect("services");
    let state = AppState::with_services(settings, db.db.clone(), services);
    Fixture {
        clock,
        state,
        _db: db,
    }
}

fn get(uri: &str) -> actix_http::Request {
    actix_test::TestRequest::get()
        .uri(uri)
        .insert_header(("Authorization", format!("Bearer {}", token(Role::Teacher))))
        .to_request()
}

/// One request, timed.
async fn timed<S, B>(app: &S, uri: &str) -> (ServiceResponse<B>, Instant)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let started = Instant::now();
    (actix_test::call_service(app, get(uri)).await, started)
}

/// `lms_dcs_breaker_open_rejections_total` of the instance: calls the breaker refused itself.
fn breaker_rejections(state: &AppState) -> u64 {
    let exposition = state.metrics.render().expect("metrics");
    exposition
        .lines()
        .find_map(|line| line.strip_prefix("lms_dcs_breaker_open_rejections_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .unwrap_or_else(|| panic!("no breaker counter in {exposition}"))
}

/// The interface's answer when DCS cannot answer and nothing is cached.
async fn assert_unavailable<B: actix_web::body::MessageBody>(
    response: ServiceResponse<B>,
    what: &str,
) -> u64 {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    let retry_after: u64 = header(&response, "retry-after")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1, "{what}: Retry-After {retry_after}");
    let body = json_body(response).await;
    assert_eq!(
        body["code"], "content_storage_unavailable",
        "{what}: {body}"
    );
    assert_eq!(
        body["detail"], "Content storage temporarily unavailable. Please try again.",
        "{what}"
    );
    retry_after
}

/// DCS stops (its port refuses connections), then a new fake DCS starts on the same port with
/// a fresh state, as a restarted DCS would: a new token secret, so lms-api's token is refused
/// once.
#[actix_web::test]
async fn dcs_down_serves_stale_and_fast_503_then_recovers_on_the_same_port() {
    let dcs = MockDcs::start(MockConfig::default()).await.expect("DCS");
    let address = dcs.local_addr();
    let f = fixture(dcs.base_url(), &[]).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    for uri in ["/api/v1/books", "/api/v1/books/1"] {
        let (response, _) = timed(&app, uri).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert_eq!(header(&response, "x-cache"), "MISS", "{uri}");
    }

    dcs.shutdown().await;
    f.clock.advance(PAST_TTL);

    // Cached: the expired copy, marked stale. A refused connection is not retried, so this
    // does not wait for the deadline.
    for uri in ["/api/v1/books", "/api/v1/books/1"] {
        let (response, started) = timed(&app, uri).await;
        assert_within(&format!("stale {uri}"), started, FAST_ANSWER);
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert_eq!(header(&response, "x-cache"), "STALE", "{uri}");
        assert!(json_body(response).await.is_object());
    }
    // Not cached: 503 with the fixed JSON error, as fast; after five failures the breaker
    // opens and the answers do not even try DCS.
    for id in 2..12 {
        let uri = format!("/api/v1/publishers/{id}");
        let (response, started) = timed(&app, &uri).await;
        assert_within(&uri, started, FAST_ANSWER);
        assert_unavailable(response, &uri).await;
    }
    assert!(
        breaker_rejections(&f.state) > 0,
        "the breaker opened and answered by itself"
    );

    // DCS is back on its port.
    let restarted = MockDcs::start(MockConfig {
        bind: address,
        ..MockConfig::default()
    })
    .await
    .expect("DCS restarted on its port");
    // The breaker lets a probe through after at most its longest cool-down; the probe is one
    // call within the deadline.
    let (_, took) = poll_until(
        "the catalog answering from DCS again",
        BREAKER_MAX_COOL_DOWN + CALL_DEADLINE + LOAD_MARGIN,
        Duration::from_millis(50),
        async || {
            let (response, _) = timed(&app, "/api/v1/publishers").await;
            (response.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
    eprintln!("recovered {took:?} after the restart");
    // The old token was signed by the previous process: one 401, one login.
    assert_eq!(restarted.login_count(), 1);
    let (response, _) = timed(&app, "/api/v1/books").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-cache"), "MISS", "fresh from DCS");
}

/// The variable that makes [`dcs_mock_child_process`] serve: the port to listen on.
const CHILD_PORT_VAR: &str = "LMS_FAULTS_DCS_MOCK_PORT";

/// The fake DCS as a process of its own: this test binary run again with only this test,
/// which serves until it is killed. (The `dcs-mock` binary belongs to another package, so
/// cargo does not build it for these tests.)
#[test]
#[ignore = "the fake DCS process that the fault suite starts and kills; not a test by itself"]
fn dcs_mock_child_process() {
    let Some(port) = std::env::var(CHILD_PORT_VAR).ok() else {
        return;
    };
    let port: u16 = port.parse().expect("port");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let _dcs = MockDcs::start(MockConfig {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            ..MockConfig::default()
        })
        .await
        .expect("fake DCS on its port");
        std::future::pending::<()>().await;
    });
}

/// A fake DCS process on a fixed port, driven through its `/_mock/` control routes.
struct DcsProcess {
    port: u16,
    child: Option<std::process::Child>,
}

impl DcsProcess {
    async fn start(port: u16) -> Self {
        let mut process = Self { port, child: None };
        process.start_again().await;
        process
    }

    async fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "faults::dcs::dcs_mock_child_process",
                "--exact",
                "--ignored",
            ])
            .env(CHILD_PORT_VAR, self.port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the fake DCS process");
        self.child = Some(child);
        super::wait_for_port(self.port, true, Duration::from_secs(10)).await;
    }

    /// SIGKILL, with requests in flight or not.
    async fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL the fake DCS");
        child.wait().expect("reap the fake DCS");
        super::wait_for_port(self.port, false, Duration::from_secs(5)).await;
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One control request (`/_mock/...`, no auth); the status and the body.
    fn control(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("control connection");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: dcs\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("send control request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("control answer");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// `GET /_mock/stats`, with `request_count` for requests starting with `route`.
    fn stats(&self, route: &str) -> serde_json::Value {
        let (status, body) = self.control(
            "GET",
            &format!("/_mock/stats?route={}", route.replace(' ', "%20")),
            "",
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("stats JSON")
    }
}

impl Drop for DcsProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The DCS process is killed (SIGKILL) while reads wait for it, then started again on the
/// same port: the waiting reads end at once (stale copy, or 503), not at the deadline, and
/// lms-api recovers without a restart once DCS is back.
#[actix_web::test]
async fn dcs_process_killed_mid_request_then_restarted_on_its_port() {
    let mut dcs = DcsProcess::start(super::free_port()).await;
    let f = fixture(&dcs.url(), &[]).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    let (response, _) = timed(&app, "/api/v1/books/1").await;
    assert_eq!(header(&response, "x-cache"), "MISS");

    // DCS hangs on book reads, and the cached book has expired.
    let (status, body) = dcs.control(
        "POST",
        "/_mock/faults",
        &format!(
            r#"{{"route":"GET /books/","fault":{{"kind":"latency","ms":{}}}}}"#,
            SLOW_DCS.as_millis()
        ),
    );
    assert_eq!(status, 204, "{body}");
    f.clock.advance(PAST_TTL);
    let reads_before = dcs.stats("GET /books/")["request_count"].as_u64().unwrap();

    let reads = futures_util::future::join(
        timed(&app, "/api/v1/books/1"),
        timed(&app, "/api/v1/books/2"),
    );
    let kill = async {
        // Both reads are waiting at DCS: then the process dies.
        poll_until(
            "both reads waiting at DCS",
            CALL_DEADLINE,
            Duration::from_millis(10),
            async || {
                let seen = dcs.stats("GET /books/")["request_count"].as_u64().unwrap();
                (seen >= reads_before + 2).then_some(())
            },
        )
        .await;
        dcs.kill().await;
        Instant::now()
    };
    let (((stale, _), (uncached, _)), killed) = futures_util::future::join(reads, kill).await;
    // A connection cut mid-request is retried; the retry is refused, which is not retried:
    // both answers come right after the kill, long before the call deadline.
    assert_within("answers after the kill", killed, FAST_ANSWER);
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(header(&stale, "x-cache"), "STALE");
    assert_unavailable(uncached, "uncached book").await;

    dcs.start_again().await;
    let (_, took) = poll_until(
        "the catalog answering from DCS again",
        BREAKER_MAX_COOL_DOWN + CALL_DEADLINE + LOAD_MARGIN,
        Duration::from_millis(50),
        async || {
            let (response, _) = timed(&app, "/api/v1/books/1").await;
            let fresh = response
                .headers()
                .get("x-cache")
                .is_some_and(|v| v == "MISS");
            fresh.then_some(())
        },
    )
    .await;
    eprintln!("recovered {took:?} after the restart");
    // A new process, a new token secret: the old token was refused once, one login.
    assert_eq!(dcs.stats("/")["login_count"], 1);
}

/// DCS answers, but only after the call deadline: the expired copy is served stale and an
/// uncached read is a 503, both at the deadline and not later.
#[actix_web::test]
async fn a_slow_dcs_is_cut_at_the_call_deadline() {
    let dcs = MockDcs::start(MockConfig::default()).await.expect("DCS");
    let f = fixture(dcs.base_url(), &[]).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    let (response, _) = timed(&app, "/api/v1/books/1").await;
    assert_eq!(response.status(), StatusCode::OK);

    dcs.inject("GET /books/", Fault::Latency(SLOW_DCS), None);
    f.clock.advance(PAST_TTL);

    let (response, started) = timed(&app, "/api/v1/books/1").await;
    let took = assert_within("stale book", started, CALL_DEADLINE + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-cache"), "STALE");
    // It did ask DCS and waited for it, up to the deadline.
    assert!(took >= CALL_DEADLINE * 9 / 10, "{took:?}");

    let (response, started) = timed(&app, "/api/v1/books/2").await;
    let took = assert_within("uncached book", started, CALL_DEADLINE + LOAD_MARGIN);
    assert!(took >= CALL_DEADLINE * 9 / 10, "{took:?}");
    assert_unavailable(response, "uncached book").await;
}

/// 5xx: a transient one is retried and the reader never sees it; a persistent one is a 503
/// (or the stale copy) within the deadline, and once the breaker opens, without asking DCS.
#[actix_web::test]
async fn dcs_5xx_is_retried_when_transient_and_fails_fast_when_persistent() {
    let dcs = MockDcs::start(MockConfig::default()).await.expect("DCS");
    let f = fixture(dcs.base_url(), &[]).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    let (response, _) = timed(&app, "/api/v1/books").await;
    assert_eq!(response.status(), StatusCode::OK);

    for status in [500, 502, 503, 504] {
        let before = dcs.request_count("GET /books/");
        dcs.inject("GET /books/", Fault::Status(status), Some(2));
        let (response, started) = timed(&app, "/api/v1/books/1").await;
        assert_within(&format!("transient {status}"), started, CALL_DEADLINE);
        assert_eq!(response.status(), StatusCode::OK, "transient {status}");
        assert_eq!(
            dcs.request_count("GET /books/") - before,
            3,
            "two failures and the retry that succeeded ({status})"
        );
        // The next status starts from an expired entry: a read from DCS again.
        f.clock.advance(PAST_TTL);
    }

    // From now on every call fails.
    let (response, _) = timed(&app, "/api/v1/books").await;
    assert_eq!(response.status(), StatusCode::OK, "re-cached");
    dcs.inject("GET /books/", Fault::Status(503), None);
    f.clock.advance(PAST_TTL);
    let (response, started) = timed(&app, "/api/v1/books").await;
    assert_within("stale list", started, CALL_DEADLINE + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-cache"), "STALE");
    for id in 20..25 {
        let uri = format!("/api/v1/books/{id}");
        let (response, started) = timed(&app, &uri).await;
        assert_within(&uri, started, CALL_DEADLINE + LOAD_MARGIN);
        assert_unavailable(response, &uri).await;
    }
    // The breaker is open now: answers come at once, and only its probes (one per cool-down
    // at most) reach DCS.
    let before = dcs.request_count("GET /books/");
    let rejections_before = breaker_rejections(&f.state);
    let started = Instant::now();
    for id in 30..50 {
        let uri = format!("/api/v1/books/{id}");
        let (response, _) = timed(&app, &uri).await;
        assert_unavailable(response, &uri).await;
    }
    let took = assert_within("20 answers of an open breaker", started, FAST_ANSWER);
    let probes = dcs.request_count("GET /books/") - before;
    let most = usize::try_from(took.as_millis() / BREAKER_COOL_DOWN.as_millis()).unwrap() + 1;
    assert!(probes <= most, "{probes} DCS requests in {took:?}");
    let rejections = breaker_rejections(&f.state) - rejections_before;
    assert!(rejections + probes as u64 >= 20, "{rejections} rejections");

    // DCS recovers: within the breaker's longest cool-down plus one call.
    dcs.clear_faults();
    poll_until(
        "reads from DCS after the 5xx stopped",
        BREAKER_MAX_COOL_DOWN + CALL_DEADLINE + LOAD_MARGIN,
        Duration::from_millis(50),
        async || {
            let (response, _) = timed(&app, "/api/v1/books/1").await;
            (response.status() == StatusCode::OK).then_some(())
        },
    )
    .await;
}

/// 429: a `Retry-After` that fits into the deadline is waited out and the read succeeds; one
/// the deadline cannot hold is passed on at once (503 with DCS's `Retry-After`), not waited
/// for until the deadline.
#[actix_web::test]
async fn dcs_rate_limits_are_waited_out_only_when_they_fit_the_deadline() {
    let dcs = MockDcs::start(MockConfig::default()).await.expect("DCS");
    let f = fixture(dcs.base_url(), &[]).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    let (response, _) = timed(&app, "/api/v1/publishers").await;
    assert_eq!(response.status(), StatusCode::OK, "logged in");

    let before = dcs.request_count("GET /books/");
    dcs.inject(
        "GET /books/",
        Fault::TooManyRequests {
            retry_after: "1".into(),
        },
        Some(1),
    );
    let (response, started) = timed(&app, "/api/v1/books/1").await;
    let took = assert_within("a short Retry-After", started, CALL_DEADLINE + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        took >= Duration::from_millis(950),
        "waited it out: {took:?}"
    );
    assert_eq!(dcs.request_count("GET /books/") - before, 2);

    // Longer than the whole deadline (and shorter than the client's 30 s ceiling).
    let retry_after = CALL_DEADLINE.as_secs() + 3;
    dcs.inject(
        "GET /books/",
        Fault::TooManyRequests {
            retry_after: retry_after.to_string(),
        },
        None,
    );
    let before = dcs.request_count("GET /books/");
    let (response, started) = timed(&app, "/api/v1/books/2").await;
    assert_within("a Retry-After past the deadline", started, FAST_ANSWER);
    assert_eq!(
        assert_unavailable(response, "rate limited").await,
        retry_after,
        "DCS's own Retry-After is passed on"
    );
    assert_eq!(dcs.request_count("GET /books/") - before, 1, "not retried");
}

/// A connection closed without an answer is retried for these idempotent GETs.
#[actix_web::test]
async fn dcs_connection_resets_are_retried() {
    let dcs = MockDcs::start(MockConfig::default()).await.expect("DCS");
    let f = fixture(dcs.base_url(), &[]).await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    let (response, _) = timed(&app, "/api/v1/publishers").await;
    assert_eq!(response.status(), StatusCode::OK, "logged in");

    for (route, uri) in [
        ("GET /books/", "/api/v1/books/1"),
        ("GET /publishers/", "/api/v1/publishers/1"),
        ("GET /storage/", "/api/v1/books/1/config"),
    ] {
        let before = dcs.request_count(route);
        dcs.inject(route, Fault::Reset, Some(2));
        let (response, started) = timed(&app, uri).await;
        assert_within(uri, started, CALL_DEADLINE);
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert!(
            dcs.request_count(route) - before >= 3,
            "{uri}: two resets, then the retry"
        );
    }
}

/// Every DCS token expires while 60 reads of different books wait for DCS: each gets a 401,
/// and the client logs in once for all of them; every read succeeds within its deadline.
#[actix_web::test]
async fn a_token_expiry_storm_costs_one_login() {
    const READERS: usize = 60;
    /// How long DCS takes with each read: long enough for every reader to reach DCS before the
    /// first one is answered, even on a loaded machine.
    const IN_FLIGHT: Duration = Duration::from_secs(2);
    /// This test's call deadline: two attempts of each read (the refused one and the retry)
    /// fit into it with room to spare.
    const STORM_DEADLINE: Duration = Duration::from_secs(8);

    let dcs = MockDcs::start(MockConfig::default()).await.expect("DCS");
    let mut ids = vec![dcs.books()[0].id];
    for n in 1..READERS {
        ids.push(
            dcs.add_book(NewBook::new("Dream Press", format!("STORM{n:03}")))
                .expect("book")
                .id,
        );
    }
    // Room for every reader at once (the default of 10 would queue them instead).
    let deadline = STORM_DEADLINE.as_millis().to_string();
    let f = fixture(
        dcs.base_url(),
        &[
            ("DREAM_CENTRAL_STORAGE_MAX_CONNECTIONS", "128"),
            ("DREAM_CENTRAL_STORAGE_CALL_DEADLINE_MS", deadline.as_str()),
        ],
    )
    .await;
    let app = actix_test::init_service(create_app(f.state.clone())).await;
    let (response, _) = timed(&app, "/api/v1/publishers").await;
    assert_eq!(response.status(), StatusCode::OK);
    let logins = dcs.login_count();
    assert_eq!(logins, 1);

    dcs.inject("GET /books/", Fault::Latency(IN_FLIGHT), None);
    let before = dcs.request_count("GET /books/");
    let started = Instant::now();
    let reads = futures_util::future::join_all(ids.iter().map(|id| {
        let app = &app;
        async move {
            let uri = format!("/api/v1/books/{id}");
            let response = actix_test::call_service(app, get(&uri)).await;
            (response.status(), started.elapsed())
        }
    }));
    // Once every read has reached DCS (and sleeps there), every token is revoked.
    let storm = async {
        poll_until(
            "every read in flight at DCS",
            IN_FLIGHT,
            Duration::from_millis(5),
            async || (dcs.request_count("GET /books/") - before >= READERS).then_some(()),
        )
        .await;
        dcs.expire_tokens();
    };
    let (answers, ()) = futures_util::future::join(reads, storm).await;

    for (id, (status, took)) in ids.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "book {id}");
        assert!(
            *took <= STORM_DEADLINE + LOAD_MARGIN,
            "book {id} took {took:?}"
        );
    }
    assert_eq!(dcs.login_count() - logins, 1, "one login for the storm");
    assert_eq!(
        dcs.request_count("GET /books/") - before,
        2 * READERS,
        "each read: the refused attempt and one retry"
    );
}
