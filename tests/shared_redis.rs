//! The wasm component (in the wasmtime test host) and a native server on one Redis
//! at once: what users who outgrow one machine run (`spin up` with
//! `runtime-config.redis.toml` beside `edgeq serve --store redis://…`). Each must
//! see the other's queues and messages, because both keep counters as decimal text
//! under `INCRBY` and values as raw bytes, and the engine relies on nothing else.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/wasm_host.rs"]
mod wasm_host;

use edgeq::api::{Api, ApiConfig};
use edgeq::engine::Engine;
use edgeq_native::testing::RedisServer;
use edgeq_native::{NativeStore, StoreSpec, SystemEnv};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use wasm_host::{start_wasm_host_with, HostOptions};

/// A native server on `spec`, stopped when the returned sender is dropped.
async fn start_native(spec: StoreSpec) -> (String, tokio::sync::oneshot::Sender<()>) {
    let store = NativeStore::open(&spec).expect("open the store");
    store.check().await.expect("the store answers");
    let api = Arc::new(Api::new(Engine::new(store, SystemEnv::default()), ApiConfig::default()));
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(edgeq_native::serve(listener, api, async move {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop)
}

/// One side of the pair: a base URL and a client.
struct Side {
    name: &'static str,
    base: String,
    http: reqwest::Client,
}

impl Side {
    async fn call(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "text/plain")
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {path}: {e}", self.name));
        let status = res.status().as_u16();
        (status, res.text().await.expect("a body"))
    }

    async fn push(&self, q: &str, body: &str) {
        let (status, answer) =
            self.call(reqwest::Method::POST, &format!("/v1/queues/{q}/messages"), body).await;
        assert_eq!(status, 201, "{}: push {body}: {answer}", self.name);
    }

    /// Pops one message; `None` when the queue is empty.
    async fn pop(&self, q: &str) -> Option<String> {
        let (status, body) =
            self.call(reqwest::Method::POST, &format!("/v1/queues/{q}/pop"), "").await;
        match status {
            200 => Some(body),
            204 => None,
            _ => panic!("{}: pop: {status} {body}", self.name),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn component_and_native_server_share_one_redis() {
    let redis = RedisServer::start();
    let (native_base, stop_native) = start_native(StoreSpec::Redis(redis.url())).await;
    let host =
        start_wasm_host_with(HostOptions { redis: Some(redis.url()), ..HostOptions::default() })
            .await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let native = Side { name: "native", base: native_base, http: http.clone() };
    let wasm = Side { name: "wasm", base: format!("http://{}", host.addr), http };

    // A queue created by the component is the native server's queue too.
    let (status, body) = wasm.call(reqwest::Method::PUT, "/v1/queues/shared", "").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = native.call(reqwest::Method::GET, "/v1/queues/shared", "").await;
    assert_eq!(status, 200, "{body}");

    // Push on one, pop on the other, both ways, in FIFO order.
    for (from, to) in [(&wasm, &native), (&native, &wasm)] {
        for i in 0..5 {
            from.push("shared", &format!("{}-{i}", from.name)).await;
        }
        for i in 0..5 {
            assert_eq!(to.pop("shared").await, Some(format!("{}-{i}", from.name)));
        }
        assert_eq!(to.pop("shared").await, None, "{} drained what {} sent", to.name, from.name);
    }

    // Both at once: every message sent by either is popped exactly once by either.
    let sides = Arc::new([native, wasm]);
    let mut producers = tokio::task::JoinSet::new();
    for s in 0..2 {
        let sides = sides.clone();
        producers.spawn(async move {
            for i in 0..50 {
                sides[s].push("shared", &format!("{}-{i}", sides[s].name)).await;
            }
        });
    }
    while let Some(done) = producers.join_next().await {
        done.expect("producer");
    }
    let mut consumers = tokio::task::JoinSet::new();
    for s in 0..2 {
        let sides = sides.clone();
        consumers.spawn(async move {
            let mut got = Vec::new();
            while let Some(body) = sides[s].pop("shared").await {
                got.push(body);
            }
            got
        });
    }
    let mut all = Vec::new();
    while let Some(got) = consumers.join_next().await {
        all.extend(got.expect("consumer"));
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a message was popped twice");
    assert_eq!(all.len(), 100, "every message was popped once");
    let (status, body) = sides[1].call(reqwest::Method::GET, "/v1/queues/shared", "").await;
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["stats"]["messages"], 0, "{stats}");

    drop(host);
    drop(stop_native);
}
