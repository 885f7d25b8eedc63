//! Crash test: the `edgeq` binary on its durable redb file is `kill -9`ed at random
//! moments while producers and consumers (pop mode) run against it, and restarted
//! on the same file, round after round. At the end the queue is drained and every
//! send that got a 2xx must have been popped exactly once overall.
//!
//! Pop is at-most-once: a pop whose answer the kill cut off may have taken its
//! message with it. Such pops ("possibly consumed": requests in flight at a kill)
//! are counted, and acknowledged messages never popped may number at most that
//! many; a message popped twice, or a body nobody sent, fails the test whatever
//! the count. Sends cut off by a kill are not acknowledged: their message may or
//! may not appear, but never twice.
//!
//! Clients pause while the server is down (they wait for it to be marked up
//! again), so a request that fails was sent while the server lived: that is what
//! makes "in flight at the kill" exact enough to count.
//!
//! `EDGEQ_CRASH_ROUNDS` (default 20) sets the rounds, `EDGEQ_CRASH_SEED` the
//! seed of the kill moments (printed, for a rerun).

#[path = "../examples/stress/checker.rs"]
mod checker;

use bytes::Bytes;
use checker::Conn;
use edgeq_native::testing::EdgeqProcess;
use http::Method;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PRODUCERS: u64 = 3;
const CONSUMERS: u64 = 3;
const QUEUE: &str = "crash";
/// Guards against a hung server start only; nothing asserts on timing.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long the final drain may wait for a message a killed pop left held
/// (the engine's pop hold is 30 s, its writer grace 5 s).
const DRAIN_LIMIT: Duration = Duration::from_secs(50);
/// Once every acknowledged message is accounted for, how long the queue must
/// stay empty before the drain ends (longer than the writer grace).
const QUIET: Duration = Duration::from_secs(7);

/// Starts `edgeq serve` on `listen` over `store`; retries while the port is not
/// free again yet.
fn start(listen: &str, store: &str) -> EdgeqProcess {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let args = ["--listen", listen, "--store", store];
        match EdgeqProcess::spawn(env!("CARGO_BIN_EXE_edgeq"), &args, 1, START_LIMIT) {
            Ok(server) => return server,
            Err(e) => assert!(Instant::now() < deadline, "edgeq did not start on {listen}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the clients saw.
#[derive(Default)]
struct Ledger {
    /// Sends answered 2xx.
    acked: HashSet<(u64, u64)>,
    /// Every send attempted (answered or not).
    attempted: HashSet<(u64, u64)>,
    /// Pops answered 200, per message.
    popped: HashMap<(u64, u64), u32>,
    /// Pops that failed while the server lived (in flight at a kill, or a 5xx).
    possibly_consumed: u64,
    /// Sends that failed: their message may or may not be there.
    sends_unknown: u64,
    /// Bodies that parse as no message sent.
    phantom: Vec<String>,
}

/// What clients and the kill loop share.
#[derive(Default)]
struct Shared {
    /// The server is up: clients may send. Cleared before each kill.
    up: AtomicBool,
    /// Clients stop.
    stop: AtomicBool,
    ledger: Mutex<Ledger>,
}

impl Shared {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the server is up; `false` when told to stop.
    async fn wait_up(&self) -> bool {
        while !self.up.load(Ordering::SeqCst) {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        !self.stop.load(Ordering::SeqCst)
    }
}

/// `p:seq` → `(p, seq)`.
fn parse(body: &[u8]) -> Option<(u64, u64)> {
    let (p, seq) = std::str::from_utf8(body).ok()?.split_once(':')?;
    Some((p.parse().ok()?, seq.parse().ok()?))
}

async fn produce(p: u64, url: String, shared: Arc<Shared>) {
    let mut conn = Conn::new(&url).await.expect("the server's address");
    let path = format!("/v1/queues/{QUEUE}/messages");
    let mut seq = 0;
    while shared.wait_up().await {
        let id = (p, seq);
        seq += 1;
        shared.ledger().attempted.insert(id);
        let body = Bytes::from(format!("{p}:{}", id.1));
        match conn.call(Method::POST, &path, "text/plain", body).await {
            Ok(a) if (200..300).contains(&a.status) => {
                shared.ledger().acked.insert(id);
            }
            _ => shared.ledger().sends_unknown += 1,
        }
    }
}

/// Pops one message; records it. `Some(true)` popped, `Some(false)` empty, `None`
/// failed.
async fn pop_one(conn: &mut Conn, shared: &Shared) -> Option<bool> {
    let path = format!("/v1/queues/{QUEUE}/pop");
    match conn.call(Method::POST, &path, "text/plain", Bytes::new()).await {
        Ok(a) if a.status == 200 => {
            let mut ledger = shared.ledger();
            match parse(&a.body) {
                Some(id) => *ledger.popped.entry(id).or_default() += 1,
                None => ledger.phantom.push(String::from_utf8_lossy(&a.body).into_owned()),
            }
            Some(true)
        }
        Ok(a) if a.status == 204 => Some(false),
        _ => {
            shared.ledger().possibly_consumed += 1;
            None
        }
    }
}

async fn consume(url: String, shared: Arc<Shared>) {
    let mut conn = Conn::new(&url).await.expect("the server's address");
    while shared.wait_up().await {
        if pop_one(&mut conn, &shared).await != Some(true) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A small deterministic generator for the kill moments.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = edgeq::engine::splitmix64(self.0);
        self.0 % n
    }
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing_acknowledged() {
    let rounds: usize =
        std::env::var("EDGEQ_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("EDGEQ_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 ^ 0x5eed);
    println!("crash test: {rounds} rounds, EDGEQ_CRASH_SEED={seed}");
    let mut rng = Rng(seed);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = format!("redb:{}", dir.path().join("edgeq.redb").display());
    let mut server = start("127.0.0.1:0", &store);
    let listen = server.addr().to_string();
    let url = format!("http://{listen}");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let shared = Arc::new(Shared::default());
    runtime.block_on(async {
        let mut admin = Conn::new(&url).await.unwrap();
        let path = format!("/v1/queues/{QUEUE}");
        let created = admin.call(Method::PUT, &path, "text/plain", Bytes::new()).await;
        assert_eq!(created.expect("create the queue").status, 201);
    });
    shared.up.store(true, Ordering::SeqCst);
    let mut clients = Vec::new();
    for p in 0..PRODUCERS {
        clients.push(runtime.spawn(produce(p, url.clone(), shared.clone())));
    }
    for _ in 0..CONSUMERS {
        clients.push(runtime.spawn(consume(url.clone(), shared.clone())));
    }

    for _ in 0..rounds {
        // Let the clients run for a random moment, then kill -9 mid-traffic.
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        shared.up.store(false, Ordering::SeqCst);
        drop(server); // kill -9
        server = start(&listen, &store);
        shared.up.store(true, Ordering::SeqCst);
    }
    shared.stop.store(true, Ordering::SeqCst);
    runtime.block_on(async {
        for client in clients {
            client.await.expect("client task");
        }
    });

    // Drain with one consumer: until every acknowledged message is accounted
    // for and the queue stayed empty for a while, or the drain limit.
    runtime.block_on(async {
        let mut conn = Conn::new(&url).await.unwrap();
        let started = Instant::now();
        let mut empty_since = Instant::now();
        while started.elapsed() < DRAIN_LIMIT {
            match pop_one(&mut conn, &shared).await {
                Some(true) => empty_since = Instant::now(),
                _ => {
                    let missing = {
                        let ledger = shared.ledger();
                        ledger.acked.iter().filter(|id| !ledger.popped.contains_key(id)).count()
                    };
                    if missing == 0 && empty_since.elapsed() >= QUIET {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    drop(server); // kill -9

    let ledger = shared.ledger();
    let lost: Vec<_> = ledger.acked.iter().filter(|id| !ledger.popped.contains_key(id)).collect();
    let duplicated: Vec<_> = ledger.popped.iter().filter(|(_, n)| **n > 1).collect();
    let unknown: Vec<_> =
        ledger.popped.keys().filter(|id| !ledger.attempted.contains(id)).collect();
    println!(
        "crash test: {rounds} kills; {} sends acknowledged, {} failed; {} messages popped; \
         lost {}, possibly consumed (pops in flight at a kill) {}, duplicated {}, phantom {}",
        ledger.acked.len(),
        ledger.sends_unknown,
        ledger.popped.len(),
        lost.len(),
        ledger.possibly_consumed,
        duplicated.len(),
        ledger.phantom.len() + unknown.len(),
    );
    assert!(!ledger.acked.is_empty(), "no send was acknowledged: the test tested nothing");
    assert!(duplicated.is_empty(), "popped more than once: {duplicated:?}");
    assert!(ledger.phantom.is_empty() && unknown.is_empty(), "bodies nobody sent");
    assert!(
        lost.len() as u64 <= ledger.possibly_consumed,
        "{} acknowledged messages were never popped, more than the {} pops a kill cut off: {lost:?}",
        lost.len(),
        ledger.possibly_consumed
    );
}
