//! `leader_locks`: named, expiring leases for work that exactly one instance should do at a time
//! (for example registering the webhook subscription with DCS at start-up).
//!
//! A lease is taken or renewed with a single conditional upsert, so the database decides the
//! winner; `expires_at` lets a lease held by a crashed instance lapse on its own.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LeaderLocks::Table)
                    .col(
                        ColumnDef::new(LeaderLocks::Name)
                            .string_len(128)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(LeaderLocks::Holder)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(LeaderLocks::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LeaderLocks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LeaderLocks {
    Table,
    Name,
    Holder,
    ExpiresAt,
}
