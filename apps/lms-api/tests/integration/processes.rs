//! Real processes and ports the tests start, stop and wait on: free ports, bounded polling,
//! and a private `redis-server` (never the machine's shared one).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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

/// The `redis-server` binary: `REDIS_SERVER_BIN`, else the one on `PATH` (scripts/lib.sh's
/// `ensure_redis` installs it).
fn redis_server_binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// A `redis-server` of this test alone, on its own port, without persistence.
pub struct RedisProcess {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisProcess {
    pub async fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.start_again().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port (again).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(redis_server_binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/test.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, true, Duration::from_secs(10)).await;
    }

    /// SIGKILL: no shutdown, connections just die.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL redis-server");
        child.wait().expect("reap redis-server");
        wait_for_port(self.port, false, Duration::from_secs(5)).await;
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
