//! Redis adapters: the shared tier ([`RedisStore`]) and the invalidation bus
//! ([`RedisInvalidationBus`]).

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{
    AsyncConnectionConfig, Client, Cmd, Msg, Pipeline, ProtocolVersion, PushInfo, PushKind,
    RedisError, RedisFuture, Value,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::bus::{AbortOnDrop, BusEvent, EVENT_CHANNEL_CAPACITY, Invalidation, InvalidationBus};
use crate::config::RedisConfig;
use crate::key::{SEGMENT_SEPARATOR, SegmentPrefix, escape_glob};
use crate::store::{BackendError, CacheStore, Fetched, StoredEntry};

const BACKEND: &str = "redis";
/// First byte of a stored value: the bytes follow.
const TAG_FOUND: u8 = b'V';
/// The whole stored value for a cached "not found".
const TAG_NOT_FOUND: u8 = b'N';
/// Keys asked for per `SCAN` round trip.
const SCAN_BATCH: usize = 500;
/// A mark no stored counter equals (handed out while the breaker is open).
const MARK_NEVER_MATCHES: u64 = u64::MAX;
/// `SET key value PX ttl` only while the invalidation counter still holds the mark read before
/// the fetch (a missing counter reads as 0). One script, so no removal can run in between.
const PUT_UNLESS_INVALIDATED: &str = r"
local current = redis.call('GET', KEYS[2])
if current == false then current = '0' end
if current ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

fn open_client(config: &RedisConfig) -> Result<Client, BackendError> {
    Client::open(config.url.as_str()).map_err(|error| {
        BackendError::new(
            BACKEND,
            "configure",
            format!("unusable Redis URL {}: {error}", config.redacted_url()),
        )
    })
}

fn check_namespace(config: &RedisConfig) -> Result<(), BackendError> {
    if config.namespace.is_empty() {
        // An empty namespace would make `clear` delete every key of the database.
        return Err(BackendError::new(
            BACKEND,
            "configure",
            "the Redis key namespace must not be empty",
        ));
    }
    Ok(())
}

fn is_connection_failure(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
}

/// A [`ConnectionManager`] that sends a command once more when the first attempt found the
/// connection broken.
///
/// The manager starts reconnecting only when a command fails on a dead connection (or on the
/// failed reconnect left from an outage), so without the second attempt the first command after
/// Redis comes back always fails: an invalidation would be refused once more (its webhook
/// answered 503) after Redis is already up. A timed-out attempt is not repeated, so a caller
/// still waits for at most one connect plus one command. Sending any command of this module
/// twice is harmless: `GET`/`PTTL`, `SET PX`, the conditional-set script, `UNLINK`, `SCAN` and
/// `PING` are idempotent, `INCR` of the invalidation mark only has to move it, and a `PUBLISH`ed
/// invalidation may be applied twice.
#[derive(Clone)]
struct Reconnecting(ConnectionManager);

impl Reconnecting {
    fn worth_a_second_attempt(error: &RedisError) -> bool {
        (error.is_io_error() || error.is_unrecoverable_error()) && !error.is_timeout()
    }
}

impl ConnectionLike for Reconnecting {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            match self.0.send_packed_command(cmd).await {
                Err(error) if Self::worth_a_second_attempt(&error) => {
                    self.0.send_packed_command(cmd).await
                }
                result => result,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            match self.0.send_packed_commands(pipeline, offset, count).await {
                Err(error) if Self::worth_a_second_attempt(&error) => {
                    self.0.send_packed_commands(pipeline, offset, count).await
                }
                result => result,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// Skips Redis for a while after a connection-level failure, so requests do not each wait for
/// a timeout while it is down. Uses real time: it is about the network, not about TTLs.
#[derive(Debug)]
struct Breaker {
    cooldown: Duration,
    open_until: Mutex<Option<Instant>>,
}

impl Breaker {
    fn new(cooldown: Duration) -> Self {
        Self {
            cooldown,
            open_until: Mutex::new(None),
        }
    }

    fn is_open(&self) -> bool {
        let mut open_until = self
            .open_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *open_until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *open_until = None;
                false
            }
            None => false,
        }
    }

    fn trip(&self) {
        *self
            .open_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + self.cooldown);
    }
}

/// The shared tier in Redis. Entries live under `{namespace}{key}` with the TTL as Redis
/// expiry (`PX`); Redis keeps no stale copies (those live in each instance's local tier).
///
/// Value layout: `V` followed by the bytes, or `N` alone for a cached "not found".
pub struct RedisStore {
    connection: Reconnecting,
    namespace: String,
    breaker: Breaker,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store that connects on first use and reconnects after failures. Fails only on an
    /// unusable URL or an empty namespace. Needs a Tokio runtime.
    pub fn new(config: &RedisConfig) -> Result<Self, BackendError> {
        check_namespace(config)?;
        let client = open_client(config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            // One attempt per reconnect: the breaker, not a retry loop, absorbs outages.
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|error| BackendError::new(BACKEND, "connect", error.to_string()))?;
        Ok(Self {
            connection: Reconnecting(connection),
            namespace: config.namespace.clone(),
            breaker: Breaker::new(config.error_cooldown),
        })
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }

    /// The namespace's invalidation counter ([`CacheStore::invalidation_mark`]). The NUL byte
    /// keeps it apart from every cache key; `clear` leaves it.
    fn mark_key(&self) -> String {
        format!("{}\0invalidations", self.namespace)
    }

    /// Advances the invalidation mark: done before every removal, so a fill that read the
    /// mark earlier can no longer be written.
    async fn advance_mark(&self, operation: &'static str) -> Result<(), BackendError> {
        let mut connection = self.connection.clone();
        redis::cmd("INCR")
            .arg(self.mark_key())
            .exec_async(&mut connection)
            .await
            .map_err(|error| self.failed(operation, &error))
    }

    fn failed(&self, operation: &'static str, error: &RedisError) -> BackendError {
        if is_connection_failure(error) {
            self.breaker.trip();
        }
        BackendError::new(BACKEND, operation, error.to_string())
    }

    fn decode(&self, key: &str, raw: &Bytes) -> Result<Fetched, BackendError> {
        match raw.first() {
            Some(&TAG_FOUND) => Ok(Fetched::Found(raw.slice(1..))),
            Some(&TAG_NOT_FOUND) if raw.len() == 1 => Ok(Fetched::NotFound),
            _ => Err(BackendError::new(
                BACKEND,
                "get",
                format!("value under {key:?} is not in this cache's format"),
            )),
        }
    }

    fn encode(value: &Fetched) -> Vec<u8> {
        match value {
            Fetched::Found(bytes) => {
                let mut raw = Vec::with_capacity(bytes.len() + 1);
                raw.push(TAG_FOUND);
                raw.extend_from_slice(bytes);
                raw
            }
            Fetched::NotFound => vec![TAG_NOT_FOUND],
        }
    }

    /// Collects every key matching `pattern` (raw Redis names).
    async fn scan(&self, pattern: &str) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut connection = self.connection.clone();
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut connection)
                .await
                .map_err(|error| self.failed("scan", &error))?;
            found.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    /// Unlinks `keys`; returns those that existed.
    async fn unlink_each(
        &self,
        operation: &'static str,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut connection = self.connection.clone();
        let mut removed = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SCAN_BATCH) {
            let mut pipeline = redis::pipe();
            for key in chunk {
                pipeline.cmd("UNLINK").arg(key);
            }
            let counts: Vec<u64> = pipeline
                .query_async(&mut connection)
                .await
                .map_err(|error| self.failed(operation, &error))?;
            removed.extend(
                chunk
                    .iter()
                    .zip(counts)
                    .filter(|(_, count)| *count > 0)
                    .map(|(key, _)| key.clone()),
            );
        }
        Ok(removed)
    }

    fn strip_namespace(&self, raw: &[u8]) -> String {
        let name = raw.strip_prefix(self.namespace.as_bytes()).unwrap_or(raw);
        String::from_utf8_lossy(name).into_owned()
    }
}

#[async_trait]
impl CacheStore for RedisStore {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn retains_stale(&self) -> bool {
        false
    }

    async fn get(&self, key: &str) -> Result<Option<StoredEntry>, BackendError> {
        self.get_with_mark(key).await.map(|(entry, _)| entry)
    }

    async fn get_with_mark(
        &self,
        key: &str,
    ) -> Result<(Option<StoredEntry>, Option<u64>), BackendError> {
        if self.breaker.is_open() {
            tracing::trace!(key, "Redis cooling down after an error; skipped read");
            // `put_unless_invalidated` skips writes while cooling down anyway.
            return Ok((None, Some(MARK_NEVER_MATCHES)));
        }
        let redis_key = self.redis_key(key);
        let mut connection = self.connection.clone();
        // One round trip: the entry, its TTL and the invalidation mark.
        let (raw, ttl_millis, mark): (Option<Bytes>, i64, Option<u64>) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(&redis_key)
            .cmd("PTTL")
            .arg(&redis_key)
            .cmd("GET")
            .arg(self.mark_key())
            .query_async(&mut connection)
            .await
            .map_err(|error| self.failed("get", &error))?;
        let mark = Some(mark.unwrap_or(0));
        let Some(raw) = raw else {
            return Ok((None, mark));
        };
        // -1: no expiry (written by something else); -2: gone. Neither is one of ours to serve.
        let Ok(ttl_millis) = u64::try_from(ttl_millis) else {
            return Ok((None, mark));
        };
        if ttl_millis == 0 {
            return Ok((None, mark));
        }
        let entry = StoredEntry {
            value: self.decode(key, &raw)?,
            fresh_for: Duration::from_millis(ttl_millis),
            stale_for: Duration::ZERO,
        };
        Ok((Some(entry), mark))
    }

    async fn put(&self, key: &str, entry: StoredEntry) -> Result<(), BackendError> {
        self.put_unless_invalidated(key, entry, None)
            .await
            .map(drop)
    }

    async fn invalidation_mark(&self) -> Result<Option<u64>, BackendError> {
        if self.breaker.is_open() {
            // `put_unless_invalidated` skips writes while cooling down anyway.
            return Ok(Some(MARK_NEVER_MATCHES));
        }
        let mut connection = self.connection.clone();
        let mark: Option<u64> = redis::cmd("GET")
            .arg(self.mark_key())
            .query_async(&mut connection)
            .await
            .map_err(|error| self.failed("mark", &error))?;
        Ok(Some(mark.unwrap_or(0)))
    }

    async fn put_unless_invalidated(
        &self,
        key: &str,
        entry: StoredEntry,
        mark: Option<u64>,
    ) -> Result<bool, BackendError> {
        if entry.fresh_for.is_zero() || mark == Some(MARK_NEVER_MATCHES) {
            return Ok(false);
        }
        if self.breaker.is_open() {
            tracing::trace!(key, "Redis cooling down after an error; skipped write");
            return Ok(false);
        }
        let ttl_millis = u64::try_from(entry.fresh_for.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut connection = self.connection.clone();
        let Some(mark) = mark else {
            redis::cmd("SET")
                .arg(self.redis_key(key))
                .arg(Self::encode(&entry.value))
                .arg("PX")
                .arg(ttl_millis)
                .exec_async(&mut connection)
                .await
                .map_err(|error| self.failed("put", &error))?;
            return Ok(true);
        };
        let stored: u64 = redis::cmd("EVAL")
            .arg(PUT_UNLESS_INVALIDATED)
            .arg(2)
            .arg(self.redis_key(key))
            .arg(self.mark_key())
            .arg(Self::encode(&entry.value))
            .arg(ttl_millis)
            .arg(mark.to_string())
            .query_async(&mut connection)
            .await
            .map_err(|error| self.failed("put", &error))?;
        Ok(stored == 1)
    }

    async fn remove(&self, key: &str) -> Result<bool, BackendError> {
        let mut connection = self.connection.clone();
        // The mark advanced and the key unlinked in one transaction (one round trip).
        let (removed,): (u64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(self.mark_key())
            .ignore()
            .cmd("UNLINK")
            .arg(self.redis_key(key))
            .query_async(&mut connection)
            .await
            .map_err(|error| self.failed("remove", &error))?;
        Ok(removed > 0)
    }

    async fn remove_prefix(&self, prefix: &SegmentPrefix) -> Result<Vec<String>, BackendError> {
        self.advance_mark("remove_prefix").await?;
        let exact = self.redis_key(prefix.as_str());
        let below = format!("{}{SEGMENT_SEPARATOR}*", escape_glob(&exact));
        let mut candidates = self.scan(&below).await?;
        candidates.push(exact.into_bytes());
        let removed = self.unlink_each("remove_prefix", candidates).await?;
        Ok(removed
            .iter()
            .map(|raw| self.strip_namespace(raw))
            .collect())
    }

    async fn clear(&self) -> Result<u64, BackendError> {
        self.advance_mark("clear").await?;
        let pattern = format!("{}*", escape_glob(&self.namespace));
        let mark_key = self.mark_key().into_bytes();
        let mut keys = self.scan(&pattern).await?;
        keys.retain(|key| *key != mark_key);
        let removed = self.unlink_each("clear", keys).await?;
        Ok(removed.len() as u64)
    }

    async fn ping(&self) -> Result<(), BackendError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(|_| ())
            .map_err(|error| BackendError::new(BACKEND, "ping", error.to_string()))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WireMessage {
    origin: String,
    invalidation: Invalidation,
}

#[derive(Debug, Clone)]
struct SubscriberSettings {
    channel: String,
    instance_id: String,
    client_name: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    keepalive_interval: Duration,
    reconnect_min_delay: Duration,
    reconnect_max_delay: Duration,
}

/// Invalidations over Redis pub/sub on `{namespace}invalidations`.
///
/// A background task holds a dedicated RESP3 connection (named with `CLIENT SETNAME`, see
/// [`subscriber_client_name`](Self::subscriber_client_name)) subscribed to the channel, pings it
/// to detect a dead link, and reconnects with backoff. Pub/sub drops messages while a
/// subscriber is away, so after every successful (re)subscription the bus emits
/// [`BusEvent::Resync`] and the cache drops its whole local tier. Requires Redis 6 or newer.
///
/// The first [`subscribe`](InvalidationBus::subscribe) receives every event since the bus
/// started, including a resync emitted before it was called; later ones receive the events
/// from when they subscribe.
pub struct RedisInvalidationBus {
    publisher: Reconnecting,
    settings: SubscriberSettings,
    events: broadcast::Sender<BusEvent>,
    /// Taken by the first `subscribe`. The subscription task may come up before the cache
    /// subscribes, and a broadcast channel drops what is sent while nobody listens: without
    /// this receiver that cache would never see (nor count) its first resync.
    first_receiver: Mutex<Option<broadcast::Receiver<BusEvent>>>,
    _subscriber: AbortOnDrop,
}

impl fmt::Debug for RedisInvalidationBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInvalidationBus")
            .field("channel", &self.settings.channel)
            .field("instance_id", &self.settings.instance_id)
            .field("client_name", &self.settings.client_name)
            .finish_non_exhaustive()
    }
}

impl RedisInvalidationBus {
    /// Starts the subscription task (it keeps retrying while Redis is down) and returns the bus.
    /// Fails only on an unusable URL or an empty namespace. Needs a Tokio runtime.
    pub fn start(config: &RedisConfig) -> Result<Self, BackendError> {
        check_namespace(config)?;
        let client = open_client(config)?;
        let publisher = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout))
                // One connect per reconnect, as for the store: a publish waits for at most
                // one connect plus one command.
                .set_number_of_retries(0),
        )
        .map_err(|error| BackendError::new(BACKEND, "connect", error.to_string()))?;

        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let subscriber_client = Client::open(info.set_redis_settings(resp3))
            .map_err(|error| BackendError::new(BACKEND, "configure", error.to_string()))?;

        let instance_id = format!("{:016x}", fastrand::u64(..));
        let client_name = format!(
            "{}subscriber-{instance_id}",
            config
                .namespace
                .chars()
                .map(|ch| if ch.is_ascii_graphic() { ch } else { '_' })
                .collect::<String>()
        );
        let settings = SubscriberSettings {
            channel: config.channel(),
            instance_id,
            client_name,
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            keepalive_interval: config.keepalive_interval.max(Duration::from_millis(10)),
            reconnect_min_delay: config.reconnect_min_delay,
            reconnect_max_delay: config.reconnect_max_delay.max(config.reconnect_min_delay),
        };
        let (events, first_receiver) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        let task = tokio::spawn(run_subscriber(
            subscriber_client,
            settings.clone(),
            events.clone(),
        ));
        Ok(Self {
            publisher: Reconnecting(publisher),
            settings,
            events,
            first_receiver: Mutex::new(Some(first_receiver)),
            _subscriber: AbortOnDrop(task),
        })
    }

    /// This instance's id, carried in its messages so it can ignore its own.
    pub fn instance_id(&self) -> &str {
        &self.settings.instance_id
    }

    /// The `CLIENT SETNAME` of the subscription connection (visible in `CLIENT LIST`).
    pub fn subscriber_client_name(&self) -> &str {
        &self.settings.client_name
    }

    /// The pub/sub channel.
    pub fn channel(&self) -> &str {
        &self.settings.channel
    }
}

#[async_trait]
impl InvalidationBus for RedisInvalidationBus {
    fn name(&self) -> &'static str {
        BACKEND
    }

    async fn publish(&self, invalidation: &Invalidation) -> Result<(), BackendError> {
        let message = WireMessage {
            origin: self.settings.instance_id.clone(),
            invalidation: invalidation.clone(),
        };
        let payload = serde_json::to_vec(&message)
            .map_err(|error| BackendError::new(BACKEND, "publish", error.to_string()))?;
        let mut connection = self.publisher.clone();
        let receivers: u64 = redis::cmd("PUBLISH")
            .arg(&self.settings.channel)
            .arg(payload)
            .query_async(&mut connection)
            .await
            .map_err(|error| BackendError::new(BACKEND, "publish", error.to_string()))?;
        tracing::debug!(
            channel = %self.settings.channel,
            receivers,
            "published cache invalidation"
        );
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.first_receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }
}

async fn run_subscriber(
    client: Client,
    settings: SubscriberSettings,
    events: broadcast::Sender<BusEvent>,
) {
    let mut delay = settings.reconnect_min_delay;
    loop {
        match subscribe(&client, &settings).await {
            Ok((connection, pushes)) => {
                delay = settings.reconnect_min_delay;
                tracing::info!(
                    channel = %settings.channel,
                    "subscribed to cache invalidations; dropping the local tier in case any were missed"
                );
                let _ = events.send(BusEvent::Resync);
                let reason = pump(connection, pushes, &settings, &events).await;
                tracing::warn!(
                    channel = %settings.channel,
                    %reason,
                    "cache invalidation subscription lost; reconnecting"
                );
            }
            Err(error) => {
                tracing::warn!(
                    channel = %settings.channel,
                    %error,
                    retry_in = ?delay,
                    "cannot subscribe to cache invalidations"
                );
            }
        }
        // Jitter so that many instances do not reconnect in lockstep.
        let jitter = delay.mul_f64(fastrand::f64() * 0.25);
        tokio::time::sleep(delay + jitter).await;
        delay = (delay * 2).min(settings.reconnect_max_delay);
    }
}

async fn subscribe(
    client: &Client,
    settings: &SubscriberSettings,
) -> Result<(MultiplexedConnection, mpsc::UnboundedReceiver<PushInfo>), RedisError> {
    let (push_sender, pushes) = mpsc::unbounded_channel();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.response_timeout))
        .set_push_sender(push_sender);
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(&settings.client_name)
        .exec_async(&mut connection)
        .await?;
    connection.subscribe(&settings.channel).await?;
    Ok((connection, pushes))
}

/// Forwards messages until the connection is lost; returns why it was.
async fn pump(
    mut connection: MultiplexedConnection,
    mut pushes: mpsc::UnboundedReceiver<PushInfo>,
    settings: &SubscriberSettings,
    events: &broadcast::Sender<BusEvent>,
) -> String {
    let period = settings.keepalive_interval;
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            push = pushes.recv() => {
                let Some(push) = push else {
                    return "connection closed".to_owned();
                };
                match push.kind {
                    PushKind::Disconnection => return "connection closed".to_owned(),
                    PushKind::Message => forward(push, settings, events),
                    _ => {}
                }
            }
            _ = keepalive.tick() => {
                if let Err(error) = redis::cmd("PING").exec_async(&mut connection).await {
                    return format!("keepalive ping failed: {error}");
                }
            }
        }
    }
}

fn forward(push: PushInfo, settings: &SubscriberSettings, events: &broadcast::Sender<BusEvent>) {
    let Some(message) = Msg::from_push_info(push) else {
        return;
    };
    let event = match serde_json::from_slice::<WireMessage>(message.get_payload_bytes()) {
        Ok(message) if message.origin == settings.instance_id => return,
        Ok(message) => BusEvent::Invalidate(message.invalidation),
        Err(error) => {
            // Something meant to invalidate, we cannot tell what: drop everything to be safe.
            tracing::warn!(
                channel = %settings.channel,
                %error,
                "unreadable cache invalidation message; dropping the local tier"
            );
            BusEvent::Resync
        }
    };
    let _ = events.send(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_the_stored_layout() {
        let config = RedisConfig::new("redis://127.0.0.1:1");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = runtime.enter();
        let store = RedisStore::new(&config).expect("lazy store");
        for value in [
            Fetched::Found(Bytes::from_static(b"{\"id\":1}")),
            Fetched::Found(Bytes::new()),
            Fetched::NotFound,
        ] {
            let raw = Bytes::from(RedisStore::encode(&value));
            assert_eq!(store.decode("k", &raw).expect("decodes"), value);
        }
        assert!(store.decode("k", &Bytes::from_static(b"xyz")).is_err());
        assert!(store.decode("k", &Bytes::new()).is_err());
        assert!(store.decode("k", &Bytes::from_static(b"Nx")).is_err());
    }

    #[test]
    fn an_empty_namespace_is_refused() {
        let config = RedisConfig::new("redis://127.0.0.1:1").with_namespace("");
        let error = check_namespace(&config).expect_err("empty namespace");
        assert!(error.message.contains("namespace"));
    }

    #[test]
    fn a_bad_url_error_does_not_leak_the_password() {
        let config = RedisConfig::new("notredis://user:hunter2@host:6379");
        let error = open_client(&config).expect_err("bad scheme");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn the_breaker_opens_for_the_cooldown_only() {
        let breaker = Breaker::new(Duration::from_secs(60));
        assert!(!breaker.is_open());
        breaker.trip();
        assert!(breaker.is_open());
        let closed = Breaker::new(Duration::ZERO);
        closed.trip();
        assert!(!closed.is_open());
    }
}
