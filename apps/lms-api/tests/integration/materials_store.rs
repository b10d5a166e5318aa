//! The material repository's conformance suite (`domain::conformance`) on the SQL adapter, on
//! SQLite and PostgreSQL, and the constraints of its tables.

use chrono::{TimeZone, Utc};
use domain::conformance;
use domain::materials::{MaterialKind, MaterialRecord};
use domain::ports::MaterialRepository;
use lms_api::db::SqlMaterialStore;
use lms_api::db::entities::{teacher_material, teacher_storage_quota};
use sea_orm::{ActiveValue, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::support::{TestDatabase, on_both_databases};

fn store(database: &TestDatabase) -> SqlMaterialStore {
    SqlMaterialStore::new(database.db.clone())
}

async fn materials_crud_and_scoping(database: TestDatabase) {
    conformance::materials_crud_and_scoping(store(&database)).await;
}
on_both_databases!(materials_crud_and_scoping);

async fn quota_reserve_release_and_set(database: TestDatabase) {
    conformance::quota_reserve_release_and_set(store(&database)).await;
}
on_both_databases!(quota_reserve_release_and_set);

async fn concurrent_reservations_never_exceed_the_quota(database: TestDatabase) {
    conformance::concurrent_reservations_never_exceed_the_quota(store(&database)).await;
}
on_both_databases!(concurrent_reservations_never_exceed_the_quota);

async fn insert_and_delete_move_usage_with_the_rows(database: TestDatabase) {
    conformance::insert_and_delete_move_usage_with_the_rows(store(&database)).await;
}
on_both_databases!(insert_and_delete_move_usage_with_the_rows);

async fn list_orders_filters_and_paginates(database: TestDatabase) {
    conformance::list_orders_filters_and_paginates(store(&database)).await;
}
on_both_databases!(list_orders_filters_and_paginates);

async fn set_quota_below_usage_keeps_usage_and_blocks_reserve(database: TestDatabase) {
    conformance::set_quota_below_usage_keeps_usage_and_blocks_reserve(store(&database)).await;
}
on_both_databases!(set_quota_below_usage_keeps_usage_and_blocks_reserve);

async fn other_teachers_materials_are_invisible(database: TestDatabase) {
    conformance::other_teachers_materials_are_invisible(store(&database)).await;
}
on_both_databases!(other_teachers_materials_are_invisible);

async fn update_changes_only_given_fields(database: TestDatabase) {
    conformance::update_changes_only_given_fields(store(&database)).await;
}
on_both_databases!(update_changes_only_given_fields);

const USED_BYTES_CHECK: &str = "ck_teacher_storage_quotas_used_bytes";

fn document(teacher: Uuid, storage_key: &str, size: u64) -> MaterialRecord {
    let created_at = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
    MaterialRecord {
        id: Uuid::new_v4(),
        teacher_id: teacher,
        name: "Worksheet".to_owned(),
        kind: MaterialKind::Document,
        storage_key: Some(storage_key.to_owned()),
        file_size: Some(size),
        mime_type: Some("application/pdf".to_owned()),
        original_filename: Some("worksheet.pdf".to_owned()),
        url: None,
        text_content: None,
        created_at,
        updated_at: created_at,
    }
}

/// `storage_key` is unique (and a failed insert gives nothing back), links and notes may all
/// lack one, `used_bytes` cannot go negative, and `type` takes only the known kinds.
async fn constraints_hold(database: TestDatabase) {
    let materials = store(&database);
    let teacher = Uuid::new_v4();
    let key = format!("{teacher}/documents/one");

    assert!(
        materials
            .reserve(teacher, 300, 1000)
            .await
            .unwrap()
            .is_some()
    );
    materials
        .insert(&document(teacher, &key, 100), 0)
        .await
        .unwrap();
    // Another row claiming the same object is refused, in one transaction with its usage.
    assert!(
        materials
            .reserve(teacher, 200, 1000)
            .await
            .unwrap()
            .is_some()
    );
    let duplicate = materials
        .insert(&document(teacher, &key, 200), 200)
        .await
        .expect_err("a second row with the key");
    assert!(duplicate.to_string().contains("storage_key"), "{duplicate}");
    assert_eq!(
        materials.quota(teacher, 1000).await.unwrap().used_bytes,
        500
    );
    assert_eq!(
        materials.list(teacher, &everything()).await.unwrap().total,
        1
    );

    // Any number of rows without a key.
    for kind in [MaterialKind::Url, MaterialKind::TextNote, MaterialKind::Url] {
        let record = MaterialRecord {
            kind,
            storage_key: None,
            file_size: None,
            mime_type: None,
            original_filename: None,
            url: Some("https://example.org".to_owned()),
            ..document(teacher, "unused", 0)
        };
        materials.insert(&record, 0).await.unwrap();
    }
    assert_eq!(
        materials.list(teacher, &everything()).await.unwrap().total,
        4
    );

    // Sizes the columns cannot hold are errors, not wrapped values.
    let huge = u64::try_from(i64::MAX).unwrap() + 1;
    assert!(
        materials
            .insert(&document(teacher, "huge", huge), 0)
            .await
            .is_err()
    );
    assert!(materials.reserve(teacher, huge, 1000).await.is_err());
    assert!(materials.set_quota(teacher, huge).await.is_err());
    assert!(materials.release(teacher, huge).await.is_err());
    assert_eq!(
        materials.quota(teacher, 1000).await.unwrap().used_bytes,
        500
    );

    // The CHECK on used_bytes.
    let now = Utc::now();
    let negative = teacher_storage_quota::ActiveModel {
        teacher_id: ActiveValue::Set(Uuid::new_v4()),
        used_bytes: ActiveValue::Set(-1),
        quota_bytes: ActiveValue::Set(1000),
        created_at: ActiveValue::Set(now),
        updated_at: ActiveValue::Set(now),
    };
    let refused = teacher_storage_quota::Entity::insert(negative)
        .exec_without_returning(&database.db)
        .await
        .expect_err("negative usage");
    assert!(refused.to_string().contains(USED_BYTES_CHECK), "{refused}");
    let decrement = format!(
        "UPDATE teacher_storage_quotas SET used_bytes = used_bytes - 501 WHERE teacher_id = {}",
        uuid_literal(&database, teacher)
    );
    let refused = database
        .db
        .execute_unprepared(&decrement)
        .await
        .expect_err("usage below zero");
    assert!(refused.to_string().contains(USED_BYTES_CHECK), "{refused}");
    assert_eq!(
        materials.quota(teacher, 1000).await.unwrap().used_bytes,
        500
    );

    // The CHECK on type.
    let id = Uuid::new_v4();
    let unknown_type = format!(
        "INSERT INTO teacher_materials (id, teacher_id, name, type, created_at, updated_at) \
         VALUES ({}, {}, 'x', 'spreadsheet', '2026-12-02T12:00:00+00:00', \
         '2026-12-02T12:00:00+00:00')",
        uuid_literal(&database, id),
        uuid_literal(&database, teacher)
    );
    let refused = database
        .db
        .execute_unprepared(&unknown_type)
        .await
        .expect_err("an unknown type");
    assert!(
        refused.to_string().contains("ck_teacher_materials_type"),
        "{refused}"
    );
    assert!(
        teacher_material::Entity::find_by_id(id)
            .one(&database.db)
            .await
            .unwrap()
            .is_none()
    );
}
on_both_databases!(constraints_hold);

fn everything() -> domain::materials::MaterialQuery {
    domain::materials::MaterialQuery {
        kind: None,
        offset: 0,
        limit: 100,
    }
}

/// A UUID as a SQL literal in the column's storage (a 16-byte blob on SQLite).
fn uuid_literal(database: &TestDatabase, id: Uuid) -> String {
    match database.engine {
        crate::support::Engine::Sqlite => format!("X'{}'", id.simple()),
        crate::support::Engine::Postgres => format!("'{id}'"),
    }
}
