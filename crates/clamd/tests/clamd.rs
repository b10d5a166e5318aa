//! The client against a real clamd (`testing::ClamdServer`), over TCP and the unix socket,
//! and against sockets that refuse or never answer.

use std::time::{Duration, Instant};

use clamd::testing::{ClamdServer, EICAR, REPORTED_SIGNATURE, SIGNATURE};
use clamd::{Clamd, ClamdAddr, ClamdError, MAX_FRAME, Verdict};

/// A clamd with the default settings: each test starts its own (it takes a few tens of
/// milliseconds) so that every one is killed when its test ends.
fn server() -> ClamdServer {
    ClamdServer::start().unwrap_or_else(|e| panic!("{e}"))
}

fn infected() -> Verdict {
    Verdict::Infected {
        signature: REPORTED_SIGNATURE.to_owned(),
    }
}

/// Clean bytes: a text pattern that matches no signature.
fn clean(len: usize) -> Vec<u8> {
    b"All work and no play makes Jack a dull boy.\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

#[test]
fn the_reported_name_is_the_test_signature() {
    assert_eq!(REPORTED_SIGNATURE, format!("{SIGNATURE}.UNOFFICIAL"));
    assert_eq!(EICAR.len(), 68);
}

#[tokio::test]
async fn ping_and_version() {
    let server = server();
    let clamd = server.client();
    clamd.ping().await.unwrap();
    let version = clamd.version().await.unwrap();
    assert!(version.starts_with("ClamAV "), "{version}");
}

#[tokio::test]
async fn clean_bytes() {
    let server = server();
    let clamd = server.client();
    assert_eq!(clamd.scan_bytes(b"hello").await.unwrap(), Verdict::Clean);
    assert_eq!(
        clamd.scan_bytes(&clean(10_000)).await.unwrap(),
        Verdict::Clean
    );
    // An empty stream is a clean one.
    assert_eq!(clamd.scan_bytes(b"").await.unwrap(), Verdict::Clean);
}

#[tokio::test]
async fn eicar_is_infected() {
    let server = server();
    let clamd = server.client();
    assert_eq!(clamd.scan_bytes(EICAR).await.unwrap(), infected());
}

#[tokio::test]
async fn eicar_in_many_small_sends() {
    let server = server();
    let clamd = server.client();
    let mut data = clean(1000);
    data.extend_from_slice(EICAR);
    data.extend_from_slice(&clean(1000));
    let mut scan = clamd.instream().await.unwrap();
    let mut sizes = [1usize, 2, 3, 5, 7, 11].into_iter().cycle();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let n = sizes.next().unwrap().min(rest.len());
        scan.send(&rest[..n]).await.unwrap();
        rest = &rest[n..];
    }
    scan.send(b"").await.unwrap(); // sends nothing, does not end the stream
    assert_eq!(scan.bytes_sent(), data.len() as u64);
    assert_eq!(scan.finish().await.unwrap(), infected());
}

#[tokio::test]
async fn eicar_across_the_frame_boundary() {
    let server = server();
    let clamd = server.client();
    let mut data = clean(65530);
    data.extend_from_slice(EICAR);
    data.extend_from_slice(&clean(100_000));
    assert!(65530 < MAX_FRAME && MAX_FRAME < 65530 + EICAR.len());

    // One send: split into frames of 64 KiB, the first ending inside the EICAR string.
    assert_eq!(clamd.scan_bytes(&data).await.unwrap(), infected());

    // Sends of odd sizes that straddle the boundary in other places.
    let mut scan = clamd.instream().await.unwrap();
    for piece in data.chunks(40_001) {
        scan.send(piece).await.unwrap();
    }
    assert_eq!(scan.bytes_sent(), data.len() as u64);
    assert_eq!(scan.finish().await.unwrap(), infected());
}

#[tokio::test]
async fn five_megabytes_clean() {
    let server = server();
    let clamd = server.client();
    let data = clean(5_000_000);
    let mut scan = clamd.instream().await.unwrap();
    for piece in data.chunks(1 << 20) {
        scan.send(piece).await.unwrap();
    }
    assert_eq!(scan.bytes_sent(), 5_000_000);
    assert_eq!(scan.finish().await.unwrap(), Verdict::Clean);
}

#[tokio::test]
async fn over_the_unix_socket() {
    let server = server();
    let clamd = Clamd::new(server.unix_addr());
    assert!(matches!(clamd.addr(), ClamdAddr::Unix(_)));
    clamd.ping().await.unwrap();
    assert!(clamd.version().await.unwrap().starts_with("ClamAV "));
    assert_eq!(
        clamd.scan_bytes(&clean(200_000)).await.unwrap(),
        Verdict::Clean
    );
    let mut data = clean(65530);
    data.extend_from_slice(EICAR);
    assert_eq!(clamd.scan_bytes(&data).await.unwrap(), infected());
}

#[tokio::test]
async fn closed_port_is_a_connect_error_at_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clamd = Clamd::new(ClamdAddr::Tcp {
        host: "127.0.0.1".into(),
        port,
    });
    let started = Instant::now();
    let error = clamd.ping().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    let ClamdError::Connect(cause) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(cause.kind(), std::io::ErrorKind::ConnectionRefused);
    let message = error.to_string();
    assert!(
        message.contains(&format!("cannot reach clamd at 127.0.0.1:{port}")),
        "{message}"
    );
    assert!(matches!(
        clamd.scan_bytes(b"x").await,
        Err(ClamdError::Connect(_))
    ));
}

#[tokio::test]
async fn missing_unix_socket_is_a_connect_error() {
    let dir = std::env::temp_dir().join("clamd-test-no-such-socket.sock");
    let clamd = Clamd::new(ClamdAddr::Unix(dir));
    let error = clamd.ping().await.unwrap_err();
    assert!(matches!(error, ClamdError::Connect(_)), "{error:?}");
    assert!(error.to_string().contains("cannot reach clamd at unix:"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds the connections, reads nothing, answers nothing.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let clamd = Clamd::new(ClamdAddr::Tcp {
        host: "127.0.0.1".into(),
        port,
    })
    .with_timeouts(Duration::from_secs(1), Duration::from_millis(200));

    let started = Instant::now();
    assert!(matches!(clamd.ping().await, Err(ClamdError::Timeout)));
    assert!(started.elapsed() < Duration::from_secs(2));

    assert!(matches!(
        clamd.scan_bytes(b"hello").await,
        Err(ClamdError::Timeout)
    ));

    // Writes that the server never reads fill the socket buffers, then time out.
    let mut scan = clamd.instream().await.unwrap();
    let big = clean(64 << 20);
    let started = Instant::now();
    assert!(matches!(scan.send(&big).await, Err(ClamdError::Timeout)));
    assert!(started.elapsed() < Duration::from_secs(3));
    holder.abort();
}

#[tokio::test]
async fn size_limit_exceeded() {
    let small = ClamdServer::start_with(|cfg| cfg.stream_max_length = "1M".into())
        .unwrap_or_else(|e| panic!("{e}"));
    let clamd = small.client();

    // Under the limit: scanned.
    assert_eq!(
        clamd.scan_bytes(&clean(500_000)).await.unwrap(),
        Verdict::Clean
    );

    // Far over it in one send: clamd answers and closes while the data is still going out;
    // send reports what clamd said, not the broken pipe.
    let mut scan = clamd.instream().await.unwrap();
    let error = scan.send(&clean(32 << 20)).await.unwrap_err();
    assert!(matches!(error, ClamdError::SizeLimitExceeded), "{error:?}");
    assert!(scan.bytes_sent() < 32 << 20);
    // The stream is unusable afterwards.
    assert!(matches!(scan.send(b"x").await, Err(ClamdError::Io(_))));

    // Just over it: the error comes from send or from finish, whichever meets it.
    let mut scan = clamd.instream().await.unwrap();
    let result = async {
        scan.send(&clean(1_100_000)).await?;
        scan.finish().await
    }
    .await;
    assert!(
        matches!(result, Err(ClamdError::SizeLimitExceeded)),
        "{result:?}"
    );

    // Over the unix socket too.
    let clamd = Clamd::new(small.unix_addr());
    let result = clamd.scan_bytes(&clean(8 << 20)).await;
    assert!(
        matches!(result, Err(ClamdError::SizeLimitExceeded)),
        "{result:?}"
    );
}

#[test]
fn start_time() {
    let started = Instant::now();
    let server = ClamdServer::start().unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed();
    eprintln!("clamd answered PING {took:?} after start");
    assert!(took < Duration::from_secs(30));
    assert!(
        server.logs().contains("Loaded 1 signatures"),
        "{}",
        server.logs()
    );
}
