//! The stress checker: P producers and C consumers over HTTP against one or more
//! edgeq servers, every message numbered, and a tally of what was lost or
//! delivered twice.
//!
//! Why it exists: the engine's promise (no acknowledged message lost, none popped
//! twice) is checked by a deterministic simulation over an in-process store; this
//! checks it end to end, over real sockets, real stores (memory, redb, Redis) and
//! several servers sharing one store, at a load the simulation never reaches.
//!
//! - Producer `p` sends its share of the messages, each body `p:seq`, to
//!   `urls[p % urls.len()]`. A 2xx answer makes the message *acknowledged*.
//! - Consumer `c` takes messages from `urls[c % urls.len()]`: in [`Mode::Pop`] with
//!   `pop`, in [`Mode::Receive`] with `receive` then `ack`.
//! - Once every producer is done, the queue's stats are polled until it holds
//!   nothing (no message, none in flight) or [`Config::drain_timeout`] passes;
//!   then the consumers stop. If the queue still holds messages, one consumer
//!   alone sweeps it (for up to [`Config::sweep_timeout`]): what it finds is
//!   *late*, not lost. A message the engine only delays (contending claimants
//!   that both back off defer it for a pop hold, 30 s) is told apart from one it
//!   lost this way, and the report shows how many were late.
//! - [`Report`]: sent, acknowledged, received (deliveries), lost (acknowledged but
//!   never received), duplicated (deliveries past the first), of which after lease
//!   expiry (receive mode: a redelivery that came later than the previous
//!   delivery's request plus the visibility timeout, which at-least-once allows),
//!   phantom (a body nobody sent), errors (failed requests), throughput.
//!
//! Each worker keeps one HTTP/1.1 keep-alive connection (hyper's low-level client),
//! reconnecting after an error, so the load is what it says: P + C connections.
//! Included by the `stress` example and by the tests with `#[path]`.
#![allow(dead_code)] // Each includer uses its own part.

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{handshake, SendRequest};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How consumers take messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST /v1/queues/{q}/pop`: at-most-once; any duplicate is a failure.
    Pop,
    /// `receive` then `ack`: at-least-once; duplicates only after lease expiry.
    Receive,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pop" => Ok(Mode::Pop),
            "receive" => Ok(Mode::Receive),
            _ => Err(format!("{s:?}: use pop or receive")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Pop => "pop",
            Mode::Receive => "receive",
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Shown in the report's first column (e.g. the store).
    pub label: String,
    /// Server base URLs (`http://127.0.0.1:8080` or `127.0.0.1:8080`); producers
    /// and consumers are spread over them round-robin.
    pub urls: Vec<String>,
    /// Producers (at least 1).
    pub producers: usize,
    /// Consumers (at least 1).
    pub consumers: usize,
    /// Messages in all.
    pub messages: u64,
    /// Pop or receive + ack.
    pub mode: Mode,
    /// The queue (created, or updated, with `visibility_timeout`).
    pub queue: String,
    /// Lease length in receive mode, seconds.
    pub visibility_timeout: u64,
    /// How long, once the producers are done, to wait for the queue to drain.
    pub drain_timeout: Duration,
    /// How long one consumer alone may then sweep what is left.
    pub sweep_timeout: Duration,
}

impl Config {
    /// `producers` × `consumers` × `messages` in `mode` against `urls`, on queue
    /// `stress`, with a 30 s lease and a 60 s drain limit.
    pub fn new(
        urls: Vec<String>,
        producers: usize,
        consumers: usize,
        messages: u64,
        mode: Mode,
    ) -> Self {
        Self {
            label: String::new(),
            urls,
            producers,
            consumers,
            messages,
            mode,
            queue: "stress".into(),
            visibility_timeout: 30,
            drain_timeout: Duration::from_secs(60),
            // Longer than a pop hold (30 s) plus the writer grace (5 s).
            sweep_timeout: Duration::from_secs(45),
        }
    }
}

/// The tally of one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// [`Config::label`].
    pub label: String,
    /// [`Config::mode`].
    pub mode: Option<Mode>,
    /// Producers, consumers, messages asked for.
    pub shape: (usize, usize, u64),
    /// Sends attempted.
    pub sent: u64,
    /// Sends answered 2xx.
    pub acked: u64,
    /// Deliveries (pops or receives answered 200), duplicates included.
    pub received: u64,
    /// Acknowledged sends never received.
    pub lost: u64,
    /// Deliveries past a message's first.
    pub duplicated: u64,
    /// Of `duplicated`: redeliveries after the previous lease could have expired
    /// (receive mode only; allowed).
    pub duplicated_after_expiry: u64,
    /// Deliveries of bodies no producer sent.
    pub phantom: u64,
    /// Deliveries found only by the lone sweep after the drain timeout.
    pub late: u64,
    /// Requests that failed (transport error or an unexpected status).
    pub errors: u64,
    /// The first few failures, described (request, status or transport error,
    /// body), so a failed run says what failed.
    pub failures: Vec<String>,
    /// From the first send to the drained queue.
    pub elapsed: Duration,
}

impl Report {
    /// Duplicates that break the mode's promise: any in pop mode, those before
    /// lease expiry in receive mode.
    pub fn bad_duplicates(&self) -> u64 {
        self.duplicated - self.duplicated_after_expiry
    }

    /// Distinct messages received per second.
    pub fn rate(&self) -> f64 {
        let distinct = self.received - self.duplicated - self.phantom;
        distinct as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The table's header (Markdown), matching [`Report::row`].
    pub fn header() -> &'static str {
        "| store | mode | P × C × messages | sent | acked | received | lost | duplicated (after expiry) | late | phantom | errors | seconds | msgs/s |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    }

    /// One Markdown table row.
    pub fn row(&self) -> String {
        let mode = self.mode.map(|m| m.to_string()).unwrap_or_default();
        let (p, c, n) = self.shape;
        format!(
            "| {} | {mode} | {p} × {c} × {n} | {} | {} | {} | {} | {} ({}) | {} | {} | {} | {:.1} | {:.0} |",
            self.label,
            self.sent,
            self.acked,
            self.received,
            self.lost,
            self.duplicated,
            self.duplicated_after_expiry,
            self.late,
            self.phantom,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }
}

/// One HTTP/1.1 keep-alive connection to a server, reopened after an error.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// A response, read whole.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Conn {
    /// A connection to `url` (`http://host:port` or `host:port`), opened lazily.
    pub async fn new(url: &str) -> Result<Self, String> {
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let addr = tokio::net::lookup_host(host)
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: no address"))?;
        Ok(Self { addr, sender: None })
    }

    /// Sends one request and reads the whole answer. On error the connection is
    /// dropped (the next call opens a new one).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Answer, String> {
        let result = self.try_call(method, path, content_type, body).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_call(
        &mut self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Answer, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream =
                tokio::net::TcpStream::connect(self.addr).await.map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                // Ends with the connection; its errors reach the caller's request.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let Some(sender) = self.sender.as_mut() else { unreachable!("just connected") };
        sender.ready().await.map_err(|e| e.to_string())?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", content_type)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Answer { status, headers: parts.headers, body })
    }
}

/// One delivery as a consumer saw it.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    /// When its request was sent.
    asked: Instant,
    /// When its answer came.
    got: Instant,
}

/// What one consumer saw.
#[derive(Default)]
struct Seen {
    deliveries: Vec<((u64, u64), Delivery)>,
    phantom: u64,
    errors: Failures,
}

/// Failed requests: how many, and the first [`Failures::KEPT`] described.
#[derive(Default)]
struct Failures {
    count: u64,
    kept: Vec<String>,
}

impl Failures {
    const KEPT: usize = 5;

    /// Counts a failed `what` (e.g. `POST /v1/queues/q/ack`) that ended in `result`.
    fn add(&mut self, what: &str, result: &Result<Answer, String>) {
        self.count += 1;
        if self.kept.len() < Self::KEPT {
            self.kept.push(match result {
                Ok(a) => format!("{what}: {} {}", a.status, String::from_utf8_lossy(&a.body)),
                Err(e) => format!("{what}: {e}"),
            });
        }
    }

    fn extend(&mut self, other: Failures) {
        self.count += other.count;
        let room = Self::KEPT.saturating_sub(self.kept.len());
        self.kept.extend(other.kept.into_iter().take(room));
    }
}

/// `p:seq` → `(p, seq)`.
fn parse_body(body: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(body).ok()?;
    let (p, seq) = text.split_once(':')?;
    Some((p.parse().ok()?, seq.parse().ok()?))
}

/// Runs `config` to the end and tallies it.
pub async fn run(config: &Config) -> Result<Report, String> {
    if config.urls.is_empty() || config.producers == 0 || config.consumers == 0 {
        return Err("need at least one URL, one producer and one consumer".into());
    }
    let queue = config.queue.clone();
    let mut admin = Conn::new(&config.urls[0]).await?;
    let create = format!("{{\"visibility_timeout\": {}}}", config.visibility_timeout);
    let answer = admin
        .call(Method::PUT, &format!("/v1/queues/{queue}"), "application/json", create.into())
        .await?;
    if !(200..300).contains(&answer.status) {
        return Err(format!("creating the queue: {} {:?}", answer.status, answer.body));
    }

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut producers = tokio::task::JoinSet::new();
    for p in 0..config.producers {
        let share = config.messages / config.producers as u64
            + u64::from((p as u64) < config.messages % config.producers as u64);
        let mut conn = Conn::new(&config.urls[p % config.urls.len()]).await?;
        let path = format!("/v1/queues/{queue}/messages");
        let sent = sent.clone();
        producers.spawn(async move {
            let mut acked = Vec::with_capacity(share as usize);
            let mut errors = Failures::default();
            for seq in 0..share {
                sent.fetch_add(1, Ordering::Relaxed);
                let body = Bytes::from(format!("{p}:{seq}"));
                match conn.call(Method::POST, &path, "text/plain", body).await {
                    Ok(a) if (200..300).contains(&a.status) => acked.push((p as u64, seq)),
                    other => errors.add(&format!("POST {path}"), &other),
                }
            }
            (acked, errors)
        });
    }
    let mut consumers = tokio::task::JoinSet::new();
    for c in 0..config.consumers {
        let conn = Conn::new(&config.urls[c % config.urls.len()]).await?;
        consumers.spawn(consume(
            conn,
            config.mode,
            queue.clone(),
            config.visibility_timeout,
            stop.clone(),
        ));
    }

    let mut acked = Vec::new();
    let mut errors = Failures::default();
    while let Some(done) = producers.join_next().await {
        let (a, e) = done.map_err(|e| format!("producer task: {e}"))?;
        acked.extend(a);
        errors.extend(e);
    }
    let deadline = Instant::now() + config.drain_timeout;
    while Instant::now() < deadline && !drained(&mut admin, &queue).await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);

    let mut seen = Vec::new();
    let mut phantom = 0;
    while let Some(done) = consumers.join_next().await {
        let s = done.map_err(|e| format!("consumer task: {e}"))?;
        seen.extend(s.deliveries);
        phantom += s.phantom;
        errors.extend(s.errors);
    }
    let mut late = 0;
    if !drained(&mut admin, &queue).await {
        let sweep = Arc::new(AtomicBool::new(false));
        let conn = Conn::new(&config.urls[0]).await?;
        let sweeper = tokio::spawn(consume(
            conn,
            config.mode,
            queue.clone(),
            config.visibility_timeout,
            sweep.clone(),
        ));
        let deadline = Instant::now() + config.sweep_timeout;
        while Instant::now() < deadline && !drained(&mut admin, &queue).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sweep.store(true, Ordering::Relaxed);
        let s = sweeper.await.map_err(|e| format!("sweeper task: {e}"))?;
        late = s.deliveries.len() as u64;
        seen.extend(s.deliveries);
        phantom += s.phantom;
        errors.extend(s.errors);
    }
    let mut report =
        tally(config, sent.load(Ordering::Relaxed), acked, seen, phantom, errors, elapsed);
    report.late = late;
    Ok(report)
}

/// Whether queue `queue` holds nothing: no message stored, none in flight.
async fn drained(admin: &mut Conn, queue: &str) -> bool {
    let stats = admin
        .call(Method::GET, &format!("/v1/queues/{queue}"), "text/plain", Bytes::new())
        .await
        .ok()
        .and_then(|a| serde_json::from_slice::<serde_json::Value>(&a.body).ok());
    let count = |name: &str| stats.as_ref().and_then(|s| s["stats"][name].as_u64());
    count("messages") == Some(0) && count("in_flight") == Some(0)
}

/// Takes messages until `stop`.
async fn consume(
    mut conn: Conn,
    mode: Mode,
    queue: String,
    vt: u64,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let take = match mode {
        Mode::Pop => format!("/v1/queues/{queue}/pop"),
        Mode::Receive => format!("/v1/queues/{queue}/receive?visibility_timeout={vt}"),
    };
    let ack = format!("/v1/queues/{queue}/ack");
    while !stop.load(Ordering::Relaxed) {
        let asked = Instant::now();
        let answer = match conn.call(Method::POST, &take, "text/plain", Bytes::new()).await {
            Ok(a) if a.status == 200 => a,
            Ok(a) if a.status == 204 => {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            other => {
                seen.errors.add(&format!("POST {take}"), &other);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let got = Instant::now();
        match parse_body(&answer.body) {
            Some(id) => seen.deliveries.push((id, Delivery { asked, got })),
            None => seen.phantom += 1,
        }
        if mode == Mode::Receive {
            let receipt = answer.headers.get("edgeq-receipt").and_then(|v| v.to_str().ok());
            let Some(receipt) = receipt else {
                seen.errors.add(&format!("POST {take}"), &Err("no edgeq-receipt header".into()));
                continue;
            };
            let body = serde_json::json!({ "receipts": [receipt] }).to_string();
            match conn.call(Method::POST, &ack, "application/json", body.into()).await {
                Ok(a) if a.status == 200 => {}
                other => seen.errors.add(&format!("POST {ack} {receipt}"), &other),
            }
        }
    }
    seen
}

fn tally(
    config: &Config,
    sent: u64,
    acked: Vec<(u64, u64)>,
    seen: Vec<((u64, u64), Delivery)>,
    unparsed: u64,
    errors: Failures,
    elapsed: Duration,
) -> Report {
    let mut by_message: HashMap<(u64, u64), Vec<Delivery>> = HashMap::new();
    let mut phantom = unparsed;
    let share = |p: u64| {
        config.messages / config.producers as u64
            + u64::from(p < config.messages % config.producers as u64)
    };
    for (id, d) in &seen {
        if id.0 >= config.producers as u64 || id.1 >= share(id.0) {
            phantom += 1;
        } else {
            by_message.entry(*id).or_default().push(*d);
        }
    }
    let lease = Duration::from_secs(config.visibility_timeout);
    let (mut duplicated, mut after_expiry) = (0, 0);
    for deliveries in by_message.values_mut() {
        deliveries.sort_by_key(|d| d.got);
        for pair in deliveries.windows(2) {
            duplicated += 1;
            if config.mode == Mode::Receive && pair[1].got >= pair[0].asked + lease {
                after_expiry += 1;
            }
        }
    }
    let lost = acked.iter().filter(|id| !by_message.contains_key(id)).count() as u64;
    Report {
        label: config.label.clone(),
        mode: Some(config.mode),
        shape: (config.producers, config.consumers, config.messages),
        sent,
        acked: acked.len() as u64,
        received: seen.len() as u64 + unparsed,
        lost,
        duplicated,
        duplicated_after_expiry: after_expiry,
        phantom,
        late: 0,
        errors: errors.count,
        failures: errors.kept,
        elapsed,
    }
}
