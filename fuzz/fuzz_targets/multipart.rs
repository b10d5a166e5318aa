//! Teacher-material uploads: an arbitrary `Content-Type` and multipart body, parsed by
//! actix-multipart and handled part by part as `POST /teachers/materials/upload` does
//! (`apps/lms-api/src/routes/materials.rs`: one `file` part streamed to
//! `MaterialService::store_file` through a small channel, an optional `name`, other text fields
//! read and dropped), over the in-memory repository and store with a pattern scanner.
//!
//! Never a panic; a failed upload leaves no object, no row and no quota used; a successful
//! one stores exactly the part's bytes, counts them against the quota, and has a key and a
//! `Content-Disposition` that are safe to use.
#![no_main]

use std::io;
use std::sync::{Arc, OnceLock};

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use bytes::{Bytes, BytesMut};
use domain::errors::ToProblem as _;
use domain::materials::rules::{check_name, content_disposition};
use domain::materials::{FileUpload, MaterialError, MaterialLimits, MaterialService, StagedFile};
use domain::memory::{MemoryMaterials, PatternScanner};
use domain::ports::SystemClock;
use futures_util::StreamExt as _;
use libfuzzer_sys::fuzz_target;
use storage::ObjectStore;
use storage::memory::MemoryStore;
use tokio::sync::mpsc;
use uuid::Uuid;

/// As in the route.
const MAX_FIELD_BYTES: usize = 4 * 1024;
/// Small limits, so that the fuzzer reaches "too large" and "quota exceeded".
const MAX_FILE_BYTES: u64 = 2048;
const QUOTA: u64 = 1536;
const VIRUS: &[u8] = b"X5O-FUZZ-VIRUS";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

/// Why an upload was refused (the route's answer would be 4xx/5xx).
#[derive(Debug)]
#[expect(
    dead_code,
    reason = "the fields are shown through Debug in failure messages"
)]
enum Refused {
    Multipart(MultipartError),
    Material(MaterialError),
    Invalid(&'static str),
}

fuzz_target!(|data: &[u8]| {
    // First line: the request's Content-Type; next byte: the body's chunk size (how the bytes
    // arrive matters to the parser); the rest: the body.
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(content_type) = HeaderValue::from_bytes(&data[..newline]) else {
        return;
    };
    let Some((&chunk, body)) = data[newline + 1..].split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, content_type);
    let chunks: Vec<Result<Bytes, PayloadError>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();

    let repo = MemoryMaterials::new();
    let store = Arc::new(MemoryStore::new("teachers"));
    let service = MaterialService::new(
        Arc::new(repo.clone()),
        store.clone(),
        Some(Arc::new(PatternScanner::new(VIRUS, "Fuzz.Virus"))),
        MaterialLimits {
            max_file_bytes: MAX_FILE_BYTES,
            default_quota: QUOTA,
        },
        Arc::new(SystemClock),
    );
    let teacher = Uuid::new_v4();

    runtime().block_on(async {
        let form = Multipart::new(&headers, futures_util::stream::iter(chunks));
        let outcome = upload(&service, teacher, form).await;
        // Clean-up after a drop runs on spawned tasks: let them finish.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let used = service.quota(teacher).await.unwrap().used_bytes;
        match outcome {
            Err(refused) => {
                // The route answers 400 for the multipart and form errors; a domain error
                // with these adapters must be the client's fault too, never a 5xx.
                if let Refused::Material(error) = &refused {
                    let status = error.problem().code.status();
                    assert!((400..500).contains(&status), "{error:?} answers {status}");
                }
                assert_eq!(store.len(), 0, "object left behind: {refused:?}");
                assert!(repo.all().is_empty(), "row left behind: {refused:?}");
                assert_eq!(used, 0, "quota not given back: {refused:?}");
            }
            Ok((record, fed)) => {
                assert_eq!(store.len(), 1);
                assert_eq!(repo.all().len(), 1);
                assert_eq!(record.file_size, Some(fed.len() as u64));
                assert_eq!(used, fed.len() as u64);
                assert!(!fed.is_empty() && fed.len() as u64 <= MAX_FILE_BYTES.min(QUOTA));
                assert!(
                    !fed.windows(VIRUS.len()).any(|w| w == VIRUS),
                    "virus stored"
                );

                let key = record.storage_key.clone().unwrap();
                let stored = store.get(&key, None).await.unwrap();
                let bytes = storage::collect_body(stored.body).await.unwrap();
                assert_eq!(bytes, fed, "stored bytes differ from the part's");
                // `{teacher}/{folder}/{id}_{safe name}`: three segments, nothing to traverse.
                let segments: Vec<&str> = key.split('/').collect();
                assert_eq!(segments.len(), 3, "{key:?}");
                assert_eq!(segments[0], teacher.to_string());
                assert!(
                    segments[2]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
                    "{key:?}"
                );

                let filename = record.original_filename.clone().unwrap();
                assert_eq!(check_name(&filename, "file name").as_ref(), Ok(&filename));
                assert_eq!(check_name(&record.name, "name").as_ref(), Ok(&record.name));
                for disposition in ["attachment", "inline"] {
                    let value = content_disposition(disposition, &filename);
                    assert!(
                        HeaderValue::from_str(&value).is_ok() && value.is_ascii(),
                        "{value:?}"
                    );
                }
            }
        }
    });
});

/// The route's loop over the form, without HTTP: the committed record and the file's bytes.
async fn upload(
    service: &MaterialService,
    teacher: Uuid,
    mut form: Multipart,
) -> Result<(domain::materials::MaterialRecord, Bytes), Refused> {
    let mut name: Option<String> = None;
    let mut staged: Option<(StagedFile, Bytes)> = None;
    while let Some(field) = form.next().await {
        let field = field.map_err(Refused::Multipart)?;
        match field.name() {
            Some("file") => {
                if staged.is_some() {
                    return Err(Refused::Invalid("two file parts"));
                }
                staged = Some(store_file_part(service, teacher, field).await?);
            }
            Some("name") => {
                let value = read_text_field(field)
                    .await?
                    .ok_or(Refused::Invalid("name over 4 KiB"))?;
                check_name(&value, "name")
                    .map_err(|e| Refused::Material(MaterialError::from(e)))?;
                name = Some(value);
            }
            _ if field
                .content_disposition()
                .is_some_and(|cd| cd.get_filename().is_some()) =>
            {
                return Err(Refused::Invalid("a file part not named 'file'"));
            }
            _ => {
                if read_text_field(field).await?.is_none() {
                    return Err(Refused::Invalid("a field over 4 KiB"));
                }
            }
        }
    }
    let (staged, fed) = staged.ok_or(Refused::Invalid("no file part"))?;
    let (record, _quota) = service
        .commit(staged, name.as_deref())
        .await
        .map_err(Refused::Material)?;
    Ok((record, fed))
}

async fn read_text_field(mut field: Field) -> Result<Option<String>, Refused> {
    let mut value = BytesMut::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(Refused::Multipart)?;
        if value.len() + chunk.len() > MAX_FIELD_BYTES {
            return Ok(None);
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value.to_vec())
        .map(Some)
        .map_err(|_| Refused::Invalid("field not UTF-8"))
}

/// As the route: the part is read here and handed to the store through a small channel.
async fn store_file_part(
    service: &MaterialService,
    teacher: Uuid,
    mut field: Field,
) -> Result<(StagedFile, Bytes), Refused> {
    let filename = field
        .content_disposition()
        .and_then(|cd| cd.get_filename())
        .map(str::to_owned)
        .ok_or(Refused::Invalid("file part without a filename"))?;
    let declared_type = field
        .content_type()
        .map(|mime| mime.essence_str().to_owned());
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(4);
    let body = Box::pin(
        futures_util::stream::unfold(receiver, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .fuse(),
    );
    let mut fed = BytesMut::new();
    let copy = &mut fed;
    // `move`, so that the sender is dropped (the store sees the end) when the part ends.
    let feed = async move {
        while let Some(item) = field.next().await {
            let item = item.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            if let Ok(chunk) = &item {
                copy.extend_from_slice(chunk);
            }
            let failed = item.is_err();
            if sender.send(item).await.is_err() || failed {
                return;
            }
        }
    };
    let upload = service.store_file(
        teacher,
        FileUpload {
            filename,
            declared_type,
            body,
        },
    );
    let (stored, ()) = futures_util::future::join(upload, feed).await;
    let staged = stored.map_err(Refused::Material)?;
    Ok((staged, fed.freeze()))
}
