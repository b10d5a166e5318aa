#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod api;
mod auth;
mod breaker;
mod client;
mod clock;
mod config;
mod error;
pub mod models;
mod path;
mod stats;
mod transport;

#[cfg(test)]
mod tests;

pub use api::{ByteStream, Conditional, DcsApi, Download, DownloadOptions};
pub use breaker::BreakerState;
pub use client::DcsClient;
pub use clock::{Clock, SystemClock};
pub use config::{BreakerConfig, Credentials, DcsConfig, Jitter, RetryConfig};
pub use error::DcsError;
pub use models::{
    Book, BookEventData, BookFile, BookStatus, BookUploadResponse, ErrorBody, ErrorDetail, Health,
    LoginResponse, PresignedUrl, Publisher, PublisherEventData, PublisherPage, PublisherStatus,
    StorageNode, StorageNodeType, UploadedFile, ValidationIssue, WebhookDeliveryLog,
    WebhookDeliveryStatus, WebhookEvent, WebhookEventData, WebhookEventType, WebhookSubscription,
    WebhookSubscriptionCreate, WebhookSubscriptionUpdate,
};
pub use path::{AssetPath, encode_query_value, encode_segment};
pub use stats::DcsStats;

/// Test doubles (feature `test-util`; enable it from `[dev-dependencies]` only).
#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    pub use crate::clock::ManualClock;
}
