//! Cost of transforming a config with 1,000 distinct asset paths.
//!
//! `cargo bench -p domain --bench config_transform` (release profile). Prints a markdown
//! table. Presigned mode uses the storage crate's real S3 presigner, as the app does.
//!
//! Knobs: `BENCH_ITERS` (default 2000 transforms per case), `BENCH_PATHS` (default 1000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::asset_path::{BookAssetPath, BookRef};
use domain::config_transform::ConfigTransformer;
use domain::linker::{
    AssetLinker, DcsLinker, DcsLinkerConfig, FetchedUrl, LinkError, Presign, PresignedLinker,
    PresignedUrlFetcher, ProxyLinker,
};
use domain::signed_links::{LinkSigner, SignedProxyLinker};
use serde_json::{Value, json};
use storage::{ObjectStore, PresignOptions, PresignWindow, S3Config, S3Store, SystemClock};

/// The storage crate's S3 presigner (SigV4 query signing, the day's signing key cached), the
/// one the app wires in for `ASSET_DELIVERY=presigned`. Nothing is contacted: presigning is
/// local computation.
struct StorePresign(S3Store);

impl Presign for StorePresign {
    fn presign(&self, key: &str) -> Option<String> {
        self.0.presign_get(key, &PresignOptions::default()).ok()
    }
}

fn presigner() -> StorePresign {
    let mut config = S3Config::new(
        "http://127.0.0.1:9000",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned().into(),
        "publishers",
    );
    config.external_url = Some("https://media.lms.example.org".to_owned());
    StorePresign(S3Store::new(config).expect("valid S3 settings"))
}

/// A book shaped like the sample, scaled up: each page has an image, an audio section, a
/// dragdroppicture (section_path + audio_extra) and a matchTheWords with three pictures,
/// so 7 paths per page, plus words, answers and coordinates that must stay untouched.
fn synthetic_config(paths: usize) -> (Value, usize) {
    let mut pages = Vec::new();
    let mut count = 0;
    let mut n = 0;
    while count < paths {
        n += 1;
        let mut page_paths = vec![
            format!("./books/BENCH/images/HB/modules/M1/pages/{n:03}.png"),
            format!("./books/BENCH/audio/{n:03}.mp3"),
            format!("./books/BENCH/images/M1/p{n}s1.png"),
            format!("./books/BENCH/audio/{n:03}_extra.mp3"),
            format!("./books/BENCH/images/M1/p{n}match_cat.png"),
            format!("./books/BENCH/images/M1/p{n}match_dog.png"),
            format!("./books/BENCH/images/M1/p{n}match_bird.png"),
        ];
        page_paths.truncate(paths - count);
        count += page_paths.len();
        let p = |i: usize| page_paths.get(i).cloned().unwrap_or_default();
        pages.push(json!({
            "page_number": n,
            "image_path": p(0),
            "sections": [
                {"type": "audio", "coords": {"x": 240, "y": 30, "w": 32, "h": 32}, "audio_path": p(1)},
                {"activity": {
                    "type": "dragdroppicture", "headerText": "Drag the words to the picture.",
                    "section_path": p(2), "words": ["banana", "apple", "and/or"],
                    "answer": [{"no": 1, "coords": {"x": 10, "y": 60, "w": 70, "h": 24}, "text": "apple", "opacity": 1}],
                    "circleCount": 0, "markCount": 0,
                 },
                 "audio_extra": {"path": p(3), "coords": {"x": 56, "y": 130, "w": 28, "h": 28}}},
                {"activity": {
                    "type": "matchTheWords", "headerText": "Read and match.",
                    "match_words": [{"word": "cat"}, {"word": "dog"}, {"word": "bird"}],
                    "sentences": [
                        {"sentence": "It says meow.", "word": "cat", "image_path": p(4)},
                        {"sentence": "Mr. Smith's dog.", "word": "dog", "image_path": p(5)},
                        {"sentence": "It can fly 3.5 m.", "word": "bird", "image_path": p(6)},
                    ]}},
            ],
        }));
    }
    let config = json!({
        "publisher_name": "Dream Press",
        "book_title": "Bench Book",
        "language": "en",
        "books": [{"name": "BENCH", "modules": [{"name": "Module 1", "pages": pages}]}],
    });
    (config, count)
}

struct CachedFetcher;

/// The same URL for every path: what the transform costs without any linker work.
struct ConstantLinker;

#[async_trait]
impl AssetLinker for ConstantLinker {
    async fn link(
        &self,
        _: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError> {
        Ok(vec![Some("https://x.test/u".to_owned()); paths.len()])
    }
}

#[async_trait]
impl PresignedUrlFetcher for CachedFetcher {
    async fn fetch(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
    ) -> Result<Option<FetchedUrl>, LinkError> {
        Ok(Some(FetchedUrl {
            url: format!("https://minio.test/{}?sig", book.object_key(path)),
            expires_in: Duration::from_secs(86_400),
        }))
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Stats {
    median: Duration,
    p90: Duration,
    min: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p90: at(0.9),
        min: samples[0],
    }
}

fn main() {
    let iters = env_usize("BENCH_ITERS", 2000);
    let paths = env_usize("BENCH_PATHS", 1000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let book = BookRef::new(1, "Dream Press", "BENCH").expect("valid names");
    let (config, count) = synthetic_config(paths);
    let bytes = serde_json::to_vec(&config).expect("serialisable");

    let dcs = DcsLinker::new(CachedFetcher, DcsLinkerConfig::default());
    let cases: Vec<(&str, Arc<dyn AssetLinker>)> = vec![
        (
            "presigned, every URL signed (storage's S3 presigner)",
            Arc::new(PresignedLinker::new(presigner())),
        ),
        (
            "proxy, unsigned URLs",
            Arc::new(ProxyLinker::new("http://127.0.0.1:8000")),
        ),
        (
            "proxy, signed URLs (as the app serves them)",
            Arc::new(SignedProxyLinker::new(
                ProxyLinker::new("http://127.0.0.1:8000"),
                Arc::new(LinkSigner::new(
                    b"bench-link-signing-key-0123456789abcdef",
                    PresignWindow::default(),
                    Arc::new(SystemClock),
                )),
            )),
        ),
        ("dcs (all URLs cached)", Arc::new(dcs)),
        ("transform alone (constant URL)", Arc::new(ConstantLinker)),
    ];

    // What the transform adds on top: the clone of the input, measured alone.
    let clone_stats = stats(
        (0..iters)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(config.clone());
                start.elapsed()
            })
            .collect(),
    );
    let presign = presigner();
    let presign_stats = stats(
        (0..iters.min(200))
            .map(|i| {
                let start = Instant::now();
                for k in 0..count {
                    std::hint::black_box(
                        presign.presign(&format!("Dream Press/books/BENCH/images/{i}/{k}.png")),
                    );
                }
                start.elapsed()
            })
            .collect(),
    );

    println!(
        "config: {count} distinct asset paths, {} bytes of JSON; {iters} transforms per case\n",
        bytes.len()
    );
    println!("| case | median per config | p90 | min | per URL (median) |");
    println!("|---|---|---|---|---|");
    for (name, linker) in cases {
        let t = ConfigTransformer::new(linker);
        let mut samples = Vec::with_capacity(iters);
        for i in 0..iters + iters / 10 {
            let input = config.clone();
            let start = Instant::now();
            let out = rt
                .block_on(t.transform_book(&book, input))
                .expect("transform");
            let elapsed = start.elapsed();
            assert_eq!(out.linked, count);
            assert!(out.nulled.is_empty());
            std::hint::black_box(out);
            if i >= iters / 10 {
                samples.push(elapsed); // the first tenth is warm-up
            }
        }
        let s = stats(samples);
        println!(
            "| {name} | {:.3} ms | {:.3} ms | {:.3} ms | {:.2} µs |",
            ms(s.median),
            ms(s.p90),
            ms(s.min),
            us(s.median) / count as f64
        );
    }
    println!(
        "| presign alone, {count} keys | {:.3} ms | {:.3} ms | {:.3} ms | {:.2} µs |",
        ms(presign_stats.median),
        ms(presign_stats.p90),
        ms(presign_stats.min),
        us(presign_stats.median) / count as f64
    );
    println!(
        "| clone of the input (not in the figures above) | {:.3} ms | {:.3} ms | {:.3} ms | |",
        ms(clone_stats.median),
        ms(clone_stats.p90),
        ms(clone_stats.min)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
