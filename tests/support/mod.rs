//! The conformance suite's fixture: a [`Target`] is one way of hosting edgeq (the
//! native server on the memory store or on a redb file, the wasm component inside
//! wasmtime). [`start`] brings one up on a loopback port and hands back a
//! [`Client`] bound to it; dropping the [`Running`] host stops it.
//!
//! Scenarios only ever see a [`Client`]: base URL plus a real HTTP client. A new
//! host is a new [`Target`] variant and one line in `conformance!`.
#![allow(dead_code)] // Each scenario module uses its own part of the helpers.

pub mod redis;
pub mod wasm_host;

use bytes::Bytes;
use edgeq::api::{Api, ApiConfig, QueueyApp};
use edgeq::engine::Engine;
use edgeq_native::{NativeStore, StoreSpec, SystemEnv};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One way of hosting edgeq.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// `edgeq_native::serve` over the in-memory store.
    NativeMemory,
    /// `edgeq_native::serve` over a redb file in a fresh temporary directory.
    NativeRedb,
    /// `edgeq_native::serve` over a private `redis-server` (`redis.rs`).
    NativeRedis,
    /// The wasm component in the wasmtime host of `wasm_host.rs`.
    Wasm,
    /// [`Target::NativeMemory`] with [`ADMIN_KEY`] configured.
    NativeKeys,
    /// [`Target::Wasm`] with [`ADMIN_KEY`] configured (the `admin_key` variable).
    WasmKeys,
}

/// The admin key of the `*Keys` targets.
pub const ADMIN_KEY: &str = "conformance-admin-key-0123456789";

/// A running host; stops when dropped.
pub struct Running {
    /// A client bound to the host.
    pub client: Client,
    _guard: Box<dyn Send>,
}

/// Stops a native server and removes its data directory.
struct NativeGuard {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    dir: Option<PathBuf>,
}

impl Drop for NativeGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The Queuey applications every host serves (`queuey.rs` uses them).
pub const QUEUEY_APPS: &str = "notes=notes-key,notes-key-2;mail=mail-key";

/// Brings `target` up on `127.0.0.1:0`.
pub async fn start(target: Target) -> Running {
    match target {
        Target::NativeMemory => start_native(StoreSpec::Memory, None).await,
        Target::NativeKeys => {
            let config = ApiConfig { admin_key: Some(ADMIN_KEY.into()), ..ApiConfig::default() };
            start_native_with(StoreSpec::Memory, None, config).await
        }
        Target::WasmKeys => {
            let options = wasm_host::HostOptions {
                variables: vec![
                    ("admin_key".into(), ADMIN_KEY.into()),
                    ("queuey_apps".into(), QUEUEY_APPS.into()),
                ],
                ..Default::default()
            };
            let host = wasm_host::start_wasm_host_with(options).await;
            Running { client: Client::new(format!("http://{}", host.addr)), _guard: Box::new(host) }
        }
        Target::NativeRedb => {
            let dir = edgeq_native::testing::temp_dir("conformance");
            let spec = StoreSpec::Redb(dir.join("edgeq.redb"));
            start_native(spec, Some(dir)).await
        }
        Target::NativeRedis => redis::start_native_redis().await,
        Target::Wasm => {
            let variables = vec![("queuey_apps".to_owned(), QUEUEY_APPS.to_owned())];
            let options = wasm_host::HostOptions { variables, ..Default::default() };
            let host = wasm_host::start_wasm_host_with(options).await;
            Running { client: Client::new(format!("http://{}", host.addr)), _guard: Box::new(host) }
        }
    }
}

async fn start_native(spec: StoreSpec, dir: Option<PathBuf>) -> Running {
    start_native_with(spec, dir, ApiConfig::default()).await
}

async fn start_native_with(spec: StoreSpec, dir: Option<PathBuf>, config: ApiConfig) -> Running {
    let store = NativeStore::open(&spec).expect("open the store");
    let queuey_apps = QueueyApp::parse_list(QUEUEY_APPS).expect("valid Queuey applications");
    let config = ApiConfig { queuey_apps, ..config };
    let api = Arc::new(Api::new(Engine::new(store, SystemEnv::default()), config));
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(edgeq_native::serve(listener, api, async move {
        let _ = stopped.await;
    }));
    Running {
        client: Client::new(format!("http://{addr}")),
        _guard: Box::new(NativeGuard { stop: Some(stop), dir }),
    }
}

/// Runs `scenario` against a fresh `target`.
pub async fn run<F, Fut>(target: Target, scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let running = start(target).await;
    scenario(running.client.clone()).await;
    drop(running);
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, with the body in the message.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body[..self.body.len().min(2000)])
        );
        self
    }

    /// Asserts an error response: status, JSON content type and error code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        self.expect(status);
        assert!(
            self.header("content-type").is_some_and(|c| c.starts_with("application/json")),
            "error without a JSON content type: {:?}",
            self.headers
        );
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "error body: {v}");
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {v}"
        );
        self
    }

    /// The error message of an error response.
    pub fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap_or_default().to_owned()
    }
}

/// A base URL plus an HTTP client: all a scenario gets.
#[derive(Clone)]
pub struct Client {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The HTTP client.
    pub http: reqwest::Client,
}

impl Client {
    /// A client for the host at `base`.
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder()
            // Longer than the longest long poll; keeps every test finite.
            .timeout(Duration::from_secs(60))
            .build()
            .expect("build the HTTP client");
        Self { base, http }
    }

    /// A request to `path` (which starts with `/`).
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends `rb` and reads the whole response.
    pub async fn send(&self, rb: RequestBuilder) -> Resp {
        let res = rb.send().await.expect("the request reached the server");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await.expect("read the response body");
        Resp { status, headers, body }
    }

    /// Writes `head` (a request line and headers, and any body) on a fresh
    /// connection and reads the answer: for requests a client library would
    /// not send as written (a declared body that never comes, chunks).
    pub async fn raw(&self, head: &str) -> Resp {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect to the host");
        conn.write_all(head.as_bytes()).await.expect("write the head");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let read = async {
            loop {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if let Some(resp) = parse_raw(&buf) {
                    return resp;
                }
            }
            parse_raw(&buf)
                .unwrap_or_else(|| panic!("no whole response: {:?}", String::from_utf8_lossy(&buf)))
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the host answered a request whose body never came")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req(Method::GET, path)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.send(
            self.req(Method::POST, path)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// `POST path` with no body.
    pub async fn post(&self, path: &str) -> Resp {
        self.send(self.req(Method::POST, path)).await
    }

    /// `PUT /v1/queues/{q}` with `config`.
    pub async fn put_queue(&self, q: &str, config: &Value) -> Resp {
        self.send(
            self.req(Method::PUT, &format!("/v1/queues/{q}"))
                .header("content-type", "application/json")
                .body(config.to_string()),
        )
        .await
    }

    /// Creates queue `q` with `config`, asserting it was created.
    pub async fn create(&self, q: &str, config: Value) -> Value {
        let r = self.put_queue(q, &config).await;
        r.expect(201);
        r.json()
    }

    /// The queue's stats object (asserting the queue exists).
    pub async fn stats(&self, q: &str) -> Value {
        let r = self.get(&format!("/v1/queues/{q}")).await;
        r.expect(200);
        r.json()["stats"].clone()
    }

    /// The queue's message count.
    pub async fn count(&self, q: &str) -> u64 {
        self.stats(q).await["messages"].as_u64().expect("stats.messages is a number")
    }

    /// Sends one raw message; returns its id.
    pub async fn push(&self, q: &str, body: impl Into<reqwest::Body>) -> String {
        let r = self
            .send(
                self.req(Method::POST, &format!("/v1/queues/{q}/messages"))
                    .header("content-type", "text/plain")
                    .body(body),
            )
            .await;
        r.expect(201);
        r.json()["id"].as_str().expect("the send answer has an id").to_owned()
    }

    /// Pops one message raw; `None` on 204.
    pub async fn pop(&self, q: &str) -> Option<Resp> {
        let r = self.post(&format!("/v1/queues/{q}/pop")).await;
        match r.status.as_u16() {
            204 => None,
            200 => Some(r),
            _ => panic!("pop: {} {:?}", r.status, String::from_utf8_lossy(&r.body)),
        }
    }

    /// Receives one message raw with `query` (e.g. `visibility_timeout=1`);
    /// `None` on 204.
    pub async fn receive(&self, q: &str, query: &str) -> Option<Resp> {
        let r = self.post(&format!("/v1/queues/{q}/receive?{query}")).await;
        match r.status.as_u16() {
            204 => None,
            200 => Some(r),
            _ => panic!("receive: {} {:?}", r.status, String::from_utf8_lossy(&r.body)),
        }
    }

    /// Acknowledges `receipts`.
    pub async fn ack(&self, q: &str, receipts: &[&str]) -> Resp {
        self.post_json(&format!("/v1/queues/{q}/ack"), &serde_json::json!({ "receipts": receipts }))
            .await
    }
}

/// A whole HTTP/1.1 response in `buf` (`content-length` or chunked), if there is one.
fn parse_raw(buf: &[u8]) -> Option<Resp> {
    let text = std::str::from_utf8(buf).ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':')?;
        let name = reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).ok()?;
        headers.append(name, v.trim().parse().ok()?);
    }
    let body = match headers.get("content-length") {
        Some(len) => {
            let len: usize = len.to_str().ok()?.parse().ok()?;
            rest.as_bytes().get(..len)?.to_vec()
        }
        None => {
            // Chunked: `<hex len>\r\n<data>\r\n` ... `0\r\n\r\n`.
            let mut body = Vec::new();
            let mut rest = rest;
            loop {
                let (size, after) = rest.split_once("\r\n")?;
                let size = usize::from_str_radix(size.trim(), 16).ok()?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(after.as_bytes().get(..size)?);
                rest = after.get(size + 2..)?;
            }
            body
        }
    };
    Some(Resp { status: StatusCode::from_u16(status).ok()?, headers, body: Bytes::from(body) })
}

/// Polls `probe` every 50 ms until it yields `Some` or `limit` passes; panics
/// with `what` then. Used instead of sleeping fixed amounts; never a timing
/// assertion (the limit is generous).
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < limit, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
