//! Catalog: publishers and books from DCS, served from the cache.
//!
//! Bodies are the cached bytes as they are (no serialisation on a hit). Every answer says how
//! it was served in `X-Cache` (`HIT`, `MISS`, or `STALE` when DCS failed and an expired copy
//! was used).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, web};
use bytes::Bytes;
use cache::Freshness;
use domain::catalog::{
    BookPage, BookQuery, BookView, ConditionalImage, PublisherPage, PublisherView, Served,
};
use domain::errors::Code;
use futures_util::StreamExt as _;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

fn x_cache(freshness: Freshness) -> (header::HeaderName, HeaderValue) {
    (
        header::HeaderName::from_static("x-cache"),
        HeaderValue::from_static(freshness.as_header_value()),
    )
}

/// A cached JSON body as a response.
fn json(served: Served<Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(mime_json())
        .insert_header(x_cache(served.freshness))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        ))
        .body(served.value)
}

fn mime_json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

/// Whether the request's `If-None-Match` matches `etag`: any entry of a list, weak comparison
/// (`W/"x"` matches `"x"`), and `*` matches anything (RFC 9110 §13.1.2).
fn if_none_match_hits(req: &HttpRequest, etag: &str) -> bool {
    // Several header lines are one comma-separated list (RFC 9110 5.3).
    let list = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    domain::book_content::if_none_match_hits(Some(&list), Some(etag))
}

/// `Cache-Control` of images served behind bearer auth: `private`, so no shared cache keeps a
/// copy for other users (DCS's own `public, immutable` must not be passed on), with a lifetime
/// after which the client revalidates with its ETag.
fn private_max_age(max_age: std::time::Duration) -> String {
    format!("private, max-age={}", max_age.as_secs())
}

/// How many leading bytes of an image are looked at to tell HTML from an image.
const SNIFF_BYTES: usize = 512;

/// Whether `bytes` start like an HTML document (the WHATWG MIME sniffing patterns for
/// `text/html`, after a BOM and white space). An "image" that is HTML is never served as an
/// image: with `X-Content-Type-Options: nosniff` a browser would not run it as an `<img>`, but
/// opened directly it would run in this API's origin.
pub fn looks_like_html(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b'\t' | b'\n' | b'\x0C' | b'\r' | b' '))
        .unwrap_or(bytes.len());
    let bytes = &bytes[start..];
    const TAGS: &[&[u8]] = &[
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    TAGS.iter().any(|tag| {
        bytes.len() > tag.len()
            && bytes[..tag.len()].eq_ignore_ascii_case(tag)
            // The tag ends here: `<a>` or `<a href`, not `<abbr`.
            && matches!(bytes[tag.len()], b' ' | b'>' | b'\t' | b'\n' | b'\r' | b'\x0C' | b'/')
            || (tag == b"<!--" && bytes.starts_with(b"<!--"))
    })
}

/// Whether a declared content type is HTML (or XHTML).
fn is_html_type(content_type: &str) -> bool {
    let essence = super::media_type_essence(content_type);
    matches!(essence.as_str(), "text/html" | "application/xhtml+xml")
}

/// 502 `content_storage_error` for an image DCS sent that is HTML.
fn html_image(what: &'static str, id: i64) -> ApiError {
    tracing::warn!(
        what,
        id,
        "DCS sent HTML where an image was expected; not served"
    );
    ApiError::from_code(Code::ContentStorageError)
        .with_detail("Content storage sent a file that is not an image")
        .with_field("upstream_code", "not_an_image")
}

/// Active publishers.
#[utoipa::path(
    tag = "catalog",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{items, total}` of active publishers; `X-Cache` says how it was served", body = PublisherPage),
        (status = 401, body = ErrorBody),
        (status = 502, description = "DCS refused the LMS or answered unexpectedly (`content_storage_error`, `dcs_auth_failed`, ...)", body = ErrorBody),
        (status = 503, description = "DCS unavailable and nothing cached", body = ErrorBody),
    )
)]
#[get("/publishers")]
pub async fn list_publishers(
    _user: AuthUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(json(state.services.catalog.publishers().await?))
}

/// One active publisher.
#[utoipa::path(
    tag = "catalog",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "DCS publisher id")),
    responses(
        (status = 200, description = "The publisher", body = PublisherView),
        (status = 400, description = "The id is not an integer (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "DCS refused the LMS or answered unexpectedly (`content_storage_error`, ...)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/publishers/{id}")]
pub async fn get_publisher(
    _user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(json(state.services.catalog.publisher(*id).await?))
}

/// The publisher's logo (cached; `ETag` and `If-None-Match` supported).
#[utoipa::path(
    tag = "catalog",
    security(("bearer" = [])),
    params(("id" = i64, Path, minimum = 1, description = "DCS publisher id")),
    responses(
        (status = 200, description = "The logo image, with `X-Content-Type-Options: nosniff`", content_type = "image/*"),
        (status = 304, description = "The client's copy is current"),
        (status = 400, description = "The id is not an integer (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "DCS refused the LMS, answered unexpectedly, or sent HTML instead of an image (`content_storage_error`)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/publishers/{id}/logo")]
pub async fn publisher_logo(
    _user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let logo = state.services.catalog.publisher_logo(*id).await?;
    if is_html_type(&logo.value.content_type)
        || looks_like_html(&logo.value.bytes[..logo.value.bytes.len().min(SNIFF_BYTES)])
    {
        return Err(html_image("logo", *id));
    }
    let cache_control = private_max_age(state.services.catalog.ttls().logos);
    let not_modified = if_none_match_hits(&req, &logo.value.etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header(x_cache(logo.freshness))
        .insert_header((header::ETAG, logo.value.etag.clone()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, cache_control));
    if not_modified {
        return Ok(response.finish());
    }
    Ok(response
        .insert_header((header::CONTENT_TYPE, logo.value.content_type.clone()))
        .body(logo.value.bytes))
}

/// `GET /books` query parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BooksParams {
    /// Only this publisher's books (a positive id).
    #[param(minimum = 1)]
    publisher_id: Option<i64>,
    /// Include archived (deleted) books; default `false`.
    include_archived: Option<bool>,
    /// Case-insensitive text searched in the title and the book name (at most 200 characters).
    search: Option<String>,
    /// Books to skip (default 0).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    skip: Option<u64>,
    /// Page size, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
}

/// Books, filtered and paged.
#[utoipa::path(
    tag = "catalog",
    security(("bearer" = [])),
    params(BooksParams),
    responses(
        (status = 200, description = "`{items, total, skip, limit}`; `X-Cache` says how it was served", body = BookPage),
        (status = 400, description = "Invalid query parameters (`invalid_query`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "DCS has no book list (`not_found`)", body = ErrorBody),
        (status = 502, description = "DCS refused the LMS or answered unexpectedly (`content_storage_error`, ...)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/books")]
pub async fn list_books(
    _user: AuthUser,
    state: web::Data<AppState>,
    params: web::Query<BooksParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let query = BookQuery::new(
        params.publisher_id,
        params.include_archived.unwrap_or(false),
        params.search,
        params.skip,
        params.limit,
    )?;
    Ok(json(state.services.catalog.books(&query).await?))
}

/// One book (archived books too, with `status: "archived"`).
#[utoipa::path(
    tag = "catalog",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "DCS book id")),
    responses(
        (status = 200, description = "The book", body = BookView),
        (status = 400, description = "The id is not an integer (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "DCS refused the LMS or answered unexpectedly (`content_storage_error`, ...)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/books/{id}")]
pub async fn get_book(
    _user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(json(state.services.catalog.book(*id).await?))
}

/// The book's cover, streamed from DCS (`ETag` and `If-None-Match` supported).
#[utoipa::path(
    tag = "catalog",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "DCS book id")),
    responses(
        (status = 200, description = "The cover image, with `X-Content-Type-Options: nosniff`", content_type = "image/*"),
        (status = 304, description = "The client's copy is current"),
        (status = 400, description = "The id is not an integer (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "The caller has `LMS_MAX_STREAMS_PER_CLIENT` downloads open (`too_many_requests`, `Retry-After`)", body = ErrorBody),
        (status = 502, description = "DCS refused the LMS, answered unexpectedly, or sent HTML instead of an image (`content_storage_error`)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/books/{id}/cover")]
pub async fn book_cover(
    user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    // Taken before DCS is asked, so a refused request opens no upstream stream.
    let slot = state
        .guards
        .stream_slot(crate::guards::client_key(&req, Some(user.sub)))?;
    let cover = state
        .services
        .catalog
        .book_cover(*id, if_none_match)
        .await?;
    // A cover changes only with its book (re-upload), and a book is cached that long.
    let cache_control = private_max_age(state.services.catalog.ttls().books);
    let not_modified = |etag: Option<String>| {
        let mut response = HttpResponse::NotModified();
        if let Some(etag) = etag {
            response.insert_header((header::ETAG, etag));
        }
        response
            .insert_header((header::CACHE_CONTROL, cache_control.clone()))
            .finish()
    };
    match cover {
        ConditionalImage::NotModified { etag } => Ok(not_modified(etag)),
        // DCS compares `If-None-Match` as one exact string; a list or a weak tag that matches
        // its ETag still means the client's copy is current.
        ConditionalImage::Modified(download)
            if download
                .etag
                .as_deref()
                .is_some_and(|etag| if_none_match_hits(&req, etag)) =>
        {
            Ok(not_modified(download.etag.clone()))
        }
        ConditionalImage::Modified(mut download) => {
            if download.content_type.as_deref().is_some_and(is_html_type) {
                return Err(html_image("cover", *id));
            }
            // The first bytes decide whether this is an image at all.
            let mut head = bytes::BytesMut::new();
            while head.len() < SNIFF_BYTES {
                match download.body.next().await {
                    Some(Ok(chunk)) => head.extend_from_slice(&chunk),
                    Some(Err(err)) => {
                        return Err(ApiError::from(domain::catalog::CatalogError::Upstream(err)));
                    }
                    None => break,
                }
            }
            if looks_like_html(&head) {
                return Err(html_image("cover", *id));
            }
            let head = head.freeze();
            let body = futures_util::stream::iter([Ok(head)]).chain(download.body);
            let mut response = HttpResponse::Ok();
            response.insert_header((
                header::CONTENT_TYPE,
                download
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
            ));
            if let Some(etag) = &download.etag {
                response.insert_header((header::ETAG, etag.clone()));
            }
            if let Some(length) = download.content_length {
                response.no_chunking(length);
            }
            response
                .insert_header((header::CACHE_CONTROL, cache_control))
                .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
            Ok(response.streaming(state.guards.guard_stream(body, slot)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(if_none_match: &[&str]) -> HttpRequest {
        if_none_match
            .iter()
            .fold(TestRequest::get(), |request, value| {
                request.append_header((header::IF_NONE_MATCH, *value))
            })
            .to_http_request()
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let etag = "\"f4acf267\"";
        assert!(!if_none_match_hits(&request(&[]), etag));
        assert!(if_none_match_hits(&request(&["\"f4acf267\""]), etag));
        assert!(if_none_match_hits(&request(&["W/\"f4acf267\""]), etag));
        assert!(if_none_match_hits(
            &request(&["\"a\", W/\"f4acf267\""]),
            etag
        ));
        assert!(if_none_match_hits(
            &request(&["\"a\"", "\"f4acf267\""]),
            etag
        ));
        assert!(if_none_match_hits(&request(&["*"]), etag));
        assert!(!if_none_match_hits(
            &request(&["\"x\""]),
            &format!("W/{etag}")
        ));
        assert!(!if_none_match_hits(&request(&["\"f4acf26\""]), etag));
        assert!(!if_none_match_hits(&request(&["\"a\", \"b\""]), etag));
    }
}
