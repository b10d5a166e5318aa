//! What a teacher material and a quota are, as the repository stores them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a material is. Files are one of the first four; links and notes have no object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaterialKind {
    Document,
    Image,
    Audio,
    Video,
    Url,
    TextNote,
}

impl MaterialKind {
    /// Every kind, in the order lists show them.
    pub const ALL: [Self; 6] = [
        Self::Document,
        Self::Image,
        Self::Audio,
        Self::Video,
        Self::Url,
        Self::TextNote,
    ];

    /// The stored and wire name (`document`, ..., `text_note`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Image => "image",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Url => "url",
            Self::TextNote => "text_note",
        }
    }

    /// The kind a stored or wire name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The folder of a file kind's objects (`{teacher}/{folder}/...`); `None` for links and
    /// notes, which store no object.
    pub const fn folder(self) -> Option<&'static str> {
        match self {
            Self::Document => Some("documents"),
            Self::Image => Some("images"),
            Self::Audio => Some("audio"),
            Self::Video => Some("video"),
            Self::Url | Self::TextNote => None,
        }
    }

    /// A file kind (its bytes live in object storage and count towards the quota).
    pub const fn is_file(self) -> bool {
        self.folder().is_some()
    }

    /// Played inline by `/stream` (audio and video).
    pub const fn is_streamable(self) -> bool {
        matches!(self, Self::Audio | Self::Video)
    }
}

impl std::fmt::Display for MaterialKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One material, as stored. Which optional fields are set depends on the kind: files have
/// `storage_key`, `file_size`, `mime_type` and `original_filename`; links have `url`; notes
/// have `text_content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialRecord {
    pub id: Uuid,
    pub teacher_id: Uuid,
    pub name: String,
    pub kind: MaterialKind,
    pub storage_key: Option<String>,
    pub file_size: Option<u64>,
    pub mime_type: Option<String>,
    pub original_filename: Option<String>,
    pub url: Option<String>,
    pub text_content: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A teacher's storage allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Bytes of stored files, plus bytes reserved by uploads in progress.
    pub used_bytes: u64,
    pub quota_bytes: u64,
}

impl Quota {
    /// Bytes that can still be reserved (zero when an admin set the quota below usage).
    pub fn free_bytes(&self) -> u64 {
        self.quota_bytes.saturating_sub(self.used_bytes)
    }
}

/// Which of a teacher's materials a list shows: newest first, optionally of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaterialQuery {
    pub kind: Option<MaterialKind>,
    pub offset: u64,
    pub limit: u64,
}

/// One page of a list, with the count of every match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialPage {
    pub items: Vec<MaterialRecord>,
    pub total: u64,
}

/// An edit: each `Some` field is replaced; `updated_at` always is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialChanges {
    pub name: Option<String>,
    pub text_content: Option<String>,
    pub url: Option<String>,
    pub updated_at: DateTime<Utc>,
}
