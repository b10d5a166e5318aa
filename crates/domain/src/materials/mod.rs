//! Teacher materials: files (documents, images, audio, video) streamed into object storage,
//! links and notes, with per-teacher quotas. [`MaterialService`] holds the rules; the ports
//! it runs on are [`crate::ports::MaterialRepository`] and [`crate::ports::VirusScanner`].

mod clamd_scanner;
mod error;
pub mod file_types;
mod model;
pub mod rules;
mod service;
mod views;

pub use clamd_scanner::ClamdScanner;
pub use error::MaterialError;
pub use file_types::{FileType, FileTypeError, check_file_type};
pub use model::{
    MaterialChanges, MaterialKind, MaterialPage, MaterialQuery, MaterialRecord, Quota,
};
pub use service::{
    FileUpload, LATE_WRITE_WINDOW, MAX_PAGE, MAX_QUOTA_BYTES, MaterialEdit, MaterialLimits,
    MaterialService, OpenedFile, RESERVE_STEP, ReadPurpose, StagedFile,
};
pub use views::{MaterialView, QuotaView, WARNING_PERCENT};

#[cfg(test)]
mod tests;
