//! Everything that knows sea-orm: the connection and migrations (SQLite embedded by default,
//! PostgreSQL via `DATABASE_URL=postgres://...`), the entities, and the adapters that implement
//! the domain's ports over them ([`SqlDeliveryStore`], [`SqlLeaseStore`], [`SqlActivityStore`],
//! [`SqlMaterialStore`]).

pub mod activity_store;
pub mod delivery_store;
pub mod entities;
pub mod lease_store;
pub mod material_store;

pub use activity_store::SqlActivityStore;
pub use delivery_store::SqlDeliveryStore;
pub use lease_store::SqlLeaseStore;
pub use material_store::SqlMaterialStore;

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    TransactionTrait,
};

use domain::ports::StoreError;

use crate::settings::{DatabaseKind, DatabaseUrl};

/// How long a request may wait for a pooled connection before failing.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Key of the PostgreSQL advisory lock held while migrating ("lmsmigr" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x006c_6d73_6d69_6772;

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The directory for the SQLite file could not be created.
    #[error("cannot create the database directory {path}: {source}")]
    CreateDirectory {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Connecting failed (the message names the URL with its password masked).
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        /// The redacted URL.
        url: String,
        /// The driver error.
        source: DbErr,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] DbErr),
}

/// A database error as a domain [`StoreError`], marked unavailable when the database could not
/// be reached at all: no connection within [`ACQUIRE_TIMEOUT`] (the server down or restarting,
/// the pool exhausted), a connection lost mid-statement, or PostgreSQL shutting down or still
/// starting. Those become 503 `database_unavailable`; anything else stays a 500.
pub fn store_error(error: DbErr) -> StoreError {
    if is_unavailable(&error) {
        StoreError::unavailable(error)
    } else {
        StoreError::new(error)
    }
}

fn is_unavailable(error: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as SqlxError;
    match error {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(inner))
        | DbErr::Exec(RuntimeErr::SqlxError(inner))
        | DbErr::Query(RuntimeErr::SqlxError(inner)) => match inner.as_ref() {
            SqlxError::Io(_)
            | SqlxError::PoolTimedOut
            | SqlxError::PoolClosed
            | SqlxError::WorkerCrashed => true,
            // admin_shutdown, crash_shutdown, cannot_connect_now (SQLSTATE class 57P).
            SqlxError::Database(db) => db
                .code()
                .is_some_and(|code| matches!(code.as_ref(), "57P01" | "57P02" | "57P03")),
            _ => false,
        },
        _ => false,
    }
}

/// Opens a connection pool. For a SQLite file the parent directory is created when missing,
/// and the file is put in WAL mode so readers do not block the writer.
pub async fn connect(url: &DatabaseUrl) -> Result<DatabaseConnection, DbSetupError> {
    if let Some(file) = url.sqlite_file()
        && let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| DbSetupError::CreateDirectory {
            path: dir.display().to_string(),
            source,
        })?;
    }

    let mut options = ConnectOptions::new(url.expose().to_owned());
    options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        // Statement logging would print bound values; request logs cover what is needed.
        .sqlx_logging(false);
    if url.kind() == DatabaseKind::Sqlite && url.sqlite_file().is_some() {
        options.map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
        });
    }

    Database::connect(options)
        .await
        .map_err(|source| DbSetupError::Connect {
            url: url.redacted().to_owned(),
            source,
        })
}

/// Applies pending migrations.
///
/// On PostgreSQL the run happens in one transaction holding an advisory lock, so instances
/// starting together apply each migration exactly once and never see a half-migrated schema.
/// (SQLite is a single-instance deployment; its writes are serialised by the file lock.)
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbSetupError> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await.map_err(DbSetupError::Migrate)?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await
            .map_err(DbSetupError::Migrate)?;
            Migrator::up(&txn, None)
                .await
                .map_err(DbSetupError::Migrate)?;
            txn.commit().await.map_err(DbSetupError::Migrate)
        }
        _ => Migrator::up(db, None).await.map_err(DbSetupError::Migrate),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{ConnAcquireErr, RuntimeErr};

    use super::*;

    #[test]
    fn unreachable_database_errors_are_marked_unavailable() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for error in [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            DbErr::Conn(RuntimeErr::SqlxError(Arc::new(sea_orm::sqlx::Error::Io(
                io,
            )))),
            DbErr::Query(RuntimeErr::SqlxError(Arc::new(
                sea_orm::sqlx::Error::PoolTimedOut,
            ))),
        ] {
            assert!(store_error(error).is_unavailable());
        }
        for error in [
            DbErr::RecordNotFound("row".to_owned()),
            DbErr::Query(RuntimeErr::SqlxError(Arc::new(
                sea_orm::sqlx::Error::RowNotFound,
            ))),
        ] {
            assert!(!store_error(error).is_unavailable());
        }
    }
}
