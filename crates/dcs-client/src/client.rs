//! The real adapter: [`DcsClient`], on hyper 1 + hyper-util + hyper-rustls.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use secrecy::SecretString;
use serde::de::DeserializeOwned;

use crate::api::{Conditional, DcsApi, Download, DownloadOptions};
use crate::auth::{Token, TokenCache};
use crate::breaker::{Breaker, BreakerState};
use crate::clock::{self, Clock, SystemClock};
use crate::config::DcsConfig;
use crate::error::DcsError;
use crate::models::{
    BatchRequest, Book, BookFile, Health, LoginRequest, LoginResponse, PresignedUrl, Publisher,
    PublisherPage, StorageNode, WebhookDeliveryLog, WebhookSubscription, WebhookSubscriptionCreate,
    WebhookSubscriptionUpdate,
};
use crate::path::{AssetPath, book_storage_path, check_name, encode_query_value, encode_segment};
use crate::stats::{Counters, DcsStats};
use crate::transport::{Answer, AuthScope, Body, Budget, Kind, REFUSED, Req, Transport};

const STORAGE: AuthScope = AuthScope::JwtOnly("/storage/*");
const WEBHOOKS: AuthScope = AuthScope::JwtOnly("/webhooks/*");

/// The DCS client. Cheap to clone (one shared connection pool, token and breaker).
///
/// See the crate docs for behaviour (auth, retries, breaker) and configuration.
#[derive(Clone)]
pub struct DcsClient {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: DcsConfig,
    transport: Transport,
    breaker: Breaker,
    clock: Arc<dyn Clock>,
    tokens: TokenCache,
    counters: Counters,
}

impl fmt::Debug for DcsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DcsClient")
            .field("base_url", &self.inner.transport.base())
            .field("credentials", &self.inner.cfg.credentials)
            .field("breaker", &self.inner.breaker.state())
            .finish_non_exhaustive()
    }
}

/// The credential chosen for one attempt.
enum Cred {
    None,
    ApiKey(SecretString),
    Jwt(Arc<Token>),
}

impl Cred {
    fn secret(&self) -> Option<&SecretString> {
        match self {
            Cred::None => None,
            Cred::ApiKey(k) => Some(k),
            Cred::Jwt(t) => Some(&t.value),
        }
    }
}

impl DcsClient {
    /// Builds a client with the system clock. Fails on an unusable configuration (bad base
    /// URL, no credentials). No request is made until the first call.
    pub fn new(config: DcsConfig) -> Result<DcsClient, DcsError> {
        DcsClient::with_clock(config, Arc::new(SystemClock))
    }

    /// Builds a client with a custom [`Clock`] (tests use `ManualClock`).
    pub fn with_clock(config: DcsConfig, clock: Arc<dyn Clock>) -> Result<DcsClient, DcsError> {
        let creds = &config.credentials;
        if !creds.has_password() && !creds.has_api_key() {
            return Err(DcsError::InvalidConfig {
                message: "no credentials: configure email/password, an API key, or both".to_owned(),
            });
        }
        if creds.email.is_some() != creds.password.is_some() {
            return Err(DcsError::InvalidConfig {
                message: "email and password must be configured together".to_owned(),
            });
        }
        let transport = Transport::new(&config)?;
        let breaker = Breaker::new(config.breaker.clone(), clock.clone());
        Ok(DcsClient {
            inner: Arc::new(Inner {
                cfg: config,
                transport,
                breaker,
                clock,
                tokens: TokenCache::default(),
                counters: Counters::default(),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &DcsConfig {
        &self.inner.cfg
    }

    /// The circuit breaker's current state.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Counters of calls that failed with [`DcsError::PoolExhausted`],
    /// [`DcsError::DeadlineExceeded`] or [`DcsError::CircuitOpen`], and the slots in use now
    /// (shared by all clones of this client). For metrics.
    pub fn stats(&self) -> DcsStats {
        let transport = &self.inner.transport;
        self.inner
            .counters
            .snapshot(transport.api_in_flight(), transport.streams_in_flight())
    }

    /// When the cached JWT expires (`exp`), if one is cached and its `exp` was readable.
    pub fn token_expires_at(&self) -> Option<DateTime<Utc>> {
        self.inner.tokens.current().and_then(|t| t.expires_at)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    // ----- auth -------------------------------------------------------------------------

    async fn credential_for(&self, scope: AuthScope) -> Result<Cred, DcsError> {
        let creds = &self.inner.cfg.credentials;
        match scope {
            AuthScope::None => Ok(Cred::None),
            AuthScope::ApiKeyOk => match &creds.api_key {
                Some(key) => Ok(Cred::ApiKey(key.clone())),
                None => self.jwt().await.map(Cred::Jwt),
            },
            AuthScope::JwtOnly(route) => {
                if creds.has_password() {
                    self.jwt().await.map(Cred::Jwt)
                } else {
                    Err(DcsError::ApiKeyUnsupported { route })
                }
            }
        }
    }

    /// A fresh JWT: the cached one, or one login shared by all concurrent callers (its token,
    /// or its error: callers that waited for a failed login do not try again one by one).
    /// When an early refresh fails, the current token is used for as long as it is valid (a
    /// flaky login must not fail calls DCS would accept), and the refresh is tried again after
    /// [`REFRESH_RETRY_PAUSE`](crate::auth::REFRESH_RETRY_PAUSE).
    async fn jwt(&self) -> Result<Arc<Token>, DcsError> {
        let tokens = &self.inner.tokens;
        if let Some(t) = tokens.fresh(self.now()) {
            return Ok(t);
        }
        if let Some(t) = tokens.pausing_refresh(self.now()) {
            return Ok(t);
        }
        let seen = tokens.logins_finished();
        let _guard = tokens.refresh_lock.lock().await;
        if let Some(t) = tokens.fresh(self.now()) {
            return Ok(t);
        }
        if let Some(err) = tokens.failure_since(seen) {
            return tokens.still_valid(self.now()).ok_or(err);
        }
        let refreshing = tokens.current().is_some();
        let token = match self.do_login().await {
            Ok(token) => token,
            Err(err) => {
                let Some(current) = tokens.still_valid(self.now()) else {
                    return Err(err);
                };
                tracing::warn!(
                    target: "dcs_client::auth",
                    code = err.code(),
                    expires_at = ?current.expires_at,
                    "DCS token refresh failed; the current token is used until it expires"
                );
                return Ok(current);
            }
        };
        if refreshing {
            tracing::info!(
                target: "dcs_client::auth",
                expires_at = ?token.expires_at,
                "DCS token refreshed before expiry"
            );
        }
        Ok(token)
    }

    /// After a 401 with token generation `used`: log in again unless another caller already
    /// did (or just failed to).
    async fn relogin(&self, used: u64) -> Result<Arc<Token>, DcsError> {
        let seen = self.inner.tokens.logins_finished();
        let _guard = self.inner.tokens.refresh_lock.lock().await;
        if let Some(t) = self.inner.tokens.current()
            && t.generation != used
            && t.is_fresh(self.now())
        {
            return Ok(t);
        }
        if let Some(err) = self.inner.tokens.failure_since(seen) {
            return Err(err);
        }
        tracing::warn!(
            target: "dcs_client::auth",
            "DCS answered 401 Invalid token; logging in again and retrying once"
        );
        self.do_login().await
    }

    async fn do_login(&self) -> Result<Arc<Token>, DcsError> {
        let creds = &self.inner.cfg.credentials;
        let (Some(email), Some(password)) = (&creds.email, &creds.password) else {
            return Err(DcsError::InvalidConfig {
                message: "logging in needs email/password credentials".to_owned(),
            });
        };
        let body = LoginRequest {
            email,
            password: secrecy::ExposeSecret::expose_secret(password),
        };
        let req = Req::new(Method::POST, "/auth/login", AuthScope::None).json(&body)?;
        // Boxed: the request loop may call back into the login (through `credential_for`).
        let result = Box::pin(self.execute_within_deadline(req))
            .await
            .and_then(|answer| decode::<LoginResponse>(&answer, "login response"));
        let login = match result {
            Ok(login) => login,
            Err(err) => {
                self.inner.tokens.record_failure(&err, self.now());
                tracing::warn!(
                    target: "dcs_client::auth",
                    code = err.code(),
                    error = %err,
                    "DCS login failed"
                );
                return Err(err);
            }
        };
        let now = self.now();
        let token = self.inner.tokens.store(
            SecretString::from(login.access_token),
            now,
            self.inner.cfg.token_refresh_margin,
        );
        if token.expires_at.is_none() {
            tracing::warn!(
                target: "dcs_client::auth",
                "DCS token has no readable exp claim; it will be reused until a 401"
            );
        }
        tracing::info!(
            target: "dcs_client::auth",
            expires_at = ?token.expires_at,
            "DCS login succeeded"
        );
        Ok(token)
    }

    // ----- the request loop ---------------------------------------------------------------

    /// Sends `req` with auth, retries, `Retry-After`, the breaker and the call deadline, and
    /// counts and logs the failures that protect the service (pool exhausted, deadline
    /// exceeded, breaker open). Returns the answer for 2xx and 304; every other status becomes
    /// an error.
    async fn execute(&self, req: Req) -> Result<Answer, DcsError> {
        let (method, path) = (req.method.clone(), req.path.clone());
        let result = self.execute_within_deadline(req).await;
        if let Err(err) = &result {
            self.record_failure(&method, &path, err);
        }
        result
    }

    fn record_failure(&self, method: &Method, path: &str, err: &DcsError) {
        self.inner.counters.record(err);
        if matches!(
            err,
            DcsError::PoolExhausted { .. } | DcsError::DeadlineExceeded { .. }
        ) {
            tracing::warn!(
                target: "dcs_client::request",
                method = %method,
                path = %path,
                code = err.code(),
                cause = %err,
                "DCS call failed: {err}"
            );
        }
    }

    /// The request loop under the call's deadline (`call_deadline`, or `download_deadline`
    /// up to a download's response head). Each step is cut to what is left of it; the outer
    /// timeout is the real-time bound of the whole call and names the step it interrupted.
    async fn execute_within_deadline(&self, req: Req) -> Result<Answer, DcsError> {
        let total = match req.kind {
            Kind::Api => self.inner.cfg.call_deadline,
            Kind::Download => self.inner.cfg.download_deadline,
        };
        let deadline = clock::add(self.now(), total);
        let step = Step::default();
        match tokio::time::timeout(total, self.run(req, deadline, total, &step)).await {
            Ok(result) => result,
            Err(_) => Err(DcsError::DeadlineExceeded {
                deadline: total,
                during: step.get(),
            }),
        }
    }

    /// Runs `fut` with what is left of the deadline.
    async fn within<T>(
        &self,
        deadline: DateTime<Utc>,
        total: Duration,
        during: &'static str,
        fut: impl std::future::Future<Output = Result<T, DcsError>>,
    ) -> Result<T, DcsError> {
        let remaining = clock::since(self.now(), deadline);
        let exceeded = DcsError::DeadlineExceeded {
            deadline: total,
            during,
        };
        if remaining.is_zero() {
            return Err(exceeded);
        }
        tokio::time::timeout(remaining, fut)
            .await
            .unwrap_or(Err(exceeded))
    }

    async fn run(
        &self,
        req: Req,
        deadline: DateTime<Utc>,
        total: Duration,
        step: &Step,
    ) -> Result<Answer, DcsError> {
        let retry = &self.inner.cfg.retry;
        let max_attempts = retry.max_retries + 1;
        let mut attempt: u32 = 1;
        let mut relogged = false;
        loop {
            step.set(LOGGING_IN);
            let cred = self
                .within(deadline, total, LOGGING_IN, self.credential_for(req.auth))
                .await?;
            let outcome = self.attempt(&req, &cred, deadline, total, step).await;
            let err = match outcome {
                Ok(answer) => {
                    let status = answer.status;
                    if status.is_success() || status == StatusCode::NOT_MODIFIED {
                        return Ok(answer);
                    }
                    if status == StatusCode::UNAUTHORIZED
                        && let Cred::Jwt(token) = &cred
                        && !relogged
                    {
                        relogged = true;
                        step.set(LOGGING_IN);
                        self.within(deadline, total, LOGGING_IN, self.relogin(token.generation))
                            .await?;
                        continue;
                    }
                    let retry_after = retry_after(&answer, self.now());
                    let err = DcsError::from_response(status.as_u16(), answer.bytes(), retry_after);
                    let err = match (err, &cred) {
                        (DcsError::AuthFailed { detail }, Cred::ApiKey(_)) => {
                            DcsError::AuthFailed {
                                detail: format!("API key rejected: {detail}"),
                            }
                        }
                        (DcsError::AuthFailed { detail }, Cred::Jwt(_)) => DcsError::AuthFailed {
                            detail: format!("{detail} (still 401 after a fresh login)"),
                        },
                        (e, _) => e,
                    };
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        // 429 means "not processed": waiting it out is safe for any method.
                        if attempt >= max_attempts {
                            return Err(err);
                        }
                        let wait = retry_after.unwrap_or_else(|| retry.backoff(attempt));
                        if wait > retry.max_retry_after || clock::add(self.now(), wait) > deadline {
                            tracing::warn!(
                                target: "dcs_client::retry",
                                method = %req.method,
                                path = %req.path,
                                retry_after_ms = wait.as_millis() as u64,
                                "DCS rate limit wait exceeds the allowed maximum or the call deadline; giving up"
                            );
                            return Err(err);
                        }
                        attempt += 1;
                        log_retry(&req, attempt, max_attempts, &err, wait);
                        step.set("waiting out Retry-After");
                        self.inner.clock.sleep(wait).await;
                        continue;
                    }
                    if !status.is_server_error() {
                        return Err(err);
                    }
                    err
                }
                Err(err) => err,
            };
            // 5xx, a network error or a per-step timeout. Not local queueing (pool exhausted),
            // not a passed deadline, and not a refused connection: nothing listens, so DCS is
            // down, and failing fast lets the breaker take over.
            let retryable = match &err {
                DcsError::Server { .. } | DcsError::Timeout { .. } => true,
                DcsError::Network { message } => !message.starts_with(REFUSED),
                _ => false,
            };
            if !retryable || !req.idempotent || attempt >= max_attempts {
                return Err(err);
            }
            let delay = retry.backoff(attempt);
            if clock::add(self.now(), delay) > deadline {
                return Err(err);
            }
            attempt += 1;
            log_retry(&req, attempt, max_attempts, &err, delay);
            step.set("waiting to retry");
            self.inner.clock.sleep(delay).await;
        }
    }

    /// One attempt: a connection slot first, then the breaker, then the request. Waiting for
    /// a slot is local queueing, so it never counts as a DCS failure, and a half-open probe
    /// is only taken once the request can actually be sent.
    async fn attempt(
        &self,
        req: &Req,
        cred: &Cred,
        deadline: DateTime<Utc>,
        total: Duration,
        step: &Step,
    ) -> Result<Answer, DcsError> {
        let transport = &self.inner.transport;
        step.set(WAITING_FOR_SLOT);
        let slot = transport
            .acquire_slot(req.kind, self.budget(deadline, total)?)
            .await?;
        let permit = self.inner.breaker.acquire()?;
        step.set(match req.kind {
            Kind::Api => WAITING_FOR_RESPONSE,
            Kind::Download => WAITING_FOR_HEAD,
        });
        let result = transport
            .send(req, cred.secret(), slot, self.budget(deadline, total)?)
            .await;
        match &result {
            Ok(answer) if answer.status.is_server_error() => permit.failure(),
            Ok(_) => permit.success(),
            Err(
                DcsError::Network { .. }
                | DcsError::Timeout { .. }
                | DcsError::DeadlineExceeded { .. },
            ) => permit.failure(),
            Err(_) => drop(permit),
        }
        result
    }

    /// What is left of the call deadline; `DeadlineExceeded` when nothing is.
    fn budget(&self, deadline: DateTime<Utc>, total: Duration) -> Result<Budget, DcsError> {
        let remaining = clock::since(self.now(), deadline);
        if remaining.is_zero() {
            return Err(DcsError::DeadlineExceeded {
                deadline: total,
                during: "starting an attempt",
            });
        }
        Ok(Budget { remaining, total })
    }

    async fn get_json<T: DeserializeOwned>(&self, req: Req, what: &str) -> Result<T, DcsError> {
        let answer = self.execute(req).await?;
        decode(&answer, what)
    }

    fn storage_req(&self, publisher: &str, book: &str, suffix: &str) -> Result<Req, DcsError> {
        let path = format!("{}{}", book_storage_path(publisher, book)?, suffix);
        Ok(Req::new(Method::GET, path, STORAGE))
    }
}

const LOGGING_IN: &str = "logging in";
pub(crate) const WAITING_FOR_SLOT: &str = "waiting for a connection slot";
pub(crate) const WAITING_FOR_RESPONSE: &str = "waiting for the response";
pub(crate) const WAITING_FOR_HEAD: &str = "waiting for the response head";

/// What a call is doing, for the deadline error.
#[derive(Debug)]
struct Step(std::sync::Mutex<&'static str>);

impl Default for Step {
    fn default() -> Self {
        Step(std::sync::Mutex::new("starting"))
    }
}

impl Step {
    fn set(&self, during: &'static str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = during;
    }

    fn get(&self) -> &'static str {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn log_retry(req: &Req, attempt: u32, max_attempts: u32, reason: &DcsError, delay: Duration) {
    tracing::warn!(
        target: "dcs_client::retry",
        method = %req.method,
        path = %req.path,
        attempt,
        max_attempts,
        reason = %reason,
        code = reason.code(),
        delay_ms = delay.as_millis() as u64,
        "retrying DCS request: attempt {attempt} of {max_attempts} in {} ms ({})",
        delay.as_millis(),
        reason.code(),
    );
}

fn decode<T: DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, DcsError> {
    serde_json::from_slice(answer.bytes()).map_err(|e| DcsError::decode(format!("{what}: {e}")))
}

/// `Retry-After` in delta-seconds or HTTP-date form.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        // Too large for a Duration (`1e20`, thirty digits): the longest wait, not a panic.
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    let when: DateTime<Utc> = when.into();
    Some(clock::since(now, when))
}

fn retry_after(answer: &Answer, now: DateTime<Utc>) -> Option<Duration> {
    answer
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue, DcsError> {
    HeaderValue::from_str(value).map_err(|_| DcsError::InvalidArgument {
        message: format!("{name} is not a valid header value"),
    })
}

fn into_download(answer: Answer) -> Result<Download, DcsError> {
    let get = |name: &HeaderName| answer.header_str(name);
    let content_type = get(&header::CONTENT_TYPE);
    let content_length = get(&header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
    let content_range = get(&header::CONTENT_RANGE);
    let etag = get(&header::ETAG);
    let cache_control = get(&header::CACHE_CONTROL);
    let content_disposition = get(&header::CONTENT_DISPOSITION);
    let accept_ranges = get(&header::ACCEPT_RANGES);
    let status = answer.status.as_u16();
    let body = match answer.body {
        Body::Stream(s) => s,
        Body::Full(b) => Box::pin(futures_util::stream::iter((!b.is_empty()).then_some(Ok(b)))),
    };
    Ok(Download {
        status,
        content_type,
        content_length,
        content_range,
        etag,
        cache_control,
        content_disposition,
        accept_ranges,
        body,
    })
}

fn into_conditional(answer: Answer) -> Result<Conditional, DcsError> {
    if answer.status == StatusCode::NOT_MODIFIED {
        return Ok(Conditional::NotModified {
            etag: answer.header_str(&header::ETAG),
            cache_control: answer.header_str(&header::CACHE_CONTROL),
        });
    }
    into_download(answer).map(Conditional::Modified)
}

/// After a 304, DCS (uvicorn) drops the keep-alive connection. Conditional requests therefore
/// ask for `Connection: close`, so the dropped connection is never handed to a following
/// (possibly non-idempotent) request; idempotent requests also retry such resets.
fn conditional_headers(mut req: Req, if_none_match: Option<&str>) -> Result<Req, DcsError> {
    if let Some(tag) = if_none_match {
        req = req
            .header(header::IF_NONE_MATCH, header_value("If-None-Match", tag)?)
            .header(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(req)
}

/// Calls beyond the [`DcsApi`] port: public API for other services (see the README), not
/// needed by the LMS domain, so not part of the trait its fakes implement.
impl DcsClient {
    /// Logs in now (`POST /auth/login`) and caches the token. Other calls log in on their own
    /// when needed; this is for checking credentials at start-up.
    pub async fn login(&self) -> Result<(), DcsError> {
        let _guard = self.inner.tokens.refresh_lock.lock().await;
        let result = self.do_login().await.map(|_| ());
        if let Err(err) = &result {
            self.record_failure(&Method::POST, "/auth/login", err);
        }
        result
    }

    /// One page of `GET /publishers/` (`limit` 1..=1000).
    pub async fn list_publishers_page(
        &self,
        skip: u64,
        limit: u32,
    ) -> Result<PublisherPage, DcsError> {
        if !(1..=1000).contains(&limit) {
            return Err(DcsError::InvalidArgument {
                message: format!("limit must be 1..=1000, got {limit}"),
            });
        }
        let req = Req::new(Method::GET, "/publishers/", AuthScope::ApiKeyOk)
            .query(format!("skip={skip}&limit={limit}"));
        self.get_json(req, "publisher list").await
    }

    /// `GET /publishers/by-name/{name}`.
    pub async fn get_publisher_by_name(&self, name: &str) -> Result<Publisher, DcsError> {
        check_name("publisher", name)?;
        let path = format!("/publishers/by-name/{}", encode_segment(name));
        self.get_json(
            Req::new(Method::GET, path, AuthScope::ApiKeyOk),
            "publisher",
        )
        .await
    }

    /// `POST /books/batch`, in chunks of 100 ids. Unknown and archived ids are skipped by DCS.
    pub async fn get_books(&self, ids: &[i64]) -> Result<Vec<Book>, DcsError> {
        let chunk = self.inner.cfg.batch_size.clamp(1, 100);
        let mut out = Vec::new();
        for ids in ids.chunks(chunk) {
            let req = Req::new(Method::POST, "/books/batch", AuthScope::ApiKeyOk)
                .json(&BatchRequest { ids })?
                // A read, although a POST.
                .idempotent(true);
            let books: Vec<Book> = self.get_json(req, "book batch").await?;
            out.extend(books);
        }
        Ok(out)
    }

    /// `GET /storage/books/{publisher}/{book}/config` as the raw bytes DCS sent.
    pub async fn book_config_bytes(&self, publisher: &str, book: &str) -> Result<Bytes, DcsError> {
        let req = self.storage_req(publisher, book, "/config")?;
        let answer = self.execute(req).await?;
        match answer.body {
            Body::Full(b) => Ok(b),
            Body::Stream(_) => Err(DcsError::decode("unexpected streamed body")),
        }
    }

    /// `GET /storage/books/{publisher}/{book}`: the folder tree (an unknown book gives an empty
    /// tree, not 404).
    pub async fn book_tree(&self, publisher: &str, book: &str) -> Result<StorageNode, DcsError> {
        let req = self.storage_req(publisher, book, "")?;
        self.get_json(req, "storage tree").await
    }

    /// The URL of the object endpoint for a path (it needs a DCS admin JWT to be fetched).
    pub fn asset_url(
        &self,
        publisher: &str,
        book: &str,
        path: &AssetPath,
    ) -> Result<String, DcsError> {
        let p = format!("{}/object", book_storage_path(publisher, book)?);
        let q = format!("path={}", path.to_query_value());
        Ok(self.inner.transport.url(&p, Some(&q)))
    }

    /// `GET /webhooks/{id}`.
    pub async fn get_webhook(&self, id: i64) -> Result<WebhookSubscription, DcsError> {
        let req = Req::new(Method::GET, format!("/webhooks/{id}"), WEBHOOKS);
        self.get_json(req, "webhook").await
    }

    /// `GET /webhooks/{id}/logs`.
    pub async fn webhook_logs(&self, id: i64) -> Result<Vec<WebhookDeliveryLog>, DcsError> {
        let req = Req::new(Method::GET, format!("/webhooks/{id}/logs"), WEBHOOKS);
        self.get_json(req, "webhook logs").await
    }
}

#[async_trait]
impl DcsApi for DcsClient {
    fn stats(&self) -> Option<crate::DcsStats> {
        Some(DcsClient::stats(self))
    }

    async fn health(&self) -> Result<Health, DcsError> {
        self.get_json(Req::new(Method::GET, "/health", AuthScope::None), "health")
            .await
    }

    async fn list_publishers(&self) -> Result<Vec<Publisher>, DcsError> {
        let limit = self.inner.cfg.publishers_page_size.clamp(1, 1000);
        let mut all: Vec<Publisher> = Vec::new();
        let mut skip: u64 = 0;
        loop {
            let page = self.list_publishers_page(skip, limit).await?;
            let n = page.items.len();
            all.extend(page.items);
            skip += n as u64;
            if n == 0 || n < limit as usize || all.len() as u64 >= page.total {
                break;
            }
        }
        Ok(all)
    }

    async fn get_publisher(&self, id: i64) -> Result<Publisher, DcsError> {
        let req = Req::new(
            Method::GET,
            format!("/publishers/{id}"),
            AuthScope::ApiKeyOk,
        );
        self.get_json(req, "publisher").await
    }

    async fn publisher_logo(&self, id: i64) -> Result<Download, DcsError> {
        let req = Req::new(
            Method::GET,
            format!("/publishers/{id}/logo"),
            AuthScope::ApiKeyOk,
        )
        .download();
        let answer = self.execute(req).await?;
        into_download(answer)
    }

    async fn list_books(&self, publisher_id: Option<i64>) -> Result<Vec<Book>, DcsError> {
        let mut req = Req::new(Method::GET, "/books/", AuthScope::ApiKeyOk);
        if let Some(id) = publisher_id {
            req = req.query(format!("publisher_id={id}"));
        }
        self.get_json(req, "book list").await
    }

    async fn get_book(&self, id: i64) -> Result<Book, DcsError> {
        let req = Req::new(Method::GET, format!("/books/{id}"), AuthScope::ApiKeyOk);
        self.get_json(req, "book").await
    }

    async fn book_config(
        &self,
        publisher: &str,
        book: &str,
    ) -> Result<serde_json::Value, DcsError> {
        let bytes = self.book_config_bytes(publisher, book).await?;
        serde_json::from_slice(&bytes).map_err(|e| DcsError::decode(format!("config.json: {e}")))
    }

    async fn book_contents(&self, publisher: &str, book: &str) -> Result<Vec<BookFile>, DcsError> {
        Ok(self.book_tree(publisher, book).await?.files())
    }

    async fn book_cover(
        &self,
        publisher: &str,
        book: &str,
        if_none_match: Option<&str>,
    ) -> Result<Conditional, DcsError> {
        let req = self.storage_req(publisher, book, "/cover")?.download();
        let req = conditional_headers(req, if_none_match)?;
        let answer = self.execute(req).await?;
        into_conditional(answer)
    }

    async fn download_asset(
        &self,
        publisher: &str,
        book: &str,
        path: &AssetPath,
        options: &DownloadOptions,
    ) -> Result<Conditional, DcsError> {
        let mut req = self
            .storage_req(publisher, book, "/object")?
            .query(format!("path={}", path.to_query_value()))
            .download();
        if let Some(range) = &options.range {
            req = req.header(header::RANGE, header_value("Range", range)?);
        }
        let req = conditional_headers(req, options.if_none_match.as_deref())?;
        let answer = self.execute(req).await?;
        into_conditional(answer)
    }

    async fn presigned_url(
        &self,
        publisher: &str,
        book: &str,
        path: &AssetPath,
        expires: Duration,
    ) -> Result<PresignedUrl, DcsError> {
        let secs = expires.as_secs();
        if !(60..=86400).contains(&secs) {
            return Err(DcsError::InvalidArgument {
                message: format!("presign expiry must be 60..=86400 s, got {secs} s"),
            });
        }
        let req = self
            .storage_req(publisher, book, "/presigned")?
            .query(format!(
                "path={}&expires={secs}",
                encode_query_value(path.as_str())
            ));
        self.get_json(req, "presigned URL").await
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookSubscription>, DcsError> {
        self.get_json(
            Req::new(Method::GET, "/webhooks/", WEBHOOKS),
            "webhook list",
        )
        .await
    }

    async fn create_webhook(
        &self,
        subscription: &WebhookSubscriptionCreate,
    ) -> Result<WebhookSubscription, DcsError> {
        let req = Req::new(Method::POST, "/webhooks/", WEBHOOKS).json(subscription)?;
        self.get_json(req, "webhook").await
    }

    async fn update_webhook(
        &self,
        id: i64,
        update: &WebhookSubscriptionUpdate,
    ) -> Result<WebhookSubscription, DcsError> {
        let req = Req::new(Method::PUT, format!("/webhooks/{id}"), WEBHOOKS).json(update)?;
        self.get_json(req, "webhook").await
    }

    async fn delete_webhook(&self, id: i64) -> Result<(), DcsError> {
        let req = Req::new(Method::DELETE, format!("/webhooks/{id}"), WEBHOOKS);
        self.execute(req).await.map(|_| ())
    }
}
