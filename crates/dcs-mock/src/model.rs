//! The records the mock keeps, in the shapes DCS returns them.

use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::json::{JsonbOrdered, timestamp};

/// A book's lifecycle state, as DCS's `BookStatusEnum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookStatus {
    /// Created through `POST /books/` without content.
    Draft,
    /// Uploaded content (the default for books read from the books directory).
    Published,
    /// Soft-deleted through `DELETE /books/{id}`; still listed by `GET /books/`.
    Archived,
}

impl BookStatus {
    /// The wire name (`draft`, `published`, `archived`).
    pub fn as_str(self) -> &'static str {
        match self {
            BookStatus::Draft => "draft",
            BookStatus::Published => "published",
            BookStatus::Archived => "archived",
        }
    }

    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value {
            "draft" => Some(BookStatus::Draft),
            "published" => Some(BookStatus::Published),
            "archived" => Some(BookStatus::Archived),
            _ => None,
        }
    }
}

/// A book as `GET /books/{id}` returns it (`BookRead`); it serializes with DCS's key order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Book {
    /// The publisher's name (DCS resolves it from `publisher_id`).
    pub publisher: String,
    pub book_name: String,
    pub book_title: Option<String>,
    /// The cover's file name under `images/`, e.g. `book_cover.png`.
    pub book_cover: Option<String>,
    pub activity_count: Option<i64>,
    /// Activity type -> count, e.g. `{"dragdroppicture": 1}`.
    #[serde(serialize_with = "serialize_jsonb")]
    pub activity_details: Option<serde_json::Value>,
    /// The sum of the book's file sizes, uncompressed.
    pub total_size: Option<i64>,
    pub language: String,
    pub category: Option<String>,
    pub status: BookStatus,
    pub id: i64,
    pub publisher_id: i64,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

fn serialize_jsonb<S: serde::Serializer>(
    value: &Option<serde_json::Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => JsonbOrdered(value).serialize(serializer),
        None => serializer.serialize_none(),
    }
}

/// A publisher as `GET /publishers/{id}` returns it (`PublisherRead`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Publisher {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// The raw column: usually `null` (the list endpoint and webhooks use `/publishers/{id}/logo`).
    pub logo_url: Option<String>,
    pub contact_email: Option<String>,
    /// `active`, `inactive` (soft-deleted) or `suspended`.
    pub status: String,
    pub id: i64,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// A new book for [`MockDcs::add_book`](crate::MockDcs::add_book).
///
/// [`NewBook::new`] makes a metadata record; add files with [`NewBook::file`] (a root
/// `config.json` fills the activity counts, as DCS's upload does) or read a whole book folder
/// with [`NewBook::from_dir`].
#[derive(Clone, Debug)]
pub struct NewBook {
    /// Publisher name; a publisher of that name is created when missing (without a webhook,
    /// as DCS's upload does).
    pub publisher: String,
    pub book_name: String,
    pub book_title: Option<String>,
    pub book_cover: Option<String>,
    pub language: String,
    pub category: Option<String>,
    pub status: BookStatus,
    /// Files relative to the book root, e.g. `("images/book_cover.png", bytes)`.
    pub files: Vec<(String, Bytes)>,
}

impl NewBook {
    /// A published book with no files, language `en`.
    pub fn new(publisher: impl Into<String>, book_name: impl Into<String>) -> Self {
        NewBook {
            publisher: publisher.into(),
            book_name: book_name.into(),
            book_title: None,
            book_cover: None,
            language: "en".to_owned(),
            category: None,
            status: BookStatus::Published,
            files: Vec::new(),
        }
    }

    /// Reads a book folder the way DCS reads an uploaded zip: the folder name is the book name,
    /// and publisher, title, language, category, cover and status come from its `config.json`.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self, ContentError> {
        crate::content::new_book_from_dir(&dir.into())
    }

    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.book_title = Some(title.into());
        self
    }

    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }

    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = language.into();
        self
    }

    pub fn status(mut self, status: BookStatus) -> Self {
        self.status = status;
        self
    }

    pub fn cover(mut self, file_name: impl Into<String>) -> Self {
        self.book_cover = Some(file_name.into());
        self
    }

    /// Adds a file at `path` (relative to the book root, `/`-separated).
    pub fn file(mut self, path: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        self.files.push((path.into(), bytes.into()));
        self
    }
}

/// Changes for [`MockDcs::update_book`](crate::MockDcs::update_book); `None` leaves a field as is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BookUpdate {
    pub book_title: Option<String>,
    pub book_cover: Option<String>,
    pub language: Option<String>,
    pub category: Option<String>,
    pub status: Option<BookStatus>,
}

/// A new publisher for [`MockDcs::add_publisher`](crate::MockDcs::add_publisher).
#[derive(Clone, Debug, PartialEq)]
pub struct NewPublisher {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub contact_email: Option<String>,
    pub status: String,
}

impl NewPublisher {
    /// An active publisher with only a name.
    pub fn new(name: impl Into<String>) -> Self {
        NewPublisher {
            name: name.into(),
            display_name: None,
            description: None,
            logo_url: None,
            contact_email: None,
            status: "active".to_owned(),
        }
    }

    pub fn display_name(mut self, value: impl Into<String>) -> Self {
        self.display_name = Some(value.into());
        self
    }

    pub fn description(mut self, value: impl Into<String>) -> Self {
        self.description = Some(value.into());
        self
    }

    pub fn contact_email(mut self, value: impl Into<String>) -> Self {
        self.contact_email = Some(value.into());
        self
    }
}

/// Changes for [`MockDcs::update_publisher`](crate::MockDcs::update_publisher); `None` leaves a
/// field as is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PublisherUpdate {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub contact_email: Option<String>,
    pub status: Option<String>,
}

/// Why a content change was refused. The messages are DCS's `detail` texts where DCS has one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContentError {
    #[error("Book not found")]
    BookNotFound,
    #[error("Publisher not found")]
    PublisherNotFound,
    #[error("Publisher with name '{0}' already exists")]
    DuplicatePublisher(String),
    #[error(
        "Book '{book_name}' already exists for publisher '{publisher}'. Use override=true to backup and replace."
    )]
    BookExists {
        publisher: String,
        book_name: String,
    },
    #[error("Publisher is not in trash")]
    PublisherNotInTrash,
    /// A book folder or file set that DCS's upload would refuse.
    #[error("{0}")]
    InvalidBook(String),
}

/// Outcome of one webhook delivery, as DCS's `WebhookDeliveryStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Success,
    Failed,
}

/// One row of a subscription's delivery log (`GET /webhooks/{id}/logs`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryLog {
    pub id: i64,
    pub subscription_id: i64,
    pub event_type: String,
    /// The exact body that was sent (and signed).
    pub payload: String,
    pub status: DeliveryStatus,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
    pub attempt_count: u32,
    #[serde(serialize_with = "timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp::option")]
    pub delivered_at: Option<DateTime<Utc>>,
}
