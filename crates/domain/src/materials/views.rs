//! The wire shapes of materials and quotas: the fields the LMS frontend already reads.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{MaterialRecord, Quota};

/// Usage at or above this share of the quota is a warning.
pub const WARNING_PERCENT: f64 = 80.0;

/// A material as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaterialView {
    pub id: Uuid,
    pub name: String,
    /// `document`, `image`, `audio`, `video`, `url` or `text_note`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(schema_with = kind_schema))]
    pub kind: &'static str,
    /// Bytes, for files.
    pub file_size: Option<u64>,
    pub mime_type: Option<String>,
    pub original_filename: Option<String>,
    /// The link, for `url` materials.
    pub url: Option<String>,
    /// The text, for `text_note` materials.
    pub text_content: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: DateTime<Utc>,
    /// For files: a URL the browser downloads from without a token (an attachment with the
    /// original name), valid for a limited time.
    pub download_url: Option<String>,
}

impl MaterialView {
    pub fn new(record: MaterialRecord, download_url: Option<String>) -> Self {
        Self {
            id: record.id,
            name: record.name,
            kind: record.kind.as_str(),
            file_size: record.file_size,
            mime_type: record.mime_type,
            original_filename: record.original_filename,
            url: record.url,
            text_content: record.text_content,
            created_at: record.created_at,
            updated_at: record.updated_at,
            download_url,
        }
    }
}

/// The schema of a material's `type`: one of the wire names of [`super::MaterialKind`].
#[cfg(feature = "openapi")]
fn kind_schema() -> utoipa::openapi::schema::Object {
    use super::MaterialKind;
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(MaterialKind::ALL.map(MaterialKind::as_str)))
        .examples([MaterialKind::Document.as_str()])
        .build()
}

/// A teacher's storage use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaView {
    pub used_bytes: u64,
    pub quota_bytes: u64,
    /// `used_bytes` as a percentage of `quota_bytes`, rounded to two decimals (100 when the
    /// quota is zero and something is used).
    pub used_percentage: f64,
    /// At least 80% used.
    pub is_warning: bool,
    /// Nothing left to upload.
    pub is_full: bool,
}

impl From<Quota> for QuotaView {
    fn from(quota: Quota) -> Self {
        let percentage = if quota.quota_bytes == 0 {
            if quota.used_bytes == 0 { 0.0 } else { 100.0 }
        } else {
            quota.used_bytes as f64 * 100.0 / quota.quota_bytes as f64
        };
        let used_percentage = (percentage * 100.0).round() / 100.0;
        Self {
            used_bytes: quota.used_bytes,
            quota_bytes: quota.quota_bytes,
            used_percentage,
            is_warning: percentage >= WARNING_PERCENT,
            is_full: quota.used_bytes >= quota.quota_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_flags() {
        let view = |used, quota| {
            QuotaView::from(Quota {
                used_bytes: used,
                quota_bytes: quota,
            })
        };
        assert_eq!(view(0, 100).used_percentage, 0.0);
        assert!(!view(79, 100).is_warning);
        assert!(view(80, 100).is_warning && !view(80, 100).is_full);
        assert!(view(100, 100).is_full);
        assert!(view(150, 100).is_full);
        assert_eq!(view(1, 3).used_percentage, 33.33);
        assert_eq!(view(0, 0).used_percentage, 0.0);
        assert!(view(0, 0).is_full);
    }
}
