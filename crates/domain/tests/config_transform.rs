//! The sample book's config.json through the transformer in every delivery mode, and
//! adversarial configs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dcs_client::{Credentials, DcsClient, DcsConfig, RetryConfig};
use dcs_mock::{MockConfig, MockDcs};
use domain::asset_path::{BookAssetPath, BookRef, PathRejection};
use domain::config_transform::{ConfigTransformer, NullReason, Transformed};
use domain::linker::{
    AssetLinker, DcsApiFetcher, DcsLinker, DcsLinkerConfig, FetchedUrl, LinkError, MemoryLinker,
    Presign, PresignedLinker, PresignedUrlFetcher, ProxyLinker,
};
use serde_json::{Value, json};

fn flowdemo() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/books/FLOWDEMO/config.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn book() -> BookRef {
    BookRef::new(1, "Dream Press", "FLOWDEMO").unwrap()
}

/// Every asset of the sample config: JSON pointer -> book-relative path. Anything else in the
/// document must come out unchanged.
const ASSETS: &[(&str, &str)] = &[
    ("/publisher_logo_path", "images/publisher_logo.png"),
    ("/book_cover", "images/book_cover.png"),
    (
        "/books/0/modules/0/pages/0/image_path",
        "images/HB/modules/M1/pages/01.png",
    ),
    (
        "/books/0/modules/0/pages/0/sections/0/audio_path",
        "audio/01.mp3",
    ),
    (
        "/books/0/modules/0/pages/1/image_path",
        "images/HB/modules/M1/pages/02.png",
    ),
    (
        "/books/0/modules/0/pages/1/sections/1/activity/section_path",
        "images/M1/p2s1.png",
    ),
    (
        "/books/0/modules/0/pages/1/sections/1/audio_extra/path",
        "audio/02_extra.mp3",
    ),
    (
        "/books/0/modules/0/pages/2/image_path",
        "images/HB/modules/M1/pages/03.png",
    ),
    (
        "/books/0/modules/0/pages/2/sections/0/audio_path",
        "audio/03.mp3",
    ),
    (
        "/books/0/modules/0/pages/2/sections/1/activity/sentences/0/image_path",
        "images/M1/p3match1_cat.png",
    ),
    (
        "/books/0/modules/0/pages/2/sections/1/activity/sentences/1/image_path",
        "images/M1/p3match1_dog.png",
    ),
    (
        "/books/0/modules/0/pages/2/sections/1/activity/sentences/2/image_path",
        "images/M1/p3match1_bird.png",
    ),
];

/// Every string leaf of a document, with its pointer.
fn strings(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((at, s.clone())),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                strings(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

/// The sample config with each asset replaced by `url(path)`; asserts the fixture still has
/// exactly these asset paths, so the test cannot silently pass on a changed sample.
fn expected(url: impl Fn(&str) -> String) -> Value {
    let mut original = flowdemo();
    let mut leaves = Vec::new();
    strings(&original, String::new(), &mut leaves);
    let with_book_prefix: Vec<&str> = leaves
        .iter()
        .filter(|(_, s)| s.starts_with("./books/"))
        .map(|(p, _)| p.as_str())
        .collect();
    let listed: Vec<&str> = ASSETS.iter().map(|(p, _)| *p).collect();
    let mut a = with_book_prefix.clone();
    let mut b = listed.clone();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "the sample's asset paths changed");
    for (pointer, path) in ASSETS {
        let slot = original.pointer_mut(pointer).unwrap();
        assert_eq!(
            slot.as_str().unwrap(),
            format!("./books/FLOWDEMO/{path}"),
            "{pointer}"
        );
        *slot = Value::String(url(path));
    }
    original
}

fn assert_clean(out: &Transformed) {
    assert!(out.nulled.is_empty(), "{:?}", out.nulled);
    assert_eq!(out.linked, ASSETS.len());
}

/// Records the keys it is asked to sign; signs like S3 would name them.
#[derive(Default)]
struct RecordingPresign {
    keys: Mutex<Vec<String>>,
}

impl Presign for RecordingPresign {
    fn presign(&self, key: &str) -> Option<String> {
        self.keys.lock().unwrap().push(key.to_owned());
        Some(format!(
            "https://s3.test/publishers/{}?X-Amz-Signature=abc",
            key.replace(' ', "%20")
        ))
    }
}

#[tokio::test]
async fn sample_config_in_presigned_mode() {
    let presign = Arc::new(RecordingPresign::default());
    let t = ConfigTransformer::new(Arc::new(PresignedLinker::new(presign.clone())));
    let out = t.transform_book(&book(), flowdemo()).await.unwrap();
    assert_eq!(
        out.config,
        expected(|p| format!(
            "https://s3.test/publishers/Dream%20Press/books/FLOWDEMO/{p}?X-Amz-Signature=abc"
        ))
    );
    assert_clean(&out);
    let keys = presign.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), ASSETS.len(), "each distinct path signed once");
    assert!(keys.contains(&"Dream Press/books/FLOWDEMO/images/M1/p2s1.png".to_owned()));
}

#[tokio::test]
async fn sample_config_in_proxy_mode() {
    let t = ConfigTransformer::new(Arc::new(ProxyLinker::new("http://lms.test:8000/")));
    let out = t.transform_book(&book(), flowdemo()).await.unwrap();
    let want = expected(|p| {
        let route = if p.ends_with(".mp3") {
            "media"
        } else {
            "assets"
        };
        format!("http://lms.test:8000/api/v1/books/1/{route}/{p}")
    });
    assert_eq!(out.config, want);
    assert_clean(&out);
    // Spelled out once, so the test does not only mirror the implementation.
    assert_eq!(
        out.config["books"][0]["modules"][0]["pages"][0]["sections"][0]["audio_path"],
        "http://lms.test:8000/api/v1/books/1/media/audio/01.mp3"
    );
    assert_eq!(
        out.config["book_cover"],
        "http://lms.test:8000/api/v1/books/1/assets/images/book_cover.png"
    );
}

#[test]
fn proxy_urls_encode_each_segment() {
    let linker = ProxyLinker::new("http://lms.test");
    let b = BookRef::new(42, "A&B", "X").unwrap();
    let url = |raw: &str| {
        linker.url(
            &b,
            &domain::asset_path::normalize(raw, "X").expect("valid path"),
        )
    };
    assert_eq!(
        url("./books/X/sp ace/ä#1?.png"),
        "http://lms.test/api/v1/books/42/assets/sp%20ace/%C3%A4%231%3F.png"
    );
    assert_eq!(
        url("100%25/a+b.MP4"),
        "http://lms.test/api/v1/books/42/media/100%25/a%2Bb.MP4"
    );
    assert_eq!(
        url("v/clip.webm"),
        "http://lms.test/api/v1/books/42/media/v/clip.webm"
    );
    assert_eq!(url("mp3"), "http://lms.test/api/v1/books/42/assets/mp3");
}

/// A DCS presign endpoint stand-in: a URL per call, counting calls.
#[derive(Default)]
struct FakeFetcher {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl PresignedUrlFetcher for FakeFetcher {
    async fn fetch(
        &self,
        book: &BookRef,
        path: &BookAssetPath,
    ) -> Result<Option<FetchedUrl>, LinkError> {
        self.calls.lock().unwrap().push(path.to_string());
        Ok(Some(FetchedUrl {
            url: format!("https://dcs-minio.test/{}?sig=1", book.object_key(path)),
            expires_in: Duration::from_secs(3600),
        }))
    }
}

#[tokio::test]
async fn sample_config_in_dcs_mode_fetches_each_path_once() {
    let fetcher = Arc::new(FakeFetcher::default());
    let linker = DcsLinker::new(fetcher.clone(), DcsLinkerConfig::default());
    let t = ConfigTransformer::new(Arc::new(linker));
    let want = expected(|p| format!("https://dcs-minio.test/Dream Press/books/FLOWDEMO/{p}?sig=1"));
    for _ in 0..3 {
        let out = t.transform_book(&book(), flowdemo()).await.unwrap();
        assert_eq!(out.config, want);
        assert_clean(&out);
    }
    assert_eq!(fetcher.calls.lock().unwrap().len(), ASSETS.len());
}

async fn mock_client(dcs: &MockDcs) -> Arc<DcsClient> {
    let mut config = DcsConfig::new(
        dcs.base_url(),
        Credentials::password("admin@admin.com", "admin"),
    );
    config.retry = RetryConfig {
        max_retries: 0,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        ..RetryConfig::default()
    };
    Arc::new(DcsClient::new(config).unwrap())
}

#[tokio::test]
async fn sample_config_in_dcs_mode_against_the_fake_dcs() {
    let dcs = MockDcs::start(MockConfig::default()).await.unwrap();
    let client = mock_client(&dcs).await;
    let fetcher = DcsApiFetcher::new(client.clone(), Duration::from_secs(3600));
    let linker = DcsLinker::new(
        fetcher,
        DcsLinkerConfig {
            min_remaining: Duration::from_secs(600),
            ..DcsLinkerConfig::default()
        },
    );
    let t = ConfigTransformer::new(Arc::new(linker));
    let out = t.transform_book(&book(), flowdemo()).await.unwrap();
    assert_clean(&out);
    let base = dcs.base_url().trim_end_matches('/').to_owned();
    for (pointer, path) in ASSETS {
        let url = out.config.pointer(pointer).unwrap().as_str().unwrap();
        let prefix = format!("{base}/_presigned/publishers/Dream%20Press/books/FLOWDEMO/{path}?");
        assert!(url.starts_with(&prefix), "{pointer}: {url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
    }
    let first = dcs.request_count("/storage/books/");
    assert!(first >= ASSETS.len(), "{first}");
    // Cached: the second transform makes no DCS call.
    t.transform_book(&book(), flowdemo()).await.unwrap();
    assert_eq!(dcs.request_count("/storage/books/"), first);

    // DCS down and nothing cached (another book): the typed error, not a half config.
    dcs.inject("* /storage/", dcs_mock::Fault::Status(503), None);
    let other = BookRef::new(2, "Dream Press", "OTHERBOOK").unwrap();
    let err = t
        .transform_book(&other, json!({"image": "x.png"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "content_storage_unavailable");
}

#[tokio::test]
async fn one_activity_is_transformed_alone() {
    let config = flowdemo();
    let activities = domain::activities::parse_activities(1, &config).unwrap();
    let drag = &activities[0];
    let t = ConfigTransformer::new(Arc::new(MemoryLinker::new("mem://")));
    let out = t
        .transform_activity(&book(), drag.config.clone())
        .await
        .unwrap();
    let mut want = drag.config.clone();
    want["activity"]["section_path"] = json!("mem://1/images/M1/p2s1.png");
    want["audio_extra"]["path"] = json!("mem://1/audio/02_extra.mp3");
    assert_eq!(out.config, want);
    assert_eq!(out.linked, 2);
}

/// Keys a presigner was asked for must all stay under the book.
fn assert_keys_inside_book(presign: &RecordingPresign) {
    for key in presign.keys.lock().unwrap().iter() {
        let rest = key
            .strip_prefix("Dream Press/books/FLOWDEMO/")
            .unwrap_or_else(|| panic!("{key:?} left the book"));
        assert!(
            !rest
                .split('/')
                .any(|s| s == ".." || s == "." || s.is_empty()),
            "{key:?}"
        );
        assert!(!rest.contains('\\') && !rest.contains('\0'), "{key:?}");
    }
}

#[tokio::test]
async fn adversarial_paths_become_null_and_the_rest_is_served() {
    let presign = Arc::new(RecordingPresign::default());
    let t = ConfigTransformer::new(Arc::new(PresignedLinker::new(presign.clone())));
    let attacks = [
        "./books/FLOWDEMO/../OTHER/images/x.png",
        "../../etc/passwd",
        "./books/FLOWDEMO/%2e%2e/%2e%2e/secret",
        "./books/FLOWDEMO/images%2F..%2F..%2Fsecret",
        "./books/FLOWDEMO/%252e%252e/secret",
        "./books/OTHER/images/x.png",
        "books/FLOWDEMO/a\u{0}b.png",
        "./books/FLOWDEMO/a%00b.png",
        ".\\books\\FLOWDEMO\\..\\..\\x",
        "./books/FLOWDEMO/%FF.png",
    ];
    let config = json!({
        "book_title": "T",
        "books": [{"modules": [{"name": "M", "pages": [{
            "page_number": 1,
            "image_path": "./books/FLOWDEMO/images/ok.png",
            "sections": attacks.iter().map(|a| json!({
                "activity": {"type": "circle", "headerText": "and/or", "image": a},
                "audio_extra": {"path": a},
                "unknownField": a,
            })).collect::<Vec<_>>(),
        }]}]}],
    });
    let out = t.transform_book(&book(), config).await.unwrap();
    let sections = out
        .config
        .pointer("/books/0/modules/0/pages/0/sections")
        .unwrap();
    for (i, attack) in attacks.iter().enumerate() {
        let s = &sections[i];
        assert_eq!(s["activity"]["image"], Value::Null, "{attack:?}");
        assert_eq!(s["audio_extra"]["path"], Value::Null, "{attack:?}");
        assert_eq!(s["activity"]["headerText"], "and/or");
        // In an unknown field only book-prefixed strings are paths; the rest is text.
        let unknown = &s["unknownField"];
        if attack.starts_with("./books/")
            || attack.starts_with(".\\books\\")
            || attack.starts_with("books/FLOWDEMO/")
        {
            assert_eq!(unknown, &Value::Null, "{attack:?}");
        } else {
            assert_eq!(unknown, attack, "{attack:?}");
        }
    }
    assert_eq!(
        out.config
            .pointer("/books/0/modules/0/pages/0/image_path")
            .unwrap(),
        "https://s3.test/publishers/Dream%20Press/books/FLOWDEMO/images/ok.png?X-Amz-Signature=abc"
    );
    assert_eq!(out.config["book_title"], "T");
    assert_eq!(out.nulled.len(), attacks.len(), "{:?}", out.nulled);
    assert!(
        out.nulled
            .iter()
            .all(|n| matches!(n.reason, NullReason::Rejected(_)))
    );
    assert!(out.nulled.iter().any(|n| n.reason
        == NullReason::Rejected(PathRejection::OtherBook {
            book: "OTHER".into()
        })));
    assert_eq!(presign.keys.lock().unwrap().len(), 1);
    assert_keys_inside_book(&presign);
}

#[tokio::test]
async fn every_activity_type_known_or_not_gets_its_assets_linked_and_text_kept() {
    let t = ConfigTransformer::new(Arc::new(MemoryLinker::new("mem://")));
    let section = |activity: Value| json!({"activity": activity, "audio_extra": {}});
    let cases = vec![
        (
            section(
                json!({"type": "dragdroppicturegroup", "section_path": "./books/FLOWDEMO/images/g.png",
                "groups": [{"title": "Fruit/Veg", "items": ["3.5", "Mr. Smith"]}]}),
            ),
            vec![("/activity/section_path", "mem://1/images/g.png")],
        ),
        (
            section(json!({"type": "matchTheWords",
                "match_words": [{"word": "and/or", "image": "./books/FLOWDEMO/i/w.png"}, {"word": "x", "image_path": "books/FLOWDEMO/i/x.png"}],
                "sentences": [{"sentence": "It is 3.5 m.", "word": "x", "image_path": "./books/FLOWDEMO/i/s.png", "image": "i/t.png", "audio": "a/s.mp3"}]})),
            vec![
                ("/activity/match_words/0/image", "mem://1/i/w.png"),
                ("/activity/match_words/1/image_path", "mem://1/i/x.png"),
                ("/activity/sentences/0/image_path", "mem://1/i/s.png"),
                ("/activity/sentences/0/image", "mem://1/i/t.png"),
                ("/activity/sentences/0/audio", "mem://1/a/s.mp3"),
            ],
        ),
        (
            section(
                json!({"type": "circle", "section_path": "images/c.png", "answer": [{"text": "a.b"}]}),
            ),
            vec![("/activity/section_path", "mem://1/images/c.png")],
        ),
        (
            section(
                json!({"type": "markwithx", "section_path": "/images/m.png", "words": ["x/y"]}),
            ),
            vec![("/activity/section_path", "mem://1/images/m.png")],
        ),
        (
            section(
                json!({"type": "puzzleFindWords", "words": ["cat", "dog"], "headerText": "Find 3.5 words/or"}),
            ),
            vec![],
        ),
        (
            section(
                json!({"type": "fillSentencesWithDots", "sentences": [{"sentence": "Mr. Smith ..."}], "video": "./books/FLOWDEMO/v/a.mp4", "poster": "v/a.jpg"}),
            ),
            vec![
                ("/activity/video", "mem://1/v/a.mp4"),
                ("/activity/poster", "mem://1/v/a.jpg"),
            ],
        ),
        (
            section(
                json!({"type": "fillpicture", "section_path": ".\\books\\FLOWDEMO\\images\\f.png", "answer": [{"text": "and/or"}]}),
            ),
            vec![("/activity/section_path", "mem://1/images/f.png")],
        ),
        (
            // A type nobody knows yet, with asset paths in fields nobody knows yet.
            section(
                json!({"type": "holoTour2030", "scenes": [{"src": "./books/FLOWDEMO/scenes/1.glb", "caption": "books/shelves/3.5", "clips": ["books/FLOWDEMO/a/1.mp3"]}]}),
            ),
            vec![
                ("/activity/scenes/0/src", "mem://1/scenes/1.glb"),
                ("/activity/scenes/0/clips/0", "mem://1/a/1.mp3"),
            ],
        ),
    ];
    for (input, links) in cases {
        let out = t.transform_activity(&book(), input.clone()).await.unwrap();
        let mut want = input.clone();
        for (pointer, url) in &links {
            *want.pointer_mut(pointer).unwrap() = json!(url);
        }
        assert_eq!(out.config, want, "{input}");
        assert!(out.nulled.is_empty());
    }
}

#[tokio::test]
async fn a_linker_outage_is_a_typed_error() {
    struct Down;
    #[async_trait]
    impl AssetLinker for Down {
        async fn link(
            &self,
            _: &BookRef,
            _: &[BookAssetPath],
        ) -> Result<Vec<Option<String>>, LinkError> {
            Err(LinkError::Unavailable("object server down".into()))
        }
    }
    let t = ConfigTransformer::new(Arc::new(Down));
    let err = t.transform_book(&book(), flowdemo()).await.unwrap_err();
    assert_eq!(err.code(), "content_storage_unavailable");
    assert!(err.to_string().contains("object server down"), "{err}");
}
