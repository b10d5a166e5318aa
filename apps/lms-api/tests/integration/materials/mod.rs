//! Teacher materials through the HTTP API, on SQLite and PostgreSQL, on the filesystem store
//! and on a real S3 server (s3s-fs), with a real clamd.

mod access;
mod faults;
mod flows;
mod input;
mod wire;

pub use wire::*;
