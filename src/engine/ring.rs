//! A partition's ticket ring: how a writer commits a message to a slot and how a
//! consumer gets exclusive first access to the next committed slot.

use super::keys::RingKeys;
use super::slot::{decode, encode, Slot, SlotState, HOLDER, WRITER_COMMIT, WRITER_LOST};
use super::{Engine, Env, Error, Result};
use crate::model::{MessageId, MessageRecord, Millis};
use crate::store::Store;

/// A writer that has not committed this long after taking its ticket gives the
/// slot up itself, so it never commits into a slot consumers stopped waiting for.
pub(crate) const WRITER_DEADLINE: Millis = 2_000;
/// How long consumers wait for an undecided slot before deciding it themselves;
/// longer than `WRITER_DEADLINE` plus the clock skew hosts are allowed.
pub(crate) const GRACE: Millis = 5_000;
/// Tickets a writer tries before answering `Contention`.
const PUSH_ATTEMPTS: usize = 8;
/// Below this many tickets between head and tail, a take peeks at the next
/// slot's commit counter before taking it, so it does not make a writer that is
/// still at work retry; deeper in a backlog it takes the ticket directly.
const PEEK_DEPTH: i64 = 64;
/// Head tickets one take may burn on given-up slots before reporting empty.
const TAKE_STEPS: usize = 8;

impl<S: Store, E: Env> Engine<S, E> {
    /// Commits `rec` (and `body`) to a fresh slot of `ring`; returns its id.
    ///
    /// `rec.id` is rewritten for the slot the message lands in.
    pub(crate) async fn push(
        &self,
        ring: &RingKeys,
        rec: &mut MessageRecord,
        body: &[u8],
    ) -> Result<MessageId> {
        for _ in 0..PUSH_ATTEMPTS {
            let index = self.store.increment(&ring.tail(), 1).await? as u64;
            // The record carries its ticket time: scans judge a slot's writer by it.
            rec.enqueued_at = self.env.now();
            rec.id = MessageId::new(rec.enqueued_at, ring.inc, ring.partition, index);
            let slot = Slot::new(ring, index);
            let mut written = Vec::with_capacity(rec.chunks as usize + 1);
            if let Err(e) = self.write(&slot, rec, body, &mut written).await {
                // Nothing was committed: give the slot up (as far as the store
                // lets us) rather than leave consumers a fence for a writer that
                // never comes.
                let _ = self.give_up(&slot, &written).await;
                return Err(e);
            }
            let deadline = rec.enqueued_at + WRITER_DEADLINE;
            if self.env.now() > deadline {
                // Overdue: give the slot up without ever committing.
                self.give_up(&slot, &written).await?;
                continue;
            }
            let r = match self.store.increment(&slot.keys.commit(), WRITER_COMMIT).await {
                Ok(r) => r,
                Err(e) => return self.commit_failed(&slot, &written, rec.id, e).await,
            };
            if r == WRITER_COMMIT {
                return Ok(rec.id);
            }
            // A consumer reached the slot first and gave it up. Clean up, the
            // commit counter too: no one mistakes the slot for committed then
            // (a missing counter reads 0), and the counter, which had to
            // outlive the slot until we came, goes with it.
            written.push(slot.keys.commit());
            self.store.delete_many(&written).await?;
            // Until we deleted it, the slot looked committed to third parties.
            // Scans leave such a slot alone until GRACE after its ticket, so
            // retrying is safe only while we are inside our deadline.
            if self.env.now() > deadline {
                break;
            }
        }
        Err(Error::Contention(ring.tail()))
    }

    /// Writes the body chunks and the record of `slot`, listing in `written`
    /// every key it wrote or tried to (a failed `set` may have landed).
    async fn write(
        &self,
        slot: &Slot,
        rec: &MessageRecord,
        body: &[u8],
        written: &mut Vec<String>,
    ) -> Result<()> {
        for (j, chunk) in body.chunks(super::slot::CHUNK).enumerate() {
            let key = slot.keys.chunk(j as u32);
            let done = self.store.set(&key, chunk).await;
            written.push(key);
            done?;
        }
        let key = slot.keys.record();
        let done = self.store.set(&key, &rec.encode()).await;
        written.push(key);
        Ok(done?)
    }

    /// Gives `slot` up without committing (adding `WRITER_LOST`, so it can never
    /// count as committed) and deletes what was `written`. When a consumer had
    /// fenced the slot first, it already decided the slot dead and the counter
    /// has served both sides: it goes too. Otherwise it stays for the consumer
    /// still to come, who finds the writer gone and deletes it (`take`).
    async fn give_up(&self, slot: &Slot, written: &[String]) -> Result<()> {
        let r = self.store.increment(&slot.keys.commit(), WRITER_LOST).await?;
        let mut dead = written.to_vec();
        if r != WRITER_LOST {
            dead.push(slot.keys.commit());
        }
        Ok(self.store.delete_many(&dead).await?)
    }

    /// The writer's commit increment failed: it may or may not have landed. The
    /// counter tells: without the writer's bit it did not, and the slot is given
    /// up; with the bit alone it did and nobody came since, so the send succeeded.
    /// With a consumer's fence beside the bit, who came first cannot be told
    /// (increments commute), so the error stands and the slot is left as it is:
    /// either way a consumer decided it.
    async fn commit_failed(
        &self,
        slot: &Slot,
        written: &[String],
        id: MessageId,
        error: crate::store::StoreError,
    ) -> Result<MessageId> {
        match self.store.increment(&slot.keys.commit(), 0).await {
            Ok(WRITER_COMMIT) => Ok(id),
            Ok(s) if s & WRITER_COMMIT == 0 => {
                let _ = self.give_up(slot, written).await;
                Err(error.into())
            }
            _ => Err(error.into()),
        }
    }

    /// Takes the next head ticket whose slot was committed; `None` when the ring
    /// is empty (or its next writer is still within its grace period).
    pub(crate) async fn take(&self, ring: &RingKeys, now: Millis) -> Result<Option<Slot>> {
        if self.hints.skip_check(ring, now) {
            // Deep in a backlog, as this engine last read it (`hint.rs`): take a
            // ticket without reading head and tail. A ticket past the tail
            // reaches its slot before the writer, like any early consumer.
            let slot = Slot::new(ring, self.store.increment(&ring.head(), 1).await? as u64);
            let r = self.store.increment(&slot.keys.commit(), HOLDER).await?;
            if r == WRITER_COMMIT + HOLDER {
                return Ok(Some(slot));
            }
            if r == HOLDER {
                self.hints.forget(ring);
            }
            // The tail was not read: the ticket may not be handed out yet.
            self.decide_uncommitted(&slot, r, false).await?;
        }
        for _ in 0..TAKE_STEPS {
            let head = self.store.increment(&ring.head(), 0).await?;
            let tail = self.store.increment(&ring.tail(), 0).await?;
            self.hints.record(ring, tail.saturating_sub(head).max(0) as u64, now);
            if head >= tail {
                return Ok(None);
            }
            let next = Slot::new(ring, head as u64 + 1);
            // Deep in a backlog the next slot's writer took its ticket long
            // before the newest ones: skip the peek (a writer still at work
            // only has to retry).
            if tail - head <= PEEK_DEPTH && self.store.increment(&next.keys.commit(), 0).await? == 0
            {
                if self.store.increment(&ring.head(), 0).await? != head {
                    // Another consumer took that slot (and may have finished it)
                    // since we looked: look again.
                    continue;
                }
                match self.overdue(&next, now).await? {
                    Seen::Overdue => {}
                    // Its writer is still at work: do not make it retry.
                    Seen::Waiting => return Ok(None),
                    Seen::Stamped => {
                        self.unstamp_if_taken(ring, &next, head).await?;
                        return Ok(None);
                    }
                }
            }
            let index = self.store.increment(&ring.head(), 1).await? as u64;
            let slot = Slot::new(ring, index);
            match self.store.increment(&slot.keys.commit(), HOLDER).await? {
                r if r == WRITER_COMMIT + HOLDER => return Ok(Some(slot)),
                r => self.decide_uncommitted(&slot, r, index as i64 <= tail).await?,
            }
        }
        Ok(None)
    }

    /// Decides a slot whose commit counter read `r` after this taker's
    /// `increment(s, HOLDER)`, when that did not find the writer's commit. `HOLDER`:
    /// we came first, and the slot is given up (its writer retries) — or a scan
    /// standing in for a lost consumer decided it already. With `WRITER_LOST`:
    /// the writer gave the slot up before we came, and the counter has served.
    /// Anything else is a slot a scan decided before us. A fence we created on a
    /// ticket `handed_out` to a writer is listed for deletion (`fences.rs`).
    async fn decide_uncommitted(&self, slot: &Slot, r: i64, handed_out: bool) -> Result<()> {
        match r {
            HOLDER => {
                if self.dead(slot, Fence::Created).await? && handed_out {
                    self.list_fence(slot).await?;
                }
                Ok(())
            }
            r if r >= WRITER_LOST => self.dead(slot, Fence::Spent).await.map(drop),
            _ => Ok(()),
        }
    }

    /// Whether an undecided slot has waited out the grace period since it was
    /// first seen undecided (stamping that time on first sight).
    async fn overdue(&self, slot: &Slot, now: Millis) -> Result<Seen> {
        let key = slot.keys.seen();
        match self.store.get(&key).await? {
            None => {
                self.store.set(&key, &encode(&now)).await?;
                Ok(Seen::Stamped)
            }
            Some(v) if now >= decode::<Millis>(&key, &v)?.saturating_add(GRACE) => {
                Ok(Seen::Overdue)
            }
            Some(_) => Ok(Seen::Waiting),
        }
    }

    /// Takes back the stamp just written on the head's next slot if a consumer
    /// took that slot since `head` was read: it may have finished and swept the
    /// slot before the stamp landed, and a stamp below the mark is a key nobody
    /// deletes. (Its taker decides the slot; should it die first, a scan stamps
    /// the slot again.)
    async fn unstamp_if_taken(&self, ring: &RingKeys, slot: &Slot, head: i64) -> Result<()> {
        if self.store.increment(&ring.head(), 0).await? != head {
            self.store.delete(&slot.keys.seen()).await?;
        }
        Ok(())
    }

    /// Marks a slot given up before its writer committed, removing what a writer
    /// that died (or failed) before committing left in it. `fence` says what the
    /// caller's increment found in the commit counter (see [`Fence`]).
    ///
    /// A slot already below the low-water mark was finished and swept while the
    /// caller was on its way (a taker stalled between its head ticket and its
    /// `increment(s, HOLDER)`, a scan that read the slot before the sweep): it
    /// is left alone, but a counter the caller re-created or that is spent is
    /// taken back rather than left for nobody. Returns whether a fence the
    /// caller created stays, for its writer.
    pub(crate) async fn dead(&self, slot: &Slot, fence: Fence) -> Result<bool> {
        let (rec, low) = self.read_slot(slot, false).await?;
        if slot.index < low {
            if fence != Fence::Found {
                self.store.delete(&slot.keys.commit()).await?;
            }
            return Ok(false);
        }
        if let Some(rec) = rec {
            let mut left: Vec<String> = (0..rec.chunks).map(|j| slot.keys.chunk(j)).collect();
            left.push(slot.keys.record());
            self.store.delete_many(&left).await?;
        }
        // A spent counter is swept with the slot, like a finished one's.
        let state = match fence {
            Fence::Spent => SlotState::Done { claims: 0 },
            Fence::Created | Fence::Found => SlotState::Dead,
        };
        self.set_state(slot, state).await?;
        self.advance_low(slot, state).await?;
        Ok(fence == Fence::Created)
    }
}

/// What `overdue` found under an undecided slot's stamp.
enum Seen {
    /// Nothing: the stamp was written now.
    Stamped,
    /// A stamp less than `GRACE` old.
    Waiting,
    /// A stamp at least `GRACE` old: the slot's writer is given up on.
    Overdue,
}

/// What a decider's increment found in a slot's commit counter: whether the
/// counter must outlive the slot until its writer comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fence {
    /// The increment created it (`HOLDER` alone): the slot's writer may still
    /// come, and must find it — unless the slot was swept already, which means
    /// its writer had come and deleted it before.
    Created,
    /// It was there: whoever wrote it decides whether it goes.
    Found,
    /// It held the writer's `WRITER_LOST`: writer and consumer have both come,
    /// and nobody needs it any more.
    Spent,
}
