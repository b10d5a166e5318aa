//! Dream Central Storage: `DREAM_CENTRAL_STORAGE_*`.

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
    }
}
