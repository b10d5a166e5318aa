//! Bad input: each case answers a clear JSON error and leaves nothing behind.

use actix_web::test as actix_test;
use lms_api::auth::Role;
use lms_api::create_app;
use uuid::Uuid;

use super::*;
use crate::support::{TestDatabase, json_body, on_both_databases};

/// The limit these tests run with (small, so "too large" is cheap).
const MAX: u64 = 1024 * 1024;

async fn refused_forms(database: TestDatabase, backend: Backend) {
    let stack = Stack::start(
        database,
        backend,
        StackOptions {
            max_file_bytes: Some(MAX),
            ..StackOptions::default()
        },
    )
    .await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    let png = png_of(20_000);
    let big = png_of(MAX as usize + 1);
    let long_name = "n".repeat(300);
    let elf = [b"\x7fELF\x02\x01\x01\0".as_slice(), &[0u8; 120]].concat();

    // The file, then more small fields than a form needs (a chunked body has no
    // Content-Length to refuse it by).
    let mut many_fields = vec![file("a.png", "image/png", &png)];
    many_fields.extend((0..17).map(|_| Part::Text {
        field: "extra",
        value: "",
    }));

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "seventeen fields besides the file",
            form(&many_fields),
            400,
            "invalid_upload",
        ),
        (
            "no file part",
            form(&[Part::Text {
                field: "name",
                value: "x",
            }]),
            400,
            "invalid_upload",
        ),
        (
            "two file parts",
            form(&[
                file("a.png", "image/png", &png),
                file("b.png", "image/png", &png),
            ]),
            400,
            "invalid_upload",
        ),
        (
            "an empty file",
            form(&[file("a.png", "image/png", b"")]),
            400,
            "empty_file",
        ),
        (
            "a file name with ../",
            form(&[file("../../a.png", "image/png", &png)]),
            422,
            "invalid_name",
        ),
        (
            "a name with ../",
            form(&[
                Part::Text {
                    field: "name",
                    value: "../secret",
                },
                file("a.png", "image/png", &png),
            ]),
            422,
            "invalid_name",
        ),
        (
            "a name with control characters",
            form(&[
                Part::Text {
                    field: "name",
                    value: "bad\u{1b}[31mname",
                },
                file("a.png", "image/png", &png),
            ]),
            422,
            "invalid_name",
        ),
        (
            "a name after the file, 300 characters long",
            form(&[
                file("a.png", "image/png", &png),
                Part::Text {
                    field: "name",
                    value: &long_name,
                },
            ]),
            422,
            "invalid_name",
        ),
        (
            "a file under another field name",
            form(&[
                file("a.png", "image/png", &png),
                Part::File {
                    field: "attachment",
                    filename: "b.png",
                    content_type: "image/png",
                    bytes: &png,
                },
            ]),
            400,
            "invalid_upload",
        ),
        (
            "a type the bytes do not match",
            form(&[file("a.jpg", "image/jpeg", &png)]),
            415,
            "unsupported_file_type",
        ),
        (
            "an extension the type does not match",
            form(&[file("a.pdf", "image/png", &png)]),
            415,
            "unsupported_file_type",
        ),
        (
            "a type outside the table",
            form(&[file("a.zip", "application/zip", b"PK\x03\x04rest")]),
            415,
            "unsupported_file_type",
        ),
        (
            "an executable claiming to be a picture",
            form(&[file("a.png", "image/png", &elf)]),
            415,
            "unsupported_file_type",
        ),
        (
            "a shell script claiming to be text",
            form(&[file("a.txt", "text/plain", b"#!/bin/sh\nrm -rf ~\n")]),
            415,
            "unsupported_file_type",
        ),
        (
            "a file over MATERIAL_MAX_BYTES",
            form(&[file("a.png", "image/png", &big)]),
            413,
            "file_too_large",
        ),
        (
            "a body cut off mid-stream",
            {
                let mut body = form(&[file("a.png", "image/png", &png_of(300_000))]);
                body.truncate(200_000);
                body
            },
            400,
            "invalid_upload",
        ),
    ];
    for (case, body, status, code) in cases {
        let response =
            actix_test::call_service(&app, upload_request(&token, body).to_request()).await;
        assert_eq!(response.status().as_u16(), status, "{case}");
        let error = json_body(response).await;
        assert_eq!(error["code"], code, "{case}: {error}");
        assert!(
            error["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}: {error}"
        );
        stack.assert_nothing_left(teacher, case).await;
    }

    // A boundary other than the one declared, and no multipart at all.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/teachers/materials/upload")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header((
                "Content-Type",
                "multipart/form-data; boundary=other-boundary",
            ))
            .set_payload(form(&[file("a.png", "image/png", &png)]))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 400, "wrong boundary");
    assert_eq!(json_body(response).await["code"], "invalid_upload");
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::post()
            .uri("/api/v1/teachers/materials/upload")
            .insert_header(("Authorization", format!("Bearer {token}")))
            .insert_header(("Content-Type", "application/json"))
            .set_payload("{}")
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 415, "not multipart");
    assert_eq!(json_body(response).await["code"], "unsupported_media_type");
    stack.assert_nothing_left(teacher, "boundaries").await;

    // Notes and links.
    for (uri, body, code) in [
        (
            "notes",
            serde_json::json!({"name": "n", "content": "x".repeat(50 * 1024 + 1)}),
            "invalid_note",
        ),
        (
            "notes",
            serde_json::json!({"name": "n", "content": ""}),
            "invalid_note",
        ),
        (
            "notes",
            serde_json::json!({"name": "a/b", "content": "x"}),
            "invalid_name",
        ),
        (
            "urls",
            serde_json::json!({"name": "n", "url": "javascript:alert(1)"}),
            "invalid_url",
        ),
        (
            "urls",
            serde_json::json!({"name": "n", "url": "ftp://example.org/x"}),
            "invalid_url",
        ),
        (
            "urls",
            serde_json::json!({"name": "n", "url": format!("https://example.org/{}", "a".repeat(2000))}),
            "invalid_url",
        ),
    ] {
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::post()
                .uri(&format!("/api/v1/teachers/materials/{uri}"))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .set_json(body)
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), 422, "{uri} {code}");
        assert_eq!(json_body(response).await["code"], code);
    }
    assert_eq!(stack.rows().await, 0);
}

async fn refused_forms_on_fs(database: TestDatabase) {
    refused_forms(database, Backend::Fs).await;
}
on_both_databases!(refused_forms_on_fs);

async fn refused_forms_on_s3(database: TestDatabase) {
    refused_forms(database, Backend::S3).await;
}
on_both_databases!(refused_forms_on_s3);

/// What only a real socket can send: a Content-Length over the limit (refused before the body
/// is read), a Content-Length larger than the body sent, and one smaller than the body.
#[actix_web::test]
async fn lying_and_oversized_content_lengths() {
    let database = TestDatabase::open(crate::support::Engine::Sqlite)
        .await
        .unwrap();
    let stack = Stack::start(
        database,
        Backend::S3,
        StackOptions {
            max_file_bytes: Some(MAX),
            body_read_timeout: Some("500ms"),
            ..StackOptions::default()
        },
    )
    .await;
    let (address, server) = stack.serve();
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    let head = |length: usize| {
        format!(
            "POST /api/v1/teachers/materials/upload HTTP/1.1\r\nHost: t\r\n\
             Authorization: Bearer {token}\r\nContent-Type: {}\r\nContent-Length: {length}\r\n\r\n",
            form_content_type()
        )
    };

    // Over the limit from the Content-Length alone: answered before any body byte is sent.
    let started = std::time::Instant::now();
    let answer = {
        let head = head(50 * MAX as usize);
        let address = address.clone();
        actix_web::rt::task::spawn_blocking(move || raw_exchange(&address, &head, b"", false))
            .await
            .unwrap()
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(raw_json(&answer)["code"], "file_too_large");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // A Content-Length larger than what arrives (the client then stops sending).
    let body = form(&[file("a.png", "image/png", &png_of(300_000))]);
    let answer = {
        let head = head(body.len() + 10_000);
        let (address, body) = (address.clone(), body.clone());
        actix_web::rt::task::spawn_blocking(move || raw_exchange(&address, &head, &body, true))
            .await
            .unwrap()
    };
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert_eq!(raw_json(&answer)["code"], "invalid_upload");
    }
    stack
        .assert_nothing_left(teacher, "Content-Length too large")
        .await;

    // A file refused from its first bytes, whose sender then stalls half-way through it: the
    // refusal is the answer, not a timeout.
    let elf = [b"\x7fELF\x02\x01\x01\0".as_slice(), &[0u8; 60_000]].concat();
    let elf_form = form(&[file("a.png", "image/png", &elf)]);
    let started = std::time::Instant::now();
    let answer = {
        let head = head(elf_form.len());
        let (address, sent) = (address.clone(), elf_form[..30_000].to_vec());
        actix_web::rt::task::spawn_blocking(move || raw_exchange(&address, &head, &sent, false))
            .await
            .unwrap()
    };
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert_eq!(raw_json(&answer)["code"], "unsupported_file_type");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    stack
        .assert_nothing_left(teacher, "refused, then stalled")
        .await;

    // A Content-Length smaller than the body: the form ends early for the server.
    let answer = {
        let head = head(body.len() / 2);
        let (address, body) = (address.clone(), body.clone());
        actix_web::rt::task::spawn_blocking(move || raw_exchange(&address, &head, &body, true))
            .await
            .unwrap()
    };
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(raw_json(&answer)["code"], "invalid_upload");
    stack
        .assert_nothing_left(teacher, "Content-Length too small")
        .await;
    server.stop(false).await;
}

/// The document states the rules the routes apply, from the same constants.
#[actix_web::test]
async fn the_openapi_document_states_the_material_rules() {
    use domain::materials::{MaterialKind, rules};

    let (_db, state) = crate::support::sqlite_app_state().await;
    let app = actix_test::init_service(create_app(state)).await;
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri("/openapi.json")
            .to_request(),
    )
    .await;
    let doc = json_body(response).await;
    let schemas = &doc["components"]["schemas"];
    for (schema, field, pattern) in [
        ("NewNote", "name", rules::NAME_PATTERN),
        ("NewNote", "content", rules::NOTE_PATTERN),
        ("NewLink", "name", rules::NAME_PATTERN),
        ("NewLink", "url", rules::URL_PATTERN),
        ("MaterialPatch", "name", rules::NAME_PATTERN),
        ("MaterialPatch", "text_content", rules::NOTE_PATTERN),
        ("MaterialPatch", "url", rules::URL_PATTERN),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property["pattern"], pattern, "{schema}.{field}: {property}");
    }
    assert_eq!(
        schemas["NewNote"]["properties"]["content"]["maxLength"],
        rules::MAX_NOTE_BYTES
    );
    assert_eq!(
        schemas["NewLink"]["properties"]["url"]["maxLength"],
        rules::MAX_URL_CHARS
    );
    // Optional in an edit: null is accepted.
    let name = &schemas["MaterialPatch"]["properties"]["name"];
    assert_eq!(
        name["type"],
        serde_json::json!(["string", "null"]),
        "{name}"
    );

    let kinds: Vec<&str> = MaterialKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        schemas["MaterialView"]["properties"]["type"]["enum"],
        serde_json::json!(kinds)
    );
    let filter = doc["paths"]["/api/v1/teachers/materials"]["get"]["parameters"]
        .as_array()
        .and_then(|params| params.iter().find(|p| p["name"] == "type"))
        .expect("type filter")
        .clone();
    let mut with_empty = vec![""];
    with_empty.extend(&kinds);
    assert_eq!(
        filter["schema"]["enum"],
        serde_json::json!(with_empty),
        "{filter}"
    );
}
