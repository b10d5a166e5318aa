//! Protection against slow or greedy clients: `LMS_BODY_READ_TIMEOUT`, `LMS_MAX_CONNECTIONS`,
//! `LMS_CLIENT_REQUEST_TIMEOUT`, `LMS_CLIENT_DISCONNECT_TIMEOUT`, `LMS_STREAM_IDLE_TIMEOUT`,
//! `LMS_MAX_STREAMS_PER_CLIENT`, `LMS_WORKERS`, and the webhook subscription re-check
//! (`DCS_WEBHOOK_RECHECK_INTERVAL`) and how long deliveries are kept
//! (`DCS_WEBHOOK_LOG_RETENTION`).

use std::time::Duration;

use super::reader::Reader;

/// Limits on what one connection or client may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// `LMS_BODY_READ_TIMEOUT` (seconds, default 10): a request body must arrive in full
    /// within this time after the handler starts reading it; otherwise 408 and the
    /// connection is closed.
    pub body_read_timeout: Duration,
    /// `LMS_MAX_CONNECTIONS` (default 1024): concurrent connections per worker thread;
    /// further connections wait in the listen backlog.
    pub max_connections: usize,
    /// `LMS_WORKERS` (default: one per CPU core): worker threads, each with its own
    /// `LMS_MAX_CONNECTIONS`.
    pub workers: Option<usize>,
    /// `LMS_CLIENT_REQUEST_TIMEOUT` (seconds, default 5): time for a client to send the
    /// request head (line and headers).
    pub client_request_timeout: Duration,
    /// `LMS_CLIENT_DISCONNECT_TIMEOUT` (seconds, default 2): time the server waits for a
    /// client to close its side before dropping the connection.
    pub client_disconnect_timeout: Duration,
    /// `LMS_STREAM_IDLE_TIMEOUT` (seconds, default 30): a streamed answer (cover, asset,
    /// media, file) whose reader takes nothing for this long is ended and its upstream
    /// stream dropped.
    pub stream_idle_timeout: Duration,
    /// `LMS_MAX_STREAMS_PER_CLIENT` (default 8): concurrent streamed answers per client
    /// (token subject, or remote IP without a token); beyond it 429 with `Retry-After`.
    pub max_streams_per_client: usize,
    /// `DCS_WEBHOOK_RECHECK_INTERVAL` (seconds, default 900): how often the DCS webhook
    /// subscription is checked again after start-up (DCS may lose or deactivate it).
    pub webhook_recheck_interval: Duration,
    /// `DCS_WEBHOOK_LOG_RETENTION` (seconds, default 30 days): deliveries older than this are
    /// deleted from `webhook_event_logs`.
    pub webhook_log_retention: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            workers: None,
            client_request_timeout: Duration::from_secs(5),
            client_disconnect_timeout: Duration::from_secs(2),
            stream_idle_timeout: Duration::from_secs(30),
            max_streams_per_client: 8,
            webhook_recheck_interval: Duration::from_secs(900),
            webhook_log_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Reads the guard variables.
pub(super) fn read_guards(env: &mut Reader<'_>) -> GuardSettings {
    let d = GuardSettings::default();
    GuardSettings {
        body_read_timeout: millis_or_seconds(env, "LMS_BODY_READ_TIMEOUT", d.body_read_timeout),
        max_connections: usize::try_from(
            env.positive("LMS_MAX_CONNECTIONS", d.max_connections as u64),
        )
        .unwrap_or(d.max_connections),
        workers: env
            .value("LMS_WORKERS")
            .map(|_| usize::try_from(env.positive("LMS_WORKERS", 1)).unwrap_or(1)),
        client_request_timeout: millis_or_seconds(
            env,
            "LMS_CLIENT_REQUEST_TIMEOUT",
            d.client_request_timeout,
        ),
        // Whole seconds: actix reads this deadline from a clock it refreshes every 500 ms, and
        // shorter values can leave a lingering connection open.
        client_disconnect_timeout: env.seconds(
            "LMS_CLIENT_DISCONNECT_TIMEOUT",
            d.client_disconnect_timeout.as_secs(),
        ),
        stream_idle_timeout: millis_or_seconds(
            env,
            "LMS_STREAM_IDLE_TIMEOUT",
            d.stream_idle_timeout,
        ),
        max_streams_per_client: usize::try_from(env.positive(
            "LMS_MAX_STREAMS_PER_CLIENT",
            d.max_streams_per_client as u64,
        ))
        .unwrap_or(d.max_streams_per_client),
        webhook_recheck_interval: millis_or_seconds(
            env,
            "DCS_WEBHOOK_RECHECK_INTERVAL",
            d.webhook_recheck_interval,
        ),
        webhook_log_retention: millis_or_seconds(
            env,
            "DCS_WEBHOOK_LOG_RETENTION",
            d.webhook_log_retention,
        ),
    }
}

/// Whole seconds (`10`), or milliseconds with an `ms` suffix (`500ms`, for tests and tight
/// deployments); greater than 0.
fn millis_or_seconds(env: &mut Reader<'_>, name: &'static str, default: Duration) -> Duration {
    let Some(value) = env.value(name) else {
        return default;
    };
    let parsed = match value.strip_suffix("ms") {
        Some(ms) => ms.trim().parse::<u64>().ok().map(Duration::from_millis),
        None => value.parse::<u64>().ok().map(Duration::from_secs),
    };
    match parsed {
        Some(duration) if !duration.is_zero() => duration,
        _ => {
            env.problem(
                name,
                format!("{value:?} is not valid (expected seconds greater than 0, or e.g. 500ms)"),
            );
            default
        }
    }
}
