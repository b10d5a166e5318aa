#![doc = include_str!("../README.md")]

use std::fmt;
use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt;

mod error;
pub mod fs;
mod key;
#[cfg(any(test, feature = "mock"))]
pub mod memory;
pub mod presign;
pub mod range;
pub mod s3;
pub mod sigv4;
#[cfg(feature = "test-server")]
pub mod testing;

pub use error::{Result, StorageError};
pub use fs::{FsStore, FsUrlSigner, UrlError, VerifiedUrl};
pub use key::validate_key;
pub use presign::{Clock, ManualClock, PresignWindow, Signing, SystemClock};
pub use range::{ByteRange, RangeOutcome, RangeSpec};
pub use s3::{S3Config, S3Store};
pub use sigv4::SigV4Presigner;

/// A body streamed in or out of storage.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A body made of one buffer.
pub fn bytes_body(bytes: impl Into<Bytes>) -> ByteStream {
    let bytes = bytes.into();
    Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
}

/// Reads a whole body into memory (tests, small objects).
pub async fn collect_body(mut body: ByteStream) -> io::Result<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out.freeze())
}

/// What a stored object looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    /// Full object size in bytes (also for ranged reads).
    pub size: u64,
    /// Strong entity tag, with its quotes (as sent in `ETag`).
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    /// `None` in listings from S3, which does not return it there.
    pub content_type: Option<String>,
}

/// Options of [`ObjectStore::put`].
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Stored content type; when `None`, derived from the key's extension
    /// (`application/octet-stream` when unknown).
    pub content_type: Option<String>,
    /// The upload fails with [`StorageError::TooLarge`] as soon as the body passes this many
    /// bytes, and nothing is stored.
    pub max_bytes: Option<u64>,
}

impl PutOptions {
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }
}

/// Response overrides a presigned URL carries (S3 `response-content-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PresignOptions {
    pub response_content_type: Option<String>,
    pub response_content_disposition: Option<String>,
}

/// A streamed read.
pub struct GetResult {
    /// Metadata of the whole object (`size` is the full size).
    pub meta: ObjectMeta,
    /// The part served, when a range was asked for (answer 206 with
    /// [`ByteRange::content_range`]).
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

impl fmt::Debug for GetResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl GetResult {
    /// Bytes the body will carry.
    pub fn body_len(&self) -> u64 {
        self.range.map_or(self.meta.size, |r| r.len())
    }
}

/// Object storage bound to one bucket. Keys are `/`-separated relative paths (see
/// [`validate_key`]); every adapter rejects the same keys.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// The bucket this instance is bound to.
    fn bucket(&self) -> &str;

    /// Stores `body` under `key`, replacing any object there. On any error nothing is stored
    /// (and a multipart upload is aborted).
    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<ObjectMeta>;

    /// Streams the object, or the part `range` selects (resolved against the object's size:
    /// [`StorageError::RangeNotSatisfiable`] when it selects nothing).
    async fn get(&self, key: &str, range: Option<RangeSpec>) -> Result<GetResult>;

    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Every object whose key starts with `prefix` (plain string prefix, no delimiter),
    /// sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// A URL a browser can GET without credentials, byte-identical for the same arguments
    /// within one presign window and valid for at least `min_remaining` seconds.
    fn presign_get(&self, key: &str, options: &PresignOptions) -> Result<String>;

    /// Reachable and the bucket exists.
    async fn ready(&self) -> Result<()>;

    /// Creates the bucket when missing (for `lms-api storage-init`); idempotent.
    async fn create_bucket(&self) -> Result<()>;

    /// Lets browsers on `rule.origins` GET objects cross-origin through presigned URLs (for
    /// `lms-api storage-init`). Says so when the server does not support it, or when this
    /// adapter has nothing to configure.
    async fn set_cors(&self, rule: &CorsRule) -> Result<CorsOutcome>;
}

/// The CORS rule `storage-init` applies: GET and HEAD from the LMS frontend's origins,
/// exposing the headers media players and range requests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsRule {
    pub origins: Vec<String>,
    pub max_age_secs: u32,
}

impl CorsRule {
    /// Headers browsers may read from cross-origin answers.
    pub const EXPOSED_HEADERS: [&'static str; 4] =
        ["Content-Range", "Content-Length", "Accept-Ranges", "ETag"];
}

/// What [`ObjectStore::set_cors`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOutcome {
    /// The bucket now carries the rule.
    Applied,
    /// The server does not support bucket CORS; the reason as it gave it.
    Unsupported(String),
    /// Nothing to configure here (why).
    NotNeeded(&'static str),
}

/// The content type stored when the caller gives none.
pub(crate) fn content_type_for(key: &str, given: Option<&str>) -> String {
    match given {
        Some(ct) if !ct.is_empty() => ct.to_owned(),
        _ => mime_guess::from_path(key)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_owned(),
    }
}

/// Counts body bytes against the size limit while streaming.
#[derive(Debug)]
pub(crate) struct Limit {
    max: Option<u64>,
    seen: u64,
}

impl Limit {
    pub(crate) fn new(max: Option<u64>) -> Self {
        Self { max, seen: 0 }
    }

    pub(crate) fn add(&mut self, n: usize) -> Result<()> {
        self.seen += n as u64;
        match self.max {
            Some(limit) if self.seen > limit => Err(StorageError::TooLarge { limit }),
            _ => Ok(()),
        }
    }

    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }
}

/// `"hex"` of an MD5 digest, the ETag S3 gives single-part objects.
pub(crate) fn quoted_hex(digest: &[u8]) -> String {
    format!("\"{}\"", hex::encode(digest))
}
