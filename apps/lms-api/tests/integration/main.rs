//! Integration tests of lms-api, in one binary to keep link time down.
//!
//! Database tests run on SQLite and on PostgreSQL (`TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`); PostgreSQL tests fail when the server is
//! unreachable unless `LMS_SKIP_POSTGRES_TESTS=1`.

mod support;

mod activities;
mod auth;
mod browser;
mod catalog;
mod cli;
mod content;
mod database;
mod environment_doc;
mod errors;
mod faults;
mod guards;
mod head;
mod instances;
mod leader_locks;
mod materials;
mod materials_store;
mod multi_instance;
mod processes;
mod settings;
mod system;
mod webhook_events;
mod webhook_registration;
mod webhooks;
