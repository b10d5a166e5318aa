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
    for task in tasks {
        // Imports of one book wait for each other; none fails.
        task.await.expect("task").expect("import");
    }
    let stored = repo.list_for_book(1).await.unwrap();
    assert_eq!(stored.len(), parsed.len(), "one row per activity");
}
on_both_databases!(concurrent_imports_of_one_book_converge);

/// Two imports of one book with different contents at once (a first listing of the old config
/// and a webhook with the new one): afterwards the book holds exactly one of the two sets, never
/// a mix with stale activities.
async fn concurrent_imports_of_different_contents_leave_one_set(database: TestDatabase) {
    let repo = Arc::new(SqlActivityStore::new(database.db.clone()));
    let old = parse_activities(1, &sample_config()).expect("sample parses");
    // The new config moves the first activity to another page: each set has a key the other
    // lacks, so a mix of the two shows.
    let mut new = old.clone();
    let dropped = old[0].clone();
    new[0].key.page_number += 50;
    new[0].order = domain::activities::order_of(&new[0].key);
    new.sort_by_key(|a| a.key);
    for round in 0..10 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let repo = repo.clone();
                let set = if (i + round) % 2 == 0 {
                    old.clone()
                } else {
                    new.clone()
                };
                tokio::spawn(async move { repo.replace_for_book(1, set).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("import");
        }
        let keys: Vec<_> = repo
            .list_for_book(1)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.activity.key)
            .collect();
        let old_keys: Vec<_> = old.iter().map(|a| a.key).collect();
        let new_keys: Vec<_> = new.iter().map(|a| a.key).collect();
        assert!(
            keys == old_keys || keys == new_keys,
            "round {round}: {keys:?} is neither set (dropped {:?})",
            dropped.key
        );
    }
}
on_both_databases!(concurrent_imports_of_different_contents_leave_one_set);
