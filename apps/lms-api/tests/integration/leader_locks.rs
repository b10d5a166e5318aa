//! The lease store's conformance suite (`domain::conformance`) on the SQL adapter, on SQLite
//! and PostgreSQL.

use domain::conformance;
use lms_api::db::SqlLeaseStore;

use crate::support::{TestDatabase, on_both_databases};

async fn acquire_contend_expire_release(database: TestDatabase) {
    conformance::acquire_contend_expire_release(SqlLeaseStore::new(database.db.clone())).await;
}
on_both_databases!(acquire_contend_expire_release);

async fn holder_renews_its_own_lease(database: TestDatabase) {
    conformance::holder_renews_its_own_lease(SqlLeaseStore::new(database.db.clone())).await;
}
on_both_databases!(holder_renews_its_own_lease);

async fn concurrent_contenders_have_exactly_one_winner(database: TestDatabase) {
    conformance::concurrent_contenders_have_exactly_one_winner(SqlLeaseStore::new(
        database.db.clone(),
    ))
    .await;
}
on_both_databases!(concurrent_contenders_have_exactly_one_winner);

#[actix_web::test]
async fn release_of_an_unknown_lease_is_false() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .unwrap();
    conformance::release_of_an_unknown_lease_is_false(SqlLeaseStore::new(database.db.clone()))
        .await;
}
