//! A consecutive-failure circuit breaker with a single half-open probe.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{self, Clock};
use crate::config::BreakerConfig;
use crate::error::DcsError;

/// The breaker's state, as reported by [`DcsClient::breaker_state`](crate::DcsClient::breaker_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; `failures` consecutive upstream failures so far.
    Closed {
        /// Consecutive failures counted.
        failures: u32,
    },
    /// Requests fail fast with `CircuitOpen` until the cool-down ends.
    Open {
        /// Time left until a probe is allowed.
        retry_in: Duration,
    },
    /// Cool-down over: the next request is the probe (or it is in flight).
    HalfOpen {
        /// Whether the probe is in flight.
        probing: bool,
    },
}

/// `cool_down` in `Open`/`HalfOpen` is the open time last used; a failed probe doubles it.
#[derive(Debug)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: DateTime<Utc>,
        cool_down: Duration,
    },
    HalfOpen {
        probing: bool,
        cool_down: Duration,
    },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    cfg: BreakerConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<Inner>,
}

/// Permission to send one request. Report its outcome with `success`/`failure`; dropping it
/// unreported (e.g. the caller was cancelled) frees a half-open probe slot.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    done: bool,
}

impl Breaker {
    pub(crate) fn new(cfg: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        Breaker {
            cfg,
            clock,
            state: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> BreakerState {
        let now = self.clock.now();
        match *self.lock() {
            Inner::Closed { failures } => BreakerState::Closed { failures },
            Inner::Open { until, .. } if now < until => BreakerState::Open {
                retry_in: clock::since(now, until),
            },
            Inner::Open { .. } => BreakerState::HalfOpen { probing: false },
            Inner::HalfOpen { probing, .. } => BreakerState::HalfOpen { probing },
        }
    }

    /// The open time after a failed probe that followed an open time of `last`.
    fn next_cool_down(&self, last: Duration) -> Duration {
        let cap = self.cfg.max_cool_down.max(self.cfg.cool_down);
        last.saturating_mul(2).min(cap)
    }

    /// Asks to send a request.
    pub(crate) fn acquire(&self) -> Result<Permit<'_>, DcsError> {
        if self.cfg.failure_threshold == 0 {
            return Ok(Permit {
                breaker: self,
                probe: false,
                done: false,
            });
        }
        let now = self.clock.now();
        let mut st = self.lock();
        match *st {
            Inner::Closed { .. } => Ok(Permit {
                breaker: self,
                probe: false,
                done: false,
            }),
            Inner::Open { until, .. } if now < until => Err(DcsError::CircuitOpen {
                retry_in: clock::since(now, until),
            }),
            Inner::Open { cool_down, .. }
            | Inner::HalfOpen {
                probing: false,
                cool_down,
            } => {
                *st = Inner::HalfOpen {
                    probing: true,
                    cool_down,
                };
                tracing::info!(
                    target: "dcs_client::breaker",
                    "DCS circuit breaker half-open: letting one probe request through"
                );
                Ok(Permit {
                    breaker: self,
                    probe: true,
                    done: false,
                })
            }
            Inner::HalfOpen { probing: true, .. } => Err(DcsError::CircuitOpen {
                retry_in: Duration::ZERO,
            }),
        }
    }

    fn on_success(&self, probe: bool) {
        let mut st = self.lock();
        match *st {
            Inner::HalfOpen { .. } if probe => {
                *st = Inner::Closed { failures: 0 };
                tracing::info!(
                    target: "dcs_client::breaker",
                    "DCS circuit breaker closed: probe succeeded"
                );
            }
            Inner::Closed { failures } if failures > 0 => {
                *st = Inner::Closed { failures: 0 };
            }
            // A request admitted before the breaker opened answered fine: this does not close
            // an open breaker (only a probe does).
            _ => {}
        }
    }

    fn on_failure(&self, probe: bool) {
        let now = self.clock.now();
        let mut st = self.lock();
        match *st {
            Inner::HalfOpen { cool_down, .. } if probe => {
                let cool_down = self.next_cool_down(cool_down);
                *st = Inner::Open {
                    until: clock::add(now, cool_down),
                    cool_down,
                };
                tracing::warn!(
                    target: "dcs_client::breaker",
                    cool_down_ms = cool_down.as_millis() as u64,
                    "DCS circuit breaker re-opened: probe failed"
                );
            }
            Inner::Closed { failures } => {
                let failures = failures + 1;
                if failures >= self.cfg.failure_threshold {
                    *st = Inner::Open {
                        until: clock::add(now, self.cfg.cool_down),
                        cool_down: self.cfg.cool_down,
                    };
                    tracing::warn!(
                        target: "dcs_client::breaker",
                        failures,
                        cool_down_ms = self.cfg.cool_down.as_millis() as u64,
                        "DCS circuit breaker opened after {failures} consecutive failures"
                    );
                } else {
                    *st = Inner::Closed { failures };
                }
            }
            _ => {}
        }
    }

    fn on_abandon(&self, probe: bool) {
        if probe {
            let mut st = self.lock();
            if let Inner::HalfOpen {
                probing: true,
                cool_down,
            } = *st
            {
                *st = Inner::HalfOpen {
                    probing: false,
                    cool_down,
                };
            }
        }
    }
}

impl Permit<'_> {
    /// The upstream answered (anything but a 5xx): healthy.
    pub(crate) fn success(mut self) {
        self.done = true;
        self.breaker.on_success(self.probe);
    }

    /// 5xx, network error or timeout.
    pub(crate) fn failure(mut self) {
        self.done = true;
        self.breaker.on_failure(self.probe);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.on_abandon(self.probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn breaker(clock: &ManualClock) -> Breaker {
        Breaker::new(
            BreakerConfig {
                failure_threshold: 3,
                cool_down: Duration::from_secs(10),
                max_cool_down: Duration::from_secs(10),
            },
            Arc::new(clock.clone()),
        )
    }

    #[test]
    fn opens_half_opens_and_closes() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        for _ in 0..2 {
            b.acquire().unwrap().failure();
        }
        assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
        b.acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        let err = b.acquire().unwrap_err();
        assert_eq!(err.code(), "dcs_circuit_open");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
        clock.advance(Duration::from_secs(4));
        assert_eq!(
            b.acquire().unwrap_err().retry_after(),
            Some(Duration::from_secs(6))
        );
        clock.advance(Duration::from_secs(6));
        let probe = b.acquire().unwrap();
        // Only one probe.
        assert!(b.acquire().is_err());
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: true });
        probe.failure();
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        clock.advance(Duration::from_secs(10));
        let probe = b.acquire().unwrap();
        probe.success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        b.acquire().unwrap().success();
    }

    #[test]
    fn failed_probes_double_the_open_time_up_to_the_cap_and_success_resets_it() {
        let clock = ManualClock::new();
        let b = Breaker::new(
            BreakerConfig {
                failure_threshold: 1,
                cool_down: Duration::from_secs(1),
                max_cool_down: Duration::from_secs(5),
            },
            Arc::new(clock.clone()),
        );
        b.acquire().unwrap().failure();
        let mut open_times = Vec::new();
        for _ in 0..5 {
            let BreakerState::Open { retry_in } = b.state() else {
                panic!("{:?}", b.state())
            };
            open_times.push(retry_in.as_secs());
            clock.advance(retry_in);
            b.acquire().unwrap().failure();
        }
        assert_eq!(open_times, vec![1, 2, 4, 5, 5]);
        clock.advance(Duration::from_secs(5));
        b.acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
        // Opening again starts from the first cool-down.
        b.acquire().unwrap().failure();
        assert_eq!(
            b.state(),
            BreakerState::Open {
                retry_in: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn abandoned_probe_frees_the_slot() {
        let clock = ManualClock::new();
        let b = breaker(&clock);
        for _ in 0..3 {
            b.acquire().unwrap().failure();
        }
        clock.advance(Duration::from_secs(10));
        drop(b.acquire().unwrap());
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: false });
        b.acquire().unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }
}
