//! Book content over the real DCS client and the fake DCS: access, the transformed config,
//! activities, asset links and streamed assets with ranges, all without a database.

use std::sync::Arc;
use std::time::Duration;

use cache::{Cache, CacheConfig};
use dcs_client::{Credentials, DcsClient, DcsConfig, RetryConfig};
use dcs_mock::{Fault, MockConfig, MockDcs, NewBook};
use domain::access::{Viewer, ViewerRole};
use domain::activities::MemoryActivityRepository;
use domain::book_content::{
    AssetAnswer, AssetRequest, AssetSource, BookContent, ContentError, DcsAssets, StoreAssets,
};
use domain::catalog::{Catalog, CatalogLinks, CatalogTtls};
use domain::errors::ToProblem;
use domain::linker::MemoryLinker;
use domain::ports::EventFollower;
use domain::webhooks::WebhookEvent;
use storage::{ObjectStore, PutOptions, bytes_body, collect_body};

#[derive(Debug)]
struct ApiLinks;

impl CatalogLinks for ApiLinks {
    fn publisher_logo(&self, id: i64) -> String {
        format!("/api/v1/publishers/{id}/logo")
    }

    fn book_cover(&self, id: i64) -> String {
        format!("/api/v1/books/{id}/cover")
    }
}

struct Setup {
    dcs: MockDcs,
    cache: Cache,
    content: BookContent,
    linker: Arc<MemoryLinker>,
    activities: Arc<MemoryActivityRepository>,
}

fn client(dcs: &MockDcs) -> Arc<DcsClient> {
    let mut config = DcsConfig::new(
        dcs.base_url(),
        Credentials::password("admin@admin.com", "admin"),
    );
    config.retry = RetryConfig {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_retries: 0,
        ..RetryConfig::default()
    };
    config.breaker.failure_threshold = 1000;
    Arc::new(DcsClient::new(config).unwrap())
}

async fn setup_with(assets: impl FnOnce(&Arc<DcsClient>, &Cache) -> Arc<dyn AssetSource>) -> Setup {
    let dcs = MockDcs::start(MockConfig::default()).await.unwrap();
    let client = client(&dcs);
    let cache = Cache::new(CacheConfig::default());
    let catalog = Arc::new(Catalog::new(
        client.clone(),
        cache.clone(),
        CatalogTtls::default(),
        Arc::new(ApiLinks),
    ));
    let linker = Arc::new(MemoryLinker::new("mem://"));
    let activities = Arc::new(MemoryActivityRepository::new());
    let assets = assets(&client, &cache);
    let content = BookContent::new(catalog, client, linker.clone(), activities.clone(), assets);
    Setup {
        dcs,
        cache,
        content,
        linker,
        activities,
    }
}

async fn setup() -> Setup {
    setup_with(|client, cache| {
        Arc::new(DcsAssets::new(
            client.clone(),
            cache.clone(),
            Duration::from_secs(60),
        ))
    })
    .await
}

fn teacher() -> Viewer {
    Viewer::new(ViewerRole::Teacher)
}

#[tokio::test]
async fn config_paths_become_urls_and_nothing_else_changes() {
    let s = setup().await;
    let served = s.content.config(&teacher(), 1).await.expect("config");
    let config = served.value;
    let page = &config["books"][0]["modules"][0]["pages"][0];
    assert_eq!(
        page["image_path"],
        "mem://1/images/HB/modules/M1/pages/01.png"
    );
    assert_eq!(config["book_title"], "Flow Demo English 1");
    assert_eq!(s.linker.calls(), 1, "one batch per config");
}

#[tokio::test]
async fn access_follows_role_status_and_publisher() {
    let s = setup().await;
    let archived = s
        .dcs
        .add_book(NewBook {
            status: dcs_mock::BookStatus::Archived,
            ..NewBook::new("Dream Press", "OLDBOOK")
        })
        .unwrap();
    let draft = s
        .dcs
        .add_book(NewBook {
            status: dcs_mock::BookStatus::Draft,
            ..NewBook::new("Dream Press", "DRAFTBOOK")
        })
        .unwrap();
    for role in [ViewerRole::Teacher, ViewerRole::Student] {
        for id in [archived.id, draft.id] {
            let err = s
                .content
                .readable_book(&Viewer::new(role), id)
                .await
                .unwrap_err();
            assert!(
                matches!(err, ContentError::NotFound("Book not found")),
                "{err:?}"
            );
        }
        s.content
            .readable_book(&Viewer::new(role), 1)
            .await
            .expect("published book");
    }
    for role in [ViewerRole::Admin, ViewerRole::Supervisor] {
        s.content
            .readable_book(&Viewer::new(role), archived.id)
            .await
            .expect("staff see archived books");
    }
    let publisher_id = s.dcs.book(1).unwrap().publisher_id;
    s.content
        .readable_book(&Viewer::publisher(publisher_id), archived.id)
        .await
        .expect("own archived book");
    assert!(
        s.content
            .readable_book(&Viewer::publisher(publisher_id + 100), 1)
            .await
            .is_err()
    );
    let err = s.content.readable_book(&teacher(), 999).await.unwrap_err();
    assert_eq!(err.problem().code.status(), 404);
}

#[tokio::test]
async fn activities_import_on_first_use_and_start_with_urls() {
    let s = setup().await;
    let listed = s.content.activities(&teacher(), 1).await.expect("list");
    assert!(listed.len() >= 2, "the sample book has activities");
    let orders: Vec<i64> = listed.iter().map(|a| a.activity.order).collect();
    let mut sorted = orders.clone();
    sorted.sort();
    assert_eq!(orders, sorted);

    // Listing again reads the store, and a re-import keeps ids.
    let again = s.content.activities(&teacher(), 1).await.unwrap();
    assert_eq!(
        again.iter().map(|a| a.id).collect::<Vec<_>>(),
        listed.iter().map(|a| a.id).collect::<Vec<_>>()
    );
    let import = s.content.import_activities(1).await.unwrap();
    assert_eq!(import.summary.unchanged, listed.len());

    let drag = listed
        .iter()
        .find(|a| a.activity.activity_type == "dragdroppicture")
        .expect("a dragdroppicture");
    let started = s
        .content
        .start_activity(&teacher(), drag.id.0)
        .await
        .unwrap();
    let section_path = started.config["activity"]["section_path"].as_str().unwrap();
    assert!(section_path.starts_with("mem://1/"), "{section_path}");

    let err = s
        .content
        .start_activity(&teacher(), 999_999)
        .await
        .unwrap_err();
    assert!(matches!(err, ContentError::NotFound("Activity not found")));

    assert_eq!(s.content.forget_activities(1).await.unwrap(), listed.len());
    assert!(
        domain::activities::ActivityRepository::list_for_book(&*s.activities, 1)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Removes the first `"activity"` found in a config (depth first); whether it found one.
fn drop_first_activity(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("activity").is_some() || map.values_mut().any(drop_first_activity)
        }
        serde_json::Value::Array(items) => items.iter_mut().any(drop_first_activity),
        _ => false,
    }
}

/// Book 1 updated in DCS (its config loses the first activity), and the webhook's invalidation
/// applied: the book's cached entries are gone.
async fn update_book_1_in_dcs(s: &Setup) {
    let mut config: serde_json::Value = serde_json::from_slice(&sample("config.json")).unwrap();
    assert!(drop_first_activity(&mut config));
    s.dcs
        .replace_book_file(1, "config.json", serde_json::to_vec(&config).unwrap())
        .unwrap();
    s.cache
        .invalidate_prefix(&domain::keys::book(1))
        .await
        .unwrap();
}

/// DCS gives up on a delivery after three attempts. When a book's webhook was processed up to
/// its invalidation but every re-import failed, the next read imports the activities again
/// instead of serving the old ones until an admin steps in; while that import cannot run, the
/// activities imported before are served.
#[tokio::test]
async fn activities_catch_up_with_dcs_after_a_lost_re_import() {
    let s = setup().await;
    let before = s.content.activities(&teacher(), 1).await.unwrap();
    // Its re-import failed.
    update_book_1_in_dcs(&s).await;

    // The config cannot be read yet: the stored activities are served.
    s.dcs.inject("GET /storage/", Fault::Status(503), None);
    let served = s.content.activities(&teacher(), 1).await.unwrap();
    assert_eq!(served.len(), before.len());
    s.content
        .start_activity(&teacher(), served[0].id.0)
        .await
        .expect("starts from the store");

    // Once it can: imported again.
    s.dcs.clear_faults();
    let after = s.content.activities(&teacher(), 1).await.unwrap();
    assert_eq!(after.len(), before.len() - 1);
    let gone = before
        .iter()
        .find(|old| !after.iter().any(|new| new.id == old.id))
        .expect("one activity went");
    let err = s
        .content
        .start_activity(&teacher(), gone.id.0)
        .await
        .unwrap_err();
    assert!(matches!(err, ContentError::NotFound("Activity not found")));
}

/// A webhook's re-import leaves the book's import marker behind: the next read lists what it
/// imported without importing (reading the config from DCS) once more.
#[tokio::test]
async fn a_webhook_re_import_is_not_repeated_by_the_next_read() {
    let s = setup().await;
    let before = s.content.activities(&teacher(), 1).await.unwrap();
    // Then the webhook's follow-up.
    update_book_1_in_dcs(&s).await;
    let event = WebhookEvent::parse(br#"{"event":"book.updated","data":{"id":1}}"#).unwrap();
    s.content.follow(&event).await.unwrap();
    let config_reads = s.dcs.request_count("GET /storage/");

    let after = s.content.activities(&teacher(), 1).await.unwrap();
    assert_eq!(after.len(), before.len() - 1);
    assert_eq!(s.dcs.request_count("GET /storage/"), config_reads);
}

#[tokio::test]
async fn a_cached_config_serves_and_starts_while_dcs_is_down() {
    let s = setup().await;
    let listed = s.content.activities(&teacher(), 1).await.unwrap();
    s.dcs.inject("/", Fault::Status(503), None);
    s.content
        .config(&teacher(), 1)
        .await
        .expect("cached config");
    s.content
        .start_activity(&teacher(), listed[0].id.0)
        .await
        .expect("starts from the store and the cached book");
}

#[tokio::test]
async fn asset_links_normalise_and_refuse_escapes() {
    let s = setup().await;
    let url = s
        .content
        .asset_link(&teacher(), 1, "./books/FLOWDEMO/images/M1/p2s1.png")
        .await
        .unwrap();
    assert_eq!(url, "mem://1/images/M1/p2s1.png");
    for bad in [
        "../other/x.png",
        "./books/OTHER/x.png",
        "images/%2e%2e/%2e%2e/x",
    ] {
        let err = s.content.asset_link(&teacher(), 1, bad).await.unwrap_err();
        assert_eq!(err.problem().code.name(), "invalid_path", "{bad}");
    }
    s.linker.set_unavailable(true);
    let err = s
        .content
        .asset_link(&teacher(), 1, "images/M1/p2s1.png")
        .await
        .unwrap_err();
    assert_eq!(err.problem().code.status(), 503);
}

async fn read(answer: AssetAnswer) -> (Option<storage::ByteRange>, u64, Vec<u8>) {
    match answer {
        AssetAnswer::Body(body) => {
            let (range, size) = (body.range, body.size);
            let bytes = collect_body(body.body).await.unwrap();
            (range, size, bytes.to_vec())
        }
        other => panic!("expected a body, got {other:?}"),
    }
}

async fn ranges_behave(s: &Setup, path: &str, whole: &[u8]) {
    let size = whole.len() as u64;
    let open = |range: Option<&'static str>| {
        let request = AssetRequest {
            range,
            ..AssetRequest::default()
        };
        async move {
            s.content
                .open_asset(&teacher(), 1, path, &request)
                .await
                .unwrap()
        }
    };
    let (range, total, bytes) = read(open(None).await).await;
    assert_eq!((range, total), (None, size));
    assert_eq!(bytes, whole);

    let (range, _, bytes) = read(open(Some("bytes=0-99")).await).await;
    assert_eq!(range.map(|r| (r.start, r.end)), Some((0, 99)));
    assert_eq!(bytes, &whole[..100]);

    // Past the end: clamped, not refused.
    let (range, _, bytes) = read(open(Some("bytes=100-999999999")).await).await;
    assert_eq!(range.map(|r| (r.start, r.end)), Some((100, size - 1)));
    assert_eq!(bytes, &whole[100..]);

    let (range, _, bytes) = read(open(Some("bytes=-50")).await).await;
    assert_eq!(range.map(|r| r.start), Some(size - 50));
    assert_eq!(bytes, &whole[whole.len() - 50..]);

    assert!(matches!(
        open(Some("bytes=999999999-")).await,
        AssetAnswer::RangeNotSatisfiable { size: s } if s == size
    ));
    // Preconditions come before the range: a current ETag with an unsatisfiable range is 304.
    let etag = match open(None).await {
        AssetAnswer::Body(body) => body.etag.expect("an ETag"),
        other => panic!("{other:?}"),
    };
    let weak = format!("W/{etag}");
    for tag in [etag.as_str(), weak.as_str()] {
        let request = AssetRequest {
            range: Some("bytes=999999999-"),
            if_none_match: Some(tag),
            ..AssetRequest::default()
        };
        let answer = s
            .content
            .open_asset(&teacher(), 1, path, &request)
            .await
            .unwrap();
        assert!(
            matches!(answer, AssetAnswer::NotModified { .. }),
            "{tag}: {answer:?}"
        );
    }
    // A malformed header is ignored (RFC 9110): the whole object.
    let (range, _, _) = read(open(Some("bytes=abc")).await).await;
    assert_eq!(range, None);

    // If-Range first: another version's validator gets the whole object, even for a range
    // past the end; the current one keeps the range (and its 416).
    let AssetAnswer::Body(current) = open(None).await else {
        panic!("body")
    };
    let etag = current.etag.clone().expect("an ETag");
    let with_if_range = |range: &'static str, if_range: String| async move {
        let request = AssetRequest {
            range: Some(range),
            if_range: Some(&if_range),
            ..AssetRequest::default()
        };
        s.content
            .open_asset(&teacher(), 1, path, &request)
            .await
            .unwrap()
    };
    for range in ["bytes=0-99", "bytes=999999999-"] {
        let (got, _, bytes) = read(with_if_range(range, "\"old\"".to_owned()).await).await;
        assert_eq!(got, None, "{range}");
        assert_eq!(bytes, whole, "{range}");
    }
    let (got, _, _) = read(with_if_range("bytes=0-99", etag.clone()).await).await;
    assert_eq!(got.map(|r| (r.start, r.end)), Some((0, 99)));
    assert!(matches!(
        with_if_range("bytes=999999999-", etag).await,
        AssetAnswer::RangeNotSatisfiable { .. }
    ));

    let err = s
        .content
        .open_asset(&teacher(), 1, "audio/missing.mp3", &AssetRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ContentError::NotFound(_)), "{err:?}");
}

fn sample(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../testdata/books/FLOWDEMO/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn dcs_assets_resolve_ranges_here() {
    let s = setup().await;
    ranges_behave(&s, "audio/01.mp3", &sample("audio/01.mp3")).await;

    // ETag and If-None-Match.
    let AssetAnswer::Body(body) = s
        .content
        .open_asset(
            &teacher(),
            1,
            "images/M1/p2s1.png",
            &AssetRequest::default(),
        )
        .await
        .unwrap()
    else {
        panic!("body")
    };
    assert_eq!(body.content_type, "image/png");
    let etag = body.etag.clone().expect("DCS sends an ETag");
    let request = AssetRequest {
        if_none_match: Some(&etag),
        ..AssetRequest::default()
    };
    assert!(matches!(
        s.content
            .open_asset(&teacher(), 1, "images/M1/p2s1.png", &request)
            .await
            .unwrap(),
        AssetAnswer::NotModified { .. }
    ));
}

/// A range worked out from a cached listing that no longer holds (the book was re-uploaded
/// and its webhook has not arrived): DCS answers 416, or a part of a file of another size, and
/// the listing is read again, so the answer is about the file as it is now.
#[tokio::test]
async fn dcs_assets_follow_a_file_that_changed_behind_the_cached_listing() {
    let setup = setup().await;
    let s = &setup;
    let path = "audio/01.mp3";
    let old_size = sample(path).len() as u64;
    let open = |range: &'static str| {
        let request = AssetRequest {
            range: Some(range),
            ..AssetRequest::default()
        };
        async move { s.content.open_asset(&teacher(), 1, path, &request).await }
    };
    // The listing is cached with the old size.
    let (_, total, _) = read(open("bytes=0-9").await.unwrap()).await;
    assert_eq!(total, old_size);

    let shorter: Vec<u8> = (0..100u8).collect();
    s.dcs.replace_book_file(1, path, shorter.clone()).unwrap();

    // A suffix range: the last 10 bytes of the file as it is now.
    let (range, total, bytes) = read(open("bytes=-10").await.unwrap()).await;
    assert_eq!(range.map(|r| (r.start, r.end)), Some((90, 99)));
    assert_eq!((total, bytes.as_slice()), (100, &shorter[90..]));
    // Past the new end: 416 with the new size (only a fresh listing knows it), not a DCS
    // failure.
    s.dcs
        .replace_book_file(1, path, shorter[..50].to_vec())
        .unwrap();
    let answer = open("bytes=60-69").await;
    assert!(
        matches!(answer, Ok(AssetAnswer::RangeNotSatisfiable { size: 50 })),
        "{answer:?}"
    );

    // Grown behind the listing: a suffix range still means the end of the file as it is now.
    let longer: Vec<u8> = (0..200u8).collect();
    s.dcs.replace_book_file(1, path, longer.clone()).unwrap();
    let (range, total, bytes) = read(open("bytes=-10").await.unwrap()).await;
    assert_eq!(range.map(|r| (r.start, r.end)), Some((190, 199)));
    assert_eq!((total, bytes.as_slice()), (200, &longer[190..]));
}

#[tokio::test]
async fn store_assets_resolve_ranges_in_the_store() {
    let store = Arc::new(storage::memory::MemoryStore::new("publishers"));
    let whole = sample("audio/01.mp3");
    store
        .put(
            "Dream Press/books/FLOWDEMO/audio/01.mp3",
            bytes_body(whole.clone()),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let s = setup_with(|_, _| Arc::new(StoreAssets::new(store.clone()))).await;
    ranges_behave(&s, "audio/01.mp3", &whole).await;

    let AssetAnswer::Body(body) = s
        .content
        .open_asset(
            &teacher(),
            1,
            "./books/FLOWDEMO/audio/01.mp3",
            &AssetRequest::default(),
        )
        .await
        .unwrap()
    else {
        panic!("body")
    };
    assert_eq!(body.content_type, "audio/mpeg");
}

/// Counts replaces, to see when a listing imports.
#[derive(Debug, Default)]
struct CountingRepository {
    inner: MemoryActivityRepository,
    replaces: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl domain::activities::ActivityRepository for CountingRepository {
    async fn replace_for_book(
        &self,
        book_id: i64,
        activities: Vec<domain::activities::ParsedActivity>,
    ) -> Result<domain::activities::ReplaceSummary, domain::activities::RepositoryError> {
        self.replaces
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.replace_for_book(book_id, activities).await
    }
    async fn list_for_book(
        &self,
        book_id: i64,
    ) -> Result<Vec<domain::activities::StoredActivity>, domain::activities::RepositoryError> {
        self.inner.list_for_book(book_id).await
    }
    async fn get(
        &self,
        id: domain::activities::ActivityId,
    ) -> Result<Option<domain::activities::StoredActivity>, domain::activities::RepositoryError>
    {
        self.inner.get(id).await
    }
    async fn delete_for_book(
        &self,
        book_id: i64,
    ) -> Result<usize, domain::activities::RepositoryError> {
        self.inner.delete_for_book(book_id).await
    }
}

#[tokio::test]
async fn a_book_without_activities_is_imported_once_not_on_every_listing() {
    let dcs = MockDcs::start(MockConfig::default()).await.unwrap();
    let client = client(&dcs);
    let cache = Cache::new(CacheConfig::default());
    let catalog = Arc::new(Catalog::new(
        client.clone(),
        cache.clone(),
        CatalogTtls::default(),
        Arc::new(ApiLinks),
    ));
    let repository = Arc::new(CountingRepository::default());
    let content = BookContent::new(
        catalog,
        client.clone(),
        Arc::new(MemoryLinker::new("mem://")),
        repository.clone(),
        Arc::new(DcsAssets::new(client, cache, Duration::from_secs(60))),
    );
    let config = serde_json::json!({"books": [{"modules": [{"name": "M", "pages": [
        {"page_number": 1, "image_path": "./books/PLAIN/images/p1.png", "sections": []}
    ]}]}]});
    let book = dcs
        .add_book(
            NewBook::new("Dream Press", "PLAIN")
                .file("config.json", serde_json::to_vec(&config).unwrap()),
        )
        .unwrap();
    for _ in 0..3 {
        let listed = content.activities(&teacher(), book.id).await.unwrap();
        assert!(listed.is_empty());
    }
    assert_eq!(
        repository
            .replaces
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}
