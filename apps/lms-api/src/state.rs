//! [`AppState`]: everything handlers share. A leaf of the module graph: it names the services,
//! and nothing it imports imports the routes or the wiring back.

use std::sync::Arc;

use domain::book_content::BookContent;
use domain::leases::LeaderLocks;
use domain::materials::MaterialService;
use domain::ports::DcsSubscriptions;
use domain::webhook_registration::WebhookRegistrar;
use sea_orm::DatabaseConnection;

use crate::auth::JwtKeys;
use crate::db::SqlLeaseStore;
use crate::guards::Guards;
use crate::metrics::HttpMetrics;
use crate::readiness::Readiness;
use crate::services::Services;
use crate::settings::Settings;
use crate::webhooks::WebhookService;

/// Everything handlers share. Cheap to clone (reference-counted parts). Built by
/// `app::build_state` (or `AppState::new` / `AppState::with_services`), which live with the
/// wiring.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The settings the server started with.
    pub settings: Arc<Settings>,
    /// The database pool.
    pub db: DatabaseConnection,
    /// Signs and verifies LMS tokens.
    pub jwt: Arc<JwtKeys>,
    /// HTTP metrics and the Prometheus registry.
    pub metrics: HttpMetrics,
    /// The checks behind `/ready`.
    pub readiness: Readiness,
    /// The domain services and the adapters under them.
    pub services: Services,
    /// The DCS webhook pipeline (verify, log, invalidate).
    pub webhooks: WebhookService,
    /// Book content for readers: configs, activities, assets.
    pub content: Arc<BookContent>,
    /// Teacher materials and quotas.
    pub materials: Arc<MaterialService>,
    /// Body read timeout, per-client stream cap and stream idle timeout, with their counters.
    pub guards: Guards,
}

impl AppState {
    /// A webhook registrar over this state's DCS client, database and settings, taking the
    /// lease as a fresh holder in `role` (`startup`, `admin`, ...).
    pub fn webhook_registrar(&self, role: &str) -> WebhookRegistrar {
        WebhookRegistrar::new(
            Arc::new(DcsSubscriptions(self.services.dcs.clone())),
            LeaderLocks::new(SqlLeaseStore::new(self.db.clone())),
            self.settings.webhook_callback_url(),
            self.settings.dcs.webhook_secret.clone(),
            WebhookRegistrar::holder_id(role),
        )
    }
}
