#![doc = include_str!("../README.md")]

pub mod activity_repository;
pub mod app;
pub mod auth;
pub mod background;
pub mod cache_metrics;
pub mod cli;
pub mod clock;
pub mod db;
pub mod entities;
pub mod error;
pub mod head;
pub mod leader_lock;
pub mod metrics;
pub mod readiness;
pub mod routes;
pub mod services;
pub mod settings;
pub mod telemetry;
pub mod webhook_events;
pub mod webhook_registration;
pub mod webhooks;

pub use app::{AppState, build_state, create_app};
pub use error::{ApiError, ErrorBody};
pub use settings::Settings;
