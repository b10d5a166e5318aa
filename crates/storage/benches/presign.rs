//! Presign cost per URL and per 1,000 URLs (a book config presigns about 1,000).
//!
//! `cargo bench -p storage --bench presign` (std timing; no criterion, to keep the build short).
//! Each round signs 1,000 distinct keys through the `ObjectStore` trait (key validation,
//! window, signing, URL string) and the best and median of the rounds are printed.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{SecretSlice, SecretString};
use storage::{
    FsStore, FsUrlSigner, ObjectStore, PresignOptions, PresignWindow, S3Config, S3Store,
    SystemClock,
};

const ROUNDS: usize = 300;

fn measure(name: &str, keys: &[String], options: &PresignOptions, store: &dyn ObjectStore) {
    for key in keys.iter().take(100) {
        black_box(store.presign_get(key, options).unwrap());
    }
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for key in keys {
                black_box(store.presign_get(black_box(key), options).unwrap());
            }
            start.elapsed()
        })
        .collect();
    rounds.sort();
    let (best, median) = (rounds[0], rounds[ROUNDS / 2]);
    println!(
        "| {name} | {:.0} µs | {:.0} µs | {:.2} µs |",
        best.as_secs_f64() * 1e6,
        median.as_secs_f64() * 1e6,
        median.as_secs_f64() * 1e6 / keys.len() as f64,
    );
}

fn main() {
    let keys: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                "Dream Press/books/FLOWDEMO/images/M{}/p{}s{}.png",
                i % 12,
                i,
                i % 7
            )
        })
        .collect();
    let plain = PresignOptions::default();
    let with_overrides = PresignOptions {
        response_content_type: Some("audio/mpeg".into()),
        response_content_disposition: Some("attachment; filename=\"track.mp3\"".into()),
    };

    let s3 = S3Store::new(S3Config {
        external_url: Some("https://media.example.com".into()),
        ..S3Config::new(
            "http://127.0.0.1:9000",
            "minio-access-key",
            SecretString::from("minio-secret-key-0123456789"),
            "publishers",
        )
    })
    .unwrap();
    let dir = std::env::temp_dir();
    let signer = FsUrlSigner::new(
        "http://127.0.0.1:8000/files",
        SecretSlice::from(vec![7u8; 32]),
        PresignWindow::default(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let fs = FsStore::new(dir, "publishers", Arc::new(signer)).unwrap();

    println!(
        "{ROUNDS} rounds of 1,000 distinct keys, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| adapter | best per 1,000 | median per 1,000 | median per URL |");
    println!("|---|---|---|---|");
    measure("S3 (SigV4 query)", &keys, &plain, &s3);
    measure(
        "S3 + response-content-type/-disposition",
        &keys,
        &with_overrides,
        &s3,
    );
    measure("filesystem (HMAC files route)", &keys, &plain, &fs);
}
