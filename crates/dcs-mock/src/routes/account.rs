//! `/`, `/health`, `/auth/*` and `/api-keys/*`.

use axum::extract::{Path, State};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::ok_json;
use crate::app::App;
use crate::auth::{ADMIN_USER_ID, Scope, bearer, generate_api_key};
use crate::fastapi::{ApiResult, Validator, detail, json_response, not_found};
use crate::json::timestamp;

#[derive(Serialize)]
struct Health {
    status: &'static str,
    service: &'static str,
    version: &'static str,
}

pub(super) async fn health() -> ApiResult {
    ok_json(&Health {
        status: "ok",
        service: "Dream Central Storage API",
        version: "0.1.0",
    })
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
}

pub(super) async fn login(State(app): State<App>, body: Bytes) -> ApiResult {
    let mut v = Validator::new();
    let credentials = v.body_object(&body).and_then(|body| {
        let email = v.required_str(&body, "email", None, Some(320));
        let password = v.required_str(&body, "password", None, None);
        email.zip(password)
    });
    let (email, password) = v.finish_with(credentials)?;
    let email = email.trim().to_lowercase();
    if email != app.settings.admin_email || password != app.settings.admin_password {
        return Err(detail(StatusCode::UNAUTHORIZED, "Invalid credentials"));
    }
    let access_token = {
        let mut state = app.lock();
        state.login_count += 1;
        app.mint_token(&mut state)
    };
    ok_json(&TokenResponse {
        access_token,
        token_type: "bearer",
    })
}

#[derive(Serialize)]
struct Session<'a> {
    user_id: i64,
    email: &'a str,
    token_type: &'static str,
}

pub(super) async fn session(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let token = bearer(&headers)?;
    app.authorize(&token, Scope::JwtOnly)?;
    ok_json(&Session {
        user_id: ADMIN_USER_ID,
        email: &app.settings.admin_email,
        token_type: "bearer",
    })
}

#[derive(Serialize)]
struct ApiKeyCreated {
    id: i64,
    key: String,
    name: String,
    #[serde(serialize_with = "timestamp::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::option")]
    expires_at: Option<DateTime<Utc>>,
    is_active: bool,
}

pub(super) async fn create_api_key(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let fields = v.body_object(&body).and_then(|body| {
        let name = v.required_str(&body, "name", None, Some(255));
        // Validated like DCS, but the mock keeps no use for the description.
        v.nullable_str(&body, "description", None, None);
        let expires_at = v
            .nullable_datetime(&body, "expires_at")
            .into_option()
            .flatten();
        let rate_limit = v.int_field(&body, "rate_limit").into_option();
        name.map(|name| (name, expires_at, rate_limit))
    });
    let (name, expires_at, rate_limit) = v.finish_with(fields)?;
    app.authorize(&token, Scope::JwtOnly)?;
    let key = app.lock().add_api_key(
        generate_api_key(&name),
        name,
        expires_at,
        rate_limit.unwrap_or(100),
    );
    Ok(json_response(
        StatusCode::CREATED,
        &ApiKeyCreated {
            id: key.id,
            key: key.key.clone(),
            name: key.name.clone(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            is_active: key.is_active,
        },
    ))
}

#[derive(Serialize)]
struct ApiKeyRead {
    id: i64,
    key_prefix: String,
    name: String,
    #[serde(serialize_with = "timestamp::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::option")]
    last_used_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamp::option")]
    expires_at: Option<DateTime<Utc>>,
    is_active: bool,
    rate_limit: i64,
}

#[derive(Serialize)]
struct ApiKeyList {
    api_keys: Vec<ApiKeyRead>,
}

pub(super) async fn list_api_keys(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let token = bearer(&headers)?;
    app.authorize(&token, Scope::JwtOnly)?;
    let api_keys = app
        .lock()
        .api_keys
        .iter()
        .map(|key| ApiKeyRead {
            id: key.id,
            key_prefix: format!("{}...", key.key_prefix()),
            name: key.name.clone(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            expires_at: key.expires_at,
            is_active: key.is_active,
            rate_limit: key.rate_limit,
        })
        .collect();
    ok_json(&ApiKeyList { api_keys })
}

#[derive(Serialize)]
struct Revoked {
    status: &'static str,
    id: i64,
}

pub(super) async fn revoke_api_key(
    State(app): State<App>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let key_id = v.path_int("key_id", &key_id);
    v.finish()?;
    app.authorize(&token, Scope::JwtOnly)?;
    let mut state = app.lock();
    let key = state
        .api_keys
        .iter_mut()
        .find(|k| k.id == key_id)
        .ok_or_else(|| not_found("API key not found"))?;
    key.is_active = false;
    ok_json(&Revoked {
        status: "revoked",
        id: key_id,
    })
}
