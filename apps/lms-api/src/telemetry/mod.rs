//! Logging and request metrics: subscriber set-up and the middleware that logs and counts
//! every request.
//!
//! A request is logged once, when it finishes, with method, route pattern, status, latency and
//! request id, and counted in the HTTP metrics under the same route pattern. Headers (so
//! `Authorization`) and query strings (which may carry signatures or tokens) are never logged.

mod log_line;

pub use log_line::{PlainFields, PlainLines};

use std::io::{BufWriter, IsTerminal};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use tracing::Instrument;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::metrics::{HttpMetrics, UNMATCHED_ROUTE};

/// Header carrying the request id, accepted from the client or generated.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Default log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn";

/// Probe and scrape endpoints, logged at debug level when they succeed so that orchestrator
/// health checks do not drown the request log.
const QUIET_ROUTES: &[&str] = &["/health", "/ready", "/metrics"];

/// Longest client-supplied request id that is reused; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Installs the global subscriber writing to stderr (stdout stays free for command output such
/// as `lms-api token`). `filter` uses `RUST_LOG` syntax; `None` means [`DEFAULT_LOG_FILTER`].
/// A second call installs nothing.
///
/// On a terminal, lines are coloured; otherwise (a deployed server) they are the same text
/// without colours, formatted by [`PlainLines`].
/// Lines are formatted on the calling thread and written by a dedicated thread through a
/// buffer, so a request never waits on a `write` to stderr and a burst of lines leaves in a few
/// large writes instead of one per line. No line is dropped: when the queue is full, callers
/// wait. Keep the returned guard until exit: dropping it writes out what is still queued.
#[must_use = "dropping the guard stops the log writer"]
pub fn init_tracing(filter: Option<&str>) -> WorkerGuard {
    let filter = filter
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if std::io::stderr().is_terminal() {
        builder.with_ansi(true).try_init()
    } else {
        builder
            .with_ansi(false)
            .event_format(PlainLines)
            .fmt_fields(PlainFields)
            .try_init()
    };
    guard
}

/// A fresh request id (a random UUID). Not a secret, only a correlation id: the thread-local
/// fast generator is enough, and it spares a `getrandom` system call per request.
fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string()
}

/// Assigns a request id, runs `serve` on the request inside a span carrying it, then logs the
/// outcome, records it in `metrics` and echoes the id in the response. Log and metrics in one
/// place, so the route pattern is looked up once per request.
pub async fn observe_requests<B, Fut>(
    metrics: &HttpMetrics,
    req: ServiceRequest,
    serve: impl FnOnce(ServiceRequest) -> Fut,
) -> Result<ServiceResponse<B>, actix_web::Error>
where
    B: MessageBody,
    Fut: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_acceptable_request_id(id))
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let span = tracing::info_span!("request", %method, request_id = %request_id);

    let result = serve(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;

    let _entered = span.enter();
    match result {
        Ok(mut response) => {
            let status = response.status();
            let route = response.request().match_pattern();
            let route = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
            metrics.observe_response(method.as_str(), route, &response, elapsed);
            if status.is_server_error() {
                tracing::warn!(
                    route,
                    status = status.as_u16(),
                    latency_ms,
                    "request finished"
                );
            } else if status.is_success() && QUIET_ROUTES.contains(&route) {
                tracing::debug!(
                    route,
                    status = status.as_u16(),
                    latency_ms,
                    "request finished"
                );
            } else {
                tracing::info!(
                    route,
                    status = status.as_u16(),
                    latency_ms,
                    "request finished"
                );
            }
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response
                    .headers_mut()
                    .insert(REQUEST_ID_HEADER.clone(), value);
            }
            Ok(response)
        }
        Err(err) => {
            let status = err.as_response_error().status_code();
            metrics.observe(
                method.as_str(),
                UNMATCHED_ROUTE,
                status,
                elapsed.as_secs_f64(),
            );
            tracing::warn!(
                route = UNMATCHED_ROUTE,
                status = status.as_u16(),
                latency_ms,
                "request failed before routing"
            );
            Err(err)
        }
    }
}

/// Reuse only short printable-ASCII ids, so a client cannot inject log lines or huge headers.
fn is_acceptable_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_distinct_v4_uuids_that_pass_our_own_filter() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random));
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            assert!(is_acceptable_request_id(id));
        }
    }
}
