//! `/webhooks/*`: subscription management and delivery logs (admin JWT only).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::ok_json;
use crate::app::App;
use crate::auth::{Scope, bearer};
use crate::fastapi::{ApiError, ApiResult, Validator, json_response, not_found};
use crate::json;
use crate::model::DeliveryLog;
use crate::state::{NewSubscription, Subscription};

pub(super) async fn list(State(app): State<App>, headers: HeaderMap) -> ApiResult {
    let token = bearer(&headers)?;
    app.authorize(&token, Scope::JwtOnly)?;
    let subscriptions: Vec<Subscription> = app.lock().subscriptions.values().cloned().collect();
    ok_json(&subscriptions)
}

pub(super) async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let new = v.body_object(&body).and_then(|body| {
        let url = v.required_str(&body, "url", None, Some(512));
        let secret = v.required_str(&body, "secret", Some(16), Some(255));
        let description = v.nullable_str(&body, "description", None, Some(512));
        let is_active = v.bool_field(&body, "is_active");
        let event_types = v.nullable_str(&body, "event_types", None, Some(255));
        url.zip(secret).map(|(url, secret)| NewSubscription {
            url,
            secret,
            description: description.into_option().flatten(),
            is_active: is_active.into_option().unwrap_or(true),
            event_types: event_types.into_option().flatten(),
        })
    });
    let new = v.finish_with(new)?;
    app.authorize(&token, Scope::JwtOnly)?;
    let subscription = app.lock().add_subscription(new);
    Ok(json_response(StatusCode::CREATED, &subscription))
}

fn authorized_id(app: &App, headers: &HeaderMap, raw_id: &str) -> Result<i64, ApiError> {
    let token = bearer(headers)?;
    let mut v = Validator::new();
    let id = v.path_int("subscription_id", raw_id);
    v.finish()?;
    app.authorize(&token, Scope::JwtOnly)?;
    Ok(id)
}

fn subscription_not_found() -> ApiError {
    not_found("Webhook subscription not found")
}

pub(super) async fn get_one(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let subscription = app
        .lock()
        .subscriptions
        .get(&id)
        .cloned()
        .ok_or_else(subscription_not_found)?;
    ok_json(&subscription)
}

pub(super) async fn update(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let id = v.path_int("subscription_id", &raw_id);
    let mut fields = None;
    if let Some(body) = v.body_object(&body) {
        fields = Some((
            v.nullable_str(&body, "url", None, Some(512)),
            v.nullable_str(&body, "secret", Some(16), Some(255)),
            v.nullable_str(&body, "description", None, Some(512)),
            v.nullable_bool(&body, "is_active"),
            v.nullable_str(&body, "event_types", None, Some(255)),
        ));
    }
    v.finish()?;
    app.authorize(&token, Scope::JwtOnly)?;
    let mut state = app.lock();
    let subscription = state
        .subscriptions
        .get_mut(&id)
        .ok_or_else(subscription_not_found)?;
    let Some((url, secret, description, is_active, event_types)) = fields else {
        return ok_json(subscription);
    };
    let any_set = url.is_set()
        || secret.is_set()
        || description.is_set()
        || is_active.is_set()
        || event_types.is_set();
    if !any_set {
        return ok_json(subscription);
    }
    // `url`, `secret` and `is_active` are NOT NULL: an explicit null leaves them as they are.
    if let Some(url) = url.into_option().flatten() {
        subscription.url = url;
    }
    if let Some(secret) = secret.into_option().flatten() {
        subscription.secret = secret;
    }
    if let Some(is_active) = is_active.into_option().flatten() {
        subscription.is_active = is_active;
    }
    if let Some(description) = description.into_option() {
        subscription.description = description;
    }
    if let Some(event_types) = event_types.into_option() {
        subscription.event_types = event_types;
    }
    subscription.updated_at = json::now();
    ok_json(subscription)
}

pub(super) async fn remove(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = authorized_id(&app, &headers, &raw_id)?;
    app.lock()
        .subscriptions
        .remove(&id)
        .ok_or_else(subscription_not_found)?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// Newest first, as DCS lists them.
pub(super) async fn logs(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let state = app.lock();
    if !state.subscriptions.contains_key(&id) {
        return Err(subscription_not_found());
    }
    let logs: Vec<&DeliveryLog> = state
        .delivery_logs
        .values()
        .rev()
        .filter(|log| log.subscription_id == id)
        .collect();
    ok_json(&logs)
}
