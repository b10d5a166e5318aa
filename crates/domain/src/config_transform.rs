//! Rewrites every asset path of a book's config.json (or of one activity) into a URL.
//!
//! Which strings are paths (the rule):
//!
//! - **Known path keys**, anywhere in the document, when the value is a non-empty string:
//!   `image_path`, `audio_path`, `audio`, `video_path`, `video`, `poster`, `section_path`,
//!   `image`; `path` inside an `audio_extra` object; and at the top level `book_cover` and
//!   `publisher_logo_path`, but only if they contain a separator (a bare `cover.png` is a
//!   name DCS resolves itself, not a path). Strings in an array under such a key count too.
//! - **Anywhere else**, only strings that start like an authoring-tool path:
//!   `./books/{any book}/...` (another book's is then refused), or `books/{this book}/...`,
//!   also with backslashes. So words, answers and titles such as `and/or`, `Mr. Smith` or
//!   `3.5` stay untouched, whatever activity type they belong to, known or not.
//! - Absolute URLs (`https://...`, `data:...`) are never rewritten: they are external links.
//!
//! A path that is refused by [`crate::asset_path::normalize`] becomes JSON `null`,
//! and so does a path the linker has no URL for; the rest of the config is still served.
//! Refusals are logged as one `warn` per transform (with the book and the distinct paths), and
//! only the first time a book shows a given set of bad paths; repeats go to `debug`.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::Value;

use crate::asset_path::{
    BookAssetPath, BookRef, PathRejection, is_external_url, looks_like_book_path, normalize,
};
use crate::linker::{AssetLinker, LinkError};

/// Keys whose non-empty string values are asset paths wherever they appear.
const PATH_KEYS: &[&str] = &[
    "image_path",
    "audio_path",
    "audio",
    "video_path",
    "video",
    "poster",
    "section_path",
    "image",
];

/// Top-level keys that are asset paths when they look like one.
const TOP_LEVEL_PATH_KEYS: &[&str] = &["book_cover", "publisher_logo_path"];

/// Deeper than this is not a config but an attack on the stack (serde_json itself stops
/// parsing at 128 levels).
const MAX_DEPTH: usize = 256;

/// Why a config could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The document is not a config at all (not an object, absurdly deep).
    #[error("invalid config at {at}: {reason}")]
    InvalidConfig {
        /// JSON pointer of the offending value (`""` is the root).
        at: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The linker's backend is down: no URL could be made.
    #[error(transparent)]
    Storage(#[from] LinkError),
}

impl TransformError {
    /// The stable code the HTTP layer maps to a status: `invalid_config` or
    /// `content_storage_unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            TransformError::InvalidConfig { .. } => "invalid_config",
            TransformError::Storage(e) => e.code(),
        }
    }
}

/// A path that was replaced by `null`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NulledPath {
    /// The string as it was in the config.
    pub raw: String,
    /// Why it has no URL.
    pub reason: NullReason,
}

/// Why a path became `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NullReason {
    /// Refused by normalisation: it would leave the book.
    Rejected(PathRejection),
    /// A valid path the linker gave no URL for.
    Unlinked,
}

/// The result of a transform.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformed {
    /// The config with URLs in place of paths.
    pub config: Value,
    /// Distinct paths that became `null` (in the order first seen).
    pub nulled: Vec<NulledPath>,
    /// Number of distinct paths linked.
    pub linked: usize,
}

/// Rewrites configs through an [`AssetLinker`]. Cheap to clone.
#[derive(Clone)]
pub struct ConfigTransformer {
    linker: Arc<dyn AssetLinker>,
    /// Per book, a fingerprint of the bad paths last warned about.
    warned: Arc<quick_cache::sync::Cache<i64, u64>>,
}

impl std::fmt::Debug for ConfigTransformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigTransformer").finish_non_exhaustive()
    }
}

impl ConfigTransformer {
    /// A transformer over `linker` (one of the three delivery modes).
    pub fn new(linker: Arc<dyn AssetLinker>) -> Self {
        Self {
            linker,
            warned: Arc::new(quick_cache::sync::Cache::new(10_000)),
        }
    }

    /// Transforms a whole config.json of `book` (it must be a JSON object).
    pub async fn transform_book(
        &self,
        book: &BookRef,
        config: Value,
    ) -> Result<Transformed, TransformError> {
        self.transform(book, config, true).await
    }

    /// Transforms one activity's config (the section object, as stored by the activity
    /// parser: `{"activity": {...}, "audio_extra": {...}}`), for `/activities/{id}/start`.
    pub async fn transform_activity(
        &self,
        book: &BookRef,
        section: Value,
    ) -> Result<Transformed, TransformError> {
        self.transform(book, section, false).await
    }

    async fn transform(
        &self,
        book: &BookRef,
        mut config: Value,
        is_book: bool,
    ) -> Result<Transformed, TransformError> {
        if !config.is_object() {
            return Err(TransformError::InvalidConfig {
                at: String::new(),
                reason: if is_book {
                    "config is not a JSON object"
                } else {
                    "activity config is not a JSON object"
                },
            });
        }
        let book_name = book.book_name();

        // Pass 1: classify every path slot, in walk order, and collect the distinct paths.
        let mut distinct: Vec<BookAssetPath> = Vec::new();
        let mut index: HashMap<BookAssetPath, usize> = HashMap::new();
        let mut slots: Vec<Result<usize, usize>> = Vec::new(); // Ok(path) | Err(nulled)
        let mut nulled: Vec<NulledPath> = Vec::new();
        let mut nulled_index: HashMap<String, usize> = HashMap::new();
        walk(&mut config, book_name, is_book, &mut |value| {
            let Value::String(raw) = value else { return };
            match normalize(raw, book_name) {
                Ok(path) => {
                    let next = distinct.len();
                    let i = *index.entry(path).or_insert_with_key(|p| {
                        distinct.push(p.clone());
                        next
                    });
                    slots.push(Ok(i));
                }
                Err(reason) => {
                    let next = nulled.len();
                    let n = *nulled_index.entry(raw.clone()).or_insert_with(|| {
                        nulled.push(NulledPath {
                            raw: raw.clone(),
                            reason: NullReason::Rejected(reason),
                        });
                        next
                    });
                    slots.push(Err(n));
                }
            }
        })?;

        // One batch for the linker, whatever the delivery mode.
        let urls = if distinct.is_empty() {
            Vec::new()
        } else {
            self.linker.link(book, &distinct).await?
        };
        if urls.len() != distinct.len() {
            // A linker bug; serving misaligned URLs would show wrong pictures.
            return Err(LinkError::Unavailable(format!(
                "linker returned {} URLs for {} paths",
                urls.len(),
                distinct.len()
            ))
            .into());
        }
        let mut unlinked_seen = vec![false; distinct.len()];

        // Pass 2: the same walk, same order; each slot takes its URL or null.
        let mut slots = slots.into_iter();
        walk(&mut config, book_name, is_book, &mut |value| {
            let replacement = match slots.next() {
                Some(Ok(i)) => match &urls[i] {
                    Some(url) => Value::String(url.clone()),
                    None => {
                        if !unlinked_seen[i] {
                            unlinked_seen[i] = true;
                            nulled.push(NulledPath {
                                raw: distinct[i].as_str().to_owned(),
                                reason: NullReason::Unlinked,
                            });
                        }
                        Value::Null
                    }
                },
                Some(Err(_)) | None => Value::Null,
            };
            *value = replacement;
        })?;
        let linked = urls.iter().filter(|u| u.is_some()).count();

        if !nulled.is_empty() {
            self.warn_once(book, &nulled);
        }
        Ok(Transformed {
            config,
            nulled,
            linked,
        })
    }

    fn warn_once(&self, book: &BookRef, nulled: &[NulledPath]) {
        let mut hasher = DefaultHasher::new();
        for n in nulled {
            n.raw.hash(&mut hasher);
        }
        let fingerprint = hasher.finish();
        let shown: Vec<String> = nulled
            .iter()
            .take(20)
            .map(|n| {
                let why = match &n.reason {
                    NullReason::Rejected(r) => r.code(),
                    NullReason::Unlinked => "unlinked",
                };
                format!("{:?} ({why})", n.raw.chars().take(200).collect::<String>())
            })
            .collect();
        if self.warned.get(&book.id()) == Some(fingerprint) {
            tracing::debug!(book_id = book.id(), book = book.book_name(), count = nulled.len(), paths = ?shown, "config asset paths served as null (already warned)");
        } else {
            self.warned.insert(book.id(), fingerprint);
            tracing::warn!(book_id = book.id(), book = book.book_name(), count = nulled.len(), paths = ?shown, "config asset paths served as null");
        }
    }
}

/// Calls `f` on every string value that is an asset path, in a fixed order (both passes rely
/// on it being the same order for the same document).
fn walk(
    root: &mut Value,
    book_name: &str,
    is_book: bool,
    f: &mut dyn FnMut(&mut Value),
) -> Result<(), TransformError> {
    walk_value(root, None, None, 0, is_book, book_name, f).map_err(|TooDeep(mut segments)| {
        segments.reverse();
        TransformError::InvalidConfig {
            at: segments
                .iter()
                .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
                .collect(),
            reason: "nested too deeply",
        }
    })
}

/// The path to a too-deep value, innermost segment first: built only while unwinding, so the
/// walk itself allocates nothing for pointers.
struct TooDeep(Vec<String>);

/// `key` is the value's own key (for array elements: the array's key), `parent_key` the key
/// of the object holding it.
fn walk_value(
    value: &mut Value,
    key: Option<&str>,
    parent_key: Option<&str>,
    depth: usize,
    is_top_level: bool,
    book_name: &str,
    f: &mut dyn FnMut(&mut Value),
) -> Result<(), TooDeep> {
    if depth > MAX_DEPTH {
        return Err(TooDeep(Vec::new()));
    }
    let children_top_level = is_top_level && depth == 0;
    match value {
        Value::String(s) => {
            if is_path(s, key, parent_key, is_top_level && depth == 1, book_name) {
                f(value);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk_value(
                    item,
                    key,
                    parent_key,
                    depth + 1,
                    children_top_level,
                    book_name,
                    f,
                )
                .map_err(|mut e| {
                    e.0.push(i.to_string());
                    e
                })?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk_value(v, Some(k), key, depth + 1, children_top_level, book_name, f).map_err(
                    |mut e| {
                        e.0.push(k.clone());
                        e
                    },
                )?;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

fn is_path(
    s: &str,
    key: Option<&str>,
    parent_key: Option<&str>,
    top_level_field: bool,
    book_name: &str,
) -> bool {
    if s.is_empty() || is_external_url(s) {
        return false;
    }
    if let Some(key) = key {
        if PATH_KEYS.contains(&key) || (key == "path" && parent_key == Some("audio_extra")) {
            return true;
        }
        if top_level_field && TOP_LEVEL_PATH_KEYS.contains(&key) {
            return s.contains(['/', '\\']);
        }
    }
    looks_like_book_path(s, book_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linker::MemoryLinker;
    use serde_json::json;

    fn book() -> BookRef {
        BookRef::new(7, "Dream Press", "B").unwrap()
    }

    async fn run(config: Value) -> Transformed {
        let t = ConfigTransformer::new(Arc::new(MemoryLinker::new("mem://")));
        t.transform_book(&book(), config).await.unwrap()
    }

    #[tokio::test]
    async fn the_rule_decides_per_key_and_prefix() {
        let out = run(json!({
            "book_cover": "./books/B/images/cover.png",
            "publisher_logo_path": "logo.png",
            "nested": {"book_cover": "not/a/top/level/key"},
            "image": "images/x.png",
            "words": ["and/or", "Mr. Smith", "3.5", "books/B/w.png", "./books/B/v.png"],
            "audio_extra": {"path": "audio/a.mp3", "coords": {"x": 1}},
            "other": {"path": "not/an/asset"},
            "video": "https://cdn.test/v.mp4",
            "audio": "",
            "poster": 3,
        }))
        .await;
        assert_eq!(
            out.config,
            json!({
                "book_cover": "mem://7/images/cover.png",
                "publisher_logo_path": "logo.png",
                "nested": {"book_cover": "not/a/top/level/key"},
                "image": "mem://7/images/x.png",
                "words": ["and/or", "Mr. Smith", "3.5", "mem://7/w.png", "mem://7/v.png"],
                "audio_extra": {"path": "mem://7/audio/a.mp3", "coords": {"x": 1}},
                "other": {"path": "not/an/asset"},
                "video": "https://cdn.test/v.mp4",
                "audio": "",
                "poster": 3,
            })
        );
        assert!(out.nulled.is_empty());
        assert_eq!(out.linked, 5);
    }

    #[tokio::test]
    async fn rejected_and_unlinked_paths_become_null_once_each() {
        let linker = Arc::new(MemoryLinker::new("mem://"));
        linker.set_missing("gone.png");
        let t = ConfigTransformer::new(linker.clone());
        let out = t
            .transform_book(
                &book(),
                json!({
                    "a": {"image": "../etc/passwd"},
                    "b": [{"image": "../etc/passwd"}, {"image_path": "./books/OTHER/x.png"}],
                    "c": {"section_path": "gone.png", "image": "./books/B/gone.png"},
                    "d": {"image": "ok.png", "image_path": "./books/B/ok.png"},
                }),
            )
            .await
            .unwrap();
        assert_eq!(
            out.config,
            json!({
                "a": {"image": null},
                "b": [{"image": null}, {"image_path": null}],
                "c": {"section_path": null, "image": null},
                "d": {"image": "mem://7/ok.png", "image_path": "mem://7/ok.png"},
            })
        );
        let reasons: Vec<_> = out
            .nulled
            .iter()
            .map(|n| (n.raw.as_str(), &n.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (
                    "../etc/passwd",
                    &NullReason::Rejected(PathRejection::Traversal)
                ),
                (
                    "./books/OTHER/x.png",
                    &NullReason::Rejected(PathRejection::OtherBook {
                        book: "OTHER".into()
                    })
                ),
                ("gone.png", &NullReason::Unlinked),
            ]
        );
        // Two distinct valid paths, asked for once, in one call.
        assert_eq!((linker.calls(), linker.paths_seen(), out.linked), (1, 2, 1));
    }

    #[tokio::test]
    async fn errors_have_stable_codes() {
        let linker = Arc::new(MemoryLinker::new("mem://"));
        let t = ConfigTransformer::new(linker.clone());
        let err = t.transform_book(&book(), json!([1])).await.unwrap_err();
        assert_eq!(err.code(), "invalid_config");
        let err = t.transform_activity(&book(), json!("x")).await.unwrap_err();
        assert_eq!(err.code(), "invalid_config");

        linker.set_unavailable(true);
        let err = t
            .transform_book(&book(), json!({"image": "a.png"}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "content_storage_unavailable");
        // Without any path the linker is not needed, so its outage does not matter.
        let out = t
            .transform_book(&book(), json!({"title": "no assets"}))
            .await
            .unwrap();
        assert_eq!(out.config, json!({"title": "no assets"}));
    }

    #[tokio::test]
    async fn absurd_nesting_is_an_error_not_a_stack_overflow() {
        let mut v = json!({"image": "a.png"});
        for _ in 0..300 {
            v = json!({ "x": [v] });
        }
        let err = run_err(v).await;
        assert_eq!(err.code(), "invalid_config");
        assert!(
            err.to_string()
                .starts_with("invalid config at /x/0/x/0/x/0/"),
            "{err}"
        );
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }

    async fn run_err(config: Value) -> TransformError {
        let t = ConfigTransformer::new(Arc::new(MemoryLinker::new("mem://")));
        t.transform_book(&book(), config).await.unwrap_err()
    }

    /// Counts events by level and keeps their fields as text.
    #[derive(Default)]
    struct Recorder {
        events: std::sync::Mutex<Vec<(tracing::Level, String)>>,
    }

    struct Fields(String);
    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl tracing::Subscriber for Recorder {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.events
                .lock()
                .unwrap()
                .push((*event.metadata().level(), fields.0));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[tokio::test]
    async fn bad_paths_are_warned_once_per_book_with_book_and_paths() {
        let recorder = Arc::new(Recorder::default());
        let _guard = tracing::subscriber::set_default(recorder.clone());
        let t = ConfigTransformer::new(Arc::new(MemoryLinker::new("mem://")));
        let bad = json!({"a": {"image": "../x.png"}, "b": {"image": "../x.png"}, "c": {"audio": "%2e%2e/y.mp3"}});
        let levels = || -> Vec<tracing::Level> {
            recorder
                .events
                .lock()
                .unwrap()
                .iter()
                .map(|(l, _)| *l)
                .collect()
        };

        t.transform_book(&book(), bad.clone()).await.unwrap();
        assert_eq!(levels(), vec![tracing::Level::WARN]);
        let (_, fields) = recorder.events.lock().unwrap()[0].clone();
        assert!(
            fields.contains("book_id=7") && fields.contains("book=\"B\""),
            "{fields}"
        );
        assert!(fields.contains("count=2"), "{fields}");
        assert!(
            fields.contains("../x.png") && fields.contains("traversal"),
            "{fields}"
        );
        assert!(fields.contains("%2e%2e/y.mp3"), "{fields}");

        // The same bad paths again: no second warning, only debug.
        t.transform_book(&book(), bad.clone()).await.unwrap();
        assert_eq!(levels(), vec![tracing::Level::WARN, tracing::Level::DEBUG]);
        // Another book with the same paths, or this book with new ones: warned.
        let other = BookRef::new(8, "Dream Press", "B").unwrap();
        t.transform_book(&other, bad).await.unwrap();
        t.transform_book(&book(), json!({"image": "./books/X/y.png"}))
            .await
            .unwrap();
        assert_eq!(
            levels(),
            vec![
                tracing::Level::WARN,
                tracing::Level::DEBUG,
                tracing::Level::WARN,
                tracing::Level::WARN
            ]
        );
        // A clean config logs nothing.
        t.transform_book(&book(), json!({"image": "y.png"}))
            .await
            .unwrap();
        assert_eq!(levels().len(), 4);
    }

    #[tokio::test]
    async fn short_linker_answers_are_refused() {
        struct Short;
        #[async_trait::async_trait]
        impl AssetLinker for Short {
            async fn link(
                &self,
                _: &BookRef,
                _: &[BookAssetPath],
            ) -> Result<Vec<Option<String>>, LinkError> {
                Ok(vec![Some("u".into())])
            }
        }
        let t = ConfigTransformer::new(Arc::new(Short));
        let err = t
            .transform_book(&book(), json!({"image": "a.png", "audio": "b.mp3"}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "content_storage_unavailable");
    }
}
