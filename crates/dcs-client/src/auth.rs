//! JWT handling: reading `exp` from the payload and a single-flight token cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use secrecy::SecretString;

use crate::clock;
use crate::error::DcsError;

/// The time claims of a JWT, read without verifying it (DCS signs with its own secret; the
/// client only needs to know when to log in again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeClaims {
    pub(crate) iat: Option<DateTime<Utc>>,
    pub(crate) exp: Option<DateTime<Utc>>,
}

pub(crate) fn jwt_time_claims(token: &str) -> TimeClaims {
    let none = TimeClaims {
        iat: None,
        exp: None,
    };
    let Some(payload) = token.split('.').nth(1) else {
        return none;
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return none;
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return none;
    };
    let time = |name: &str| {
        let value = claims.get(name)?;
        let secs = value
            .as_i64()
            .or_else(|| value.as_f64().map(|f| f as i64))?;
        Utc.timestamp_opt(secs, 0).single()
    };
    TimeClaims {
        iat: time("iat"),
        exp: time("exp"),
    }
}

/// Reads the `exp` claim of a JWT.
#[cfg(test)]
pub(crate) fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    jwt_time_claims(token).exp
}

/// A token in use.
#[derive(Debug)]
pub(crate) struct Token {
    pub(crate) value: SecretString,
    /// `exp` from the payload, if it could be read.
    pub(crate) expires_at: Option<DateTime<Utc>>,
    /// When to log in again proactively.
    pub(crate) refresh_at: Option<DateTime<Utc>>,
    /// Increases with every login; lets concurrent 401s cause a single re-login.
    pub(crate) generation: u64,
}

impl Token {
    pub(crate) fn new(
        value: SecretString,
        now: DateTime<Utc>,
        margin: Duration,
        generation: u64,
    ) -> Token {
        let claims = jwt_time_claims(secrecy::ExposeSecret::expose_secret(&value));
        let expires_at = claims.exp;
        let refresh_at = expires_at.map(|exp| {
            // The token was just issued, so `exp - iat` is its lifetime counted from `now`:
            // that keeps the refresh point right when this host's clock and DCS's disagree.
            // Without `iat`, `exp` is taken as it is.
            let (lifetime, local_expiry) = match claims.iat {
                Some(iat) if exp > iat => {
                    let lifetime = clock::since(iat, exp);
                    (lifetime, clock::add(now, lifetime))
                }
                _ => (clock::since(now, exp), exp),
            };
            // A token that lives shorter than twice the margin is refreshed halfway, so a
            // short-lived token is not replaced on every call.
            let margin = margin.min(lifetime / 2);
            local_expiry - chrono::Duration::from_std(margin).unwrap_or_default()
        });
        Token {
            value,
            expires_at,
            refresh_at,
            generation,
        }
    }

    /// Not expired at `now` (DCS still accepts it), though perhaps due for a refresh. A token
    /// whose expiry could not be read counts as valid: a 401 replaces it.
    pub(crate) fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    /// Usable without a proactive refresh at `now`.
    pub(crate) fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        match self.refresh_at {
            Some(at) => now < at,
            None => true,
        }
    }
}

/// The cached token plus the lock that makes refreshes single-flight.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    current: RwLock<Option<Arc<Token>>>,
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// Login attempts that have finished, successful or not.
    logins_finished: AtomicU64,
    /// The latest finished login, if it failed. Callers that queued behind it take its error
    /// instead of logging in again one after another, and an early refresh is not tried again
    /// for [`REFRESH_RETRY_PAUSE`] after it while the current token is still valid.
    last_failure: Mutex<Option<LoginFailure>>,
}

#[derive(Debug)]
struct LoginFailure {
    /// Its number in `logins_finished`.
    number: u64,
    error: DcsError,
    at: DateTime<Utc>,
}

/// After an early refresh failed, how long the current (still valid) token is used before the
/// next refresh is tried, so that requests do not each wait for a login that keeps failing.
pub(crate) const REFRESH_RETRY_PAUSE: Duration = Duration::from_secs(10);

impl TokenCache {
    pub(crate) fn current(&self) -> Option<Arc<Token>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn fresh(&self, now: DateTime<Utc>) -> Option<Arc<Token>> {
        self.current().filter(|t| t.is_fresh(now))
    }

    pub(crate) fn store(
        &self,
        value: SecretString,
        now: DateTime<Utc>,
        margin: Duration,
    ) -> Arc<Token> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let token = Arc::new(Token::new(value, now, margin, generation));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.logins_finished.fetch_add(1, Ordering::SeqCst);
        token
    }

    /// The current token if it is still valid at `now`: what a caller uses when an early
    /// refresh failed.
    pub(crate) fn still_valid(&self, now: DateTime<Utc>) -> Option<Arc<Token>> {
        self.current().filter(|t| t.is_valid(now))
    }

    /// The current token if it is still valid and a login failed less than
    /// [`REFRESH_RETRY_PAUSE`] ago: no refresh is tried yet.
    pub(crate) fn pausing_refresh(&self, now: DateTime<Utc>) -> Option<Arc<Token>> {
        let failed_at = self
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .at;
        if now < clock::add(failed_at, REFRESH_RETRY_PAUSE) {
            self.still_valid(now)
        } else {
            None
        }
    }

    /// How many login attempts have finished. Read it before waiting for the refresh lock,
    /// then ask [`failure_since`](Self::failure_since) once the lock is held.
    pub(crate) fn logins_finished(&self) -> u64 {
        self.logins_finished.load(Ordering::SeqCst)
    }

    /// Records a failed login at `now`.
    pub(crate) fn record_failure(&self, error: &DcsError, now: DateTime<Utc>) {
        let mut last = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        let number = self.logins_finished.fetch_add(1, Ordering::SeqCst) + 1;
        *last = Some(LoginFailure {
            number,
            error: error.clone(),
            at: now,
        });
    }

    /// The error of a login that failed after `seen` logins had finished (one this caller
    /// waited for), if the latest login failed.
    pub(crate) fn failure_since(&self, seen: u64) -> Option<DcsError> {
        match &*self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(failure) if failure.number > seen => Some(failure.error.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an unsigned JWT-shaped token with the given claims (tests only).
    pub(crate) fn fake_jwt(claims: serde_json::Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            b64.encode(claims.to_string())
        )
    }

    #[test]
    fn reads_exp_from_the_recorded_token() {
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIyIiwiaWF0IjoxNzk1MzM5OTcyLCJleHAiOjE3OTUzNDE3NzJ9.<redacted-signature>";
        assert_eq!(jwt_expiry(t).unwrap().timestamp(), 1795341772);
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
        assert_eq!(jwt_expiry(&fake_jwt(serde_json::json!({"sub": "1"}))), None);
        assert_eq!(
            jwt_expiry(&fake_jwt(serde_json::json!({"exp": 100.0})))
                .unwrap()
                .timestamp(),
            100
        );
    }

    #[test]
    fn refresh_point_respects_margin_and_short_lifetimes() {
        let now = Utc.timestamp_opt(1_000_000, 0).unwrap();
        let long = fake_jwt(serde_json::json!({"exp": 1_000_000 + 1800}));
        let t = Token::new(long.into(), now, Duration::from_secs(300), 1);
        assert_eq!(t.refresh_at.unwrap().timestamp(), 1_000_000 + 1500);
        assert!(t.is_fresh(now));
        assert!(!t.is_fresh(Utc.timestamp_opt(1_000_000 + 1500, 0).unwrap()));
        let short = fake_jwt(serde_json::json!({"exp": 1_000_000 + 60}));
        let t = Token::new(short.into(), now, Duration::from_secs(300), 1);
        assert_eq!(t.refresh_at.unwrap().timestamp(), 1_000_000 + 30);
    }
}
