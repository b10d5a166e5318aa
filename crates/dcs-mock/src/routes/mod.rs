//! The HTTP routes: DCS's contract, the `/_presigned/` object server and the `/_mock/` control
//! API.

mod account;
mod books;
mod control;
mod presigned;
mod publishers;
mod storage;
mod webhooks;

pub(crate) use control::validate_fault;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;

use crate::app::App;
use crate::fastapi::{ApiResult, detail_response, json_response};
use crate::model::ContentError;
use crate::webhooks::{PendingEvent, ResponseEvents};

/// DCS's routes that the mock serves, with their methods in DCS's registration order.
/// FastAPI answers 405 with the methods of the first route whose path matches, and redirects
/// (307) a path that only matches with its trailing slash toggled.
const DCS_ROUTES: &[(&str, &[Method])] = &[
    ("/auth/login", &[Method::POST]),
    ("/auth/session", &[Method::GET]),
    ("/api-keys/", &[Method::GET, Method::POST]),
    ("/api-keys/{key_id}", &[Method::DELETE]),
    ("/books/", &[Method::POST, Method::GET]),
    ("/books/batch", &[Method::POST]),
    (
        "/books/{book_id}",
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
    ("/publishers/", &[Method::POST, Method::GET]),
    ("/publishers/trash", &[Method::GET]),
    (
        "/publishers/{publisher_id}",
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
    ("/publishers/by-name/{name}", &[Method::GET]),
    ("/publishers/{publisher_id}/restore", &[Method::POST]),
    ("/publishers/{publisher_id}/books", &[Method::GET]),
    ("/publishers/{publisher_id}/assets", &[Method::GET]),
    ("/publishers/{publisher_id}/logo", &[Method::GET]),
    (
        "/publishers/{publisher_id}/assets/{asset_type}/{filename}",
        &[Method::GET],
    ),
    ("/storage/books/{publisher}/{book_name}", &[Method::GET]),
    (
        "/storage/books/{publisher}/{book_name}/config",
        &[Method::GET],
    ),
    (
        "/storage/books/{publisher}/{book_name}/cover",
        &[Method::GET],
    ),
    (
        "/storage/books/{publisher}/{book_name}/object",
        &[Method::GET],
    ),
    (
        "/storage/books/{publisher}/{book_name}/presigned",
        &[Method::GET],
    ),
    ("/webhooks/", &[Method::GET, Method::POST]),
    (
        "/webhooks/{subscription_id}",
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
    ("/webhooks/{subscription_id}/logs", &[Method::GET]),
    ("/", &[Method::GET]),
    ("/health", &[Method::GET]),
];

pub(crate) fn router(app: App) -> Router {
    use axum::routing::{delete, put};
    Router::new()
        .route("/", get(account::health))
        .route("/health", get(account::health))
        .route("/auth/login", post(account::login))
        .route("/auth/session", get(account::session))
        .route(
            "/api-keys/",
            get(account::list_api_keys).post(account::create_api_key),
        )
        .route("/api-keys/{key_id}", delete(account::revoke_api_key))
        .route("/books/", post(books::create).get(books::list))
        .route("/books/batch", post(books::batch))
        .route(
            "/books/{book_id}",
            get(books::get_one).put(books::update).delete(books::remove),
        )
        .route(
            "/publishers/",
            post(publishers::create).get(publishers::list),
        )
        .route("/publishers/trash", get(publishers::trash))
        .route(
            "/publishers/{publisher_id}",
            get(publishers::get_one)
                .put(publishers::update)
                .delete(publishers::remove),
        )
        .route("/publishers/by-name/{name}", get(publishers::by_name))
        .route(
            "/publishers/{publisher_id}/restore",
            post(publishers::restore),
        )
        .route("/publishers/{publisher_id}/books", get(publishers::books))
        .route("/publishers/{publisher_id}/assets", get(publishers::assets))
        .route("/publishers/{publisher_id}/logo", get(publishers::logo))
        .route(
            "/publishers/{publisher_id}/assets/{asset_type}/{filename}",
            get(publishers::asset_file),
        )
        .route("/storage/books/{publisher}/{book_name}", get(storage::tree))
        .route(
            "/storage/books/{publisher}/{book_name}/config",
            get(storage::config),
        )
        .route(
            "/storage/books/{publisher}/{book_name}/cover",
            get(storage::cover),
        )
        .route(
            "/storage/books/{publisher}/{book_name}/object",
            get(storage::object),
        )
        .route(
            "/storage/books/{publisher}/{book_name}/presigned",
            get(storage::presign),
        )
        .route("/webhooks/", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{subscription_id}",
            get(webhooks::get_one)
                .put(webhooks::update)
                .delete(webhooks::remove),
        )
        .route("/webhooks/{subscription_id}/logs", get(webhooks::logs))
        .route("/_presigned/{bucket}/{*key}", get(presigned::fetch))
        .route(
            "/_mock/faults",
            post(control::add_fault).delete(control::clear_faults),
        )
        .route("/_mock/expire-tokens", post(control::expire_tokens))
        .route("/_mock/token-ttl", put(control::set_token_ttl))
        .route("/_mock/token", post(control::issue_token))
        .route("/_mock/api-keys", post(control::create_api_key))
        .route("/_mock/stats", get(control::stats))
        .route("/_mock/books", post(control::add_book))
        .route(
            "/_mock/books/{id}",
            put(control::update_book).delete(control::delete_book),
        )
        .route("/_mock/books/{id}/touch", post(control::touch_book))
        .route("/_mock/publishers", post(control::add_publisher))
        .route(
            "/_mock/publishers/{id}",
            put(control::update_publisher).delete(control::delete_publisher),
        )
        .route(
            "/_mock/publishers/{id}/touch",
            post(control::touch_publisher),
        )
        .route(
            "/_mock/publishers/{id}/restore",
            post(control::restore_publisher),
        )
        .route("/_mock/deliveries", get(control::deliveries))
        .route("/_mock/deliveries/wait", post(control::wait_for_deliveries))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

/// `{param}` matches one non-empty segment, as Starlette's default path convertor does.
fn template_matches(template: &str, path: &str) -> bool {
    let mut template_parts = template.split('/');
    let mut path_parts = path.split('/');
    loop {
        match (template_parts.next(), path_parts.next()) {
            (None, None) => return true,
            (Some(t), Some(p)) if t.starts_with('{') && t.ends_with('}') => {
                if p.is_empty() {
                    return false;
                }
            }
            (Some(t), Some(p)) if t == p => {}
            _ => return false,
        }
    }
}

fn dcs_route_for(path: &str) -> Option<&'static [Method]> {
    DCS_ROUTES
        .iter()
        .find(|(template, _)| template_matches(template, path))
        .map(|(_, methods)| *methods)
}

/// Unknown paths: Starlette's slash redirect when the toggled path exists, else 404.
async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    if path != "/" && !path.starts_with("/_mock") {
        let toggled = match path.strip_suffix('/') {
            Some(stripped) => stripped.to_owned(),
            None => format!("{path}/"),
        };
        if dcs_route_for(&toggled).is_some() {
            return redirect_307(&request, &toggled);
        }
    }
    detail_response(StatusCode::NOT_FOUND, "Not Found")
}

fn redirect_307(request: &Request, path: &str) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let location = format!("http://{host}{path}{query}");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A known path with the wrong method: 405. FastAPI registers one route per method, and
/// `Allow` names the method of the first one whose path matches.
async fn method_not_allowed(request: Request) -> Response {
    let mut response = detail_response(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    if let Some(method) = dcs_route_for(request.uri().path()).and_then(<[Method]>::first) {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(method.as_str()));
    }
    response
}

/// Attaches events to a response; they are delivered once its body has been sent.
fn with_events(mut response: Response, events: impl IntoIterator<Item = PendingEvent>) -> Response {
    let events: Vec<PendingEvent> = events.into_iter().collect();
    if !events.is_empty() {
        let carrier = ResponseEvents::default();
        carrier
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(events);
        response.extensions_mut().insert(carrier);
    }
    response
}

fn ok_json<T: Serialize + ?Sized>(value: &T) -> ApiResult {
    Ok(json_response(StatusCode::OK, value))
}

/// DCS's answers to refused content changes.
fn content_error(error: ContentError) -> crate::fastapi::ApiError {
    use crate::fastapi::{ApiError, detail};
    match &error {
        ContentError::BookNotFound | ContentError::PublisherNotFound => {
            detail(StatusCode::NOT_FOUND, &error.to_string())
        }
        ContentError::DuplicatePublisher(_) => detail(StatusCode::CONFLICT, &error.to_string()),
        ContentError::BookExists {
            publisher,
            book_name,
        } => {
            #[derive(Serialize)]
            struct Conflict<'a> {
                message: String,
                code: &'static str,
                publisher: &'a str,
                book_name: &'a str,
            }
            #[derive(Serialize)]
            struct Body<'a> {
                detail: Conflict<'a>,
            }
            ApiError::from(json_response(
                StatusCode::CONFLICT,
                &Body {
                    detail: Conflict {
                        message: error.to_string(),
                        code: "BOOK_EXISTS",
                        publisher,
                        book_name,
                    },
                },
            ))
        }
        ContentError::PublisherNotInTrash | ContentError::InvalidBook(_) => {
            detail(StatusCode::BAD_REQUEST, &error.to_string())
        }
    }
}

impl From<ContentError> for crate::fastapi::ApiError {
    fn from(error: ContentError) -> Self {
        content_error(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_single_segments() {
        assert!(template_matches("/books/{book_id}", "/books/12"));
        assert!(!template_matches("/books/{book_id}", "/books/"));
        assert!(!template_matches("/books/{book_id}", "/books/1/2"));
        assert!(template_matches("/books/", "/books/"));
        assert!(!template_matches("/books/", "/books"));
        assert!(template_matches(
            "/storage/books/{publisher}/{book_name}/object",
            "/storage/books/Dream%20Press/FLOWDEMO/object"
        ));
    }

    #[test]
    fn allow_comes_from_the_first_matching_route() {
        assert_eq!(
            dcs_route_for("/books/1"),
            Some(&[Method::GET, Method::PUT, Method::DELETE][..])
        );
        assert_eq!(dcs_route_for("/books/batch"), Some(&[Method::POST][..]));
        assert_eq!(
            dcs_route_for("/books/"),
            Some(&[Method::POST, Method::GET][..])
        );
        assert_eq!(dcs_route_for("/nope"), None);
    }
}
