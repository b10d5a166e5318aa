//! The DCS cache: `DCS_CACHE_*`.

use std::time::Duration;

use super::reader::Reader;

/// Lifetimes of cached DCS data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    /// `DCS_CACHE_DEFAULT_TTL`.
    pub default_ttl: Duration,
    /// `DCS_CACHE_PUBLISHER_TTL`.
    pub publisher_ttl: Duration,
    /// `DCS_CACHE_BOOK_TTL`.
    pub book_ttl: Duration,
    /// `DCS_CACHE_CONFIG_TTL`.
    pub config_ttl: Duration,
    /// `DCS_CACHE_LOGO_TTL`.
    pub logo_ttl: Duration,
    /// `DCS_CACHE_WARMUP_ENABLED`: prefetch publishers at start.
    pub warmup_enabled: bool,
    /// `DCS_CACHE_MAX_BYTES`: weight bound of the in-process cache tier (keys, values and a
    /// fixed per-entry overhead).
    pub max_bytes: u64,
    /// `DCS_CACHE_MAX_STALENESS`: how long after expiry a cached value is still served when
    /// DCS fails.
    pub max_staleness: Duration,
}

/// `DCS_CACHE_*`.
pub(super) fn read_cache(env: &mut Reader<'_>) -> CacheSettings {
    CacheSettings {
        default_ttl: env.seconds("DCS_CACHE_DEFAULT_TTL", 300),
        publisher_ttl: env.seconds("DCS_CACHE_PUBLISHER_TTL", 600),
        book_ttl: env.seconds("DCS_CACHE_BOOK_TTL", 600),
        config_ttl: env.seconds("DCS_CACHE_CONFIG_TTL", 1800),
        logo_ttl: env.seconds("DCS_CACHE_LOGO_TTL", 3600),
        warmup_enabled: env.boolean("DCS_CACHE_WARMUP_ENABLED", false),
        max_bytes: env.positive("DCS_CACHE_MAX_BYTES", 64 * 1024 * 1024),
        max_staleness: env.seconds("DCS_CACHE_MAX_STALENESS", 3600),
    }
}
