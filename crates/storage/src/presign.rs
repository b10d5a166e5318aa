//! The deterministic presign window shared by every adapter.
//!
//! Time is cut into windows of `ttl - min_remaining` seconds. A URL handed out during a window
//! is signed as if at the window's start and valid for `ttl` from there, so:
//! - the same object gets the byte-identical URL for the whole window (browser and CDN caches
//!   hit, no shared URL cache needed);
//! - a URL handed out at any moment of the window still has at least `min_remaining` seconds
//!   to live (the worst case is the window's last second: `ttl - window = min_remaining`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Result, StorageError};

/// Seconds since the Unix epoch; injectable so tests can sign in the past.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_unix(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that says what it is told, for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(now_unix: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(now_unix)))
    }

    pub fn set(&self, now_unix: u64) {
        self.0.store(now_unix, Ordering::Relaxed);
    }

    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `PRESIGN_TTL` / `PRESIGN_MIN_REMAINING`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresignWindow {
    ttl: u64,
    min_remaining: u64,
}

/// When a URL is signed and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signing {
    /// Start of the current window: the signing time.
    pub signed_at: u64,
    /// Validity from `signed_at`, in seconds.
    pub ttl: u64,
}

impl Signing {
    pub fn expires_at(&self) -> u64 {
        self.signed_at + self.ttl
    }
}

impl Default for PresignWindow {
    fn default() -> Self {
        Self {
            ttl: Self::DEFAULT_TTL,
            min_remaining: Self::DEFAULT_MIN_REMAINING,
        }
    }
}

impl PresignWindow {
    pub const DEFAULT_TTL: u64 = 3600;
    pub const DEFAULT_MIN_REMAINING: u64 = 2700;
    /// SigV4's limit for `X-Amz-Expires` (7 days).
    pub const MAX_TTL: u64 = 604_800;

    /// `min_remaining` must be below `ttl` (else the window would be empty).
    pub fn new(ttl: u64, min_remaining: u64) -> Result<Self> {
        if ttl == 0 || ttl > Self::MAX_TTL {
            return Err(StorageError::Config(format!(
                "PRESIGN_TTL must be 1..={}, got {ttl}",
                Self::MAX_TTL
            )));
        }
        if min_remaining >= ttl {
            return Err(StorageError::Config(format!(
                "PRESIGN_MIN_REMAINING ({min_remaining}) must be below PRESIGN_TTL ({ttl})"
            )));
        }
        Ok(Self { ttl, min_remaining })
    }

    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    pub fn min_remaining(&self) -> u64 {
        self.min_remaining
    }

    /// Length of a window: how long the same URL is handed out.
    pub fn window(&self) -> u64 {
        self.ttl - self.min_remaining
    }

    /// The signing for a URL handed out at `now`.
    pub fn signing(&self, now: u64) -> Signing {
        Signing {
            signed_at: now - now % self.window(),
            ttl: self.ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_keeps_min_remaining() {
        let w = PresignWindow::new(3600, 2700).unwrap();
        assert_eq!(w.window(), 900);
        // A window start: a multiple of 900.
        let base = 1_800_000_000;
        for now in base..base + 2000 {
            let s = w.signing(now);
            assert!(s.signed_at <= now);
            assert!(s.expires_at() - now >= 2700, "now={now}");
            assert!(s.expires_at() - now <= 3600);
        }
        assert_eq!(w.signing(base), w.signing(base + 899));
        assert_ne!(w.signing(base), w.signing(base + 900));
    }

    #[test]
    fn rejects_empty_windows() {
        assert!(PresignWindow::new(3600, 3600).is_err());
        assert!(PresignWindow::new(0, 0).is_err());
        assert!(PresignWindow::new(PresignWindow::MAX_TTL + 1, 1).is_err());
        assert_eq!(
            PresignWindow::default(),
            PresignWindow::new(3600, 2700).unwrap()
        );
    }
}
