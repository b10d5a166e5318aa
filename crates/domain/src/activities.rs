//! Activities of a book, parsed from its config.json, and the repository port that stores
//! them.
//!
//! A section is an activity when it has an `activity` key. Its place in the book:
//!
//! - `module_index` is **1-based** over every module of every entry of `books[]`, in document
//!   order, so it reads like the authoring tool's "Module 1", and a first module's order does
//!   not start at 0;
//! - `page_number` is the page's own `page_number` field (the authoring tool's 1-based page
//!   number, as printed), not its array position;
//! - `section_index` is **0-based**, the section's position in the page's `sections` array,
//!   counting every section (audio, fill, ...), not only activities: it is then the JSON's own
//!   index, and the `x 10` slot of the order holds ten sections (0..=9) rather than nine.
//!
//! `order = module_index x 1000 + page_number x 10 + section_index`. Lists are sorted by the
//! place itself (module, page, section), which is the same order wherever `order` is exact.
//! `order` sorts exactly while a
//! module has pages numbered below 100 and a page has at most ten sections; beyond that two
//! activities may share an order, and lists break ties by the natural key.
//!
//! The natural key `(book_id, module_index, page_number, section_index)` does not change when
//! an unchanged book is imported again, and [`ParsedActivity::digest`] (SHA-256 of the
//! section's JSON) tells whether its content changed, so a repository can keep ids stable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::asset_path::BookRef;

/// The natural key of an activity: stable across re-imports of an unchanged book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivityKey {
    /// The DCS book id.
    pub book_id: i64,
    /// 1-based module position over the whole config.
    pub module_index: u32,
    /// The page's `page_number`.
    pub page_number: u32,
    /// 0-based position in the page's `sections`.
    pub section_index: u32,
}

impl fmt::Display for ActivityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "book {} module {} page {} section {}",
            self.book_id, self.module_index, self.page_number, self.section_index
        )
    }
}

/// One activity as found in a config.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedActivity {
    /// The natural key.
    pub key: ActivityKey,
    /// `activity.type` (`dragdroppicture`, `matchTheWords`, or a type we do not know yet).
    pub activity_type: String,
    /// `activity.title`, if present.
    pub title: Option<String>,
    /// `activity.headerText`, if present.
    pub header_text: Option<String>,
    /// The module's `name`.
    pub module_name: String,
    /// The sort order (see the module docs).
    pub order: i64,
    /// The section as written in config.json (paths untransformed): the `activity` object and
    /// its siblings such as `audio_extra`.
    pub config: Value,
    /// Lower-case hex SHA-256 of `config`'s JSON serialisation.
    pub digest: String,
}

/// What is wrong with a config, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config at {at:?}: {problem}")]
pub struct ActivityParseError {
    /// JSON pointer of the offending value (`""` is the root).
    pub at: String,
    /// What is wrong.
    pub problem: ConfigProblem,
}

impl ActivityParseError {
    /// The stable code: `invalid_config`.
    pub fn code(&self) -> &'static str {
        "invalid_config"
    }
}

/// The kinds of broken config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    /// A required field is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A value has the wrong JSON type.
    #[error("expected {0}")]
    WrongType(&'static str),
    /// `activity` without a non-empty string `type`.
    #[error("activity has no `type`")]
    ActivityWithoutType,
    /// Two pages of one module with the same `page_number`: their activities would share
    /// natural keys.
    #[error("page_number {0} appears twice in this module")]
    DuplicatePage(u32),
}

/// Parses every activity of a book's config.json, in document order. A broken config is an
/// error as a whole: nothing is half-parsed.
pub fn parse_activities(
    book_id: i64,
    config: &Value,
) -> Result<Vec<ParsedActivity>, ActivityParseError> {
    let root = config
        .as_object()
        .ok_or_else(|| fail("", ConfigProblem::WrongType("a JSON object")))?;
    let books = root
        .get("books")
        .ok_or_else(|| fail("", ConfigProblem::Missing("books")))?;
    let books = books
        .as_array()
        .ok_or_else(|| fail("/books", ConfigProblem::WrongType("an array")))?;

    let mut activities = Vec::new();
    let mut module_index: u32 = 0;
    for (b, entry) in books.iter().enumerate() {
        let at = format!("/books/{b}");
        let modules = array_field(entry, "modules", &at)?;
        for (m, module) in modules.iter().enumerate() {
            let at = format!("{at}/modules/{m}");
            module_index = module_index.saturating_add(1);
            let module_name = string_field(module, "name", &at)?;
            let pages = array_field(module, "pages", &at)?;
            let mut page_numbers = HashSet::new();
            for (p, page) in pages.iter().enumerate() {
                let at = format!("{at}/pages/{p}");
                let page_number = page_number(page, &at)?;
                if !page_numbers.insert(page_number) {
                    return Err(fail(&at, ConfigProblem::DuplicatePage(page_number)));
                }
                let sections = match page.get("sections") {
                    None | Some(Value::Null) => continue,
                    Some(Value::Array(sections)) => sections,
                    Some(_) => {
                        return Err(fail(
                            &format!("{at}/sections"),
                            ConfigProblem::WrongType("an array"),
                        ));
                    }
                };
                for (s, section) in sections.iter().enumerate() {
                    let at = format!("{at}/sections/{s}");
                    let section_map = section
                        .as_object()
                        .ok_or_else(|| fail(&at, ConfigProblem::WrongType("an object")))?;
                    let Some(activity) = section_map.get("activity") else {
                        continue;
                    };
                    let at = format!("{at}/activity");
                    let activity = activity
                        .as_object()
                        .ok_or_else(|| fail(&at, ConfigProblem::WrongType("an object")))?;
                    let activity_type = match activity.get("type") {
                        Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
                        _ => return Err(fail(&at, ConfigProblem::ActivityWithoutType)),
                    };
                    let title = optional_string(activity.get("title"), &at, "title")?;
                    let header_text =
                        optional_string(activity.get("headerText"), &at, "headerText")?;
                    // Sections beyond u32::MAX cannot exist in a parsed document.
                    let section_index = u32::try_from(s).unwrap_or(u32::MAX);
                    let key = ActivityKey {
                        book_id,
                        module_index,
                        page_number,
                        section_index,
                    };
                    activities.push(ParsedActivity {
                        key,
                        activity_type,
                        title,
                        header_text,
                        module_name: module_name.clone(),
                        order: order_of(&key),
                        digest: digest(section),
                        config: section.clone(),
                    });
                }
            }
        }
    }
    Ok(activities)
}

/// `module_index x 1000 + page_number x 10 + section_index` (cannot overflow an i64).
pub fn order_of(key: &ActivityKey) -> i64 {
    i64::from(key.module_index) * 1000
        + i64::from(key.page_number) * 10
        + i64::from(key.section_index)
}

/// Lower-case hex SHA-256 of a value's JSON serialisation.
pub fn digest(value: &Value) -> String {
    // Serialising a Value cannot fail (keys are strings); an empty input would still hash.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

fn fail(at: &str, problem: ConfigProblem) -> ActivityParseError {
    ActivityParseError {
        at: at.to_owned(),
        problem,
    }
}

fn array_field<'a>(
    value: &'a Value,
    field: &'static str,
    at: &str,
) -> Result<&'a Vec<Value>, ActivityParseError> {
    let map = value
        .as_object()
        .ok_or_else(|| fail(at, ConfigProblem::WrongType("an object")))?;
    match map.get(field) {
        None => Err(fail(at, ConfigProblem::Missing(field))),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(fail(
            &format!("{at}/{field}"),
            ConfigProblem::WrongType("an array"),
        )),
    }
}

fn string_field(
    value: &Value,
    field: &'static str,
    at: &str,
) -> Result<String, ActivityParseError> {
    let map = value
        .as_object()
        .ok_or_else(|| fail(at, ConfigProblem::WrongType("an object")))?;
    match map.get(field) {
        None => Err(fail(at, ConfigProblem::Missing(field))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(fail(
            &format!("{at}/{field}"),
            ConfigProblem::WrongType("a string"),
        )),
    }
}

fn optional_string(
    value: Option<&Value>,
    at: &str,
    field: &str,
) -> Result<Option<String>, ActivityParseError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(fail(
            &format!("{at}/{field}"),
            ConfigProblem::WrongType("a string"),
        )),
    }
}

fn page_number(page: &Value, at: &str) -> Result<u32, ActivityParseError> {
    let map = page
        .as_object()
        .ok_or_else(|| fail(at, ConfigProblem::WrongType("an object")))?;
    let value = map
        .get("page_number")
        .ok_or_else(|| fail(at, ConfigProblem::Missing("page_number")))?;
    // Below 2^31: stores keep it in a signed 32-bit column.
    value
        .as_u64()
        .filter(|n| i32::try_from(*n).is_ok())
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            fail(
                &format!("{at}/page_number"),
                ConfigProblem::WrongType("a non-negative integer below 2^31"),
            )
        })
}

// ---------------------------------------------------------------------------------------
// repository port

/// The id a repository gives an activity; it survives re-imports while the natural key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivityId(pub i64);

/// An activity as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredActivity {
    /// Its id.
    pub id: ActivityId,
    /// What was parsed.
    pub activity: ParsedActivity,
}

/// What a replace did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplaceSummary {
    /// New natural keys.
    pub inserted: usize,
    /// Known keys whose digest changed (same id, new content).
    pub updated: usize,
    /// Known keys with the same digest (nothing written).
    pub unchanged: usize,
    /// Keys that are no longer in the book.
    pub deleted: usize,
}

/// Why a repository call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// The input breaks the contract (an activity of another book, a duplicate key); nothing
    /// was written.
    #[error("invalid activities: {0}")]
    InvalidInput(String),
    /// The store failed; nothing was written.
    #[error("activity store unavailable: {0}")]
    Unavailable(String),
}

impl RepositoryError {
    /// Stable codes: `invalid_activities`, `repository_unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            RepositoryError::InvalidInput(_) => "invalid_activities",
            RepositoryError::Unavailable(_) => "repository_unavailable",
        }
    }
}

/// Where activities are kept (sea-orm in the app, [`MemoryActivityRepository`] in tests).
/// [`conformance::check`] states the contract every implementation must pass.
#[async_trait]
pub trait ActivityRepository: Send + Sync {
    /// Makes the book's stored activities exactly `activities`, in one transaction: a key
    /// already stored keeps its id (its fields are rewritten if the digest changed), new keys
    /// get new ids, missing keys are deleted. Every activity must belong to `book_id` and keys
    /// must be distinct, else [`RepositoryError::InvalidInput`] and nothing changes.
    async fn replace_for_book(
        &self,
        book_id: i64,
        activities: Vec<ParsedActivity>,
    ) -> Result<ReplaceSummary, RepositoryError>;

    /// The book's activities in book order: by module, page and section (the natural key), so
    /// a page with more than ten sections cannot interleave with the next page.
    async fn list_for_book(&self, book_id: i64) -> Result<Vec<StoredActivity>, RepositoryError>;

    /// One activity.
    async fn get(&self, id: ActivityId) -> Result<Option<StoredActivity>, RepositoryError>;

    /// Deletes the book's activities; returns how many there were.
    async fn delete_for_book(&self, book_id: i64) -> Result<usize, RepositoryError>;
}

#[async_trait]
impl<T: ActivityRepository + ?Sized> ActivityRepository for Arc<T> {
    async fn replace_for_book(
        &self,
        book_id: i64,
        activities: Vec<ParsedActivity>,
    ) -> Result<ReplaceSummary, RepositoryError> {
        (**self).replace_for_book(book_id, activities).await
    }
    async fn list_for_book(&self, book_id: i64) -> Result<Vec<StoredActivity>, RepositoryError> {
        (**self).list_for_book(book_id).await
    }
    async fn get(&self, id: ActivityId) -> Result<Option<StoredActivity>, RepositoryError> {
        (**self).get(id).await
    }
    async fn delete_for_book(&self, book_id: i64) -> Result<usize, RepositoryError> {
        (**self).delete_for_book(book_id).await
    }
}

/// Checks the input of a replace as every implementation must (used by the in-memory one;
/// database adapters may call it before opening their transaction).
pub fn validate_replace(
    book_id: i64,
    activities: &[ParsedActivity],
) -> Result<(), RepositoryError> {
    let mut keys = HashSet::with_capacity(activities.len());
    for a in activities {
        if a.key.book_id != book_id {
            return Err(RepositoryError::InvalidInput(format!(
                "{} does not belong to book {book_id}",
                a.key
            )));
        }
        if !keys.insert(a.key) {
            return Err(RepositoryError::InvalidInput(format!(
                "{} appears twice",
                a.key
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct MemoryState {
    next_id: i64,
    by_id: BTreeMap<ActivityId, StoredActivity>,
    by_key: HashMap<ActivityKey, ActivityId>,
}

/// [`ActivityRepository`] in memory: one lock around everything, which makes each call atomic.
#[derive(Debug, Default)]
pub struct MemoryActivityRepository {
    state: Mutex<MemoryState>,
}

impl MemoryActivityRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // Every mutation below is complete before it is visible; a poisoned lock holds
        // consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ActivityRepository for MemoryActivityRepository {
    async fn replace_for_book(
        &self,
        book_id: i64,
        activities: Vec<ParsedActivity>,
    ) -> Result<ReplaceSummary, RepositoryError> {
        validate_replace(book_id, &activities)?;
        let mut state = self.state();
        let mut summary = ReplaceSummary::default();
        let keep: HashSet<ActivityKey> = activities.iter().map(|a| a.key).collect();
        let stale: Vec<(ActivityKey, ActivityId)> = state
            .by_key
            .iter()
            .filter(|(k, _)| k.book_id == book_id && !keep.contains(k))
            .map(|(k, id)| (*k, *id))
            .collect();
        for (key, id) in stale {
            state.by_key.remove(&key);
            state.by_id.remove(&id);
            summary.deleted += 1;
        }
        for activity in activities {
            match state.by_key.get(&activity.key).copied() {
                Some(id) => {
                    let stored = state.by_id.get_mut(&id);
                    match stored {
                        Some(s) if s.activity == activity => summary.unchanged += 1,
                        Some(s) => {
                            s.activity = activity;
                            summary.updated += 1;
                        }
                        None => {
                            state.by_id.insert(id, StoredActivity { id, activity });
                            summary.updated += 1;
                        }
                    }
                }
                None => {
                    state.next_id += 1;
                    let id = ActivityId(state.next_id);
                    state.by_key.insert(activity.key, id);
                    state.by_id.insert(id, StoredActivity { id, activity });
                    summary.inserted += 1;
                }
            }
        }
        Ok(summary)
    }

    async fn list_for_book(&self, book_id: i64) -> Result<Vec<StoredActivity>, RepositoryError> {
        let state = self.state();
        let mut list: Vec<StoredActivity> = state
            .by_id
            .values()
            .filter(|s| s.activity.key.book_id == book_id)
            .cloned()
            .collect();
        list.sort_by_key(|s| s.activity.key);
        Ok(list)
    }

    async fn get(&self, id: ActivityId) -> Result<Option<StoredActivity>, RepositoryError> {
        Ok(self.state().by_id.get(&id).cloned())
    }

    async fn delete_for_book(&self, book_id: i64) -> Result<usize, RepositoryError> {
        let mut state = self.state();
        let ids: Vec<(ActivityKey, ActivityId)> = state
            .by_key
            .iter()
            .filter(|(k, _)| k.book_id == book_id)
            .map(|(k, id)| (*k, *id))
            .collect();
        for (key, id) in &ids {
            state.by_key.remove(key);
            state.by_id.remove(id);
        }
        Ok(ids.len())
    }
}

// ---------------------------------------------------------------------------------------
// importer

/// Where a book's config.json comes from (the catalog's cached config in the app).
#[async_trait]
pub trait BookConfigSource: Send + Sync {
    /// The raw config.json of `book`.
    async fn book_config(&self, book: &BookRef) -> Result<Value, SourceError>;
}

#[async_trait]
impl<T: BookConfigSource + ?Sized> BookConfigSource for Arc<T> {
    async fn book_config(&self, book: &BookRef) -> Result<Value, SourceError> {
        (**self).book_config(book).await
    }
}

/// Why the config could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The book has no config.json.
    #[error("config.json not found")]
    NotFound,
    /// DCS (or whatever serves configs) is down.
    #[error("config source unavailable: {0}")]
    Unavailable(String),
}

/// [`BookConfigSource`] straight over the DCS client port.
#[derive(Clone)]
pub struct DcsConfigSource(pub Arc<dyn dcs_client::DcsApi>);

impl fmt::Debug for DcsConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DcsConfigSource")
    }
}

#[async_trait]
impl BookConfigSource for DcsConfigSource {
    async fn book_config(&self, book: &BookRef) -> Result<Value, SourceError> {
        self.0
            .book_config(book.publisher(), book.book_name())
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    SourceError::NotFound
                } else {
                    SourceError::Unavailable(format!("{} ({e})", e.code()))
                }
            })
    }
}

/// Why an import failed; the stored activities are then unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// See [`SourceError`].
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The config is broken.
    #[error(transparent)]
    InvalidConfig(#[from] ActivityParseError),
    /// The repository failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl ImportError {
    /// Stable codes: `config_not_found`, `content_storage_unavailable`, `invalid_config`, and
    /// the repository's.
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::Source(SourceError::NotFound) => "config_not_found",
            ImportError::Source(SourceError::Unavailable(_)) => "content_storage_unavailable",
            ImportError::InvalidConfig(e) => e.code(),
            ImportError::Repository(e) => e.code(),
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// Activities found in the config.
    pub activities: usize,
    /// What the repository did with them.
    pub summary: ReplaceSummary,
}

/// Fetches a book's config, parses its activities and replaces the stored ones.
#[derive(Debug, Clone)]
pub struct ActivityImporter<S, R> {
    source: S,
    repository: R,
}

impl<S: BookConfigSource, R: ActivityRepository> ActivityImporter<S, R> {
    /// An importer reading from `source` into `repository`.
    pub fn new(source: S, repository: R) -> Self {
        Self { source, repository }
    }

    /// Imports one book. A broken config leaves what was stored before untouched.
    pub async fn import(&self, book: &BookRef) -> Result<ImportReport, ImportError> {
        let config = self.source.book_config(book).await?;
        let activities = parse_activities(book.id(), &config)?;
        let count = activities.len();
        let summary = self
            .repository
            .replace_for_book(book.id(), activities)
            .await?;
        Ok(ImportReport {
            activities: count,
            summary,
        })
    }

    /// Forgets a book's activities (on `book.deleted`).
    pub async fn remove(&self, book_id: i64) -> Result<usize, ImportError> {
        Ok(self.repository.delete_for_book(book_id).await?)
    }
}

/// The contract of [`ActivityRepository`], runnable against any implementation (the in-memory
/// one in this crate's tests, the database adapter in the app's).
pub mod conformance {
    use serde_json::json;

    use super::*;

    fn activity(book_id: i64, page: u32, section: u32, text: &str) -> ParsedActivity {
        let key = ActivityKey {
            book_id,
            module_index: 1,
            page_number: page,
            section_index: section,
        };
        let config = json!({"activity": {"type": "circle", "headerText": text}});
        ParsedActivity {
            key,
            activity_type: "circle".into(),
            title: None,
            header_text: Some(text.into()),
            module_name: "Module 1".into(),
            order: order_of(&key),
            digest: digest(&config),
            config,
        }
    }

    macro_rules! ensure {
        ($cond:expr, $($msg:tt)+) => {
            if !$cond {
                return Err(format!($($msg)+));
            }
        };
    }

    /// Runs the contract against an **empty** repository that uses book ids 9001 and 9002.
    /// Returns the first broken rule.
    pub async fn check(repo: &dyn ActivityRepository) -> Result<(), String> {
        let err = |e: RepositoryError| format!("unexpected error: {e}");
        let (a, b) = (9001, 9002);

        let first = vec![
            activity(a, 3, 1, "x"),
            activity(a, 2, 0, "y"),
            activity(a, 2, 4, "z"),
        ];
        let s = repo.replace_for_book(a, first.clone()).await.map_err(err)?;
        ensure!(
            s == ReplaceSummary {
                inserted: 3,
                ..Default::default()
            },
            "first import: {s:?}"
        );
        repo.replace_for_book(b, vec![activity(b, 1, 0, "other")])
            .await
            .map_err(err)?;

        let listed = repo.list_for_book(a).await.map_err(err)?;
        let orders: Vec<i64> = listed.iter().map(|s| s.activity.order).collect();
        ensure!(
            orders == vec![1020, 1024, 1031],
            "list is not in book order: {orders:?}"
        );
        ensure!(
            listed.iter().all(|s| s.activity.key.book_id == a),
            "list_for_book returned another book's activity"
        );
        let ids: HashMap<ActivityKey, ActivityId> =
            listed.iter().map(|s| (s.activity.key, s.id)).collect();
        for s in &listed {
            let got = repo.get(s.id).await.map_err(err)?;
            ensure!(got.as_ref() == Some(s), "get({:?}) = {got:?}", s.id);
        }

        // A page with more than ten sections: `order` overlaps the next page's, book order
        // does not.
        let crowded = vec![activity(b, 1, 11, "late"), activity(b, 2, 0, "next page")];
        repo.replace_for_book(b, crowded).await.map_err(err)?;
        let pages: Vec<(u32, u32)> = repo
            .list_for_book(b)
            .await
            .map_err(err)?
            .iter()
            .map(|s| (s.activity.key.page_number, s.activity.key.section_index))
            .collect();
        ensure!(
            pages == vec![(1, 11), (2, 0)],
            "a crowded page interleaves with the next: {pages:?}"
        );
        repo.replace_for_book(b, vec![activity(b, 1, 0, "other")])
            .await
            .map_err(err)?;

        // Same content again: nothing written, same ids.
        let s = repo.replace_for_book(a, first.clone()).await.map_err(err)?;
        ensure!(
            s == ReplaceSummary {
                unchanged: 3,
                ..Default::default()
            },
            "re-import: {s:?}"
        );
        let again = repo.list_for_book(a).await.map_err(err)?;
        ensure!(again == listed, "re-import changed the stored activities");

        // One changed, one gone, one new: the kept keys keep their ids.
        let changed = vec![
            activity(a, 2, 0, "y2"),
            activity(a, 2, 4, "z"),
            activity(a, 5, 0, "n"),
        ];
        let s = repo.replace_for_book(a, changed).await.map_err(err)?;
        ensure!(
            s == ReplaceSummary {
                inserted: 1,
                updated: 1,
                unchanged: 1,
                deleted: 1
            },
            "changed import: {s:?}"
        );
        let after = repo.list_for_book(a).await.map_err(err)?;
        for st in &after {
            if let Some(old) = ids.get(&st.activity.key) {
                ensure!(*old == st.id, "{} changed id", st.activity.key);
            } else {
                ensure!(
                    !ids.values().any(|i| *i == st.id),
                    "new key reused an old id"
                );
            }
        }
        let y = after
            .iter()
            .find(|s| s.activity.key.page_number == 2 && s.activity.key.section_index == 0);
        ensure!(
            y.and_then(|s| s.activity.header_text.as_deref()) == Some("y2"),
            "update not stored: {y:?}"
        );
        let gone = ids[&activity(a, 3, 1, "").key];
        ensure!(
            repo.get(gone).await.map_err(err)?.is_none(),
            "deleted key still readable"
        );

        // Invalid input changes nothing.
        let before = repo.list_for_book(a).await.map_err(err)?;
        for bad in [
            vec![activity(a, 9, 0, "new"), activity(b, 1, 0, "foreign")],
            vec![activity(a, 9, 0, "dup"), activity(a, 9, 0, "dup")],
        ] {
            match repo.replace_for_book(a, bad).await {
                Err(RepositoryError::InvalidInput(_)) => {}
                other => return Err(format!("invalid input accepted: {other:?}")),
            }
            ensure!(
                repo.list_for_book(a).await.map_err(err)? == before,
                "a refused replace changed the book"
            );
        }

        // Delete is per book.
        let n = repo.delete_for_book(a).await.map_err(err)?;
        ensure!(n == 3, "delete_for_book returned {n}");
        ensure!(
            repo.list_for_book(a).await.map_err(err)?.is_empty(),
            "book not emptied"
        );
        ensure!(
            repo.list_for_book(b).await.map_err(err)?.len() == 1,
            "other book touched"
        );
        ensure!(
            repo.delete_for_book(a).await.map_err(err)? == 0,
            "second delete found rows"
        );
        repo.delete_for_book(b).await.map_err(err)?;
        Ok(())
    }
}
