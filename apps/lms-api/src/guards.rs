//! Guards against slow or greedy clients: the body read timeout, the per-client cap on
//! concurrent streamed answers, and the write-idle timeout of streamed answers, with their
//! counters in `/metrics`.
//!
//! A streamed answer is pumped from its upstream (DCS or object storage) by a task of its own
//! through a channel of one chunk. When the client stops reading, the channel stays full; once
//! it has been full for `LMS_STREAM_IDLE_TIMEOUT`, the task drops the upstream stream (freeing
//! its connection) and the client's stream slot, and the answer ends with an error, which makes
//! the server close the connection.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderValue};
use bytes::Bytes;
use domain::errors::Code;
use futures_util::{Stream, StreamExt as _};
use prometheus::{IntCounter, Opts, Registry};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::settings::GuardSettings;

/// `Retry-After` (seconds) of a 429 from the stream cap.
const STREAM_CAP_RETRY_AFTER_SECS: u64 = 5;

/// The guards' counters.
#[derive(Clone)]
pub struct GuardMetrics {
    body_read_timeouts: IntCounter,
    stream_rejections: IntCounter,
    stream_idle_timeouts: IntCounter,
}

impl fmt::Debug for GuardMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardMetrics").finish_non_exhaustive()
    }
}

impl GuardMetrics {
    /// Registers the counters in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let body_read_timeouts = IntCounter::with_opts(Opts::new(
            "lms_body_read_timeouts_total",
            "Requests answered 408 because their body did not arrive within LMS_BODY_READ_TIMEOUT.",
        ))?;
        let stream_rejections = IntCounter::with_opts(Opts::new(
            "lms_stream_rejections_total",
            "Streamed answers refused with 429 because the client had LMS_MAX_STREAMS_PER_CLIENT open.",
        ))?;
        let stream_idle_timeouts = IntCounter::with_opts(Opts::new(
            "lms_stream_idle_timeouts_total",
            "Streamed answers ended because the client read nothing for LMS_STREAM_IDLE_TIMEOUT.",
        ))?;
        registry.register(Box::new(body_read_timeouts.clone()))?;
        registry.register(Box::new(stream_rejections.clone()))?;
        registry.register(Box::new(stream_idle_timeouts.clone()))?;
        Ok(Self {
            body_read_timeouts,
            stream_rejections,
            stream_idle_timeouts,
        })
    }
}

/// The guards shared by every worker of one app.
#[derive(Debug, Clone)]
pub struct Guards {
    /// The limits.
    pub settings: GuardSettings,
    /// The counters.
    pub metrics: GuardMetrics,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

impl Guards {
    /// Guards with `settings`, counting in `registry`.
    pub fn new(settings: GuardSettings, registry: &Registry) -> Result<Self, prometheus::Error> {
        Ok(Self {
            settings,
            metrics: GuardMetrics::register(registry)?,
            streams: Arc::default(),
        })
    }

    /// `LMS_BODY_READ_TIMEOUT`: how long a request body may pause.
    pub fn body_read_timeout(&self) -> std::time::Duration {
        self.settings.body_read_timeout
    }

    /// The answer to a body that stopped arriving on `route`: counted, logged, and a 408
    /// `request_timeout` that closes the connection.
    pub fn body_timed_out(&self, route: &'static str) -> ApiError {
        self.metrics.body_read_timeouts.inc();
        tracing::warn!(
            route,
            timeout_ms = self.settings.body_read_timeout.as_millis() as u64,
            "request body not received in time (LMS_BODY_READ_TIMEOUT); closing the connection"
        );
        ApiError::from_code(Code::RequestTimeout)
            .with_detail("The request body did not arrive in time")
            .with_header(header::CONNECTION, HeaderValue::from_static("close"))
    }

    /// Reads a request body of at most `limit` bytes within the body read timeout: `Ok(None)`
    /// when it is larger, [`Self::body_timed_out`] when it does not arrive in time.
    pub async fn read_body(
        &self,
        payload: actix_web::web::Payload,
        limit: usize,
        route: &'static str,
    ) -> Result<Option<Result<Bytes, actix_web::Error>>, ApiError> {
        match tokio::time::timeout(
            self.settings.body_read_timeout,
            payload.to_bytes_limited(limit),
        )
        .await
        {
            Ok(Ok(body)) => Ok(Some(body)),
            Ok(Err(_)) => Ok(None),
            Err(_) => Err(self.body_timed_out(route)),
        }
    }

    /// Takes one of the client's stream slots, or 429 `too_many_requests` with `Retry-After`
    /// when it already has `LMS_MAX_STREAMS_PER_CLIENT` streams open.
    pub fn stream_slot(&self, client: String) -> Result<StreamSlot, ApiError> {
        let mut streams = self.streams.lock().expect("stream counts lock");
        let open = streams.entry(client.clone()).or_insert(0);
        if *open >= self.settings.max_streams_per_client {
            drop(streams);
            self.metrics.stream_rejections.inc();
            tracing::warn!(
                client = %client,
                limit = self.settings.max_streams_per_client,
                "streamed answer refused: the client has too many open (LMS_MAX_STREAMS_PER_CLIENT)"
            );
            return Err(ApiError::from_code(Code::TooManyRequests)
                .with_detail("Too many downloads at once; finish one and retry")
                .with_header(
                    header::RETRY_AFTER,
                    HeaderValue::from(STREAM_CAP_RETRY_AFTER_SECS),
                ));
        }
        *open += 1;
        Ok(StreamSlot {
            streams: self.streams.clone(),
            client,
        })
    }

    /// Streams `upstream` to the client through a pump task that holds `slot`: the upstream is
    /// dropped as soon as it ends, fails, or the client reads nothing for the stream idle
    /// timeout.
    pub fn guard_stream<S, E>(
        &self,
        upstream: S,
        slot: StreamSlot,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + 'static
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let complete = Arc::new(AtomicBool::new(false));
        let idle = self.settings.stream_idle_timeout;
        let metrics = self.metrics.clone();
        let pump_complete = complete.clone();
        tokio::spawn(async move {
            let slot = slot;
            let mut upstream = Box::pin(upstream);
            while let Some(item) = upstream.next().await {
                let item = item.map_err(|e| std::io::Error::other(e.to_string()));
                let failed = item.is_err();
                match tokio::time::timeout(idle, tx.send(item)).await {
                    Ok(Ok(())) if !failed => {}
                    // Failed upstream (the error was passed on), or the client is gone.
                    Ok(_) => return,
                    Err(_) => {
                        metrics.stream_idle_timeouts.inc();
                        tracing::warn!(
                            client = %slot.client,
                            idle_ms = idle.as_millis() as u64,
                            "streamed answer dropped: the client read nothing (LMS_STREAM_IDLE_TIMEOUT)"
                        );
                        // Dropping the upstream frees its connection; the client's next read
                        // ends in an error, and the server closes the connection.
                        drop(upstream);
                        return;
                    }
                }
            }
            pump_complete.store(true, Ordering::Release);
        });
        PumpedBody {
            rx,
            complete,
            ended: false,
        }
    }
}

/// The body side of the pump. A channel closed before the upstream's end is an error, so a
/// truncated answer is never taken for a complete one.
struct PumpedBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    complete: Arc<AtomicBool>,
    ended: bool,
}

impl Stream for PumpedBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                if self.complete.load(Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "streamed answer ended: the client stopped reading",
                    ))))
                }
            }
            other => other,
        }
    }
}

/// One of a client's stream slots, given back when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    client: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().expect("stream counts lock");
        if let Some(open) = streams.get_mut(&self.client) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.client);
            }
        }
    }
}

/// Who a stream slot belongs to: the token's subject when there is one, else the remote IP
/// (the socket's peer; `X-Forwarded-For` is not trusted).
pub fn client_key(req: &HttpRequest, subject: Option<uuid::Uuid>) -> String {
    match subject {
        Some(sub) => format!("sub:{sub}"),
        None => match req.peer_addr() {
            Some(addr) => format!("ip:{}", addr.ip()),
            None => "ip:unknown".to_owned(),
        },
    }
}
