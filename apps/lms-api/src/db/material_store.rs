//! The domain's [`MaterialRepository`] over `teacher_materials` and `teacher_storage_quotas`
//! (SQLite and PostgreSQL).
//!
//! Quota arithmetic happens in the database, never read-modify-write in Rust:
//!
//! - a reservation is one conditional `UPDATE ... SET used_bytes = used_bytes + n WHERE
//!   used_bytes <= quota_bytes - n RETURNING ...` (after creating the row with the default
//!   quota when there is none and `n` fits it), so of concurrent callers the database admits
//!   exactly those
//!   that fit, and each sees the usage its own statement left;
//! - giving bytes back is `used_bytes = CASE WHEN used_bytes >= n THEN used_bytes - n ELSE 0
//!   END`;
//! - inserting and deleting a material change its row and the usage in one transaction whose
//!   first statement writes (on SQLite that takes the write lock at once, waiting for another
//!   writer instead of failing later with a stale snapshot). A delete is `DELETE ... RETURNING`,
//!   so of concurrent deletes of one row only the one that removed it gives its size back.
//!
//! Sizes are `u64` in the domain and `BIGINT` in the tables: values over `i64::MAX` are an
//! error, never wrapped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::materials::{
    MaterialChanges, MaterialKind, MaterialPage, MaterialQuery, MaterialRecord, Quota,
};
use domain::ports::{MaterialRepository, StoreError, SystemClock, now_micros};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query, UpdateStatement};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QueryResult, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::store_error;

use crate::db::entities::teacher_material::{self, MaterialType};
use crate::db::entities::teacher_storage_quota;

/// Teacher materials and quotas in the LMS database.
#[derive(Debug, Clone)]
pub struct SqlMaterialStore {
    db: DatabaseConnection,
}

impl SqlMaterialStore {
    /// The store over `db` (migrated).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Adds `bytes` to the usage in the teacher's row if it stays within the quota; the quota
    /// after, or `None` when it would not fit or there is no row.
    async fn take(
        &self,
        teacher: Uuid,
        bytes: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Quota>, StoreError> {
        use teacher_storage_quota::{Column, Entity, Model};
        // `used + n <= quota` written so that it cannot overflow (both are non-negative).
        let take = Query::update()
            .table(Entity)
            .value(Column::UsedBytes, Expr::col(Column::UsedBytes).add(bytes))
            .value(Column::UpdatedAt, now)
            .and_where(Expr::col(Column::TeacherId).eq(teacher))
            .and_where(Expr::col(Column::UsedBytes).lte(Expr::col(Column::QuotaBytes).sub(bytes)))
            .returning_all()
            .to_owned();
        let rows = query_returning(&self.db, &take).await?;
        returned::<Model>(rows)?
            .map(|row| to_quota(&row))
            .transpose()
    }
}

/// A byte count as the database stores it.
fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::new(format!(
            "{what} {value} is larger than the database stores ({})",
            i64::MAX
        ))
    })
}

/// A stored byte count (the columns are never negative unless something else wrote them).
fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::new(format!("stored {what} {value} is negative")))
}

fn material_type(kind: MaterialKind) -> MaterialType {
    match kind {
        MaterialKind::Document => MaterialType::Document,
        MaterialKind::Image => MaterialType::Image,
        MaterialKind::Audio => MaterialType::Audio,
        MaterialKind::Video => MaterialType::Video,
        MaterialKind::Url => MaterialType::Url,
        MaterialKind::TextNote => MaterialType::TextNote,
    }
}

fn material_kind(material_type: MaterialType) -> MaterialKind {
    match material_type {
        MaterialType::Document => MaterialKind::Document,
        MaterialType::Image => MaterialKind::Image,
        MaterialType::Audio => MaterialKind::Audio,
        MaterialType::Video => MaterialKind::Video,
        MaterialType::Url => MaterialKind::Url,
        MaterialType::TextNote => MaterialKind::TextNote,
    }
}

fn to_record(row: teacher_material::Model) -> Result<MaterialRecord, StoreError> {
    let file_size = row
        .file_size
        .map(|size| to_u64(size, "file_size"))
        .transpose()?;
    Ok(MaterialRecord {
        id: row.id,
        teacher_id: row.teacher_id,
        name: row.name,
        kind: material_kind(row.material_type),
        storage_key: row.storage_key,
        file_size,
        mime_type: row.mime_type,
        original_filename: row.original_filename,
        url: row.url,
        text_content: row.text_content,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn to_row(record: &MaterialRecord) -> Result<teacher_material::ActiveModel, StoreError> {
    let file_size = record
        .file_size
        .map(|size| to_i64(size, "file_size"))
        .transpose()?;
    Ok(teacher_material::ActiveModel {
        id: ActiveValue::Set(record.id),
        teacher_id: ActiveValue::Set(record.teacher_id),
        name: ActiveValue::Set(record.name.clone()),
        material_type: ActiveValue::Set(material_type(record.kind)),
        storage_key: ActiveValue::Set(record.storage_key.clone()),
        file_size: ActiveValue::Set(file_size),
        mime_type: ActiveValue::Set(record.mime_type.clone()),
        original_filename: ActiveValue::Set(record.original_filename.clone()),
        url: ActiveValue::Set(record.url.clone()),
        text_content: ActiveValue::Set(record.text_content.clone()),
        created_at: ActiveValue::Set(record.created_at),
        updated_at: ActiveValue::Set(record.updated_at),
    })
}

fn to_quota(row: &teacher_storage_quota::Model) -> Result<Quota, StoreError> {
    Ok(Quota {
        used_bytes: to_u64(row.used_bytes, "used_bytes")?,
        quota_bytes: to_u64(row.quota_bytes, "quota_bytes")?,
    })
}

/// The first row a `... RETURNING *` statement gave, as a `T`.
fn returned<T: FromQueryResult>(rows: Vec<QueryResult>) -> Result<Option<T>, StoreError> {
    rows.first()
        .map(|row| T::from_query_result(row, ""))
        .transpose()
        .map_err(store_error)
}

/// Gives `bytes` back to the teacher's usage, never below zero.
fn give_back(teacher: Uuid, bytes: i64, now: DateTime<Utc>) -> UpdateStatement {
    use teacher_storage_quota::{Column, Entity};
    Query::update()
        .table(Entity)
        .value(
            Column::UsedBytes,
            Expr::case(
                Expr::col(Column::UsedBytes).gte(bytes),
                Expr::col(Column::UsedBytes).sub(bytes),
            )
            .finally(0_i64),
        )
        .value(Column::UpdatedAt, now)
        .and_where(Expr::col(Column::TeacherId).eq(teacher))
        .to_owned()
}

/// Runs a statement that ends in `RETURNING *`. All rows are fetched, so on SQLite the
/// statement runs to completion and its implicit transaction ends with the call.
async fn query_returning<C: ConnectionTrait, S: sea_orm::StatementBuilder>(
    db: &C,
    statement: &S,
) -> Result<Vec<QueryResult>, StoreError> {
    db.query_all(statement).await.map_err(store_error)
}

#[async_trait]
impl MaterialRepository for SqlMaterialStore {
    async fn quota(&self, teacher: Uuid, default_quota: u64) -> Result<Quota, StoreError> {
        let row = teacher_storage_quota::Entity::find_by_id(teacher)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        match row {
            Some(row) => to_quota(&row),
            None => Ok(Quota {
                used_bytes: 0,
                quota_bytes: default_quota,
            }),
        }
    }

    async fn reserve(
        &self,
        teacher: Uuid,
        bytes: u64,
        default_quota: u64,
    ) -> Result<Option<Quota>, StoreError> {
        use teacher_storage_quota::{Column, Entity};
        let bytes = to_i64(bytes, "reservation")?;
        let default_quota = to_i64(default_quota, "default quota")?;
        let now = now_micros(&SystemClock);

        // A reservation larger than the default cannot fit a new row: the row is not created
        // for it, so a refused reservation writes nothing.
        if bytes > default_quota {
            return self.take(teacher, bytes, now).await;
        }
        // Rows are never deleted, so once this ran the row exists for the update below.
        let create = Query::insert()
            .into_table(Entity)
            .columns([
                Column::TeacherId,
                Column::UsedBytes,
                Column::QuotaBytes,
                Column::CreatedAt,
                Column::UpdatedAt,
            ])
            .values_panic([
                teacher.into(),
                0_i64.into(),
                default_quota.into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::column(Column::TeacherId)
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        self.db.execute(&create).await.map_err(store_error)?;
        self.take(teacher, bytes, now).await
    }

    async fn release(&self, teacher: Uuid, bytes: u64) -> Result<(), StoreError> {
        let bytes = to_i64(bytes, "release")?;
        if bytes == 0 {
            return Ok(());
        }
        self.db
            .execute(&give_back(teacher, bytes, now_micros(&SystemClock)))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn insert(
        &self,
        record: &MaterialRecord,
        unused_reservation: u64,
    ) -> Result<Option<Quota>, StoreError> {
        let row = to_row(record)?;
        let unused = to_i64(unused_reservation, "unused reservation")?;
        let txn = self.db.begin().await.map_err(store_error)?;
        teacher_material::Entity::insert(row)
            .exec_without_returning(&txn)
            .await
            .map_err(store_error)?;
        if unused > 0 {
            txn.execute(&give_back(
                record.teacher_id,
                unused,
                now_micros(&SystemClock),
            ))
            .await
            .map_err(store_error)?;
        }
        let quota = teacher_storage_quota::Entity::find_by_id(record.teacher_id)
            .one(&txn)
            .await
            .map_err(store_error)?
            .map(|row| to_quota(&row))
            .transpose()?;
        txn.commit().await.map_err(store_error)?;
        Ok(quota)
    }

    async fn get(&self, teacher: Uuid, id: Uuid) -> Result<Option<MaterialRecord>, StoreError> {
        use teacher_material::{Column, Entity};
        Entity::find_by_id(id)
            .filter(Column::TeacherId.eq(teacher))
            .one(&self.db)
            .await
            .map_err(store_error)?
            .map(to_record)
            .transpose()
    }

    async fn list(&self, teacher: Uuid, query: &MaterialQuery) -> Result<MaterialPage, StoreError> {
        use teacher_material::{Column, Entity};
        let mut matches = Entity::find().filter(Column::TeacherId.eq(teacher));
        if let Some(kind) = query.kind {
            matches = matches.filter(Column::MaterialType.eq(material_type(kind)));
        }
        let total = matches.clone().count(&self.db).await.map_err(store_error)?;
        // Both databases take OFFSET and LIMIT as signed 64-bit numbers; anything larger
        // means "all of them" anyway.
        let largest = u64::try_from(i64::MAX).unwrap_or(u64::MAX);
        let items = matches
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .offset(std::cmp::min(query.offset, largest))
            .limit(std::cmp::min(query.limit, largest))
            .all(&self.db)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(to_record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MaterialPage { items, total })
    }

    async fn update(
        &self,
        teacher: Uuid,
        id: Uuid,
        changes: &MaterialChanges,
    ) -> Result<Option<MaterialRecord>, StoreError> {
        use teacher_material::{Column, Entity, Model};
        let mut edit = Query::update();
        edit.table(Entity)
            .value(Column::UpdatedAt, changes.updated_at);
        if let Some(name) = &changes.name {
            edit.value(Column::Name, name.as_str());
        }
        if let Some(text_content) = &changes.text_content {
            edit.value(Column::TextContent, text_content.as_str());
        }
        if let Some(url) = &changes.url {
            edit.value(Column::Url, url.as_str());
        }
        edit.and_where(Expr::col(Column::Id).eq(id))
            .and_where(Expr::col(Column::TeacherId).eq(teacher))
            .returning_all();
        let rows = query_returning(&self.db, &edit).await?;
        returned::<Model>(rows)?.map(to_record).transpose()
    }

    async fn delete(&self, teacher: Uuid, id: Uuid) -> Result<Option<MaterialRecord>, StoreError> {
        use teacher_material::{Column, Entity, Model};
        let txn = self.db.begin().await.map_err(store_error)?;
        let remove = Query::delete()
            .from_table(Entity)
            .and_where(Expr::col(Column::Id).eq(id))
            .and_where(Expr::col(Column::TeacherId).eq(teacher))
            .returning_all()
            .to_owned();
        let rows = query_returning(&txn, &remove).await?;
        // Nothing removed (absent, another teacher's, or a concurrent delete won): dropping
        // the transaction rolls it back.
        let Some(row) = returned::<Model>(rows)? else {
            return Ok(None);
        };
        let record = to_record(row)?;
        if let Some(size) = record.file_size.filter(|size| *size > 0) {
            let size = to_i64(size, "file_size")?;
            txn.execute(&give_back(teacher, size, now_micros(&SystemClock)))
                .await
                .map_err(store_error)?;
        }
        txn.commit().await.map_err(store_error)?;
        Ok(Some(record))
    }

    async fn set_quota(&self, teacher: Uuid, quota_bytes: u64) -> Result<Quota, StoreError> {
        use teacher_storage_quota::{Column, Entity, Model};
        let quota_bytes = to_i64(quota_bytes, "quota")?;
        let now = now_micros(&SystemClock);
        let upsert = Query::insert()
            .into_table(Entity)
            .columns([
                Column::TeacherId,
                Column::UsedBytes,
                Column::QuotaBytes,
                Column::CreatedAt,
                Column::UpdatedAt,
            ])
            .values_panic([
                teacher.into(),
                0_i64.into(),
                quota_bytes.into(),
                now.into(),
                now.into(),
            ])
            .on_conflict(
                OnConflict::column(Column::TeacherId)
                    .update_columns([Column::QuotaBytes, Column::UpdatedAt])
                    .to_owned(),
            )
            .returning_all()
            .to_owned();
        let rows = query_returning(&self.db, &upsert).await?;
        let row = returned::<Model>(rows)?
            .ok_or_else(|| StoreError::new("the quota upsert returned no row"))?;
        to_quota(&row)
    }
}
