//! `/storage/books/{publisher}/{book_name}/*`: admin JWT only.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use super::ok_json;
use crate::app::App;
use crate::auth::{Scope, bearer};
use crate::content::{self, StoredObject};
use crate::fastapi::{
    ApiError, ApiResult, Query, Validator, bad_request, detail, json_bytes_response, not_found,
};
use crate::json::JsonValue;

/// A response whose headers are written in the given order (the recorded order).
pub(super) fn file_response(status: StatusCode, body: Bytes, headers: &[(&str, &str)]) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// DCS's 304: headers only, `content-type: application/json`, and the connection closes
/// afterwards (uvicorn drops it after failing to send the `null` body).
fn not_modified(etag: &str, cache_control: &str) -> Response {
    let mut response = file_response(
        StatusCode::NOT_MODIFIED,
        Bytes::new(),
        &[
            ("etag", etag),
            ("cache-control", cache_control),
            ("content-type", "application/json"),
        ],
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `If-None-Match` matches a strong or weak form of the ETag, or `*`.
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|tag| tag == "*" || tag == bare)
}

/// Bearer (403) -> query validation (422) -> JWT (401) -> segment checks (400).
struct Checked {
    publisher: String,
    book_name: String,
}

fn check(
    app: &App,
    headers: &HeaderMap,
    publisher: &str,
    book_name: &str,
    raw_query: Option<&str>,
    validate: impl FnOnce(&mut Validator, &Query),
) -> Result<Checked, ApiError> {
    let token = bearer(headers)?;
    let query = Query::parse(raw_query);
    let mut v = Validator::new();
    validate(&mut v, &query);
    v.finish()?;
    app.authorize(&token, Scope::JwtOnly)?;
    let publisher =
        content::sanitize_segment(publisher, "publisher").map_err(|e| bad_request(&e))?;
    let book_name =
        content::sanitize_segment(book_name, "book name").map_err(|e| bad_request(&e))?;
    Ok(Checked {
        publisher,
        book_name,
    })
}

fn stored_object(app: &App, key: &str) -> Option<Arc<StoredObject>> {
    app.lock().objects.get(key).cloned()
}

fn storage_error(_: std::io::Error) -> ApiError {
    detail(StatusCode::BAD_GATEWAY, "Unable to load object")
}

pub(super) async fn tree(
    State(app): State<App>,
    headers: HeaderMap,
    Path((publisher, book_name)): Path<(String, String)>,
) -> ApiResult {
    let checked = check(&app, &headers, &publisher, &book_name, None, |_, _| {})?;
    let prefix = content::book_prefix(&checked.publisher, &checked.book_name);
    let tree = content::tree(&app.lock().objects, &prefix);
    ok_json(&tree)
}

/// The raw config.json, re-serialized compactly with its key order kept.
pub(super) async fn config(
    State(app): State<App>,
    headers: HeaderMap,
    Path((publisher, book_name)): Path<(String, String)>,
) -> ApiResult {
    let checked = check(&app, &headers, &publisher, &book_name, None, |_, _| {})?;
    let key = format!(
        "{}config.json",
        content::book_prefix(&checked.publisher, &checked.book_name)
    );
    let stored = stored_object(&app, &key).ok_or_else(|| not_found("config.json not found"))?;
    let bytes = stored
        .read_all()
        .await
        .map_err(|_| detail(StatusCode::BAD_GATEWAY, "Unable to load config.json"))?;
    let config = JsonValue::parse(&bytes)
        .map_err(|_| detail(StatusCode::BAD_GATEWAY, "config.json is invalid"))?;
    Ok(json_bytes_response(StatusCode::OK, config.to_bytes()))
}

pub(super) async fn cover(
    State(app): State<App>,
    headers: HeaderMap,
    Path((publisher, book_name)): Path<(String, String)>,
) -> ApiResult {
    let token = bearer(&headers)?;
    app.authorize(&token, Scope::JwtOnly)?;
    // DCS looks the book up by the raw names before building the object key.
    let book = app
        .lock()
        .book_by_names(&publisher, &book_name)
        .ok_or_else(|| not_found("Book not found"))?;
    let publisher =
        content::sanitize_segment(&publisher, "publisher").map_err(|e| bad_request(&e))?;
    let book_name =
        content::sanitize_segment(&book_name, "book name").map_err(|e| bad_request(&e))?;
    let cover_name = book
        .book_cover
        .unwrap_or_else(|| "book_cover.png".to_owned());
    let relative = content::normalize_relative_path(&format!("images/{cover_name}"))
        .map_err(|e| bad_request(&e))?;
    let key = format!("{}{relative}", content::book_prefix(&publisher, &book_name));
    let stored = stored_object(&app, &key).ok_or_else(|| not_found("Book cover not found"))?;
    let etag = stored.etag();
    let cache_control = "public, max-age=86400, immutable";
    if if_none_match(&headers, &etag) {
        return Ok(not_modified(&etag, cache_control));
    }
    let bytes = stored.read_all().await.map_err(storage_error)?;
    let content_type = content::media_type(&cover_name).unwrap_or("image/png");
    Ok(file_response(
        StatusCode::OK,
        bytes,
        &[
            ("content-length", &stored.size.to_string()),
            (
                "content-disposition",
                &format!("inline; filename=\"{cover_name}\""),
            ),
            ("cache-control", cache_control),
            ("etag", &etag),
            ("content-type", content_type),
        ],
    ))
}

/// A byte range, or the 416 detail DCS answers with.
fn parse_range(header: &str, size: u64) -> Result<(u64, u64), &'static str> {
    // `re.match(r"bytes=(\d*)-(\d*)", ...)`: anchored at the start only.
    let rest = header
        .strip_prefix("bytes=")
        .ok_or("Invalid Range header format")?;
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let start_len = digits(rest);
    let (start_text, rest) = rest.split_at(start_len);
    let rest = rest
        .strip_prefix('-')
        .ok_or("Invalid Range header format")?;
    let end_text = &rest[..digits(rest)];
    // Numbers too large for u64 are past the end of any object.
    let number = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    let (start, end) = match (start_text.is_empty(), end_text.is_empty()) {
        (false, false) => (number(start_text), number(end_text)),
        (false, true) => (number(start_text), size.saturating_sub(1)),
        (true, false) => (
            size.saturating_sub(number(end_text)),
            size.saturating_sub(1),
        ),
        (true, true) => return Err("Invalid Range header"),
    };
    if start >= size || end >= size || start > end {
        return Err("Range Not Satisfiable");
    }
    Ok((start, end))
}

async fn object_route(
    app: &App,
    headers: &HeaderMap,
    publisher: &str,
    book_name: &str,
    raw_query: Option<&str>,
) -> ApiResult {
    let mut path = None;
    let checked = check(app, headers, publisher, book_name, raw_query, |v, q| {
        path = v.query_required_str(q, "path");
    })?;
    let relative =
        content::normalize_relative_path(&path.unwrap_or_default()).map_err(|e| bad_request(&e))?;
    let key = format!(
        "{}{relative}",
        content::book_prefix(&checked.publisher, &checked.book_name)
    );
    let stored = stored_object(app, &key).ok_or_else(|| not_found("File not found"))?;
    let content_type = content::media_type(&relative).unwrap_or("application/octet-stream");
    let etag = stored.etag();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    if range.is_none() && if_none_match(headers, &etag) {
        return Ok(not_modified(&etag, "public, max-age=86400"));
    }
    let (start, end) = match range {
        None => (0, stored.size.saturating_sub(1)),
        Some(range) => parse_range(range, stored.size).map_err(|message| {
            let mut error = detail(StatusCode::RANGE_NOT_SATISFIABLE, message);
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", stored.size)) {
                error.0.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            error
        })?,
    };
    let length = if stored.size == 0 { 0 } else { end - start + 1 };
    let bytes = stored
        .read_range(start, length)
        .await
        .map_err(storage_error)?;
    let file_name = key
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("download");
    let length_text = length.to_string();
    let disposition = format!("inline; filename=\"{file_name}\"");
    let cache_control = content::object_cache_control(content_type);
    let content_range = format!("bytes {start}-{end}/{}", stored.size);
    let mut ordered: Vec<(&str, &str)> = vec![
        ("accept-ranges", "bytes"),
        ("content-length", &length_text),
        ("content-disposition", &disposition),
        ("cache-control", cache_control),
        ("etag", &etag),
    ];
    let status = if range.is_some() {
        ordered.push(("content-range", &content_range));
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    ordered.push(("content-type", content_type));
    Ok(file_response(status, bytes, &ordered))
}

pub(super) async fn object(
    State(app): State<App>,
    headers: HeaderMap,
    Path((publisher, book_name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    object_route(&app, &headers, &publisher, &book_name, query.as_deref()).await
}

pub(super) async fn presign(
    State(app): State<App>,
    headers: HeaderMap,
    Path((publisher, book_name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let mut path = None;
    let mut expires = None;
    let checked = check(
        &app,
        &headers,
        &publisher,
        &book_name,
        query.as_deref(),
        |v, q| {
            path = v.query_required_str(q, "path");
            expires = v.query_int(q, "expires", Some(60), Some(86_400));
        },
    )?;
    let relative =
        content::normalize_relative_path(&path.unwrap_or_default()).map_err(|e| bad_request(&e))?;
    let key = format!(
        "{}{relative}",
        content::book_prefix(&checked.publisher, &checked.book_name)
    );
    let expires_in = expires.unwrap_or(3600);
    let url = super::presigned::presigned_url(&app, &key, expires_in);
    #[derive(serde::Serialize)]
    struct Presigned {
        url: String,
        expires_in: i64,
    }
    ok_json(&Presigned { url, expires_in })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_dcs() {
        assert_eq!(parse_range("bytes=0-99", 6032), Ok((0, 99)));
        assert_eq!(parse_range("bytes=6000-", 6032), Ok((6000, 6031)));
        assert_eq!(parse_range("bytes=-32", 6032), Ok((6000, 6031)));
        assert_eq!(parse_range("bytes=-99999", 6032), Ok((0, 6031)));
        assert_eq!(parse_range("bytes=0-99,200-300", 6032), Ok((0, 99)));
        assert_eq!(
            parse_range("bytes=999999-", 6032),
            Err("Range Not Satisfiable")
        );
        assert_eq!(
            parse_range("bytes=0-6032", 6032),
            Err("Range Not Satisfiable")
        );
        assert_eq!(parse_range("bytes=5-4", 6032), Err("Range Not Satisfiable"));
        assert_eq!(parse_range("bytes=-", 6032), Err("Invalid Range header"));
        assert_eq!(
            parse_range("items=0-1", 6032),
            Err("Invalid Range header format")
        );
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 6032),
            Err("Range Not Satisfiable")
        );
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let mut headers = HeaderMap::new();
        let etag = "\"abc\"";
        assert!(!if_none_match(&headers, etag));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(if_none_match(&headers, etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&headers, etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abd\""));
        assert!(!if_none_match(&headers, etag));
    }
}
