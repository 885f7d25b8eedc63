//! The persister thread: it swaps the overlay out in [`Round`]s, writes each one in
//! a single redb transaction ([`commit`]) and answers the flushes a commit satisfies.
//!
//! Kept apart from the store's request path, which never waits on redb writes; the
//! module docs of [`super`] describe the rounds, group commits and error handling.

use super::overlay::{Before, Entry, Hold, Layer, Slot, State};
use super::{fail, tagged, Shared, Snapshot, BACKGROUND_DELAY, FORCE_DURABLE_EVERY, KV};
use edgeq::store::{StoreError, StoreResult};
use redb::{Database, Durability};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

/// One batch to commit.
struct Round {
    /// The swapped-out overlay, `None` for an empty (durability-only) commit.
    batch: Option<Arc<Layer>>,
    /// The newest write in the batch (and in every earlier round).
    seq: u64,
    durable: bool,
}

/// The persister thread's state.
pub(super) struct Persister {
    pub(super) shared: Arc<Shared>,
    /// Non-durable commits since the last durable one.
    pub(super) nondurable: u32,
}

impl Persister {
    pub(super) fn run(mut self) {
        while let Some(round) = self.next_round() {
            if self.persist(round).is_err() {
                break;
            }
        }
        let mut st = self.shared.lock();
        let failed = st.failed.get_or_insert_with(persister_gone).clone();
        for (_, reply) in st.flushes.drain(..) {
            let _ = reply.send(Err(failed.clone()));
        }
        drop(st);
        self.shared.room.notify_waiters();
        self.shared.stopped.notify_waiters();
    }

    /// Waits until there is a round to run and swaps the overlay out for it; `None`
    /// once the store is closing and everything is durable.
    fn next_round(&mut self) -> Option<Round> {
        let shared = &*self.shared;
        let mut st = shared.lock();
        let mut deadline: Option<Instant> = None;
        loop {
            let dirty = !st.active.is_empty();
            let unsynced = st.committed > st.durable;
            if st.closing && !dirty && !unsynced {
                return None;
            }
            if !st.flushes.is_empty() && !dirty && !unsynced {
                // Already durable (cannot happen: a flush waits only for something).
                let durable = st.durable;
                answer(&mut st, durable, &Ok(()));
                continue;
            }
            let go = st.hold != Hold::Rounds
                && (st.closing
                    || !st.flushes.is_empty()
                    || (dirty && st.half_full())
                    || (dirty && deadline.is_some_and(|d| Instant::now() >= d)));
            if go {
                break;
            }
            let background = dirty && st.hold == Hold::No;
            if background && deadline.is_none() {
                deadline = Some(Instant::now() + BACKGROUND_DELAY);
            }
            st.idle = true;
            st = match deadline {
                Some(d) if background => {
                    let wait = d.saturating_duration_since(Instant::now());
                    shared.wake.wait_timeout(st, wait).unwrap_or_else(PoisonError::into_inner).0
                }
                _ => shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner),
            };
            st.idle = false;
        }
        let durable =
            st.closing || !st.flushes.is_empty() || self.nondurable + 1 >= FORCE_DURABLE_EVERY;
        let batch = if st.active.is_empty() {
            None
        } else {
            // The next round is likely to be as large: size its layer so that it
            // does not rehash its way up again while requests wait on the lock.
            let next = Layer::with_capacity_and_hasher(st.active.len(), Default::default());
            let batch = Arc::new(std::mem::replace(&mut st.active, next));
            st.active_bytes = 0;
            st.persisting = Some(batch.clone());
            Some(batch)
        };
        let seq = st.written;
        while st.hold == Hold::Commit && !st.closing {
            st = shared.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        drop(st);
        // The overlay is empty again: writers waiting for room may go on.
        shared.room.notify_waiters();
        Some(Round { batch, seq, durable })
    }

    /// Commits one round and answers the flushes it satisfies. A failed commit
    /// stops the persister: its error is the store's from then on.
    fn persist(&mut self, round: Round) -> StoreResult<()> {
        let result = commit(&self.shared.db, round.batch.as_deref(), round.durable);
        // Readers get the new commit in the same step the batch leaves the overlay.
        let snapshot = result.as_ref().ok().and_then(|()| Snapshot::open(&self.shared.db).ok());
        let mut st = self.shared.lock();
        st.persisting = None;
        match result {
            Ok(()) => {
                st.generation += 1;
                st.snapshot = snapshot;
                st.committed = round.seq;
                st.commits += 1;
                if round.durable {
                    st.durable = round.seq;
                    self.nondurable = 0;
                    answer(&mut st, round.seq, &Ok(()));
                } else {
                    self.nondurable += 1;
                }
                Ok(())
            }
            Err(e) => {
                // Nothing of the batch landed, and nothing will: after a failed
                // write or sync redb refuses every transaction until the file is
                // opened again (retrying only filled the overlay with writes that
                // could never land). Reads keep the batch: it is what the writers
                // since saw.
                st.persisting = round.batch;
                if st.closing {
                    eprintln!("edgeq: final durable commit failed: {e}");
                }
                let e = StoreError(format!(
                    "{}; the store takes no more writes until it is opened again \
                     (restart edgeq: it reopens at its last durable commit)",
                    e.0
                ));
                // No write lands after this (under the same lock), and every
                // waiting flush depends on this batch.
                st.failed = Some(e.clone());
                answer(&mut st, u64::MAX, &Err(e.clone()));
                Err(e)
            }
        }
    }
}

/// Answers the waiting flushes whose writes are all at most `seq`.
fn answer(st: &mut State, seq: u64, result: &StoreResult<()>) {
    for (_, reply) in st.flushes.extract_if(.., |(target, _)| *target <= seq) {
        // A flush whose caller went away needs no answer.
        let _ = reply.send(result.clone());
    }
}

/// Writes `batch` (if any) in one transaction and commits it.
fn commit(db: &Database, batch: Option<&Layer>, durable: bool) -> StoreResult<()> {
    let mut txn = db.begin_write().map_err(|e| fail("begin write", e))?;
    let durability = if durable { Durability::Immediate } else { Durability::None };
    txn.set_durability(durability).map_err(|e| fail("set durability", e))?;
    if let Some(batch) = batch {
        let mut kv = txn.open_table(KV).map_err(|e| fail("open kv", e))?;
        // In key order: neighbouring inserts touch the same B-tree pages.
        let mut entries: Vec<(&String, &Slot)> = batch.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // Deletes of keys under one parent (a slot's keys) go in one pass.
        let mut deletes: Vec<&str> = Vec::new();
        for (key, slot) in entries {
            let key = key.as_str();
            if !deletes.last().is_some_and(|last| same_parent(last, key)) {
                delete(&mut kv, &deletes)?;
                deletes.clear();
            }
            // The overlay checked kinds when the write was made; here the entry
            // is the key's whole truth.
            let done = match &slot.entry {
                Entry::Value(v) => kv.insert(key, &*tagged::value(v)).map(drop),
                Entry::Counter(n) => kv.insert(key, &tagged::counter(*n)[..]).map(drop),
                Entry::Deleted if slot.before == Before::Missing => Ok(()),
                Entry::Deleted => {
                    deletes.push(key);
                    Ok(())
                }
            };
            done.map_err(|e| fail("write", e))?;
        }
        delete(&mut kv, &deletes)?;
    }
    // On an error above, dropping `txn` aborts it: nothing is written.
    txn.commit().map_err(|e| fail("commit", e))
}

/// Whether `a` and `b` share everything up to their last `/`.
fn same_parent(a: &str, b: &str) -> bool {
    parent(a) == parent(b)
}

fn parent(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..i])
}

/// Deletes `keys` (sorted, under one parent): one remove for a single key, else
/// one pass over the range they span, which keeps every other key in it. A pop
/// deletes some eight keys of its slot, most of which were never written: a
/// remove each would search the tree eight times.
fn delete(kv: &mut redb::Table<&str, &[u8]>, keys: &[&str]) -> StoreResult<()> {
    let done = match keys {
        [] => Ok(()),
        [key] => kv.remove(*key).map(drop),
        [first, .., last] => {
            kv.retain_in(*first..=*last, |key, _| keys.binary_search(&key).is_err())
        }
    };
    done.map_err(|e| fail("delete", e))
}

pub(super) fn persister_gone() -> StoreError {
    StoreError("redb persister thread stopped".into())
}
