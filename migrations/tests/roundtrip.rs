//! Applies and rolls back every migration on a throwaway SQLite database.
//! (PostgreSQL is covered by lms-api's integration tests, which own the PostgreSQL fixture.)

use migrations::{Migrator, MigratorTrait};
use sea_orm_migration::SchemaManager;
use sea_orm_migration::sea_orm::{Database, DatabaseConnection};

const TABLES: [&str; 3] = ["webhook_event_logs", "leader_locks", "activities"];

async fn temp_sqlite() -> (tempfile::TempDir, DatabaseConnection) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let db = Database::connect(url).await.expect("open sqlite");
    (dir, db)
}

async fn existing_tables(db: &DatabaseConnection) -> Vec<&'static str> {
    let manager = SchemaManager::new(db);
    let mut present = Vec::new();
    for table in TABLES {
        if manager.has_table(table).await.expect("has_table") {
            present.push(table);
        }
    }
    present
}

#[tokio::test]
async fn up_creates_every_table_and_down_removes_them() {
    let (_dir, db) = temp_sqlite().await;

    Migrator::up(&db, None).await.expect("up");
    assert_eq!(existing_tables(&db).await, TABLES.to_vec());
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .expect("pending")
            .is_empty()
    );

    Migrator::down(&db, None).await.expect("down");
    assert!(existing_tables(&db).await.is_empty());
    assert_eq!(
        Migrator::get_pending_migrations(&db)
            .await
            .expect("pending")
            .len(),
        Migrator::migrations().len()
    );

    // Down must leave the schema in a state that up can rebuild from.
    Migrator::up(&db, None).await.expect("up again");
    assert_eq!(existing_tables(&db).await, TABLES.to_vec());
}

#[tokio::test]
async fn up_is_idempotent() {
    let (_dir, db) = temp_sqlite().await;
    Migrator::up(&db, None).await.expect("first up");
    Migrator::up(&db, None).await.expect("second up is a no-op");
    assert_eq!(
        Migrator::get_applied_migrations(&db)
            .await
            .expect("applied")
            .len(),
        Migrator::migrations().len()
    );
}

#[test]
fn migration_names_are_unique_and_ordered() {
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        names, sorted,
        "migrations must be listed oldest first, without repeats"
    );
}
