//! A Redis outage under a running native server, end to end over loopback HTTP:
//! what the docs of `redis_store` promise an operator of
//! `edgeq serve --store redis://…` when Redis goes away for a while and comes back.
//!
//! - While Redis is down, requests that need the store answer
//!   `503 {"error":{"code":"store_unavailable","message":…}}` with `Retry-After: 1`
//!   (and `/healthz` answers 503): no hang, no panic, the server keeps running.
//! - Once Redis is back on the same port, the same server (not restarted, nobody
//!   touching it) serves every request again: not one answers 503, although each
//!   connection of the store's pool last failed to reconnect while Redis was down.
//! - With Redis persisting every write before answering (`--appendonly yes
//!   --appendfsync always`, restarted on the same `--dir`), every message whose send
//!   was acknowledged before the outage is still there: the queue is drained with
//!   `pop` and yields exactly the messages acknowledged before and after the
//!   outage, in the order they were sent, none twice.
//!
//! Nothing asserts on timing: [`HANG_GUARD`] only stops a hung test, and the time
//! each outage request took is printed next to the store's `RESPONSE_TIMEOUT`.

use edgeq_native::redis_store::{DEFAULT_CONNECTIONS, RESPONSE_TIMEOUT};
use edgeq_native::testing::{InProcessServer, RedisServer};
use edgeq_native::StoreSpec;
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Guards against a hung test (and each request against a hung server) only.
const HANG_GUARD: Duration = Duration::from_secs(120);
/// Messages sent and acknowledged before the outage.
const BEFORE: usize = 20;
/// Messages sent once Redis is back.
const AFTER: usize = 5;
/// Rounds of requests while Redis is down: enough for every connection of the
/// store's pool to be used (and fail) several times.
const OUTAGE_ROUNDS: usize = 2 * DEFAULT_CONNECTIONS;
/// Reads after the outage: each makes at least one store call, and calls take
/// the pool's connections round-robin, so every connection serves one.
const WARM_READS: usize = 2 * DEFAULT_CONNECTIONS;
/// How long Redis stays down after the requests of the outage.
const OUTAGE_PAUSE: Duration = Duration::from_secs(3);
const QUEUE: &str = "outage";

/// Asserts the server is still serving (its accept loop neither failed nor
/// panicked).
fn assert_running(server: &InProcessServer, when: &str) {
    assert!(!server.task.is_finished(), "the server stopped {when}");
}

/// One answer, read whole.
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    took: Duration,
}

impl Reply {
    async fn read(res: Response, started: Instant) -> Self {
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.bytes().await.expect("read the response body").to_vec();
        Reply { status, headers, body, took: started.elapsed() }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("an ASCII header value"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the documented answer of a failed store: `503`,
    /// `Retry-After: 1` and `{"error":{"code":"store_unavailable","message":…}}`
    /// (nothing else in either object).
    fn assert_store_unavailable(&self, what: &str) {
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/json"), "{what}");
        assert_eq!(self.header("retry-after"), Some("1"), "{what}");
        let body = self.json();
        let error = body["error"].as_object().unwrap_or_else(|| panic!("{what}: {body}"));
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{what}: {body}");
        assert_eq!(error.len(), 2, "{what}: {body}");
        assert_eq!(error["code"], "store_unavailable", "{what}: {body}");
        let message = error["message"].as_str().unwrap_or_else(|| panic!("{what}: {body}"));
        assert!(!message.is_empty(), "{what}: {body}");
    }
}

/// An HTTP client for the server: loopback only (no proxy), each request
/// bounded by [`HANG_GUARD`].
struct Http {
    client: Client,
    base: String,
}

impl Http {
    fn new(base: &str) -> Self {
        let client = Client::builder()
            .no_proxy()
            .timeout(HANG_GUARD)
            .build()
            .expect("build the HTTP client");
        Http { client, base: base.to_owned() }
    }

    /// Sends a request. A transport error (the server closed the connection
    /// without answering, as after a panic in its handler, or did not answer
    /// within the guard) fails the test.
    async fn call(&self, method: Method, path: &str, body: Option<(&str, &str)>) -> Reply {
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body.to_owned());
        }
        let started = Instant::now();
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer from the server: {e:?}"));
        Reply::read(res, started).await
    }

    async fn create_queue(&self) {
        let reply = self
            .call(Method::PUT, &format!("/v1/queues/{QUEUE}"), Some(("application/json", "{}")))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "create the queue: {}", reply.text());
    }

    async fn push(&self, body: &str) -> Reply {
        self.call(Method::POST, &format!("/v1/queues/{QUEUE}/messages"), Some(("text/plain", body)))
            .await
    }

    /// Sends `body` and returns its id; anything but `201` fails the test.
    async fn push_ok(&self, body: &str) -> String {
        let reply = self.push(body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "send {body}: {}", reply.text());
        let v = reply.json();
        assert_eq!(v["duplicate"], false, "send {body}: {v}");
        v["id"].as_str().unwrap_or_else(|| panic!("send {body}: no id in {v}")).to_owned()
    }

    async fn pop(&self) -> Reply {
        self.call(Method::POST, &format!("/v1/queues/{QUEUE}/pop"), None).await
    }

    async fn queue_info(&self) -> Reply {
        self.call(Method::GET, &format!("/v1/queues/{QUEUE}"), None).await
    }

    async fn healthz(&self) -> Reply {
        self.call(Method::GET, "/healthz", None).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_answers_503_then_the_same_server_serves_every_acknowledged_message() {
    tokio::time::timeout(HANG_GUARD * 3, outage()).await.expect("the test hung");
}

async fn outage() {
    let mut redis = RedisServer::start_persistent();
    // As `edgeq serve --store URL` starts (the store answers first).
    let server = InProcessServer::start(&StoreSpec::Redis(redis.url())).await;
    let http = Http::new(&server.url());

    // Before: a queue and BEFORE messages, each acknowledged with 201.
    http.create_queue().await;
    let mut sent: Vec<(String, String)> = Vec::new();
    for i in 0..BEFORE {
        let body = format!("before-{i}");
        sent.push((http.push_ok(&body).await, body));
    }

    // The outage: Redis is killed (SIGKILL) under the running server.
    let pid = redis.pid().expect("redis-server runs");
    tokio::task::block_in_place(|| redis.kill());
    println!("redis-server (pid {pid}) killed with SIGKILL");
    let mut slowest = Duration::ZERO;
    for round in 0..OUTAGE_ROUNDS {
        let push = http.push(&format!("during-{round}")).await;
        push.assert_store_unavailable(&format!("send during the outage (round {round})"));
        let pop = http.pop().await;
        pop.assert_store_unavailable(&format!("pop during the outage (round {round})"));
        let info = http.queue_info().await;
        info.assert_store_unavailable(&format!("queue info during the outage (round {round})"));
        let health = http.healthz().await;
        assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "healthz: {}", health.text());
        assert_eq!(health.json()["status"], "unavailable", "healthz: {}", health.text());
        for reply in [&push, &pop, &info, &health] {
            slowest = slowest.max(reply.took);
        }
        assert_running(&server, "during the outage");
        if round == 0 {
            println!("a send during the outage answered: {}", push.text());
        }
    }
    println!(
        "{} requests during the outage, each 503; the slowest took {slowest:?} \
         (RESPONSE_TIMEOUT {RESPONSE_TIMEOUT:?})",
        OUTAGE_ROUNDS * 4
    );

    // An outage longer than the store's attempts to reconnect (a few, within about
    // a second): each connection of the pool has given up on the dead Redis before
    // it comes back. Not a timing assertion: the test passes either way.
    tokio::time::sleep(OUTAGE_PAUSE).await;

    // Redis comes back on the same port and directory, with its append-only file.
    tokio::task::block_in_place(|| redis.restart());
    println!("redis-server restarted (pid {})", redis.pid().expect("redis-server runs"));
    assert_running(&server, "after Redis came back");

    // Every connection of the pool last failed to reconnect while Redis was down;
    // the first call on each finds that failure and tries again. Reads first (they
    // take the pool's connections round-robin), then sends.
    for _ in 0..WARM_READS {
        let info = http.queue_info().await;
        assert_eq!(info.status, StatusCode::OK, "queue info after the outage: {}", info.text());
        let v = info.json();
        assert_eq!(v["stats"]["messages"], BEFORE, "queue stats after the outage: {v}");
    }
    let health = http.healthz().await;
    assert_eq!(health.status, StatusCode::OK, "healthz after the outage: {}", health.text());

    // After: sends work again, without retries.
    for i in 0..AFTER {
        let body = format!("after-{i}");
        sent.push((http.push_ok(&body).await, body));
    }

    // Every acknowledged message, in order, once: pop until the queue is empty.
    let mut popped: Vec<(String, String)> = Vec::new();
    loop {
        let reply = http.pop().await;
        if reply.status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "pop after the outage: {}", reply.text());
        let id = reply.header("edgeq-message-id").expect("Edgeq-Message-Id").to_owned();
        popped.push((id, reply.text()));
        assert!(popped.len() <= sent.len(), "more pops than sends: {popped:?}");
    }
    let ids: HashSet<&str> = popped.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), popped.len(), "a message was popped twice: {popped:?}");
    let bodies = |v: &[(String, String)]| v.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>();
    assert_eq!(bodies(&popped), bodies(&sent), "popped bodies vs acknowledged sends");
    assert_eq!(popped, sent, "popped (id, body) vs acknowledged sends");
    println!("popped all {} acknowledged messages, in order, none twice", popped.len());

    assert_running(&server, "at the end");
    server.shutdown().await;
}
