//! `teacher_materials` and `teacher_storage_quotas`: a teacher's own materials (files in object
//! storage, links, notes) and how much storage each teacher uses and may use.
//!
//! A file's bytes live in object storage under `storage_key` (UNIQUE, so two rows never claim
//! one object); links and notes have no key. `used_bytes` counts stored files plus
//! reservations of uploads in progress; the adapter changes it with conditional statements so
//! concurrent uploads never take it over `quota_bytes`, and the CHECK keeps it from going
//! negative. An admin may set `quota_bytes` below `used_bytes`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TEACHER_CREATED_AT_INDEX: &str = "idx_teacher_materials_teacher_created_at";
const TYPE_CHECK: &str = "ck_teacher_materials_type";
const USED_BYTES_CHECK: &str = "ck_teacher_storage_quotas_used_bytes";

/// The stored names of `MaterialKind`.
const MATERIAL_TYPES: [&str; 6] = ["document", "image", "audio", "video", "url", "text_note"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TeacherMaterials::Table)
                    .col(
                        ColumnDef::new(TeacherMaterials::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TeacherMaterials::TeacherId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TeacherMaterials::Name)
                            .string_len(255)
                            .not_null(),
                    )
                    // document | image | audio | video | url | text_note
                    .col(
                        ColumnDef::new(TeacherMaterials::Type)
                            .string()
                            .not_null()
                            .check((
                                TYPE_CHECK,
                                Expr::col(TeacherMaterials::Type).is_in(MATERIAL_TYPES),
                            )),
                    )
                    .col(
                        ColumnDef::new(TeacherMaterials::StorageKey)
                            .string()
                            .null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(TeacherMaterials::FileSize)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(TeacherMaterials::MimeType).string().null())
                    .col(
                        ColumnDef::new(TeacherMaterials::OriginalFilename)
                            .string()
                            .null(),
                    )
                    .col(ColumnDef::new(TeacherMaterials::Url).text().null())
                    .col(ColumnDef::new(TeacherMaterials::TextContent).text().null())
                    .col(
                        ColumnDef::new(TeacherMaterials::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TeacherMaterials::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        // A teacher's list, newest first.
        manager
            .create_index(
                Index::create()
                    .name(TEACHER_CREATED_AT_INDEX)
                    .table(TeacherMaterials::Table)
                    .col(TeacherMaterials::TeacherId)
                    .col(TeacherMaterials::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TeacherStorageQuotas::Table)
                    .col(
                        ColumnDef::new(TeacherStorageQuotas::TeacherId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TeacherStorageQuotas::UsedBytes)
                            .big_integer()
                            .not_null()
                            .default(0)
                            .check((
                                USED_BYTES_CHECK,
                                Expr::col(TeacherStorageQuotas::UsedBytes).gte(0),
                            )),
                    )
                    .col(
                        ColumnDef::new(TeacherStorageQuotas::QuotaBytes)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TeacherStorageQuotas::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TeacherStorageQuotas::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TeacherStorageQuotas::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(TeacherMaterials::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum TeacherMaterials {
    Table,
    Id,
    TeacherId,
    Name,
    Type,
    StorageKey,
    FileSize,
    MimeType,
    OriginalFilename,
    Url,
    TextContent,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TeacherStorageQuotas {
    Table,
    TeacherId,
    UsedBytes,
    QuotaBytes,
    CreatedAt,
    UpdatedAt,
}
