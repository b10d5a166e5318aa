//! Publishers and books from DCS, cached as ready-to-send JSON.
//!
//! Every read goes through the cache: a hit is a refcount clone of the bytes the HTTP layer
//! writes out. When DCS is unavailable the last value is served marked stale; with nothing
//! cached the caller gets [`CatalogError::Unavailable`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use cache::{Cache, CacheError, Fetched, Freshness};
use chrono::{DateTime, Utc};
use dcs_client::{Book, Conditional, DcsApi, DcsError, Publisher};
use futures_core::Stream;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::errors::{Code, Problem, ToProblem, UpstreamError, dcs_is_unavailable};
use crate::keys;
use crate::ports::CacheInvalidator;
use crate::webhooks::Invalidation;

/// The URLs the catalog puts in what it serves (`logo_url`, `cover_url`). The HTTP layer
/// decides them: it knows its routes and their prefix.
pub trait CatalogLinks: Send + Sync + fmt::Debug {
    /// Where a publisher's logo is served.
    fn publisher_logo(&self, id: i64) -> String;
    /// Where a book's cover is served.
    fn book_cover(&self, id: i64) -> String;
}

/// An image body as it streams from DCS; an item is a chunk or the error that ended it.
pub type ImageStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static>>;

/// A streamed image (a book cover) with what a proxy passes on.
pub struct Image {
    /// `content-type` as DCS sent it.
    pub content_type: Option<String>,
    /// `etag` (quoted, as sent).
    pub etag: Option<String>,
    /// `content-length`.
    pub content_length: Option<u64>,
    /// The body.
    pub body: ImageStream,
}

impl Image {
    /// Reads the whole body into memory.
    pub async fn bytes(self) -> Result<Bytes, UpstreamError> {
        let mut body = self.body;
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("content_type", &self.content_type)
            .field("etag", &self.etag)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// The answer to a conditional image read (`If-None-Match`).
#[derive(Debug)]
pub enum ConditionalImage {
    /// The image.
    Modified(Image),
    /// The caller's copy is current.
    NotModified {
        /// The ETag DCS sent with its 304.
        etag: Option<String>,
    },
}

impl ConditionalImage {
    /// `true` for "not modified".
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Self::NotModified { .. })
    }
}

impl From<Conditional> for ConditionalImage {
    fn from(answer: Conditional) -> Self {
        match answer {
            Conditional::NotModified { etag, .. } => Self::NotModified { etag },
            Conditional::Modified(download) => Self::Modified(Image {
                content_type: download.content_type,
                etag: download.etag,
                content_length: download.content_length,
                body: Box::pin(
                    download
                        .body
                        .map(|chunk| chunk.map_err(|e| UpstreamError::from(&e))),
                ),
            }),
        }
    }
}

/// How long each kind of DCS data is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogTtls {
    pub publishers: Duration,
    pub books: Duration,
    pub config: Duration,
    pub logos: Duration,
}

impl Default for CatalogTtls {
    fn default() -> Self {
        Self {
            publishers: Duration::from_secs(600),
            books: Duration::from_secs(600),
            config: Duration::from_secs(1800),
            logos: Duration::from_secs(3600),
        }
    }
}

/// A value and whether it is an expired copy served because DCS failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served<T> {
    pub value: T,
    pub freshness: Freshness,
}

impl<T> Served<T> {
    pub fn is_stale(&self) -> bool {
        self.freshness == Freshness::Stale
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> Served<U> {
        Served {
            value: f(self.value),
            freshness: self.freshness,
        }
    }
}

/// A binary asset kept in the cache (a publisher logo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub content_type: String,
    /// A strong, quoted ETag derived from the bytes (DCS sends none for logos).
    pub etag: String,
    pub bytes: Bytes,
}

/// Why a catalog read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    NotFound(&'static str),
    /// DCS cannot be reached (or is failing) and nothing usable is cached. `cause` is the DCS
    /// client's stable code (`dcs_timeout`, `dcs_circuit_open`, `dcs_network`, ...), for logs
    /// and metrics; clients see the fixed message only.
    #[error("Content storage temporarily unavailable ({cause}). Please try again.")]
    Unavailable {
        retry_after: Option<Duration>,
        cause: &'static str,
    },
    #[error("{0}")]
    InvalidQuery(String),
    /// DCS answered in a way the LMS cannot serve (misconfigured credentials, an unexpected
    /// status, a body that does not parse).
    #[error("{0}")]
    Upstream(UpstreamError),
}

impl CatalogError {
    fn from_dcs(error: &DcsError, not_found: &'static str) -> Self {
        if error.is_not_found() {
            Self::NotFound(not_found)
        } else if dcs_is_unavailable(error) {
            Self::Unavailable {
                retry_after: error.retry_after(),
                cause: error.code(),
            }
        } else {
            Self::Upstream(UpstreamError::from(error))
        }
    }
}

impl ToProblem for CatalogError {
    fn problem(&self) -> Problem {
        match self {
            Self::NotFound(detail) => Problem::new(Code::NotFound).with_detail(*detail),
            Self::InvalidQuery(detail) => {
                Problem::new(Code::InvalidQuery).with_detail(detail.clone())
            }
            Self::Unavailable { retry_after, .. } => {
                Problem::new(Code::ContentStorageUnavailable).with_retry_after(*retry_after)
            }
            Self::Upstream(upstream) => upstream.problem(),
        }
    }
}

/// `GET /books` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookQuery {
    pub publisher_id: Option<i64>,
    pub include_archived: bool,
    /// Case-insensitive substring of the title or the book name.
    pub search: Option<String>,
    pub skip: u64,
    pub limit: u64,
}

impl BookQuery {
    pub const DEFAULT_LIMIT: u64 = 100;
    pub const MAX_LIMIT: u64 = 1000;
    pub const MAX_SEARCH_CHARS: usize = 200;
    /// The largest `skip` (the OpenAPI document's int64 range).
    pub const MAX_SKIP: u64 = i64::MAX as u64;

    /// Checks the parameters and normalises the search text.
    pub fn new(
        publisher_id: Option<i64>,
        include_archived: bool,
        search: Option<String>,
        skip: Option<u64>,
        limit: Option<u64>,
    ) -> Result<Self, CatalogError> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(CatalogError::InvalidQuery(format!(
                "limit must be between 1 and {}",
                Self::MAX_LIMIT
            )));
        }
        if skip.is_some_and(|skip| skip > Self::MAX_SKIP) {
            return Err(CatalogError::InvalidQuery(format!(
                "skip must be between 0 and {}",
                Self::MAX_SKIP
            )));
        }
        if publisher_id.is_some_and(|id| id < 1) {
            return Err(CatalogError::InvalidQuery(
                "publisher_id must be a positive integer".into(),
            ));
        }
        let search = search
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        if search
            .as_ref()
            .is_some_and(|s| s.chars().count() > Self::MAX_SEARCH_CHARS)
        {
            return Err(CatalogError::InvalidQuery(format!(
                "search must be at most {} characters",
                Self::MAX_SEARCH_CHARS
            )));
        }
        Ok(Self {
            publisher_id,
            include_archived,
            search,
            skip: skip.unwrap_or(0),
            limit,
        })
    }

    /// The cache key suffix; searches are not cached (unbounded key space), so `None`.
    fn view_key(&self) -> Option<String> {
        if self.search.is_some() {
            return None;
        }
        let (archived, skip, limit) = (self.include_archived, self.skip, self.limit);
        Some(match self.publisher_id {
            Some(publisher) => keys::book_list_view(format_args!(
                "publisher={publisher}:archived={archived}:skip={skip}:limit={limit}"
            )),
            None => keys::book_list_view(format_args!(
                "publisher=all:archived={archived}:skip={skip}:limit={limit}"
            )),
        })
    }

    fn matches(&self, book: &Book) -> bool {
        (self.include_archived || !book.is_archived())
            && self.publisher_id.is_none_or(|id| book.publisher_id == id)
            && self.search.as_ref().is_none_or(|q| {
                book.book_name.to_lowercase().contains(q)
                    || book
                        .book_title
                        .as_ref()
                        .is_some_and(|t| t.to_lowercase().contains(q))
            })
    }
}

impl Default for BookQuery {
    fn default() -> Self {
        Self {
            publisher_id: None,
            include_archived: false,
            search: None,
            skip: 0,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// What a publisher re-sync found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResyncReport {
    pub publishers: usize,
    /// Publishers added, changed or gone since the last re-sync.
    pub changed: usize,
}

/// The catalog: publishers and books over the DCS port and the cache.
pub struct Catalog {
    dcs: Arc<dyn DcsApi>,
    cache: Cache,
    ttl: CatalogTtls,
    links: Arc<dyn CatalogLinks>,
    /// `updated_at` per active publisher as of the last re-sync.
    publisher_versions: Mutex<Option<HashMap<i64, DateTime<Utc>>>>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

type DcsResult<T> = Result<T, Arc<DcsError>>;

/// A DCS error as the fetch of a cache entry sees it: "not found" is a cacheable answer,
/// anything else is kept for stale-if-error.
fn fetch_error(e: DcsError) -> DcsResult<Fetched> {
    if e.is_not_found() {
        Ok(Fetched::NotFound)
    } else {
        Err(Arc::new(e))
    }
}

fn to_json<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("catalog views serialise"))
}

impl Catalog {
    pub fn new(
        dcs: Arc<dyn DcsApi>,
        cache: Cache,
        ttl: CatalogTtls,
        links: Arc<dyn CatalogLinks>,
    ) -> Self {
        Self {
            dcs,
            cache,
            ttl,
            links,
            publisher_versions: Mutex::new(None),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    pub fn ttls(&self) -> CatalogTtls {
        self.ttl
    }

    /// Looks `key` up, fetching on a miss, and turns "not found" into `NotFound(what)`.
    async fn cached<F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        not_found: &'static str,
        fetch: F,
    ) -> Result<Served<Bytes>, CatalogError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = DcsResult<Fetched>>,
    {
        let lookup = self
            .cache
            .get_or_fetch(key, ttl, fetch)
            .await
            .map_err(|e| CatalogError::from_dcs(&e, not_found))?;
        let value = lookup.value.ok_or(CatalogError::NotFound(not_found))?;
        Ok(Served {
            value,
            freshness: lookup.freshness,
        })
    }

    /// `{"items": [...], "total": n}` of the active publishers.
    pub async fn publishers(&self) -> Result<Served<Bytes>, CatalogError> {
        let key = keys::publisher_list();
        self.cached(&key, self.ttl.publishers, "Publisher not found", || async {
            let list = self.dcs.list_publishers().await.map_err(Arc::new)?;
            Ok(Fetched::Found(render_publishers(
                &list,
                self.links.as_ref(),
            )))
        })
        .await
    }

    /// One publisher. Inactive and suspended publishers are not shown to LMS users.
    pub async fn publisher(&self, id: i64) -> Result<Served<Bytes>, CatalogError> {
        self.cached(
            &keys::publisher(id),
            self.ttl.publishers,
            "Publisher not found",
            || async move {
                match self.dcs.get_publisher(id).await {
                    Ok(p) if p.status.is_active() => Ok(Fetched::Found(to_json(
                        &PublisherView::new(&p, self.links.as_ref()),
                    ))),
                    Ok(_) => Ok(Fetched::NotFound),
                    Err(e) => fetch_error(e),
                }
            },
        )
        .await
    }

    /// The publisher's logo, kept in the cache for the logo TTL.
    pub async fn publisher_logo(&self, id: i64) -> Result<Served<Asset>, CatalogError> {
        // Only logos of publishers the LMS shows.
        self.publisher(id).await?;
        let served = self
            .cached(
                &keys::publisher_logo(id),
                self.ttl.logos,
                "Logo not found",
                || async move {
                    let logo = match self.dcs.publisher_logo(id).await {
                        Ok(download) => download,
                        Err(e) => return fetch_error(e),
                    };
                    let content_type = logo
                        .content_type
                        .clone()
                        .unwrap_or_else(|| "application/octet-stream".to_owned());
                    match logo.bytes().await {
                        Ok(bytes) => Ok(Fetched::Found(encode_asset(&content_type, &bytes))),
                        Err(e) => fetch_error(e),
                    }
                },
            )
            .await?;
        Ok(served.map(|b| decode_asset(&b)))
    }

    /// The DCS book list (archived included), as cached JSON.
    async fn book_source(&self) -> Result<Served<Bytes>, CatalogError> {
        self.cached(
            &keys::book_list_source(),
            self.ttl.books,
            "Book not found",
            || async {
                let books = self.dcs.list_books(None).await.map_err(Arc::new)?;
                Ok(Fetched::Found(to_json(&books)))
            },
        )
        .await
    }

    /// `{"items", "total", "skip", "limit"}` for a query. Rendered pages are cached under the
    /// book lists, so a repeated query is a plain cache hit.
    pub async fn books(&self, query: &BookQuery) -> Result<Served<Bytes>, CatalogError> {
        let Some(key) = query.view_key() else {
            let source = self.book_source().await?;
            return Ok(Served {
                value: render_books(&source.value, query, self.links.as_ref())?,
                freshness: source.freshness,
            });
        };
        // A page rendered from a stale source must not be cached as fresh: it is handed back
        // through the error path, and the cache serves its own last copy or this one.
        #[derive(Clone)]
        enum ViewError {
            Catalog(CatalogError),
            StaleSource(Bytes),
        }
        let lookup = self
            .cache
            .get_or_fetch(&key, self.ttl.books, || async {
                let source = self.book_source().await.map_err(ViewError::Catalog)?;
                let page = render_books(&source.value, query, self.links.as_ref())
                    .map_err(ViewError::Catalog)?;
                if source.is_stale() {
                    Err(ViewError::StaleSource(page))
                } else {
                    Ok(Fetched::Found(page))
                }
            })
            .await;
        match lookup {
            Ok(lookup) => Ok(Served {
                value: lookup
                    .value
                    .ok_or(CatalogError::NotFound("Book not found"))?,
                freshness: lookup.freshness,
            }),
            Err(ViewError::StaleSource(page)) => Ok(Served {
                value: page,
                freshness: Freshness::Stale,
            }),
            Err(ViewError::Catalog(e)) => Err(e),
        }
    }

    /// One book (archived books too: an assignment may still point at one).
    pub async fn book(&self, id: i64) -> Result<Served<Bytes>, CatalogError> {
        self.cached(
            &keys::book(id),
            self.ttl.books,
            "Book not found",
            || async move {
                match self.dcs.get_book(id).await {
                    Ok(book) => Ok(Fetched::Found(to_json(&BookView::new(
                        &book,
                        self.links.as_ref(),
                    )))),
                    Err(e) => fetch_error(e),
                }
            },
        )
        .await
    }

    /// The book's cover, streamed from DCS with `If-None-Match` passed through.
    pub async fn book_cover(
        &self,
        id: i64,
        if_none_match: Option<&str>,
    ) -> Result<ConditionalImage, CatalogError> {
        let book = self.book(id).await?;
        let location: BookLocation = serde_json::from_slice(&book.value)
            .map_err(|e| CatalogError::Upstream(UpstreamError::from(&decode_error(e))))?;
        let publisher = location
            .publisher
            .ok_or(CatalogError::NotFound("Book cover not found"))?;
        self.dcs
            .book_cover(&publisher, &location.book_name, if_none_match)
            .await
            .map(ConditionalImage::from)
            .map_err(|e| CatalogError::from_dcs(&e, "Book cover not found"))
    }

    /// Fetches the publisher and book lists into the cache (start-up warm-up).
    pub async fn warm_up(&self) -> Result<(), CatalogError> {
        self.publishers().await?;
        self.books(&BookQuery::default()).await?;
        Ok(())
    }

    /// Re-reads the publisher list from DCS and drops what changed. DCS may never send
    /// publisher webhooks (a fresh DCS database cannot log them), so this runs periodically.
    pub async fn resync_publishers(&self) -> Result<ResyncReport, CatalogError> {
        let list = self
            .dcs
            .list_publishers()
            .await
            .map_err(|e| CatalogError::from_dcs(&e, "Publisher not found"))?;
        let current: HashMap<i64, DateTime<Utc>> =
            list.iter().map(|p| (p.id, p.updated_at)).collect();
        let previous = self
            .publisher_versions
            .lock()
            .expect("publisher versions lock")
            .replace(current.clone());
        let mut report = ResyncReport {
            publishers: list.len(),
            changed: 0,
        };
        let mut plan = Vec::new();
        match previous {
            // First successful re-sync (DCS may have been down at start): nothing says what
            // changed before it, so every publisher entry is dropped once.
            None => plan.push(Invalidation::Prefix(keys::PUBLISHERS.to_owned())),
            Some(previous) => {
                let changed: Vec<i64> = previous
                    .iter()
                    .filter(|(id, at)| current.get(id) != Some(at))
                    .map(|(id, _)| *id)
                    .chain(
                        current
                            .keys()
                            .filter(|id| !previous.contains_key(id))
                            .copied(),
                    )
                    .collect();
                report.changed = changed.len();
                if !changed.is_empty() {
                    plan.extend(
                        changed
                            .iter()
                            .map(|id| Invalidation::Prefix(keys::publisher(*id))),
                    );
                    // Books carry publisher names; a rename or removal changes them.
                    plan.push(Invalidation::Prefix(keys::BOOKS.to_owned()));
                }
                plan.push(Invalidation::Prefix(keys::PUBLISHER_LISTS.to_owned()));
            }
        }
        if let Err(e) = self.invalidate(&plan).await {
            tracing::warn!(error = %e, "publisher re-sync: invalidation incomplete");
        }
        // The list read here is not stored: a webhook's invalidation may have run since it was
        // read, and storing it now would bring back what that invalidation removed. The next
        // reader fetches it (one DCS call per re-sync).
        Ok(report)
    }

    /// Applies an invalidation plan; returns how many entries went. The local tier is always
    /// updated; an error means other instances may not have heard of it.
    pub async fn invalidate(&self, plan: &[Invalidation]) -> Result<u64, CacheError> {
        let mut removed = 0;
        let mut first_error = None;
        for step in plan {
            let Invalidation::Prefix(prefix) = step;
            match self.cache.invalidate_prefix(prefix).await {
                Ok(n) => removed += n,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

#[async_trait]
impl CacheInvalidator for Catalog {
    async fn invalidate(&self, plan: &[Invalidation]) -> Result<u64, CacheError> {
        Catalog::invalidate(self, plan).await
    }
}

fn decode_error(e: serde_json::Error) -> DcsError {
    DcsError::Decode {
        message: e.to_string(),
    }
}

/// A publisher as the LMS shows it: the logo URL points at the LMS. This is the one wire shape
/// of a publisher; the OpenAPI schema is derived from it (feature `openapi`).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Publisher))]
pub struct PublisherView<'a> {
    /// DCS publisher id.
    pub id: i64,
    /// The publisher's name (its storage folder in DCS).
    pub name: &'a str,
    /// The name to show.
    pub display_name: Option<&'a str>,
    /// Free text.
    pub description: Option<&'a str>,
    /// Contact address.
    pub contact_email: Option<&'a str>,
    /// `active` (others are hidden).
    pub status: &'a str,
    /// Where the LMS serves the logo, e.g. `/api/v1/publishers/{id}/logo`.
    pub logo_url: String,
    /// Creation time (ISO 8601).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: DateTime<Utc>,
    /// Last update (ISO 8601).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub updated_at: DateTime<Utc>,
}

impl<'a> PublisherView<'a> {
    /// The view of `p`, with links from `links`.
    pub fn new(p: &'a Publisher, links: &dyn CatalogLinks) -> Self {
        Self {
            id: p.id,
            name: &p.name,
            display_name: p.display_name.as_deref(),
            description: p.description.as_deref(),
            contact_email: p.contact_email.as_deref(),
            status: p.status.as_str(),
            logo_url: links.publisher_logo(p.id),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A book as the LMS shows it: the cover URL points at the LMS. This is the one wire shape of
/// a book; the OpenAPI schema is derived from it (feature `openapi`).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Book))]
pub struct BookView<'a> {
    /// DCS book id.
    pub id: i64,
    /// DCS publisher id.
    pub publisher_id: i64,
    /// The publisher's name.
    pub publisher: Option<&'a str>,
    /// The book's folder name in DCS.
    pub book_name: &'a str,
    /// The title to show.
    pub book_title: Option<&'a str>,
    /// Where the LMS serves the cover, e.g. `/api/v1/books/{id}/cover`.
    pub cover_url: String,
    /// Number of activities.
    pub activity_count: Option<i64>,
    /// Activities per type, e.g. `{"dragdroppicture": 1}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub activity_details: Option<&'a Map<String, Value>>,
    /// Size of the book's files in bytes.
    pub total_size: Option<i64>,
    /// Language code.
    pub language: &'a str,
    /// Subject.
    pub category: Option<&'a str>,
    /// `draft`, `published` or `archived`.
    pub status: &'a str,
    /// Creation time (ISO 8601).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: DateTime<Utc>,
    /// Last update (ISO 8601).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub updated_at: DateTime<Utc>,
}

impl<'a> BookView<'a> {
    /// The view of `b`, with links from `links`.
    pub fn new(b: &'a Book, links: &dyn CatalogLinks) -> Self {
        Self {
            id: b.id,
            publisher_id: b.publisher_id,
            publisher: b.publisher.as_deref(),
            book_name: &b.book_name,
            book_title: b.book_title.as_deref(),
            cover_url: links.book_cover(b.id),
            activity_count: b.activity_count,
            activity_details: b.activity_details.as_ref(),
            total_size: b.total_size,
            language: &b.language,
            category: b.category.as_deref(),
            status: b.status.as_str(),
            created_at: b.created_at,
            updated_at: b.updated_at,
        }
    }
}

/// What a cover lookup needs from a cached book view.
#[derive(Deserialize)]
struct BookLocation {
    publisher: Option<String>,
    book_name: String,
}

/// `GET /publishers`: the active publishers.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublisherPage<'a> {
    /// The publishers.
    pub items: Vec<PublisherView<'a>>,
    /// How many there are.
    pub total: usize,
}

/// `GET /books`: one page of the books matching a query.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BookPage<'a> {
    /// The books of this page.
    pub items: Vec<BookView<'a>>,
    /// Books matching the filters (before paging).
    pub total: usize,
    /// Books skipped.
    pub skip: u64,
    /// Page size.
    pub limit: u64,
}

fn render_publishers(list: &[Publisher], links: &dyn CatalogLinks) -> Bytes {
    let items: Vec<_> = list
        .iter()
        .filter(|p| p.status.is_active())
        .map(|p| PublisherView::new(p, links))
        .collect();
    to_json(&PublisherPage {
        total: items.len(),
        items,
    })
}

fn render_books(
    source: &[u8],
    query: &BookQuery,
    links: &dyn CatalogLinks,
) -> Result<Bytes, CatalogError> {
    let books: Vec<Book> = serde_json::from_slice(source)
        .map_err(|e| CatalogError::Upstream(UpstreamError::from(&decode_error(e))))?;
    let matching: Vec<&Book> = books.iter().filter(|b| query.matches(b)).collect();
    let skip = usize::try_from(query.skip).unwrap_or(usize::MAX);
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    Ok(to_json(&BookPage {
        total: matching.len(),
        items: matching
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(|b| BookView::new(b, links))
            .collect(),
        skip: query.skip,
        limit: query.limit,
    }))
}

/// Logos are cached as `content type \n etag \n bytes`.
fn encode_asset(content_type: &str, bytes: &[u8]) -> Bytes {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let content_type: String = content_type.chars().filter(|c| *c != '\n').collect();
    let mut out = Vec::with_capacity(content_type.len() + etag.len() + 2 + bytes.len());
    out.extend_from_slice(content_type.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(etag.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(bytes);
    Bytes::from(out)
}

fn decode_asset(stored: &Bytes) -> Asset {
    let mut parts = stored.splitn(3, |b| *b == b'\n');
    let content_type = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let etag = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let header_len = content_type.len() + etag.len() + 2;
    Asset {
        content_type,
        etag,
        bytes: stored.slice(header_len.min(stored.len())..),
    }
}
