//! Object storage and asset delivery from the settings: the two buckets, the signers of URLs
//! that browsers fetch without a bearer token, the linker of the delivery mode
//! (`ASSET_DELIVERY`) and the source of asset bytes.

use std::sync::Arc;
use std::time::Duration;

use cache::Cache;
use dcs_client::DcsApi;
use domain::book_content::{AssetSource, DcsAssets, StoreAssets};
use domain::linker::{
    AssetLinker, DcsApiFetcher, DcsLinker, DcsLinkerConfig, Presign, PresignedLinker, ProxyLinker,
};
use domain::signed_links::{LinkSigner, SignedProxyLinker};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;
use storage::s3::MIN_PART_SIZE;
use storage::{
    FsStore, FsUrlSigner, ObjectStore, PresignOptions, PresignWindow, S3Config, S3Store,
    StorageError, SystemClock,
};

use crate::settings::{AssetDelivery, Settings, StorageBackend};

/// Where the filesystem backend's signed URLs are served.
pub const FILES_ROUTE: &str = "/files";

/// The object stores and URL signers.
#[derive(Debug, Clone)]
pub struct Storage {
    /// `MINIO_BUCKET_NAME`: DCS book content (`{publisher}/books/{book}/...`).
    pub content: Arc<dyn ObjectStore>,
    /// `MINIO_TEACHERS_BUCKET`: teacher materials.
    pub teachers: Arc<dyn ObjectStore>,
    /// With the filesystem backend: signs and checks `/files/...` URLs.
    pub files: Option<Arc<FsUrlSigner>>,
    /// Signs and checks the proxy mode's asset URLs.
    pub links: Arc<LinkSigner>,
    /// `PRESIGN_TTL` / `PRESIGN_MIN_REMAINING`.
    pub window: PresignWindow,
}

/// A key for one purpose, derived from `LMS_JWT_SECRET`: one secret to rotate, and a URL
/// signature can never pass for a token signature (or the other way round).
fn derived_key(secret: &SecretString, purpose: &str) -> SecretSlice<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(purpose.as_bytes());
    SecretSlice::from(mac.finalize().into_bytes().to_vec())
}

impl Storage {
    /// The stores the settings describe. The filesystem backend creates its folders.
    pub fn from_settings(settings: &Settings) -> Result<Self, StorageError> {
        let storage = &settings.storage;
        let window = PresignWindow::new(
            settings.presign_ttl.as_secs(),
            settings.presign_min_remaining.as_secs(),
        )?;
        let public = settings.public_url.as_str().trim_end_matches('/');
        let links = Arc::new(LinkSigner::new(
            derived_key(&settings.jwt_secret, "lms-asset-links-v1").expose_secret(),
            window,
            Arc::new(SystemClock),
        ));
        match storage.backend {
            StorageBackend::Fs => {
                let signer = Arc::new(FsUrlSigner::new(
                    &format!("{public}{FILES_ROUTE}"),
                    derived_key(&settings.jwt_secret, "lms-files-urls-v1"),
                    window,
                    Arc::new(SystemClock),
                )?);
                let store = |bucket: &str| -> Result<Arc<dyn ObjectStore>, StorageError> {
                    let store = FsStore::new(&storage.fs_root, bucket, signer.clone())?;
                    store.create_bucket_blocking()?;
                    Ok(Arc::new(store))
                };
                Ok(Self {
                    content: store(&storage.bucket)?,
                    teachers: store(&storage.teachers_bucket)?,
                    files: Some(signer),
                    links,
                    window,
                })
            }
            StorageBackend::S3 => {
                // Settings already refused S3 without an endpoint and keys.
                let missing = || StorageError::Config("STORAGE_BACKEND=s3 needs MINIO_*".into());
                let endpoint = storage.endpoint.as_ref().ok_or_else(missing)?;
                let access_key = storage.access_key.as_deref().ok_or_else(missing)?;
                let secret_key = storage.secret_key.clone().ok_or_else(missing)?;
                let store = |bucket: &str,
                             uploads: Option<(usize, usize)>|
                 -> Result<Arc<dyn ObjectStore>, StorageError> {
                    let mut config = S3Config::new(
                        endpoint.as_str().trim_end_matches('/'),
                        access_key,
                        secret_key.clone(),
                        bucket,
                    );
                    config.external_url = storage
                        .external_url
                        .as_ref()
                        .map(|url| url.as_str().trim_end_matches('/').to_owned());
                    config.region = storage.region.clone();
                    config.window = window;
                    if let Some((part_size, in_flight)) = uploads {
                        config.part_size = part_size;
                        config.max_in_flight = in_flight;
                    }
                    Ok(Arc::new(S3Store::new(config)?))
                };
                Ok(Self {
                    content: store(&storage.bucket, None)?,
                    // Teachers upload through the server, many at once: the smallest parts S3
                    // allows, one uploading while the next is read, keep an upload's buffers
                    // near 10 MiB (two copies of a part inside rust-s3 included, about 21 MiB
                    // peak) at little cost in throughput (docs/benchmarks.md, section 5).
                    teachers: store(&storage.teachers_bucket, Some((MIN_PART_SIZE, 1)))?,
                    files: None,
                    links,
                    window,
                })
            }
        }
    }

    /// The store a `/files/{bucket}/...` URL names.
    pub fn store_for_bucket(&self, bucket: &str) -> Option<&Arc<dyn ObjectStore>> {
        [&self.content, &self.teachers]
            .into_iter()
            .find(|store| store.bucket() == bucket)
    }
}

/// Presigns with the content store (S3 SigV4, or the files route's HMAC).
struct StorePresign(Arc<dyn ObjectStore>);

impl Presign for StorePresign {
    fn presign(&self, key: &str) -> Option<String> {
        match self.0.presign_get(key, &PresignOptions::default()) {
            Ok(url) => Some(url),
            Err(error) => {
                tracing::warn!(%error, "asset not presigned");
                None
            }
        }
    }
}

/// The linker of `ASSET_DELIVERY`.
pub fn asset_linker(
    settings: &Settings,
    storage: &Storage,
    dcs: Arc<dyn DcsApi>,
) -> Arc<dyn AssetLinker> {
    match settings.asset_delivery {
        AssetDelivery::Presigned => {
            if settings.storage.backend == StorageBackend::Fs {
                tracing::warn!(
                    "ASSET_DELIVERY=presigned with STORAGE_BACKEND=fs links to the local store's \
                     /files route, which holds book content only if it is mirrored there; \
                     use proxy (the default) or dcs"
                );
            }
            Arc::new(PresignedLinker::new(StorePresign(storage.content.clone())))
        }
        AssetDelivery::Proxy => Arc::new(SignedProxyLinker::new(
            ProxyLinker::new(settings.public_url.as_str()),
            storage.links.clone(),
        )),
        AssetDelivery::Dcs => Arc::new(DcsLinker::new(
            DcsApiFetcher::new(dcs, dcs_url_lifetime(settings)),
            DcsLinkerConfig {
                min_remaining: dcs_min_remaining(settings),
                ..DcsLinkerConfig::default()
            },
        )),
    }
}

/// What DCS's presign endpoint is asked for: `PRESIGN_TTL` within the 60 s..=1 day it accepts.
fn dcs_url_lifetime(settings: &Settings) -> Duration {
    settings
        .presign_ttl
        .clamp(Duration::from_secs(60), Duration::from_secs(86_400))
}

/// A cached DCS URL is handed out only while it has this much life left.
fn dcs_min_remaining(settings: &Settings) -> Duration {
    settings
        .presign_min_remaining
        .min(dcs_url_lifetime(settings) / 2)
}

/// How long a URL handed out now stays valid, at least: the rest of the presign window for
/// URLs signed here (presigned, proxy), the guaranteed remainder for cached DCS URLs.
pub fn link_lifetime(settings: &Settings, storage: &Storage, now_unix: u64) -> u64 {
    match settings.asset_delivery {
        AssetDelivery::Presigned | AssetDelivery::Proxy => storage
            .window
            .signing(now_unix)
            .expires_at()
            .saturating_sub(now_unix),
        AssetDelivery::Dcs => dcs_min_remaining(settings).as_secs(),
    }
}

/// Where streamed assets come from: the S3 bucket DCS writes to when we hold its
/// credentials, else DCS's object endpoint.
pub fn asset_source(
    settings: &Settings,
    storage: &Storage,
    dcs: Arc<dyn DcsApi>,
    cache: Cache,
) -> Arc<dyn AssetSource> {
    match settings.storage.backend {
        StorageBackend::S3 => Arc::new(StoreAssets::new(storage.content.clone())),
        StorageBackend::Fs => Arc::new(DcsAssets::new(dcs, cache, settings.cache.config_ttl)),
    }
}
