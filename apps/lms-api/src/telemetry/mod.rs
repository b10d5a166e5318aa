//! Logging and request metrics: subscriber set-up and the middleware that logs and counts
//! every request.
//!
//! A request is logged once, when it finishes, with method, route pattern, status, latency and
//! request id, and counted in the HTTP metrics under the same route pattern. Headers (so
//! `Authorization`) and query strings (which may carry signatures or tokens) are never logged.

mod log_line;
mod request_context;

pub use log_line::{PlainFields, PlainLines};
pub use request_context::RequestContext;

use std::io::{BufWriter, IsTerminal};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
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
/// Lines are formatted by [`PlainLines`], which also writes the request each line belongs to;
/// on a terminal their level is coloured.
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(PlainLines)
        .fmt_fields(PlainFields)
        .try_init();
    guard
}

/// A fresh request id (a random UUID). Not a secret, only a correlation id: the thread-local
/// fast generator is enough, and it spares a `getrandom` system call per request.
fn new_request_id() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_bytes(uuid.hyphenated().encode_lower(&mut text).as_bytes())
        .expect("a UUID is a valid header value")
}

/// Assigns a request id, runs `serve` on the request as the current [`RequestContext`], then
/// logs the outcome, records it in `metrics` and echoes the id in the response. Log and
/// metrics in one place, so the route pattern is looked up once per request.
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
        .filter(|value| value.to_str().is_ok_and(is_acceptable_request_id))
        .cloned()
        .unwrap_or_else(new_request_id);
    let method = req.method().clone();
    let context = RequestContext::new(method.clone(), request_id.clone());
    context
        .scope(async move {
            let result = serve(req).await;
            let elapsed = started.elapsed();
            let mut response = finished(metrics, method.as_str(), result, elapsed)?;
            response
                .headers_mut()
                .insert(REQUEST_ID_HEADER.clone(), request_id);
            Ok(response)
        })
        .await
}

/// Logs and counts a request's outcome.
fn finished<B>(
    metrics: &HttpMetrics,
    method: &str,
    result: Result<ServiceResponse<B>, actix_web::Error>,
    elapsed: Duration,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    // Whole microseconds: `0.648`, not `0.6476999999999999` (a product of floats rarely has
    // a short decimal form; a quotient of an integer by 1000 has one).
    let latency_ms = elapsed.as_micros() as f64 / 1000.0;
    match result {
        Ok(response) => {
            let status = response.status();
            let route = response.request().match_pattern();
            let route = route.as_deref().unwrap_or(UNMATCHED_ROUTE);
            metrics.observe_response(method, route, &response, elapsed);
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
            Ok(response)
        }
        Err(err) => {
            let status = err.as_response_error().status_code();
            metrics.observe(method, UNMATCHED_ROUTE, status, elapsed.as_secs_f64());
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

/// A log writer that keeps what it is given, for tests of the lines.
#[cfg(test)]
mod test_capture {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing::{Level, Subscriber};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    pub struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// Lines without their timestamps (the first 28 bytes), checked to end like one.
    pub fn untimed(text: &str) -> Vec<String> {
        text.lines()
            .map(|line| {
                assert_eq!(&line[26..28], "Z ", "timestamp shape in {line:?}");
                line[28..].to_owned()
            })
            .collect()
    }

    impl Capture {
        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }

        /// A subscriber writing our lines here, up to `level`, coloured when `ansi`.
        pub fn ours(&self, level: Level, ansi: bool) -> impl Subscriber + Send + Sync + 'static {
            tracing_subscriber::fmt()
                .with_max_level(level)
                .with_writer(self.clone())
                .with_ansi(ansi)
                .event_format(super::PlainLines)
                .fmt_fields(super::PlainFields)
                .finish()
        }

        /// A subscriber writing tracing-subscriber's default lines here, without colours.
        pub fn default_format(&self) -> impl Subscriber + Send + Sync + 'static {
            tracing_subscriber::fmt()
                .with_max_level(Level::TRACE)
                .with_writer(self.clone())
                .with_ansi(false)
                .finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::test::{TestRequest, call_service, init_service};
    use actix_web::{App, HttpResponse, web};

    use tracing::Level;

    use super::test_capture::{Capture, untimed};
    use super::*;

    #[actix_rt::test]
    async fn every_line_a_request_logs_names_its_method_and_request_id() {
        let capture = Capture::default();
        let _default = tracing::subscriber::set_default(capture.ours(Level::INFO, false));
        let metrics = HttpMetrics::new();
        let app = init_service(
            App::new()
                .route(
                    "/books/{id}",
                    web::get().to(async || {
                        // Yield once, so the line below is written in a later poll.
                        tokio::task::yield_now().await;
                        tracing::warn!("inside the handler");
                        HttpResponse::Ok().finish()
                    }),
                )
                .wrap(from_fn(move |req, next: actix_web::middleware::Next<_>| {
                    let metrics = metrics.clone();
                    async move { observe_requests(&metrics, req, |req| next.call(req)).await }
                })),
        )
        .await;

        let given = TestRequest::get()
            .uri("/books/7?token=secret")
            .insert_header(("x-request-id", "abc-123"))
            .to_request();
        let response = call_service(&app, given).await;
        assert_eq!(response.headers().get("x-request-id").unwrap(), "abc-123");
        let generated =
            call_service(&app, TestRequest::delete().uri("/books/7").to_request()).await;
        let generated = generated
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap();
        tracing::info!("between requests");

        let text = capture.text();
        assert_eq!(
            untimed(&text),
            [
                " WARN request{method=GET request_id=abc-123}: \
                 lms_api::telemetry::tests: inside the handler"
                    .to_owned(),
                format!(
                    " INFO request{{method=GET request_id=abc-123}}: lms_api::telemetry: \
                     request finished route=\"/books/{{id}}\" status=200 latency_ms={}",
                    latency_of(&text, 1)
                ),
                format!(
                    " INFO request{{method=DELETE request_id={generated}}}: lms_api::telemetry: \
                     request finished route=\"/books/{{id}}\" status=404 latency_ms={}",
                    latency_of(&text, 2)
                ),
                " INFO lms_api::telemetry::tests: between requests".to_owned(),
            ]
        );
    }

    #[actix_rt::test]
    async fn a_request_that_fails_before_routing_is_logged_with_its_context() {
        let capture = Capture::default();
        let _default = tracing::subscriber::set_default(capture.ours(Level::INFO, false));
        let req = TestRequest::post()
            .insert_header(("x-request-id", "fail-1"))
            .to_srv_request();
        let result: Result<ServiceResponse, _> =
            observe_requests(&HttpMetrics::new(), req, async |_req| {
                Err(actix_web::error::ErrorBadRequest("no route"))
            })
            .await;

        assert!(result.is_err());
        let text = capture.text();
        let lines = untimed(&text);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        let (head, _) = lines[0].rsplit_once(" latency_ms=").unwrap();
        latency_of(&text, 0);
        assert_eq!(
            head,
            " WARN request{method=POST request_id=fail-1}: lms_api::telemetry: \
             request failed before routing route=\"unmatched\" status=400"
        );
    }

    /// The `latency_ms` value of the `index`th line, checked to be a number of milliseconds
    /// with at most three decimals.
    fn latency_of(text: &str, index: usize) -> &str {
        let line = text.lines().nth(index).unwrap();
        let value = line.rsplit_once("latency_ms=").unwrap().1;
        value.parse::<f64>().expect("a number");
        let decimals = value
            .split_once('.')
            .map_or(0, |(_, fraction)| fraction.len());
        assert!(decimals <= 3, "{value}");
        value
    }

    #[test]
    fn generated_request_ids_are_distinct_v4_uuids_that_pass_our_own_filter() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| new_request_id().to_str().expect("ASCII").to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version(), Some(uuid::Version::Random));
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            assert!(is_acceptable_request_id(id));
        }
    }
}
