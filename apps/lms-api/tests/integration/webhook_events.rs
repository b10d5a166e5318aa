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
