//! The scan behind the head: one batch of slots at a time, from the low-water mark
//! or a rotating cursor, finds what is due again (deferrals and leases that ended,
//! slots whose consumer vanished) and sweeps finished runs at the mark. The
//! protocol is in the module docs of [`super`] ("Pop, receive, redelivery").

use super::fences::Fences;
use super::keys::RingKeys;
use super::ring::{Fence, GRACE};
use super::slot::{
    committed, decode, decode_low, encode, Claim, Slot, SlotState, HOLDER, WRITER_LOST,
};
use super::{Engine, Env, Result};
use crate::model::Millis;
use crate::store::Store;

/// Slots one scan behind the head reads.
const SCAN_BATCH: u64 = 32;
/// Further batches a scan sweeps when a whole batch at the mark was finished.
const SWEEP_AHEAD: usize = 7;

impl<S: Store, E: Env> Engine<S, E> {
    /// Reads one batch of slots behind the head and returns those due for delivery
    /// (deferrals and leases that ended, and slots whose consumer vanished),
    /// oldest first, each with the claims its state counted. Runs of finished
    /// slots at the low-water mark are swept.
    pub(super) async fn scan(
        &self,
        ring: &RingKeys,
        now: Millis,
        want: usize,
    ) -> Result<Vec<(Slot, u64)>> {
        // The low-water mark, and the fences listed for deletion (`fences.rs`).
        let (mut got, low) = self.get_many_and_low(ring, vec![ring.fences()]).await?;
        let fences = Fences::decode(ring, got.pop().flatten())?;
        if fences.any_due(now) {
            self.drop_due_fences(ring, fences, now).await?;
        }
        let head = self.store.increment(&ring.head(), 0).await?.max(0) as u64;
        if low > head {
            return Ok(Vec::new());
        }
        let width = head - low + 1;
        // Every other turn starts at the mark (sweeping finished runs there); the
        // others rotate through the rest, so a long lease at the mark does not
        // hide what lies behind it.
        let start = if width <= SCAN_BATCH {
            low
        } else {
            let turn = self.store.increment(&ring.scan(), 1).await? as u64;
            match turn % 2 {
                0 => low,
                _ => low + (turn / 2).wrapping_mul(SCAN_BATCH) % width,
            }
        };
        let end = head.min(start + SCAN_BATCH - 1);
        let keys: Vec<String> = (start..=end).map(|i| ring.slot(i).state()).collect();
        let states = self.store.get_many(&keys).await?;
        let mut due = Vec::new();
        let mut run = Vec::new();
        let mut undecided = Vec::new();
        for (i, raw) in (start..=end).zip(states) {
            let slot = Slot::new(ring, i);
            let Some(raw) = raw else {
                undecided.push(slot);
                continue;
            };
            match decode::<SlotState>(&slot.keys.state(), &raw)? {
                finished @ (SlotState::Done { .. } | SlotState::Dead) => {
                    if start == low && i == low + run.len() as u64 {
                        run.push((i, finished));
                    }
                }
                SlotState::Live { until, claims } => {
                    if until <= now && due.len() < want {
                        due.push((slot, claims));
                    }
                }
            }
        }
        self.sweep(ring, &run).await?;
        if start == low && run.len() as u64 == SCAN_BATCH {
            self.sweep_ahead(ring, end + 1, head).await?;
        }
        if !undecided.is_empty() {
            self.undecided(ring, undecided, head, now, want, &mut due).await?;
            due.sort_by_key(|(s, _)| s.index);
        }
        Ok(due)
    }

    /// Slots a scan found with no state yet; adds the due ones to `due`.
    ///
    /// Most were taken from the head and are being worked on right now: their
    /// taker's claim 0 is live, and the slot is left alone. Past its end the
    /// taker died or stalled (and then drops the message): due now, like any
    /// ended lease or hold; so is a slot whose claim 0 was abandoned. Without
    /// claim 0, the slot is stamped when first seen so (the stamp is taken back
    /// if the slot turns out to be taken: see `unstamp_taken`), and `resolve`d
    /// in its consumer's stead once that is GRACE ago. The mark is read again
    /// with them: a slot below it was finished and swept since the scan read its
    /// state, and stamping it would leave a key nobody deletes.
    async fn undecided(
        &self,
        ring: &RingKeys,
        slots: Vec<Slot>,
        head: u64,
        now: Millis,
        want: usize,
        due: &mut Vec<(Slot, u64)>,
    ) -> Result<()> {
        let keys = slots.iter().flat_map(|s| [s.keys.claim(0), s.keys.seen()]).collect();
        let (found, low) = self.get_many_and_low(ring, keys).await?;
        let mut found = found.into_iter();
        let mut stamped = Vec::new();
        for slot in slots {
            let (first, seen) = (found.next().flatten(), found.next().flatten());
            if slot.index < low {
                continue;
            }
            let first = first.map(|v| decode::<Claim>(&slot.keys.claim(0), &v)).transpose()?;
            match first.map(|claim| claim.until()) {
                Some(Some(until)) if until > now => continue,
                // Ended; or abandoned: the taker lost to a newer claim whose
                // claimant has written no state yet, and may never (it died or
                // failed). Due now either way: a claim on it backs off from a
                // newer claim still live, and writes the state that claimant
                // did not. (Stamping it instead would be taken back at once,
                // claim 0 being there, and the slot left undelivered forever.)
                Some(_) => {
                    if due.len() < want {
                        due.push((slot, 0));
                    }
                    continue;
                }
                None => {}
            }
            let overdue = match seen {
                // At the mark with a batch taken since: its consumer is far behind
                // every other, or the slot was swept already and a racing sweep
                // moved the mark back onto it. Either way, waiting GRACE would
                // hold the mark, and every sweep behind it, for nothing: `resolve`
                // decides it as safely now as later.
                _ if slot.index == low && head >= low + SCAN_BATCH => true,
                None => {
                    self.store.set(&slot.keys.seen(), &encode(&now)).await?;
                    stamped.push(slot);
                    continue;
                }
                Some(v) => now >= decode::<Millis>(&slot.keys.seen(), &v)?.saturating_add(GRACE),
            };
            if overdue && due.len() < want && self.resolve(&slot).await? {
                due.push((slot, 0));
            }
        }
        self.unstamp_taken(ring, &stamped).await
    }

    /// Takes back the stamps just written on slots that turn out to be taken:
    /// claim 0 written since (its taker was between its ticket and its claim,
    /// as the newest slots often are), or below the mark (finished and swept
    /// meanwhile; a sweep deletes the run's keys, moves the mark, then deletes
    /// the run's stamps again, so a stamp that lands after the mark moved is
    /// seen here). Left there, such a stamp is a key nobody deletes.
    async fn unstamp_taken(&self, ring: &RingKeys, stamped: &[Slot]) -> Result<()> {
        if stamped.is_empty() {
            return Ok(());
        }
        let keys = stamped.iter().map(|s| s.keys.claim(0)).collect();
        let (found, low) = self.get_many_and_low(ring, keys).await?;
        let taken: Vec<String> = stamped
            .iter()
            .zip(found)
            .filter(|(slot, first)| slot.index < low || first.is_some())
            .map(|(slot, _)| slot.keys.seen())
            .collect();
        if !taken.is_empty() {
            self.store.delete_many(&taken).await?;
        }
        Ok(())
    }

    /// The values under `keys` and, read in the same call, the low-water mark.
    async fn get_many_and_low(
        &self,
        ring: &RingKeys,
        mut keys: Vec<String>,
    ) -> Result<(Vec<Option<Vec<u8>>>, u64)> {
        keys.push(ring.low());
        let mut found = self.store.get_many(&keys).await?;
        let low = decode_low(ring, found.pop().flatten())?;
        Ok((found, low))
    }

    /// Sweeps the runs of finished slots from `from` (the mark, just moved past a
    /// whole finished batch), a few batches at most. The mark moves past slots
    /// finished out of order only in scans; after a slot held it back, this lets
    /// it catch up with the head in a few scans rather than one batch per scan.
    async fn sweep_ahead(&self, ring: &RingKeys, from: u64, head: u64) -> Result<()> {
        let mut start = from;
        for _ in 0..SWEEP_AHEAD {
            if start > head {
                break;
            }
            let end = head.min(start + SCAN_BATCH - 1);
            let keys: Vec<String> = (start..=end).map(|i| ring.slot(i).state()).collect();
            let mut run = Vec::new();
            for (i, raw) in (start..=end).zip(self.store.get_many(&keys).await?) {
                match raw.map(|v| decode::<SlotState>(&ring.slot(i).state(), &v)).transpose()? {
                    Some(finished @ (SlotState::Done { .. } | SlotState::Dead)) => {
                        run.push((i, finished));
                    }
                    _ => break,
                }
            }
            self.sweep(ring, &run).await?;
            if run.len() as u64 != SCAN_BATCH {
                break;
            }
            start = end + 1;
        }
        Ok(())
    }

    /// Decides a slot behind the head that no consumer decided within the grace
    /// period: stands in for the vanished consumer. Returns whether the slot holds
    /// a committed message ready to be claimed like any other (`false` also while
    /// its writer, having lost it, may still be deleting it).
    async fn resolve(&self, slot: &Slot) -> Result<bool> {
        let mut s = self.store.increment(&slot.keys.commit(), 0).await?;
        // The writer gave up and a taker came after it: the counter is spent.
        let mut fence = if s >= WRITER_LOST + HOLDER { Fence::Spent } else { Fence::Found };
        if s == 0 {
            s = self.store.increment(&slot.keys.commit(), HOLDER).await?;
            if s == HOLDER {
                fence = Fence::Created;
            }
        }
        if committed(s) {
            // A writer that lost the slot looks committed until it deletes the
            // counter with its record; it does so before its deadline or never
            // retries, so wait out GRACE after its ticket before delivering.
            return match self.read_record_only(slot).await? {
                Some(rec) => Ok(self.env.now() >= rec.enqueued_at.saturating_add(GRACE)),
                None => {
                    self.dead(slot, Fence::Found).await?;
                    Ok(false)
                }
            };
        }
        if self.dead(slot, fence).await?
            && self.store.increment(&slot.ring.tail(), 0).await? >= slot.index as i64
        {
            self.list_fence(slot).await?;
        }
        Ok(false)
    }
}
