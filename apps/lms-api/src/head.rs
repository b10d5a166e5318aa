//! `HEAD` for every `GET` route (RFC 9110 §9.3.2): the same status and headers, no body.
//!
//! actix-web routes match one method, so a `HEAD` would otherwise be answered 405. This
//! module runs `HEAD` requests as `GET` and then swaps the body for an empty one that still
//! reports the original size, so `Content-Length` is what a `GET` would send. The original body
//! is dropped unread: a streamed object (a DCS download) is never pulled just to be discarded,
//! and its upstream connection is freed at once. actix-http's encoder already writes no body
//! bytes for a request that arrived as `HEAD`; this only avoids producing them.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use bytes::Bytes;

/// Runs a `HEAD` request as `GET`: rewrites its method and tells whether it did, for
/// [`without_body`] on the way out.
pub fn run_as_get(req: &mut ServiceRequest) -> bool {
    let is_head = req.method() == Method::HEAD;
    if is_head {
        req.head_mut().method = Method::GET;
    }
    is_head
}

/// The answer to a request [`run_as_get`] rewrote: the same status and headers, and no body
/// (the original is dropped unread). Other answers keep their body.
pub fn without_body<B: MessageBody>(
    is_head: bool,
    response: ServiceResponse<B>,
) -> ServiceResponse<HeadBody<B>> {
    response.map_body(move |_, body| {
        if is_head {
            HeadBody::empty(body.size())
        } else {
            HeadBody::full(body)
        }
    })
}

pin_project_lite::pin_project! {
    /// The response body: the handler's own, or (for `HEAD`) none with the size it would have had.
    #[project = HeadBodyProj]
    pub enum HeadBody<B> {
        Full { #[pin] body: B },
        Empty { size: BodySize },
    }
}

impl<B> HeadBody<B> {
    fn full(body: B) -> Self {
        HeadBody::Full { body }
    }

    fn empty(size: BodySize) -> Self {
        HeadBody::Empty { size }
    }
}

impl<B: MessageBody> MessageBody for HeadBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        match self {
            HeadBody::Full { body } => body.size(),
            // A stream's length is unknown without reading it: send no Content-Length.
            HeadBody::Empty {
                size: BodySize::Stream,
            } => BodySize::None,
            HeadBody::Empty { size } => *size,
        }
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        match self.project() {
            HeadBodyProj::Full { body } => body.poll_next(cx),
            HeadBodyProj::Empty { .. } => Poll::Ready(None),
        }
    }
}

impl<B> std::fmt::Debug for HeadBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadBody::Full { .. } => f.write_str("HeadBody::Full"),
            HeadBody::Empty { size } => write!(f, "HeadBody::Empty({size:?})"),
        }
    }
}
