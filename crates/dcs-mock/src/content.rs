//! Book content: reading book folders like DCS's upload does, and the object store
//! (`{publisher}/books/{book_name}/{path}` keys, as in the `publishers` bucket).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::Serialize;

use crate::json::{self, JsonValue};
use crate::model::{BookStatus, ContentError, NewBook};

/// Where an object's bytes live.
#[derive(Debug)]
pub(crate) enum ObjectSource {
    File(PathBuf),
    Memory(Bytes),
}

/// One stored object, with what S3 would report about it.
#[derive(Debug)]
pub(crate) struct StoredObject {
    pub(crate) source: ObjectSource,
    pub(crate) size: u64,
    /// Hex MD5 of the bytes: the ETag MinIO reports for a single-part upload.
    pub(crate) md5_hex: String,
    pub(crate) last_modified: DateTime<Utc>,
}

impl StoredObject {
    pub(crate) fn from_bytes(bytes: Bytes) -> Self {
        StoredObject {
            md5_hex: hex::encode(Md5::digest(&bytes)),
            size: bytes.len() as u64,
            source: ObjectSource::Memory(bytes),
            last_modified: json::now(),
        }
    }

    /// Hashes the file once up front; its bytes are read again on each request.
    pub(crate) fn from_file(path: &Path) -> io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Md5::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            size += read as u64;
            hasher.update(&buffer[..read]);
        }
        Ok(StoredObject {
            source: ObjectSource::File(path.to_owned()),
            size,
            md5_hex: hex::encode(hasher.finalize()),
            last_modified: json::now(),
        })
    }

    /// The quoted ETag header value.
    pub(crate) fn etag(&self) -> String {
        format!("\"{}\"", self.md5_hex)
    }

    /// Reads `len` bytes starting at `start` (the caller has checked the bounds).
    pub(crate) async fn read_range(&self, start: u64, len: u64) -> io::Result<Bytes> {
        match &self.source {
            ObjectSource::Memory(bytes) => {
                let start = usize::try_from(start).map_err(io::Error::other)?;
                let end = start + usize::try_from(len).map_err(io::Error::other)?;
                Ok(bytes.slice(start..end))
            }
            ObjectSource::File(path) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut file = tokio::fs::File::open(path).await?;
                file.seek(io::SeekFrom::Start(start)).await?;
                let mut out = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
                file.read_exact(&mut out).await?;
                Ok(Bytes::from(out))
            }
        }
    }

    pub(crate) async fn read_all(&self) -> io::Result<Bytes> {
        self.read_range(0, self.size).await
    }
}

/// A book read from a folder or assembled from files, before it gets ids.
#[derive(Debug)]
pub(crate) struct PreparedBook {
    pub(crate) publisher: String,
    pub(crate) book_name: String,
    pub(crate) book_title: Option<String>,
    pub(crate) book_cover: Option<String>,
    pub(crate) activity_count: Option<i64>,
    pub(crate) activity_details: Option<serde_json::Value>,
    pub(crate) total_size: Option<i64>,
    pub(crate) language: String,
    pub(crate) category: Option<String>,
    pub(crate) status: BookStatus,
    /// Relative path -> object.
    pub(crate) files: Vec<(String, Arc<StoredObject>)>,
    /// The publisher logo named by `publisher_logo_path`: (file name, object).
    pub(crate) logo: Option<(String, Arc<StoredObject>)>,
}

/// Metadata DCS's upload takes from `config.json` (`_coalesce_metadata` and
/// `_extract_additional_metadata`).
#[derive(Debug, Default, PartialEq)]
struct ConfigMetadata {
    publisher: Option<String>,
    book_title: Option<String>,
    book_cover: Option<String>,
    language: Option<String>,
    category: Option<String>,
    status: Option<String>,
    activity_count: i64,
    activity_details: serde_json::Map<String, serde_json::Value>,
    publisher_logo_path: Option<String>,
}

const PUBLISHER_ALIASES: &[&str] = &["publisher", "publisher_name", "publisherName"];
const LANGUAGE_ALIASES: &[&str] = &["language", "lang"];
const CATEGORY_ALIASES: &[&str] = &["category", "subject", "book_category", "bookCategory"];
const STATUS_ALIASES: &[&str] = &["status", "book_status", "bookStatus"];

/// The first alias holding a non-blank string (stripped), like DCS's `_first_non_empty`.
fn first_non_empty(config: &JsonValue, aliases: &[&str]) -> Option<String> {
    aliases.iter().find_map(|alias| {
        config
            .get(alias)
            .and_then(JsonValue::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    })
}

fn read_config_metadata(config: &JsonValue) -> ConfigMetadata {
    let mut meta = ConfigMetadata {
        publisher: first_non_empty(config, PUBLISHER_ALIASES),
        book_title: config
            .get("book_title")
            .and_then(JsonValue::as_str)
            .map(|s| s.trim().to_owned()),
        book_cover: config
            .get("book_cover")
            .and_then(JsonValue::as_str)
            .filter(|s| !s.is_empty())
            .map(|path| basename(path).to_owned()),
        language: first_non_empty(config, LANGUAGE_ALIASES),
        category: first_non_empty(config, CATEGORY_ALIASES),
        status: first_non_empty(config, STATUS_ALIASES),
        publisher_logo_path: config
            .get("publisher_logo_path")
            .and_then(JsonValue::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        ..ConfigMetadata::default()
    };
    count_activities(config, &mut meta);
    meta
}

/// Counts every object that has an `activity` key, and tallies `activity.type` strings.
fn count_activities(value: &JsonValue, meta: &mut ConfigMetadata) {
    match value {
        JsonValue::Object(pairs) => {
            if let Some(activity) = value.get("activity") {
                meta.activity_count += 1;
                if let Some(kind) = activity.get("type").and_then(JsonValue::as_str) {
                    let slot = meta
                        .activity_details
                        .entry(kind.to_owned())
                        .or_insert(serde_json::Value::from(0));
                    *slot = serde_json::Value::from(slot.as_i64().unwrap_or(0) + 1);
                }
            }
            for (_, child) in pairs {
                count_activities(child, meta);
            }
        }
        JsonValue::Array(items) => {
            for item in items {
                count_activities(item, meta);
            }
        }
        _ => {}
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Upload semantics: a missing or draft status becomes `published`.
fn upload_status(raw: Option<&str>, book_name: &str) -> Result<BookStatus, ContentError> {
    match raw {
        None => Ok(BookStatus::Published),
        Some(raw) => match BookStatus::parse(raw) {
            Some(BookStatus::Draft) => Ok(BookStatus::Published),
            Some(status) => Ok(status),
            None => Err(ContentError::InvalidBook(format!(
                "book '{book_name}': config.json contains invalid values (status '{raw}')"
            ))),
        },
    }
}

/// Turns the authoring tool's `./books/{book_name}/images/x.png` into `images/x.png`.
fn book_relative_path<'a>(authoring_path: &'a str, book_name: &str) -> &'a str {
    let trimmed = authoring_path.trim_start_matches("./");
    let prefix = format!("books/{book_name}/");
    trimmed.strip_prefix(prefix.as_str()).unwrap_or(trimmed)
}

/// Reads one book folder (blocking I/O).
pub(crate) fn prepare_book_dir(dir: &Path) -> Result<PreparedBook, ContentError> {
    let book_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| {
            ContentError::InvalidBook(format!("{}: book folder name is not UTF-8", dir.display()))
        })?
        .trim()
        .to_owned();
    let mut files = Vec::new();
    collect_files(dir, "", &mut files).map_err(|e| {
        ContentError::InvalidBook(format!("{}: cannot read book folder: {e}", dir.display()))
    })?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut objects = Vec::with_capacity(files.len());
    for (relative, path) in files {
        let object = StoredObject::from_file(&path)
            .map_err(|e| ContentError::InvalidBook(format!("{}: {e}", path.display())))?;
        objects.push((relative, Arc::new(object)));
    }
    let config_bytes = std::fs::read(dir.join("config.json")).map_err(|e| {
        ContentError::InvalidBook(format!(
            "{}: config.json is missing from the book folder ({e})",
            dir.display()
        ))
    })?;
    prepare_book(book_name, Some(&config_bytes), objects, None)
}

fn collect_files(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file name {:?} is not UTF-8", entry.file_name()),
            ));
        };
        let relative = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        // Follows symlinks, like zipping a folder does.
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            collect_files(&path, &relative, out)?;
        } else if meta.is_file() {
            out.push((relative, path));
        }
    }
    Ok(())
}

/// Builds a book from its files. Metadata comes from `config.json` when present; values set on
/// `overrides` (a [`NewBook`]) win over it.
fn prepare_book(
    book_name: String,
    config_bytes: Option<&[u8]>,
    files: Vec<(String, Arc<StoredObject>)>,
    overrides: Option<&NewBook>,
) -> Result<PreparedBook, ContentError> {
    let meta = match config_bytes {
        Some(bytes) => {
            let config = JsonValue::parse(bytes).map_err(|e| {
                ContentError::InvalidBook(format!(
                    "book '{book_name}': config.json is not valid JSON ({e})"
                ))
            })?;
            if !config.is_object() {
                return Err(ContentError::InvalidBook(format!(
                    "book '{book_name}': config.json must contain a JSON object"
                )));
            }
            Some(read_config_metadata(&config))
        }
        None => None,
    };
    let total_size = if files.is_empty() {
        None
    } else {
        Some(files.iter().map(|(_, o)| o.size as i64).sum())
    };
    let logo = meta
        .as_ref()
        .and_then(|m| m.publisher_logo_path.as_deref())
        .and_then(|path| {
            let relative = book_relative_path(path, &book_name);
            files
                .iter()
                .find(|(p, _)| p == relative)
                .map(|(p, o)| (basename(p).to_owned(), Arc::clone(o)))
        });

    let prepared = match (overrides, meta) {
        (Some(new), meta) => PreparedBook {
            publisher: new.publisher.trim().to_owned(),
            book_name: book_name.clone(),
            book_title: new
                .book_title
                .clone()
                .or_else(|| meta.as_ref().and_then(|m| m.book_title.clone())),
            book_cover: new
                .book_cover
                .clone()
                .or_else(|| meta.as_ref().and_then(|m| m.book_cover.clone())),
            activity_count: meta.as_ref().map(|m| m.activity_count),
            activity_details: meta
                .as_ref()
                .map(|m| serde_json::Value::Object(m.activity_details.clone())),
            total_size,
            language: new.language.clone(),
            category: new
                .category
                .clone()
                .or_else(|| meta.as_ref().and_then(|m| m.category.clone())),
            status: new.status,
            files,
            logo,
        },
        (None, Some(meta)) => {
            let publisher = meta.publisher.clone().ok_or_else(|| {
                ContentError::InvalidBook(format!(
                    "book '{book_name}': config.json is missing required fields: publisher_name"
                ))
            })?;
            PreparedBook {
                status: upload_status(meta.status.as_deref(), &book_name)?,
                publisher,
                book_name: book_name.clone(),
                book_title: meta.book_title,
                book_cover: meta.book_cover,
                activity_count: Some(meta.activity_count),
                activity_details: Some(serde_json::Value::Object(meta.activity_details)),
                total_size,
                language: meta.language.unwrap_or_else(|| "en".to_owned()),
                category: meta.category,
                files,
                logo,
            }
        }
        (None, None) => {
            return Err(ContentError::InvalidBook(format!(
                "book '{book_name}': config.json is missing from the archive"
            )));
        }
    };
    if prepared.publisher.is_empty() {
        return Err(ContentError::InvalidBook(format!(
            "book '{book_name}': publisher is required"
        )));
    }
    if prepared.book_name.is_empty() {
        return Err(ContentError::InvalidBook(
            "book name is required".to_owned(),
        ));
    }
    Ok(prepared)
}

/// [`NewBook`] -> [`PreparedBook`], validating the file paths.
pub(crate) fn prepare_new_book(new: &NewBook) -> Result<PreparedBook, ContentError> {
    let book_name = new.book_name.trim().to_owned();
    let mut files: Vec<(String, Arc<StoredObject>)> = Vec::with_capacity(new.files.len());
    for (path, bytes) in &new.files {
        let relative = normalize_relative_path(path)
            .map_err(|detail| ContentError::InvalidBook(format!("file '{path}': {detail}")))?;
        if relative.starts_with('/') {
            return Err(ContentError::InvalidBook(format!(
                "file '{path}': the path must be relative to the book root"
            )));
        }
        files.retain(|(p, _)| *p != relative);
        files.push((relative, Arc::new(StoredObject::from_bytes(bytes.clone()))));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let config = files
        .iter()
        .find(|(p, _)| p == "config.json")
        .and_then(|(_, o)| match &o.source {
            ObjectSource::Memory(bytes) => Some(bytes.clone()),
            ObjectSource::File(_) => None,
        });
    prepare_book(book_name, config.as_deref(), files, Some(new))
}

/// [`NewBook::from_dir`]: reads the folder, then exposes what it found as a [`NewBook`].
pub(crate) fn new_book_from_dir(dir: &Path) -> Result<NewBook, ContentError> {
    let prepared = prepare_book_dir(dir)?;
    let mut files = Vec::with_capacity(prepared.files.len());
    for (path, object) in &prepared.files {
        let bytes = match &object.source {
            ObjectSource::Memory(bytes) => bytes.clone(),
            ObjectSource::File(file) => Bytes::from(
                std::fs::read(file)
                    .map_err(|e| ContentError::InvalidBook(format!("{}: {e}", file.display())))?,
            ),
        };
        files.push((path.clone(), bytes));
    }
    Ok(NewBook {
        publisher: prepared.publisher,
        book_name: prepared.book_name,
        book_title: prepared.book_title,
        book_cover: prepared.book_cover,
        language: prepared.language,
        category: prepared.category,
        status: prepared.status,
        files,
    })
}

/// Reads every book folder under `books_dir` (sorted by folder name; hidden entries and plain
/// files are skipped).
pub(crate) fn load_books_dir(books_dir: &Path) -> io::Result<Vec<PreparedBook>> {
    let entries = std::fs::read_dir(books_dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot read the books directory {}: {e}",
                books_dir.display()
            ),
        )
    })?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        let hidden = entry
            .file_name()
            .to_str()
            .is_none_or(|n| n.starts_with('.'));
        if !hidden && std::fs::metadata(entry.path())?.is_dir() {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    dirs.iter()
        .map(|dir| {
            prepare_book_dir(dir)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
        })
        .collect()
}

/// DCS's `_sanitize_segment` for the `{publisher}` and `{book_name}` path segments.
pub(crate) fn sanitize_segment(segment: &str, label: &str) -> Result<String, String> {
    let sanitized = segment.trim();
    if sanitized.is_empty() {
        return Err(format!("{label} is required"));
    }
    if sanitized.contains('/') || sanitized.contains('\\') {
        return Err(format!("{label} contains invalid characters"));
    }
    if sanitized == ".." || sanitized == "." {
        return Err(format!("{label} is invalid"));
    }
    Ok(sanitized.to_owned())
}

/// DCS's `_normalize_relative_path` for the `path=` query of `/object` and `/presigned`.
pub(crate) fn normalize_relative_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err("path is required".to_owned());
    }
    let parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == ".." || *p == ".") {
        return Err("path must not traverse directories".to_owned());
    }
    let normalized = parts.join("/");
    if normalized.is_empty() {
        return Err("path is invalid".to_owned());
    }
    // PurePosixPath keeps a leading slash, which then becomes part of the object key.
    if trimmed.starts_with('/') {
        return Ok(format!("/{normalized}"));
    }
    Ok(normalized)
}

/// `{publisher}/books/{book_name}/`.
pub(crate) fn book_prefix(publisher: &str, book_name: &str) -> String {
    format!("{publisher}/books/{book_name}/")
}

/// One node of the storage listing tree; serializes like DCS's `list_objects_tree`.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct TreeNode {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    children: Vec<TreeNode>,
}

/// Builds the folder tree of every key under `prefix` (which ends with `/`).
pub(crate) fn tree(objects: &BTreeMap<String, Arc<StoredObject>>, prefix: &str) -> TreeNode {
    let mut root = TreeNode {
        path: prefix.to_owned(),
        kind: "folder",
        size: None,
        children: Vec::new(),
    };
    for (key, object) in objects.range(prefix.to_owned()..) {
        let Some(relative) = key.strip_prefix(prefix) else {
            break;
        };
        let parts: Vec<&str> = relative.split('/').collect();
        let mut node = &mut root;
        let mut folder_path = prefix.to_owned();
        for part in &parts[..parts.len() - 1] {
            folder_path.push_str(part);
            folder_path.push('/');
            let index = match node.children.iter().position(|c| c.path == folder_path) {
                Some(index) => index,
                None => {
                    node.children.push(TreeNode {
                        path: folder_path.clone(),
                        kind: "folder",
                        size: None,
                        children: Vec::new(),
                    });
                    node.children.len() - 1
                }
            };
            node = &mut node.children[index];
        }
        node.children.push(TreeNode {
            path: key.clone(),
            kind: "file",
            size: Some(object.size),
            children: Vec::new(),
        });
    }
    root
}

/// Content type by extension, DCS's `MEDIA_MIME_TYPES` table.
pub(crate) fn media_type(path: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        (".mp3", "audio/mpeg"),
        (".mp4", "video/mp4"),
        (".webm", "video/webm"),
        (".ogg", "audio/ogg"),
        (".wav", "audio/wav"),
        (".m4a", "audio/mp4"),
        (".aac", "audio/aac"),
        (".flac", "audio/flac"),
        (".srt", "text/plain"),
        (".vtt", "text/vtt"),
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".svg", "image/svg+xml"),
        (".pdf", "application/pdf"),
        (".json", "application/json"),
    ];
    let lower = path.to_ascii_lowercase();
    TABLE
        .iter()
        .find(|(ext, _)| lower.ends_with(ext))
        .map(|(_, mime)| *mime)
}

/// Cache-Control for `/object`: media is immutable, JSON private, the rest an hour.
pub(crate) fn object_cache_control(content_type: &str) -> &'static str {
    if content_type.starts_with("image/")
        || content_type.starts_with("audio/")
        || content_type.starts_with("video/")
    {
        "public, max-age=86400, immutable"
    } else if content_type == "application/json" {
        "private, max-age=3600"
    } else {
        "public, max-age=3600"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/books/FLOWDEMO")
    }

    #[test]
    fn sample_book_metadata_matches_the_recorded_upload() {
        let book = prepare_book_dir(&sample_dir()).unwrap();
        assert_eq!(book.publisher, "Dream Press");
        assert_eq!(book.book_name, "FLOWDEMO");
        assert_eq!(book.book_title.as_deref(), Some("Flow Demo English 1"));
        assert_eq!(book.book_cover.as_deref(), Some("book_cover.png"));
        assert_eq!(book.activity_count, Some(2));
        assert_eq!(
            book.activity_details,
            Some(serde_json::json!({"dragdroppicture": 1, "matchTheWords": 1}))
        );
        assert_eq!(book.total_size, Some(48873));
        assert_eq!(book.language, "en");
        assert_eq!(book.category.as_deref(), Some("English"));
        assert_eq!(book.status, BookStatus::Published);
        assert_eq!(book.files.len(), 13);
        let (logo_name, logo) = book.logo.as_ref().unwrap();
        assert_eq!(logo_name, "publisher_logo.png");
        assert_eq!(logo.size, 1294);
    }

    #[test]
    fn aliases_defaults_and_draft_upgrade_follow_the_upload() {
        let config = JsonValue::parse(
            br#"{"publisherName":"  Acme ","title":"ignored","book_title":" T ","lang":"","subject":"Math","status":"draft",
                 "x":[{"activity":{"type":"a"}},{"activity":"no type"},{"nested":{"activity":{"type":"a"}}}]}"#,
        )
        .unwrap();
        let meta = read_config_metadata(&config);
        assert_eq!(meta.publisher.as_deref(), Some("Acme"));
        assert_eq!(meta.book_title.as_deref(), Some("T"));
        assert_eq!(meta.language, None);
        assert_eq!(meta.category.as_deref(), Some("Math"));
        assert_eq!(meta.activity_count, 3);
        assert_eq!(
            serde_json::Value::Object(meta.activity_details),
            serde_json::json!({"a": 2})
        );
        assert_eq!(
            upload_status(meta.status.as_deref(), "B").unwrap(),
            BookStatus::Published
        );
        assert!(upload_status(Some("bogus"), "B").is_err());
    }

    #[test]
    fn relative_paths_are_normalized_like_dcs() {
        assert_eq!(
            normalize_relative_path("images//a.png/").unwrap(),
            "images/a.png"
        );
        assert_eq!(
            normalize_relative_path("../other/config.json").unwrap_err(),
            "path must not traverse directories"
        );
        assert_eq!(
            normalize_relative_path("a/./b").unwrap_err(),
            "path must not traverse directories"
        );
        assert_eq!(
            normalize_relative_path("  ").unwrap_err(),
            "path is required"
        );
        assert_eq!(normalize_relative_path("/").unwrap_err(), "path is invalid");
        assert_eq!(
            sanitize_segment("a/b", "publisher").unwrap_err(),
            "publisher contains invalid characters"
        );
        assert_eq!(
            sanitize_segment("..", "book name").unwrap_err(),
            "book name is invalid"
        );
        assert_eq!(sanitize_segment(" x ", "publisher").unwrap(), "x");
    }

    #[test]
    fn tree_lists_full_keys_in_key_order() {
        let mut objects = BTreeMap::new();
        for key in [
            "P/books/B/z.txt",
            "P/books/B/a/b/c.txt",
            "P/books/B/a/d.txt",
            "P/books/BB/x.txt",
        ] {
            objects.insert(
                key.to_owned(),
                Arc::new(StoredObject::from_bytes(Bytes::from_static(b"abc"))),
            );
        }
        let tree = serde_json::to_value(tree(&objects, "P/books/B/")).unwrap();
        assert_eq!(
            tree,
            serde_json::json!({"path":"P/books/B/","type":"folder","children":[
                {"path":"P/books/B/a/","type":"folder","children":[
                    {"path":"P/books/B/a/b/","type":"folder","children":[
                        {"path":"P/books/B/a/b/c.txt","type":"file","size":3,"children":[]}]},
                    {"path":"P/books/B/a/d.txt","type":"file","size":3,"children":[]}]},
                {"path":"P/books/B/z.txt","type":"file","size":3,"children":[]}]})
        );
    }

    #[test]
    fn media_types_and_cache_control_follow_the_extension() {
        assert_eq!(media_type("audio/01.MP3"), Some("audio/mpeg"));
        assert_eq!(media_type("config.json"), Some("application/json"));
        assert_eq!(media_type("notes.txt"), None);
        assert_eq!(
            object_cache_control("image/png"),
            "public, max-age=86400, immutable"
        );
        assert_eq!(
            object_cache_control("application/json"),
            "private, max-age=3600"
        );
        assert_eq!(
            object_cache_control("application/octet-stream"),
            "public, max-age=3600"
        );
    }
}
