//! Named, expiring leases in the database, so that one instance out of many does a task
//! (for example registering the webhook subscription with DCS at start-up).
//!
//! Taking a lease is one conditional upsert: insert the row, or take over the existing one when
//! it has expired or is already ours. The database serialises competing statements, so exactly
//! one caller wins; no transaction or row lock is held between calls. A holder that crashes
//! simply stops renewing and its lease lapses after its TTL.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::clock::{Clock, SystemClock};
use crate::entities::leader_lock::{Column, Entity};

/// A lease held by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What the lease is for.
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// When it lapses unless renewed with another [`LeaderLocks::try_acquire`].
    pub expires_at: DateTime<Utc>,
}

/// Errors of the lease repository.
#[derive(Debug, thiserror::Error)]
pub enum LeaderLockError {
    /// The database failed.
    #[error("leader lock storage failed: {0}")]
    Database(#[from] DbErr),
    /// The TTL does not fit a timestamp.
    #[error("lease TTL {0:?} is out of range")]
    TtlOutOfRange(Duration),
}

/// Repository over the `leader_locks` table.
#[derive(Debug, Clone)]
pub struct LeaderLocks {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
}

impl LeaderLocks {
    /// Leases timed by the system clock.
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    /// Leases timed by `clock` (tests use a manual clock).
    pub fn with_clock(db: DatabaseConnection, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    /// Takes the lease `name` for `holder` until now + `ttl`, or renews it when `holder`
    /// already has it. Returns `None` while another holder's lease is unexpired.
    pub async fn try_acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, LeaderLockError> {
        let now = self.now();
        let expires_at = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|ttl| now.checked_add_signed(ttl))
            .ok_or(LeaderLockError::TtlOutOfRange(ttl))?;

        // On SQLite timestamps are RFC 3339 text, always in UTC ("+00:00"); such strings sort
        // in time order, so `<=` compares instants there as it does on PostgreSQL.
        let take_over_when = Expr::col((Entity, Column::ExpiresAt))
            .lte(now)
            .or(Expr::col((Entity, Column::Holder)).eq(holder));
        let upsert = Query::insert()
            .into_table(Entity)
            .columns([Column::Name, Column::Holder, Column::ExpiresAt])
            .values_panic([name.into(), holder.into(), expires_at.into()])
            .on_conflict(
                OnConflict::column(Column::Name)
                    .update_columns([Column::Holder, Column::ExpiresAt])
                    .action_and_where(take_over_when)
                    .to_owned(),
            )
            .to_owned();

        // Zero rows means the conflict's WHERE was false: someone else holds a live lease.
        let result = self.db.execute(&upsert).await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(Some(Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            expires_at,
        }))
    }

    /// Gives the lease up early. Returns whether `holder` had it (an expired or foreign lease is
    /// left alone).
    pub async fn release(&self, name: &str, holder: &str) -> Result<bool, LeaderLockError> {
        let result = Entity::delete_many()
            .filter(Column::Name.eq(name))
            .filter(Column::Holder.eq(holder))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// The unexpired lease on `name`, whoever holds it.
    pub async fn current(&self, name: &str) -> Result<Option<Lease>, LeaderLockError> {
        let now = self.now();
        let row = Entity::find_by_id(name.to_owned())
            .filter(Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await?;
        Ok(row.map(|row| Lease {
            name: row.name,
            holder: row.holder,
            expires_at: row.expires_at,
        }))
    }

    /// Now, at the microsecond precision both databases store, so values read back compare
    /// equal to the ones written.
    fn now(&self) -> DateTime<Utc> {
        let now = self.clock.now();
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}
