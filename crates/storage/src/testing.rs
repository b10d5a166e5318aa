//! A real S3 server for tests: `s3s-fs` 0.14.1, which verifies SigV4 signatures (header
//! auth and presigned URLs), started on a free loopback port over a temporary folder and
//! killed on drop. `scripts/test.sh` installs the binary; other crates' tests use this too.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use crate::S3Config;

/// The access key the server accepts.
pub const ACCESS: &str = "lms-test-access";
/// The secret key the server accepts.
pub const SECRET: &str = "lms-test-secret-key-0123456789";

/// A running s3s-fs. It can be killed and started again on the same port over the same
/// folder, as a restarted S3 server comes back with its objects.
#[derive(Debug)]
pub struct S3sFs {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    root: tempfile::TempDir,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where the binary is: `S3S_FS_BIN`, `PATH`, or `~/.cargo/bin`.
pub fn s3s_fs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("S3S_FS_BIN") {
        return PathBuf::from(p);
    }
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    in_path
        .or_else(|| {
            cargo_home
                .map(|h| h.join("bin/s3s-fs"))
                .filter(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs not found (PATH, ~/.cargo/bin or S3S_FS_BIN): install it with \
                 `cargo install s3s-fs --version 0.14.1 --features binary --locked` \
                 or run scripts/test.sh, which does"
            )
        })
}

impl S3sFs {
    /// Starts a server (panics with the install command when the binary is missing).
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            root: tempfile::tempdir().unwrap(),
        };
        server.start_again();
        server
    }

    /// Starts the server again on its port, over the same folder (after [`S3sFs::kill`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "s3s-fs is already running");
        let bin = s3s_fs_binary();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS, "--secret-key", SECRET])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        self.wait_for_port(true);
    }

    /// SIGKILL: no shutdown, open connections just die. Returns once the port refuses.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("s3s-fs is running");
        child.kill().expect("SIGKILL s3s-fs");
        child.wait().expect("reap s3s-fs");
        self.wait_for_port(false);
    }

    fn wait_for_port(&self, open: bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() != open {
            assert!(
                Instant::now() < deadline,
                "s3s-fs on 127.0.0.1:{} is still {}",
                self.port,
                if open { "closed" } else { "open" }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A store configuration for `bucket` on this server.
    pub fn config(&self, bucket: &str) -> S3Config {
        S3Config::new(&self.endpoint(), ACCESS, SecretString::from(SECRET), bucket)
    }

    /// Files s3s-fs keeps for unfinished multipart uploads (it has no ListMultipartUploads):
    /// `.upload-{id}.json` and `.upload_id-{id}.part-{n}` in its root.
    pub fn pending_upload_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.path())
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.starts_with(".upload"))
            .collect();
        names.sort();
        names
    }
}

impl S3sFs {
    /// The folder the server stores objects in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}
