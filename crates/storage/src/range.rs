//! RFC 9110 byte ranges (section 14), pure and allocation-free.
//!
//! Policy, for the asset, media and teacher-stream routes:
//! - `bytes=a-b`, `bytes=a-` and `bytes=-n` are served as one 206 part; an end past the object
//!   is clamped to its last byte.
//! - A header with several ranges is ignored and the whole object is served (200). RFC 9110
//!   lets a server ignore `Range`; players and browsers send one range, and a multipart
//!   response is not worth its complexity here.
//! - A malformed header (other unit, `b < a`, garbage) is ignored: 200 with the whole body, as
//!   RFC 9110 14.2 requires.
//! - A syntactically valid range that selects nothing (`a >= size`, `-0`, any range of an empty
//!   object) is [`RangeOutcome::Unsatisfiable`]: answer 416 with
//!   `Content-Range: bytes */{size}` ([`unsatisfied_content_range`]).

use std::time::{SystemTime, UNIX_EPOCH};

/// One parsed range, not yet checked against the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-b` (inclusive) or `bytes=a-` (`end` is `None`).
    From { start: u64, end: Option<u64> },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// A resolved, satisfiable range: `start..=end`, inside the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive, like `Content-Range`.
    pub end: u64,
}

/// What a route should do with a `Range` header for an object of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable header: 200 with the whole body.
    Full,
    /// 206 with this part.
    Partial(ByteRange),
    /// 416 with `Content-Range: bytes */{size}`.
    Unsatisfiable,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true (a range holds at least one byte); present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` value of a 206 answer, e.g. `bytes 0-99/1000`.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, size)
    }
}

/// The `Content-Range` value of a 416 answer.
pub fn unsatisfied_content_range(size: u64) -> String {
    format!("bytes */{size}")
}

impl RangeSpec {
    /// Resolves against the object's size; `None` means unsatisfiable (416).
    pub fn resolve(self, size: u64) -> Option<ByteRange> {
        if size == 0 {
            return None;
        }
        match self {
            Self::From { start, end } => {
                if start >= size {
                    return None;
                }
                let end = end.map_or(size - 1, |e| e.min(size - 1));
                Some(ByteRange { start, end })
            }
            Self::Suffix(0) => None,
            Self::Suffix(n) => Some(ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            }),
        }
    }

    /// The `Range` header value that asks a server for this range.
    pub fn header_value(&self) -> String {
        match self {
            Self::From {
                start,
                end: Some(e),
            } => format!("bytes={start}-{e}"),
            Self::From { start, end: None } => format!("bytes={start}-"),
            Self::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

/// Parses a `Range` header value. `None` means "ignore the header and serve the whole
/// object": malformed, another unit, or several ranges (see the module policy).
pub fn parse_range(value: &str) -> Option<RangeSpec> {
    let value = value.trim();
    let (unit, set) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let set = set.trim();
    if set.contains(',') {
        // Empty list elements are allowed by the grammar (`bytes=0-1,`); only one real range
        // counts as a single range.
        let mut parts = set.split(',').map(str::trim).filter(|p| !p.is_empty());
        let first = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        return parse_one(first);
    }
    parse_one(set)
}

fn parse_one(spec: &str) -> Option<RangeSpec> {
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: a length too large for u64 still means "the whole object".
        return Some(RangeSpec::Suffix(parse_digits(last)?.unwrap_or(u64::MAX)));
    }
    // A first position that overflows u64 is past any object: keep it as u64::MAX so it
    // resolves to unsatisfiable rather than being ignored.
    let start = parse_digits(first)?.unwrap_or(u64::MAX);
    let end = if last.is_empty() {
        None
    } else {
        let end = parse_digits(last)?.unwrap_or(u64::MAX);
        if end < start {
            return None;
        }
        Some(end)
    };
    Some(RangeSpec::From { start, end })
}

/// `None`: not a non-empty run of ASCII digits. `Some(None)`: digits that overflow u64.
fn parse_digits(s: &str) -> Option<Option<u64>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().ok())
}

/// Parses and resolves in one step, for a route that knows the size.
pub fn evaluate(header: Option<&str>, size: u64) -> RangeOutcome {
    match header.and_then(parse_range) {
        None => RangeOutcome::Full,
        Some(spec) => spec
            .resolve(size)
            .map_or(RangeOutcome::Unsatisfiable, RangeOutcome::Partial),
    }
}

/// RFC 9110 13.1.5 `If-Range`: true when the `Range` header may be honoured; false means
/// "serve the whole object with 200". An entity tag matches only strongly (a weak tag never
/// does); a date matches only when it equals `Last-Modified` to the second.
pub fn if_range_allows_partial(
    if_range: Option<&str>,
    etag: Option<&str>,
    last_modified: Option<SystemTime>,
) -> bool {
    let Some(cond) = if_range.map(str::trim) else {
        return true;
    };
    if cond.starts_with("W/") {
        return false;
    }
    if cond.starts_with('"') {
        return etag.is_some_and(|e| !e.starts_with("W/") && strip_quotes(e) == strip_quotes(cond));
    }
    match (httpdate::parse_http_date(cond), last_modified) {
        (Ok(date), Some(lm)) => unix_secs(date) == unix_secs(lm),
        _ => false,
    }
}

fn strip_quotes(s: &str) -> &str {
    s.trim_matches('"')
}

fn unix_secs(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn r(start: u64, end: u64) -> RangeOutcome {
        RangeOutcome::Partial(ByteRange { start, end })
    }

    #[test]
    fn closed_open_and_suffix_ranges() {
        assert_eq!(evaluate(Some("bytes=0-499"), 1000), r(0, 499));
        assert_eq!(evaluate(Some("bytes=500-"), 1000), r(500, 999));
        assert_eq!(evaluate(Some("bytes=-200"), 1000), r(800, 999));
        assert_eq!(evaluate(Some("bytes=999-999"), 1000), r(999, 999));
        assert_eq!(evaluate(Some(" BYTES = 1 - 2 "), 1000), r(1, 2));
    }

    #[test]
    fn ends_past_the_object_are_clamped() {
        assert_eq!(evaluate(Some("bytes=10-5000"), 100), r(10, 99));
        assert_eq!(evaluate(Some("bytes=-5000"), 100), r(0, 99));
        assert_eq!(
            evaluate(Some("bytes=0-99999999999999999999999"), 100),
            r(0, 99)
        );
        assert_eq!(
            evaluate(Some("bytes=-99999999999999999999999"), 100),
            r(0, 99)
        );
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(
            evaluate(Some("bytes=1000-"), 1000),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            evaluate(Some("bytes=1000-2000"), 1000),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            evaluate(Some("bytes=-0"), 1000),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(evaluate(Some("bytes=0-"), 0), RangeOutcome::Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=-5"), 0), RangeOutcome::Unsatisfiable);
        assert_eq!(
            evaluate(Some("bytes=99999999999999999999999-"), 10),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(unsatisfied_content_range(1000), "bytes */1000");
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-1",
            "items=0-1",
            "bytes=1",
            "bytes=0x1-2",
            "bytes=+1-2",
            "bytes=1--2",
            "0-1",
            "bytes=--1",
        ] {
            assert_eq!(evaluate(Some(h), 1000), RangeOutcome::Full, "{h:?}");
        }
        assert_eq!(evaluate(None, 1000), RangeOutcome::Full);
    }

    #[test]
    fn several_ranges_serve_the_whole_object() {
        assert_eq!(evaluate(Some("bytes=0-1,5-6"), 1000), RangeOutcome::Full);
        assert_eq!(evaluate(Some("bytes=0-1, -5"), 1000), RangeOutcome::Full);
        // Empty list elements do not make a second range.
        assert_eq!(evaluate(Some("bytes=0-1, ,"), 1000), r(0, 1));
    }

    #[test]
    fn content_range_and_len() {
        let b = ByteRange { start: 0, end: 99 };
        assert_eq!(b.len(), 100);
        assert_eq!(b.content_range(1000), "bytes 0-99/1000");
        assert_eq!(parse_range("bytes=5-").unwrap().header_value(), "bytes=5-");
        assert_eq!(parse_range("bytes=-5").unwrap().header_value(), "bytes=-5");
        assert_eq!(
            parse_range("bytes=1-5").unwrap().header_value(),
            "bytes=1-5"
        );
    }

    #[test]
    fn if_range() {
        let lm = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = httpdate::fmt_http_date(lm);
        assert!(if_range_allows_partial(None, None, None));
        assert!(if_range_allows_partial(
            Some("\"abc\""),
            Some("\"abc\""),
            None
        ));
        assert!(if_range_allows_partial(Some("\"abc\""), Some("abc"), None));
        assert!(!if_range_allows_partial(
            Some("\"abc\""),
            Some("\"abd\""),
            None
        ));
        assert!(!if_range_allows_partial(
            Some("W/\"abc\""),
            Some("\"abc\""),
            None
        ));
        assert!(!if_range_allows_partial(
            Some("\"abc\""),
            Some("W/\"abc\""),
            None
        ));
        assert!(!if_range_allows_partial(Some("\"abc\""), None, Some(lm)));
        assert!(if_range_allows_partial(Some(&date), None, Some(lm)));
        let later = lm + Duration::from_secs(1);
        assert!(!if_range_allows_partial(Some(&date), None, Some(later)));
        assert!(!if_range_allows_partial(Some("not a date"), None, Some(lm)));
    }
}
