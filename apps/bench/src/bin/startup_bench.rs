//! Launch-to-ready and idle memory of the release `lms-api serve`: each run starts the binary
//! on embedded defaults (SQLite in a fresh folder, which includes creating and migrating the
//! database; the filesystem store), with the fake DCS answering, and polls `GET /ready` until it
//! answers 200. Reports the median and worst time from spawn to that 200 over the runs, and
//! the process's RSS one second after ready, with nothing else happening.
//!
//! ```sh
//! cargo build --release -p lms-api -p lms-bench
//! target/release/startup_bench --lms-api target/release/lms-api --runs 10
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "lms-api launch-to-ready time and idle RSS")]
struct Args {
    /// The lms-api release binary.
    #[arg(long, default_value = "target/release/lms-api")]
    lms_api: PathBuf,
    /// Launches measured.
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

fn ready(address: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // The server runs in a fresh folder each time; the binary's path must survive that.
    let binary = std::fs::canonicalize(&args.lms_api).expect("the lms-api binary");
    let dcs = dcs_mock::MockDcs::start(dcs_mock::MockConfig::default())
        .await
        .expect("fake DCS");
    let (mut times, mut rss) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("127.0.0.1:{}", lms_bench::free_port());
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .arg("serve")
            .current_dir(dir.path())
            .env_clear()
            .env("LMS_BIND", &address)
            .env("DREAM_CENTRAL_STORAGE_URL", dcs.base_url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lms-api");
        let elapsed = {
            let address = address.clone();
            tokio::task::spawn_blocking(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !ready(&address) {
                    assert!(Instant::now() < deadline, "lms-api not ready in 30 s");
                    std::thread::sleep(Duration::from_millis(2));
                }
                started.elapsed()
            })
            .await
            .unwrap()
        };
        times.push(elapsed.as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.push(lms_bench::proc_status_kib(child.id(), "VmRSS") as f64 / 1024.0);
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(f64::total_cmp);
    rss.sort_by(f64::total_cmp);
    println!(
        "| measure (release lms-api, {} launches) | median | worst |",
        args.runs
    );
    println!("|---|---|---|");
    println!(
        "| launch to `/ready` 200 (target 300 ms) | {:.0} ms | {:.0} ms |",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    println!(
        "| idle RSS 1 s after ready (target 30 MB) | {:.1} MiB | {:.1} MiB |",
        rss[rss.len() / 2],
        rss[rss.len() - 1]
    );
}
