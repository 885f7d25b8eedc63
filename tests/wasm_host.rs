//! The edgeq component in the wasmtime test host: it answers what the native
//! `Api` answers, traps become 500s without taking the host down, and the built
//! component imports only what `wit/world.wit` promises.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/wasm_host.rs"]
mod wasm_host;

use bytes::Bytes;
use edgeq::api::{Api, ApiConfig};
use edgeq::engine::{Engine, Env};
use edgeq::model::Millis;
use edgeq::store::MemoryStore;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasm_host::{start_wasm_host, WasmHost};

/// A fixed clock and a counter for randomness.
struct TestEnv(AtomicU64);

impl Env for TestEnv {
    fn now(&self) -> Millis {
        1_700_000_000_000
    }
    fn random(&self) -> u64 {
        self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
    }
    async fn sleep(&self, _millis: u64) {}
}

/// Status and body the native `Api` gives for `req` on a fresh in-memory store;
/// a panic in the engine counts as the 500 a host would answer.
async fn native(req: http::Request<Bytes>) -> (u16, Bytes) {
    let answer = tokio::spawn(async move {
        let engine = Engine::new(MemoryStore::new(), TestEnv(AtomicU64::new(1)));
        let api = Api::new(engine, ApiConfig::default());
        api.handle(req).await
    })
    .await;
    match answer {
        Ok(response) => (response.status().as_u16(), response.into_body()),
        Err(_) => (500, Bytes::new()),
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Status and body of `method path` through the host.
async fn call(client: &HttpClient, host: &WasmHost, method: &str, path: &str) -> (u16, Bytes) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(host.url(path))
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let response = client.request(req).await.expect("the host answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("the whole body").to_bytes();
    (status, body)
}

fn get(path: &str) -> http::Request<Bytes> {
    http::Request::builder().method("GET").uri(path).body(Bytes::new()).expect("a valid request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_answers_like_the_native_api() {
    let host = start_wasm_host().await;
    let client = client();
    for path in ["/__heartbeat__", "/healthz"] {
        let through_wasm = call(&client, &host, "GET", path).await;
        let natively = native(get(path)).await;
        assert_eq!(through_wasm.0, natively.0, "status of GET {path}");
        if natively.0 != 500 {
            assert_eq!(through_wasm.1, natively.1, "body of GET {path}");
        }
    }
    assert_eq!(host.stats().requests.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_a_500_and_the_next_request_works() {
    let host = start_wasm_host().await;
    let client = client();
    let expected = native(get("/__heartbeat__")).await;

    // Every request opens the key-value bucket: make that call trap.
    host.trap_next_store_calls(1);
    let (status, _) = call(&client, &host, "GET", "/__heartbeat__").await;
    assert_eq!(status, 500);
    assert_eq!(host.stats().traps.load(Ordering::Relaxed), 1);

    let (status, _) = call(&client, &host, "GET", "/__heartbeat__").await;
    assert_eq!(status, expected.0, "the request after a trap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_each_get_their_own_instance() {
    let host = start_wasm_host().await;
    let client = client();
    let expected = native(get("/__heartbeat__")).await.0;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let client = client.clone();
        let url = host.url("/__heartbeat__");
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..25 {
                let req = hyper::Request::get(&url)
                    .body(Full::new(Bytes::new()))
                    .expect("a valid request");
                let response = client.request(req).await.expect("the host answers");
                statuses.push(response.status().as_u16());
                let _ = response.into_body().collect().await;
            }
            statuses
        });
    }
    while let Some(statuses) = tasks.join_next().await {
        for status in statuses.expect("client task") {
            assert_eq!(status, expected);
        }
    }
    assert_eq!(host.stats().requests.load(Ordering::Relaxed), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_body_over_the_limit_is_refused_before_reading() {
    let host = start_wasm_host().await;
    let path = "/v1/queues/q/messages";
    let (parts, ()) = http::Request::post(path).body(()).expect("a valid request").into_parts();
    let api =
        Api::new(Engine::new(MemoryStore::new(), TestEnv(AtomicU64::new(1))), ApiConfig::default());
    let limit = api.body_limit(&parts);
    let mut stream = tokio::net::TcpStream::connect(host.addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        limit + 1
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // No body is sent: the answer must come from the declared length alone.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut buf));
        let n = read.await.expect("the host answers without waiting for the body").expect("read");
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        if let Some(at) = find(&response, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&response[..at]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if response.len() >= at + 4 + len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "got {text}");
    let body = &response[find(&response, b"\r\n\r\n").expect("a head") + 4..];
    let expected = api.payload_too_large(&parts, limit);
    assert_eq!(body, expected.body().as_ref());
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every import of the built component is in `world edgeq` of `wit/world.wit`
/// (WASI 0.2 interfaces compared by major.minor, as hosts resolve them).
#[test]
fn the_component_imports_only_what_the_wit_world_lists() {
    let (engine, component) = wasm_host::shared_component().expect("the component compiles");
    let wit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wit/world.wit"))
        .expect("wit/world.wit");
    let world = wit
        .split("world edgeq {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("world edgeq in wit/world.wit");
    let listed: Vec<String> = world
        .lines()
        .filter_map(|l| l.trim().strip_prefix("import "))
        .map(|l| compatible(l.trim_end_matches(';')))
        .collect();
    let exported: Vec<String> = world
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .map(|l| compatible(l.trim_end_matches(';')))
        .collect();

    let ty = component.component_type();
    for (name, _) in ty.imports(&engine) {
        assert!(
            listed.contains(&compatible(name)),
            "the component imports {name}, which wit/world.wit does not list"
        );
    }
    let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| compatible(n)).collect();
    assert_eq!(exports, exported, "exports of the component");
}

/// `wasi:io/poll@0.2.6` -> `wasi:io/poll@0.2`; drafts stay exact.
fn compatible(name: &str) -> String {
    match name.split_once('@') {
        Some((iface, version)) if version.starts_with("0.") && !version.contains('-') => {
            let minor: Vec<&str> = version.splitn(3, '.').take(2).collect();
            format!("{iface}@{}", minor.join("."))
        }
        _ => name.to_owned(),
    }
}

/// Status of `method path` through `host`.
async fn status_of(client: &HttpClient, host: &WasmHost, method: &str, path: &str) -> u16 {
    call(client, host, method, path).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_variable_reaches_the_component() {
    let kv = std::sync::Arc::new(wasm_host::MemoryKv::default());
    let with_ns = |ns: &str| wasm_host::HostOptions {
        variables: vec![("namespace".into(), ns.into())],
        kv: Some(kv.clone()),
        ..Default::default()
    };
    let a = wasm_host::start_wasm_host_with(with_ns("alpha")).await;
    let b = wasm_host::start_wasm_host_with(with_ns("beta")).await;
    let a_again = wasm_host::start_wasm_host_with(with_ns("alpha")).await;
    let client = client();

    let created = status_of(&client, &a, "PUT", "/v1/queues/orders").await;
    assert!((200..300).contains(&created), "PUT a queue: {created}");
    assert_eq!(status_of(&client, &a_again, "GET", "/v1/queues/orders").await, 200);
    assert_eq!(status_of(&client, &b, "GET", "/v1/queues/orders").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_is_refused() {
    let host = start_wasm_host().await;
    let path = "/v1/queues/orders";
    let (parts, ()) = http::Request::put(path).body(()).expect("a valid request").into_parts();
    let api =
        Api::new(Engine::new(MemoryStore::new(), TestEnv(AtomicU64::new(1))), ApiConfig::default());
    let limit = api.body_limit(&parts);

    // No content-length: the component must count what it reads and stop.
    let mut request = format!(
        "PUT {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 8192];
    let mut sent = 0;
    while sent <= limit {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
        sent += chunk.len();
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let stream = tokio::net::TcpStream::connect(host.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    // Read while writing: the host answers, and may close, before it has read
    // everything (so writing may fail, and is not checked).
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(30), reader.read_to_end(&mut response));
    // A reset after the answer is fine: `response` keeps what was read.
    let _ = read.await.expect("the host answers");
    drop(writing.await);
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "got {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_breaks_off_is_a_400_and_the_next_request_works() {
    let host = start_wasm_host().await;
    let stream = tokio::net::TcpStream::connect(host.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    // 100 bytes declared, 10 sent, then the client stops writing.
    let head = "POST /v1/queues/orders/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n";
    writer.write_all(head.as_bytes()).await.expect("write");
    writer.write_all(&[b'x'; 10]).await.expect("write");
    writer.shutdown().await.expect("half-close");
    let mut response = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(30), reader.read_to_end(&mut response));
    let _ = read.await.expect("the host answers");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 400"), "got {text}");
    assert!(text.contains(r#""code":"bad_request""#), "got {text}");
    assert_eq!(host.stats().traps.load(Ordering::Relaxed), 0, "a client's failure is no trap");

    let client = client();
    let (status, _) = call(&client, &host, "GET", "/v1/queues/orders/messages").await;
    assert_eq!(status, 404, "nothing was stored: the queue does not even exist");
}
