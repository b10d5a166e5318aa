//! `activities`: a book's activities parsed from its config.json (see
//! [`crate::db::activity_store::SqlActivityStore`]).

use sea_orm::entity::prelude::*;

/// One activity; `(book_id, module_index, page_number, section_index)` is unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "activities")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub book_id: i64,
    pub module_index: i32,
    pub page_number: i32,
    pub section_index: i32,
    /// The sort order: module x 1000 + page x 10 + section.
    pub position: i64,
    pub activity_type: String,
    pub title: Option<String>,
    pub header_text: Option<String>,
    pub module_name: String,
    /// The section's JSON as written in config.json.
    #[sea_orm(column_type = "Text")]
    pub config: String,
    /// SHA-256 hex of `config`: tells a changed section from an unchanged one.
    pub digest: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
