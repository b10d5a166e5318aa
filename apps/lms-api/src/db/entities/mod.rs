//! sea-orm entities for the tables created by the `migrations` crate.
//!
//! They live here, with the adapters that use them; the domain sees its ports.

pub mod activity;
pub mod leader_lock;
pub mod teacher_material;
pub mod teacher_storage_quota;
pub mod webhook_event_log;
