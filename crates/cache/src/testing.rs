//! A real Redis for tests and benchmarks: a private `redis-server` (never the machine's shared
//! one) on a free loopback port, without persistence, killed on drop. `scripts/test.sh`
//! installs the binary; other crates' tests and the benchmarks use this too.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `redis-server` binary: `REDIS_SERVER_BIN`, else the one on `PATH` (scripts/lib.sh's
/// `ensure_redis` installs it).
pub fn redis_server_binary() -> PathBuf {
    std::env::var_os("REDIS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// A running `redis-server`. It can be killed and started again on the same port, as a
/// restarted Redis comes back (empty: nothing is persisted).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server (panics when the binary is missing or the port does not open).
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        redis.start_again().await;
        redis
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its port (again, after [`RedisServer::kill`]).
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
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
        self.wait_for_port(true, Duration::from_secs(10)).await;
    }

    /// SIGKILL: no shutdown, connections just die. Returns once the port refuses.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("redis-server is running");
        child.kill().expect("SIGKILL redis-server");
        child.wait().expect("reap redis-server");
        self.wait_for_port(false, Duration::from_secs(5)).await;
    }

    async fn wait_for_port(&self, open: bool, bound: Duration) {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + bound;
        while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
            != open
        {
            assert!(
                Instant::now() < deadline,
                "redis-server on {address} is still {} after {bound:?}",
                if open { "closed" } else { "open" }
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
