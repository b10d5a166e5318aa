//! The rules for what teachers type: material names, file names, notes and links, and the
//! `Content-Disposition` a download carries.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Longest material or file name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Largest note, in bytes of UTF-8.
pub const MAX_NOTE_BYTES: usize = 50 * 1024;
/// Longest link, in characters.
pub const MAX_URL_CHARS: usize = 2000;
/// Longest file-name part of an object key, in bytes.
const MAX_KEY_NAME: usize = 100;

/// A name that cannot be used (the message is shown to the teacher).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("The {0} is empty.")]
    Empty(&'static str),
    #[error("The {what} has {chars} characters; at most {MAX_NAME_CHARS} are allowed.")]
    TooLong { what: &'static str, chars: usize },
    #[error("The {0} contains control characters.")]
    ControlCharacters(&'static str),
    #[error("The {0} may not contain '/', '\\' or be '.' or '..'.")]
    PathLike(&'static str),
}

/// Checks a name (`what` says which, for the message) and returns it trimmed.
pub fn check_name(name: &str, what: &'static str) -> Result<String, NameError> {
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacters(what));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(NameError::Empty(what));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(NameError::TooLong { what, chars });
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(NameError::PathLike(what));
    }
    Ok(name.to_owned())
}

/// A note that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("The note is empty.")]
    Empty,
    #[error("The note has {bytes} bytes; at most {MAX_NOTE_BYTES} are allowed.")]
    TooLarge { bytes: usize },
}

/// Checks a note's content.
pub fn check_note(content: &str) -> Result<(), NoteError> {
    if content.trim().is_empty() {
        return Err(NoteError::Empty);
    }
    if content.len() > MAX_NOTE_BYTES {
        return Err(NoteError::TooLarge {
            bytes: content.len(),
        });
    }
    Ok(())
}

/// A link that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("The link has {chars} characters; at most {MAX_URL_CHARS} are allowed.")]
    TooLong { chars: usize },
    #[error("The link is not a valid absolute URL.")]
    Invalid,
    #[error("Only http and https links are allowed.")]
    Scheme,
    #[error("Links may not carry a user name or password.")]
    Credentials,
}

/// Checks a link and returns it trimmed (as typed, not re-serialised, so the teacher sees
/// what they entered).
pub fn check_url(url: &str) -> Result<String, UrlError> {
    let url = url.trim();
    let chars = url.chars().count();
    if chars > MAX_URL_CHARS {
        return Err(UrlError::TooLong { chars });
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UrlError::Invalid);
    }
    let parsed = url::Url::parse(url).map_err(|_| UrlError::Invalid)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::Invalid);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(url.to_owned())
}

/// The file-name part of an object key: ASCII letters, digits, `.`, `-` and `_` (anything else
/// becomes `_`), at most 100 bytes with the extension kept. The material id before it keeps
/// keys unique, so two names never share a key.
pub fn key_safe_name(filename: &str) -> String {
    let mut safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = safe.trim_start_matches('.');
    if trimmed.len() != safe.len() {
        safe = trimmed.to_owned();
    }
    if safe.len() > MAX_KEY_NAME {
        let extension = safe
            .rsplit_once('.')
            .map(|(_, ext)| ext)
            .filter(|ext| ext.len() <= 10)
            .unwrap_or("");
        let keep = MAX_KEY_NAME - extension.len() - usize::from(!extension.is_empty());
        let mut short = safe[..keep].to_owned();
        if !extension.is_empty() {
            short.push('.');
            short.push_str(extension);
        }
        safe = short;
    }
    if safe.is_empty() { "file".into() } else { safe }
}

/// RFC 5987 `attr-char`: what stays unencoded in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` or `inline` with the file's name: a quoted ASCII fallback for old clients
/// and, when the name is not plain ASCII, `filename*=UTF-8''...` (RFC 6266, RFC 5987). The
/// value itself is always ASCII, so it fits an HTTP header and a presigned URL.
pub fn content_disposition(disposition: &str, filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fallback == filename {
        format!("{disposition}; filename=\"{filename}\"")
    } else {
        let encoded = utf8_percent_encode(filename, ATTR_CHAR);
        format!("{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(check_name("  Worksheet 1 ", "name").unwrap(), "Worksheet 1");
        assert_eq!(check_name("", "name"), Err(NameError::Empty("name")));
        assert!(matches!(
            check_name("../etc/passwd", "name"),
            Err(NameError::PathLike(_))
        ));
        assert!(matches!(
            check_name("a\\b", "name"),
            Err(NameError::PathLike(_))
        ));
        assert!(matches!(
            check_name("..", "name"),
            Err(NameError::PathLike(_))
        ));
        assert!(matches!(
            check_name("a\nb", "name"),
            Err(NameError::ControlCharacters(_))
        ));
        assert!(matches!(
            check_name("a\u{7}b", "name"),
            Err(NameError::ControlCharacters(_))
        ));
        assert!(matches!(
            check_name(&"x".repeat(300), "name"),
            Err(NameError::TooLong { chars: 300, .. })
        ));
        assert!(check_name(&"ü".repeat(255), "name").is_ok());
    }

    #[test]
    fn notes_and_links() {
        assert!(check_note("hello").is_ok());
        assert_eq!(check_note(" \n"), Err(NoteError::Empty));
        assert!(check_note(&"a".repeat(MAX_NOTE_BYTES)).is_ok());
        assert!(matches!(
            check_note(&"a".repeat(MAX_NOTE_BYTES + 1)),
            Err(NoteError::TooLarge { .. })
        ));

        assert_eq!(
            check_url(" https://example.org/a?b=c ").unwrap(),
            "https://example.org/a?b=c"
        );
        assert_eq!(check_url("javascript:alert(1)"), Err(UrlError::Scheme));
        assert_eq!(check_url("ftp://example.org/"), Err(UrlError::Scheme));
        assert_eq!(check_url("/relative"), Err(UrlError::Invalid));
        assert_eq!(
            check_url("https://u:p@example.org/"),
            Err(UrlError::Credentials)
        );
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_CHARS));
        assert!(matches!(check_url(&long), Err(UrlError::TooLong { .. })));
    }

    #[test]
    fn key_names_are_safe_short_and_keep_the_extension() {
        assert_eq!(
            key_safe_name("Lesson plan (v2).pdf"),
            "Lesson_plan__v2_.pdf"
        );
        assert_eq!(key_safe_name("Grüße.txt"), "Gr__e.txt");
        assert_eq!(key_safe_name("..hidden"), "hidden");
        assert_eq!(key_safe_name("ü"), "_");
        let long = key_safe_name(&format!("{}.docx", "a".repeat(300)));
        assert_eq!(long.len(), 100);
        assert!(long.ends_with(".docx"));
    }

    #[test]
    fn dispositions_carry_non_ascii_names_per_rfc_5987() {
        assert_eq!(
            content_disposition("attachment", "plan.pdf"),
            "attachment; filename=\"plan.pdf\""
        );
        assert_eq!(
            content_disposition("attachment", "Übung 1.pdf"),
            "attachment; filename=\"_bung 1.pdf\"; filename*=UTF-8''%C3%9Cbung%201.pdf"
        );
        assert_eq!(
            content_disposition("inline", "a\"b.mp3"),
            "inline; filename=\"a_b.mp3\"; filename*=UTF-8''a%22b.mp3"
        );
    }
}
