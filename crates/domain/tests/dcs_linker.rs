//! The dcs delivery mode: TTL cache, bounded concurrency, single flight per book, outages.
//! Tokio's clock is paused, so lifetimes and delays pass without sleeping.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::asset_path::{BookAssetPath, BookRef, normalize};
use domain::linker::{
    AssetLinker, DcsLinker, DcsLinkerConfig, FetchedUrl, LinkError, PresignedUrlFetcher,
};

/// Counts calls and the most calls in flight at once; every call takes `delay`.
struct Fetcher {
    delay: Duration,
    expires_in: Duration,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    down: AtomicBool,
    missing: Mutex<Vec<String>>,
}

impl Fetcher {
    fn new(delay: Duration, expires_in: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            expires_in,
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            missing: Mutex::new(Vec::new()),
        })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PresignedUrlFetcher for Fetcher {
    async fn fetch(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
    ) -> Result<Option<FetchedUrl>, LinkError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(LinkError::Unavailable("DCS 503".into()));
        }
        if self
            .missing
            .lock()
            .unwrap()
            .iter()
            .any(|m| m == path.as_str())
        {
            return Ok(None);
        }
        Ok(Some(FetchedUrl {
            url: format!("https://minio.test/{}?call={n}", book.object_key(path)),
            expires_in: self.expires_in,
        }))
    }
}

fn book(id: i64) -> BookRef {
    BookRef::new(id, "P", format!("B{id}")).unwrap()
}

fn paths(n: usize) -> Vec<BookAssetPath> {
    (0..n)
        .map(|i| normalize(&format!("images/{i}.png"), "B").unwrap())
        .collect()
}

fn config(max_concurrency: usize, min_remaining: u64) -> DcsLinkerConfig {
    DcsLinkerConfig {
        capacity: 1000,
        max_concurrency,
        min_remaining: Duration::from_secs(min_remaining),
    }
}

#[tokio::test(start_paused = true)]
async fn urls_are_cached_while_they_keep_min_remaining() {
    let fetcher = Fetcher::new(Duration::ZERO, Duration::from_secs(300));
    let linker = DcsLinker::new(fetcher.clone(), config(4, 100));
    let (b, p) = (book(1), paths(3));

    let first = linker.link(&b, &p).await.unwrap();
    assert_eq!(fetcher.calls(), 3);
    assert_eq!(
        first[0].as_deref(),
        Some("https://minio.test/P/books/B1/images/0.png?call=1")
    );
    assert_eq!(linker.link(&b, &p).await.unwrap(), first);
    assert_eq!(fetcher.calls(), 3);
    assert_eq!(linker.cached(), 3);

    // Usable for 300 - 100 = 200 s after the fetch started.
    tokio::time::advance(Duration::from_secs(199)).await;
    assert_eq!(linker.link(&b, &p).await.unwrap(), first);
    assert_eq!(fetcher.calls(), 3);
    tokio::time::advance(Duration::from_secs(2)).await;
    let renewed = linker.link(&b, &p).await.unwrap();
    assert_eq!(fetcher.calls(), 6);
    assert_ne!(renewed, first);

    // Only what is missing is fetched.
    let mut more = p.clone();
    more.push(normalize("audio/x.mp3", "B").unwrap());
    linker.link(&b, &more).await.unwrap();
    assert_eq!(fetcher.calls(), 7);
}

#[tokio::test(start_paused = true)]
async fn urls_too_short_lived_to_cache_are_used_once() {
    let fetcher = Fetcher::new(Duration::ZERO, Duration::from_secs(60));
    let linker = DcsLinker::new(fetcher.clone(), config(4, 100));
    let (b, p) = (book(1), paths(2));
    let urls = linker.link(&b, &p).await.unwrap();
    assert!(urls.iter().all(Option::is_some));
    linker.link(&b, &p).await.unwrap();
    assert_eq!(fetcher.calls(), 4);
    assert_eq!(linker.cached(), 0);
}

#[tokio::test(start_paused = true)]
async fn one_fetching_round_per_book_at_a_time() {
    let fetcher = Fetcher::new(Duration::from_secs(1), Duration::from_secs(3600));
    let linker = DcsLinker::new(fetcher.clone(), config(16, 60));
    let p = paths(5);
    let (b1, b2) = (book(1), book(2));

    // Three concurrent requests for book 1: one fetches, the others wait and read the cache.
    let (x, y, z) = tokio::join!(
        linker.link(&b1, &p),
        linker.link(&b1, &p),
        linker.link(&b1, &p)
    );
    assert_eq!(fetcher.calls(), 5);
    assert_eq!(x.unwrap(), y.unwrap());
    assert!(z.unwrap().iter().all(Option::is_some));

    // Two books do not wait for each other.
    let started = tokio::time::Instant::now();
    let p2 = paths(6);
    let b3 = book(3);
    let (a, c) = tokio::join!(linker.link(&b2, &p2), linker.link(&b3, &p2));
    a.unwrap();
    c.unwrap();
    assert_eq!(fetcher.calls(), 5 + 12);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "rounds ran in parallel"
    );
    assert_eq!(fetcher.max_in_flight.load(Ordering::SeqCst), 12);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_over_all_books() {
    let fetcher = Fetcher::new(Duration::from_millis(100), Duration::from_secs(3600));
    let linker = DcsLinker::new(fetcher.clone(), config(3, 60));
    let p = paths(10);
    let started = tokio::time::Instant::now();
    let (b1, b2) = (book(1), book(2));
    let (a, b) = tokio::join!(linker.link(&b1, &p), linker.link(&b2, &p));
    assert!(
        a.unwrap()
            .iter()
            .chain(b.unwrap().iter())
            .all(Option::is_some)
    );
    assert_eq!(fetcher.calls(), 20);
    assert_eq!(fetcher.max_in_flight.load(Ordering::SeqCst), 3);
    // 20 calls, 3 at a time, 100 ms each: 7 rounds.
    assert_eq!(started.elapsed(), Duration::from_millis(700));
}

#[tokio::test(start_paused = true)]
async fn outages_fail_the_batch_and_missing_paths_are_none() {
    let fetcher = Fetcher::new(Duration::ZERO, Duration::from_secs(3600));
    let linker = DcsLinker::new(fetcher.clone(), config(4, 60));
    let (b, p) = (book(1), paths(3));
    fetcher.missing.lock().unwrap().push("images/1.png".into());
    let urls = linker.link(&b, &p).await.unwrap();
    assert!(urls[0].is_some() && urls[1].is_none() && urls[2].is_some());

    fetcher.down.store(true, Ordering::SeqCst);
    // Cached paths still work without DCS.
    let cached = vec![p[0].clone(), p[2].clone()];
    assert_eq!(
        linker.link(&b, &cached).await.unwrap(),
        vec![urls[0].clone(), urls[2].clone()]
    );
    let err = linker.link(&b, &paths(5)).await.unwrap_err();
    assert_eq!(err.code(), "content_storage_unavailable");

    fetcher.down.store(false, Ordering::SeqCst);
    assert!(linker.link(&b, &paths(5)).await.unwrap()[4].is_some());
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_round_does_not_block_the_book() {
    let fetcher = Fetcher::new(Duration::from_secs(10), Duration::from_secs(3600));
    let linker = DcsLinker::new(fetcher.clone(), config(4, 60));
    let (b, p) = (book(1), paths(2));
    let cancelled = tokio::time::timeout(Duration::from_secs(1), linker.link(&b, &p)).await;
    assert!(cancelled.is_err());
    let urls = tokio::time::timeout(Duration::from_secs(11), linker.link(&b, &p))
        .await
        .expect("the book's round was released")
        .unwrap();
    assert!(urls.iter().all(Option::is_some));
}
