//! Schema behaviour on both databases: migrations and the webhook event log constraints.

use chrono::{TimeZone, Utc};
use lms_api::db::entities::webhook_event_log::{self, WebhookEventStatus};
use migrations::{Migrator, MigratorTrait};
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};
use uuid::Uuid;

use crate::support::{TestDatabase, on_both_databases};

fn event(body_sha256: &str) -> webhook_event_log::Model {
    webhook_event_log::Model {
        id: Uuid::now_v7(),
        event_type: "book.updated".to_owned(),
        body_sha256: body_sha256.to_owned(),
        payload: r#"{"event":"book.updated","data":{"id":1}}"#.to_owned(),
        status: WebhookEventStatus::Received,
        error: None,
        received_at: Utc.with_ymd_and_hms(2026, 11, 22, 9, 32, 53).unwrap()
            + chrono::Duration::microseconds(499_233),
        processed_at: None,
    }
}

async fn migrations_apply_once_and_roll_back(database: TestDatabase) {
    assert_eq!(
        database.table_names().await,
        [
            "activities",
            "leader_locks",
            "seaql_migrations",
            "teacher_materials",
            "teacher_storage_quotas",
            "webhook_event_logs"
        ]
    );
    // Re-running is a no-op.
    lms_api::db::migrate(&database.db)
        .await
        .expect("second migrate");
    assert!(
        Migrator::get_pending_migrations(&database.db)
            .await
            .unwrap()
            .is_empty()
    );

    Migrator::down(&database.db, None).await.expect("down");
    assert_eq!(database.table_names().await, ["seaql_migrations"]);
    lms_api::db::migrate(&database.db).await.expect("up again");
    assert_eq!(
        database.table_names().await,
        [
            "activities",
            "leader_locks",
            "seaql_migrations",
            "teacher_materials",
            "teacher_storage_quotas",
            "webhook_event_logs"
        ]
    );
}
on_both_databases!(migrations_apply_once_and_roll_back);

async fn webhook_events_round_trip_and_dedupe_by_body_digest(database: TestDatabase) {
    let digest = "a".repeat(64);
    let stored = event(&digest)
        .into_active_model()
        .insert(&database.db)
        .await
        .expect("insert");
    let read = webhook_event_log::Entity::find_by_id(stored.id)
        .one(&database.db)
        .await
        .unwrap()
        .expect("row");
    assert_eq!(read, event(&digest).with_id(stored.id));

    // A replay of the same bytes is rejected by the UNIQUE constraint.
    let duplicate = event(&digest)
        .into_active_model()
        .insert(&database.db)
        .await;
    let error = duplicate.expect_err("duplicate digest must be rejected");
    assert!(
        matches!(
            error.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ),
        "{error}"
    );

    // Status, error and processed_at update.
    let mut processed = read.into_active_model();
    processed.status = sea_orm::Set(WebhookEventStatus::Failed);
    processed.error = sea_orm::Set(Some("DCS timed out".to_owned()));
    processed.processed_at = sea_orm::Set(Some(Utc::now()));
    let updated = processed.update(&database.db).await.expect("update");
    assert_eq!(updated.status, WebhookEventStatus::Failed);
    assert_eq!(updated.error.as_deref(), Some("DCS timed out"));

    // Other bodies are accepted.
    event(&"b".repeat(64))
        .into_active_model()
        .insert(&database.db)
        .await
        .expect("different digest");
    assert_eq!(
        webhook_event_log::Entity::find()
            .all(&database.db)
            .await
            .unwrap()
            .len(),
        2
    );
}
on_both_databases!(webhook_events_round_trip_and_dedupe_by_body_digest);

trait WithId {
    fn with_id(self, id: Uuid) -> Self;
}

impl WithId for webhook_event_log::Model {
    fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }
}
