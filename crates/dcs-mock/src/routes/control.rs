//! `/_mock/*`: the test knobs as JSON, for processes that run the binary. No auth; these
//! requests are neither counted nor faulted.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ok_json, with_events};
use crate::app::App;
use crate::auth::generate_api_key;
use crate::content;
use crate::fastapi::{ApiError, ApiResult, Query, bad_request, detail, json_response};
use crate::faults::{Fault, RoutePattern};
use crate::model::{BookStatus, BookUpdate, NewBook, NewPublisher, PublisherUpdate};
use crate::state::{BookChanges, PublisherChanges};

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(&format!("invalid request body: {e}")))
}

fn no_content() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| bad_request(&format!("invalid id {raw:?}")))
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum FaultSpec {
    Latency { ms: u64 },
    Status { status: u16 },
    TooManyRequests { retry_after: String },
    Reset,
    Malformed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddFault {
    route: String,
    fault: FaultSpec,
    times: Option<u32>,
}

/// Turns a fault into its library form, checking what `inject` would panic on.
pub(crate) fn validate_fault(route: &str, fault: Fault) -> Result<(RoutePattern, Fault), String> {
    let pattern = RoutePattern::parse(route)?;
    if let Fault::Status(status) = fault
        && StatusCode::from_u16(status).is_err()
    {
        return Err(format!("invalid HTTP status {status}"));
    }
    if let Fault::TooManyRequests { retry_after } = &fault
        && http::HeaderValue::from_str(retry_after).is_err()
    {
        return Err(format!("invalid Retry-After value {retry_after:?}"));
    }
    Ok((pattern, fault))
}

/// `POST /_mock/faults {"route": "GET /books/", "fault": {"kind": "status", "status": 503}, "times": 2}`
pub(super) async fn add_fault(State(app): State<App>, body: Bytes) -> ApiResult {
    let request: AddFault = parse_body(&body)?;
    let fault = match request.fault {
        FaultSpec::Latency { ms } => Fault::Latency(Duration::from_millis(ms)),
        FaultSpec::Status { status } => Fault::Status(status),
        FaultSpec::TooManyRequests { retry_after } => Fault::TooManyRequests { retry_after },
        FaultSpec::Reset => Fault::Reset,
        FaultSpec::Malformed => Fault::Malformed,
    };
    let (pattern, fault) = validate_fault(&request.route, fault).map_err(|e| bad_request(&e))?;
    app.lock().faults.add(pattern, fault, request.times);
    Ok(no_content())
}

pub(super) async fn clear_faults(State(app): State<App>) -> Response {
    app.lock().faults.clear();
    no_content()
}

pub(super) async fn expire_tokens(State(app): State<App>) -> Response {
    crate::expire_all_tokens(&app);
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenTtl {
    seconds: u64,
}

/// `PUT /_mock/token-ttl {"seconds": 60}`: the lifetime of tokens issued from now on.
pub(super) async fn set_token_ttl(State(app): State<App>, body: Bytes) -> ApiResult {
    let request: TokenTtl = parse_body(&body)?;
    app.lock().token_ttl = Duration::from_secs(request.seconds);
    Ok(no_content())
}

#[derive(serde::Serialize)]
struct Token {
    access_token: String,
    token_type: &'static str,
}

/// `POST /_mock/token`: an admin token without a login (not counted by `login_count`).
pub(super) async fn issue_token(State(app): State<App>) -> Response {
    let access_token = app.mint_token(&mut app.lock());
    json_response(
        StatusCode::CREATED,
        &Token {
            access_token,
            token_type: "bearer",
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApiKey {
    name: String,
}

#[derive(serde::Serialize)]
struct ApiKeyValue {
    id: i64,
    key: String,
}

/// `POST /_mock/api-keys {"name": "LMS dev"}` -> `{"id", "key"}`.
pub(super) async fn create_api_key(State(app): State<App>, body: Bytes) -> ApiResult {
    let request: CreateApiKey = parse_body(&body)?;
    let key = app
        .lock()
        .add_api_key(generate_api_key(&request.name), request.name, None, 100);
    Ok(json_response(
        StatusCode::CREATED,
        &ApiKeyValue {
            id: key.id,
            key: key.key.clone(),
        },
    ))
}

#[derive(serde::Serialize)]
struct Stats {
    login_count: usize,
    request_count: usize,
    deliveries_in_flight: usize,
}

/// `GET /_mock/stats[?route=GET%20/books/]`: `request_count` counts the matching requests
/// (all requests without `route`).
pub(super) async fn stats(State(app): State<App>, RawQuery(query): RawQuery) -> ApiResult {
    let query = Query::parse(query.as_deref());
    let pattern =
        RoutePattern::parse(query.get("route").unwrap_or("/")).map_err(|e| bad_request(&e))?;
    let state = app.lock();
    let request_count = state.requests.count(&pattern);
    let login_count = usize::try_from(state.login_count).unwrap_or(usize::MAX);
    drop(state);
    ok_json(&Stats {
        login_count,
        request_count,
        deliveries_in_flight: *app.in_flight.borrow(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBook {
    /// A book folder to read like an upload; the other fields are then ignored.
    dir: Option<String>,
    publisher: Option<String>,
    book_name: Option<String>,
    book_title: Option<String>,
    book_cover: Option<String>,
    language: Option<String>,
    category: Option<String>,
    status: Option<BookStatus>,
}

/// `POST /_mock/books {"dir": "/path/BOOK"}` or `{"publisher", "book_name", ...}`: creates a
/// book and sends `book.created`.
pub(super) async fn add_book(State(app): State<App>, body: Bytes) -> ApiResult {
    let request: AddBook = parse_body(&body)?;
    let prepared = match request.dir {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            tokio::task::spawn_blocking(move || content::prepare_book_dir(&dir))
                .await
                .map_err(|e| detail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))??
        }
        None => {
            let (Some(publisher), Some(book_name)) = (request.publisher, request.book_name) else {
                return Err(bad_request(
                    "either \"dir\" or \"publisher\" and \"book_name\" are required",
                ));
            };
            let mut new = NewBook::new(publisher, book_name);
            new.book_title = request.book_title;
            new.book_cover = request.book_cover;
            new.category = request.category;
            if let Some(language) = request.language {
                new.language = language;
            }
            if let Some(status) = request.status {
                new.status = status;
            }
            content::prepare_new_book(&new)?
        }
    };
    let (book, event) = app.change(|state| state.create_book(prepared))?;
    Ok(with_events(
        json_response(StatusCode::CREATED, &book),
        event,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBook {
    book_title: Option<String>,
    book_cover: Option<String>,
    language: Option<String>,
    category: Option<String>,
    status: Option<BookStatus>,
}

fn change_book(app: &App, id: i64, update: BookUpdate) -> ApiResult {
    let changes = BookChanges::from(update);
    let (book, event) = app.change(|state| state.update_book(id, changes))?;
    Ok(with_events(json_response(StatusCode::OK, &book), event))
}

/// `PUT /_mock/books/{id}`: changes metadata and sends `book.updated`.
pub(super) async fn update_book(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: UpdateBook = parse_body(&body)?;
    let update = BookUpdate {
        book_title: request.book_title,
        book_cover: request.book_cover,
        language: request.language,
        category: request.category,
        status: request.status,
    };
    change_book(&app, parse_id(&id)?, update)
}

/// `POST /_mock/books/{id}/touch`: sends `book.updated` without changing metadata.
pub(super) async fn touch_book(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    change_book(&app, parse_id(&id)?, BookUpdate::default())
}

/// `DELETE /_mock/books/{id}`: archives the book and sends `book.deleted`.
pub(super) async fn delete_book(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let (book, event) = app.change(|state| state.delete_book(id))?;
    Ok(with_events(json_response(StatusCode::OK, &book), event))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPublisher {
    name: String,
    display_name: Option<String>,
    description: Option<String>,
    logo_url: Option<String>,
    contact_email: Option<String>,
    status: Option<String>,
}

/// `POST /_mock/publishers {"name": ...}`: sends `publisher.created`.
pub(super) async fn add_publisher(State(app): State<App>, body: Bytes) -> ApiResult {
    let request: AddPublisher = parse_body(&body)?;
    let new = NewPublisher {
        name: request.name,
        display_name: request.display_name,
        description: request.description,
        logo_url: request.logo_url,
        contact_email: request.contact_email,
        status: request.status.unwrap_or_else(|| "active".to_owned()),
    };
    let (publisher, event) = app.change(|state| state.create_publisher(new))?;
    Ok(with_events(
        json_response(StatusCode::CREATED, &publisher),
        event,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdatePublisher {
    name: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
    logo_url: Option<String>,
    contact_email: Option<String>,
    status: Option<String>,
}

fn change_publisher(app: &App, id: i64, update: PublisherUpdate) -> ApiResult {
    let changes = PublisherChanges::from(update);
    let (publisher, event) = app.change(|state| state.update_publisher(id, changes))?;
    Ok(with_events(
        json_response(StatusCode::OK, &publisher),
        event,
    ))
}

/// `PUT /_mock/publishers/{id}`: sends `publisher.updated`.
pub(super) async fn update_publisher(
    State(app): State<App>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let request: UpdatePublisher = parse_body(&body)?;
    let update = PublisherUpdate {
        name: request.name,
        display_name: request.display_name,
        description: request.description,
        logo_url: request.logo_url,
        contact_email: request.contact_email,
        status: request.status,
    };
    change_publisher(&app, parse_id(&id)?, update)
}

/// `POST /_mock/publishers/{id}/touch`: sends `publisher.updated` without changes.
pub(super) async fn touch_publisher(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    change_publisher(&app, parse_id(&id)?, PublisherUpdate::default())
}

/// `DELETE /_mock/publishers/{id}`: soft delete, sends `publisher.deleted`.
pub(super) async fn delete_publisher(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let (publisher, event) = app.change(|state| state.delete_publisher(id))?;
    Ok(with_events(
        json_response(StatusCode::OK, &publisher),
        event,
    ))
}

/// `POST /_mock/publishers/{id}/restore`: sends `publisher.created`, as DCS does.
pub(super) async fn restore_publisher(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let (publisher, event) = app.change(|state| state.restore_publisher(id))?;
    Ok(with_events(
        json_response(StatusCode::OK, &publisher),
        event,
    ))
}

/// `GET /_mock/deliveries`: every delivery log row, oldest first.
pub(super) async fn deliveries(State(app): State<App>) -> ApiResult {
    let logs: Vec<_> = app.lock().delivery_logs.values().cloned().collect();
    ok_json(&logs)
}

/// `POST /_mock/deliveries/wait[?timeout_ms=5000]`: waits until no delivery is running, then
/// returns the delivery logs; `504` when the timeout (default 30 s) passes first.
pub(super) async fn wait_for_deliveries(
    State(app): State<App>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let query = Query::parse(query.as_deref());
    let timeout = match query.get("timeout_ms") {
        Some(raw) => {
            Duration::from_millis(raw.parse().map_err(|_| bad_request("invalid timeout_ms"))?)
        }
        None => Duration::from_secs(30),
    };
    if tokio::time::timeout(timeout, app.wait_for_deliveries())
        .await
        .is_err()
    {
        return Err(detail(
            StatusCode::GATEWAY_TIMEOUT,
            "deliveries are still running",
        ));
    }
    let logs: Vec<_> = app.lock().delivery_logs.values().cloned().collect();
    ok_json(&logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_are_validated() {
        assert!(validate_fault("GET /books/", Fault::Status(503)).is_ok());
        assert!(validate_fault("GET /books/", Fault::Status(1000)).is_err());
        assert!(validate_fault("books", Fault::Reset).is_err());
        let bad_header = Fault::TooManyRequests {
            retry_after: "1\n2".to_owned(),
        };
        assert!(validate_fault("/", bad_header).is_err());
        let spec: AddFault = serde_json::from_str(
            r#"{"route":"* /","fault":{"kind":"too_many_requests","retry_after":"3"},"times":1}"#,
        )
        .unwrap();
        assert!(
            matches!(spec.fault, FaultSpec::TooManyRequests { ref retry_after } if retry_after == "3")
        );
    }
}
