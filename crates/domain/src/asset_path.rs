//! Book-relative asset paths: normalising the authoring tool's paths found in config.json and
//! refusing anything that would leave the book.
//!
//! Everything here is pure and total: any `&str` gives either a normalised path or a typed
//! [`PathRejection`], never a panic.

use std::fmt;

use percent_encoding::percent_decode_str;

/// S3's own limit on object key length (bytes); a longer path cannot name an object.
const MAX_PATH_BYTES: usize = 1024;

/// A book in DCS's storage layout: `{publisher name}/books/{book_name}/...` in bucket
/// `publishers`, plus the LMS-facing id used in proxy URLs and activity keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BookRef {
    id: i64,
    publisher: String,
    book_name: String,
}

impl BookRef {
    /// Checks that both names are single, non-traversing key segments: a name with `/` would
    /// move every object key of the book somewhere else.
    pub fn new(
        id: i64,
        publisher: impl Into<String>,
        book_name: impl Into<String>,
    ) -> Result<Self, InvalidBookRef> {
        let publisher = publisher.into();
        let book_name = book_name.into();
        check_name("publisher", &publisher)?;
        check_name("book", &book_name)?;
        Ok(Self {
            id,
            publisher,
            book_name,
        })
    }

    /// The DCS book id.
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The publisher's name (DCS storage is keyed by name, not id).
    pub fn publisher(&self) -> &str {
        &self.publisher
    }

    /// The book's `book_name` (the zip stem), as in `./books/{book_name}/...`.
    pub fn book_name(&self) -> &str {
        &self.book_name
    }

    /// The object key of `path` in DCS's layout: `{publisher}/books/{book_name}/{path}`.
    pub fn object_key(&self, path: &BookAssetPath) -> String {
        let mut key =
            String::with_capacity(self.publisher.len() + self.book_name.len() + path.0.len() + 8);
        key.push_str(&self.publisher);
        key.push_str("/books/");
        key.push_str(&self.book_name);
        key.push('/');
        key.push_str(&path.0);
        key
    }
}

/// A publisher or book name that cannot be one segment of an object key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} name {name:?}: {reason}")]
pub struct InvalidBookRef {
    /// `publisher` or `book`.
    pub what: &'static str,
    /// The name (at most 200 characters of it).
    pub name: String,
    /// Why.
    pub reason: &'static str,
}

fn check_name(what: &'static str, name: &str) -> Result<(), InvalidBookRef> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not names")
    } else if name.contains('/') || name.contains('\\') {
        Some("contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(InvalidBookRef {
            what,
            name: name.chars().take(200).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A normalised path relative to the book root, e.g. `images/M1/p2s1.png`: non-empty, `/`
/// separated, no empty, `.` or `..` segments, no backslash, no control characters, already
/// percent-decoded, at most 1024 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BookAssetPath(String);

impl BookAssetPath {
    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The lower-cased extension of the last segment, if any (`mp3`, `png`).
    pub fn extension(&self) -> Option<String> {
        let last = self.0.rsplit('/').next().unwrap_or(&self.0);
        let (stem, ext) = last.rsplit_once('.')?;
        (!stem.is_empty() && !ext.is_empty()).then(|| ext.to_ascii_lowercase())
    }
}

impl fmt::Debug for BookAssetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for BookAssetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BookAssetPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a path was refused. Each has a stable [`code`](PathRejection::code) for logs and
/// metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRejection {
    /// Nothing left once prefixes, `.` segments and slashes are removed.
    #[error("empty path")]
    Empty,
    /// NUL or another control character, raw or percent-encoded.
    #[error("control characters are not allowed")]
    ControlCharacter,
    /// Percent-decoding gave bytes that are not UTF-8.
    #[error("percent-encoding does not decode to UTF-8")]
    InvalidEncoding,
    /// A `..` segment, raw or percent-encoded (`%2e%2e`, `..%2F`).
    #[error("`..` segments are not allowed")]
    Traversal,
    /// Still percent-encoded after one decode in a way that would form a separator or a
    /// `.`/`..` segment if anything decoded it again (`%252e%252e`, `%252F`).
    #[error("double percent-encoding of a separator or dot segment")]
    DoubleEncoded,
    /// `./books/{other}/...`: an asset of another book.
    #[error("path belongs to another book ({book:?})")]
    OtherBook {
        /// The other book's name (at most 100 characters of it).
        book: String,
    },
    /// Longer than an object key may be.
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
}

impl PathRejection {
    /// A stable code: `empty`, `control_character`, `invalid_encoding`, `traversal`,
    /// `double_encoded`, `other_book`, `too_long`.
    pub fn code(&self) -> &'static str {
        match self {
            PathRejection::Empty => "empty",
            PathRejection::ControlCharacter => "control_character",
            PathRejection::InvalidEncoding => "invalid_encoding",
            PathRejection::Traversal => "traversal",
            PathRejection::DoubleEncoded => "double_encoded",
            PathRejection::OtherBook { .. } => "other_book",
            PathRejection::TooLong => "too_long",
        }
    }
}

/// Normalises a path from a config of book `book_name` to the book-relative path.
///
/// Accepted spellings of the same asset: `./books/B/x`, `books/B/x`, `/books/B/x`, `/x`, `x`,
/// `.\books\B\x`, `./books/B//x`, `./books/B/./x`, `./books/B/images%2Fx` (all give `x` or
/// `images/x`). The steps, in this order:
///
/// 1. control characters in the raw string: refused;
/// 2. percent-decode **once** (a `%` not followed by two hex digits stays literal, so
///    `100% juice.png` is fine); non-UTF-8 or decoded control characters: refused;
/// 3. `\` becomes `/` (authoring tools on Windows);
/// 4. empty and `.` segments are dropped; any `..` segment is refused, even one that would
///    stay inside the book (`a/../b`), as DCS itself refuses `..`;
/// 5. a segment that would decode again to `.`, `..`, or something with a separator or a
///    control character is refused, so a second decoder further down cannot be tricked;
/// 6. a leading `books/{book_name}/` is removed, as often as it repeats; `books/{other}/...`
///    (three or more segments), also after such a prefix, is another book's asset and refused.
///
/// So a normalised path never starts with a book prefix, and the proxy URL made of it
/// (segments percent-encoded) normalises back to the same path on the asset routes.
///
/// Because a `books` folder inside the book cannot be told apart from another book's prefix,
/// `books/{x}/{y}` is always read as book `x`.
pub fn normalize(raw: &str, book_name: &str) -> Result<BookAssetPath, PathRejection> {
    if raw.chars().any(char::is_control) {
        return Err(PathRejection::ControlCharacter);
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathRejection::InvalidEncoding)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathRejection::ControlCharacter);
    }

    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => return Err(PathRejection::Traversal),
            s => {
                if s.contains('%') && decodes_to_something_dangerous(s) {
                    return Err(PathRejection::DoubleEncoded);
                }
                segments.push(s);
            }
        }
    }

    // Repeatedly: what is left is itself read by this rule when it comes back in an asset
    // URL, so `books/{book_name}/books/{book_name}/x` must give `x` here too, and
    // `books/{book_name}/books/{other}/x` must be refused here too.
    let mut rest: &[&str] = segments.as_slice();
    loop {
        match rest {
            ["books", book, tail @ ..] if *book == book_name => rest = tail,
            ["books", other, _, ..] => {
                return Err(PathRejection::OtherBook {
                    book: other.chars().take(100).collect(),
                });
            }
            _ => break,
        }
    }
    if rest.is_empty() {
        return Err(PathRejection::Empty);
    }
    let path = rest.join("/");
    if path.len() > MAX_PATH_BYTES {
        return Err(PathRejection::TooLong);
    }
    Ok(BookAssetPath(path))
}

/// Would a second percent-decode of this (already decoded once) segment make a separator, a
/// control character or a dot segment?
fn decodes_to_something_dangerous(segment: &str) -> bool {
    let again = percent_decode_str(segment).decode_utf8_lossy();
    again.contains(['/', '\\'])
        || again.chars().any(char::is_control)
        || again == "."
        || again == ".."
}

/// Does `s` look like an authoring-tool asset path of *some* book, so that a string in a field
/// we do not know is treated as a path? True for `./books/{name}/...` and `.\books\{name}\...`
/// (any book: another book's prefix is then refused, not passed through), and for bare
/// `books/{book_name}/...` / `books\{book_name}\...` of this book only, since a bare
/// `books/...` is plausible prose.
pub fn looks_like_book_path(s: &str, book_name: &str) -> bool {
    fn after_books(s: &str) -> Option<&str> {
        let rest = s.strip_prefix("books")?;
        rest.strip_prefix('/').or_else(|| rest.strip_prefix('\\'))
    }
    if let Some(rest) = s
        .strip_prefix("./")
        .or_else(|| s.strip_prefix(".\\"))
        .and_then(after_books)
    {
        // `./books/{name}/` with a non-empty name and a separator after it.
        return rest.find(['/', '\\']).is_some_and(|i| i > 0);
    }
    after_books(s)
        .and_then(|rest| rest.strip_prefix(book_name))
        .is_some_and(|after| !book_name.is_empty() && after.starts_with(['/', '\\']))
}

/// Is `s` an absolute URL (`https://...`, `data:...`) rather than a path? Such values in
/// path fields are external links chosen by the author and are left as they are.
pub fn is_external_url(s: &str) -> bool {
    if s.starts_with("data:") {
        return true;
    }
    let Some((scheme, _)) = s.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "FLOWDEMO";

    fn ok(raw: &str) -> String {
        normalize(raw, B)
            .unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
            .0
    }

    fn err(raw: &str) -> PathRejection {
        match normalize(raw, B) {
            Ok(p) => panic!("{raw:?} accepted as {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn spellings_of_the_same_path() {
        for raw in [
            "./books/FLOWDEMO/images/M1/p2s1.png",
            "books/FLOWDEMO/images/M1/p2s1.png",
            "/books/FLOWDEMO/images/M1/p2s1.png",
            "/images/M1/p2s1.png",
            "images/M1/p2s1.png",
            ".\\books\\FLOWDEMO\\images\\M1\\p2s1.png",
            "books\\FLOWDEMO\\images/M1\\p2s1.png",
            "./books//FLOWDEMO///images//M1/p2s1.png",
            "./books/FLOWDEMO/./images/./M1/p2s1.png",
            "././images/M1/p2s1.png",
            "./books/FLOWDEMO/images%2FM1%2Fp2s1.png",
            "%2E/books/FLOWDEMO/images/M1/p2s1.png",
            "./books/FLOWDEMO/images/M1/p2s1.png/",
            "%2fimages%2fM1%2fp2s1.png",
            "images%5CM1%5Cp2s1.png",
        ] {
            assert_eq!(ok(raw), "images/M1/p2s1.png", "{raw:?}");
        }
    }

    #[test]
    fn names_that_merely_contain_dots_or_percent_are_kept() {
        assert_eq!(ok("a..b.png"), "a..b.png");
        assert_eq!(ok("..a/b.."), "..a/b..");
        assert_eq!(ok(".hidden"), ".hidden");
        assert_eq!(ok("100% juice.png"), "100% juice.png");
        assert_eq!(ok("sp%20ace/%C3%A4.png"), "sp ace/ä.png");
        assert_eq!(ok("100%25.png"), "100%.png");
        // Decoded once only: `%2541` is the literal name `%41`, harmless if decoded again.
        assert_eq!(ok("a%2541.png"), "a%41.png");
        // A bare `books/x` (two segments) is a file, not a book prefix.
        assert_eq!(ok("books/cover.png"), "books/cover.png");
        assert_eq!(ok("./books/FLOWDEMOX"), "books/FLOWDEMOX");
    }

    #[test]
    fn traversal_in_every_spelling_is_refused() {
        for raw in [
            "..",
            "../x",
            "./books/FLOWDEMO/../OTHER/x.png",
            "./books/FLOWDEMO/../../etc/passwd",
            "images/../x.png",
            "images/..",
            "..\\x",
            "images\\..\\..\\x",
            "%2e%2e/x",
            "%2E%2E%2Fx",
            "..%2Fx",
            "..%5Cx",
            "images%2F..%2F..%2Fx",
            "./books/FLOWDEMO/%2e%2e/%2e%2e/x",
            ".%2e/x",
        ] {
            assert_eq!(err(raw), PathRejection::Traversal, "{raw:?}");
        }
    }

    #[test]
    fn double_encoding_is_refused() {
        for raw in [
            "%252e%252e/x",
            "a%252Fb",
            "a%255Cb",
            "%252e",
            "x%2500y",
            "./books/FLOWDEMO/%252E%252E%252F%252E%252E%252Fsecret",
        ] {
            assert_eq!(err(raw), PathRejection::DoubleEncoded, "{raw:?}");
        }
    }

    #[test]
    fn other_books_are_refused() {
        for raw in [
            "./books/OTHER/images/x.png",
            "books/OTHER/x.png",
            "/books/OTHER/x.png",
            ".\\books\\OTHER\\x.png",
            "./books/OTHER%2Fx.png",
            "books%2FOTHER%2Fx.png",
            "./books/flowdemo/x.png",
        ] {
            assert!(
                matches!(err(raw), PathRejection::OtherBook { .. }),
                "{raw:?}"
            );
        }
        assert_eq!(
            err("./books/OTHER/x"),
            PathRejection::OtherBook {
                book: "OTHER".into()
            }
        );
    }

    #[test]
    fn a_book_prefix_after_the_book_prefix_is_read_the_same_way() {
        // Found by fuzzing: `books/FLOWDEMO/x.png` used to be given out, and its proxy URL
        // came back to the asset route as `x.png`, another asset.
        assert_eq!(ok("./books/FLOWDEMO/books/FLOWDEMO/x.png"), "x.png");
        assert_eq!(
            ok("books/FLOWDEMO/books/FLOWDEMO/books/x.png"),
            "books/x.png"
        );
        assert_eq!(
            err("./books/FLOWDEMO/books/OTHER/x.png"),
            PathRejection::OtherBook {
                book: "OTHER".into()
            }
        );
        assert_eq!(err("./books/FLOWDEMO/books/FLOWDEMO"), PathRejection::Empty);
        for raw in [
            "./books/FLOWDEMO/books/FLOWDEMO/x.png",
            "books/FLOWDEMO/books/cover.png",
        ] {
            let once = ok(raw);
            assert_eq!(ok(&once), once, "{raw:?}");
        }
    }

    #[test]
    fn control_characters_empty_encoding_and_length() {
        for raw in [
            "a\0b", "a\nb", "a\tb", "a\u{7f}", "a%00b", "a%0Ab", "%7F", "\u{85}x",
        ] {
            assert_eq!(err(raw), PathRejection::ControlCharacter, "{raw:?}");
        }
        for raw in [
            "",
            "/",
            "./",
            ".",
            "./books/FLOWDEMO/",
            "./books/FLOWDEMO",
            "//",
            "\\",
        ] {
            assert_eq!(err(raw), PathRejection::Empty, "{raw:?}");
        }
        assert_eq!(err("%FF.png"), PathRejection::InvalidEncoding);
        assert_eq!(err("%C3%28"), PathRejection::InvalidEncoding);
        assert_eq!(ok(&"a".repeat(1024)).len(), 1024);
        assert_eq!(err(&"a".repeat(1025)), PathRejection::TooLong);
        assert_eq!(
            err(&format!("./books/FLOWDEMO/{}", "é".repeat(600))),
            PathRejection::TooLong
        );
    }

    #[test]
    fn normalised_paths_are_fixed_points() {
        // Normalising the result again changes nothing: the proxy route can re-check a path
        // taken from a URL with the same function.
        for raw in [
            "./books/FLOWDEMO/images/M1/p2s1.png",
            "100%25.png",
            "sp%20ace/%C3%A4.png",
            "a..b/.c",
        ] {
            let once = ok(raw);
            if once.contains('%') {
                continue; // a literal `%` would be decoded again: not a fixed point by design
            }
            assert_eq!(ok(&once), once, "{raw:?}");
        }
    }

    #[test]
    fn no_panic_on_arbitrary_input() {
        // A small deterministic fuzz: every string over an alphabet of the tricky characters,
        // up to length 4, plus random longer ones. Each result must satisfy the invariants.
        let alphabet = [
            '.', '/', '\\', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', 'a', '\0', 'é',
        ];
        let mut inputs: Vec<String> = vec![String::new()];
        let mut frontier = inputs.clone();
        for _ in 0..4 {
            let mut next = Vec::new();
            for s in &frontier {
                for c in alphabet {
                    let mut t = s.clone();
                    t.push(c);
                    next.push(t);
                }
            }
            inputs.extend(next.iter().cloned());
            frontier = next;
        }
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..20_000 {
            let len = (seed % 24) as usize;
            let mut s = String::new();
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            inputs.push(format!("./books/{B}/{s}"));
            inputs.push(s);
        }
        for raw in &inputs {
            if let Ok(p) = normalize(raw, B) {
                let p = p.as_str();
                assert!(
                    !p.is_empty() && p.len() <= MAX_PATH_BYTES,
                    "{raw:?} -> {p:?}"
                );
                assert!(!p.starts_with('/') && !p.ends_with('/'), "{raw:?} -> {p:?}");
                assert!(
                    !p.contains('\\') && !p.chars().any(char::is_control),
                    "{raw:?}"
                );
                for seg in p.split('/') {
                    assert!(!matches!(seg, "" | "." | ".."), "{raw:?} -> {p:?}");
                    let again = percent_decode_str(seg).decode_utf8_lossy();
                    assert!(
                        !matches!(again.as_ref(), "." | "..") && !again.contains(['/', '\\']),
                        "{raw:?} -> {p:?}"
                    );
                }
            }
            let _ = looks_like_book_path(raw, B);
            let _ = is_external_url(raw);
        }
    }

    #[test]
    fn book_path_detection() {
        for s in [
            "./books/FLOWDEMO/x.png",
            "./books/OTHER/x.png",
            ".\\books\\FLOWDEMO\\x.png",
            "books/FLOWDEMO/x.png",
            "books\\FLOWDEMO\\x.png",
            "./books/FLOWDEMO/../../x",
        ] {
            assert!(looks_like_book_path(s, B), "{s:?}");
        }
        for s in [
            "and/or",
            "Mr. Smith",
            "3.5",
            "images/x.png",
            "books/OTHER/x.png",
            "books/FLOWDEMOX/x.png",
            "./books/",
            "./books//x",
            "./books/FLOWDEMO",
            "books",
            "the books/magazines/papers",
            "",
        ] {
            assert!(!looks_like_book_path(s, B), "{s:?}");
        }
        assert!(!looks_like_book_path("books//x", ""));
    }

    #[test]
    fn external_urls() {
        for s in [
            "https://x.test/a.mp4",
            "http://a",
            "data:image/png;base64,AA",
            "s3+x://b",
        ] {
            assert!(is_external_url(s), "{s:?}");
        }
        for s in [
            "images/a.png",
            "://x",
            "1http://x",
            "./books/B/x",
            "a b://c",
            "",
        ] {
            assert!(!is_external_url(s), "{s:?}");
        }
    }

    #[test]
    fn book_refs_and_object_keys() {
        let book = BookRef::new(1, "Dream Press", "FLOWDEMO").unwrap();
        let path = normalize("./books/FLOWDEMO/images/M1/p2s1.png", "FLOWDEMO").unwrap();
        assert_eq!(
            book.object_key(&path),
            "Dream Press/books/FLOWDEMO/images/M1/p2s1.png"
        );
        for (publisher, name) in [
            ("", "B"),
            ("P", ""),
            ("..", "B"),
            ("P", "."),
            ("A/B", "x"),
            ("P", "a\\b"),
            ("P", "x\n"),
        ] {
            assert!(
                BookRef::new(1, publisher, name).is_err(),
                "{publisher:?}/{name:?}"
            );
        }
        assert_eq!(path.extension().as_deref(), Some("png"));
        assert_eq!(normalize("a/.hidden", B).unwrap().extension(), None);
        assert_eq!(normalize("a.b/c", B).unwrap().extension(), None);
        assert_eq!(
            normalize("x.MP3", B).unwrap().extension().as_deref(),
            Some("mp3")
        );
    }
}
