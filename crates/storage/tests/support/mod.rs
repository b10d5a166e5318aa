//! The conformance suite every `ObjectStore` adapter passes: each function states one
//! behaviour of the port; `conformance_tests!` turns them into one test each for an adapter.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use storage::range::parse_range;
use storage::{
    ByteRange, ByteStream, ManualClock, ObjectStore, PresignOptions, PresignWindow, PutOptions,
    RangeSpec, StorageError, bytes_body, collect_body,
};

/// An adapter under test, with its clock and whatever keeps its backing alive.
pub struct Fixture {
    pub store: Box<dyn ObjectStore>,
    pub clock: Arc<ManualClock>,
    pub _guard: Box<dyn std::any::Any + Send>,
}

/// A fixed "now" for the presign checks, at the start of a default window (a multiple of 900).
pub const NOW: u64 = 1_800_000_000;

pub fn chunked(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

async fn read_all(
    store: &dyn ObjectStore,
    key: &str,
    range: Option<RangeSpec>,
) -> (storage::GetResult, Bytes) {
    let mut got = store
        .get(key, range)
        .await
        .unwrap_or_else(|e| panic!("get {key} {range:?}: {e}"));
    let body = std::mem::replace(&mut got.body, bytes_body(Bytes::new()));
    let bytes = collect_body(body).await.unwrap();
    (got, bytes)
}

pub async fn put_get_head_round_trip(s: &dyn ObjectStore, _: &ManualClock) {
    let data = pattern(100_000);
    let put = s
        .put(
            "books/b1/data.bin",
            chunked(&data, 7_000),
            PutOptions::default().content_type("application/x-test"),
        )
        .await
        .unwrap();
    assert_eq!(put.size, 100_000);
    assert_eq!(put.key, "books/b1/data.bin");
    assert!(
        put.etag
            .as_deref()
            .is_some_and(|e| e.starts_with('"') && e.len() > 2),
        "{put:?}"
    );
    let (got, bytes) = read_all(s, "books/b1/data.bin", None).await;
    assert_eq!(bytes.as_ref(), data.as_slice());
    assert_eq!(got.range, None);
    assert_eq!(got.body_len(), 100_000);
    assert_eq!(got.meta.size, 100_000);
    assert_eq!(got.meta.content_type.as_deref(), Some("application/x-test"));
    assert_eq!(got.meta.etag, put.etag);
    assert!(got.meta.last_modified.is_some());
    let head = s.head("books/b1/data.bin").await.unwrap();
    assert_eq!(
        (head.size, &head.etag, head.content_type.as_deref()),
        (100_000, &put.etag, Some("application/x-test"))
    );
}

pub async fn content_type_defaults_from_the_extension(s: &dyn ObjectStore, _: &ManualClock) {
    s.put(
        "img/cover.png",
        bytes_body(&b"png"[..]),
        PutOptions::default(),
    )
    .await
    .unwrap();
    s.put(
        "audio/a.mp3",
        bytes_body(&b"mp3"[..]),
        PutOptions::default(),
    )
    .await
    .unwrap();
    s.put("blob/noext", bytes_body(&b"x"[..]), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        s.head("img/cover.png")
            .await
            .unwrap()
            .content_type
            .as_deref(),
        Some("image/png")
    );
    assert_eq!(
        s.head("audio/a.mp3").await.unwrap().content_type.as_deref(),
        Some("audio/mpeg")
    );
    assert_eq!(
        s.head("blob/noext").await.unwrap().content_type.as_deref(),
        Some("application/octet-stream")
    );
}

pub async fn ranges(s: &dyn ObjectStore, _: &ManualClock) {
    let data = pattern(1000);
    s.put("r/obj.bin", bytes_body(data.clone()), PutOptions::default())
        .await
        .unwrap();
    let cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=500-", 500, 999),
        ("bytes=-100", 900, 999),
        ("bytes=990-5000", 990, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=999-999", 999, 999),
    ];
    for (header, start, end) in cases {
        let (got, bytes) = read_all(s, "r/obj.bin", parse_range(header)).await;
        assert_eq!(got.range, Some(ByteRange { start, end }), "{header}");
        assert_eq!(got.meta.size, 1000, "{header}");
        assert_eq!(got.body_len(), end - start + 1, "{header}");
        assert_eq!(
            bytes.as_ref(),
            &data[start as usize..=end as usize],
            "{header}"
        );
    }
    for header in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        match s.get("r/obj.bin", parse_range(header)).await {
            Err(StorageError::RangeNotSatisfiable { size: 1000 }) => {}
            other => panic!("{header}: {other:?}"),
        }
    }
}

pub async fn empty_objects(s: &dyn ObjectStore, _: &ManualClock) {
    let put = s
        .put("e/empty.txt", chunked(&[], 1), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(put.size, 0);
    let (got, bytes) = read_all(s, "e/empty.txt", None).await;
    assert!(bytes.is_empty());
    assert_eq!(got.meta.size, 0);
    assert!(matches!(
        s.get("e/empty.txt", parse_range("bytes=0-")).await,
        Err(StorageError::RangeNotSatisfiable { size: 0 })
    ));
}

pub async fn missing_objects(s: &dyn ObjectStore, _: &ManualClock) {
    for result in [
        s.get("no/such.txt", None).await.map(|_| ()),
        s.head("no/such.txt").await.map(|_| ()),
    ] {
        let e = result.unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert_eq!((e.code(), e.http_status()), ("storage_not_found", 404));
        assert!(!e.is_unavailable());
    }
    // Deleting what is not there is fine.
    s.delete("no/such.txt").await.unwrap();
}

pub async fn overwrite_and_delete(s: &dyn ObjectStore, _: &ManualClock) {
    s.put(
        "o/k.txt",
        bytes_body(&b"first version"[..]),
        PutOptions::default(),
    )
    .await
    .unwrap();
    let second = s
        .put("o/k.txt", bytes_body(&b"second"[..]), PutOptions::default())
        .await
        .unwrap();
    let (got, bytes) = read_all(s, "o/k.txt", None).await;
    assert_eq!(bytes.as_ref(), b"second");
    assert_eq!(got.meta.etag, second.etag);
    s.delete("o/k.txt").await.unwrap();
    assert!(s.head("o/k.txt").await.unwrap_err().is_not_found());
    s.delete("o/k.txt").await.unwrap();
}

pub async fn list_by_prefix(s: &dyn ObjectStore, _: &ManualClock) {
    let keys = [
        "Dream Press/books/A/config.json",
        "Dream Press/books/A/images/p 1.png",
        "Dream Press/books/AB/config.json",
        "Dream Press/books/B/config.json",
        "Other/books/A/config.json",
    ];
    for (i, k) in keys.iter().enumerate() {
        s.put(k, bytes_body(vec![b'x'; i + 1]), PutOptions::default())
            .await
            .unwrap();
    }
    let names =
        |v: Vec<storage::ObjectMeta>| v.into_iter().map(|m| (m.key, m.size)).collect::<Vec<_>>();
    assert_eq!(
        names(s.list("Dream Press/books/A/").await.unwrap()),
        [
            ("Dream Press/books/A/config.json".to_owned(), 1),
            ("Dream Press/books/A/images/p 1.png".to_owned(), 2)
        ]
    );
    // A plain string prefix, not a folder.
    assert_eq!(s.list("Dream Press/books/A").await.unwrap().len(), 3);
    assert_eq!(s.list("Dream Press/").await.unwrap().len(), 4);
    let all = s.list("").await.unwrap();
    let all_keys: Vec<_> = all.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(all_keys, keys, "sorted, nothing else listed");
    for m in &all {
        assert!(m.last_modified.is_some(), "{m:?}");
        // s3s-fs lists no ETags; where a backend gives one, it is the object's.
        if m.etag.is_some() {
            assert_eq!(m.etag, s.head(&m.key).await.unwrap().etag, "{m:?}");
        }
    }
    assert!(s.list("Nope/").await.unwrap().is_empty());
}

pub async fn keys_with_spaces_and_non_ascii(s: &dyn ObjectStore, _: &ManualClock) {
    for key in [
        "Dream Press/books/Çalışma Kitabı/ses 1.mp3",
        "Dream Press/日本語/ü+ö=ß & (1).txt",
    ] {
        let body = format!("content of {key}");
        s.put(key, bytes_body(body.clone()), PutOptions::default())
            .await
            .unwrap();
        let (_, bytes) = read_all(s, key, None).await;
        assert_eq!(bytes.as_ref(), body.as_bytes());
        assert_eq!(s.head(key).await.unwrap().size, body.len() as u64);
        assert_eq!(s.list(key).await.unwrap()[0].key, key);
        assert!(
            !s.presign_get(key, &PresignOptions::default())
                .unwrap()
                .contains(' ')
        );
    }
}

pub async fn size_limit_while_streaming(s: &dyn ObjectStore, _: &ManualClock) {
    let data = pattern(10_000);
    let e = s
        .put(
            "big/too.bin",
            chunked(&data, 1000),
            PutOptions::default().max_bytes(9_999),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, StorageError::TooLarge { limit: 9_999 }),
        "{e:?}"
    );
    assert_eq!((e.code(), e.http_status()), ("storage_too_large", 413));
    assert!(s.head("big/too.bin").await.unwrap_err().is_not_found());
    assert!(s.list("big/").await.unwrap().is_empty());
    // Exactly at the limit is fine.
    let ok = s
        .put(
            "big/ok.bin",
            chunked(&data, 1000),
            PutOptions::default().max_bytes(10_000),
        )
        .await
        .unwrap();
    assert_eq!(ok.size, 10_000);
}

pub async fn failing_body_stores_nothing(s: &dyn ObjectStore, _: &ManualClock) {
    let chunks: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"partial ")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let e = s
        .put(
            "fail/x.txt",
            Box::pin(futures_util::stream::iter(chunks)),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "storage_body_error", "{e:?}");
    assert!(s.head("fail/x.txt").await.unwrap_err().is_not_found());
    assert!(s.list("fail/").await.unwrap().is_empty());
}

pub async fn unsafe_keys_are_refused(s: &dyn ObjectStore, _: &ManualClock) {
    for key in [
        "../escape",
        "/abs/path",
        "a/../../b",
        "a\\..\\b",
        "a\0b",
        "",
        "a//b",
        "dir/",
    ] {
        let put = s
            .put(key, bytes_body(&b"x"[..]), PutOptions::default())
            .await;
        assert!(
            matches!(put, Err(StorageError::InvalidKey { .. })),
            "put {key:?}: {put:?}"
        );
        assert!(
            matches!(s.get(key, None).await, Err(StorageError::InvalidKey { .. })),
            "get {key:?}"
        );
        assert!(
            matches!(s.head(key).await, Err(StorageError::InvalidKey { .. })),
            "head {key:?}"
        );
        assert!(
            matches!(s.delete(key).await, Err(StorageError::InvalidKey { .. })),
            "delete {key:?}"
        );
        assert!(
            matches!(
                s.presign_get(key, &PresignOptions::default()),
                Err(StorageError::InvalidKey { .. })
            ),
            "presign {key:?}"
        );
    }
    assert!(matches!(
        s.list("../").await,
        Err(StorageError::InvalidKey { .. })
    ));
}

pub async fn presign_is_deterministic_within_a_window(s: &dyn ObjectStore, clock: &ManualClock) {
    let window = PresignWindow::default().window();
    clock.set(NOW + 5);
    let opts = PresignOptions::default();
    let url = s.presign_get("Dream Press/a b.png", &opts).unwrap();
    assert_eq!(s.presign_get("Dream Press/a b.png", &opts).unwrap(), url);
    clock.set(NOW + window - 1);
    assert_eq!(
        s.presign_get("Dream Press/a b.png", &opts).unwrap(),
        url,
        "same window"
    );
    assert_ne!(
        s.presign_get("Dream Press/a c.png", &opts).unwrap(),
        url,
        "other key"
    );
    let with_type = PresignOptions {
        response_content_type: Some("image/png".into()),
        response_content_disposition: Some("attachment; filename=\"a b.png\"".into()),
    };
    let typed = s.presign_get("Dream Press/a b.png", &with_type).unwrap();
    assert_ne!(typed, url);
    assert_eq!(
        s.presign_get("Dream Press/a b.png", &with_type).unwrap(),
        typed
    );
    clock.set(NOW + window);
    assert_ne!(
        s.presign_get("Dream Press/a b.png", &opts).unwrap(),
        url,
        "next window"
    );
}

pub async fn ready_when_the_bucket_exists(s: &dyn ObjectStore, _: &ManualClock) {
    s.ready().await.unwrap();
    // Creating an existing bucket is fine.
    s.create_bucket().await.unwrap();
    s.ready().await.unwrap();
}

/// One `#[tokio::test]` per conformance function, for the fixture `$make` builds.
#[macro_export]
macro_rules! conformance_tests {
    ($make:path) => {
        mod conformance {
            use super::*;
            $crate::conformance_tests!(@each $make;
                put_get_head_round_trip, content_type_defaults_from_the_extension, ranges,
                empty_objects, missing_objects, overwrite_and_delete, list_by_prefix,
                keys_with_spaces_and_non_ascii, size_limit_while_streaming,
                failing_body_stores_nothing, unsafe_keys_are_refused,
                presign_is_deterministic_within_a_window, ready_when_the_bucket_exists);
        }
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let f = $make().await;
                support::$name(&*f.store, &f.clock).await;
            }
        )*
    };
}
