//! Every error leaves the server as `{"detail", "code"}` JSON.

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use actix_web::{HttpResponse, web};
use lms_api::{ApiError, ErrorBody, create_app};
use serde::Deserialize;

use crate::support::{header, json_body, sqlite_app_state};

#[derive(Debug, Deserialize)]
struct Echo {
    name: String,
    count: u32,
}

async fn echo(body: web::Json<Echo>) -> HttpResponse {
    HttpResponse::Ok().body(format!("{} {}", body.name, body.count))
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: u32,
}

async fn page(query: web::Query<Page>) -> HttpResponse {
    HttpResponse::Ok().body(query.limit.to_string())
}

async fn item(id: web::Path<u32>) -> HttpResponse {
    HttpResponse::Ok().body(id.to_string())
}

async fn actix_plain_conflict() -> Result<HttpResponse, actix_web::Error> {
    Err(actix_web::error::ErrorConflict("plain text conflict"))
}

async fn actix_plain_internal() -> Result<HttpResponse, actix_web::Error> {
    Err(actix_web::error::ErrorInternalServerError(
        "password=hunter2 host=10.0.0.1",
    ))
}

async fn api_internal() -> Result<HttpResponse, ApiError> {
    Err(ApiError::internal(std::io::Error::other(
        "connection to 10.0.0.5:5432 refused",
    )))
}

async fn api_conflict_with_fields() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "book_exists",
        "The book already exists",
    )
    .with_field("book_name", "FLOWDEMO")
    .with_field("detail", "fields cannot replace detail"))
}

macro_rules! test_app {
    () => {{
        let (db, state) = sqlite_app_state().await;
        let app = actix_test::init_service(
            create_app(state)
                .service(web::resource("/test/echo").route(web::post().to(echo)))
                .route("/test/page", web::get().to(page))
                .route("/test/items/{id}", web::get().to(item))
                .route("/test/actix-conflict", web::get().to(actix_plain_conflict))
                .route("/test/actix-internal", web::get().to(actix_plain_internal))
                .route("/test/api-internal", web::get().to(api_internal))
                .route(
                    "/test/api-conflict",
                    web::get().to(api_conflict_with_fields),
                ),
        )
        .await;
        (db, app)
    }};
}

/// Asserts a JSON error with this status and code; returns the body.
async fn expect_error<B: actix_web::body::MessageBody>(
    response: actix_web::dev::ServiceResponse<B>,
    status: StatusCode,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status);
    let content_type = header(&response, "content-type");
    assert_eq!(content_type, "application/json");
    let body = json_body(response).await;
    let parsed: ErrorBody = serde_json::from_value(body.clone()).expect("error shape");
    assert_eq!(parsed.code, code, "{body}");
    assert!(!parsed.detail.is_empty(), "{body}");
    body
}

#[actix_web::test]
async fn unknown_route_is_json_404() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/nope").to_request(),
    )
    .await;
    let body = expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["detail"], "Not found");

    // Unknown paths under the API prefix too.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/api/v1/nope")
            .to_request(),
    )
    .await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[actix_web::test]
async fn wrong_method_is_json_405_with_allow() {
    let (_db, app) = test_app!();

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post().uri("/health").to_request(),
    )
    .await;
    assert_eq!(header(&response, "allow"), "GET, HEAD");
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::delete()
            .uri("/api/v1/auth/me")
            .to_request(),
    )
    .await;
    assert_eq!(header(&response, "allow"), "GET, HEAD");
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;

    // A resource with method routes answers actix's own 405, normalised to JSON with Allow kept.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/test/echo")
            .to_request(),
    )
    .await;
    assert_eq!(header(&response, "allow"), "POST");
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

/// A fixed path (`/teachers/materials/quota`) under a parameter route's shape
/// (`/teachers/materials/{id}`): a wrong method is a 405 with the fixed route's `Allow`, with or
/// without a token, not a 400 for an id that does not parse.
#[actix_web::test]
async fn wrong_method_on_a_fixed_path_beside_an_id_route_is_405() {
    let (_db, app) = test_app!();
    let teacher = crate::support::token(lms_api::auth::Role::Teacher);
    let cases = [
        ("PATCH", "quota", "GET, HEAD"),
        ("DELETE", "quota", "GET, HEAD"),
        ("PATCH", "upload", "POST"),
        ("GET", "upload", "POST"),
        ("DELETE", "upload", "POST"),
        ("GET", "notes", "POST"),
        ("PATCH", "urls", "POST"),
    ];
    for (method, fixed, allow) in cases {
        for token in [Some(teacher.as_str()), None] {
            let mut request = actix_test::TestRequest::default()
                .method(method.parse().unwrap())
                .uri(&format!("/api/v1/teachers/materials/{fixed}"));
            if let Some(token) = token {
                request = request.insert_header(("Authorization", format!("Bearer {token}")));
            }
            let response = actix_test::call_service(&app, request.to_request()).await;
            assert_eq!(
                header(&response, "allow"),
                allow,
                "{method} {fixed} token: {}",
                token.is_some()
            );
            expect_error(
                response,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            )
            .await;
        }
    }

    // The id routes still take ids, and still refuse what is not one.
    let call = |method: &'static str, path: String| {
        actix_test::TestRequest::default()
            .method(method.parse().unwrap())
            .uri(&path)
            .insert_header(("Authorization", format!("Bearer {teacher}")))
            .to_request()
    };
    let id = uuid::Uuid::new_v4();
    for method in ["GET", "DELETE"] {
        let response = actix_test::call_service(
            &app,
            call(method, format!("/api/v1/teachers/materials/{id}")),
        )
        .await;
        expect_error(response, StatusCode::NOT_FOUND, "material_not_found").await;
        let response = actix_test::call_service(
            &app,
            call(method, "/api/v1/teachers/materials/not-an-id".to_owned()),
        )
        .await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
    let response =
        actix_test::call_service(&app, call("GET", "/api/v1/teachers/materials/quota".into()))
            .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[actix_web::test]
async fn malformed_json_body_is_400() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/test/echo")
            .insert_header(("content-type", "application/json"))
            .set_payload("{\"name\": \"x\", ")
            .to_request(),
    )
    .await;
    let body = expect_error(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Malformed JSON body"),
        "{body}"
    );
}

#[actix_web::test]
async fn json_of_the_wrong_shape_is_422() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/test/echo")
            .set_json(serde_json::json!({"name": "x", "count": "three"}))
            .to_request(),
    )
    .await;
    let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert!(
        body["detail"].as_str().unwrap().contains("invalid type"),
        "{body}"
    );
}

#[actix_web::test]
async fn json_with_wrong_content_type_is_415() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/test/echo")
            .insert_header(("content-type", "text/plain"))
            .set_payload("{\"name\":\"x\",\"count\":1}")
            .to_request(),
    )
    .await;
    expect_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[actix_web::test]
async fn valid_requests_reach_the_handlers() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/test/echo")
            .set_json(serde_json::json!({"name": "x", "count": 3}))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(actix_test::read_body(response).await, "x 3");

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/test/page?limit=7")
            .to_request(),
    )
    .await;
    assert_eq!(actix_test::read_body(response).await, "7");
}

#[actix_web::test]
async fn bad_query_parameter_is_400() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/test/page?limit=many")
            .to_request(),
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/test/page")
            .to_request(),
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_query").await;
}

#[actix_web::test]
async fn bad_path_parameter_is_400() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/test/items/abc")
            .to_request(),
    )
    .await;
    expect_error(response, StatusCode::BAD_REQUEST, "invalid_path").await;
}

#[actix_web::test]
async fn plain_text_errors_from_actix_are_rewritten() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/test/actix-conflict")
            .to_request(),
    )
    .await;
    let body = expect_error(response, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(body["detail"], "Conflict");
}

#[actix_web::test]
async fn server_errors_never_leak_internals() {
    let (_db, app) = test_app!();
    for uri in ["/test/actix-internal", "/test/api-internal"] {
        let response =
            actix_test::call_service(&app, actix_test::TestRequest::get().uri(uri).to_request())
                .await;
        let body = expect_error(
            response,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
        )
        .await;
        assert_eq!(body["detail"], "Internal server error");
        let text = body.to_string();
        for secret in ["hunter2", "10.0.0.1", "10.0.0.5", "refused"] {
            assert!(!text.contains(secret), "{uri} leaked {secret}: {text}");
        }
    }
}

#[actix_web::test]
async fn api_errors_carry_extra_fields_but_keep_detail_and_code() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/test/api-conflict")
            .to_request(),
    )
    .await;
    let body = expect_error(response, StatusCode::CONFLICT, "book_exists").await;
    assert_eq!(body["detail"], "The book already exists");
    assert_eq!(body["book_name"], "FLOWDEMO");
}

#[test]
fn service_unavailable_sets_retry_after() {
    use actix_web::ResponseError;
    let error = ApiError::service_unavailable(
        "Content storage temporarily unavailable. Please try again.",
        30,
    );
    let response = error.error_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers().get("retry-after").unwrap(), "30");
}
