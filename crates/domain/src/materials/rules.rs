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

/// [`check_name`] as a regular expression (ECMA 262, as OpenAPI's `pattern`; also valid for
/// Rust's `regex` and Python's `re`), for the API's schema: optional white space that is not
/// a control character around 1 to [`MAX_NAME_CHARS`] characters that start and end with a
/// non-space, with no control character, `/` or `\\`, and that are not `.` or `..`. The tests
/// below hold it to [`check_name`].
pub const NAME_PATTERN: &str = concat!(
    r"^[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
    r"(?:",
    // One character, not `.`.
    r"[^\u0000-\u001f\u007f-\u009f/\\ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000.]",
    // Two, not `..`.
    r"|[^\u0000-\u001f\u007f-\u009f/\\ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000.]",
    r"[^\u0000-\u001f\u007f-\u009f/\\ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"|\.[^\u0000-\u001f\u007f-\u009f/\\ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000.]",
    // Three to 255.
    r"|[^\u0000-\u001f\u007f-\u009f/\\ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\u0000-\u001f\u007f-\u009f/\\]{1,253}",
    r"[^\u0000-\u001f\u007f-\u009f/\\ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r")[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
);

/// The non-empty half of [`check_note`] as a regular expression (unanchored, as OpenAPI's
/// `pattern` is): a character that is not white space. The size limit is in bytes of UTF-8,
/// which a schema cannot state; its `maxLength` is [`MAX_NOTE_BYTES`] characters, the bound
/// no longer note can pass.
pub const NOTE_PATTERN: &str =
    r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// Links [`check_url`] accepts, as a regular expression for the API's schema (with
/// `maxLength` [`MAX_URL_CHARS`]): optional white space around `http://` or `https://` (any
/// case), a host name whose last label starts with a letter, an optional port of up to four
/// digits, and a path, query or fragment without control characters or white space. Every
/// link it matches is accepted; [`check_url`] (the WHATWG URL parser) also accepts links it
/// does not describe (IP addresses, international names, larger ports, `http:host`), which a
/// schema cannot state without restating that parser.
pub const URL_PATTERN: &str = concat!(
    r"^[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
    r"[hH][tT][tT][pP][sS]?://",
    r"(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*",
    r"(?::[0-9]{1,4})?",
    r"(?:[/?#][^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)?",
    r"[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
);

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
/// what they entered). The length counts the link as sent, white space around it included, as
/// the schema's `maxLength` does.
pub fn check_url(url: &str) -> Result<String, UrlError> {
    let chars = url.chars().count();
    if chars > MAX_URL_CHARS {
        return Err(UrlError::TooLong { chars });
    }
    let url = url.trim();
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UrlError::Invalid);
    }
    let parsed = url::Url::parse(url).map_err(|_| UrlError::Invalid)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    // A host name of letters, digits, `-` and `.` only (international names arrive here in
    // their `xn--` form), as the schema's pattern says: the WHATWG parser would also take
    // `exa*mple.org` or `a_b.org`, which no link a teacher shares needs.
    match parsed.host() {
        Some(url::Host::Domain(domain))
            if !domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')) => {}
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {}
        _ => return Err(UrlError::Invalid),
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

    /// Names, notes and links at and around every edge of the rules.
    fn samples() -> Vec<String> {
        let mut samples: Vec<String> = [
            "",
            " ",
            "a",
            " a ",
            ".",
            "..",
            "...",
            " . ",
            " .. ",
            ".a",
            "a.",
            "a.b",
            "..a",
            "/",
            "a/b",
            "a\\b",
            "a\nb",
            "a\n",
            "\n",
            "\ta",
            "a\u{7f}",
            "a\u{85}b",
            "a\u{9f}",
            "a\u{a0}",
            "\u{a0}a\u{3000}",
            "\u{2028}",
            "\u{feff}",
            "ü",
            "Grüße 1",
            "日本語",
            "a\u{1b}[31m",
            "https://example.org/a?b=c",
            " https://example.org/ ",
            "\thttp://a.b\n",
            "HTTP://A.B/",
            "https://example.org",
            "http://a:8080/x#y",
            "http://a:65000/",
            "http://a.0/",
            "http://1.2.3.4/",
            "http:example.org",
            "ftp://example.org/",
            "javascript:alert(1)",
            "/relative",
            "https://u:p@example.org/",
            "https://@example.org/",
            "https:///x",
            "https://a b/",
            "https://a/b c",
            "https://a/\u{85}",
            "https://a/\u{a0}",
            "http://-/",
            "http://a-/x?%zz",
            "https://example.org/ü",
            "http://a..b/",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for len in [253, 254, 255, 256, 300] {
            samples.push("x".repeat(len));
            samples.push(format!(" {} ", "ü".repeat(len)));
            samples.push(format!("a{}a", " ".repeat(len)));
        }
        for len in [MAX_URL_CHARS - 20, MAX_URL_CHARS - 19, MAX_URL_CHARS] {
            samples.push(format!("https://example.org/{}", "a".repeat(len - 20)));
            // White space around a link counts towards its length, as in the schema.
            samples.push(format!(
                "\t\u{200a}https://example.org/{}",
                "a".repeat(len - 21)
            ));
        }
        samples
    }

    #[test]
    fn the_name_pattern_is_the_name_rule() {
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        for sample in samples() {
            assert_eq!(
                pattern.is_match(&sample),
                check_name(&sample, "name").is_ok(),
                "{sample:?}"
            );
        }
    }

    #[test]
    fn the_note_pattern_and_length_bound_the_note_rule() {
        let pattern = regex::Regex::new(NOTE_PATTERN).unwrap();
        let mut samples = samples();
        samples.push("a".repeat(MAX_NOTE_BYTES));
        samples.push("a".repeat(MAX_NOTE_BYTES + 1));
        for sample in samples {
            let by_schema = pattern.is_match(&sample) && sample.chars().count() <= MAX_NOTE_BYTES;
            // Exact for ASCII; the byte limit is stricter than the schema's character bound.
            if sample.is_ascii() {
                assert_eq!(by_schema, check_note(&sample).is_ok(), "{sample:?}");
            } else if check_note(&sample).is_ok() {
                assert!(by_schema, "{sample:?}");
            }
        }
    }

    #[test]
    fn every_link_the_url_pattern_matches_is_accepted() {
        let pattern = regex::Regex::new(URL_PATTERN).unwrap();
        let mut matched = 0;
        for sample in samples() {
            if pattern.is_match(&sample) && sample.chars().count() <= MAX_URL_CHARS {
                matched += 1;
                assert!(check_url(&sample).is_ok(), "{sample:?}");
            }
        }
        assert!(matched >= 10, "{matched}");
        // And nothing longer than the schema's `maxLength`, white space included.
        for sample in samples() {
            if sample.chars().count() > MAX_URL_CHARS {
                assert!(
                    matches!(check_url(&sample), Err(UrlError::TooLong { .. })),
                    "{sample:?}"
                );
            }
        }
        let padded = format!(
            "\t\u{200a}https://example.org/{}",
            "a".repeat(MAX_URL_CHARS - 21)
        );
        assert_eq!(padded.trim().chars().count(), MAX_URL_CHARS - 1);
        assert!(
            matches!(check_url(&padded), Err(UrlError::TooLong { chars }) if chars == MAX_URL_CHARS + 1)
        );
        // Host names with characters the pattern does not allow are refused, though the
        // WHATWG parser would take them.
        for refused in [
            "https://example*.org/",
            "http://a_b.example/",
            "https://exa$mple.org",
        ] {
            assert!(!pattern.is_match(refused), "{refused:?}");
            assert_eq!(check_url(refused), Err(UrlError::Invalid), "{refused:?}");
        }
        // What the pattern does not describe but the parser accepts (the schema is a subset).
        for accepted in [
            "http://1.2.3.4/",
            "http:example.org",
            "http://a:65000/",
            "https://b\u{fc}cher.example/",
            "http://[::1]/",
        ] {
            assert!(!pattern.is_match(accepted) && check_url(accepted).is_ok());
        }
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
