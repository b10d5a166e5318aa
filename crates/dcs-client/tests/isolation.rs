//! Isolation, deadlines and recovery against `dcs-mock` over loopback, on the system clock:
//! held or slow streams do not starve API calls, a slow DCS fails at the call deadline, a
//! refused connection fails fast, and traffic resumes within seconds when DCS is back.
//!
//! Every test is bounded in time (the longest waits out the default 5 s deadline).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dcs_client::{
    AssetPath, Conditional, Credentials, DcsApi, DcsClient, DcsConfig, DownloadOptions,
};
use dcs_mock::{Fault, MockConfig, MockDcs, NewBook};

const EMAIL: &str = "admin@admin.com";
const PASSWORD: &str = "admin";
const PUBLISHER: &str = "Iso House";
const BOOK: &str = "BIGBOOK";
const BIG: &str = "media/big.bin";
const BIG_BYTES: usize = 4 * 1024 * 1024;

async fn start_mock(bind: Option<SocketAddr>) -> MockDcs {
    let mut config = MockConfig::default();
    if let Some(addr) = bind {
        config.bind = addr;
    }
    let mock = MockDcs::start(config).await.expect("dcs-mock starts");
    mock.add_book(NewBook::new(PUBLISHER, BOOK).file(BIG, vec![7u8; BIG_BYTES]))
        .expect("book added");
    mock
}

/// The production defaults, against `base_url`.
fn default_client(base_url: &str) -> DcsClient {
    DcsClient::new(DcsConfig::new(
        base_url,
        Credentials::password(EMAIL, PASSWORD),
    ))
    .expect("client")
}

async fn open_big_stream(c: &DcsClient) -> Result<Conditional, dcs_client::DcsError> {
    let path = AssetPath::parse(BIG).unwrap();
    c.download_asset(PUBLISHER, BOOK, &path, &DownloadOptions::new())
        .await
}

/// The attack: more streams of a large object than there are stream slots, opened
/// and never read. An unrelated API call still answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_streams_do_not_block_an_api_call() {
    let mock = start_mock(None).await;
    let c = default_client(mock.base_url());
    c.login().await.unwrap();
    let limit = c.config().max_streams;
    let mut held = Vec::new();
    for _ in 0..limit {
        let dl = open_big_stream(&c).await.unwrap().into_download().unwrap();
        assert_eq!(dl.content_length, Some(BIG_BYTES as u64));
        held.push(dl);
    }
    assert_eq!(c.stats().streams_in_flight, limit);
    // Two more streams queue for a stream slot and give up after `pool_wait_timeout`.
    let extra: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                (open_big_stream(&c).await, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    let publisher = c.get_publisher(1).await.unwrap();
    let took = started.elapsed();
    assert_eq!(publisher.id, 1);
    assert!(took < Duration::from_secs(1), "API call took {took:?}");

    for task in extra {
        let (result, waited) = task.await.unwrap();
        let err = result.unwrap_err();
        assert_eq!(err.code(), "dcs_pool_exhausted", "{err}");
        assert!(err.is_unavailable());
        assert!(
            err.to_string().contains("all 10 slots for streams"),
            "{err}"
        );
        assert!(waited < Duration::from_millis(1500), "{waited:?}");
    }
    let stats = c.stats();
    assert_eq!(stats.pool_exhausted, 2);
    assert_eq!(stats.deadline_exceeded, 0);
    // Dropping the streams frees their slots.
    drop(held);
    assert_eq!(c.stats().streams_in_flight, 0);
    let dl = open_big_stream(&c).await.unwrap().into_download().unwrap();
    assert_eq!(dl.bytes().await.unwrap().len(), BIG_BYTES);
}

/// The slow-DCS case: more concurrent downloads than stream slots, each waiting for a
/// slow answer. An unrelated API call still answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_streams_do_not_block_an_api_call() {
    let mock = start_mock(None).await;
    let c = default_client(mock.base_url());
    c.login().await.unwrap();
    mock.inject(
        "GET /storage/",
        Fault::Latency(Duration::from_secs(3)),
        None,
    );
    let downloads: Vec<_> = (0..12)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { open_big_stream(&c).await.map(|_| ()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.stats().streams_in_flight, 10);
    let started = Instant::now();
    c.get_publisher(1).await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "API call took {took:?}");
    for d in downloads {
        d.abort();
    }
}

/// A DCS that answers after 40 s: the call fails at the default 5 s deadline, not after
/// 4 attempts x 30 s, with an error that names the deadline and means "unavailable".
#[tokio::test]
async fn a_slow_dcs_fails_at_the_default_call_deadline() {
    let mock = start_mock(None).await;
    let c = default_client(mock.base_url());
    c.login().await.unwrap();
    mock.inject("GET /books/", Fault::Latency(Duration::from_secs(40)), None);
    let started = Instant::now();
    let err = c.get_book(1).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), "dcs_deadline_exceeded", "{err}");
    assert_eq!(
        err.to_string(),
        "DCS call deadline of 5s exceeded while waiting for the response"
    );
    assert!(err.is_unavailable());
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_millis(5500),
        "{took:?}"
    );
    assert_eq!(mock.request_count("GET /books/"), 1, "no attempt past it");
    assert_eq!(c.stats().deadline_exceeded, 1);
}

/// Short attempt timeouts are retried, but never past the call deadline.
#[tokio::test]
async fn retries_stop_at_the_call_deadline() {
    let mock = start_mock(None).await;
    let mut cfg = DcsConfig::new(mock.base_url(), Credentials::password(EMAIL, PASSWORD));
    cfg.api_timeout = Duration::from_millis(300);
    cfg.call_deadline = Duration::from_secs(1);
    let c = DcsClient::new(cfg).unwrap();
    c.login().await.unwrap();
    mock.inject("GET /books/", Fault::Latency(Duration::from_secs(40)), None);
    let started = Instant::now();
    let err = c.get_book(1).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        matches!(err.code(), "dcs_deadline_exceeded" | "dcs_timeout"),
        "{err}"
    );
    assert!(took < Duration::from_millis(1300), "{took:?}");
    let attempts = mock.request_count("GET /books/");
    assert!((2..=4).contains(&attempts), "{attempts} attempts");
}

/// A download gets a deadline for its response head.
#[tokio::test]
async fn a_download_fails_at_its_head_deadline() {
    let mock = start_mock(None).await;
    let mut cfg = DcsConfig::new(mock.base_url(), Credentials::password(EMAIL, PASSWORD));
    cfg.download_deadline = Duration::from_millis(500);
    let c = DcsClient::new(cfg).unwrap();
    c.login().await.unwrap();
    mock.inject(
        "GET /storage/",
        Fault::Latency(Duration::from_secs(40)),
        None,
    );
    let started = Instant::now();
    let err = open_big_stream(&c).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), "dcs_deadline_exceeded", "{err}");
    assert!(
        err.to_string()
            .contains("500ms exceeded while waiting for the response head"),
        "{err}"
    );
    assert!(took < Duration::from_millis(800), "{took:?}");
    assert_eq!(c.stats().streams_in_flight, 0, "the slot is given back");
}

/// Nothing listens: the first failure comes at once, not after a backoff ladder.
#[tokio::test]
async fn a_refused_connection_fails_fast() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = default_client(&format!("http://{addr}"));
    for _ in 0..3 {
        let started = Instant::now();
        let err = c.get_publisher(1).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(err.code(), "dcs_network", "{err}");
        assert!(err.is_unavailable());
        assert!(took < Duration::from_millis(300), "{took:?}");
    }
}

/// DCS goes away and comes back on the same port: calls fail fast while it is down, the
/// breaker opens, and traffic resumes within a few seconds of its return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_resumes_within_seconds_after_an_outage() {
    let mock = start_mock(None).await;
    let addr = mock.local_addr();
    let c = default_client(mock.base_url());
    c.get_publisher(1).await.unwrap();
    mock.shutdown().await;

    // Down for 2.5 s: every call fails fast.
    let outage = Instant::now();
    let mut failures = 0;
    while outage.elapsed() < Duration::from_millis(2500) {
        let started = Instant::now();
        let err = c.get_publisher(1).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "{:?}: {err}",
            started.elapsed()
        );
        failures += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failures > 10);
    assert!(
        matches!(
            c.breaker_state(),
            dcs_client::BreakerState::Open { .. } | dcs_client::BreakerState::HalfOpen { .. }
        ),
        "{:?}",
        c.breaker_state()
    );
    let rejected = c.stats().breaker_open_rejections;
    assert!(rejected > 0, "the open breaker answered without a request");

    // Back on the same port.
    let _mock = start_mock(Some(addr)).await;
    let back = Instant::now();
    loop {
        match c.get_publisher(1).await {
            Ok(p) => {
                assert_eq!(p.id, 1);
                break;
            }
            Err(err) => {
                assert!(err.is_unavailable(), "{err}");
                assert!(
                    back.elapsed() < Duration::from_secs(6),
                    "still failing {:?} after DCS returned: {err}",
                    back.elapsed()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = back.elapsed();
    assert!(recovered < Duration::from_secs(6), "{recovered:?}");
    assert_eq!(
        c.breaker_state(),
        dcs_client::BreakerState::Closed { failures: 0 }
    );
    eprintln!("traffic resumed {recovered:?} after DCS returned");
}
