//! The filesystem adapter against the conformance suite, its signed files-route URLs, and
//! what only a filesystem can get wrong (escapes through symlinks, leftovers, atomicity).

mod support;

use std::sync::Arc;

use secrecy::SecretSlice;
use storage::{
    FsStore, FsUrlSigner, ManualClock, ObjectStore, PresignOptions, PresignWindow, PutOptions,
    StorageError, UrlError, bytes_body,
};
use support::{Fixture, NOW, chunked, pattern};

const BASE: &str = "http://127.0.0.1:8000/files";

fn signer(clock: Arc<ManualClock>) -> Arc<FsUrlSigner> {
    let key = SecretSlice::from(b"an hmac key of at least thirty-two bytes".to_vec());
    Arc::new(FsUrlSigner::new(BASE, key, PresignWindow::default(), clock).unwrap())
}

struct FsFixture {
    store: FsStore,
    signer: Arc<FsUrlSigner>,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

async fn fs_store() -> FsFixture {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let signer = signer(clock.clone());
    let store = FsStore::new(dir.path().join("objects"), "publishers", signer.clone()).unwrap();
    store.create_bucket().await.unwrap();
    FsFixture {
        store,
        signer,
        clock,
        dir,
    }
}

async fn fs() -> Fixture {
    let f = fs_store().await;
    Fixture {
        store: Box::new(f.store),
        clock: f.clock,
        _guard: Box::new(f.dir),
    }
}

conformance_tests!(fs);

fn split(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("http://127.0.0.1:8000")
        .expect("signed for the public base");
    let (path, query) = rest.split_once('?').unwrap();
    (path.to_owned(), query.to_owned())
}

#[tokio::test]
async fn signed_urls_lead_the_files_route_to_the_object() {
    let f = fs_store().await;
    let key = "Dream Press/books/Çalışma/ses 1.mp3";
    f.store
        .put(key, bytes_body(&b"ID3 audio"[..]), PutOptions::default())
        .await
        .unwrap();
    let opts = PresignOptions {
        response_content_type: Some("audio/mpeg".into()),
        response_content_disposition: Some("inline".into()),
    };
    let url = f.store.presign_get(key, &opts).unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:8000/files/publishers/Dream%20Press/books/"),
        "{url}"
    );
    let (path, query) = split(&url);
    assert!(path.starts_with(f.signer.route_path()));
    let v = f.signer.verify(&path, &query).unwrap();
    assert_eq!((v.bucket.as_str(), v.key.as_str()), ("publishers", key));
    assert_eq!(v.response_content_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(v.response_content_disposition.as_deref(), Some("inline"));
    // What the route then serves.
    let got = f.store.get(&v.key, None).await.unwrap();
    assert_eq!(
        storage::collect_body(got.body).await.unwrap().as_ref(),
        b"ID3 audio"
    );

    // Tampering and expiry: 403 for the route.
    let tampered = query.replace("signature=", "signature=0");
    let e = f.signer.verify(&path, &tampered).unwrap_err();
    assert_eq!(e.http_status(), 403);
    assert_eq!(
        f.signer.verify(&path.replace("ses%201", "ses%202"), &query),
        Err(UrlError::BadSignature)
    );
    f.clock.advance(PresignWindow::DEFAULT_TTL);
    let e = f.signer.verify(&path, &query).unwrap_err();
    assert_eq!(
        (e.clone(), e.code()),
        (UrlError::Expired, "storage_url_expired")
    );
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_cannot_lead_outside_the_bucket() {
    let f = fs_store().await;
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"do not serve").unwrap();
    let bucket_dir = f.dir.path().join("objects/publishers");
    std::os::unix::fs::symlink(&outside, bucket_dir.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), bucket_dir.join("file-link")).unwrap();
    for key in ["link/secret.txt", "file-link"] {
        assert!(
            matches!(
                f.store.get(key, None).await,
                Err(StorageError::InvalidKey { .. })
            ),
            "{key}"
        );
        assert!(
            matches!(
                f.store.head(key).await,
                Err(StorageError::InvalidKey { .. })
            ),
            "{key}"
        );
    }
    let put = f
        .store
        .put("link/new.txt", bytes_body(&b"x"[..]), PutOptions::default())
        .await;
    assert!(
        matches!(put, Err(StorageError::InvalidKey { .. })),
        "{put:?}"
    );
    assert!(!outside.join("new.txt").exists());
    // Listing does not follow them either.
    assert!(f.store.list("").await.unwrap().is_empty());
}

#[tokio::test]
async fn failed_uploads_leave_no_temp_files_and_keep_the_old_object() {
    let f = fs_store().await;
    f.store
        .put("a/k.bin", bytes_body(&b"old"[..]), PutOptions::default())
        .await
        .unwrap();
    let e = f
        .store
        .put(
            "a/k.bin",
            chunked(&pattern(5000), 100),
            PutOptions::default().max_bytes(1000),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::TooLarge { .. }));
    // A cancelled upload: the future is dropped while the body is still pending.
    let pending = Box::pin(futures_util::stream::pending());
    let put = f.store.put("a/k.bin", pending, PutOptions::default());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), put)
            .await
            .is_err()
    );

    let dir = f.dir.path().join("objects/publishers/a");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["k.bin"], "no temp file left behind");
    let got = f.store.get("a/k.bin", None).await.unwrap();
    assert_eq!(
        storage::collect_body(got.body).await.unwrap().as_ref(),
        b"old"
    );
}

#[tokio::test]
async fn missing_bucket_folder_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path(), "teachers", signer(ManualClock::new(NOW))).unwrap();
    let e = store.ready().await.unwrap_err();
    assert_eq!(e.code(), "storage_bucket_not_found");
    assert!(e.is_unavailable());
    assert_eq!(
        store.get("x", None).await.unwrap_err().code(),
        "storage_bucket_not_found"
    );
    store.create_bucket().await.unwrap();
    store.ready().await.unwrap();
    assert!(FsStore::new(dir.path(), "../up", signer(ManualClock::new(NOW))).is_err());
}

#[tokio::test]
async fn a_stale_sidecar_is_ignored() {
    let f = fs_store().await;
    f.store
        .put(
            "s/a.png",
            bytes_body(&b"png"[..]),
            PutOptions::default().content_type("text/plain"),
        )
        .await
        .unwrap();
    // The object changed behind the sidecar's back (a crash between the two renames).
    std::fs::write(
        f.dir.path().join("objects/publishers/s/a.png"),
        b"longer png",
    )
    .unwrap();
    let head = f.store.head("s/a.png").await.unwrap();
    assert_eq!(head.size, 10);
    assert_eq!(head.content_type.as_deref(), Some("image/png"));
}

/// A get racing with puts that replace the object: the length it reports is always the length
/// of the bytes it streams, from one version of the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_racing_a_replacement_reports_the_length_of_what_it_streams() {
    use futures_util::TryStreamExt;
    let f = Arc::new(fs_store().await);
    let versions: [Vec<u8>; 2] = [vec![b'a'; 10], vec![b'b'; 64 * 1024]];
    f.store
        .put(
            "r/x.bin",
            bytes_body(versions[0].clone()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let writer = tokio::spawn({
        let (f, versions) = (Arc::clone(&f), versions.clone());
        async move {
            for round in 0..600 {
                f.store
                    .put(
                        "r/x.bin",
                        bytes_body(versions[round % 2].clone()),
                        PutOptions::default(),
                    )
                    .await
                    .unwrap();
            }
        }
    });
    let mut reads = 0;
    while !writer.is_finished() {
        let got = f.store.get("r/x.bin", None).await.unwrap();
        let size = got.meta.size;
        let body: Vec<u8> = got
            .body
            .map_ok(|chunk| chunk.to_vec())
            .try_concat()
            .await
            .unwrap();
        assert_eq!(body.len() as u64, size, "after {reads} reads");
        assert!(
            versions.contains(&body),
            "after {reads} reads: a mixed body"
        );
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
}
