//! DCS's credentials: HS256 JWTs for the admin user, and `dcs_…` API keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::fastapi::{ApiError, detail};
use crate::json;
use crate::state::State;

/// The only user: DCS creates the default admin first, so it has id 1.
pub(crate) const ADMIN_USER_ID: i64 = 1;

/// Which credentials a router accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `/storage/*`, `/webhooks/*`, `/api-keys/*`, `/auth/session`.
    JwtOnly,
    /// `/books/*` and `/publishers/*`.
    JwtOrApiKey,
}

/// FastAPI's `HTTPBearer(auto_error=True)`: the credentials, or the 403 it answers.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.is_empty() || credentials.is_empty() {
        return Err(detail(StatusCode::FORBIDDEN, "Not authenticated"));
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(detail(
            StatusCode::FORBIDDEN,
            "Invalid authentication credentials",
        ));
    }
    Ok(credentials.to_owned())
}

#[derive(Serialize)]
struct ClaimsOut<'a> {
    sub: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct ClaimsIn {
    sub: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
}

/// DCS writes the header by hand with `alg` first, so the first segment is always
/// `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9`.
const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn encode_jwt(secret: &str, sub: &str, iat: i64, exp: i64) -> String {
    let header = URL_SAFE_NO_PAD.encode(JWT_HEADER);
    let claims = serde_json::to_vec(&ClaimsOut { sub, iat, exp }).unwrap_or_default();
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .expect("HS256 signing with an HMAC key cannot fail");
    format!("{signing_input}.{signature}")
}

impl App {
    /// A new admin token `{sub, iat, exp}` with the current lifetime.
    pub(crate) fn mint_token(&self, state: &mut State) -> String {
        let ttl = i64::try_from(state.token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let now = chrono::Utc::now().timestamp();
        // Expired tokens are refused anyway: no need to remember them.
        state.issued_tokens.retain(|_, exp| *exp > now);
        state.revoked_tokens.retain(|_, exp| *exp > now);
        let mut iat = now;
        loop {
            let exp = iat.saturating_add(ttl);
            let token = encode_jwt(
                &self.settings.jwt_secret,
                &ADMIN_USER_ID.to_string(),
                iat,
                exp,
            );
            // A token minted in the same second as a revoked one would be identical to it.
            if !state.revoked_tokens.contains_key(&token) {
                state.issued_tokens.insert(token.clone(), exp);
                return token;
            }
            iat += 1;
        }
    }

    /// DCS's `decode_access_token` plus the user lookup.
    fn jwt_is_valid(&self, state: &State, token: &str) -> bool {
        if state.revoked_tokens.contains_key(token) {
            return false;
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let Ok(data) = jsonwebtoken::decode::<ClaimsIn>(
            token,
            &DecodingKey::from_secret(self.settings.jwt_secret.as_bytes()),
            &validation,
        ) else {
            return false;
        };
        let exp = data.claims.exp.as_ref().and_then(json_int);
        // DCS: `if now_ts >= int(exp): raise ValueError("Token expired")`.
        let expired = exp.is_none_or(|exp| chrono::Utc::now().timestamp() >= exp);
        !expired && data.claims.sub.as_ref().and_then(json_int) == Some(ADMIN_USER_ID)
    }

    fn api_key_is_valid(&self, state: &mut State, token: &str) -> bool {
        let now = json::now();
        match state
            .api_keys
            .iter_mut()
            .find(|k| k.key == token && k.usable(now))
        {
            Some(key) => {
                key.last_used_at = Some(now);
                true
            }
            None => false,
        }
    }

    /// The 401 check DCS runs inside each handler (after validation).
    pub(crate) fn authorize(&self, token: &str, scope: Scope) -> Result<(), ApiError> {
        let mut state = self.lock();
        let valid = self.jwt_is_valid(&state, token)
            || (scope == Scope::JwtOrApiKey && self.api_key_is_valid(&mut state, token));
        if valid {
            Ok(())
        } else {
            Err(detail(StatusCode::UNAUTHORIZED, "Invalid token"))
        }
    }
}

/// `int(value)` for a JSON claim: an integer, or a string holding one.
fn json_int(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `dcs_{prod|dev|test}_{service}_{24 chars}`, with the environment and service taken from the
/// key's name as DCS does.
pub(crate) fn generate_api_key(name: &str) -> String {
    let lower = name.to_lowercase();
    let environment = if lower.contains("dev") {
        "dev"
    } else if lower.contains("test") || lower.contains("staging") {
        "test"
    } else {
        "prod"
    };
    let service: String = lower
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .take(10)
        .collect();
    let service = if service.is_empty() {
        "service".to_owned()
    } else {
        service
    };
    format!("dcs_{environment}_{service}_{}", random_token(24))
}

/// Random alphanumeric characters (test credentials, not production secrets).
pub(crate) fn random_token(length: usize) -> String {
    (0..length).map(|_| fastrand::alphanumeric()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_follows_httpbearer() {
        let mut headers = HeaderMap::new();
        let status = |headers: &HeaderMap| bearer(headers).map_err(|e| e.0.status());
        assert_eq!(status(&headers), Err(StatusCode::FORBIDDEN));
        headers.insert(header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert_eq!(status(&headers), Err(StatusCode::FORBIDDEN));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(status(&headers), Err(StatusCode::FORBIDDEN));
        headers.insert(header::AUTHORIZATION, "bearer abc.def".parse().unwrap());
        assert_eq!(bearer(&headers).unwrap(), "abc.def");
    }

    #[test]
    fn tokens_have_the_recorded_header_and_claim_order() {
        let token = encode_jwt("secret", "2", 1_795_339_972, 1_795_341_772);
        let mut parts = token.split('.');
        assert_eq!(parts.next(), Some("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"));
        assert_eq!(
            parts.next(),
            Some("eyJzdWIiOiIyIiwiaWF0IjoxNzk1MzM5OTcyLCJleHAiOjE3OTUzNDE3NzJ9")
        );
        assert_eq!(parts.next().map(str::len), Some(43));
    }

    #[test]
    fn api_keys_follow_the_naming_rules() {
        let key = generate_api_key("LMS dev integration");
        assert!(key.starts_with("dcs_dev_lms_"), "{key}");
        assert_eq!(key.len(), "dcs_dev_lms_".len() + 24);
        assert!(generate_api_key("LMS docs example key").starts_with("dcs_prod_lms_"));
        assert!(generate_api_key("Staging-Reader!").starts_with("dcs_test_stagingrea_"));
        assert!(generate_api_key("   ").starts_with("dcs_prod_service_"));
    }
}
