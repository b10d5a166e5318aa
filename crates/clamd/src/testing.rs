//! A real clamd for tests: started in the foreground from a generated configuration in a
//! temporary folder, listening on a free loopback port and on a unix socket, with one
//! signature ([`SIGNATURE`], matching [`EICAR`]) and no official database, so it starts in
//! well under a second offline. Killed on drop.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Clamd, ClamdAddr};

/// The standard 68-byte EICAR anti-virus test string.
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// The name of the test signature in `testdata/eicar.ndb`.
pub const SIGNATURE: &str = "Dream.Test.EICAR";

/// The name clamd reports for [`SIGNATURE`]: libclamav appends `.UNOFFICIAL` to every
/// signature from an unsigned database.
pub const REPORTED_SIGNATURE: &str = "Dream.Test.EICAR.UNOFFICIAL";

/// The test signature database (ndb: `Name:TargetType:Offset:HexSignature`).
const EICAR_NDB: &str = include_str!("../testdata/eicar.ndb");

/// How long [`ClamdServer::start`] waits for the first `PONG`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a test clamd beyond the fixed ones.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `StreamMaxLength`, e.g. `"200M"` (the default) or `"1M"`.
    pub stream_max_length: String,
    /// More clamd.conf lines, written last.
    pub extra_lines: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            stream_max_length: "200M".to_owned(),
            extra_lines: Vec::new(),
        }
    }
}

/// A running clamd.
#[derive(Debug)]
pub struct ClamdServer {
    child: Child,
    port: u16,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for ClamdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where clamd is: `CLAMD_BIN`, `/usr/sbin/clamd` (Debian's clamav-daemon), or `clamd` on
/// `PATH`.
pub fn clamd_binary() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CLAMD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let debian = Path::new("/usr/sbin/clamd");
    if debian.is_file() {
        return Ok(debian.to_owned());
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("clamd"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "clamd not found (CLAMD_BIN, /usr/sbin/clamd or PATH): run scripts/test.sh, \
                 which installs it, or `apt-get install clamav-daemon`",
            )
        })
}

impl ClamdServer {
    /// Starts clamd with the default settings (`StreamMaxLength 200M`) and waits until it
    /// answers `PING`.
    pub fn start() -> io::Result<Self> {
        Self::start_with(|_| {})
    }

    /// Starts clamd with settings changed by `configure`, e.g. a small `StreamMaxLength`.
    pub fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> io::Result<Self> {
        let mut config = ServerConfig::default();
        configure(&mut config);
        let bin = clamd_binary()?;
        let dir = tempfile::Builder::new().prefix("clamd-").tempdir()?;
        let db = dir.path().join("db");
        std::fs::create_dir(&db)?;
        std::fs::write(db.join("test.ndb"), EICAR_NDB)?;
        let socket = dir.path().join("clamd.sock");
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let conf = dir.path().join("clamd.conf");
        std::fs::write(&conf, conf_text(&config, dir.path(), port))?;
        let out = std::fs::File::create(dir.path().join("clamd.out"))?;
        let child = Command::new(&bin)
            .arg("--config-file")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display()))
            })?;
        let mut server = Self {
            child,
            port,
            socket,
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "clamd exited ({status}) before answering PING on 127.0.0.1:{}\n{}",
                    self.port,
                    self.logs()
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "clamd did not answer PING on 127.0.0.1:{} within {START_TIMEOUT:?}\n{}",
                        self.port,
                        self.logs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TCP address (127.0.0.1 and a free port).
    pub fn addr(&self) -> ClamdAddr {
        ClamdAddr::Tcp {
            host: "127.0.0.1".to_owned(),
            port: self.port,
        }
    }

    /// The unix socket address.
    pub fn unix_addr(&self) -> ClamdAddr {
        ClamdAddr::Unix(self.socket.clone())
    }

    /// A client for [`addr`](Self::addr) with the default timeouts.
    pub fn client(&self) -> Clamd {
        Clamd::new(self.addr())
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder holding clamd.conf, the database, the log and the socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// clamd's log file and its standard output and error, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["clamd.log", "clamd.out"] {
            let mut content = String::new();
            let _ = std::fs::File::open(self.dir.path().join(name))
                .and_then(|mut f| f.read_to_string(&mut content));
            let _ = writeln!(text, "--- {name}\n{}", content.trim_end());
        }
        text
    }
}

fn conf_text(config: &ServerConfig, dir: &Path, port: u16) -> String {
    let d = dir.display();
    let mut text = format!(
        "# Generated for a test; no User line: clamd runs as the current user.\n\
         Foreground yes\n\
         TCPSocket {port}\n\
         TCPAddr 127.0.0.1\n\
         LocalSocket {d}/clamd.sock\n\
         DatabaseDirectory {d}/db\n\
         LogFile {d}/clamd.log\n\
         PidFile {d}/clamd.pid\n\
         TemporaryDirectory {d}\n\
         StreamMaxLength {}\n\
         MaxScanSize 200M\n\
         MaxFileSize 200M\n\
         Bytecode no\n\
         SelfCheck 0\n\
         MaxThreads 4\n",
        config.stream_max_length
    );
    for line in &config.extra_lines {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// One blocking `zPING` with short timeouts.
fn ping(port: u16) -> bool {
    let short = Duration::from_millis(500);
    let Ok(mut conn) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), short)
    else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(short));
    let _ = conn.set_write_timeout(Some(short));
    let mut reply = [0u8; 5];
    conn.write_all(b"zPING\0").is_ok() && conn.read_exact(&mut reply).is_ok() && &reply == b"PONG\0"
}
