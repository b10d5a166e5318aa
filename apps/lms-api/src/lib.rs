#![doc = include_str!("../README.md")]

pub mod app;
pub mod auth;
pub mod background;
pub mod cache_metrics;
pub mod cli;
pub mod db;
pub mod error;
pub mod guards;
pub mod head;
pub mod metrics;
pub mod object_storage;
pub mod paths;
pub mod protocol_errors;
pub mod readiness;
pub mod routes;
pub mod services;
pub mod settings;
pub mod state;
pub mod telemetry;
pub mod webhooks;

pub use app::{build_state, create_app};
pub use error::{ApiError, ErrorBody};
pub use settings::Settings;
pub use state::AppState;
