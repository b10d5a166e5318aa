//! The one error shape of the API: `{"detail": "<message>", "code": "<stable_code>"}`.
//!
//! The codes, their statuses and their fixed messages are the table in
//! [`domain::errors::Code`]; domain errors become [`ApiError`]s through
//! [`ApiError::from_problem`] (one `From` line per domain error, below).
//!
//! Handlers return [`ApiError`]; extractor failures go through the handlers in this module; any
//! other error response (actix built-ins, unmatched routes, wrong methods) is rewritten by
//! [`normalize_error_responses`], so no plain-text error leaves the server.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::guard::GuardContext;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use domain::catalog::CatalogError;
use domain::errors::{Code, Problem, ToProblem};
use domain::webhook_receiver::ReceiveError;
use domain::webhook_registration::RegistrationError;

type BoxedSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable message, safe to show to the user.
    #[schema(example = "Not found")]
    pub detail: String,
    /// Stable machine-readable code; clients branch on this, not on `detail`.
    #[schema(example = "not_found")]
    pub code: String,
}

/// An error that renders as `{"detail", "code"}` with its HTTP status.
///
/// Server errors (5xx) are logged with their cause when rendered; for [`ApiError::internal`]
/// the client only ever sees "Internal server error".
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Cow<'static, str>,
    fields: Map<String, Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
    source: Option<BoxedSource>,
}

impl ApiError {
    /// An error with an explicit status, code and message.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            detail: detail.into(),
            fields: Map::new(),
            headers: Vec::new(),
            source: None,
        }
    }

    /// The error a [`Problem`] describes: the code's status, the problem's message, fields and
    /// `Retry-After`.
    pub fn from_problem(problem: Problem) -> Self {
        let status = StatusCode::from_u16(problem.code.status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = Self::new(status, problem.code.name(), problem.detail.clone());
        for (name, value) in &problem.fields {
            error = error.with_field(*name, value.clone());
        }
        if let Some(secs) = problem.retry_after_secs() {
            error = error.with_header(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        error
    }

    /// The error for a domain error, which keeps it as the (logged) cause.
    pub fn from_domain<E>(error: E) -> Self
    where
        E: ToProblem + std::error::Error + Send + Sync + 'static,
    {
        Self::from_problem(error.problem()).with_source(error)
    }

    /// An error with a code of the table and its fixed message.
    pub fn from_code(code: Code) -> Self {
        Self::from_problem(Problem::new(code))
    }

    /// Why an upstream was unavailable, when that is what this error is: the DCS client's code
    /// (`dcs_timeout`, `dcs_circuit_open`, ...) or `content_storage` (object storage). Counted
    /// in `lms_upstream_unavailable_total`.
    pub fn upstream_cause(&self) -> Option<&'static str> {
        use domain::book_content::ContentError;
        let source = self.source.as_deref()?;
        let catalog = match source.downcast_ref::<ContentError>() {
            Some(ContentError::Unavailable { .. }) => return Some("content_storage"),
            Some(ContentError::Catalog(catalog)) => Some(catalog),
            Some(_) => None,
            None => source.downcast_ref::<CatalogError>(),
        };
        match catalog {
            Some(CatalogError::Unavailable { cause, .. }) => Some(cause),
            _ => None,
        }
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::from_code(Code::NotFound).with_detail(detail)
    }

    /// The same error with another message.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = detail.into();
        self
    }

    /// 401 with one of the table's 401 codes and `WWW-Authenticate: Bearer` (RFC 6750); `error`
    /// is the RFC 6750 error code
    /// (`invalid_token`) or `None` when no credentials were sent.
    pub fn unauthorized(code: Code, error: Option<&'static str>) -> Self {
        let challenge = match error {
            Some(error) => format!("Bearer error=\"{error}\""),
            None => "Bearer".to_owned(),
        };
        let value = HeaderValue::from_str(&challenge).expect("challenge is ASCII");
        Self::from_code(code).with_header(header::WWW_AUTHENTICATE, value)
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::from_code(Code::Forbidden).with_detail(detail)
    }

    /// 405 `method_not_allowed` with the `Allow` header when the allowed methods are known.
    pub fn method_not_allowed(allowed: &[Method]) -> Self {
        let error = Self::from_code(Code::MethodNotAllowed);
        if allowed.is_empty() {
            return error;
        }
        let list = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        match HeaderValue::from_str(&list) {
            Ok(value) => error.with_header(header::ALLOW, value),
            Err(_) => error,
        }
    }

    /// 503 `service_unavailable` with a `Retry-After` in seconds.
    pub fn service_unavailable(
        detail: impl Into<Cow<'static, str>>,
        retry_after_secs: u64,
    ) -> Self {
        Self::from_code(Code::ServiceUnavailable)
            .with_detail(detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    /// 500 that hides `source` from the client and logs it.
    pub fn internal(source: impl Into<BoxedSource>) -> Self {
        let mut error = Self::from_code(Code::Internal);
        error.source = Some(source.into());
        error
    }

    /// The canonical error for a bare status code (used for responses that carry no error of
    /// ours, such as actix's built-in ones).
    pub fn from_status(status: StatusCode) -> Self {
        if status.is_server_error() {
            let mut error = Self::new(status, code_for_status(status), "Internal server error");
            if status != StatusCode::INTERNAL_SERVER_ERROR {
                error.detail = Cow::Borrowed(status.canonical_reason().unwrap_or("Server error"));
            }
            return error;
        }
        Self::new(
            status,
            code_for_status(status),
            status.canonical_reason().unwrap_or("Request failed"),
        )
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds an extra top-level field to the JSON body (`detail` and `code` cannot be replaced).
    pub fn with_field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.insert(name.into(), value.into());
        self
    }

    /// Records the underlying cause, logged (never shown) for server errors.
    pub fn with_source(mut self, source: impl Into<BoxedSource>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The client-facing message.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    fn body(&self) -> Map<String, Value> {
        let mut body = self.fields.clone();
        body.insert("detail".to_owned(), Value::String(self.detail.to_string()));
        body.insert("code".to_owned(), Value::String(self.code.to_string()));
        body
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status.as_u16())
            .field("code", &self.code)
            .field("detail", &self.detail)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        if self.status.is_server_error() {
            match &self.source {
                Some(source) => tracing::error!(
                    status = self.status.as_u16(),
                    code = %self.code,
                    error = %ErrorChain(source.as_ref()),
                    "request failed"
                ),
                None => tracing::warn!(
                    status = self.status.as_u16(),
                    code = %self.code,
                    detail = %self.detail,
                    "request failed"
                ),
            }
        }
        let mut response = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        // A request not read in full leaves unread bytes on the connection: it cannot be
        // reused.
        if self.status == StatusCode::REQUEST_TIMEOUT {
            response.force_close();
        }
        response.json(self.body())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::internal(err)
    }
}

// One line per domain error: the mapping to codes is the domain's (`ToProblem`).

impl From<domain::book_content::ContentError> for ApiError {
    fn from(error: domain::book_content::ContentError) -> Self {
        Self::from_domain(error)
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        Self::from_domain(error)
    }
}

impl From<ReceiveError> for ApiError {
    fn from(error: ReceiveError) -> Self {
        Self::from_domain(error)
    }
}

impl From<RegistrationError> for ApiError {
    fn from(error: RegistrationError) -> Self {
        Self::from_domain(error)
    }
}

/// Displays an error and its causes, `a: b: c`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

/// Stable codes for bare statuses (from the table), so clients can rely on them.
fn code_for_status(status: StatusCode) -> Cow<'static, str> {
    match Code::for_status(status.as_u16()) {
        Some(code) => Cow::Borrowed(code.name()),
        None => Cow::Owned(format!("http_{}", status.as_u16())),
    }
}

/// `web::Json` failures: bad syntax 400, wrong shape 422, too large 413, wrong type 415.
pub fn json_error_handler(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api_error = match &err {
        JsonPayloadError::ContentType => ApiError::from_code(Code::UnsupportedMediaType)
            .with_detail("Content-Type must be application/json"),
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::from_code(Code::PayloadTooLarge)
                .with_detail(format!("JSON body is larger than {limit} bytes"))
        }
        JsonPayloadError::Deserialize(inner) if inner.is_data() => {
            ApiError::from_code(Code::InvalidBody)
                .with_detail(format!("Invalid request body: {inner}"))
        }
        JsonPayloadError::Deserialize(inner) => ApiError::from_code(Code::MalformedJson)
            .with_detail(format!("Malformed JSON body: {inner}")),
        JsonPayloadError::Payload(_) => {
            ApiError::from_code(Code::BadRequest).with_detail("Could not read the request body")
        }
        other => {
            ApiError::from_code(Code::BadRequest).with_detail(format!("Invalid JSON body: {other}"))
        }
    };
    api_error.with_source(err).into()
}

/// `web::Query` failures.
pub fn query_error_handler(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let detail = match &err {
        QueryPayloadError::Deserialize(inner) => format!("Invalid query string: {inner}"),
        _ => "Invalid query string".to_owned(),
    };
    ApiError::from_code(Code::InvalidQuery)
        .with_detail(detail)
        .with_source(err)
        .into()
}

/// `web::Path` failures (a segment that does not parse as the expected type).
pub fn path_error_handler(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    let detail = match &err {
        PathError::Deserialize(inner) => format!("Invalid path parameter: {inner}"),
        _ => "Invalid path parameter".to_owned(),
    };
    ApiError::from_code(Code::InvalidPath)
        .with_detail(detail)
        .with_source(err)
        .into()
}

/// Methods each route pattern answers, for `Allow` on 405 responses. Built from the OpenAPI
/// document, which is generated from the same handlers that are registered.
#[derive(Debug, Clone, Default)]
pub struct AllowedMethods(BTreeMap<String, Vec<Method>>);

impl AllowedMethods {
    /// Collects the methods of every documented path.
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let mut map = BTreeMap::new();
        for (path, item) in &doc.paths.paths {
            let methods: Vec<Method> = [
                (Method::GET, &item.get),
                (Method::HEAD, &item.head),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
                (Method::OPTIONS, &item.options),
                (Method::TRACE, &item.trace),
            ]
            .into_iter()
            .filter(|(_, operation)| operation.is_some())
            .map(|(method, _)| method)
            .collect();
            // Every GET route answers HEAD too (see `crate::head`).
            let mut methods = methods;
            if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                let at = methods
                    .iter()
                    .position(|m| *m == Method::GET)
                    .map_or(0, |i| i + 1);
                methods.insert(at, Method::HEAD);
            }
            map.insert(path.clone(), methods);
        }
        Self(map)
    }

    /// Whether `path` is a documented route without parameters (`/api/v1/teachers/materials/quota`).
    pub fn is_fixed_route(&self, path: &str) -> bool {
        !path.contains('{') && self.0.contains_key(path)
    }

    /// Methods of a route pattern such as `/api/v1/books/{id}`; empty when unknown. A pattern
    /// with a regex segment (`{path:.+}`) is looked up as the document names it (`{path}`).
    pub fn for_pattern(&self, pattern: &str) -> &[Method] {
        self.0
            .get(pattern)
            .or_else(|| self.0.get(&without_regex(pattern)))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// `/books/{id}/assets/{path:.+}` -> `/books/{id}/assets/{path}`.
fn without_regex(pattern: &str) -> String {
    let mut plain = String::with_capacity(pattern.len());
    let mut in_regex = false;
    for c in pattern.chars() {
        match c {
            ':' if plain.rfind('{') > plain.rfind('}') => in_regex = true,
            '}' => {
                in_regex = false;
                plain.push(c);
            }
            _ if in_regex => {}
            _ => plain.push(c),
        }
    }
    plain
}

/// Route guard of a parameter route (`/teachers/materials/{id}`) that shares its shape with
/// fixed routes (`/teachers/materials/quota`): it never takes a fixed route's path, so a wrong
/// method there reaches [`unmatched_route`] (405 with the fixed route's `Allow`) instead of
/// failing to parse `quota` as an id (400 `invalid_path`).
pub fn not_a_fixed_route(ctx: &GuardContext<'_>) -> bool {
    ctx.app_data::<web::Data<AllowedMethods>>()
        .is_none_or(|allowed| !allowed.is_fixed_route(ctx.head().uri.path()))
}

/// Default service: 405 when the path exists under another method, 404 otherwise.
///
/// Route macros put the method guard on the resource, so a wrong method falls through to
/// here instead of to the resource's own 405.
pub async fn unmatched_route(
    req: HttpRequest,
    allowed: Option<web::Data<AllowedMethods>>,
) -> ApiError {
    match req.resource_map().match_pattern(req.path()) {
        Some(pattern) => {
            let methods = allowed
                .as_deref()
                .map(|allowed| allowed.for_pattern(&pattern).to_vec())
                .unwrap_or_default();
            ApiError::method_not_allowed(&methods)
        }
        None => ApiError::not_found("Not found"),
    }
}

impl actix_web::Responder for ApiError {
    type Body = BoxBody;

    fn respond_to(self, _req: &HttpRequest) -> HttpResponse<Self::Body> {
        self.error_response()
    }
}

/// Rewrites any error response that is not JSON into the error shape, keeping the headers
/// that matter to clients (`Allow`, `WWW-Authenticate`, `Retry-After`). Applied to every
/// answer by the app's one middleware (`app::create_app`).
pub fn normalize_error_responses<B: MessageBody>(
    result: Result<ServiceResponse<B>, actix_web::Error>,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error> {
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            // An error that escaped as `Err`: keep ours (already JSON), normalise the rest.
            if err.as_error::<ApiError>().is_some() {
                return Err(err);
            }
            let status = err.as_response_error().status_code();
            let normalized = ApiError::from_status(status).with_source(err.to_string());
            return Err(normalized.into());
        }
    };

    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return Ok(response.map_into_left_body());
    }

    let (request, original) = response.into_parts();
    let mut error = ApiError::from_status(status);
    if let Some(cause) = original.error() {
        error = error.with_source(cause.to_string());
    }
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(value) = original.headers().get(&name) {
            error = error.with_header(name, value.clone());
        }
    }
    let replacement = error.error_response();
    Ok(ServiceResponse::new(request, replacement).map_into_right_body())
}

fn is_json<B>(response: &ServiceResponse<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let essence = value.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        })
}
