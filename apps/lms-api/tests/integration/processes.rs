//! Ports the tests start, stop and wait on: free ports and bounded polling. (A private
//! `redis-server` is `cache::testing::RedisServer`, an S3 server `storage::testing::S3sFs`.)

use std::time::{Duration, Instant};

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
