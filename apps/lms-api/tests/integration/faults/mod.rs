//! The fault suite: each dependency of lms-api fails the way it fails in production (a process
//! stopped or killed and started again on the same port, an upstream that is slow, answers 5xx
//! or 429, resets connections, expires tokens), and each case asserts the answer clients get
//! (stale data, a fast 503 with its JSON code, a retry that succeeds, recovery) and how long
//! it took against the deadline that bounds it.
//!
//! One file per dependency: [`dcs`], [`redis`], [`postgres`], [`storage`]. The operators' view
//! of the same cases is the table in `docs/faults.md`.

mod dcs;
mod postgres;
mod redis;
mod storage;

use std::time::{Duration, Instant};

/// Added to every deadline a test asserts against: the suite runs under nextest next to
/// hundreds of other tests on two cores, so a request may be scheduled late. A bound that is
/// the deadline plus this margin still fails when the code waits for the next deadline up
/// (a 30 s connect timeout, a 10 s latency, a breaker that never closes).
pub const LOAD_MARGIN: Duration = Duration::from_secs(2);

/// Panics unless `started.elapsed()` is at most `bound`; returns the elapsed time.
#[track_caller]
pub fn assert_within(what: &str, started: Instant, bound: Duration) -> Duration {
    let elapsed = started.elapsed();
    assert!(
        elapsed <= bound,
        "{what}: took {elapsed:?}, more than the bound of {bound:?}"
    );
    elapsed
}

/// Runs `attempt` every `interval` until it returns `Some`, for at most `bound`; panics with
/// `what` when the bound passes first. Returns the value and how long it took.
pub async fn poll_until<T>(
    what: &str,
    bound: Duration,
    interval: Duration,
    mut attempt: impl AsyncFnMut() -> Option<T>,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(value) = attempt().await {
            return (value, started.elapsed());
        }
        assert!(
            started.elapsed() < bound,
            "{what}: not reached within {bound:?}"
        );
        tokio::time::sleep(interval).await;
    }
}

/// A port nothing listens on right now (the OS picks it; it is released at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Waits (bounded, polling) until `127.0.0.1:port` accepts connections, or until it refuses
/// them when `open` is false.
pub async fn wait_for_port(port: u16, open: bool, bound: Duration) {
    poll_until(
        &format!("port {port} {}", if open { "open" } else { "closed" }),
        bound,
        Duration::from_millis(20),
        async || (port_open(port) == open).then_some(()),
    )
    .await;
}
