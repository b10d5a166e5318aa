#![doc = include_str!("../README.md")]

pub mod access;
pub mod activities;
pub mod asset_path;
pub mod catalog;
pub mod config_transform;
pub mod keys;
pub mod linker;
pub mod webhooks;
