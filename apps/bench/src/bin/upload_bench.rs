//! The teacher-upload benchmark: one file (100 MB by default) uploaded through lms-api's
//! `POST /api/v1/teachers/materials/upload`, next to a direct PUT of the same bytes to the
//! same S3 server (s3s-fs) by the storage crate, in alternating rounds of one run. Reports
//! the throughput of each, their ratio, and lms-api's peak RSS growth over its idle RSS.
//!
//! lms-api runs as its own process (the release binary, `lms-api serve`, production wiring,
//! default log level) so that its RSS is its own; the client streams the multipart body over
//! a plain socket.
//!
//! ```sh
//! cargo build --release -p lms-api -p lms-bench
//! target/release/upload_bench --lms-api target/release/lms-api --size-mb 100 --rounds 3
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use lms_api::auth::{JwtKeys, Role};
use storage::testing::{ACCESS, S3sFs, SECRET};
use storage::{ObjectStore, PutOptions, S3Store};
use uuid::Uuid;

const JWT_SECRET: &str = "upload-bench-jwt-secret-0123456789abcdef";
const BOUNDARY: &str = "----upload-bench-boundary-x7d2";
/// Chunks the client writes and the direct PUT streams.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Parser)]
#[command(about = "Upload throughput and memory: lms-api versus a direct S3 PUT")]
struct Args {
    /// The lms-api release binary.
    #[arg(long, default_value = "target/release/lms-api")]
    lms_api: PathBuf,
    /// File size in MB (MiB).
    #[arg(long, default_value_t = 100)]
    size_mb: usize,
    /// Rounds of (direct PUT, lms-api upload), alternating which goes first.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Scan uploads with a real clamd (started here, offline, with the test signature).
    #[arg(long)]
    scan: bool,
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    (
        lms_bench::proc_status_kib(pid, "VmRSS"),
        lms_bench::proc_status_kib(pid, "VmHWM"),
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lms_command(binary: &PathBuf, env: &[(String, String)]) -> Command {
    let mut command = Command::new(binary);
    command.env_clear();
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// One upload through lms-api over a raw socket; returns the elapsed time.
fn upload_through_lms(address: &str, token: &str, data: &[u8]) -> Duration {
    let preamble = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    );
    let epilogue = format!("\r\n--{BOUNDARY}--\r\n");
    let length = preamble.len() + data.len() + epilogue.len();
    let head = format!(
        "POST /api/v1/teachers/materials/upload HTTP/1.1\r\nHost: bench\r\n\
         Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).expect("connect to lms-api");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(preamble.as_bytes()).unwrap();
    for chunk in data.chunks(CHUNK) {
        stream.write_all(chunk).unwrap();
    }
    stream.write_all(epilogue.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let elapsed = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "upload failed: {answer:.400}"
    );
    let id = answer
        .split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.get(..36))
        .expect("material id")
        .to_owned();
    // Delete it, so every round starts from the same quota.
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "DELETE /api/v1/teachers/materials/{id} HTTP/1.1\r\nHost: bench\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "delete failed: {answer:.300}"
    );
    elapsed
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let size = args.size_mb * 1024 * 1024;
    // A PNG signature, then noise (incompressible, like real media).
    let mut data = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0".to_vec();
    let mut rng = fastrand::Rng::with_seed(7);
    data.resize_with(size, || rng.u8(..));
    let data = Bytes::from(data);

    let s3 = S3sFs::start();
    let clamd = args.scan.then(|| {
        clamd::testing::ClamdServer::start_with(|config| {
            config.stream_max_length = format!("{}M", args.size_mb + 10);
        })
        .expect("clamd")
    });
    let dir = tempfile::tempdir().unwrap();
    let port = lms_bench::free_port();
    let address = format!("127.0.0.1:{port}");
    let env: Vec<(String, String)> = [
        ("LMS_BIND", address.as_str()),
        ("LMS_JWT_SECRET", JWT_SECRET),
        (
            "DATABASE_URL",
            &format!("sqlite://{}?mode=rwc", dir.path().join("lms.db").display()),
        ),
        ("DREAM_CENTRAL_STORAGE_URL", "http://127.0.0.1:9"),
        ("STORAGE_BACKEND", "s3"),
        ("MINIO_ENDPOINT", &s3.endpoint()),
        ("MINIO_ACCESS_KEY", ACCESS),
        ("MINIO_SECRET_KEY", SECRET),
        ("MATERIAL_MAX_BYTES", &(size + (1 << 20)).to_string()),
        ("TEACHER_QUOTA_BYTES", &(4 * size).to_string()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain(
        clamd
            .as_ref()
            .map(|c| ("CLAMD_ADDR".to_owned(), c.addr().to_string())),
    )
    .collect();
    let init = lms_command(&args.lms_api, &env)
        .arg("storage-init")
        .stdout(Stdio::null())
        .status()
        .expect("run lms-api storage-init");
    assert!(init.success(), "storage-init failed");
    let server = Server(
        lms_command(&args.lms_api, &env)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lms-api"),
    );
    let pid = server.0.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "lms-api did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let token = JwtKeys::from_secret(&JWT_SECRET.to_owned().into())
        .issue(Uuid::new_v4(), Role::Teacher, Duration::from_secs(3600))
        .unwrap();
    // One small upload first, so idle RSS includes the warmed-up paths.
    upload_through_lms(&address, &token, &data[..64 * 1024]);
    std::thread::sleep(Duration::from_millis(500));
    let (idle_rss, _) = memory_kib(pid);

    let direct = S3Store::new(s3.config("bench-direct")).unwrap();
    direct.create_bucket().await.unwrap();
    let (mut lms_rates, mut direct_rates) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        for lms_first in [round % 2 == 0, round % 2 != 0] {
            if lms_first {
                let address = address.clone();
                let (token, data) = (token.clone(), data.clone());
                let elapsed = tokio::task::spawn_blocking(move || {
                    upload_through_lms(&address, &token, &data)
                })
                .await
                .unwrap();
                lms_rates.push(mb_per_s(size, elapsed));
            } else {
                let chunks: Vec<std::io::Result<Bytes>> = (0..size)
                    .step_by(CHUNK)
                    .map(|at| Ok(data.slice(at..(at + CHUNK).min(size))))
                    .collect();
                let started = Instant::now();
                direct
                    .put(
                        "bench.png",
                        Box::pin(futures_util::stream::iter(chunks)),
                        PutOptions::default(),
                    )
                    .await
                    .expect("direct PUT");
                direct_rates.push(mb_per_s(size, started.elapsed()));
                direct.delete("bench.png").await.unwrap();
            }
        }
    }
    let (rss, peak) = memory_kib(pid);
    let lms = median(&mut lms_rates);
    let baseline = median(&mut direct_rates);
    println!("| measure | value |");
    println!("|---|---|");
    println!("| file size | {} MiB |", args.size_mb);
    println!("| rounds | {} (alternating order) |", args.rounds);
    println!(
        "| virus scanning (clamd) | {} |",
        if args.scan { "on" } else { "off" }
    );
    println!("| direct PUT to s3s-fs (storage crate), median | {baseline:.1} MiB/s |");
    println!("| through lms-api, median | {lms:.1} MiB/s |");
    println!("| ratio (target >= 70%) | {:.0}% |", lms / baseline * 100.0);
    println!("| lms-api idle RSS | {:.1} MiB |", idle_rss as f64 / 1024.0);
    println!(
        "| lms-api peak RSS growth during the uploads (target <= 32 MiB) | {:.1} MiB |",
        (peak.saturating_sub(idle_rss)) as f64 / 1024.0
    );
    println!(
        "| lms-api RSS after the uploads | {:.1} MiB |",
        rss as f64 / 1024.0
    );
    println!(
        "| all rounds, lms-api MiB/s | {} |",
        lms_rates
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| all rounds, direct MiB/s | {} |",
        direct_rates
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(server);
}
