//! Prometheus metrics: request count and latency per method, route pattern and status.
//!
//! Each [`HttpMetrics`] owns its registry (no process-global state), so tests and several apps
//! in one process do not share counters. Routes are labelled by their pattern
//! (`/api/v1/books/{id}`), never the raw path, to keep label cardinality bounded.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Route label for requests that matched no route (404s for arbitrary paths).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Method label for methods outside the standard set: HTTP allows any token as a method, and
/// each distinct label value would be a new time series.
pub const OTHER_METHOD: &str = "OTHER";

/// Latency buckets in seconds: sub-millisecond cache hits up to slow upstream calls.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The HTTP metrics of one app.
#[derive(Clone)]
pub struct HttpMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    upstream_unavailable: IntCounterVec,
}

impl fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpMetrics {
    /// A fresh registry with the HTTP metrics registered.
    pub fn new() -> Self {
        const LABELS: &[&str] = &["method", "route", "status"];
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests handled."),
            LABELS,
        )
        .expect("valid counter definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from receiving a request to producing its response head.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            LABELS,
        )
        .expect("valid histogram definition");
        let upstream_unavailable = IntCounterVec::new(
            Opts::new(
                "lms_upstream_unavailable_total",
                "Answers 503 because DCS or object storage was unavailable, by cause (the DCS \
                 client's code: dcs_timeout, dcs_circuit_open, dcs_network, ...).",
            ),
            &["cause"],
        )
        .expect("valid counter definition");
        registry
            .register(Box::new(upstream_unavailable.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(requests.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("metric registered once");
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                upstream_unavailable,
            }),
        }
    }

    /// Records one finished request. Methods outside the standard set are recorded as
    /// [`OTHER_METHOD`].
    pub fn observe(&self, method: &str, route: &str, status: StatusCode, seconds: f64) {
        let labels = [method_label(method), route, status.as_str()];
        self.inner.requests.with_label_values(&labels).inc();
        self.inner
            .latency
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Records one answered request under its route pattern, and its cause when it is a 503
    /// for an unavailable upstream (DCS, object storage).
    pub fn observe_response<B>(
        &self,
        method: &str,
        route: &str,
        response: &ServiceResponse<B>,
        elapsed: Duration,
    ) {
        if let Some(cause) = response
            .response()
            .error()
            .and_then(|err| err.as_error::<crate::error::ApiError>())
            .and_then(crate::error::ApiError::upstream_cause)
        {
            self.inner
                .upstream_unavailable
                .with_label_values(&[cause])
                .inc();
        }
        self.observe(method, route, response.status(), elapsed.as_secs_f64());
    }

    /// The registry, for components that add their own metrics (cache, DCS client).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// All metrics in the Prometheus text exposition format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.inner.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|err| prometheus::Error::Msg(err.to_string()))
    }
}

/// The method as a label value: one of the standard methods, else [`OTHER_METHOD`].
fn method_label(method: &str) -> &str {
    const STANDARD: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    if STANDARD.contains(&method) {
        method
    } else {
        OTHER_METHOD
    }
}
