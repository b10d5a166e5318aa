//! "Now" and "sleep" behind a trait, so retries, `Retry-After`, the breaker's cool-down and
//! token expiry can be tested without real waiting.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// The time source of the client.
///
/// The default is [`SystemClock`]. Tests use `ManualClock` (feature `test-util`), whose
/// `sleep` returns at once and moves its time forward.
#[async_trait]
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current wall-clock time (used for JWT `exp`, HTTP dates and deadlines).
    fn now(&self) -> DateTime<Utc>;

    /// Waits for `duration` (backoff and `Retry-After` waits).
    async fn sleep(&self, duration: Duration);
}

/// The real clock: `Utc::now()` and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Adds a std `Duration` to a chrono time, saturating.
pub(crate) fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `b - a` as a std `Duration` (zero if `b <= a`).
pub(crate) fn since(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (b - a).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(any(test, feature = "test-util"))]
pub use manual::ManualClock;

#[cfg(any(test, feature = "test-util"))]
mod manual {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Debug)]
    struct State {
        now: DateTime<Utc>,
        sleeps: Vec<Duration>,
    }

    /// A virtual clock for tests (feature `test-util`).
    ///
    /// `now()` returns a settable time; `sleep(d)` records `d`, moves the time forward by `d`
    /// and returns immediately (after a `yield_now`), so backoff and `Retry-After` waits can be
    /// asserted exactly without real sleeping. Clones share the same time.
    #[derive(Debug, Clone)]
    pub struct ManualClock {
        state: Arc<Mutex<State>>,
    }

    impl Default for ManualClock {
        fn default() -> Self {
            Self::new()
        }
    }

    impl ManualClock {
        /// Starts at the current real time.
        pub fn new() -> Self {
            Self::starting_at(Utc::now())
        }

        /// Starts at `now`.
        pub fn starting_at(now: DateTime<Utc>) -> Self {
            ManualClock {
                state: Arc::new(Mutex::new(State {
                    now,
                    sleeps: Vec::new(),
                })),
            }
        }

        /// Moves the time forward.
        pub fn advance(&self, by: Duration) {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.now = add(s.now, by);
        }

        /// Sets the time.
        pub fn set(&self, now: DateTime<Utc>) {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).now = now;
        }

        /// Every `sleep` requested so far, in order.
        pub fn sleeps(&self) -> Vec<Duration> {
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .sleeps
                .clone()
        }

        /// The sum of all sleeps.
        pub fn total_slept(&self) -> Duration {
            self.sleeps().iter().sum()
        }

        /// Forgets the recorded sleeps.
        pub fn clear_sleeps(&self) {
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .sleeps
                .clear();
        }
    }

    #[async_trait]
    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).now
        }

        async fn sleep(&self, duration: Duration) {
            {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.sleeps.push(duration);
                s.now = add(s.now, duration);
            }
            tokio::task::yield_now().await;
        }
    }
}
