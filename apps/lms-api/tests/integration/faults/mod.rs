//! The fault suite: each dependency of lms-api fails the way it fails in production (a process
//! stopped or killed and started again on the same port, an upstream that is slow, answers 5xx
//! or 429, resets connections, expires tokens), and each case asserts the answer clients get
//! (stale data, a fast 503 with its JSON code, a retry that succeeds, recovery) and how long
//! it took against the deadline that bounds it.
//!
//! One file per dependency: [`dcs`], [`redis`], [`postgres`], [`storage`]. The operators' view
//! of the same cases is the table in `docs/faults.md`.

mod dcs;
mod postgres;
mod redis;
mod storage;

use std::time::{Duration, Instant};

pub use crate::processes::{free_port, poll_until, wait_for_port};

/// Added to every deadline a test asserts against: the suite runs under nextest next to
/// hundreds of other tests on two cores, so a request may be scheduled late. A bound that is
/// the deadline plus this margin still fails when the code waits for the next deadline up
/// (a 30 s connect timeout, a 10 s latency, a breaker that never closes).
pub const LOAD_MARGIN: Duration = Duration::from_secs(2);

/// Panics unless `started.elapsed()` is at most `bound`; returns the elapsed time.
#[track_caller]
pub fn assert_within(what: &str, started: Instant, bound: Duration) -> Duration {
    let elapsed = started.elapsed();
    assert!(
        elapsed <= bound,
        "{what}: took {elapsed:?}, more than the bound of {bound:?}"
    );
    elapsed
}
