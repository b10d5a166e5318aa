//! `activities`: the activities parsed from each book's config.json, so the LMS can list a
//! book's activities and start one by id without re-reading the config.
//!
//! A row's natural key is its place in the book (book, module, page, section). Re-importing an
//! unchanged book upserts on that key, so activity ids stay stable across imports (assignments
//! and progress will point at them); `digest` tells whether the section changed.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Activities::Table)
                    .col(
                        ColumnDef::new(Activities::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Activities::BookId).big_integer().not_null())
                    .col(ColumnDef::new(Activities::ModuleIndex).integer().not_null())
                    .col(ColumnDef::new(Activities::PageNumber).integer().not_null())
                    .col(
                        ColumnDef::new(Activities::SectionIndex)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Activities::Position)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Activities::ActivityType)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Activities::Title).text().null())
                    .col(ColumnDef::new(Activities::HeaderText).text().null())
                    .col(ColumnDef::new(Activities::ModuleName).text().not_null())
                    .col(ColumnDef::new(Activities::Config).text().not_null())
                    .col(ColumnDef::new(Activities::Digest).string_len(64).not_null())
                    .col(
                        ColumnDef::new(Activities::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Activities::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_activities_place")
                    .table(Activities::Table)
                    .col(Activities::BookId)
                    .col(Activities::ModuleIndex)
                    .col(Activities::PageNumber)
                    .col(Activities::SectionIndex)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_activities_book_position")
                    .table(Activities::Table)
                    .col(Activities::BookId)
                    .col(Activities::Position)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Activities::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Activities {
    Table,
    Id,
    BookId,
    ModuleIndex,
    PageNumber,
    SectionIndex,
    Position,
    ActivityType,
    Title,
    HeaderText,
    ModuleName,
    Config,
    Digest,
    CreatedAt,
    UpdatedAt,
}
