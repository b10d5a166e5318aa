//! Typed settings read from the environment and a `.env` file in the working directory.
//!
//! Every variable of the interface table is parsed here, with its documented default, even when
//! the feature that uses it is not wired yet, so a typo or malformed value fails at start-up with
//! a message naming the variable instead of surfacing later. Values of secrets never appear in
//! messages or in `Debug` output.
//!
//! `reader` reads the variables and collects problems; each section of [`Settings`] has its
//! own module with its types and its reader.

mod cache;
mod database;
mod dcs;
mod guards;
mod materials;
mod reader;
mod server;
mod storage;

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

pub use self::cache::CacheSettings;
pub use self::database::{DatabaseKind, DatabaseUrl, SecretUrl};
pub use self::dcs::{DCS_DEFAULT_EMAIL, DCS_DEFAULT_PASSWORD, DEV_WEBHOOK_SECRET, DcsSettings};
pub use self::guards::GuardSettings;
use self::reader::Reader;
pub use self::reader::{EnvSource, SettingsError, SettingsProblem};
pub use self::server::{DEV_JWT_SECRET, Environment};
pub use self::storage::{AssetDelivery, StorageBackend, StorageSettings};
pub use clamd::ClamdAddr;

/// Everything the server is configured with. `Debug` never shows secret values.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LMS_BIND`: listen address.
    pub bind: SocketAddr,
    /// `LMS_ENV`.
    pub environment: Environment,
    /// `LMS_JWT_SECRET`: HS256 key of LMS user tokens.
    pub jwt_secret: SecretString,
    /// `DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `REDIS_URL`: when set, the shared cache tier and cross-instance invalidation.
    pub redis_url: Option<SecretUrl>,
    /// Dream Central Storage connection.
    pub dcs: DcsSettings,
    /// `LMS_PUBLIC_URL`: base of URLs handed out (no trailing slash).
    pub public_url: Url,
    /// DCS cache lifetimes.
    pub cache: CacheSettings,
    /// Object storage.
    pub storage: StorageSettings,
    /// `ASSET_DELIVERY` (default: presigned with s3, proxy otherwise).
    pub asset_delivery: AssetDelivery,
    /// `PRESIGN_TTL`: lifetime of presigned URLs.
    pub presign_ttl: Duration,
    /// `PRESIGN_MIN_REMAINING`: a cached presigned URL with less life left is re-signed.
    pub presign_min_remaining: Duration,
    /// `CLAMD_ADDR`: when set, every upload is scanned.
    pub clamd_addr: Option<ClamdAddr>,
    /// `MATERIAL_MAX_BYTES`: upload size limit.
    pub material_max_bytes: u64,
    /// `TEACHER_QUOTA_BYTES`: default per-teacher quota.
    pub teacher_quota_bytes: u64,
    /// `LMS_FRONTEND_ORIGINS`: origins of the LMS frontend (comma-separated), allowed by CORS
    /// here and by `storage-init` on the buckets; empty: no cross-origin access.
    pub frontend_origins: Vec<String>,
    /// Limits on slow or greedy clients (body read timeout, connections, streams).
    pub guards: GuardSettings,
}

impl Settings {
    /// Reads `.env` from the working directory (when present) and the process environment;
    /// process variables win over the file.
    pub fn from_env() -> Result<Self, SettingsError> {
        let source = EnvSource::load()?;
        Self::from_lookup(|name| source.get(name))
    }

    /// Builds settings from any variable lookup (tests pass a map). Empty or blank values count
    /// as unset. All problems are reported together.
    pub fn from_lookup<F>(lookup: F) -> Result<Self, SettingsError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut env = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        let settings = Self::read(&mut env);
        if env.problems.is_empty() {
            Ok(settings)
        } else {
            Err(SettingsError::Invalid(env.problems))
        }
    }

    /// The URL DCS should deliver webhooks to.
    pub fn webhook_callback_url(&self) -> String {
        crate::paths::webhook_callback_url(self.public_url.as_str())
    }

    fn read(env: &mut Reader<'_>) -> Self {
        let environment = server::read_environment(env);
        let production = environment == Environment::Production;
        let bind = server::read_bind(env);
        let jwt_secret = server::read_jwt_secret(env, production);
        let database_url = database::read_database_url(env);
        let redis_url = database::read_redis_url(env);
        let dcs = dcs::read_dcs(env, production);
        let public_url = server::read_public_url(env);
        let cache = cache::read_cache(env);
        let storage = storage::read_storage(env);
        let asset_delivery = storage::read_asset_delivery(env, storage.backend);
        let (presign_ttl, presign_min_remaining) = storage::read_presign(env);
        let clamd_addr = materials::read_clamd_addr(env);
        let material_max_bytes = env.positive("MATERIAL_MAX_BYTES", 104_857_600);
        let teacher_quota_bytes = env.positive("TEACHER_QUOTA_BYTES", 524_288_000);
        let frontend_origins = server::read_frontend_origins(env);
        let guards = guards::read_guards(env);

        Self {
            bind,
            environment,
            jwt_secret,
            database_url,
            redis_url,
            dcs,
            public_url,
            cache,
            storage,
            asset_delivery,
            presign_ttl,
            presign_min_remaining,
            clamd_addr,
            material_max_bytes,
            teacher_quota_bytes,
            frontend_origins,
            guards,
        }
    }
}
