//! Slow-client pressure on the release `lms-api serve`: many connections that each send half
//! of a webhook POST body and then stall. Reports lms-api's RSS before, while they are held
//! and after the body read timeout has closed them, how many got their 408, and how long an
//! unrelated `GET /health` took while they were held.
//!
//! ```sh
//! cargo build --release -p lms-api -p lms-bench
//! target/release/held_sockets_bench --lms-api target/release/lms-api --connections 4000
//! ```
//!
//! Needs `ulimit -n` above the number of connections (both processes run on this machine).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "RSS and latency of lms-api while thousands of stalled bodies are held")]
struct Args {
    /// The lms-api release binary.
    #[arg(long, default_value = "target/release/lms-api")]
    lms_api: PathBuf,
    /// Stalled connections opened.
    #[arg(long, default_value_t = 4000)]
    connections: usize,
    /// `LMS_BODY_READ_TIMEOUT` of the server, in seconds.
    #[arg(long, default_value_t = 5)]
    body_timeout: u64,
    /// `LMS_MAX_CONNECTIONS` of the server (per worker); its default when not given.
    #[arg(long)]
    max_connections: Option<usize>,
    /// `LMS_WORKERS` of the server; one per core when not given.
    #[arg(long)]
    workers: Option<usize>,
}

fn rss_mib(pid: u32) -> f64 {
    lms_bench::proc_status_kib(pid, "VmRSS") as f64 / 1024.0
}

fn health(address: &str) -> (bool, Duration) {
    let started = Instant::now();
    let ok = (|| {
        let mut stream = TcpStream::connect(address).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer.starts_with("HTTP/1.1 200"))
    })()
    .unwrap_or(false);
    (ok, started.elapsed())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let binary = std::fs::canonicalize(&args.lms_api).expect("the lms-api binary");
    let dcs = dcs_mock::MockDcs::start(dcs_mock::MockConfig::default())
        .await
        .expect("fake DCS");
    let dir = tempfile::tempdir().unwrap();
    let address = format!("127.0.0.1:{}", lms_bench::free_port());
    let mut command = Command::new(&binary);
    command.env_clear();
    if let Some(max) = args.max_connections {
        command.env("LMS_MAX_CONNECTIONS", max.to_string());
    }
    if let Some(workers) = args.workers {
        command.env("LMS_WORKERS", workers.to_string());
    }
    let mut child = command
        .arg("serve")
        .current_dir(dir.path())
        .env("LMS_BIND", &address)
        .env("DREAM_CENTRAL_STORAGE_URL", dcs.base_url())
        .env("LMS_BODY_READ_TIMEOUT", args.body_timeout.to_string())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lms-api");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !health(&address).0 {
        assert!(Instant::now() < deadline, "lms-api not up");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_mib(pid);

    let (connections, address_for_clients) = (args.connections, address.clone());
    let clients = tokio::task::spawn_blocking(move || {
        let mut held = Vec::with_capacity(connections);
        let head = "POST /api/v1/webhooks/dream-storage HTTP/1.1\r\nHost: b\r\n\
                    Content-Type: application/json\r\nX-Webhook-Signature: sha256=00\r\n\
                    Content-Length: 1000\r\n\r\n";
        let half = vec![b' '; 500];
        for _ in 0..connections {
            match TcpStream::connect(&address_for_clients) {
                Ok(mut stream) => {
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&half);
                    held.push(stream);
                }
                Err(error) => panic!("connect failed after {} connections: {error}", held.len()),
            }
        }
        held
    })
    .await
    .unwrap();
    let opened = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let during = rss_mib(pid);
    let (health_ok, health_took) = health(&address);

    // Wait past the body read timeout, then count the 408s.
    let held = tokio::task::spawn_blocking(move || {
        let mut answered_408 = 0;
        for mut stream in clients {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            if answer.starts_with(b"HTTP/1.1 408") {
                answered_408 += 1;
            }
        }
        answered_408
    })
    .await
    .unwrap();
    let all_closed_after = opened.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_mib(pid);
    let _ = child.kill();
    let _ = child.wait();

    println!(
        "| measure ({} stalled webhook bodies, LMS_BODY_READ_TIMEOUT={} s, LMS_MAX_CONNECTIONS={}, LMS_WORKERS={}) | value |",
        args.connections,
        args.body_timeout,
        args.max_connections
            .map_or("default (1024)".to_owned(), |m| m.to_string()),
        args.workers
            .map_or("default (one per core)".to_owned(), |w| w.to_string()),
    );
    println!("|---|---|");
    println!("| lms-api RSS before | {before:.1} MiB |");
    println!("| lms-api RSS with the connections held (1 s after opening) | {during:.1} MiB |");
    println!("| lms-api RSS 2 s after the last one closed | {after:.1} MiB |");
    println!(
        "| connections answered 408 `request_timeout` | {held} of {} |",
        args.connections
    );
    println!(
        "| time until every held connection was answered and closed | {:.1} s |",
        all_closed_after.as_secs_f64()
    );
    println!(
        "| unrelated `GET /health` while they were held | {} in {:.0} ms |",
        if health_ok { "200" } else { "FAILED" },
        health_took.as_secs_f64() * 1000.0
    );
}
