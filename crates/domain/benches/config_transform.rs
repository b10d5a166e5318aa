//! Cost of transforming a config with 1,000 distinct asset paths.
//!
//! `cargo bench -p domain --bench config_transform` (release profile). Prints a markdown
//! table. The presigner is a stand-in doing what an S3 SigV4 query presign does per URL
//! (canonical request, SHA-256, four HMACs for the signing key, one for the signature, hex,
//! URL assembly); the real presigner of `crates/storage` can replace it through `Presign`.
//!
//! Knobs: `BENCH_ITERS` (default 2000 transforms per case), `BENCH_PATHS` (default 1000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use domain::asset_path::{BookAssetPath, BookRef};
use domain::config_transform::ConfigTransformer;
use domain::linker::{
    AssetLinker, DcsLinker, DcsLinkerConfig, FetchedUrl, LinkError, Presign, PresignCacheConfig,
    PresignedLinker, PresignedUrlFetcher, ProxyLinker,
};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const KEY_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// SigV4 query-string presigning of a GET, as S3 clients do it, with the signing key derived
/// on every call (what rust-s3 does; a presigner caching it per day would be cheaper).
struct SigV4Presign {
    endpoint: String,
    host: String,
    bucket: String,
    access_key: String,
    secret_key: String,
    region: String,
    amz_date: String,
    expires: u32,
    /// The day's signing key, when the presigner keeps it (it changes once a day).
    signing_key: Option<[u8; 32]>,
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

impl SigV4Presign {
    fn derive_signing_key(&self, date: &str) -> [u8; 32] {
        let k_date = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, b"s3");
        hmac(&k_service, b"aws4_request")
    }

    fn with_cached_signing_key(mut self) -> Self {
        self.signing_key = Some(self.derive_signing_key(&self.amz_date[..8]));
        self
    }
}

impl Presign for SigV4Presign {
    fn presign(&self, key: &str) -> Option<String> {
        let date = &self.amz_date[..8];
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let credential =
            utf8_percent_encode(&format!("{}/{scope}", self.access_key), KEY_SEGMENT).to_string();
        let encoded_key: Vec<String> = key
            .split('/')
            .map(|s| utf8_percent_encode(s, KEY_SEGMENT).to_string())
            .collect();
        let path = format!("/{}/{}", self.bucket, encoded_key.join("/"));
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}&X-Amz-Date={}&X-Amz-Expires={}&X-Amz-SignedHeaders=host",
            self.amz_date, self.expires
        );
        let canonical = format!(
            "GET\n{path}\n{query}\nhost:{}\n\nhost\nUNSIGNED-PAYLOAD",
            self.host
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            self.amz_date,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let k_date = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, b"s3");
        let k_signing = hmac(&k_service, b"aws4_request");
        let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
        Some(format!(
            "{}{path}?{query}&X-Amz-Signature={signature}",
            self.endpoint
        ))
    }
}

fn presigner() -> SigV4Presign {
    SigV4Presign {
        endpoint: "http://minio.local:9000".into(),
        host: "minio.local:9000".into(),
        bucket: "publishers".into(),
        access_key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        region: "us-east-1".into(),
        amz_date: "20261202T120000Z".into(),
        expires: 3600,
        signing_key: None,
    }
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
            "presigned, every URL signed (SigV4 stand-in)",
            Arc::new(PresignedLinker::new(presigner())),
        ),
        (
            "presigned, signing key derived once per day",
            Arc::new(PresignedLinker::new(presigner().with_cached_signing_key())),
        ),
        (
            "presigned, URLs reused (`with_cache`, all hits)",
            Arc::new(PresignedLinker::with_cache(
                presigner(),
                PresignCacheConfig {
                    capacity: 100_000,
                    ttl: Duration::from_secs(3600),
                    min_remaining: Duration::from_secs(2700),
                },
            )),
        ),
        ("proxy", Arc::new(ProxyLinker::new("http://127.0.0.1:8000"))),
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
    let keyed = presigner().with_cached_signing_key();
    let keyed_stats = stats(
        (0..iters.min(200))
            .map(|i| {
                let start = Instant::now();
                for k in 0..count {
                    std::hint::black_box(
                        keyed.presign(&format!("Dream Press/books/BENCH/images/{i}/{k}.png")),
                    );
                }
                start.elapsed()
            })
            .collect(),
    );
    println!(
        "| presign alone, signing key cached, {count} keys | {:.3} ms | {:.3} ms | {:.3} ms | {:.2} µs |",
        ms(keyed_stats.median),
        ms(keyed_stats.p90),
        ms(keyed_stats.min),
        us(keyed_stats.median) / count as f64
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
