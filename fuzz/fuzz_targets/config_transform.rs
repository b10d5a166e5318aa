//! Config transformation (`domain::config_transform`) of arbitrary JSON: never a panic; the
//! output has the input's shape, and each value it changed was a string that normalises to the
//! path the linker was asked for (and now holds that path's URL) or became `null`.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use domain::asset_path::{BookAssetPath, BookRef, normalize};
use domain::config_transform::{ConfigTransformer, NullReason, TransformError};
use domain::linker::{AssetLinker, LinkError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const BOOK: &str = "FLOWDEMO";

/// Links `p` to `linked:{p}`, except paths ending in `.gone` (no URL), and records what it was
/// asked for.
#[derive(Default)]
struct RecordingLinker {
    asked: Mutex<Vec<BookAssetPath>>,
}

fn url_of(path: &BookAssetPath) -> Option<String> {
    (!path.as_str().ends_with(".gone")).then(|| format!("linked:{path}"))
}

#[async_trait]
impl AssetLinker for RecordingLinker {
    async fn link(
        &self,
        _book: &BookRef,
        paths: &[BookAssetPath],
    ) -> Result<Vec<Option<String>>, LinkError> {
        self.asked.lock().unwrap().extend(paths.iter().cloned());
        Ok(paths.iter().map(url_of).collect())
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    linker: Arc<RecordingLinker>,
    transformer: ConfigTransformer,
    book: BookRef,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let linker = Arc::new(RecordingLinker::default());
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            transformer: ConfigTransformer::new(linker.clone()),
            linker,
            book: BookRef::new(7, "Dream Press", BOOK).unwrap(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    // First byte: whole book config or one activity; the rest: the JSON.
    let Some((&mode, json)) = data.split_first() else {
        return;
    };
    let Ok(input) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let f = fixture();
    f.linker.asked.lock().unwrap().clear();
    let result = f.runtime.block_on(async {
        if mode & 1 == 0 {
            f.transformer.transform_book(&f.book, input.clone()).await
        } else {
            f.transformer
                .transform_activity(&f.book, input.clone())
                .await
        }
    });
    let out = match result {
        Ok(out) => out,
        Err(TransformError::InvalidConfig { .. }) => {
            assert!(!input.is_object(), "an object refused: {input}");
            return;
        }
        Err(e @ TransformError::Storage(_)) => panic!("the linker never fails: {e}"),
    };
    assert!(input.is_object());

    // Every path the linker saw is one normalisation can give out.
    let asked = f.linker.asked.lock().unwrap().clone();
    for path in &asked {
        let p = path.as_str();
        assert!(
            !p.is_empty()
                && !p.starts_with('/')
                && !p.contains('\\')
                && !p.chars().any(char::is_control)
                && p.split('/').all(|s| !matches!(s, "" | "." | "..")),
            "linker asked for {p:?}"
        );
    }
    let mut distinct = asked.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), asked.len(), "a path asked for twice");

    compare(&input, &out.config, &asked);

    for nulled in &out.nulled {
        match &nulled.reason {
            NullReason::Rejected(reason) => {
                assert_eq!(normalize(&nulled.raw, BOOK).as_ref().err(), Some(reason));
            }
            NullReason::Unlinked => assert!(nulled.raw.ends_with(".gone")),
        }
    }
    assert_eq!(
        out.linked,
        asked.iter().filter(|p| url_of(p).is_some()).count()
    );

    // The answer is served as JSON: it must serialise to valid JSON. (Not compared with the
    // value read back: serde_json's default float parsing may differ in the last digit.)
    let text = serde_json::to_string(&out.config).unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
});

/// Same shape; a changed value was a string whose normalised path the linker was asked for,
/// and it now holds that path's URL, or `null`.
fn compare(input: &Value, output: &Value, asked: &[BookAssetPath]) {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => {
            assert!(a.keys().eq(b.keys()), "keys changed");
            for (k, v) in a {
                compare(v, &b[k], asked);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "array length changed");
            for (x, y) in a.iter().zip(b) {
                compare(x, y, asked);
            }
        }
        (a, b) if a == b => {}
        (Value::String(raw), replaced) => match normalize(raw, BOOK) {
            Ok(path) => {
                assert!(asked.contains(&path), "{raw:?} linked without asking");
                match url_of(&path) {
                    Some(url) => assert_eq!(replaced, &Value::String(url), "{raw:?}"),
                    None => assert_eq!(replaced, &Value::Null, "{raw:?}"),
                }
            }
            Err(_) => assert_eq!(replaced, &Value::Null, "refused {raw:?} not nulled"),
        },
        (a, b) => panic!("a non-string value changed: {a} -> {b}"),
    }
}
