//! Path normalisation (`domain::asset_path`) and the DCS client's path check: any string gives
//! a path that stays inside the book, or a typed refusal; never a panic.
#![no_main]

use dcs_client::{AssetPath, encode_segment};
use domain::asset_path::{
    BookRef, PathRejection, is_external_url, looks_like_book_path, normalize,
};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;

const BOOK: &str = "FLOWDEMO";

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    // First line: a book name to normalise against (the fuzzer may pick one the path names);
    // the rest: the raw path. Without a newline the whole input is the path of FLOWDEMO.
    let (book_name, raw) = match input.split_once('\n') {
        Some((book, raw)) if BookRef::new(1, "P", book).is_ok() => (book, raw),
        _ => (BOOK, input),
    };

    let _ = looks_like_book_path(raw, book_name);
    let _ = is_external_url(raw);
    let _ = AssetPath::parse(raw);
    let _ = AssetPath::from_config_path(raw, book_name);

    let path = match normalize(raw, book_name) {
        Ok(path) => path,
        Err(rejection) => {
            let _ = rejection.code();
            return;
        }
    };
    let p = path.as_str();
    assert!(!p.is_empty() && p.len() <= 1024, "{raw:?} -> {p:?}");
    assert!(!p.starts_with('/') && !p.ends_with('/'), "{raw:?} -> {p:?}");
    assert!(
        !p.contains('\\') && !p.chars().any(char::is_control),
        "{raw:?} -> {p:?}"
    );
    for segment in p.split('/') {
        assert!(!matches!(segment, "" | "." | ".."), "{raw:?} -> {p:?}");
        // A second decoder further down (S3, DCS) must not find a separator or a dot segment.
        let again = percent_decode_str(segment).decode_utf8_lossy();
        assert!(
            !matches!(again.as_ref(), "." | "..") && !again.contains(['/', '\\']),
            "{raw:?} -> {p:?}"
        );
    }
    // What the DCS client accepts is a superset of what normalisation gives out.
    AssetPath::parse(p).unwrap_or_else(|e| panic!("{raw:?} -> {p:?} refused by dcs-client: {e}"));

    // The object key stays under the book's folder.
    let book = BookRef::new(1, "Dream Press", book_name).expect("checked above");
    let key = book.object_key(&path);
    let prefix = format!("Dream Press/books/{book_name}/");
    assert!(key.strip_prefix(&prefix) == Some(p), "{raw:?}: key {key:?}");

    // The proxy URL's path (each segment percent-encoded) comes back to the same asset when
    // the media route normalises it: the link and the route agree.
    let encoded: Vec<String> = path.segments().map(encode_segment).collect();
    let url_path = encoded.join("/");
    match normalize(&url_path, book_name) {
        Ok(back) => assert_eq!(back, path, "{raw:?} -> {p:?} -> URL {url_path:?}"),
        Err(e) => panic!("{raw:?} -> {p:?} -> URL {url_path:?} refused: {e:?}"),
    }
    // Not the same as idempotence: the output is decoded already, so normalising it again
    // decodes a second time (`a%2541` -> `a%41` -> `aA`). Only refusals must not appear when
    // the output has no `%` left.
    if !p.contains('%') {
        let again = normalize(p, book_name);
        assert!(
            !matches!(
                again,
                Err(PathRejection::Traversal | PathRejection::ControlCharacter)
            ),
            "{raw:?} -> {p:?} -> {again:?}"
        );
    }
});
