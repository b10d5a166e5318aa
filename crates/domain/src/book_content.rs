//! A book's content as readers get it: who may read it, its config.json with URLs in place of
//! asset paths, its activities, links to single assets, and assets streamed with byte ranges.
//!
//! Flow of `GET /books/{id}/config`: the book record (cached) -> the access rule -> the raw
//! config (cached) -> the transformer, whose linker presigns locally in the default S3 mode.
//! No DCS call is made while both are cached, so activities still start when DCS is down.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use cache::{Cache, Fetched};
use dcs_client::{AssetPath as DcsAssetPath, Conditional, DcsApi, DcsError, DownloadOptions};
use futures_core::Stream;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::Value;
use storage::{ByteRange, ObjectStore, RangeOutcome, StorageError, range};

use crate::access::{BookStatus, BookVisibility, Viewer, can_read_book};
use crate::activities::{
    ActivityId, ActivityRepository, RepositoryError, StoredActivity, parse_activities,
};
use crate::asset_path::{BookAssetPath, BookRef, PathRejection, normalize};
use crate::catalog::{Catalog, CatalogError, Served};
use crate::config_transform::{ConfigTransformer, TransformError};
use crate::errors::{Code, Problem, ToProblem, UpstreamError, dcs_is_unavailable};
use crate::keys;
use crate::linker::{AssetLinker, LinkError};
use crate::ports::{EventFollower, FollowUpError};
use crate::webhooks::{EventKind, WebhookEvent};

/// Why a content read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ContentError {
    /// No such book, activity or asset, or the viewer may not see it.
    #[error("{0}")]
    NotFound(&'static str),
    /// The catalog failed (DCS down with nothing cached, or an unexpected answer).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The asset path is not a path inside the book.
    #[error("invalid asset path: {0}")]
    InvalidPath(#[from] PathRejection),
    /// The book's config.json cannot be used (not JSON, wrong shape).
    #[error("the book's config.json is invalid: {0}")]
    InvalidConfig(String),
    /// The store of URLs, objects or activities cannot be reached.
    #[error("content storage unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Object storage or DCS answered in a way we cannot serve.
    #[error(transparent)]
    Upstream(UpstreamError),
    /// The activity store failed.
    #[error("activities unavailable: {0}")]
    Activities(String),
}

impl ToProblem for ContentError {
    fn problem(&self) -> Problem {
        match self {
            Self::NotFound(detail) => Problem::new(Code::NotFound).with_detail(*detail),
            Self::Catalog(e) => e.problem(),
            Self::InvalidPath(rejection) => Problem::new(Code::InvalidPath)
                .with_detail(format!("Invalid asset path: {rejection}"))
                .with_field("reason", rejection.code()),
            Self::InvalidConfig(reason) => Problem::new(Code::ContentStorageError)
                .with_detail("The book's config.json is not valid.")
                .with_field("reason", reason.clone()),
            Self::Unavailable { retry_after, .. } => {
                Problem::new(Code::ContentStorageUnavailable).with_retry_after(*retry_after)
            }
            Self::Upstream(e) => e.problem(),
            // The activity store is the database: the same answer as every other route whose
            // database is down.
            Self::Activities(_) => Problem::new(Code::DatabaseUnavailable),
        }
    }
}

impl From<LinkError> for ContentError {
    fn from(error: LinkError) -> Self {
        match error {
            LinkError::Unavailable(reason) => Self::Unavailable {
                reason,
                retry_after: None,
            },
        }
    }
}

impl From<TransformError> for ContentError {
    fn from(error: TransformError) -> Self {
        match error {
            TransformError::Storage(link) => link.into(),
            other => Self::InvalidConfig(other.to_string()),
        }
    }
}

impl From<RepositoryError> for ContentError {
    fn from(error: RepositoryError) -> Self {
        match error {
            // What the config produced cannot be stored: retrying will not help.
            RepositoryError::InvalidInput(reason) => Self::InvalidConfig(reason),
            RepositoryError::Unavailable(_) => Self::Activities(error.to_string()),
        }
    }
}

impl From<StorageError> for ContentError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::NotFound { .. } => Self::NotFound("File not found"),
            StorageError::Unavailable(reason) => Self::Unavailable {
                reason,
                retry_after: None,
            },
            StorageError::BucketNotFound { bucket } => Self::Unavailable {
                reason: format!("bucket {bucket} is missing (run `lms-api storage-init`)"),
                retry_after: None,
            },
            other => Self::Upstream(UpstreamError {
                upstream_code: other.code(),
                message: other.to_string(),
            }),
        }
    }
}

impl ContentError {
    fn from_dcs(error: &DcsError, not_found: &'static str) -> Self {
        if error.is_not_found() {
            Self::NotFound(not_found)
        } else if dcs_is_unavailable(error) {
            Self::Unavailable {
                reason: error.to_string(),
                retry_after: error.retry_after(),
            }
        } else {
            Self::Upstream(UpstreamError::from(error))
        }
    }
}

// ---------------------------------------------------------------------------------------
// streamed assets

/// A streamed body; an item is a chunk or the error that ended the stream.
pub type AssetStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// The conditional and range headers of an asset request, as the client sent them.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssetRequest<'a> {
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
}

/// An asset body with what a response needs.
pub struct AssetBody {
    /// The whole object's size.
    pub size: u64,
    /// The part sent (answer 206), or `None` for the whole object.
    pub range: Option<ByteRange>,
    pub content_type: String,
    /// Strong ETag, quoted.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    pub body: AssetStream,
}

impl AssetBody {
    /// Bytes the body carries.
    pub fn len(&self) -> u64 {
        self.range.map_or(self.size, |r| r.len())
    }

    /// `true` for an empty object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for AssetBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssetBody")
            .field("size", &self.size)
            .field("range", &self.range)
            .field("content_type", &self.content_type)
            .field("etag", &self.etag)
            .finish_non_exhaustive()
    }
}

/// The answer to an asset request (RFC 9110 semantics already applied).
#[derive(Debug)]
pub enum AssetAnswer {
    /// 200 or 206.
    Body(AssetBody),
    /// 304: `If-None-Match` matched.
    NotModified { etag: Option<String> },
    /// 416 with `Content-Range: bytes */{size}`.
    RangeNotSatisfiable { size: u64 },
}

/// Where book assets are read from: the object store holding DCS's bucket, or DCS itself.
#[async_trait]
pub trait AssetSource: Send + Sync + fmt::Debug {
    async fn open(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
        request: &AssetRequest<'_>,
    ) -> Result<AssetAnswer, ContentError>;
}

/// Whether an `If-None-Match` list matches `etag` (weak comparison, `*` matches anything).
pub fn if_none_match_hits(if_none_match: Option<&str>, etag: Option<&str>) -> bool {
    let (Some(list), Some(etag)) = (if_none_match, etag) else {
        return false;
    };
    let weak = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let etag = weak(etag);
    list.split(',')
        .any(|candidate| candidate.trim() == "*" || weak(candidate) == etag)
}

/// The content type to send: the stored one unless it says nothing (DCS stores every object
/// as `application/octet-stream`), then the one the extension implies.
fn content_type(stored: Option<&str>, path: &str) -> String {
    match stored {
        Some(ct) if !ct.is_empty() && ct != "application/octet-stream" => ct.to_owned(),
        _ => mime_guess::from_path(path)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_owned(),
    }
}

/// Assets read from the object store that holds DCS's `publishers` bucket (S3 deployments).
#[derive(Debug, Clone)]
pub struct StoreAssets {
    store: Arc<dyn ObjectStore>,
}

impl StoreAssets {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl AssetSource for StoreAssets {
    async fn open(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
        request: &AssetRequest<'_>,
    ) -> Result<AssetAnswer, ContentError> {
        Ok(open_stored(self.store.as_ref(), &book.object_key(path), request).await?)
    }
}

/// Reads `key` from `store` for an HTTP request: the range, then the preconditions in RFC
/// 9110's order. Shared by the S3 asset source and the filesystem store's signed route.
pub async fn open_stored(
    store: &dyn ObjectStore,
    key: &str,
    request: &AssetRequest<'_>,
) -> Result<AssetAnswer, StorageError> {
    let spec = request.range.and_then(range::parse_range);
    let mut result = match store.get(key, spec).await {
        Err(StorageError::RangeNotSatisfiable { size }) => {
            // Preconditions come before the range (RFC 9110 13.2.2): a current copy gets 304,
            // and with `If-Range` a client holding another version gets the whole current
            // object, not a 416 (13.1.5).
            let meta = match (request.if_none_match, request.if_range) {
                (None, None) => return Ok(AssetAnswer::RangeNotSatisfiable { size }),
                _ => store.head(key).await?,
            };
            if if_none_match_hits(request.if_none_match, meta.etag.as_deref()) {
                return Ok(AssetAnswer::NotModified { etag: meta.etag });
            }
            let stale_copy = request.if_range.is_some()
                && !range::if_range_allows_partial(
                    request.if_range,
                    meta.etag.as_deref(),
                    meta.last_modified,
                );
            if !stale_copy {
                return Ok(AssetAnswer::RangeNotSatisfiable { size });
            }
            store.get(key, None).await?
        }
        other => other?,
    };
    let meta = &result.meta;
    if if_none_match_hits(request.if_none_match, meta.etag.as_deref()) {
        return Ok(AssetAnswer::NotModified {
            etag: meta.etag.clone(),
        });
    }
    // `If-Range` that no longer matches: the client's partial copy is stale, send it all.
    if result.range.is_some()
        && !range::if_range_allows_partial(
            request.if_range,
            meta.etag.as_deref(),
            meta.last_modified,
        )
    {
        result = store.get(key, None).await?;
    }
    Ok(AssetAnswer::Body(AssetBody {
        size: result.meta.size,
        range: result.range,
        content_type: content_type(result.meta.content_type.as_deref(), key),
        etag: result.meta.etag,
        last_modified: result.meta.last_modified,
        body: result.body,
    }))
}

/// Assets streamed from DCS's object endpoint (deployments without S3 credentials).
///
/// DCS answers 416 to a range that runs past the end instead of clamping it, so ranges are
/// resolved here against the object's size from the book's file listing (cached per book,
/// dropped with the book's other entries by webhooks), and DCS is asked for the exact bytes.
/// When DCS shows the listing is stale (a 416, or a part of a file of another size: the book
/// was re-uploaded and its webhook has not arrived), the listing is read again and the
/// request served once more.
pub struct DcsAssets {
    dcs: Arc<dyn DcsApi>,
    cache: Cache,
    listing_ttl: Duration,
}

impl fmt::Debug for DcsAssets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DcsAssets")
            .field("listing_ttl", &self.listing_ttl)
            .finish_non_exhaustive()
    }
}

impl DcsAssets {
    pub fn new(dcs: Arc<dyn DcsApi>, cache: Cache, listing_ttl: Duration) -> Self {
        Self {
            dcs,
            cache,
            listing_ttl,
        }
    }

    /// Path -> size of every file of the book.
    async fn sizes(&self, book: &BookRef) -> Result<HashMap<String, u64>, ContentError> {
        let lookup = self
            .cache
            .get_or_fetch(&keys::book_files(book.id()), self.listing_ttl, || async {
                let files = self
                    .dcs
                    .book_contents(book.publisher(), book.book_name())
                    .await
                    .map_err(Arc::new)?;
                let sizes: HashMap<&str, u64> =
                    files.iter().map(|f| (f.path.as_str(), f.size)).collect();
                Ok::<_, Arc<DcsError>>(Fetched::Found(Bytes::from(
                    serde_json::to_vec(&sizes).expect("a map of sizes serialises"),
                )))
            })
            .await
            .map_err(|e| ContentError::from_dcs(&e, "File not found"))?;
        let bytes = lookup
            .value
            .ok_or(ContentError::NotFound("File not found"))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ContentError::Upstream(UpstreamError {
                upstream_code: "dcs_decode",
                message: format!("cached file listing: {e}"),
            })
        })
    }

    async fn download(
        &self,
        book: &BookRef,
        path: &DcsAssetPath,
        options: &DownloadOptions,
    ) -> Result<Conditional, ContentError> {
        self.dcs
            .download_asset(book.publisher(), book.book_name(), path, options)
            .await
            .map_err(|e| ContentError::from_dcs(&e, "File not found"))
    }

    /// The size of the file at `path`, from the book's listing.
    async fn size_of(&self, book: &BookRef, path: &BookAssetPath) -> Result<u64, ContentError> {
        self.sizes(book)
            .await?
            .get(path.as_str())
            .copied()
            .ok_or(ContentError::NotFound("File not found"))
    }

    /// Serves `request` for a file of `size` bytes; `None` when DCS refused the range worked
    /// out from that size (416) or reported another size: the listing no longer matches.
    async fn serve(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
        request: &AssetRequest<'_>,
        size: u64,
    ) -> Result<Option<AssetAnswer>, ContentError> {
        let dcs_path = DcsAssetPath::parse(path.as_str())
            .map_err(|_| ContentError::NotFound("File not found"))?;
        // Preconditions come before the range (RFC 9110 13.2.2): an unsatisfiable range only
        // counts once `If-None-Match` did not match (else 304) and the `If-Range` validator
        // matched (else the whole current object, 13.1.5).
        let (wanted, unsatisfiable) = match range::evaluate(request.range, size) {
            RangeOutcome::Unsatisfiable
                if request.if_range.is_none() && request.if_none_match.is_none() =>
            {
                return Ok(Some(AssetAnswer::RangeNotSatisfiable { size }));
            }
            RangeOutcome::Unsatisfiable => (None, true),
            RangeOutcome::Partial(r) => (Some(r), false),
            RangeOutcome::Full => (None, false),
        };
        let mut options = DownloadOptions::new();
        if let Some(r) = wanted {
            options = options.range(format!("bytes={}-{}", r.start, r.end));
        } else if let Some(tag) = request.if_none_match {
            options = options.if_none_match(tag);
        }
        let mut answer = match self
            .dcs
            .download_asset(book.publisher(), book.book_name(), &dcs_path, &options)
            .await
        {
            Ok(answer) => answer,
            Err(DcsError::RangeNotSatisfiable { .. }) if wanted.is_some() => return Ok(None),
            Err(e) => return Err(ContentError::from_dcs(&e, "File not found")),
        };
        // A part of a file whose size is not the listed one: a suffix or open range was worked
        // out from a stale size, so these may not be the bytes asked for.
        if let (Some(_), Conditional::Modified(download)) = (wanted, &answer)
            && download.is_partial()
            && download.total_size().is_some_and(|total| total != size)
        {
            return Ok(None);
        }
        if unsatisfiable && let Conditional::Modified(download) = &answer {
            let etag = download.etag.as_deref();
            // DCS compares `If-None-Match` as one exact string; lists and weak tags here.
            if if_none_match_hits(request.if_none_match, etag) {
                return Ok(Some(AssetAnswer::NotModified {
                    etag: download.etag.clone(),
                }));
            }
            if range::if_range_allows_partial(request.if_range, etag, None) {
                return Ok(Some(AssetAnswer::RangeNotSatisfiable { size }));
            }
        }
        if let (Some(_), Conditional::Modified(download)) = (wanted, &answer) {
            let etag = download.etag.as_deref();
            if if_none_match_hits(request.if_none_match, etag) {
                return Ok(Some(AssetAnswer::NotModified {
                    etag: download.etag.clone(),
                }));
            }
            if !range::if_range_allows_partial(request.if_range, etag, None) {
                let mut whole = DownloadOptions::new();
                if let Some(tag) = request.if_none_match {
                    whole = whole.if_none_match(tag);
                }
                answer = self.download(book, &dcs_path, &whole).await?;
            }
        }
        Ok(Some(match answer {
            Conditional::NotModified { etag, .. } => AssetAnswer::NotModified { etag },
            Conditional::Modified(download) => {
                let range = if download.is_partial() { wanted } else { None };
                AssetAnswer::Body(AssetBody {
                    size: download.total_size().unwrap_or(size),
                    range,
                    content_type: content_type(download.content_type.as_deref(), path.as_str()),
                    etag: download.etag,
                    last_modified: None,
                    body: Box::pin(
                        download
                            .body
                            .map(|chunk| chunk.map_err(|e| io::Error::other(e.to_string()))),
                    ),
                })
            }
        }))
    }
}

#[async_trait]
impl AssetSource for DcsAssets {
    async fn open(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
        request: &AssetRequest<'_>,
    ) -> Result<AssetAnswer, ContentError> {
        let size = self.size_of(book, path).await?;
        if let Some(answer) = self.serve(book, path, request, size).await? {
            return Ok(answer);
        }
        // DCS refused a range worked out from the cached listing: the file changed since and
        // no webhook has dropped the listing yet. Read the listing again and try once more.
        let listing = keys::book_files(book.id());
        if let Err(e) = self.cache.invalidate(&listing).await {
            // The local copy is gone all the same; other instances keep theirs until the TTL.
            tracing::warn!(key = %listing, error = %e, "could not drop a stale file listing everywhere");
        }
        let size = self.size_of(book, path).await?;
        self.serve(book, path, request, size).await?.ok_or_else(|| {
            ContentError::Upstream(UpstreamError {
                upstream_code: "dcs_range_not_satisfiable",
                message: format!(
                    "DCS refused a range within the listed size of {}",
                    path.as_str()
                ),
            })
        })
    }
}

// ---------------------------------------------------------------------------------------
// the service

/// What the content routes need of a book record.
#[derive(Deserialize)]
struct BookRecord {
    id: i64,
    publisher_id: i64,
    publisher: Option<String>,
    book_name: String,
    status: String,
}

/// Where a book's content lives in DCS storage. A book without a publisher name has none.
fn storage_location(
    id: i64,
    publisher: Option<String>,
    book_name: String,
) -> Result<BookRef, ContentError> {
    let publisher = publisher.ok_or(ContentError::NotFound("Book not found"))?;
    BookRef::new(id, publisher, book_name).map_err(|e| {
        ContentError::Upstream(UpstreamError {
            upstream_code: "dcs_invalid_book_name",
            message: e.to_string(),
        })
    })
}

/// A book the viewer may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadableBook {
    pub book: BookRef,
    pub visibility: BookVisibility,
}

/// An activity and its transformed config, for `/activities/{id}/start`.
#[derive(Debug, Clone)]
pub struct StartedActivity {
    pub activity: StoredActivity,
    /// The section's config with URLs in place of paths.
    pub config: Value,
}

/// What an activity import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityImport {
    pub activities: usize,
    pub summary: crate::activities::ReplaceSummary,
}

/// Book content for readers.
pub struct BookContent {
    catalog: Arc<Catalog>,
    dcs: Arc<dyn DcsApi>,
    linker: Arc<dyn AssetLinker>,
    transformer: ConfigTransformer,
    activities: Arc<dyn ActivityRepository>,
    assets: Arc<dyn AssetSource>,
}

impl fmt::Debug for BookContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BookContent")
            .field("assets", &self.assets)
            .finish_non_exhaustive()
    }
}

impl BookContent {
    /// Content over the catalog, a delivery mode (`linker`), the activity store and a source
    /// of asset bytes.
    pub fn new(
        catalog: Arc<Catalog>,
        dcs: Arc<dyn DcsApi>,
        linker: Arc<dyn AssetLinker>,
        activities: Arc<dyn ActivityRepository>,
        assets: Arc<dyn AssetSource>,
    ) -> Self {
        Self {
            catalog,
            dcs,
            transformer: ConfigTransformer::new(linker.clone()),
            linker,
            activities,
            assets,
        }
    }

    /// The book `id` with its storage names, whoever asks (imports, webhooks).
    async fn book(&self, id: i64) -> Result<ReadableBook, ContentError> {
        let served = self.catalog.book(id).await?;
        let record: BookRecord = serde_json::from_slice(&served.value).map_err(|e| {
            ContentError::Upstream(UpstreamError {
                upstream_code: "dcs_decode",
                message: format!("cached book {id}: {e}"),
            })
        })?;
        let book = storage_location(record.id, record.publisher, record.book_name)?;
        Ok(ReadableBook {
            book,
            visibility: BookVisibility {
                publisher_id: record.publisher_id,
                status: BookStatus::from_dcs(&record.status),
            },
        })
    }

    /// The book `id` if `viewer` may read it; otherwise "not found", so existence does not leak.
    pub async fn readable_book(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<ReadableBook, ContentError> {
        let book = self.book(id).await?;
        if can_read_book(viewer, &book.visibility) {
            Ok(book)
        } else {
            Err(ContentError::NotFound("Book not found"))
        }
    }

    /// The raw config.json (cached as DCS sent it, for `DCS_CACHE_CONFIG_TTL`).
    async fn raw_config(&self, book: &BookRef) -> Result<Served<Value>, ContentError> {
        let lookup = self
            .catalog
            .cache()
            .get_or_fetch(
                &keys::book_config(book.id()),
                self.catalog.ttls().config,
                || async {
                    match self
                        .dcs
                        .book_config(book.publisher(), book.book_name())
                        .await
                    {
                        Ok(config) => Ok(Fetched::Found(Bytes::from(
                            serde_json::to_vec(&config).expect("JSON values serialise"),
                        ))),
                        Err(e) if e.is_not_found() => Ok(Fetched::NotFound),
                        Err(e) => Err(Arc::new(e)),
                    }
                },
            )
            .await
            .map_err(|e| ContentError::from_dcs(&e, "config.json not found"))?;
        let bytes = lookup
            .value
            .ok_or(ContentError::NotFound("config.json not found"))?;
        let config = serde_json::from_slice(&bytes)
            .map_err(|e| ContentError::InvalidConfig(format!("not JSON: {e}")))?;
        Ok(Served {
            value: config,
            freshness: lookup.freshness,
        })
    }

    /// The book's config.json with every asset path turned into a URL.
    pub async fn config(&self, viewer: &Viewer, id: i64) -> Result<Served<Value>, ContentError> {
        let book = self.readable_book(viewer, id).await?.book;
        let raw = self.raw_config(&book).await?;
        let transformed = self.transformer.transform_book(&book, raw.value).await?;
        Ok(Served {
            value: transformed.config,
            freshness: raw.freshness,
        })
    }

    /// The book's activities in order, imported first when they may be out of date (see
    /// [`Self::import_unless_current`]); while an import cannot run, those stored are served
    /// (only a book with none fails).
    pub async fn activities(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<Vec<StoredActivity>, ContentError> {
        let book = self.readable_book(viewer, id).await?.book;
        match self.import_unless_current(&book).await {
            Ok(_) => Ok(self.activities.list_for_book(id).await?),
            // The database is unreachable: reading the stored ones would wait for it again.
            Err(error @ ContentError::Activities(_)) => Err(error),
            Err(error) => {
                let stored = self.activities.list_for_book(id).await?;
                if stored.is_empty() {
                    return Err(error);
                }
                tracing::warn!(
                    book_id = id,
                    %error,
                    "activities not re-imported; serving those stored"
                );
                Ok(stored)
            }
        }
    }

    /// Imports the book's activities from its config unless a marker in the cache says they
    /// were (single-flight); whether the stored activities may have changed during the call
    /// (an import ran, this caller's or one it waited for). The marker goes with the book's
    /// other entries when a webhook invalidates them, and expires with the config, so
    /// activities follow DCS within the config TTL even when every attempt of a webhook's own
    /// re-import failed (DCS gives up after three).
    async fn import_unless_current(&self, book: &BookRef) -> Result<bool, ContentError> {
        let ran = self
            .import_once(book.id(), async { self.import(book).await.map(drop) })
            .await?;
        Ok(ran)
    }

    /// Runs `import` as the fill of the book's import marker, unless the marker is there:
    /// concurrent callers wait for one import, and the marker it leaves spares the next reads
    /// another. Whether an import ran (this caller's or one it joined); `false` when the marker
    /// was there, or when the import failed and the previous marker was served instead.
    async fn import_once(
        &self,
        id: i64,
        import: impl Future<Output = Result<(), ContentError>>,
    ) -> Result<bool, ContentError> {
        let marker = self
            .catalog
            .cache()
            .get_or_fetch(
                &keys::book_activities_imported(id),
                self.catalog.ttls().config,
                || async {
                    import.await?;
                    Ok::<_, ContentError>(Fetched::Found(Bytes::from_static(b"imported")))
                },
            )
            .await?;
        Ok(marker.freshness == cache::Freshness::Miss)
    }

    /// One activity with its transformed config.
    pub async fn start_activity(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<StartedActivity, ContentError> {
        let not_found = || ContentError::NotFound("Activity not found");
        let mut activity = self
            .activities
            .get(ActivityId(id))
            .await?
            .ok_or_else(not_found)?;
        let book = self
            .readable_book(viewer, activity.activity.key.book_id)
            .await
            .map_err(|e| match e {
                ContentError::NotFound(_) => not_found(),
                other => other,
            })?
            .book;
        match self.import_unless_current(&book).await {
            Ok(false) => {}
            // Imported again just now: the activity may have changed or gone.
            Ok(true) => {
                activity = self
                    .activities
                    .get(ActivityId(id))
                    .await?
                    .ok_or_else(not_found)?;
            }
            Err(error) => {
                tracing::warn!(
                    activity_id = id,
                    %error,
                    "activities not re-imported; starting the one stored"
                );
            }
        }
        let config = self
            .transformer
            .transform_activity(&book, activity.activity.config.clone())
            .await?
            .config;
        Ok(StartedActivity { activity, config })
    }

    /// A URL for one asset of the book, in the configured delivery mode.
    pub async fn asset_link(
        &self,
        viewer: &Viewer,
        id: i64,
        raw_path: &str,
    ) -> Result<String, ContentError> {
        let book = self.readable_book(viewer, id).await?.book;
        let path = normalize(raw_path, book.book_name())?;
        self.linker
            .link(&book, std::slice::from_ref(&path))
            .await?
            .pop()
            .flatten()
            .ok_or(ContentError::NotFound("File not found"))
    }

    /// Streams one asset of the book (ranges, conditional requests).
    pub async fn open_asset(
        &self,
        viewer: &Viewer,
        id: i64,
        raw_path: &str,
        request: &AssetRequest<'_>,
    ) -> Result<AssetAnswer, ContentError> {
        let book = self.readable_book(viewer, id).await?.book;
        let path = normalize(raw_path, book.book_name())?;
        self.assets.open(&book, &path, request).await
    }

    /// Re-reads the book's activities from DCS now (webhooks, the admin endpoint), leaving the
    /// cache alone: what readers are served is the cache's business. A broken config is an
    /// error and leaves the stored activities as they were.
    pub async fn import_activities(&self, id: i64) -> Result<ActivityImport, ContentError> {
        let record = self
            .dcs
            .get_book(id)
            .await
            .map_err(|e| ContentError::from_dcs(&e, "Book not found"))?;
        let book = storage_location(record.id, record.publisher, record.book_name)?;
        let config = self
            .dcs
            .book_config(book.publisher(), book.book_name())
            .await
            .map_err(|e| ContentError::from_dcs(&e, "config.json not found"))?;
        self.replace_activities(&book, &config).await
    }

    /// Imports from the cached config (a book listed for the first time).
    async fn import(&self, book: &BookRef) -> Result<ActivityImport, ContentError> {
        let config = self.raw_config(book).await?;
        self.replace_activities(book, &config.value).await
    }

    async fn replace_activities(
        &self,
        book: &BookRef,
        config: &Value,
    ) -> Result<ActivityImport, ContentError> {
        let parsed = parse_activities(book.id(), config)
            .map_err(|e| ContentError::InvalidConfig(e.to_string()))?;
        let activities = parsed.len();
        let summary = self.activities.replace_for_book(book.id(), parsed).await?;
        Ok(ActivityImport {
            activities,
            summary,
        })
    }

    /// Forgets a deleted book's activities.
    pub async fn forget_activities(&self, id: i64) -> Result<usize, ContentError> {
        Ok(self.activities.delete_for_book(id).await?)
    }
}

/// Webhooks keep the activities table in step with DCS: a created or updated book is
/// re-imported (ids of unchanged activities stay), a deleted one forgotten. When DCS or the
/// database cannot be reached the delivery is retried by DCS (and should every attempt fail,
/// the next read imports, the webhook having dropped the book's entries); a book without a
/// usable config keeps its activities, with a warning (an admin can re-import once it is fixed).
#[async_trait]
impl EventFollower for BookContent {
    async fn follow(&self, event: &WebhookEvent) -> Result<(), FollowUpError> {
        let Some(id) = event.entity_id else {
            return Ok(());
        };
        let result = match event.kind {
            EventKind::BookCreated | EventKind::BookUpdated => {
                // As the fill of the import marker the invalidation just dropped, so that
                // readers arriving meanwhile wait for this import instead of running their own,
                // and the next read does not import again.
                let mut done = None;
                self.import_once(id, async {
                    done = Some(self.import_activities(id).await?);
                    Ok(())
                })
                .await
                .map(|_| match done {
                    Some(import) => tracing::info!(
                        book_id = id,
                        activities = import.activities,
                        inserted = import.summary.inserted,
                        updated = import.summary.updated,
                        deleted = import.summary.deleted,
                        "activities re-imported"
                    ),
                    None => tracing::debug!(book_id = id, "activities already re-imported"),
                })
            }
            EventKind::BookDeleted => self.forget_activities(id).await.map(|removed| {
                tracing::info!(
                    book_id = id,
                    removed,
                    "activities of a deleted book removed"
                );
            }),
            _ => return Ok(()),
        };
        match result {
            Ok(()) => Ok(()),
            Err(
                error @ (ContentError::Unavailable { .. }
                | ContentError::Activities(_)
                | ContentError::Catalog(CatalogError::Unavailable { .. })),
            ) => Err(FollowUpError(error.to_string())),
            Err(error) => {
                tracing::warn!(book_id = id, event = %event.name, %error, "activities not re-imported");
                Ok(())
            }
        }
    }
}
