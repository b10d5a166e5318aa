//! The request a log line belongs to: method and request id, written at the head of every
//! line logged while the request is served (`request{method=GET request_id=...}: `).
//!
//! Why a task-local and not a `tracing` span: the line format is our own
//! ([`PlainLines`](super::PlainLines)), and it is the span's only reader. A span per request
//! cost about 4,000 instructions of a cached catalog read (a tenth of it: the registry's slab
//! slot, the filter's lock on every enter and exit of every poll, the fields formatted into a
//! new `String`); the task-local costs a thread-local swap per poll and nothing when no line
//! is written.
//!
//! What differs from a span: tasks spawned by a handler do not carry the request (none were
//! given the span either); it is written whatever the filter, so with `RUST_LOG=warn` a
//! warning still names its request; `RUST_LOG` directives that select spans
//! (`[request{...}]=debug`) do not see it; and a subscriber other than ours does not write it.

use std::fmt;

use actix_web::http::Method;
use actix_web::http::header::HeaderValue;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// What identifies one request in the log.
#[derive(Debug)]
pub struct RequestContext {
    method: Method,
    /// A generated UUID, or a client's id that passed
    /// [`is_acceptable_request_id`](super::is_acceptable_request_id): letters, digits and
    /// `-_.:` only, so it cannot break the line.
    request_id: HeaderValue,
}

impl RequestContext {
    /// `request_id` must be a checked id (see the field); only this crate makes contexts.
    pub(crate) fn new(method: Method, request_id: HeaderValue) -> Self {
        Self { method, request_id }
    }

    /// Runs `future` with this context as the current request's.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }
}

/// Writes `request{method=GET request_id=...}:` for the request being served on this thread;
/// `false` (and nothing written) outside any request.
pub(super) fn write_current(writer: &mut impl fmt::Write) -> Result<bool, fmt::Error> {
    CURRENT
        .try_with(|context| {
            writer.write_str("request{method=")?;
            writer.write_str(context.method.as_str())?;
            writer.write_str(" request_id=")?;
            // Always ASCII (see the field); the fallback is never taken.
            writer.write_str(context.request_id.to_str().unwrap_or("?"))?;
            writer.write_str("}:")?;
            Ok(true)
        })
        .unwrap_or(Ok(false))
}
