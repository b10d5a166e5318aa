//! Operational endpoints outside the API prefix: `/health`, `/ready`, `/metrics`,
//! `/openapi.json`.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::readiness::{ReadinessReport, ReadyStatus};
use crate::state::AppState;

/// Body of `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthBody {
    /// Always `ok` when the process answers.
    #[schema(example = "ok")]
    pub status: String,
    /// Version of this server.
    #[schema(example = "0.1.0")]
    pub version: String,
}

/// Liveness: the process is up and serving HTTP. Checks no dependency.
#[utoipa::path(
    tag = "system",
    responses((status = 200, description = "The server is alive", body = HealthBody))
)]
#[get("/health")]
pub async fn health() -> web::Json<HealthBody> {
    web::Json(HealthBody {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// Readiness. 200 `ok` when every check passed; 200 `degraded` when only optional dependencies
/// (DCS, Redis) fail, since cached content is still served; 503 `unavailable` (same body) when a
/// required one (the database) fails.
#[utoipa::path(
    tag = "system",
    responses(
        (status = 200, description = "Ready to serve traffic (`ok`, or `degraded` with an optional dependency failing; see `checks`)", body = ReadinessReport),
        (status = 503, description = "A required dependency is failing; see `checks`", body = ReadinessReport),
    )
)]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let report = state.readiness.run().await;
    let status = match report.status {
        ReadyStatus::Ok | ReadyStatus::Degraded => StatusCode::OK,
        ReadyStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(report)
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    tag = "system",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 500, description = "Metrics could not be encoded", body = ErrorBody),
    )
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state.metrics.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}

/// The OpenAPI document, serialised once when the app is built.
#[derive(Debug, Clone)]
pub struct OpenApiDocument(web::Bytes);

impl OpenApiDocument {
    /// Serialises `doc`.
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Self {
        let json = doc
            .to_json()
            .expect("an OpenAPI document built from typed definitions serialises");
        Self(web::Bytes::from(json))
    }
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    tag = "system",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json"))
)]
#[get("/openapi.json")]
pub async fn openapi_json(doc: web::Data<OpenApiDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(doc.0.clone())
}
