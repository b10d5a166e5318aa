#![doc = include_str!("../README.md")]

use sea_orm_migration::prelude::*;

mod m20261122_000001_create_webhook_event_logs;
mod m20261122_000002_create_leader_locks;
mod m20261202_000003_create_activities;
mod m20261202_000004_create_teacher_materials;

pub use sea_orm_migration::MigratorTrait;

/// Every migration of the LMS database, oldest first.
///
/// Apply with `Migrator::up(&db, None)`; `lms-api migrate` and `lms-api serve` do that.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_webhook_event_logs::Migration),
            Box::new(m20261122_000002_create_leader_locks::Migration),
            Box::new(m20261202_000003_create_activities::Migration),
            Box::new(m20261202_000004_create_teacher_materials::Migration),
        ]
    }
}
