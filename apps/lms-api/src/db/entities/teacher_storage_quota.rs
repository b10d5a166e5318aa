//! `teacher_storage_quotas`: how much storage each teacher uses and may use (see
//! [`crate::db::SqlMaterialStore`]).

use sea_orm::entity::prelude::*;

/// One teacher's allowance; a teacher without a row has the configured default.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "teacher_storage_quotas")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub teacher_id: Uuid,
    /// Bytes of stored files plus reservations of uploads in progress (never negative).
    pub used_bytes: i64,
    /// The allowance; may be below `used_bytes` when an admin lowered it.
    pub quota_bytes: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
