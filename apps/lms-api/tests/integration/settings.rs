//! Settings: defaults, overrides, malformed values, production refusals, redaction.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lms_api::settings::{
    AssetDelivery, ClamdAddr, DCS_DEFAULT_EMAIL, DCS_DEFAULT_PASSWORD, DEV_JWT_SECRET,
    DEV_WEBHOOK_SECRET, DatabaseKind, DatabaseUrl, EnvSource, Environment, SettingsError,
    StorageBackend,
};
use secrecy::ExposeSecret;

use crate::support::settings_from;

const PROD_JWT: &str = "prod-jwt-secret-0123456789abcdef0123456789";
const PROD_DCS_PASSWORD: &str = "prod-dcs-password-xyz";
const PROD_WEBHOOK: &str = "prod-webhook-secret-abcdef";
const PROD_EMAIL: &str = "lms-service@example.org";

fn problems(error: SettingsError) -> Vec<(String, String)> {
    error
        .problems()
        .iter()
        .map(|p| (p.variable.to_owned(), p.message.clone()))
        .collect()
}

fn production_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LMS_ENV", "production"),
        ("LMS_JWT_SECRET", PROD_JWT),
        ("DREAM_CENTRAL_STORAGE_EMAIL", PROD_EMAIL),
        ("DREAM_CENTRAL_STORAGE_PASSWORD", PROD_DCS_PASSWORD),
        ("DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET", PROD_WEBHOOK),
    ]
}

#[test]
fn defaults_match_the_interface_table() {
    let settings = settings_from(&[]).expect("defaults are valid");

    assert_eq!(
        settings.bind,
        "127.0.0.1:8000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(settings.environment, Environment::Local);
    assert_eq!(settings.jwt_secret.expose_secret(), DEV_JWT_SECRET);
    assert_eq!(
        settings.database_url.expose(),
        "sqlite://data/lms.db?mode=rwc"
    );
    assert_eq!(settings.database_url.kind(), DatabaseKind::Sqlite);
    assert_eq!(
        settings.database_url.sqlite_file(),
        Some(PathBuf::from("data/lms.db"))
    );
    assert!(settings.redis_url.is_none());
    assert_eq!(settings.dcs.url.as_str(), "http://127.0.0.1:8081/");
    assert_eq!(settings.dcs.email, DCS_DEFAULT_EMAIL);
    assert_eq!(settings.dcs.password.expose_secret(), DCS_DEFAULT_PASSWORD);
    assert!(settings.dcs.api_key.is_none());
    assert_eq!(
        settings.dcs.webhook_secret.expose_secret(),
        DEV_WEBHOOK_SECRET
    );
    assert_eq!(settings.public_url.as_str(), "http://127.0.0.1:8000/");
    assert_eq!(
        settings.webhook_callback_url(),
        "http://127.0.0.1:8000/api/v1/webhooks/dream-storage"
    );
    assert_eq!(settings.cache.default_ttl, Duration::from_secs(300));
    assert_eq!(settings.cache.publisher_ttl, Duration::from_secs(600));
    assert_eq!(settings.cache.book_ttl, Duration::from_secs(600));
    assert_eq!(settings.cache.config_ttl, Duration::from_secs(1800));
    assert_eq!(settings.cache.logo_ttl, Duration::from_secs(3600));
    assert!(!settings.cache.warmup_enabled);
    assert_eq!(settings.cache.max_bytes, 64 * 1024 * 1024);
    assert_eq!(settings.cache.max_staleness, Duration::from_secs(3600));
    let cache = lms_api::services::cache_config(&settings);
    assert_eq!(cache.capacity_bytes, 64 * 1024 * 1024);
    assert_eq!(cache.max_staleness, Duration::from_secs(3600));
    assert_eq!(cache.default_ttl, Duration::from_secs(300));
    // The catalog's defaults are the interface's: publishers 600, books 600, config 1800,
    // logos 3600 seconds.
    let ttls = lms_api::services::catalog_ttls(&settings);
    assert_eq!(ttls, domain::catalog::CatalogTtls::default());
    assert_eq!(
        (ttls.publishers, ttls.books, ttls.config, ttls.logos),
        (
            Duration::from_secs(600),
            Duration::from_secs(600),
            Duration::from_secs(1800),
            Duration::from_secs(3600)
        )
    );
    assert_eq!(settings.storage.backend, StorageBackend::Fs);
    assert!(settings.storage.endpoint.is_none());
    assert!(settings.storage.external_url.is_none());
    assert_eq!(settings.storage.region, "us-east-1");
    assert_eq!(settings.storage.bucket, "publishers");
    assert_eq!(settings.storage.teachers_bucket, "teachers");
    assert_eq!(settings.asset_delivery, AssetDelivery::Proxy);
    assert_eq!(settings.presign_ttl, Duration::from_secs(3600));
    assert_eq!(settings.presign_min_remaining, Duration::from_secs(2700));
    assert!(settings.clamd_addr.is_none());
    assert_eq!(settings.material_max_bytes, 104_857_600);
    assert_eq!(settings.teacher_quota_bytes, 524_288_000);
}

#[test]
fn every_variable_can_be_overridden() {
    let settings = settings_from(&[
        ("LMS_BIND", "0.0.0.0:9000"),
        ("LMS_ENV", "LOCAL"),
        ("LMS_JWT_SECRET", "custom-jwt"),
        ("DATABASE_URL", "postgres://lms:pw@db.internal:5432/lms"),
        ("REDIS_URL", "redis://:redispw@cache:6379/0"),
        ("DREAM_CENTRAL_STORAGE_URL", "https://dcs.example.org"),
        ("DREAM_CENTRAL_STORAGE_EMAIL", "svc@example.org"),
        ("DREAM_CENTRAL_STORAGE_PASSWORD", "dcs-pw"),
        (
            "DREAM_CENTRAL_STORAGE_API_KEY",
            "dcs_prod_lms_0123456789abcdefghijklmn",
        ),
        ("DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET", "0123456789abcdef"),
        ("LMS_PUBLIC_URL", "https://lms.example.org/"),
        ("DCS_CACHE_DEFAULT_TTL", "1"),
        ("DCS_CACHE_PUBLISHER_TTL", "2"),
        ("DCS_CACHE_BOOK_TTL", "3"),
        ("DCS_CACHE_CONFIG_TTL", "4"),
        ("DCS_CACHE_LOGO_TTL", "5"),
        ("DCS_CACHE_WARMUP_ENABLED", "true"),
        ("DCS_CACHE_MAX_BYTES", "1048576"),
        ("DCS_CACHE_MAX_STALENESS", "120"),
        ("STORAGE_BACKEND", "s3"),
        ("MINIO_ENDPOINT", "http://minio:9000"),
        ("MINIO_ACCESS_KEY", "access"),
        ("MINIO_SECRET_KEY", "minio-secret"),
        ("MINIO_REGION", "eu-central-1"),
        ("MINIO_BUCKET_NAME", "books-bucket"),
        ("MINIO_TEACHERS_BUCKET", "teacher-files"),
        ("PRESIGN_TTL", "600"),
        ("PRESIGN_MIN_REMAINING", "60"),
        ("CLAMD_ADDR", "clamav:3310"),
        ("MATERIAL_MAX_BYTES", "1000"),
        ("TEACHER_QUOTA_BYTES", "5000"),
    ])
    .expect("valid overrides");

    assert_eq!(settings.bind, "0.0.0.0:9000".parse::<SocketAddr>().unwrap());
    assert_eq!(settings.environment, Environment::Local);
    assert_eq!(settings.jwt_secret.expose_secret(), "custom-jwt");
    assert_eq!(settings.database_url.kind(), DatabaseKind::Postgres);
    assert_eq!(
        settings.database_url.expose(),
        "postgres://lms:pw@db.internal:5432/lms"
    );
    assert_eq!(settings.database_url.sqlite_file(), None);
    assert_eq!(
        settings.redis_url.as_ref().unwrap().expose(),
        "redis://:redispw@cache:6379/0"
    );
    assert_eq!(settings.dcs.url.as_str(), "https://dcs.example.org/");
    assert_eq!(settings.dcs.email, "svc@example.org");
    assert_eq!(settings.dcs.password.expose_secret(), "dcs-pw");
    assert_eq!(
        settings.dcs.api_key.as_ref().unwrap().expose_secret(),
        "dcs_prod_lms_0123456789abcdefghijklmn"
    );
    assert_eq!(
        settings.dcs.webhook_secret.expose_secret(),
        "0123456789abcdef"
    );
    assert_eq!(
        settings.webhook_callback_url(),
        "https://lms.example.org/api/v1/webhooks/dream-storage"
    );
    assert_eq!(settings.cache.default_ttl, Duration::from_secs(1));
    assert_eq!(settings.cache.publisher_ttl, Duration::from_secs(2));
    assert_eq!(settings.cache.book_ttl, Duration::from_secs(3));
    assert_eq!(settings.cache.config_ttl, Duration::from_secs(4));
    assert_eq!(settings.cache.logo_ttl, Duration::from_secs(5));
    assert!(settings.cache.warmup_enabled);
    assert_eq!(settings.cache.max_bytes, 1_048_576);
    assert_eq!(settings.cache.max_staleness, Duration::from_secs(120));
    let cache = lms_api::services::cache_config(&settings);
    assert_eq!(cache.capacity_bytes, 1_048_576);
    assert_eq!(cache.max_staleness, Duration::from_secs(120));
    assert_eq!(cache.default_ttl, Duration::from_secs(1));
    let ttls = lms_api::services::catalog_ttls(&settings);
    assert_eq!(
        (ttls.publishers, ttls.books, ttls.config, ttls.logos),
        (
            Duration::from_secs(2),
            Duration::from_secs(3),
            Duration::from_secs(4),
            Duration::from_secs(5)
        )
    );
    assert_eq!(settings.storage.backend, StorageBackend::S3);
    assert_eq!(
        settings.storage.endpoint.as_ref().unwrap().as_str(),
        "http://minio:9000/"
    );
    // MINIO_EXTERNAL_URL defaults to the endpoint.
    assert_eq!(settings.storage.external_url, settings.storage.endpoint);
    assert_eq!(settings.storage.access_key.as_deref(), Some("access"));
    assert_eq!(
        settings
            .storage
            .secret_key
            .as_ref()
            .unwrap()
            .expose_secret(),
        "minio-secret"
    );
    assert_eq!(settings.storage.region, "eu-central-1");
    assert_eq!(settings.storage.bucket, "books-bucket");
    assert_eq!(settings.storage.teachers_bucket, "teacher-files");
    // With s3 the asset delivery defaults to presigned URLs.
    assert_eq!(settings.asset_delivery, AssetDelivery::Presigned);
    assert_eq!(settings.presign_ttl, Duration::from_secs(600));
    assert_eq!(settings.presign_min_remaining, Duration::from_secs(60));
    assert_eq!(
        settings.clamd_addr,
        Some(ClamdAddr::Tcp {
            host: "clamav".to_owned(),
            port: 3310
        })
    );
    assert_eq!(settings.material_max_bytes, 1000);
    assert_eq!(settings.teacher_quota_bytes, 5000);
}

#[test]
fn explicit_choices_win_over_derived_defaults() {
    let settings = settings_from(&[
        ("MINIO_ENDPOINT", "http://minio:9000"),
        ("MINIO_EXTERNAL_URL", "https://files.example.org"),
        ("ASSET_DELIVERY", "presigned"),
        ("CLAMD_ADDR", "/run/clamav/clamd.ctl"),
        ("DATABASE_URL", "sqlite::memory:"),
    ])
    .expect("valid");
    assert_eq!(
        settings.storage.external_url.as_ref().unwrap().as_str(),
        "https://files.example.org/"
    );
    assert_eq!(settings.asset_delivery, AssetDelivery::Presigned);
    assert_eq!(
        settings.clamd_addr,
        Some(ClamdAddr::Unix(PathBuf::from("/run/clamav/clamd.ctl")))
    );
    assert_eq!(settings.database_url.sqlite_file(), None);
}

#[test]
fn blank_values_count_as_unset() {
    let settings = settings_from(&[("LMS_BIND", "  "), ("REDIS_URL", ""), ("CLAMD_ADDR", "")])
        .expect("blank values fall back to defaults");
    assert_eq!(
        settings.bind,
        "127.0.0.1:8000".parse::<SocketAddr>().unwrap()
    );
    assert!(settings.redis_url.is_none());
    assert!(settings.clamd_addr.is_none());
}

#[test]
fn malformed_values_are_reported_together_by_variable() {
    let error = settings_from(&[
        ("LMS_BIND", "nonsense"),
        ("LMS_ENV", "staging"),
        ("DATABASE_URL", "mysql://user:dbpass@host/db"),
        ("REDIS_URL", "not a url"),
        ("DREAM_CENTRAL_STORAGE_URL", "ftp://dcs"),
        ("LMS_PUBLIC_URL", "https://lms.example.org/?x=1"),
        ("DCS_CACHE_BOOK_TTL", "ten"),
        ("DCS_CACHE_LOGO_TTL", "0"),
        ("DCS_CACHE_WARMUP_ENABLED", "maybe"),
        ("DCS_CACHE_MAX_BYTES", "0"),
        ("DCS_CACHE_MAX_STALENESS", "1h"),
        ("STORAGE_BACKEND", "gcs"),
        ("MINIO_BUCKET_NAME", "Bad_Bucket"),
        ("ASSET_DELIVERY", "cdn"),
        ("PRESIGN_TTL", "700000"),
        ("CLAMD_ADDR", "clamav"),
        ("MATERIAL_MAX_BYTES", "-5"),
        ("DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET", "short"),
        ("MINIO_ENDPOINT", "http://user:minio-pw@minio:9000"),
    ])
    .expect_err("all malformed");
    let found = problems(error);
    let variables: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
    for expected in [
        "LMS_BIND",
        "LMS_ENV",
        "DATABASE_URL",
        "REDIS_URL",
        "DREAM_CENTRAL_STORAGE_URL",
        "LMS_PUBLIC_URL",
        "DCS_CACHE_BOOK_TTL",
        "DCS_CACHE_LOGO_TTL",
        "DCS_CACHE_WARMUP_ENABLED",
        "DCS_CACHE_MAX_BYTES",
        "DCS_CACHE_MAX_STALENESS",
        "STORAGE_BACKEND",
        "MINIO_BUCKET_NAME",
        "ASSET_DELIVERY",
        "PRESIGN_TTL",
        "CLAMD_ADDR",
        "MATERIAL_MAX_BYTES",
        "DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET",
        "MINIO_ENDPOINT",
    ] {
        assert!(
            variables.contains(&expected),
            "no problem for {expected}: {found:?}"
        );
    }
    let bind = &found.iter().find(|(v, _)| v == "LMS_BIND").unwrap().1;
    assert!(bind.contains("\"nonsense\""), "{bind}");
    // Values that may hold credentials are not echoed.
    let rendered = found
        .iter()
        .map(|(v, m)| format!("{v}: {m}"))
        .collect::<String>();
    assert!(!rendered.contains("dbpass"), "{rendered}");
    assert!(!rendered.contains("short"), "{rendered}");
    assert!(!rendered.contains("minio-pw"), "{rendered}");
}

#[test]
fn clamd_address_forms() {
    let parse = |value: &str| settings_from(&[("CLAMD_ADDR", value)]).map(|s| s.clamd_addr);
    assert_eq!(
        parse("[::1]:3310").unwrap(),
        Some(ClamdAddr::Tcp {
            host: "::1".to_owned(),
            port: 3310
        })
    );
    assert_eq!(
        parse("unix:/tmp/clamd.sock").unwrap(),
        Some(ClamdAddr::Unix(PathBuf::from("/tmp/clamd.sock")))
    );
    for invalid in ["clamav", "clamav:0", "clamav:http", ":3310"] {
        let error = parse(invalid).expect_err(invalid);
        assert_eq!(error.problems()[0].variable, "CLAMD_ADDR", "{invalid}");
    }
}

#[test]
fn the_error_message_names_the_variable() {
    let error = settings_from(&[("LMS_BIND", "nonsense")]).expect_err("malformed");
    let message = error.to_string();
    assert!(message.contains("LMS_BIND"), "{message}");
    assert!(message.contains("nonsense"), "{message}");
}

#[test]
fn s3_backend_requires_endpoint_and_credentials() {
    let found = problems(settings_from(&[("STORAGE_BACKEND", "s3")]).expect_err("incomplete"));
    let variables: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        variables,
        ["MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"]
    );
}

#[test]
fn presign_min_remaining_must_be_below_ttl() {
    let found = problems(
        settings_from(&[("PRESIGN_TTL", "600"), ("PRESIGN_MIN_REMAINING", "600")])
            .expect_err("inconsistent"),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "PRESIGN_MIN_REMAINING");
}

#[test]
fn production_accepts_real_secrets() {
    let settings = settings_from(&production_vars()).expect("complete production settings");
    assert_eq!(settings.environment, Environment::Production);
    assert_eq!(settings.jwt_secret.expose_secret(), PROD_JWT);
}

#[test]
fn production_refuses_each_missing_empty_or_default_secret() {
    let cases: [(&str, &[&str]); 4] = [
        ("LMS_JWT_SECRET", &[DEV_JWT_SECRET]),
        ("DREAM_CENTRAL_STORAGE_PASSWORD", &[DCS_DEFAULT_PASSWORD]),
        (
            "DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET",
            &[DEV_WEBHOOK_SECRET],
        ),
        (
            "DREAM_CENTRAL_STORAGE_EMAIL",
            &[DCS_DEFAULT_EMAIL, "Admin@Admin.com"],
        ),
    ];
    for (variable, defaults) in cases {
        let mut refused_values: Vec<Option<&str>> = vec![None, Some(""), Some("   ")];
        refused_values.extend(defaults.iter().map(|value| Some(*value)));
        for value in refused_values {
            let mut vars: Vec<(&str, &str)> = production_vars()
                .into_iter()
                .filter(|(name, _)| *name != variable)
                .collect();
            if let Some(value) = value {
                vars.push((variable, value));
            }
            let error = settings_from(&vars).expect_err("refused");
            let message = error.to_string();
            let found = problems(error);
            assert_eq!(found.len(), 1, "{variable}={value:?}: {found:?}");
            assert_eq!(found[0].0, variable);
            assert!(message.contains(variable), "{message}");
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                assert!(
                    !message.contains(value),
                    "{variable} value printed: {message}"
                );
            }
        }
    }
}

#[test]
fn production_refuses_a_short_jwt_secret_without_printing_it() {
    let mut vars = production_vars();
    vars.retain(|(name, _)| *name != "LMS_JWT_SECRET");
    vars.push(("LMS_JWT_SECRET", "tooshort-secret"));
    let error = settings_from(&vars).expect_err("too short");
    let message = error.to_string();
    assert!(message.contains("LMS_JWT_SECRET"), "{message}");
    assert!(!message.contains("tooshort-secret"), "{message}");
}

#[test]
fn local_environment_allows_development_defaults() {
    let settings = settings_from(&[("LMS_ENV", "local")]).expect("local defaults");
    assert_eq!(settings.dcs.email, DCS_DEFAULT_EMAIL);
}

#[test]
fn debug_output_is_redacted() {
    let settings = settings_from(&[
        ("LMS_JWT_SECRET", "jwt-SECRET-value-1"),
        (
            "DATABASE_URL",
            "postgres://lms:db-SECRET-value-2@db:5432/lms",
        ),
        ("REDIS_URL", "redis://:redis-SECRET-value-3@cache:6379"),
        ("DREAM_CENTRAL_STORAGE_PASSWORD", "dcs-SECRET-value-4"),
        ("DREAM_CENTRAL_STORAGE_API_KEY", "dcs_prod_SECRET_value_5"),
        (
            "DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET",
            "webhook-SECRET-value-6",
        ),
        ("MINIO_SECRET_KEY", "minio-SECRET-value-7"),
    ])
    .expect("valid");
    let debug = format!("{settings:?}");
    let pretty = format!("{settings:#?}");
    for shown in [&debug, &pretty] {
        assert!(!shown.contains("SECRET"), "secret in Debug output: {shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
        // Non-secret parts stay visible for diagnostics.
        assert!(shown.contains("db:5432"), "{shown}");
    }
    assert_eq!(
        settings.database_url.redacted(),
        "postgres://lms:***@db:5432/lms"
    );
    assert_eq!(
        settings.redis_url.as_ref().unwrap().to_string(),
        "redis://:***@cache:6379"
    );
}

#[test]
fn sqlite_file_path_follows_the_driver() {
    let cases = [
        ("sqlite://data/lms.db?mode=rwc", Some("data/lms.db")),
        ("sqlite:///var/lib/lms/lms.db", Some("/var/lib/lms/lms.db")),
        ("sqlite:relative.db", Some("relative.db")),
        (
            "sqlite://dir%20name/lms.db?mode=rwc",
            Some("dir name/lms.db"),
        ),
        ("sqlite::memory:", None),
        ("sqlite://shared?mode=memory", None),
        ("postgres://localhost/db", None),
    ];
    for (url, expected) in cases {
        let parsed = DatabaseUrl::parse(url).expect(url);
        assert_eq!(parsed.sqlite_file(), expected.map(PathBuf::from), "{url}");
    }
    assert_eq!(
        DatabaseUrl::parse("postgresql://h/db").unwrap().kind(),
        DatabaseKind::Postgres
    );
}

#[test]
fn dotenv_file_is_read_and_parse_errors_hide_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".env");
    std::fs::write(
        &path,
        "# comment\nLMS_TEST_ONLY_VARIABLE_A=from-file\nexport LMS_TEST_ONLY_VARIABLE_B=\"quoted value\"\n",
    )
    .unwrap();
    let source = EnvSource::load_file(&path).expect("valid file");
    assert_eq!(
        source.get("LMS_TEST_ONLY_VARIABLE_A").as_deref(),
        Some("from-file")
    );
    assert_eq!(
        source.get("LMS_TEST_ONLY_VARIABLE_B").as_deref(),
        Some("quoted value")
    );
    assert!(!format!("{source:?}").contains("from-file"));

    std::fs::write(&path, "LMS_JWT_SECRET='unterminated-hidden-value\n").unwrap();
    let error = EnvSource::load_file(&path).expect_err("invalid file");
    let message = error.to_string();
    assert!(message.contains("LMS_JWT_SECRET"), "{message}");
    assert!(!message.contains("unterminated-hidden-value"), "{message}");

    let missing = EnvSource::load_file(&dir.path().join("absent.env")).expect("missing is fine");
    assert!(missing.get("LMS_TEST_ONLY_VARIABLE_A").is_none());
}
