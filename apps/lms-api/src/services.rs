//! Builds the adapters the domain runs on from the settings: the DCS client, the cache (local,
//! or local + Redis), and the catalog over both.

use std::sync::Arc;

use cache::{Cache, CacheConfig, RedisConfig};
use dcs_client::{Credentials, DcsApi, DcsClient, DcsConfig, DcsError};
use domain::catalog::{Catalog, CatalogTtls};
use domain::webhooks::SignatureVerifier;

use crate::object_storage::Storage;
use crate::paths::ApiLinks;
use crate::settings::Settings;

/// Why the services could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("DREAM_CENTRAL_STORAGE_URL: {0}")]
    Dcs(#[source] DcsError),
    #[error("REDIS_URL: {0}")]
    Redis(#[source] cache::BackendError),
    #[error("object storage (STORAGE_BACKEND, MINIO_*, PRESIGN_*): {0}")]
    Storage(#[source] storage::StorageError),
}

/// The domain's adapters, shared by every worker.
#[derive(Clone)]
pub struct Services {
    pub dcs: Arc<dyn DcsApi>,
    pub cache: Cache,
    pub catalog: Arc<Catalog>,
    pub webhook_verifier: Arc<SignatureVerifier>,
    /// Object storage and the URL signers.
    pub storage: Storage,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("cache", &self.cache)
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

/// The DCS client configuration the settings describe: deadlines, slot budgets and breaker
/// timing from `DREAM_CENTRAL_STORAGE_*` where set, everything else at the client's defaults.
pub fn dcs_config(settings: &Settings) -> DcsConfig {
    let dcs = &settings.dcs;
    let mut credentials = Credentials::password(dcs.email.clone(), dcs.password.clone());
    if let Some(key) = &dcs.api_key {
        credentials = credentials.with_api_key(key.clone());
    }
    let mut config = DcsConfig::new(dcs.url.as_str().trim_end_matches('/'), credentials);
    if let Some(d) = dcs.call_deadline {
        config.call_deadline = d;
    }
    if let Some(d) = dcs.download_deadline {
        config.download_deadline = d;
    }
    if let Some(n) = dcs.max_connections {
        config.max_connections_per_host = n;
    }
    if let Some(n) = dcs.max_streams {
        config.max_streams = n;
    }
    if let Some(d) = dcs.pool_wait {
        config.pool_wait_timeout = d;
    }
    if let Some(d) = dcs.breaker_cool_down {
        config.breaker.cool_down = d;
    }
    if let Some(d) = dcs.breaker_max_cool_down {
        config.breaker.max_cool_down = d;
    }
    config
}

/// The cache configuration the settings describe.
pub fn cache_config(settings: &Settings) -> CacheConfig {
    CacheConfig {
        capacity_bytes: settings.cache.max_bytes,
        default_ttl: settings.cache.default_ttl,
        max_staleness: settings.cache.max_staleness,
        ..CacheConfig::default()
    }
}

/// Catalog TTLs from `DCS_CACHE_*_TTL`.
pub fn catalog_ttls(settings: &Settings) -> CatalogTtls {
    CatalogTtls {
        publishers: settings.cache.publisher_ttl,
        books: settings.cache.book_ttl,
        config: settings.cache.config_ttl,
        logos: settings.cache.logo_ttl,
    }
}

/// The cache: local only, or with the Redis tier when `REDIS_URL` is set. Needs a Tokio
/// runtime (the Redis tier connects in the background).
pub fn build_cache(settings: &Settings) -> Result<Cache, ServicesError> {
    let config = cache_config(settings);
    match &settings.redis_url {
        None => Ok(Cache::new(config)),
        Some(url) => {
            Cache::with_redis(config, &RedisConfig::new(url.expose())).map_err(ServicesError::Redis)
        }
    }
}

impl Services {
    /// Real adapters from the settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, ServicesError> {
        let dcs = DcsClient::new(dcs_config(settings)).map_err(ServicesError::Dcs)?;
        Self::new(settings, Arc::new(dcs), build_cache(settings)?)
    }

    /// Services over given adapters (tests use a DCS client with fast retries).
    pub fn new(
        settings: &Settings,
        dcs: Arc<dyn DcsApi>,
        cache: Cache,
    ) -> Result<Self, ServicesError> {
        let catalog = Arc::new(Catalog::new(
            dcs.clone(),
            cache.clone(),
            catalog_ttls(settings),
            Arc::new(ApiLinks),
        ));
        Ok(Self {
            dcs,
            cache,
            catalog,
            webhook_verifier: Arc::new(SignatureVerifier::new(settings.dcs.webhook_secret.clone())),
            storage: Storage::from_settings(settings).map_err(ServicesError::Storage)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned()).expect("settings")
    }

    #[test]
    fn dcs_limits_default_to_the_client_defaults_and_can_be_set() {
        let defaults = DcsConfig::default();
        let config = dcs_config(&settings(&[]));
        assert_eq!(config.call_deadline, defaults.call_deadline);
        assert_eq!(config.max_streams, defaults.max_streams);
        assert_eq!(config.breaker.cool_down, defaults.breaker.cool_down);

        let config = dcs_config(&settings(&[
            ("DREAM_CENTRAL_STORAGE_CALL_DEADLINE_MS", "2500"),
            ("DREAM_CENTRAL_STORAGE_DOWNLOAD_DEADLINE_MS", "8000"),
            ("DREAM_CENTRAL_STORAGE_MAX_CONNECTIONS", "12"),
            ("DREAM_CENTRAL_STORAGE_MAX_STREAMS", "4"),
            ("DREAM_CENTRAL_STORAGE_POOL_WAIT_MS", "300"),
            ("DREAM_CENTRAL_STORAGE_BREAKER_COOL_DOWN_MS", "500"),
            ("DREAM_CENTRAL_STORAGE_BREAKER_MAX_COOL_DOWN_MS", "3000"),
        ]));
        assert_eq!(config.call_deadline, Duration::from_millis(2500));
        assert_eq!(config.download_deadline, Duration::from_secs(8));
        assert_eq!(config.max_connections_per_host, 12);
        assert_eq!(config.max_streams, 4);
        assert_eq!(config.pool_wait_timeout, Duration::from_millis(300));
        assert_eq!(config.breaker.cool_down, Duration::from_millis(500));
        assert_eq!(config.breaker.max_cool_down, Duration::from_secs(3));
    }

    #[test]
    fn dcs_limits_must_be_positive_whole_numbers() {
        for bad in ["0", "-1", "soon"] {
            let err = Settings::from_lookup(|name| {
                (name == "DREAM_CENTRAL_STORAGE_CALL_DEADLINE_MS").then(|| bad.to_owned())
            })
            .unwrap_err();
            assert!(
                err.to_string()
                    .contains("DREAM_CENTRAL_STORAGE_CALL_DEADLINE_MS"),
                "{bad}: {err}"
            );
        }
    }
}
