//! JSON bodies for the errors actix-http answers itself, before any application code runs: a
//! request head it cannot parse (400: a malformed request line or header line, both
//! `Content-Length` and `Transfer-Encoding`), one too large (431), or one that does not arrive
//! within `LMS_CLIENT_REQUEST_TIMEOUT` (408). actix-http writes those as bare heads with
//! `content-length: 0` and offers no hook for their body, so the connection's writer is wrapped:
//! an answer that is exactly such a head (status 400 or above, `content-length: 0`, no
//! `content-type`) is rewritten into the same status with the usual `{"detail", "code"}` body.
//! Application answers never match: every error the application returns carries its JSON body
//! (`error::normalize_error_responses`), and `HEAD` answers keep the `GET` length.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use domain::errors::{Code, Problem};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose protocol-level error answers get JSON bodies.
#[derive(Debug)]
pub struct JsonProtocolErrors<T> {
    io: T,
    /// A rewritten answer being written: the bytes, how many are written, and how many bytes of
    /// the original to report once all are.
    pending: Option<(Bytes, usize, usize)>,
}

impl<T> JsonProtocolErrors<T> {
    pub fn new(io: T) -> Self {
        Self { io, pending: None }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

/// The message of each status actix-http answers by itself.
fn detail(status: u16) -> &'static str {
    match status {
        400 => {
            "The request could not be parsed: a malformed request line or header, or both \
             Content-Length and Transfer-Encoding."
        }
        408 => "The request head did not arrive in time.",
        413 => "The request is too large.",
        431 => "The request's header fields are too large.",
        _ => "The request could not be processed.",
    }
}

/// The rewritten answer when `buf` is exactly a bodiless error head; `None` otherwise.
pub fn rewrite(buf: &[u8]) -> Option<Bytes> {
    if !buf.starts_with(b"HTTP/1.") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(&buf[..buf.len() - 4]).ok()?;
    // Exactly one head: no other blank line inside.
    if head.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    if status < 400 {
        return None;
    }
    let mut kept = Vec::new();
    let mut empty_body = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name_lower = name.trim().to_ascii_lowercase();
        match name_lower.as_str() {
            "content-type" => return None,
            "content-length" => {
                if value.trim() != "0" {
                    return None;
                }
                empty_body = true;
            }
            _ => kept.push(line),
        }
    }
    if !empty_body {
        return None;
    }
    let code = Code::for_status(status).unwrap_or(Code::BadRequest);
    let problem = Problem::new(code).with_detail(detail(status));
    let body = serde_json::json!({"detail": problem.detail, "code": code.name()}).to_string();
    let mut out = String::with_capacity(head.len() + body.len() + 64);
    out.push_str(status_line);
    out.push_str("\r\n");
    for line in kept {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("content-type: application/json\r\n");
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    out.push_str(&body);
    Some(Bytes::from(out))
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonProtocolErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonProtocolErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match rewrite(buf) {
                Some(answer) => this.pending = Some((answer, 0, buf.len())),
                None => return Pin::new(&mut this.io).poll_write(cx, buf),
            }
        }
        loop {
            let Some((answer, written, report)) = &mut this.pending else {
                unreachable!("set above");
            };
            match Pin::new(&mut this.io).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => {
                    this.pending = None;
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    *written += n;
                    if *written == answer.len() {
                        let report = *report;
                        this.pending = None;
                        return Poll::Ready(Ok(report));
                    }
                }
                Poll::Ready(Err(error)) => {
                    this.pending = None;
                    return Poll::Ready(Err(error));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_error_heads_get_json_bodies() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\ndate: Wed, 02 Dec 2026 18:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(head).unwrap().to_vec()).unwrap();
        let (new_head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(new_head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(new_head.contains("connection: close"));
        assert!(new_head.contains("content-type: application/json"));
        assert!(new_head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "request_header_fields_too_large");
        assert!(json["detail"].as_str().unwrap().contains("too large"));

        let bad = rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").unwrap();
        assert!(String::from_utf8_lossy(&bad).contains("\"code\":\"bad_request\""));
    }

    #[test]
    fn anything_else_passes_untouched() {
        for answer in [
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".as_slice(),
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 20\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ncontent-type: text/plain\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"{\"detail\":\"x\"}",
            b"",
        ] {
            assert_eq!(rewrite(answer), None, "{}", String::from_utf8_lossy(answer));
        }
    }
}
