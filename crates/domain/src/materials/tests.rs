//! MaterialService on the in-memory repository and store, and on a real clamd.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use storage::memory::MemoryStore;
use storage::{ByteStream, ObjectStore, PutOptions, collect_body};
use uuid::Uuid;

use super::*;
use crate::book_content::{AssetAnswer, AssetRequest};
use crate::memory::{AnswerGate, MemoryMaterials, PatternScanner};
use crate::ports::{SystemClock, VirusScanner};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
const EICAR: &[u8] = clamd::testing::EICAR;

struct Fixture {
    service: MaterialService,
    repo: MemoryMaterials,
    store: Arc<MemoryStore>,
    teacher: Uuid,
}

fn fixture(max_file_bytes: u64, quota: u64, scanner: Option<Arc<dyn VirusScanner>>) -> Fixture {
    let repo = MemoryMaterials::new();
    let store = Arc::new(MemoryStore::new("teachers"));
    let service = MaterialService::new(
        Arc::new(repo.clone()),
        store.clone(),
        scanner,
        MaterialLimits {
            max_file_bytes,
            default_quota: quota,
        },
        Arc::new(SystemClock),
    );
    Fixture {
        service,
        repo,
        store,
        teacher: Uuid::new_v4(),
    }
}

/// `bytes` as a body of `chunk`-byte pieces.
fn body(bytes: Vec<u8>, chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(chunks))
}

fn png_of(len: usize) -> Vec<u8> {
    let mut data = PNG.to_vec();
    data.resize(len.max(PNG.len()), 7);
    data
}

fn upload(name: &str, declared: &str, bytes: Vec<u8>) -> FileUpload {
    FileUpload {
        filename: name.into(),
        declared_type: Some(declared.into()),
        body: body(bytes, 64 * 1024),
    }
}

impl Fixture {
    async fn upload(&self, upload: FileUpload) -> Result<(MaterialRecord, Quota), MaterialError> {
        let staged = self.service.store_file(self.teacher, upload).await?;
        self.service.commit(staged, None).await
    }

    async fn used(&self) -> u64 {
        self.service.quota(self.teacher).await.unwrap().used_bytes
    }

    /// Nothing stored, nothing reserved: the state after any failed upload.
    async fn assert_nothing_left(&self) {
        tokio::task::yield_now().await;
        assert_eq!(self.store.len(), 0, "objects left behind");
        assert!(self.repo.all().is_empty(), "rows left behind");
        assert_eq!(self.used().await, 0, "quota not given back");
    }
}

#[tokio::test]
async fn an_upload_is_stored_counted_and_readable() {
    let f = fixture(10 << 20, 100 << 20, None);
    let data = png_of(3 << 20);
    let (record, quota) = f
        .upload(upload("Übung 1.png", "image/png", data.clone()))
        .await
        .unwrap();
    assert_eq!(record.kind, MaterialKind::Image);
    assert_eq!(record.file_size, Some(data.len() as u64));
    assert_eq!(record.mime_type.as_deref(), Some("image/png"));
    assert_eq!(record.original_filename.as_deref(), Some("Übung 1.png"));
    assert_eq!(record.name, "Übung 1.png");
    let key = record.storage_key.clone().unwrap();
    assert_eq!(
        key,
        format!("{}/images/{}__bung_1.png", f.teacher, record.id)
    );
    // Reserved in steps, trimmed to the size at the commit.
    assert_eq!(quota.used_bytes, data.len() as u64);
    let stored = f.store.get(&key, None).await.unwrap();
    assert_eq!(collect_body(stored.body).await.unwrap(), data);

    let url = f.service.download_url(&record).unwrap().unwrap();
    assert!(url.contains("disposition=attachment"), "{url}");
    let opened = f
        .service
        .open(
            f.teacher,
            record.id,
            ReadPurpose::Download,
            &AssetRequest {
                range: Some("bytes=0-7"),
                if_range: None,
                if_none_match: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        opened.content_disposition,
        "attachment; filename=\"_bung 1.png\"; filename*=UTF-8''%C3%9Cbung%201.png"
    );
    let AssetAnswer::Body(part) = opened.answer else {
        panic!("a body")
    };
    assert_eq!(collect_body(part.body).await.unwrap(), &data[..8]);
    // Images are downloaded, not streamed.
    let streamed = f
        .service
        .open(
            f.teacher,
            record.id,
            ReadPurpose::Stream,
            &AssetRequest::default(),
        )
        .await;
    assert!(matches!(streamed, Err(MaterialError::NotStreamable)));
}

#[tokio::test]
async fn a_name_given_with_the_file_is_used_and_checked() {
    let f = fixture(1 << 20, 10 << 20, None);
    let staged = f
        .service
        .store_file(f.teacher, upload("a.png", "image/png", png_of(100)))
        .await
        .unwrap();
    let (record, _) = f.service.commit(staged, Some(" Worksheet ")).await.unwrap();
    assert_eq!(record.name, "Worksheet");

    let staged = f
        .service
        .store_file(f.teacher, upload("b.png", "image/png", png_of(100)))
        .await
        .unwrap();
    let refused = f.service.commit(staged, Some("../../etc")).await;
    assert!(
        matches!(refused, Err(MaterialError::Name(_))),
        "{refused:?}"
    );
    tokio::task::yield_now().await;
    assert_eq!(f.store.len(), 1, "the refused file's object is deleted");
    assert_eq!(f.used().await, 100);
}

#[tokio::test]
async fn refused_uploads_leave_nothing() {
    let f = fixture(1 << 20, 10 << 20, None);
    for (upload, expected) in [
        (upload("a.jpg", "image/png", png_of(100)), "extension"),
        (upload("a.png", "image/jpeg", png_of(100)), "declared type"),
        (
            upload("a.txt", "text/plain", b"#!/bin/sh\necho".to_vec()),
            "script",
        ),
        (upload("a.png", "image/png", Vec::new()), "empty"),
        (upload("../a.png", "image/png", png_of(100)), "path"),
        (upload("a.png", "image/png", png_of(2 << 20)), "too large"),
    ] {
        let result = f.upload(upload).await;
        let error = result.expect_err(expected);
        let ok = match expected {
            "extension" | "declared type" | "script" => matches!(error, MaterialError::FileType(_)),
            "empty" => matches!(error, MaterialError::EmptyFile),
            "path" => matches!(error, MaterialError::Name(_)),
            "too large" => matches!(error, MaterialError::TooLarge { limit } if limit == 1 << 20),
            _ => unreachable!(),
        };
        assert!(ok, "{expected}: {error:?}");
        f.assert_nothing_left().await;
    }
}

#[tokio::test]
async fn a_body_that_breaks_mid_stream_leaves_nothing() {
    let f = fixture(10 << 20, 100 << 20, None);
    let mut chunks: Vec<std::io::Result<Bytes>> = vec![Ok(Bytes::from(png_of(3 << 20)))];
    chunks.push(Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "client went away",
    )));
    let result = f
        .upload(FileUpload {
            filename: "a.png".into(),
            declared_type: Some("image/png".into()),
            body: Box::pin(futures_util::stream::iter(chunks)),
        })
        .await;
    assert!(matches!(result, Err(MaterialError::Body(_))), "{result:?}");
    f.assert_nothing_left().await;
}

#[tokio::test]
async fn the_quota_is_exact_and_a_small_file_still_fits_the_last_bytes() {
    let f = fixture(10 << 20, 5_000, None);
    f.upload(upload("a.png", "image/png", png_of(3_000)))
        .await
        .unwrap();
    // 2,000 bytes left: one step (1 MiB) does not fit, the exact size does.
    f.upload(upload("b.png", "image/png", png_of(2_000)))
        .await
        .unwrap();
    assert_eq!(f.used().await, 5_000);
    let over = f.upload(upload("c.png", "image/png", png_of(100))).await;
    assert!(
        matches!(over, Err(MaterialError::QuotaExceeded { quota }) if quota.used_bytes == 5_000),
        "{over:?}"
    );
    assert_eq!(f.store.len(), 2);
    assert_eq!(f.used().await, 5_000);
}

#[tokio::test]
async fn racing_uploads_never_take_usage_over_the_quota() {
    let f = Arc::new(fixture(10 << 20, 20_500, None));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move {
                f.upload(upload(&format!("{i}.png"), "image/png", png_of(1_000)))
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => stored += 1,
            Err(MaterialError::QuotaExceeded { .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    tokio::task::yield_now().await;
    assert_eq!(stored, 20);
    assert_eq!(f.used().await, 20_000);
    assert_eq!(f.store.len(), 20);
    let sizes: u64 = f.repo.all().iter().filter_map(|r| r.file_size).sum();
    assert_eq!(sizes, 20_000);
}

#[tokio::test]
async fn the_database_failing_after_the_upload_deletes_the_object() {
    let f = fixture(10 << 20, 100 << 20, None);
    f.repo.fail_next_insert();
    let result = f
        .upload(upload("a.png", "image/png", png_of(2 << 20)))
        .await;
    assert!(
        matches!(result, Err(MaterialError::Repository(_))),
        "{result:?}"
    );
    f.assert_nothing_left().await;
}

#[tokio::test]
async fn a_stored_upload_is_answered_with_its_quota_even_when_quota_reads_fail() {
    // The quota comes from the insert's own transaction: once the material is stored, no
    // further read can fail the answer (a client would retry and store it twice).
    let f = fixture(10 << 20, 100 << 20, None);
    f.repo.fail_quota_reads();
    let (record, quota) = f
        .upload(upload("a.png", "image/png", png_of(3000)))
        .await
        .expect("the upload is stored and answered");
    assert_eq!(record.file_size, Some(3000));
    assert_eq!(
        quota,
        Quota {
            used_bytes: 3000,
            quota_bytes: 100 << 20
        }
    );
    assert_eq!(f.repo.all().len(), 1);
}

#[tokio::test]
async fn storage_failing_leaves_no_row_and_no_reservation() {
    let f = fixture(10 << 20, 100 << 20, None);
    f.store.set_unavailable(true);
    let result = f.upload(upload("a.png", "image/png", png_of(100))).await;
    assert!(
        matches!(result, Err(MaterialError::Storage(_))),
        "{result:?}"
    );
    f.store.set_unavailable(false);
    f.assert_nothing_left().await;
}

#[tokio::test]
async fn an_upload_dropped_half_way_gives_everything_back() {
    let f = fixture(10 << 20, 100 << 20, None);
    // A body that sends 2 MiB and then never ends.
    let first = futures_util::stream::iter(vec![Ok(Bytes::from(png_of(2 << 20)))]);
    let stalled: ByteStream = Box::pin(first.chain(futures_util::stream::pending()));
    let upload = f.service.store_file(
        f.teacher,
        FileUpload {
            filename: "a.png".into(),
            declared_type: Some("image/png".into()),
            body: stalled,
        },
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), upload)
            .await
            .is_err()
    );
    // The drop guards clean up on the runtime.
    for _ in 0..50 {
        if f.used().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f.assert_nothing_left().await;

    // A staged file dropped before its commit is deleted too.
    let staged = f
        .service
        .store_file(f.teacher, upload_png(100))
        .await
        .unwrap();
    assert_eq!(f.store.len(), 1);
    drop(staged);
    for _ in 0..50 {
        if f.store.is_empty() && f.used().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f.assert_nothing_left().await;
}

/// Polls `task` until `gate` holds a call back (the database made its change and its answer is
/// on its way), then drops it: a client that disconnects at that moment.
async fn cancel_while_an_answer_is_held<T>(task: impl Future<Output = T>, gate: &AnswerGate) {
    let mut task = std::pin::pin!(task);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gate.waiting() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no call was held");
        tokio::select! {
            _ = &mut task => panic!("finished although its database answer was held"),
            () = tokio::time::sleep(Duration::from_millis(2)) => {}
        }
    }
}

/// Waits (up to 5 s) until `check` holds.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_upload_cancelled_while_the_database_answers_a_reservation_gives_it_back() {
    let f = fixture(10 << 20, 100 << 20, None);
    let gate = f.repo.hold_answers();
    cancel_while_an_answer_is_held(f.service.store_file(f.teacher, upload_png(100)), &gate).await;
    assert!(f.used().await > 0, "the database made the reservation");
    gate.open();
    eventually("the reservation given back", async || f.used().await == 0).await;
    f.assert_nothing_left().await;
}

#[tokio::test]
async fn a_commit_cancelled_while_the_database_answers_keeps_the_material_whole() {
    let f = fixture(10 << 20, 100 << 20, None);
    let staged = f
        .service
        .store_file(f.teacher, upload_png(100))
        .await
        .unwrap();
    let gate = f.repo.hold_answers();
    cancel_while_an_answer_is_held(f.service.commit(staged, None), &gate).await;
    gate.open();
    eventually("the insert answered", async || gate.waiting() == 0).await;
    // Any clean-up the cancellation wrongly started would have run by now.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.repo.all().len(), 1, "the material row");
    assert_eq!(f.store.len(), 1, "its file");
    assert_eq!(f.used().await, 100, "its size, and nothing more, counted");
}

/// A store whose writes, once their body is in, complete on their own even if the caller
/// gives up, a little later (a request already on its way to S3).
#[derive(Debug)]
struct LateWrites(Arc<MemoryStore>);

#[async_trait::async_trait]
impl ObjectStore for LateWrites {
    fn bucket(&self) -> &str {
        self.0.bucket()
    }

    async fn put(
        &self,
        key: &str,
        body: ByteStream,
        options: PutOptions,
    ) -> storage::Result<storage::ObjectMeta> {
        let bytes = collect_body(body)
            .await
            .map_err(storage::StorageError::Body)?;
        let (store, key) = (self.0.clone(), key.to_owned());
        let write = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            store.put(&key, storage::bytes_body(bytes), options).await
        });
        write.await.expect("the write task")
    }

    async fn get(
        &self,
        key: &str,
        range: Option<storage::RangeSpec>,
    ) -> storage::Result<storage::GetResult> {
        self.0.get(key, range).await
    }

    async fn head(&self, key: &str) -> storage::Result<storage::ObjectMeta> {
        self.0.head(key).await
    }

    async fn delete(&self, key: &str) -> storage::Result<()> {
        self.0.delete(key).await
    }

    async fn list(&self, prefix: &str) -> storage::Result<Vec<storage::ObjectMeta>> {
        self.0.list(prefix).await
    }

    fn presign_get(&self, key: &str, options: &storage::PresignOptions) -> storage::Result<String> {
        self.0.presign_get(key, options)
    }

    async fn ready(&self) -> storage::Result<()> {
        self.0.ready().await
    }

    async fn create_bucket(&self) -> storage::Result<()> {
        self.0.create_bucket().await
    }

    async fn set_cors(&self, rule: &storage::CorsRule) -> storage::Result<storage::CorsOutcome> {
        self.0.set_cors(rule).await
    }
}

#[tokio::test(start_paused = true)]
async fn an_upload_dropped_while_its_write_is_on_its_way_leaves_no_object() {
    let store = Arc::new(MemoryStore::new("teachers"));
    let repo = MemoryMaterials::new();
    let service = MaterialService::new(
        Arc::new(repo.clone()),
        Arc::new(LateWrites(store.clone())),
        None,
        MaterialLimits {
            max_file_bytes: 10 << 20,
            default_quota: 100 << 20,
        },
        Arc::new(SystemClock),
    );
    let teacher = Uuid::new_v4();
    let upload = service.store_file(teacher, upload_png(100));
    // The body is in and the write under way: the client goes.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), upload)
            .await
            .is_err()
    );
    // The write lands after the guard's first delete...
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(store.len(), 1, "the late write created the object");
    // ...and the second delete takes it.
    tokio::time::sleep(LATE_WRITE_WINDOW).await;
    assert_eq!(store.len(), 0, "object left behind");
    assert_eq!(service.quota(teacher).await.unwrap().used_bytes, 0);
}

fn upload_png(len: usize) -> FileUpload {
    upload("a.png", "image/png", png_of(len))
}

#[tokio::test]
async fn infected_files_and_an_unreachable_scanner_store_nothing() {
    let scanner = PatternScanner::new(EICAR, "Test.EICAR");
    let f = fixture(10 << 20, 100 << 20, Some(Arc::new(scanner.clone())));
    let mut data = png_of(200_000);
    // Across a chunk boundary of the 64 KiB pieces.
    data[65_530..65_530 + EICAR.len()].copy_from_slice(EICAR);
    let result = f.upload(upload("a.png", "image/png", data)).await;
    assert!(
        matches!(&result, Err(MaterialError::Infected { signature }) if signature == "Test.EICAR"),
        "{result:?}"
    );
    f.assert_nothing_left().await;

    scanner.set_down(true);
    let result = f.upload(upload_png(100)).await;
    assert!(
        matches!(result, Err(MaterialError::ScannerUnavailable(_))),
        "{result:?}"
    );
    f.assert_nothing_left().await;

    scanner.set_down(false);
    f.upload(upload_png(100)).await.unwrap();
    assert_eq!(f.store.len(), 1);
}

#[tokio::test]
async fn a_real_clamd_finds_eicar_in_an_upload() {
    let server = clamd::testing::ClamdServer::start().expect("clamd (scripts/test.sh installs it)");
    let scanner = ClamdScanner::new(server.client());
    let f = fixture(10 << 20, 100 << 20, Some(Arc::new(scanner)));
    let mut text = b"Lesson plan\n".repeat(20_000);
    text.extend_from_slice(EICAR);
    let result = f.upload(upload("plan.txt", "text/plain", text)).await;
    assert!(
        matches!(&result, Err(MaterialError::Infected { signature }) if signature == clamd::testing::REPORTED_SIGNATURE),
        "{result:?}"
    );
    f.assert_nothing_left().await;
    let clean = f
        .upload(upload(
            "plan.txt",
            "text/plain",
            b"Lesson plan\n".repeat(20_000),
        ))
        .await
        .unwrap();
    assert_eq!(clean.0.kind, MaterialKind::Document);

    drop(server);
    let result = f.upload(upload_png(100)).await;
    assert!(
        matches!(result, Err(MaterialError::ScannerUnavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn notes_links_edits_and_deletes() {
    let f = fixture(10 << 20, 100 << 20, None);
    let note = f
        .service
        .create_note(f.teacher, "Notes", "Bring crayons")
        .await
        .unwrap();
    assert_eq!(note.kind, MaterialKind::TextNote);
    assert!(matches!(
        f.service
            .create_note(f.teacher, "Big", &"a".repeat(50 * 1024 + 1))
            .await,
        Err(MaterialError::Note(_))
    ));
    let link = f
        .service
        .create_link(f.teacher, "Song", "https://example.org/song")
        .await
        .unwrap();
    assert!(matches!(
        f.service
            .create_link(f.teacher, "Bad", "javascript:alert(1)")
            .await,
        Err(MaterialError::Url(_))
    ));
    assert_eq!(f.service.download_url(&note).unwrap(), None);

    let edited = f
        .service
        .update(
            f.teacher,
            note.id,
            MaterialEdit {
                name: Some("Reminder".into()),
                text_content: Some("Bring paint".into()),
                url: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (edited.name.as_str(), edited.text_content.as_deref()),
        ("Reminder", Some("Bring paint"))
    );
    let wrong = f
        .service
        .update(
            f.teacher,
            link.id,
            MaterialEdit {
                text_content: Some("x".into()),
                ..MaterialEdit::default()
            },
        )
        .await;
    assert!(
        matches!(wrong, Err(MaterialError::InvalidEdit(_))),
        "{wrong:?}"
    );

    // Another teacher sees none of it.
    let other = Uuid::new_v4();
    assert!(matches!(
        f.service.get(other, note.id).await,
        Err(MaterialError::NotFound)
    ));
    assert!(matches!(
        f.service.delete(other, note.id).await,
        Err(MaterialError::NotFound)
    ));

    let (file, _) = f.upload(upload_png(5_000)).await.unwrap();
    let (page, quota) = f.service.list(f.teacher, None, 0, 2).await.unwrap();
    assert_eq!(
        (page.total, page.items.len(), quota.used_bytes),
        (3, 2, 5_000)
    );
    assert_eq!(page.items[0].id, file.id, "newest first");
    let (images, _) = f
        .service
        .list(f.teacher, Some(MaterialKind::Image), 0, 10)
        .await
        .unwrap();
    assert_eq!(images.total, 1);

    // A missing object is not an error: the row and the quota still go.
    f.store
        .delete(file.storage_key.as_deref().unwrap())
        .await
        .unwrap();
    let quota = f.service.delete(f.teacher, file.id).await.unwrap();
    assert_eq!(quota.used_bytes, 0);
    assert!(matches!(
        f.service.get(f.teacher, file.id).await,
        Err(MaterialError::NotFound)
    ));
}

#[tokio::test]
async fn an_admin_quota_below_usage_blocks_uploads() {
    let f = fixture(10 << 20, 100 << 20, None);
    f.upload(upload_png(5_000)).await.unwrap();
    let quota = f.service.set_quota(f.teacher, 1_000).await.unwrap();
    assert_eq!((quota.used_bytes, quota.quota_bytes), (5_000, 1_000));
    let refused = f.upload(upload_png(10)).await;
    assert!(
        matches!(refused, Err(MaterialError::QuotaExceeded { .. })),
        "{refused:?}"
    );
    assert_eq!(f.used().await, 5_000);
}
