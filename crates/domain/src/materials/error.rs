//! [`MaterialError`] and its codes.

use storage::StorageError;

use super::Quota;
use super::file_types::FileTypeError;
use super::rules::{NameError, NoteError, UrlError};
use crate::errors::{Code, Problem, ToProblem};
use crate::ports::StoreError;

/// Why a material operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("material not found")]
    NotFound,
    /// The form is not one file part (the message says what is wrong).
    #[error("invalid upload: {0}")]
    InvalidUpload(String),
    /// The request body failed while streaming (cut off, malformed multipart).
    #[error("upload body failed: {0}")]
    Body(String),
    #[error("empty file")]
    EmptyFile,
    #[error("file over {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(transparent)]
    FileType(#[from] FileTypeError),
    #[error("quota exceeded ({} of {} bytes used)", quota.used_bytes, quota.quota_bytes)]
    QuotaExceeded { quota: Quota },
    #[error("virus found: {signature}")]
    Infected { signature: String },
    /// Scanning is on and the scanner failed (the message is for logs).
    #[error("virus scanner unavailable: {0}")]
    ScannerUnavailable(String),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error(transparent)]
    Url(#[from] UrlError),
    /// An edit that does not apply to the material.
    #[error("{0}")]
    InvalidEdit(String),
    #[error("material cannot be streamed")]
    NotStreamable,
    #[error("file storage: {0}")]
    Storage(#[from] StorageError),
    #[error("material repository: {0}")]
    Repository(#[from] StoreError),
}

fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 10.0 || mib.fract() == 0.0 {
        format!("{mib:.0} MB")
    } else {
        format!("{mib:.1} MB")
    }
}

impl ToProblem for MaterialError {
    fn problem(&self) -> Problem {
        match self {
            Self::NotFound => Problem::new(Code::MaterialNotFound),
            Self::InvalidUpload(message) => {
                Problem::new(Code::InvalidUpload).with_detail(message.clone())
            }
            Self::Body(_) => Problem::new(Code::InvalidUpload)
                .with_detail("The upload was cut off or is not valid multipart data."),
            Self::EmptyFile => Problem::new(Code::EmptyFile),
            Self::TooLarge { limit } => Problem::new(Code::FileTooLarge)
                .with_detail(format!(
                    "The file is larger than the limit of {}.",
                    mib(*limit)
                ))
                .with_field("max_bytes", *limit),
            Self::FileType(error) => {
                Problem::new(Code::UnsupportedFileType).with_detail(error.to_string())
            }
            Self::QuotaExceeded { quota } => Problem::new(Code::QuotaExceeded)
                .with_detail(format!(
                    "Not enough storage left: {} of {} used.",
                    mib(quota.used_bytes),
                    mib(quota.quota_bytes)
                ))
                .with_field("used_bytes", quota.used_bytes)
                .with_field("quota_bytes", quota.quota_bytes),
            Self::Infected { signature } => Problem::new(Code::VirusDetected)
                .with_detail(format!("The file was rejected: {signature} found."))
                .with_field("signature", signature.clone()),
            Self::ScannerUnavailable(_) => Problem::new(Code::ScannerUnavailable),
            Self::Name(error) => Problem::new(Code::InvalidName).with_detail(error.to_string()),
            Self::Note(error) => Problem::new(Code::InvalidNote).with_detail(error.to_string()),
            Self::Url(error) => Problem::new(Code::InvalidUrl).with_detail(error.to_string()),
            Self::InvalidEdit(message) => {
                Problem::new(Code::InvalidBody).with_detail(message.clone())
            }
            Self::NotStreamable => Problem::new(Code::MaterialNotStreamable),
            Self::Storage(StorageError::RangeNotSatisfiable { .. }) => {
                Problem::new(Code::RangeNotSatisfiable)
            }
            Self::Storage(_) => Problem::new(Code::FileStorageUnavailable),
            Self::Repository(error) if error.is_unavailable() => {
                Problem::new(Code::DatabaseUnavailable)
            }
            Self::Repository(_) => Problem::new(Code::Internal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_repository_is_a_503_and_other_failures_a_500() {
        let down = MaterialError::Repository(StoreError::unavailable("pool timed out"));
        assert_eq!(down.problem().code, Code::DatabaseUnavailable);
        assert_eq!(down.problem().code.status(), 503);
        let broken = MaterialError::Repository(StoreError::new("constraint"));
        assert_eq!(broken.problem().code, Code::Internal);
    }
}
