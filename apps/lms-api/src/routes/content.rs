//! Book content: the transformed config, activities, asset links, and assets and media
//! streamed with byte ranges; the filesystem backend's signed `/files/...` route.
//!
//! Asset and media URLs are fetched by browsers (`<img src>`, `<audio src>`), which send no
//! `Authorization` header: those routes accept a bearer token or the URL's own signature.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use domain::access::{Viewer, ViewerRole};
use domain::activities::StoredActivity;
use domain::book_content::{AssetAnswer, AssetBody, AssetRequest};
use domain::errors::Code;
use serde::{Deserialize, Serialize};
use storage::range;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AdminOnly, AuthUser, RequireRole, Role};
use crate::error::{ApiError, ErrorBody};
use crate::guards::{Guards, StreamSlot, client_key};
use crate::object_storage::FILES_ROUTE;
use crate::state::AppState;

/// How the content routes see an authenticated caller.
fn viewer(user: &AuthUser) -> Viewer {
    let role = match user.role {
        Role::Admin => ViewerRole::Admin,
        Role::Supervisor => ViewerRole::Supervisor,
        Role::Publisher => ViewerRole::Publisher,
        Role::Teacher => ViewerRole::Teacher,
        Role::Student => ViewerRole::Student,
    };
    Viewer {
        role,
        publisher_id: user.publisher_id,
    }
}

pub(crate) fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// One activity as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivitySummary {
    /// Stable across re-imports of an unchanged book.
    pub id: i64,
    pub book_id: i64,
    /// `dragdroppicture`, `matchTheWords`, `circle`, ... (any type the book uses).
    #[serde(rename = "type")]
    pub activity_type: String,
    pub title: Option<String>,
    pub header_text: Option<String>,
    pub module_name: String,
    /// 1-based module position in the book.
    pub module_index: u32,
    pub page_number: u32,
    /// 0-based position of the section on its page.
    pub section_index: u32,
    /// module x 1000 + page x 10 + section.
    pub order: i64,
}

impl From<&StoredActivity> for ActivitySummary {
    fn from(stored: &StoredActivity) -> Self {
        let a = &stored.activity;
        Self {
            id: stored.id.0,
            book_id: a.key.book_id,
            activity_type: a.activity_type.clone(),
            title: a.title.clone(),
            header_text: a.header_text.clone(),
            module_name: a.module_name.clone(),
            module_index: a.key.module_index,
            page_number: a.key.page_number,
            section_index: a.key.section_index,
            order: a.order,
        }
    }
}

/// `GET /books/{id}/activities`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityList {
    pub items: Vec<ActivitySummary>,
    pub total: usize,
}

/// `GET /activities/{id}/start`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityStart {
    pub activity: ActivitySummary,
    /// The section's config with every asset path turned into a URL.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// `GET /books/{id}/assets/presigned`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetLink {
    pub url: String,
    /// Seconds the URL stays valid at least (`PRESIGN_MIN_REMAINING` or more when signed
    /// here; what DCS's cached URL still guarantees in the `dcs` mode).
    pub expires_in: u64,
}

/// `POST /admin/books/{id}/activities/import`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityImportReport {
    pub book_id: i64,
    pub activities: usize,
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub deleted: usize,
}

/// The book's config.json with every asset path turned into a URL in the configured delivery
/// mode (`ASSET_DELIVERY`). A path that would leave the book is `null`.
#[utoipa::path(
    tag = "content",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "DCS book id")),
    responses(
        (status = 200, description = "The transformed config; `X-Cache` says how the raw config was served", content_type = "application/json"),
        (status = 400, description = "The id is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such book, or not readable by the caller", body = ErrorBody),
        (status = 502, description = "DCS or the config is unusable (`content_storage_error`)", body = ErrorBody),
        (status = 503, description = "DCS or object storage unavailable", body = ErrorBody),
    )
)]
#[get("/books/{id}/config")]
pub async fn book_config(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let served = state.content.config(&viewer(&user), *id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::HeaderName::from_static("x-cache"),
            served.freshness.as_header_value(),
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .json(served.value))
}

/// The book's activities in book order (imported from its config on first use).
#[utoipa::path(
    tag = "content",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "DCS book id")),
    responses(
        (status = 200, body = ActivityList),
        (status = 400, description = "The id is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody),
        (status = 503, description = "DCS (`content_storage_unavailable`) or the database (`database_unavailable`) unavailable; see `Retry-After`", body = ErrorBody),
    )
)]
#[get("/books/{id}/activities")]
pub async fn book_activities(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<ActivityList>, ApiError> {
    let stored = state.content.activities(&viewer(&user), *id).await?;
    let items: Vec<ActivitySummary> = stored.iter().map(ActivitySummary::from).collect();
    Ok(web::Json(ActivityList {
        total: items.len(),
        items,
    }))
}

/// One activity with its config, asset paths turned into URLs (works while DCS is down when
/// the book is cached).
#[utoipa::path(
    tag = "content",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Activity id")),
    responses(
        (status = 200, body = ActivityStart),
        (status = 400, description = "The id is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "DCS or object storage (`content_storage_unavailable`) or the database (`database_unavailable`) unavailable; see `Retry-After`", body = ErrorBody),
    )
)]
#[get("/activities/{id}/start")]
pub async fn start_activity(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<ActivityStart>, ApiError> {
    let started = state.content.start_activity(&viewer(&user), *id).await?;
    Ok(web::Json(ActivityStart {
        activity: ActivitySummary::from(&started.activity),
        config: started.config,
    }))
}

/// `GET /books/{id}/assets/presigned` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PresignedParams {
    /// The asset's path as written in config.json (`./books/<book>/images/x.png`) or relative
    /// to the book (`images/x.png`).
    path: String,
}

/// A URL for one asset, in the configured delivery mode.
#[utoipa::path(
    tag = "content",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "DCS book id"), PresignedParams),
    responses(
        (status = 200, body = AssetLink),
        (status = 400, description = "The path leaves the book (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/books/{id}/assets/presigned")]
pub async fn asset_link(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<PresignedParams>,
) -> Result<web::Json<AssetLink>, ApiError> {
    let url = state
        .content
        .asset_link(&viewer(&user), *id, &query.path)
        .await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires_in =
        crate::object_storage::link_lifetime(&state.settings, &state.services.storage, now);
    Ok(web::Json(AssetLink { url, expires_in }))
}

/// The caller of an asset route: a bearer token, or a valid signature on the URL.
fn asset_viewer(req: &HttpRequest, state: &AppState) -> Result<Viewer, ApiError> {
    let signed = req.query_string().contains("signature=");
    if req.headers().contains_key(header::AUTHORIZATION) || !signed {
        return AuthUser::from_http_request(req).map(|user| viewer(&user));
    }
    state
        .services
        .storage
        .links
        .verify(req.path(), req.query_string())
        .map(|()| Viewer::new(ViewerRole::SignedLink))
        .map_err(|rejected| {
            ApiError::from_code(Code::Forbidden)
                .with_detail(format!("Asset URL refused: {rejected}"))
        })
}

/// The raw (still percent-encoded) asset path after `/{route}/` in the request path: the
/// domain decodes it exactly once.
fn raw_asset_path<'r>(req: &'r HttpRequest, route: &str) -> &'r str {
    let path = req.path();
    let marker = format!("/{route}/");
    path.find(&marker)
        .map_or("", |at| &path[at + marker.len()..])
}

/// Book assets come from publishers and teacher files from teachers: nothing served here may
/// run as a document on this API's origin. Every answer carries a sandboxing CSP (it does not
/// affect `<img>`, `<audio>` or `<video>` embedding, only the bytes opened as a page), and
/// types a browser would render as a page are sent as downloads.
const ASSET_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

fn renders_as_page(content_type: &str) -> bool {
    let essence = super::media_type_essence(content_type);
    matches!(
        essence.as_str(),
        "text/html" | "application/xhtml+xml" | "text/xml" | "application/xml" | "text/xsl"
    ) || essence.ends_with("+xml") && essence != "image/svg+xml"
}

fn contain_active_content(response: &mut HttpResponse, content_type: &str) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(ASSET_CSP),
    );
    let downloading = headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("attachment")
        });
    if renders_as_page(content_type) && !downloading {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
}

/// The caller's stream slot: by token subject when the request carries a valid bearer token,
/// else by remote IP (signed URLs).
fn asset_stream_slot(req: &HttpRequest, state: &AppState) -> Result<StreamSlot, ApiError> {
    let subject = req
        .headers()
        .contains_key(header::AUTHORIZATION)
        .then(|| AuthUser::from_http_request(req).ok().map(|user| user.sub))
        .flatten();
    state.guards.stream_slot(client_key(req, subject))
}

pub(crate) fn body_response(
    body: AssetBody,
    cache_control: &str,
    guards: &Guards,
    slot: StreamSlot,
) -> HttpResponse {
    let mut response = HttpResponse::build(if body.range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    });
    response
        .insert_header((header::CONTENT_TYPE, body.content_type.clone()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, cache_control.to_owned()));
    if let Some(etag) = &body.etag {
        response.insert_header((header::ETAG, etag.clone()));
    }
    if let Some(modified) = body.last_modified {
        response.insert_header((header::LAST_MODIFIED, httpdate::fmt_http_date(modified)));
    }
    if let Some(r) = body.range {
        response.insert_header((header::CONTENT_RANGE, r.content_range(body.size)));
    }
    let len = body.len();
    let content_type = body.content_type;
    let mut response = response.body(SizedStream::new(len, guards.guard_stream(body.body, slot)));
    contain_active_content(&mut response, &content_type);
    response
}

pub(crate) fn not_modified(etag: Option<String>, cache_control: &str) -> HttpResponse {
    let mut response = HttpResponse::NotModified();
    if let Some(etag) = etag {
        response.insert_header((header::ETAG, etag));
    }
    response
        .insert_header((header::CACHE_CONTROL, cache_control.to_owned()))
        .finish()
}

pub(crate) fn unsatisfiable(size: u64) -> ApiError {
    ApiError::from_code(Code::RangeNotSatisfiable)
        .with_detail("Range Not Satisfiable")
        .with_header(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&range::unsatisfied_content_range(size))
                .expect("digits are a valid header value"),
        )
}

/// Streams one asset of a book: never buffered, RFC 9110 ranges, `ETag`/`If-None-Match`.
async fn stream_asset(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: i64,
    route: &str,
) -> Result<HttpResponse, ApiError> {
    let viewer = asset_viewer(&req, &state)?;
    // Taken before the upstream is opened, so a refused request opens nothing.
    let slot = asset_stream_slot(&req, &state)?;
    let request = AssetRequest {
        range: header_str(&req, header::RANGE),
        if_range: header_str(&req, header::IF_RANGE),
        if_none_match: header_str(&req, header::IF_NONE_MATCH),
    };
    // Behind a bearer token the bytes are the caller's: no shared cache may keep them.
    let cache_control = "private, max-age=3600";
    match state
        .content
        .open_asset(&viewer, id, raw_asset_path(&req, route), &request)
        .await?
    {
        AssetAnswer::Body(body) => Ok(body_response(body, cache_control, &state.guards, slot)),
        AssetAnswer::NotModified { etag } => Ok(not_modified(etag, cache_control)),
        AssetAnswer::RangeNotSatisfiable { size } => Err(unsatisfiable(size)),
    }
}

/// One asset of the book (images, JSON, anything), streamed.
#[utoipa::path(
    tag = "content",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "DCS book id"),
        ("path" = String, Path, description = "Path in the book, e.g. `images/M1/p2s1.png`"),
    ),
    responses(
        (status = 200, description = "The bytes, with `ETag`, `Accept-Ranges: bytes`"),
        (status = 206, description = "A byte range (`Content-Range`)"),
        (status = 304, description = "`If-None-Match` matched"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A signed URL that is expired or altered", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, description = "`Content-Range: bytes */N`", body = ErrorBody),
        (status = 429, description = "The caller has `LMS_MAX_STREAMS_PER_CLIENT` downloads open (`too_many_requests`, `Retry-After`)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/books/{id}/assets/{path:.+}")]
pub async fn book_asset(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Path<(i64, String)>,
) -> Result<HttpResponse, ApiError> {
    stream_asset(req, state, params.0, "assets").await
}

/// Audio or video of the book, streamed with RFC 9110 ranges (open, suffix, clamped past the
/// end; 416 only when nothing can be served; `If-Range`).
#[utoipa::path(
    tag = "content",
    security(("bearer" = [])),
    params(
        ("id" = i64, Path, description = "DCS book id"),
        ("path" = String, Path, description = "Path in the book, e.g. `audio/01.mp3`"),
    ),
    responses(
        (status = 200, description = "The bytes, with `ETag`, `Accept-Ranges: bytes`"),
        (status = 206, description = "A byte range (`Content-Range`)"),
        (status = 304, description = "`If-None-Match` matched"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody),
        (status = 429, description = "Too many downloads open (`too_many_requests`, `Retry-After`)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
#[get("/books/{id}/media/{path:.+}")]
pub async fn book_media(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Path<(i64, String)>,
) -> Result<HttpResponse, ApiError> {
    stream_asset(req, state, params.0, "media").await
}

/// Re-imports a book's activities from its config now (admin).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "DCS book id")),
    responses(
        (status = 200, body = ActivityImportReport),
        (status = 400, description = "The id is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 502, description = "The config is broken; stored activities are unchanged", body = ErrorBody),
        (status = 503, description = "DCS (`content_storage_unavailable`) or the database (`database_unavailable`) unavailable; see `Retry-After`", body = ErrorBody),
    )
)]
#[post("/admin/books/{id}/activities/import")]
pub async fn import_activities(
    _admin: RequireRole<AdminOnly>,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<web::Json<ActivityImportReport>, ApiError> {
    let import = state.content.import_activities(*id).await?;
    Ok(web::Json(ActivityImportReport {
        book_id: *id,
        activities: import.activities,
        inserted: import.summary.inserted,
        updated: import.summary.updated,
        unchanged: import.summary.unchanged,
        deleted: import.summary.deleted,
    }))
}

/// A storage error of the files route as an answer.
fn file_error(error: storage::StorageError) -> ApiError {
    match error {
        storage::StorageError::RangeNotSatisfiable { size } => unsatisfiable(size),
        storage::StorageError::NotFound { .. } => ApiError::not_found("File not found"),
        error => ApiError::from(domain::book_content::ContentError::from(error)),
    }
}

/// An object of the filesystem store, by signed URL (what S3 presigned URLs are with S3).
#[utoipa::path(
    tag = "content",
    params(
        ("bucket" = String, Path, description = "Bucket"),
        ("key" = String, Path, description = "Object key"),
    ),
    responses(
        (status = 200, description = "The bytes"),
        (status = 206, description = "A byte range"),
        (status = 403, description = "Expired or altered URL", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody),
        (status = 429, description = "Too many downloads open from this address (`too_many_requests`, `Retry-After`)", body = ErrorBody),
    )
)]
#[get("/files/{bucket}/{key:.+}")]
pub async fn signed_file(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let storage = &state.services.storage;
    let Some(signer) = &storage.files else {
        return Err(ApiError::not_found("Not found"));
    };
    // URLs carry the path of `LMS_PUBLIC_URL` (`/lms/files/...`); a reverse proxy that mounts
    // the API there strips it, as the asset routes already allow. The signature covers the
    // bucket, key, expiry and overrides, not that prefix.
    let mut path = std::borrow::Cow::Borrowed(req.path());
    if !path.starts_with(signer.route_path())
        && let Some(prefix) = signer.route_path().strip_suffix(FILES_ROUTE)
    {
        path = std::borrow::Cow::Owned(format!("{prefix}{path}"));
    }
    let verified = signer
        .verify(&path, req.query_string())
        .map_err(|rejected| {
            ApiError::from_code(Code::Forbidden)
                .with_detail(format!("File URL refused: {rejected}"))
                .with_field("reason", rejected.code())
        })?;
    let store = storage
        .store_for_bucket(&verified.bucket)
        .ok_or_else(|| ApiError::not_found("File not found"))?;
    let slot = state.guards.stream_slot(client_key(&req, None))?;
    let request = AssetRequest {
        range: header_str(&req, header::RANGE),
        if_range: header_str(&req, header::IF_RANGE),
        if_none_match: header_str(&req, header::IF_NONE_MATCH),
    };
    let cache_control = "private, max-age=3600";
    let mut response =
        match domain::book_content::open_stored(store.as_ref(), &verified.key, &request)
            .await
            .map_err(file_error)?
        {
            AssetAnswer::Body(mut body) => {
                if let Some(content_type) = verified.response_content_type {
                    body.content_type = content_type;
                }
                body_response(body, cache_control, &state.guards, slot)
            }
            AssetAnswer::NotModified { etag } => return Ok(not_modified(etag, cache_control)),
            AssetAnswer::RangeNotSatisfiable { size } => return Err(unsatisfiable(size)),
        };
    if let Some(disposition) = verified.response_content_disposition
        && let Ok(value) = HeaderValue::from_str(&disposition)
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    // A signed override may not make a page out of a file.
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    contain_active_content(&mut response, &content_type);
    Ok(response)
}
