//! Filesystem adapter, the embedded default (`STORAGE_BACKEND=fs`): one folder per bucket
//! under a root (`data/objects/{bucket}/{key}`), metadata sidecars under
//! `{root}/.meta/{bucket}/{key}` (bucket names never start with `.`, so no clash).
//!
//! Writes are atomic: a temp file in the target folder, fsync, rename, fsync of the folder. A
//! crash between the object's rename and its sidecar's leaves a sidecar whose size does not
//! match; such sidecars are ignored and the content type falls back to the extension. A get
//! takes the size from the file it opened, so a put replacing the object meanwhile cannot make
//! the reported length disagree with the bytes streamed. Two puts of one key at the same moment
//! may leave one's sidecar beside the other's bytes when both have the same size; the LMS never
//! does that (a material's key is new for every upload).
//!
//! "Presigned" URLs point at an lms-api files route and carry an expiry and an HMAC-SHA256
//! signature ([`FsUrlSigner`]); the route calls [`FsUrlSigner::verify`].

use std::fmt;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::key::validate_prefix;
use crate::presign::{Clock, PresignWindow, Signing};
use crate::sigv4::uri_encode;
use crate::{
    ByteStream, GetResult, Limit, ObjectMeta, ObjectStore, PresignOptions, PutOptions, RangeSpec,
    Result, StorageError, content_type_for, quoted_hex, validate_key,
};

/// Name prefix of in-progress uploads; keys may not use it (see [`validate_key`]).
pub(crate) const TEMP_PREFIX: &str = ".~tmp-";
const META_DIR: &str = ".meta";
const READ_CHUNK: usize = 64 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Objects of one bucket in a folder.
#[derive(Debug, Clone)]
pub struct FsStore {
    bucket: String,
    dir: PathBuf,
    meta_dir: PathBuf,
    signer: Arc<FsUrlSigner>,
}

impl FsStore {
    /// `root` is e.g. `data/objects`; the bucket's folder is `{root}/{bucket}` (create it with
    /// [`ObjectStore::create_bucket`]).
    pub fn new(root: impl Into<PathBuf>, bucket: &str, signer: Arc<FsUrlSigner>) -> Result<Self> {
        let valid = !bucket.is_empty()
            && !bucket.starts_with('.')
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
        if !valid {
            return Err(StorageError::Config(format!(
                "invalid bucket name {bucket:?}"
            )));
        }
        let root = root.into();
        Ok(Self {
            bucket: bucket.to_owned(),
            dir: root.join(bucket),
            meta_dir: root.join(META_DIR).join(bucket),
            signer,
        })
    }

    /// Creates the bucket's folders now (blocking), so the embedded default works with no
    /// `storage-init`: for start-up, before any request.
    pub fn create_bucket_blocking(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(StorageError::Io)?;
        std::fs::create_dir_all(&self.meta_dir).map_err(StorageError::Io)
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        let mut data = self.dir.clone();
        let mut meta = self.meta_dir.clone();
        for segment in key.split('/') {
            data.push(segment);
            meta.push(segment);
        }
        (data, meta)
    }

    /// Validates the key and refuses any symlink below the bucket folder, so no key can lead
    /// outside it.
    async fn resolve(&self, key: &str) -> Result<(PathBuf, PathBuf)> {
        validate_key(key)?;
        let mut path = self.dir.clone();
        for segment in key.split('/') {
            path.push(segment);
            match tokio::fs::symlink_metadata(&path).await {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(StorageError::InvalidKey {
                        reason: "leads through a symbolic link",
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => break,
                Err(e) => return Err(StorageError::Io(e)),
            }
        }
        Ok(self.paths(key))
    }

    async fn bucket_dir_exists(&self) -> Result<()> {
        match tokio::fs::metadata(&self.dir).await {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(StorageError::BucketNotFound {
                bucket: self.bucket.clone(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StorageError::BucketNotFound {
                bucket: self.bucket.clone(),
            }),
            Err(e) => Err(StorageError::Io(e)),
        }
    }

    async fn meta_of(&self, key: &str, data: &Path, meta: &Path) -> Result<ObjectMeta> {
        let md = match tokio::fs::metadata(data).await {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(StorageError::not_found(key)),
            Err(e) if is_missing(&e) => {
                self.bucket_dir_exists().await?;
                return Err(StorageError::not_found(key));
            }
            Err(e) => return Err(StorageError::Io(e)),
        };
        Ok(Self::meta_from(key, &md, meta).await)
    }

    /// The object's metadata from its data file's `md` and its sidecar at `meta`.
    async fn meta_from(key: &str, md: &std::fs::Metadata, meta: &Path) -> ObjectMeta {
        let size = md.len();
        let modified = md.modified().ok();
        let sidecar = tokio::fs::read_to_string(meta)
            .await
            .ok()
            .and_then(|s| Sidecar::parse(&s))
            .filter(|s| s.size == size);
        let (etag, content_type) = match sidecar {
            Some(s) => (s.etag, s.content_type),
            None => {
                // No trustworthy sidecar: an ETag from size and mtime still changes with the file.
                let nanos = modified
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                (
                    format!("\"{size:x}-{nanos:x}\""),
                    content_type_for(key, None),
                )
            }
        };
        ObjectMeta {
            key: key.to_owned(),
            size,
            etag: Some(etag),
            last_modified: modified,
            content_type: Some(content_type),
        }
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

struct Sidecar {
    size: u64,
    etag: String,
    content_type: String,
}

impl Sidecar {
    fn render(&self) -> String {
        format!("{}\n{}\n{}\n", self.size, self.etag, self.content_type)
    }

    fn parse(s: &str) -> Option<Self> {
        let mut lines = s.lines();
        Some(Self {
            size: lines.next()?.parse().ok()?,
            etag: lines.next()?.to_owned(),
            content_type: lines.next()?.to_owned(),
        })
    }
}

/// Removes a temp file unless the upload completed (covers errors and cancellation).
struct TempFile(Option<PathBuf>);

impl TempFile {
    /// The file was renamed into place: nothing to clean up.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!("{TEMP_PREFIX}{:016x}", fastrand::u64(..)))
}

/// Writes `bytes` to `target` atomically (small files: the sidecars).
async fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = target.parent().expect("keys have a parent folder");
    tokio::fs::create_dir_all(dir).await?;
    let tmp = TempFile(Some(temp_path(dir)));
    let path = tmp.0.clone().expect("set");
    let mut f = tokio::fs::File::create_new(&path).await?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&path, target).await?;
    tmp.keep();
    Ok(())
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(io::Error::other)?
}

#[async_trait]
impl ObjectStore for FsStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(
        &self,
        key: &str,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<ObjectMeta> {
        let (data_path, meta_path) = self.resolve(key).await?;
        self.bucket_dir_exists().await?;
        let dir = data_path
            .parent()
            .expect("keys have a parent folder")
            .to_owned();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(StorageError::Io)?;
        let tmp = TempFile(Some(temp_path(&dir)));
        let tmp_path = tmp.0.clone().expect("set");
        let mut file = tokio::fs::File::create_new(&tmp_path)
            .await
            .map_err(StorageError::Io)?;
        let mut limit = Limit::new(options.max_bytes);
        let mut md5 = Md5::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::Body)?;
            limit.add(chunk.len())?;
            md5.update(&chunk);
            file.write_all(&chunk).await.map_err(StorageError::Io)?;
        }
        file.sync_all().await.map_err(StorageError::Io)?;
        drop(file);

        let sidecar = Sidecar {
            size: limit.seen(),
            etag: quoted_hex(&md5.finalize()),
            content_type: content_type_for(key, options.content_type.as_deref()),
        };
        tokio::fs::rename(&tmp_path, &data_path)
            .await
            .map_err(StorageError::Io)?;
        tmp.keep();
        sync_dir(&dir).await.map_err(StorageError::Io)?;
        write_atomic(&meta_path, sidecar.render().as_bytes())
            .await
            .map_err(StorageError::Io)?;
        let modified = tokio::fs::metadata(&data_path)
            .await
            .and_then(|m| m.modified())
            .ok();
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: sidecar.size,
            etag: Some(sidecar.etag),
            last_modified: modified,
            content_type: Some(sidecar.content_type),
        })
    }

    async fn get(&self, key: &str, range: Option<RangeSpec>) -> Result<GetResult> {
        let (data_path, meta_path) = self.resolve(key).await?;
        let mut file = match tokio::fs::File::open(&data_path).await {
            Ok(f) => f,
            Err(e) if is_missing(&e) => {
                self.bucket_dir_exists().await?;
                return Err(StorageError::not_found(key));
            }
            Err(e) => return Err(StorageError::Io(e)),
        };
        // The size comes from the open file, not the path: a put replacing the object now
        // cannot make the length (or a range) disagree with the bytes this file holds.
        let md = file.metadata().await.map_err(StorageError::Io)?;
        if !md.is_file() {
            return Err(StorageError::not_found(key));
        }
        let meta = Self::meta_from(key, &md, &meta_path).await;
        let (range, start, len) = match range {
            None => (None, 0, meta.size),
            Some(spec) => {
                let r = spec
                    .resolve(meta.size)
                    .ok_or(StorageError::RangeNotSatisfiable { size: meta.size })?;
                (Some(r), r.start, r.len())
            }
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(StorageError::Io)?;
        }
        Ok(GetResult {
            meta,
            range,
            body: read_stream(file, len),
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let (data_path, meta_path) = self.resolve(key).await?;
        self.meta_of(key, &data_path, &meta_path).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let (data_path, meta_path) = self.resolve(key).await?;
        self.bucket_dir_exists().await?;
        match tokio::fs::symlink_metadata(&data_path).await {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Ok(()),
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(StorageError::Io(e)),
        }
        for p in [&data_path, &meta_path] {
            match tokio::fs::remove_file(p).await {
                Ok(()) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(StorageError::Io(e)),
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        self.bucket_dir_exists().await?;
        let (dir, owned_prefix) = (self.dir.clone(), prefix.to_owned());
        let keys = tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            walk(&dir, "", &owned_prefix, &mut keys)?;
            Ok::<_, io::Error>(keys)
        })
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))?
        .map_err(StorageError::Io)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let (data, meta) = self.paths(&key);
            match self.meta_of(&key, &data, &meta).await {
                Ok(m) => out.push(m),
                // Deleted while listing.
                Err(StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn presign_get(&self, key: &str, options: &PresignOptions) -> Result<String> {
        validate_key(key)?;
        Ok(self.signer.presign(&self.bucket, key, options))
    }

    async fn ready(&self) -> Result<()> {
        self.bucket_dir_exists().await
    }

    async fn set_cors(&self, _rule: &crate::CorsRule) -> Result<crate::CorsOutcome> {
        Ok(crate::CorsOutcome::NotNeeded(
            "filesystem objects are served by lms-api's /files route, which applies \
             LMS_FRONTEND_ORIGINS itself",
        ))
    }

    async fn create_bucket(&self) -> Result<()> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(StorageError::Io)?;
        tokio::fs::create_dir_all(&self.meta_dir)
            .await
            .map_err(StorageError::Io)
    }
}

/// Collects the keys of regular files under `dir` that start with `prefix`, skipping temp
/// files, symlinks, non-UTF-8 names and folders that cannot hold a match.
fn walk(dir: &Path, key_prefix: &str, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let key = format!("{key_prefix}{name}");
        let ft = entry.file_type()?;
        if ft.is_dir() {
            let as_dir = format!("{key}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(&entry.path(), &as_dir, prefix, out)?;
            }
        } else if ft.is_file() && key.starts_with(prefix) && validate_key(&key).is_ok() {
            out.push(key);
        }
    }
    Ok(())
}

fn read_stream(file: tokio::fs::File, len: u64) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        (file, len),
        |(mut file, remaining)| async move {
            if remaining == 0 {
                return None;
            }
            let want = remaining.min(READ_CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            match file.read(&mut buf).await {
                Ok(0) => Some((
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "object shrank while read",
                    )),
                    (file, 0),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), (file, remaining - n as u64)))
                }
                Err(e) => Some((Err(e), (file, 0))),
            }
        },
    ))
}

/// Builds and verifies the filesystem adapter's signed URLs:
/// `{base}/{bucket}/{key}?expires=E[&disposition=D][&type=T]&signature=HEX`, where `base` is
/// e.g. `{LMS_PUBLIC_URL}/files` and the signature is HMAC-SHA256 over the method, bucket,
/// key, expiry and overrides. Same window scheme as S3 ([`crate::presign`]).
pub struct FsUrlSigner {
    base_url: String,
    route_path: String,
    mac: HmacSha256,
    window: PresignWindow,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for FsUrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsUrlSigner")
            .field("base_url", &self.base_url)
            .field("window", &self.window)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// A verified files-route request: what to serve and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUrl {
    pub bucket: String,
    pub key: String,
    pub response_content_type: Option<String>,
    pub response_content_disposition: Option<String>,
    pub expires_at: u64,
}

/// Why a files-route URL was refused; the route answers 403 for all of them, like S3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("malformed signed URL: {0}")]
    Malformed(&'static str),
    #[error("signed URL expired")]
    Expired,
    #[error("signed URL signature does not match")]
    BadSignature,
}

impl UrlError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "storage_url_malformed",
            Self::Expired => "storage_url_expired",
            Self::BadSignature => "storage_url_signature_mismatch",
        }
    }

    pub fn http_status(&self) -> u16 {
        403
    }
}

impl FsUrlSigner {
    /// `base_url` is the files route's public URL (e.g. `http://127.0.0.1:8000/files`);
    /// `key` the HMAC secret (at least 32 bytes).
    pub fn new(
        base_url: &str,
        key: SecretSlice<u8>,
        window: PresignWindow,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        if key.expose_secret().len() < 32 {
            return Err(StorageError::Config(
                "the files URL signing key must be at least 32 bytes".into(),
            ));
        }
        let (origin, route_path, _) = crate::sigv4::split_endpoint(base_url)?;
        Ok(Self {
            base_url: format!("{origin}{route_path}"),
            route_path,
            mac: HmacSha256::new_from_slice(key.expose_secret()).expect("any key length"),
            window,
            clock,
        })
    }

    /// The route's path prefix (e.g. `/files`), for mounting it.
    pub fn route_path(&self) -> &str {
        &self.route_path
    }

    /// The signed URL for `bucket`/`key` now (deterministic within the window).
    pub fn presign(&self, bucket: &str, key: &str, options: &PresignOptions) -> String {
        self.presign_with(
            bucket,
            key,
            options,
            self.window.signing(self.clock.now_unix()),
        )
    }

    fn presign_with(
        &self,
        bucket: &str,
        key: &str,
        options: &PresignOptions,
        signing: Signing,
    ) -> String {
        let expires = signing.expires_at();
        let disposition = options.response_content_disposition.as_deref();
        let content_type = options.response_content_type.as_deref();
        let mut url = String::with_capacity(self.base_url.len() + key.len() * 2 + 128);
        url.push_str(&self.base_url);
        url.push('/');
        uri_encode(&mut url, bucket, true);
        url.push('/');
        uri_encode(&mut url, key, false);
        url.push_str(&format!("?expires={expires}"));
        if let Some(v) = disposition {
            url.push_str("&disposition=");
            uri_encode(&mut url, v, true);
        }
        if let Some(v) = content_type {
            url.push_str("&type=");
            uri_encode(&mut url, v, true);
        }
        url.push_str("&signature=");
        url.push_str(&self.sign(bucket, key, expires, disposition, content_type));
        url
    }

    fn sign(
        &self,
        bucket: &str,
        key: &str,
        expires: u64,
        disposition: Option<&str>,
        content_type: Option<&str>,
    ) -> String {
        hex::encode(
            self.mac_of(bucket, key, expires, disposition, content_type)
                .finalize()
                .into_bytes(),
        )
    }

    /// Length-prefixed fields, so no two different requests share a message.
    fn mac_of(
        &self,
        bucket: &str,
        key: &str,
        expires: u64,
        disposition: Option<&str>,
        content_type: Option<&str>,
    ) -> HmacSha256 {
        let mut mac = self.mac.clone();
        let expires = expires.to_string();
        let fields = [
            Some("GET"),
            Some(bucket),
            Some(key),
            Some(expires.as_str()),
            disposition,
            content_type,
        ];
        for field in fields {
            match field {
                None => mac.update(b"-\n"),
                Some(v) => {
                    mac.update(format!("{}:", v.len()).as_bytes());
                    mac.update(v.as_bytes());
                    mac.update(b"\n");
                }
            }
        }
        mac
    }

    /// Checks a files-route request: `path` is the raw (still percent-encoded) request path,
    /// e.g. actix's `req.path()`, and `query` the raw query string (`req.query_string()`).
    pub fn verify(&self, path: &str, query: &str) -> Result<VerifiedUrl, UrlError> {
        self.verify_at(path, query, self.clock.now_unix())
    }

    fn verify_at(&self, path: &str, query: &str, now: u64) -> Result<VerifiedUrl, UrlError> {
        let rest = path
            .strip_prefix(self.route_path.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(UrlError::Malformed("path outside the files route"))?;
        let (bucket, key) = rest
            .split_once('/')
            .ok_or(UrlError::Malformed("no object key"))?;
        let bucket = decode(bucket)?;
        let key = decode(key)?;
        validate_key(&key).map_err(|_| UrlError::Malformed("invalid object key"))?;

        let (mut expires, mut disposition, mut content_type, mut signature) =
            (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "expires" => &mut expires,
                "disposition" => &mut disposition,
                "type" => &mut content_type,
                "signature" => &mut signature,
                _ => continue,
            };
            if slot.replace(decode(value)?).is_some() {
                return Err(UrlError::Malformed("repeated parameter"));
            }
        }
        let expires_at: u64 = expires
            .ok_or(UrlError::Malformed("no expires"))?
            .parse()
            .map_err(|_| UrlError::Malformed("bad expires"))?;
        let signature = signature.ok_or(UrlError::Malformed("no signature"))?;
        let signature = hex::decode(signature).map_err(|_| UrlError::BadSignature)?;
        // Constant-time comparison.
        self.mac_of(
            &bucket,
            &key,
            expires_at,
            disposition.as_deref(),
            content_type.as_deref(),
        )
        .verify_slice(&signature)
        .map_err(|_| UrlError::BadSignature)?;
        if now >= expires_at {
            return Err(UrlError::Expired);
        }
        Ok(VerifiedUrl {
            bucket,
            key,
            response_content_type: content_type,
            response_content_disposition: disposition,
            expires_at,
        })
    }
}

fn decode(s: &str) -> Result<String, UrlError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| UrlError::Malformed("not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presign::ManualClock;

    fn signer(clock: Arc<ManualClock>) -> FsUrlSigner {
        FsUrlSigner::new(
            "http://127.0.0.1:8000/files/",
            SecretSlice::from(b"0123456789abcdef0123456789abcdef-secret".to_vec()),
            PresignWindow::default(),
            clock,
        )
        .unwrap()
    }

    fn split(url: &str) -> (String, String) {
        let rest = url.strip_prefix("http://127.0.0.1:8000").unwrap();
        let (p, q) = rest.split_once('?').unwrap();
        (p.to_owned(), q.to_owned())
    }

    #[test]
    fn signed_urls_verify_and_refuse_tampering() {
        let clock = ManualClock::new(1_800_000_123);
        let s = signer(clock.clone());
        let opts = PresignOptions {
            response_content_type: Some("audio/mpeg".into()),
            response_content_disposition: Some("attachment; filename=\"ü b.mp3\"".into()),
        };
        let url = s.presign("teachers", "Dream Press/ü b.mp3", &opts);
        assert!(url.starts_with(
            "http://127.0.0.1:8000/files/teachers/Dream%20Press/%C3%BC%20b.mp3?expires="
        ));
        let (p, q) = split(&url);
        let v = s.verify(&p, &q).unwrap();
        assert_eq!(v.bucket, "teachers");
        assert_eq!(v.key, "Dream Press/ü b.mp3");
        assert_eq!(v.response_content_type.as_deref(), Some("audio/mpeg"));
        assert_eq!(
            v.response_content_disposition,
            opts.response_content_disposition
        );
        assert!(v.expires_at - clock.now_unix() >= PresignWindow::DEFAULT_MIN_REMAINING);

        // Deterministic within the window, different in the next.
        clock.advance(10);
        assert_eq!(s.presign("teachers", "Dream Press/ü b.mp3", &opts), url);
        clock.advance(PresignWindow::default().window());
        assert_ne!(s.presign("teachers", "Dream Press/ü b.mp3", &opts), url);

        // One changed signature character.
        let last = q.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &q[..q.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert_eq!(s.verify(&p, &flipped), Err(UrlError::BadSignature));
        // Another key, another type, a dropped override.
        assert_eq!(
            s.verify(&p.replace("b.mp3", "c.mp3"), &q),
            Err(UrlError::BadSignature)
        );
        assert_eq!(
            s.verify(&p, &q.replace("audio%2Fmpeg", "text%2Fhtml")),
            Err(UrlError::BadSignature)
        );
        let no_type: Vec<_> = q.split('&').filter(|p| !p.starts_with("type=")).collect();
        assert_eq!(
            s.verify(&p, &no_type.join("&")),
            Err(UrlError::BadSignature)
        );
        assert!(matches!(
            s.verify("/other/teachers/x", &q),
            Err(UrlError::Malformed(_))
        ));
        assert!(matches!(
            s.verify("/files/teachers/a/../x", &q),
            Err(UrlError::Malformed(_))
        ));
    }

    #[test]
    fn expired_urls_are_refused() {
        let clock = ManualClock::new(1_000_000_000);
        let s = signer(clock.clone());
        let url = s.presign("b", "k.txt", &PresignOptions::default());
        let (p, q) = split(&url);
        assert!(s.verify(&p, &q).is_ok());
        clock.advance(PresignWindow::DEFAULT_TTL);
        assert_eq!(s.verify(&p, &q), Err(UrlError::Expired));
    }

    #[test]
    fn debug_hides_the_key_and_short_keys_are_refused() {
        let s = signer(ManualClock::new(0));
        let d = format!("{s:?}");
        assert!(!d.contains("0123456789abcdef"), "{d}");
        assert!(
            FsUrlSigner::new(
                "http://x/files",
                SecretSlice::from(b"short".to_vec()),
                PresignWindow::default(),
                ManualClock::new(0)
            )
            .is_err()
        );
    }
}
