//! The delivery log's conformance suite (`domain::conformance`) on the SQL adapter, on SQLite
//! and PostgreSQL.

use domain::conformance;
use lms_api::db::SqlDeliveryStore;

use crate::support::{TestDatabase, on_both_databases};

async fn claim_lifecycle(database: TestDatabase) {
    conformance::claim_lifecycle(SqlDeliveryStore::new(database.db.clone())).await;
}
on_both_databases!(claim_lifecycle);

async fn abandoned_claims_are_taken_over_after_the_lease(database: TestDatabase) {
    conformance::abandoned_claims_are_taken_over_after_the_lease(SqlDeliveryStore::new(
        database.db.clone(),
    ))
    .await;
}
on_both_databases!(abandoned_claims_are_taken_over_after_the_lease);

async fn concurrent_claims_have_one_owner(database: TestDatabase) {
    conformance::concurrent_claims_have_one_owner(SqlDeliveryStore::new(database.db.clone())).await;
}
on_both_databases!(concurrent_claims_have_one_owner);

async fn digests_are_independent(database: TestDatabase) {
    conformance::digests_are_independent(SqlDeliveryStore::new(database.db.clone())).await;
}
on_both_databases!(digests_are_independent);

async fn old_deliveries_are_pruned(database: TestDatabase) {
    conformance::old_deliveries_are_pruned(SqlDeliveryStore::new(database.db.clone())).await;
}
on_both_databases!(old_deliveries_are_pruned);

/// The background task `serve` starts deletes deliveries older than the retention, and keeps
/// the rest.
async fn the_pruning_task_deletes_old_deliveries(database: TestDatabase) {
    use domain::ports::{DeliveryRecord, DeliveryStatus, DeliveryStore};

    let store = SqlDeliveryStore::new(database.db.clone());
    let record = |digest: char, age: chrono::Duration| DeliveryRecord {
        id: uuid::Uuid::now_v7(),
        event_type: "book.updated".into(),
        body_sha256: digest.to_string().repeat(64),
        payload: "{}".into(),
        status: DeliveryStatus::Processed,
        error: None,
        received_at: chrono::DateTime::from_timestamp_micros(
            (chrono::Utc::now() - age).timestamp_micros(),
        )
        .unwrap(),
        processed_at: None,
    };
    let old = record('a', chrono::Duration::days(40));
    let recent = record('b', chrono::Duration::minutes(1));
    assert!(store.insert_if_absent(&old).await.unwrap());
    assert!(store.insert_if_absent(&recent).await.unwrap());

    let task = lms_api::webhooks::log_pruning::start(
        domain::webhook_log::DeliveryLog::new(store.clone()),
        std::time::Duration::from_secs(30 * 24 * 3600),
    );
    for _ in 0..50 {
        if store.find(old.id).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(task);
    assert_eq!(store.find(old.id).await.unwrap(), None);
    assert!(store.find(recent.id).await.unwrap().is_some());
}
on_both_databases!(the_pruning_task_deletes_old_deliveries);
