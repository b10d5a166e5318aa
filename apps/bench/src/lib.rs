//! The benchmark harness of `scripts/bench.sh` (binaries `bench_server` and `zipf_replay`),
//! kept out of lms-api so that the server and its examples never depend on the fake DCS.
//!
//! The data set both benchmarks run on: the fake DCS serving the sample book plus
//! copies of it under other names, spread over a handful of publishers.

use std::time::Duration;

pub mod production;

use dcs_mock::{MockConfig, MockDcs, NewBook};

/// Publishers the generated books are spread over (the sample book keeps its own publisher).
pub const GENERATED_PUBLISHERS: usize = 9;

/// The data set: the sample book from `testdata/books` first, then `total_books - 1` copies
/// of it (same files and activity counts, so the records have realistic sizes; config.json's
/// asset paths under the copy's own name) under their own names, titles and publishers.
pub fn bench_books(total_books: usize) -> std::io::Result<Vec<NewBook>> {
    let sample_dir = MockConfig::default().books_dir.join("FLOWDEMO");
    let template = NewBook::from_dir(&sample_dir).map_err(std::io::Error::other)?;
    let sample_prefix = format!("./books/{}/", template.book_name);
    let mut books = vec![template.clone()];
    for number in 2..=total_books {
        let mut book = template.clone();
        book.book_name = format!("BENCH{number:03}");
        book.book_title = Some(format!("Benchmark Reader {number}"));
        book.publisher = format!("Bench Press {:02}", number % GENERATED_PUBLISHERS + 1);
        // config.json names its assets under the book's own folder (`./books/FLOWDEMO/...`);
        // the copy's must be under its own name, or lms-api rightly refuses them as another
        // book's. The names have the same length, so the records' sizes stay as they were.
        let own_prefix = format!("./books/{}/", book.book_name);
        for (path, bytes) in &mut book.files {
            if path == "config.json" {
                let text = String::from_utf8_lossy(bytes).replace(&sample_prefix, &own_prefix);
                *bytes = bytes::Bytes::from(text);
            }
        }
        books.push(book);
    }
    Ok(books)
}

/// Starts the fake DCS with the [`bench_books`] data set, `total_books` published books.
pub async fn start_dcs_with_books(total_books: usize) -> std::io::Result<MockDcs> {
    start_dcs_with(bench_books(total_books)?).await
}

/// Starts the fake DCS serving `books` (as [`bench_books`] makes them: the sample book first,
/// which the fake DCS loads from its folder itself).
pub async fn start_dcs_with(books: Vec<NewBook>) -> std::io::Result<MockDcs> {
    let config = MockConfig {
        // Nothing subscribes to webhooks here; keep any retry short all the same.
        webhook_retry_delays: vec![Duration::from_millis(10)],
        ..MockConfig::default()
    };
    let dcs = MockDcs::start(config).await?;
    let existing = dcs.books().len();
    for book in books.into_iter().skip(existing) {
        dcs.add_book(book).map_err(std::io::Error::other)?;
    }
    Ok(dcs)
}

/// A free TCP port on 127.0.0.1 (bound, then released for the caller's server).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A memory field of `/proc/{pid}/status` (`VmRSS`, `VmHWM`, ...) in KiB; 0 when unreadable.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|value| value.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}
