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
            rec.id = MessageId::new(rec.enqueued_at, ring.partition, index);
            let slot = Slot::new(ring, index);
            let mut written = Vec::with_capacity(rec.chunks as usize + 1);
            for (j, chunk) in body.chunks(super::slot::CHUNK).enumerate() {
                let key = slot.keys.chunk(j as u32);
                self.store.set(&key, chunk).await?;
                written.push(key);
            }
            self.store.set(&slot.keys.record(), &rec.encode()).await?;
            written.push(slot.keys.record());
            let deadline = rec.enqueued_at + WRITER_DEADLINE;
            if self.env.now() <= deadline {
                let r = self.store.increment(&slot.keys.commit(), WRITER_COMMIT).await?;
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
            } else {
                // Overdue: give the slot up without ever committing.
                self.store.increment(&slot.keys.commit(), WRITER_LOST).await?;
                self.store.delete_many(&written).await?;
            }
        }
        Err(Error::Contention(ring.tail()))
    }

    /// Takes the next head ticket whose slot was committed; `None` when the ring
    /// is empty (or its next writer is still within its grace period).
    pub(crate) async fn take(&self, ring: &RingKeys, now: Millis) -> Result<Option<Slot>> {
        if self.hints.skip_check(ring, now) {
            // Deep in a backlog, as this engine last read it (`hint.rs`): take a
            // ticket without reading head and tail. A ticket past the tail
            // reaches its slot before the writer, like any early consumer.
            let slot = Slot::new(ring, self.store.increment(&ring.head(), 1).await? as u64);
            match self.store.increment(&slot.keys.commit(), HOLDER).await? {
                r if r == WRITER_COMMIT + HOLDER => return Ok(Some(slot)),
                HOLDER => {
                    self.hints.forget(ring);
                    self.dead(&slot, true).await?;
                }
                _ => {}
            }
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
                if !self.overdue(&next, now).await? {
                    // Its writer is still at work: do not make it retry.
                    return Ok(None);
                }
            }
            let index = self.store.increment(&ring.head(), 1).await? as u64;
            let slot = Slot::new(ring, index);
            match self.store.increment(&slot.keys.commit(), HOLDER).await? {
                r if r == WRITER_COMMIT + HOLDER => return Ok(Some(slot)),
                // We came first: the slot is given up (its writer retries) — or a
                // scan standing in for a lost consumer decided it already.
                HOLDER => self.dead(&slot, true).await?,
                _ => {}
            }
        }
        Ok(None)
    }

    /// Whether an undecided slot has waited out the grace period since it was
    /// first seen undecided (stamping that time on first sight).
    pub(crate) async fn overdue(&self, slot: &Slot, now: Millis) -> Result<bool> {
        let key = slot.keys.seen();
        match self.store.get(&key).await? {
            None => {
                self.store.set(&key, &encode(&now)).await?;
                Ok(false)
            }
            Some(v) => Ok(now >= decode::<Millis>(&key, &v)?.saturating_add(GRACE)),
        }
    }

    /// Marks a slot given up before its writer committed, removing what a writer
    /// that died (or failed) before committing left in it.
    ///
    /// A slot already below the low-water mark was finished and swept while the
    /// caller was on its way (a taker stalled between its head ticket and its
    /// `increment(s, HOLDER)`, a scan that read the slot before the sweep): it
    /// is left alone. If the caller's `increment(s, HOLDER)` answered `HOLDER`
    /// (`created`), that increment re-created a commit counter the slot's writer
    /// had already deleted (it came, found the slot given up, and moved on: a
    /// counter is only ever missing once its writer has been), so it is taken
    /// back rather than left for nobody.
    pub(crate) async fn dead(&self, slot: &Slot, created: bool) -> Result<()> {
        let (rec, low) = self.read_slot(slot, false).await?;
        if slot.index < low {
            if created {
                self.store.delete(&slot.keys.commit()).await?;
            }
            return Ok(());
        }
        if let Some(rec) = rec {
            let mut left: Vec<String> = (0..rec.chunks).map(|j| slot.keys.chunk(j)).collect();
            left.push(slot.keys.record());
            self.store.delete_many(&left).await?;
        }
        self.set_state(slot, SlotState::Dead).await?;
        self.advance_low(slot, SlotState::Dead).await
    }
}
