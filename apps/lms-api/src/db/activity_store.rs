//! The domain's [`ActivityRepository`] over the `activities` table (SQLite and PostgreSQL).
//!
//! A replace runs in one transaction that first locks the book (see [`lock_book`]), so two
//! imports of one book apply one after the other. Rows are matched on their natural key, so an
//! activity keeps its id across re-imports; only rows whose digest changed are rewritten.

use async_trait::async_trait;
use chrono::Utc;
use domain::activities::{
    ActivityId, ActivityKey, ActivityRepository, ParsedActivity, ReplaceSummary, RepositoryError,
    StoredActivity, validate_replace,
};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, QueryFilter, QueryOrder, Statement, TransactionTrait,
};

use crate::db::entities::activity::{ActiveModel, Column, Entity, Model};

/// Activities in the LMS database.
#[derive(Debug, Clone)]
pub struct SqlActivityStore {
    db: DatabaseConnection,
}

impl SqlActivityStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn unavailable(err: DbErr) -> RepositoryError {
    RepositoryError::Unavailable(err.to_string())
}

fn to_i32(value: u32, what: &str) -> Result<i32, RepositoryError> {
    i32::try_from(value)
        .map_err(|_| RepositoryError::InvalidInput(format!("{what} {value} is out of range")))
}

fn active_model(activity: &ParsedActivity) -> Result<ActiveModel, RepositoryError> {
    let now = Utc::now();
    Ok(ActiveModel {
        id: ActiveValue::NotSet,
        book_id: ActiveValue::Set(activity.key.book_id),
        module_index: ActiveValue::Set(to_i32(activity.key.module_index, "module index")?),
        page_number: ActiveValue::Set(to_i32(activity.key.page_number, "page number")?),
        section_index: ActiveValue::Set(to_i32(activity.key.section_index, "section index")?),
        position: ActiveValue::Set(activity.order),
        activity_type: ActiveValue::Set(activity.activity_type.clone()),
        title: ActiveValue::Set(activity.title.clone()),
        header_text: ActiveValue::Set(activity.header_text.clone()),
        module_name: ActiveValue::Set(activity.module_name.clone()),
        config: ActiveValue::Set(activity.config.to_string()),
        digest: ActiveValue::Set(activity.digest.clone()),
        created_at: ActiveValue::Set(now),
        updated_at: ActiveValue::Set(now),
    })
}

fn key_of(model: &Model) -> Option<ActivityKey> {
    Some(ActivityKey {
        book_id: model.book_id,
        module_index: u32::try_from(model.module_index).ok()?,
        page_number: u32::try_from(model.page_number).ok()?,
        section_index: u32::try_from(model.section_index).ok()?,
    })
}

fn stored(model: Model) -> Result<StoredActivity, RepositoryError> {
    let key = key_of(&model).ok_or_else(|| {
        RepositoryError::Unavailable(format!("activity {} has a negative position", model.id))
    })?;
    let config = serde_json::from_str(&model.config).map_err(|err| {
        RepositoryError::Unavailable(format!("activity {} config is not JSON: {err}", model.id))
    })?;
    Ok(StoredActivity {
        id: ActivityId(model.id),
        activity: ParsedActivity {
            key,
            activity_type: model.activity_type,
            title: model.title,
            header_text: model.header_text,
            module_name: model.module_name,
            order: model.position,
            config,
            digest: model.digest,
        },
    })
}

/// The columns a changed activity rewrites (never `id`, the key or `created_at`).
const CONTENT_COLUMNS: [Column; 7] = [
    Column::Position,
    Column::ActivityType,
    Column::Title,
    Column::HeaderText,
    Column::ModuleName,
    Column::Config,
    Column::Digest,
];

/// Serialises replaces of one book until the transaction ends, so what a replace reads as the
/// current rows is still current when it writes: two imports at once (a first listing and a
/// webhook) then apply one after the other, and the last one's set is exactly what remains.
async fn lock_book(txn: &DatabaseTransaction, book_id: i64) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    let statement = match backend {
        // A transaction-scoped advisory lock in this table's own namespace.
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock($1, $2)",
            [
                ACTIVITY_LOCK_NAMESPACE.into(),
                ((book_id % i64::from(i32::MAX)) as i32).into(),
            ],
        ),
        // SQLite has one writer at a time: a write statement first takes the write lock now
        // (waiting for the other writer) instead of failing the later writes of a transaction
        // that already read an older snapshot.
        _ => Statement::from_sql_and_values(
            backend,
            "UPDATE activities SET book_id = book_id WHERE book_id = ?",
            [book_id.into()],
        ),
    };
    txn.execute_raw(statement).await.map(|_| ())
}

/// First key of the PostgreSQL advisory locks taken by [`lock_book`] ("acts").
const ACTIVITY_LOCK_NAMESPACE: i32 = 0x6163_7473;

#[async_trait]
impl ActivityRepository for SqlActivityStore {
    async fn replace_for_book(
        &self,
        book_id: i64,
        activities: Vec<ParsedActivity>,
    ) -> Result<ReplaceSummary, RepositoryError> {
        validate_replace(book_id, &activities)?;
        let rows = activities
            .iter()
            .map(active_model)
            .collect::<Result<Vec<_>, _>>()?;

        let txn = self.db.begin().await.map_err(unavailable)?;
        lock_book(&txn, book_id).await.map_err(unavailable)?;
        let existing = Entity::find()
            .filter(Column::BookId.eq(book_id))
            .all(&txn)
            .await
            .map_err(unavailable)?;
        let mut known: std::collections::HashMap<ActivityKey, Model> = existing
            .into_iter()
            .filter_map(|model| key_of(&model).map(|key| (key, model)))
            .collect();

        let mut summary = ReplaceSummary::default();
        for (activity, mut row) in activities.iter().zip(rows) {
            match known.remove(&activity.key) {
                Some(current) if current.digest == activity.digest => summary.unchanged += 1,
                Some(current) => {
                    row.id = ActiveValue::Unchanged(current.id);
                    row.created_at = ActiveValue::NotSet;
                    Entity::update(row).exec(&txn).await.map_err(unavailable)?;
                    summary.updated += 1;
                }
                None => {
                    let mut on_conflict = OnConflict::columns([
                        Column::BookId,
                        Column::ModuleIndex,
                        Column::PageNumber,
                        Column::SectionIndex,
                    ]);
                    on_conflict.update_columns(CONTENT_COLUMNS);
                    on_conflict.update_column(Column::UpdatedAt);
                    Entity::insert(row)
                        .on_conflict(on_conflict)
                        .exec_without_returning(&txn)
                        .await
                        .map_err(unavailable)?;
                    summary.inserted += 1;
                }
            }
        }
        let gone: Vec<i64> = known.values().map(|model| model.id).collect();
        if !gone.is_empty() {
            Entity::delete_many()
                .filter(Column::Id.is_in(gone.iter().copied()))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
        }
        summary.deleted = gone.len();
        txn.commit().await.map_err(unavailable)?;
        Ok(summary)
    }

    async fn list_for_book(&self, book_id: i64) -> Result<Vec<StoredActivity>, RepositoryError> {
        Entity::find()
            .filter(Column::BookId.eq(book_id))
            .order_by_asc(Column::ModuleIndex)
            .order_by_asc(Column::PageNumber)
            .order_by_asc(Column::SectionIndex)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(stored)
            .collect()
    }

    async fn get(&self, id: ActivityId) -> Result<Option<StoredActivity>, RepositoryError> {
        Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(stored)
            .transpose()
    }

    async fn delete_for_book(&self, book_id: i64) -> Result<usize, RepositoryError> {
        let result = Entity::delete_many()
            .filter(Column::BookId.eq(book_id))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(usize::try_from(result.rows_affected).unwrap_or(usize::MAX))
    }
}
