//! Everything the mock knows: content, subscriptions, credentials, faults and counters.
//!
//! One `std::sync::Mutex` guards it; it is never held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::content::{self, PreparedBook, StoredObject};
use crate::faults::{FaultList, RequestLog};
use crate::json;
use crate::model::{
    Book, BookStatus, BookUpdate, ContentError, DeliveryLog, NewPublisher, Publisher,
    PublisherUpdate,
};
use crate::webhooks::Event;

/// A webhook subscription (`WebhookSubscriptionRead`; DCS returns the secret in plaintext).
#[derive(Clone, serde::Serialize)]
pub(crate) struct Subscription {
    pub(crate) url: String,
    pub(crate) secret: String,
    pub(crate) description: Option<String>,
    pub(crate) is_active: bool,
    pub(crate) event_types: Option<String>,
    pub(crate) id: i64,
    #[serde(serialize_with = "json::timestamp::serialize")]
    pub(crate) created_at: DateTime<Utc>,
    #[serde(serialize_with = "json::timestamp::serialize")]
    pub(crate) updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("is_active", &self.is_active)
            .field("event_types", &self.event_types)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// DCS: a non-empty `event_types` is a comma-separated allow list.
    pub(crate) fn wants(&self, event: &str) -> bool {
        match self.event_types.as_deref() {
            Some(types) if !types.is_empty() => types.split(',').any(|t| t.trim() == event),
            _ => true,
        }
    }
}

/// An API key; `key` is the full secret value.
#[derive(Clone)]
pub(crate) struct ApiKey {
    pub(crate) id: i64,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) last_used_at: Option<DateTime<Utc>>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub(crate) is_active: bool,
    pub(crate) rate_limit: i64,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("key_prefix", &self.key_prefix())
            .field("name", &self.name)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

impl ApiKey {
    /// The part DCS shows after creation: the first 16 characters.
    pub(crate) fn key_prefix(&self) -> String {
        self.key.chars().take(16).collect()
    }

    pub(crate) fn usable(&self, now: DateTime<Utc>) -> bool {
        self.is_active && self.expires_at.is_none_or(|at| at > now)
    }
}

pub(crate) struct State {
    pub(crate) publishers: BTreeMap<i64, Publisher>,
    /// `Book::publisher` is refreshed from `publishers` on every read.
    pub(crate) books: BTreeMap<i64, Book>,
    /// The `publishers` bucket.
    pub(crate) objects: BTreeMap<String, Arc<StoredObject>>,
    pub(crate) subscriptions: BTreeMap<i64, Subscription>,
    pub(crate) delivery_logs: BTreeMap<i64, DeliveryLog>,
    pub(crate) api_keys: Vec<ApiKey>,
    pub(crate) token_ttl: Duration,
    /// Tokens handed out since the last `expire_tokens`, with their `exp`.
    pub(crate) issued_tokens: HashMap<String, i64>,
    /// Tokens `expire_tokens` revoked, with their `exp` (dropped once expired anyway).
    pub(crate) revoked_tokens: HashMap<String, i64>,
    pub(crate) faults: FaultList,
    pub(crate) requests: RequestLog,
    pub(crate) login_count: u64,
    next_publisher_id: i64,
    next_book_id: i64,
    next_subscription_id: i64,
    next_log_id: i64,
    next_api_key_id: i64,
}

impl State {
    pub(crate) fn new(token_ttl: Duration) -> Self {
        State {
            publishers: BTreeMap::new(),
            books: BTreeMap::new(),
            objects: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            delivery_logs: BTreeMap::new(),
            api_keys: Vec::new(),
            token_ttl,
            issued_tokens: HashMap::new(),
            revoked_tokens: HashMap::new(),
            faults: FaultList::default(),
            requests: RequestLog::default(),
            login_count: 0,
            next_publisher_id: 1,
            next_book_id: 1,
            next_subscription_id: 1,
            next_log_id: 1,
            next_api_key_id: 1,
        }
    }

    /// Loads the books directory: publishers get ids in name order, books in folder order.
    pub(crate) fn seed(&mut self, books: Vec<PreparedBook>) -> Result<(), ContentError> {
        let mut names: Vec<&str> = books.iter().map(|b| b.publisher.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            self.insert_publisher(NewPublisher::new(name))?;
        }
        for book in books {
            self.insert_book(book)?;
        }
        Ok(())
    }

    // ---- publishers -------------------------------------------------------------------

    pub(crate) fn publisher(&self, id: i64) -> Option<&Publisher> {
        self.publishers.get(&id)
    }

    pub(crate) fn publisher_by_name(&self, name: &str) -> Option<&Publisher> {
        self.publishers.values().find(|p| p.name == name)
    }

    fn insert_publisher(&mut self, new: NewPublisher) -> Result<Publisher, ContentError> {
        if self.publisher_by_name(&new.name).is_some() {
            return Err(ContentError::DuplicatePublisher(new.name));
        }
        let now = json::now();
        let publisher = Publisher {
            name: new.name,
            display_name: new.display_name,
            description: new.description,
            logo_url: new.logo_url,
            contact_email: new.contact_email,
            status: new.status,
            id: self.next_publisher_id,
            created_at: now,
            updated_at: now,
        };
        self.next_publisher_id += 1;
        self.publishers.insert(publisher.id, publisher.clone());
        Ok(publisher)
    }

    fn publisher_id_for_name(&mut self, name: &str) -> Result<i64, ContentError> {
        match self.publisher_by_name(name) {
            Some(publisher) => Ok(publisher.id),
            None => Ok(self.insert_publisher(NewPublisher::new(name))?.id),
        }
    }

    pub(crate) fn create_publisher(
        &mut self,
        new: NewPublisher,
    ) -> Result<(Publisher, Option<Event>), ContentError> {
        let publisher = self.insert_publisher(new)?;
        let event = Event::publisher_created(&publisher);
        Ok((publisher, Some(event)))
    }

    /// Applies `PublisherUpdate`-style changes (`None` = unset) and bumps `updated_at`.
    pub(crate) fn update_publisher(
        &mut self,
        id: i64,
        changes: PublisherChanges,
    ) -> Result<(Publisher, Option<Event>), ContentError> {
        if let Some(name) = &changes.name
            && self
                .publishers
                .values()
                .any(|p| p.id != id && &p.name == name)
        {
            return Err(ContentError::DuplicatePublisher(name.clone()));
        }
        let publisher = self
            .publishers
            .get_mut(&id)
            .ok_or(ContentError::PublisherNotFound)?;
        if let Some(name) = changes.name {
            publisher.name = name;
        }
        if let Some(value) = changes.display_name {
            publisher.display_name = value;
        }
        if let Some(value) = changes.description {
            publisher.description = value;
        }
        if let Some(value) = changes.logo_url {
            publisher.logo_url = value;
        }
        if let Some(value) = changes.contact_email {
            publisher.contact_email = value;
        }
        if let Some(status) = changes.status {
            publisher.status = status;
        }
        publisher.updated_at = json::now();
        let publisher = publisher.clone();
        let event = Event::publisher_updated(&publisher);
        Ok((publisher, Some(event)))
    }

    pub(crate) fn delete_publisher(
        &mut self,
        id: i64,
    ) -> Result<(Publisher, Option<Event>), ContentError> {
        let publisher = self
            .publishers
            .get_mut(&id)
            .ok_or(ContentError::PublisherNotFound)?;
        publisher.status = "inactive".to_owned();
        publisher.updated_at = json::now();
        let publisher = publisher.clone();
        let event = Event::publisher_deleted(&publisher);
        Ok((publisher, Some(event)))
    }

    pub(crate) fn restore_publisher(
        &mut self,
        id: i64,
    ) -> Result<(Publisher, Option<Event>), ContentError> {
        let publisher = self
            .publishers
            .get_mut(&id)
            .ok_or(ContentError::PublisherNotFound)?;
        if publisher.status != "inactive" {
            return Err(ContentError::PublisherNotInTrash);
        }
        publisher.status = "active".to_owned();
        publisher.updated_at = json::now();
        let publisher = publisher.clone();
        // DCS announces a restore as `publisher.created`.
        let event = Event::publisher_created(&publisher);
        Ok((publisher, Some(event)))
    }

    /// The object key of the publisher's logo: the first object under `{name}/assets/logos/`.
    pub(crate) fn logo_key(&self, publisher: &Publisher) -> Option<String> {
        let prefix = format!("{}/assets/logos/", publisher.name);
        self.objects
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .find(|(key, _)| !key[prefix.len()..].contains('/'))
            .map(|(key, _)| key.clone())
    }

    // ---- books ------------------------------------------------------------------------

    /// A book with its publisher name resolved.
    pub(crate) fn book(&self, id: i64) -> Option<Book> {
        self.books.get(&id).map(|book| self.resolved(book))
    }

    fn resolved(&self, book: &Book) -> Book {
        let mut book = book.clone();
        if let Some(publisher) = self.publishers.get(&book.publisher_id) {
            book.publisher.clone_from(&publisher.name);
        }
        book
    }

    pub(crate) fn all_books(&self) -> Vec<Book> {
        self.books.values().map(|b| self.resolved(b)).collect()
    }

    pub(crate) fn book_by_names(&self, publisher: &str, book_name: &str) -> Option<Book> {
        self.books
            .values()
            .map(|b| self.resolved(b))
            .find(|b| b.publisher == publisher && b.book_name == book_name)
    }

    fn insert_book(&mut self, prepared: PreparedBook) -> Result<Book, ContentError> {
        let prefix = content::book_prefix(&prepared.publisher, &prepared.book_name);
        let has_objects = self
            .objects
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(key, _)| key.starts_with(&prefix));
        if has_objects
            || self
                .book_by_names(&prepared.publisher, &prepared.book_name)
                .is_some()
        {
            return Err(ContentError::BookExists {
                publisher: prepared.publisher,
                book_name: prepared.book_name,
            });
        }
        // Only once the book is known to be new, so a refused book leaves nothing behind.
        let publisher_id = self.publisher_id_for_name(&prepared.publisher)?;
        for (relative, object) in &prepared.files {
            self.objects
                .insert(format!("{prefix}{relative}"), Arc::clone(object));
        }
        if let Some((file_name, object)) = &prepared.logo {
            let key = format!("{}/assets/logos/{file_name}", prepared.publisher);
            self.objects
                .entry(key)
                .or_insert_with(|| Arc::clone(object));
        }
        let now = json::now();
        let book = Book {
            publisher: prepared.publisher,
            book_name: prepared.book_name,
            book_title: prepared.book_title,
            book_cover: prepared.book_cover,
            activity_count: prepared.activity_count,
            activity_details: prepared.activity_details,
            total_size: prepared.total_size,
            language: prepared.language,
            category: prepared.category,
            status: prepared.status,
            id: self.next_book_id,
            publisher_id,
            created_at: now,
            updated_at: now,
        };
        self.next_book_id += 1;
        self.books.insert(book.id, book.clone());
        Ok(book)
    }

    pub(crate) fn create_book(
        &mut self,
        prepared: PreparedBook,
    ) -> Result<(Book, Option<Event>), ContentError> {
        let book = self.insert_book(prepared)?;
        let book = self.resolved(&book);
        let event = Event::book(crate::webhooks::EventKind::BookCreated, &book);
        Ok((book, Some(event)))
    }

    pub(crate) fn update_book(
        &mut self,
        id: i64,
        changes: BookChanges,
    ) -> Result<(Book, Option<Event>), ContentError> {
        let publisher_id = match (&changes.publisher, changes.publisher_id) {
            (Some(Some(name)), _) => Some(self.publisher_id_for_name(name)?),
            (_, Some(Some(publisher_id))) if self.publishers.contains_key(&publisher_id) => {
                Some(publisher_id)
            }
            (_, Some(Some(_))) => return Err(ContentError::PublisherNotFound),
            _ => None,
        };
        let book = self.books.get_mut(&id).ok_or(ContentError::BookNotFound)?;
        if let Some(publisher_id) = publisher_id {
            book.publisher_id = publisher_id;
        }
        if let Some(value) = changes.book_name {
            book.book_name = value;
        }
        if let Some(value) = changes.book_title {
            book.book_title = value;
        }
        if let Some(value) = changes.book_cover {
            book.book_cover = value;
        }
        if let Some(value) = changes.activity_count {
            book.activity_count = value;
        }
        if let Some(value) = changes.activity_details {
            book.activity_details = value;
        }
        if let Some(value) = changes.total_size {
            book.total_size = value;
        }
        if let Some(value) = changes.language {
            book.language = value;
        }
        if let Some(value) = changes.category {
            book.category = value;
        }
        if let Some(status) = changes.status {
            book.status = status;
        }
        book.updated_at = json::now();
        let book = self.resolved(&self.books[&id]);
        let event = Event::book(crate::webhooks::EventKind::BookUpdated, &book);
        Ok((book, Some(event)))
    }

    /// Replaces (or adds) one file of a live book, as a re-upload of the book does
    /// (`POST /books/{id}/upload`), and bumps `updated_at`.
    pub(crate) fn replace_book_file(
        &mut self,
        id: i64,
        path: &str,
        bytes: bytes::Bytes,
    ) -> Result<(Book, Option<Event>), ContentError> {
        let book = self.book(id).ok_or(ContentError::BookNotFound)?;
        if book.status == BookStatus::Archived {
            return Err(ContentError::BookNotFound);
        }
        let relative = content::normalize_relative_path(path).map_err(ContentError::InvalidBook)?;
        let key = format!(
            "{}{relative}",
            content::book_prefix(&book.publisher, &book.book_name)
        );
        let object = Arc::new(StoredObject::from_bytes(bytes));
        let new_size = object.size;
        let old_size = self.objects.insert(key, object).map_or(0, |old| old.size);
        if let Some(stored) = self.books.get_mut(&id) {
            let change = i64::try_from(new_size).unwrap_or(i64::MAX)
                - i64::try_from(old_size).unwrap_or(i64::MAX);
            stored.total_size = stored.total_size.map(|total| total.saturating_add(change));
            stored.updated_at = json::now();
        }
        let book = self.resolved(&self.books[&id]);
        let event = Event::book(crate::webhooks::EventKind::BookUpdated, &book);
        Ok((book, Some(event)))
    }

    /// Archives the book and removes its objects (DCS moves them to the trash bucket).
    /// An already archived book is returned unchanged, without an event.
    pub(crate) fn delete_book(&mut self, id: i64) -> Result<(Book, Option<Event>), ContentError> {
        let book = self.book(id).ok_or(ContentError::BookNotFound)?;
        if book.status == BookStatus::Archived {
            return Ok((book, None));
        }
        let prefix = content::book_prefix(&book.publisher, &book.book_name);
        let keys: Vec<String> = self
            .objects
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            self.objects.remove(&key);
        }
        if let Some(stored) = self.books.get_mut(&id) {
            stored.status = BookStatus::Archived;
            stored.updated_at = json::now();
        }
        let book = self.resolved(&self.books[&id]);
        let event = Event::book(crate::webhooks::EventKind::BookDeleted, &book);
        Ok((book, Some(event)))
    }

    // ---- webhooks ---------------------------------------------------------------------

    pub(crate) fn add_subscription(&mut self, new: NewSubscription) -> Subscription {
        let now = json::now();
        let subscription = Subscription {
            url: new.url,
            secret: new.secret,
            description: new.description,
            is_active: new.is_active,
            event_types: new.event_types,
            id: self.next_subscription_id,
            created_at: now,
            updated_at: now,
        };
        self.next_subscription_id += 1;
        self.subscriptions
            .insert(subscription.id, subscription.clone());
        subscription
    }

    pub(crate) fn new_delivery_log(
        &mut self,
        subscription_id: i64,
        event_type: &str,
        payload: &str,
    ) -> i64 {
        let id = self.next_log_id;
        self.next_log_id += 1;
        self.delivery_logs.insert(
            id,
            DeliveryLog {
                id,
                subscription_id,
                event_type: event_type.to_owned(),
                payload: payload.to_owned(),
                status: crate::model::DeliveryStatus::Pending,
                response_status: None,
                response_body: None,
                error_message: None,
                attempt_count: 0,
                created_at: json::now(),
                delivered_at: None,
            },
        );
        id
    }

    // ---- API keys ---------------------------------------------------------------------

    pub(crate) fn add_api_key(
        &mut self,
        key: String,
        name: String,
        expires_at: Option<DateTime<Utc>>,
        rate_limit: i64,
    ) -> ApiKey {
        let api_key = ApiKey {
            id: self.next_api_key_id,
            key,
            name,
            created_at: json::now(),
            last_used_at: None,
            expires_at,
            is_active: true,
            rate_limit,
        };
        self.next_api_key_id += 1;
        self.api_keys.push(api_key.clone());
        api_key
    }
}

/// `PublisherUpdate` with pydantic's `exclude_unset`: outer `None` = leave as is.
#[derive(Debug, Default)]
pub(crate) struct PublisherChanges {
    pub(crate) name: Option<String>,
    pub(crate) display_name: Option<Option<String>>,
    pub(crate) description: Option<Option<String>>,
    pub(crate) logo_url: Option<Option<String>>,
    pub(crate) contact_email: Option<Option<String>>,
    pub(crate) status: Option<String>,
}

impl From<PublisherUpdate> for PublisherChanges {
    fn from(update: PublisherUpdate) -> Self {
        PublisherChanges {
            name: update.name,
            display_name: update.display_name.map(Some),
            description: update.description.map(Some),
            logo_url: update.logo_url.map(Some),
            contact_email: update.contact_email.map(Some),
            status: update.status,
        }
    }
}

/// `BookUpdate` with pydantic's `exclude_unset`: outer `None` = leave as is.
#[derive(Debug, Default)]
pub(crate) struct BookChanges {
    pub(crate) publisher: Option<Option<String>>,
    pub(crate) publisher_id: Option<Option<i64>>,
    pub(crate) book_name: Option<String>,
    pub(crate) book_title: Option<Option<String>>,
    pub(crate) book_cover: Option<Option<String>>,
    pub(crate) activity_count: Option<Option<i64>>,
    pub(crate) activity_details: Option<Option<serde_json::Value>>,
    pub(crate) total_size: Option<Option<i64>>,
    pub(crate) language: Option<String>,
    pub(crate) category: Option<Option<String>>,
    pub(crate) status: Option<BookStatus>,
}

impl From<BookUpdate> for BookChanges {
    fn from(update: BookUpdate) -> Self {
        BookChanges {
            book_title: update.book_title.map(Some),
            book_cover: update.book_cover.map(Some),
            language: update.language,
            category: update.category.map(Some),
            status: update.status,
            ..BookChanges::default()
        }
    }
}

pub(crate) struct NewSubscription {
    pub(crate) url: String,
    pub(crate) secret: String,
    pub(crate) description: Option<String>,
    pub(crate) is_active: bool,
    pub(crate) event_types: Option<String>,
}
