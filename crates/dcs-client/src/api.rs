//! The port: the DCS API as the LMS domain needs it, plus the types of streamed answers.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt as _;

use crate::error::DcsError;
use crate::models::{
    Book, BookFile, Health, PresignedUrl, Publisher, WebhookSubscription,
    WebhookSubscriptionCreate, WebhookSubscriptionUpdate,
};
use crate::path::AssetPath;

/// A streamed body. Each item is a chunk or the error that ended the stream (network error or
/// the idle timeout between chunks). While it is alive it holds one of the client's stream
/// slots (`max_streams`, separate from the API calls' slots); drop it to free the slot.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, DcsError>> + Send + 'static>>;

/// A streamed object from DCS (an asset, a cover, a logo) with the headers a proxy needs.
pub struct Download {
    /// `200`, or `206` for a byte range.
    pub status: u16,
    /// `content-type` as DCS sent it (DCS derives it from the file extension).
    pub content_type: Option<String>,
    /// `content-length` (of this response: the range length for a 206).
    pub content_length: Option<u64>,
    /// `content-range`, e.g. `bytes 0-99/6032` (206 only).
    pub content_range: Option<String>,
    /// `etag` (quoted, as sent). The logo has none.
    pub etag: Option<String>,
    /// `cache-control`.
    pub cache_control: Option<String>,
    /// `content-disposition`.
    pub content_disposition: Option<String>,
    /// `accept-ranges`.
    pub accept_ranges: Option<String>,
    /// The body.
    pub body: ByteStream,
}

impl Download {
    /// `true` for a `206 Partial Content`.
    pub fn is_partial(&self) -> bool {
        self.status == 206
    }

    /// The total size of the object: from `content-range` for a 206, else `content-length`.
    pub fn total_size(&self) -> Option<u64> {
        if let Some(cr) = &self.content_range {
            return cr.rsplit('/').next().and_then(|t| t.trim().parse().ok());
        }
        self.content_length
    }

    /// Reads the whole body into memory.
    pub async fn bytes(self) -> Result<Bytes, DcsError> {
        let mut body = self.body;
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .field("content_range", &self.content_range)
            .field("etag", &self.etag)
            .field("cache_control", &self.cache_control)
            .field("content_disposition", &self.content_disposition)
            .field("accept_ranges", &self.accept_ranges)
            .finish_non_exhaustive()
    }
}

/// The answer to a conditional download (`If-None-Match`): the object, or `304 Not Modified`.
/// A 304 is not an error.
#[derive(Debug)]
pub enum Conditional {
    /// `200`/`206` with a body.
    Modified(Download),
    /// `304 Not Modified`: the caller's copy is current.
    NotModified {
        /// The `etag` DCS sent with the 304.
        etag: Option<String>,
        /// The `cache-control` DCS sent with the 304.
        cache_control: Option<String>,
    },
}

impl Conditional {
    /// The download, or `None` for a 304.
    pub fn into_download(self) -> Option<Download> {
        match self {
            Conditional::Modified(d) => Some(d),
            Conditional::NotModified { .. } => None,
        }
    }

    /// `true` for a 304.
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Conditional::NotModified { .. })
    }
}

/// Options of an asset download.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadOptions {
    /// A `Range` header passed through as is, e.g. `bytes=0-99`, `bytes=100-`, `bytes=-50`.
    pub range: Option<String>,
    /// An `If-None-Match` value (an ETag as DCS sent it, quotes included).
    pub if_none_match: Option<String>,
}

impl DownloadOptions {
    /// No range, unconditional.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the `Range` header value.
    pub fn range(mut self, range: impl Into<String>) -> Self {
        self.range = Some(range.into());
        self
    }

    /// Sets the `If-None-Match` header value.
    pub fn if_none_match(mut self, etag: impl Into<String>) -> Self {
        self.if_none_match = Some(etag.into());
        self
    }
}

/// The DCS API as the LMS needs it: what the LMS domain calls, and the book content reads its
/// config, asset and activity features are built on. Object-safe: hold it as
/// `Arc<dyn DcsApi>`. [`DcsClient`](crate::DcsClient) has further public calls of its own.
///
/// Storage methods take the publisher **name** and the `book_name` (what [`Book::publisher`]
/// and [`Book::book_name`] hold), not ids; they are percent-encoded by the client.
#[async_trait]
pub trait DcsApi: Send + Sync {
    /// The client's counters and slots in use ([`DcsClient::stats`](crate::DcsClient::stats)),
    /// for metrics; `None` for implementations that keep none (test doubles).
    fn stats(&self) -> Option<crate::DcsStats> {
        None
    }

    /// `GET /health` (no auth).
    async fn health(&self) -> Result<Health, DcsError>;

    /// All active publishers, following `GET /publishers/?skip=&limit=` to the end.
    async fn list_publishers(&self) -> Result<Vec<Publisher>, DcsError>;

    /// `GET /publishers/{id}` (inactive publishers are returned too).
    async fn get_publisher(&self, id: i64) -> Result<Publisher, DcsError>;

    /// `GET /publishers/{id}/logo`, streamed with its content type.
    async fn publisher_logo(&self, id: i64) -> Result<Download, DcsError>;

    /// `GET /books/` (optionally `?publisher_id=`). Includes archived books: see
    /// [`Book::is_archived`].
    async fn list_books(&self, publisher_id: Option<i64>) -> Result<Vec<Book>, DcsError>;

    /// `GET /books/{id}`.
    async fn get_book(&self, id: i64) -> Result<Book, DcsError>;

    /// `GET /storage/books/{publisher}/{book}/config`: config.json as JSON.
    async fn book_config(&self, publisher: &str, book: &str)
    -> Result<serde_json::Value, DcsError>;

    /// The book's files, relative to the book root, with sizes (the tree flattened).
    async fn book_contents(&self, publisher: &str, book: &str) -> Result<Vec<BookFile>, DcsError>;

    /// `GET /storage/books/{publisher}/{book}/cover`, optionally conditional.
    async fn book_cover(
        &self,
        publisher: &str,
        book: &str,
        if_none_match: Option<&str>,
    ) -> Result<Conditional, DcsError>;

    /// `GET /storage/books/{publisher}/{book}/object?path=`: streamed, with `Range` and
    /// `If-None-Match` passed through. A bad range gives
    /// [`DcsError::RangeNotSatisfiable`].
    async fn download_asset(
        &self,
        publisher: &str,
        book: &str,
        path: &AssetPath,
        options: &DownloadOptions,
    ) -> Result<Conditional, DcsError>;

    /// `GET /storage/books/{publisher}/{book}/presigned?path=&expires=`: a URL that needs no
    /// auth (`expires` 60 s..=86400 s).
    async fn presigned_url(
        &self,
        publisher: &str,
        book: &str,
        path: &AssetPath,
        expires: Duration,
    ) -> Result<PresignedUrl, DcsError>;

    /// `GET /webhooks/`.
    async fn list_webhooks(&self) -> Result<Vec<WebhookSubscription>, DcsError>;

    /// `POST /webhooks/` (not retried).
    async fn create_webhook(
        &self,
        subscription: &WebhookSubscriptionCreate,
    ) -> Result<WebhookSubscription, DcsError>;

    /// `PUT /webhooks/{id}`.
    async fn update_webhook(
        &self,
        id: i64,
        update: &WebhookSubscriptionUpdate,
    ) -> Result<WebhookSubscription, DcsError>;

    /// `DELETE /webhooks/{id}`.
    async fn delete_webhook(&self, id: i64) -> Result<(), DcsError>;
}
