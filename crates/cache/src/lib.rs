#![doc = include_str!("../README.md")]

mod bus;
mod cache;
mod clock;
mod config;
mod flight;
mod key;
mod local;
mod redis_tier;
mod stats;
mod store;
#[cfg(feature = "test-server")]
pub mod testing;

pub use crate::bus::{
    BusEvent, EVENT_CHANNEL_CAPACITY, InMemoryBus, InMemoryHub, Invalidation, InvalidationBus,
};
pub use crate::cache::{
    Cache, CacheBuilder, CacheError, CacheLookup, ClearReport, Freshness, SweeperHandle,
};
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::config::{CacheConfig, RedisConfig};
pub use crate::key::{SEGMENT_SEPARATOR, SegmentPrefix};
pub use crate::local::{ENTRY_OVERHEAD_BYTES, LocalStore};
pub use crate::redis_tier::{RedisInvalidationBus, RedisStore};
pub use crate::stats::CacheStats;
pub use crate::store::{BackendError, CacheStore, Fetched, StoredEntry};
