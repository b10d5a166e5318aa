//! The fixture: an app over a test database, a store (filesystem or s3s-fs) and clamd, and
//! helpers to build multipart bodies and check that nothing was left behind.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::test as actix_test;
use clamd::testing::ClamdServer;
use lms_api::AppState;
use lms_api::auth::{JwtKeys, Role};
use storage::testing::{ACCESS, S3sFs, SECRET};
use uuid::Uuid;

use crate::support::{TEST_JWT_SECRET, TestDatabase, settings_from, shared_dcs_url};

/// Which object store holds teacher files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
}

/// 1x1 PNG.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\x0f\0\0\x01\x01\0\x05\x18\xd8N\0\0\0\0IEND\xaeB`\x82";
/// The start of an MP3 with an ID3 tag.
pub const MP3: &[u8] = b"ID3\x04\0\0\0\0\0\x00\xff\xfb\x90\x64\0\0\0\0\0\0\0\0\0\0\0\0";

/// `PNG` padded to `len` bytes.
pub fn png_of(len: usize) -> Vec<u8> {
    let mut data = PNG.to_vec();
    data.resize(len.max(PNG.len()), 0x42);
    data
}

/// `MP3` padded to `len` bytes.
pub fn mp3_of(len: usize) -> Vec<u8> {
    let mut data = MP3.to_vec();
    data.resize(len.max(MP3.len()), 0x55);
    data
}

pub const BOUNDARY: &str = "----dream-test-boundary-7MA4YWxkTrZu0gW";

/// One part of a multipart form.
pub enum Part<'a> {
    File {
        field: &'a str,
        filename: &'a str,
        content_type: &'a str,
        bytes: &'a [u8],
    },
    Text {
        field: &'a str,
        value: &'a str,
    },
}

/// A `file` part.
pub fn file<'a>(filename: &'a str, content_type: &'a str, bytes: &'a [u8]) -> Part<'a> {
    Part::File {
        field: "file",
        filename,
        content_type,
        bytes,
    }
}

/// A multipart/form-data body of `parts`.
pub fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::File {
                field,
                filename,
                content_type,
                bytes,
            } => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
                         Content-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
            }
            Part::Text { field, value } => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}")
                        .as_bytes(),
                );
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn form_content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A token for user `sub` with `role`.
pub fn token_for(sub: Uuid, role: Role) -> String {
    JwtKeys::from_secret(&TEST_JWT_SECRET.to_owned().into())
        .issue(sub, role, Duration::from_secs(600))
        .expect("token")
}

/// An app and what it runs on. Keep it alive for the test.
pub struct Stack {
    pub state: AppState,
    pub backend: Backend,
    pub s3: Option<S3sFs>,
    /// Kept for its lifetime: the server stops when the stack is dropped.
    pub _clamd: Option<ClamdServer>,
    _objects: tempfile::TempDir,
    pub database: TestDatabase,
}

/// Options of a stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct StackOptions {
    pub scan: bool,
    pub max_file_bytes: Option<u64>,
    pub quota_bytes: Option<u64>,
    /// `LMS_BODY_READ_TIMEOUT`.
    pub body_read_timeout: Option<&'static str>,
}

impl Stack {
    pub async fn start(database: TestDatabase, backend: Backend, options: StackOptions) -> Self {
        let objects = tempfile::tempdir().expect("temp dir");
        let s3 = (backend == Backend::S3).then(S3sFs::start);
        let clamd = options
            .scan
            .then(|| ClamdServer::start().expect("clamd (scripts/test.sh installs it)"));
        let root = objects.path().display().to_string();
        let endpoint = s3.as_ref().map(S3sFs::endpoint).unwrap_or_default();
        let clamd_addr = clamd
            .as_ref()
            .map(|c| c.addr().to_string())
            .unwrap_or_default();
        let max = options
            .max_file_bytes
            .map(|v| v.to_string())
            .unwrap_or_default();
        let quota = options
            .quota_bytes
            .map(|v| v.to_string())
            .unwrap_or_default();
        let mut vars = vec![
            ("LMS_JWT_SECRET", TEST_JWT_SECRET),
            ("DATABASE_URL", database.url.as_str()),
            ("DREAM_CENTRAL_STORAGE_URL", shared_dcs_url()),
            ("STORAGE_FS_ROOT", root.as_str()),
        ];
        if backend == Backend::S3 {
            vars.extend_from_slice(&[
                ("STORAGE_BACKEND", "s3"),
                ("MINIO_ENDPOINT", endpoint.as_str()),
                ("MINIO_ACCESS_KEY", ACCESS),
                ("MINIO_SECRET_KEY", SECRET),
            ]);
        }
        if clamd.is_some() {
            vars.push(("CLAMD_ADDR", clamd_addr.as_str()));
        }
        if !max.is_empty() {
            vars.push(("MATERIAL_MAX_BYTES", max.as_str()));
        }
        if !quota.is_empty() {
            vars.push(("TEACHER_QUOTA_BYTES", quota.as_str()));
        }
        if let Some(timeout) = options.body_read_timeout {
            vars.push(("LMS_BODY_READ_TIMEOUT", timeout));
        }
        let settings = settings_from(&vars).expect("settings");
        if backend == Backend::S3 {
            lms_api::cli::storage_init(&settings)
                .await
                .expect("storage-init");
        }
        let state = AppState::new(settings, database.db.clone()).expect("state");
        Self {
            state,
            backend,
            s3,
            _clamd: clamd,
            _objects: objects,
            database,
        }
    }

    /// Keys in the teachers' bucket.
    pub async fn objects(&self) -> Vec<String> {
        self.state
            .services
            .storage
            .teachers
            .list("")
            .await
            .expect("list objects")
            .into_iter()
            .map(|meta| meta.key)
            .collect()
    }

    /// Rows in `teacher_materials`.
    pub async fn rows(&self) -> u64 {
        use sea_orm::{ConnectionTrait, Statement};
        let row = self
            .database
            .db
            .query_one_raw(Statement::from_string(
                self.database.db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM teacher_materials",
            ))
            .await
            .expect("count rows")
            .expect("a row");
        row.try_get::<i64>("", "n").expect("count") as u64
    }

    /// The teacher's `used_bytes`.
    pub async fn used(&self, teacher: Uuid) -> u64 {
        self.state
            .materials
            .quota(teacher)
            .await
            .expect("quota")
            .used_bytes
    }

    /// No object, no row, nothing reserved (after clean-up tasks had a moment to run).
    pub async fn assert_nothing_left(&self, teacher: Uuid, context: &str) {
        for _ in 0..100 {
            if self.objects().await.is_empty() && self.used(teacher).await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            self.objects().await,
            Vec::<String>::new(),
            "{context}: objects left"
        );
        assert_eq!(self.rows().await, 0, "{context}: rows left");
        assert_eq!(
            self.used(teacher).await,
            0,
            "{context}: quota not given back"
        );
        if let Some(s3) = &self.s3 {
            assert_eq!(
                s3.pending_upload_files(),
                Vec::<String>::new(),
                "{context}: multipart upload not aborted"
            );
        }
    }

    /// Serves the app on a loopback port (for raw-socket clients).
    pub fn serve(&self) -> (String, actix_web::dev::ServerHandle) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().unwrap().to_string();
        let server = lms_api::cli::http_server(self.state.clone(), listener).expect("server");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (address, handle)
    }
}

/// An upload request.
pub fn upload_request(token: &str, body: Vec<u8>) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri("/api/v1/teachers/materials/upload")
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", form_content_type()))
        .set_payload(body)
}

/// A raw HTTP/1.1 exchange on a fresh connection: writes `head` and `body`, half-closes when
/// `close_write`, and returns what the server answered (status line and all).
pub fn raw_exchange(address: &str, head: &str, body: &[u8], close_write: bool) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before the whole body is written.
    let _ = stream.write_all(body);
    if close_write {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The JSON body of the first answer in a raw exchange (by its `Content-Length`).
pub fn raw_json(answer: &str) -> serde_json::Value {
    let Some((head, rest)) = answer.split_once("\r\n\r\n") else {
        return serde_json::Value::Null;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(rest.len());
    serde_json::from_str(rest.get(..length).unwrap_or(rest)).unwrap_or(serde_json::Value::Null)
}
