//! Settings for the cache and its Redis tier.

use std::fmt;
use std::time::Duration;

/// Settings of the in-process tier and the cache policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Upper bound of the local tier, in bytes (keys + values + a fixed per-entry overhead).
    pub capacity_bytes: u64,
    /// TTL callers use when they have no more specific one ([`crate::Cache::default_ttl`]).
    pub default_ttl: Duration,
    /// How long after expiry a value may still be served when a refresh fails.
    pub max_staleness: Duration,
    /// How long a "not found" answer is cached.
    pub negative_ttl: Duration,
    /// How often the background sweeper drops entries that can no longer be served.
    pub sweep_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            capacity_bytes: 64 * 1024 * 1024,
            default_ttl: Duration::from_secs(300),
            max_staleness: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(30),
        }
    }
}

/// Settings of the shared Redis tier and the invalidation channel.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`. May hold a password: never logged.
    pub url: String,
    /// Prefix of every key this cache writes, and of its pub/sub channel. Instances that must
    /// share entries and invalidations use the same namespace.
    pub namespace: String,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for one command's answer.
    pub response_timeout: Duration,
    /// After a connection-level failure, Redis is skipped for this long so that requests do not
    /// each wait for a timeout while it is down.
    pub error_cooldown: Duration,
    /// How often the subscription connection is pinged to detect a silently dead link.
    pub keepalive_interval: Duration,
    /// First delay before re-subscribing after the subscription is lost (doubles up to the max).
    pub reconnect_min_delay: Duration,
    /// Longest delay between re-subscription attempts.
    pub reconnect_max_delay: Duration,
}

impl RedisConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: "lms:cache:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            error_cooldown: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(15),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(5),
        }
    }

    /// Sets the namespace (key prefix and channel prefix).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The pub/sub channel that carries invalidations for this namespace.
    pub fn channel(&self) -> String {
        format!("{}invalidations", self.namespace)
    }

    /// The URL with any password replaced, safe for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("error_cooldown", &self.error_cooldown)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("reconnect_min_delay", &self.reconnect_min_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host/...` with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    let redacted_userinfo = if user.is_empty() || userinfo.contains(':') {
        format!("{user}:***")
    } else {
        // `redis://secret@host` puts the password where a user name would be.
        "***".to_owned()
    };
    format!(
        "{}{}@{}",
        &url[..authority_start],
        redacted_userinfo,
        &url[authority_start + at + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let config = CacheConfig::default();
        assert_eq!(config.capacity_bytes, 64 * 1024 * 1024);
        assert_eq!(config.default_ttl, Duration::from_secs(300));
        assert_eq!(config.max_staleness, Duration::from_secs(3600));
        assert_eq!(config.negative_ttl, Duration::from_secs(30));
        assert_eq!(config.sweep_interval, Duration::from_secs(30));
    }

    #[test]
    fn redaction_hides_passwords_only() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://user:hunter2@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(
            redact_url("redis://:hunter2@host:6379"),
            "redis://:***@host:6379"
        );
        assert_eq!(redact_url("redis://hunter2@host"), "redis://***@host");
        assert_eq!(
            redact_url("redis://u:p%40ss@host/2?protocol=resp3"),
            "redis://u:***@host/2?protocol=resp3"
        );
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let config = RedisConfig::new("redis://default:s3cr3t-pw@redis.internal:6379");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cr3t-pw"), "{debug}");
        assert!(debug.contains("redis.internal"), "{debug}");
    }

    #[test]
    fn channel_is_derived_from_the_namespace() {
        let config = RedisConfig::new("redis://localhost").with_namespace("app1:");
        assert_eq!(config.channel(), "app1:invalidations");
    }
}
