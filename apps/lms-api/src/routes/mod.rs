//! HTTP routes. Handlers annotated with `#[utoipa::path]` and registered through
//! [`configure`] appear in `/openapi.json` automatically.
//!
//! To add a feature: write its handlers in a module here and register them in [`configure`]
//! (under the `/api/v1` scope unless the interface says otherwise).

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod content;
pub mod materials;
pub mod system;
pub mod webhooks;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::ErrorBody;

/// The media type of a `Content-Type` value without parameters, lower-cased
/// (`Text/HTML; charset=utf-8` -> `text/html`).
pub(crate) fn media_type_essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}
use crate::paths::API_PREFIX;

/// Name of the bearer security scheme in the OpenAPI document.
pub const BEARER_SCHEME: &str = "bearer";

/// Registers every route.
pub fn configure(cfg: &mut ServiceConfig) {
    // actix tries routes in registration order, each a match attempt, and a pattern with a
    // `{param}` costs a regex match: the API scope (what nearly every request wants) goes
    // first, and in each group the fixed paths go before the patterns. No path matches two of
    // them, so the order changes no answer, only the work per request.
    cfg.service(utoipa_actix_web::scope(API_PREFIX).configure(configure_v1))
        .service(system::health)
        .service(system::ready)
        .service(system::metrics)
        .service(system::openapi_json)
        .service(content::signed_file);
}

fn configure_v1(cfg: &mut ServiceConfig) {
    cfg.service(auth::me)
        .service(catalog::list_books)
        .service(catalog::list_publishers)
        .service(catalog::get_publisher)
        .service(catalog::publisher_logo)
        .service(catalog::get_book)
        .service(catalog::book_cover)
        .service(content::book_config)
        .service(content::book_activities)
        .service(content::start_activity)
        // Before the `{path}` route, which would match `presigned` too.
        .service(content::asset_link)
        .service(content::book_asset)
        .service(content::book_media)
        .service(content::import_activities)
        // `quota` before `{id}`, which would match it too.
        .service(materials::material_quota)
        .service(materials::upload_material)
        .service(materials::create_note)
        .service(materials::create_link)
        .service(materials::list_materials)
        .service(materials::get_material)
        .service(materials::download_material)
        .service(materials::stream_material)
        .service(materials::update_material)
        .service(materials::delete_material)
        .service(materials::set_teacher_quota)
        .service(admin::cache_stats)
        .service(admin::cache_clear);
    cfg.service(webhooks::dream_storage_webhook)
        .service(webhooks::register_webhook);
}

/// The parts of the OpenAPI document that do not come from handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "lms-api",
        description = "LMS API over Dream Central Storage content. Errors are always \
                       `{\"detail\": \"...\", \"code\": \"...\"}` (schema `ErrorBody`)."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Liveness, readiness, metrics and this document"),
        (name = "auth", description = "The authenticated caller"),
        (name = "catalog", description = "Publishers and books from Dream Central Storage, cached"),
        (name = "content", description = "Book configs with asset URLs, activities, assets and media (streamed, with ranges)"),
        (name = "materials", description = "Teacher materials: files streamed to object storage, notes and links, with quotas (teacher role, own materials only)"),
        (name = "admin", description = "Cache, webhook and quota administration (admin role)"),
        (name = "webhooks", description = "Deliveries from Dream Central Storage, signed with HMAC-SHA256"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Declares the `bearer` scheme: `Authorization: Bearer <JWT>` signed with `LMS_JWT_SECRET`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(scheme));
    }
}
