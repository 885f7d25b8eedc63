//! What is stored per slot besides the message: claim records and the state hint,
//! and the helpers that read and finish a slot.

use super::keys::{QueueKeys, RingKeys, SlotKeys};
use super::{Engine, Env, Error, Result};
use crate::model::{MessageRecord, Millis};
use crate::store::Store;

/// Bodies up to this size are stored inline in the record; larger ones in chunks.
pub(crate) const INLINE_BODY: usize = 64 << 10;
/// Largest body chunk value.
pub(crate) const CHUNK: usize = 1 << 20;

/// Commit counter deltas (see the protocol in `engine`'s docs).
pub(crate) const WRITER_COMMIT: i64 = 1;
/// Added by the first consumer (or a scan standing in for it) that reaches a slot.
pub(crate) const HOLDER: i64 = 2;
/// Added by a writer that gave its slot up, past its deadline, without committing.
pub(crate) const WRITER_LOST: i64 = 1 << 32;

/// Whether a commit counter value means the message was committed, as far as a
/// third party can tell. The one misread — a writer that lost the race and died
/// before deleting the counter with its record — is a message that was never
/// acknowledged; delivering it once is harmless.
pub(crate) fn committed(s: i64) -> bool {
    s & 1 == 1 && s < WRITER_LOST
}

/// What one claim on a slot intends or did (the value at `r{k}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The claimant holds (or wants) the slot until `until`; `lease` marks a
    /// receive lease (counted in flight) as opposed to a deferral (delay, nack).
    Live { until: Millis, lease: bool },
    /// A delete by id in progress until `until`: it overrides older leases, and a
    /// lease holder finishing meanwhile backs off to it.
    Override { until: Millis },
    /// The claimant gave up.
    Abandoned,
}

impl Claim {
    /// Until when the claim holds or wants the slot; `None` once given up.
    pub(crate) fn until(&self) -> Option<Millis> {
        match *self {
            Claim::Live { until, .. } | Claim::Override { until } => Some(until),
            Claim::Abandoned => None,
        }
    }
}

/// The slot's state as last decided (the value at `z`): a hint for scans. Only
/// deciders write it; an undecided slot has none (and perhaps a `u` stamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Held (leased or deferred) until then by claim `claims`.
    Live { until: Millis, claims: u64 },
    /// Finished; `claims` claim records exist (for cleanup).
    Done { claims: u64 },
    /// Given up before its writer committed: never held a message. Its commit
    /// counter must outlive it, since the writer (perhaps not even holding its
    /// ticket yet) may still increment it and must then read "lost", not 1; the
    /// writer deletes it then.
    Dead,
}

/// How the engine's small bookkeeping values are stored: a tag letter and
/// decimal numbers separated by commas (`L1800000000000`, `F3`), or a bare number
/// (the low-water mark). These are written and read on every delivery, where
/// this is several times cheaper than JSON, and they stay readable in a dump.
pub(crate) trait Compact: Sized {
    /// Appends the encoding of `self` to `out`.
    fn write(&self, out: &mut String);
    /// Parses an encoding written by `write`.
    fn read(s: &str) -> Option<Self>;
}

pub(crate) fn encode<T: Compact>(v: &T) -> Vec<u8> {
    let mut s = String::with_capacity(24);
    v.write(&mut s);
    s.into_bytes()
}

pub(crate) fn decode<T: Compact>(key: &str, v: &[u8]) -> Result<T> {
    std::str::from_utf8(v).ok().and_then(T::read).ok_or_else(|| Error::Corrupt(key.to_owned()))
}

/// Exactly `N` comma-separated decimal numbers.
pub(crate) fn numbers<const N: usize>(s: &str) -> Option<[u64; N]> {
    let mut out = [0; N];
    let mut parts = s.split(',');
    for n in &mut out {
        *n = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

impl Compact for u64 {
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "{self}");
    }
    fn read(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl Compact for Claim {
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            Claim::Live { until, lease: true } => write!(out, "L{until}"),
            Claim::Live { until, lease: false } => write!(out, "H{until}"),
            Claim::Override { until } => write!(out, "O{until}"),
            Claim::Abandoned => write!(out, "A"),
        };
    }
    fn read(s: &str) -> Option<Self> {
        let (tag, rest) = s.split_at_checked(1)?;
        Some(match tag {
            "L" => Claim::Live { until: rest.parse().ok()?, lease: true },
            "H" => Claim::Live { until: rest.parse().ok()?, lease: false },
            "O" => Claim::Override { until: rest.parse().ok()? },
            "A" if rest.is_empty() => Claim::Abandoned,
            _ => return None,
        })
    }
}

impl Compact for SlotState {
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            SlotState::Live { until, claims } => write!(out, "L{until},{claims}"),
            SlotState::Done { claims } => write!(out, "F{claims}"),
            SlotState::Dead => write!(out, "X"),
        };
    }
    fn read(s: &str) -> Option<Self> {
        let (tag, rest) = s.split_at_checked(1)?;
        Some(match tag {
            "L" => {
                let [until, claims] = numbers(rest)?;
                SlotState::Live { until, claims }
            }
            "F" => SlotState::Done { claims: rest.parse().ok()? },
            "X" if rest.is_empty() => SlotState::Dead,
            _ => return None,
        })
    }
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
        Ok(self.read_slot(slot, true).await?.0)
    }

    /// The record of `slot` (with its chunked body when `body`) and, read in the
    /// same call, the partition's low-water mark that [`Engine::finish`] needs.
    pub(crate) async fn read_slot(
        &self,
        slot: &Slot,
        body: bool,
    ) -> Result<(Option<MessageRecord>, u64)> {
        let key = slot.keys.record();
        let low_key = slot.ring.low();
        let mut got = self.store.get_many(&[key, low_key]).await?.into_iter();
        let (raw, low) = (got.next().flatten(), got.next().flatten());
        let low = match low {
            None => 1,
            Some(v) => decode(&slot.ring.low(), &v)?,
        };
        let Some(raw) = raw else {
            return Ok((None, low));
        };
        let mut rec =
            MessageRecord::decode(&raw).map_err(|_| Error::Corrupt(slot.keys.record()))?;
        if body && rec.chunks > 0 {
            let keys: Vec<String> = (0..rec.chunks).map(|j| slot.keys.chunk(j)).collect();
            let mut body = Vec::with_capacity(rec.size as usize);
            for chunk in self.store.get_many(&keys).await? {
                match chunk {
                    Some(c) => body.extend_from_slice(&c),
                    // A chunk is gone: the message was finished under us.
                    None => return Ok((None, low)),
                }
            }
            rec.body = body;
        }
        Ok((Some(rec), low))
    }

    /// Finishes the message in `slot` as the winner of its latest claim: removes
    /// the record and body and gives the counts back. A finished slot is told by
    /// its missing record; a claimant that wins it later finds nothing to deliver.
    /// `low` is the low-water mark as read with the record (`read_slot`): the mark
    /// cannot pass a slot that is not finished, so it is still good here.
    pub(crate) async fn finish(
        &self,
        qk: &QueueKeys,
        slot: &Slot,
        rec: &MessageRecord,
        claims: u64,
        low: u64,
    ) -> Result<()> {
        let mut dead: Vec<String> = (0..rec.chunks).map(|j| slot.keys.chunk(j)).collect();
        dead.push(slot.keys.record());
        if low == slot.index {
            // At the low-water mark: the slot's bookkeeping goes too, and the mark
            // moves past it (a host dying in between leaves the mark for a scan).
            dead.extend(bookkeeping(&slot.keys, SlotState::Done { claims }));
            dead.extend(late_stamp(&slot.ring, slot.index));
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
        decode_low(ring, self.store.get(&ring.low()).await?)
    }

    /// Deletes the bookkeeping of `done`, a run of finished (`Done` or `Dead`)
    /// slots starting at the low-water mark, and then moves the mark past them —
    /// unless another sweeper moved it further since this read it: a mark
    /// moved back onto a swept slot would hold scans there for `GRACE`, and the
    /// head runs on meanwhile. (A sweeper can still write between this read and
    /// the write; that is rare, and costs only that.)
    ///
    /// Delete first, as a finish at the mark does: a host dying in between
    /// leaves the run to the scans (its slots look undecided at the mark and are
    /// decided again), where the other order would leave the run's keys below
    /// the mark, where no scan looks. A scan reading the run in between stamps
    /// its slots, so their stamps are deleted once more after the mark moved
    /// (a stamp written later sees the new mark and is taken back by its scan).
    /// One more call per sweep, which is once per batch of slots at most.
    pub(crate) async fn sweep(&self, ring: &RingKeys, done: &[(u64, SlotState)]) -> Result<()> {
        let Some(&(last, _)) = done.last() else {
            return Ok(());
        };
        let mut dead: Vec<String> =
            done.iter().flat_map(|&(i, state)| bookkeeping(&ring.slot(i), state)).collect();
        dead.extend(late_stamp(ring, done[0].0));
        self.store.delete_many(&dead).await?;
        if self.low(ring).await? <= last {
            self.store.set(&ring.low(), &encode(&(last + 1))).await?;
        }
        let stamps: Vec<String> = done.iter().map(|&(i, _)| ring.slot(i).seen()).collect();
        Ok(self.store.delete_many(&stamps).await?)
    }
}

/// The stamp key of the slot just below `mark`, the slot the mark last moved past,
/// deleted again with the keys of the next finished slot at the mark. A consumer
/// finishing a slot at the mark deletes its keys one call before it moves the
/// mark, and a scan that reads the slot in between takes it for one whose taker
/// is between ticket and claim and stamps it: that stamp lands after the delete,
/// below the mark, where no scan looks again (`scan.rs`, `unstamp_taken`).
/// Nothing else can be under that key by then, so deleting it is always safe; a
/// stamp that lands later still is left (see the known limits).
pub(crate) fn late_stamp(ring: &RingKeys, mark: u64) -> Option<String> {
    (mark > 1).then(|| ring.slot(mark - 1).seen())
}

/// The low-water mark from the value read under `ring.low()` (1 before any sweep).
pub(crate) fn decode_low(ring: &RingKeys, raw: Option<Vec<u8>>) -> Result<u64> {
    match raw {
        None => Ok(1),
        Some(v) => decode(&ring.low(), &v),
    }
}

/// The keys of a finished slot besides its record: all of them for a `Done`
/// slot; only the state and stamp of a `Dead` one, whose commit counter must
/// outlive it (until its writer comes).
pub(crate) fn bookkeeping(k: &SlotKeys, state: SlotState) -> Vec<String> {
    let mut keys = vec![k.state(), k.seen()];
    if let SlotState::Done { claims } = state {
        keys.extend([k.commit(), k.claims(), k.deliveries()]);
        keys.extend((0..=claims).map(|c| k.claim(c)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_values_round_trip_and_garbage_is_corrupt() {
        let claims = [
            Claim::Live { until: 1_800_000_000_000, lease: true },
            Claim::Live { until: 0, lease: false },
            Claim::Override { until: 7 },
            Claim::Abandoned,
        ];
        for c in claims {
            assert_eq!(decode::<Claim>("k", &encode(&c)).unwrap(), c);
        }
        let states = [
            SlotState::Live { until: u64::MAX, claims: 3 },
            SlotState::Done { claims: 0 },
            SlotState::Dead,
        ];
        for st in states {
            assert_eq!(decode::<SlotState>("k", &encode(&st)).unwrap(), st);
        }
        assert_eq!(decode::<u64>("k", &encode(&42u64)).unwrap(), 42);
        for bad in ["", "L", "Lx", "A1", "L1,2,3", "X ", "Q1", "F-1", "\u{e9}"] {
            assert!(decode::<SlotState>("k", bad.as_bytes()).is_err(), "{bad}");
            assert!(decode::<Claim>("k", bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(decode::<Claim>("k", &[0xff, 0xfe]).is_err());
    }
}
