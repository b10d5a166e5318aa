//! Helpers shared by the integration tests: an HTTP client, the recorded samples, an
//! order-preserving JSON comparison and a raw loopback webhook receiver.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dcs_mock::{MockConfig, MockDcs};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Short pauses between webhook attempts, so retry tests take milliseconds.
pub const FAST_RETRIES: [Duration; 2] = [Duration::from_millis(20), Duration::from_millis(40)];

pub fn fast_config() -> MockConfig {
    MockConfig {
        webhook_retry_delays: FAST_RETRIES.to_vec(),
        ..MockConfig::default()
    }
}

/// The mock on the sample book, with fast webhook retries.
pub async fn start() -> MockDcs {
    MockDcs::start(fast_config())
        .await
        .expect("the mock starts")
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn ordered(&self) -> OJson {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }
}

impl Http {
    pub async fn try_send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, hyper_util::client::legacy::Error> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let has_body = body.is_some();
        if has_body
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("valid request");
        let response = self.client.request(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        self.try_send(method.clone(), url, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    pub async fn get(&self, url: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.send(Method::GET, url, &[("authorization", &auth)], None)
            .await
    }

    pub async fn json(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: serde_json::Value,
    ) -> Reply {
        let auth = format!("Bearer {token}");
        self.send(
            method,
            url,
            &[("authorization", &auth)],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// Logs in over HTTP as the default admin.
    pub async fn login(&self, base: &str) -> String {
        let reply = self
            .send(
                Method::POST,
                &format!("{base}/auth/login"),
                &[],
                Some(br#"{"email":"admin@admin.com","password":"admin"}"#.to_vec()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()["access_token"]
            .as_str()
            .expect("a token")
            .to_owned()
    }
}

pub fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dcs-samples")
}

/// A recorded sample file, keys in file order.
pub fn sample(name: &str) -> OJson {
    let path = samples_dir().join(format!("{name}.json"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// JSON whose objects keep their key order, to compare key order with the recordings.
#[derive(Clone, PartialEq)]
pub enum OJson {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<OJson>),
    Object(Vec<(String, OJson)>),
}

impl fmt::Debug for OJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_value())
    }
}

impl OJson {
    pub fn get(&self, key: &str) -> Option<&OJson> {
        match self {
            OJson::Object(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn at(&self, path: &[&str]) -> &OJson {
        path.iter().fold(self, |node, key| {
            node.get(key)
                .unwrap_or_else(|| panic!("no {key:?} in {node:?}"))
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            OJson::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn keys(&self) -> Vec<&str> {
        match self {
            OJson::Object(pairs) => pairs.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        match self {
            OJson::Null => serde_json::Value::Null,
            OJson::Bool(b) => (*b).into(),
            OJson::Number(n) => serde_json::Value::Number(n.clone()),
            OJson::String(s) => s.clone().into(),
            OJson::Array(items) => items.iter().map(OJson::to_value).collect(),
            OJson::Object(pairs) => pairs
                .iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            OJson::Null => "null",
            OJson::Bool(_) => "bool",
            OJson::Number(_) => "number",
            OJson::String(_) => "string",
            OJson::Array(_) => "array",
            OJson::Object(_) => "object",
        }
    }

    pub fn contains_key(&self, keys: &[&str]) -> bool {
        match self {
            OJson::Object(pairs) => pairs
                .iter()
                .any(|(k, v)| keys.contains(&k.as_str()) || v.contains_key(keys)),
            OJson::Array(items) => items.iter().any(|v| v.contains_key(keys)),
            _ => false,
        }
    }
}

impl<'de> Deserialize<'de> for OJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OJson;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<OJson, E> {
                Ok(OJson::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<OJson, E> {
                Ok(OJson::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<OJson, E> {
                Ok(OJson::Number(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<OJson, E> {
                serde_json::Number::from_f64(v)
                    .map(OJson::Number)
                    .ok_or_else(|| E::custom("NaN"))
            }
            fn visit_str<E>(self, v: &str) -> Result<OJson, E> {
                Ok(OJson::String(v.to_owned()))
            }
            fn visit_unit<E>(self) -> Result<OJson, E> {
                Ok(OJson::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OJson, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OJson::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OJson, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(OJson::Object(pairs))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Same keys in the same order, same JSON types, and equal values except under `ignored`
/// keys (timestamps, tokens...), whose type must still match.
pub fn assert_same_shape(context: &str, expected: &OJson, actual: &OJson, ignored: &[&str]) {
    compare(context, "$", expected, actual, ignored, false);
}

fn compare(
    context: &str,
    at: &str,
    expected: &OJson,
    actual: &OJson,
    ignored: &[&str],
    ignore_value: bool,
) {
    if expected.kind() != actual.kind() {
        panic!(
            "{context}: {at}: expected a {} ({expected:?}), got {actual:?}",
            expected.kind()
        );
    }
    match (expected, actual) {
        (OJson::Object(e), OJson::Object(a)) => {
            let ek: Vec<&String> = e.iter().map(|(k, _)| k).collect();
            let ak: Vec<&String> = a.iter().map(|(k, _)| k).collect();
            assert_eq!(ek, ak, "{context}: {at}: keys or key order differ");
            for ((key, ev), (_, av)) in e.iter().zip(a) {
                let skip = ignore_value || ignored.contains(&key.as_str());
                compare(context, &format!("{at}.{key}"), ev, av, ignored, skip);
            }
        }
        (OJson::Array(e), OJson::Array(a)) => {
            assert_eq!(
                e.len(),
                a.len(),
                "{context}: {at}: array lengths differ: {expected:?} vs {actual:?}"
            );
            for (index, (ev, av)) in e.iter().zip(a).enumerate() {
                compare(
                    context,
                    &format!("{at}[{index}]"),
                    ev,
                    av,
                    ignored,
                    ignore_value,
                );
            }
        }
        _ if ignore_value => {}
        _ => assert_eq!(expected, actual, "{context}: {at}: values differ"),
    }
}

/// One request as a raw loopback receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::Instant,
    pub request_line: String,
    /// Header lines in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A webhook receiver on a raw socket (so header order and case are visible). It answers
/// with the scripted statuses in turn, then with `default_status`.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(path: &str, script: Vec<u16>, default_status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let sink = Arc::clone(&received);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = Arc::clone(&sink);
                let script = Arc::clone(&script);
                tokio::spawn(async move {
                    let _ = serve_raw(stream, sink, script, default_status).await;
                });
            }
        });
        Receiver {
            url,
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("receiver lock").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_raw(
    mut stream: TcpStream,
    sink: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    default_status: u16,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        buffer.drain(..head_end + 4);
        while buffer.len() < length {
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await?;
            if read == 0 {
                return Ok(());
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let body: Vec<u8> = buffer.drain(..length).collect();
        let status = script
            .lock()
            .expect("script lock")
            .pop_front()
            .unwrap_or(default_status);
        let seq = {
            let mut sink = sink.lock().expect("sink lock");
            sink.push(Received {
                at: std::time::Instant::now(),
                request_line,
                headers,
                body,
            });
            sink.len()
        };
        let reply = if (200..300).contains(&status) {
            format!("{{\"received\": true, \"seq\": {seq}}}")
        } else {
            "{\"error\": \"simulated failure\"}".to_owned()
        };
        let response = format!(
            "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

/// Sends raw HTTP/1.1 on a fresh connection and returns the connection with what was read
/// up to the end of the response head.
pub async fn raw_request(base: &str, request: &str) -> (TcpStream, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 1024];
        let read = stream.read(&mut chunk).await.expect("read");
        assert!(
            read > 0,
            "connection closed before a response head: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&chunk[..read]);
    }
    (stream, String::from_utf8_lossy(&received).into_owned())
}

/// The decoded header and claims of a JWT, keys in token order.
pub fn jwt_parts(token: &str) -> (OJson, OJson) {
    use base64::Engine;
    let decode = |segment: &str| -> OJson {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .unwrap_or_else(|e| panic!("segment {segment:?}: {e}"));
        serde_json::from_slice(&raw).expect("JSON segment")
    };
    let mut segments = token.split('.');
    let header = decode(segments.next().expect("header"));
    let claims = decode(segments.next().expect("claims"));
    assert!(segments.next().is_some(), "a signature");
    (header, claims)
}

pub fn jwt_claims(token: &str) -> serde_json::Value {
    jwt_parts(token).1.to_value()
}
