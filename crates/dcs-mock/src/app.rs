//! The state shared by the server, the handlers, the deliveries and [`MockDcs`](crate::MockDcs).

use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::model::{ContentError, DeliveryLog};
use crate::state::State;
use crate::webhooks::{Event, PendingEvent};

/// Fixed at start.
pub(crate) struct Settings {
    /// Trimmed and lowercased, as DCS stores it.
    pub(crate) admin_email: String,
    pub(crate) admin_password: String,
    pub(crate) jwt_secret: String,
    pub(crate) retry_delays: Vec<Duration>,
    pub(crate) webhook_timeout: Duration,
    /// Base of presigned URLs, without a trailing slash.
    pub(crate) public_base_url: String,
}

pub(crate) struct AppInner {
    pub(crate) settings: Settings,
    state: Mutex<State>,
    /// Number of events whose deliveries have not finished.
    pub(crate) in_flight: watch::Sender<usize>,
    /// Where deliveries run, so content changes work from any thread.
    pub(crate) runtime: Handle,
    pub(crate) http: Client<HttpConnector, Full<Bytes>>,
}

/// Cheap to clone; every clone sees the same state.
#[derive(Clone)]
pub(crate) struct App(Arc<AppInner>);

impl Deref for App {
    type Target = AppInner;

    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub(crate) fn new(settings: Settings, state: State, runtime: Handle) -> Self {
        let http = Client::builder(hyper_util::rt::TokioExecutor::new())
            .http1_title_case_headers(true)
            .build(HttpConnector::new());
        let (in_flight, _) = watch::channel(0);
        App(Arc::new(AppInner {
            settings,
            state: Mutex::new(state),
            in_flight,
            runtime,
            http,
        }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data behind (every change is a
        // single assignment), so keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs a content change and returns its result with the events to deliver.
    pub(crate) fn change<T>(
        &self,
        change: impl FnOnce(&mut State) -> Result<(T, Option<Event>), ContentError>,
    ) -> Result<(T, Option<PendingEvent>), ContentError> {
        let (value, event) = change(&mut self.lock())?;
        Ok((value, event.map(|event| PendingEvent::new(self, event))))
    }

    pub(crate) fn update_log(&self, id: i64, update: impl FnOnce(&mut DeliveryLog)) {
        if let Some(log) = self.lock().delivery_logs.get_mut(&id) {
            update(log);
        }
    }

    pub(crate) async fn wait_for_deliveries(&self) {
        let mut receiver = self.in_flight.subscribe();
        // The sender lives as long as `self`, so this only ends when the count is zero.
        let _ = receiver.wait_for(|count| *count == 0).await;
    }
}
