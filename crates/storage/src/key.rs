//! The key rules every adapter applies, so a key that works on one backend works on all.

use crate::{Result, StorageError};

/// Longest key S3 accepts (bytes of UTF-8).
pub const MAX_KEY_LEN: usize = 1024;

/// Accepts `/`-separated relative keys made of non-empty segments. Rejects what could escape a
/// bucket on the filesystem or be read differently by another backend: empty keys, a leading
/// `/`, `.` and `..` segments, empty segments (`a//b`, trailing `/`), backslashes, NUL and
/// other control characters, and the filesystem adapter's reserved temp-file prefix.
/// Spaces and any non-ASCII text are fine (`Dream Press/books/...`).
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason| Err(StorageError::InvalidKey { reason });
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("absolute");
    }
    if key.contains('\\') {
        return bad("contains a backslash");
    }
    if key.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    for segment in key.split('/') {
        match segment {
            "" => return bad("empty path segment"),
            "." | ".." => return bad("relative path segment"),
            s if s.starts_with(crate::fs::TEMP_PREFIX) => return bad("reserved name"),
            _ => {}
        }
    }
    Ok(())
}

/// Prefixes follow the same rules, except that empty and trailing-`/` prefixes are fine.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return if prefix.is_empty() {
            Ok(())
        } else {
            Err(StorageError::InvalidKey { reason: "absolute" })
        };
    }
    validate_key(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_keys() {
        for k in [
            "a",
            "Dream Press/books/FLOWDEMO/images/M1/p2s1.png",
            "çğış/ü ö.mp3",
            ".hidden",
            "a..b",
        ] {
            validate_key(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }

    #[test]
    fn rejects_escapes() {
        let long = "a".repeat(1025);
        for k in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "..",
            ".",
            "a\\..\\b",
            "..\\x",
            "a\0b",
            "a\nb",
            "C:\\x",
            ".~tmp-1",
            "a/.~tmp-x",
            long.as_str(),
        ] {
            assert!(validate_key(k).is_err(), "{k:?} accepted");
        }
    }

    #[test]
    fn prefixes() {
        validate_prefix("").unwrap();
        validate_prefix("Dream Press/").unwrap();
        validate_prefix("Dream Press/bo").unwrap();
        assert!(validate_prefix("/").is_err());
        assert!(validate_prefix("../").is_err());
    }
}
