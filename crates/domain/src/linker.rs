//! The port that turns normalised asset paths into URLs, and its three delivery modes
//! (`ASSET_DELIVERY`): presigned, proxy and dcs.
//!
//! The transformer asks for all distinct paths of a config in **one** call, so an async,
//! network-backed linker (dcs) costs one round of bounded-concurrency fetches per config, and
//! a local one (presigned, proxy) costs one boxed future per config, not one per path.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dcs_client::{AssetPath as DcsAssetPath, DcsApi, encode_segment};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, Semaphore};
use tokio::time::Instant;

use crate::asset_path::{BookAssetPath, BookRef};

/// Why a linker could not link a batch at all (per-path failures are `None` in the result).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The backend that makes the URLs (DCS, the object server) cannot be reached or refused
    /// to work; nothing useful can be served.
    #[error("content storage unavailable: {0}")]
    Unavailable(String),
}

impl LinkError {
    /// The stable error code (`content_storage_unavailable`).
    pub fn code(&self) -> &'static str {
        match self {
            LinkError::Unavailable(_) => "content_storage_unavailable",
        }
    }
}

/// Turns book-relative paths into URLs a browser can fetch.
#[async_trait]
pub trait AssetLinker: Send + Sync {
    /// One URL per path, in the same order; `None` when this path cannot be linked (the
    /// transformer serves it as JSON `null`). A whole-batch failure is a [`LinkError`].
    async fn link(
        &self,
        book: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError>;
}

#[async_trait]
impl<T: AssetLinker + ?Sized> AssetLinker for Arc<T> {
    async fn link(
        &self,
        book: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError> {
        (**self).link(book, paths).await
    }
}

// ---------------------------------------------------------------------------------------
// presigned

/// Signs a GET for one object key (`{publisher}/books/{book}/{path}` in bucket `publishers`).
/// Synchronous on purpose: SigV4 presigning is local computation, and keeping it sync keeps
/// the hot path free of per-path futures. `None` when this key cannot be signed.
pub trait Presign: Send + Sync {
    /// A presigned GET URL for `key`.
    fn presign(&self, key: &str) -> Option<String>;
}

impl<T: Presign + ?Sized> Presign for Arc<T> {
    fn presign(&self, key: &str) -> Option<String> {
        (**self).presign(key)
    }
}

/// `ASSET_DELIVERY=presigned`: each path is presigned locally by a [`Presign`] on every call.
/// No URL cache: the storage crate's presigner signs for the start of a fixed window, so the
/// same object gets the same URL all window long anyway, at about 0.7 µs per URL (see
/// `docs/benchmarks.md`).
#[derive(Debug, Clone)]
pub struct PresignedLinker<P> {
    presign: P,
}

impl<P: Presign> PresignedLinker<P> {
    /// Signs every path on every call.
    pub fn new(presign: P) -> Self {
        Self { presign }
    }
}

#[async_trait]
impl<P: Presign> AssetLinker for PresignedLinker<P> {
    async fn link(
        &self,
        book: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError> {
        Ok(paths
            .iter()
            .map(|path| self.presign.presign(&book.object_key(path)))
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// proxy

/// File extensions served by the `/media/` route (range requests, long streams).
const MEDIA_EXTENSIONS: &[&str] = &[
    "mp3", "wav", "ogg", "oga", "opus", "m4a", "aac", "flac", "weba", "mp4", "m4v", "webm", "mov",
    "ogv", "mkv", "avi",
];

/// Is this path audio or video (by extension)?
pub fn is_media(path: &BookAssetPath) -> bool {
    path.extension()
        .is_some_and(|ext| MEDIA_EXTENSIONS.contains(&ext.as_str()))
}

/// `ASSET_DELIVERY=proxy`: URLs on lms-api itself,
/// `{base}/api/v1/books/{id}/media/{path}` for audio and video and
/// `{base}/api/v1/books/{id}/assets/{path}` for the rest, each segment percent-encoded.
#[derive(Debug, Clone)]
pub struct ProxyLinker {
    base: String,
}

impl ProxyLinker {
    /// `public_base` is `LMS_PUBLIC_URL` (e.g. `http://127.0.0.1:8000`); a trailing `/` is
    /// ignored.
    pub fn new(public_base: &str) -> Self {
        Self {
            base: format!("{}/api/v1/books/", public_base.trim_end_matches('/')),
        }
    }

    /// The URL of one path.
    pub fn url(&self, book: &BookRef, path: &BookAssetPath) -> String {
        let route = if is_media(path) { "media" } else { "assets" };
        let mut url = String::with_capacity(self.base.len() + path.as_str().len() + 32);
        url.push_str(&self.base);
        url.push_str(&book.id().to_string());
        url.push('/');
        url.push_str(route);
        for segment in path.segments() {
            url.push('/');
            url.push_str(&encode_segment(segment));
        }
        url
    }
}

#[async_trait]
impl AssetLinker for ProxyLinker {
    async fn link(
        &self,
        book: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError> {
        Ok(paths.iter().map(|p| Some(self.url(book, p))).collect())
    }
}

// ---------------------------------------------------------------------------------------
// in memory (tests, local runs)

/// A linker for tests: `{prefix}{book id}/{path}`, counting calls, and able to fail on
/// demand or to have no URL for some paths.
#[derive(Debug, Default)]
pub struct MemoryLinker {
    prefix: String,
    unavailable: AtomicBool,
    missing: Mutex<Vec<String>>,
    calls: AtomicUsize,
    paths_seen: AtomicUsize,
}

impl MemoryLinker {
    /// URLs start with `prefix` (e.g. `mem://`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// From now on every call fails with [`LinkError::Unavailable`] (or succeeds again).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// This book-relative path gets no URL (`None`).
    pub fn set_missing(&self, path: &str) {
        lock(&self.missing).push(path.to_owned());
    }

    /// Number of `link` calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Number of paths asked for so far, over all calls.
    pub fn paths_seen(&self) -> usize {
        self.paths_seen.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl AssetLinker for MemoryLinker {
    async fn link(
        &self,
        book: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.paths_seen.fetch_add(paths.len(), Ordering::SeqCst);
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(LinkError::Unavailable(
                "memory linker set unavailable".into(),
            ));
        }
        let missing = lock(&self.missing);
        Ok(paths
            .iter()
            .map(|p| {
                (!missing.iter().any(|m| m == p.as_str()))
                    .then(|| format!("{}{}/{}", self.prefix, book.id(), p))
            })
            .collect())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------------------
// dcs

/// A URL handed out by DCS's `/storage/books/{publisher}/{book}/presigned` endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedUrl {
    /// The presigned URL (a bearer credential until it expires).
    pub url: String,
    /// How long it is valid from the moment it was fetched.
    pub expires_in: Duration,
}

impl fmt::Debug for FetchedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query string is the credential: keep it out of logs.
        let visible = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("FetchedUrl")
            .field("url", &format_args!("{visible}?…"))
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Fetches one presigned URL for (publisher, book, path) from DCS.
#[async_trait]
pub trait PresignedUrlFetcher: Send + Sync {
    /// `Ok(None)` when DCS has no URL for this path (refused or unknown path): served as
    /// `null`. `Err` when DCS is unavailable: the whole batch fails.
    async fn fetch(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
    ) -> Result<Option<FetchedUrl>, LinkError>;
}

#[async_trait]
impl<T: PresignedUrlFetcher + ?Sized> PresignedUrlFetcher for Arc<T> {
    async fn fetch(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
    ) -> Result<Option<FetchedUrl>, LinkError> {
        (**self).fetch(book, path).await
    }
}

/// [`PresignedUrlFetcher`] over the DCS client port.
#[derive(Clone)]
pub struct DcsApiFetcher {
    api: Arc<dyn DcsApi>,
    expires: Duration,
}

impl fmt::Debug for DcsApiFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DcsApiFetcher")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl DcsApiFetcher {
    /// Asks DCS for URLs valid for `expires` (DCS accepts 60 s..=86400 s).
    pub fn new(api: Arc<dyn DcsApi>, expires: Duration) -> Self {
        Self { api, expires }
    }
}

#[async_trait]
impl PresignedUrlFetcher for DcsApiFetcher {
    async fn fetch(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
    ) -> Result<Option<FetchedUrl>, LinkError> {
        // Our normalised paths satisfy the client's stricter rules; a refusal is per path.
        let Ok(dcs_path) = DcsAssetPath::parse(path.as_str()) else {
            return Ok(None);
        };
        match self
            .api
            .presigned_url(book.publisher(), book.book_name(), &dcs_path, self.expires)
            .await
        {
            Ok(p) => Ok(Some(FetchedUrl {
                url: p.url,
                expires_in: Duration::from_secs(p.expires_in),
            })),
            Err(e) if e.is_unavailable() || e.is_auth() => Err(LinkError::Unavailable(format!(
                "DCS presign failed: {} ({e})",
                e.code()
            ))),
            Err(e) => {
                tracing::warn!(book = book.book_name(), path = %path, error = %e, "DCS gave no presigned URL");
                Ok(None)
            }
        }
    }
}

/// Tuning of [`DcsLinker`].
#[derive(Debug, Clone, Copy)]
pub struct DcsLinkerConfig {
    /// URLs kept in memory (entries).
    pub capacity: usize,
    /// DCS presign calls in flight at once, over all books.
    pub max_concurrency: usize,
    /// A cached URL is handed out only while it stays valid at least this long, so a client
    /// that got it can still use it (`PRESIGN_MIN_REMAINING`).
    pub min_remaining: Duration,
}

impl Default for DcsLinkerConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            max_concurrency: 8,
            min_remaining: Duration::from_secs(2700),
        }
    }
}

#[derive(Clone)]
struct CachedUrl {
    url: String,
    usable_until: Instant,
}

type Flights = Mutex<HashMap<i64, Arc<AsyncMutex<()>>>>;

/// `ASSET_DELIVERY=dcs`: URLs from DCS's own presign endpoint, cached for their usable
/// lifetime, fetched with bounded concurrency, one fetching round per book at a time (a second
/// request for the same book waits and then reads what the first one cached).
pub struct DcsLinker<F> {
    fetcher: F,
    cache: quick_cache::sync::Cache<String, CachedUrl>,
    permits: Semaphore,
    flights: Flights,
    min_remaining: Duration,
}

impl<F> fmt::Debug for DcsLinker<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DcsLinker")
            .field("cached", &self.cache.len())
            .field("min_remaining", &self.min_remaining)
            .finish_non_exhaustive()
    }
}

impl<F: PresignedUrlFetcher> DcsLinker<F> {
    /// A linker over `fetcher`.
    pub fn new(fetcher: F, config: DcsLinkerConfig) -> Self {
        Self {
            fetcher,
            cache: quick_cache::sync::Cache::new(config.capacity.max(1)),
            permits: Semaphore::new(config.max_concurrency.max(1)),
            flights: Mutex::new(HashMap::new()),
            min_remaining: config.min_remaining,
        }
    }

    /// Number of cached URLs.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn cached_url(&self, key: &str, now: Instant) -> Option<String> {
        self.cache
            .get(key)
            .filter(|c| c.usable_until > now)
            .map(|c| c.url)
    }

    async fn enter_flight(&self, book_id: i64) -> Flight<'_> {
        let lock = Arc::clone(lock(&self.flights).entry(book_id).or_default());
        let guard = lock.lock_owned().await;
        Flight {
            flights: &self.flights,
            book_id,
            guard: Some(guard),
        }
    }
}

/// Holds a book's fetching round; on drop (also when the request is cancelled) it releases
/// the round and forgets the book's lock once nobody waits on it.
struct Flight<'a> {
    flights: &'a Flights,
    book_id: i64,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut flights = lock(self.flights);
        // Waiters clone the Arc under this map lock, so a count of 1 means none is waiting.
        if flights
            .get(&self.book_id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            flights.remove(&self.book_id);
        }
    }
}

#[async_trait]
impl<F: PresignedUrlFetcher> AssetLinker for DcsLinker<F> {
    async fn link(
        &self,
        book: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError> {
        let keys: Vec<String> = paths.iter().map(|p| book.object_key(p)).collect();
        let mut out: Vec<Option<String>> = vec![None; paths.len()];
        let now = Instant::now();
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.cached_url(key, now) {
                Some(url) => out[i] = Some(url),
                None => missing.push(i),
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }

        let _flight = self.enter_flight(book.id()).await;
        // Whoever held the round before us may have fetched what we miss.
        let now = Instant::now();
        missing.retain(|&i| match self.cached_url(&keys[i], now) {
            Some(url) => {
                out[i] = Some(url);
                false
            }
            None => true,
        });

        let fetches = missing.iter().map(|&i| async move {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| LinkError::Unavailable("linker shut down".into()))?;
            let started = Instant::now();
            let fetched = self.fetcher.fetch(book, &paths[i]).await?;
            Ok::<_, LinkError>((i, started, fetched))
        });
        let mut first_error = None;
        for result in futures_util::future::join_all(fetches).await {
            match result {
                Ok((i, started, Some(fetched))) => {
                    // Counted from before the request: the URL may have been signed then.
                    let usable_until = started
                        .checked_add(fetched.expires_in)
                        .and_then(|end| end.checked_sub(self.min_remaining));
                    if let Some(usable_until) = usable_until.filter(|u| *u > started) {
                        self.cache.insert(
                            keys[i].clone(),
                            CachedUrl {
                                url: fetched.url.clone(),
                                usable_until,
                            },
                        );
                    }
                    out[i] = Some(fetched.url);
                }
                Ok((_, _, None)) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset_path::normalize;

    #[derive(Default)]
    struct Counting {
        signed: AtomicUsize,
        refuse: Option<&'static str>,
    }

    impl Presign for Counting {
        fn presign(&self, key: &str) -> Option<String> {
            if self.refuse.is_some_and(|r| key.ends_with(r)) {
                return None;
            }
            let n = self.signed.fetch_add(1, Ordering::SeqCst) + 1;
            Some(format!("https://s3.test/{key}?n={n}"))
        }
    }

    fn setup() -> (BookRef, Vec<BookAssetPath>) {
        let book = BookRef::new(1, "P", "B").unwrap();
        let paths = ["a.png", "b/c.mp3", "no.png"]
            .iter()
            .map(|p| normalize(p, "B").unwrap())
            .collect();
        (book, paths)
    }

    #[tokio::test]
    async fn every_call_signs_and_refused_keys_are_none() {
        let (book, paths) = setup();
        let presign = Arc::new(Counting {
            refuse: Some("no.png"),
            ..Counting::default()
        });
        let linker = PresignedLinker::new(presign.clone());
        let first = linker.link(&book, &paths).await.unwrap();
        assert_eq!(
            first,
            vec![
                Some("https://s3.test/P/books/B/a.png?n=1".to_owned()),
                Some("https://s3.test/P/books/B/b/c.mp3?n=2".to_owned()),
                None,
            ]
        );
        linker.link(&book, &paths).await.unwrap();
        assert_eq!(presign.signed.load(Ordering::SeqCst), 4);
    }
}
