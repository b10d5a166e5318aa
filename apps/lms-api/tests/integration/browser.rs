//! The whole stack as a browser sees it: a page on another origin fetches a transformed config
//! and an activity start from a running lms-api, then renders a page image, an activity image
//! and an audio element from the URLs in them, in headless Chromium.
//!
//! - presigned mode: lms-api over a real SigV4-verifying S3 server (s3s-fs) holding the sample
//!   book; URLs are signed for the *external* endpoint (`localhost`) while the server talks to
//!   `127.0.0.1`, so a host mix-up shows as a broken image.
//! - proxy mode: the embedded defaults (filesystem backend), assets streamed from the fake DCS
//!   through lms-api's signed asset and media URLs.
//! - dcs mode: URLs from the fake DCS's presign endpoint, cached by lms-api.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use lms_api::auth::Role;
use lms_api::{AppState, create_app};
use storage::testing::{ACCESS, S3sFs, SECRET};
use storage::{PutOptions, bytes_body};

use crate::support::{Engine, TestDatabase, settings_from, shared_dcs_url, token};

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("chromium not found: install Debian's `chromium` (scripts/test.sh does)")
}

fn sample_book() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/books/FLOWDEMO")
}

/// Every file of the sample book, relative to its root.
fn sample_files(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("sample book") {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            sample_files(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
}

/// The page: fetches the config and an activity start with a bearer token, then loads the
/// first page image, the dragdroppicture's section image and the first audio, and writes what
/// it saw into `#result` as JSON.
fn page(lms: &str, token: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="result">pending</pre><script>
const lms = {lms:?}, auth = {{ headers: {{ Authorization: "Bearer " + {token:?} }} }};
const image = (src) => new Promise((done) => {{
  const img = new Image();
  img.onload = () => done({{ src, width: img.naturalWidth }});
  img.onerror = () => done({{ src, width: 0, error: true }});
  img.src = src;
}});
const audio = (src) => new Promise((done) => {{
  const a = new Audio();
  a.preload = "auto";
  const finish = () => done({{ src, readyState: a.readyState, error: a.error && a.error.code }});
  a.onloadedmetadata = finish; a.onerror = finish;
  a.src = src; a.load();
}});
(async () => {{
  const out = {{}};
  try {{
    const config = await (await fetch(lms + "/api/v1/books/1/config", auth)).json();
    const pages = config.books[0].modules[0].pages;
    const sections = pages.flatMap((p) => p.sections || []);
    const activities = await (await fetch(lms + "/api/v1/books/1/activities", auth)).json();
    const drag = activities.items.find((a) => a.type === "dragdroppicture");
    const started = await (await fetch(lms + "/api/v1/activities/" + drag.id + "/start", auth)).json();
    out.page = await image(pages[0].image_path);
    out.activity = await image(started.config.activity.section_path);
    out.audio = await audio(sections.find((s) => s.audio_path).audio_path);
  }} catch (e) {{ out.error = String(e); }}
  document.getElementById("result").textContent = JSON.stringify(out);
  await fetch("/report", {{ method: "POST", body: JSON.stringify(out) }});
}})();
</script></body></html>"#
    )
}

/// Serves `html` at `/` from another origin than lms-api (so the fetches are cross-origin),
/// and takes the page's result at `POST /report`.
fn serve_page(
    listener: TcpListener,
    html: String,
) -> (
    actix_web::dev::ServerHandle,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (report, reports) = tokio::sync::mpsc::unbounded_channel::<String>();
    let server = HttpServer::new(move || {
        let html = html.clone();
        let report = report.clone();
        App::new()
            .route(
                "/",
                web::get().to(move || {
                    let html = html.clone();
                    async move { HttpResponse::Ok().content_type("text/html").body(html) }
                }),
            )
            .route(
                "/report",
                web::post().to(move |body: String| {
                    let report = report.clone();
                    async move {
                        let _ = report.send(body);
                        HttpResponse::NoContent().finish()
                    }
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (handle, reports)
}

fn serve_lms(listener: TcpListener, state: AppState) -> actix_web::dev::ServerHandle {
    let server = HttpServer::new(move || create_app(state.clone()))
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    handle
}

/// Opens `url` in headless Chromium and returns the JSON the page reported. The browser runs
/// in real time until the page reports (no virtual-time guesswork), then it is killed.
async fn render(
    url: String,
    reports: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> serde_json::Value {
    let profile = tempfile::tempdir().unwrap();
    let mut browser = tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium starts");
    let report = tokio::time::timeout(Duration::from_secs(60), reports.recv()).await;
    let _ = browser.kill().await;
    let text = report
        .expect("the page reported within 60 s")
        .expect("report channel open");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("page result {text:?}: {e}"))
}

fn assert_rendered(result: &serde_json::Value, url_prefix: &str) {
    println!("the page saw: {result}");
    assert!(result.get("error").is_none(), "{result}");
    for key in ["page", "activity"] {
        let src = result[key]["src"].as_str().unwrap_or_default();
        assert!(src.starts_with(url_prefix), "{key} URL {src} in {result}");
        assert!(
            result[key]["width"].as_u64().unwrap_or(0) > 0,
            "{key} image did not load: {result}"
        );
    }
    let audio = &result["audio"];
    assert!(
        audio["src"]
            .as_str()
            .unwrap_or_default()
            .starts_with(url_prefix),
        "{result}"
    );
    // HAVE_METADATA or more: the browser fetched and decoded the stream's start.
    assert!(
        audio["readyState"].as_u64().unwrap_or(0) >= 1 && audio["error"].is_null(),
        "audio did not load: {result}"
    );
}

/// Settings of an lms-api at `lms_url` serving a frontend at `page_url`, plus `extra`.
fn stack_settings(
    database: &TestDatabase,
    lms_url: &str,
    page_url: &str,
    extra: &[(&str, &str)],
) -> lms_api::Settings {
    let mut vars = vec![
        ("LMS_JWT_SECRET", crate::support::TEST_JWT_SECRET),
        ("DATABASE_URL", database.url.as_str()),
        ("DREAM_CENTRAL_STORAGE_URL", shared_dcs_url()),
        ("LMS_PUBLIC_URL", lms_url),
        ("LMS_FRONTEND_ORIGINS", page_url),
    ];
    vars.extend_from_slice(extra);
    settings_from(&vars).expect("settings")
}

fn free_listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

#[actix_web::test]
async fn presigned_mode_renders_straight_from_s3() {
    let s3 = S3sFs::start();
    let database = TestDatabase::open(Engine::Sqlite).await.unwrap();
    let (lms_listener, lms_url) = free_listener();
    let (page_listener, page_url) = free_listener();
    // Browsers use `localhost`; the server talks to 127.0.0.1.
    let external = format!("http://localhost:{}", s3.port);
    let endpoint = s3.endpoint();
    let settings = stack_settings(
        &database,
        &lms_url,
        &page_url,
        &[
            ("STORAGE_BACKEND", "s3"),
            ("MINIO_ENDPOINT", &endpoint),
            ("MINIO_EXTERNAL_URL", &external),
            ("MINIO_ACCESS_KEY", ACCESS),
            ("MINIO_SECRET_KEY", SECRET),
        ],
    );
    assert_eq!(
        settings.asset_delivery,
        lms_api::settings::AssetDelivery::Presigned
    );

    // `storage-init`, then the book's objects where DCS keeps them.
    lms_api::cli::storage_init(&settings)
        .await
        .expect("storage-init");
    let state = AppState::new(settings, database.db.clone()).expect("state");
    let mut files = Vec::new();
    sample_files(&sample_book(), "", &mut files);
    for (path, bytes) in files {
        state
            .services
            .storage
            .content
            .put(
                &format!("Dream Press/books/FLOWDEMO/{path}"),
                bytes_body(bytes),
                PutOptions::default(),
            )
            .await
            .expect("upload the sample book");
    }

    let lms = serve_lms(lms_listener, state);
    let (page_server, mut reports) =
        serve_page(page_listener, page(&lms_url, &token(Role::Teacher)));
    let result = render(format!("{page_url}/"), &mut reports).await;
    assert_rendered(
        &result,
        &format!("{external}/publishers/Dream%20Press/books/FLOWDEMO/"),
    );

    // The media route streams the same object from the bucket, with a range.
    let address = lms_url.trim_start_matches("http://").to_owned();
    let teacher = token(Role::Teacher);
    let answer = actix_web::rt::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET /api/v1/books/1/media/audio/01.mp3 HTTP/1.1\r\nHost: t\r\n\
             Authorization: Bearer {teacher}\r\nRange: bytes=-100\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    let size = std::fs::read(sample_book().join("audio/01.mp3"))
        .unwrap()
        .len();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 206"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains(&format!(
            "content-range: bytes {}-{}/{size}",
            size - 100,
            size - 1
        )),
        "{text}"
    );

    page_server.stop(false).await;
    lms.stop(false).await;
}

#[actix_web::test]
async fn proxy_mode_renders_through_signed_lms_urls() {
    let database = TestDatabase::open(Engine::Sqlite).await.unwrap();
    let (lms_listener, lms_url) = free_listener();
    let (page_listener, page_url) = free_listener();
    let settings = stack_settings(&database, &lms_url, &page_url, &[]);
    assert_eq!(
        settings.asset_delivery,
        lms_api::settings::AssetDelivery::Proxy
    );
    let state = AppState::new(settings, database.db.clone()).expect("state");

    let lms = serve_lms(lms_listener, state);
    let (page_server, mut reports) =
        serve_page(page_listener, page(&lms_url, &token(Role::Teacher)));
    let result = render(format!("{page_url}/"), &mut reports).await;
    assert_rendered(&result, &format!("{lms_url}/api/v1/books/1/"));
    assert!(
        result["audio"]["src"].as_str().unwrap().contains("/media/"),
        "{result}"
    );

    page_server.stop(false).await;
    lms.stop(false).await;
}

#[actix_web::test]
async fn dcs_mode_renders_from_dcs_presigned_urls() {
    let database = TestDatabase::open(Engine::Sqlite).await.unwrap();
    let (lms_listener, lms_url) = free_listener();
    let (page_listener, page_url) = free_listener();
    let settings = stack_settings(&database, &lms_url, &page_url, &[("ASSET_DELIVERY", "dcs")]);
    let state = AppState::new(settings, database.db.clone()).expect("state");

    let lms = serve_lms(lms_listener, state);
    let (page_server, mut reports) =
        serve_page(page_listener, page(&lms_url, &token(Role::Teacher)));
    let result = render(format!("{page_url}/"), &mut reports).await;
    // The fake DCS signs for its own address, as DCS signs for DCS_MINIO_EXTERNAL_URL.
    assert_rendered(
        &result,
        &format!(
            "{}/_presigned/publishers/Dream%20Press/books/FLOWDEMO/",
            shared_dcs_url()
        ),
    );

    page_server.stop(false).await;
    lms.stop(false).await;
}
