//! Single-flight: concurrent misses on one key run one fetch. The first caller leads (it holds
//! a [`FlightGuard`]); the others follow, waiting on a watch channel for the leader's
//! [`Outcome`]. A leader that is cancelled drops its guard, which ends the flight and closes the
//! channel, so a follower takes the lead instead of hanging.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::watch;

use crate::cache::Freshness;
use crate::store::Fetched;

/// The result a fetching caller hands to the callers waiting on it.
pub(crate) enum Outcome {
    Resolved {
        value: Fetched,
        freshness: Freshness,
    },
    Stale(Bytes),
    /// The fetch error, boxed so the non-generic flight table can carry any caller's error type.
    Failed(Box<dyn Any + Send + Sync>),
}

pub(crate) type OutcomeSlot = Option<Arc<Outcome>>;

struct Flight {
    id: u64,
    outcome: watch::Receiver<OutcomeSlot>,
}

pub(crate) enum Role<'a> {
    Leader(FlightGuard<'a>),
    Follower(watch::Receiver<OutcomeSlot>),
}

/// Held by the fetching caller. Dropping it without [`FlightGuard::finish`] (the caller was
/// cancelled) removes the flight and closes its channel, so waiters retry instead of hanging.
pub(crate) struct FlightGuard<'a> {
    flights: &'a Flights,
    key: &'a str,
    id: u64,
    sender: Option<watch::Sender<OutcomeSlot>>,
}

impl FlightGuard<'_> {
    pub(crate) fn finish(mut self, outcome: Outcome) {
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Some(Arc::new(outcome)));
            self.flights.end(self.key, self.id);
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if self.sender.take().is_some() {
            self.flights.end(self.key, self.id);
        }
    }
}

/// The flights in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    table: Mutex<HashMap<String, Flight>>,
    next_id: AtomicU64,
}

impl Flights {
    /// Joins the flight on `key`, or starts one and leads it.
    pub(crate) fn join_or_lead<'a>(&'a self, key: &'a str) -> Role<'a> {
        let mut flights = lock(&self.table);
        if let Some(flight) = flights.get(key) {
            return Role::Follower(flight.outcome.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(None);
        flights.insert(
            key.to_owned(),
            Flight {
                id,
                outcome: receiver,
            },
        );
        Role::Leader(FlightGuard {
            flights: self,
            key,
            id,
            sender: Some(sender),
        })
    }

    /// Lets later callers of the keys `covers` start their own flights instead of joining
    /// those in progress (an invalidation ran: a fetch begun before it may bring back what it
    /// removed). The detached flights end as usual for those already waiting on them.
    pub(crate) fn detach(&self, covers: impl Fn(&str) -> bool) {
        lock(&self.table).retain(|key, _| !covers(key));
    }

    fn end(&self, key: &str, id: u64) {
        let mut flights = lock(&self.table);
        if flights.get(key).is_some_and(|flight| flight.id == id) {
            flights.remove(key);
        }
    }
}

/// The leader's outcome, or `None` when the leader was cancelled.
pub(crate) async fn wait_for_outcome(
    mut outcome: watch::Receiver<OutcomeSlot>,
) -> Option<Arc<Outcome>> {
    loop {
        if let Some(done) = outcome.borrow_and_update().as_ref() {
            return Some(Arc::clone(done));
        }
        if outcome.changed().await.is_err() {
            // Closed: either finished just before closing, or abandoned.
            return outcome.borrow().clone();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
