//! The stress checker (`examples/stress/checker.rs`) at small scale against real
//! servers over loopback: memory, redb, Redis, and two servers sharing one Redis.
//! Pop mode must lose nothing acknowledged and deliver nothing twice; receive +
//! ack mode must lose nothing and redeliver only after a lease could have expired.
//! The full-size figures (8 × 8 × 100,000) are in `benches/README.md`.
//!
//! Messages the engine only delays past the drain timeout (see the checker's
//! docs: "late") are delivered by a lone sweep and are not counted lost; the
//! row printed by each test shows them.

#[path = "../examples/stress/checker.rs"]
mod checker;

use checker::{Config, Mode, Report};
use edgeq::api::{Api, ApiConfig};
use edgeq::engine::Engine;
use edgeq_native::testing::RedisServer;
use edgeq_native::{serve, NativeStore, StoreSpec, SystemEnv};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Messages per run: enough for every producer and consumer to interleave many
/// times, few enough for a debug build.
const MESSAGES: u64 = 1_200;

/// A native server on `spec`; stops when the sender is dropped.
async fn start(spec: &StoreSpec) -> (String, oneshot::Sender<()>) {
    let store = NativeStore::open(spec).expect("open the store");
    store.check().await.expect("the store answers");
    let api = Arc::new(Api::new(Engine::new(store, SystemEnv::default()), ApiConfig::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, api, async move {
        let _ = stopped.await;
    }));
    (url, stop)
}

/// Runs the checker with 4 producers and 4 consumers against `urls`.
async fn check(label: &str, urls: Vec<String>, mode: Mode) -> Report {
    let mut config = Config::new(urls, 4, 4, MESSAGES, mode);
    config.label = label.into();
    config.drain_timeout = std::time::Duration::from_secs(30);
    let report = checker::run(&config).await.expect("the checker runs");
    println!("{}\n{}", Report::header(), report.row());
    assert_eq!(report.sent, MESSAGES, "{label}");
    assert_eq!(report.acked, MESSAGES, "{label}: every send answered 2xx");
    assert_eq!(
        report.errors, 0,
        "{label}: no request failed; first failures: {:#?}",
        report.failures
    );
    assert_eq!(report.lost, 0, "{label}: acknowledged messages lost");
    assert_eq!(report.phantom, 0, "{label}: bodies nobody sent");
    assert_eq!(report.bad_duplicates(), 0, "{label}: duplicated deliveries");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pop_on_memory_loses_and_duplicates_nothing() {
    let (url, _stop) = start(&StoreSpec::Memory).await;
    let report = check("memory", vec![url], Mode::Pop).await;
    assert_eq!(report.duplicated, 0);
    assert_eq!(report.received, MESSAGES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_and_ack_on_memory_loses_nothing() {
    let (url, _stop) = start(&StoreSpec::Memory).await;
    let report = check("memory", vec![url], Mode::Receive).await;
    // Leases of 30 s never expire in this run: every message is delivered once.
    assert_eq!(report.received, MESSAGES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pop_on_redb_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (url, _stop) = start(&StoreSpec::Redb(dir.path().join("edgeq.redb"))).await;
    let report = check("redb", vec![url], Mode::Pop).await;
    assert_eq!(report.duplicated, 0);
    assert_eq!(report.received, MESSAGES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pop_on_redis_loses_and_duplicates_nothing() {
    let redis = RedisServer::start();
    let (url, stop) = start(&StoreSpec::Redis(redis.url())).await;
    let report = check("redis", vec![url], Mode::Pop).await;
    assert_eq!(report.duplicated, 0);
    assert_eq!(report.received, MESSAGES);
    drop(stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pop_on_two_servers_sharing_one_redis_loses_and_duplicates_nothing() {
    let redis = RedisServer::start();
    let spec = StoreSpec::Redis(redis.url());
    let (a, stop_a) = start(&spec).await;
    let (b, stop_b) = start(&spec).await;
    // Producers and consumers alternate between the servers, so most messages
    // are sent through one server and popped through the other.
    let report = check("2 servers, 1 redis", vec![a, b], Mode::Pop).await;
    assert_eq!(report.duplicated, 0);
    assert_eq!(report.received, MESSAGES);
    drop((stop_a, stop_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_and_ack_on_two_servers_sharing_one_redis_loses_nothing() {
    let redis = RedisServer::start();
    let spec = StoreSpec::Redis(redis.url());
    let (a, stop_a) = start(&spec).await;
    let (b, stop_b) = start(&spec).await;
    check("2 servers, 1 redis", vec![a, b], Mode::Receive).await;
    drop((stop_a, stop_b));
}
