//! `HEAD` on every `GET` route: the same status and headers as `GET`, no body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::test as actix_test;
use lms_api::create_app;

use crate::support::{header, sqlite_app_state};

/// Sends one raw HTTP/1.1 request and returns the whole answer (the server closes after it).
fn raw_request(address: std::net::SocketAddr, method: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

fn content_length(answer: &str) -> Option<usize> {
    answer
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|value| value.trim().parse().ok())
}

#[actix_web::test]
async fn head_answers_like_get_without_a_body() {
    let (_db, state) = sqlite_app_state().await;
    let app = actix_test::init_service(create_app(state)).await;

    for path in ["/health", "/openapi.json"] {
        let response = actix_test::call_service(
            &app,
            actix_test::TestRequest::default()
                .method(actix_web::http::Method::HEAD)
                .uri(path)
                .to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "HEAD {path}");
        assert_eq!(header(&response, "content-type"), "application/json");
        let body = actix_test::read_body(response).await;
        assert!(body.is_empty(), "HEAD {path} sent a body");
    }

    // Authentication still applies: HEAD is the GET handler, guards included.
    let response = actix_test::call_service(
        &app,
        actix_test::TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/api/v1/books")
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn head_over_the_wire_sends_the_get_length_and_no_body() {
    let (_db, state) = sqlite_app_state().await;
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

    let (get, head) = actix_web::rt::task::spawn_blocking(move || {
        (
            raw_request(address, "GET", "/openapi.json"),
            raw_request(address, "HEAD", "/openapi.json"),
        )
    })
    .await
    .expect("requests");

    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let get_length = content_length(&get).expect("GET has a Content-Length");
    assert!(get_length > 100);
    assert_eq!(content_length(&head), Some(get_length));
    let (_, head_body) = head.split_once("\r\n\r\n").expect("headers end");
    assert!(
        head_body.is_empty(),
        "HEAD sent {} body bytes",
        head_body.len()
    );
    handle.stop(true).await;
}
