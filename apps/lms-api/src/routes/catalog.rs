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
use futures_util::TryStreamExt as _;
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
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .body(served.value)
}

fn mime_json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

/// Whether the request's `If-None-Match` matches `etag`: any entry of a list, weak comparison
/// (`W/"x"` matches `"x"`), and `*` matches anything (RFC 9110 §13.1.2).
fn if_none_match_hits(req: &HttpRequest, etag: &str) -> bool {
    let weak = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let etag = weak(etag);
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| candidate.trim() == "*" || weak(candidate) == etag)
}

/// `Cache-Control` of images served behind bearer auth: `private`, so no shared cache keeps a
/// copy for other users (DCS's own `public, immutable` must not be passed on), with a lifetime
/// after which the client revalidates with its ETag.
fn private_max_age(max_age: std::time::Duration) -> String {
    format!("private, max-age={}", max_age.as_secs())
}

/// Active publishers.
#[utoipa::path(
    tag = "catalog",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`{items, total}` of active publishers; `X-Cache` says how it was served", body = PublisherPage),
        (status = 401, body = ErrorBody),
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
    params(("id" = i64, Path, description = "DCS publisher id")),
    responses(
        (status = 200, description = "The publisher", body = PublisherView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
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
    params(("id" = i64, Path, description = "DCS publisher id")),
    responses(
        (status = 200, description = "The logo image", content_type = "image/*"),
        (status = 304, description = "The client's copy is current"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
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
    /// Only this publisher's books.
    publisher_id: Option<i64>,
    /// Include archived (deleted) books; default `false`.
    include_archived: Option<bool>,
    /// Case-insensitive text searched in the title and the book name (at most 200 characters).
    search: Option<String>,
    /// Books to skip (default 0).
    skip: Option<u64>,
    /// Page size, 1..=1000 (default 100).
    limit: Option<u64>,
}

/// Books, filtered and paged.
#[utoipa::path(
    tag = "catalog",
    security(("bearer" = [])),
    params(BooksParams),
    responses(
        (status = 200, description = "`{items, total, skip, limit}`; `X-Cache` says how it was served", body = BookPage),
        (status = 400, description = "Invalid query parameters", body = ErrorBody),
        (status = 401, body = ErrorBody),
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
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
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
        (status = 200, description = "The cover image", content_type = "image/*"),
        (status = 304, description = "The client's copy is current"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/books/{id}/cover")]
pub async fn book_cover(
    _user: AuthUser,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
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
        ConditionalImage::Modified(download) => {
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
            response.insert_header((header::CACHE_CONTROL, cache_control));
            let body = download
                .body
                .map_err(|e| actix_web::error::ErrorBadGateway(e.to_string()));
            Ok(response.streaming(body))
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
