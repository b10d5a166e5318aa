//! Bearer JWT authentication and role checks.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use actix_web::{HttpResponse, web};
use lms_api::auth::{AdminOnly, AuthUser, JwtKeys, RequireRole, Role, TokenError};
use lms_api::{ApiError, create_app};
use secrecy::SecretString;
use uuid::Uuid;

use crate::support::{TEST_JWT_SECRET, header, json_body, sqlite_app_state};

fn keys() -> JwtKeys {
    JwtKeys::from_secret(&SecretString::from(TEST_JWT_SECRET))
}

fn token(role: Role) -> (Uuid, String) {
    let sub = Uuid::new_v4();
    let token = keys()
        .issue(sub, role, Duration::from_secs(300))
        .expect("sign");
    (sub, token)
}

async fn admin_only(admin: RequireRole<AdminOnly>) -> HttpResponse {
    HttpResponse::Ok().body(admin.sub.to_string())
}

async fn teachers_and_admins(user: AuthUser) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Teacher, Role::Admin])?;
    Ok(HttpResponse::Ok().finish())
}

macro_rules! test_app {
    () => {{
        let (db, state) = sqlite_app_state().await;
        let app = actix_test::init_service(
            create_app(state)
                .route("/test/admin-only", web::get().to(admin_only))
                .route("/test/teaching", web::get().to(teachers_and_admins)),
        )
        .await;
        (db, app)
    }};
}

fn get(uri: &str, authorization: Option<&str>) -> actix_test::TestRequest {
    let req = actix_test::TestRequest::get().uri(uri);
    match authorization {
        Some(value) => req.insert_header(("authorization", value)),
        None => req,
    }
}

async fn expect_401<B: actix_web::body::MessageBody>(
    response: actix_web::dev::ServiceResponse<B>,
    code: &str,
) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&response, "www-authenticate");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let body = json_body(response).await;
    assert_eq!(body["code"], code, "{body}");
}

#[actix_web::test]
async fn me_returns_the_token_subject_and_role_for_every_role() {
    let (_db, app) = test_app!();
    for role in Role::ALL {
        let (sub, token) = token(role);
        let response = actix_test::call_service(
            &app,
            get("/api/v1/auth/me", Some(&format!("Bearer {token}"))).to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = json_body(response).await;
        assert_eq!(body["sub"], sub.to_string());
        assert_eq!(body["role"], role.as_str());
    }
}

#[actix_web::test]
async fn missing_authorization_is_401_with_challenge() {
    let (_db, app) = test_app!();
    let response = actix_test::call_service(&app, get("/api/v1/auth/me", None).to_request()).await;
    assert_eq!(header(&response, "www-authenticate"), "Bearer");
    expect_401(response, "not_authenticated").await;
}

#[actix_web::test]
async fn garbage_or_non_bearer_credentials_are_401() {
    let (_db, app) = test_app!();
    for header in [
        "Bearer garbage",
        "Bearer a.b.c",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "token-without-scheme",
    ] {
        let response =
            actix_test::call_service(&app, get("/api/v1/auth/me", Some(header)).to_request()).await;
        expect_401(response, "invalid_token").await;
    }
}

#[actix_web::test]
async fn expired_token_is_401() {
    let (_db, app) = test_app!();
    let issued_two_hours_ago = chrono::Utc::now().timestamp() - 7200;
    let expired = keys()
        .issue_at(
            Uuid::new_v4(),
            Role::Admin,
            issued_two_hours_ago,
            Duration::from_secs(60),
        )
        .expect("sign");
    assert_eq!(keys().verify(&expired), Err(TokenError::Expired));

    let response = actix_test::call_service(
        &app,
        get("/api/v1/auth/me", Some(&format!("Bearer {expired}"))).to_request(),
    )
    .await;
    expect_401(response, "token_expired").await;
}

#[actix_web::test]
async fn token_signed_with_another_secret_is_401() {
    let (_db, app) = test_app!();
    let forged = JwtKeys::from_secret(&SecretString::from("some-other-secret-0123456789abcdef"))
        .issue(Uuid::new_v4(), Role::Admin, Duration::from_secs(300))
        .expect("sign");
    assert_eq!(keys().verify(&forged), Err(TokenError::BadSignature));

    let response = actix_test::call_service(
        &app,
        get("/api/v1/auth/me", Some(&format!("Bearer {forged}"))).to_request(),
    )
    .await;
    expect_401(response, "invalid_token").await;
}

#[actix_web::test]
async fn token_with_only_sub_role_and_exp_is_accepted() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let (_db, app) = test_app!();
    let sub = Uuid::new_v4();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({
            "sub": sub.to_string(),
            "role": "student",
            "exp": chrono::Utc::now().timestamp() + 300,
        }),
        &EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap();

    let response = actix_test::call_service(
        &app,
        get("/api/v1/auth/me", Some(&format!("Bearer {token}"))).to_request(),
    )
    .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["sub"], sub.to_string());
    assert_eq!(body["role"], "student");
}

#[actix_web::test]
async fn token_with_another_algorithm_or_bad_claims_is_401() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let (_db, app) = test_app!();
    let key = EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes());
    let exp = chrono::Utc::now().timestamp() + 300;
    let sub = Uuid::new_v4().to_string();

    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &serde_json::json!({"sub": sub, "role": "admin", "iat": 0, "exp": exp}),
        &key,
    )
    .unwrap();
    let unknown_role = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": sub, "role": "superuser", "iat": 0, "exp": exp}),
        &key,
    )
    .unwrap();
    let sub_not_uuid = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": "42", "role": "admin", "iat": 0, "exp": exp}),
        &key,
    )
    .unwrap();
    let no_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": sub, "role": "admin", "iat": 0}),
        &key,
    )
    .unwrap();

    for token in [hs512, unknown_role, sub_not_uuid, no_exp] {
        let response = actix_test::call_service(
            &app,
            get("/api/v1/auth/me", Some(&format!("Bearer {token}"))).to_request(),
        )
        .await;
        expect_401(response, "invalid_token").await;
    }
}

#[actix_web::test]
async fn role_that_may_not_is_403() {
    let (_db, app) = test_app!();
    for role in [
        Role::Supervisor,
        Role::Publisher,
        Role::Teacher,
        Role::Student,
    ] {
        let (_, token) = token(role);
        let response = actix_test::call_service(
            &app,
            get("/test/admin-only", Some(&format!("Bearer {token}"))).to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role}");
        let body = json_body(response).await;
        assert_eq!(body["code"], "forbidden");
        assert_eq!(
            body["detail"],
            "This action requires one of these roles: admin"
        );
    }

    let (admin, token) = token(Role::Admin);
    let response = actix_test::call_service(
        &app,
        get("/test/admin-only", Some(&format!("Bearer {token}"))).to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(actix_test::read_body(response).await, admin.to_string());

    // Unauthenticated callers get 401, not 403.
    let response = actix_test::call_service(&app, get("/test/admin-only", None).to_request()).await;
    expect_401(response, "not_authenticated").await;
}

#[actix_web::test]
async fn require_accepts_any_listed_role() {
    let (_db, app) = test_app!();
    for (role, expected) in [
        (Role::Teacher, StatusCode::OK),
        (Role::Admin, StatusCode::OK),
        (Role::Student, StatusCode::FORBIDDEN),
        (Role::Publisher, StatusCode::FORBIDDEN),
    ] {
        let (_, token) = token(role);
        let response = actix_test::call_service(
            &app,
            get("/test/teaching", Some(&format!("Bearer {token}"))).to_request(),
        )
        .await;
        assert_eq!(response.status(), expected, "{role}");
    }
}

#[test]
fn role_names_round_trip() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
    }
    assert!("root".parse::<Role>().is_err());
}

#[test]
fn jwt_keys_debug_hides_the_secret() {
    let debug = format!("{:?}", keys());
    assert!(!debug.contains(TEST_JWT_SECRET), "{debug}");
}
