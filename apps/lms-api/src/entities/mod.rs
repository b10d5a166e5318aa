//! sea-orm entities for the tables created by the `migrations` crate.
//!
//! They live here, in the only crate that knows sea-orm; the domain crate sees repositories.

pub mod activity;
pub mod leader_lock;
pub mod webhook_event_log;
