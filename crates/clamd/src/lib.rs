#![doc = include_str!("../README.md")]

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

mod reply;
#[cfg(feature = "test-server")]
pub mod testing;

// The protocol is written here rather than taken from crates.io: clamav-client (async, Tokio)
// scans a whole `Stream` it pulls from and hands back the raw reply, with no timeouts; the
// upload path needs to push chunks as they arrive, bounded reads and writes, and typed errors.

/// The largest INSTREAM frame [`InStream::send`] writes.
pub const MAX_FRAME: usize = 64 * 1024;

/// The longest reply read from clamd; a longer one is a protocol error.
const MAX_REPLY: usize = 8 * 1024;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    /// `TCPSocket`/`TCPAddr` in clamd.conf.
    Tcp { host: String, port: u16 },
    /// `LocalSocket` in clamd.conf.
    Unix(PathBuf),
}

impl fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdAddr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ClamdAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            ClamdAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A scan's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `stream: OK`.
    Clean,
    /// `stream: <signature> FOUND`. Signatures from unsigned databases (`.ndb` files and the
    /// like) carry the `.UNOFFICIAL` suffix libclamav gives them.
    Infected { signature: String },
}

/// What can go wrong talking to clamd.
#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    /// Connecting failed or took longer than the connect timeout (then of kind `TimedOut`).
    /// The message reads `cannot reach clamd at {addr}: {cause}`.
    #[error("{0}")]
    Connect(io::Error),
    /// Reading or writing failed after the connection was made.
    #[error("clamd connection failed: {0}")]
    Io(#[source] io::Error),
    /// A read or a write took longer than the I/O timeout.
    #[error("clamd did not answer in time")]
    Timeout,
    /// The stream was longer than clamd's `StreamMaxLength`.
    #[error("the stream is longer than clamd accepts (StreamMaxLength)")]
    SizeLimitExceeded,
    /// clamd answered `... ERROR`; the message is clamd's.
    #[error("clamd failed: {0}")]
    Scanner(String),
    /// An answer this client does not understand.
    #[error("{0}")]
    Protocol(String),
}

/// A clamd client. Cheap to clone; every call opens its own connection.
#[derive(Clone, Debug)]
pub struct Clamd {
    addr: ClamdAddr,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl Clamd {
    /// A client for `addr` with a 2 s connect timeout and a 30 s timeout for each read and
    /// each write (the read of a scan's reply waits for the whole scan).
    pub fn new(addr: ClamdAddr) -> Self {
        Self {
            addr,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(30),
        }
    }

    /// Other timeouts: `connect` for making the connection, `io` for each read and write.
    pub fn with_timeouts(self, connect: Duration, io: Duration) -> Self {
        Self {
            connect_timeout: connect,
            io_timeout: io,
            ..self
        }
    }

    /// Where this client connects.
    pub fn addr(&self) -> &ClamdAddr {
        &self.addr
    }

    /// `zPING`: Ok when clamd answers `PONG`.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        let reply = self.command(b"zPING\0").await?;
        reply::parse_pong(&reply)
    }

    /// `zVERSION`: e.g. `ClamAV 1.4.6/27000/Tue Dec  1 09:00:00 2026` (no database part
    /// when clamd has no official database).
    pub async fn version(&self) -> Result<String, ClamdError> {
        let reply = self.command(b"zVERSION\0").await?;
        reply::parse_version(&reply)
    }

    /// Connects and starts a stream scan (`zINSTREAM`); send the data with
    /// [`InStream::send`], then [`InStream::finish`] for the verdict.
    pub async fn instream(&self) -> Result<InStream, ClamdError> {
        let mut conn = self.connect().await?;
        with_timeout(self.io_timeout, conn.write_all(b"zINSTREAM\0")).await?;
        Ok(InStream {
            conn,
            addr: self.addr.clone(),
            io_timeout: self.io_timeout,
            bytes_sent: 0,
            failed: false,
        })
    }

    /// Scans `data` in one stream.
    pub async fn scan_bytes(&self, data: &[u8]) -> Result<Verdict, ClamdError> {
        let mut stream = self.instream().await?;
        stream.send(data).await?;
        stream.finish().await
    }

    async fn command(&self, command: &[u8]) -> Result<String, ClamdError> {
        let mut conn = self.connect().await?;
        with_timeout(self.io_timeout, conn.write_all(command)).await?;
        read_reply(&mut conn, self.io_timeout).await
    }

    async fn connect(&self) -> Result<Conn, ClamdError> {
        let addr = &self.addr;
        let connecting = async {
            match addr {
                ClamdAddr::Tcp { host, port } => TcpStream::connect((host.as_str(), *port))
                    .await
                    .map(Conn::Tcp),
                #[cfg(unix)]
                ClamdAddr::Unix(path) => {
                    tokio::net::UnixStream::connect(path).await.map(Conn::Unix)
                }
                #[cfg(not(unix))]
                ClamdAddr::Unix(_) => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "unix sockets are not supported on this platform",
                )),
            }
        };
        let cause = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e,
            Err(_) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection after {:?}", self.connect_timeout),
            ),
        };
        tracing::debug!(%addr, error = %cause, "cannot reach clamd");
        Err(ClamdError::Connect(io::Error::new(
            cause.kind(),
            format!("cannot reach clamd at {addr}: {cause}"),
        )))
    }
}

/// A stream scan in progress: one connection to clamd that has been sent `zINSTREAM`.
///
/// Dropping it without [`finish`](Self::finish) closes the connection; clamd discards the
/// stream.
pub struct InStream {
    conn: Conn,
    addr: ClamdAddr,
    io_timeout: Duration,
    bytes_sent: u64,
    failed: bool,
}

impl fmt::Debug for InStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InStream")
            .field("addr", &self.addr)
            .field("bytes_sent", &self.bytes_sent)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl InStream {
    /// Sends data as INSTREAM chunks (`<u32 BE length><bytes>`), splitting into frames of at
    /// most 64 KiB. Empty data sends nothing (an empty frame would end the stream).
    ///
    /// When clamd breaks the stream off (past `StreamMaxLength` it answers and closes), the
    /// error is the one its reply states, e.g. [`ClamdError::SizeLimitExceeded`]. After any
    /// error the stream is unusable.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), ClamdError> {
        self.usable()?;
        for chunk in data.chunks(MAX_FRAME) {
            let len = u32::try_from(chunk.len()).expect("a frame is at most 64 KiB");
            self.write_frame(len, chunk).await?;
            self.bytes_sent += chunk.len() as u64;
        }
        Ok(())
    }

    /// Sends the zero-length terminator and reads the reply: the verdict, or the error clamd
    /// states.
    pub async fn finish(mut self) -> Result<Verdict, ClamdError> {
        self.usable()?;
        self.write_frame(0, &[]).await?;
        let verdict = match read_reply(&mut self.conn, self.io_timeout).await {
            Ok(reply) => reply::parse_scan_reply(&reply),
            Err(error) => Err(error),
        };
        match &verdict {
            Ok(Verdict::Infected { signature }) => {
                tracing::debug!(addr = %self.addr, bytes = self.bytes_sent, signature, "clamd found a signature");
            }
            Ok(Verdict::Clean) => {}
            Err(error) => {
                tracing::debug!(addr = %self.addr, bytes = self.bytes_sent, %error, "clamd scan failed");
            }
        }
        verdict
    }

    /// Data bytes sent so far (frame headers not counted).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    fn usable(&self) -> Result<(), ClamdError> {
        if self.failed {
            return Err(ClamdError::Io(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "this INSTREAM failed earlier",
            )));
        }
        Ok(())
    }

    /// Writes one frame under the I/O timeout. When the connection breaks, clamd has most
    /// likely closed it after saying why (past `StreamMaxLength` it does): that reply, still
    /// in the socket's receive buffer, is the error returned.
    async fn write_frame(&mut self, len: u32, chunk: &[u8]) -> Result<(), ClamdError> {
        let header = len.to_be_bytes();
        let mut frame = Buf::chain(&header[..], chunk);
        let cause = match tokio::time::timeout(self.io_timeout, self.conn.write_all_buf(&mut frame))
            .await
        {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => {
                self.failed = true;
                return Err(ClamdError::Timeout);
            }
        };
        self.failed = true;
        if matches!(
            cause.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ) {
            let wait = self.io_timeout.min(Duration::from_secs(5));
            if let Ok(reply) = read_reply(&mut self.conn, wait).await
                && let Some(stated) = reply::error_in_reply(&reply)
            {
                tracing::debug!(addr = %self.addr, bytes = self.bytes_sent, error = %stated, "clamd broke the stream off");
                return Err(stated);
            }
        }
        Err(ClamdError::Io(cause))
    }
}

/// Reads one reply: up to the `\0` that ends the answers to z-commands, or to the end of the
/// connection.
async fn read_reply<S: AsyncRead + Unpin>(
    conn: &mut S,
    io_timeout: Duration,
) -> Result<String, ClamdError> {
    let mut reply = Vec::with_capacity(64);
    let mut buf = [0u8; 512];
    loop {
        let n = with_timeout(io_timeout, conn.read(&mut buf)).await?;
        if n == 0 {
            if reply.is_empty() {
                return Err(ClamdError::Protocol(
                    "clamd closed the connection without a reply".to_owned(),
                ));
            }
            break;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            reply.extend_from_slice(&buf[..end]);
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > MAX_REPLY {
            return Err(ClamdError::Protocol(format!(
                "clamd's reply is longer than {MAX_REPLY} bytes"
            )));
        }
    }
    String::from_utf8(reply)
        .map_err(|_| ClamdError::Protocol("clamd's reply is not UTF-8".to_owned()))
}

async fn with_timeout<T>(
    limit: Duration,
    op: impl Future<Output = io::Result<T>>,
) -> Result<T, ClamdError> {
    match tokio::time::timeout(limit, op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ClamdError::Io(e)),
        Err(_) => Err(ClamdError::Timeout),
    }
}

/// A connection over TCP or a unix socket.
#[derive(Debug)]
enum Conn {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            #[cfg(unix)]
            Conn::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    async fn fake() -> (TcpListener, Clamd) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let clamd = Clamd::new(ClamdAddr::Tcp {
            host: "127.0.0.1".into(),
            port,
        })
        .with_timeouts(Duration::from_secs(2), Duration::from_secs(5));
        (listener, clamd)
    }

    /// Reads `zINSTREAM\0` and the frames up to the terminator; gives their lengths and data.
    async fn read_frames(conn: &mut TcpStream) -> (Vec<usize>, Vec<u8>) {
        let mut command = [0u8; 10];
        conn.read_exact(&mut command).await.unwrap();
        assert_eq!(&command, b"zINSTREAM\0");
        let (mut lengths, mut data) = (Vec::new(), Vec::new());
        loop {
            let len = conn.read_u32().await.unwrap() as usize;
            if len == 0 {
                return (lengths, data);
            }
            lengths.push(len);
            let start = data.len();
            data.resize(start + len, 0);
            conn.read_exact(&mut data[start..]).await.unwrap();
        }
    }

    #[tokio::test]
    async fn frames_are_at_most_64_kib_and_carry_the_data() {
        let (listener, clamd) = fake().await;
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let frames = read_frames(&mut conn).await;
            conn.write_all(b"stream: OK\0").await.unwrap();
            frames
        });
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut scan = clamd.instream().await.unwrap();
        scan.send(&data[..10]).await.unwrap();
        scan.send(&[]).await.unwrap();
        scan.send(&data[10..]).await.unwrap();
        assert_eq!(scan.bytes_sent(), 200_000);
        assert!(format!("{scan:?}").contains("bytes_sent: 200000"));
        assert_eq!(scan.finish().await.unwrap(), Verdict::Clean);
        let (lengths, received) = server.await.unwrap();
        assert_eq!(lengths, [10, MAX_FRAME, MAX_FRAME, MAX_FRAME, 3382]);
        assert_eq!(received, data);
    }

    #[tokio::test]
    async fn a_broken_off_stream_reports_what_clamd_said() {
        let (listener, clamd) = fake().await;
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut some = vec![0u8; 100_000];
            conn.read_exact(&mut some).await.unwrap();
            conn.write_all(b"INSTREAM size limit exceeded. ERROR\0")
                .await
                .unwrap();
            // Closing with unread data sends a reset: the client's writes fail.
        });
        let mut scan = clamd.instream().await.unwrap();
        let error = scan.send(&vec![b'a'; 64 << 20]).await.unwrap_err();
        assert!(matches!(error, ClamdError::SizeLimitExceeded), "{error:?}");
    }

    #[tokio::test]
    async fn a_closed_connection_without_a_reply_is_an_io_or_protocol_error() {
        let (listener, clamd) = fake().await;
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut some = vec![0u8; 100_000];
            conn.read_exact(&mut some).await.unwrap();
        });
        let mut scan = clamd.instream().await.unwrap();
        let result = async {
            scan.send(&vec![b'a'; 64 << 20]).await?;
            scan.finish().await
        }
        .await;
        assert!(
            matches!(result, Err(ClamdError::Io(_) | ClamdError::Protocol(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn over_long_and_unknown_replies_are_protocol_errors() {
        let (listener, clamd) = fake().await;
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(&vec![b'x'; 20_000]).await.unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"UNKNOWN COMMAND\0").await.unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"ClamAV 1.4.6/27000\0").await.unwrap();
        });
        assert!(matches!(clamd.ping().await, Err(ClamdError::Protocol(_))));
        assert!(matches!(clamd.ping().await, Err(ClamdError::Protocol(_))));
        assert_eq!(clamd.version().await.unwrap(), "ClamAV 1.4.6/27000");
    }

    #[test]
    fn addresses_display() {
        let tcp = ClamdAddr::Tcp {
            host: "clamd".into(),
            port: 3310,
        };
        assert_eq!(tcp.to_string(), "clamd:3310");
        let v6 = ClamdAddr::Tcp {
            host: "::1".into(),
            port: 3310,
        };
        assert_eq!(v6.to_string(), "[::1]:3310");
        let unix = ClamdAddr::Unix("/run/clamav/clamd.ctl".into());
        assert_eq!(unix.to_string(), "unix:/run/clamav/clamd.ctl");
        let clamd = Clamd::new(tcp.clone());
        assert_eq!(clamd.addr(), &tcp);
    }
}
