//! Reclaiming what purge and delete leave behind.
//!
//! Purge and delete end a queue incarnation with one increment (`queues.rs`):
//! its keys are never read again. They are deleted afterwards, in bounded
//! steps. The call that ended an incarnation lists it in its namespace's
//! graveyard: `n = increment({ns}//gy, 1)`, then `set({ns}//gy/{n}, grave)`,
//! where a [`Grave`] names the queue, the incarnation, its partitions, when it
//! ended and, for a delete, the queue-list entry left behind.
//!
//! Steps take the graveyard in order from `{ns}//gyc`, which records the entry
//! and how far its reclaiming got: each partition's ring from its low-water
//! mark to its head or its tail, whichever is further (tickets past the tail
//! hold fences), [`RING_BATCH`] slots a step, every key a slot can have (record,
//! chunks, commit counter, claim counter and records, deliveries, state,
//! stamp), the first batch also the commit counters its fence list names and a
//! stamp left just below its mark, the last the partition's own keys; then the
//! idempotency log, a
//! batch a step, from where its cleaning got (`idem.rs`); last the
//! incarnation's counters, its exclusive-creation counter, a deleted queue's
//! list entry and the graveyard entry itself.
//!
//! A step deletes only keys of a dead incarnation, which nobody reads, so steps
//! need no exclusion: two hosts doing the same step delete the same keys, and a
//! host dying between steps leaves `{ns}//gyc` where a later step starts again
//! (it is a plain value, so a racing step may also move it back: deletes
//! repeat). Steps run up to [`RECLAIM_INLINE`] in the purge or delete itself (a
//! small queue is gone before the call answers), in one consume call of
//! [`RECLAIM_EVERY`] in the namespace, and whenever a host calls
//! [`Engine::reclaim_step`].
//!
//! Known limits: a call of the old incarnation still at work when its keys go
//! (a sender that read the incarnation just before the purge, a consumer
//! between two store calls) can write keys after the step that deleted their
//! neighbours; they stay. So does an incarnation whose purge died between its
//! increment and its graveyard entry, or whose entry was still missing when a
//! later one was found (its purge stalled between its two calls while another
//! purge in the namespace finished): that entry is skipped. Claim records are
//! deleted up to the newest the slot's state names (or the taker's and one
//! more without one): records of later claims that backed off stay.

use super::fences::Fences;
use super::idem::{bucket, Cursor, Forget};
use super::keys::{self, QueueKeys};
use super::slot::{bookkeeping, decode, decode_low, encode, late_stamp, Compact, SlotState, CHUNK};
use super::{Engine, Env, Result};
use crate::model::{Millis, Name, MAX_BODY_LEN};
use crate::store::Store;

/// Slots of a dead ring one step deletes.
const RING_BATCH: u64 = 128;
/// Steps a purge or delete takes itself.
pub(crate) const RECLAIM_INLINE: usize = 8;
/// One consume call in this many takes a step.
pub(crate) const RECLAIM_EVERY: u64 = 32;
/// Body chunks a message can have.
const MAX_CHUNKS: u32 = MAX_BODY_LEN.div_ceil(CHUNK) as u32;

/// A dead incarnation: `{inc},{partitions},{at},{list},{queue}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grave {
    pub inc: u64,
    pub partitions: u16,
    /// When it ended.
    pub at: Millis,
    /// The queue-list entry a delete left behind; 0 for a purge.
    pub list: u64,
    pub queue: Name,
}

impl Compact for Grave {
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "{},{},{},{},{}",
            self.inc, self.partitions, self.at, self.list, self.queue
        );
    }
    fn read(s: &str) -> Option<Self> {
        let mut parts = s.splitn(5, ',');
        let mut number = || parts.next()?.parse::<u64>().ok();
        let (inc, partitions, at, list) = (number()?, number()?, number()?, number()?);
        Some(Grave {
            inc,
            partitions: partitions.try_into().ok()?,
            at,
            list,
            queue: Name::new(parts.next()?).ok()?,
        })
    }
}

/// How far reclaiming graveyard entry `n` got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Progress {
    n: u64,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Partition `p`, slots `next..=end` left (`next == 0`: not started).
    Ring { p: u16, next: u64, end: u64 },
    /// The idempotency log from `at` (`None`: not started).
    Idem(Option<Cursor>),
    /// The incarnation's own keys and the entry.
    Last,
}

impl Progress {
    fn first(n: u64) -> Self {
        Progress { n, stage: Stage::Ring { p: 0, next: 0, end: 0 } }
    }
}

impl Compact for Progress {
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let n = self.n;
        let _ = match self.stage {
            Stage::Ring { p, next, end } => write!(out, "{n},R,{p},{next},{end}"),
            Stage::Idem(None) => write!(out, "{n},I"),
            Stage::Idem(Some(Cursor { b, n: e })) => write!(out, "{n},I,{b},{e}"),
            Stage::Last => write!(out, "{n},L"),
        };
    }
    fn read(s: &str) -> Option<Self> {
        let mut parts = s.split(',');
        let n = parts.next()?.parse().ok()?;
        let tag = parts.next()?;
        let rest: Vec<u64> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
        let stage = match (tag, rest.as_slice()) {
            ("R", &[p, next, end]) => Stage::Ring { p: p.try_into().ok()?, next, end },
            ("I", &[]) => Stage::Idem(None),
            ("I", &[b, e]) => Stage::Idem(Some(Cursor { b, n: e })),
            ("L", &[]) => Stage::Last,
            _ => return None,
        };
        Some(Progress { n, stage })
    }
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Lists `grave` in namespace `ns`'s graveyard, then takes up to
    /// [`RECLAIM_INLINE`] steps (whose failures leave the work to later steps).
    pub(crate) async fn bury(&self, ns: &Name, grave: Grave) -> Result<()> {
        let n = self.store.increment(&keys::graveyard_len(ns), 1).await?.max(0) as u64;
        self.store.set(&keys::graveyard(ns, n), &encode(&grave)).await?;
        for _ in 0..RECLAIM_INLINE {
            if !matches!(self.reclaim_step(ns).await, Ok(true)) {
                break;
            }
        }
        Ok(())
    }

    /// How many purged or deleted incarnations of the namespace's queues are
    /// listed and not reclaimed to the end yet (two store calls).
    pub async fn reclaim_backlog(&self, ns: &Name) -> Result<u64> {
        let (cursor, len) = self.graveyard(ns).await?;
        let next = cursor.map_or(1, |p| p.n);
        Ok((len + 1).saturating_sub(next))
    }

    /// The namespace's reclaim cursor and graveyard length. An unreadable
    /// cursor counts as none: reclaiming starts over and rewrites it, and
    /// entries already reclaimed are gone and skipped, a step each.
    async fn graveyard(&self, ns: &Name) -> Result<(Option<Progress>, u64)> {
        let cursor_key = keys::graveyard_cursor(ns);
        let raw = self.store.get(&cursor_key).await?;
        let cursor = raw.and_then(|v| decode::<Progress>(&cursor_key, &v).ok());
        let len = self.store.increment(&keys::graveyard_len(ns), 0).await?.max(0) as u64;
        Ok((cursor, len))
    }

    /// Takes one step of reclaiming the keys of the namespace's purged and
    /// deleted queue incarnations (module docs of `reclaim.rs`); whether there
    /// may be more to do. Idle, it costs two store calls.
    pub async fn reclaim_step(&self, ns: &Name) -> Result<bool> {
        let (start, len) = self.graveyard(ns).await?;
        let mut at = start.unwrap_or(Progress::first(1));
        if at.n > len {
            return Ok(false);
        }
        let entry_key = keys::graveyard(ns, at.n);
        let grave = self.store.get(&entry_key).await?;
        match grave.as_deref().and_then(|v| decode::<Grave>(&entry_key, v).ok()) {
            Some(grave) => match self.reclaim_stage(ns, &grave, at.stage).await? {
                Some(stage) => at.stage = stage,
                None => {
                    self.store.delete(&entry_key).await?;
                    at = Progress::first(at.n + 1);
                }
            },
            // The newest entry, not written yet: its purge is between its two
            // calls (or died there).
            None if grave.is_none() && at.n == len => return Ok(false),
            // Missing with later entries, or unreadable: skipped.
            None => {
                self.store.delete(&entry_key).await?;
                at = Progress::first(at.n + 1);
            }
        }
        if start != Some(at) {
            self.store.set(&keys::graveyard_cursor(ns), &encode(&at)).await?;
        }
        Ok(true)
    }

    /// One step of `grave` from `stage` (moving on through stages that need
    /// no store call of their own); the next stage, or `None` when only the
    /// graveyard entry is left.
    async fn reclaim_stage(
        &self,
        ns: &Name,
        grave: &Grave,
        mut stage: Stage,
    ) -> Result<Option<Stage>> {
        let qk = QueueKeys::new(ns, &grave.queue, grave.inc);
        // Senders log idempotency keys in the bucket of their own clock, which
        // may run a little ahead of the purge's.
        let last_bucket = bucket(grave.at) + 1;
        let next = loop {
            match stage {
                Stage::Ring { p, .. } if p >= grave.partitions => stage = Stage::Idem(None),
                Stage::Ring { p, next, end } => break self.reclaim_ring(&qk, p, next, end).await?,
                Stage::Idem(None) => {
                    stage = match self.idem_cursor(&qk).await? {
                        // No keyed send ever took a cleaning step: no log.
                        None => Stage::Last,
                        Some(at) => Stage::Idem(Some(at)),
                    }
                }
                Stage::Idem(Some(at)) if at.b > last_bucket => stage = Stage::Last,
                Stage::Idem(Some(at)) => {
                    break Stage::Idem(Some(
                        self.idem_sweep(&qk, at, last_bucket, Forget::All).await?,
                    ))
                }
                Stage::Last => {
                    let mut dead = vec![
                        qk.held(),
                        qk.in_flight(),
                        qk.delayed(),
                        qk.dead_lettered(),
                        qk.idem_cleaned(),
                        keys::creation(ns, &grave.queue, grave.inc),
                    ];
                    if grave.list > 0 {
                        dead.push(keys::list_entry(ns, grave.list));
                    }
                    self.store.delete_many(&dead).await?;
                    return Ok(None);
                }
            }
        };
        Ok(Some(next))
    }

    /// One step on partition `p`'s ring: slots `next..=end` are left (`next ==
    /// 0`: not started); the stage after it.
    async fn reclaim_ring(
        &self,
        qk: &QueueKeys,
        p: u16,
        mut next: u64,
        mut end: u64,
    ) -> Result<Stage> {
        let ring = qk.ring(p);
        let mut dead = Vec::new();
        if next == 0 {
            let mut got = self.store.get_many(&[ring.low(), ring.fences()]).await?.into_iter();
            let low = decode_low(&ring, got.next().flatten()).unwrap_or(1);
            let fences = Fences::decode(&ring, got.next().flatten()).unwrap_or_default();
            dead.extend(fences.0.iter().map(|&(i, _)| ring.slot(i).commit()));
            dead.extend(late_stamp(&ring, low));
            let head = self.store.increment(&ring.head(), 0).await?;
            let tail = self.store.increment(&ring.tail(), 0).await?;
            (next, end) = (low.max(1), head.max(tail).max(0) as u64);
        }
        let last = end.min(next + RING_BATCH - 1);
        if next <= last {
            let slots: Vec<_> = (next..=last).map(|i| ring.slot(i)).collect();
            let states: Vec<String> = slots.iter().map(|s| s.state()).collect();
            let states = self.store.get_many(&states).await?;
            for (slot, state) in slots.iter().zip(states) {
                // Claim records up to the newest a state names (a slot with
                // none had at most its taker's and one more).
                let claims = state
                    .and_then(|v| decode::<SlotState>(&slot.state(), &v).ok())
                    .map_or(1, |s| match s {
                        SlotState::Live { claims, .. } | SlotState::Done { claims } => {
                            claims.max(1)
                        }
                        SlotState::Dead => 1,
                    });
                dead.push(slot.record());
                dead.extend((0..MAX_CHUNKS).map(|j| slot.chunk(j)));
                dead.extend(bookkeeping(slot, SlotState::Done { claims }));
            }
            next = last + 1;
        }
        let stage = if next > end {
            dead.extend([ring.tail(), ring.head(), ring.low(), ring.scan(), ring.fences()]);
            Stage::Ring { p: p + 1, next: 0, end: 0 }
        } else {
            Stage::Ring { p, next, end }
        };
        self.store.delete_many(&dead).await?;
        Ok(stage)
    }
}
