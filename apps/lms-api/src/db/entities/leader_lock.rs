//! `leader_locks`: named expiring leases (see [`crate::db::SqlLeaseStore`]).

use sea_orm::entity::prelude::*;

/// One lease.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "leader_locks")]
pub struct Model {
    /// What the lease is for, e.g. `webhook-registration`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Who holds it (an instance id).
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
