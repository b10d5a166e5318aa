//! Cache hit rate of the catalog under a Zipf-distributed replay with DCS webhooks mixed in.
//!
//! The domain `Catalog` runs as `lms-api serve` builds it (real DCS client, production cache
//! configuration and TTLs) against the in-process fake DCS with 200 books. Requests are drawn
//! Zipf(s) over the catalog's key space; every `--webhook-every` requests a Zipf-drawn book is
//! changed in DCS and its `book.updated` delivery is applied the way the webhook route applies
//! it (`WebhookEvent::parse` -> `invalidation_plan` -> `Catalog::invalidate`). Time is
//! simulated: the cache clock advances by `1 / --requests-per-second` per request, so TTL
//! expiry plays its part, and the periodic publisher re-sync runs on the simulated clock too.
//! Everything is seeded, so a run is deterministic.
//!
//! ```sh
//! cargo run --release -p lms-bench --bin zipf_replay -- --requests 200000
//! ```

use lms_bench as bench_support;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cache::{Cache, Freshness, ManualClock};
use clap::Parser;
use dcs_client::DcsClient;
use dcs_mock::{BookUpdate, MockDcs};
use domain::catalog::{BookQuery, Catalog, CatalogError, Served};
use domain::webhooks::WebhookEvent;
use lms_api::Settings;
use lms_api::background::resync_period;
use lms_api::services::{cache_config, catalog_ttls, dcs_config};

#[derive(Debug, Parser)]
#[command(about = "Catalog cache hit rate under a Zipf replay with webhook invalidations")]
struct Args {
    /// Catalog requests to replay.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Zipf exponent `s` (popularity of rank k is proportional to 1 / k^s).
    #[arg(long, default_value_t = 1.0)]
    zipf_exponent: f64,
    /// A `book.updated` webhook after every this many requests (0 = none).
    #[arg(long, default_value_t = 500)]
    webhook_every: u64,
    /// Simulated arrival rate; sets how far the cache clock moves per request.
    #[arg(long, default_value_t = 100)]
    requests_per_second: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 20_261_122)]
    seed: u64,
    /// Published books in the fake DCS (the sample book included).
    #[arg(long, default_value_t = 200)]
    books: usize,
}

/// One catalog read, as a route would make it.
#[derive(Debug, Clone)]
enum Read {
    BookList(BookQuery),
    Publishers,
    Publisher(i64),
    Book(i64),
}

impl Read {
    async fn run(&self, catalog: &Catalog) -> Result<Served<bytes::Bytes>, CatalogError> {
        match self {
            Read::BookList(query) => catalog.books(query).await,
            Read::Publishers => catalog.publishers().await,
            Read::Publisher(id) => catalog.publisher(*id).await,
            Read::Book(id) => catalog.book(*id).await,
        }
    }
}

/// Zipf sampling by inverse CDF over precomputed cumulative weights. Written here rather than
/// taken from a crate: it is a dozen lines and the replay needs nothing else from one.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(ranks: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=ranks)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// A rank in `0..ranks`, rank 0 the most popular.
    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = rng.f64() * total;
        self.cumulative
            .partition_point(|&c| c <= target)
            .min(self.cumulative.len() - 1)
    }
}

/// The reads in popularity order. Book-list pages come first: they are the catalog's landing
/// pages, and every book webhook drops all of them, so ranking them highest is also the
/// pessimistic choice for the hit rate. Then the publisher list, then book records and single
/// publishers in a seeded random order.
fn key_space(dcs: &MockDcs, rng: &mut fastrand::Rng) -> Result<Vec<Read>, CatalogError> {
    let mut publishers: Vec<(i64, usize)> = dcs
        .publishers()
        .iter()
        .map(|p| {
            let books = dcs
                .books()
                .iter()
                .filter(|b| b.publisher_id == p.id)
                .count();
            (p.id, books)
        })
        .collect();
    publishers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let filters = std::iter::once(None).chain(publishers.iter().take(4).map(|p| Some(p.0)));
    let mut reads = Vec::new();
    for publisher in filters {
        for (skip, limit) in [(0, 20), (20, 20), (40, 20), (0, 100)] {
            let query = BookQuery::new(publisher, false, None, Some(skip), Some(limit))?;
            reads.push(Read::BookList(query));
        }
    }
    reads.push(Read::Publishers);
    let mut records: Vec<Read> = dcs
        .books()
        .iter()
        .map(|b| Read::Book(b.id))
        .chain(publishers.iter().map(|p| Read::Publisher(p.0)))
        .collect();
    rng.shuffle(&mut records);
    reads.extend(records);
    Ok(reads)
}

/// The body DCS sends for `book.updated` (its key order; title falls back to the book name,
/// a missing category is sent as "").
fn book_updated_delivery(book: &dcs_mock::Book) -> Vec<u8> {
    let body = serde_json::json!({
        "event": "book.updated",
        "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        "data": {
            "id": book.id,
            "book_name": book.book_name,
            "book_title": book.book_title.as_deref().unwrap_or(&book.book_name),
            "publisher": book.publisher,
            "language": book.language,
            "category": book.category.as_deref().unwrap_or(""),
            "status": book.status.as_str(),
        }
    });
    serde_json::to_vec(&body).expect("JSON values serialise")
}

#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    served_from_cache: u64,
    webhooks: u64,
    resyncs: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match replay(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("zipf_replay: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn replay(args: &Args) -> Result<(), String> {
    if args.requests_per_second == 0 {
        return Err("--requests-per-second must be positive".into());
    }
    let dcs = bench_support::start_dcs_with_books(args.books)
        .await
        .map_err(|e| format!("fake DCS: {e}"))?;
    let settings = Settings::from_lookup(|name| {
        (name == "DREAM_CENTRAL_STORAGE_URL").then(|| dcs.base_url().to_owned())
    })
    .map_err(|e| e.to_string())?;
    let client = DcsClient::new(dcs_config(&settings)).map_err(|e| e.to_string())?;
    let clock = ManualClock::new();
    let cache = Cache::builder(cache_config(&settings))
        .clock(Arc::new(clock.clone()))
        .build();
    let ttls = catalog_ttls(&settings);
    let catalog = Catalog::new(
        Arc::new(client),
        cache,
        ttls,
        Arc::new(lms_api::paths::ApiLinks),
    );

    let mut rng = fastrand::Rng::with_seed(args.seed);
    let reads = key_space(&dcs, &mut rng).map_err(|e| e.to_string())?;
    let popularity = Zipf::new(reads.len(), args.zipf_exponent);
    let books_by_popularity: Vec<i64> = reads
        .iter()
        .filter_map(|read| match read {
            Read::Book(id) => Some(*id),
            _ => None,
        })
        .collect();
    let book_popularity = Zipf::new(books_by_popularity.len(), args.zipf_exponent);

    let tick = Duration::from_secs(1) / args.requests_per_second;
    let resync_every = resync_period(ttls.publishers);
    let mut since_resync = Duration::ZERO;
    let mut tally = Tally::default();
    // The server re-syncs publishers once at start.
    catalog
        .resync_publishers()
        .await
        .map_err(|e| format!("publisher re-sync: {e}"))?;
    tally.resyncs += 1;

    for n in 1..=args.requests {
        let read = &reads[popularity.sample(&mut rng)];
        let served = read
            .run(&catalog)
            .await
            .map_err(|e| format!("{read:?}: {e}"))?;
        tally.requests += 1;
        if served.freshness == Freshness::Fresh {
            tally.served_from_cache += 1;
        }

        if args.webhook_every > 0 && n % args.webhook_every == 0 {
            let id = books_by_popularity[book_popularity.sample(&mut rng)];
            // An empty update is a touch: DCS bumps `updated_at` and sends `book.updated`.
            let book = dcs
                .update_book(id, BookUpdate::default())
                .map_err(|e| format!("update book {id}: {e}"))?;
            let event = WebhookEvent::parse(&book_updated_delivery(&book))
                .map_err(|e| format!("webhook: {e}"))?;
            catalog
                .invalidate(&event.invalidation_plan())
                .await
                .map_err(|e| format!("invalidate: {e}"))?;
            tally.webhooks += 1;
        }

        clock.advance(tick);
        since_resync += tick;
        if since_resync >= resync_every {
            since_resync = Duration::ZERO;
            catalog
                .resync_publishers()
                .await
                .map_err(|e| format!("publisher re-sync: {e}"))?;
            tally.resyncs += 1;
        }
    }

    let stats = catalog.cache().stats();
    let dcs_requests = dcs.request_count("/");
    let stale_books = stale_book_records(&catalog, &dcs).await?;
    report(
        args,
        &tally,
        &stats,
        reads.len(),
        dcs_requests,
        stale_books,
        tick,
    );
    if stale_books > 0 {
        return Err(format!(
            "{stale_books} book records were served older than DCS's copy after the replay"
        ));
    }
    Ok(())
}

/// Book records whose `updated_at` differs from DCS's after the replay: each change was
/// announced by a webhook, so there must be none.
async fn stale_book_records(catalog: &Catalog, dcs: &MockDcs) -> Result<usize, String> {
    let mut stale = 0;
    for book in dcs.books() {
        let served = catalog
            .book(book.id)
            .await
            .map_err(|e| format!("book {}: {e}", book.id))?;
        let record: serde_json::Value =
            serde_json::from_slice(&served.value).map_err(|e| e.to_string())?;
        let served_at = record["updated_at"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .ok_or_else(|| format!("book {}: no updated_at", book.id))?;
        if served_at.timestamp_micros() != book.updated_at.timestamp_micros() {
            stale += 1;
        }
    }
    Ok(stale)
}

fn report(
    args: &Args,
    tally: &Tally,
    stats: &cache::CacheStats,
    keys: usize,
    dcs_requests: usize,
    stale_books: usize,
    tick: Duration,
) {
    let simulated = tick * u32::try_from(tally.requests).unwrap_or(u32::MAX);
    let percent = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            100.0 * part as f64 / whole as f64
        }
    };
    println!(
        "Zipf replay: {} requests, s = {}, {} keys, seed {}, {} req/s simulated ({:.0} s), \
         a book.updated webhook every {} requests",
        tally.requests,
        args.zipf_exponent,
        keys,
        args.seed,
        args.requests_per_second,
        simulated.as_secs_f64(),
        args.webhook_every,
    );
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| cache hit rate, hits / (hits + misses) | **{:.2}%** ({} hits, {} misses) |",
        100.0 * stats.hit_rate,
        stats.hits,
        stats.misses
    );
    println!(
        "| requests answered from cache (`X-Cache: HIT`) | {:.2}% ({} of {}) |",
        percent(tally.served_from_cache, tally.requests),
        tally.served_from_cache,
        tally.requests
    );
    println!(
        "| requests that reached DCS | {} ({:.2} per 100 catalog requests) |",
        dcs_requests,
        percent(dcs_requests as u64, tally.requests)
    );
    println!(
        "| webhooks applied / entries they dropped | {} / {} |",
        tally.webhooks, stats.invalidated_entries
    );
    println!(
        "| publisher re-syncs (simulated schedule) | {} |",
        tally.resyncs
    );
    println!(
        "| fetches / fetch errors / stale answers | {} / {} / {} |",
        stats.fetches, stats.fetch_errors, stats.stale_served
    );
    println!("| book records older than DCS's after the replay | {stale_books} |");
}
