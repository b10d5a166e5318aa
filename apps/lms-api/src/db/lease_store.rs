//! [`LeaseStore`] over `leader_locks`. Taking a lease is one conditional upsert: insert the
//! row, or take over the existing one when it has expired or is already ours. The database
//! serialises competing statements, so exactly one caller wins.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ports::{Lease, LeaseStore, StoreError};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::db::entities::leader_lock::{Column, Entity};

/// The lease store on the app's database.
#[derive(Debug, Clone)]
pub struct SqlLeaseStore {
    db: DatabaseConnection,
}

impl SqlLeaseStore {
    /// The store over `db` (migrated).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl LeaseStore for SqlLeaseStore {
    async fn acquire(&self, lease: &Lease, now: DateTime<Utc>) -> Result<bool, StoreError> {
        // On SQLite timestamps are RFC 3339 text, always in UTC ("+00:00"); such strings sort
        // in time order, so `<=` compares instants there as it does on PostgreSQL.
        let take_over_when = Expr::col((Entity, Column::ExpiresAt))
            .lte(now)
            .or(Expr::col((Entity, Column::Holder)).eq(lease.holder.as_str()));
        let upsert = Query::insert()
            .into_table(Entity)
            .columns([Column::Name, Column::Holder, Column::ExpiresAt])
            .values_panic([
                lease.name.as_str().into(),
                lease.holder.as_str().into(),
                lease.expires_at.into(),
            ])
            .on_conflict(
                OnConflict::column(Column::Name)
                    .update_columns([Column::Holder, Column::ExpiresAt])
                    .action_and_where(take_over_when)
                    .to_owned(),
            )
            .to_owned();
        // Zero rows means the conflict's WHERE was false: someone else holds a live lease.
        let result = self.db.execute(&upsert).await.map_err(super::store_error)?;
        Ok(result.rows_affected() > 0)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<bool, StoreError> {
        let result = Entity::delete_many()
            .filter(Column::Name.eq(name))
            .filter(Column::Holder.eq(holder))
            .exec(&self.db)
            .await
            .map_err(super::store_error)?;
        Ok(result.rows_affected > 0)
    }

    async fn current(&self, name: &str, now: DateTime<Utc>) -> Result<Option<Lease>, StoreError> {
        let row = Entity::find_by_id(name.to_owned())
            .filter(Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await
            .map_err(super::store_error)?;
        Ok(row.map(|row| Lease {
            name: row.name,
            holder: row.holder,
            expires_at: row.expires_at,
        }))
    }
}
