//! Cache administration (admin only).

use actix_web::{HttpResponse, get, post, web};
use cache::CacheStats;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{AdminOnly, RequireRole};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Which instances an answer covers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// This instance only.
    Instance,
    /// Every instance sharing the Redis tier.
    AllInstances,
}

/// `GET /admin/cache/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheStatsResponse {
    #[serde(flatten)]
    #[schema(inline, value_type = Object)]
    stats: CacheStats,
    /// Counters are this instance's own, also with a shared Redis tier.
    scope: Scope,
}

/// Counters of this instance's cache: entries, hits, misses, hit_rate, stale served, ...
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cache statistics of this instance", body = CacheStatsResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/admin/cache/stats")]
pub async fn cache_stats(
    _admin: RequireRole<AdminOnly>,
    state: web::Data<AppState>,
) -> web::Json<CacheStatsResponse> {
    web::Json(CacheStatsResponse {
        stats: state.services.cache.stats(),
        scope: Scope::Instance,
    })
}

/// `POST /admin/cache/clear`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheClearResponse {
    /// Entries removed from this instance's local tier.
    local_entries: u64,
    /// Keys removed from the shared Redis tier (0 without one).
    shared_entries: u64,
    /// With Redis, every instance is told to drop its local tier.
    scope: Scope,
}

/// Empties the cache (with Redis: the shared tier and every instance's local tier).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What was removed", body = CacheClearResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 503, description = "Redis could not be cleared (this instance's tier was)", body = ErrorBody),
    )
)]
#[post("/admin/cache/clear")]
pub async fn cache_clear(
    admin: RequireRole<AdminOnly>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let cache = &state.services.cache;
    let scope = if cache.stats().shared_tier.is_some() {
        Scope::AllInstances
    } else {
        Scope::Instance
    };
    match cache.clear().await {
        Ok(report) => {
            tracing::info!(admin = %admin.sub, local = report.local_entries, shared = report.shared_entries, "cache cleared");
            Ok(HttpResponse::Ok().json(CacheClearResponse {
                local_entries: report.local_entries,
                shared_entries: report.shared_entries,
                scope,
            }))
        }
        Err(error) => Err(ApiError::service_unavailable(
            "The local cache was cleared, but the shared cache could not be; try again.",
            5,
        )
        .with_field("scope", "instance")
        .with_source(error)),
    }
}
