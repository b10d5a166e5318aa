//! The accept loop and per-connection HTTP/1 service. Owning it (rather than `axum::serve`)
//! lets a fault close a connection without an answer.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::app::App;
use crate::fastapi::{detail_response, json_bytes_response};
use crate::faults::Fault;
use crate::webhooks::{PendingEvent, ResponseEvents};

/// Returned by the service to make hyper drop the connection without writing a response.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by an injected fault")
    }
}

impl std::error::Error for ResetConnection {}

pub(crate) async fn serve(
    listener: TcpListener,
    app: App,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(stream, app.clone(), router.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: App,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| handle(app.clone(), router.clone(), request));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        _ = shutdown.changed() => {}
    }
}

async fn handle(
    app: App,
    router: Router,
    request: Request<Incoming>,
) -> Result<Response, ResetConnection> {
    let method = request.method().clone();
    let raw_path = request.uri().path().to_owned();
    let is_control = raw_path == "/_mock" || raw_path.starts_with("/_mock/");
    if !is_control {
        let decoded_path = percent_decode_str(&raw_path)
            .decode_utf8_lossy()
            .into_owned();
        let plan = {
            let mut state = app.lock();
            let plan = state.faults.take(&method, &raw_path, &decoded_path);
            state.requests.record(&method, &raw_path, &decoded_path);
            plan
        };
        if !plan.latency.is_zero() {
            tokio::time::sleep(plan.latency).await;
        }
        if let Some(fault) = plan.action {
            tracing::debug!(%method, path = %raw_path, ?fault, "injected fault");
            return match fault {
                Fault::Reset => Err(ResetConnection),
                other => Ok(fault_response(&other)),
            };
        }
    }
    let response = match router.oneshot(request.map(Body::new)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    tracing::debug!(%method, path = %raw_path, status = response.status().as_u16(), "request");
    let events = response
        .extensions()
        .get::<ResponseEvents>()
        .map(ResponseEvents::take)
        .unwrap_or_default();
    if events.is_empty() {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        Body::new(SendEventsAfter {
            body,
            _events: events,
        }),
    ))
}

fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::Status(status) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            detail_response(status, status.canonical_reason().unwrap_or("Error"))
        }
        Fault::TooManyRequests { retry_after } => {
            let mut response = detail_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            if let Ok(value) = HeaderValue::from_str(retry_after) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        // Truncated JSON: no route's client can parse it.
        Fault::Malformed => json_bytes_response(
            StatusCode::OK,
            br#"{"detail": [{"unexpected": tru"#.to_vec(),
        ),
        Fault::Latency(_) | Fault::Reset => {
            detail_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// A response body that releases its webhook events once hyper is done with it.
struct SendEventsAfter {
    body: Body,
    _events: Vec<PendingEvent>,
}

impl http_body::Body for SendEventsAfter {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
