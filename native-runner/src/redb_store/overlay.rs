//! The in-memory overlay in front of redb: what each pending write records
//! ([`Entry`], [`Slot`], [`Layer`]) and the [`State`] behind the store's lock, with
//! the methods that apply writes to it and wake the persister.
//!
//! Split out of the module root so the write-back bookkeeping reads on its own; the
//! module docs of [`super`] explain how the overlay, the persister and redb fit.

use super::{Snapshot, ENTRY_COST};
use edgeq::store::{StoreError, StoreResult};
use std::collections::HashMap;
use std::sync::{Arc, Condvar};
use tokio::sync::oneshot;

/// The latest write to a key, not yet in redb.
#[derive(Debug, Clone)]
pub(super) enum Entry {
    Value(Arc<[u8]>),
    Counter(i64),
    Deleted,
}

impl Entry {
    pub(super) fn cost(&self, key: &str) -> usize {
        ENTRY_COST + key.len() + if let Entry::Value(v) = self { v.len() } else { 0 }
    }

    pub(super) fn kind(&self) -> Kind {
        match self {
            Entry::Value(_) => Kind::Value,
            Entry::Counter(n) => Kind::Counter(*n),
            Entry::Deleted => Kind::Missing,
        }
    }
}

/// What a key holds, as far as a write needs to know.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Value,
    Counter(i64),
    Missing,
}

/// Whether redb holds a key before a layer's entry for it is committed, so the
/// commit skips deleting what never got there (a key set and deleted within one
/// round never reaches redb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Before {
    Missing,
    /// Present, or not looked up (a delete): a delete must reach redb.
    Maybe,
}

impl From<Kind> for Before {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Missing => Before::Missing,
            Kind::Value | Kind::Counter(_) => Before::Maybe,
        }
    }
}

/// One key's entry in a layer.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) entry: Entry,
    /// What redb holds once every older layer is committed.
    pub(super) before: Before,
}

/// Keys are hashed with foldhash: every store call looks a key up in one or two
/// layers, and SipHash over the engine's long keys was a visible share of a
/// durable pop's CPU.
pub(super) type Layer = HashMap<String, Slot, foldhash::fast::RandomState>;

/// Test hooks that stop the persister at a given point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hold {
    No,
    /// Start no round.
    Rounds,
    /// Swap the overlay out, then wait before committing it.
    Commit,
}

/// Everything behind the lock.
pub(super) struct State {
    /// Writes since the last swap: the newest layer.
    pub(super) active: Layer,
    /// What `active` costs, by [`Entry::cost`].
    pub(super) active_bytes: usize,
    /// The batch being committed, readable under `active` until its commit lands.
    pub(super) persisting: Option<Arc<Layer>>,
    /// Bumped whenever entries leave the overlay (a batch's commit landed).
    pub(super) generation: u64,
    /// redb's latest commit, opened for reading when `generation` last moved
    /// (`None` if that failed: readers then open their own).
    pub(super) snapshot: Option<Arc<Snapshot>>,
    /// Sequence number of the newest write applied to the overlay.
    pub(super) written: u64,
    /// Newest write in a committed transaction (durable or not).
    pub(super) committed: u64,
    /// Newest write in a durable commit.
    pub(super) durable: u64,
    /// Transactions committed so far.
    pub(super) commits: u64,
    /// Flushes waiting for `durable` to reach their sequence number.
    pub(super) flushes: Vec<(u64, oneshot::Sender<StoreResult<()>>)>,
    /// The persister is waiting for work and must be woken.
    pub(super) idle: bool,
    /// The store is being dropped.
    pub(super) closing: bool,
    /// Why the persister thread is gone, once it is: writes and flushes fail
    /// with it.
    pub(super) failed: Option<StoreError>,
    pub(super) max_entries: usize,
    pub(super) max_bytes: usize,
    pub(super) hold: Hold,
}

impl State {
    pub(super) fn lookup(&self, key: &str) -> Option<&Entry> {
        self.active.get(key).or_else(|| self.persisting.as_ref()?.get(key)).map(|s| &s.entry)
    }

    pub(super) fn full(&self) -> bool {
        self.active.len() >= self.max_entries || self.active_bytes >= self.max_bytes
    }

    pub(super) fn half_full(&self) -> bool {
        self.active.len() >= self.max_entries / 2 || self.active_bytes >= self.max_bytes / 2
    }

    /// Records a write in the newest layer and wakes the persister if it has to act.
    /// `in_redb` is what redb holds under `key` if no layer has it.
    pub(super) fn put(&mut self, key: &str, entry: Entry, in_redb: Before, wake: &Condvar) {
        let cost = entry.cost(key);
        let was_empty = self.active.is_empty();
        match self.active.get_mut(key) {
            Some(old) => {
                self.active_bytes -= old.entry.cost(key);
                old.entry = entry;
            }
            None => {
                let before = match self.persisting.as_ref().and_then(|p| p.get(key)) {
                    Some(slot) => Before::from(slot.entry.kind()),
                    None => in_redb,
                };
                self.active.insert(key.to_owned(), Slot { entry, before });
            }
        }
        self.active_bytes += cost;
        self.written += 1;
        if was_empty || self.half_full() {
            self.wake_persister(wake);
        }
    }

    pub(super) fn wake_persister(&mut self, wake: &Condvar) {
        if self.idle {
            self.idle = false;
            wake.notify_one();
        }
    }
}

/// The outcome of one try at a write.
pub(super) enum Attempt<T> {
    Done(StoreResult<T>),
    /// The overlay is full: wait for room and try again.
    Full,
}
