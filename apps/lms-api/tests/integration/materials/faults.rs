//! Races and failures: quotas stay exact, and nothing is left behind when storage or the
//! database fails half-way.

use std::sync::Arc;
use std::time::Duration;

use actix_web::test as actix_test;
use async_trait::async_trait;
use domain::materials::{
    MaterialChanges, MaterialLimits, MaterialPage, MaterialQuery, MaterialRecord, MaterialService,
    Quota,
};
use domain::ports::{MaterialRepository, StoreError, SystemClock};
use lms_api::auth::Role;
use lms_api::create_app;
use lms_api::db::SqlMaterialStore;
use uuid::Uuid;

use super::*;
use crate::processes::poll_until;
use crate::support::{Engine, TestDatabase, json_body, on_both_databases};

async fn racing_uploads_for_the_last_bytes(database: TestDatabase) {
    let stack = Stack::start(
        database,
        Backend::S3,
        StackOptions {
            quota_bytes: Some(20_500),
            ..StackOptions::default()
        },
    )
    .await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    let png = png_of(1_000);
    let uploads = (0..50).map(|i| {
        let request = upload_request(
            &token,
            form(&[file(&format!("{i}.png"), "image/png", &png)]),
        )
        .to_request();
        actix_test::call_service(&app, request)
    });
    let responses = futures_util::future::join_all(uploads).await;
    let mut created = 0;
    for response in responses {
        match response.status().as_u16() {
            201 => created += 1,
            413 => assert_eq!(json_body(response).await["code"], "quota_exceeded"),
            other => panic!("unexpected {other}: {}", json_body(response).await),
        }
    }
    assert_eq!(created, 20);
    assert_eq!(stack.used(teacher).await, 20_000);
    assert_eq!(stack.objects().await.len(), 20);
    assert_eq!(stack.rows().await, 20);
    assert_eq!(
        stack.s3.as_ref().unwrap().pending_upload_files(),
        Vec::<String>::new()
    );
}
on_both_databases!(racing_uploads_for_the_last_bytes);

/// A quota that runs out after S3 already holds parts of the upload: the multipart upload is
/// aborted (s3s-fs keeps no part files), and no row or reservation remains.
async fn a_quota_running_out_mid_upload_aborts_the_multipart_upload(database: TestDatabase) {
    let stack = Stack::start(
        database,
        Backend::S3,
        StackOptions {
            quota_bytes: Some(12 << 20),
            ..StackOptions::default()
        },
    )
    .await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    let big = png_of(20 << 20);
    let response = actix_test::call_service(
        &app,
        upload_request(&token, form(&[file("big.png", "image/png", &big)])).to_request(),
    )
    .await;
    assert_eq!(response.status(), 413);
    let error = json_body(response).await;
    assert_eq!(error["code"], "quota_exceeded");
    assert_eq!(error["quota_bytes"], 12u64 << 20);
    stack.assert_nothing_left(teacher, "quota ran out").await;
}
on_both_databases!(a_quota_running_out_mid_upload_aborts_the_multipart_upload);

/// The SQL store with inserts that fail (the database going away after the upload).
#[derive(Debug)]
struct FailingInserts(SqlMaterialStore);

#[async_trait]
impl MaterialRepository for FailingInserts {
    async fn quota(&self, teacher: Uuid, default_quota: u64) -> Result<Quota, StoreError> {
        self.0.quota(teacher, default_quota).await
    }
    async fn reserve(
        &self,
        teacher: Uuid,
        bytes: u64,
        default_quota: u64,
    ) -> Result<Option<Quota>, StoreError> {
        self.0.reserve(teacher, bytes, default_quota).await
    }
    async fn release(&self, teacher: Uuid, bytes: u64) -> Result<(), StoreError> {
        self.0.release(teacher, bytes).await
    }
    async fn insert(&self, _: &MaterialRecord, _: u64) -> Result<Option<Quota>, StoreError> {
        Err(StoreError::new(
            "connection reset by the database (injected)",
        ))
    }
    async fn get(&self, teacher: Uuid, id: Uuid) -> Result<Option<MaterialRecord>, StoreError> {
        self.0.get(teacher, id).await
    }
    async fn list(&self, teacher: Uuid, query: &MaterialQuery) -> Result<MaterialPage, StoreError> {
        self.0.list(teacher, query).await
    }
    async fn update(
        &self,
        teacher: Uuid,
        id: Uuid,
        changes: &MaterialChanges,
    ) -> Result<Option<MaterialRecord>, StoreError> {
        self.0.update(teacher, id, changes).await
    }
    async fn delete(&self, teacher: Uuid, id: Uuid) -> Result<Option<MaterialRecord>, StoreError> {
        self.0.delete(teacher, id).await
    }
    async fn set_quota(&self, teacher: Uuid, quota_bytes: u64) -> Result<Quota, StoreError> {
        self.0.set_quota(teacher, quota_bytes).await
    }
}

async fn the_database_failing_after_the_upload_deletes_the_object(database: TestDatabase) {
    let mut stack = Stack::start(database, Backend::S3, StackOptions::default()).await;
    stack.state.materials = Arc::new(MaterialService::new(
        Arc::new(FailingInserts(SqlMaterialStore::new(
            stack.database.db.clone(),
        ))),
        stack.state.services.storage.teachers.clone(),
        None,
        MaterialLimits {
            max_file_bytes: 100 << 20,
            default_quota: 500 << 20,
        },
        Arc::new(SystemClock),
    ));
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    // Over one multipart part (8 MiB), so S3 completes a real multipart upload first.
    let big = png_of(9 << 20);
    let response = actix_test::call_service(
        &app,
        upload_request(&token, form(&[file("a.png", "image/png", &big)])).to_request(),
    )
    .await;
    assert_eq!(response.status(), 500);
    let error = json_body(response).await;
    assert_eq!(error["code"], "internal_error");
    assert!(
        !error.to_string().contains("injected"),
        "causes are logged, not shown"
    );
    stack.assert_nothing_left(teacher, "insert failed").await;
}
on_both_databases!(the_database_failing_after_the_upload_deletes_the_object);

/// S3 is killed while a 30 MB upload streams in: the client gets a 503 and no row or
/// reservation remains. S3 is started again on its port: the parts the upload left there are
/// aborted (the abort is retried until S3 answers), and the same upload then goes through.
#[actix_web::test]
async fn s3_killed_mid_upload_leaves_nothing_and_the_upload_works_once_it_is_back() {
    let database = TestDatabase::open(Engine::Sqlite).await.unwrap();
    let mut stack = Stack::start(database, Backend::S3, StackOptions::default()).await;
    let (address, server) = stack.serve();
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    let png = png_of(30 << 20);
    let png_size = png.len() as u64;
    let body = form(&[file("big.png", "image/png", &png)]);
    let body_again = body.clone();
    let head = format!(
        "POST /api/v1/teachers/materials/upload HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {token}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        form_content_type(),
        body.len()
    );
    let (killed_tx, killed_rx) = std::sync::mpsc::channel::<()>();
    let client = actix_web::rt::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        // Two parts' worth (16 MiB) and a bit, then S3 dies, then the rest.
        stream.write_all(&body[..18 << 20]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        killed_rx.recv().unwrap();
        let _ = stream.write_all(&body[18 << 20..]);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stack.s3.as_mut().expect("s3s-fs").kill();
    killed_tx.send(()).unwrap();
    let answer = client.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:.400}");
    assert_eq!(raw_json(&answer)["code"], "file_storage_unavailable");
    // The reservation is released by the failed upload's clean-up, just after the answer.
    poll_until(
        "the reservation released",
        Duration::from_secs(2),
        Duration::from_millis(20),
        async || (stack.used(teacher).await == 0).then_some(()),
    )
    .await;
    assert_eq!(stack.rows().await, 0);
    let s3 = stack.s3.as_mut().expect("s3s-fs");
    assert!(
        !s3.pending_upload_files().is_empty(),
        "the upload left no parts on S3, so the clean-up below is not checked"
    );

    s3.start_again();
    poll_until(
        "the stranded multipart upload aborted",
        Duration::from_secs(15),
        Duration::from_millis(50),
        async || s3.pending_upload_files().is_empty().then_some(()),
    )
    .await;
    let app = actix_test::init_service(create_app(stack.state.clone())).await;
    let response =
        actix_test::call_service(&app, upload_request(&token, body_again).to_request()).await;
    assert_eq!(response.status(), 201);
    assert_eq!(stack.rows().await, 1);
    assert_eq!(stack.used(teacher).await, png_size);
    server.stop(false).await;
}

/// Two instances (two app states with their own connection pools) over one PostgreSQL
/// database and one S3 server: uploads for one teacher, spread over both, still never take
/// usage over the quota.
#[actix_web::test]
async fn racing_uploads_across_two_instances_keep_the_quota_exact() {
    let Some(database) = TestDatabase::open(Engine::Postgres).await else {
        return;
    };
    let stack = Stack::start(
        database,
        Backend::S3,
        StackOptions {
            quota_bytes: Some(20_500),
            ..StackOptions::default()
        },
    )
    .await;
    // The second instance: same settings, its own pool.
    let pool = lms_api::db::connect(&stack.state.settings.database_url)
        .await
        .expect("second pool");
    let second =
        lms_api::AppState::new((*stack.state.settings).clone(), pool).expect("second instance");
    let first_app = actix_test::init_service(create_app(stack.state.clone())).await;
    let second_app = actix_test::init_service(create_app(second)).await;
    let teacher = Uuid::new_v4();
    let token = token_for(teacher, Role::Teacher);
    let png = png_of(1_000);
    let requests = (0..50).map(|i| {
        let request = upload_request(
            &token,
            form(&[file(&format!("{i}.png"), "image/png", &png)]),
        )
        .to_request();
        let (first_app, second_app) = (&first_app, &second_app);
        async move {
            if i % 2 == 0 {
                actix_test::call_service(first_app, request)
                    .await
                    .status()
                    .as_u16()
            } else {
                actix_test::call_service(second_app, request)
                    .await
                    .status()
                    .as_u16()
            }
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        20,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 413),
        "{statuses:?}"
    );
    assert_eq!(stack.used(teacher).await, 20_000);
    assert_eq!(stack.objects().await.len(), 20);
    assert_eq!(stack.rows().await, 20);
}
