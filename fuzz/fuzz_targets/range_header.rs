//! `Range` parsing and resolution (`storage::range`) against arbitrary object sizes: never a
//! panic; a resolved range lies inside the object; a parsed range prints to a header that
//! parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::range::{RangeOutcome, RangeSpec, evaluate, parse_range};

fuzz_target!(|data: &[u8]| {
    // First 8 bytes: the object size (small sizes are the interesting ones, so half the time
    // it is cut to 16 bits); the rest: the header value.
    if data.len() < 8 {
        return;
    }
    let (size, header) = data.split_at(8);
    let mut size = u64::from_le_bytes(size.try_into().unwrap());
    if size & 1 == 0 {
        size = (size >> 1) & 0xffff;
    }
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };

    let spec = parse_range(header);
    if let Some(spec) = spec {
        assert_eq!(parse_range(&spec.header_value()), Some(spec), "{header:?}");
        if let RangeSpec::From {
            start,
            end: Some(end),
        } = spec
        {
            assert!(start <= end, "{header:?}");
        }
    }
    match evaluate(Some(header), size) {
        RangeOutcome::Full => assert!(spec.is_none(), "{header:?}"),
        RangeOutcome::Unsatisfiable => {
            assert!(spec.is_some(), "{header:?}");
        }
        RangeOutcome::Partial(range) => {
            assert!(
                range.start <= range.end && range.end < size,
                "{header:?} on {size}: {range:?}"
            );
            assert_eq!(range.len(), range.end - range.start + 1);
            assert_eq!(
                range.content_range(size),
                format!("bytes {}-{}/{size}", range.start, range.end)
            );
            // What was asked for and lies inside the object is served.
            match spec.unwrap() {
                RangeSpec::From { start, end } => {
                    assert_eq!(range.start, start);
                    assert_eq!(range.end, end.unwrap_or(u64::MAX).min(size - 1));
                }
                RangeSpec::Suffix(n) => {
                    assert_eq!(range.len(), n.min(size));
                    assert_eq!(range.end, size - 1);
                }
            }
        }
    }
});
