//! In-memory adapter for other crates' tests (feature `mock`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use md5::{Digest, Md5};

use crate::key::validate_prefix;
use crate::presign::{Clock, PresignWindow, SystemClock};
use crate::sigv4::uri_encode;
use crate::{
    ByteStream, GetResult, Limit, ObjectMeta, ObjectStore, PresignOptions, PutOptions, RangeSpec,
    Result, StorageError, bytes_body, content_type_for, quoted_hex, validate_key,
};

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    meta: ObjectMeta,
}

/// Objects in a map. Presigned URLs are `memory://{bucket}/{key}?expires=..`, deterministic
/// within the presign window like the real adapters'. [`MemoryStore::set_unavailable`]
/// simulates an outage.
#[derive(Debug)]
pub struct MemoryStore {
    bucket: String,
    objects: Mutex<BTreeMap<String, Object>>,
    unavailable: AtomicBool,
    bucket_exists: AtomicBool,
    window: PresignWindow,
    clock: Arc<dyn Clock>,
}

impl MemoryStore {
    /// An empty store whose bucket exists.
    pub fn new(bucket: &str) -> Self {
        Self::with_clock(bucket, PresignWindow::default(), Arc::new(SystemClock))
    }

    pub fn with_clock(bucket: &str, window: PresignWindow, clock: Arc<dyn Clock>) -> Self {
        Self {
            bucket: bucket.to_owned(),
            objects: Mutex::new(BTreeMap::new()),
            unavailable: AtomicBool::new(false),
            bucket_exists: AtomicBool::new(true),
            window,
            clock,
        }
    }

    /// While set, every call fails with [`StorageError::Unavailable`].
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::Relaxed);
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Object>> {
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check(&self) -> Result<()> {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(StorageError::Unavailable(
                "memory store set unavailable".into(),
            ));
        }
        if !self.bucket_exists.load(Ordering::Relaxed) {
            return Err(StorageError::BucketNotFound {
                bucket: self.bucket.clone(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(
        &self,
        key: &str,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<ObjectMeta> {
        validate_key(key)?;
        self.check()?;
        let mut limit = Limit::new(options.max_bytes);
        let mut data = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::Body)?;
            limit.add(chunk.len())?;
            data.extend_from_slice(&chunk);
        }
        let meta = ObjectMeta {
            key: key.to_owned(),
            size: data.len() as u64,
            etag: Some(quoted_hex(&Md5::digest(&data))),
            last_modified: Some(SystemTime::now()),
            content_type: Some(content_type_for(key, options.content_type.as_deref())),
        };
        let object = Object {
            data: data.freeze(),
            meta: meta.clone(),
        };
        self.map().insert(key.to_owned(), object);
        Ok(meta)
    }

    async fn get(&self, key: &str, range: Option<RangeSpec>) -> Result<GetResult> {
        validate_key(key)?;
        self.check()?;
        let object = self
            .map()
            .get(key)
            .cloned()
            .ok_or_else(|| StorageError::not_found(key))?;
        let size = object.meta.size;
        let (data, range) = match range {
            None => (object.data, None),
            Some(spec) => {
                let r = spec
                    .resolve(size)
                    .ok_or(StorageError::RangeNotSatisfiable { size })?;
                (
                    object.data.slice(r.start as usize..=r.end as usize),
                    Some(r),
                )
            }
        };
        Ok(GetResult {
            meta: object.meta,
            range,
            body: bytes_body(data),
        })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        self.check()?;
        self.map()
            .get(key)
            .map(|o| o.meta.clone())
            .ok_or_else(|| StorageError::not_found(key))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.check()?;
        self.map().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        self.check()?;
        Ok(self
            .map()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, o)| o.meta.clone())
            .collect())
    }

    fn presign_get(&self, key: &str, options: &PresignOptions) -> Result<String> {
        validate_key(key)?;
        let signing = self.window.signing(self.clock.now_unix());
        let mut url = format!("memory://{}/", self.bucket);
        uri_encode(&mut url, key, false);
        url.push_str(&format!("?expires={}", signing.expires_at()));
        if let Some(v) = &options.response_content_disposition {
            url.push_str("&disposition=");
            uri_encode(&mut url, v, true);
        }
        if let Some(v) = &options.response_content_type {
            url.push_str("&type=");
            uri_encode(&mut url, v, true);
        }
        Ok(url)
    }

    async fn ready(&self) -> Result<()> {
        self.check()
    }

    async fn set_cors(&self, _rule: &crate::CorsRule) -> Result<crate::CorsOutcome> {
        Ok(crate::CorsOutcome::NotNeeded(
            "the in-memory store serves no browsers",
        ))
    }

    async fn create_bucket(&self) -> Result<()> {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(StorageError::Unavailable(
                "memory store set unavailable".into(),
            ));
        }
        self.bucket_exists.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl MemoryStore {
    /// A store whose bucket is missing until [`ObjectStore::create_bucket`].
    pub fn without_bucket(bucket: &str) -> Self {
        let store = Self::new(bucket);
        store.bucket_exists.store(false, Ordering::Relaxed);
        store
    }
}
