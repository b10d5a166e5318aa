//! `teacher_materials`: a teacher's own materials (see [`crate::db::SqlMaterialStore`]).

use sea_orm::entity::prelude::*;

/// What a material is; the stored names of `domain::materials::MaterialKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
pub enum MaterialType {
    #[sea_orm(string_value = "document")]
    Document,
    #[sea_orm(string_value = "image")]
    Image,
    #[sea_orm(string_value = "audio")]
    Audio,
    #[sea_orm(string_value = "video")]
    Video,
    #[sea_orm(string_value = "url")]
    Url,
    #[sea_orm(string_value = "text_note")]
    TextNote,
}

/// One material. Files have `storage_key` (unique), `file_size`, `mime_type` and
/// `original_filename`; links have `url`; notes have `text_content`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "teacher_materials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The owner; every query is scoped to it.
    pub teacher_id: Uuid,
    pub name: String,
    #[sea_orm(column_name = "type")]
    pub material_type: MaterialType,
    /// The object's key in storage.
    #[sea_orm(unique)]
    pub storage_key: Option<String>,
    /// Bytes of the stored object (counted in the teacher's `used_bytes`).
    pub file_size: Option<i64>,
    pub mime_type: Option<String>,
    pub original_filename: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub url: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub text_content: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
