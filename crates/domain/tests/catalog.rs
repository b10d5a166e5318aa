//! The catalog over the real DCS client talking to the fake DCS on loopback, with the cache on
//! a manual clock (TTL expiry without sleeping).

use std::sync::Arc;
use std::time::Duration;

use cache::{Cache, CacheConfig, Freshness, ManualClock};
use dcs_client::{Credentials, DcsClient, DcsConfig, RetryConfig};
use dcs_mock::{BookUpdate, Fault, MockConfig, MockDcs, NewBook, PublisherUpdate};
use domain::catalog::{
    BookQuery, Catalog, CatalogError, CatalogLinks, CatalogTtls, ConditionalImage,
};
use domain::webhooks::WebhookEvent;
use serde_json::Value;

/// The links the HTTP layer hands out.
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
    clock: Arc<ManualClock>,
    catalog: Catalog,
}

async fn setup() -> Setup {
    let dcs = MockDcs::start(MockConfig::default()).await.unwrap();
    let mut config = DcsConfig::new(
        dcs.base_url(),
        Credentials::password("admin@admin.com", "admin"),
    );
    config.retry = RetryConfig {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        ..RetryConfig::default()
    };
    config.breaker.failure_threshold = 1000;
    let client = DcsClient::new(config).unwrap();
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(CacheConfig::default())
        .clock(clock.clone())
        .build();
    let catalog = Catalog::new(
        Arc::new(client),
        cache,
        CatalogTtls::default(),
        Arc::new(ApiLinks),
    );
    Setup {
        dcs,
        clock,
        catalog,
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn query(publisher: Option<i64>, archived: bool, search: Option<&str>) -> BookQuery {
    BookQuery::new(publisher, archived, search.map(str::to_owned), None, None).unwrap()
}

fn titles(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["book_name"].as_str().unwrap().to_owned())
        .collect()
}

/// Applies a webhook body the way the server does.
async fn deliver(catalog: &Catalog, body: &str) -> u64 {
    let event = WebhookEvent::parse(body.as_bytes()).unwrap();
    catalog
        .invalidate(&event.invalidation_plan())
        .await
        .unwrap()
}

#[tokio::test]
async fn publishers_and_books_come_from_dcs_then_from_the_cache() {
    let s = setup().await;
    let publishers = s.catalog.publishers().await.unwrap();
    assert_eq!(publishers.freshness, Freshness::Miss);
    let body = json(&publishers.value);
    assert_eq!(body["total"], 1);
    assert_eq!(body["items"][0]["name"], "Dream Press");
    assert_eq!(body["items"][0]["logo_url"], "/api/v1/publishers/1/logo");

    let books = s.catalog.books(&BookQuery::default()).await.unwrap();
    let page = json(&books.value);
    assert_eq!(titles(&page), ["FLOWDEMO"]);
    assert_eq!(page["items"][0]["cover_url"], "/api/v1/books/1/cover");
    assert_eq!(page["items"][0]["activity_count"], 2);

    let list_requests = s.dcs.request_count("GET /books/");
    for _ in 0..5 {
        let again = s.catalog.books(&BookQuery::default()).await.unwrap();
        assert_eq!(again.freshness, Freshness::Fresh);
        assert_eq!(again.value, books.value);
        assert_eq!(
            s.catalog.publishers().await.unwrap().freshness,
            Freshness::Fresh
        );
    }
    assert_eq!(s.dcs.request_count("GET /books/"), list_requests);
    let stats = s.catalog.cache().stats();
    assert!(stats.hits >= 10, "{stats:?}");
}

#[tokio::test]
async fn book_lists_filter_archived_publisher_search_and_page() {
    let s = setup().await;
    for (name, title) in [("ALPHA", "Alpha Reader"), ("BETA", "Beta Grammar")] {
        let mut book = NewBook::new("Other House", name);
        book.book_title = Some(title.to_owned());
        s.dcs.add_book(book).unwrap();
    }
    let archived = s.dcs.add_book(NewBook::new("Dream Press", "OLD")).unwrap();
    s.dcs.delete_book(archived.id).unwrap();
    let other_publisher = s
        .dcs
        .publishers()
        .into_iter()
        .find(|p| p.name == "Other House")
        .unwrap()
        .id;

    let all = json(&s.catalog.books(&BookQuery::default()).await.unwrap().value);
    assert_eq!(titles(&all), ["FLOWDEMO", "ALPHA", "BETA"]);
    assert_eq!(all["total"], 3);

    let with_archived = json(
        &s.catalog
            .books(&query(None, true, None))
            .await
            .unwrap()
            .value,
    );
    assert_eq!(with_archived["total"], 4);
    assert!(titles(&with_archived).contains(&"OLD".to_owned()));

    let by_publisher = s
        .catalog
        .books(&query(Some(other_publisher), false, None))
        .await
        .unwrap();
    assert_eq!(titles(&json(&by_publisher.value)), ["ALPHA", "BETA"]);

    // Search is case-insensitive on title and name.
    let search = s
        .catalog
        .books(&query(None, false, Some(" grammar ")))
        .await
        .unwrap();
    assert_eq!(titles(&json(&search.value)), ["BETA"]);
    let search = s
        .catalog
        .books(&query(None, false, Some("flow")))
        .await
        .unwrap();
    assert_eq!(titles(&json(&search.value)), ["FLOWDEMO"]);

    let page = BookQuery::new(None, false, None, Some(1), Some(1)).unwrap();
    let page = json(&s.catalog.books(&page).await.unwrap().value);
    assert_eq!(titles(&page), ["ALPHA"]);
    assert_eq!(
        (
            page["total"].as_u64(),
            page["skip"].as_u64(),
            page["limit"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
}

#[test]
fn book_queries_are_validated() {
    for (limit, publisher, search) in [
        (Some(0), None, None),
        (Some(1001), None, None),
        (None, Some(0), None),
        (None, None, Some("x".repeat(201))),
    ] {
        assert!(matches!(
            BookQuery::new(publisher, false, search, None, limit),
            Err(CatalogError::InvalidQuery(_))
        ));
    }
    // `skip` stays in the int64 range the API document promises.
    assert!(matches!(
        BookQuery::new(None, false, None, Some(u64::MAX), None),
        Err(CatalogError::InvalidQuery(_))
    ));
    assert!(BookQuery::new(None, false, None, Some(BookQuery::MAX_SKIP), None).is_ok());
    let q = BookQuery::new(None, false, Some("   ".into()), None, None).unwrap();
    assert_eq!(q.search, None);
}

#[tokio::test]
async fn single_records_not_found_and_inactive_publishers() {
    let s = setup().await;
    let book = json(&s.catalog.book(1).await.unwrap().value);
    assert_eq!(book["book_title"], "Flow Demo English 1");
    assert!(matches!(
        s.catalog.book(999).await,
        Err(CatalogError::NotFound("Book not found"))
    ));
    // Not-found answers are cached briefly: a second lookup does not reach DCS.
    let before = s.dcs.request_count("GET /books/999");
    assert!(s.catalog.book(999).await.is_err());
    assert_eq!(s.dcs.request_count("GET /books/999"), before);

    assert_eq!(
        json(&s.catalog.publisher(1).await.unwrap().value)["name"],
        "Dream Press"
    );
    let gone = s
        .dcs
        .add_publisher(dcs_mock::NewPublisher::new("Gone Press"))
        .unwrap();
    s.dcs.delete_publisher(gone.id).unwrap();
    assert!(matches!(
        s.catalog.publisher(gone.id).await,
        Err(CatalogError::NotFound("Publisher not found"))
    ));
}

#[tokio::test]
async fn logo_is_cached_with_type_and_etag_and_cover_supports_304() {
    let s = setup().await;
    let logo = s.catalog.publisher_logo(1).await.unwrap();
    assert_eq!(logo.value.content_type, "image/png");
    assert!(logo.value.bytes.starts_with(b"\x89PNG"));
    let on_disk = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/books/FLOWDEMO/images/publisher_logo.png"
    ))
    .unwrap();
    assert_eq!(logo.value.bytes, on_disk);
    assert!(logo.value.etag.starts_with('"') && logo.value.etag.ends_with('"'));
    let again = s.catalog.publisher_logo(1).await.unwrap();
    assert_eq!(again.freshness, Freshness::Fresh);
    assert_eq!(again.value, logo.value);

    let ConditionalImage::Modified(cover) = s.catalog.book_cover(1, None).await.unwrap() else {
        panic!("expected the cover");
    };
    let etag = cover.etag.clone().unwrap();
    assert!(cover.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let conditional = s.catalog.book_cover(1, Some(&etag)).await.unwrap();
    assert!(conditional.is_not_modified());
    assert!(matches!(
        s.catalog.book_cover(999, None).await,
        Err(CatalogError::NotFound(_))
    ));
}

#[tokio::test]
async fn webhook_invalidation_makes_fresh_data_visible() {
    let s = setup().await;
    let before = json(&s.catalog.book(1).await.unwrap().value);
    s.catalog.books(&BookQuery::default()).await.unwrap();
    s.dcs
        .update_book(
            1,
            BookUpdate {
                book_title: Some("Flow Demo English 2".into()),
                ..BookUpdate::default()
            },
        )
        .unwrap();
    // Still cached until the webhook arrives.
    assert_eq!(json(&s.catalog.book(1).await.unwrap().value), before);

    let removed = deliver(
        &s.catalog,
        r#"{"event":"book.updated","timestamp":"2026-11-22T09:32:53.499233Z","data":{"id":1}}"#,
    )
    .await;
    assert!(removed >= 2, "record and list entries go: {removed}");
    let fresh = s.catalog.book(1).await.unwrap();
    assert_eq!(fresh.freshness, Freshness::Miss);
    assert_eq!(json(&fresh.value)["book_title"], "Flow Demo English 2");
    let page = json(&s.catalog.books(&BookQuery::default()).await.unwrap().value);
    assert_eq!(page["items"][0]["book_title"], "Flow Demo English 2");

    // A publisher rename reaches the books that carry its name.
    s.dcs
        .update_publisher(
            1,
            PublisherUpdate {
                name: Some("Dream Press Intl".into()),
                ..PublisherUpdate::default()
            },
        )
        .unwrap();
    deliver(
        &s.catalog,
        r#"{"event":"publisher.updated","timestamp":"x","data":{"id":1}}"#,
    )
    .await;
    assert_eq!(
        json(&s.catalog.book(1).await.unwrap().value)["publisher"],
        "Dream Press Intl"
    );
    assert_eq!(
        json(&s.catalog.publishers().await.unwrap().value)["items"][0]["name"],
        "Dream Press Intl"
    );
}

#[tokio::test]
async fn publisher_resync_catches_changes_without_webhooks() {
    let s = setup().await;
    let first = s.catalog.resync_publishers().await.unwrap();
    assert_eq!((first.publishers, first.changed), (1, 0));
    s.catalog.publisher(1).await.unwrap();
    s.catalog.book(1).await.unwrap();

    let unchanged = s.catalog.resync_publishers().await.unwrap();
    assert_eq!(unchanged.changed, 0);
    assert_eq!(
        s.catalog.publisher(1).await.unwrap().freshness,
        Freshness::Fresh
    );
    assert_eq!(s.catalog.book(1).await.unwrap().freshness, Freshness::Fresh);

    s.dcs
        .update_publisher(
            1,
            PublisherUpdate {
                display_name: Some("Dream Press Worldwide".into()),
                ..PublisherUpdate::default()
            },
        )
        .unwrap();
    s.dcs
        .add_publisher(dcs_mock::NewPublisher::new("New House"))
        .unwrap();
    let report = s.catalog.resync_publishers().await.unwrap();
    assert_eq!((report.publishers, report.changed), (2, 2));
    let one = s.catalog.publisher(1).await.unwrap();
    assert_eq!(one.freshness, Freshness::Miss);
    assert_eq!(json(&one.value)["display_name"], "Dream Press Worldwide");
    assert_eq!(s.catalog.book(1).await.unwrap().freshness, Freshness::Miss);
    // The re-sync dropped the list and did not store the one it read (a webhook may have
    // invalidated it since): the next reader fetches the current one.
    let list = s.catalog.publishers().await.unwrap();
    assert_eq!(list.freshness, Freshness::Miss);
    assert_eq!(json(&list.value)["total"], 2);
}

#[tokio::test]
async fn the_first_resync_drops_publisher_entries_cached_before_it() {
    let s = setup().await;
    // Cached before any re-sync succeeded (say DCS was down when the server started).
    s.catalog.publisher(1).await.unwrap();
    s.dcs
        .update_publisher(
            1,
            PublisherUpdate {
                display_name: Some("Renamed while unobserved".into()),
                ..PublisherUpdate::default()
            },
        )
        .unwrap();

    let first = s.catalog.resync_publishers().await.unwrap();

    assert_eq!(first.changed, 0, "nothing to compare with yet");
    let one = s.catalog.publisher(1).await.unwrap();
    assert_eq!(one.freshness, Freshness::Miss);
    assert_eq!(json(&one.value)["display_name"], "Renamed while unobserved");
    assert_eq!(
        s.catalog.publishers().await.unwrap().freshness,
        Freshness::Miss,
        "the re-sync dropped the list and stored none"
    );
}

#[tokio::test]
async fn dcs_down_serves_stale_copies_and_503_for_what_was_never_cached() {
    let s = setup().await;
    s.catalog.publishers().await.unwrap();
    s.catalog.books(&BookQuery::default()).await.unwrap();
    s.catalog.book(1).await.unwrap();

    s.dcs.inject("* /", Fault::Status(503), None);
    s.clock.advance(Duration::from_secs(601));

    let publishers = s.catalog.publishers().await.unwrap();
    assert!(publishers.is_stale());
    assert_eq!(json(&publishers.value)["total"], 1);
    let books = s.catalog.books(&BookQuery::default()).await.unwrap();
    assert!(books.is_stale());
    assert_eq!(titles(&json(&books.value)), ["FLOWDEMO"]);
    assert!(s.catalog.book(1).await.unwrap().is_stale());
    // A page never rendered before is rendered from the stale list, and stays marked stale.
    let archived = s.catalog.books(&query(None, true, None)).await.unwrap();
    assert!(archived.is_stale());
    assert!(
        s.catalog
            .books(&query(None, true, None))
            .await
            .unwrap()
            .is_stale()
    );

    assert!(matches!(
        s.catalog.publisher(1).await,
        Err(CatalogError::Unavailable { .. })
    ));
    assert!(matches!(
        s.catalog.book(2).await,
        Err(CatalogError::Unavailable { .. })
    ));

    // DCS back: fresh again.
    s.dcs.clear_faults();
    let back = s.catalog.books(&query(None, true, None)).await.unwrap();
    assert_eq!(back.freshness, Freshness::Miss);
    assert_eq!(
        s.catalog
            .books(&query(None, true, None))
            .await
            .unwrap()
            .freshness,
        Freshness::Fresh
    );
}

#[tokio::test]
async fn warm_up_fills_publishers_and_the_default_book_page() {
    let s = setup().await;
    s.catalog.warm_up().await.unwrap();
    let requests = s.dcs.request_count("GET /");
    assert_eq!(
        s.catalog.publishers().await.unwrap().freshness,
        Freshness::Fresh
    );
    assert_eq!(
        s.catalog
            .books(&BookQuery::default())
            .await
            .unwrap()
            .freshness,
        Freshness::Fresh
    );
    assert_eq!(s.dcs.request_count("GET /"), requests);
}
