//! Client configuration: base URL, credentials, timeouts, retry, breaker, paging.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

/// How DCS is authenticated against. `Debug` never shows a secret.
///
/// * `password`: `POST /auth/login`; works on every route.
/// * `api_key`: sent as the Bearer value; DCS accepts it only on `/books/*` and
///   `/publishers/*`.
/// * both: the API key on books/publishers, a login for `/storage/*` and `/webhooks/*`.
#[derive(Clone, Default)]
pub struct Credentials {
    pub(crate) email: Option<String>,
    pub(crate) password: Option<SecretString>,
    pub(crate) api_key: Option<SecretString>,
}

impl Credentials {
    /// E-mail and password (DCS trims and lowercases the e-mail).
    pub fn password(email: impl Into<String>, password: impl Into<SecretString>) -> Self {
        Credentials {
            email: Some(email.into()),
            password: Some(password.into()),
            api_key: None,
        }
    }

    /// An API key only (`dcs_{env}_{service}_...`).
    pub fn api_key(key: impl Into<SecretString>) -> Self {
        Credentials {
            email: None,
            password: None,
            api_key: Some(key.into()),
        }
    }

    /// Adds an API key to password credentials (or replaces the key).
    pub fn with_api_key(mut self, key: impl Into<SecretString>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Adds e-mail and password to API-key credentials.
    pub fn with_password(
        mut self,
        email: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Self {
        self.email = Some(email.into());
        self.password = Some(password.into());
        self
    }

    /// Whether an e-mail and password are configured.
    pub fn has_password(&self) -> bool {
        self.email.is_some() && self.password.is_some()
    }

    /// Whether an API key is configured.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// The configured e-mail, if any.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// How backoff delays are randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly `base * 2^(n-1)` (deterministic; for tests).
    None,
    /// Uniform in `[0, d]`.
    Full,
    /// Uniform in `[d/2, d]` (the default).
    #[default]
    Equal,
}

/// Retry policy for idempotent requests.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Retries after the first attempt (default 3, i.e. at most 4 requests).
    pub max_retries: u32,
    /// The first backoff; doubled each retry: 100 ms, 200 ms, 400 ms by default (short, so
    /// retries fit into the call deadline).
    pub base_delay: Duration,
    /// Upper bound of one backoff delay (default 1 s).
    pub max_delay: Duration,
    /// Jitter mode (default [`Jitter::Equal`]).
    pub jitter: Jitter,
    /// The longest `Retry-After` that is waited out (default 30 s); a longer one returns
    /// [`DcsError::RateLimited`](crate::DcsError::RateLimited) at once.
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            jitter: Jitter::Equal,
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn disabled() -> Self {
        RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        }
    }

    /// The backoff before retry number `retry` (1-based), with jitter applied.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        let d = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => d.mul_f64(fastrand::f64()),
            Jitter::Equal => d / 2 + (d / 2).mul_f64(fastrand::f64()),
        }
    }
}

/// Circuit breaker settings.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive upstream failures (5xx, network, timeouts) that open the breaker
    /// (default 5). `0` disables the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before one probe is let through (default 1 s). Each
    /// failed probe doubles the next open time, up to `max_cool_down`; a successful probe
    /// resets it.
    pub cool_down: Duration,
    /// The longest open time after repeated failed probes (default 5 s; a value below
    /// `cool_down` means `cool_down`). This bounds how long traffic stays refused after DCS
    /// is back.
    pub max_cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(1),
            max_cool_down: Duration::from_secs(5),
        }
    }
}

/// Configuration of [`DcsClient`](crate::DcsClient). Build it with [`DcsConfig::new`] and
/// change the public fields; everything has a sensible default. `Debug` redacts secrets.
#[derive(Debug, Clone)]
pub struct DcsConfig {
    /// DCS base URL, e.g. `https://dcs.example.com` or `http://127.0.0.1:8081` (a path prefix
    /// is kept: `https://host/dcs` -> `https://host/dcs/books/`).
    pub base_url: String,
    /// Credentials.
    pub credentials: Credentials,
    /// TCP (+TLS) connect timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Timeout of one API call attempt, head and body (default 30 s).
    pub api_timeout: Duration,
    /// Downloads: timeout to the response head (default 60 s).
    pub download_timeout: Duration,
    /// Downloads: longest pause between two body chunks (default 60 s).
    pub download_idle_timeout: Duration,
    /// Overall deadline of one API (JSON) call: slot wait, login, attempts, retries and waits
    /// included (default 5 s). A wait that would end past it is not started, an attempt gets
    /// at most what is left of it, and a call that reaches it fails with
    /// [`DcsError::DeadlineExceeded`](crate::DcsError::DeadlineExceeded).
    pub call_deadline: Duration,
    /// Overall deadline of a streamed download up to its response head, retries included
    /// (default 10 s). The body, read after the call returned, is bounded by
    /// `download_idle_timeout` between chunks, not by this.
    pub download_deadline: Duration,
    /// At most this many API (JSON) calls in flight to DCS (default 10). Streamed downloads
    /// have their own budget (`max_streams`), so they can never starve these.
    pub max_connections_per_host: usize,
    /// At most this many streamed downloads (covers, logos, assets) in flight, each from its
    /// request until its body is read to the end or dropped (default 10).
    pub max_streams: usize,
    /// Longest wait for a free slot (of `max_connections_per_host` or `max_streams`) before
    /// the call fails with [`DcsError::PoolExhausted`](crate::DcsError::PoolExhausted)
    /// (default 1 s; the call deadline still applies).
    pub pool_wait_timeout: Duration,
    /// Idle pooled connections are closed after this long (default 90 s).
    pub pool_idle_timeout: Duration,
    /// The largest response body read into memory (API answers and error bodies; streamed
    /// downloads are not limited). A larger one is a `Decode` error (default 64 MiB).
    pub max_body_bytes: usize,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
    /// Log in again this long before the JWT's `exp` (default 5 min).
    pub token_refresh_margin: Duration,
    /// Page size for `GET /publishers/` (1..=1000, default 100).
    pub publishers_page_size: u32,
    /// Ids per `POST /books/batch` (1..=100, default 100).
    pub batch_size: usize,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl DcsConfig {
    /// A configuration with the defaults.
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        DcsConfig {
            base_url: base_url.into(),
            credentials,
            connect_timeout: Duration::from_secs(5),
            api_timeout: Duration::from_secs(30),
            download_timeout: Duration::from_secs(60),
            download_idle_timeout: Duration::from_secs(60),
            call_deadline: Duration::from_secs(5),
            download_deadline: Duration::from_secs(10),
            max_connections_per_host: 10,
            max_streams: 10,
            pool_wait_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(90),
            max_body_bytes: 64 * 1024 * 1024,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            token_refresh_margin: Duration::from_secs(5 * 60),
            publishers_page_size: 100,
            batch_size: 100,
            user_agent: concat!("dcs-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl Default for DcsConfig {
    /// `http://127.0.0.1:8081` with no credentials (set them before use).
    fn default() -> Self {
        DcsConfig::new("http://127.0.0.1:8081", Credentials::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let cfg = DcsConfig::new(
            "http://x",
            Credentials::password("a@b.c", "hunter2-password").with_api_key("dcs_test_key_123"),
        );
        let s = format!("{cfg:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(!s.contains("dcs_test_key"), "{s}");
        assert!(s.contains("a@b.c"));
        assert!(s.contains("[redacted]"));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cfg = DcsConfig::new("http://x", Credentials::api_key("k"));
        assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
        assert_eq!(cfg.api_timeout, Duration::from_secs(30));
        assert_eq!(cfg.download_timeout, Duration::from_secs(60));
        assert_eq!(cfg.call_deadline, Duration::from_secs(5));
        assert_eq!(cfg.download_deadline, Duration::from_secs(10));
        assert_eq!(cfg.max_connections_per_host, 10);
        assert_eq!(cfg.max_streams, 10);
        assert_eq!(cfg.pool_wait_timeout, Duration::from_secs(1));
        assert_eq!(cfg.token_refresh_margin, Duration::from_secs(5 * 60));
        assert_eq!(cfg.retry.max_retries, 3);
        assert_eq!(cfg.retry.base_delay, Duration::from_millis(100));
        assert_eq!(cfg.retry.max_delay, Duration::from_secs(1));
        assert_eq!(cfg.retry.jitter, Jitter::Equal);
        assert_eq!(cfg.breaker.failure_threshold, 5);
        assert_eq!(cfg.breaker.cool_down, Duration::from_secs(1));
        assert_eq!(cfg.breaker.max_cool_down, Duration::from_secs(5));
        assert_eq!(cfg.publishers_page_size, 100);
        assert_eq!(cfg.batch_size, 100);
    }

    #[test]
    fn backoff_doubles_and_jitters_within_bounds() {
        let mut r = RetryConfig {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            jitter: Jitter::None,
            ..RetryConfig::default()
        };
        assert_eq!(r.backoff(1), Duration::from_secs(1));
        assert_eq!(r.backoff(2), Duration::from_secs(2));
        assert_eq!(r.backoff(3), Duration::from_secs(4));
        r.max_delay = Duration::from_secs(3);
        assert_eq!(r.backoff(3), Duration::from_secs(3));
        r.max_delay = Duration::from_secs(30);
        r.jitter = Jitter::Equal;
        for _ in 0..200 {
            let d = r.backoff(3);
            assert!(
                d >= Duration::from_secs(2) && d <= Duration::from_secs(4),
                "{d:?}"
            );
        }
        r.jitter = Jitter::Full;
        for _ in 0..200 {
            let d = r.backoff(2);
            assert!(d <= Duration::from_secs(2), "{d:?}");
        }
    }
}
