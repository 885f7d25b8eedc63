//! edgeq's fuzz targets, as plain functions of the fuzzer's bytes, so that
//! `cargo fuzz` (the thin `fuzz_targets/*.rs`) and the stable-toolchain runner
//! (`src/bin/random.rs`, which CI runs) drive the same code.
//!
//! - [`api`]: a sequence of arbitrary requests (method, path from a dictionary of
//!   segments of every route set plus arbitrary text, query, headers, raw or
//!   JSON-shaped body) into one `Api` over a `MemoryStore`. It must never panic
//!   and never answer 500 (the memory store cannot fail, so a 500 is a bug), and
//!   every 4xx of the v1 routes must be a JSON error `{"error":{"code","message"}}`.
//! - [`engine`]: a sequence of engine operations (send, pop, receive, ack, time
//!   passing) on a `MemoryStore`, checked against a model: a `VecDeque` of ids per
//!   partition plus each message's lease. First deliveries come in send order per
//!   partition, nothing acked or popped comes back, nothing leased comes back
//!   before its lease ends, and a final drain returns every message still held,
//!   exactly once.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use edgeq::api::{Api, ApiConfig};
use edgeq::engine::{Engine, ManualEnv, NewMessage, Receipt, ReceiveOptions};
use edgeq::model::{Name, QueueConfig};
use edgeq::store::MemoryStore;
use futures::executor::block_on;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests [`api`] handed to `Api::handle` so far in this process (the runner
/// reports it: inputs the `http` crate refuses never reach the API).
pub static API_REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Engine operations [`engine`] ran so far in this process.
pub static ENGINE_OPS: AtomicU64 = AtomicU64::new(0);

/// A fixed start time: 2025-01-01.
const EPOCH: u64 = 1_735_689_600_000;

/// Up to `most` elements, their number read first. (`arbitrary`'s own `Vec`
/// reads a continuation bit before each element, which makes random inputs, as
/// the stable runner feeds, average one element.)
fn sequence<'a, T: Arbitrary<'a>>(
    u: &mut Unstructured<'a>,
    most: usize,
) -> arbitrary::Result<Vec<T>> {
    let n = u.int_in_range(0..=most)?;
    (0..n).map(|_| u.arbitrary()).collect()
}

// ---------------------------------------------------------------------------
// Target (a): requests into the API
// ---------------------------------------------------------------------------

/// Path segments of every route set (v1 and the dialects), queue names, and
/// hostile forms. A new dialect prefix added here is covered at once.
const SEGMENTS: &[&str] = &[
    "v1",
    "queues",
    "exchanges",
    "bindings",
    "publish",
    "messages",
    "batch",
    "pop",
    "receive",
    "ack",
    "nack",
    "extend",
    "purge",
    "rest_queue",
    "memfifo",
    "queuey",
    "monty",
    "healthz",
    "__heartbeat__",
    "q",
    "orders",
    "dlq",
    "",
    ".",
    "..",
    "%00",
    "%2F",
    "%ZZ",
    "a%20b",
    "ünï",
    "-",
    "_",
    "x.y",
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678901",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"];
const HEADERS: &[&str] = &[
    "content-type",
    "edgeq-delay",
    "edgeq-ttl",
    "edgeq-partition",
    "idempotency-key",
    "authorization",
    "x-api-key",
    "accept",
    "content-length",
    "transfer-encoding",
    "x-other",
];
const QUERY_KEYS: &[&str] = &[
    "count",
    "visibility_timeout",
    "wait",
    "partition",
    "after",
    "limit",
    "order",
    "prefix",
    "cursor",
    "details",
    "if_empty",
    "key",
];
const JSON_KEYS: &[&str] = &[
    "visibility_timeout",
    "delay",
    "max_receives",
    "dead_letter_queue",
    "partitions",
    "message_ttl",
    "max_messages",
    "max_bytes",
    "public",
    "receipts",
    "messages",
    "body",
    "body_base64",
    "content_type",
    "ttl",
    "partition",
    "idempotency_key",
    "count",
    "x",
    "type",
    "key",
    "direct",
    "topic",
    "fanout",
];

/// One path segment.
#[derive(Debug, Arbitrary)]
enum Seg {
    Known(u8),
    /// The last message id or receipt an answer carried.
    Remembered(bool),
    Text(String),
}

/// A JSON-shaped body, keys from the API's own fields (and `type` values).
#[derive(Debug, Arbitrary)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Big(u64),
    Float(f64),
    Str(String),
    /// A word of the dictionary as a string value (`"topic"`, a field name).
    Word(u8),
    /// The last receipt or id seen.
    Remembered(bool),
    Arr(Vec<Json>),
    Obj(Vec<(u8, Json)>),
}

#[derive(Debug, Arbitrary)]
enum Body {
    Raw(Vec<u8>),
    Json(Json),
}

#[derive(Debug, Arbitrary)]
struct Req {
    method: u8,
    path: Vec<Seg>,
    query: Vec<(u8, String)>,
    headers: Vec<(u8, Vec<u8>)>,
    body: Body,
    /// Milliseconds the clock moves before the request.
    advance: u16,
}

/// What earlier answers handed out, for later requests to use.
#[derive(Default)]
struct Memory {
    id: String,
    receipt: String,
}

impl Memory {
    fn pick(&self, receipt: bool) -> &str {
        if receipt {
            &self.receipt
        } else {
            &self.id
        }
    }
}

fn json(value: &Json, memory: &Memory) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Int(n) => Value::from(*n),
        Json::Big(n) => Value::from(*n),
        Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Json::Str(s) => Value::String(s.clone()),
        Json::Word(i) => Value::String(JSON_KEYS[*i as usize % JSON_KEYS.len()].to_owned()),
        Json::Remembered(r) => Value::String(memory.pick(*r).to_owned()),
        Json::Arr(items) => Value::Array(items.iter().map(|v| json(v, memory)).collect()),
        Json::Obj(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    (JSON_KEYS[*k as usize % JSON_KEYS.len()].to_owned(), json(v, memory))
                })
                .collect(),
        ),
    }
}

/// Appends `text` with what a URI may not hold percent-encoded (`%` itself is
/// kept, so malformed escapes still reach the API).
fn push_encoded(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*+,;=:@%".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Builds the request, or `None` when the `http` crate refuses it (a server never
/// gets such a request). Header values it refuses are left out.
fn build(req: &Req, memory: &Memory) -> Option<http::Request<Bytes>> {
    let mut path = String::new();
    for seg in req.path.iter().take(8) {
        path.push('/');
        match seg {
            Seg::Known(i) => path.push_str(SEGMENTS[*i as usize % SEGMENTS.len()]),
            Seg::Remembered(r) => path.push_str(memory.pick(*r)),
            Seg::Text(s) => push_encoded(&mut path, s),
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    for (n, (k, v)) in req.query.iter().take(4).enumerate() {
        path.push(if n == 0 { '?' } else { '&' });
        path.push_str(QUERY_KEYS[*k as usize % QUERY_KEYS.len()]);
        path.push('=');
        push_encoded(&mut path, v);
    }
    let method = METHODS[req.method as usize % METHODS.len()];
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in req.headers.iter().take(6) {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            builder = builder.header(HEADERS[*name as usize % HEADERS.len()], value);
        }
    }
    let body = match &req.body {
        Body::Raw(bytes) => Bytes::from(bytes.clone()),
        Body::Json(value) => Bytes::from(json(value, memory).to_string()),
    };
    builder.body(body).ok()
}

/// Target (a): see the crate docs.
pub fn api(data: &[u8]) {
    let Ok(reqs) = sequence::<Req>(&mut Unstructured::new(data), 12) else { return };
    let env = ManualEnv::new(EPOCH, 1);
    let api = Api::new(Engine::new(MemoryStore::new(), env.clone()), ApiConfig::default());
    let mut memory = Memory::default();
    for req in &reqs {
        env.advance(u64::from(req.advance));
        let Some(request) = build(req, &memory) else { continue };
        let v1 = request.uri().path().starts_with("/v1/");
        let (parts, body) = request.into_parts();
        // The server refuses a body over the limit before `handle` sees it.
        if body.len() > api.body_limit(&parts) {
            continue;
        }
        let what = format!("{} {}", parts.method, parts.uri);
        API_REQUESTS.fetch_add(1, Ordering::Relaxed);
        let res = block_on(api.handle(http::Request::from_parts(parts, body)));
        let status = res.status().as_u16();
        assert!(status != 500 && status != 503, "{what}: {status} {:?}", res.body());
        if v1 && (400..500).contains(&status) && !what.starts_with("HEAD") {
            let error: serde_json::Value = serde_json::from_slice(res.body())
                .unwrap_or_else(|e| panic!("{what}: {status} body is not JSON ({e})"));
            assert!(error["error"]["code"].is_string(), "{what}: {status} {error}");
            assert!(error["error"]["message"].is_string(), "{what}: {status} {error}");
        }
        let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok());
        if let Some(id) = header("edgeq-message-id") {
            memory.id = id.to_owned();
        }
        if let Some(receipt) = header("edgeq-receipt") {
            memory.receipt = receipt.to_owned();
        }
    }
}

// ---------------------------------------------------------------------------
// Target (b): engine operations against a model
// ---------------------------------------------------------------------------

#[derive(Debug, Arbitrary)]
enum Op {
    Send {
        partition: u8,
    },
    Pop {
        count: u8,
    },
    Receive {
        count: u8,
        visibility: u8,
    },
    /// Acks the n-th receipt handed out so far.
    Ack {
        nth: u8,
    },
    /// Moves the clock forward by this many seconds.
    Advance {
        seconds: u8,
    },
}

/// What the model knows of one message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Never delivered.
    Fresh,
    /// Leased by `receipt` (index in `receipts`) until `until`.
    Leased { receipt: usize, until: u64 },
    /// Popped, or acked while its lease held.
    Gone,
}

/// Target (b): see the crate docs.
pub fn engine(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(partitions) = u.int_in_range::<u16>(1..=3) else { return };
    let Ok(ops) = sequence::<Op>(&mut u, 64) else { return };
    let env = ManualEnv::new(EPOCH, 7);
    let engine = Engine::new(MemoryStore::new(), env.clone());
    let ns = Name::new("default").expect("a valid name");
    let q = Name::new("model").expect("a valid name");
    let config = QueueConfig { partitions, ..QueueConfig::default() };
    block_on(engine.put_queue(&ns, &q, config)).expect("create the queue");

    // Model: ids in send order per partition (fresh ones only), each id's state.
    let mut fresh: Vec<VecDeque<u64>> = vec![VecDeque::new(); partitions as usize];
    let mut state: HashMap<u64, State> = HashMap::new();
    let mut receipts: Vec<(Receipt, u64)> = Vec::new();
    let mut next_id = 0u64;
    let now = |env: &ManualEnv| edgeq::engine::Env::now(env);

    // A delivered message: checks it against the model and records it.
    let delivered = |id: u64,
                     lease: Option<(usize, u64)>,
                     now: u64,
                     fresh: &mut Vec<VecDeque<u64>>,
                     state: &mut HashMap<u64, State>| {
        let Some(s) = state.get(&id).copied() else { panic!("delivered {id}, never sent") };
        match s {
            State::Gone => panic!("delivered {id} again after it was popped or acked"),
            State::Leased { until, .. } => {
                assert!(
                    until <= now,
                    "delivered {id} while its lease held (until {until}, now {now})"
                )
            }
            State::Fresh => {
                let lane =
                    fresh.iter_mut().find(|l| l.contains(&id)).expect("a fresh id is in a lane");
                assert_eq!(lane.front(), Some(&id), "first deliveries are FIFO per partition");
                lane.pop_front();
            }
        }
        let next = match lease {
            Some((receipt, until)) => State::Leased { receipt, until },
            None => State::Gone,
        };
        state.insert(id, next);
    };
    let id_of = |body: &[u8]| -> u64 {
        std::str::from_utf8(body).ok().and_then(|s| s.parse().ok()).expect("a body the model sent")
    };

    for op in &ops {
        ENGINE_OPS.fetch_add(1, Ordering::Relaxed);
        match *op {
            Op::Send { partition } => {
                let p = partition as u16 % partitions;
                let id = next_id;
                next_id += 1;
                let m = NewMessage {
                    body: Bytes::from(id.to_string()),
                    partition: Some(p),
                    ..NewMessage::default()
                };
                let sent = block_on(engine.send(&ns, &q, vec![m])).expect("send");
                assert!(sent[0].is_ok(), "send: {:?}", sent[0]);
                fresh[p as usize].push_back(id);
                state.insert(id, State::Fresh);
            }
            Op::Pop { count } => {
                let count = 1 + count as usize % 3;
                let got = block_on(engine.pop(&ns, &q, count)).expect("pop");
                assert!(got.len() <= count);
                for m in got {
                    delivered(id_of(&m.body), None, now(&env), &mut fresh, &mut state);
                }
            }
            Op::Receive { count, visibility } => {
                let count = 1 + count as usize % 3;
                let vt = 1 + u64::from(visibility % 5);
                let opts = ReceiveOptions { count, visibility_timeout: Some(vt), partition: None };
                let got = block_on(engine.receive(&ns, &q, opts)).expect("receive");
                for m in got {
                    let receipt = m.receipt.expect("a received message has a receipt");
                    let until = m.lease_until.expect("a received message has a lease");
                    let id = id_of(&m.body);
                    receipts.push((receipt, id));
                    delivered(
                        id,
                        Some((receipts.len() - 1, until)),
                        now(&env),
                        &mut fresh,
                        &mut state,
                    );
                }
            }
            Op::Ack { nth } => {
                if receipts.is_empty() {
                    continue;
                }
                let i = nth as usize % receipts.len();
                let (receipt, id) = receipts[i];
                let result = block_on(engine.ack(&ns, &q, &[receipt])).expect("ack");
                match state[&id] {
                    // The receipt's own lease still holds: the ack must take.
                    State::Leased { receipt: r, until } if r == i && until > now(&env) => {
                        assert!(result[0].is_ok(), "ack of a live lease: {:?}", result[0]);
                        state.insert(id, State::Gone);
                    }
                    // Its lease ended but nobody took it over: either answer is
                    // fine, and an ack that took makes the message gone.
                    State::Leased { receipt: r, .. } if r == i => {
                        if result[0].is_ok() {
                            state.insert(id, State::Gone);
                        }
                    }
                    // A later lease exists: this receipt is stale.
                    State::Leased { .. } => {
                        assert!(result[0].is_err(), "ack of a stale receipt took: {id}")
                    }
                    State::Gone | State::Fresh => {}
                }
            }
            Op::Advance { seconds } => env.advance(u64::from(seconds % 16) * 1000),
        }
    }

    // Drain: past every lease, every message still held comes out exactly once.
    env.advance(60_000);
    let held: usize = state.values().filter(|s| **s != State::Gone).count();
    let mut calls = 0;
    loop {
        let got = block_on(engine.pop(&ns, &q, 3)).expect("pop");
        for m in &got {
            delivered(id_of(&m.body), None, now(&env), &mut fresh, &mut state);
        }
        let left = state.values().filter(|s| **s != State::Gone).count();
        if left == 0 {
            break;
        }
        calls += 1;
        // A scan visits 32 slots per call: enough calls to pass every slot twice.
        assert!(
            calls < 16 + 2 * next_id as usize,
            "{left} of {held} held messages never came back (ids: {:?})",
            state.iter().filter(|(_, s)| **s != State::Gone).map(|(id, _)| id).collect::<Vec<_>>()
        );
    }
    assert!(block_on(engine.pop(&ns, &q, 3)).expect("pop").is_empty(), "more than was sent");
}
