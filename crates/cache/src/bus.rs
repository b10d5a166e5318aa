//! The invalidation port: telling other instances to drop entries from their local tiers.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::store::BackendError;

/// What to drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "target", rename_all = "snake_case")]
pub enum Invalidation {
    /// Exactly this key.
    Key(String),
    /// The key and every key below it, on whole segments (see [`crate::SegmentPrefix`]).
    Prefix(String),
    /// Everything.
    All,
}

/// What a bus delivers to the cache that subscribed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// Another instance invalidated something.
    Invalidate(Invalidation),
    /// Messages may have been lost (the subscription was (re)established, or the receiver fell
    /// behind): the whole local tier must be dropped.
    Resync,
}

/// Capacity of the in-process event channels. A receiver that falls further behind gets a
/// `Lagged` error, which the cache treats as [`BusEvent::Resync`].
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;

/// Broadcasts invalidations between instances. Implementations do not echo an instance's own
/// publications back to it: the publisher has already applied them.
#[async_trait]
pub trait InvalidationBus: Send + Sync + fmt::Debug {
    /// Short name for logs and stats (`in-memory`, `redis`).
    fn name(&self) -> &'static str;

    /// Sends `invalidation` to every other instance.
    async fn publish(&self, invalidation: &Invalidation) -> Result<(), BackendError>;

    /// A receiver of the events meant for this instance.
    fn subscribe(&self) -> broadcast::Receiver<BusEvent>;
}

#[derive(Debug, Clone)]
struct Envelope {
    origin: u64,
    invalidation: Invalidation,
}

/// An in-process hub: every [`InMemoryBus`] joined to it is one "instance". For tests and
/// single-process setups with several caches.
#[derive(Debug, Clone)]
pub struct InMemoryHub {
    sender: broadcast::Sender<Envelope>,
}

impl InMemoryHub {
    /// An empty hub.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        Self { sender }
    }

    /// A bus endpoint for one more instance. Must be called inside a Tokio runtime: it spawns
    /// the task that forwards the hub's messages; the task ends when the endpoint is dropped.
    pub fn join(&self) -> InMemoryBus {
        let origin = fastrand::u64(..);
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        let mut hub_receiver = self.sender.subscribe();
        let forward_to = events.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                let event = match hub_receiver.recv().await {
                    Ok(envelope) if envelope.origin == origin => continue,
                    Ok(envelope) => BusEvent::Invalidate(envelope.invalidation),
                    Err(broadcast::error::RecvError::Lagged(_)) => BusEvent::Resync,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                // No subscriber yet is fine: a cache subscribes when it is built.
                let _ = forward_to.send(event);
            }
        });
        InMemoryBus {
            hub: self.sender.clone(),
            origin,
            events,
            _forwarder: Arc::new(AbortOnDrop(forwarder)),
        }
    }
}

impl Default for InMemoryHub {
    fn default() -> Self {
        Self::new()
    }
}

/// One instance's endpoint on an [`InMemoryHub`].
#[derive(Debug, Clone)]
pub struct InMemoryBus {
    hub: broadcast::Sender<Envelope>,
    origin: u64,
    events: broadcast::Sender<BusEvent>,
    _forwarder: Arc<AbortOnDrop>,
}

impl InMemoryBus {
    /// Delivers [`BusEvent::Resync`] to this endpoint's subscribers, as a real bus does after
    /// reconnecting.
    pub fn announce_resync(&self) {
        let _ = self.events.send(BusEvent::Resync);
    }
}

#[async_trait]
impl InvalidationBus for InMemoryBus {
    fn name(&self) -> &'static str {
        "in-memory"
    }

    async fn publish(&self, invalidation: &Invalidation) -> Result<(), BackendError> {
        // An error only means nobody has joined, which is not a failure to deliver.
        let _ = self.hub.send(Envelope {
            origin: self.origin,
            invalidation: invalidation.clone(),
        });
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.events.subscribe()
    }
}

/// Aborts a background task when the last owner goes away.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidations_have_a_stable_wire_format() {
        let json = serde_json::to_string(&Invalidation::Prefix("dcs:books:id:1".into()))
            .expect("serialisable");
        assert_eq!(json, r#"{"op":"prefix","target":"dcs:books:id:1"}"#);
        let all: Invalidation = serde_json::from_str(r#"{"op":"all"}"#).expect("parses");
        assert_eq!(all, Invalidation::All);
    }

    #[tokio::test]
    async fn in_memory_bus_reaches_other_members_but_not_the_sender() {
        let hub = InMemoryHub::new();
        let a = hub.join();
        let b = hub.join();
        let mut a_events = a.subscribe();
        let mut b_events = b.subscribe();
        a.publish(&Invalidation::Key("k".into()))
            .await
            .expect("in-memory publish cannot fail");
        let received = tokio::time::timeout(std::time::Duration::from_secs(5), b_events.recv())
            .await
            .expect("b receives within the timeout")
            .expect("channel open");
        assert_eq!(
            received,
            BusEvent::Invalidate(Invalidation::Key("k".into()))
        );
        b.publish(&Invalidation::All).await.expect("publish");
        let received = tokio::time::timeout(std::time::Duration::from_secs(5), a_events.recv())
            .await
            .expect("a receives within the timeout")
            .expect("channel open");
        assert_eq!(
            received,
            BusEvent::Invalidate(Invalidation::All),
            "a must not see its own key invalidation first"
        );
    }
}
