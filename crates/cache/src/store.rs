//! The storage port: one trait for every tier (in-process, Redis).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::key::SegmentPrefix;

/// What the source said about a key, and what the tiers keep for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The ready-to-send bytes.
    Found(Bytes),
    /// The source has nothing under this key (cached for the negative TTL).
    NotFound,
}

impl Fetched {
    /// Bytes this value occupies (0 for `NotFound`).
    pub fn len(&self) -> usize {
        match self {
            Self::Found(bytes) => bytes.len(),
            Self::NotFound => 0,
        }
    }

    /// Whether this value has no bytes (always true for `NotFound`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, or `None` for `NotFound`.
    pub fn into_bytes(self) -> Option<Bytes> {
        match self {
            Self::Found(bytes) => Some(bytes),
            Self::NotFound => None,
        }
    }
}

/// One entry as a tier stores and returns it. Times are relative so that tiers with different
/// clocks (the process's, the Redis server's) can speak the same language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The cached value.
    pub value: Fetched,
    /// Time left until the entry stops being fresh. Zero means expired; only a tier that keeps
    /// stale copies ([`CacheStore::retains_stale`]) ever returns such an entry.
    pub fresh_for: Duration,
    /// How long after `fresh_for` runs out the entry may still be served if a refresh fails.
    pub stale_for: Duration,
}

impl StoredEntry {
    /// Whether the entry is still fresh.
    pub fn is_fresh(&self) -> bool {
        !self.fresh_for.is_zero()
    }
}

/// A tier failed (Redis down, timed out, returned garbage). Carries no credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{backend} {operation} failed: {message}")]
pub struct BackendError {
    /// Which backend failed (`redis`, `local`, ...).
    pub backend: &'static str,
    /// What was being done (`get`, `put`, `publish`, ...).
    pub operation: &'static str,
    /// What went wrong.
    pub message: String,
}

impl BackendError {
    /// Builds an error from its parts.
    pub fn new(backend: &'static str, operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            backend,
            operation,
            message: message.into(),
        }
    }
}

/// A storage tier. Object-safe so the cache can hold any adapter behind `Arc<dyn CacheStore>`.
///
/// Contract (checked by the conformance suite in `tests/`):
/// - `put` then `get` returns the value with `fresh_for <= ttl` until the TTL runs out; a later
///   `put` on the same key replaces the entry.
/// - after the TTL, `get` returns `None`, or (only if [`retains_stale`](Self::retains_stale))
///   an entry with `fresh_for == 0` until `stale_for` has also run out, and `None` after that.
/// - `remove` reports whether the key existed; `remove_prefix` removes the keys that the
///   [`SegmentPrefix`] matches and returns their names; `clear` removes every key of the store.
/// - a store may drop entries early (capacity), never keep them longer.
/// - a store shared by several instances advances its [invalidation
///   mark](Self::invalidation_mark) before each removal, and refuses a
///   [`put_unless_invalidated`](Self::put_unless_invalidated) whose mark is older.
#[async_trait]
pub trait CacheStore: Send + Sync + fmt::Debug {
    /// Short name for logs and stats (`local`, `redis`).
    fn name(&self) -> &'static str;

    /// Whether expired entries are kept (and returned) for their stale window.
    fn retains_stale(&self) -> bool;

    /// The entry under `key`, if the store still has one.
    async fn get(&self, key: &str) -> Result<Option<StoredEntry>, BackendError>;

    /// Stores `entry` under `key`, replacing what was there. An entry with a zero `fresh_for`
    /// is not stored.
    async fn put(&self, key: &str, entry: StoredEntry) -> Result<(), BackendError>;

    /// A mark of the removals this store has applied so far, read before a fetch whose result
    /// is then stored with [`put_unless_invalidated`](Self::put_unless_invalidated). `None`
    /// for a store that only this process changes: the cache's own epoch covers it. A store
    /// shared by several instances needs it: an instance that fetched old data just before
    /// another instance's invalidation must not write it back after that invalidation's
    /// removal ran, and a local epoch cannot tell, since the news of that invalidation may not
    /// have reached it yet.
    async fn invalidation_mark(&self) -> Result<Option<u64>, BackendError> {
        Ok(None)
    }

    /// [`get`](Self::get) and [`invalidation_mark`](Self::invalidation_mark) together (one
    /// round trip where the store allows), as a miss that will fetch needs both.
    async fn get_with_mark(
        &self,
        key: &str,
    ) -> Result<(Option<StoredEntry>, Option<u64>), BackendError> {
        Ok((self.get(key).await?, self.invalidation_mark().await?))
    }

    /// [`put`](Self::put), unless a removal ran since `mark` was read ([`None`]: no check).
    /// Whether the entry was stored.
    async fn put_unless_invalidated(
        &self,
        key: &str,
        entry: StoredEntry,
        mark: Option<u64>,
    ) -> Result<bool, BackendError> {
        let _ = mark;
        let stored = !entry.fresh_for.is_zero();
        self.put(key, entry).await.map(|()| stored)
    }

    /// Removes `key`; `true` if it was there.
    async fn remove(&self, key: &str) -> Result<bool, BackendError>;

    /// Removes every key `prefix` matches; returns the removed keys.
    async fn remove_prefix(&self, prefix: &SegmentPrefix) -> Result<Vec<String>, BackendError>;

    /// Removes every key of this store; returns how many went.
    async fn clear(&self) -> Result<u64, BackendError>;

    /// Checks that the backend answers now (Redis: `PING`, whatever its breaker says).
    /// In-process stores always do.
    async fn ping(&self) -> Result<(), BackendError> {
        Ok(())
    }
}
