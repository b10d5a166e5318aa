//! S3 adapter (MinIO in production, s3s-fs in tests) on `rust-s3`, path-style.
//!
//! - The server is reached at `endpoint` (`MINIO_ENDPOINT`); presigned URLs are signed for
//!   `external_url` (`MINIO_EXTERNAL_URL`), because the signature covers the `Host` header and
//!   rewriting the host of a signed URL breaks it.
//! - Uploads: bodies smaller than one part go up in one PUT; larger ones as a multipart
//!   upload driven here (rust-s3's own streaming upload sizes its chunks from free RAM), with
//!   fixed-size parts and a bounded number in flight, so memory stays at
//!   `(max_in_flight + 1) * part_size`. Every failure aborts the upload, and so does dropping
//!   the future (the abort is spawned from `Drop`). An abort S3 could not take (down,
//!   restarting) is retried in the background with backoff for 15 minutes, so its parts do not
//!   stay behind once S3 is back.
//! - Reads are streamed: a short-lived presigned GET (signed for the internal endpoint) fetched
//!   with the same reqwest client stack, so a `Range` header passes through and the body is
//!   never buffered.
//! - Listing sends no `delimiter` at all: s3s-fs 0.14.1 treats an empty `delimiter=` as a real
//!   delimiter, and rust-s3 leaves the parameter out when given `None`.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use s3::BucketConfiguration;
use s3::bucket::Bucket;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::region::Region;
use s3::serde_types::Part;
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;

use crate::key::validate_prefix;
use crate::presign::{Clock, PresignWindow, Signing, SystemClock};
use crate::range::ByteRange;
use crate::sigv4::SigV4Presigner;
use crate::{
    ByteStream, GetResult, Limit, ObjectMeta, ObjectStore, PresignOptions, PutOptions, RangeSpec,
    Result, StorageError, content_type_for, validate_key,
};

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Validity of the internal presigned GETs used for streaming reads.
const INTERNAL_GET_TTL: u64 = 300;

/// Settings of one bucket on one S3 server.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `MINIO_ENDPOINT`: what this server talks to, e.g. `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// `MINIO_EXTERNAL_URL`: what browsers use; `None` means `endpoint`.
    pub external_url: Option<String>,
    /// `MINIO_REGION`, `us-east-1` by default.
    pub region: String,
    pub access_key: String,
    /// `SecretString`: redacted in `Debug`.
    pub secret_key: SecretString,
    pub bucket: String,
    /// `PRESIGN_TTL` / `PRESIGN_MIN_REMAINING`.
    pub window: PresignWindow,
    /// Multipart part size; 8 MiB by default, at least 5 MiB.
    pub part_size: usize,
    /// Parts uploading at once; 3 by default.
    pub max_in_flight: usize,
    pub request_timeout: Duration,
}

impl S3Config {
    pub fn new(endpoint: &str, access_key: &str, secret_key: SecretString, bucket: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            external_url: None,
            region: "us-east-1".to_owned(),
            access_key: access_key.to_owned(),
            secret_key,
            bucket: bucket.to_owned(),
            window: PresignWindow::default(),
            part_size: 8 * 1024 * 1024,
            max_in_flight: 3,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// One bucket on an S3 server.
pub struct S3Store {
    name: String,
    bucket: Arc<Bucket>,
    region: Region,
    credentials: Credentials,
    internal: SigV4Presigner,
    external: SigV4Presigner,
    http: reqwest::Client,
    window: PresignWindow,
    clock: Arc<dyn Clock>,
    part_size: usize,
    max_in_flight: usize,
}

impl fmt::Debug for S3Store {
    // By hand: rust-s3's `Bucket` and `Credentials` would print the secret key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.name)
            .field("endpoint", &self.internal.origin())
            .field("external", &self.external.origin())
            .field("window", &self.window)
            .field("part_size", &self.part_size)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    pub fn new(config: S3Config) -> Result<Self> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// `clock` drives presigning (tests sign in the past with it).
    pub fn with_clock(config: S3Config, clock: Arc<dyn Clock>) -> Result<Self> {
        if config.part_size < MIN_PART_SIZE {
            return Err(StorageError::Config(format!(
                "S3 part size must be at least {MIN_PART_SIZE} bytes"
            )));
        }
        if !(1..=16).contains(&config.max_in_flight) {
            return Err(StorageError::Config(
                "S3 parts in flight must be 1..=16".into(),
            ));
        }
        let endpoint = config.endpoint.trim_end_matches('/').to_owned();
        let external = config
            .external_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(&endpoint)
            .to_owned();
        let secret = config.secret_key.expose_secret();
        let internal_presigner = SigV4Presigner::new(
            &endpoint,
            &config.region,
            &config.access_key,
            config.secret_key.clone(),
        )?;
        let external_presigner = SigV4Presigner::new(
            &external,
            &config.region,
            &config.access_key,
            config.secret_key.clone(),
        )?;
        let credentials =
            Credentials::new(Some(&config.access_key), Some(secret), None, None, None)
                .map_err(|e| StorageError::Config(format!("S3 credentials: {e}")))?;
        let region = Region::Custom {
            region: config.region.clone(),
            endpoint: endpoint.clone(),
        };
        let bucket = Bucket::new(&config.bucket, region.clone(), credentials.clone())
            .map_err(|e| StorageError::Config(format!("S3 bucket: {e}")))?
            .with_path_style()
            .with_request_timeout(config.request_timeout)
            .map_err(|e| StorageError::Config(format!("S3 bucket: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(config.request_timeout)
            .build()
            .map_err(|e| StorageError::Config(format!("HTTP client: {}", e.without_url())))?;
        Ok(Self {
            name: config.bucket,
            bucket: Arc::from(bucket),
            region,
            credentials,
            internal: internal_presigner,
            external: external_presigner,
            http,
            window: config.window,
            clock,
            part_size: config.part_size,
            max_in_flight: config.max_in_flight,
        })
    }

    fn map_err(&self, e: S3Error, key: Option<&str>) -> StorageError {
        s3_error(e, &self.name, key)
    }

    fn status_err(&self, status: u16, body: &str, key: Option<&str>) -> StorageError {
        status_error(status, body, &self.name, key)
    }

    async fn put_single(&self, key: &str, body: &[u8], content_type: &str) -> Result<()> {
        self.bucket
            .put_object_with_content_type(key, body, content_type)
            .await
            .map_err(|e| self.map_err(e, Some(key)))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        first: Vec<u8>,
        reader: &mut PartReader,
        content_type: &str,
    ) -> Result<()> {
        let init = self
            .bucket
            .initiate_multipart_upload(key, content_type)
            .await
            .map_err(|e| self.map_err(e, Some(key)))?;
        let mut guard = AbortOnDrop {
            bucket: Some(Arc::clone(&self.bucket)),
            key: key.to_owned(),
            upload_id: init.upload_id.clone(),
        };
        let result = match self
            .upload_parts(key, &init.upload_id, first, reader, content_type)
            .await
        {
            Ok(parts) => self
                .bucket
                .complete_multipart_upload(key, &init.upload_id, parts)
                .await
                .map(drop)
                .map_err(|e| self.map_err(e, Some(key))),
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Tried here first, so a failed upload answers with its parts already gone; if
            // S3 cannot be reached, the retries go on in the background.
            let abort = PendingAbort {
                bucket: Arc::clone(&self.bucket),
                key: key.to_owned(),
                upload_id: init.upload_id.clone(),
            };
            if let Some(abort) = abort.attempt(false).await {
                tokio::spawn(abort.retry());
            }
        }
        guard.bucket = None;
        result
    }

    /// Uploads the parts with at most `max_in_flight` at once, reading the next part from the
    /// body while earlier ones upload.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        reader: &mut PartReader,
        content_type: &str,
    ) -> Result<Vec<Part>> {
        let mut tasks: JoinSet<Result<Part>> = JoinSet::new();
        let mut parts = Vec::new();
        let result = async {
            let mut next = Some(first);
            let mut number = 0u32;
            while let Some(chunk) = next.take() {
                while tasks.len() >= self.max_in_flight {
                    parts.push(self.join_part(&mut tasks).await?);
                }
                number += 1;
                let (bucket, key_owned, id, ct) = (
                    Arc::clone(&self.bucket),
                    key.to_owned(),
                    upload_id.to_owned(),
                    content_type.to_owned(),
                );
                let name = self.name.clone();
                tasks.spawn(async move {
                    bucket
                        .put_multipart_chunk(chunk, &key_owned, number, &id, &ct)
                        .await
                        .map_err(|e| map_part_err(e, &name))
                });
                next = reader.next_part().await?;
            }
            while !tasks.is_empty() {
                parts.push(self.join_part(&mut tasks).await?);
            }
            Ok::<(), StorageError>(())
        }
        .await;
        if let Err(error) = result {
            // A part whose request was already sent can still be stored by the server after
            // an abort that did not wait for it, and stay behind: let the parts in flight end
            // (each within the request timeout) before the caller aborts.
            while tasks.join_next().await.is_some() {}
            return Err(error);
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(parts)
    }

    async fn join_part(&self, tasks: &mut JoinSet<Result<Part>>) -> Result<Part> {
        match tasks.join_next().await {
            Some(Ok(part)) => part,
            Some(Err(e)) => Err(StorageError::Backend(format!(
                "part upload task failed: {e}"
            ))),
            None => Err(StorageError::Backend("no part upload in flight".into())),
        }
    }

    /// A streamed GET through a short-lived presigned URL for the internal endpoint (the
    /// `Range` header is not signed, so it passes as is).
    async fn fetch(&self, key: &str, range: Option<String>) -> Result<reqwest::Response> {
        let signing = Signing {
            signed_at: SystemClock.now_unix(),
            ttl: INTERNAL_GET_TTL,
        };
        let url = self
            .internal
            .presign_get(&self.name, key, signing, &PresignOptions::default());
        let mut request = self.http.get(url);
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        request
            .send()
            .await
            .map_err(|e| StorageError::Unavailable(e.without_url().to_string()))
    }

    fn meta_from_headers(&self, key: &str, headers: &reqwest::header::HeaderMap) -> ObjectMeta {
        let text = |name: reqwest::header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        ObjectMeta {
            key: key.to_owned(),
            size: text(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            etag: text(reqwest::header::ETAG),
            last_modified: text(reqwest::header::LAST_MODIFIED)
                .and_then(|v| httpdate::parse_http_date(&v).ok()),
            content_type: text(reqwest::header::CONTENT_TYPE),
        }
    }
}

fn map_part_err(e: S3Error, bucket: &str) -> StorageError {
    match e {
        S3Error::HttpFailWithBody(status, _) if (500..=599).contains(&status) => {
            StorageError::Unavailable(format!("S3 answered {status} to a part upload"))
        }
        S3Error::HttpFailWithBody(status, _) => {
            StorageError::Backend(format!("S3 answered {status} to a part upload in {bucket}"))
        }
        S3Error::Reqwest(e) => StorageError::Unavailable(e.without_url().to_string()),
        other => StorageError::Backend(other.to_string()),
    }
}

/// Aborts a multipart upload whose `put` future was dropped before it finished.
struct AbortOnDrop {
    bucket: Option<Arc<Bucket>>,
    key: String,
    upload_id: String,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(bucket) = self.bucket.take() else {
            return;
        };
        let abort = PendingAbort {
            bucket,
            key: std::mem::take(&mut self.key),
            upload_id: std::mem::take(&mut self.upload_id),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Some(abort) = abort.attempt(false).await {
                        abort.retry().await;
                    }
                });
            }
            Err(_) => {
                tracing::warn!(
                    key = abort.key,
                    "multipart upload left pending: no runtime to abort it"
                )
            }
        }
    }
}

/// How long an abort that failed because S3 could not be reached is retried. The parts of an
/// upload never aborted keep their space on the server and no listing shows them, so a
/// restart of S3 in the middle of an upload must not leave them behind.
const ABORT_RETRY_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first wait before a retry; it doubles up to [`ABORT_RETRY_MAX_DELAY`], with jitter.
const ABORT_RETRY_FIRST_DELAY: Duration = Duration::from_millis(500);
const ABORT_RETRY_MAX_DELAY: Duration = Duration::from_secs(30);

/// A multipart upload to abort.
struct PendingAbort {
    bucket: Arc<Bucket>,
    key: String,
    upload_id: String,
}

impl PendingAbort {
    /// One attempt. Returns `self` when it is worth retrying (S3 unreachable or failing).
    /// Only the first failure is a warning; the retries' failures are logged at debug level,
    /// and their outcome once.
    async fn attempt(self, retrying: bool) -> Option<Self> {
        let result = self.bucket.abort_upload(&self.key, &self.upload_id).await;
        match result.map_err(|e| s3_error(e, &self.bucket.name, Some(&self.key))) {
            Ok(()) if retrying => {
                tracing::info!(key = self.key, "stranded multipart upload aborted");
                None
            }
            Ok(()) => None,
            // `NoSuchUpload`: already aborted or completed.
            Err(e) if e.is_not_found() => None,
            Err(e) if e.is_unavailable() && retrying => {
                tracing::debug!(key = self.key, error = %e, "abort of a multipart upload failed again");
                Some(self)
            }
            Err(e) if e.is_unavailable() => {
                tracing::warn!(key = self.key, error = %e,
                    "could not abort a multipart upload; retrying in the background");
                Some(self)
            }
            Err(e) => {
                tracing::warn!(key = self.key, error = %e,
                    "multipart upload left pending: abort refused");
                None
            }
        }
    }

    /// Retries with jittered, doubling waits until an attempt settles it or the window ends.
    async fn retry(self) {
        let started = tokio::time::Instant::now();
        let mut delay = ABORT_RETRY_FIRST_DELAY;
        let mut pending = self;
        loop {
            if started.elapsed() + delay > ABORT_RETRY_WINDOW {
                tracing::warn!(
                    key = pending.key,
                    window_s = ABORT_RETRY_WINDOW.as_secs(),
                    "multipart upload left pending: S3 unreachable for the whole retry window"
                );
                return;
            }
            tokio::time::sleep(delay + delay.mul_f64(fastrand::f64() * 0.25)).await;
            delay = (delay * 2).min(ABORT_RETRY_MAX_DELAY);
            match pending.attempt(true).await {
                Some(again) => pending = again,
                None => return,
            }
        }
    }
}

/// The [`StorageError`] of a failed rust-s3 call on `bucket` (`key`: the object, if any).
fn s3_error(e: S3Error, bucket: &str, key: Option<&str>) -> StorageError {
    match e {
        S3Error::HttpFailWithBody(status, body) => status_error(status, &body, bucket, key),
        S3Error::HttpFail => StorageError::Backend("request failed".into()),
        // No URL in the message: internal URLs carry a signature.
        S3Error::Reqwest(e) => StorageError::Unavailable(e.without_url().to_string()),
        S3Error::Io(e) => StorageError::Unavailable(e.to_string()),
        other => StorageError::Backend(other.to_string()),
    }
}

/// The [`StorageError`] of an S3 answer with an error status.
fn status_error(status: u16, body: &str, bucket: &str, key: Option<&str>) -> StorageError {
    if body.contains("<Code>NoSuchBucket</Code>") {
        return StorageError::BucketNotFound {
            bucket: bucket.to_owned(),
        };
    }
    match (status, key) {
        (404, Some(key)) => StorageError::not_found(key),
        (404, None) => StorageError::BucketNotFound {
            bucket: bucket.to_owned(),
        },
        (401 | 403, _) => StorageError::AccessDenied { status },
        (500..=599, _) => {
            StorageError::Unavailable(format!("S3 answered {status}{}", s3_code(body)))
        }
        _ => StorageError::Backend(format!("S3 answered {status}{}", s3_code(body))),
    }
}

/// Cuts a body into parts of exactly `part_size` bytes (the last may be shorter), counting
/// against the size limit as bytes arrive.
struct PartReader {
    body: ByteStream,
    carry: Bytes,
    limit: Limit,
    part_size: usize,
    done: bool,
}

impl PartReader {
    /// The next part, `None` at the end of the body.
    async fn next_part(&mut self) -> Result<Option<Vec<u8>>> {
        if self.done && self.carry.is_empty() {
            return Ok(None);
        }
        let mut part = Vec::with_capacity(self.part_size.min(self.carry.len().max(64 * 1024)));
        loop {
            if !self.carry.is_empty() {
                let take = (self.part_size - part.len()).min(self.carry.len());
                part.extend_from_slice(&self.carry.split_to(take));
                if part.len() == self.part_size {
                    return Ok(Some(part));
                }
            }
            if self.done {
                return Ok((!part.is_empty()).then_some(part));
            }
            match self.body.next().await {
                None => self.done = true,
                Some(Err(e)) => return Err(StorageError::Body(e)),
                Some(Ok(chunk)) => {
                    self.limit.add(chunk.len())?;
                    if part.capacity() < self.part_size {
                        part.reserve_exact(self.part_size - part.len());
                    }
                    self.carry = chunk;
                }
            }
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    fn bucket(&self) -> &str {
        &self.name
    }

    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<ObjectMeta> {
        validate_key(key)?;
        let content_type = content_type_for(key, options.content_type.as_deref());
        let mut reader = PartReader {
            body,
            carry: Bytes::new(),
            limit: Limit::new(options.max_bytes),
            part_size: self.part_size,
            done: false,
        };
        let first = reader.next_part().await?.unwrap_or_default();
        if first.len() < self.part_size {
            self.put_single(key, &first, &content_type).await?;
        } else {
            self.put_multipart(key, first, &mut reader, &content_type)
                .await?;
        }
        self.head(key).await
    }

    async fn get(&self, key: &str, range: Option<RangeSpec>) -> Result<GetResult> {
        validate_key(key)?;
        if range == Some(RangeSpec::Suffix(0)) {
            let size = self.head(key).await?.size;
            return Err(StorageError::RangeNotSatisfiable { size });
        }
        let mut response = self.fetch(key, range.map(|r| r.header_value())).await?;
        if let (Some(RangeSpec::Suffix(n)), 500) = (range, response.status().as_u16()) {
            // s3s-fs 0.14.1 fails a suffix longer than the object (it seeks before the start);
            // ask again with the range resolved against the size.
            let size = self.head(key).await?.size;
            let resolved = RangeSpec::Suffix(n)
                .resolve(size)
                .ok_or(StorageError::RangeNotSatisfiable { size })?;
            let header = format!("bytes={}-{}", resolved.start, resolved.end);
            response = self.fetch(key, Some(header)).await?;
        }
        let status = response.status().as_u16();
        match status {
            200 | 206 => {}
            416 => {
                let size = self.head(key).await?.size;
                return Err(StorageError::RangeNotSatisfiable { size });
            }
            _ => {
                let body = response.text().await.unwrap_or_default();
                return Err(self.status_err(status, &body, Some(key)));
            }
        }
        let mut meta = self.meta_from_headers(key, response.headers());
        let served = if status == 206 {
            let content_range = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range)
                .ok_or_else(|| StorageError::Backend("206 without a valid Content-Range".into()))?;
            meta.size = content_range.1;
            Some(content_range.0)
        } else {
            match range.map(|spec| spec.resolve(meta.size)) {
                Some(None) => return Err(StorageError::RangeNotSatisfiable { size: meta.size }),
                // The server sent everything: fine when the range covers the whole object.
                Some(Some(r)) if r.start == 0 && r.end + 1 == meta.size => Some(r),
                _ => None,
            }
        };
        let body = response.bytes_stream().map_err(io::Error::other);
        Ok(GetResult {
            meta,
            range: served,
            body: Box::pin(body),
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let (h, _) = self
            .bucket
            .head_object(key)
            .await
            .map_err(|e| self.map_err(e, Some(key)))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: h.content_length.unwrap_or(0).max(0) as u64,
            etag: h.e_tag,
            last_modified: h
                .last_modified
                .and_then(|v| httpdate::parse_http_date(&v).ok()),
            content_type: h.content_type,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match self.bucket.delete_object(key).await {
            Ok(_) => Ok(()),
            Err(S3Error::HttpFailWithBody(404, body)) if !body.contains("NoSuchBucket") => Ok(()),
            Err(e) => Err(self.map_err(e, Some(key))),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let pages = self
            .bucket
            .list(prefix.to_owned(), None)
            .await
            .map_err(|e| self.map_err(e, None))?;
        let mut out: Vec<ObjectMeta> = pages
            .into_iter()
            .flat_map(|p| p.contents)
            .map(|o| ObjectMeta {
                last_modified: parse_iso8601(&o.last_modified),
                key: o.key,
                size: o.size,
                etag: o.e_tag,
                content_type: None,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn presign_get(&self, key: &str, options: &PresignOptions) -> Result<String> {
        validate_key(key)?;
        let signing = self.window.signing(self.clock.now_unix());
        Ok(self.external.presign_get(&self.name, key, signing, options))
    }

    async fn ready(&self) -> Result<()> {
        self.bucket
            .list_page(String::new(), None, None, None, Some(1))
            .await
            .map(drop)
            .map_err(|e| self.map_err(e, None))
    }

    async fn set_cors(&self, rule: &crate::CorsRule) -> Result<crate::CorsOutcome> {
        let config = s3::serde_types::CorsConfiguration::new(vec![s3::serde_types::CorsRule::new(
            None,
            vec!["GET".to_owned(), "HEAD".to_owned()],
            rule.origins.clone(),
            Some(
                crate::CorsRule::EXPOSED_HEADERS
                    .iter()
                    .map(|h| (*h).to_owned())
                    .collect(),
            ),
            Some("lms-frontend-get".to_owned()),
            Some(rule.max_age_secs),
        )]);
        // No expected-owner check: MinIO has no AWS account ids to compare with.
        match self.bucket.put_bucket_cors("", &config).await {
            Ok(_) => Ok(crate::CorsOutcome::Applied),
            Err(S3Error::HttpFailWithBody(status, body))
                if status == 501 || body.contains("NotImplemented") =>
            {
                Ok(crate::CorsOutcome::Unsupported(format!(
                    "the server answered {status}{}",
                    s3_code(&body)
                )))
            }
            Err(e) => Err(self.map_err(e, None)),
        }
    }

    async fn create_bucket(&self) -> Result<()> {
        match Bucket::create_with_path_style(
            &self.name,
            self.region.clone(),
            self.credentials.clone(),
            BucketConfiguration::default(),
        )
        .await
        {
            Ok(_) => Ok(()),
            // s3s-fs says `BucketAlreadyExists` for its own buckets; whether it is really ours
            // shows in whether we can read it.
            Err(S3Error::HttpFailWithBody(409, body))
                if body.contains("BucketAlreadyOwnedByYou")
                    || body.contains("BucketAlreadyExists") =>
            {
                self.ready().await
            }
            Err(e) => Err(self.map_err(e, None)),
        }
    }
}

/// ` (Code: Message)` from an S3 error body, for logs; bounded, and never the whole body.
fn s3_code(body: &str) -> String {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find('<')?;
        Some(
            body[start..start + len]
                .chars()
                .take(200)
                .collect::<String>(),
        )
    };
    match (field("Code"), field("Message")) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        _ => String::new(),
    }
}

/// `bytes a-b/N` -> (a..=b, N).
fn parse_content_range(v: &str) -> Option<(ByteRange, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (start, end, size) = (a.parse().ok()?, b.parse().ok()?, size.parse().ok()?);
    (start <= end).then_some((ByteRange { start, end }, size))
}

/// `2026-12-02T14:16:22.000Z` (S3 listings) -> `SystemTime`.
fn parse_iso8601(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((ByteRange { start: 0, end: 99 }, 1000))
        );
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("bytes 9-1/10"), None);
        assert!(parse_iso8601("2026-12-02T14:16:22.000Z").is_some());
    }

    #[tokio::test]
    async fn parts_are_cut_exactly_and_the_limit_counts_while_streaming() {
        let chunks: Vec<io::Result<Bytes>> =
            (0..7).map(|i| Ok(Bytes::from(vec![i as u8; 3]))).collect();
        let mut r = PartReader {
            body: Box::pin(futures_util::stream::iter(chunks)),
            carry: Bytes::new(),
            limit: Limit::new(None),
            part_size: 8,
            done: false,
        };
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(p) = r.next_part().await.unwrap() {
            sizes.push(p.len());
            all.extend(p);
        }
        assert_eq!(sizes, [8, 8, 5]);
        assert_eq!(all.len(), 21);
        assert_eq!(&all[..4], &[0, 0, 0, 1]);

        let chunks: Vec<io::Result<Bytes>> =
            (0..7).map(|_| Ok(Bytes::from(vec![0u8; 3]))).collect();
        let mut r = PartReader {
            body: Box::pin(futures_util::stream::iter(chunks)),
            carry: Bytes::new(),
            limit: Limit::new(Some(10)),
            part_size: 8,
            done: false,
        };
        assert!(r.next_part().await.unwrap().is_some());
        assert!(matches!(
            r.next_part().await,
            Err(StorageError::TooLarge { limit: 10 })
        ));
    }

    #[test]
    fn debug_hides_the_secret_and_bad_settings_are_refused() {
        let config = S3Config::new(
            "http://127.0.0.1:9000",
            "access",
            SecretString::from("very-secret-key-value"),
            "publishers",
        );
        assert!(!format!("{config:?}").contains("very-secret-key-value"));
        let store = S3Store::new(config.clone()).unwrap();
        let d = format!("{store:?}");
        assert!(!d.contains("very-secret-key-value"), "{d}");
        assert!(
            S3Store::new(S3Config {
                part_size: 1024,
                ..config.clone()
            })
            .is_err()
        );
        assert!(
            S3Store::new(S3Config {
                max_in_flight: 0,
                ..config.clone()
            })
            .is_err()
        );
        assert!(
            S3Store::new(S3Config {
                endpoint: "nope".into(),
                ..config
            })
            .is_err()
        );
    }
}
