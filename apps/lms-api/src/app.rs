//! The wiring: builds the one [`AppState`] ([`build_state`]) from the settings, and the one
//! [`create_app`] used by `main` and by the tests. The only module that knows every other.

use std::sync::Arc;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Condition, Next, from_fn};
use actix_web::{App, web};
use sea_orm::DatabaseConnection;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;

use crate::auth::JwtKeys;
use crate::cache_metrics::{cache_collector, dcs_collector};
use crate::db::{self, DbSetupError, SqlActivityStore, SqlDeliveryStore, SqlMaterialStore};
use crate::error::{
    AllowedMethods, json_error_handler, normalize_error_responses, path_error_handler,
    query_error_handler, unmatched_route,
};
use crate::metrics::HttpMetrics;
use crate::object_storage;
use crate::readiness::{
    DEFAULT_CHECK_TIMEOUT, DatabaseCheck, DcsCheck, Readiness, ScannerCheck, SharedCacheCheck,
    StorageCheck,
};
use crate::routes::system::OpenApiDocument;
use crate::routes::{self, ApiDoc};
use crate::services::{Services, ServicesError};
use crate::settings::{Settings, StorageBackend};
pub use crate::state::AppState;
use crate::webhooks::{WebhookMetrics, WebhookService};
use domain::book_content::BookContent;
use domain::materials::{ClamdScanner, MaterialLimits, MaterialService};
use domain::ports::VirusScanner;
use domain::webhook_log::DeliveryLog;
use domain::webhook_receiver::WebhookReceiver;

impl AppState {
    /// State over an open (and migrated) database, with adapters built from the settings.
    pub fn new(settings: Settings, db: DatabaseConnection) -> Result<Self, ServicesError> {
        let services = Services::from_settings(&settings)?;
        Ok(Self::with_services(settings, db, services))
    }

    /// State over given services (tests use a DCS client with fast retries).
    pub fn with_services(settings: Settings, db: DatabaseConnection, services: Services) -> Self {
        let jwt = Arc::new(JwtKeys::from_secret(&settings.jwt_secret));
        let mut readiness = Readiness::new(DEFAULT_CHECK_TIMEOUT)
            .with_check(Arc::new(DatabaseCheck::new(db.clone())))
            .with_check(Arc::new(DcsCheck::new(services.dcs.clone())));
        readiness = readiness.with_check(Arc::new(StorageCheck::new(
            vec![
                services.storage.content.clone(),
                services.storage.teachers.clone(),
            ],
            settings.storage.backend == StorageBackend::Fs,
        )));
        let materials = Arc::new(materials_service(&settings, &services, &db));
        if let Some(scanner) = materials.scanner() {
            readiness = readiness.with_check(Arc::new(ScannerCheck::new(scanner.clone())));
        }
        if services.cache.has_shared_tier() {
            readiness =
                readiness.with_check(Arc::new(SharedCacheCheck::new(services.cache.clone())));
        }
        let metrics = HttpMetrics::new();
        metrics
            .registry()
            .register(Box::new(cache_collector(services.cache.clone())))
            .expect("cache metrics are registered once in a fresh registry");
        metrics
            .registry()
            .register(Box::new(dcs_collector(services.dcs.clone())))
            .expect("DCS client metrics are registered once in a fresh registry");
        let guards = crate::guards::Guards::new(settings.guards.clone(), metrics.registry())
            .expect("guard metrics are registered once in a fresh registry");
        let webhook_metrics = WebhookMetrics::register(metrics.registry())
            .expect("webhook metrics are registered once in a fresh registry");
        let content = Arc::new(BookContent::new(
            services.catalog.clone(),
            services.dcs.clone(),
            object_storage::asset_linker(&settings, &services.storage, services.dcs.clone()),
            Arc::new(SqlActivityStore::new(db.clone())),
            object_storage::asset_source(
                &settings,
                &services.storage,
                services.dcs.clone(),
                services.cache.clone(),
            ),
        ));
        let webhooks = WebhookService::new(
            WebhookReceiver::new(
                DeliveryLog::new(SqlDeliveryStore::new(db.clone())),
                services.catalog.clone(),
                services.webhook_verifier.clone(),
                WebhookService::observer(&webhook_metrics),
            )
            .with_follower(content.clone()),
            webhook_metrics,
        );
        Self {
            settings: Arc::new(settings),
            db,
            jwt,
            metrics,
            readiness,
            services,
            webhooks,
            content,
            materials,
            guards,
        }
    }
}

/// Teacher materials over the database, the teachers' bucket and, with `CLAMD_ADDR`, clamd.
fn materials_service(
    settings: &Settings,
    services: &Services,
    db: &DatabaseConnection,
) -> MaterialService {
    let scanner = settings
        .clamd_addr
        .clone()
        .map(|addr| Arc::new(ClamdScanner::new(clamd::Clamd::new(addr))) as Arc<dyn VirusScanner>);
    MaterialService::new(
        Arc::new(SqlMaterialStore::new(db.clone())),
        services.storage.teachers.clone(),
        scanner,
        MaterialLimits {
            max_file_bytes: settings.material_max_bytes,
            default_quota: settings.teacher_quota_bytes,
        },
        Arc::new(domain::ports::SystemClock),
    )
}

/// Connects to `DATABASE_URL`, applies pending migrations and assembles the state.
pub async fn build_state(settings: Settings) -> Result<AppState, StartupError> {
    let db = db::connect(&settings.database_url).await?;
    db::migrate(&db).await?;
    Ok(AppState::new(settings, db)?)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] DbSetupError),
    #[error(transparent)]
    Services(#[from] ServicesError),
}

/// The whole application: routes, shared data, error handling and middleware.
///
/// `HttpServer::new(move || create_app(state.clone()))` in `main`;
/// `actix_web::test::init_service(create_app(state))` in tests.
pub fn create_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, openapi) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::configure)
        .split_for_parts();
    let allowed_methods = AllowedMethods::from_openapi(&openapi);
    let document = OpenApiDocument::new(&openapi);
    let metrics = state.metrics.clone();
    let cors = cors(&state.settings.frontend_origins);

    app.app_data(web::Data::from(state.jwt.clone()))
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(allowed_methods))
        .app_data(web::Data::new(document))
        .app_data(web::JsonConfig::default().error_handler(json_error_handler))
        .app_data(web::QueryConfig::default().error_handler(query_error_handler))
        .app_data(web::PathConfig::default().error_handler(path_error_handler))
        .default_service(web::to(unmatched_route))
        .wrap(from_fn(move |req, next| {
            every_request(metrics.clone(), req, next)
        }))
        // Outermost: preflights are answered before anything else runs.
        .wrap(Condition::new(cors.is_some(), cors.unwrap_or_default()))
}

/// The one middleware of every request, outside in: request id and context, log and metrics
/// ([`telemetry::observe_requests`](crate::telemetry::observe_requests)); error answers
/// normalised to the error shape before they are counted and logged; `HEAD` run as `GET`
/// ([`head`](crate::head)), so the log and metrics still say `HEAD`.
///
/// One actix layer rather than one per concern: each `from_fn` layer boxes the request's
/// future and the call of the next service, about 150 instructions per request each
/// (`scripts/profile-hot-path.sh`).
async fn every_request<B: MessageBody + 'static>(
    metrics: HttpMetrics,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    crate::telemetry::observe_requests(&metrics, req, async |mut req| {
        let is_head = crate::head::run_as_get(&mut req);
        let result = next.call(req).await;
        normalize_error_responses(
            result.map(|response| crate::head::without_body(is_head, response)),
        )
    })
    .await
}

/// CORS for the LMS frontend's origins (`LMS_FRONTEND_ORIGINS`); `None` when there are none,
/// so same-origin deployments carry no CORS headers at all. Other origins get no CORS headers
/// (the browser then refuses the answer); they are not turned into errors here.
fn cors(origins: &[String]) -> Option<Cors> {
    if origins.is_empty() {
        return None;
    }
    let mut cors = Cors::default()
        .block_on_origin_mismatch(false)
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_RANGE,
        ])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
            header::ETAG,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-cache"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    Some(cors)
}
