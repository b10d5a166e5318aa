//! `GET /api/v1/auth/me`.

use actix_web::{get, web};

use crate::auth::AuthUser;
use crate::error::ErrorBody;

/// The caller's identity as taken from the bearer token.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The authenticated user", body = AuthUser),
        (status = 401, description = "Missing, malformed, wrongly signed or expired token", body = ErrorBody),
    )
)]
#[get("/auth/me")]
pub async fn me(user: AuthUser) -> web::Json<AuthUser> {
    web::Json(user)
}
