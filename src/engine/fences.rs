//! Commit counters kept for a writer that may still come, deleted once it cannot.
//!
//! A consumer (or a scan standing in for one) that reaches a slot before its
//! writer committed fences it with `increment(s, HOLDER)` and decides it dead.
//! The counter must outlive the slot: the writer, when it comes, must find the
//! fence and give up (it then deletes the counter itself). A writer that never
//! comes would leave the counter forever: one that died between its ticket and
//! its commit, or one that came long ago — a scan at a low-water mark that a
//! racing sweep wrote back onto swept slots re-creates their counters.
//!
//! So a decider that *created* a fence on a ticket already handed out lists it
//! here, due `GRACE` after the decision: by then its writer has come, or can no
//! longer commit (it commits within `WRITER_DEADLINE` of its ticket, and gives
//! the slot up after). Scans read the list in the call that reads the low-water
//! mark and delete the counters that are due. A fence on a ticket past the tail
//! is never listed: its writer has not started and may start any time later.
//! Nor is one a take created on an engine's hint (`hint.rs`), which did not read
//! the tail and cannot tell: should that ticket's writer die before it comes,
//! the counter stays until the queue is purged or deleted (`reclaim.rs`).
//!
//! The list is one value per partition, rewritten with `set`. Two deciders that
//! add at once can lose an entry, and a full list takes no more: such a fence
//! stays, as every fence did before the list. Both are rare: a fence is created
//! only when a consumer outruns a writer that is late or gone.

use super::keys::RingKeys;
use super::ring::GRACE;
use super::slot::{decode, encode, Compact, Slot};
use super::{Engine, Env, Result};
use crate::model::Millis;
use crate::store::Store;

/// Most fences one partition's list holds.
const MAX_FENCES: usize = 64;

/// A partition's listed fences: slot index and when its counter may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fences(pub Vec<(u64, Millis)>);

impl Fences {
    /// The list as read under `ring.fences()` (empty when missing).
    pub(crate) fn decode(ring: &RingKeys, raw: Option<Vec<u8>>) -> Result<Self> {
        raw.map_or(Ok(Self::default()), |v| decode(&ring.fences(), &v))
    }

    /// Whether a listed fence is due at `now`.
    pub(crate) fn any_due(&self, now: Millis) -> bool {
        self.0.iter().any(|&(_, due)| due <= now)
    }
}

impl Compact for Fences {
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        for (n, (index, due)) in self.0.iter().enumerate() {
            let sep = if n == 0 { "" } else { ";" };
            let _ = write!(out, "{sep}{index}:{due}");
        }
    }
    fn read(s: &str) -> Option<Self> {
        s.split(';')
            .map(|entry| {
                let (index, due) = entry.split_once(':')?;
                Some((index.parse().ok()?, due.parse().ok()?))
            })
            .collect::<Option<_>>()
            .map(Self)
    }
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Lists the fence the caller created on `slot` (whose ticket was handed
    /// out) for deletion `GRACE` from now.
    pub(crate) async fn list_fence(&self, slot: &Slot) -> Result<()> {
        let key = slot.ring.fences();
        let mut list = Fences::decode(&slot.ring, self.store.get(&key).await?)?;
        if list.0.len() >= MAX_FENCES || list.0.iter().any(|&(i, _)| i == slot.index) {
            return Ok(());
        }
        list.0.push((slot.index, self.env.now().saturating_add(GRACE)));
        Ok(self.store.set(&key, &encode(&list)).await?)
    }

    /// Deletes the counters of the fences in `list` (as just read) that are due
    /// at `now`, and keeps the rest listed.
    pub(crate) async fn drop_due_fences(
        &self,
        ring: &RingKeys,
        list: Fences,
        now: Millis,
    ) -> Result<()> {
        let (due, rest): (Vec<_>, Vec<_>) = list.0.into_iter().partition(|&(_, d)| d <= now);
        if due.is_empty() {
            return Ok(());
        }
        let counters: Vec<String> = due.iter().map(|&(i, _)| ring.slot(i).commit()).collect();
        self.store.delete_many(&counters).await?;
        if rest.is_empty() {
            Ok(self.store.delete(&ring.fences()).await?)
        } else {
            Ok(self.store.set(&ring.fences(), &encode(&Fences(rest))).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_reads_back_what_was_written() {
        for list in [vec![(7, 1_800_000_005_000)], vec![(1, 2), (30, 40), (500, 6)]] {
            let list = Fences(list);
            let read = std::str::from_utf8(&encode(&list)).ok().and_then(Fences::read);
            assert_eq!(read, Some(list));
        }
        assert_eq!(Fences::read("1:2;x"), None);
        assert_eq!(Fences::read(""), None);
    }
}
