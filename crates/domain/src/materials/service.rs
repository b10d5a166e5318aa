//! [`MaterialService`]: every rule of teacher materials, over the repository, the object store
//! and the virus scanner ports.
//!
//! An upload streams: the first bytes are checked against the type table before anything is
//! reserved or stored; then each chunk is counted against `MATERIAL_MAX_BYTES`, covered by a
//! quota reservation (taken in steps, so a teacher with a few bytes left can still upload a
//! small file), fed to the scanner and passed on to the store. The scanner's verdict comes at
//! the end of the stream, before the store commits the object, so an infected file is never
//! stored. Whatever fails, the reservation is given back and the object is not left behind,
//! also when the request is dropped half-way (the guards below clean up on drop).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use storage::{ByteStream, ObjectStore, PresignOptions, PutOptions, StorageError};
use uuid::Uuid;

use super::error::MaterialError;
use super::file_types::{SNIFF_LEN, check_file_type};
use super::rules::{check_name, check_note, check_url, content_disposition, key_safe_name};
use super::{MaterialChanges, MaterialKind, MaterialPage, MaterialQuery, MaterialRecord, Quota};
use crate::book_content::{AssetAnswer, AssetRequest, open_stored};
use crate::ports::{Clock, MaterialRepository, ScanSession, ScanVerdict, VirusScanner, now_micros};

/// Quota is reserved in steps of this many bytes as an upload streams (one conditional
/// UPDATE per step).
pub const RESERVE_STEP: u64 = 1024 * 1024;

/// Largest page of a list.
pub const MAX_PAGE: u64 = 100;
/// Largest quota an admin can set, in bytes: stores keep byte counts as signed 64-bit integers.
pub const MAX_QUOTA_BYTES: u64 = i64::MAX as u64;

/// Limits from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaterialLimits {
    /// `MATERIAL_MAX_BYTES`: largest file.
    pub max_file_bytes: u64,
    /// `TEACHER_QUOTA_BYTES`: quota of a teacher no admin has set one for.
    pub default_quota: u64,
}

/// A file part as it arrives: its name and declared type from the multipart headers, and its
/// bytes.
pub struct FileUpload {
    pub filename: String,
    pub declared_type: Option<String>,
    pub body: ByteStream,
}

impl std::fmt::Debug for FileUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileUpload")
            .field("filename", &self.filename)
            .field("declared_type", &self.declared_type)
            .finish_non_exhaustive()
    }
}

/// A stored file waiting for its row: [`MaterialService::commit`] makes it a material. Dropped
/// without a commit, it deletes its object and gives its reservation back.
#[derive(Debug)]
pub struct StagedFile {
    record: MaterialRecord,
    reservation: Arc<Reservation>,
    object: Option<ObjectGuard>,
}

impl StagedFile {
    /// The material this file will be (its `name` is the file name until the commit).
    pub fn record(&self) -> &MaterialRecord {
        &self.record
    }
}

/// An edit of a material: each `Some` field is changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaterialEdit {
    pub name: Option<String>,
    /// Notes only.
    pub text_content: Option<String>,
    /// Links only.
    pub url: Option<String>,
}

/// Why a file is read: a download (attachment) or inline playback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPurpose {
    Download,
    Stream,
}

/// A file read for an HTTP answer.
#[derive(Debug)]
pub struct OpenedFile {
    pub record: MaterialRecord,
    /// The `Content-Disposition` to send (ASCII, RFC 6266).
    pub content_disposition: String,
    pub answer: AssetAnswer,
}

/// Teacher materials. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct MaterialService {
    repo: Arc<dyn MaterialRepository>,
    store: Arc<dyn ObjectStore>,
    scanner: Option<Arc<dyn VirusScanner>>,
    limits: MaterialLimits,
    clock: Arc<dyn Clock>,
}

impl MaterialService {
    /// Materials in `repo`, files in `store`, scanned by `scanner` when there is one.
    pub fn new(
        repo: Arc<dyn MaterialRepository>,
        store: Arc<dyn ObjectStore>,
        scanner: Option<Arc<dyn VirusScanner>>,
        limits: MaterialLimits,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repo,
            store,
            scanner,
            limits,
            clock,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> MaterialLimits {
        self.limits
    }

    /// The scanner, when scanning is on.
    pub fn scanner(&self) -> Option<&Arc<dyn VirusScanner>> {
        self.scanner.as_ref()
    }

    /// The teacher's quota.
    pub async fn quota(&self, teacher: Uuid) -> Result<Quota, MaterialError> {
        Ok(self.repo.quota(teacher, self.limits.default_quota).await?)
    }

    /// Streams a file into storage: checked, counted, scanned and reserved as it goes. The
    /// result still needs [`commit`](Self::commit) (the material's name may arrive after the
    /// file in a multipart form).
    pub async fn store_file(
        &self,
        teacher: Uuid,
        upload: FileUpload,
    ) -> Result<StagedFile, MaterialError> {
        let filename = check_name(&upload.filename, "file name")?;
        let FileUpload {
            declared_type,
            mut body,
            ..
        } = upload;

        // The first bytes decide the type before anything is reserved or stored.
        let mut prefix = BytesMut::new();
        let mut ended = false;
        while prefix.len() < SNIFF_LEN {
            match body.next().await {
                Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
                Some(Err(error)) => return Err(MaterialError::Body(error.to_string())),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        if prefix.is_empty() {
            return Err(MaterialError::EmptyFile);
        }
        let limit = self.limits.max_file_bytes;
        if prefix.len() as u64 > limit {
            return Err(MaterialError::TooLarge { limit });
        }
        let sniff = &prefix[..prefix.len().min(SNIFF_LEN)];
        let file_type = check_file_type(
            declared_type.as_deref(),
            &filename,
            sniff,
            ended && sniff.len() == prefix.len(),
        )?;
        let scan = match &self.scanner {
            Some(scanner) => Some(
                scanner
                    .start()
                    .await
                    .map_err(|e| MaterialError::ScannerUnavailable(e.0))?,
            ),
            None => None,
        };

        let id = Uuid::now_v7();
        let folder = file_type.kind.folder().unwrap_or("documents");
        let key = format!("{teacher}/{folder}/{id}_{}", key_safe_name(&filename));
        let reservation = Arc::new(Reservation {
            repo: self.repo.clone(),
            teacher,
            default_quota: self.limits.default_quota,
            reserved: AtomicU64::new(0),
            armed: AtomicBool::new(true),
        });
        let failure = Arc::new(Mutex::new(None));
        let pump = Pump {
            prefix: Some(prefix.freeze()),
            source: body,
            source_ended: ended,
            received: 0,
            limit,
            reservation: reservation.clone(),
            scan,
            failure: failure.clone(),
        };
        let options = PutOptions::default()
            .content_type(file_type.mime)
            .max_bytes(limit);
        // Armed before the upload starts: cancelled half-way, the guard deletes whatever the
        // store may have committed.
        let object = ObjectGuard::new(self.store.clone(), key.clone());
        let stored = self.store.put(&key, pump.into_stream(), options).await;
        let meta = match stored {
            Ok(meta) => meta,
            Err(error) => {
                // The store aborted; the pump's own failure is the better explanation.
                let cause = failure.lock().expect("poisoned").take();
                object.delete_now().await;
                reservation.release_now().await;
                return Err(cause.unwrap_or_else(|| match error {
                    StorageError::TooLarge { .. } => MaterialError::TooLarge { limit },
                    other => MaterialError::Storage(other),
                }));
            }
        };
        let now = now_micros(self.clock.as_ref());
        Ok(StagedFile {
            record: MaterialRecord {
                id,
                teacher_id: teacher,
                name: filename.clone(),
                kind: file_type.kind,
                storage_key: Some(key),
                file_size: Some(meta.size),
                mime_type: Some(file_type.mime.to_owned()),
                original_filename: Some(filename),
                url: None,
                text_content: None,
                created_at: now,
                updated_at: now,
            },
            reservation,
            object: Some(object),
        })
    }

    /// Makes a stored file a material named `name` (or its file name). On failure the object
    /// is deleted and the reservation given back.
    pub async fn commit(
        &self,
        mut staged: StagedFile,
        name: Option<&str>,
    ) -> Result<(MaterialRecord, Quota), MaterialError> {
        let object = staged.object.take().expect("a staged file has its object");
        let name = match name {
            Some(name) => check_name(name, "name"),
            None => Ok(staged.record.name.clone()),
        };
        let name = match name {
            Ok(name) => name,
            Err(error) => {
                object.delete_now().await;
                staged.reservation.release_now().await;
                return Err(error.into());
            }
        };
        staged.record.name = name;
        let size = staged.record.file_size.unwrap_or(0);
        let unused = staged.reservation.reserved().saturating_sub(size);
        // The insert and what follows from its answer run as one task that owns the guards: a
        // cancelled request can neither delete the file of a material whose row is written nor
        // leave one whose row is not.
        let (repo, record, reservation) = (
            self.repo.clone(),
            staged.record.clone(),
            staged.reservation.clone(),
        );
        let quota = run_to_completion(async move {
            match repo.insert(&record, unused).await {
                Ok(quota) => {
                    reservation.disarm();
                    object.disarm();
                    Ok(quota)
                }
                Err(error) => {
                    object.delete_now().await;
                    reservation.release_now().await;
                    Err(error)
                }
            }
        })
        .await?;
        // The reservation created the quota row, so the insert returns it; reading it again
        // is only a fallback.
        let quota = match quota {
            Some(quota) => quota,
            None => self.quota(staged.record.teacher_id).await?,
        };
        Ok((staged.record.clone(), quota))
    }

    /// Stores a note.
    pub async fn create_note(
        &self,
        teacher: Uuid,
        name: &str,
        content: &str,
    ) -> Result<MaterialRecord, MaterialError> {
        let name = check_name(name, "name")?;
        check_note(content)?;
        let record = self.new_record(teacher, name, MaterialKind::TextNote);
        let record = MaterialRecord {
            text_content: Some(content.to_owned()),
            ..record
        };
        self.repo.insert(&record, 0).await?;
        Ok(record)
    }

    /// Stores a link.
    pub async fn create_link(
        &self,
        teacher: Uuid,
        name: &str,
        url: &str,
    ) -> Result<MaterialRecord, MaterialError> {
        let name = check_name(name, "name")?;
        let url = check_url(url)?;
        let record = MaterialRecord {
            url: Some(url),
            ..self.new_record(teacher, name, MaterialKind::Url)
        };
        self.repo.insert(&record, 0).await?;
        Ok(record)
    }

    fn new_record(&self, teacher: Uuid, name: String, kind: MaterialKind) -> MaterialRecord {
        let now = now_micros(self.clock.as_ref());
        MaterialRecord {
            id: Uuid::now_v7(),
            teacher_id: teacher,
            name,
            kind,
            storage_key: None,
            file_size: None,
            mime_type: None,
            original_filename: None,
            url: None,
            text_content: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A page of the teacher's materials (newest first) and the quota.
    pub async fn list(
        &self,
        teacher: Uuid,
        kind: Option<MaterialKind>,
        offset: u64,
        limit: u64,
    ) -> Result<(MaterialPage, Quota), MaterialError> {
        let query = MaterialQuery {
            kind,
            offset,
            limit: limit.clamp(1, MAX_PAGE),
        };
        let page = self.repo.list(teacher, &query).await?;
        Ok((page, self.quota(teacher).await?))
    }

    /// The teacher's material `id`.
    pub async fn get(&self, teacher: Uuid, id: Uuid) -> Result<MaterialRecord, MaterialError> {
        self.repo
            .get(teacher, id)
            .await?
            .ok_or(MaterialError::NotFound)
    }

    /// Renames a material, or edits a note's text or a link's URL.
    pub async fn update(
        &self,
        teacher: Uuid,
        id: Uuid,
        edit: MaterialEdit,
    ) -> Result<MaterialRecord, MaterialError> {
        let current = self.get(teacher, id).await?;
        if edit.name.is_none() && edit.text_content.is_none() && edit.url.is_none() {
            return Err(MaterialError::InvalidEdit("Nothing to change.".into()));
        }
        let name = edit
            .name
            .as_deref()
            .map(|n| check_name(n, "name"))
            .transpose()?;
        if let Some(content) = &edit.text_content {
            if current.kind != MaterialKind::TextNote {
                return Err(MaterialError::InvalidEdit(
                    "Only notes have text content.".into(),
                ));
            }
            check_note(content)?;
        }
        let url = match &edit.url {
            Some(_) if current.kind != MaterialKind::Url => {
                return Err(MaterialError::InvalidEdit("Only links have a URL.".into()));
            }
            Some(url) => Some(check_url(url)?),
            None => None,
        };
        let changes = MaterialChanges {
            name,
            text_content: edit.text_content,
            url,
            updated_at: now_micros(self.clock.as_ref()),
        };
        self.repo
            .update(teacher, id, &changes)
            .await?
            .ok_or(MaterialError::NotFound)
    }

    /// Deletes a material: its object first (already missing is fine), then the row and its
    /// bytes of quota together. A failure after the object is gone leaves the row, so the
    /// delete can simply be repeated.
    pub async fn delete(&self, teacher: Uuid, id: Uuid) -> Result<Quota, MaterialError> {
        let record = self.get(teacher, id).await?;
        if let Some(key) = &record.storage_key {
            match self.store.delete(key).await {
                Ok(()) | Err(StorageError::NotFound { .. }) => {}
                Err(error) => return Err(MaterialError::Storage(error)),
            }
        }
        self.repo
            .delete(teacher, id)
            .await?
            .ok_or(MaterialError::NotFound)?;
        self.quota(teacher).await
    }

    /// Sets a teacher's quota (an admin's act). A quota below usage is kept: uploads are then
    /// refused until files are deleted.
    pub async fn set_quota(&self, teacher: Uuid, quota_bytes: u64) -> Result<Quota, MaterialError> {
        if quota_bytes > MAX_QUOTA_BYTES {
            return Err(MaterialError::InvalidEdit(format!(
                "quota_bytes is at most {MAX_QUOTA_BYTES}."
            )));
        }
        Ok(self.repo.set_quota(teacher, quota_bytes).await?)
    }

    /// The URL a browser downloads the file from without a token: presigned by the store (S3,
    /// or the filesystem store's signed lms-api route), as an attachment with the original
    /// name. `None` for links and notes.
    pub fn download_url(&self, record: &MaterialRecord) -> Result<Option<String>, MaterialError> {
        let Some(key) = &record.storage_key else {
            return Ok(None);
        };
        let options = PresignOptions {
            response_content_type: record.mime_type.clone(),
            response_content_disposition: Some(content_disposition(
                "attachment",
                original_name(record),
            )),
        };
        Ok(Some(self.store.presign_get(key, &options)?))
    }

    /// Reads the teacher's file for a download or for playback (audio and video only), with
    /// the request's range and preconditions.
    pub async fn open(
        &self,
        teacher: Uuid,
        id: Uuid,
        purpose: ReadPurpose,
        request: &AssetRequest<'_>,
    ) -> Result<OpenedFile, MaterialError> {
        let record = self.get(teacher, id).await?;
        if purpose == ReadPurpose::Stream && !record.kind.is_streamable() {
            return Err(MaterialError::NotStreamable);
        }
        let Some(key) = record.storage_key.as_deref() else {
            return Err(MaterialError::NotStreamable);
        };
        let answer = open_stored(self.store.as_ref(), key, request)
            .await
            .map_err(|error| match error {
                StorageError::NotFound { .. } => MaterialError::NotFound,
                other => MaterialError::Storage(other),
            })?;
        let disposition = match purpose {
            ReadPurpose::Download => "attachment",
            ReadPurpose::Stream => "inline",
        };
        Ok(OpenedFile {
            content_disposition: content_disposition(disposition, original_name(&record)),
            record,
            answer,
        })
    }
}

fn original_name(record: &MaterialRecord) -> &str {
    record.original_filename.as_deref().unwrap_or(&record.name)
}

/// Bytes of quota held by one upload. Given back on drop unless the upload was committed.
#[derive(Debug)]
struct Reservation {
    repo: Arc<dyn MaterialRepository>,
    teacher: Uuid,
    default_quota: u64,
    reserved: AtomicU64,
    armed: AtomicBool,
}

impl Reservation {
    fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::SeqCst)
    }

    /// Makes sure `received` bytes are reserved: a step ahead when it fits (fewer round trips
    /// to the database), else exactly what arrived.
    async fn cover(self: &Arc<Self>, received: u64, limit: u64) -> Result<(), MaterialError> {
        let reserved = self.reserved();
        if received <= reserved {
            return Ok(());
        }
        let needed = received - reserved;
        let ahead = RESERVE_STEP.min(limit.saturating_sub(reserved)).max(needed);
        if self.try_reserve(ahead).await? || (ahead > needed && self.try_reserve(needed).await?) {
            return Ok(());
        }
        let quota = self.repo.quota(self.teacher, self.default_quota).await?;
        Err(MaterialError::QuotaExceeded { quota })
    }

    /// Runs to the end even if the upload is cancelled meanwhile: a reservation the database
    /// made is always counted here, so it is given back (the task holds the reservation, whose
    /// drop gives back what it counts).
    async fn try_reserve(self: &Arc<Self>, bytes: u64) -> Result<bool, MaterialError> {
        let this = Arc::clone(self);
        run_to_completion(async move {
            let reserved = this
                .repo
                .reserve(this.teacher, bytes, this.default_quota)
                .await?
                .is_some();
            if reserved {
                this.reserved.fetch_add(bytes, Ordering::SeqCst);
            }
            Ok(reserved)
        })
        .await
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// Gives everything back now (and disarms the drop guard), to the end even if the caller
    /// is cancelled meanwhile.
    async fn release_now(&self) {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        let bytes = self.reserved.swap(0, Ordering::SeqCst);
        if bytes == 0 {
            return;
        }
        run_to_completion(self.release(bytes)).await;
    }

    /// Gives `bytes` back; a failure is logged, as nobody is left to answer.
    fn release(&self, bytes: u64) -> impl Future<Output = ()> + Send + 'static {
        let (repo, teacher) = (self.repo.clone(), self.teacher);
        async move {
            if let Err(error) = repo.release(teacher, bytes).await {
                tracing::error!(%teacher, bytes, %error, "quota reservation not released");
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        let bytes = self.reserved.load(Ordering::SeqCst);
        if bytes == 0 {
            return;
        }
        spawn_cleanup("quota release", self.release(bytes));
    }
}

/// An object that must not outlive a failed or abandoned upload: deleted on drop unless
/// disarmed.
#[derive(Debug)]
struct ObjectGuard(Option<(Arc<dyn ObjectStore>, String)>);

impl ObjectGuard {
    fn new(store: Arc<dyn ObjectStore>, key: String) -> Self {
        Self(Some((store, key)))
    }

    /// The object now belongs to a material.
    fn disarm(mut self) {
        self.0 = None;
    }

    /// Deletes the object now, to the end even if the caller is cancelled meanwhile.
    async fn delete_now(mut self) {
        if let Some((store, key)) = self.0.take() {
            run_to_completion(delete_object(store, key)).await;
        }
    }
}

/// How long after an abandoned upload's object is deleted it is deleted once more. A store
/// request still on its way when the upload was dropped (a PUT whose body was sent, a multipart
/// completion) can create the object after the first delete; no single store request outlives
/// this (the S3 adapter's request timeout is 60 s by default). The key is the upload's own, so
/// the second delete can only remove that upload's object.
pub const LATE_WRITE_WINDOW: Duration = Duration::from_secs(120);

impl Drop for ObjectGuard {
    fn drop(&mut self) {
        if let Some((store, key)) = self.0.take() {
            spawn_cleanup("object delete", async move {
                delete_object(store.clone(), key.clone()).await;
                tokio::time::sleep(LATE_WRITE_WINDOW).await;
                delete_object(store, key).await;
            });
        }
    }
}

async fn delete_object(store: Arc<dyn ObjectStore>, key: String) {
    match store.delete(&key).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => {}
        Err(error) => tracing::error!(%key, %error, "object of a failed upload not deleted"),
    }
}

/// Runs `task` to its end even if the caller is dropped meanwhile. actix drops a request's
/// future when its client disconnects; a database or storage change already on its way must
/// then still be recorded (or undone), or quotas drift and objects are orphaned.
async fn run_to_completion<T: Send + 'static>(task: impl Future<Output = T> + Send + 'static) -> T {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return task.await;
    };
    match runtime.spawn(task).await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        // Only a runtime shutting down cancels the task; the caller goes with it.
        Err(error) => panic!("upload step cancelled by the runtime: {error}"),
    }
}

/// Runs clean-up after a drop (a request cancelled half-way) on the current runtime.
fn spawn_cleanup(what: &'static str, task: impl Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(task);
        }
        Err(_) => tracing::error!(what, "no runtime to clean up an abandoned upload"),
    }
}

/// The upload stream handed to the store: the sniffed prefix, then the rest of the body, each
/// chunk counted, reserved and scanned. A failure is recorded for the service and surfaces to
/// the store as an I/O error, which makes it abort.
struct Pump {
    prefix: Option<Bytes>,
    source: ByteStream,
    /// The body already ended while the prefix was read (it must not be polled again).
    source_ended: bool,
    received: u64,
    limit: u64,
    reservation: Arc<Reservation>,
    scan: Option<Box<dyn ScanSession>>,
    failure: Arc<Mutex<Option<MaterialError>>>,
}

impl Pump {
    fn into_stream(self) -> ByteStream {
        Box::pin(futures_util::stream::unfold(
            Some(self),
            |pump| async move {
                let mut pump = pump?;
                match pump.next().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), Some(pump))),
                    Ok(None) => None,
                    Err(error) => {
                        let message = error.to_string();
                        *pump.failure.lock().expect("poisoned") = Some(error);
                        Some((Err(io::Error::other(message)), None))
                    }
                }
            },
        ))
    }

    async fn next(&mut self) -> Result<Option<Bytes>, MaterialError> {
        let chunk = match self.prefix.take() {
            Some(prefix) => prefix,
            None if self.source_ended => return self.end().await.map(|()| None),
            None => match self.source.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(error)) => return Err(MaterialError::Body(error.to_string())),
                None => {
                    self.source_ended = true;
                    return self.end().await.map(|()| None);
                }
            },
        };
        if chunk.is_empty() {
            return Ok(Some(chunk));
        }
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(MaterialError::TooLarge { limit: self.limit });
        }
        self.reservation.cover(self.received, self.limit).await?;
        if let Some(scan) = &mut self.scan {
            scan.feed(&chunk)
                .await
                .map_err(|e| MaterialError::ScannerUnavailable(e.0))?;
        }
        Ok(Some(chunk))
    }

    /// The body ended: the scanner's verdict decides whether the store may commit.
    async fn end(&mut self) -> Result<(), MaterialError> {
        if self.received == 0 {
            return Err(MaterialError::EmptyFile);
        }
        if let Some(scan) = self.scan.take() {
            match scan.finish().await {
                Ok(ScanVerdict::Clean) => {}
                Ok(ScanVerdict::Infected { signature }) => {
                    return Err(MaterialError::Infected { signature });
                }
                Err(error) => return Err(MaterialError::ScannerUnavailable(error.0)),
            }
        }
        Ok(())
    }
}
