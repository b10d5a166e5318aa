//! Typed settings read from the environment and a `.env` file in the working directory.
//!
//! Every variable of the interface table is parsed here, with its documented default, even when
//! the feature that uses it is not wired yet, so a typo or malformed value fails at start-up with
//! a message naming the variable instead of surfacing later. Values of secrets never appear in
//! messages or in `Debug` output.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// Local-only default for `LMS_JWT_SECRET`; refused when `LMS_ENV=production`.
pub const DEV_JWT_SECRET: &str = "local-development-jwt-secret-do-not-use-in-production";
/// Local-only default for `DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET`; refused in production.
pub const DEV_WEBHOOK_SECRET: &str = "local-development-webhook-secret";
/// The account DCS creates on an empty database; refused in production.
pub const DCS_DEFAULT_EMAIL: &str = "admin@admin.com";
/// The password of [`DCS_DEFAULT_EMAIL`]; refused in production.
pub const DCS_DEFAULT_PASSWORD: &str = "admin";

/// HS256 keys shorter than the hash output weaken the MAC (RFC 7518 §3.2).
const MIN_PRODUCTION_JWT_SECRET_BYTES: usize = 32;
/// DCS rejects webhook subscriptions whose secret is outside this length range.
const WEBHOOK_SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=255;
/// SigV4 presigned URLs cannot live longer than seven days.
const MAX_PRESIGN_TTL_SECS: u64 = 7 * 24 * 3600;

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

/// Object storage backend (`STORAGE_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// Files under `data/objects` (embedded default).
    Fs,
    /// An S3-compatible server such as MinIO.
    S3,
}

/// How asset paths in book configs become URLs (`ASSET_DELIVERY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetDelivery {
    /// Presigned GET URLs straight to the object server.
    Presigned,
    /// URLs on this API, which streams the bytes.
    Proxy,
    /// URLs from DCS's own presign endpoint (for deployments without S3 credentials).
    Dcs,
}

/// Where the ClamAV daemon listens (`CLAMD_ADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    /// `host:port`.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Path of a unix domain socket.
    Unix(PathBuf),
}

impl ClamdAddr {
    fn parse(value: &str) -> Result<Self, String> {
        if value.starts_with('/') || value.starts_with("./") || value.starts_with("../") {
            return Ok(Self::Unix(PathBuf::from(value)));
        }
        if let Some(path) = value.strip_prefix("unix:") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let invalid = || {
            format!(
                "{value:?} is neither host:port nor a unix socket path (e.g. 127.0.0.1:3310 or /run/clamav/clamd.ctl)"
            )
        };
        let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| invalid())?;
        if host.is_empty() || port == 0 {
            return Err(invalid());
        }
        Ok(Self::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

/// Connection to Dream Central Storage.
#[derive(Debug, Clone)]
pub struct DcsSettings {
    /// `DREAM_CENTRAL_STORAGE_URL`.
    pub url: Url,
    /// `DREAM_CENTRAL_STORAGE_EMAIL`.
    pub email: String,
    /// `DREAM_CENTRAL_STORAGE_PASSWORD`.
    pub password: SecretString,
    /// `DREAM_CENTRAL_STORAGE_API_KEY` (DCS accepts it on books and publishers routes only).
    pub api_key: Option<SecretString>,
    /// `DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET`: HMAC key of webhook deliveries.
    pub webhook_secret: SecretString,
}

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

/// Object storage.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `STORAGE_BACKEND`.
    pub backend: StorageBackend,
    /// `MINIO_ENDPOINT`: the S3 endpoint this server talks to.
    pub endpoint: Option<Url>,
    /// `MINIO_EXTERNAL_URL` (default: the endpoint): the endpoint browsers use; presigned URLs
    /// are signed for it.
    pub external_url: Option<Url>,
    /// `MINIO_ACCESS_KEY` (not secret: it appears in every presigned URL).
    pub access_key: Option<String>,
    /// `MINIO_SECRET_KEY`.
    pub secret_key: Option<SecretString>,
    /// `MINIO_REGION`.
    pub region: String,
    /// `MINIO_BUCKET_NAME`: DCS book content (`{publisher}/books/{book}/...`).
    pub bucket: String,
    /// `MINIO_TEACHERS_BUCKET`: teacher materials.
    pub teachers_bucket: String,
    /// `STORAGE_FS_ROOT` (default `data/objects`): the filesystem backend's root, one folder
    /// per bucket.
    pub fs_root: PathBuf,
}

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
        let environment = env.parsed(
            "LMS_ENV",
            Environment::Local,
            "expected \"local\" or \"production\"",
        );
        let production = environment == Environment::Production;

        let bind = env.parsed(
            "LMS_BIND",
            SocketAddr::from(([127, 0, 0, 1], 8000)),
            "expected host:port with an IP address, e.g. 127.0.0.1:8000 or 0.0.0.0:8000",
        );

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

        let database_url = match env.value("DATABASE_URL") {
            None => DatabaseUrl::parse("sqlite://data/lms.db?mode=rwc")
                .expect("the default database URL is valid"),
            Some(value) => DatabaseUrl::parse(&value).unwrap_or_else(|message| {
                env.problem("DATABASE_URL", message);
                DatabaseUrl::parse("sqlite::memory:").expect("placeholder URL is valid")
            }),
        };

        let redis_url = env
            .value("REDIS_URL")
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
            });

        let dcs = Self::read_dcs(env, production);

        let public_url = env.http_url("LMS_PUBLIC_URL", "http://127.0.0.1:8000");
        if public_url.query().is_some() || public_url.fragment().is_some() {
            env.problem(
                "LMS_PUBLIC_URL",
                "must be a base URL without query or fragment".to_owned(),
            );
        }

        let cache = CacheSettings {
            default_ttl: env.seconds("DCS_CACHE_DEFAULT_TTL", 300),
            publisher_ttl: env.seconds("DCS_CACHE_PUBLISHER_TTL", 600),
            book_ttl: env.seconds("DCS_CACHE_BOOK_TTL", 600),
            config_ttl: env.seconds("DCS_CACHE_CONFIG_TTL", 1800),
            logo_ttl: env.seconds("DCS_CACHE_LOGO_TTL", 3600),
            warmup_enabled: env.boolean("DCS_CACHE_WARMUP_ENABLED", false),
            max_bytes: env.positive("DCS_CACHE_MAX_BYTES", 64 * 1024 * 1024),
            max_staleness: env.seconds("DCS_CACHE_MAX_STALENESS", 3600),
        };

        let storage = Self::read_storage(env);

        let asset_delivery = match env.value("ASSET_DELIVERY") {
            None if storage.backend == StorageBackend::S3 => AssetDelivery::Presigned,
            None => AssetDelivery::Proxy,
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "presigned" => AssetDelivery::Presigned,
                "proxy" => AssetDelivery::Proxy,
                "dcs" => AssetDelivery::Dcs,
                _ => {
                    env.problem(
                        "ASSET_DELIVERY",
                        format!(
                            "{value:?} is not valid (expected \"presigned\", \"proxy\" or \"dcs\")"
                        ),
                    );
                    AssetDelivery::Proxy
                }
            },
        };

        let presign_ttl = env.seconds("PRESIGN_TTL", 3600);
        let presign_min_remaining = env.seconds("PRESIGN_MIN_REMAINING", 2700);
        if presign_ttl.as_secs() > MAX_PRESIGN_TTL_SECS {
            env.problem(
                "PRESIGN_TTL",
                format!("must be at most {MAX_PRESIGN_TTL_SECS} seconds (7 days, the S3 limit)"),
            );
        }
        if presign_min_remaining >= presign_ttl {
            env.problem(
                "PRESIGN_MIN_REMAINING",
                "must be less than PRESIGN_TTL, or every presigned URL would be re-signed at once"
                    .to_owned(),
            );
        }

        let clamd_addr = env
            .value("CLAMD_ADDR")
            .and_then(|value| match ClamdAddr::parse(&value) {
                Ok(addr) => Some(addr),
                Err(message) => {
                    env.problem("CLAMD_ADDR", message);
                    None
                }
            });

        let material_max_bytes = env.positive("MATERIAL_MAX_BYTES", 104_857_600);
        let teacher_quota_bytes = env.positive("TEACHER_QUOTA_BYTES", 524_288_000);
        let frontend_origins = env.origins("LMS_FRONTEND_ORIGINS");

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
        }
    }

    fn read_dcs(env: &mut Reader<'_>, production: bool) -> DcsSettings {
        let url = env.http_url("DREAM_CENTRAL_STORAGE_URL", "http://127.0.0.1:8081");

        let email = match env.value("DREAM_CENTRAL_STORAGE_EMAIL") {
            Some(email) => email,
            None if production => {
                env.problem(
                    "DREAM_CENTRAL_STORAGE_EMAIL",
                    "must be set when LMS_ENV=production".to_owned(),
                );
                String::new()
            }
            None => DCS_DEFAULT_EMAIL.to_owned(),
        };
        if production && email.trim().eq_ignore_ascii_case(DCS_DEFAULT_EMAIL) {
            env.problem(
                "DREAM_CENTRAL_STORAGE_EMAIL",
                "must not be the DCS default admin account when LMS_ENV=production".to_owned(),
            );
        }

        let password = env.secret_with_dev_default(
            "DREAM_CENTRAL_STORAGE_PASSWORD",
            DCS_DEFAULT_PASSWORD,
            production,
        );
        let api_key = env
            .value("DREAM_CENTRAL_STORAGE_API_KEY")
            .map(SecretString::from);

        let webhook_secret = env.secret_with_dev_default(
            "DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET",
            DEV_WEBHOOK_SECRET,
            production,
        );
        let secret_chars = webhook_secret.expose_secret().chars().count();
        if secret_chars != 0 && !WEBHOOK_SECRET_CHARS.contains(&secret_chars) {
            env.problem(
                "DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET",
                format!(
                    "must be {} to {} characters long (DCS refuses other lengths)",
                    WEBHOOK_SECRET_CHARS.start(),
                    WEBHOOK_SECRET_CHARS.end()
                ),
            );
        }

        DcsSettings {
            url,
            email,
            password,
            api_key,
            webhook_secret,
        }
    }

    fn read_storage(env: &mut Reader<'_>) -> StorageSettings {
        let backend = match env.value("STORAGE_BACKEND") {
            None => StorageBackend::Fs,
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "fs" => StorageBackend::Fs,
                "s3" => StorageBackend::S3,
                _ => {
                    env.problem(
                        "STORAGE_BACKEND",
                        format!("{value:?} is not valid (expected \"fs\" or \"s3\")"),
                    );
                    StorageBackend::Fs
                }
            },
        };
        let endpoint = env.optional_http_url("MINIO_ENDPOINT");
        let external_url = env
            .optional_http_url("MINIO_EXTERNAL_URL")
            .or_else(|| endpoint.clone());
        let access_key = env.value("MINIO_ACCESS_KEY");
        let secret_key = env.value("MINIO_SECRET_KEY").map(SecretString::from);
        let region = env
            .value("MINIO_REGION")
            .unwrap_or_else(|| "us-east-1".to_owned());
        let bucket = env.bucket("MINIO_BUCKET_NAME", "publishers");
        let teachers_bucket = env.bucket("MINIO_TEACHERS_BUCKET", "teachers");

        if backend == StorageBackend::S3 {
            for (name, present) in [
                ("MINIO_ENDPOINT", endpoint.is_some()),
                ("MINIO_ACCESS_KEY", access_key.is_some()),
                ("MINIO_SECRET_KEY", secret_key.is_some()),
            ] {
                if !present {
                    env.problem(name, "must be set when STORAGE_BACKEND=s3".to_owned());
                }
            }
        }

        let fs_root = PathBuf::from(
            env.value("STORAGE_FS_ROOT")
                .unwrap_or_else(|| "data/objects".to_owned()),
        );

        StorageSettings {
            backend,
            endpoint,
            external_url,
            access_key,
            secret_key,
            region,
            bucket,
            teachers_bucket,
            fs_root,
        }
    }
}

/// One variable that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it (never contains a secret's value).
    pub message: String,
}

impl fmt::Display for SettingsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The `.env` file exists but could not be read or parsed.
    #[error(".env: {0}")]
    DotEnv(String),
    /// One or more variables are malformed or refused.
    #[error("invalid configuration:\n{}", render_problems(.0))]
    Invalid(Vec<SettingsProblem>),
}

impl SettingsError {
    /// The problems found in variables (empty for `.env` read errors).
    pub fn problems(&self) -> &[SettingsProblem] {
        match self {
            Self::Invalid(problems) => problems,
            Self::DotEnv(_) => &[],
        }
    }
}

fn render_problems(problems: &[SettingsProblem]) -> String {
    problems
        .iter()
        .map(|problem| format!("  - {problem}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The process environment layered over the variables of a `.env` file, read without modifying
/// the process environment (which is not thread-safe to change once the runtime is up).
#[derive(Default)]
pub struct EnvSource {
    dotenv: HashMap<String, String>,
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show only which names the file set.
        let mut names: Vec<&String> = self.dotenv.keys().collect();
        names.sort();
        f.debug_struct("EnvSource")
            .field("dotenv_names", &names)
            .finish()
    }
}

impl EnvSource {
    /// Reads `.env` in the working directory, if it exists.
    pub fn load() -> Result<Self, SettingsError> {
        Self::load_file(Path::new(".env"))
    }

    /// Reads the given dotenv file, if it exists.
    pub fn load_file(path: &Path) -> Result<Self, SettingsError> {
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(dotenvy::Error::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(err) => return Err(SettingsError::DotEnv(describe_dotenv_error(&err))),
        };
        let mut dotenv = HashMap::new();
        for item in iter {
            let (name, value) =
                item.map_err(|err| SettingsError::DotEnv(describe_dotenv_error(&err)))?;
            dotenv.insert(name, value);
        }
        Ok(Self { dotenv })
    }

    /// A variable from the process environment, else from the file.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.dotenv.get(name).cloned())
    }
}

fn describe_dotenv_error(err: &dotenvy::Error) -> String {
    match err {
        // The offending line may hold a secret: name the variable, never print the line.
        dotenvy::Error::LineParse(line, _) => {
            let name = line
                .split('=')
                .next()
                .map(str::trim)
                .map(|name| name.trim_start_matches("export ").trim())
                .filter(|name| {
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                });
            match name {
                Some(name) => format!("cannot parse the line setting {name} (line not shown)"),
                None => "cannot parse a line (line not shown)".to_owned(),
            }
        }
        dotenvy::Error::Io(io) => format!("cannot read the file: {io}"),
        dotenvy::Error::EnvVar(var) => format!("cannot read a variable: {var}"),
        _ => "cannot read the file".to_owned(),
    }
}

/// Collects problems while reading, so one run reports every bad variable.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<SettingsProblem>,
}

impl Reader<'_> {
    fn problem(&mut self, variable: &'static str, message: String) {
        self.problems.push(SettingsProblem { variable, message });
    }

    /// The trimmed value, `None` when unset or blank.
    fn value(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    fn parsed<T: FromStr>(&mut self, name: &'static str, default: T, expected: &str) -> T {
        match self.value(name) {
            None => default,
            Some(value) => value.parse().unwrap_or_else(|_| {
                self.problem(name, format!("{value:?} is not valid ({expected})"));
                default
            }),
        }
    }

    fn seconds(&mut self, name: &'static str, default: u64) -> Duration {
        Duration::from_secs(self.positive(name, default))
    }

    fn positive(&mut self, name: &'static str, default: u64) -> u64 {
        let value = self.parsed(name, default, "expected a whole number greater than 0");
        if value == 0 {
            self.problem(name, "must be greater than 0".to_owned());
            return default;
        }
        value
    }

    fn boolean(&mut self, name: &'static str, default: bool) -> bool {
        match self.value(name) {
            None => default,
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.problem(
                        name,
                        format!("{value:?} is not valid (expected true or false)"),
                    );
                    default
                }
            },
        }
    }

    fn http_url(&mut self, name: &'static str, default: &str) -> Url {
        self.optional_http_url(name)
            .unwrap_or_else(|| Url::parse(default).expect("default URLs are valid"))
    }

    fn optional_http_url(&mut self, name: &'static str) -> Option<Url> {
        let value = self.value(name)?;
        // A value with userinfo may carry a password: describe it without echoing it.
        let shown = if value.contains('@') {
            "the value".to_owned()
        } else {
            format!("{value:?}")
        };
        match Url::parse(&value) {
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                self.problem(
                    name,
                    "must not contain credentials (they have their own variables)".to_owned(),
                );
                None
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            Ok(_) => {
                self.problem(
                    name,
                    format!("{shown} is not an http:// or https:// URL with a host"),
                );
                None
            }
            Err(err) => {
                self.problem(name, format!("{shown} is not a valid URL ({err})"));
                None
            }
        }
    }

    /// A comma-separated list of origins (`scheme://host[:port]`, no path).
    fn origins(&mut self, name: &'static str) -> Vec<String> {
        let Some(value) = self.value(name) else {
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
                _ => self.problem(
                    name,
                    format!("{item:?} is not an origin such as https://lms.example.org"),
                ),
            }
        }
        origins
    }

    fn bucket(&mut self, name: &'static str, default: &str) -> String {
        let Some(value) = self.value(name) else {
            return default.to_owned();
        };
        let valid = (3..=63).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            self.problem(
                name,
                format!(
                    "{value:?} is not a valid bucket name (3-63 lowercase letters, digits, '-' or '.')"
                ),
            );
            return default.to_owned();
        }
        value
    }

    /// A secret that falls back to a development value locally and must be set to something
    /// else in production. Messages name the variable, never the value.
    fn secret_with_dev_default(
        &mut self,
        name: &'static str,
        dev_default: &str,
        production: bool,
    ) -> SecretString {
        match self.value(name) {
            None if production => {
                self.problem(
                    name,
                    "must be set to a non-empty secret when LMS_ENV=production".to_owned(),
                );
                SecretString::from(String::new())
            }
            None => SecretString::from(dev_default.to_owned()),
            Some(value) if production && value == dev_default => {
                self.problem(
                    name,
                    "must not use the development default when LMS_ENV=production".to_owned(),
                );
                SecretString::from(value)
            }
            Some(value) => SecretString::from(value),
        }
    }
}
