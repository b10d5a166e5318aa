#![doc = include_str!("../README.md")]

mod app;
mod auth;
mod content;
mod fastapi;
mod faults;
mod json;
mod model;
mod routes;
mod server;
mod state;
mod webhooks;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::faults::Fault;
pub use crate::model::{
    Book, BookStatus, BookUpdate, ContentError, DeliveryLog, DeliveryStatus, NewBook, NewPublisher,
    Publisher, PublisherUpdate,
};

use crate::app::{App, Settings};
use crate::faults::RoutePattern;
use crate::state::{BookChanges, PublisherChanges, State};

/// The repository's sample content, `testdata/books` (holds the book `FLOWDEMO`).
pub fn default_books_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/books");
    dir.canonicalize().unwrap_or(dir)
}

/// How to start a [`MockDcs`].
#[derive(Clone)]
pub struct MockConfig {
    /// One sub-directory per book (default: [`default_books_dir`]).
    pub books_dir: PathBuf,
    /// Listen address (default `127.0.0.1:0`, a free port).
    pub bind: SocketAddr,
    /// The admin login (default `admin@admin.com`); compared trimmed and lowercased.
    pub admin_email: String,
    /// The admin password (default `admin`).
    pub admin_password: String,
    /// Lifetime of tokens from `POST /auth/login` (default 30 minutes, as DCS).
    pub token_ttl: Duration,
    /// HS256 secret for tokens (default: random per start).
    pub jwt_secret: String,
    /// Pauses between webhook attempts; attempts = pauses + 1 (default 1 s and 2 s, as DCS).
    pub webhook_retry_delays: Vec<Duration>,
    /// Timeout of one webhook attempt (default 30 s, as DCS).
    pub webhook_timeout: Duration,
    /// Base of presigned URLs (default: the listening URL).
    pub public_base_url: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            books_dir: default_books_dir(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_email: "admin@admin.com".to_owned(),
            admin_password: "admin".to_owned(),
            token_ttl: Duration::from_secs(30 * 60),
            jwt_secret: auth::random_token(48),
            webhook_retry_delays: webhooks::default_retry_delays(),
            webhook_timeout: Duration::from_secs(30),
            public_base_url: None,
        }
    }
}

impl std::fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockConfig")
            .field("books_dir", &self.books_dir)
            .field("bind", &self.bind)
            .field("admin_email", &self.admin_email)
            .field("admin_password", &"<redacted>")
            .field("token_ttl", &self.token_ttl)
            .field("jwt_secret", &"<redacted>")
            .field("webhook_retry_delays", &self.webhook_retry_delays)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("public_base_url", &self.public_base_url)
            .finish()
    }
}

/// A running fake DCS. Dropping it stops the server.
pub struct MockDcs {
    app: App,
    base_url: String,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MockDcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockDcs")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Makes every token issued so far answer `401 Invalid token`.
pub(crate) fn expire_all_tokens(app: &App) {
    let mut state = app.lock();
    let issued: Vec<(String, i64)> = state.issued_tokens.drain().collect();
    state.revoked_tokens.extend(issued);
}

fn invalid_data(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

impl MockDcs {
    /// Loads the books directory and starts serving. Must be called inside a Tokio runtime;
    /// the server runs on that runtime.
    pub async fn start(config: MockConfig) -> io::Result<MockDcs> {
        let books_dir = config.books_dir.clone();
        let books = tokio::task::spawn_blocking(move || content::load_books_dir(&books_dir))
            .await
            .map_err(io::Error::other)?
            .map_err(|e| {
                let hint = if e.kind() == io::ErrorKind::NotFound {
                    " (set MockConfig::books_dir, or pass --books <dir> to the binary)"
                } else {
                    ""
                };
                io::Error::new(e.kind(), format!("{e}{hint}"))
            })?;
        let mut state = State::new(config.token_ttl);
        state.seed(books).map_err(invalid_data)?;

        let listener = TcpListener::bind(config.bind).await?;
        let local_addr = listener.local_addr()?;
        let base_url = format!("http://{local_addr}");
        let public_base_url = config
            .public_base_url
            .clone()
            .unwrap_or_else(|| base_url.clone())
            .trim_end_matches('/')
            .to_owned();
        let settings = Settings {
            admin_email: config.admin_email.trim().to_lowercase(),
            admin_password: config.admin_password,
            jwt_secret: config.jwt_secret,
            retry_delays: config.webhook_retry_delays,
            webhook_timeout: config.webhook_timeout,
            public_base_url,
        };
        let app = App::new(settings, state, tokio::runtime::Handle::current());
        let router = routes::router(app.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(server::serve(listener, app.clone(), router, shutdown_rx));
        tracing::info!(%base_url, books_dir = %config.books_dir.display(), "dcs-mock listening");
        Ok(MockDcs {
            app,
            base_url,
            local_addr,
            shutdown,
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Injects `fault` on requests matching `route`: `"GET /books/"` (method and path prefix),
    /// `"* /storage/"` (any method) or `"/publishers/"`. The prefix is compared with the raw
    /// and the percent-decoded path. With `times = Some(n)` the fault applies to the next `n`
    /// matching requests, with `None` until [`clear_faults`](Self::clear_faults).
    ///
    /// # Panics
    ///
    /// On a malformed `route`, an invalid status code or an invalid `Retry-After` value: these
    /// are mistakes in the test itself.
    pub fn inject(&self, route: &str, fault: Fault, times: Option<u32>) {
        let (pattern, fault) =
            routes::validate_fault(route, fault).unwrap_or_else(|e| panic!("MockDcs::inject: {e}"));
        self.app.lock().faults.add(pattern, fault, times);
    }

    pub fn clear_faults(&self) {
        self.app.lock().faults.clear();
    }

    /// Every token issued so far now answers `401 {"detail":"Invalid token"}`, as an expired
    /// one does. Tokens issued afterwards work.
    pub fn expire_tokens(&self) {
        expire_all_tokens(&self.app);
    }

    /// The lifetime of tokens issued from now on (whole seconds; zero makes them expire at
    /// once).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.app.lock().token_ttl = ttl;
    }

    /// Successful `POST /auth/login` calls so far.
    pub fn login_count(&self) -> usize {
        usize::try_from(self.app.lock().login_count).unwrap_or(usize::MAX)
    }

    /// Requests that reached the server and match `route` (same syntax as
    /// [`inject`](Self::inject)), including those answered by a fault. `/_mock/` calls are not
    /// counted.
    ///
    /// # Panics
    ///
    /// On a malformed `route`.
    pub fn request_count(&self, route: &str) -> usize {
        let pattern =
            RoutePattern::parse(route).unwrap_or_else(|e| panic!("MockDcs::request_count: {e}"));
        self.app.lock().requests.count(&pattern)
    }

    /// A new API key (like `POST /api-keys/`), accepted on `/books/*` and `/publishers/*` only.
    pub fn create_api_key(&self, name: &str) -> String {
        let key =
            self.app
                .lock()
                .add_api_key(auth::generate_api_key(name), name.to_owned(), None, 100);
        key.key
    }

    /// An admin token, as `POST /auth/login` would return, without counting a login.
    pub fn issue_token(&self) -> String {
        self.app.mint_token(&mut self.app.lock())
    }

    /// Adds a book (creating its publisher if needed) and sends `book.created`.
    pub fn add_book(&self, book: NewBook) -> Result<Book, ContentError> {
        let prepared = content::prepare_new_book(&book)?;
        let (book, _event) = self.app.change(|state| state.create_book(prepared))?;
        Ok(book)
    }

    /// Changes a book's metadata (an empty update only bumps `updated_at`) and sends
    /// `book.updated`.
    pub fn update_book(&self, id: i64, update: BookUpdate) -> Result<Book, ContentError> {
        let changes = BookChanges::from(update);
        let (book, _event) = self.app.change(|state| state.update_book(id, changes))?;
        Ok(book)
    }

    /// Replaces (or adds) the file at `path` of a live book, as a re-upload of the book does,
    /// and sends `book.updated`.
    pub fn replace_book_file(
        &self,
        id: i64,
        path: &str,
        bytes: impl Into<bytes::Bytes>,
    ) -> Result<Book, ContentError> {
        let bytes = bytes.into();
        let (book, _event) = self
            .app
            .change(|state| state.replace_book_file(id, path, bytes))?;
        Ok(book)
    }

    /// Archives a book (its files disappear from `/storage`) and sends `book.deleted`; an
    /// already archived book is returned as is, without a webhook.
    pub fn delete_book(&self, id: i64) -> Result<Book, ContentError> {
        let (book, _event) = self.app.change(|state| state.delete_book(id))?;
        Ok(book)
    }

    /// Adds a publisher and sends `publisher.created`.
    pub fn add_publisher(&self, publisher: NewPublisher) -> Result<Publisher, ContentError> {
        let (publisher, _event) = self.app.change(|state| state.create_publisher(publisher))?;
        Ok(publisher)
    }

    /// Changes a publisher (an empty update only bumps `updated_at`) and sends
    /// `publisher.updated`.
    pub fn update_publisher(
        &self,
        id: i64,
        update: PublisherUpdate,
    ) -> Result<Publisher, ContentError> {
        let changes = PublisherChanges::from(update);
        let (publisher, _event) = self
            .app
            .change(|state| state.update_publisher(id, changes))?;
        Ok(publisher)
    }

    /// Soft-deletes a publisher (status `inactive`) and sends `publisher.deleted`.
    pub fn delete_publisher(&self, id: i64) -> Result<Publisher, ContentError> {
        let (publisher, _event) = self.app.change(|state| state.delete_publisher(id))?;
        Ok(publisher)
    }

    /// Makes an inactive publisher active again and sends `publisher.created`, as DCS does.
    pub fn restore_publisher(&self, id: i64) -> Result<Publisher, ContentError> {
        let (publisher, _event) = self.app.change(|state| state.restore_publisher(id))?;
        Ok(publisher)
    }

    pub fn book(&self, id: i64) -> Option<Book> {
        self.app.lock().book(id)
    }

    /// Every book, archived ones included, in id order.
    pub fn books(&self) -> Vec<Book> {
        self.app.lock().all_books()
    }

    pub fn publisher(&self, id: i64) -> Option<Publisher> {
        self.app.lock().publisher(id).cloned()
    }

    /// Every publisher, inactive ones included, in id order.
    pub fn publishers(&self) -> Vec<Publisher> {
        self.app.lock().publishers.values().cloned().collect()
    }

    /// Every webhook delivery log row so far, oldest first.
    pub fn delivery_logs(&self) -> Vec<DeliveryLog> {
        self.app.lock().delivery_logs.values().cloned().collect()
    }

    /// Waits until every webhook delivery started so far (retries included) has finished.
    pub async fn wait_for_deliveries(&self) {
        self.app.wait_for_deliveries().await;
    }

    /// Stops accepting connections, closes open ones and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for MockDcs {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
