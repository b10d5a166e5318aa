//! Validated asset paths and percent-encoding of everything that goes into a URL.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::DcsError;

/// Characters left as they are: RFC 3986 "unreserved" (`A-Z a-z 0-9 - . _ ~`). Everything
/// else, including `/`, `%`, `+`, `&`, `#`, `?`, space and non-ASCII, is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (a publisher name, a book name).
/// A `/` inside a name is encoded, so it stays one segment.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Percent-encodes a query value (`path=`, ...).
pub fn encode_query_value(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// A path of an object relative to a book root, e.g. `images/M1/p2s1.png`, checked segment by
/// segment before it goes anywhere near a URL.
///
/// Refused: empty paths, a leading `/` (absolute), empty segments (`a//b`, a trailing `/`),
/// `.` and `..` segments, backslashes, NUL and other control characters. Names that merely
/// contain dots (`a..b.png`, `.hidden`) are fine.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetPath(String);

impl AssetPath {
    /// Validates `path`.
    pub fn parse(path: &str) -> Result<AssetPath, DcsError> {
        let invalid = |reason: &'static str| DcsError::InvalidPath {
            path: path.chars().take(200).collect(),
            reason,
        };
        if path.is_empty() {
            return Err(invalid("empty path"));
        }
        if path.starts_with('/') {
            return Err(invalid("absolute paths are not allowed"));
        }
        if path.contains('\\') {
            return Err(invalid("backslashes are not allowed"));
        }
        if path.chars().any(|c| c == '\0') {
            return Err(invalid("NUL characters are not allowed"));
        }
        if path.chars().any(char::is_control) {
            return Err(invalid("control characters are not allowed"));
        }
        for segment in path.split('/') {
            match segment {
                "" => return Err(invalid("empty path segments are not allowed")),
                "." | ".." => return Err(invalid("`.` and `..` segments are not allowed")),
                _ => {}
            }
        }
        Ok(AssetPath(path.to_owned()))
    }

    /// Strips the authoring-tool prefix `./books/{book_name}/` used inside config.json
    /// (e.g. `./books/FLOWDEMO/images/M1/p2s1.png` -> `images/M1/p2s1.png`), then validates.
    pub fn from_config_path(config_path: &str, book_name: &str) -> Result<AssetPath, DcsError> {
        let p = config_path.strip_prefix("./").unwrap_or(config_path);
        let prefix = format!("books/{book_name}/");
        let p = p.strip_prefix(prefix.as_str()).unwrap_or(p);
        AssetPath::parse(p)
    }

    /// The validated path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The path percent-encoded as one query value (`/` becomes `%2F`, as DCS expects).
    pub fn to_query_value(&self) -> String {
        encode_query_value(&self.0)
    }
}

impl fmt::Debug for AssetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AssetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AssetPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for AssetPath {
    type Err = DcsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AssetPath::parse(s)
    }
}

impl TryFrom<&str> for AssetPath {
    type Error = DcsError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        AssetPath::parse(s)
    }
}

/// The storage route prefix of a book: `/storage/books/{publisher}/{book}`.
pub(crate) fn book_storage_path(publisher: &str, book: &str) -> Result<String, DcsError> {
    check_name("publisher", publisher)?;
    check_name("book", book)?;
    Ok(format!(
        "/storage/books/{}/{}",
        encode_segment(publisher),
        encode_segment(book)
    ))
}

/// Publisher and book names are encoded, not restricted, except where no encoding helps:
/// empty names and `.`/`..` change the route, and DCS's server decodes `%2F` before routing,
/// so a `/` would split the segment and address another resource (the tree of publisher
/// `A/B`, book `config` would be `/storage/books/A/B/config`: book `B`'s config). DCS refuses
/// `/` and `\` in these segments itself.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), DcsError> {
    let reason = if name.is_empty() {
        Some("empty name")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not names")
    } else if name.contains('/') || name.contains('\\') {
        Some("DCS cannot address a name with `/` or `\\`")
    } else if name.chars().any(char::is_control) {
        Some("control characters are not allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(DcsError::InvalidArgument {
            message: format!("invalid {what} name {name:?}: {reason}"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_validation_table() {
        let ok = [
            "config.json",
            "images/M1/p2s1.png",
            "a..b.png",
            "..a",
            "a..",
            ".hidden",
            "dir.d/file",
            "sp ace/ä.png",
            "100% + más/#1&2.mp3",
            "a/b/c/d/e/f.txt",
        ];
        for p in ok {
            let parsed = AssetPath::parse(p).unwrap_or_else(|e| panic!("{p:?} refused: {e}"));
            assert_eq!(parsed.as_str(), p);
        }
        let bad = [
            ("", "empty path"),
            ("/etc/passwd", "absolute"),
            ("/", "absolute"),
            ("..", "`..`"),
            (".", "`..`"),
            ("../x", "`..`"),
            ("a/../b", "`..`"),
            ("a/./b", "`..`"),
            ("a/..", "`..`"),
            ("a//b", "empty path segments"),
            ("a/", "empty path segments"),
            ("a\\b", "backslashes"),
            ("..\\x", "backslashes"),
            ("a\0b", "NUL"),
            ("a\nb", "control"),
            ("a\tb", "control"),
            ("a\u{7f}b", "control"),
        ];
        for (p, why) in bad {
            let err = AssetPath::parse(p).expect_err(p);
            assert_eq!(err.code(), "dcs_invalid_path", "{p:?}");
            assert!(err.to_string().contains(why), "{p:?}: {err}");
        }
    }

    #[test]
    fn encoding_table() {
        let cases = [
            ("Dream Press", "Dream%20Press"),
            ("A&B #1", "A%26B%20%231"),
            ("100% + más", "100%25%20%2B%20m%C3%A1s"),
            ("Ünïcödé", "%C3%9Cn%C3%AFc%C3%B6d%C3%A9"),
            ("a/b", "a%2Fb"),
            ("a?b=c", "a%3Fb%3Dc"),
            ("FLOWDEMO", "FLOWDEMO"),
            ("x-y_z.~", "x-y_z.~"),
        ];
        for (raw, want) in cases {
            assert_eq!(encode_segment(raw), want, "{raw}");
            assert_eq!(encode_query_value(raw), want, "{raw}");
        }
        assert_eq!(
            AssetPath::parse("images/HB/modules/M1/pages/01.png")
                .unwrap()
                .to_query_value(),
            "images%2FHB%2Fmodules%2FM1%2Fpages%2F01.png"
        );
        assert_eq!(
            book_storage_path("A&B #1", "100% + más").unwrap(),
            "/storage/books/A%26B%20%231/100%25%20%2B%20m%C3%A1s"
        );
        assert!(book_storage_path("", "x").is_err());
        assert!(book_storage_path("..", "x").is_err());
        assert!(book_storage_path("p", ".").is_err());
        for (publisher, book) in [
            ("A/B", "config"),
            ("p", "a/b"),
            ("a\\b", "x"),
            ("p", "x\nconfig"),
        ] {
            let err = book_storage_path(publisher, book).unwrap_err();
            assert_eq!(err.code(), "dcs_invalid_argument", "{publisher:?}/{book:?}");
        }
        assert_eq!(
            book_storage_path("a..b", "..x").unwrap(),
            "/storage/books/a..b/..x"
        );
    }

    #[test]
    fn config_paths_are_stripped() {
        assert_eq!(
            AssetPath::from_config_path("./books/FLOWDEMO/images/M1/p2s1.png", "FLOWDEMO")
                .unwrap()
                .as_str(),
            "images/M1/p2s1.png"
        );
        assert_eq!(
            AssetPath::from_config_path("audio/01.mp3", "FLOWDEMO")
                .unwrap()
                .as_str(),
            "audio/01.mp3"
        );
        assert!(AssetPath::from_config_path("./books/FLOWDEMO/../x", "FLOWDEMO").is_err());
    }
}
