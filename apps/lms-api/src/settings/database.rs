//! Databases: `DATABASE_URL` (SQLite or PostgreSQL) and `REDIS_URL`.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::reader::Reader;

/// Which database engine a [`DatabaseUrl`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// Embedded SQLite file (or in-memory database).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A URL that may carry credentials (`postgres://user:password@host/db`, `redis://:pw@host`).
///
/// The full value is only reachable through [`SecretUrl::expose`]; `Debug` and `Display` show
/// the URL with its password replaced.
#[derive(Clone)]
pub struct SecretUrl {
    full: SecretString,
    redacted: String,
}

impl SecretUrl {
    fn parse(value: &str) -> Result<(Self, Url), url::ParseError> {
        let url = Url::parse(value)?;
        let mut shown = url.clone();
        if shown.password().is_some() {
            // set_password only fails for URLs that cannot have credentials, which `password()`
            // returning Some rules out.
            let _ = shown.set_password(Some("***"));
        }
        let secret = Self {
            full: SecretString::from(value.to_owned()),
            redacted: shown.to_string(),
        };
        Ok((secret, url))
    }

    /// The URL including its credentials, for handing to a driver.
    pub fn expose(&self) -> &str {
        self.full.expose_secret()
    }

    /// The URL with any password masked, safe for logs.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted).finish()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// `DATABASE_URL`: SQLite (`sqlite://path?mode=rwc`, `sqlite::memory:`) or PostgreSQL
/// (`postgres://` / `postgresql://`).
#[derive(Debug, Clone)]
pub struct DatabaseUrl {
    url: SecretUrl,
    kind: DatabaseKind,
}

impl DatabaseUrl {
    /// Parses and classifies a database URL. The error never contains the URL itself, since it
    /// may carry a password.
    pub fn parse(value: &str) -> Result<Self, String> {
        let (url, parsed) = SecretUrl::parse(value)
            .map_err(|err| format!("is not a valid URL ({err}); value not shown"))?;
        let kind = match parsed.scheme() {
            "sqlite" => DatabaseKind::Sqlite,
            "postgres" | "postgresql" => DatabaseKind::Postgres,
            other => {
                return Err(format!(
                    "unsupported scheme {other:?} (expected sqlite://... or postgres://...)"
                ));
            }
        };
        Ok(Self { url, kind })
    }

    /// The database engine.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The URL including credentials, for the driver only.
    pub fn expose(&self) -> &str {
        self.url.expose()
    }

    /// The URL with its password masked.
    pub fn redacted(&self) -> &str {
        self.url.redacted()
    }

    /// The database file of a file-backed SQLite URL, as the driver resolves it (relative to
    /// the working directory); `None` for PostgreSQL and in-memory SQLite.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        if self.kind != DatabaseKind::Sqlite {
            return None;
        }
        // Same split as the SQLite driver: strip the scheme, the path ends at the first `?`.
        let rest = self.expose();
        let rest = rest
            .strip_prefix("sqlite://")
            .or_else(|| rest.strip_prefix("sqlite:"))
            .unwrap_or(rest);
        let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
        let in_memory = url::form_urlencoded::parse(params.as_bytes())
            .any(|(key, value)| key == "mode" && value == "memory");
        if path.is_empty() || path == ":memory:" || in_memory {
            return None;
        }
        // The driver percent-decodes the file name (to allow `?` and `#` in it); do the same so
        // the directory created is the one it opens.
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .ok()?;
        Some(PathBuf::from(decoded.as_ref()))
    }
}

/// `DATABASE_URL` (default: SQLite under `data/`).
pub(super) fn read_database_url(env: &mut Reader<'_>) -> DatabaseUrl {
    match env.value("DATABASE_URL") {
        None => DatabaseUrl::parse("sqlite://data/lms.db?mode=rwc")
            .expect("the default database URL is valid"),
        Some(value) => DatabaseUrl::parse(&value).unwrap_or_else(|message| {
            env.problem("DATABASE_URL", message);
            DatabaseUrl::parse("sqlite::memory:").expect("placeholder URL is valid")
        }),
    }
}

/// `REDIS_URL` (optional).
pub(super) fn read_redis_url(env: &mut Reader<'_>) -> Option<SecretUrl> {
    env.value("REDIS_URL")
        .and_then(|value| match SecretUrl::parse(&value) {
            Ok((url, parsed)) if matches!(parsed.scheme(), "redis" | "rediss") => Some(url),
            Ok((_, parsed)) => {
                let scheme = parsed.scheme().to_owned();
                env.problem(
                    "REDIS_URL",
                    format!("unsupported scheme {scheme:?} (expected redis:// or rediss://)"),
                );
                None
            }
            Err(err) => {
                env.problem(
                    "REDIS_URL",
                    format!("is not a valid URL ({err}); value not shown"),
                );
                None
            }
        })
}
