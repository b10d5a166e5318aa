//! The one table of stable error codes, and the domain's own upstream error.
//!
//! Every code the API can answer with is a [`Code`], defined once with its HTTP status, its
//! message when the message is fixed, and its `Retry-After` when it has a default. A domain
//! error says which code it is in one place, by implementing [`ToProblem`]; the HTTP layer
//! renders any [`Problem`] the same way (`{"detail", "code", ...extra fields}`, the status,
//! `Retry-After`).
//!
//! **Adding an error.** Add a variant to [`Code`] and one row to [`Code::entry`] (name, status,
//! fixed message or `None`, default `Retry-After` or `None`); implement [`ToProblem`] for the
//! new domain error, mapping each of its variants to one code; add a `From` for the HTTP error
//! in the app (one line, through `ApiError::from_problem`). Codes are stable: never rename one,
//! never reuse a name.

use std::borrow::Cow;
use std::time::Duration;

use dcs_client::DcsError;

/// The detail of every 503 caused by DCS (fixed by the interface).
pub const CONTENT_STORAGE_UNAVAILABLE: &str =
    "Content storage temporarily unavailable. Please try again.";

/// A stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    // ----- requests the server could not take ----------------------------------------------
    /// A request that could not be read.
    BadRequest,
    /// A query parameter that does not parse or is out of range.
    InvalidQuery,
    /// A path parameter that does not parse.
    InvalidPath,
    /// A JSON body that is not JSON.
    MalformedJson,
    /// A JSON body of the wrong shape.
    InvalidBody,
    /// A body that is not `application/json` where JSON is expected.
    UnsupportedMediaType,
    /// A body over the limit of its route.
    PayloadTooLarge,
    /// No bearer credentials.
    NotAuthenticated,
    /// A malformed, wrongly signed or other-algorithm token.
    InvalidToken,
    /// An expired token.
    TokenExpired,
    /// The caller's role may not do this.
    Forbidden,
    /// Nothing at this route or id.
    NotFound,
    /// The route exists under other methods.
    MethodNotAllowed,

    // ----- DCS -------------------------------------------------------------------------------
    /// DCS unreachable, failing or rate limiting, and nothing usable cached.
    ContentStorageUnavailable,
    /// DCS answered in a way the LMS cannot serve.
    ContentStorageError,
    /// DCS refused the configured e-mail and password.
    DcsAuthFailed,
    /// DCS refused the LMS's token.
    DcsNotAuthenticated,
    /// DCS accepts only a password login on this route, and only an API key is configured.
    DcsApiKeyUnsupported,

    // ----- DCS webhooks ----------------------------------------------------------------------
    /// No `X-Webhook-Signature` header.
    WebhookSignatureMissing,
    /// A signature that does not match the body.
    WebhookSignatureInvalid,
    /// Correctly signed, but not a delivery.
    WebhookBodyMalformed,
    /// An identical delivery is still being processed.
    WebhookInProgress,
    /// The cache is fresh but the delivery's follow-up (activities) must be retried.
    WebhookFollowUpFailed,
    /// The cache was cleared here but not on every instance.
    CacheInvalidationIncomplete,
    /// Another instance is registering the DCS subscription.
    WebhookRegistrationInProgress,

    // ----- teacher materials -----------------------------------------------------------------
    /// No material with this id among the caller's.
    MaterialNotFound,
    /// A multipart upload that is not one file part (missing, doubled, cut off, malformed).
    InvalidUpload,
    /// An uploaded file with no bytes.
    EmptyFile,
    /// A file over `MATERIAL_MAX_BYTES`.
    FileTooLarge,
    /// A file whose declared type, extension and bytes do not agree on an allowed type.
    UnsupportedFileType,
    /// The upload does not fit the teacher's remaining quota.
    QuotaExceeded,
    /// The virus scanner found something.
    VirusDetected,
    /// Scanning is on and the scanner cannot be reached.
    ScannerUnavailable,
    /// A material or file name that cannot be used.
    InvalidName,
    /// A link that cannot be stored.
    InvalidUrl,
    /// A note that cannot be stored (empty or over 50 KB).
    InvalidNote,
    /// `/stream` of something that is not audio or video.
    MaterialNotStreamable,
    /// The object store holding teacher files is unreachable or failing.
    FileStorageUnavailable,
    /// The database cannot be reached (no connection within the pool's timeout).
    DatabaseUnavailable,

    // ----- bare statuses (answers that carry no error of ours) -------------------------------
    /// 401 without a more specific code.
    Unauthorized,
    /// 406.
    NotAcceptable,
    /// 408.
    RequestTimeout,
    /// 409 without a more specific code.
    Conflict,
    /// 410.
    Gone,
    /// 411.
    LengthRequired,
    /// 412.
    PreconditionFailed,
    /// 414.
    UriTooLong,
    /// 416.
    RangeNotSatisfiable,
    /// 422 without a more specific code.
    UnprocessableEntity,
    /// 429.
    TooManyRequests,
    /// 431.
    RequestHeaderFieldsTooLarge,
    /// 500: the cause is logged, never shown.
    Internal,
    /// 501.
    NotImplemented,
    /// 502 without a more specific code.
    BadGateway,
    /// 503 without a more specific code.
    ServiceUnavailable,
    /// 504.
    GatewayTimeout,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeEntry {
    /// The stable name clients branch on.
    pub name: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The message, when it is the same for every error with this code.
    pub detail: Option<&'static str>,
    /// `Retry-After` in seconds when the error gives no better hint.
    pub retry_after_secs: Option<u64>,
}

const fn row(
    name: &'static str,
    status: u16,
    detail: Option<&'static str>,
    retry_after_secs: Option<u64>,
) -> CodeEntry {
    CodeEntry {
        name,
        status,
        detail,
        retry_after_secs,
    }
}

impl Code {
    /// The table.
    pub const fn entry(self) -> CodeEntry {
        use Code::*;
        match self {
            BadRequest => row("bad_request", 400, None, None),
            InvalidQuery => row("invalid_query", 400, None, None),
            InvalidPath => row("invalid_path", 400, None, None),
            MalformedJson => row("malformed_json", 400, None, None),
            InvalidBody => row("invalid_body", 422, None, None),
            UnsupportedMediaType => row("unsupported_media_type", 415, None, None),
            PayloadTooLarge => row("payload_too_large", 413, None, None),
            NotAuthenticated => row("not_authenticated", 401, Some("Not authenticated"), None),
            InvalidToken => row("invalid_token", 401, Some("Invalid token"), None),
            TokenExpired => row("token_expired", 401, Some("Token expired"), None),
            Forbidden => row("forbidden", 403, None, None),
            NotFound => row("not_found", 404, None, None),
            MethodNotAllowed => row("method_not_allowed", 405, Some("Method not allowed"), None),

            ContentStorageUnavailable => row(
                "content_storage_unavailable",
                503,
                Some(CONTENT_STORAGE_UNAVAILABLE),
                Some(30),
            ),
            ContentStorageError => row(
                "content_storage_error",
                502,
                Some("Content storage returned an unexpected answer."),
                None,
            ),
            DcsAuthFailed => row(
                "dcs_auth_failed",
                502,
                Some("DCS refused the configured credentials."),
                None,
            ),
            DcsNotAuthenticated => row(
                "dcs_not_authenticated",
                502,
                Some("DCS refused the configured credentials."),
                None,
            ),
            DcsApiKeyUnsupported => row(
                "dcs_api_key_unsupported",
                502,
                Some(
                    "DCS accepts only a password login on /webhooks/; set \
                     DREAM_CENTRAL_STORAGE_EMAIL and DREAM_CENTRAL_STORAGE_PASSWORD.",
                ),
                None,
            ),

            WebhookSignatureMissing => row(
                "webhook_signature_missing",
                401,
                Some("Missing X-Webhook-Signature header"),
                None,
            ),
            WebhookSignatureInvalid => row(
                "webhook_signature_invalid",
                401,
                Some("Invalid webhook signature"),
                None,
            ),
            WebhookBodyMalformed => row("webhook_body_malformed", 400, None, None),
            WebhookInProgress => row(
                "webhook_in_progress",
                503,
                Some("An identical delivery is still being processed; retry later."),
                Some(1),
            ),
            WebhookFollowUpFailed => row(
                "webhook_follow_up_failed",
                503,
                Some("The delivery could not be fully processed; retry it."),
                Some(1),
            ),
            CacheInvalidationIncomplete => row(
                "cache_invalidation_incomplete",
                503,
                Some("The cache could not be invalidated on every instance; retry the delivery."),
                Some(1),
            ),
            WebhookRegistrationInProgress => row(
                "webhook_registration_in_progress",
                409,
                Some("Another instance is registering the webhook right now; try again shortly."),
                Some(5),
            ),

            MaterialNotFound => row("material_not_found", 404, Some("Material not found"), None),
            InvalidUpload => row("invalid_upload", 400, None, None),
            EmptyFile => row("empty_file", 400, Some("The file is empty."), None),
            FileTooLarge => row("file_too_large", 413, None, None),
            UnsupportedFileType => row("unsupported_file_type", 415, None, None),
            QuotaExceeded => row("quota_exceeded", 413, None, None),
            VirusDetected => row("virus_detected", 422, None, None),
            ScannerUnavailable => row(
                "scanner_unavailable",
                503,
                Some("Uploads cannot be checked for viruses right now. Please try again."),
                Some(30),
            ),
            InvalidName => row("invalid_name", 422, None, None),
            InvalidUrl => row("invalid_url", 422, None, None),
            InvalidNote => row("invalid_note", 422, None, None),
            MaterialNotStreamable => row(
                "material_not_streamable",
                400,
                Some("Only audio and video materials can be streamed; use /download."),
                None,
            ),
            FileStorageUnavailable => row(
                "file_storage_unavailable",
                503,
                Some("File storage temporarily unavailable. Please try again."),
                Some(5),
            ),
            DatabaseUnavailable => row(
                "database_unavailable",
                503,
                Some("The database is temporarily unavailable. Please try again."),
                Some(5),
            ),

            Unauthorized => row("unauthorized", 401, None, None),
            NotAcceptable => row("not_acceptable", 406, None, None),
            RequestTimeout => row("request_timeout", 408, None, None),
            Conflict => row("conflict", 409, None, None),
            Gone => row("gone", 410, None, None),
            LengthRequired => row("length_required", 411, None, None),
            PreconditionFailed => row("precondition_failed", 412, None, None),
            UriTooLong => row("uri_too_long", 414, None, None),
            RangeNotSatisfiable => row("range_not_satisfiable", 416, None, None),
            UnprocessableEntity => row("unprocessable_entity", 422, None, None),
            TooManyRequests => row("too_many_requests", 429, None, None),
            RequestHeaderFieldsTooLarge => row("request_header_fields_too_large", 431, None, None),
            Internal => row("internal_error", 500, Some("Internal server error"), None),
            NotImplemented => row("not_implemented", 501, None, None),
            BadGateway => row("bad_gateway", 502, None, None),
            ServiceUnavailable => row("service_unavailable", 503, None, None),
            GatewayTimeout => row("gateway_timeout", 504, None, None),
        }
    }

    /// The stable name.
    pub const fn name(self) -> &'static str {
        self.entry().name
    }

    /// The HTTP status.
    pub const fn status(self) -> u16 {
        self.entry().status
    }

    /// The code of an answer that carries nothing but its status (actix's own errors, for
    /// example); `None` for statuses without a named code.
    pub const fn for_status(status: u16) -> Option<Self> {
        use Code::*;
        Some(match status {
            400 => BadRequest,
            401 => Unauthorized,
            403 => Forbidden,
            404 => NotFound,
            405 => MethodNotAllowed,
            406 => NotAcceptable,
            408 => RequestTimeout,
            409 => Conflict,
            410 => Gone,
            411 => LengthRequired,
            412 => PreconditionFailed,
            413 => PayloadTooLarge,
            414 => UriTooLong,
            415 => UnsupportedMediaType,
            416 => RangeNotSatisfiable,
            422 => UnprocessableEntity,
            429 => TooManyRequests,
            431 => RequestHeaderFieldsTooLarge,
            500 => Internal,
            501 => NotImplemented,
            502 => BadGateway,
            503 => ServiceUnavailable,
            504 => GatewayTimeout,
            _ => return None,
        })
    }
}

/// An error as clients see it: a code, its message, an optional retry hint and extra fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The code (status and defaults come from the table).
    pub code: Code,
    /// The message: the table's fixed one unless [`Problem::with_detail`] replaced it.
    pub detail: Cow<'static, str>,
    /// A retry hint better than the code's default (DCS's own `Retry-After`, for example).
    pub retry_after: Option<Duration>,
    /// Extra top-level fields of the body.
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl Problem {
    /// A problem with the code's fixed message (or, for codes without one, an empty message
    /// that [`Problem::with_detail`] is expected to fill).
    pub fn new(code: Code) -> Self {
        Self {
            code,
            detail: Cow::Borrowed(code.entry().detail.unwrap_or_default()),
            retry_after: None,
            fields: Vec::new(),
        }
    }

    /// Replaces the message.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Sets a retry hint.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Adds an extra field to the body.
    pub fn with_field(mut self, name: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.fields.push((name, value.into()));
        self
    }

    /// The `Retry-After` to send, in whole seconds: the hint rounded up (at least 1), else the
    /// code's default, else none.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self.retry_after {
            Some(hint) => Some(hint.as_secs_f64().ceil().max(1.0) as u64),
            None => self.code.entry().retry_after_secs,
        }
    }
}

/// A domain error that knows its code: the one place where its variants map to codes.
pub trait ToProblem {
    /// The problem clients see.
    fn problem(&self) -> Problem;
}

/// DCS failed in a way the LMS does not hide (the domain's own view of DCS errors, so that
/// callers never see the client's error type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content storage error ({upstream_code}): {message}")]
pub struct UpstreamError {
    /// The DCS client's stable code (`dcs_auth_failed`, `dcs_decode`, ...), passed on to
    /// clients as `upstream_code`.
    pub upstream_code: &'static str,
    /// What went wrong (logged, never shown).
    pub message: String,
}

impl From<&DcsError> for UpstreamError {
    fn from(error: &DcsError) -> Self {
        Self {
            upstream_code: error.code(),
            message: error.to_string(),
        }
    }
}

impl ToProblem for UpstreamError {
    fn problem(&self) -> Problem {
        Problem::new(Code::ContentStorageError).with_field("upstream_code", self.upstream_code)
    }
}

/// Whether a DCS error means "DCS is not answering now" (serve stale or say 503).
pub fn dcs_is_unavailable(error: &DcsError) -> bool {
    error.is_unavailable() || matches!(error, DcsError::RateLimited { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_bare_statuses_map_back() {
        let all = [
            Code::BadRequest,
            Code::InvalidQuery,
            Code::InvalidPath,
            Code::MalformedJson,
            Code::InvalidBody,
            Code::UnsupportedMediaType,
            Code::PayloadTooLarge,
            Code::NotAuthenticated,
            Code::InvalidToken,
            Code::TokenExpired,
            Code::Forbidden,
            Code::NotFound,
            Code::MethodNotAllowed,
            Code::ContentStorageUnavailable,
            Code::ContentStorageError,
            Code::DcsAuthFailed,
            Code::DcsNotAuthenticated,
            Code::DcsApiKeyUnsupported,
            Code::WebhookSignatureMissing,
            Code::WebhookSignatureInvalid,
            Code::WebhookBodyMalformed,
            Code::WebhookInProgress,
            Code::WebhookFollowUpFailed,
            Code::CacheInvalidationIncomplete,
            Code::WebhookRegistrationInProgress,
            Code::MaterialNotFound,
            Code::InvalidUpload,
            Code::EmptyFile,
            Code::FileTooLarge,
            Code::UnsupportedFileType,
            Code::QuotaExceeded,
            Code::VirusDetected,
            Code::ScannerUnavailable,
            Code::InvalidName,
            Code::InvalidUrl,
            Code::InvalidNote,
            Code::MaterialNotStreamable,
            Code::FileStorageUnavailable,
            Code::DatabaseUnavailable,
            Code::Unauthorized,
            Code::NotAcceptable,
            Code::RequestTimeout,
            Code::Conflict,
            Code::Gone,
            Code::LengthRequired,
            Code::PreconditionFailed,
            Code::UriTooLong,
            Code::RangeNotSatisfiable,
            Code::UnprocessableEntity,
            Code::TooManyRequests,
            Code::RequestHeaderFieldsTooLarge,
            Code::Internal,
            Code::NotImplemented,
            Code::BadGateway,
            Code::ServiceUnavailable,
            Code::GatewayTimeout,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), all.len());
        for code in all {
            if let Some(bare) = Code::for_status(code.status()) {
                assert_eq!(bare.status(), code.status(), "{code:?}");
            }
        }
        assert_eq!(Code::for_status(418), None);
    }

    #[test]
    fn retry_after_prefers_the_hint_rounded_up() {
        let problem = Problem::new(Code::ContentStorageUnavailable);
        assert_eq!(problem.retry_after_secs(), Some(30));
        assert_eq!(problem.detail, CONTENT_STORAGE_UNAVAILABLE);
        let hinted = problem.with_retry_after(Some(Duration::from_millis(1200)));
        assert_eq!(hinted.retry_after_secs(), Some(2));
        let tiny = Problem::new(Code::ContentStorageUnavailable)
            .with_retry_after(Some(Duration::from_millis(1)));
        assert_eq!(tiny.retry_after_secs(), Some(1));
        assert_eq!(Problem::new(Code::NotFound).retry_after_secs(), None);
    }
}
