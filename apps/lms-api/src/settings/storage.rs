//! Object storage and how assets are delivered: `STORAGE_BACKEND`, `MINIO_*`,
//! `ASSET_DELIVERY`, `PRESIGN_*`.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::reader::Reader;

/// SigV4 presigned URLs cannot live longer than seven days.
const MAX_PRESIGN_TTL_SECS: u64 = 7 * 24 * 3600;

/// Object storage backend (`STORAGE_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// Files under `data/objects` (embedded default).
    Fs,
    /// An S3-compatible server such as MinIO.
    S3,
}

/// How asset paths in book configs become URLs (`ASSET_DELIVERY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetDelivery {
    /// Presigned GET URLs straight to the object server.
    Presigned,
    /// URLs on this API, which streams the bytes.
    Proxy,
    /// URLs from DCS's own presign endpoint (for deployments without S3 credentials).
    Dcs,
}

/// Object storage.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `STORAGE_BACKEND`.
    pub backend: StorageBackend,
    /// `MINIO_ENDPOINT`: the S3 endpoint this server talks to.
    pub endpoint: Option<Url>,
    /// `MINIO_EXTERNAL_URL` (default: the endpoint): the endpoint browsers use; presigned URLs
    /// are signed for it.
    pub external_url: Option<Url>,
    /// `MINIO_ACCESS_KEY` (not secret: it appears in every presigned URL).
    pub access_key: Option<String>,
    /// `MINIO_SECRET_KEY`.
    pub secret_key: Option<SecretString>,
    /// `MINIO_REGION`.
    pub region: String,
    /// `MINIO_BUCKET_NAME`: DCS book content (`{publisher}/books/{book}/...`).
    pub bucket: String,
    /// `MINIO_TEACHERS_BUCKET`: teacher materials.
    pub teachers_bucket: String,
    /// `STORAGE_FS_ROOT` (default `data/objects`): the filesystem backend's root, one folder
    /// per bucket.
    pub fs_root: PathBuf,
}

pub(super) fn read_storage(env: &mut Reader<'_>) -> StorageSettings {
    let backend = match env.value("STORAGE_BACKEND") {
        None => StorageBackend::Fs,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "fs" => StorageBackend::Fs,
            "s3" => StorageBackend::S3,
            _ => {
                env.problem(
                    "STORAGE_BACKEND",
                    format!("{value:?} is not valid (expected \"fs\" or \"s3\")"),
                );
                StorageBackend::Fs
            }
        },
    };
    let endpoint = env.optional_http_url("MINIO_ENDPOINT");
    let external_url = env
        .optional_http_url("MINIO_EXTERNAL_URL")
        .or_else(|| endpoint.clone());
    let access_key = env.value("MINIO_ACCESS_KEY");
    let secret_key = env.value("MINIO_SECRET_KEY").map(SecretString::from);
    let region = env
        .value("MINIO_REGION")
        .unwrap_or_else(|| "us-east-1".to_owned());
    let bucket = env.bucket("MINIO_BUCKET_NAME", "publishers");
    let teachers_bucket = env.bucket("MINIO_TEACHERS_BUCKET", "teachers");

    if backend == StorageBackend::S3 {
        for (name, present) in [
            ("MINIO_ENDPOINT", endpoint.is_some()),
            ("MINIO_ACCESS_KEY", access_key.is_some()),
            ("MINIO_SECRET_KEY", secret_key.is_some()),
        ] {
            if !present {
                env.problem(name, "must be set when STORAGE_BACKEND=s3".to_owned());
            }
        }
    }

    let fs_root = PathBuf::from(
        env.value("STORAGE_FS_ROOT")
            .unwrap_or_else(|| "data/objects".to_owned()),
    );

    StorageSettings {
        backend,
        endpoint,
        external_url,
        access_key,
        secret_key,
        region,
        bucket,
        teachers_bucket,
        fs_root,
    }
}

/// `ASSET_DELIVERY` (default: presigned with s3, proxy otherwise).
pub(super) fn read_asset_delivery(env: &mut Reader<'_>, backend: StorageBackend) -> AssetDelivery {
    match env.value("ASSET_DELIVERY") {
        None if backend == StorageBackend::S3 => AssetDelivery::Presigned,
        None => AssetDelivery::Proxy,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "presigned" => AssetDelivery::Presigned,
            "proxy" => AssetDelivery::Proxy,
            "dcs" => AssetDelivery::Dcs,
            _ => {
                env.problem(
                    "ASSET_DELIVERY",
                    format!(
                        "{value:?} is not valid (expected \"presigned\", \"proxy\" or \"dcs\")"
                    ),
                );
                AssetDelivery::Proxy
            }
        },
    }
}

/// `PRESIGN_TTL` and `PRESIGN_MIN_REMAINING`.
pub(super) fn read_presign(env: &mut Reader<'_>) -> (Duration, Duration) {
    let presign_ttl = env.seconds("PRESIGN_TTL", 3600);
    let presign_min_remaining = env.seconds("PRESIGN_MIN_REMAINING", 2700);
    if presign_ttl.as_secs() > MAX_PRESIGN_TTL_SECS {
        env.problem(
            "PRESIGN_TTL",
            format!("must be at most {MAX_PRESIGN_TTL_SECS} seconds (7 days, the S3 limit)"),
        );
    }
    if presign_min_remaining >= presign_ttl {
        env.problem(
            "PRESIGN_MIN_REMAINING",
            "must be less than PRESIGN_TTL, or every presigned URL would be re-signed at once"
                .to_owned(),
        );
    }
    (presign_ttl, presign_min_remaining)
}
