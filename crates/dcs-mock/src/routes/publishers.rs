//! `/publishers/*`: JWT or API key, except the public asset download.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::{ok_json, with_events};
use crate::app::App;
use crate::auth::{Scope, bearer};
use crate::fastapi::{
    ApiError, ApiResult, Field, Query, Validator, bad_request, detail, json_response, not_found,
};
use crate::model::{NewPublisher, Publisher};
use crate::state::PublisherChanges;

#[derive(Serialize)]
struct PublisherList {
    items: Vec<Publisher>,
    total: usize,
}

/// List items always carry the relative logo route, logo or not.
fn list_item(publisher: &Publisher) -> Publisher {
    Publisher {
        logo_url: Some(format!("/publishers/{}/logo", publisher.id)),
        ..publisher.clone()
    }
}

fn paged_list(app: &App, headers: &HeaderMap, raw_query: Option<&str>, status: &str) -> ApiResult {
    let token = bearer(headers)?;
    let query = Query::parse(raw_query);
    let mut v = Validator::new();
    let skip = v.query_int(&query, "skip", Some(0), None).unwrap_or(0);
    let limit = v
        .query_int(&query, "limit", Some(1), Some(1000))
        .unwrap_or(100);
    v.finish()?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    let state = app.lock();
    let matching: Vec<&Publisher> = state
        .publishers
        .values()
        .filter(|p| p.status == status)
        .collect();
    let items = matching
        .iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|p| list_item(p))
        .collect();
    ok_json(&PublisherList {
        items,
        total: matching.len(),
    })
}

pub(super) async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    paged_list(&app, &headers, query.as_deref(), "active")
}

pub(super) async fn trash(
    State(app): State<App>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    paged_list(&app, &headers, query.as_deref(), "inactive")
}

/// Bearer (403), the integer id (422), then the credential check (401), in DCS's order.
fn authorized_id(app: &App, headers: &HeaderMap, raw_id: &str) -> Result<i64, ApiError> {
    let token = bearer(headers)?;
    let mut v = Validator::new();
    let id = v.path_int("publisher_id", raw_id);
    v.finish()?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    Ok(id)
}

fn find(app: &App, id: i64) -> Result<Publisher, ApiError> {
    app.lock()
        .publisher(id)
        .cloned()
        .ok_or_else(|| not_found("Publisher not found"))
}

pub(super) async fn get_one(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    ok_json(&find(&app, id)?)
}

pub(super) async fn by_name(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let token = bearer(&headers)?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    let publisher = app
        .lock()
        .publisher_by_name(&name)
        .cloned()
        .ok_or_else(|| not_found("Publisher not found"))?;
    ok_json(&publisher)
}

pub(super) async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let new = v.body_object(&body).and_then(|body| {
        let name = v.required_str(&body, "name", None, Some(255));
        let display_name = v.nullable_str(&body, "display_name", None, Some(255));
        let description = v.nullable_str(&body, "description", None, None);
        let logo_url = v.nullable_str(&body, "logo_url", None, Some(512));
        let contact_email = v.nullable_str(&body, "contact_email", None, Some(255));
        let status = v.str_field(&body, "status", None, Some(20));
        name.map(|name| NewPublisher {
            name,
            display_name: display_name.into_option().flatten(),
            description: description.into_option().flatten(),
            logo_url: logo_url.into_option().flatten(),
            contact_email: contact_email.into_option().flatten(),
            status: status.into_option().unwrap_or_else(|| "active".to_owned()),
        })
    });
    let new = v.finish_with(new)?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    let (publisher, event) = app.change(|state| state.create_publisher(new))?;
    Ok(with_events(
        json_response(StatusCode::CREATED, &publisher),
        event,
    ))
}

pub(super) async fn update(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let token = bearer(&headers)?;
    let mut v = Validator::new();
    let id = v.path_int("publisher_id", &raw_id);
    let mut fields = None;
    if let Some(body) = v.body_object(&body) {
        fields = Some((
            v.nullable_str(&body, "name", None, Some(255)),
            v.nullable_str(&body, "display_name", None, Some(255)),
            v.nullable_str(&body, "description", None, None),
            v.nullable_str(&body, "logo_url", None, Some(512)),
            v.nullable_str(&body, "contact_email", None, Some(255)),
            v.nullable_str(&body, "status", None, Some(20)),
        ));
    }
    v.finish()?;
    app.authorize(&token, Scope::JwtOrApiKey)?;
    let current = find(&app, id)?;
    let Some((name, display_name, description, logo_url, contact_email, status)) = fields else {
        return ok_json(&current);
    };
    let any_set = [name.is_set(), display_name.is_set(), description.is_set()]
        .into_iter()
        .chain([logo_url.is_set(), contact_email.is_set(), status.is_set()])
        .any(|set| set);
    if !any_set {
        return ok_json(&current);
    }
    // `name` and `status` are NOT NULL columns: DCS's IntegrityError handler then reports the
    // (missing) name as a duplicate.
    if name == Field::Set(None) || status == Field::Set(None) {
        let shown = name
            .clone()
            .into_option()
            .flatten()
            .unwrap_or_else(|| "None".to_owned());
        return Err(detail(
            StatusCode::CONFLICT,
            &format!("Publisher with name '{shown}' already exists"),
        ));
    }
    let changes = PublisherChanges {
        name: name.into_option().flatten(),
        display_name: display_name.into_option(),
        description: description.into_option(),
        logo_url: logo_url.into_option(),
        contact_email: contact_email.into_option(),
        status: status.into_option().flatten(),
    };
    let (publisher, event) = app.change(|state| state.update_publisher(id, changes))?;
    Ok(with_events(
        json_response(StatusCode::OK, &publisher),
        event,
    ))
}

pub(super) async fn remove(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let (publisher, event) = app.change(|state| state.delete_publisher(id))?;
    Ok(with_events(
        json_response(StatusCode::OK, &publisher),
        event,
    ))
}

pub(super) async fn restore(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let (publisher, event) = app.change(|state| state.restore_publisher(id))?;
    Ok(with_events(
        json_response(StatusCode::OK, &publisher),
        event,
    ))
}

pub(super) async fn books(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let state = app.lock();
    if state.publisher(id).is_none() {
        return Err(not_found("Publisher not found"));
    }
    let books: Vec<_> = state
        .all_books()
        .into_iter()
        .filter(|b| b.publisher_id == id)
        .collect();
    ok_json(&books)
}

#[derive(Serialize)]
struct AssetType {
    name: String,
    file_count: u64,
    total_size: u64,
}

#[derive(Serialize)]
struct Assets {
    publisher_id: i64,
    publisher_name: String,
    asset_types: Vec<AssetType>,
}

pub(super) async fn assets(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let state = app.lock();
    let publisher = state
        .publisher(id)
        .ok_or_else(|| not_found("Publisher not found"))?;
    let prefix = format!("{}/assets/", publisher.name);
    let mut asset_types: Vec<AssetType> = Vec::new();
    for (key, object) in state.objects.range(prefix.clone()..) {
        let Some(relative) = key.strip_prefix(&prefix) else {
            break;
        };
        let Some((kind, _)) = relative.split_once('/') else {
            continue;
        };
        match asset_types.iter_mut().find(|a| a.name == kind) {
            Some(entry) => {
                entry.file_count += 1;
                entry.total_size += object.size;
            }
            None => asset_types.push(AssetType {
                name: kind.to_owned(),
                file_count: 1,
                total_size: object.size,
            }),
        }
    }
    ok_json(&Assets {
        publisher_id: publisher.id,
        publisher_name: publisher.name.clone(),
        asset_types,
    })
}

/// Streams the first file under `{name}/assets/logos/` (no ETag, immutable caching).
pub(super) async fn logo(
    State(app): State<App>,
    headers: HeaderMap,
    Path(raw_id): Path<String>,
) -> ApiResult {
    let id = authorized_id(&app, &headers, &raw_id)?;
    let (key, object) = {
        let state = app.lock();
        let publisher = state
            .publisher(id)
            .ok_or_else(|| not_found("Publisher not found"))?;
        let key = state
            .logo_key(publisher)
            .ok_or_else(|| not_found("Logo not found"))?;
        let object = state
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found("Logo not found"))?;
        (key, object)
    };
    let file_name = key.rsplit('/').next().unwrap_or(&key).to_owned();
    let bytes = object
        .read_all()
        .await
        .map_err(|_| not_found("Logo not found"))?;
    let content_type = crate::content::media_type(&file_name).unwrap_or("image/png");
    Ok(super::storage::file_response(
        StatusCode::OK,
        bytes,
        &[
            (
                "content-disposition",
                &format!("inline; filename=\"{file_name}\""),
            ),
            ("content-length", &object.size.to_string()),
            ("cache-control", "public, max-age=86400, immutable"),
            ("content-type", content_type),
        ],
    ))
}

fn validate_asset_type(asset_type: &str) -> Result<(), ApiError> {
    let well_formed = (1..=50).contains(&asset_type.len())
        && asset_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !well_formed {
        return Err(bad_request(
            "Invalid asset type format. Must be lowercase alphanumeric, hyphens, or underscores (1-50 chars)",
        ));
    }
    if ["books", "trash", "temp"].contains(&asset_type) {
        return Err(bad_request(&format!("'{asset_type}' is a reserved name")));
    }
    Ok(())
}

/// Public (no auth) download of a publisher asset, e.g. the logo.
pub(super) async fn asset_file(
    State(app): State<App>,
    Path((raw_id, asset_type, file_name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let mut v = Validator::new();
    let id = v.path_int("publisher_id", &raw_id);
    v.finish()?;
    validate_asset_type(&asset_type)?;
    let object = {
        let state = app.lock();
        let publisher = state
            .publisher(id)
            .ok_or_else(|| not_found("Publisher not found"))?;
        let key = format!("{}/assets/{asset_type}/{file_name}", publisher.name);
        state
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found("File not found"))?
    };
    let bytes = object
        .read_all()
        .await
        .map_err(|_| not_found("File not found"))?;
    let content_type = crate::content::media_type(&file_name).unwrap_or("application/octet-stream");
    Ok(super::storage::file_response(
        StatusCode::OK,
        bytes,
        &[
            (
                "content-disposition",
                &format!("inline; filename=\"{file_name}\""),
            ),
            ("content-length", &object.size.to_string()),
            ("content-type", content_type),
        ],
    ))
}
