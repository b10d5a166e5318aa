//! One HTTP attempt on the shared hyper connection pool, with timeouts and the per-host
//! connection bound.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::ByteStream;
use crate::config::DcsConfig;
use crate::error::DcsError;

/// Which credential a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthScope {
    /// No auth (login, health).
    None,
    /// JWT or API key (`/books/*`, `/publishers/*`).
    ApiKeyOk,
    /// JWT only (`/storage/*`, `/webhooks/*`); the label names the route family.
    JwtOnly(&'static str),
}

/// Whether the body is read whole (API call) or streamed (download).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Api,
    Download,
}

/// The prefix of the `Network` message of a refused connection (nothing listens): such a
/// failure is not retried, DCS is down and the breaker takes over.
pub(crate) const REFUSED: &str = "connection refused";

/// Permission to use one connection: a slot of the API budget or of the stream budget.
pub(crate) type Slot = OwnedSemaphorePermit;

/// What is left of a call's deadline when a step starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Time left until the deadline.
    pub(crate) remaining: Duration,
    /// The whole deadline (`call_deadline` or `download_deadline`), for the error message.
    pub(crate) total: Duration,
}

/// How long one step may take, and the error it ends with.
struct Limit {
    duration: Duration,
    /// The deadline is nearer than the step's own timeout.
    by_deadline: bool,
    phase: &'static str,
    during: &'static str,
    after: Duration,
}

impl Limit {
    fn elapsed(&self) -> DcsError {
        if self.by_deadline {
            DcsError::DeadlineExceeded {
                deadline: self.after,
                during: self.during,
            }
        } else {
            DcsError::Timeout {
                phase: self.phase,
                after: self.after,
            }
        }
    }
}

impl Budget {
    /// The step's own timeout, or the rest of the deadline when that is shorter. `during`
    /// names the step in a deadline error.
    fn limit(self, own: Duration, phase: &'static str, during: &'static str) -> Limit {
        if self.remaining < own {
            Limit {
                duration: self.remaining,
                by_deadline: true,
                phase,
                during,
                after: self.total,
            }
        } else {
            Limit {
                duration: own,
                by_deadline: false,
                phase,
                during,
                after: own,
            }
        }
    }
}

/// A request to DCS, described once and sent once per attempt.
#[derive(Clone)]
pub(crate) struct Req {
    pub method: Method,
    /// Encoded path, starting with `/`.
    pub path: String,
    /// Encoded query without `?`.
    pub query: Option<String>,
    /// JSON body.
    pub body: Option<Bytes>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Safe to repeat (GET/PUT/DELETE/HEAD, or explicitly flagged like `POST /books/batch`).
    pub idempotent: bool,
    pub auth: AuthScope,
    pub kind: Kind,
}

/// The body is left out: the login body holds the password.
impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Req")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("body_len", &self.body.as_ref().map(Bytes::len))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("idempotent", &self.idempotent)
            .field("auth", &self.auth)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Req {
    pub(crate) fn new(method: Method, path: impl Into<String>, auth: AuthScope) -> Self {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        );
        Req {
            method,
            path: path.into(),
            query: None,
            body: None,
            headers: Vec::new(),
            idempotent,
            auth,
            kind: Kind::Api,
        }
    }

    pub(crate) fn query(mut self, query: String) -> Self {
        self.query = Some(query);
        self
    }

    pub(crate) fn json<T: serde::Serialize>(mut self, body: &T) -> Result<Self, DcsError> {
        let bytes = serde_json::to_vec(body).map_err(|e| DcsError::InvalidArgument {
            message: format!("could not encode the request body: {e}"),
        })?;
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Marks a POST that only reads (e.g. `POST /books/batch`) as safe to retry.
    pub(crate) fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    pub(crate) fn download(mut self) -> Self {
        self.kind = Kind::Download;
        self
    }
}

/// The body of an answer: read whole, or a stream still holding its connection slot.
pub(crate) enum Body {
    Full(Bytes),
    Stream(ByteStream),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(b) => write!(f, "Full({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// An answer from DCS (any status).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Answer {
    pub(crate) fn bytes(&self) -> &[u8] {
        match &self.body {
            Body::Full(b) => b,
            Body::Stream(_) => &[],
        }
    }

    pub(crate) fn header_str(&self, name: &HeaderName) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

type HyperClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub(crate) struct Transport {
    client: HyperClient,
    base: String,
    /// API (JSON) calls in flight: `max_connections_per_host`.
    api_permits: Arc<Semaphore>,
    api_limit: usize,
    /// Streamed downloads in flight, head to end of body: `max_streams`.
    stream_permits: Arc<Semaphore>,
    stream_limit: usize,
    pool_wait_timeout: Duration,
    api_timeout: Duration,
    download_timeout: Duration,
    download_idle_timeout: Duration,
    connect_timeout: Duration,
    max_body_bytes: usize,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .field("api_in_flight", &self.api_in_flight())
            .field("streams_in_flight", &self.streams_in_flight())
            .finish_non_exhaustive()
    }
}

/// Checks and normalises the base URL (`http`/`https`, a host, no query, no credentials;
/// trailing `/` cut).
pub(crate) fn normalise_base_url(base: &str) -> Result<String, DcsError> {
    let shown = redact_userinfo(base);
    let bad = |why: &str| DcsError::InvalidConfig {
        message: format!("base_url {shown:?}: {why}"),
    };
    let trimmed = base.trim().trim_end_matches('/');
    let uri: Uri = trimmed.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("no host"));
    };
    // The URL is shown in `Debug` and errors, and hyper would not send these anyway.
    if authority.as_str().contains('@') {
        return Err(bad(
            "must not contain user:password@; configure Credentials instead",
        ));
    }
    if uri.query().is_some() || trimmed.contains('#') {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(trimmed.to_owned())
}

/// `scheme://user:password@host` -> `scheme://***@host`, for messages.
fn redact_userinfo(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    match url[after_scheme..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..after_scheme], &url[after_scheme + at..]),
        None => url.to_owned(),
    }
}

impl Transport {
    pub(crate) fn new(cfg: &DcsConfig) -> Result<Transport, DcsError> {
        let base = normalise_base_url(&cfg.base_url)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| DcsError::InvalidConfig {
                message: format!("TLS setup failed: {e}"),
            })?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let api_limit = cfg.max_connections_per_host.max(1);
        let stream_limit = cfg.max_streams.max(1);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(api_limit + stream_limit)
            // hyper-util reaps idle connections only with both a timer and a timeout.
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .timer(TokioTimer::new())
            .build(https);
        let user_agent =
            HeaderValue::from_str(&cfg.user_agent).map_err(|_| DcsError::InvalidConfig {
                message: "user_agent is not a valid header value".to_owned(),
            })?;
        Ok(Transport {
            client,
            base,
            api_permits: Arc::new(Semaphore::new(api_limit)),
            api_limit,
            stream_permits: Arc::new(Semaphore::new(stream_limit)),
            stream_limit,
            pool_wait_timeout: cfg.pool_wait_timeout,
            api_timeout: cfg.api_timeout,
            download_timeout: cfg.download_timeout,
            download_idle_timeout: cfg.download_idle_timeout,
            connect_timeout: cfg.connect_timeout,
            max_body_bytes: cfg.max_body_bytes,
            user_agent,
        })
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// API calls holding a slot now.
    pub(crate) fn api_in_flight(&self) -> usize {
        self.api_limit - self.api_permits.available_permits()
    }

    /// Streamed downloads holding a slot now (head requested, body not yet ended or dropped).
    pub(crate) fn streams_in_flight(&self) -> usize {
        self.stream_limit - self.stream_permits.available_permits()
    }

    pub(crate) fn url(&self, path: &str, query: Option<&str>) -> String {
        match query {
            Some(q) => format!("{}{}?{}", self.base, path, q),
            None => format!("{}{}", self.base, path),
        }
    }

    fn build(
        &self,
        req: &Req,
        bearer: Option<&SecretString>,
    ) -> Result<Request<Full<Bytes>>, DcsError> {
        let url = self.url(&req.path, req.query.as_deref());
        let uri: Uri = url.parse().map_err(|_| DcsError::InvalidArgument {
            message: format!("could not build a URL for {}", req.path),
        })?;
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(uri)
            .header(header::USER_AGENT, self.user_agent.clone());
        if req.kind == Kind::Api {
            builder = builder.header(header::ACCEPT, HeaderValue::from_static("application/json"));
        }
        if req.body.is_some() {
            builder = builder.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Some(secret) = bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", secret.expose_secret()))
                .map_err(|_| DcsError::InvalidConfig {
                    message: "the credential contains characters not allowed in a header"
                        .to_owned(),
                })?;
            value.set_sensitive(true);
            builder = builder.header(header::AUTHORIZATION, value);
        }
        for (name, value) in &req.headers {
            builder = builder.header(name.clone(), value.clone());
        }
        builder
            .body(Full::new(req.body.clone().unwrap_or_default()))
            .map_err(|e| DcsError::InvalidArgument {
                message: format!("could not build the request: {e}"),
            })
    }

    /// Waits for a slot of the call's budget: API calls and streamed downloads have separate
    /// ones, so held streams never block API calls. The wait is local queueing, not DCS being
    /// slow: after `pool_wait_timeout` it ends with [`DcsError::PoolExhausted`], which the
    /// caller keeps out of the breaker and retries; the call deadline may cut it shorter.
    pub(crate) async fn acquire_slot(&self, kind: Kind, budget: Budget) -> Result<Slot, DcsError> {
        let (permits, pool, limit_count) = match kind {
            Kind::Api => (&self.api_permits, "api calls", self.api_limit),
            Kind::Download => (&self.stream_permits, "streams", self.stream_limit),
        };
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let limit = budget.limit(
            self.pool_wait_timeout,
            "connection slot",
            crate::client::WAITING_FOR_SLOT,
        );
        match tokio::time::timeout(limit.duration, permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(DcsError::network("connection limiter closed")),
            Err(_) if limit.by_deadline => Err(limit.elapsed()),
            Err(_) => Err(DcsError::PoolExhausted {
                pool,
                limit: limit_count,
                waited: self.pool_wait_timeout,
            }),
        }
    }

    /// Sends one attempt on a connection slot. For API calls the body is read whole within
    /// `api_timeout`; for downloads the head must arrive within `download_timeout`, a success
    /// body is streamed (idle timeout between chunks) and an error body is read whole. Both are
    /// cut short when less than that is left of the call deadline (`budget`).
    pub(crate) async fn send(
        &self,
        req: &Req,
        bearer: Option<&SecretString>,
        slot: Slot,
        budget: Budget,
    ) -> Result<Answer, DcsError> {
        let request = self.build(req, bearer)?;
        let started = Instant::now();
        let result = match req.kind {
            Kind::Api => {
                let limit = budget.limit(
                    self.api_timeout,
                    "request",
                    crate::client::WAITING_FOR_RESPONSE,
                );
                let fut = async {
                    let _slot = slot;
                    let resp = self
                        .client
                        .request(request)
                        .await
                        .map_err(|e| self.map_client_error(&e))?;
                    let (parts, body) = resp.into_parts();
                    let bytes = self.read_whole(body).await?;
                    Ok(Answer {
                        status: parts.status,
                        headers: parts.headers,
                        body: Body::Full(bytes),
                    })
                };
                match tokio::time::timeout(limit.duration, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(limit.elapsed()),
                }
            }
            Kind::Download => self.send_download(request, slot, budget).await,
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(answer) => tracing::debug!(
                target: "dcs_client::request",
                method = %req.method,
                path = %req.path,
                status = answer.status.as_u16(),
                latency_ms,
                "DCS request"
            ),
            Err(err) => tracing::debug!(
                target: "dcs_client::request",
                method = %req.method,
                path = %req.path,
                error = %err,
                code = err.code(),
                latency_ms,
                "DCS request failed"
            ),
        }
        result
    }

    async fn send_download(
        &self,
        request: Request<Full<Bytes>>,
        slot: Slot,
        budget: Budget,
    ) -> Result<Answer, DcsError> {
        let limit = budget.limit(
            self.download_timeout,
            "response head",
            crate::client::WAITING_FOR_HEAD,
        );
        let resp = match tokio::time::timeout(limit.duration, self.client.request(request)).await {
            Ok(r) => r.map_err(|e| self.map_client_error(&e))?,
            Err(_) => return Err(limit.elapsed()),
        };
        let (parts, body) = resp.into_parts();
        if parts.status.is_success() {
            return Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body: Body::Stream(body_stream(body, slot, self.download_idle_timeout)),
            });
        }
        // Error answers are small: read them whole (bounded by the idle timeout).
        let bytes =
            match tokio::time::timeout(self.download_idle_timeout, self.read_whole(body)).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(DcsError::Timeout {
                        phase: "body idle",
                        after: self.download_idle_timeout,
                    });
                }
            };
        drop(slot);
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: Body::Full(bytes),
        })
    }

    /// Reads a body into memory, refusing more than `max_body_bytes` (a misbehaving server
    /// must not exhaust memory).
    async fn read_whole(&self, body: Incoming) -> Result<Bytes, DcsError> {
        match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => Err(DcsError::decode(format!(
                "the response body is larger than {} bytes",
                self.max_body_bytes
            ))),
            Err(e) => Err(DcsError::network(format!(
                "reading the body: {}",
                chain(e.as_ref())
            ))),
        }
    }

    fn map_client_error(&self, e: &hyper_util::client::legacy::Error) -> DcsError {
        if e.is_connect() && has_io_kind(e, std::io::ErrorKind::TimedOut) {
            return DcsError::Timeout {
                phase: "connect",
                after: self.connect_timeout,
            };
        }
        if e.is_connect() && has_io_kind(e, std::io::ErrorKind::ConnectionRefused) {
            return DcsError::network(format!("{REFUSED}: {}", chain(e)));
        }
        let what = if e.is_connect() { "connect" } else { "request" };
        DcsError::network(format!("{what}: {}", chain(e)))
    }
}

/// The error and its sources as one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn has_io_kind(e: &(dyn StdError + 'static), kind: std::io::ErrorKind) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == kind
        {
            return true;
        }
        cur = err.source();
    }
    false
}

struct StreamState {
    body: Incoming,
    _permit: Slot,
    idle: Duration,
    done: bool,
}

/// Streams a body, keeping the connection slot until the stream ends or is dropped.
fn body_stream(body: Incoming, permit: Slot, idle: Duration) -> ByteStream {
    let state = StreamState {
        body,
        _permit: permit,
        idle,
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match tokio::time::timeout(st.idle, st.body.frame()).await {
                Err(_) => {
                    st.done = true;
                    let err = DcsError::Timeout {
                        phase: "body idle",
                        after: st.idle,
                    };
                    return Some((Err(err), st));
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    st.done = true;
                    let err = DcsError::network(format!("reading the body: {}", chain(&e)));
                    return Some((Err(err), st));
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Some((Ok(data), st));
                    }
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_debug_leaves_the_body_out() {
        #[derive(serde::Serialize)]
        struct Login<'a> {
            email: &'a str,
            password: &'a str,
        }
        let req = Req::new(Method::POST, "/auth/login", AuthScope::None)
            .json(&Login {
                email: "a@b.c",
                password: "hunter2-password",
            })
            .unwrap()
            .header(header::IF_NONE_MATCH, HeaderValue::from_static("\"etag\""));
        let text = format!("{req:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("/auth/login") && text.contains("body_len"),
            "{text}"
        );
    }

    #[test]
    fn the_deadline_shortens_a_step_only_when_it_is_nearer() {
        let budget = Budget {
            remaining: Duration::from_secs(10),
            total: Duration::from_secs(120),
        };
        let own = budget.limit(
            Duration::from_secs(5),
            "request",
            "waiting for the response",
        );
        assert_eq!(own.duration, Duration::from_secs(5));
        assert_eq!(own.elapsed().to_string(), "DCS request timed out after 5s");
        let cut = budget.limit(
            Duration::from_secs(30),
            "request",
            "waiting for the response",
        );
        assert_eq!(cut.duration, Duration::from_secs(10));
        assert_eq!(cut.elapsed().code(), "dcs_deadline_exceeded");
        assert_eq!(
            cut.elapsed().to_string(),
            "DCS call deadline of 120s exceeded while waiting for the response"
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            normalise_base_url("http://127.0.0.1:8081/").unwrap(),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            normalise_base_url("https://h.example/dcs/").unwrap(),
            "https://h.example/dcs"
        );
        for bad in ["", "ftp://x", "127.0.0.1:80", "http://x/?a=b", "nonsense"] {
            let e = normalise_base_url(bad).unwrap_err();
            assert_eq!(e.code(), "dcs_invalid_config", "{bad}");
        }
        for with_password in [
            "https://lms:s3cret-pw@dcs.example/",
            "ftp://lms:s3cret-pw@dcs.example/x",
        ] {
            let e = normalise_base_url(with_password).unwrap_err();
            assert_eq!(e.code(), "dcs_invalid_config");
            assert!(!e.to_string().contains("s3cret"), "{e}");
            assert!(e.to_string().contains("***@dcs.example"), "{e}");
        }
    }
}
