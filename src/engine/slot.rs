//! What is stored per slot besides the message: claim records and the state hint,
//! and the helpers that read and finish a slot.

use super::keys::{QueueKeys, RingKeys, SlotKeys};
use super::{Engine, Env, Error, Result};
use crate::model::{MessageRecord, Millis};
use crate::store::Store;
use serde::{Deserialize, Serialize};

/// Bodies up to this size are stored inline in the record; larger ones in chunks.
pub(crate) const INLINE_BODY: usize = 64 << 10;
/// Largest body chunk value.
pub(crate) const CHUNK: usize = 1 << 20;

/// Commit counter deltas (see the protocol in `engine`'s docs).
pub(crate) const WRITER_COMMIT: i64 = 1;
/// Added by the first consumer (or a scan standing in for it) that reaches a slot.
pub(crate) const HOLDER: i64 = 2;
/// Added by a writer that lost its slot or gave it up.
pub(crate) const WRITER_LOST: i64 = 1 << 32;

/// Whether a commit counter value means the message was committed, as far as a
/// third party can tell. The one misread — a writer that lost the race and died
/// before marking it — is a message that was never acknowledged; delivering it
/// once is harmless.
pub(crate) fn committed(s: i64) -> bool {
    s & 1 == 1 && s < WRITER_LOST
}

/// What one claim on a slot intends or did (the value at `r{k}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Claim {
    /// The claimant holds (or wants) the slot until `until`; `lease` marks a
    /// receive lease (counted in flight) as opposed to a deferral (delay, nack).
    Live { until: Millis, lease: bool },
    /// The claimant gave up.
    Abandoned,
}

/// The slot's state as last decided (the value at `z`): a hint for scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SlotState {
    /// A scan first saw the slot undecided at this time.
    Seen(Millis),
    /// Held (leased or deferred) until then by claim `claims`.
    Live { until: Millis, claims: u64 },
    /// Finished; `claims` claim records exist (for cleanup).
    Done { claims: u64 },
    /// Given up before its writer committed: never held a message. Its commit
    /// counter must outlive it, since the writer (perhaps not even holding its
    /// ticket yet) may still increment it and must then read "lost", not 1.
    Dead,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // These are small enums of integers: serialising them cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

pub(crate) fn decode<T: for<'a> Deserialize<'a>>(key: &str, v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|_| Error::Corrupt(key.to_owned()))
}

/// A slot and where it lives.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub ring: RingKeys,
    pub index: u64,
    pub keys: SlotKeys,
}

impl Slot {
    pub fn new(ring: &RingKeys, index: u64) -> Self {
        Self { keys: ring.slot(index), ring: ring.clone(), index }
    }
}

impl<S: Store, E: Env> Engine<S, E> {
    /// The record of `slot` without its chunked body.
    pub(crate) async fn read_record_only(&self, slot: &Slot) -> Result<Option<MessageRecord>> {
        let key = slot.keys.record();
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(raw) => MessageRecord::decode(&raw).map(Some).map_err(|_| Error::Corrupt(key)),
        }
    }

    /// The record of `slot` with its body, if the slot holds a message.
    pub(crate) async fn read_message(&self, slot: &Slot) -> Result<Option<MessageRecord>> {
        let key = slot.keys.record();
        let Some(raw) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let mut rec = MessageRecord::decode(&raw).map_err(|_| Error::Corrupt(key))?;
        if rec.chunks > 0 {
            let keys: Vec<String> = (0..rec.chunks).map(|j| slot.keys.chunk(j)).collect();
            let mut body = Vec::with_capacity(rec.size as usize);
            for chunk in self.store.get_many(&keys).await? {
                match chunk {
                    Some(c) => body.extend_from_slice(&c),
                    // A chunk is gone: the message was finished under us.
                    None => return Ok(None),
                }
            }
            rec.body = body;
        }
        Ok(Some(rec))
    }

    /// Finishes the message in `slot` as the winner of its latest claim: removes
    /// the record and body and gives the counts back. A finished slot is told by
    /// its missing record; a claimant that wins it later finds nothing to deliver.
    pub(crate) async fn finish(
        &self,
        qk: &QueueKeys,
        slot: &Slot,
        rec: &MessageRecord,
        claims: u64,
    ) -> Result<()> {
        let mut dead: Vec<String> = (0..rec.chunks).map(|j| slot.keys.chunk(j)).collect();
        dead.push(slot.keys.record());
        if self.low(&slot.ring).await? == slot.index {
            // At the low-water mark: the slot's bookkeeping goes too, and the mark
            // moves past it (a host dying in between leaves the mark for a scan).
            dead.extend(bookkeeping(&slot.keys, SlotState::Done { claims }));
            self.store.delete_many(&dead).await?;
            self.store.set(&slot.ring.low(), &encode(&(slot.index + 1))).await?;
        } else {
            self.store.delete_many(&dead).await?;
            self.set_state(slot, SlotState::Done { claims }).await?;
        }
        // Messages and bytes share one counter (see `QueueKeys::held`).
        self.store.increment(&qk.held(), -held(rec.size)).await?;
        Ok(())
    }

    pub(crate) async fn set_state(&self, slot: &Slot, state: SlotState) -> Result<()> {
        Ok(self.store.set(&slot.keys.state(), &encode(&state)).await?)
    }

    /// Moves the partition's low-water mark past `slot` when `slot` sits right on
    /// it, deleting the finished slot's bookkeeping keys. Out-of-order finishes
    /// leave the mark behind; the scan moves it past runs of finished slots.
    pub(crate) async fn advance_low(&self, slot: &Slot, state: SlotState) -> Result<()> {
        if self.low(&slot.ring).await? == slot.index {
            self.sweep(&slot.ring, &[(slot.index, state)]).await?;
        }
        Ok(())
    }

    /// The partition's low-water mark: every slot below it is finished.
    pub(crate) async fn low(&self, ring: &RingKeys) -> Result<u64> {
        let key = ring.low();
        match self.store.get(&key).await? {
            None => Ok(1),
            Some(v) => decode(&key, &v),
        }
    }

    /// Deletes the bookkeeping of `done`, a run of finished (`Done` or `Dead`)
    /// slots starting at the low-water mark, and moves the mark past them.
    pub(crate) async fn sweep(&self, ring: &RingKeys, done: &[(u64, SlotState)]) -> Result<()> {
        let Some(&(last, _)) = done.last() else {
            return Ok(());
        };
        self.store.set(&ring.low(), &encode(&(last + 1))).await?;
        let dead: Vec<String> =
            done.iter().flat_map(|&(i, state)| bookkeeping(&ring.slot(i), state)).collect();
        Ok(self.store.delete_many(&dead).await?)
    }
}

/// The keys of a finished slot besides its record: all of them for a `Done`
/// slot; only the state of a `Dead` one, whose commit counter must outlive it.
fn bookkeeping(k: &SlotKeys, state: SlotState) -> Vec<String> {
    let mut keys = vec![k.state()];
    if let SlotState::Done { claims } = state {
        keys.extend([k.commit(), k.claims(), k.deliveries()]);
        keys.extend((1..=claims).map(|c| k.claim(c)));
    }
    keys
}

/// The change to a queue's `held` counter for one message of `size` bytes.
pub(crate) fn held(size: u64) -> i64 {
    (1 << HELD_SHIFT) + size as i64
}

/// Splits a `held` counter into (messages, bytes).
pub(crate) fn split_held(v: i64) -> (u64, u64) {
    let v = v.max(0);
    ((v >> HELD_SHIFT) as u64, (v & ((1 << HELD_SHIFT) - 1)) as u64)
}

/// Bytes take the low 40 bits of `held` (1 TiB per queue), messages the rest.
pub(crate) const HELD_SHIFT: u32 = 40;
