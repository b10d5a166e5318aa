//! S3 down. During an upload:
//! `materials::faults::s3_killed_mid_upload_leaves_nothing_and_the_upload_works_once_it_is_back`
//! kills s3s-fs while a 30 MB upload streams in (503 `file_storage_unavailable`, no row, no
//! reservation), starts it again and checks the stranded parts are aborted and the upload
//! then works. Here: S3 killed when a stored file is read, and started again.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use lms_api::auth::Role;
use lms_api::create_app;
use uuid::Uuid;

use super::{LOAD_MARGIN, assert_within};
use crate::materials::{
    Backend, Stack, StackOptions, file, form, png_of, token_for, upload_request,
};
use crate::support::{Engine, TestDatabase, header, json_body};

/// The S3 adapter's connect timeout (crates/storage/src/s3.rs): with S3 down, a read fails
/// within it at the latest (a refused connection fails at once).
const S3_CONNECT: Duration = Duration::from_secs(5);
/// `/ready` runs its checks concurrently, each within 800 ms (`readiness::DEFAULT_CHECK_TIMEOUT`).
const READY_WAIT: Duration = lms_api::readiness::DEFAULT_CHECK_TIMEOUT;

#[actix_web::test]
async fn s3_down_when_a_file_is_read_is_a_fast_503_and_reads_recover_when_it_is_back() {
    let database = TestDatabase::open(Engine::Sqlite).await.expect("SQLite");
    let mut stack = Stack::start(database, Backend::S3, StackOptions::default()).await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let teacher = Uuid::new_v4();
    let bearer = token_for(teacher, Role::Teacher);
    let png = png_of(50_000);
    let response = actix_test::call_service(
        &app,
        upload_request(&bearer, form(&[file("map.png", "image/png", &png)])).to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = json_body(response).await["material"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let download = || {
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/teachers/materials/{id}/download"))
            .insert_header(("Authorization", format!("Bearer {bearer}")))
            .insert_header(("Range", "bytes=0-99"))
            .to_request()
    };
    let response = actix_test::call_service(&app, download()).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(actix_test::read_body(response).await, png[..100]);

    // S3 goes away (the process is killed; its files stay, as a restarted server's do).
    stack.s3.as_mut().expect("s3s-fs").kill();

    let started = Instant::now();
    let response = actix_test::call_service(&app, download()).await;
    assert_within("download with S3 down", started, S3_CONNECT + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = header(&response, "retry-after").parse().expect("seconds");
    assert!(retry_after >= 1);
    assert_eq!(
        json_body(response).await["code"],
        "file_storage_unavailable"
    );

    // The metadata lives in the database and still answers.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/api/v1/teachers/materials/{id}"))
            .insert_header(("Authorization", format!("Bearer {bearer}")))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    // S3 is shared by every instance, so readiness only reports it.
    let started = Instant::now();
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/ready").to_request(),
    )
    .await;
    assert_within("/ready", started, READY_WAIT + LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::OK);
    let readiness = json_body(response).await;
    assert_eq!(readiness["status"], "degraded", "{readiness}");
    assert_eq!(readiness["checks"]["storage"]["ok"], false, "{readiness}");

    // S3 is back on the same port: the next read works with no restart of lms-api (no
    // breaker or pool holds the failure), and readiness says so.
    stack.s3.as_mut().expect("s3s-fs").start_again();
    let started = Instant::now();
    let response = actix_test::call_service(&app, download()).await;
    assert_within("first download after S3 is back", started, LOAD_MARGIN);
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(actix_test::read_body(response).await, png[..100]);
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/ready").to_request(),
    )
    .await;
    let readiness = json_body(response).await;
    assert_eq!(readiness["checks"]["storage"]["ok"], true, "{readiness}");
    let response = actix_test::call_service(
        &app,
        upload_request(&bearer, form(&[file("after.png", "image/png", &png)])).to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}
