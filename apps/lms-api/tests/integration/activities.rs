//! The activities repository on SQLite and PostgreSQL: the domain's contract, stable ids
//! across re-imports of the sample book, and concurrent imports of one book.

use std::sync::Arc;

use domain::activities::{ActivityRepository, conformance, parse_activities};
use lms_api::db::SqlActivityStore;

use crate::support::{TestDatabase, on_both_databases};

fn sample_config() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/books/FLOWDEMO/config.json"
    );
    serde_json::from_slice(&std::fs::read(path).expect("sample config")).expect("JSON")
}

async fn repository_contract(database: TestDatabase) {
    let repo = SqlActivityStore::new(database.db.clone());
    conformance::check(&repo).await.expect("contract holds");
}
on_both_databases!(repository_contract);

async fn ids_are_stable_across_reimports(database: TestDatabase) {
    let repo = SqlActivityStore::new(database.db.clone());
    let parsed = parse_activities(1, &sample_config()).expect("sample parses");
    assert!(!parsed.is_empty());

    let first = repo.replace_for_book(1, parsed.clone()).await.unwrap();
    assert_eq!(first.inserted, parsed.len());
    let ids: Vec<_> = repo
        .list_for_book(1)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();

    let again = repo.replace_for_book(1, parsed.clone()).await.unwrap();
    assert_eq!(again.unchanged, parsed.len());
    assert_eq!((again.inserted, again.updated, again.deleted), (0, 0, 0));
    let stored = repo.list_for_book(1).await.unwrap();
    assert_eq!(stored.iter().map(|a| a.id).collect::<Vec<_>>(), ids);
    // What comes back is what was parsed, config JSON included.
    assert_eq!(
        stored.into_iter().map(|a| a.activity).collect::<Vec<_>>(),
        parsed
    );
}
on_both_databases!(ids_are_stable_across_reimports);

async fn concurrent_imports_of_one_book_converge(database: TestDatabase) {
    let repo = Arc::new(SqlActivityStore::new(database.db.clone()));
    let parsed = parse_activities(1, &sample_config()).expect("sample parses");
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let repo = repo.clone();
            let parsed = parsed.clone();
            tokio::spawn(async move { repo.replace_for_book(1, parsed).await })
        })
        .collect();
    let mut errors = Vec::new();
    for task in tasks {
        // SQLite may answer "database is locked" to a writer that loses the race; that is
        // reported as unavailable, never as a half-written book.
        if let Err(err) = task.await.expect("task") {
            errors.push(err.to_string());
        }
    }
    assert!(errors.len() < 4, "every import failed: {errors:?}");
    let stored = repo.list_for_book(1).await.unwrap();
    assert_eq!(stored.len(), parsed.len(), "one row per activity");
}
on_both_databases!(concurrent_imports_of_one_book_converge);
