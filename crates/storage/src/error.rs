//! Typed storage errors with stable codes, classified so the app can pick 404, 413, 416, 502
//! or 503 without looking at messages.

use std::io;

/// Everything a storage call can fail with. Messages never carry credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object does not exist.
    #[error("object not found: {key}")]
    NotFound { key: String },
    /// The body passed `limit` bytes while streaming; nothing was stored.
    #[error("object is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The key is empty, too long, or could escape the bucket (`..`, absolute, NUL, ...).
    #[error("invalid object key: {reason}")]
    InvalidKey { reason: &'static str },
    /// The requested byte range starts at or past the end (answer 416, `bytes */{size}`).
    #[error("requested range not satisfiable (object size {size})")]
    RangeNotSatisfiable { size: u64 },
    /// The bucket is missing: storage is not initialised (`lms-api storage-init`).
    #[error("bucket not found: {bucket}")]
    BucketNotFound { bucket: String },
    /// The server could not be reached, timed out or answered 5xx.
    #[error("object storage unavailable: {0}")]
    Unavailable(String),
    /// The server refused our credentials or signature.
    #[error("object storage denied access (status {status})")]
    AccessDenied { status: u16 },
    /// The caller's body stream failed while uploading; nothing was stored.
    #[error("upload body failed: {0}")]
    Body(#[source] io::Error),
    /// Any other unexpected answer from the server.
    #[error("object storage error: {0}")]
    Backend(String),
    /// Local filesystem error in the embedded adapter.
    #[error("local object storage I/O error: {0}")]
    Io(#[source] io::Error),
    /// Settings that cannot work (bad endpoint URL, TTL window, ...).
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl StorageError {
    /// Stable machine-readable code, for the API's `code` field and for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "storage_not_found",
            Self::TooLarge { .. } => "storage_too_large",
            Self::InvalidKey { .. } => "storage_invalid_key",
            Self::RangeNotSatisfiable { .. } => "storage_range_not_satisfiable",
            Self::BucketNotFound { .. } => "storage_bucket_not_found",
            Self::Unavailable(_) => "storage_unavailable",
            Self::AccessDenied { .. } => "storage_access_denied",
            Self::Body(_) => "storage_body_error",
            Self::Backend(_) => "storage_backend_error",
            Self::Io(_) => "storage_io_error",
            Self::Config(_) => "storage_config_error",
        }
    }

    /// True when retrying later may succeed: the app answers 503 with `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::BucketNotFound { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// The HTTP status an API route would answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::TooLarge { .. } => 413,
            Self::InvalidKey { .. } | Self::Body(_) => 400,
            Self::RangeNotSatisfiable { .. } => 416,
            Self::BucketNotFound { .. } | Self::Unavailable(_) => 503,
            Self::AccessDenied { .. } | Self::Backend(_) => 502,
            Self::Io(_) | Self::Config(_) => 500,
        }
    }

    pub(crate) fn not_found(key: &str) -> Self {
        Self::NotFound {
            key: key.to_owned(),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_classes() {
        let e = StorageError::not_found("a/b");
        assert_eq!(
            (e.code(), e.http_status(), e.is_not_found()),
            ("storage_not_found", 404, true)
        );
        let e = StorageError::TooLarge { limit: 3 };
        assert_eq!((e.code(), e.http_status()), ("storage_too_large", 413));
        let e = StorageError::Unavailable("connection refused".into());
        assert!(e.is_unavailable());
        assert_eq!(e.http_status(), 503);
        assert!(!StorageError::Backend("x".into()).is_unavailable());
        assert_eq!(StorageError::Backend("x".into()).http_status(), 502);
        assert_eq!(
            StorageError::RangeNotSatisfiable { size: 9 }.code(),
            "storage_range_not_satisfiable"
        );
    }
}
