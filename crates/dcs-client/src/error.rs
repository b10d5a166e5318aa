//! The one error type of the crate, with a stable machine-readable code per variant.

use std::time::Duration;

use crate::models::{ErrorBody, ErrorDetail};

/// Everything that can go wrong when talking to DCS.
///
/// Every variant has a stable [`code()`](DcsError::code) (`dcs_*`) that callers may put into
/// their own error bodies and metrics. Messages carry the DCS `detail` where DCS sent one and
/// never contain a password, token or API key.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DcsError {
    /// Login was refused (`401 Invalid credentials`), or a request was still answered `401`
    /// after one fresh login, or an API key was rejected.
    #[error("DCS authentication failed: {detail}")]
    AuthFailed {
        /// DCS's `detail`, e.g. `Invalid credentials` or `Invalid token`.
        detail: String,
    },

    /// DCS answered `403 {"detail":"Not authenticated"}`: the request reached DCS without an
    /// `Authorization` header (FastAPI's `HTTPBearer` answers 403, not 401, in that case).
    #[error("DCS says the request was not authenticated (no Authorization header): {detail}")]
    NotAuthenticated {
        /// DCS's `detail` (`Not authenticated`).
        detail: String,
    },

    /// Any other `403`.
    #[error("DCS refused access (403): {detail}")]
    Forbidden {
        /// DCS's `detail`.
        detail: String,
    },

    /// `404`, e.g. `Book not found`, `Publisher not found`, `File not found`.
    #[error("not found in DCS: {detail}")]
    NotFound {
        /// DCS's `detail`.
        detail: String,
    },

    /// `409`, e.g. a duplicate publisher name or an existing book.
    #[error("conflict in DCS (409): {detail}")]
    Conflict {
        /// DCS's `detail` (an object detail is rendered as its `message` or as JSON).
        detail: String,
    },

    /// `416 Range Not Satisfiable` for a byte-range download.
    #[error("requested range not satisfiable: {detail}")]
    RangeNotSatisfiable {
        /// DCS's `detail`.
        detail: String,
    },

    /// Another 4xx (400, 405, 422, ...): the request was wrong. Never retried.
    #[error("DCS rejected the request ({status}): {detail}")]
    BadRequest {
        /// The HTTP status.
        status: u16,
        /// DCS's `detail`; for 422 the validation errors as `loc: msg` lines.
        detail: String,
    },

    /// `429 Too Many Requests` that was not (or no longer) waited out.
    #[error("DCS rate limited the request{}", fmt_retry_after(.retry_after))]
    RateLimited {
        /// What DCS asked for in `Retry-After`, if anything.
        retry_after: Option<Duration>,
    },

    /// A 5xx answer (after retries, where retries apply).
    #[error("DCS server error ({status}): {detail}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// DCS's `detail`, or the start of the body.
        detail: String,
    },

    /// A status this client does not expect from DCS (1xx/3xx other than 304).
    #[error("unexpected status {status} from DCS: {detail}")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// The `detail` or the start of the body.
        detail: String,
    },

    /// Connecting failed, the connection was reset, or the body broke off.
    #[error("network error talking to DCS: {message}")]
    Network {
        /// What went wrong (no secrets).
        message: String,
    },

    /// A per-step timeout elapsed (connect, one API attempt, time to response head, idle
    /// body). The whole call's deadline is [`DcsError::DeadlineExceeded`].
    #[error("DCS {phase} timed out after {after:?}")]
    Timeout {
        /// Which timeout: `connect`, `request`, `response head` or `body idle`.
        phase: &'static str,
        /// The configured limit that elapsed.
        after: Duration,
    },

    /// The call's overall deadline (`call_deadline`, or `download_deadline` up to a
    /// download's response head) passed, retries and waits included.
    #[error("DCS call deadline of {deadline:?} exceeded while {during}")]
    DeadlineExceeded {
        /// The configured deadline.
        deadline: Duration,
        /// What the call was doing when the deadline passed, e.g. `waiting for the response`,
        /// `waiting for a connection slot`, `logging in`.
        during: &'static str,
    },

    /// Every connection slot of the call's kind stayed busy for `pool_wait_timeout`: local
    /// queueing, DCS was not asked (so it is neither retried nor counted by the breaker).
    #[error(
        "DCS connection pool exhausted: all {limit} slots for {pool} stayed busy for {waited:?} (DCS was not asked)"
    )]
    PoolExhausted {
        /// Which budget: `api calls` (`max_connections_per_host`) or `streams`
        /// (`max_streams`).
        pool: &'static str,
        /// The size of that budget.
        limit: usize,
        /// How long the call waited (`pool_wait_timeout`).
        waited: Duration,
    },

    /// The circuit breaker is open: DCS failed repeatedly, and calls fail fast for a while.
    #[error("DCS circuit breaker is open; next probe allowed in {retry_in:?}")]
    CircuitOpen {
        /// How long until the breaker lets a probe through (zero while a probe is in flight).
        retry_in: Duration,
    },

    /// The response could not be decoded into the expected model.
    #[error("could not decode the DCS response: {message}")]
    Decode {
        /// The serde error or what was unexpected.
        message: String,
    },

    /// An asset path was refused before any request was made.
    #[error("invalid asset path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// An argument is out of the range DCS accepts (e.g. presign `expires`, a header value).
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },

    /// The configured credentials cannot be used for this route: DCS accepts API keys only on
    /// `/books/*` and `/publishers/*`, and no email/password is configured to log in for
    /// `/storage/*` or `/webhooks/*`.
    #[error(
        "DCS does not accept API keys on {route}; configure email/password credentials for this call"
    )]
    ApiKeyUnsupported {
        /// The route family, e.g. `/storage/*`.
        route: &'static str,
    },

    /// The configuration is unusable (bad base URL, no credentials, ...).
    #[error("invalid DCS client configuration: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },
}

fn fmt_retry_after(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {}s)", d.as_secs_f64()),
        None => String::new(),
    }
}

impl DcsError {
    /// A stable, machine-readable code for this error (`dcs_*`).
    pub fn code(&self) -> &'static str {
        match self {
            DcsError::AuthFailed { .. } => "dcs_auth_failed",
            DcsError::NotAuthenticated { .. } => "dcs_not_authenticated",
            DcsError::Forbidden { .. } => "dcs_forbidden",
            DcsError::NotFound { .. } => "dcs_not_found",
            DcsError::Conflict { .. } => "dcs_conflict",
            DcsError::RangeNotSatisfiable { .. } => "dcs_range_not_satisfiable",
            DcsError::BadRequest { .. } => "dcs_bad_request",
            DcsError::RateLimited { .. } => "dcs_rate_limited",
            DcsError::Server { .. } => "dcs_server_error",
            DcsError::UnexpectedStatus { .. } => "dcs_unexpected_status",
            DcsError::Network { .. } => "dcs_network",
            DcsError::Timeout { .. } => "dcs_timeout",
            DcsError::DeadlineExceeded { .. } => "dcs_deadline_exceeded",
            DcsError::PoolExhausted { .. } => "dcs_pool_exhausted",
            DcsError::CircuitOpen { .. } => "dcs_circuit_open",
            DcsError::Decode { .. } => "dcs_decode",
            DcsError::InvalidPath { .. } => "dcs_invalid_path",
            DcsError::InvalidArgument { .. } => "dcs_invalid_argument",
            DcsError::ApiKeyUnsupported { .. } => "dcs_api_key_unsupported",
            DcsError::InvalidConfig { .. } => "dcs_invalid_config",
        }
    }

    /// Whether trying the same request again later may succeed: network errors, timeouts,
    /// deadline, pool exhaustion, 5xx and 429. (The client already retried idempotent
    /// requests before returning, where that fitted into the deadline.)
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DcsError::Network { .. }
                | DcsError::Timeout { .. }
                | DcsError::DeadlineExceeded { .. }
                | DcsError::PoolExhausted { .. }
                | DcsError::Server { .. }
                | DcsError::RateLimited { .. }
        )
    }

    /// `true` for a 404 from DCS.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DcsError::NotFound { .. })
    }

    /// DCS is unavailable: network error, timeout, deadline exceeded, pool exhausted, 5xx or
    /// circuit open. This is what a caller turns into `503` and serving stale data.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DcsError::Network { .. }
                | DcsError::Timeout { .. }
                | DcsError::DeadlineExceeded { .. }
                | DcsError::PoolExhausted { .. }
                | DcsError::Server { .. }
                | DcsError::CircuitOpen { .. }
        )
    }

    /// `true` for authentication problems (`AuthFailed`, `NotAuthenticated`).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            DcsError::AuthFailed { .. } | DcsError::NotAuthenticated { .. }
        )
    }

    /// The HTTP status DCS answered with, where the error came from an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            DcsError::AuthFailed { .. } => None,
            DcsError::NotAuthenticated { .. } | DcsError::Forbidden { .. } => Some(403),
            DcsError::NotFound { .. } => Some(404),
            DcsError::Conflict { .. } => Some(409),
            DcsError::RangeNotSatisfiable { .. } => Some(416),
            DcsError::RateLimited { .. } => Some(429),
            DcsError::BadRequest { status, .. }
            | DcsError::Server { status, .. }
            | DcsError::UnexpectedStatus { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// For `RateLimited`, what DCS asked for; for `CircuitOpen`, the time to the next probe.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DcsError::RateLimited { retry_after } => *retry_after,
            DcsError::CircuitOpen { retry_in } => Some(*retry_in),
            _ => None,
        }
    }

    pub(crate) fn network(message: impl Into<String>) -> Self {
        DcsError::Network {
            message: message.into(),
        }
    }

    pub(crate) fn decode(message: impl Into<String>) -> Self {
        DcsError::Decode {
            message: message.into(),
        }
    }

    /// Maps a non-success DCS answer (status + body bytes) to an error.
    /// 401 maps to `AuthFailed`; the caller decides about re-login before that.
    pub(crate) fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let detail = detail_from_body(body);
        match status {
            401 => DcsError::AuthFailed { detail },
            403 if detail == "Not authenticated" => DcsError::NotAuthenticated { detail },
            403 => DcsError::Forbidden { detail },
            404 => DcsError::NotFound { detail },
            409 => DcsError::Conflict { detail },
            416 => DcsError::RangeNotSatisfiable { detail },
            429 => DcsError::RateLimited { retry_after },
            400..=499 => DcsError::BadRequest { status, detail },
            500..=599 => DcsError::Server { status, detail },
            _ => DcsError::UnexpectedStatus { status, detail },
        }
    }
}

/// The human-readable `detail` of an error body. Validation errors are rendered as
/// `loc: msg` (never their `input`, which may echo what was sent, e.g. a password).
pub(crate) fn detail_from_body(body: &[u8]) -> String {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return parsed.detail.message();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no detail)".to_owned();
    }
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

impl ErrorDetail {
    /// The detail as one line of text (see [`DcsError`] for how validation errors render).
    pub fn message(&self) -> String {
        match self {
            ErrorDetail::Message(m) => m.clone(),
            ErrorDetail::Validation(issues) => issues
                .iter()
                .map(|i| {
                    let loc: Vec<String> = i
                        .loc
                        .iter()
                        .map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    format!("{}: {}", loc.join("."), i.msg)
                })
                .collect::<Vec<_>>()
                .join("; "),
            ErrorDetail::Object(map) => match map.get("message") {
                Some(serde_json::Value::String(m)) => m.clone(),
                _ => serde_json::Value::Object(map.clone()).to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers put these codes into their own error bodies and metrics: they must not change.
    #[test]
    fn every_variant_has_its_own_stable_code() {
        let d = || "x".to_owned();
        let all = [
            (DcsError::AuthFailed { detail: d() }, "dcs_auth_failed"),
            (
                DcsError::NotAuthenticated { detail: d() },
                "dcs_not_authenticated",
            ),
            (DcsError::Forbidden { detail: d() }, "dcs_forbidden"),
            (DcsError::NotFound { detail: d() }, "dcs_not_found"),
            (DcsError::Conflict { detail: d() }, "dcs_conflict"),
            (
                DcsError::RangeNotSatisfiable { detail: d() },
                "dcs_range_not_satisfiable",
            ),
            (
                DcsError::BadRequest {
                    status: 422,
                    detail: d(),
                },
                "dcs_bad_request",
            ),
            (
                DcsError::RateLimited {
                    retry_after: Some(Duration::from_secs(3)),
                },
                "dcs_rate_limited",
            ),
            (
                DcsError::Server {
                    status: 502,
                    detail: d(),
                },
                "dcs_server_error",
            ),
            (
                DcsError::UnexpectedStatus {
                    status: 302,
                    detail: d(),
                },
                "dcs_unexpected_status",
            ),
            (DcsError::Network { message: d() }, "dcs_network"),
            (
                DcsError::Timeout {
                    phase: "request",
                    after: Duration::from_secs(30),
                },
                "dcs_timeout",
            ),
            (
                DcsError::CircuitOpen {
                    retry_in: Duration::from_secs(1),
                },
                "dcs_circuit_open",
            ),
            (
                DcsError::DeadlineExceeded {
                    deadline: Duration::from_secs(5),
                    during: "waiting for the response",
                },
                "dcs_deadline_exceeded",
            ),
            (
                DcsError::PoolExhausted {
                    pool: "api calls",
                    limit: 10,
                    waited: Duration::from_secs(1),
                },
                "dcs_pool_exhausted",
            ),
            (DcsError::Decode { message: d() }, "dcs_decode"),
            (
                DcsError::InvalidPath {
                    path: d(),
                    reason: "r",
                },
                "dcs_invalid_path",
            ),
            (
                DcsError::InvalidArgument { message: d() },
                "dcs_invalid_argument",
            ),
            (
                DcsError::ApiKeyUnsupported {
                    route: "/storage/*",
                },
                "dcs_api_key_unsupported",
            ),
            (
                DcsError::InvalidConfig { message: d() },
                "dcs_invalid_config",
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (error, code) in &all {
            assert_eq!(error.code(), *code, "{error:?}");
            assert!(seen.insert(*code), "{code} used twice");
        }
        let limited = &all[7].0;
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            limited.to_string(),
            "DCS rate limited the request (retry after 3s)"
        );
        assert_eq!(all[8].0.status(), Some(502));
        let deadline = &all[13].0;
        assert_eq!(
            deadline.to_string(),
            "DCS call deadline of 5s exceeded while waiting for the response"
        );
        assert!(deadline.is_unavailable() && deadline.is_retryable());
        let pool = &all[14].0;
        assert_eq!(
            pool.to_string(),
            "DCS connection pool exhausted: all 10 slots for api calls stayed busy for 1s (DCS was not asked)"
        );
        assert!(pool.is_unavailable() && pool.is_retryable());
    }
}
