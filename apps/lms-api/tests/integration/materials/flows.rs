//! The whole life of materials: upload (scanned), list, read, download, stream, edit, delete.

use actix_web::test as actix_test;
use lms_api::auth::Role;
use lms_api::create_app;
use uuid::Uuid;

use super::*;
use crate::support::{TestDatabase, json_body, on_both_databases};

async fn life_of_materials(database: TestDatabase, backend: Backend) {
    let stack = Stack::start(
        database,
        backend,
        StackOptions {
            scan: true,
            ..StackOptions::default()
        },
    )
    .await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    let auth = ("Authorization", format!("Bearer {token}"));

    // A picture with a display name given before the file.
    let picture = png_of(200_000);
    let response = actix_test::call_service(
        &app,
        upload_request(
            &token,
            form(&[
                Part::Text {
                    field: "name",
                    value: "Classroom map",
                },
                file("Übung map.png", "image/png", &picture),
            ]),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 201);
    let created = json_body(response).await;
    let material = &created["material"];
    assert_eq!(material["name"], "Classroom map");
    assert_eq!(material["type"], "image");
    assert_eq!(material["file_size"], 200_000);
    assert_eq!(material["mime_type"], "image/png");
    assert_eq!(material["original_filename"], "Übung map.png");
    assert!(material["url"].is_null() && material["text_content"].is_null());
    assert_eq!(created["quota"]["used_bytes"], 200_000);
    assert_eq!(created["quota"]["quota_bytes"], 524_288_000);
    assert_eq!(created["quota"]["is_warning"], false);
    let picture_id = material["id"].as_str().unwrap().to_owned();
    let download_url = material["download_url"].as_str().unwrap().to_owned();
    let objects = stack.objects().await;
    assert_eq!(objects.len(), 1);
    assert!(
        objects[0].starts_with(&format!("{teacher}/images/{picture_id}_")),
        "{objects:?}"
    );

    // The download URL works without a token and names the original file.
    let fetched = fetch_without_token(&stack, &app, &download_url).await;
    assert!(fetched.starts_with("HTTP/1.1 200"), "{fetched:.300}");
    let lower = fetched.to_ascii_lowercase();
    assert!(
        lower.contains("content-disposition: attachment; filename=\"_bung map.png\"; filename*=utf-8''%c3%9cbung%20map.png"),
        "{fetched:.600}"
    );

    // An audio file, streamed with ranges; the EICAR test file is refused by clamd.
    let audio = mp3_of(50_000);
    let response = actix_test::call_service(
        &app,
        upload_request(&token, form(&[file("song.mp3", "audio/mpeg", &audio)])).to_request(),
    )
    .await;
    assert_eq!(response.status(), 201);
    let song = json_body(response).await;
    let song_id = song["material"]["id"].as_str().unwrap().to_owned();
    assert_eq!(song["material"]["name"], "song.mp3");
    assert_eq!(song["quota"]["used_bytes"], 250_000);

    let mut infected = b"Lesson notes\n".to_vec();
    infected.extend_from_slice(clamd::testing::EICAR);
    let response = actix_test::call_service(
        &app,
        upload_request(&token, form(&[file("notes.txt", "text/plain", &infected)])).to_request(),
    )
    .await;
    assert_eq!(response.status(), 422);
    let refused = json_body(response).await;
    assert_eq!(refused["code"], "virus_detected");
    assert_eq!(refused["signature"], clamd::testing::REPORTED_SIGNATURE);
    assert_eq!(
        stack.objects().await.len(),
        2,
        "the infected file is not stored"
    );
    assert_eq!(stack.used(teacher).await, 250_000);

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/teachers/materials/{song_id}/stream"))
            .insert_header(auth.clone())
            .insert_header(("Range", "bytes=0-9"))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 206);
    assert_eq!(
        crate::support::header(&response, "content-range"),
        "bytes 0-9/50000"
    );
    assert_eq!(
        crate::support::header(&response, "content-type"),
        "audio/mpeg"
    );
    assert_eq!(
        crate::support::header(&response, "content-disposition"),
        "inline; filename=\"song.mp3\""
    );
    assert_eq!(actix_test::read_body(response).await, &audio[..10]);

    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/teachers/materials/{picture_id}/download"))
            .insert_header(auth.clone())
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(crate::support::header(&response, "content-disposition").starts_with("attachment;"));
    assert_eq!(actix_test::read_body(response).await, picture);
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/teachers/materials/{picture_id}/stream"))
            .insert_header(auth.clone())
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(json_body(response).await["code"], "material_not_streamable");

    // A note and a link; then the list, filtered and paged.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/teachers/materials/notes")
            .insert_header(auth.clone())
            .set_json(serde_json::json!({"name": "Reminder", "content": "Bring crayons"}))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 201);
    let note = json_body(response).await;
    assert_eq!(note["type"], "text_note");
    assert_eq!(note["text_content"], "Bring crayons");
    assert!(note["download_url"].is_null());
    let note_id = note["id"].as_str().unwrap().to_owned();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/teachers/materials/urls")
            .insert_header(auth.clone())
            .set_json(serde_json::json!({"name": "Song video", "url": "https://example.org/v"}))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(json_body(response).await["url"], "https://example.org/v");

    let list = get_json(&app, &auth, "/api/v1/teachers/materials?limit=3").await;
    assert_eq!(list["total"], 4);
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(list["items"][0]["type"], "url", "newest first");
    assert_eq!(list["quota"]["used_bytes"], 250_000);
    let rest = get_json(&app, &auth, "/api/v1/teachers/materials?limit=3&skip=3").await;
    assert_eq!(rest["items"][0]["id"], picture_id.as_str());
    let audio_only = get_json(&app, &auth, "/api/v1/teachers/materials?type=audio").await;
    assert_eq!(audio_only["total"], 1);
    assert_eq!(audio_only["items"][0]["id"], song_id.as_str());
    let quota = get_json(&app, &auth, "/api/v1/teachers/materials/quota").await;
    assert_eq!(quota["used_bytes"], 250_000);
    let one = get_json(
        &app,
        &auth,
        &format!("/api/v1/teachers/materials/{note_id}"),
    )
    .await;
    assert_eq!(one["name"], "Reminder");

    // Edits.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::patch()
            .uri(&format!("/api/v1/teachers/materials/{note_id}"))
            .insert_header(auth.clone())
            .set_json(serde_json::json!({"name": "Reminder 2", "text_content": "Bring paint"}))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let edited = json_body(response).await;
    assert_eq!(
        (edited["name"].as_str(), edited["text_content"].as_str()),
        (Some("Reminder 2"), Some("Bring paint"))
    );
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::patch()
            .uri(&format!("/api/v1/teachers/materials/{picture_id}"))
            .insert_header(auth.clone())
            .set_json(serde_json::json!({"text_content": "not a note"}))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 422);

    // Deletes: the object and the quota go with the row.
    for id in [&picture_id, &song_id, &note_id] {
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::delete()
                .uri(&format!("/api/v1/teachers/materials/{id}"))
                .insert_header(auth.clone())
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), 200, "delete {id}");
    }
    assert_eq!(stack.objects().await, Vec::<String>::new());
    assert_eq!(stack.used(teacher).await, 0);
    assert_eq!(stack.rows().await, 1, "the link is left");
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/teachers/materials/{picture_id}"))
            .insert_header(auth.clone())
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(json_body(response).await["code"], "material_not_found");

    // clamd goes away: uploads are refused with 503 and nothing is stored.
    let mut stack = stack;
    drop(stack._clamd.take());
    let response = actix_test::call_service(
        &app,
        upload_request(&token, form(&[file("a.png", "image/png", &png_of(10_000))])).to_request(),
    )
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(json_body(response).await["code"], "scanner_unavailable");
    assert_eq!(stack.objects().await, Vec::<String>::new());
    assert_eq!(stack.used(teacher).await, 0);
}

/// GET `uri` as JSON, asserting 200.
async fn get_json<S, B>(app: &S, auth: &(&str, String), uri: &str) -> serde_json::Value
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let response = actix_test::call_service(
        app,
        actix_test::TestRequest::get()
            .uri(uri)
            .insert_header(auth.clone())
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200, "{uri}");
    json_body(response).await
}

/// GETs a download URL the way a browser would: from S3 directly, or from lms-api's signed
/// `/files` route (in process). Returns the raw answer.
async fn fetch_without_token<S, B>(stack: &Stack, app: &S, url: &str) -> String
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let path = format!("/{path}");
    match stack.backend {
        Backend::S3 => {
            let host = host.to_owned();
            actix_web::rt::task::spawn_blocking(move || {
                raw_exchange(
                    &host,
                    &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
                    b"",
                    false,
                )
            })
            .await
            .unwrap()
        }
        Backend::Fs => {
            let response = actix_test::call_service(
                app,
                actix_test::TestRequest::get().uri(&path).to_request(),
            )
            .await;
            let mut head = format!("HTTP/1.1 {}\r\n", response.status().as_u16());
            for (name, value) in response.headers() {
                head.push_str(&format!("{}: {}\r\n", name, value.to_str().unwrap_or("")));
            }
            head
        }
    }
}

async fn life_on_fs(database: TestDatabase) {
    life_of_materials(database, Backend::Fs).await;
}
on_both_databases!(life_on_fs);

async fn life_on_s3(database: TestDatabase) {
    life_of_materials(database, Backend::S3).await;
}
on_both_databases!(life_on_s3);
