//! The S3 adapter against a real SigV4-verifying server: s3s-fs 0.14.1, started per test on a
//! free loopback port with its own root folder and keys, and killed on drop. The binary must be
//! installed (`scripts/test.sh` does it via `ensure_s3s_fs`); without it these tests fail.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use secrecy::SecretString;
use storage::range::parse_range;
use storage::testing::{ACCESS, S3sFs, SECRET};
use storage::{
    ByteRange, Clock, ManualClock, ObjectStore, PresignOptions, PresignWindow, PutOptions,
    S3Config, S3Store, StorageError, bytes_body, collect_body,
};
use support::{Fixture, NOW, chunked, pattern};

const MIB: usize = 1024 * 1024;

async fn store_with(config: S3Config, clock: Arc<ManualClock>) -> S3Store {
    let store = S3Store::with_clock(config, clock).unwrap();
    store.create_bucket().await.unwrap();
    store
}

/// A store on `server`'s `teachers` bucket with S3's smallest parts (5 MiB), two in flight,
/// so a body of a few MiB makes a real multipart upload.
async fn multipart_store(server: &S3sFs) -> S3Store {
    let config = S3Config {
        part_size: 5 * MIB,
        max_in_flight: 2,
        ..server.config("teachers")
    };
    store_with(config, ManualClock::new(now())).await
}

async fn s3() -> Fixture {
    let server = S3sFs::start();
    let clock = ManualClock::new(NOW);
    let store = store_with(server.config("publishers"), clock.clone()).await;
    Fixture {
        store: Box::new(store),
        clock,
        _guard: Box::new(server),
    }
}

conformance_tests!(s3);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A plain GET with no credentials, like a browser's.
async fn fetch(url: &str) -> (u16, reqwest::header::HeaderMap, Bytes) {
    let r = reqwest::Client::new().get(url).send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_work_for_a_plain_get_at_the_external_host() {
    let server = S3sFs::start();
    let clock = ManualClock::new(now());
    let config = S3Config {
        external_url: Some(format!("http://localhost:{}", server.port)),
        ..server.config("publishers")
    };
    let store = store_with(config, clock.clone()).await;
    let keys = [
        "Dream Press/books/FLOWDEMO/images/M1/p2s1.png",
        "Dream Press/books/Çalışma Kitabı/ses 1.mp3",
    ];
    for key in keys {
        let body = format!("bytes of {key}");
        store
            .put(key, bytes_body(body.clone()), PutOptions::default())
            .await
            .unwrap();
        let url = store.presign_get(key, &PresignOptions::default()).unwrap();
        assert!(
            url.starts_with(&format!(
                "http://localhost:{}/publishers/Dream%20Press/",
                server.port
            )),
            "{url}"
        );
        let (status, _, bytes) = fetch(&url).await;
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&bytes));
        assert_eq!(bytes.as_ref(), body.as_bytes());

        // The signature covers the host: the same URL at the internal host is refused.
        let rewritten = url.replace("http://localhost:", "http://127.0.0.1:");
        assert_eq!(
            fetch(&rewritten).await.0,
            403,
            "host rewrite must break the signature"
        );

        // One changed signature character.
        let last = url.chars().last().unwrap();
        let tampered = format!(
            "{}{}",
            &url[..url.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert_eq!(fetch(&tampered).await.0, 403);
    }

    // Response overrides are signed and honoured.
    let opts = PresignOptions {
        response_content_type: Some("audio/mpeg".into()),
        response_content_disposition: Some("attachment; filename=\"ses 1.mp3\"".into()),
    };
    let url = store.presign_get(keys[1], &opts).unwrap();
    let (status, headers, _) = fetch(&url).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-type").unwrap(), "audio/mpeg");
    assert_eq!(
        headers.get("content-disposition").unwrap(),
        "attachment; filename=\"ses 1.mp3\""
    );
    assert_eq!(
        fetch(&url.replace("audio%2Fmpeg", "text%2Fhtml")).await.0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_expire_and_stay_identical_within_a_window() {
    let server = S3sFs::start();
    let clock = ManualClock::new(now());
    let store = store_with(server.config("publishers"), clock.clone()).await;
    store
        .put("k.txt", bytes_body(&b"hello"[..]), PutOptions::default())
        .await
        .unwrap();

    let window = PresignWindow::default();
    let first = store
        .presign_get("k.txt", &PresignOptions::default())
        .unwrap();
    let start = window.signing(clock.now_unix()).signed_at;
    clock.set(start + window.window() - 1);
    assert_eq!(
        store
            .presign_get("k.txt", &PresignOptions::default())
            .unwrap(),
        first
    );
    assert_eq!(fetch(&first).await.0, 200);

    // Signed ten days ago: long expired.
    clock.set(now() - 10 * 86_400);
    let old = store
        .presign_get("k.txt", &PresignOptions::default())
        .unwrap();
    assert_ne!(old, first);
    assert_eq!(fetch(&old).await.0, 403);
}

/// 12 MiB + 1 in 5 MiB parts: three parts, uploaded at most two at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_round_trip() {
    let server = S3sFs::start();
    let store = multipart_store(&server).await;
    let data = pattern(12 * MIB + 1);
    let put = store
        .put(
            "teacher/1/video clip.mp4",
            chunked(&data, 300_000),
            PutOptions::default().max_bytes(20 * MIB as u64),
        )
        .await
        .unwrap();
    assert_eq!(put.size, data.len() as u64);
    assert_eq!(put.content_type.as_deref(), Some("video/mp4"));
    let got = store.get("teacher/1/video clip.mp4", None).await.unwrap();
    assert!(
        collect_body(got.body).await.unwrap().as_ref() == data.as_slice(),
        "body differs"
    );
    // A range across the first part boundary.
    let got = store
        .get(
            "teacher/1/video clip.mp4",
            parse_range("bytes=5242870-5242889"),
        )
        .await
        .unwrap();
    assert_eq!(
        got.range,
        Some(ByteRange {
            start: 5_242_870,
            end: 5_242_889
        })
    );
    assert_eq!(
        collect_body(got.body).await.unwrap().as_ref(),
        &data[5_242_870..5_242_890]
    );
    assert!(server.pending_upload_files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_multipart_upload_is_aborted() {
    let server = S3sFs::start();
    let store = multipart_store(&server).await;
    let data = pattern(16 * MIB);
    let e = store
        .put(
            "t/too big.bin",
            chunked(&data, 256 * 1024),
            PutOptions::default().max_bytes(11 * MIB as u64),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StorageError::TooLarge { limit } if limit == 11 * MIB as u64),
        "{e:?}"
    );
    assert!(
        store
            .head("t/too big.bin")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(store.list("t/").await.unwrap().is_empty());
    assert_eq!(
        server.pending_upload_files(),
        Vec::<String>::new(),
        "upload not aborted"
    );
}

/// An upload in the middle of its multipart upload: its body has sent two parts' worth (both
/// parts are on the server), and fails when the returned sender fires. The task is the `put`.
async fn stalled_multipart_upload(
    server: &S3sFs,
    store: &Arc<S3Store>,
    key: &'static str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<storage::Result<storage::ObjectMeta>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let head = futures_util::stream::iter(vec![Ok(Bytes::from(pattern(11 * MIB)))]);
    let tail = futures_util::stream::once(async move {
        let _ = rx.await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        ))
    });
    let body = Box::pin(futures_util::StreamExt::chain(head, tail));
    let task = {
        let store = Arc::clone(store);
        tokio::spawn(async move { store.put(key, body, PutOptions::default()).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while server
        .pending_upload_files()
        .iter()
        .filter(|n| n.contains(".part-"))
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "parts never appeared: {:?}",
            server.pending_upload_files()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (tx, task)
}

/// Ends a [`stalled_multipart_upload`]: its body fails, or (`cancel`) its future is dropped.
async fn end_upload(
    cancel: bool,
    tx: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<storage::Result<storage::ObjectMeta>>,
) {
    if cancel {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    } else {
        tx.send(()).unwrap();
        let e = task.await.unwrap().unwrap_err();
        assert_eq!(e.code(), "storage_body_error", "{e:?}");
    }
}

/// Waits until s3s-fs holds no file of an unfinished multipart upload.
async fn wait_until_nothing_pending(server: &S3sFs, bound: Duration, context: &str) {
    let deadline = Instant::now() + bound;
    while !server.pending_upload_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "left pending ({context}): {:?}",
            server.pending_upload_files()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// While an upload waits in the middle, it is visible in s3s-fs's root (so the emptiness
/// checks can fail); after its body fails or its future is dropped, nothing is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_cancelled_multipart_uploads_are_aborted() {
    let server = S3sFs::start();
    let store = Arc::new(multipart_store(&server).await);

    for cancel in [false, true] {
        let (tx, task) = stalled_multipart_upload(&server, &store, "t/broken.bin").await;
        end_upload(cancel, tx, task).await;
        wait_until_nothing_pending(
            &server,
            Duration::from_secs(10),
            &format!("cancel={cancel}"),
        )
        .await;
        assert!(store.head("t/broken.bin").await.unwrap_err().is_not_found());
    }
}

/// S3 dies in the middle of a multipart upload, so the abort cannot reach it: the parts stay
/// on the server until it is back, and then the abort, retried in the background, removes
/// them. Both ways an upload ends: its body fails, or its future is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_s3_could_not_take_is_retried_once_s3_is_back() {
    let mut server = S3sFs::start();
    let store = Arc::new(multipart_store(&server).await);

    for cancel in [false, true] {
        let (tx, task) = stalled_multipart_upload(&server, &store, "t/stranded.bin").await;
        server.kill();
        end_upload(cancel, tx, task).await;
        // The first abort has met a closed port; the parts are still on the server's disk.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !server.pending_upload_files().is_empty(),
            "nothing was left pending (cancel={cancel}), so this checks nothing"
        );

        server.start_again();
        // Retries wait 0.5 s, 1 s, 2 s, ... (with up to 25% jitter): one lands within seconds.
        wait_until_nothing_pending(
            &server,
            Duration::from_secs(15),
            &format!("after S3 came back, cancel={cancel}"),
        )
        .await;
        assert!(
            store
                .head("t/stranded.bin")
                .await
                .unwrap_err()
                .is_not_found()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified() {
    let server = S3sFs::start();
    let clock = ManualClock::new(now());

    // Bucket not created yet.
    let store = S3Store::with_clock(server.config("missing"), clock.clone()).unwrap();
    let e = store.ready().await.unwrap_err();
    assert_eq!(e.code(), "storage_bucket_not_found", "{e:?}");
    store.create_bucket().await.unwrap();
    store.ready().await.unwrap();

    // Wrong secret: denied, and the secret is in no message.
    let wrong = S3Config {
        secret_key: SecretString::from("not-the-secret-xyz"),
        ..server.config("missing")
    };
    let store = S3Store::with_clock(wrong, clock.clone()).unwrap();
    let e = store.ready().await.unwrap_err();
    assert_eq!(
        (e.code(), e.http_status()),
        ("storage_access_denied", 502),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?} {store:?}").contains("not-the-secret-xyz"));
    assert!(!format!("{store:?}").contains(SECRET));

    // Nothing listening: unavailable (503).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = S3Config::new(
        &format!("http://127.0.0.1:{port}"),
        ACCESS,
        SecretString::from(SECRET),
        "x",
    );
    let store = S3Store::with_clock(config, clock).unwrap();
    for e in [
        store.ready().await.unwrap_err(),
        store.get("a.txt", None).await.unwrap_err(),
        store
            .put("a.txt", bytes_body(&b"x"[..]), PutOptions::default())
            .await
            .unwrap_err(),
    ] {
        assert!(e.is_unavailable(), "{e:?}");
        assert_eq!(e.http_status(), 503);
        assert!(!format!("{e} {e:?}").contains(SECRET));
    }
}

/// A part the server fails to store (its file path is made a folder behind its back) fails the
/// upload, which is then aborted: s3s-fs's record of the upload is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_part_aborts_the_upload() {
    let server = S3sFs::start();
    let store = Arc::new(multipart_store(&server).await);

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let head = futures_util::stream::iter(vec![Ok(Bytes::from(pattern(10 * MIB)))]);
    let tail = futures_util::stream::once(async move {
        let _ = rx.await;
        Ok(Bytes::from(pattern(3 * MIB)))
    });
    let body = Box::pin(futures_util::StreamExt::chain(head, tail));
    let task = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .put("t/part-fails.bin", body, PutOptions::default())
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        if let Some(r) = server
            .pending_upload_files()
            .into_iter()
            .find(|n| n.ends_with(".json"))
        {
            break r;
        }
        assert!(Instant::now() < deadline, "upload never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let id = record
        .trim_start_matches(".upload-")
        .trim_end_matches(".json")
        .to_owned();
    let blocker = server.root().join(format!(".upload_id-{id}.part-3"));
    std::fs::create_dir(&blocker).unwrap();
    tx.send(()).unwrap();

    let e = task.await.unwrap().unwrap_err();
    assert!(
        e.is_unavailable() || e.code() == "storage_backend_error",
        "{e:?}"
    );
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(
        server.pending_upload_files(),
        Vec::<String>::new(),
        "upload not aborted"
    );
    assert!(
        store
            .head("t/part-fails.bin")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// `storage-init`'s CORS step: applied where the server supports bucket CORS, and reported
/// plainly (not as an error) where it does not, as s3s-fs 0.14.1 does.
#[tokio::test]
async fn bucket_cors_is_applied_or_reported_unsupported() {
    let server = S3sFs::start();
    let store = store_with(server.config("cors-test"), ManualClock::new(NOW)).await;
    let rule = storage::CorsRule {
        origins: vec!["https://lms.example.org".to_owned()],
        max_age_secs: 3600,
    };
    let outcome = store.set_cors(&rule).await.expect("no transport error");
    println!("s3s-fs bucket CORS: {outcome:?}");
    match outcome {
        storage::CorsOutcome::Applied => {}
        storage::CorsOutcome::Unsupported(reason) => assert!(!reason.is_empty()),
        other => panic!("an S3 server has CORS to configure: {other:?}"),
    }
}
