//! The mixed load and soak run: the release `lms-api serve` as its own process (on embedded
//! defaults: SQLite, the filesystem object store, proxy asset delivery; or with
//! `--backends production` on PostgreSQL, Redis and S3) against the fake DCS,
//! driven for a fixed time (60 s by default) by concurrent simulated users in a fixed mix of
//! catalog reads, config transforms, activity starts, media range requests on the signed URLs
//! the configs hand out, teacher uploads (each deleted again) and signed `book.updated`
//! webhook deliveries (which invalidate the cache, so reads see misses too).
//!
//! Records per operation the count, the answers by status, and p50/p90/p99/max latency; the
//! overall request rate; lms-api's RSS once a second from `/proc`. Prints a Markdown report and
//! exits non-zero on any 5xx, transport error or unexpected answer, when lms-api dies, or when
//! its RSS is not flat (see [`rss_verdict`]).
//!
//! ```sh
//! cargo build --release --locked -p lms-api -p lms-bench
//! target/release/soak_bench --lms-api target/release/lms-api --duration 60 --clients 24
//! # the same on PostgreSQL, Redis and S3 (s3s-fs) on loopback:
//! target/release/soak_bench --lms-api target/release/lms-api --backends production
//! ```
//!
//! Each simulated user has its own keep-alive connection from its own loopback address
//! (127.0.1.N), as browsers on different machines would: lms-api caps streamed answers per
//! client (token subject, else remote IP), and signed media URLs carry no token.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use domain::webhooks::{SIGNATURE_HEADER, SignatureVerifier};
use lms_api::auth::{JwtKeys, Role};
use lms_bench::production::ProductionBackends;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, RANGE};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

const JWT_SECRET: &str = "soak-bench-jwt-secret-0123456789abcdef01";
const WEBHOOK_SECRET: &str = "soak-bench-webhook-secret-0123456789";
const BOUNDARY: &str = "----soak-bench-boundary-5f1c";
/// A request that takes longer than this counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Smallest media object of the sample book (`audio/02_extra.mp3`, `audio/03.mp3`): every
/// range the harness asks for starts below it, so each must be answered 206.
const MEDIA_MIN_SIZE: u64 = 4056;

#[derive(Debug, Parser)]
#[command(about = "Mixed load for a fixed time against the release lms-api: latency, errors, RSS")]
struct Args {
    /// The lms-api release binary.
    #[arg(long, default_value = "target/release/lms-api")]
    lms_api: PathBuf,
    /// Seconds of mixed load.
    #[arg(long, env = "SOAK_DURATION", default_value_t = 60)]
    duration: u64,
    /// Concurrent simulated users, each on its own keep-alive connection (at most 250).
    #[arg(long, env = "SOAK_CLIENTS", default_value_t = 24)]
    clients: usize,
    /// Published books in the fake DCS (the sample book and copies of it).
    #[arg(long, default_value_t = 20)]
    books: usize,
    /// Seed of the users' random choices.
    #[arg(long, default_value_t = 20_261_202)]
    seed: u64,
    /// What lms-api runs on: `embedded` (its defaults: SQLite, the filesystem store) or
    /// `production` (PostgreSQL, Redis and S3 on loopback; see `lms_bench::production`).
    #[arg(long, value_enum, default_value_t = Backends::Embedded)]
    backends: Backends,
    /// With `--backends production`: a URL of any database on the PostgreSQL server the run's
    /// own database is created on.
    #[arg(
        long,
        env = "TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres_url: String,
    /// RSS flatness bound, absolute part (MiB): see `rss_verdict`.
    #[arg(long, default_value_t = 4.0)]
    rss_slack_mib: f64,
    /// RSS flatness bound, relative part (% of the middle third's peak): see `rss_verdict`.
    #[arg(long, default_value_t = 10.0)]
    rss_slack_percent: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backends {
    Embedded,
    Production,
}

/// The operations of the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Op {
    BookList,
    BookDetail,
    Publishers,
    Activities,
    Config,
    ActivityStart,
    MediaRange,
    Upload,
    /// Follows every successful upload (not drawn from the mix).
    DeleteMaterial,
    Webhook,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::BookList => "catalog: `GET /books?skip&limit=20`",
            Op::BookDetail => "catalog: `GET /books/{id}`",
            Op::Publishers => "catalog: `GET /publishers`",
            Op::Activities => "activities: `GET /books/{id}/activities`",
            Op::Config => "config transform: `GET /books/{id}/config`",
            Op::ActivityStart => "config transform: `GET /activities/{id}/start`",
            Op::MediaRange => "media range: signed `/books/{id}/media/...` + `Range`",
            Op::Upload => "upload: `POST /teachers/materials/upload` (1-32 KiB PNG)",
            Op::DeleteMaterial => "upload clean-up: `DELETE /teachers/materials/{id}`",
            Op::Webhook => "webhook: signed `book.updated`",
        }
    }
}

/// The fixed mix: relative weights of the operations a user draws (they sum to 100).
const MIX: &[(Op, u32)] = &[
    (Op::BookList, 18),
    (Op::BookDetail, 14),
    (Op::Publishers, 4),
    (Op::Activities, 10),
    (Op::Config, 14),
    (Op::ActivityStart, 6),
    (Op::MediaRange, 26),
    (Op::Upload, 5),
    (Op::Webhook, 3),
];

#[derive(Debug, Default)]
struct OpStats {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    /// Answers with the expected status whose body or headers were wrong.
    invalid: u64,
    /// The first few problems, for the report.
    samples: Vec<String>,
}

impl OpStats {
    fn note(&mut self, problem: String) {
        if self.samples.len() < 3 {
            self.samples.push(problem);
        }
    }

    fn merge(&mut self, other: OpStats) {
        self.latencies_us.extend(other.latencies_us);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.transport_errors += other.transport_errors;
        self.invalid += other.invalid;
        for sample in other.samples {
            self.note(sample);
        }
    }

    fn count(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }
}

/// A book of the fake DCS, as its webhook payload names it.
#[derive(Debug, Clone)]
struct BookInfo {
    id: i64,
    book_name: String,
    book_title: String,
    publisher: String,
    language: String,
    category: String,
}

/// What the users share: the book ids, and the URLs and ids the server handed out.
#[derive(Debug)]
struct Shared {
    base: String,
    books: Vec<BookInfo>,
    /// Signed media URLs from the transformed configs (refreshed by every config read).
    media_urls: Mutex<HashMap<i64, Vec<String>>>,
    activity_ids: Mutex<Vec<i64>>,
    signer: SignatureVerifier,
    /// End of the load, set when it starts.
    deadline: OnceLock<Instant>,
}

/// One simulated user: a student reading, a teacher uploading, on one connection.
struct User {
    client: reqwest::Client,
    student: String,
    teacher: String,
    rng: fastrand::Rng,
    stats: HashMap<Op, OpStats>,
    shared: Arc<Shared>,
}

/// Every string in `value` that is a media URL of this API.
fn collect_media_urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains("/api/v1/books/") && s.contains("/media/") => {
            out.push(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| collect_media_urls(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_media_urls(v, out)),
        _ => {}
    }
}

impl User {
    /// Sends one request; records its latency (until the whole body is read) and status.
    /// Returns the headers and body when the status is the expected one.
    async fn call(
        &mut self,
        op: Op,
        request: reqwest::RequestBuilder,
        expect: StatusCode,
    ) -> Option<(HeaderMap, Bytes)> {
        let started = Instant::now();
        let result = async {
            let response = request.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        }
        .await;
        let elapsed = started.elapsed();
        let stats = self.stats.entry(op).or_default();
        match result {
            Err(error) => {
                stats.transport_errors += 1;
                stats.note(format!("transport error: {error}"));
                None
            }
            Ok((status, headers, body)) => {
                stats
                    .latencies_us
                    .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
                *stats.statuses.entry(status.as_u16()).or_default() += 1;
                if status == expect {
                    Some((headers, body))
                } else {
                    stats.note(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                    None
                }
            }
        }
    }

    fn invalid(&mut self, op: Op, problem: String) {
        let stats = self.stats.entry(op).or_default();
        stats.invalid += 1;
        stats.note(problem);
    }

    fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.shared.base))
            .header(AUTHORIZATION, format!("Bearer {token}"))
    }

    fn book(&mut self) -> BookInfo {
        let books = &self.shared.books;
        books[self.rng.usize(..books.len())].clone()
    }

    fn draw(&mut self) -> Op {
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.u32(..total);
        for &(op, weight) in MIX {
            if pick < weight {
                return op;
            }
            pick -= weight;
        }
        unreachable!("the pick is below the total weight")
    }

    async fn run(mut self) -> HashMap<Op, OpStats> {
        let deadline = *self.shared.deadline.get().expect("the load has started");
        while Instant::now() < deadline {
            match self.draw() {
                Op::BookList => self.book_list().await,
                Op::BookDetail => self.book_detail().await,
                Op::Publishers => {
                    let request = self.get("/api/v1/publishers", &self.student.clone());
                    self.json(Op::Publishers, request).await;
                }
                Op::Activities => self.activities().await,
                Op::Config => self.config().await,
                Op::ActivityStart => self.activity_start().await,
                Op::MediaRange => self.media_range().await,
                Op::Upload => self.upload().await,
                Op::DeleteMaterial => unreachable!("not in the mix"),
                Op::Webhook => self.webhook().await,
            }
        }
        self.stats
    }

    /// A `200` JSON answer, parsed.
    async fn json(&mut self, op: Op, request: reqwest::RequestBuilder) -> Option<Value> {
        let (_, body) = self.call(op, request, StatusCode::OK).await?;
        match serde_json::from_slice(&body) {
            Ok(value) => Some(value),
            Err(error) => {
                self.invalid(op, format!("not JSON: {error}"));
                None
            }
        }
    }

    async fn book_list(&mut self) {
        let pages = self.shared.books.len().div_ceil(20).max(1);
        let skip = self.rng.usize(..pages) * 20;
        let request = self.get(
            &format!("/api/v1/books?skip={skip}&limit=20"),
            &self.student.clone(),
        );
        if let Some(page) = self.json(Op::BookList, request).await
            && page["total"].as_u64() != Some(self.shared.books.len() as u64)
        {
            self.invalid(Op::BookList, format!("unexpected total: {}", page["total"]));
        }
    }

    async fn book_detail(&mut self) {
        let book = self.book();
        let request = self.get(&format!("/api/v1/books/{}", book.id), &self.student.clone());
        if let Some(record) = self.json(Op::BookDetail, request).await
            && record["id"].as_i64() != Some(book.id)
        {
            self.invalid(Op::BookDetail, format!("wrong book: {}", record["id"]));
        }
    }

    async fn activities(&mut self) {
        let book = self.book();
        let request = self.get(
            &format!("/api/v1/books/{}/activities", book.id),
            &self.student.clone(),
        );
        let Some(list) = self.json(Op::Activities, request).await else {
            return;
        };
        let ids: Vec<i64> = list["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|a| a["id"].as_i64()).collect())
            .unwrap_or_default();
        if ids.is_empty() {
            self.invalid(
                Op::Activities,
                format!("no activities for book {}", book.id),
            );
            return;
        }
        let mut known = self.shared.activity_ids.lock().unwrap();
        for id in ids {
            if !known.contains(&id) {
                known.push(id);
            }
        }
    }

    async fn config(&mut self) {
        let book = self.book();
        let request = self.get(
            &format!("/api/v1/books/{}/config", book.id),
            &self.student.clone(),
        );
        let Some(config) = self.json(Op::Config, request).await else {
            return;
        };
        let mut urls = Vec::new();
        collect_media_urls(&config, &mut urls);
        if !urls.is_empty() {
            self.shared.media_urls.lock().unwrap().insert(book.id, urls);
        }
    }

    async fn activity_start(&mut self) {
        let id = {
            let known = self.shared.activity_ids.lock().unwrap();
            if known.is_empty() {
                None
            } else {
                Some(known[self.rng.usize(..known.len())])
            }
        };
        let Some(id) = id else {
            return self.activities().await;
        };
        let request = self.get(
            &format!("/api/v1/activities/{id}/start"),
            &self.student.clone(),
        );
        if let Some(start) = self.json(Op::ActivityStart, request).await
            && start["config"].is_null()
        {
            self.invalid(Op::ActivityStart, format!("activity {id}: no config"));
        }
    }

    /// A range of a media object through the signed URL a config handed out (no token: as an
    /// `<audio>` element fetches it). Closed, open and suffix ranges, all satisfiable.
    async fn media_range(&mut self) {
        let url = {
            let pool = self.shared.media_urls.lock().unwrap();
            let books: Vec<&Vec<String>> = pool.values().collect();
            if books.is_empty() {
                None
            } else {
                let urls = books[self.rng.usize(..books.len())];
                Some(urls[self.rng.usize(..urls.len())].clone())
            }
        };
        let Some(url) = url else {
            return self.config().await;
        };
        let start = self.rng.u64(..MEDIA_MIN_SIZE - 1);
        let (range, expected_start) = match self.rng.u8(..3) {
            0 => {
                let end = (start + self.rng.u64(..2048)).min(MEDIA_MIN_SIZE - 1);
                (format!("bytes={start}-{end}"), Some(start))
            }
            1 => (format!("bytes={start}-"), Some(start)),
            _ => (format!("bytes=-{}", self.rng.u64(1..1024)), None),
        };
        let request = self.client.get(url).header(RANGE, range.clone());
        let Some((headers, body)) = self
            .call(Op::MediaRange, request, StatusCode::PARTIAL_CONTENT)
            .await
        else {
            return;
        };
        // `Content-Range: bytes a-b/size`: the body must be exactly b - a + 1 bytes.
        let content_range = headers
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let parsed = content_range
            .strip_prefix("bytes ")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(span, _)| span.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
        let ok = parsed.is_some_and(|(a, b)| {
            b >= a && body.len() as u64 == b - a + 1 && expected_start.is_none_or(|s| s == a)
        });
        if !ok {
            self.invalid(
                Op::MediaRange,
                format!(
                    "{range}: Content-Range `{content_range}` with {} bytes",
                    body.len()
                ),
            );
        }
    }

    /// A small PNG uploaded by the user's teacher, then deleted (so the quota never runs out).
    async fn upload(&mut self) {
        let size = self.rng.usize(1024..=32 * 1024);
        let mut file = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
        let rng = &mut self.rng;
        file.resize_with(size, || rng.u8(..));
        let mut body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nsoak page\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"page.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&file);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let request = self
            .client
            .post(format!(
                "{}/api/v1/teachers/materials/upload",
                self.shared.base
            ))
            .header(AUTHORIZATION, format!("Bearer {}", self.teacher))
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body);
        let Some((_, answer)) = self.call(Op::Upload, request, StatusCode::CREATED).await else {
            return;
        };
        let created: Value = serde_json::from_slice(&answer).unwrap_or_default();
        let Some(id) = created["material"]["id"].as_str().map(str::to_owned) else {
            return self.invalid(Op::Upload, "no material id in the answer".to_owned());
        };
        if created["material"]["file_size"].as_u64() != Some(size as u64) {
            self.invalid(
                Op::Upload,
                format!(
                    "file_size {} for {size} bytes",
                    created["material"]["file_size"]
                ),
            );
        }
        let request = self
            .client
            .delete(format!(
                "{}/api/v1/teachers/materials/{id}",
                self.shared.base
            ))
            .header(AUTHORIZATION, format!("Bearer {}", self.teacher));
        self.call(Op::DeleteMaterial, request, StatusCode::OK).await;
    }

    /// A `book.updated` delivery as DCS sends it: compact JSON, a fresh timestamp (so no two
    /// deliveries share a digest), `X-Webhook-Signature` over the raw bytes.
    async fn webhook(&mut self) {
        let book = self.book();
        let text = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let body = format!(
            "{{\"event\":\"book.updated\",\"timestamp\":\"{timestamp}\",\"data\":{{\"id\":{},\
             \"book_name\":{},\"book_title\":{},\"publisher\":{},\"language\":{},\
             \"category\":{},\"status\":\"published\"}}}}",
            book.id,
            text(&book.book_name),
            text(&book.book_title),
            text(&book.publisher),
            text(&book.language),
            text(&book.category),
        );
        let signature = self.shared.signer.sign(body.as_bytes());
        let request = self
            .client
            .post(format!(
                "{}/api/v1/webhooks/dream-storage",
                self.shared.base
            ))
            .header(CONTENT_TYPE, "application/json")
            .header("User-Agent", "Dream-Central-Storage-Webhook/1.0")
            .header(SIGNATURE_HEADER, signature)
            .body(body);
        if let Some((_, answer)) = self.call(Op::Webhook, request, StatusCode::OK).await {
            let receipt: Value = serde_json::from_slice(&answer).unwrap_or_default();
            if receipt["outcome"] != "processed" || receipt["duplicate"] != false {
                self.invalid(
                    Op::Webhook,
                    format!("receipt: {}", String::from_utf8_lossy(&answer)),
                );
            }
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Whether lms-api's RSS stayed flat, from one sample per second over the load.
///
/// The first third of the run is warm-up and not judged: caches fill, every worker and
/// blocking thread touches its allocator arena, connection buffers reach their size. After
/// it, nothing the server holds should grow with the number of requests: the cache is bounded
/// by its capacity and these few books fit in it, the connections are a fixed set of
/// keep-alive ones, uploads are streamed to disk and deleted, and the delivery log and
/// activities live in SQLite's file (its page cache is bounded). What still moves is allocator
/// fragmentation and arena reuse, and the page caches filling as the database grows: in a 300 s
/// run (docs/benchmarks.md, section 8) RSS climbed about 3.5 MiB over the first minute and
/// then less than 1 MiB over the next four. So: the peak of the last third may exceed the peak
/// of the middle third by at most `slack_mib` (4 MiB) or `slack_percent` (10%) of that peak,
/// whichever is larger; in a 60 s run the rest of that warm-up climb (0.7 MiB measured) stays
/// well inside it. A leak shows as growth from third to third; the report prints how many
/// bytes per request the bound allows, which is the smallest leak per request it catches.
fn rss_verdict(
    samples: &[(f64, u64)],
    duration: f64,
    slack_mib: f64,
    slack_percent: f64,
) -> (u64, u64, u64, bool) {
    let peak = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0)
    };
    let middle = peak(duration / 3.0, 2.0 * duration / 3.0);
    let last = peak(2.0 * duration / 3.0, f64::INFINITY);
    let allowed = ((slack_mib * 1024.0) as u64).max((middle as f64 * slack_percent / 100.0) as u64);
    let flat = middle > 0 && last > 0 && last <= middle + allowed;
    (middle, last, allowed, flat)
}

/// Least-squares slope of RSS over the samples after the warm-up third, in MiB per minute:
/// reported next to the verdict (a steady climb shows here before it breaks the bound).
fn rss_trend_mib_per_min(samples: &[(f64, u64)], duration: f64) -> f64 {
    let judged: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, kib)| *t > duration / 3.0 && *kib > 0)
        .map(|(t, kib)| (*t, *kib as f64 / 1024.0))
        .collect();
    let n = judged.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mean_t, mean_m) = (
        judged.iter().map(|(t, _)| t).sum::<f64>() / n,
        judged.iter().map(|(_, m)| m).sum::<f64>() / n,
    );
    let covariance: f64 = judged
        .iter()
        .map(|(t, m)| (t - mean_t) * (m - mean_m))
        .sum();
    let variance: f64 = judged.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    if variance == 0.0 {
        0.0
    } else {
        covariance / variance * 60.0
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    assert!(
        (1..=250).contains(&args.clients),
        "--clients must be 1..=250 (one loopback address each)"
    );
    assert!(args.duration >= 3, "--duration must be at least 3 s");
    let binary = std::fs::canonicalize(&args.lms_api).expect("the lms-api binary");
    // One data set for the fake DCS and, with the production backends, for S3.
    let data_set = lms_bench::bench_books(args.books).expect("the data set");
    let dcs = lms_bench::start_dcs_with(data_set.clone())
        .await
        .expect("fake DCS");
    let books: Vec<BookInfo> = dcs
        .books()
        .into_iter()
        .map(|b| BookInfo {
            id: b.id,
            book_title: b.book_title.clone().unwrap_or_else(|| b.book_name.clone()),
            book_name: b.book_name,
            publisher: b.publisher,
            language: b.language,
            category: b.category.unwrap_or_default(),
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", lms_bench::free_port());
    let base = format!("http://{address}");
    let log_path = dir.path().join("lms-api.log");
    let (backends, backend_env, backends_described) = match args.backends {
        Backends::Embedded => (
            None,
            Vec::new(),
            "embedded defaults (SQLite, filesystem store, proxy delivery)".to_owned(),
        ),
        Backends::Production => {
            let backends = ProductionBackends::start(&args.postgres_url)
                .await
                .expect("the production backends");
            let env = backends.env();
            // Buckets through the real command, then the books where DCS keeps them.
            let init = Command::new(&binary)
                .arg("storage-init")
                .current_dir(dir.path())
                .env_clear()
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .expect("lms-api storage-init");
            assert!(
                init.status.success(),
                "storage-init: {}",
                String::from_utf8_lossy(&init.stderr)
            );
            let files = backends
                .seed_books(&data_set)
                .await
                .expect("the books in S3");
            eprintln!("{files} book files put into S3");
            let described = backends.describe();
            (Some(backends), env, described)
        }
    };
    let mut command = Command::new(&binary);
    command.env_clear();
    if let Ok(filter) = std::env::var("RUST_LOG") {
        command.env("RUST_LOG", filter);
    }
    command.envs(backend_env.iter().map(|(k, v)| (*k, v.as_str())));
    let child = command
        .arg("serve")
        .current_dir(dir.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LMS_BIND", &address)
        .env("LMS_PUBLIC_URL", &base)
        .env("LMS_JWT_SECRET", JWT_SECRET)
        .env("DREAM_CENTRAL_STORAGE_URL", dcs.base_url())
        .env("DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("start lms-api");
    let server = Server(child);
    let pid = server.0.id();

    let probe = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = probe.get(format!("{base}/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(Instant::now() < deadline, "lms-api not ready in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let keys = JwtKeys::from_secret(&SecretString::from(JWT_SECRET.to_owned()));
    let token = |role| keys.issue(Uuid::new_v4(), role, TOKEN_TTL).unwrap();
    let admin = token(Role::Admin);
    let cache_stats = async || {
        let body = probe
            .get(format!("{base}/api/v1/admin/cache/stats"))
            .bearer_auth(&admin)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("cache stats")
            .bytes()
            .await
            .expect("cache stats body");
        let stats: Value = serde_json::from_slice(&body).expect("cache stats JSON");
        (
            stats["hits"].as_u64().unwrap_or(0),
            stats["misses"].as_u64().unwrap_or(0),
        )
    };

    // Setup: every book's config once (the signed media URLs) and activities (the ids).
    let shared = Arc::new(Shared {
        base: base.clone(),
        books,
        media_urls: Mutex::new(HashMap::new()),
        activity_ids: Mutex::new(Vec::new()),
        signer: SignatureVerifier::new(SecretString::from(WEBHOOK_SECRET.to_owned())),
        deadline: OnceLock::new(),
    });
    let new_user = |index: usize, shared: Arc<Shared>| {
        let local = Ipv4Addr::new(127, 0, 1, u8::try_from(index + 1).unwrap());
        User {
            client: reqwest::Client::builder()
                .local_address(IpAddr::V4(local))
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("HTTP client"),
            student: token(Role::Student),
            teacher: token(Role::Teacher),
            rng: fastrand::Rng::with_seed(args.seed.wrapping_add(index as u64)),
            stats: HashMap::new(),
            shared,
        }
    };
    let mut setup = new_user(0, shared.clone());
    for book in shared.books.clone() {
        let request = setup.get(
            &format!("/api/v1/books/{}/config", book.id),
            &setup.student.clone(),
        );
        if let Some(config) = setup.json(Op::Config, request).await {
            let mut urls = Vec::new();
            collect_media_urls(&config, &mut urls);
            if !urls.is_empty() {
                shared.media_urls.lock().unwrap().insert(book.id, urls);
            }
        }
    }
    setup.activities().await;
    let setup_problems: Vec<String> = setup
        .stats
        .values()
        .filter(|s| s.transport_errors + s.invalid > 0 || s.statuses.keys().any(|&c| c >= 300))
        .flat_map(|s| s.samples.clone())
        .collect();
    let media_books = shared.media_urls.lock().unwrap().len();
    if !setup_problems.is_empty() || media_books == 0 {
        eprintln!("setup failed: {setup_problems:?}, {media_books} books with media URLs");
        return ExitCode::FAILURE;
    }
    drop(setup);

    let rss_after_setup = lms_bench::proc_status_kib(pid, "VmRSS");
    let (hits_before, misses_before) = cache_stats().await;
    let load_avg_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    // The load.
    let duration = Duration::from_secs(args.duration);
    let started = Instant::now();
    shared
        .deadline
        .set(started + duration)
        .expect("the deadline is set once");
    let sampler = tokio::spawn(async move {
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        loop {
            tick.tick().await;
            let at = started.elapsed().as_secs_f64();
            let rss = lms_bench::proc_status_kib(pid, "VmRSS");
            samples.push((at, rss));
            if rss == 0 || at >= duration.as_secs_f64() {
                return samples;
            }
        }
    });
    let users: Vec<_> = (0..args.clients)
        .map(|i| tokio::spawn(new_user(i, shared.clone()).run()))
        .collect();
    let mut stats: BTreeMap<Op, OpStats> = BTreeMap::new();
    for user in users {
        for (op, s) in user.await.expect("a user task") {
            stats.entry(op).or_default().merge(s);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_samples = sampler.await.expect("the RSS sampler");
    let alive = lms_bench::proc_status_kib(pid, "VmRSS") > 0;
    let hwm = lms_bench::proc_status_kib(pid, "VmHWM");
    let (hits_after, misses_after) = if alive { cache_stats().await } else { (0, 0) };
    drop(server);
    drop(backends);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let log_errors = log.lines().filter(|l| l.contains(" ERROR ")).count();
    let log_warnings = log.lines().filter(|l| l.contains(" WARN ")).count();

    // The report.
    let total: u64 = stats.values().map(OpStats::count).sum();
    let server_errors: u64 = stats
        .values()
        .map(|s| s.statuses.range(500..).map(|(_, n)| n).sum::<u64>())
        .sum();
    let transport_errors: u64 = stats.values().map(|s| s.transport_errors).sum();
    let other_unexpected: u64 = stats
        .iter()
        .map(|(op, s)| {
            let expected = match op {
                Op::MediaRange => 206,
                Op::Upload => 201,
                _ => 200,
            };
            s.statuses
                .iter()
                .filter(|(code, _)| **code != expected && **code < 500)
                .map(|(_, n)| n)
                .sum::<u64>()
                + s.invalid
        })
        .sum();
    let (middle, last, allowed, flat) = rss_verdict(
        &rss_samples,
        duration.as_secs_f64(),
        args.rss_slack_mib,
        args.rss_slack_percent,
    );
    let last_third_requests = (total as f64 / 3.0).max(1.0);

    println!(
        "Mixed load, {} s, {} users (one keep-alive connection each), {} books in the fake DCS; \
         release `lms-api serve` on {backends_described}, default log level to a file. Load \
         average before: {}.",
        args.duration,
        args.clients,
        shared.books.len(),
        load_avg_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    println!("| operation | requests | share | answers | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|");
    for (op, s) in &mut stats {
        s.latencies_us.sort_unstable();
        let lat = &s.latencies_us;
        let mut answers: Vec<String> = s
            .statuses
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        if s.transport_errors > 0 {
            answers.push(format!("transport errors: {}", s.transport_errors));
        }
        if s.invalid > 0 {
            answers.push(format!("wrong body: {}", s.invalid));
        }
        println!(
            "| {} | {} | {:.1}% | {} | {} | {} | {} | {} |",
            op.label(),
            s.count(),
            s.count() as f64 * 100.0 / total.max(1) as f64,
            answers.join(", "),
            ms(percentile(lat, 50.0)),
            ms(percentile(lat, 90.0)),
            ms(percentile(lat, 99.0)),
            ms(lat.last().copied().unwrap_or(0)),
        );
    }
    let mut all: Vec<u64> = stats
        .values()
        .flat_map(|s| s.latencies_us.iter().copied())
        .collect();
    all.sort_unstable();
    println!(
        "| **all** | **{total}** | 100% | 5xx: {server_errors}, transport errors: {transport_errors}, other unexpected: {other_unexpected} | {} | {} | {} | {} |",
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 90.0)),
        ms(percentile(&all, 99.0)),
        ms(all.last().copied().unwrap_or(0)),
    );
    println!();
    let hits = hits_after.saturating_sub(hits_before);
    let misses = misses_after.saturating_sub(misses_before);
    println!("| measure | value |");
    println!("|---|---|");
    println!("| overall rate | {:.0} req/s |", total as f64 / elapsed);
    println!(
        "| cache during the load | {hits} hits, {misses} misses ({:.1}% hits) |",
        hits as f64 * 100.0 / (hits + misses).max(1) as f64
    );
    println!(
        "| lms-api RSS after setup | {:.1} MiB |",
        mib(rss_after_setup)
    );
    println!(
        "| lms-api RSS peak, middle third (after the warm-up third) | {:.1} MiB |",
        mib(middle)
    );
    println!("| lms-api RSS peak, last third | {:.1} MiB |", mib(last));
    println!(
        "| RSS flat: last-third peak <= middle-third peak + max({} MiB, {}%) = +{:.1} MiB | {} (growth {:+.1} MiB; catches leaks above ~{:.0} bytes per request) |",
        args.rss_slack_mib,
        args.rss_slack_percent,
        mib(allowed),
        if flat { "yes" } else { "**no**" },
        (last as f64 - middle as f64) / 1024.0,
        allowed as f64 * 1024.0 / last_third_requests,
    );
    println!(
        "| RSS trend after the warm-up third (least squares) | {:+.2} MiB/min |",
        rss_trend_mib_per_min(&rss_samples, duration.as_secs_f64())
    );
    println!("| lms-api peak RSS (VmHWM) | {:.1} MiB |", mib(hwm));
    println!(
        "| RSS every 5 s (MiB) | {} |",
        rss_samples
            .iter()
            .step_by(5)
            .map(|(_, kib)| format!("{:.1}", mib(*kib)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| lms-api log lines at WARN / ERROR | {log_warnings} / {log_errors} |");
    println!();

    let mut failures = Vec::new();
    if !alive {
        failures.push("lms-api exited during the load".to_owned());
    }
    if server_errors > 0 {
        failures.push(format!("{server_errors} answers with a 5xx status"));
    }
    if transport_errors > 0 {
        failures.push(format!("{transport_errors} transport errors"));
    }
    if other_unexpected > 0 {
        failures.push(format!("{other_unexpected} other unexpected answers"));
    }
    if !flat {
        failures.push("RSS not flat".to_owned());
    }
    for (op, s) in &stats {
        for sample in &s.samples {
            eprintln!("{op:?}: {sample}");
        }
    }
    if log_errors + log_warnings > 0 {
        for line in log
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
            .take(10)
        {
            eprintln!("lms-api: {line}");
        }
    }
    if failures.is_empty() {
        println!("Result: **pass** (no 5xx, no transport error, no unexpected answer, RSS flat).");
        ExitCode::SUCCESS
    } else {
        println!("Result: **FAILED**: {}.", failures.join("; "));
        ExitCode::FAILURE
    }
}
