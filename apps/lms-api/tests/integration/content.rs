//! Book content through the real routes: the transformed config and its signed asset URLs,
//! activities (listing, start, admin import, webhooks), single asset links, assets and media
//! streamed with byte ranges and `HEAD`, the access rules, DCS outages, the filesystem
//! backend's signed `/files/...` route, and that no secret ever leaves in a response. All on
//! the fake DCS, the filesystem storage backend and the default proxy delivery mode, on SQLite
//! and PostgreSQL.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, StatusCode};
use actix_web::test as actix_test;
use bytes::Bytes;
use cache::{Cache, CacheConfig, ManualClock};
use dcs_mock::{BookStatus, Fault, MockConfig, MockDcs, NewBook};
use domain::activities::ActivityRepository;
use futures_util::future::LocalBoxFuture;
use lms_api::auth::{JwtKeys, Role};
use lms_api::db::SqlActivityStore;
use lms_api::services::dcs_config;
use lms_api::{AppState, create_app};
use serde_json::{Value, json};
use storage::{PresignOptions, PutOptions, bytes_body};

use crate::support::{
    TEST_JWT_SECRET, TestDatabase, on_both_databases, settings_from, state_with_dcs, token,
};
use crate::webhooks::{
    PUBLIC_URL, RECORDED_SECRET, book_delivery, fast_client, settings_for, signed_request,
    state_with,
};

/// `LMS_PUBLIC_URL` of the test settings (the default): the origin of every URL handed out.
const PUBLIC: &str = "http://127.0.0.1:8000";
const BOOK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/books/FLOWDEMO");

// ----- fixtures -------------------------------------------------------------------------------

fn sample_file(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(BOOK_DIR).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sample_config() -> Value {
    serde_json::from_slice(&sample_file("config.json")).expect("sample config is JSON")
}

fn publisher_token(publisher_id: i64) -> String {
    JwtKeys::from_secret(&TEST_JWT_SECRET.to_owned().into())
        .issue_for_publisher(uuid::Uuid::new_v4(), publisher_id, Duration::from_secs(600))
        .expect("publisher token")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The path and query of a URL we handed out, to send it through the test service.
fn local(url: &str, origin: &str) -> String {
    url.strip_prefix(origin)
        .unwrap_or_else(|| panic!("{url} is not under {origin}"))
        .to_owned()
}

/// A fake DCS of our own and an app state on it, with a cache clock the test moves.
struct Fixture {
    dcs: MockDcs,
    clock: Arc<ManualClock>,
    state: AppState,
}

async fn fixture(db: &TestDatabase) -> Fixture {
    let dcs = MockDcs::start(MockConfig::default())
        .await
        .expect("fake DCS");
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(CacheConfig::default())
        .clock(clock.clone())
        .build();
    let state = state_with_dcs(db, dcs.base_url(), cache);
    Fixture { dcs, clock, state }
}

/// One answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// What the body reported as its size before it was read (a `HEAD` keeps the `GET` size).
    size: BodySize,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    fn must(&self, name: &str) -> &str {
        self.header(name)
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?} ({})",
                String::from_utf8_lossy(&self.body),
                self.status
            )
        })
    }

    /// `{detail, code}` with this code.
    fn assert_problem(&self, status: StatusCode, code: &str, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert_eq!(
            self.must("content-type"),
            "application/json",
            "{what}: {self:?}"
        );
        let body = self.json();
        assert!(body["detail"].is_string(), "{what}: {body}");
        assert_eq!(body["code"], code, "{what}: {body}");
        body
    }
}

type Call = Box<dyn Fn(actix_test::TestRequest) -> LocalBoxFuture<'static, Answer>>;

/// The app under test; remembers every answer so a test can check none leaks a secret.
struct Client {
    call: Call,
    seen: RefCell<Vec<Vec<u8>>>,
}

/// Reads a response whole.
async fn answer_of<B: MessageBody>(response: ServiceResponse<B>) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let size = response.response().body().size();
    let body = actix_test::read_body(response).await;
    Answer {
        status,
        headers,
        size,
        body,
    }
}

/// A [`Client`] over `create_app(state)`.
async fn app_client(state: &AppState) -> Client {
    let app = Rc::new(actix_test::init_service(create_app(state.clone())).await);
    Client {
        call: Box::new(move |request| {
            let app = app.clone();
            Box::pin(async move {
                answer_of(actix_test::call_service(&*app, request.to_request()).await).await
            })
        }),
        seen: RefCell::new(Vec::new()),
    }
}

impl Client {
    async fn send(&self, request: actix_test::TestRequest) -> Answer {
        let answer = (self.call)(request).await;
        let mut record = Vec::new();
        for (name, value) in &answer.headers {
            record.extend_from_slice(name.as_str().as_bytes());
            record.extend_from_slice(b": ");
            record.extend_from_slice(value.as_bytes());
            record.push(b'\n');
        }
        record.extend_from_slice(&answer.body);
        self.seen.borrow_mut().push(record);
        answer
    }

    /// `GET uri` with an optional bearer token and extra headers.
    async fn get(&self, uri: &str, bearer: Option<&str>, headers: &[(&str, &str)]) -> Answer {
        self.call(Method::GET, uri, bearer, headers).await
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = actix_test::TestRequest::default().method(method).uri(uri);
        if let Some(token) = bearer {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        for (name, value) in headers {
            request = request.insert_header((*name, *value));
        }
        self.send(request).await
    }

    /// JSON of a 200 answer.
    async fn get_json(&self, uri: &str, bearer: &str) -> Value {
        let answer = self.get(uri, Some(bearer), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "GET {uri}: {answer:?}");
        answer.json()
    }

    /// No answer so far contained any of `secrets`.
    fn assert_no_secrets(&self, secrets: &[&str]) {
        let seen = self.seen.borrow();
        assert!(!seen.is_empty());
        for secret in secrets {
            assert!(secret.len() >= 8, "too short to search for: {secret:?}");
            for record in seen.iter() {
                assert!(
                    !record
                        .windows(secret.len())
                        .any(|window| window == secret.as_bytes()),
                    "a response contains a secret: {}",
                    String::from_utf8_lossy(record)
                );
            }
        }
    }
}

/// `expires=<unix>&signature=<64 hex>`: checks the shape and returns the expiry.
fn check_signed_query(query: &str, what: &str) -> u64 {
    let (expires, signature) = query
        .strip_prefix("expires=")
        .and_then(|rest| rest.split_once("&signature="))
        .unwrap_or_else(|| panic!("{what}: query {query:?}"));
    assert_eq!(signature.len(), 64, "{what}: {query}");
    assert!(
        signature.bytes().all(|b| b.is_ascii_hexdigit()),
        "{what}: {query}"
    );
    let expires: u64 = expires
        .parse()
        .unwrap_or_else(|_| panic!("{what}: {query}"));
    let now = now_unix();
    assert!(
        expires >= now + 2700 - 5 && expires <= now + 3600 + 5,
        "{what}: expires {expires}, now {now}"
    );
    expires
}

/// Walks the raw and the transformed config side by side: every `./books/FLOWDEMO/...` string
/// must have become a signed lms-api URL for that asset (`media` for audio), everything else
/// must be unchanged. Returns (book-relative path, URL) of every rewritten string.
fn compare_transformed(raw: &Value, out: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match (raw, out) {
        (Value::String(path), _) if path.starts_with("./books/FLOWDEMO/") => {
            let url = out
                .as_str()
                .unwrap_or_else(|| panic!("{at}: {out} is not a URL"));
            let rest = &path["./books/FLOWDEMO/".len()..];
            let route = if rest.ends_with(".mp3") {
                "media"
            } else {
                "assets"
            };
            let expected = format!("{PUBLIC}/api/v1/books/1/{route}/{rest}?");
            let query = url
                .strip_prefix(&expected)
                .unwrap_or_else(|| panic!("{at}: {url} does not start with {expected}"));
            check_signed_query(query, at);
            found.push((rest.to_owned(), url.to_owned()));
        }
        (Value::Object(raw), Value::Object(out)) => {
            assert_eq!(
                raw.keys().collect::<Vec<_>>(),
                out.keys().collect::<Vec<_>>(),
                "{at}: keys"
            );
            for (key, value) in raw {
                compare_transformed(value, &out[key], &format!("{at}/{key}"), found);
            }
        }
        (Value::Array(raw), Value::Array(out)) => {
            assert_eq!(raw.len(), out.len(), "{at}: length");
            for (i, (r, o)) in raw.iter().zip(out).enumerate() {
                compare_transformed(r, o, &format!("{at}/{i}"), found);
            }
        }
        (raw, out) => assert_eq!(raw, out, "{at}: a non-path value changed"),
    }
}

/// Every string in a JSON value.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn flip_last_hex(url: &str) -> String {
    let last = url.chars().last().expect("non-empty");
    let replacement = if last == '0' { '1' } else { '0' };
    format!("{}{replacement}", &url[..url.len() - 1])
}

/// The book's activities as `(id, type, order, header_text)`.
async fn activity_rows(client: &Client, book: i64, bearer: &str) -> Vec<(i64, String)> {
    let body = client
        .get_json(&format!("/api/v1/books/{book}/activities"), bearer)
        .await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(body["total"], items.len());
    items
        .iter()
        .map(|a| {
            (
                a["id"].as_i64().expect("id"),
                a["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect()
}

// ----- 1. the transformed config and its URLs -------------------------------------------------

async fn config_paths_become_signed_urls_that_browsers_can_fetch(db: TestDatabase) {
    let f = fixture(&db).await;
    let client = app_client(&f.state).await;
    let teacher = token(Role::Teacher);

    let answer = client
        .get("/api/v1/books/1/config", Some(&teacher), &[])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.must("x-cache"), "MISS");
    let config = answer.json();

    let mut found = Vec::new();
    compare_transformed(&sample_config(), &config, "", &mut found);
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "images/HB/modules/M1/pages/01.png",
        "images/HB/modules/M1/pages/02.png",
        "images/HB/modules/M1/pages/03.png",
        "audio/01.mp3",
        "audio/03.mp3",
        "images/M1/p2s1.png",
        "audio/02_extra.mp3",
        "images/M1/p3match1_cat.png",
        "images/M1/p3match1_dog.png",
        "images/M1/p3match1_bird.png",
        "images/book_cover.png",
        "images/publisher_logo.png",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} not rewritten: {paths:?}"
        );
    }
    assert_eq!(found.len(), 12, "{paths:?}");

    // The fields the issue names, by position.
    let pages = &config["books"][0]["modules"][0]["pages"];
    let url_of = |value: &Value| value.as_str().expect("a URL").to_owned();
    let page_image = url_of(&pages[0]["image_path"]);
    assert!(page_image.contains("/api/v1/books/1/assets/images/HB/modules/M1/pages/01.png?"));
    let audio = url_of(&pages[0]["sections"][0]["audio_path"]);
    assert!(audio.starts_with(&format!(
        "{PUBLIC}/api/v1/books/1/media/audio/01.mp3?expires="
    )));
    let section = &pages[1]["sections"][1];
    let section_path = url_of(&section["activity"]["section_path"]);
    assert!(section_path.contains("/api/v1/books/1/assets/images/M1/p2s1.png?expires="));
    let extra = url_of(&section["audio_extra"]["path"]);
    assert!(extra.contains("/api/v1/books/1/media/audio/02_extra.mp3?expires="));
    let sentences = &pages[2]["sections"][1]["activity"]["sentences"];
    for (i, animal) in ["cat", "dog", "bird"].iter().enumerate() {
        let url = url_of(&sentences[i]["image_path"]);
        assert!(
            url.contains(&format!("/assets/images/M1/p3match1_{animal}.png?expires=")),
            "{url}"
        );
    }
    // Words, answers, titles and coordinates are left alone.
    assert_eq!(
        section["activity"]["headerText"],
        "Drag the words to the picture."
    );
    assert_eq!(
        section["activity"]["words"],
        json!(["banana", "apple", "orange"])
    );
    assert_eq!(sentences[0]["sentence"], "It says meow.");
    assert_eq!(pages[1]["sections"][0]["answer"][1]["text"], "pear");
    assert_eq!(config["book_title"], "Flow Demo English 1");

    // A second read comes from the cache and hands out the same URLs (same signing window,
    // unless the window turned in between, which the expiries would show).
    let again = client
        .get("/api/v1/books/1/config", Some(&teacher), &[])
        .await;
    assert_eq!(again.must("x-cache"), "HIT");
    let again = again.json();
    let again_section = url_of(
        &again["books"][0]["modules"][0]["pages"][1]["sections"][1]["activity"]["section_path"],
    );
    let expiry = |url: &str| url.split("expires=").nth(1).map(|s| s[..10].to_owned());
    if expiry(&again_section) == expiry(&section_path) {
        assert_eq!(again_section, section_path);
    }

    // A browser fetches the URLs without a bearer token.
    let image = client.get(&local(&section_path, PUBLIC), None, &[]).await;
    assert_eq!(image.status, StatusCode::OK, "{image:?}");
    assert_eq!(image.must("content-type"), "image/png");
    assert_eq!(image.must("x-content-type-options"), "nosniff");
    assert_eq!(image.must("accept-ranges"), "bytes");
    assert!(image.must("etag").starts_with('"'), "{image:?}");
    assert_eq!(&image.body[..], &sample_file("images/M1/p2s1.png")[..]);

    let sound = client.get(&local(&extra, PUBLIC), None, &[]).await;
    assert_eq!(sound.status, StatusCode::OK, "{sound:?}");
    assert_eq!(sound.must("content-type"), "audio/mpeg");
    assert_eq!(sound.must("accept-ranges"), "bytes");
    assert_eq!(sound.must("x-content-type-options"), "nosniff");
    assert!(sound.header("etag").is_some());
    assert_eq!(&sound.body[..], &sample_file("audio/02_extra.mp3")[..]);

    // A signed URL also takes a range (browsers seek audio that way).
    let part = client
        .get(&local(&extra, PUBLIC), None, &[("Range", "bytes=0-9")])
        .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.must("content-range"), "bytes 0-9/4056");
    assert_eq!(&part.body[..], &sample_file("audio/02_extra.mp3")[..10]);

    // Tampered: the signature, the expiry, another asset or book with the same query, and no
    // signature at all.
    let (path, query) = local(&section_path, PUBLIC)
        .split_once('?')
        .map(|(p, q)| (p.to_owned(), q.to_owned()))
        .expect("a query");
    let later = query.replacen("expires=", "expires=9", 1);
    for (what, uri) in [
        (
            "changed signature",
            flip_last_hex(&local(&section_path, PUBLIC)),
        ),
        ("changed expiry", format!("{path}?{later}")),
        (
            "another asset",
            format!("/api/v1/books/1/assets/images/M1/p3match1_cat.png?{query}"),
        ),
        (
            "another route",
            format!("/api/v1/books/1/media/images/M1/p2s1.png?{query}"),
        ),
        (
            "another book",
            format!("/api/v1/books/2/assets/images/M1/p2s1.png?{query}"),
        ),
        (
            "garbage signature",
            format!(
                "{path}?{}",
                query.split("&signature=").next().unwrap().to_owned() + "&signature=zz"
            ),
        ),
    ] {
        let refused = client.get(&uri, None, &[]).await;
        refused.assert_problem(StatusCode::FORBIDDEN, "forbidden", what);
        assert!(refused.header("etag").is_none(), "{what}");
    }
    // Without a signature it is a bearer route like the others.
    let anonymous = client.get(&path, None, &[]).await;
    anonymous.assert_problem(
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
        "no signature",
    );

    client.assert_no_secrets(&[TEST_JWT_SECRET]);
}
on_both_databases!(config_paths_become_signed_urls_that_browsers_can_fetch);

// ----- 2. activities ---------------------------------------------------------------------------

async fn activities_list_in_order_with_stable_ids_and_start(db: TestDatabase) {
    let f = fixture(&db).await;
    let client = app_client(&f.state).await;
    let teacher = token(Role::Teacher);
    let admin = token(Role::Admin);

    let body = client
        .get_json("/api/v1/books/1/activities", &teacher)
        .await;
    assert_eq!(body["total"], 2, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["type"], "dragdroppicture");
    assert_eq!(items[0]["header_text"], "Drag the words to the picture.");
    assert_eq!(items[0]["module_name"], "Module 1");
    assert_eq!(
        (
            &items[0]["module_index"],
            &items[0]["page_number"],
            &items[0]["section_index"],
            &items[0]["order"]
        ),
        (&json!(1), &json!(2), &json!(1), &json!(1021))
    );
    assert_eq!(items[1]["type"], "matchTheWords");
    assert_eq!(items[1]["order"], 1031);
    assert!(items.iter().all(|a| a["book_id"] == 1));
    let ids = activity_rows(&client, 1, &teacher).await;
    assert_eq!(
        ids.iter().map(|(id, _)| json!(id)).collect::<Vec<_>>(),
        items.iter().map(|a| a["id"].clone()).collect::<Vec<_>>(),
        "listed again: same ids"
    );

    // The admin re-import of an unchanged book changes nothing.
    let import = client
        .call(
            Method::POST,
            "/api/v1/admin/books/1/activities/import",
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(import.status, StatusCode::OK, "{import:?}");
    assert_eq!(
        import.json(),
        json!({"book_id": 1, "activities": 2, "inserted": 0, "updated": 0, "unchanged": 2, "deleted": 0})
    );
    assert_eq!(activity_rows(&client, 1, &teacher).await, ids);
    for (who, bearer, status, code) in [
        (
            "teacher",
            Some(teacher.as_str()),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "nobody",
            None,
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
        ),
    ] {
        let refused = client
            .call(
                Method::POST,
                "/api/v1/admin/books/1/activities/import",
                bearer,
                &[],
            )
            .await;
        refused.assert_problem(status, code, who);
    }
    let unknown = client
        .call(
            Method::POST,
            "/api/v1/admin/books/999/activities/import",
            Some(&admin),
            &[],
        )
        .await;
    unknown.assert_problem(StatusCode::NOT_FOUND, "not_found", "import of book 999");

    // Start: the activity with its config, paths as signed URLs.
    let (drag_id, _) = &ids[0];
    let started = client
        .get_json(&format!("/api/v1/activities/{drag_id}/start"), &teacher)
        .await;
    assert_eq!(started["activity"]["id"], *drag_id);
    assert_eq!(started["activity"]["type"], "dragdroppicture");
    let mut texts = Vec::new();
    strings(&started["config"], &mut texts);
    assert!(
        texts.iter().all(|s| !s.starts_with("./books/")),
        "untransformed path in {texts:?}"
    );
    let image = texts
        .iter()
        .find(|s| {
            s.starts_with(&format!(
                "{PUBLIC}/api/v1/books/1/assets/images/M1/p2s1.png?"
            ))
        })
        .unwrap_or_else(|| panic!("no section image URL in {}", started["config"]))
        .clone();
    assert!(
        texts.iter().any(|s| s.starts_with(&format!(
            "{PUBLIC}/api/v1/books/1/media/audio/02_extra.mp3?"
        ))),
        "no audio_extra URL in {}",
        started["config"]
    );
    assert!(texts.contains(&"Drag the words to the picture.".to_owned()));
    assert!(texts.contains(&"banana".to_owned()));
    let fetched = client.get(&local(&image, PUBLIC), None, &[]).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(&fetched.body[..], &sample_file("images/M1/p2s1.png")[..]);

    let (match_id, _) = &ids[1];
    let started = client
        .get_json(&format!("/api/v1/activities/{match_id}/start"), &teacher)
        .await;
    let mut texts = Vec::new();
    strings(&started["config"], &mut texts);
    let images = texts
        .iter()
        .filter(|s| s.contains("/assets/images/M1/p3match1_"))
        .count();
    assert_eq!(images, 3, "{}", started["config"]);

    for (uri, bearer, status, code) in [
        (
            "/api/v1/activities/987654/start".to_owned(),
            Some(teacher.as_str()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            format!("/api/v1/activities/{drag_id}/start"),
            None,
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
        ),
        (
            "/api/v1/books/999/activities".to_owned(),
            Some(teacher.as_str()),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        client
            .get(&uri, bearer, &[])
            .await
            .assert_problem(status, code, &uri);
    }
    client.assert_no_secrets(&[TEST_JWT_SECRET]);
}
on_both_databases!(activities_list_in_order_with_stable_ids_and_start);

// ----- 3. asset links --------------------------------------------------------------------------

async fn asset_links_are_signed_and_refuse_paths_outside_the_book(db: TestDatabase) {
    let f = fixture(&db).await;
    let client = app_client(&f.state).await;
    let student = token(Role::Student);

    for (path, route, rest) in [
        (
            "./books/FLOWDEMO/images/M1/p2s1.png",
            "assets",
            "images/M1/p2s1.png",
        ),
        ("images/M1/p2s1.png", "assets", "images/M1/p2s1.png"),
        ("books/FLOWDEMO/audio/01.mp3", "media", "audio/01.mp3"),
        (
            ".%5Cbooks%5CFLOWDEMO%5Caudio%5C01.mp3",
            "media",
            "audio/01.mp3",
        ),
    ] {
        let uri = format!(
            "/api/v1/books/1/assets/presigned?path={}",
            path.replace('/', "%2F")
        );
        let link = client.get_json(&uri, &student).await;
        let expires_in = link["expires_in"].as_u64().expect("expires_in");
        assert!((2700..=3600).contains(&expires_in), "{link}");
        let url = link["url"].as_str().expect("url");
        let prefix = format!("{PUBLIC}/api/v1/books/1/{route}/{rest}?");
        let query = url
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{path}: {url}"));
        let expires = check_signed_query(query, path);
        assert!(expires.abs_diff(now_unix() + expires_in) <= 2, "{link}");
        let fetched = client.get(&local(url, PUBLIC), None, &[]).await;
        assert_eq!(fetched.status, StatusCode::OK, "{path}: {fetched:?}");
        assert_eq!(&fetched.body[..], &sample_file(rest)[..]);
    }

    for (path, reason) in [
        ("../x", "traversal"),
        ("images/../../x.png", "traversal"),
        ("%2E%2E%2Fconfig.json", "traversal"),
        ("./books/OTHER/x.png", "other_book"),
        ("", "empty"),
    ] {
        let uri = format!(
            "/api/v1/books/1/assets/presigned?path={}",
            path.replace('/', "%2F")
                .replace('%', "%25")
                .replace("%252F", "%2F")
        );
        let body = client.get(&uri, Some(&student), &[]).await.assert_problem(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            path,
        );
        assert_eq!(body["reason"], reason, "{path}: {body}");
    }

    // The streamed routes refuse the same paths.
    for uri in [
        "/api/v1/books/1/assets/..%2Fconfig.json",
        "/api/v1/books/1/assets/books/OTHER/images/x.png",
        "/api/v1/books/1/media/%2e%2e/%2e%2e/x.mp3",
    ] {
        client.get(uri, Some(&student), &[]).await.assert_problem(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            uri,
        );
    }

    client
        .get("/api/v1/books/1/assets/presigned?path=x.png", None, &[])
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "not_authenticated", "no token");
    client
        .get(
            "/api/v1/books/999/assets/presigned?path=x.png",
            Some(&student),
            &[],
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", "unknown book");
    let missing = client
        .get("/api/v1/books/1/assets/presigned", Some(&student), &[])
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{missing:?}");
    assert!(missing.json()["detail"].is_string());
    client.assert_no_secrets(&[TEST_JWT_SECRET]);
}
on_both_databases!(asset_links_are_signed_and_refuse_paths_outside_the_book);

// ----- 4. ranges, conditional requests, HEAD ---------------------------------------------------

async fn media_and_assets_stream_with_ranges(db: TestDatabase) {
    let f = fixture(&db).await;
    let client = app_client(&f.state).await;
    let teacher = token(Role::Teacher);
    let bearer = Some(teacher.as_str());
    let media = "/api/v1/books/1/media/audio/01.mp3";
    let file = sample_file("audio/01.mp3");
    let n = file.len();
    assert_eq!(n, 6032);

    let whole = client.get(media, bearer, &[]).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.must("content-type"), "audio/mpeg");
    assert_eq!(whole.must("accept-ranges"), "bytes");
    assert_eq!(whole.must("x-content-type-options"), "nosniff");
    assert!(whole.must("cache-control").starts_with("private"));
    assert!(whole.header("content-range").is_none());
    assert_eq!(whole.size, BodySize::Sized(n as u64));
    assert_eq!(&whole.body[..], &file[..]);
    let etag = whole.must("etag").to_owned();

    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, n - 1),
        ("bytes=-50", n - 50, n - 1),
        ("bytes=6000-99999", 6000, n - 1),
        ("bytes=0-0", 0, 0),
        ("bytes=-100000", 0, n - 1),
        ("bytes=6031-6031", n - 1, n - 1),
    ] {
        let part = client.get(media, bearer, &[("Range", range)]).await;
        assert_eq!(
            part.status,
            StatusCode::PARTIAL_CONTENT,
            "{range}: {part:?}"
        );
        assert_eq!(
            part.must("content-range"),
            format!("bytes {start}-{end}/{n}"),
            "{range}"
        );
        assert_eq!(
            part.size,
            BodySize::Sized((end - start + 1) as u64),
            "{range}"
        );
        assert_eq!(&part.body[..], &file[start..=end], "{range}");
        assert_eq!(part.must("content-type"), "audio/mpeg");
        assert_eq!(part.must("etag"), etag, "{range}");
    }

    for range in ["bytes=6032-", "bytes=99999-100000", "bytes=-0"] {
        let refused = client.get(media, bearer, &[("Range", range)]).await;
        refused.assert_problem(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            range,
        );
        assert_eq!(
            refused.must("content-range"),
            format!("bytes */{n}"),
            "{range}"
        );
    }

    for range in [
        "bytes=abc",
        "bytes=5-1",
        "items=0-1",
        "bytes=0-1,5-9",
        "bytes=",
    ] {
        let all = client.get(media, bearer, &[("Range", range)]).await;
        assert_eq!(all.status, StatusCode::OK, "{range}: {all:?}");
        assert!(all.header("content-range").is_none(), "{range}");
        assert_eq!(&all.body[..], &file[..], "{range}");
    }

    let unchanged = client.get(media, bearer, &[("If-None-Match", &etag)]).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED, "{unchanged:?}");
    assert!(unchanged.body.is_empty());
    assert_eq!(unchanged.must("etag"), etag);
    let listed = format!("\"nope\", {etag}");
    let unchanged = client
        .get(media, bearer, &[("If-None-Match", &listed)])
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    // Weak comparison, `*`, and If-None-Match before Range (RFC 9110 13.2.2).
    let weak = format!("W/{etag}");
    for headers in [
        vec![("If-None-Match", weak.as_str())],
        vec![("If-None-Match", "*")],
        vec![("If-None-Match", etag.as_str()), ("Range", "bytes=0-99")],
    ] {
        let answer = client.get(media, bearer, &headers).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_MODIFIED,
            "{headers:?}: {answer:?}"
        );
        assert!(answer.body.is_empty(), "{headers:?}");
    }
    let changed = client
        .get(media, bearer, &[("If-None-Match", "\"something-else\"")])
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(&changed.body[..], &file[..]);

    let stale = client
        .get(
            media,
            bearer,
            &[("Range", "bytes=0-99"), ("If-Range", "\"an-old-version\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::OK, "{stale:?}");
    assert!(stale.header("content-range").is_none());
    assert_eq!(&stale.body[..], &file[..]);
    let current = client
        .get(
            media,
            bearer,
            &[("Range", "bytes=0-99"), ("If-Range", &etag)],
        )
        .await;
    assert_eq!(current.status, StatusCode::PARTIAL_CONTENT, "{current:?}");
    assert_eq!(&current.body[..], &file[..100]);
    // If-Range decides before the range is even looked at: a copy of another version gets the
    // whole current one, even when its range lies past the current end (RFC 9110 13.1.5).
    let past_end = client
        .get(
            media,
            bearer,
            &[
                ("Range", "bytes=99999-"),
                ("If-Range", "\"an-old-version\""),
            ],
        )
        .await;
    assert_eq!(past_end.status, StatusCode::OK, "{past_end:?}");
    assert_eq!(&past_end.body[..], &file[..]);
    let past_end = client
        .get(
            media,
            bearer,
            &[("Range", "bytes=99999-"), ("If-Range", &etag)],
        )
        .await;
    past_end.assert_problem(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        "If-Range matches, range past the end",
    );
    let dated = client
        .get(
            media,
            bearer,
            &[
                ("Range", "bytes=0-99"),
                ("If-Range", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ],
        )
        .await;
    assert_eq!(
        dated.status,
        StatusCode::OK,
        "a date that is not Last-Modified"
    );
    assert_eq!(&dated.body[..], &file[..]);

    // HEAD: the GET's status and headers, no body.
    let asset = "/api/v1/books/1/assets/images/M1/p2s1.png";
    for (uri, headers, status) in [
        (media, vec![], StatusCode::OK),
        (
            media,
            vec![("Range", "bytes=0-99")],
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            media,
            vec![("Range", "bytes=6032-")],
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
        (
            media,
            vec![("If-None-Match", etag.as_str())],
            StatusCode::NOT_MODIFIED,
        ),
        (asset, vec![], StatusCode::OK),
        (
            "/api/v1/books/1/assets/images/none.png",
            vec![],
            StatusCode::NOT_FOUND,
        ),
    ] {
        let get = client.get(uri, bearer, &headers).await;
        let head = client.call(Method::HEAD, uri, bearer, &headers).await;
        assert_eq!(get.status, status, "GET {uri} {headers:?}");
        assert_eq!(head.status, status, "HEAD {uri} {headers:?}");
        assert!(head.body.is_empty(), "HEAD {uri} sent a body");
        assert_eq!(head.size, get.size, "HEAD {uri}: the GET's length");
        for name in [
            "content-type",
            "content-range",
            "accept-ranges",
            "etag",
            "cache-control",
            "x-content-type-options",
            "last-modified",
        ] {
            assert_eq!(head.header(name), get.header(name), "HEAD {uri}: {name}");
        }
    }

    // The asset route: the right type, the bytes, and ranges there too.
    let image = client.get(asset, bearer, &[]).await;
    assert_eq!(image.status, StatusCode::OK);
    assert_eq!(image.must("content-type"), "image/png");
    assert_eq!(&image.body[..], &sample_file("images/M1/p2s1.png")[..]);
    let part = client.get(asset, bearer, &[("Range", "bytes=-8")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.must("content-range"), "bytes 2587-2594/2595");
    let json_asset = client
        .get("/api/v1/books/1/assets/config.json", bearer, &[])
        .await;
    assert_eq!(json_asset.status, StatusCode::OK);
    assert_eq!(json_asset.must("content-type"), "application/json");

    for uri in [
        "/api/v1/books/1/media/audio/99.mp3",
        "/api/v1/books/1/assets/images/nope.png",
        "/api/v1/books/999/media/audio/01.mp3",
    ] {
        client
            .get(uri, bearer, &[])
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found", uri);
    }
    client.get(media, None, &[]).await.assert_problem(
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
        "no token",
    );
    client.assert_no_secrets(&[TEST_JWT_SECRET]);
}
on_both_databases!(media_and_assets_stream_with_ranges);

// ----- 5. who sees what ------------------------------------------------------------------------

/// Who, their token, and per book whether they may read it.
type Expectations<'a> = (&'a str, &'a str, Vec<(i64, bool)>);

fn small_book(publisher: &str, name: &str, status: BookStatus) -> NewBook {
    let config = json!({
        "publisher_name": publisher,
        "book_title": format!("{name} title"),
        "language": "en",
        "books": [{
            "name": name,
            "modules": [{
                "name": "Module 1",
                "pages": [{
                    "page_number": 1,
                    "image_path": format!("./books/{name}/images/p1.png"),
                    "sections": [{
                        "activity": {
                            "type": "circle",
                            "headerText": "Circle the right word.",
                            "section_path": format!("./books/{name}/images/p1.png"),
                        }
                    }]
                }]
            }]
        }]
    });
    NewBook::new(publisher, name)
        .status(status)
        .file("config.json", serde_json::to_vec(&config).unwrap())
        .file("images/p1.png", sample_file("images/M1/p2s1.png"))
}

async fn access_follows_role_status_and_publisher(db: TestDatabase) {
    let f = fixture(&db).await;
    let archived = f
        .dcs
        .add_book(small_book("Dream Press", "ARCHIVED", BookStatus::Archived))
        .expect("archived book");
    let draft = f
        .dcs
        .add_book(small_book("Dream Press", "DRAFTBOOK", BookStatus::Draft))
        .expect("draft book");
    let other = f
        .dcs
        .add_book(small_book(
            "Other House",
            "OTHERBOOK",
            BookStatus::Published,
        ))
        .expect("another publisher's book");
    assert_eq!(archived.publisher_id, 1);
    assert_ne!(other.publisher_id, 1);
    let client = app_client(&f.state).await;

    let admin = token(Role::Admin);
    let supervisor = token(Role::Supervisor);
    let teacher = token(Role::Teacher);
    let student = token(Role::Student);
    let own_publisher = publisher_token(1);
    let other_publisher = publisher_token(other.publisher_id);
    let unbound_publisher = token(Role::Publisher);

    // Activity ids of every book, through an admin.
    let mut first_activity = std::collections::HashMap::new();
    for book in [1, archived.id, draft.id, other.id] {
        let rows = activity_rows(&client, book, &admin).await;
        assert!(!rows.is_empty(), "book {book}");
        first_activity.insert(book, rows[0].0);
    }

    let asset_of = |book: i64| {
        if book == 1 {
            "images/M1/p2s1.png"
        } else {
            "images/p1.png"
        }
    };
    let cases: Vec<Expectations> = vec![
        (
            "admin",
            &admin,
            vec![
                (1, true),
                (archived.id, true),
                (draft.id, true),
                (other.id, true),
            ],
        ),
        (
            "supervisor",
            &supervisor,
            vec![
                (1, true),
                (archived.id, true),
                (draft.id, true),
                (other.id, true),
            ],
        ),
        (
            "teacher",
            &teacher,
            vec![
                (1, true),
                (archived.id, false),
                (draft.id, false),
                (other.id, true),
            ],
        ),
        (
            "student",
            &student,
            vec![
                (1, true),
                (archived.id, false),
                (draft.id, false),
                (other.id, true),
            ],
        ),
        (
            "publisher 1",
            &own_publisher,
            vec![
                (1, true),
                (archived.id, true),
                (draft.id, true),
                (other.id, false),
            ],
        ),
        (
            "the other publisher",
            &other_publisher,
            vec![
                (1, false),
                (archived.id, false),
                (draft.id, false),
                (other.id, true),
            ],
        ),
        (
            "a publisher token without a publisher",
            &unbound_publisher,
            vec![(1, false), (other.id, false)],
        ),
    ];
    for (who, bearer, books) in &cases {
        for (book, allowed) in books {
            let activity = first_activity[book];
            for uri in [
                format!("/api/v1/books/{book}/config"),
                format!("/api/v1/books/{book}/activities"),
                format!("/api/v1/activities/{activity}/start"),
                format!("/api/v1/books/{book}/assets/{}", asset_of(*book)),
                format!(
                    "/api/v1/books/{book}/assets/presigned?path={}",
                    asset_of(*book)
                ),
            ] {
                let answer = client.get(&uri, Some(bearer), &[]).await;
                if *allowed {
                    assert_eq!(answer.status, StatusCode::OK, "{who} {uri}: {answer:?}");
                } else {
                    let body = answer.assert_problem(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        &format!("{who} {uri}"),
                    );
                    // Not found, like a book that does not exist: nothing about the book leaks.
                    let text = body.to_string();
                    assert!(
                        !text.contains("archived") && !text.contains("draft"),
                        "{text}"
                    );
                }
            }
        }
    }

    // The archived book's config is transformed for those who may see it.
    let config = client
        .get_json(
            &format!("/api/v1/books/{}/config", archived.id),
            &own_publisher,
        )
        .await;
    let image = config["books"][0]["modules"][0]["pages"][0]["image_path"]
        .as_str()
        .expect("URL");
    assert!(
        image.starts_with(&format!(
            "{PUBLIC}/api/v1/books/{}/assets/images/p1.png?",
            archived.id
        )),
        "{image}"
    );
    // Its signed URL works for whoever holds it (like a presigned S3 URL).
    let fetched = client.get(&local(image, PUBLIC), None, &[]).await;
    assert_eq!(fetched.status, StatusCode::OK);

    for uri in [
        "/api/v1/books/1/config".to_owned(),
        "/api/v1/books/1/activities".to_owned(),
        format!("/api/v1/activities/{}/start", first_activity[&1]),
        "/api/v1/books/1/assets/images/M1/p2s1.png".to_owned(),
        "/api/v1/books/1/media/audio/01.mp3".to_owned(),
        "/api/v1/books/1/assets/presigned?path=images/M1/p2s1.png".to_owned(),
    ] {
        client.get(&uri, None, &[]).await.assert_problem(
            StatusCode::UNAUTHORIZED,
            "not_authenticated",
            &uri,
        );
        client
            .get(&uri, Some("not-a-token"), &[])
            .await
            .assert_problem(StatusCode::UNAUTHORIZED, "invalid_token", &uri);
    }
    client.assert_no_secrets(&[TEST_JWT_SECRET]);
}
on_both_databases!(access_follows_role_status_and_publisher);

// ----- 6. DCS down -----------------------------------------------------------------------------

async fn dcs_outages_are_served_from_cache_or_answered_503(db: TestDatabase) {
    let f = fixture(&db).await;
    let client = app_client(&f.state).await;
    let teacher = token(Role::Teacher);

    let config = client.get_json("/api/v1/books/1/config", &teacher).await;
    let rows = activity_rows(&client, 1, &teacher).await;
    let start_uri = format!("/api/v1/activities/{}/start", rows[0].0);
    let started = client.get_json(&start_uri, &teacher).await;
    // Only the record of book 2 is cached, not its config.
    let second = f
        .dcs
        .add_book(small_book("Dream Press", "SECOND", BookStatus::Published))
        .expect("second book");
    client
        .get_json(&format!("/api/v1/books/{}", second.id), &teacher)
        .await;

    f.dcs.inject("/", Fault::Status(503), None);
    let before = f.dcs.request_count("/");

    // Cached and fresh: no DCS call at all.
    let cached = client
        .get("/api/v1/books/1/config", Some(&teacher), &[])
        .await;
    assert_eq!(cached.status, StatusCode::OK, "{cached:?}");
    assert_eq!(cached.must("x-cache"), "HIT");
    let cached = cached.json();
    assert_eq!(cached["book_title"], config["book_title"]);
    let again = client.get_json(&start_uri, &teacher).await;
    assert_eq!(again["activity"], started["activity"]);
    assert_eq!(activity_rows(&client, 1, &teacher).await, rows);
    assert_eq!(f.dcs.request_count("/"), before, "answered from the cache");

    // Expired but within the staleness limit: served stale, still no 5xx.
    f.clock.advance(Duration::from_secs(2000));
    let stale = client
        .get("/api/v1/books/1/config", Some(&teacher), &[])
        .await;
    assert_eq!(stale.status, StatusCode::OK, "{stale:?}");
    assert_eq!(stale.must("x-cache"), "STALE");
    let again = client.get(&start_uri, Some(&teacher), &[]).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    let mut texts = Vec::new();
    strings(&again.json()["config"], &mut texts);
    assert!(
        texts
            .iter()
            .any(|s| s.contains("/assets/images/M1/p2s1.png?expires="))
    );
    assert!(f.dcs.request_count("/") > before, "DCS was asked again");

    // Nothing cached: 503 with the friendly message and Retry-After, never a 500.
    let unavailable = "Content storage temporarily unavailable. Please try again.";
    for uri in [
        format!("/api/v1/books/{}/config", second.id),
        format!("/api/v1/books/{}/activities", second.id),
        "/api/v1/books/424242/config".to_owned(),
        "/api/v1/books/424242/activities".to_owned(),
        "/api/v1/books/424242/assets/presigned?path=x.png".to_owned(),
        "/api/v1/books/1/media/audio/01.mp3".to_owned(),
        "/api/v1/books/1/assets/images/M1/p2s1.png".to_owned(),
    ] {
        let answer = client.get(&uri, Some(&teacher), &[]).await;
        let body = answer.assert_problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "content_storage_unavailable",
            &uri,
        );
        assert_eq!(body["detail"], unavailable, "{uri}");
        let retry: u64 = answer
            .must("retry-after")
            .parse()
            .unwrap_or_else(|_| panic!("{uri}: Retry-After"));
        assert!(retry > 0, "{uri}");
    }
    let admin = token(Role::Admin);
    let import = client
        .call(
            Method::POST,
            "/api/v1/admin/books/1/activities/import",
            Some(&admin),
            &[],
        )
        .await;
    import.assert_problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "content_storage_unavailable",
        "import while DCS is down",
    );
    assert!(import.header("retry-after").is_some());
    // The stored activities are untouched by the failed import.
    assert_eq!(activity_rows(&client, 1, &admin).await, rows);

    // DCS gone altogether (connection refused): the same answers.
    f.dcs.shutdown().await;
    let answer = client
        .get(
            &format!("/api/v1/books/{}/config", second.id),
            Some(&teacher),
            &[],
        )
        .await;
    answer.assert_problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "content_storage_unavailable",
        "DCS stopped",
    );
    assert!(answer.header("retry-after").is_some());
    let still = client.get(&start_uri, Some(&teacher), &[]).await;
    assert_eq!(still.status, StatusCode::OK, "{still:?}");
    client.assert_no_secrets(&[TEST_JWT_SECRET]);
}
on_both_databases!(dcs_outages_are_served_from_cache_or_answered_503);

// ----- 7. webhooks keep activities in step -----------------------------------------------------

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Replaces the book's config.json in the fake DCS's folder. The fake DCS keeps the size it
/// saw at start and reads the bytes on each request, so the new config is padded with spaces
/// to that size (JSON ignores them).
fn rewrite_config(config_path: &Path, config: &Value) {
    let size = std::fs::metadata(config_path).expect("config size").len() as usize;
    let mut bytes = serde_json::to_vec(config).expect("serialise");
    assert!(bytes.len() <= size, "new config too long");
    bytes.resize(size, b' ');
    std::fs::write(config_path, bytes).expect("write config");
}

async fn webhooks_reimport_and_forget_activities(db: TestDatabase) {
    let books = tempfile::tempdir().expect("temp dir");
    copy_dir(Path::new(BOOK_DIR), &books.path().join("FLOWDEMO"));
    let config_path: PathBuf = books.path().join("FLOWDEMO/config.json");
    let dcs = MockDcs::start(MockConfig {
        books_dir: books.path().to_owned(),
        ..MockConfig::default()
    })
    .await
    .expect("fake DCS");
    let settings = settings_for(&db, dcs.base_url(), PUBLIC_URL);
    let client_dcs = fast_client(dcs_config(&settings));
    let state = state_with(
        settings,
        &db,
        client_dcs,
        Cache::new(CacheConfig::default()),
    );
    let client = app_client(&state).await;
    let teacher = token(Role::Teacher);

    let before = activity_rows(&client, 1, &teacher).await;
    assert_eq!(
        before.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
        ["dragdroppicture", "matchTheWords"]
    );
    let config = client.get_json("/api/v1/books/1/config", &teacher).await;
    assert_eq!(
        config["books"][0]["modules"][0]["pages"][2]["sections"][1]["activity"]["headerText"],
        "Read and match."
    );

    // DCS gets a new config: the matching activity reworded, a new one on page 1, the
    // drag-and-drop one unchanged.
    let mut changed = sample_config();
    let page3 = &mut changed["books"][0]["modules"][0]["pages"][2]["sections"][1]["activity"];
    page3["headerText"] = json!("Read and match the animals.");
    changed["books"][0]["modules"][0]["pages"][0]["sections"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "activity": {
                "type": "markwithx",
                "headerText": "Mark the pictures.",
                "section_path": "./books/FLOWDEMO/images/M1/p3match1_dog.png"
            }
        }));
    rewrite_config(&config_path, &changed);

    // Until DCS says so, nothing changes here.
    assert_eq!(activity_rows(&client, 1, &teacher).await, before);

    let body = book_delivery("book.updated", 1, "Flow Demo English 1");
    // DCS cannot serve the new config just then: the delivery is answered 503 so that DCS
    // sends it again, and nothing changes meanwhile.
    dcs.inject("/storage/", Fault::Status(503), None);
    let refused = client.send(signed_request(&body)).await;
    refused.assert_problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "webhook_follow_up_failed",
        "follow-up while DCS fails",
    );
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    // While the config cannot be read, reads serve the activities stored before.
    assert_eq!(activity_rows(&client, 1, &teacher).await, before);
    dcs.clear_faults();
    // The failed delivery still dropped the book's cached entries, so the next read imports
    // the new activities itself (DCS gives up after three attempts; a read must not depend
    // on one of them succeeding).
    let read_after_failure = activity_rows(&client, 1, &teacher).await;
    assert_eq!(read_after_failure.len(), 3, "{read_after_failure:?}");

    // DCS's retry of the same delivery goes through and keeps the ids.
    let delivered = client.send(signed_request(&body)).await;
    assert_eq!(delivered.status, StatusCode::OK, "{delivered:?}");
    assert_eq!(delivered.json()["status"], "received");

    let after = client
        .get_json("/api/v1/books/1/activities", &teacher)
        .await;
    let items = after["items"].as_array().unwrap();
    let summary: Vec<(i64, &str, i64)> = items
        .iter()
        .map(|a| {
            (
                a["id"].as_i64().unwrap(),
                a["type"].as_str().unwrap(),
                a["order"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary.len(), 3, "{after}");
    assert_eq!(summary[0].1, "markwithx");
    assert_eq!(summary[0].2, 1011);
    assert!(
        !before.iter().any(|(id, _)| *id == summary[0].0),
        "a new activity gets a new id"
    );
    assert_eq!(
        (summary[1].0, summary[1].1),
        (before[0].0, "dragdroppicture")
    );
    assert_eq!((summary[2].0, summary[2].1), (before[1].0, "matchTheWords"));
    assert_eq!(
        summary.iter().map(|s| s.0).collect::<Vec<_>>(),
        read_after_failure
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>()
    );
    assert_eq!(items[2]["header_text"], "Read and match the animals.");
    // The cached config was dropped too.
    let config = client.get_json("/api/v1/books/1/config", &teacher).await;
    assert_eq!(
        config["books"][0]["modules"][0]["pages"][2]["sections"][1]["activity"]["headerText"],
        "Read and match the animals."
    );
    let started = client
        .get_json(
            &format!("/api/v1/activities/{}/start", summary[0].0),
            &teacher,
        )
        .await;
    assert_eq!(started["activity"]["type"], "markwithx");

    // The same delivery again (DCS retries) changes nothing.
    let again = client.send(signed_request(&body)).await;
    assert_eq!(again.status, StatusCode::OK);
    let ids_after: Vec<i64> = summary.iter().map(|s| s.0).collect();
    assert_eq!(
        activity_rows(&client, 1, &teacher)
            .await
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        ids_after
    );

    // A broken config is reported, not half-imported: the activities stay.
    let mut broken = sample_config();
    broken["books"][0]["modules"] = json!("not a list of modules");
    rewrite_config(&config_path, &broken);
    let broken_delivery = book_delivery("book.updated", 1, "Flow Demo English 1");
    assert_eq!(
        client.send(signed_request(&broken_delivery)).await.status,
        StatusCode::OK
    );
    let admin = token(Role::Admin);
    let import = client
        .call(
            Method::POST,
            "/api/v1/admin/books/1/activities/import",
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(import.status, StatusCode::BAD_GATEWAY, "{import:?}");
    assert!(import.json()["detail"].is_string());
    let store = SqlActivityStore::new(db.db.clone());
    assert_eq!(
        store
            .list_for_book(1)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id.0)
            .collect::<Vec<_>>(),
        ids_after
    );

    // book.deleted removes them.
    dcs.delete_book(1).expect("archive the book in DCS");
    let deleted = book_delivery("book.deleted", 1, "Flow Demo English 1");
    let answer = client.send(signed_request(&deleted)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(store.list_for_book(1).await.unwrap().is_empty());
    client
        .get(
            &format!("/api/v1/activities/{}/start", ids_after[0]),
            Some(&teacher),
            &[],
        )
        .await
        .assert_problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "a deleted book's activity",
        );
    client.assert_no_secrets(&[TEST_JWT_SECRET, RECORDED_SECRET]);
}
on_both_databases!(webhooks_reimport_and_forget_activities);

// ----- 8. the filesystem backend's signed files route -----------------------------------------

async fn signed_files_route_serves_fs_objects(db: TestDatabase) {
    let f = fixture(&db).await;
    let client = app_client(&f.state).await;
    let storage = &f.state.services.storage;
    let key = format!("tests/{}/notes on Ünit 1.txt", uuid::Uuid::new_v4());
    let text = b"Hello from the filesystem store. 0123456789".to_vec();
    storage
        .content
        .put(
            &key,
            bytes_body(text.clone()),
            PutOptions::default().content_type("text/plain"),
        )
        .await
        .expect("put");

    let url = storage
        .content
        .presign_get(&key, &PresignOptions::default())
        .expect("presign");
    let bucket = storage.content.bucket().to_owned();
    assert!(
        url.starts_with(&format!("{PUBLIC}/files/{bucket}/tests/")),
        "{url}"
    );
    let (path, query) = local(&url, PUBLIC)
        .split_once('?')
        .map(|(p, q)| (p.to_owned(), q.to_owned()))
        .expect("query");
    assert!(path.contains("notes%20on%20"), "{path}");

    // No bearer token needed: the signature is the credential.
    let whole = client.get(&format!("{path}?{query}"), None, &[]).await;
    assert_eq!(whole.status, StatusCode::OK, "{whole:?}");
    assert_eq!(&whole.body[..], &text[..]);
    assert_eq!(whole.must("content-type"), "text/plain");
    assert_eq!(whole.must("accept-ranges"), "bytes");
    assert_eq!(whole.must("x-content-type-options"), "nosniff");
    let etag = whole.must("etag").to_owned();

    let part = client
        .get(&format!("{path}?{query}"), None, &[("Range", "bytes=6-9")])
        .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{part:?}");
    assert_eq!(
        part.must("content-range"),
        format!("bytes 6-9/{}", text.len())
    );
    assert_eq!(&part.body[..], &text[6..=9]);
    let refused = client
        .get(
            &format!("{path}?{query}"),
            None,
            &[("Range", "bytes=1000-")],
        )
        .await;
    refused.assert_problem(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        "past the end",
    );
    assert_eq!(
        refused.must("content-range"),
        format!("bytes */{}", text.len())
    );
    let cached = client
        .get(
            &format!("{path}?{query}"),
            None,
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    for (range, if_range, status) in [
        ("bytes=6-9", "\"an-old-version\"", StatusCode::OK),
        ("bytes=6-9", etag.as_str(), StatusCode::PARTIAL_CONTENT),
        ("bytes=1000-", "\"an-old-version\"", StatusCode::OK),
        (
            "bytes=1000-",
            etag.as_str(),
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
    ] {
        let answer = client
            .get(
                &format!("{path}?{query}"),
                None,
                &[("Range", range), ("If-Range", if_range)],
            )
            .await;
        assert_eq!(
            answer.status, status,
            "{range} If-Range {if_range}: {answer:?}"
        );
        if status == StatusCode::OK {
            assert_eq!(&answer.body[..], &text[..]);
            assert!(answer.header("content-range").is_none());
        }
    }
    let head = client
        .call(Method::HEAD, &format!("{path}?{query}"), None, &[])
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.size, whole.size);

    // Response overrides are signed too.
    let attachment = storage
        .content
        .presign_get(
            &key,
            &PresignOptions {
                response_content_type: Some("application/octet-stream".into()),
                response_content_disposition: Some("attachment; filename=\"notes.txt\"".into()),
            },
        )
        .expect("presign with overrides");
    let download = client.get(&local(&attachment, PUBLIC), None, &[]).await;
    assert_eq!(download.status, StatusCode::OK, "{download:?}");
    assert_eq!(download.must("content-type"), "application/octet-stream");
    assert_eq!(
        download.must("content-disposition"),
        "attachment; filename=\"notes.txt\""
    );
    let swapped = local(&attachment, PUBLIC).replace("octet-stream", "javascript");
    client.get(&swapped, None, &[]).await.assert_problem(
        StatusCode::FORBIDDEN,
        "forbidden",
        "changed type override",
    );

    // Tampering.
    let other_key = path.replace("notes%20on%20", "other%20");
    for (what, uri) in [
        (
            "changed signature",
            flip_last_hex(&format!("{path}?{query}")),
        ),
        ("another key", format!("{other_key}?{query}")),
        (
            "another bucket",
            format!(
                "{}?{query}",
                path.replacen(&format!("/files/{bucket}/"), "/files/teachers/", 1)
            ),
        ),
        (
            "no signature",
            format!("{path}?{}", query.split("&signature=").next().unwrap()),
        ),
        ("no query", path.clone()),
    ] {
        let answer = client.get(&uri, None, &[]).await;
        answer.assert_problem(StatusCode::FORBIDDEN, "forbidden", what);
        assert!(answer.body.len() < 400, "{what}");
    }

    // A valid URL for an object that is not there.
    let missing = storage
        .content
        .presign_get("tests/never-stored.txt", &PresignOptions::default())
        .expect("presign");
    client
        .get(&local(&missing, PUBLIC), None, &[])
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found", "missing object");

    // The teachers' bucket is served the same way.
    let teachers_key = format!("tests/{}/sheet.pdf", uuid::Uuid::new_v4());
    storage
        .teachers
        .put(
            &teachers_key,
            bytes_body(b"%PDF-1.4 tiny".to_vec()),
            PutOptions::default(),
        )
        .await
        .expect("put teacher file");
    let url = storage
        .teachers
        .presign_get(&teachers_key, &PresignOptions::default())
        .expect("presign");
    let sheet = client.get(&local(&url, PUBLIC), None, &[]).await;
    assert_eq!(sheet.status, StatusCode::OK, "{sheet:?}");
    assert_eq!(sheet.must("content-type"), "application/pdf");
    assert_eq!(&sheet.body[..], b"%PDF-1.4 tiny");
    client.assert_no_secrets(&[TEST_JWT_SECRET]);
}
on_both_databases!(signed_files_route_serves_fs_objects);

// ----- 9. secrets ------------------------------------------------------------------------------

const DCS_PASSWORD: &str = "dcs-password-that-must-never-leak-42";

/// Every content route, their errors and a DCS that refuses our login: no response carries the
/// JWT secret or the DCS password (nor the webhook secret).
async fn no_response_carries_a_secret(db: TestDatabase) {
    let dcs = MockDcs::start(MockConfig {
        admin_password: DCS_PASSWORD.to_owned(),
        ..MockConfig::default()
    })
    .await
    .expect("fake DCS");
    let build = |password: &str| {
        let settings = settings_from(&[
            ("LMS_JWT_SECRET", TEST_JWT_SECRET),
            ("DATABASE_URL", &db.url),
            ("DREAM_CENTRAL_STORAGE_URL", dcs.base_url()),
            ("DREAM_CENTRAL_STORAGE_PASSWORD", password),
            ("DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET", RECORDED_SECRET),
        ])
        .expect("settings");
        let client = fast_client(dcs_config(&settings));
        state_with(settings, &db, client, Cache::new(CacheConfig::default()))
    };
    let state = build(DCS_PASSWORD);
    let client = app_client(&state).await;
    let teacher = token(Role::Teacher);
    let admin = token(Role::Admin);

    let config = client.get_json("/api/v1/books/1/config", &teacher).await;
    let mut urls = Vec::new();
    strings(&config, &mut urls);
    urls.retain(|s| s.starts_with(PUBLIC));
    assert!(urls.len() >= 12);
    for url in &urls {
        let answer = client.get(&local(url, PUBLIC), None, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}");
        client
            .get(&flip_last_hex(&local(url, PUBLIC)), None, &[])
            .await
            .assert_problem(StatusCode::FORBIDDEN, "forbidden", url);
    }
    let rows = activity_rows(&client, 1, &teacher).await;
    for (id, _) in &rows {
        client
            .get_json(&format!("/api/v1/activities/{id}/start"), &teacher)
            .await;
    }
    for (method, uri, bearer, headers) in [
        (
            Method::GET,
            "/api/v1/books/1/assets/presigned?path=images/M1/p2s1.png",
            Some(&teacher),
            vec![],
        ),
        (
            Method::GET,
            "/api/v1/books/1/assets/presigned?path=../x",
            Some(&teacher),
            vec![],
        ),
        (
            Method::GET,
            "/api/v1/books/1/media/audio/01.mp3",
            Some(&teacher),
            vec![("Range", "bytes=0-9")],
        ),
        (
            Method::GET,
            "/api/v1/books/1/media/audio/01.mp3",
            Some(&teacher),
            vec![("Range", "bytes=9999-")],
        ),
        (
            Method::HEAD,
            "/api/v1/books/1/media/audio/01.mp3",
            Some(&teacher),
            vec![],
        ),
        (
            Method::GET,
            "/api/v1/books/1/media/audio/missing.mp3",
            Some(&teacher),
            vec![],
        ),
        (Method::GET, "/api/v1/books/1/config", None, vec![]),
        (
            Method::POST,
            "/api/v1/admin/books/1/activities/import",
            Some(&admin),
            vec![],
        ),
        (
            Method::POST,
            "/api/v1/admin/books/1/activities/import",
            Some(&teacher),
            vec![],
        ),
        (
            Method::GET,
            "/api/v1/activities/123456/start",
            Some(&teacher),
            vec![],
        ),
        (
            Method::GET,
            "/api/v1/books/1/assets/x.png?expires=1&signature=00",
            None,
            vec![],
        ),
        (
            Method::GET,
            "/files/publishers/x.png?expires=1&signature=00",
            None,
            vec![],
        ),
    ] {
        let answer = client
            .call(method.clone(), uri, bearer.map(String::as_str), &headers)
            .await;
        assert!(answer.status.as_u16() < 500, "{method} {uri}: {answer:?}");
    }
    // A webhook for the book goes through too.
    let delivered = client
        .send(signed_request(&book_delivery(
            "book.updated",
            1,
            "Flow Demo English 1",
        )))
        .await;
    assert_eq!(delivered.status, StatusCode::OK);

    // DCS down, and DCS refusing our password.
    dcs.inject("/", Fault::Status(503), None);
    let down = client
        .get("/api/v1/books/1/config", Some(&teacher), &[])
        .await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE, "{down:?}");
    dcs.clear_faults();
    let wrong = build("a-wrong-password-for-the-dcs-login");
    let wrong_client = app_client(&wrong).await;
    let refused = wrong_client
        .get("/api/v1/books/1/config", Some(&teacher), &[])
        .await;
    assert!(refused.status.is_server_error(), "{refused:?}");
    assert_ne!(
        refused.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{refused:?}"
    );
    let metrics = wrong_client.get("/metrics", None, &[]).await;
    assert_eq!(metrics.status, StatusCode::OK);

    client.assert_no_secrets(&[TEST_JWT_SECRET, DCS_PASSWORD, RECORDED_SECRET]);
    wrong_client.assert_no_secrets(&[
        TEST_JWT_SECRET,
        DCS_PASSWORD,
        "a-wrong-password-for-the-dcs-login",
    ]);
}
on_both_databases!(no_response_carries_a_secret);

// ----- 10. unusual names and paths -------------------------------------------------------------

/// Spaces, non-ASCII, `%`, backslashes and bare `books/...` paths become URLs that fetch the
/// right bytes; paths leaving the book become `null`; prose with slashes and dots stays.
async fn unusual_asset_names_and_paths(db: TestDatabase) {
    let f = fixture(&db).await;
    let png = sample_file("images/M1/p3match1_cat.png");
    let jpeg_like = sample_file("images/M1/p3match1_dog.png");
    let mp3 = sample_file("audio/01.mp3");
    let cover = sample_file("images/book_cover.png");
    let config = json!({
        "publisher_name": "Dream Press",
        "book_title": "Weird paths",
        "book_cover": "./books/WEIRD/images/my pic.png",
        "books": [{
            "name": "WEIRD",
            "modules": [{
                "name": "Module 1",
                "pages": [{
                    "page_number": 1,
                    "image_path": "books/WEIRD/images/Ünit 1/ç.png",
                    "sections": [
                        {"type": "audio", "audio_path": ".\\books\\WEIRD\\audio\\track 1.mp3"},
                        {"type": "video", "video_path": "./books/OTHER/video/x.mp4"},
                        {"activity": {
                            "type": "puzzleFindWords",
                            "headerText": "and/or Mr. Smith 3.5",
                            "section_path": "../../secret.png",
                            "picture": "./books/WEIRD/images/100% juice.png",
                            "words": ["a/b", "./x", "books"]
                        }}
                    ]
                }]
            }]
        }]
    });
    let book = f
        .dcs
        .add_book(
            NewBook::new("Dream Press", "WEIRD")
                .file("config.json", serde_json::to_vec(&config).unwrap())
                .file("images/my pic.png", cover.clone())
                .file("images/Ünit 1/ç.png", png.clone())
                .file("images/100% juice.png", jpeg_like.clone())
                .file("audio/track 1.mp3", mp3.clone()),
        )
        .expect("book with unusual names");
    let id = book.id;
    let client = app_client(&f.state).await;
    let teacher = token(Role::Teacher);

    let out = client
        .get_json(&format!("/api/v1/books/{id}/config"), &teacher)
        .await;
    let page = &out["books"][0]["modules"][0]["pages"][0];
    let activity = &page["sections"][2]["activity"];
    let base = format!("{PUBLIC}/api/v1/books/{id}");
    for (value, expected_prefix, bytes) in [
        (
            &out["book_cover"],
            format!("{base}/assets/images/my%20pic.png?expires="),
            &cover,
        ),
        (
            &page["image_path"],
            format!("{base}/assets/images/%C3%9Cnit%201/%C3%A7.png?expires="),
            &png,
        ),
        (
            &page["sections"][0]["audio_path"],
            format!("{base}/media/audio/track%201.mp3?expires="),
            &mp3,
        ),
        (
            &activity["picture"],
            format!("{base}/assets/images/100%25%20juice.png?expires="),
            &jpeg_like,
        ),
    ] {
        let url = value
            .as_str()
            .unwrap_or_else(|| panic!("not a URL: {value}"));
        assert!(url.starts_with(&expected_prefix), "{url}");
        let fetched = client.get(&local(url, PUBLIC), None, &[]).await;
        assert_eq!(fetched.status, StatusCode::OK, "{url}: {fetched:?}");
        assert_eq!(&fetched.body[..], &bytes[..], "{url}");
        let part = client
            .get(&local(url, PUBLIC), None, &[("Range", "bytes=1-3")])
            .await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{url}");
        assert_eq!(&part.body[..], &bytes[1..=3], "{url}");
    }
    // Out of the book: left out, the rest still served.
    assert_eq!(page["sections"][1]["video_path"], Value::Null);
    assert_eq!(activity["section_path"], Value::Null);
    assert_eq!(activity["headerText"], "and/or Mr. Smith 3.5");
    assert_eq!(activity["words"], json!(["a/b", "./x", "books"]));
    assert_eq!(out["book_title"], "Weird paths");

    // The activity starts with the same rules applied.
    let rows = activity_rows(&client, id, &teacher).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "puzzleFindWords");
    let started = client
        .get_json(&format!("/api/v1/activities/{}/start", rows[0].0), &teacher)
        .await;
    let mut texts = Vec::new();
    strings(&started["config"], &mut texts);
    assert!(
        texts
            .iter()
            .any(|s| s.starts_with(&format!("{base}/assets/images/100%25%20juice.png?"))),
        "{}",
        started["config"]
    );
    assert!(
        !texts.iter().any(|s| s.contains("secret.png")),
        "{}",
        started["config"]
    );

    // With a bearer token, raw and encoded spellings reach the same object.
    for uri in [
        format!("/api/v1/books/{id}/assets/images/%C3%9Cnit%201/%C3%A7.png"),
        format!("/api/v1/books/{id}/assets/images%2F%C3%9Cnit%201%2F%C3%A7.png"),
        format!("/api/v1/books/{id}/assets/books/WEIRD/images/%C3%9Cnit%201/%C3%A7.png"),
    ] {
        let fetched = client.get(&uri, Some(&teacher), &[]).await;
        assert_eq!(fetched.status, StatusCode::OK, "{uri}: {fetched:?}");
        assert_eq!(&fetched.body[..], &png[..], "{uri}");
        assert_eq!(fetched.must("content-type"), "image/png");
    }
    let link = client
        .get_json(
            &format!(
                "/api/v1/books/{id}/assets/presigned?path=.%2Fbooks%2FWEIRD%2Fimages%2Fmy%20pic.png"
            ),
            &teacher,
        )
        .await;
    let url = link["url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!("{base}/assets/images/my%20pic.png?")),
        "{url}"
    );
    client.assert_no_secrets(&[TEST_JWT_SECRET]);
}
on_both_databases!(unusual_asset_names_and_paths);

// ----- 11. expired URLs ------------------------------------------------------------------------

/// The key the app derives from `LMS_JWT_SECRET` for one purpose (as `object_storage.rs`).
fn derived_key(purpose: &str) -> Vec<u8> {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(TEST_JWT_SECRET.as_bytes())
        .expect("any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// URLs signed with the app's own keys but two hours ago are refused with 403, on the asset,
/// media and files routes; the same signers "now" are accepted (so the key is the right one).
async fn expired_urls_are_refused(db: TestDatabase) {
    let f = fixture(&db).await;
    let client = app_client(&f.state).await;
    let window = storage::PresignWindow::new(3600, 2700).expect("window");
    let two_hours_ago = storage::ManualClock::new(now_unix() - 7200);

    let links = domain::signed_links::LinkSigner::new(
        &derived_key("lms-asset-links-v1"),
        window,
        two_hours_ago.clone(),
    );
    let files = storage::FsUrlSigner::new(
        &format!("{PUBLIC}/files"),
        secrecy::SecretSlice::from(derived_key("lms-files-urls-v1")),
        window,
        two_hours_ago.clone(),
    )
    .expect("files signer");
    let key = format!("tests/{}/old.txt", uuid::Uuid::new_v4());
    f.state
        .services
        .storage
        .content
        .put(
            &key,
            bytes_body(b"old news".to_vec()),
            PutOptions::default(),
        )
        .await
        .expect("put");
    let bucket = f.state.services.storage.content.bucket().to_owned();

    let urls = |signed_now: bool| {
        if signed_now {
            two_hours_ago.set(now_unix());
        } else {
            two_hours_ago.set(now_unix() - 7200);
        }
        [
            links
                .sign_url(&format!(
                    "{PUBLIC}/api/v1/books/1/assets/images/M1/p2s1.png"
                ))
                .expect("asset URL"),
            links
                .sign_url(&format!("{PUBLIC}/api/v1/books/1/media/audio/01.mp3"))
                .expect("media URL"),
            files.presign(&bucket, &key, &PresignOptions::default()),
        ]
    };
    for url in urls(false) {
        let answer = client.get(&local(&url, PUBLIC), None, &[]).await;
        let body = answer.assert_problem(StatusCode::FORBIDDEN, "forbidden", &url);
        assert!(
            body.to_string().contains("expired"),
            "{url}: says why: {body}"
        );
    }
    for url in urls(true) {
        let answer = client.get(&local(&url, PUBLIC), None, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}: {answer:?}");
    }
}
on_both_databases!(expired_urls_are_refused);

// ----- 12. missing and broken configs ----------------------------------------------------------

async fn missing_and_broken_configs_are_reported(db: TestDatabase) {
    let f = fixture(&db).await;
    let empty = f
        .dcs
        .add_book(NewBook::new("Dream Press", "NOCONFIG"))
        .expect("book without files");
    let odd = f
        .dcs
        .add_book(NewBook::new("Dream Press", "ODDCONFIG").file(
            "config.json",
            r#"{"books": "not a list", "book_title": "Odd"}"#,
        ))
        .expect("book whose config has an odd shape");
    let client = app_client(&f.state).await;
    let teacher = token(Role::Teacher);

    for uri in [
        format!("/api/v1/books/{}/config", empty.id),
        format!("/api/v1/books/{}/activities", empty.id),
    ] {
        client.get(&uri, Some(&teacher), &[]).await.assert_problem(
            StatusCode::NOT_FOUND,
            "not_found",
            &uri,
        );
    }
    for uri in [format!("/api/v1/books/{}/activities", odd.id)] {
        client.get(&uri, Some(&teacher), &[]).await.assert_problem(
            StatusCode::BAD_GATEWAY,
            "content_storage_error",
            &uri,
        );
    }
    // A config whose activities cannot be read is still served (its paths are transformed).
    let config = client
        .get_json(&format!("/api/v1/books/{}/config", odd.id), &teacher)
        .await;
    assert_eq!(config["book_title"], "Odd");
    let store = SqlActivityStore::new(db.db.clone());
    assert!(store.list_for_book(odd.id).await.unwrap().is_empty());
}
on_both_databases!(missing_and_broken_configs_are_reported);

// ----- 13. concurrent first reads --------------------------------------------------------------

/// Many readers open a book's activities at once before anyone imported them: every one gets
/// the same list, and the table holds one row per activity.
async fn concurrent_first_listings_agree(db: TestDatabase) {
    let f = fixture(&db).await;
    let client = app_client(&f.state).await;
    let teacher = token(Role::Teacher);
    let answers = futures_util::future::join_all(
        (0..6).map(|_| client.get("/api/v1/books/1/activities", Some(&teacher), &[])),
    )
    .await;
    let mut lists = Vec::new();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        lists.push(answer.json()["items"].clone());
    }
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "{lists:?}");
    let store = SqlActivityStore::new(db.db.clone());
    assert_eq!(store.list_for_book(1).await.unwrap().len(), 2);
}
on_both_databases!(concurrent_first_listings_agree);

// ----- 14. behind a reverse proxy with a path prefix -------------------------------------------

/// `LMS_PUBLIC_URL` with a path (`https://school.example/lms`): a reverse proxy strips the
/// prefix before the request reaches the app. Asset, media and files URLs handed out under
/// the prefix still work once it is stripped.
async fn urls_work_behind_a_prefix_stripping_proxy(db: TestDatabase) {
    let dcs = MockDcs::start(MockConfig::default())
        .await
        .expect("fake DCS");
    let origin = "http://school.example/lms";
    let settings = settings_from(&[
        ("LMS_JWT_SECRET", TEST_JWT_SECRET),
        ("DATABASE_URL", &db.url),
        ("DREAM_CENTRAL_STORAGE_URL", dcs.base_url()),
        ("LMS_PUBLIC_URL", origin),
    ])
    .expect("settings");
    let state = state_with(
        settings.clone(),
        &db,
        fast_client(dcs_config(&settings)),
        Cache::new(CacheConfig::default()),
    );
    let client = app_client(&state).await;
    let teacher = token(Role::Teacher);

    let config = client.get_json("/api/v1/books/1/config", &teacher).await;
    let mut urls = Vec::new();
    strings(&config, &mut urls);
    urls.retain(|s| s.starts_with("http"));
    assert_eq!(urls.len(), 12, "{urls:?}");
    for url in &urls {
        assert!(
            url.starts_with(&format!("{origin}/api/v1/books/1/")),
            "{url}"
        );
        let answer = client.get(&local(url, origin), None, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{url}: {answer:?}");
    }

    let key = format!("tests/{}/behind proxy.txt", uuid::Uuid::new_v4());
    state
        .services
        .storage
        .content
        .put(&key, bytes_body(b"proxied".to_vec()), PutOptions::default())
        .await
        .expect("put");
    let url = state
        .services
        .storage
        .content
        .presign_get(&key, &PresignOptions::default())
        .expect("presign");
    assert!(url.starts_with(&format!("{origin}/files/")), "{url}");
    let answer = client.get(&local(&url, origin), None, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{url}: {answer:?}");
    assert_eq!(&answer.body[..], b"proxied");
    // Still signed: a changed signature is refused there too.
    client
        .get(&flip_last_hex(&local(&url, origin)), None, &[])
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden", "changed signature");
}
on_both_databases!(urls_work_behind_a_prefix_stripping_proxy);

// ----- 15. webhooks: a new book, and a book archived --------------------------------------------

async fn webhooks_import_new_books_and_apply_status_changes(db: TestDatabase) {
    let crate::webhooks::Fixture { dcs, state } = crate::webhooks::fixture(&db).await;
    let client = app_client(&state).await;
    let teacher = token(Role::Teacher);
    let admin = token(Role::Admin);
    let store = SqlActivityStore::new(db.db.clone());

    // book.created: its activities are imported before anyone lists them.
    let created = dcs
        .add_book(small_book(
            "Dream Press",
            "FRESHBOOK",
            BookStatus::Published,
        ))
        .expect("new book");
    assert!(store.list_for_book(created.id).await.unwrap().is_empty());
    let delivered = client
        .send(signed_request(&book_delivery(
            "book.created",
            created.id,
            "FRESHBOOK title",
        )))
        .await;
    assert_eq!(delivered.status, StatusCode::OK, "{delivered:?}");
    let imported = store.list_for_book(created.id).await.unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].activity.activity_type, "circle");

    // The sample book is read (and cached) as published, then archived in DCS.
    let rows = activity_rows(&client, 1, &teacher).await;
    let start = format!("/api/v1/activities/{}/start", rows[0].0);
    client.get_json(&start, &teacher).await;
    dcs.update_book(
        1,
        dcs_mock::BookUpdate {
            status: Some(BookStatus::Archived),
            ..dcs_mock::BookUpdate::default()
        },
    )
    .expect("archive in DCS");
    // Until DCS says so, the cached record still says published.
    assert_eq!(
        client.get(&start, Some(&teacher), &[]).await.status,
        StatusCode::OK
    );
    let delivered = client
        .send(signed_request(&book_delivery(
            "book.updated",
            1,
            "Flow Demo English 1",
        )))
        .await;
    assert_eq!(delivered.status, StatusCode::OK);
    for uri in [
        start.clone(),
        "/api/v1/books/1/config".to_owned(),
        "/api/v1/books/1/activities".to_owned(),
        "/api/v1/books/1/media/audio/01.mp3".to_owned(),
    ] {
        client.get(&uri, Some(&teacher), &[]).await.assert_problem(
            StatusCode::NOT_FOUND,
            "not_found",
            &uri,
        );
        let answer = client.get(&uri, Some(&admin), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "admin {uri}: {answer:?}");
    }
    // The activities kept their ids through the re-import.
    assert_eq!(activity_rows(&client, 1, &admin).await, rows);
}
on_both_databases!(webhooks_import_new_books_and_apply_status_changes);

// ----- 16. HEAD over the wire ------------------------------------------------------------------

/// One raw HTTP/1.1 exchange (the server closes after it): the head as text, the body bytes.
fn raw_exchange(address: std::net::SocketAddr, request: &str) -> (String, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    (
        String::from_utf8_lossy(&answer[..end]).into_owned(),
        answer[end + 4..].to_vec(),
    )
}

fn wire_header(answer: &str, name: &str) -> Option<String> {
    answer.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// A real server: `HEAD` on a ranged media request sends the `GET`'s `Content-Length` and
/// `Content-Range` and no body bytes.
async fn head_on_media_over_the_wire(db: TestDatabase) {
    let f = fixture(&db).await;
    let state = f.state.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let server = actix_web::HttpServer::new(move || create_app(state.clone()))
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let teacher = token(Role::Teacher);
    let request = move |method: &str| {
        format!(
            "{method} /api/v1/books/1/media/audio/01.mp3 HTTP/1.1\r\nHost: test\r\n\
             Authorization: Bearer {teacher}\r\nRange: bytes=100-199\r\nConnection: close\r\n\r\n"
        )
    };
    let ((get, get_body), (head, head_body)) = actix_web::rt::task::spawn_blocking(move || {
        (
            raw_exchange(address, &request("GET")),
            raw_exchange(address, &request("HEAD")),
        )
    })
    .await
    .expect("requests");
    assert!(get.starts_with("HTTP/1.1 206"), "{get}");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert_eq!(wire_header(&get, "content-length").as_deref(), Some("100"));
    assert_eq!(wire_header(&head, "content-length").as_deref(), Some("100"));
    for name in ["content-range", "content-type", "etag", "accept-ranges"] {
        assert!(wire_header(&get, name).is_some(), "{name}");
        assert_eq!(wire_header(&head, name), wire_header(&get, name), "{name}");
    }
    let file = sample_file("audio/01.mp3");
    assert_eq!(get_body, &file[100..200]);
    assert!(head_body.is_empty(), "HEAD sent {} bytes", head_body.len());
    handle.stop(true).await;
}
on_both_databases!(head_on_media_over_the_wire);

// ----- 17. the documented interface ------------------------------------------------------------

#[actix_web::test]
async fn openapi_documents_the_content_routes() {
    let (_db, state) = crate::support::sqlite_app_state().await;
    let client = app_client(&state).await;
    let answer = client.get("/openapi.json", None, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let spec = answer.json();
    for (path, method) in [
        ("/api/v1/books/{id}/config", "get"),
        ("/api/v1/books/{id}/activities", "get"),
        ("/api/v1/activities/{id}/start", "get"),
        ("/api/v1/books/{id}/assets/presigned", "get"),
        ("/api/v1/books/{id}/assets/{path}", "get"),
        ("/api/v1/books/{id}/media/{path}", "get"),
        ("/api/v1/admin/books/{id}/activities/import", "post"),
        ("/files/{bucket}/{key}", "get"),
    ] {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} is not documented: {:?}",
            spec["paths"]
                .as_object()
                .map(|p| p.keys().cloned().collect::<Vec<_>>())
        );
    }
    let media = &spec["paths"]["/api/v1/books/{id}/media/{path}"]["get"]["responses"];
    for status in ["200", "206", "304", "416", "503"] {
        assert!(media[status].is_object(), "media route lacks {status}");
    }
}

/// A publisher's HTML or SVG must not run as a page on this API's origin: every asset answer
/// carries a sandboxing CSP, and types that render as pages are sent as downloads.
async fn publisher_files_cannot_run_as_pages(db: TestDatabase) {
    let f = fixture(&db).await;
    let book = f
        .dcs
        .add_book(
            small_book("Dream Press", "ACTIVEBOOK", BookStatus::Published)
                .file("evil.html", b"<script>alert(1)</script>".to_vec())
                .file(
                    "images/x.svg",
                    b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
                        .to_vec(),
                ),
        )
        .unwrap();
    let client = app_client(&f.state).await;
    let admin = token(Role::Admin);

    let html = client
        .get(
            &format!("/api/v1/books/{}/assets/evil.html", book.id),
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(html.status, StatusCode::OK, "{html:?}");
    assert_eq!(html.must("content-disposition"), "attachment");
    assert!(html.must("content-security-policy").contains("sandbox"));

    // SVG stays an image (books use it in <img>), but opened as a page it is sandboxed.
    let svg = client
        .get(
            &format!("/api/v1/books/{}/assets/images/x.svg", book.id),
            Some(&admin),
            &[],
        )
        .await;
    assert_eq!(svg.must("content-type"), "image/svg+xml");
    assert!(svg.header("content-disposition").is_none(), "{svg:?}");
    assert!(svg.must("content-security-policy").contains("sandbox"));

    // The same on the filesystem store's signed route, whatever the URL asks for.
    let store = &f.state.services.storage.teachers;
    store
        .put(
            "t/evil.html",
            storage::bytes_body(&b"<script>alert(1)</script>"[..]),
            storage::PutOptions::default(),
        )
        .await
        .unwrap();
    let url = store
        .presign_get(
            "t/evil.html",
            &storage::PresignOptions {
                response_content_type: None,
                response_content_disposition: Some("inline".to_owned()),
            },
        )
        .unwrap();
    let answer = client.get(&local(&url, PUBLIC), None, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.must("content-disposition"), "attachment");
    assert!(answer.must("content-security-policy").contains("sandbox"));
}
on_both_databases!(publisher_files_cannot_run_as_pages);
