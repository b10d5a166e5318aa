//! Activity parsing, the repository contract and the importer, without a database.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dcs_client::{Credentials, DcsClient, DcsConfig, RetryConfig};
use dcs_mock::{MockConfig, MockDcs};
use domain::activities::{
    ActivityImporter, ActivityKey, ActivityRepository, BookConfigSource, ConfigProblem,
    DcsConfigSource, MemoryActivityRepository, ReplaceSummary, SourceError, conformance, digest,
    parse_activities,
};
use domain::asset_path::BookRef;
use serde_json::{Value, json};

fn flowdemo() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/books/FLOWDEMO/config.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn key(module_index: u32, page_number: u32, section_index: u32) -> ActivityKey {
    ActivityKey {
        book_id: 1,
        module_index,
        page_number,
        section_index,
    }
}

#[test]
fn the_sample_book_has_two_activities_in_order() {
    let config = flowdemo();
    let activities = parse_activities(1, &config).unwrap();
    let summary: Vec<_> = activities
        .iter()
        .map(|a| {
            (
                a.key,
                a.order,
                a.activity_type.as_str(),
                a.header_text.as_deref(),
                a.title.as_deref(),
                a.module_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                key(1, 2, 1),
                1021,
                "dragdroppicture",
                Some("Drag the words to the picture."),
                None,
                "Module 1"
            ),
            (
                key(1, 3, 1),
                1031,
                "matchTheWords",
                Some("Read and match."),
                None,
                "Module 1"
            ),
        ]
    );
    let section = &config["books"][0]["modules"][0]["pages"][1]["sections"][1];
    assert_eq!(activities[0].config, *section);
    assert_eq!(activities[0].digest, digest(section));
    assert_eq!(activities[0].digest.len(), 64);
    assert_ne!(activities[0].digest, activities[1].digest);
}

#[test]
fn keys_and_digests_are_stable_and_track_content() {
    let original = flowdemo();
    let again = parse_activities(1, &original).unwrap();
    assert_eq!(parse_activities(1, &original).unwrap(), again);

    // Another section of page 3 changes, and the second activity's text: keys stay, only the
    // changed activity's digest moves.
    let mut edited = original.clone();
    let page3 = &mut edited["books"][0]["modules"][0]["pages"][2]["sections"];
    page3[0]["audio_path"] = json!("./books/FLOWDEMO/audio/03b.mp3");
    page3[1]["activity"]["headerText"] = json!("Read and match!");
    let after = parse_activities(1, &edited).unwrap();
    assert_eq!(
        after.iter().map(|a| a.key).collect::<Vec<_>>(),
        again.iter().map(|a| a.key).collect::<Vec<_>>()
    );
    assert_eq!(after[0].digest, again[0].digest);
    assert_ne!(after[1].digest, again[1].digest);
    assert_eq!(after[1].header_text.as_deref(), Some("Read and match!"));
}

#[test]
fn modules_count_across_book_entries_and_sections_count_all_sections() {
    let config = json!({"books": [
        {"modules": [
            {"name": "M1", "pages": [{"page_number": 4, "sections": [
                {"type": "audio", "audio_path": "a.mp3"},
                {"type": "fill", "answer": []},
                {"activity": {"type": "circle", "title": "Circle it"}},
            ]}]},
            {"name": "M2", "pages": [
                {"page_number": 12, "image_path": "p.png"},
                {"page_number": 11, "sections": [{"activity": {"type": "someFutureType", "nested": {"x": 1}}}]},
            ]},
        ]},
        {"modules": [{"name": "Workbook", "pages": [{"page_number": 1, "sections": [
            {"activity": {"type": "markwithx"}, "audio_extra": {}},
        ]}]}]},
    ]});
    let a = parse_activities(5, &config).unwrap();
    let got: Vec<_> = a
        .iter()
        .map(|a| {
            (
                a.key.module_index,
                a.key.page_number,
                a.key.section_index,
                a.order,
                a.activity_type.as_str(),
                a.module_name.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 4, 2, 1042, "circle", "M1"),
            (2, 11, 0, 2110, "someFutureType", "M2"),
            (3, 1, 0, 3010, "markwithx", "Workbook"),
        ]
    );
    assert_eq!(a[0].title.as_deref(), Some("Circle it"));
    assert!(a.iter().all(|a| a.key.book_id == 5));
    // No books, no modules, no sections: no activities, and not an error.
    assert!(
        parse_activities(1, &json!({"books": []}))
            .unwrap()
            .is_empty()
    );
    assert!(
        parse_activities(1, &json!({"books": [{"modules": []}]}))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn broken_configs_are_errors_with_where() {
    let page = |p: Value| json!({"books": [{"modules": [{"name": "M", "pages": [p]}]}]});
    let section = |s: Value| page(json!({"page_number": 1, "sections": [s]}));
    let at_page = "/books/0/modules/0/pages/0";
    let at_activity = "/books/0/modules/0/pages/0/sections/0/activity";
    let cases: Vec<(Value, &str, ConfigProblem)> = vec![
        (json!([1]), "", ConfigProblem::WrongType("a JSON object")),
        (
            json!({"book_title": "x"}),
            "",
            ConfigProblem::Missing("books"),
        ),
        (
            json!({"books": {}}),
            "/books",
            ConfigProblem::WrongType("an array"),
        ),
        (
            json!({"books": [3]}),
            "/books/0",
            ConfigProblem::WrongType("an object"),
        ),
        (
            json!({"books": [{}]}),
            "/books/0",
            ConfigProblem::Missing("modules"),
        ),
        (
            json!({"books": [{"modules": "x"}]}),
            "/books/0/modules",
            ConfigProblem::WrongType("an array"),
        ),
        (
            json!({"books": [{"modules": [{"pages": []}]}]}),
            "/books/0/modules/0",
            ConfigProblem::Missing("name"),
        ),
        (
            json!({"books": [{"modules": [{"name": 1, "pages": []}]}]}),
            "/books/0/modules/0/name",
            ConfigProblem::WrongType("a string"),
        ),
        (
            json!({"books": [{"modules": [{"name": "M"}]}]}),
            "/books/0/modules/0",
            ConfigProblem::Missing("pages"),
        ),
        (
            page(json!({"sections": []})),
            at_page,
            ConfigProblem::Missing("page_number"),
        ),
        (
            page(json!({"page_number": "2"})),
            "/books/0/modules/0/pages/0/page_number",
            ConfigProblem::WrongType("a non-negative integer below 2^31"),
        ),
        (
            page(json!({"page_number": -1})),
            "/books/0/modules/0/pages/0/page_number",
            ConfigProblem::WrongType("a non-negative integer below 2^31"),
        ),
        (
            // Stores keep page numbers in a signed 32-bit column.
            page(json!({"page_number": 3_000_000_000u64})),
            "/books/0/modules/0/pages/0/page_number",
            ConfigProblem::WrongType("a non-negative integer below 2^31"),
        ),
        (
            page(json!({"page_number": 1.5})),
            "/books/0/modules/0/pages/0/page_number",
            ConfigProblem::WrongType("a non-negative integer below 2^31"),
        ),
        (
            page(json!({"page_number": 1, "sections": {}})),
            "/books/0/modules/0/pages/0/sections",
            ConfigProblem::WrongType("an array"),
        ),
        (
            section(json!("audio")),
            "/books/0/modules/0/pages/0/sections/0",
            ConfigProblem::WrongType("an object"),
        ),
        (
            section(json!({"activity": []})),
            at_activity,
            ConfigProblem::WrongType("an object"),
        ),
        (
            section(json!({"activity": {}})),
            at_activity,
            ConfigProblem::ActivityWithoutType,
        ),
        (
            section(json!({"activity": {"type": " "}})),
            at_activity,
            ConfigProblem::ActivityWithoutType,
        ),
        (
            section(json!({"activity": {"type": 4}})),
            at_activity,
            ConfigProblem::ActivityWithoutType,
        ),
        (
            section(json!({"activity": {"type": "circle", "headerText": ["x"]}})),
            "/books/0/modules/0/pages/0/sections/0/activity/headerText",
            ConfigProblem::WrongType("a string"),
        ),
        (
            json!({"books": [{"modules": [{"name": "M", "pages": [
                {"page_number": 2}, {"page_number": 3}, {"page_number": 2},
            ]}]}]}),
            "/books/0/modules/0/pages/2",
            ConfigProblem::DuplicatePage(2),
        ),
    ];
    for (config, at, problem) in cases {
        let err = parse_activities(1, &config).expect_err(&config.to_string());
        assert_eq!((err.at.as_str(), &err.problem), (at, &problem), "{config}");
        assert_eq!(err.code(), "invalid_config");
    }
    // One broken activity after a good one: the whole book is refused.
    let mut config = flowdemo();
    config["books"][0]["modules"][0]["pages"][2]["sections"][1]["activity"]
        .as_object_mut()
        .unwrap()
        .remove("type");
    assert!(parse_activities(1, &config).is_err());
}

#[tokio::test]
async fn the_memory_repository_passes_the_contract() {
    conformance::check(&MemoryActivityRepository::new())
        .await
        .unwrap();
}

/// A config source for tests: answers with what it holds, counting calls.
struct Source {
    answer: Mutex<Result<Value, SourceError>>,
    calls: Mutex<usize>,
}

impl Source {
    fn new(answer: Result<Value, SourceError>) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(answer),
            calls: Mutex::new(0),
        })
    }
    fn set(&self, answer: Result<Value, SourceError>) {
        *self.answer.lock().unwrap() = answer;
    }
}

#[async_trait]
impl BookConfigSource for Source {
    async fn book_config(&self, _: &BookRef) -> Result<Value, SourceError> {
        *self.calls.lock().unwrap() += 1;
        self.answer.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn the_importer_replaces_and_keeps_ids_and_refuses_broken_configs() {
    let repo = Arc::new(MemoryActivityRepository::new());
    let source = Source::new(Ok(flowdemo()));
    let importer = ActivityImporter::new(source.clone(), repo.clone());
    let b = BookRef::new(1, "Dream Press", "FLOWDEMO").unwrap();

    let report = importer.import(&b).await.unwrap();
    assert_eq!(report.activities, 2);
    assert_eq!(
        report.summary,
        ReplaceSummary {
            inserted: 2,
            ..Default::default()
        }
    );
    let stored = repo.list_for_book(1).await.unwrap();
    assert_eq!(
        stored.iter().map(|s| s.activity.order).collect::<Vec<_>>(),
        vec![1021, 1031]
    );

    // An unchanged book: nothing written, same ids.
    let report = importer.import(&b).await.unwrap();
    assert_eq!(report.summary.unchanged, 2);
    assert_eq!(repo.list_for_book(1).await.unwrap(), stored);

    // A broken config, a missing one, an outage: typed errors, stored activities untouched.
    let mut broken = flowdemo();
    broken["books"][0]["modules"][0]["pages"][1]["sections"][1]["activity"]["type"] = json!(null);
    source.set(Ok(broken));
    let err = importer.import(&b).await.unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    assert!(
        err.to_string().contains("/pages/1/sections/1/activity"),
        "{err}"
    );
    source.set(Err(SourceError::NotFound));
    assert_eq!(
        importer.import(&b).await.unwrap_err().code(),
        "config_not_found"
    );
    source.set(Err(SourceError::Unavailable("503".into())));
    assert_eq!(
        importer.import(&b).await.unwrap_err().code(),
        "content_storage_unavailable"
    );
    assert_eq!(repo.list_for_book(1).await.unwrap(), stored);
    assert_eq!(*source.calls.lock().unwrap(), 5);

    // One activity removed from the book: deleted, the other keeps its id.
    let mut fewer = flowdemo();
    fewer["books"][0]["modules"][0]["pages"][1]["sections"]
        .as_array_mut()
        .unwrap()
        .remove(1);
    source.set(Ok(fewer));
    let report = importer.import(&b).await.unwrap();
    assert_eq!(
        report.summary,
        ReplaceSummary {
            unchanged: 1,
            deleted: 1,
            ..Default::default()
        }
    );
    let left = repo.list_for_book(1).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, stored[1].id);

    assert_eq!(importer.remove(1).await.unwrap(), 1);
    assert!(repo.list_for_book(1).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_importer_reads_the_config_from_the_fake_dcs() {
    let dcs = MockDcs::start(MockConfig::default()).await.unwrap();
    let mut config = DcsConfig::new(
        dcs.base_url(),
        Credentials::password("admin@admin.com", "admin"),
    );
    config.retry = RetryConfig {
        max_retries: 0,
        ..RetryConfig::default()
    };
    let client = Arc::new(DcsClient::new(config).unwrap());
    let repo = Arc::new(MemoryActivityRepository::new());
    let importer = ActivityImporter::new(DcsConfigSource(client), repo.clone());

    let b = BookRef::new(1, "Dream Press", "FLOWDEMO").unwrap();
    let report = importer.import(&b).await.unwrap();
    assert_eq!(report.activities, 2);
    let types: Vec<String> = repo
        .list_for_book(1)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.activity.activity_type)
        .collect();
    assert_eq!(types, vec!["dragdroppicture", "matchTheWords"]);

    let missing = BookRef::new(99, "Dream Press", "NOSUCHBOOK").unwrap();
    assert_eq!(
        importer.import(&missing).await.unwrap_err().code(),
        "config_not_found"
    );
    dcs.inject("* /storage/", dcs_mock::Fault::Status(503), None);
    assert_eq!(
        importer.import(&b).await.unwrap_err().code(),
        "content_storage_unavailable"
    );
}
