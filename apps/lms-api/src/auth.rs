//! LMS user authentication: HS256 bearer JWTs with `sub` (user UUID), `role` and `exp`.
//!
//! Handlers take [`AuthUser`] to require any authenticated user, and either
//! [`RequireRole<P>`] or [`AuthUser::require`] to restrict by role.

use std::fmt;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::ops::Deref;
use std::str::FromStr;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use domain::errors::Code;

use crate::error::ApiError;

/// Tolerated clock difference between the issuer and this server when checking `exp`.
const EXP_LEEWAY_SECS: u64 = 30;

/// What a user may do in the LMS.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Full access, including cache and webhook administration.
    Admin,
    /// Oversees teachers of a school or district.
    Supervisor,
    /// A content publisher.
    Publisher,
    /// Teaches classes; owns teacher materials.
    Teacher,
    /// Uses published content.
    Student,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Supervisor,
        Role::Publisher,
        Role::Teacher,
        Role::Student,
    ];

    /// The role as written in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Publisher => "publisher",
            Role::Teacher => "teacher",
            Role::Student => "student",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(value: &str) -> Result<Self, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or(UnknownRole)
    }
}

/// A string that names no [`Role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown role (expected admin, supervisor, publisher, teacher or student)")]
pub struct UnknownRole;

/// The claims of an LMS token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The user's role.
    pub role: Role,
    /// Issued at, seconds since the Unix epoch. Always set in tokens this server issues;
    /// optional when verifying, since the LMS contract requires only `sub`, `role` and `exp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// The DCS publisher a `publisher` account acts for; it reads only that publisher's books.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher_id: Option<i64>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or its claims do not have the expected shape.
    #[error("malformed token")]
    Malformed,
    /// Signed with another key or another algorithm.
    #[error("invalid token signature")]
    BadSignature,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// The token could not be signed (issuing only).
    #[error("token could not be signed")]
    Signing,
}

/// Verified tokens remembered per key set; a client sends its token with every request.
const VERIFIED_TOKENS_CAPACITY: usize = 4096;

/// Signs and verifies LMS tokens with the HS256 secret `LMS_JWT_SECRET`.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens that passed full verification, with their claims. A repeated token then costs a
    /// hash lookup instead of base64, two JSON parses and an HMAC (a tenth of a cached
    /// catalog request's CPU time). Keyed by the whole token, so a token differing in any byte
    /// is verified in full; only tokens that passed are kept, and `exp` is checked again on
    /// every hit, so the answer is the one full verification would give at that moment.
    verified: quick_cache::sync::Cache<Box<str>, Claims>,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKeys { algorithm: HS256, secret: [REDACTED] }")
    }
}

impl JwtKeys {
    /// Keys for the given shared secret.
    pub fn from_secret(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = EXP_LEEWAY_SECS;
        // A token whose `nbf` is still ahead (beyond the leeway) is not valid yet: 401
        // `invalid_token`. Once it passed, it stays valid until `exp`, so the verified-token
        // cache needs no `nbf` check.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS_CAPACITY),
        }
    }

    /// A token for `sub` with `role`, valid for `ttl` from now.
    pub fn issue(&self, sub: Uuid, role: Role, ttl: Duration) -> Result<String, TokenError> {
        self.issue_at(sub, role, chrono::Utc::now().timestamp(), ttl)
    }

    /// A `publisher` token acting for the DCS publisher `publisher_id`, valid for `ttl`.
    pub fn issue_for_publisher(
        &self,
        sub: Uuid,
        publisher_id: i64,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let mut claims = self.claims(sub, Role::Publisher, now, ttl)?;
        claims.publisher_id = Some(publisher_id);
        self.sign(&claims)
    }

    /// A token issued at `issued_at` (Unix seconds), valid for `ttl` from then.
    pub fn issue_at(
        &self,
        sub: Uuid,
        role: Role,
        issued_at: i64,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        let claims = self.claims(sub, role, issued_at, ttl)?;
        self.sign(&claims)
    }

    fn claims(
        &self,
        sub: Uuid,
        role: Role,
        issued_at: i64,
        ttl: Duration,
    ) -> Result<Claims, TokenError> {
        let ttl = i64::try_from(ttl.as_secs()).map_err(|_| TokenError::Signing)?;
        Ok(Claims {
            sub,
            role,
            iat: Some(issued_at),
            exp: issued_at.checked_add(ttl).ok_or(TokenError::Signing)?,
            publisher_id: None,
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|_| TokenError::Signing)
    }

    /// Checks signature, algorithm and expiry, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            return if is_expired(claims.exp, unix_now()) {
                Err(TokenError::Expired)
            } else {
                Ok(claims)
            };
        }
        let claims = self.verify_in_full(token)?;
        self.verified.insert(token.into(), claims.clone());
        Ok(claims)
    }

    fn verify_in_full(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    TokenError::BadSignature
                }
                _ => TokenError::Malformed,
            })
    }
}

/// Seconds since the Unix epoch, as `jsonwebtoken` reads the clock.
fn unix_now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}

/// `jsonwebtoken`'s expiry rule with our leeway: expired once `exp < now - leeway`.
fn is_expired(exp: i64, now: i64) -> bool {
    exp < now.saturating_sub(EXP_LEEWAY_SECS as i64)
}

/// The authenticated caller, extracted from `Authorization: Bearer <token>`.
///
/// Extraction fails with 401 (and `WWW-Authenticate: Bearer`) when the header is missing or the
/// token is malformed, wrongly signed or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuthUser {
    /// The user id (`sub`).
    pub sub: Uuid,
    /// The user's role.
    pub role: Role,
    /// For a `publisher` account: the DCS publisher it acts for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publisher_id: Option<i64>,
}

impl AuthUser {
    /// `Ok` when the user has one of `allowed`, else 403.
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            return Ok(());
        }
        let names = allowed
            .iter()
            .map(|role| role.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(ApiError::forbidden(format!(
            "This action requires one of these roles: {names}"
        )))
    }

    /// The caller of `req` (what the extractor does), for handlers that accept either a bearer
    /// token or another credential.
    pub fn from_http_request(req: &HttpRequest) -> Result<Self, ApiError> {
        let keys = req.app_data::<web::Data<JwtKeys>>().ok_or_else(|| {
            ApiError::internal("JwtKeys is not registered as app data; use create_app")
        })?;
        let token = bearer_token(req)?;
        let claims = keys.verify(token).map_err(|err| match err {
            TokenError::Expired => {
                ApiError::unauthorized(Code::TokenExpired, Some("invalid_token"))
            }
            _ => ApiError::unauthorized(Code::InvalidToken, Some("invalid_token")),
        })?;
        Ok(Self {
            sub: claims.sub,
            role: claims.role,
            publisher_id: claims.publisher_id,
        })
    }
}

/// The header's text when it is visible ASCII (or tabs), the rule of `HeaderValue::to_str`,
/// which checks one byte at a time; this one pass vectorises, and it runs on every
/// authenticated request over a token of a few hundred bytes.
fn visible_ascii(value: &header::HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    let visible = bytes.iter().fold(true, |all, &b| {
        all & ((b' '..=b'~').contains(&b) | (b == b'\t'))
    });
    if visible {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

fn bearer_token(req: &HttpRequest) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized(Code::NotAuthenticated, None))?;
    let invalid_header = || {
        ApiError::unauthorized(Code::InvalidToken, Some("invalid_request"))
            .with_detail("Authorization header must be 'Bearer <token>'")
    };
    let value = visible_ascii(value).ok_or_else(invalid_header)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(invalid_header)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(invalid_header());
    }
    Ok(token)
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Self::from_http_request(req))
    }
}

/// A set of roles allowed to use a route, for [`RequireRole`].
pub trait RolePolicy {
    /// The roles that pass.
    const ALLOWED: &'static [Role];
}

/// Only [`Role::Admin`].
#[derive(Debug, Clone, Copy)]
pub struct AdminOnly;

impl RolePolicy for AdminOnly {
    const ALLOWED: &'static [Role] = &[Role::Admin];
}

/// Only [`Role::Teacher`] (teacher materials belong to one teacher each).
#[derive(Debug, Clone, Copy)]
pub struct TeacherOnly;

impl RolePolicy for TeacherOnly {
    const ALLOWED: &'static [Role] = &[Role::Teacher];
}

/// An [`AuthUser`] whose role is in `P::ALLOWED`: 401 when unauthenticated, 403 otherwise.
///
/// ```
/// use actix_web::HttpResponse;
/// use lms_api::auth::{AdminOnly, RequireRole};
///
/// async fn clear_cache(admin: RequireRole<AdminOnly>) -> HttpResponse {
///     HttpResponse::Ok().body(format!("cleared by {}", admin.sub))
/// }
/// ```
pub struct RequireRole<P: RolePolicy> {
    user: AuthUser,
    policy: PhantomData<fn() -> P>,
}

impl<P: RolePolicy> RequireRole<P> {
    /// The authenticated user.
    pub fn user(&self) -> AuthUser {
        self.user
    }
}

impl<P: RolePolicy> fmt::Debug for RequireRole<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireRole")
            .field("user", &self.user)
            .field("allowed", &P::ALLOWED)
            .finish()
    }
}

impl<P: RolePolicy> Deref for RequireRole<P> {
    type Target = AuthUser;

    fn deref(&self) -> &AuthUser {
        &self.user
    }
}

impl<P: RolePolicy> FromRequest for RequireRole<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(AuthUser::from_http_request(req).and_then(|user| {
            user.require(P::ALLOWED)?;
            Ok(Self {
                user,
                policy: PhantomData,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_ascii_accepts_what_to_str_accepts_and_nothing_else() {
        let mut samples: Vec<Vec<u8>> = (0u8..=255)
            .filter(|&b| b != b'\r' && b != b'\n' && b != 0)
            .map(|b| vec![b'a', b, b'z'])
            .collect();
        samples.push(b"Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig".to_vec());
        samples.push(b"Bearer\ttab".to_vec());
        samples.push("Bearer caf\u{e9}".as_bytes().to_vec());
        let mut checked = 0;
        for bytes in samples {
            // Bytes a header value cannot hold at all (other controls) are refused earlier.
            let Ok(value) = header::HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            assert_eq!(visible_ascii(&value), value.to_str().ok(), "{bytes:?}");
            checked += 1;
        }
        assert!(checked > 200, "{checked}");
    }

    fn keys() -> JwtKeys {
        JwtKeys::from_secret(&"unit-test-secret-unit-test-secret-0123".to_owned().into())
    }

    #[test]
    fn expiry_rule_matches_full_verification_either_side_of_the_leeway() {
        let keys = keys();
        let leeway = EXP_LEEWAY_SECS as i64;
        // Five seconds clear of the boundary, so a clock tick during the test changes nothing.
        for (offset, expired) in [(-leeway - 5, true), (-leeway + 5, false), (600, false)] {
            let now = unix_now();
            let token = keys
                .issue_at(
                    Uuid::new_v4(),
                    Role::Teacher,
                    now + offset - 60,
                    Duration::from_secs(60),
                )
                .expect("token");
            assert_eq!(
                keys.verify_in_full(&token) == Err(TokenError::Expired),
                expired,
                "offset {offset}"
            );
            assert_eq!(is_expired(now + offset, now), expired, "offset {offset}");
        }
        assert!(!is_expired(100 - leeway, 100));
        assert!(is_expired(100 - leeway - 1, 100));
    }

    #[test]
    fn a_repeated_token_is_answered_from_memory_and_its_expiry_is_checked_again() {
        let keys = keys();
        let sub = Uuid::new_v4();
        let token = keys
            .issue(sub, Role::Student, Duration::from_secs(600))
            .expect("token");
        let first = keys.verify(&token).expect("valid token");
        assert_eq!(keys.verified.get(token.as_str()), Some(first.clone()));
        assert_eq!(keys.verify(&token), Ok(first));

        // A remembered token whose `exp` has passed is refused without a new verification.
        let mut lapsed = keys.verified.get(token.as_str()).expect("remembered");
        lapsed.exp = unix_now() - EXP_LEEWAY_SECS as i64 - 1;
        keys.verified.insert(token.as_str().into(), lapsed);
        assert_eq!(keys.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn only_tokens_that_pass_are_remembered_and_a_changed_byte_is_verified_in_full() {
        let keys = keys();
        let token = keys
            .issue(Uuid::new_v4(), Role::Admin, Duration::from_secs(600))
            .expect("token");
        keys.verify(&token).expect("valid token");

        // The first signature character carries six real bits (the last one has padding bits).
        let (body, signature) = token.rsplit_once('.').expect("three parts");
        let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{body}.{flipped}{}", &signature[1..]);
        assert_eq!(keys.verify(&tampered), Err(TokenError::BadSignature));
        assert_eq!(keys.verify("not.a.token"), Err(TokenError::Malformed));
        assert_eq!(keys.verified.len(), 1);

        let other_keys =
            JwtKeys::from_secret(&"another-secret-another-secret-012345".to_owned().into());
        assert_eq!(other_keys.verify(&token), Err(TokenError::BadSignature));
    }
}
