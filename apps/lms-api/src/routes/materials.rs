//! Teacher materials: streamed multipart uploads, notes, links, lists, downloads and playback,
//! edits and deletes, and the admin's quota setting. The rules are the domain's
//! ([`domain::materials::MaterialService`]); this module reads HTTP and writes JSON.
//!
//! Only the owning teacher sees a material (anyone else's id answers 404); other roles get
//! 403 on the teacher routes, and only admins set quotas.

use std::io;

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use bytes::{Bytes, BytesMut};
use domain::book_content::{AssetAnswer, AssetRequest};
use domain::errors::Code;
use domain::materials::{
    FileUpload, MaterialEdit, MaterialError, MaterialKind, MaterialRecord, MaterialView, QuotaView,
    ReadPurpose, StagedFile, rules,
};
use futures_util::StreamExt as _;
use futures_util::future::Either;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{AdminOnly, RequireRole, TeacherOnly};
use crate::error::{ApiError, ErrorBody, not_a_fixed_route};
use crate::guards::client_key;
use crate::routes::content::{body_response, header_str, not_modified, unsatisfiable};
use crate::state::AppState;

/// Multipart framing allowed on top of `MATERIAL_MAX_BYTES` before a `Content-Length` alone
/// refuses an upload (boundaries, part headers, a `name` field).
const MULTIPART_ALLOWANCE: u64 = 64 * 1024;
/// Largest non-file form field (`name`).
const MAX_FIELD_BYTES: usize = 4 * 1024;
/// Most parts besides the file: with [`MAX_FIELD_BYTES`] each they stay within
/// [`MULTIPART_ALLOWANCE`], also in a chunked body that has no `Content-Length` to check.
const MAX_OTHER_FIELDS: usize = 16;
/// Chunks buffered between the request body and the store (backpressure beyond that).
const UPLOAD_CHANNEL_CHUNKS: usize = 4;

impl From<MaterialError> for ApiError {
    fn from(error: MaterialError) -> Self {
        // 413s are sent before the body is read to its end: close the connection rather than
        // read the rest.
        let closes = matches!(error, MaterialError::TooLarge { .. });
        let error = Self::from_domain(error);
        if closes {
            error.with_header(header::CONNECTION, HeaderValue::from_static("close"))
        } else {
            error
        }
    }
}

fn view(state: &AppState, record: MaterialRecord) -> Result<MaterialView, ApiError> {
    let url = state.materials.download_url(&record)?;
    Ok(MaterialView::new(record, url))
}

/// A material and the teacher's quota after the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaterialWithQuota {
    pub material: MaterialView,
    pub quota: QuotaView,
}

/// One page of a teacher's materials, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MaterialList {
    pub items: Vec<MaterialView>,
    /// Materials matching the filter, on every page.
    pub total: u64,
    pub skip: u64,
    pub limit: u64,
    pub quota: QuotaView,
}

/// The schemas of fields whose rules are the domain's ([`rules`]), built from the same
/// constants the checks use, so the document and the code cannot drift apart.
pub(crate) mod field_schemas {
    use domain::materials::{MaterialKind, rules};
    use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

    fn string(nullable: bool) -> ObjectBuilder {
        if nullable {
            ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        } else {
            ObjectBuilder::new().schema_type(Type::String)
        }
    }

    fn name_of(nullable: bool) -> Object {
        string(nullable)
            .pattern(Some(rules::NAME_PATTERN))
            .description(Some(format!(
                "1 to {} characters (surrounding white space is trimmed), no control \
                 characters, no `/` or `\\`, not `.` or `..`.",
                rules::MAX_NAME_CHARS
            )))
            .build()
    }

    fn note_of(nullable: bool) -> Object {
        string(nullable)
            .pattern(Some(rules::NOTE_PATTERN))
            .max_length(Some(rules::MAX_NOTE_BYTES))
            .description(Some(format!(
                "Not only white space; at most {} bytes of UTF-8 (a limit in bytes, which \
                 `maxLength` can only bound in characters).",
                rules::MAX_NOTE_BYTES
            )))
            .build()
    }

    fn url_of(nullable: bool) -> Object {
        string(nullable)
            .pattern(Some(rules::URL_PATTERN))
            .max_length(Some(rules::MAX_URL_CHARS))
            .description(Some(format!(
                "An absolute `http` or `https` URL without user name or password, at most {} \
                 characters. Every URL the pattern matches is accepted; IP-address hosts, \
                 international names and ports above 9999 are accepted too.",
                rules::MAX_URL_CHARS
            )))
            .build()
    }

    pub fn name() -> Object {
        name_of(false)
    }
    pub fn optional_name() -> Object {
        name_of(true)
    }
    pub fn note() -> Object {
        note_of(false)
    }
    pub fn optional_note() -> Object {
        note_of(true)
    }
    pub fn url() -> Object {
        url_of(false)
    }
    pub fn optional_url() -> Object {
        url_of(true)
    }

    /// The list filter: a type, or empty for every type.
    pub fn kind_filter() -> Object {
        let mut names = vec![""];
        names.extend(MaterialKind::ALL.map(MaterialKind::as_str));
        string(false)
            .enum_values(Some(names))
            .description(Some("Only this type (empty: every type)."))
            .build()
    }
}

/// Filter and page of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this type: `document`, `image`, `audio`, `video`, `url` or `text_note`.
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = field_schemas::kind_filter)]
    kind: Option<String>,
    /// Materials to skip (default 0).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    skip: Option<u64>,
    /// Page size, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
}

/// A new note.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewNote {
    #[schema(schema_with = field_schemas::name)]
    pub name: String,
    #[schema(schema_with = field_schemas::note)]
    pub content: String,
}

/// A new link.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewLink {
    #[schema(schema_with = field_schemas::name)]
    pub name: String,
    #[schema(schema_with = field_schemas::url)]
    pub url: String,
}

/// An edit: rename any material; change a note's text or a link's URL.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaterialPatch {
    #[schema(schema_with = field_schemas::optional_name)]
    pub name: Option<String>,
    /// Notes only (`text_content` or `content`).
    #[serde(alias = "content")]
    #[schema(schema_with = field_schemas::optional_note)]
    pub text_content: Option<String>,
    /// Links only.
    #[schema(schema_with = field_schemas::optional_url)]
    pub url: Option<String>,
}

/// The upload form (`multipart/form-data`), for the documentation only: the handler streams
/// the parts as they arrive.
#[derive(Debug)]
pub struct UploadForm;

/// Part names travel in a `Content-Disposition` header: no control characters, quotes or
/// backslashes.
const PART_NAME_PATTERN: &str = r#"^[^\u0000-\u001f\u007f"\\]*$"#;

impl utoipa::PartialSchema for UploadForm {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        let file = ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .min_length(Some(1))
            .description(Some(
                "The file, with a file name. Its part's `Content-Type`, its name's extension \
                 and its first bytes must name the same allowed type (documents, images, \
                 audio, video; no scripts or executables), else 415 `unsupported_file_type`.",
            ));
        ObjectBuilder::new()
            .property("file", file)
            .required("file")
            .property("name", field_schemas::name())
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(PART_NAME_PATTERN)),
            ))
            .description(Some(
                "`file` and an optional display `name` (default: the file name); other text \
                 parts of up to 4 KiB are ignored.",
            ))
            .into()
    }
}

impl ToSchema for UploadForm {}

/// A quota an admin sets.
#[derive(Debug, Deserialize, ToSchema)]
pub struct QuotaUpdate {
    /// Bytes, at most `MAX_QUOTA_BYTES` (2^63 - 1).
    #[serde(deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub quota_bytes: u64,
}

/// A JSON number that is a non-negative whole number, written as an integer or not (`5` and
/// `5.0` are the same integer to JSON Schema, so to this API too).
fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    use serde::de::Error as _;
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(whole) = number.as_u64() {
        return Ok(whole);
    }
    match number.as_f64() {
        // 2^64 is exact as an f64; every whole f64 below it fits a u64.
        Some(value)
            if value.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&value) =>
        {
            Ok(value as u64)
        }
        _ => Err(D::Error::custom(format!(
            "invalid value: {number}, expected a whole number of bytes, at least 0"
        ))),
    }
}

/// The quota an admin set.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaSet {
    pub teacher_id: Uuid,
    pub quota: QuotaView,
    /// The new quota is below what the teacher already uses: nothing is deleted, but uploads
    /// are refused until usage is below it.
    pub below_usage: bool,
    /// What the answer means, in words.
    pub detail: String,
}

fn invalid_upload(message: &'static str) -> ApiError {
    ApiError::from(MaterialError::InvalidUpload(message.into()))
}

fn multipart_error(error: MultipartError) -> ApiError {
    match error {
        MultipartError::ContentTypeMissing
        | MultipartError::ContentTypeParse
        | MultipartError::ContentTypeIncompatible
        | MultipartError::BoundaryMissing => ApiError::from_code(Code::UnsupportedMediaType)
            .with_detail("Send the upload as multipart/form-data with a boundary."),
        other => ApiError::from(MaterialError::InvalidUpload(format!(
            "The multipart body is not valid: {other}."
        ))),
    }
}

/// The route, as the body-timeout log line names it.
const UPLOAD_ROUTE: &str = "/api/v1/teachers/materials/upload";

/// The next item of the request body, waiting at most `LMS_BODY_READ_TIMEOUT`; `None` when
/// the body stalled.
async fn within_body_timeout<F: Future>(state: &AppState, next: F) -> Option<F::Output> {
    tokio::time::timeout(state.guards.body_read_timeout(), next)
        .await
        .ok()
}

/// The next part of the form.
async fn next_field(form: &mut Multipart, state: &AppState) -> Result<Option<Field>, ApiError> {
    match within_body_timeout(state, form.next()).await {
        Some(Some(Ok(field))) => Ok(Some(field)),
        Some(Some(Err(error))) => Err(multipart_error(error)),
        Some(None) => Ok(None),
        None => Err(state.guards.body_timed_out(UPLOAD_ROUTE)),
    }
}

/// A small text field, whole; `None` when it is over [`MAX_FIELD_BYTES`].
async fn read_text_field(mut field: Field, state: &AppState) -> Result<Option<String>, ApiError> {
    let mut value = BytesMut::new();
    loop {
        let chunk = match within_body_timeout(state, field.next()).await {
            Some(Some(Ok(chunk))) => chunk,
            Some(Some(Err(error))) => return Err(multipart_error(error)),
            Some(None) => break,
            None => return Err(state.guards.body_timed_out(UPLOAD_ROUTE)),
        };
        if value.len() + chunk.len() > MAX_FIELD_BYTES {
            return Ok(None);
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value.to_vec())
        .map(Some)
        .map_err(|_| invalid_upload("A form field is not valid UTF-8."))
}

/// Why feeding the file part stopped early.
enum FeedEnd {
    Done,
    TimedOut,
}

/// Streams the `file` part to the domain: the part is read here (actix's body is tied to this
/// worker) and handed over through a small channel, so the store sees a `Send` stream and
/// memory stays bounded by the channel.
async fn store_file_part(
    state: &AppState,
    teacher: Uuid,
    mut field: Field,
) -> Result<StagedFile, ApiError> {
    let filename = field
        .content_disposition()
        .and_then(|cd| cd.get_filename())
        .map(str::to_owned)
        .ok_or_else(|| invalid_upload("The file part has no filename."))?;
    let declared_type = field
        .content_type()
        .map(|mime| mime.essence_str().to_owned());
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(UPLOAD_CHANNEL_CHUNKS);
    let body = Box::pin(
        futures_util::stream::unfold(receiver, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .fuse(),
    );
    let feed = async move {
        loop {
            let item = match within_body_timeout(state, field.next()).await {
                Some(Some(Ok(chunk))) => Ok(chunk),
                Some(Some(Err(error))) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    error.to_string(),
                )),
                Some(None) => return FeedEnd::Done,
                None => {
                    let _ = sender
                        .send(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "body read timeout",
                        )))
                        .await;
                    return FeedEnd::TimedOut;
                }
            };
            let failed = item.is_err();
            // The store stopped reading (it refused the file): stop too.
            if sender.send(item).await.is_err() || failed {
                return FeedEnd::Done;
            }
        }
    };
    let upload = state.materials.store_file(
        teacher,
        FileUpload {
            filename,
            declared_type,
            body,
        },
    );
    let (upload, feed) = (std::pin::pin!(upload), std::pin::pin!(feed));
    match futures_util::future::select(upload, feed).await {
        // The store refused the file (type, size, quota, virus, storage): that is the answer,
        // without waiting for a client that stalls on the rest of the part.
        Either::Left((Err(error), _)) => Err(error.into()),
        // It read the whole part, so the feed has ended too.
        Either::Left((Ok(staged), feed)) => {
            feed.await;
            Ok(staged)
        }
        Either::Right((fed, upload)) => match (upload.await, fed) {
            (Err(_), FeedEnd::TimedOut) => Err(state.guards.body_timed_out(UPLOAD_ROUTE)),
            (stored, _) => Ok(stored?),
        },
    }
}

/// Uploads one file (multipart `file`, optional `name`), streamed to storage.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = MaterialWithQuota),
        (status = 400, description = "`invalid_upload` (no `file` part, two of them, more than 16 other fields, a cut-off or malformed body), `empty_file`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 408, description = "The body stopped arriving (`request_timeout`)", body = ErrorBody),
        (status = 413, description = "`file_too_large` (over `MATERIAL_MAX_BYTES`, also from `Content-Length` alone) or `quota_exceeded`", body = ErrorBody),
        (status = 415, description = "`unsupported_file_type`: type, extension and content disagree, or a script or executable", body = ErrorBody),
        (status = 422, description = "`virus_detected` (with `signature`), `invalid_name`", body = ErrorBody),
        (status = 503, description = "`scanner_unavailable`, `file_storage_unavailable`, `database_unavailable`", body = ErrorBody),
    )
)]
#[post("/teachers/materials/upload")]
pub async fn upload_material(
    req: HttpRequest,
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.materials.limits().max_file_bytes;
    let declared_length =
        header_str(&req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|len| len > limit.saturating_add(MULTIPART_ALLOWANCE)) {
        return Err(MaterialError::TooLarge { limit }.into());
    }
    let mut form = Multipart::new(req.headers(), payload);
    let mut name: Option<String> = None;
    let mut staged: Option<StagedFile> = None;
    let mut other_fields = 0;
    while let Some(field) = next_field(&mut form, &state).await? {
        if field.name() != Some("file") {
            other_fields += 1;
            if other_fields > MAX_OTHER_FIELDS {
                return Err(invalid_upload(
                    "The form has more than 16 fields besides 'file'.",
                ));
            }
        }
        match field.name() {
            Some("file") => {
                if staged.is_some() {
                    // Dropping the staged file deletes it and gives its quota back.
                    return Err(invalid_upload("Send exactly one file part named 'file'."));
                }
                staged = Some(store_file_part(&state, teacher.sub, field).await?);
            }
            Some("name") => {
                let value = read_text_field(field, &state).await?.ok_or_else(|| {
                    MaterialError::Name(rules::NameError::TooLong {
                        what: "name",
                        chars: MAX_FIELD_BYTES + 1,
                    })
                })?;
                // Checked before a following file part is streamed.
                rules::check_name(&value, "name").map_err(MaterialError::from)?;
                name = Some(value);
            }
            _ if field
                .content_disposition()
                .is_some_and(|cd| cd.get_filename().is_some()) =>
            {
                return Err(invalid_upload("Send exactly one file part named 'file'."));
            }
            _ => {
                // Other text fields (the frontend may send more) are read and ignored.
                if read_text_field(field, &state).await?.is_none() {
                    return Err(invalid_upload(
                        "A form field other than 'file' is over 4 KiB.",
                    ));
                }
            }
        }
    }
    let staged = staged.ok_or_else(|| invalid_upload("The form has no part named 'file'."))?;
    let (record, quota) = state.materials.commit(staged, name.as_deref()).await?;
    tracing::info!(
        teacher = %teacher.sub,
        material = %record.id,
        bytes = record.file_size.unwrap_or(0),
        kind = record.kind.as_str(),
        "material uploaded"
    );
    Ok(HttpResponse::Created().json(MaterialWithQuota {
        material: view(&state, record)?,
        quota: quota.into(),
    }))
}

/// Stores a note.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    request_body = NewNote,
    responses(
        (status = 201, body = MaterialView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_name`, `invalid_note` (empty or over 50 KB)", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    )
)]
#[post("/teachers/materials/notes")]
pub async fn create_note(
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    body: web::Json<NewNote>,
) -> Result<HttpResponse, ApiError> {
    let record = state
        .materials
        .create_note(teacher.sub, &body.name, &body.content)
        .await?;
    Ok(HttpResponse::Created().json(view(&state, record)?))
}

/// Stores a link.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    request_body = NewLink,
    responses(
        (status = 201, body = MaterialView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_name`, `invalid_url` (not http(s), over 2,000 characters)", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    )
)]
#[post("/teachers/materials/urls")]
pub async fn create_link(
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    body: web::Json<NewLink>,
) -> Result<HttpResponse, ApiError> {
    let record = state
        .materials
        .create_link(teacher.sub, &body.name, &body.url)
        .await?;
    Ok(HttpResponse::Created().json(view(&state, record)?))
}

/// The caller's materials, newest first, with the quota.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, body = MaterialList),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    )
)]
#[get("/teachers/materials")]
pub async fn list_materials(
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let kind = match params.kind.as_deref() {
        None | Some("") => None,
        Some(name) => Some(MaterialKind::parse(name).ok_or_else(|| {
            ApiError::from_code(Code::InvalidQuery).with_detail(format!(
                "Unknown type {name:?}: use document, image, audio, video, url or text_note."
            ))
        })?),
    };
    let skip = params.skip.unwrap_or(0);
    if i64::try_from(skip).is_err() {
        return Err(ApiError::from_code(Code::InvalidQuery)
            .with_detail("skip must be at most 9223372036854775807"));
    }
    let limit = params.limit.unwrap_or(20);
    if !(1..=domain::materials::MAX_PAGE).contains(&limit) {
        return Err(ApiError::from_code(Code::InvalidQuery).with_detail("limit must be 1..=100"));
    }
    let (page, quota) = state.materials.list(teacher.sub, kind, skip, limit).await?;
    let items = page
        .items
        .into_iter()
        .map(|record| view(&state, record))
        .collect::<Result<_, _>>()?;
    Ok(HttpResponse::Ok().json(MaterialList {
        items,
        total: page.total,
        skip,
        limit,
        quota: quota.into(),
    }))
}

/// The caller's quota.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    responses(
        (status = 200, body = QuotaView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    )
)]
#[get("/teachers/materials/quota")]
pub async fn material_quota(
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let quota = state.materials.quota(teacher.sub).await?;
    Ok(HttpResponse::Ok().json(QuotaView::from(quota)))
}

/// One of the caller's materials.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Material id")),
    responses(
        (status = 200, body = MaterialView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "`material_not_found` (also another teacher's)", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    )
)]
#[get("/teachers/materials/{id}", guard = "not_a_fixed_route")]
pub async fn get_material(
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let record = state.materials.get(teacher.sub, *id).await?;
    Ok(HttpResponse::Ok().json(view(&state, record)?))
}

async fn send_file(
    req: HttpRequest,
    teacher: Uuid,
    state: web::Data<AppState>,
    id: Uuid,
    purpose: ReadPurpose,
) -> Result<HttpResponse, ApiError> {
    let slot = state.guards.stream_slot(client_key(&req, Some(teacher)))?;
    let request = AssetRequest {
        range: header_str(&req, header::RANGE),
        if_range: header_str(&req, header::IF_RANGE),
        if_none_match: header_str(&req, header::IF_NONE_MATCH),
    };
    let opened = state.materials.open(teacher, id, purpose, &request).await?;
    // A teacher's own file behind a token: no shared cache keeps it.
    let cache_control = "private, no-cache";
    let mut response = match opened.answer {
        AssetAnswer::Body(body) => body_response(body, cache_control, &state.guards, slot),
        AssetAnswer::NotModified { etag } => not_modified(etag, cache_control),
        AssetAnswer::RangeNotSatisfiable { size } => return Err(unsatisfiable(size)),
    };
    if let Ok(value) = HeaderValue::from_str(&opened.content_disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The file, as an attachment with its original name (RFC 6266), streamed with ranges.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Material id")),
    responses(
        (status = 200, description = "The bytes (`Content-Disposition: attachment`)"),
        (status = 206, description = "A byte range"),
        (status = 304, description = "`If-None-Match` matched"),
        (status = 400, description = "A link or a note: there is no file", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "`file_storage_unavailable`, `database_unavailable`", body = ErrorBody),
    )
)]
#[get("/teachers/materials/{id}/download")]
pub async fn download_material(
    req: HttpRequest,
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    send_file(req, teacher.sub, state, *id, ReadPurpose::Download).await
}

/// Audio or video for playback (`inline`), with RFC 9110 ranges.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Material id")),
    responses(
        (status = 200, description = "The bytes (`Content-Disposition: inline`)"),
        (status = 206, description = "A byte range"),
        (status = 304, description = "`If-None-Match` matched"),
        (status = 400, description = "`material_not_streamable`: not audio or video", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "`file_storage_unavailable`, `database_unavailable`", body = ErrorBody),
    )
)]
#[get("/teachers/materials/{id}/stream")]
pub async fn stream_material(
    req: HttpRequest,
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    send_file(req, teacher.sub, state, *id, ReadPurpose::Stream).await
}

/// Renames a material, or edits a note's text or a link's URL.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Material id")),
    request_body = MaterialPatch,
    responses(
        (status = 200, body = MaterialView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "`invalid_name`, `invalid_note`, `invalid_url`, `invalid_body`", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    )
)]
#[patch("/teachers/materials/{id}", guard = "not_a_fixed_route")]
pub async fn update_material(
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
    body: web::Json<MaterialPatch>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let record = state
        .materials
        .update(
            teacher.sub,
            *id,
            MaterialEdit {
                name: body.name,
                text_content: body.text_content,
                url: body.url,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(view(&state, record)?))
}

/// Deletes a material: its file, its row and its bytes of quota.
#[utoipa::path(
    tag = "materials",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Material id")),
    responses(
        (status = 200, description = "The quota after the delete", body = QuotaView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "`file_storage_unavailable`, `database_unavailable`", body = ErrorBody),
    )
)]
#[delete("/teachers/materials/{id}", guard = "not_a_fixed_route")]
pub async fn delete_material(
    teacher: RequireRole<TeacherOnly>,
    state: web::Data<AppState>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let quota = state.materials.delete(teacher.sub, *id).await?;
    Ok(HttpResponse::Ok().json(QuotaView::from(quota)))
}

/// Sets a teacher's storage quota (admin).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("teacher_id" = Uuid, Path, description = "The teacher's user id")),
    request_body = QuotaUpdate,
    responses(
        (status = 200, body = QuotaSet),
        (status = 400, description = "`invalid_path` (not a UUID), `malformed_json`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "`invalid_body`: `quota_bytes` missing, not a whole number, or over 2^63 - 1", body = ErrorBody),
        (status = 503, description = "`database_unavailable`", body = ErrorBody),
    )
)]
#[put("/admin/teachers/{teacher_id}/quota")]
pub async fn set_teacher_quota(
    admin: RequireRole<AdminOnly>,
    state: web::Data<AppState>,
    teacher_id: web::Path<Uuid>,
    body: web::Json<QuotaUpdate>,
) -> Result<HttpResponse, ApiError> {
    let teacher = *teacher_id;
    let quota = state.materials.set_quota(teacher, body.quota_bytes).await?;
    let below_usage = quota.used_bytes > quota.quota_bytes;
    let detail = if below_usage {
        format!(
            "Quota set to {} bytes, below the {} bytes already used: nothing is deleted, but \
             uploads are refused until usage is below the quota.",
            quota.quota_bytes, quota.used_bytes
        )
    } else {
        format!("Quota set to {} bytes.", quota.quota_bytes)
    };
    tracing::info!(admin = %admin.sub, %teacher, quota_bytes = quota.quota_bytes, below_usage, "teacher quota set");
    Ok(HttpResponse::build(StatusCode::OK).json(QuotaSet {
        teacher_id: teacher,
        quota: quota.into(),
        below_usage,
        detail,
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix_web::ResponseError as _;
    use actix_web::error::PayloadError;
    use actix_web::http::header::{self, HeaderMap, HeaderValue};
    use bytes::Bytes;
    use futures_util::StreamExt as _;

    use super::*;

    /// A body that ends without its closing boundary must end the upload with an error, not
    /// leave the file part pending until the body-read timeout (actix-multipart before 0.8.2
    /// did: found by fuzz/fuzz_targets/multipart.rs).
    #[tokio::test]
    async fn a_body_without_its_closing_boundary_is_an_error_at_once() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=B"),
        );
        for cut in ["\r\n--", "\r", "\r\n"] {
            let body = format!(
                "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello{cut}"
            );
            let chunks: Vec<Result<Bytes, PayloadError>> = vec![Ok(Bytes::from(body))];
            let mut form = Multipart::new(&headers, futures_util::stream::iter(chunks));
            let read = async {
                let mut field = form.next().await.expect("a part").expect("its headers");
                while let Some(chunk) = field.next().await {
                    if let Err(error) = chunk {
                        return Err(multipart_error(error));
                    }
                }
                Ok(())
            };
            let answer = tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .unwrap_or_else(|_| panic!("{cut:?}: still pending at the end of the body"));
            let error = answer.expect_err("an incomplete body is refused");
            assert_eq!(error.status_code(), StatusCode::BAD_REQUEST, "{cut:?}");
        }
    }
}
