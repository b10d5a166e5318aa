#![doc = include_str!("../README.md")]

pub mod access;
pub mod catalog;
pub mod keys;
pub mod webhooks;
