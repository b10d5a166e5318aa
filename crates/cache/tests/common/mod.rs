//! Helpers shared by the integration tests.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod conformance;

use std::io::Write as _;
use std::time::{Duration, Instant};

use cache::RedisConfig;

/// A fetch error for tests: cheap to clone, compared by message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDown(pub &'static str);

/// Polls `check` every 10 ms until it holds; panics after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A namespace no other test (or run) uses.
pub fn unique_namespace(test: &str) -> String {
    format!("cache-test:{test}:{:016x}:", fastrand::u64(..))
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A config for a reachable Redis with a fresh namespace. When Redis is unreachable this
/// panics, unless `CACHE_SKIP_REDIS_TESTS=1`, in which case it reports the skip and returns
/// `None`.
pub async fn redis_or_skip(test: &str) -> Option<RedisConfig> {
    let mut config = RedisConfig::new(redis_url()).with_namespace(unique_namespace(test));
    // Tight timings so reconnect tests finish quickly.
    config.reconnect_min_delay = Duration::from_millis(20);
    config.reconnect_max_delay = Duration::from_millis(200);
    config.keepalive_interval = Duration::from_secs(1);
    match ping(&config).await {
        Ok(()) => Some(config),
        Err(reason) => {
            if std::env::var("CACHE_SKIP_REDIS_TESTS").as_deref() == Ok("1") {
                // Written to stderr directly: the test harness captures `eprintln!` of
                // passing tests, and a skip must be visible.
                let notice = format!(
                    "SKIPPED {test}: Redis unreachable at {} ({reason}); CACHE_SKIP_REDIS_TESTS=1\n",
                    config.redacted_url()
                );
                let _ = std::io::stderr().write_all(notice.as_bytes());
                None
            } else {
                panic!(
                    "Redis unreachable at {} ({reason}). Start Redis, point REDIS_URL at one, \
                     or set CACHE_SKIP_REDIS_TESTS=1 to skip the Redis tests.",
                    config.redacted_url()
                );
            }
        }
    }
}

async fn ping(config: &RedisConfig) -> Result<(), String> {
    let mut connection = connect(config).await?;
    redis::cmd("PING")
        .exec_async(&mut connection)
        .await
        .map_err(|error| error.to_string())
}

/// A plain connection for inspecting Redis from a test.
pub async fn connect(config: &RedisConfig) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(config.url.as_str()).map_err(|error| error.to_string())?;
    let timeouts = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    client
        .get_multiplexed_async_connection_with_config(&timeouts)
        .await
        .map_err(|error| error.to_string())
}

/// Kills the connection named `client_name` (and only it); returns how many were killed.
pub async fn kill_client_named(config: &RedisConfig, client_name: &str) -> usize {
    let mut connection = connect(config).await.expect("inspection connection");
    let listing: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut connection)
        .await
        .expect("CLIENT LIST");
    let wanted = format!("name={client_name}");
    let ids: Vec<String> = listing
        .lines()
        .filter(|line| line.split(' ').any(|field| field == wanted))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect();
    for id in &ids {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .exec_async(&mut connection)
            .await
            .expect("CLIENT KILL ID");
    }
    ids.len()
}

/// The last command Redis saw on the connection named `client_name` (`cmd=` of `CLIENT LIST`),
/// or `None` while no such connection exists.
pub async fn last_command_of_client_named(
    config: &RedisConfig,
    client_name: &str,
) -> Option<String> {
    let mut connection = connect(config).await.expect("inspection connection");
    let listing: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut connection)
        .await
        .expect("CLIENT LIST");
    let wanted = format!("name={client_name}");
    listing
        .lines()
        .find(|line| line.split(' ').any(|field| field == wanted))
        .and_then(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("cmd="))
                .map(str::to_owned)
        })
}

/// A local TCP port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// The `host:port` a `redis://` URL points at.
pub fn redis_address(config: &RedisConfig) -> String {
    let client = redis::Client::open(config.url.as_str()).expect("valid Redis URL");
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => panic!("the outage test needs a TCP Redis, not {other:?}"),
    }
}

/// `config` with its URL's `host:port` replaced by `address` (credentials and database kept).
pub fn via_address(config: &RedisConfig, address: &str) -> RedisConfig {
    let url = &config.url;
    let authority_start = url.find("://").expect("URL has a scheme") + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?'])
        .map_or(url.len(), |index| authority_start + index);
    let host_start = url[authority_start..authority_end]
        .rfind('@')
        .map_or(authority_start, |index| authority_start + index + 1);
    RedisConfig {
        url: format!("{}{address}{}", &url[..host_start], &url[authority_end..]),
        ..config.clone()
    }
}

/// A TCP proxy in front of Redis that can simulate an outage: `cut` drops every connection and
/// refuses new ones until `restore`.
pub struct OutageProxy {
    address: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pipes: std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl OutageProxy {
    pub async fn start(target: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address").to_string();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pipes = std::sync::Arc::new(std::sync::Mutex::new(tokio::task::JoinSet::new()));
        let accept_loop = tokio::spawn({
            let up = std::sync::Arc::clone(&up);
            let pipes = std::sync::Arc::clone(&pipes);
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection closed
                    }
                    let target = target.clone();
                    pipes.lock().expect("pipes lock").spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            }
        });
        Self {
            address,
            up,
            pipes,
            accept_loop,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.pipes.lock().expect("pipes lock").abort_all();
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.pipes.lock().expect("pipes lock").abort_all();
    }
}
