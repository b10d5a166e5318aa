//! Dream Central Storage: `DREAM_CENTRAL_STORAGE_*`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::reader::Reader;

/// Local-only default for `DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET`; refused in production.
pub const DEV_WEBHOOK_SECRET: &str = "local-development-webhook-secret";
/// The account DCS creates on an empty database; refused in production.
pub const DCS_DEFAULT_EMAIL: &str = "admin@admin.com";
/// The password of [`DCS_DEFAULT_EMAIL`]; refused in production.
pub const DCS_DEFAULT_PASSWORD: &str = "admin";

/// DCS rejects webhook subscriptions whose secret is outside this length range.
const WEBHOOK_SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=255;

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
    /// `DREAM_CENTRAL_STORAGE_CALL_DEADLINE_MS`: one API call, retries included (`None`:
    /// the client's default, as for the fields below).
    pub call_deadline: Option<Duration>,
    /// `DREAM_CENTRAL_STORAGE_DOWNLOAD_DEADLINE_MS`: a download up to its response head.
    pub download_deadline: Option<Duration>,
    /// `DREAM_CENTRAL_STORAGE_MAX_CONNECTIONS`: API calls in flight.
    pub max_connections: Option<usize>,
    /// `DREAM_CENTRAL_STORAGE_MAX_STREAMS`: streamed downloads in flight.
    pub max_streams: Option<usize>,
    /// `DREAM_CENTRAL_STORAGE_POOL_WAIT_MS`: longest wait for a free slot.
    pub pool_wait: Option<Duration>,
    /// `DREAM_CENTRAL_STORAGE_BREAKER_COOL_DOWN_MS`: first open time of the breaker.
    pub breaker_cool_down: Option<Duration>,
    /// `DREAM_CENTRAL_STORAGE_BREAKER_MAX_COOL_DOWN_MS`: longest open time of the breaker.
    pub breaker_max_cool_down: Option<Duration>,
}

/// A positive whole number when the variable is set.
fn optional_positive(env: &mut Reader<'_>, name: &'static str) -> Option<u64> {
    env.value(name).is_some().then(|| env.positive(name, 1))
}

fn optional_millis(env: &mut Reader<'_>, name: &'static str) -> Option<Duration> {
    optional_positive(env, name).map(Duration::from_millis)
}

fn optional_count(env: &mut Reader<'_>, name: &'static str) -> Option<usize> {
    optional_positive(env, name).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

pub(super) fn read_dcs(env: &mut Reader<'_>, production: bool) -> DcsSettings {
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
        call_deadline: optional_millis(env, "DREAM_CENTRAL_STORAGE_CALL_DEADLINE_MS"),
        download_deadline: optional_millis(env, "DREAM_CENTRAL_STORAGE_DOWNLOAD_DEADLINE_MS"),
        max_connections: optional_count(env, "DREAM_CENTRAL_STORAGE_MAX_CONNECTIONS"),
        max_streams: optional_count(env, "DREAM_CENTRAL_STORAGE_MAX_STREAMS"),
        pool_wait: optional_millis(env, "DREAM_CENTRAL_STORAGE_POOL_WAIT_MS"),
        breaker_cool_down: optional_millis(env, "DREAM_CENTRAL_STORAGE_BREAKER_COOL_DOWN_MS"),
        breaker_max_cool_down: optional_millis(
            env,
            "DREAM_CENTRAL_STORAGE_BREAKER_MAX_COOL_DOWN_MS",
        ),
    }
}
