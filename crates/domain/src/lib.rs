#![doc = include_str!("../README.md")]

pub mod access;
pub mod activities;
pub mod asset_path;
pub mod book_content;
pub mod catalog;
pub mod config_transform;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod errors;
pub mod keys;
pub mod leases;
pub mod linker;
pub mod materials;
pub mod memory;
pub mod ports;
pub mod signed_links;
pub mod webhook_log;
pub mod webhook_receiver;
pub mod webhook_registration;
pub mod webhooks;
