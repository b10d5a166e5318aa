//! Who may do what: every role against every material endpoint.

use actix_web::test as actix_test;
use lms_api::auth::Role;
use lms_api::create_app;
use uuid::Uuid;

use super::*;
use crate::support::{Engine, TestDatabase, json_body, on_both_databases};

/// One endpoint of the matrix: method, URI, body, the owner's status, another teacher's.
type Endpoint = (&'static str, String, Option<Vec<u8>>, u16, u16);

/// A caller in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Owner,
    OtherTeacher,
    Role(Role),
}

#[actix_web::test]
async fn the_role_by_endpoint_matrix() {
    let database = TestDatabase::open(Engine::Sqlite).await.unwrap();
    let stack = Stack::start(database, Backend::Fs, StackOptions::default()).await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let owner = Uuid::new_v4();
    let owner_token = token_for(owner, Role::Teacher);

    let callers = [
        Caller::Anonymous,
        Caller::Owner,
        Caller::OtherTeacher,
        Caller::Role(Role::Student),
        Caller::Role(Role::Publisher),
        Caller::Role(Role::Supervisor),
        Caller::Role(Role::Admin),
    ];
    let png = png_of(1_000);
    let mp3 = mp3_of(1_000);

    for caller in callers {
        // A fresh file and note of the owner for each caller (some callers delete them).
        let upload = |bytes: &[u8], name: &str, mime: &str| {
            upload_request(&owner_token, form(&[file(name, mime, bytes)])).to_request()
        };
        let song =
            json_body(actix_test::call_service(&app, upload(&mp3, "a.mp3", "audio/mpeg")).await)
                .await;
        let song_id = song["material"]["id"].as_str().unwrap().to_owned();
        let picture =
            json_body(actix_test::call_service(&app, upload(&png, "a.png", "image/png")).await)
                .await;
        let picture_id = picture["material"]["id"].as_str().unwrap().to_owned();

        let token = match caller {
            Caller::Anonymous => None,
            Caller::Owner => Some(owner_token.clone()),
            Caller::OtherTeacher => Some(token_for(Uuid::new_v4(), Role::Teacher)),
            Caller::Role(role) => Some(token_for(Uuid::new_v4(), role)),
        };
        // (method, uri, body, status for the owner, for another teacher)
        let own = |path: &str| format!("/api/v1/teachers/materials/{path}");
        let endpoints: Vec<Endpoint> = vec![
            ("GET", "/api/v1/teachers/materials".into(), None, 200, 200),
            ("GET", own("quota"), None, 200, 200),
            ("GET", own(&picture_id), None, 200, 404),
            (
                "GET",
                own(&format!("{picture_id}/download")),
                None,
                200,
                404,
            ),
            ("GET", own(&format!("{song_id}/stream")), None, 200, 404),
            (
                "PATCH",
                own(&picture_id),
                Some(br#"{"name":"renamed"}"#.to_vec()),
                200,
                404,
            ),
            (
                "POST",
                own("notes"),
                Some(br#"{"name":"n","content":"c"}"#.to_vec()),
                201,
                201,
            ),
            (
                "POST",
                own("urls"),
                Some(br#"{"name":"n","url":"https://example.org"}"#.to_vec()),
                201,
                201,
            ),
            (
                "POST",
                own("upload"),
                Some(form(&[file("b.png", "image/png", &png)])),
                201,
                201,
            ),
            ("DELETE", own(&picture_id), None, 200, 404),
        ];
        for (method, uri, body, owner_status, other_status) in endpoints {
            let mut request = match method {
                "GET" => actix_test::TestRequest::get(),
                "POST" => actix_test::TestRequest::post(),
                "PATCH" => actix_test::TestRequest::patch(),
                _ => actix_test::TestRequest::delete(),
            }
            .uri(&uri);
            if let Some(token) = &token {
                request = request.insert_header(("Authorization", format!("Bearer {token}")));
            }
            if let Some(body) = body {
                let content_type = if uri.ends_with("upload") {
                    form_content_type()
                } else {
                    "application/json".to_owned()
                };
                request = request
                    .insert_header(("Content-Type", content_type))
                    .set_payload(body);
            }
            let response = actix_test::call_service(&app, request.to_request()).await;
            let expected = match caller {
                Caller::Anonymous => 401,
                Caller::Owner => owner_status,
                Caller::OtherTeacher => other_status,
                Caller::Role(_) => 403,
            };
            assert_eq!(
                response.status().as_u16(),
                expected,
                "{caller:?} {method} {uri}"
            );
            if expected >= 400 {
                let error = json_body(response).await;
                assert!(
                    error["code"].is_string(),
                    "{caller:?} {method} {uri}: {error}"
                );
            }
        }

        // Only admins set quotas.
        let mut request = actix_test::TestRequest::put()
            .uri(&format!("/api/v1/admin/teachers/{owner}/quota"))
            .set_json(serde_json::json!({"quota_bytes": 10_000_000}));
        if let Some(token) = &token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let response = actix_test::call_service(&app, request.to_request()).await;
        let expected = match caller {
            Caller::Anonymous => 401,
            Caller::Role(Role::Admin) => 200,
            _ => 403,
        };
        assert_eq!(response.status().as_u16(), expected, "{caller:?} PUT quota");
    }
    // The other teacher's failed attempts changed nothing of the owner's.
    let quota = stack.state.materials.quota(owner).await.unwrap();
    let sizes: u64 = {
        let (page, _) = stack
            .state
            .materials
            .list(owner, None, 0, 100)
            .await
            .unwrap();
        page.items.iter().filter_map(|r| r.file_size).sum()
    };
    assert_eq!(quota.used_bytes, sizes, "usage equals the stored sizes");
}

#[actix_web::test]
async fn an_admin_quota_below_usage_is_accepted_and_blocks_uploads() {
    let database = TestDatabase::open(Engine::Sqlite).await.unwrap();
    let stack = Stack::start(database, Backend::Fs, StackOptions::default()).await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    let png = png_of(5_000);
    let response = actix_test::call_service(
        &app,
        upload_request(&token, form(&[file("a.png", "image/png", &png)])).to_request(),
    )
    .await;
    assert_eq!(response.status(), 201);

    let admin = token_for(Uuid::new_v4(), Role::Admin);
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::put()
            .uri(&format!("/api/v1/admin/teachers/{teacher}/quota"))
            .insert_header(("Authorization", format!("Bearer {admin}")))
            .set_json(serde_json::json!({"quota_bytes": 1_000}))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let set = json_body(response).await;
    assert_eq!(set["below_usage"], true);
    assert_eq!(set["quota"]["used_bytes"], 5_000);
    assert_eq!(set["quota"]["quota_bytes"], 1_000);
    assert_eq!(set["quota"]["is_full"], true);
    assert!(set["detail"].as_str().unwrap().contains("below"), "{set}");

    let response = actix_test::call_service(
        &app,
        upload_request(&token, form(&[file("b.png", "image/png", &png_of(100))])).to_request(),
    )
    .await;
    assert_eq!(response.status(), 413);
    let error = json_body(response).await;
    assert_eq!(error["code"], "quota_exceeded");
    assert_eq!(stack.objects().await.len(), 1);
    assert_eq!(stack.used(teacher).await, 5_000);
}

/// Every quota the document allows is stored (a whole number written as `5.0` too); one over
/// 2^63 - 1, which the database cannot hold, is a 422, not a 500.
async fn quota_values_at_the_edges(database: TestDatabase) {
    let stack = Stack::start(database, Backend::Fs, StackOptions::default()).await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let teacher = Uuid::new_v4();
    let admin = token_for(Uuid::new_v4(), Role::Admin);
    let max = i64::MAX as u64;
    let cases: [(&str, u16, Option<u64>); 7] = [
        ("0", 200, Some(0)),
        ("5.0", 200, Some(5)),
        ("9223372036854775807", 200, Some(max)),
        ("9223372036854775808", 422, None),
        ("18446744073709551615", 422, None),
        ("1.5", 422, None),
        ("-1", 422, None),
    ];
    for (value, status, stored) in cases {
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::put()
                .uri(&format!("/api/v1/admin/teachers/{teacher}/quota"))
                .insert_header(("Authorization", format!("Bearer {admin}")))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(format!(r#"{{"quota_bytes": {value}}}"#))
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), status, "{value}");
        let body = json_body(response).await;
        match stored {
            Some(bytes) => assert_eq!(body["quota"]["quota_bytes"], bytes, "{value}: {body}"),
            None => assert_eq!(body["code"], "invalid_body", "{value}: {body}"),
        }
    }
    // The refused ones changed nothing.
    let quota = stack.state.materials.quota(teacher).await.unwrap();
    assert_eq!(quota.quota_bytes, max);
}
on_both_databases!(quota_values_at_the_edges);
