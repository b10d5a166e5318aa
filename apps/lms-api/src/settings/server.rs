//! The server itself: `LMS_ENV`, `LMS_BIND`, `LMS_JWT_SECRET`, `LMS_PUBLIC_URL`.

use std::net::SocketAddr;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::reader::Reader;

/// Local-only default for `LMS_JWT_SECRET`; refused when `LMS_ENV=production`.
pub const DEV_JWT_SECRET: &str = "local-development-jwt-secret-do-not-use-in-production";

/// HS256 keys shorter than the hash output weaken the MAC (RFC 7518 §3.2).
const MIN_PRODUCTION_JWT_SECRET_BYTES: usize = 32;

/// The deployment environment (`LMS_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Developer machines and tests: development defaults for secrets are allowed.
    Local,
    /// Real deployments: default or empty secrets are refused.
    Production,
}

impl Environment {
    /// The value as written in `LMS_ENV`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Production => "production",
        }
    }
}

impl FromStr for Environment {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value.to_ascii_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "production" => Ok(Self::Production),
            _ => Err(()),
        }
    }
}

/// `LMS_ENV`.
pub(super) fn read_environment(env: &mut Reader<'_>) -> Environment {
    env.parsed(
        "LMS_ENV",
        Environment::Local,
        "expected \"local\" or \"production\"",
    )
}

/// `LMS_BIND`.
pub(super) fn read_bind(env: &mut Reader<'_>) -> SocketAddr {
    env.parsed(
        "LMS_BIND",
        SocketAddr::from(([127, 0, 0, 1], 8000)),
        "expected host:port with an IP address, e.g. 127.0.0.1:8000 or 0.0.0.0:8000",
    )
}

/// `LMS_JWT_SECRET`.
pub(super) fn read_jwt_secret(env: &mut Reader<'_>, production: bool) -> SecretString {
    let jwt_secret = env.secret_with_dev_default("LMS_JWT_SECRET", DEV_JWT_SECRET, production);
    if production
        && !jwt_secret.expose_secret().is_empty()
        && jwt_secret.expose_secret() != DEV_JWT_SECRET
        && jwt_secret.expose_secret().len() < MIN_PRODUCTION_JWT_SECRET_BYTES
    {
        env.problem(
            "LMS_JWT_SECRET",
            format!(
                "must be at least {MIN_PRODUCTION_JWT_SECRET_BYTES} bytes when LMS_ENV=production"
            ),
        );
    }
    jwt_secret
}

/// `LMS_PUBLIC_URL`.
pub(super) fn read_public_url(env: &mut Reader<'_>) -> Url {
    let public_url = env.http_url("LMS_PUBLIC_URL", "http://127.0.0.1:8000");
    if public_url.query().is_some() || public_url.fragment().is_some() {
        env.problem(
            "LMS_PUBLIC_URL",
            "must be a base URL without query or fragment".to_owned(),
        );
    }
    public_url
}

/// `LMS_FRONTEND_ORIGINS`: a comma-separated list of origins (`scheme://host[:port]`, no path).
pub(super) fn read_frontend_origins(env: &mut Reader<'_>) -> Vec<String> {
    const NAME: &str = "LMS_FRONTEND_ORIGINS";
    let Some(value) = env.value(NAME) else {
        return Vec::new();
    };
    let mut origins = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Url::parse(item) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.has_host()
                    && url.path() == "/"
                    && url.query().is_none() =>
            {
                origins.push(url.origin().ascii_serialization());
            }
            _ => env.problem(
                NAME,
                format!("{item:?} is not an origin such as https://lms.example.org"),
            ),
        }
    }
    origins
}
