//! Deterministic simulation of many producers and consumers sharing one store.
//!
//! A seeded scheduler polls actors (each one a host running one engine call after
//! another) one step at a time, in random order; every store call yields first, so
//! calls of different actors interleave at every point. The store fails calls
//! before or after their effect, the virtual clock jumps forward, and actors are
//! killed between any two store calls and replaced (a host that died and came
//! back). Then the queue is drained and the run is checked:
//!
//! - pop mode: no message is delivered twice; every acknowledged send is
//!   delivered, except those a consumer lost by dying (or failing) inside a pop
//!   — at most `count` per such pop (pop is at-most-once);
//! - receive mode: every acknowledged send is acknowledged by a consumer; no
//!   message is delivered again before the lease that delivered it ended (or was
//!   nacked), nor after a successful ack; no ack is refused as stale while its
//!   lease holds;
//! - one seed in four (`seed % 4 == 2`): a purger purges the queue twice while
//!   producers and consumers work; only sends that started after the last
//!   purge was over must be delivered (acknowledged in receive mode), an ack
//!   refused inside its lease is wrong only if the lease began after it, the
//!   low-water mark is checked on the incarnation the run ends with, and after
//!   reclaiming to the end the namespace's graveyard must be empty
//!   (`SIM_LEFTOVERS` also counts what dead incarnations left: keys their late
//!   calls wrote after reclaiming);
//! - pop mode, odd seeds: every attempt of a message carries one idempotency
//!   key, so a key stored twice is a message popped twice; a message sent once
//!   and then repeated must be answered with its first id as a duplicate;
//!   three windows later, sends with fresh keys (through faults, then without)
//!   must have cleaned every outcome record and log entry of the run's keys;
//! - in both: nothing is delivered that was never sent, the low-water mark of
//!   every partition ends just past its head, and no record of a successful
//!   send is left in the store (a writer that died or failed half way
//!   may leave its own, unacknowledged record behind).
//!
//! `SIM_SEEDS` sets the number of seeds per mode (default 1000 per mode, so CI runs
//! 2000) and `SIM_FIRST` the first of them (default 1: long runs can explore
//! seeds CI never ran); `SIM_SEED` replays one seed. `SIM_LEFTOVERS=1` prints,
//! per mode, the per-slot keys left behind after draining (keys nobody will
//! delete: the protocol's known leaks), counted over all seeds (`--nocapture`
//! to see it).

use bytes::Bytes;
use edgeq::engine::{Engine, ManualEnv, NewMessage, ReceiveOptions, IDEM_WINDOW};
use edgeq::model::{Name, QueueConfig};
use edgeq::store::{FaultPlan, FaultyStore, MemoryStore, Store};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Waker};

const T0: u64 = 1_800_000_000_000;
const PRODUCERS: usize = 3;
const CONSUMERS: usize = 3;
const MESSAGES: usize = 12;
/// Purges the purger of a purge run makes.
const PURGES: usize = 2;
/// The purger's role number (producers and consumers come first).
const PURGER: usize = PRODUCERS + CONSUMERS;

type Sim = Engine<FaultyStore<Arc<Traced>>, ManualEnv>;

/// The shared store, printing every call on keys that contain `SIM_TRACE`.
#[derive(Default)]
struct Traced(MemoryStore, Option<String>);

impl Traced {
    fn log(&self, op: &str, key: &str, extra: String) {
        if self.1.as_deref().is_some_and(|t| key.contains(t)) {
            eprintln!("{op} {key} {extra}");
        }
    }
}

impl Store for Traced {
    async fn get(&self, key: &str) -> edgeq::store::StoreResult<Option<Vec<u8>>> {
        let v = self.0.get(key).await;
        self.log(
            "get",
            key,
            format!(
                "{:?}",
                v.as_ref().map(|v| v
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(&v[..v.len().min(60)]).into_owned()))
            ),
        );
        v
    }
    async fn get_many(&self, keys: &[String]) -> edgeq::store::StoreResult<Vec<Option<Vec<u8>>>> {
        for k in keys {
            self.log("get_many", k, String::new());
        }
        self.0.get_many(keys).await
    }
    async fn set(&self, key: &str, value: &[u8]) -> edgeq::store::StoreResult<()> {
        self.log("set", key, String::from_utf8_lossy(&value[..value.len().min(60)]).into_owned());
        self.0.set(key, value).await
    }
    async fn delete(&self, key: &str) -> edgeq::store::StoreResult<()> {
        self.log("delete", key, String::new());
        self.0.delete(key).await
    }
    async fn delete_many(&self, keys: &[String]) -> edgeq::store::StoreResult<()> {
        for k in keys {
            self.log("delete_many", k, String::new());
        }
        self.0.delete_many(keys).await
    }
    async fn increment(&self, key: &str, delta: i64) -> edgeq::store::StoreResult<i64> {
        let r = self.0.increment(key, delta).await;
        self.log("incr", key, format!("{delta} -> {r:?}"));
        r
    }
}
type Actor = Pin<Box<dyn Future<Output = ()>>>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Pop,
    Receive,
}

#[derive(Debug)]
struct Delivery {
    at: u64,
    until: u64,
    ended: Option<u64>,
}

/// Everything the actors observed.
#[derive(Default)]
struct Log {
    sent_ok: BTreeSet<String>,
    sent_ids: BTreeMap<String, String>,
    attempted: BTreeSet<String>,
    deliveries: BTreeMap<String, Vec<Delivery>>,
    acked: BTreeMap<String, u64>,
    /// Acks whose outcome is unknown (an error or a crash): they may have deleted it.
    ack_unknown: BTreeSet<(String, String)>,
    /// Acks refused as stale although their lease held from start to end, with
    /// when the receive that leased it began (a purge since makes the refusal
    /// right).
    refused_in_lease: Vec<(String, u64)>,
    /// Keyed messages whose repeat after a successful send did not answer the
    /// first id as a duplicate.
    repeats_not_deduplicated: Vec<String>,
    /// When each attempted message's send started.
    send_started: BTreeMap<String, u64>,
    /// Purges that returned (successfully or not) and, after the last of them
    /// (or the purger's death), when they were all over: a message whose send
    /// started after that was sent to the incarnation the run ends with.
    purges_made: usize,
    purges_over_at: u64,
    /// Messages pops may have lost by dying or failing half way.
    pop_loss_allowance: usize,
    stop: bool,
}

fn ns() -> Name {
    Name::new("sim").unwrap()
}
fn q() -> Name {
    Name::new("q").unwrap()
}

/// A producer sending messages `from..MESSAGES`, each retried up to four times.
/// `keyed`: every attempt of a message carries the same body and idempotency
/// key, and a message sent is sent once more (a client that lost the answer),
/// which must answer the first id as a duplicate; otherwise each attempt is a
/// message of its own.
fn producer(e: Rc<Sim>, log: Rc<RefCell<Log>>, id: usize, from: usize, keyed: bool) -> Actor {
    Box::pin(async move {
        for seq in from..MESSAGES {
            for attempt in 0..4 {
                let body = match keyed {
                    true => format!("{id}:{seq}:k"),
                    false => format!("{id}:{seq}:{attempt}"),
                };
                let key = keyed.then(|| format!("{id}-{seq}"));
                {
                    let mut log = log.borrow_mut();
                    log.attempted.insert(body.clone());
                    log.send_started.entry(body.clone()).or_insert(e.env().now_value());
                }
                let m = || NewMessage {
                    body: Bytes::from(body.clone()),
                    idempotency_key: key.clone(),
                    ..Default::default()
                };
                let send =
                    |m| async { e.send(&ns(), &q(), vec![m]).await.map(|mut r| r.remove(0)) };
                if let Ok(Ok(sent)) = send(m()).await {
                    {
                        let mut log = log.borrow_mut();
                        let place = format!("p{} slot {}", sent.id.partition(), sent.id.slot());
                        log.sent_ids.insert(body.clone(), place);
                        log.sent_ok.insert(body.clone());
                    }
                    if keyed {
                        if let Ok(Ok(again)) = send(m()).await {
                            if again.id != sent.id || !again.duplicate {
                                log.borrow_mut().repeats_not_deduplicated.push(body);
                            }
                        }
                    }
                    break;
                }
            }
        }
    })
}

/// Purges the queue [`PURGES`] times in all (counting a predecessor's), at
/// random moments while producers and consumers work.
fn purger(e: Rc<Sim>, log: Rc<RefCell<Log>>, seed: u64) -> Actor {
    Box::pin(async move {
        let mut rng = SmallRng::seed_from_u64(seed);
        while log.borrow().purges_made < PURGES && !log.borrow().stop {
            // Wait a while (each read is store calls, so other actors run).
            for _ in 0..rng.random_range(5..60) {
                let _ = e.get_queue(&ns(), &q()).await;
            }
            let _ = e.purge_queue(&ns(), &q()).await;
            let mut log = log.borrow_mut();
            log.purges_made += 1;
            log.purges_over_at = e.env().now_value();
        }
    })
}

fn consumer(e: Rc<Sim>, log: Rc<RefCell<Log>>, mode: Mode, seed: u64) -> Actor {
    Box::pin(async move {
        let mut rng = SmallRng::seed_from_u64(seed);
        while !log.borrow().stop {
            let count = rng.random_range(1..=3);
            match mode {
                Mode::Pop => {
                    // Allow for the loss up front: this pop may die half way.
                    log.borrow_mut().pop_loss_allowance += count;
                    let got = e.pop(&ns(), &q(), count).await;
                    let mut log = log.borrow_mut();
                    log.pop_loss_allowance -= count;
                    match got {
                        Ok(msgs) => {
                            let at = e.env().now_value();
                            for m in msgs {
                                let body = String::from_utf8(m.body.to_vec()).unwrap();
                                log.deliveries.entry(body).or_default().push(Delivery {
                                    at,
                                    until: at,
                                    ended: None,
                                });
                            }
                        }
                        Err(_) => log.pop_loss_allowance += count,
                    }
                }
                Mode::Receive => {
                    let vt = rng.random_range(1..=3);
                    let opts =
                        ReceiveOptions { count, visibility_timeout: Some(vt), partition: None };
                    // The receive reads the queue's incarnation when it starts.
                    let started = e.env().now_value();
                    let Ok(msgs) = e.receive(&ns(), &q(), opts).await else {
                        continue;
                    };
                    let at = e.env().now_value();
                    let mut leased = Vec::new();
                    for m in msgs {
                        let body = String::from_utf8(m.body.to_vec()).unwrap();
                        let until = m.lease_until.unwrap();
                        log.borrow_mut()
                            .deliveries
                            .entry(body.clone())
                            .or_default()
                            .push(Delivery { at, until, ended: None });
                        leased.push((body, m.receipt.unwrap(), until));
                    }
                    for (body, receipt, until) in leased {
                        match rng.random_range(0..10) {
                            0 => {} // forget it: the lease runs out
                            1 => {
                                let started = e.env().now_value();
                                if let Some(d) = log
                                    .borrow_mut()
                                    .deliveries
                                    .get_mut(&body)
                                    .and_then(|d| d.last_mut())
                                {
                                    d.ended = Some(started);
                                }
                                let _ = e.nack(&ns(), &q(), &[receipt], 0).await;
                            }
                            _ => {
                                let attempt = (body.clone(), receipt.to_string());
                                log.borrow_mut().ack_unknown.insert(attempt.clone());
                                match e.ack(&ns(), &q(), &[receipt]).await.map(|mut r| r.remove(0))
                                {
                                    Ok(Ok(())) => {
                                        let at = e.env().now_value();
                                        let mut log = log.borrow_mut();
                                        log.ack_unknown.remove(&attempt);
                                        log.acked.entry(body).or_insert(at);
                                    }
                                    // Refused as stale: it certainly did not delete.
                                    Ok(Err(edgeq::engine::Error::StaleReceipt(_))) => {
                                        let mut log = log.borrow_mut();
                                        log.ack_unknown.remove(&attempt);
                                        if e.env().now_value() < until {
                                            log.refused_in_lease.push((body, started));
                                        }
                                    }
                                    Ok(Err(_)) | Err(_) => {}
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

trait NowValue {
    fn now_value(&self) -> u64;
}
impl NowValue for ManualEnv {
    fn now_value(&self) -> u64 {
        edgeq::engine::Env::now(self)
    }
}

fn poll(actor: &mut Actor) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    actor.as_mut().poll(&mut cx).is_ready()
}

/// Runs one seed; returns a description of the first violation.
fn run(seed: u64, mode: Mode) -> Result<(), String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let shared = Arc::new(Traced(MemoryStore::new(), std::env::var("SIM_TRACE").ok()));
    let plan = FaultPlan { seed, max_delay: 2, fail_before_ppm: 3_000, fail_after_ppm: 3_000 };
    let env = ManualEnv::new(T0, seed);
    let e = Rc::new(Engine::new(FaultyStore::new(shared.clone(), plan), env.clone()));
    let log = Rc::new(RefCell::new(Log::default()));
    let partitions = rng.random_range(1..=2);
    let config = QueueConfig { partitions, ..Default::default() };
    // Odd seeds of pop mode send with idempotency keys: a key stored twice is a
    // message popped twice.
    let keyed = matches!(mode, Mode::Pop) && seed % 2 == 1;
    // One seed in four also purges the queue twice while it is in use:
    // reclaiming the old incarnations must never touch the live one.
    let purging = seed % 4 == 2;
    futures::executor::block_on(Engine::new(shared.clone(), env.clone()).put_queue(
        &ns(),
        &q(),
        config,
    ))
    .map_err(|e| e.to_string())?;

    // (actor, role): role < PRODUCERS is a producer (with its next seq), else a consumer.
    let mut actors: Vec<(Actor, usize)> = (0..PRODUCERS)
        .map(|p| (producer(e.clone(), log.clone(), p, 0, keyed), p))
        .chain(
            (0..CONSUMERS)
                .map(|c| (consumer(e.clone(), log.clone(), mode, seed ^ c as u64), PRODUCERS + c)),
        )
        .chain(purging.then(|| (purger(e.clone(), log.clone(), seed), PURGER)))
        .collect();
    let mut producers_left = PRODUCERS;
    let mut steps = 0u64;
    while !actors.is_empty() {
        steps += 1;
        if steps > 2_000_000 {
            return Err("no progress".into());
        }
        env.advance(rng.random_range(0..25));
        let i = rng.random_range(0..actors.len());
        if rng.random_range(0..1000) < 3 {
            // Crash: the host dies between two store calls and comes back fresh.
            let (_, role) = actors.swap_remove(i);
            let fresh = if role < PRODUCERS {
                // It resumes with the next message; the one in flight may or may not exist.
                let next = (0..MESSAGES)
                    .find(|s| {
                        !log.borrow()
                            .attempted
                            .iter()
                            .any(|b| b.starts_with(&format!("{role}:{s}:")))
                    })
                    .unwrap_or(MESSAGES);
                producer(e.clone(), log.clone(), role, next, keyed)
            } else if role == PURGER {
                // Its purge in flight may have landed: count it as made.
                let mut l = log.borrow_mut();
                l.purges_made += 1;
                l.purges_over_at = env.now_value();
                drop(l);
                purger(e.clone(), log.clone(), rng.random())
            } else {
                consumer(e.clone(), log.clone(), mode, rng.random())
            };
            actors.push((fresh, role));
            continue;
        }
        if poll(&mut actors[i].0) {
            let (_, role) = actors.swap_remove(i);
            if role < PRODUCERS {
                producers_left -= 1;
                if producers_left == 0 {
                    log.borrow_mut().stop = true;
                }
            }
        }
    }

    drain(&shared, &env, mode, &log)?;
    let inc = futures::executor::block_on(shared.0.increment(&format!("{}/{}//inc", ns(), q()), 0))
        .map_err(|e| e.to_string())?;
    for p in 0..partitions {
        // Everything was delivered: every slot up to the head is finished and
        // swept, so the low-water mark stands just past it.
        let ring = format!("{}/{}/{inc}/{p}", ns(), q());
        let get = |k: String| futures::executor::block_on(shared.0.get(&k)).ok().flatten();
        let low = get(format!("{ring}/lo")).map_or(1, |v| {
            String::from_utf8_lossy(&v).parse::<i64>().expect("a numeric low-water mark")
        });
        let head = futures::executor::block_on(shared.0.increment(&format!("{ring}/h"), 0))
            .map_err(|e| e.to_string())?;
        if low != head.max(0) + 1 {
            return Err(format!("partition {p}: low-water mark {low} behind head {head}"));
        }
    }
    if purging {
        reclaim_all(&shared, &env, inc)?;
    }
    if std::env::var("SIM_LEFTOVERS").is_ok() {
        tally_leftovers(&shared.0, partitions, inc);
    }
    check(mode, &log.borrow(), &shared.0, inc)?;
    if keyed {
        forget_keys(&shared, &env, seed, inc)?;
    }
    Ok(())
}

thread_local! {
    /// `SIM_LEFTOVERS`: per-slot keys left after draining, by kind, over the seeds run.
    static LEFTOVERS: RefCell<BTreeMap<String, usize>> = RefCell::default();
}

/// Adds the per-slot keys left in `store` to [`LEFTOVERS`]: after the drain every
/// slot up to the head is finished and swept, so each one is a key nobody will
/// delete — except the commit counters of tickets past the tail, which wait for
/// their writers. Keyed by the key's kind (`s`, `z`, `r0`, ...), where it sits,
/// and a counter's value.
fn tally_leftovers(store: &MemoryStore, partitions: u16, inc: i64) {
    let counter = |k: &str| futures::executor::block_on(store.increment(k, 0)).ok();
    for dead in 0..inc {
        let prefix = format!("{}/{}/{dead}/", ns(), q());
        for key in store.keys().into_iter().filter(|k| k.starts_with(&prefix)) {
            let kind =
                key.rsplit('/').next().unwrap_or_default().trim_end_matches(char::is_numeric);
            let entry = format!("dead incarnation: {kind}");
            LEFTOVERS.with(|l| *l.borrow_mut().entry(entry).or_default() += 1);
        }
    }
    let rings: Vec<(String, i64)> = (0..partitions)
        .map(|p| format!("{}/{}/{inc}/{p}/", ns(), q()))
        .map(|ring| (ring.clone(), counter(&format!("{ring}t")).unwrap_or(0)))
        .collect();
    for key in store.keys() {
        for (ring, tail) in &rings {
            let Some((index, kind)) =
                key.strip_prefix(ring.as_str()).and_then(|k| k.split_once('/'))
            else {
                continue;
            };
            let Ok(index) = index.parse::<i64>() else { continue };
            let place = if index > *tail { "past the tail" } else { "at or below the tail" };
            let value = if kind == "s" { format!(" = {:?}", counter(&key)) } else { String::new() };
            let entry = format!("{kind}{value}, {place}");
            LEFTOVERS.with(|l| *l.borrow_mut().entry(entry).or_default() += 1);
        }
    }
}

/// Consumes whatever is left with a fault-free host, moving time past every
/// lease, hold and grace period.
fn drain(
    shared: &Arc<Traced>,
    env: &ManualEnv,
    mode: Mode,
    log: &Rc<RefCell<Log>>,
) -> Result<(), String> {
    let e = Engine::new(shared.clone(), env.clone());
    let mut idle = 0;
    while idle < 120 {
        env.advance(1_000);
        let got = futures::executor::block_on(async {
            match mode {
                Mode::Pop => e
                    .pop(&ns(), &q(), 100)
                    .await
                    .map(|m| m.into_iter().map(|m| (m, None)).collect::<Vec<_>>()),
                Mode::Receive => {
                    let opts = ReceiveOptions {
                        count: 100,
                        visibility_timeout: Some(60),
                        partition: None,
                    };
                    let msgs = e.receive(&ns(), &q(), opts).await?;
                    let mut out = Vec::new();
                    for m in msgs {
                        let ok = e.ack(&ns(), &q(), &[m.receipt.unwrap()]).await?[0].is_ok();
                        out.push((m, Some(ok)));
                    }
                    Ok(out)
                }
            }
        })
        .map_err(|e| format!("drain: {e}"))?;
        if got.is_empty() {
            idle += 1;
        } else {
            idle = 0;
        }
        let at = edgeq::engine::Env::now(env);
        let mut log = log.borrow_mut();
        for (m, acked) in got {
            let body = String::from_utf8(m.body.to_vec()).unwrap();
            let until = m.lease_until.unwrap_or(at);
            log.deliveries.entry(body.clone()).or_default().push(Delivery {
                at,
                until,
                ended: None,
            });
            if acked == Some(true) {
                log.acked.entry(body).or_insert(at);
            }
        }
    }
    Ok(())
}

/// Three windows after a keyed run, sends with fresh keys take the cleaning
/// steps of the idempotency log (`idem.rs`): first through a store that fails
/// a quarter of the calls, then through a fault-free one. Then no outcome record
/// and no log entry of the run's keys may be left (a decision counter may: one
/// whose first sender never wrote an outcome, `idem.rs`).
fn forget_keys(shared: &Arc<Traced>, env: &ManualEnv, seed: u64, inc: i64) -> Result<(), String> {
    env.advance(3 * IDEM_WINDOW);
    let plan = FaultPlan { seed, max_delay: 0, fail_before_ppm: 125_000, fail_after_ppm: 125_000 };
    let faulty = Engine::new(FaultyStore::new(shared.clone(), plan), env.clone());
    let clean = Engine::new(shared.clone(), env.clone());
    let keyed =
        |i: usize| NewMessage { idempotency_key: Some(format!("late-{i}")), ..Default::default() };
    for i in 0..64 {
        let _ = futures::executor::block_on(faulty.send(&ns(), &q(), vec![keyed(i)]));
    }
    for i in 64..96 {
        futures::executor::block_on(clean.send(&ns(), &q(), vec![keyed(i)]))
            .map_err(|e| format!("late send: {e}"))?;
    }
    let prefix = format!("{}/{}/{inc}/", ns(), q());
    let now_bucket = edgeq::engine::Env::now(env) / IDEM_WINDOW;
    let keys = shared.0.keys();
    let run_key = |k: &str, kind: &str| {
        k.strip_prefix(&prefix)
            .and_then(|k| k.strip_prefix(kind))
            .is_some_and(|key| !key.starts_with("late-"))
    };
    let left: Vec<&String> = keys
        .iter()
        .filter(|k| {
            let old_entry = k
                .strip_prefix(&format!("{prefix}il/"))
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(b, _)| b.parse::<u64>().ok())
                .is_some_and(|b| b + 2 <= now_bucket);
            old_entry || run_key(k, "I/")
        })
        .collect();
    match left.is_empty() {
        true => Ok(()),
        false => Err(format!("idempotency records of the run left: {left:?}")),
    }
}

/// Takes reclaim steps with a fault-free host until there are none left; the
/// graveyard must then be empty.
fn reclaim_all(shared: &Arc<Traced>, env: &ManualEnv, inc: i64) -> Result<(), String> {
    let e = Engine::new(shared.clone(), env.clone());
    for _ in 0..100_000 {
        if !futures::executor::block_on(e.reclaim_step(&ns())).map_err(|e| e.to_string())? {
            let graves: Vec<String> =
                shared.0.keys().into_iter().filter(|k| k.starts_with("sim//gy/")).collect();
            return match graves.is_empty() {
                true => Ok(()),
                false => Err(format!("graveyard entries left at incarnation {inc}: {graves:?}")),
            };
        }
    }
    Err("reclaiming does not finish".into())
}

fn check(mode: Mode, log: &Log, store: &MemoryStore, inc: i64) -> Result<(), String> {
    if let Some(body) = log.repeats_not_deduplicated.first() {
        return Err(format!("the repeat of {body} was not answered as a duplicate"));
    }
    for body in log.deliveries.keys() {
        if !log.attempted.contains(body) {
            return Err(format!("phantom delivery of {body}"));
        }
    }
    // Sends that started before the last purge was over may have gone to an
    // incarnation it ended.
    let after_purges =
        |b: &&String| log.send_started.get(*b).is_some_and(|&s| s >= log.purges_over_at);
    match mode {
        Mode::Pop => {
            if let Some((body, d)) = log.deliveries.iter().find(|(_, d)| d.len() > 1) {
                return Err(format!("{body} popped {} times: {d:?}", d.len()));
            }
            let lost: Vec<_> = log
                .sent_ok
                .iter()
                .filter(after_purges)
                .filter(|b| !log.deliveries.contains_key(*b))
                .collect();
            if lost.len() > log.pop_loss_allowance {
                return Err(format!(
                    "lost {lost:?} with an allowance of {}",
                    log.pop_loss_allowance
                ));
            }
        }
        Mode::Receive => {
            // A lease whose receive began before the last purge was over may be
            // on an incarnation it ended, whose receipts are stale.
            let refused = log.refused_in_lease.iter().find(|(_, at)| *at >= log.purges_over_at);
            if let Some((b, _)) = refused {
                return Err(format!("an ack of {b} was refused as stale inside its lease"));
            }
            let unacked = |b: &&String| {
                !log.acked.contains_key(*b) && !log.ack_unknown.iter().any(|(a, _)| a == *b)
            };
            if let Some(b) = log.sent_ok.iter().filter(after_purges).find(unacked) {
                if std::env::var("SIM_DUMP").is_ok() {
                    for k in store.keys() {
                        let v = futures::executor::block_on(store.get(&k))
                            .ok()
                            .flatten()
                            .map(|v| String::from_utf8_lossy(&v[..v.len().min(120)]).into_owned());
                        let c = futures::executor::block_on(store.increment(&k, 0)).ok();
                        eprintln!("{k} = {v:?} {c:?}");
                    }
                }
                return Err(format!(
                    "{b} ({:?}) was sent but never acknowledged: {:?}",
                    log.sent_ids.get(b),
                    log.deliveries.get(b)
                ));
            }
            for (body, ds) in &log.deliveries {
                for pair in ds.windows(2) {
                    let end = pair[0].ended.map_or(pair[0].until, |n| n.min(pair[0].until));
                    if pair[1].at < end {
                        return Err(format!(
                            "{body} ({:?}) delivered again inside its lease: {ds:?}",
                            log.sent_ids.get(body)
                        ));
                    }
                }
                if let (Some(acked), Some(last)) = (log.acked.get(body), ds.last()) {
                    if last.at > *acked {
                        return Err(format!("{body} delivered after its ack at {acked}: {ds:?}"));
                    }
                }
            }
        }
    }
    // Records left behind may only be those of sends that did not succeed (a
    // writer that died or failed between writing and cleaning up its record).
    let records: Vec<String> = store
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(&format!("{}/{}/{inc}/", ns(), q())) && k.ends_with("/m"))
        .filter(|k| {
            let raw = futures::executor::block_on(store.get(k)).ok().flatten().unwrap_or_default();
            let rec = edgeq::model::MessageRecord::decode(&raw).unwrap();
            log.sent_ok.contains(&*String::from_utf8_lossy(&rec.body))
        })
        .collect();
    if !records.is_empty() && std::env::var("SIM_DUMP").is_ok() {
        let slot = records[0].trim_end_matches('m');
        for k in store.keys().into_iter().filter(|k| k.starts_with(slot)) {
            let v = futures::executor::block_on(store.get(&k)).ok().flatten();
            let v = v.map(|v| String::from_utf8_lossy(&v[..v.len().min(90)]).into_owned());
            let c = futures::executor::block_on(store.increment(&k, 0)).ok();
            eprintln!("{k} = {v:?} {c:?}");
        }
    }
    if !records.is_empty() {
        return Err(format!("message records left after draining: {records:?}"));
    }
    Ok(())
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("SIM_SEED") {
        return vec![s.parse().expect("SIM_SEED is a number")];
    }
    let number = |var: &str, default: u64| {
        std::env::var(var)
            .map_or(default, |s| s.parse().unwrap_or_else(|_| panic!("{var} is a number")))
    };
    let (n, first) = (number("SIM_SEEDS", 1000), number("SIM_FIRST", 1));
    (first..first + n).collect()
}

fn run_all(mode: Mode) {
    let mut failures = Vec::new();
    for seed in seeds() {
        if let Err(e) = run(seed, mode) {
            failures.push(format!("seed {seed}: {e}"));
        }
    }
    if std::env::var("SIM_LEFTOVERS").is_ok() {
        LEFTOVERS.with(|l| {
            eprintln!("{mode:?}: per-slot keys left after draining, over all seeds:");
            for (entry, n) in l.take() {
                eprintln!("  {n:>6}  {entry}");
            }
        });
    }
    assert!(
        failures.is_empty(),
        "{} {mode:?} violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn pop_mode_never_duplicates_and_loses_only_inside_failed_pops() {
    run_all(Mode::Pop);
}

#[test]
fn receive_mode_loses_nothing_and_never_delivers_inside_a_lease() {
    run_all(Mode::Receive);
}

#[test]
fn the_fault_store_really_injects_faults() {
    // Guards the simulation itself: a run with faults must see failed calls.
    let shared = Arc::new(MemoryStore::new());
    let plan = FaultPlan { seed: 9, max_delay: 0, fail_before_ppm: 500_000, fail_after_ppm: 0 };
    let s = FaultyStore::new(shared, plan);
    let fails =
        (0..100).filter(|_| futures::executor::block_on(s.increment("k", 1)).is_err()).count();
    assert!(fails > 20 && fails < 80, "{fails}");
    assert_eq!(
        futures::executor::block_on(s.inner().increment("k", 0)).unwrap(),
        100 - fails as i64
    );
}
