//! Key rules shared by all tiers: colon-separated segments, prefix matching on whole segments.

/// Separator between key segments (`dcs:books:id:1`).
pub const SEGMENT_SEPARATOR: char = ':';

/// A prefix that matches whole segments: `dcs:books:id:1` matches `dcs:books:id:1` and
/// `dcs:books:id:1:cover`, never `dcs:books:id:10`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SegmentPrefix(String);

impl SegmentPrefix {
    /// Normalises `prefix` (a trailing separator is dropped: `a:b:` means `a:b`).
    /// Returns `None` for a prefix with no segment at all, which would match every key.
    pub fn new(prefix: &str) -> Option<Self> {
        let trimmed = prefix.trim_end_matches(SEGMENT_SEPARATOR);
        (!trimmed.is_empty()).then(|| Self(trimmed.to_owned()))
    }

    /// The normalised prefix, without a trailing separator.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `key` is the prefix itself or lies below it.
    pub fn matches(&self, key: &str) -> bool {
        match key.strip_prefix(self.0.as_str()) {
            Some("") => true,
            Some(rest) => rest.starts_with(SEGMENT_SEPARATOR),
            None => false,
        }
    }
}

/// Escapes Redis glob metacharacters so `text` matches itself literally in `SCAN MATCH`.
pub(crate) fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_whole_segments_only() {
        let prefix = SegmentPrefix::new("dcs:books:id:1").expect("non-empty prefix");
        assert!(prefix.matches("dcs:books:id:1"));
        assert!(prefix.matches("dcs:books:id:1:cover"));
        assert!(prefix.matches("dcs:books:id:1:config:v2"));
        assert!(!prefix.matches("dcs:books:id:10"));
        assert!(!prefix.matches("dcs:books:id:10:cover"));
        assert!(!prefix.matches("dcs:books:id"));
        assert!(!prefix.matches("xdcs:books:id:1"));
    }

    #[test]
    fn trailing_separator_is_ignored_and_empty_prefix_is_refused() {
        let prefix = SegmentPrefix::new("dcs:books:").expect("non-empty prefix");
        assert_eq!(prefix.as_str(), "dcs:books");
        assert!(prefix.matches("dcs:books"));
        assert!(prefix.matches("dcs:books:id:1"));
        assert!(!prefix.matches("dcs:booksellers"));
        assert_eq!(SegmentPrefix::new(""), None);
        assert_eq!(SegmentPrefix::new(":::"), None);
    }

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(escape_glob("dcs:books:id:1"), "dcs:books:id:1");
        assert_eq!(escape_glob("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
    }
}
