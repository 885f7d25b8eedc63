//! The engine alone, in process, on the memory store: time and store calls per
//! operation (no HTTP). `cargo bench --bench engine` (release build); `OPS=N`
//! sets the number of operations per phase (default 200,000).
//!
//! Store calls are counted through `FaultyStore` with a plan that never delays
//! or fails; times are measured on the bare `MemoryStore`.
//!
//! A second table times the same operations as requests through `Api::handle`
//! (routing, headers, the response; still no sockets), beside `GET /healthz`,
//! the yardstick of `benches/http.sh`: what a request adds to `/healthz` here is
//! the part of its cost that the engine and the HTTP layer own, without the
//! load tool, the kernel and the scheduler around it.
//!
//! A third table takes the memory store deep and shares it: pops from a queue
//! 1,000,000 deep on one thread and on two (both popping the same queue, as the
//! server's two workers do under `benches/http.sh`), and sends on two threads,
//! each as CPU time per operation (wall time × threads / operations). The
//! allocator is mimalloc, the native server's: with glibc's, two threads freeing
//! what a third allocated wait on its arena's lock, which the server never sees.

use bytes::Bytes;
use edgeq::api::{Api, ApiConfig};
use edgeq::engine::{Engine, ManualEnv, NewMessage, ReceiveOptions};
use edgeq::model::{Name, QueueConfig};
use edgeq::store::{FaultPlan, FaultyStore, MemoryStore, Store};
use futures::executor::block_on;
use http::{Method, Request, StatusCode};
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn ops() -> usize {
    std::env::var("OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000)
}

fn msg() -> NewMessage {
    NewMessage { body: Bytes::from(vec![b'x'; 128]), ..Default::default() }
}

/// Runs `ops` calls of `f` spread over `threads` threads; returns CPU
/// microseconds per call (wall time × threads / calls: on one thread, the
/// time a call takes).
fn timed(threads: usize, ops: usize, f: impl Fn() + Sync) -> f64 {
    let per = ops / threads;
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| (0..per).for_each(|_| f()));
        }
    });
    start.elapsed().as_secs_f64() * 1e6 * threads as f64 / (per * threads) as f64
}

fn phases<S: Store>(e: &Engine<S, ManualEnv>, n: usize) -> [(&'static str, f64); 4] {
    let (ns, q) = (Name::new("ns").unwrap(), Name::new("q").unwrap());
    block_on(e.put_queue(&ns, &q, QueueConfig::default())).unwrap();
    let send = timed(1, n, || {
        block_on(e.send(&ns, &q, vec![msg()])).unwrap().remove(0).unwrap();
    });
    let pop = timed(1, n / 2, || {
        assert_eq!(block_on(e.pop(&ns, &q, 1)).unwrap().len(), 1);
    });
    let opts = ReceiveOptions { count: 1, visibility_timeout: Some(30), partition: None };
    let receive_ack = timed(1, n / 2, || {
        let m = block_on(e.receive(&ns, &q, opts)).unwrap().remove(0);
        block_on(e.ack(&ns, &q, &[m.receipt.unwrap()])).unwrap().remove(0).unwrap();
    });
    let empty = timed(1, n, || {
        assert!(block_on(e.pop(&ns, &q, 1)).unwrap().is_empty());
    });
    [("send", send), ("pop", pop), ("receive+ack", receive_ack), ("empty pop", empty)]
}

/// The `benches/http.sh` requests through `Api::handle`, one at a time.
fn requests(n: usize) -> [(&'static str, f64); 4] {
    let api = Api::new(
        Engine::new(MemoryStore::new(), ManualEnv::new(1_800_000_000_000, 1)),
        ApiConfig::default(),
    );
    let call = |method: &Method, path: &str, body: &Bytes| {
        let req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("content-type", "application/octet-stream")
            .body(body.clone())
            .unwrap();
        block_on(api.handle(req)).status()
    };
    let none = Bytes::new();
    for q in ["/v1/queues/bench", "/v1/queues/empty"] {
        assert!(call(&Method::PUT, q, &none).is_success());
    }
    let body = Bytes::from(vec![b'm'; 128]);
    let timed_request = |method: Method, path: &str, body: &Bytes, want: StatusCode| {
        timed(1, n, || assert_eq!(call(&method, path, body), want))
    };
    [
        ("GET /healthz", timed_request(Method::GET, "/healthz", &none, StatusCode::OK)),
        (
            "push",
            timed_request(Method::POST, "/v1/queues/bench/messages", &body, StatusCode::CREATED),
        ),
        ("pop", timed_request(Method::POST, "/v1/queues/bench/pop", &none, StatusCode::OK)),
        (
            "empty pop",
            timed_request(Method::POST, "/v1/queues/empty/pop", &none, StatusCode::NO_CONTENT),
        ),
    ]
}

/// The third table: a deep queue, popped and sent to by one and two threads.
fn deep(n: usize) -> [(&'static str, f64); 3] {
    const DEPTH: usize = 1_000_000;
    let e = Arc::new(Engine::new(MemoryStore::new(), ManualEnv::new(1_800_000_000_000, 1)));
    let (ns, q) = (Name::new("ns").unwrap(), Name::new("q").unwrap());
    block_on(e.put_queue(&ns, &q, QueueConfig::default())).unwrap();
    for _ in 0..(DEPTH + n) / 1000 {
        let sent = block_on(e.send(&ns, &q, (0..1000).map(|_| msg()).collect())).unwrap();
        assert!(sent.iter().all(Result::is_ok));
    }
    let pop = || assert_eq!(block_on(e.pop(&ns, &q, 1)).unwrap().len(), 1);
    let send = || {
        block_on(e.send(&ns, &q, vec![msg()])).unwrap().remove(0).unwrap();
    };
    [
        ("pop, 1 thread", timed(1, n / 2, pop)),
        ("pop, 2 threads", timed(2, n / 2, pop)),
        ("send, 2 threads", timed(2, n, send)),
    ]
}

fn main() {
    let n = ops();
    let timing = Engine::new(MemoryStore::new(), ManualEnv::new(1_800_000_000_000, 1));
    let times = phases(&timing, n);
    let plan = FaultPlan { seed: 1, max_delay: 0, fail_before_ppm: 0, fail_after_ppm: 0 };
    let counted = Engine::new(
        FaultyStore::new(MemoryStore::new(), plan),
        ManualEnv::new(1_800_000_000_000, 1),
    );
    let calls_n = 10_000;
    let (ns, q) = (Name::new("ns").unwrap(), Name::new("q").unwrap());
    let mut calls = Vec::new();
    block_on(counted.put_queue(&ns, &q, QueueConfig::default())).unwrap();
    let mut count = |f: &mut dyn FnMut()| {
        let before = counted.store().calls();
        for _ in 0..calls_n {
            f();
        }
        calls.push((counted.store().calls() - before) as f64 / calls_n as f64);
    };
    count(&mut || drop(block_on(counted.send(&ns, &q, vec![msg()])).unwrap()));
    count(&mut || assert_eq!(block_on(counted.pop(&ns, &q, 1)).unwrap().len(), 1));
    println!("{:<12} {:>10} {:>12}", "operation", "µs/op", "store calls");
    for (i, (name, us)) in times.iter().enumerate() {
        let c = calls.get(i).map_or(String::from("-"), |c| format!("{c:.2}"));
        println!("{name:<12} {us:>10.2} {c:>12}");
    }
    println!("\n{:<12} {:>10}   (through Api::handle)", "request", "µs/req");
    for (name, us) in requests(n) {
        println!("{name:<12} {us:>10.2}");
    }
    println!("\n{:<16} {:>10}   (1,000,000 queued)", "operation", "CPU µs/op");
    for (name, us) in deep(n) {
        println!("{name:<16} {us:>10.2}");
    }
}
