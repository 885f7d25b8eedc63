//! The embedded durable store: [`RedbStore`], a [`Store`] in one [redb] file.
//!
//! # Why redb
//!
//! redb is pure Rust (no C toolchain, builds anywhere `cargo` does), keeps everything
//! in one file, and is crash-safe by construction: a copy-on-write B-tree whose
//! commits flip between two checksummed commit slots, so after a crash (a `kill -9`
//! or a power cut) the file always opens at its last durable commit, never at a torn
//! one. It also offers cheap *non-durable* commits (visible to readers, not yet
//! fsynced), which the background rounds below use.
//!
//! # Layout
//!
//! One table, `kv`: `&str` → `&[u8]`, each entry a tag byte (value or counter) and
//! its payload (`tagged.rs`, which says why one table and not two). Files written
//! by earlier versions kept values and counters in two tables, `values` and
//! `counters`; opening such a file moves both into `kv` in one transaction.
//!
//! As in [`MemoryStore`](edgeq::store::MemoryStore), a `get` on a counter key, or a
//! `set`/`increment` on a key of the other kind, is an error (the engine never does
//! it; a real Spin backend would be corrupted by it). One difference: reading a
//! missing counter with `increment(key, 0)` does not create it here.
//! Keys and values are checked against the engine's limits with
//! [`check_key`] and [`check_set`],
//! as in every store.
//!
//! # Write-back: an in-memory overlay in front of redb
//!
//! An fsync costs far more than the work of a request (milliseconds against
//! microseconds), and redb allows one write transaction at a time, each of which
//! writes its dirty pages. A pop makes ~10-13 *dependent* write calls; if each of
//! them waited for a redb commit, a request would wait for a dozen writer rounds in
//! a row. So write calls do not wait for redb at all:
//!
//! - **Writes go to an overlay.** `set`, `delete`, `delete_many` and `increment` are
//!   applied under one [`std::sync::Mutex`] to an in-memory map, key → `Value(bytes)`
//!   | `Counter(n)` | `Deleted`, and return at once. The lock is never held across an
//!   `.await`, and never across redb I/O: when a write has to know what redb holds
//!   (is this key a counter? what is its committed value?) it reads redb *outside*
//!   the lock and re-checks under it, retrying if a batch left the overlay meanwhile
//!   (a generation number tells). So `increment` is atomic: the value it adds to is
//!   the overlay's, or redb's committed value when no write to the key is pending,
//!   and the new value goes back into the overlay under the same lock.
//! - **Reads look at the overlay first**, then redb (an MVCC read transaction, from
//!   its page cache, never waiting for the persister). A read that finds nothing in
//!   the overlay knows every write to that key already reached redb. The read
//!   transaction is a `Snapshot` the persister opens once per commit and
//!   publishes under the lock in the same step that drops the committed batch
//!   from the overlay; a reader takes it under the lock together with its overlay
//!   lookup, so the two always agree (opening a transaction per read was a fifth
//!   of a durable pop's CPU).
//! - **One persister thread** moves the overlay to redb in rounds. A round swaps the
//!   whole overlay out (new writes start a fresh one), keeps the swapped-out batch
//!   readable as a "being persisted" layer under the fresh overlay, writes the
//!   batch in **one** redb transaction and drops the layer only after the commit,
//!   so reads never see a gap. A key written again meanwhile lives in the fresh
//!   overlay, which shadows the batch: the newer write wins there and is persisted
//!   by the next round. Each entry remembers whether redb held the key before it,
//!   so a key written and deleted within one round (a pop's short-lived
//!   bookkeeping) never reaches redb at all.
//! - **`flush()` is the durability barrier.** Each write gets a sequence number; a
//!   flush takes the newest one (covering every write that returned before it) and
//!   waits until a round at least that new has been committed with
//!   [`Durability::Immediate`]. Rounds are *group commits*: every flush waiting when
//!   a round starts shares its one fsync, and the writes of requests arriving during
//!   that fsync are batched into the next. A flush with nothing new to persist
//!   returns at once.
//! - **Without flushes**, a round starts [`BACKGROUND_DELAY`] after the first pending
//!   write, or at once when the overlay is half full, and commits with
//!   [`Durability::None`] (every [`FORCE_DURABLE_EVERY`]th such commit is durable,
//!   which bounds what redb keeps pending in memory).
//! - **Memory is bounded.** When the overlay holds [`MAX_OVERLAY_ENTRIES`] entries
//!   or [`MAX_OVERLAY_BYTES`] bytes, writes wait for the persister to swap it out
//!   (back-pressure); with the batch being persisted that is at most twice the limit.
//! - **Errors.** Per-call errors (a counter/value mix-up, an overflow, a bad key)
//!   are found when the call is applied to the overlay and fail only that call. A
//!   failed redb commit (a full disk, an I/O error) stops the store taking writes:
//!   after a failed write or sync, redb refuses every transaction until the file
//!   is opened again, so retrying could only pile writes up in the overlay. The
//!   waiting flushes fail (the server answers 503), every later write and flush
//!   fails at once with the cause, reads of the overlay and of pages redb has
//!   cached still answer (others fail until the file is reopened), and
//!   [`RedbStore::failure`] completes: `edgeq serve` then stops, with an error,
//!   so that a restart (by its supervisor) opens the file at its last durable
//!   commit, which holds every acknowledged write.
//! - Dropping the store persists the overlay in a last durable commit and waits for
//!   it.
//!
//! # Why a 2xx still survives `kill -9`
//!
//! The HTTP host calls [`Store::flush`] after every request that may have written,
//! and answers only after it returns (a failed flush answers 503). `flush` returns
//! after a durable commit containing every write of that request, so by the time a
//! client sees a 2xx its writes are on disk, exactly as when every write call was
//! committed on its own. What a crash loses is only what sat in the overlay or in
//! non-durable commits: writes of requests that were never answered, which the
//! engine's protocol must tolerate anyway (a host may die between any two store
//! calls).
//!
//! Durability also stays a *prefix* of the write order: a round always takes the
//! **whole** overlay, i.e. the latest state of every key written up to one instant,
//! on top of everything earlier rounds committed, so each commit is the store as
//! it stood at one point of the write sequence. Commits land in order and a durable
//! commit persists the non-durable ones before it, so after a crash the file holds
//! the writes up to some point: never a later write without an earlier one.
//!
//! [`Durability::Immediate`]: redb::Durability::Immediate
//! [`Durability::None`]: redb::Durability::None

mod overlay;
mod persister;
mod tagged;

use edgeq::store::{check_key, check_set, Store, StoreError, StoreResult};
use overlay::{Attempt, Before, Entry, Hold, Kind, Layer, State};
use persister::{persister_gone, Persister};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tagged::Stored;
use tokio::sync::{oneshot, Notify};

/// Every key's state, tagged (`tagged.rs`).
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// The two tables of files written before `kv`, moved into it on open.
const OLD_VALUES: TableDefinition<&str, &[u8]> = TableDefinition::new("values");
const OLD_COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("counters");

/// Most entries the overlay holds before writes wait for the persister.
pub const MAX_OVERLAY_ENTRIES: usize = 100_000;
/// Most bytes (keys, values and `ENTRY_COST` each) the overlay holds before writes
/// wait for the persister.
pub const MAX_OVERLAY_BYTES: usize = 64 << 20;
/// Bookkeeping bytes counted per overlay entry, besides its key and value.
const ENTRY_COST: usize = 64;
/// How long writes nobody flushes may stay in the overlay before a background round.
pub const BACKGROUND_DELAY: Duration = Duration::from_millis(10);
/// After this many non-durable commits in a row, the next commit is durable.
pub const FORCE_DURABLE_EVERY: u32 = 1024;

/// A [`Store`] in one redb file, with a write-back overlay. See the module docs.
pub struct RedbStore {
    shared: Arc<Shared>,
    path: PathBuf,
    persister: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// What the store's callers and the persister thread share.
struct Shared {
    db: Database,
    state: Mutex<State>,
    /// Wakes the persister (it waits on `state`).
    wake: Condvar,
    /// Wakes writers waiting for room in the overlay.
    room: Notify,
    /// Wakes [`RedbStore::failure`] when the persister stops.
    stopped: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; should it, the state is still whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A read transaction on one of redb's commits, with the table open.
pub(super) struct Snapshot {
    kv: redb::ReadOnlyTable<&'static str, &'static [u8]>,
}

impl Snapshot {
    /// Opens redb's latest commit.
    fn open(db: &Database) -> StoreResult<Arc<Self>> {
        let txn = db.begin_read().map_err(|e| fail("begin read", e))?;
        let kv = txn.open_table(KV).map_err(|e| fail("open kv", e))?;
        Ok(Arc::new(Self { kv }))
    }

    /// What redb holds under `key`, passed to `f` (the entry lives as long as
    /// the read's guard).
    fn get<T>(&self, key: &str, f: impl FnOnce(Option<Stored<'_>>) -> T) -> StoreResult<T> {
        match self.kv.get(key).map_err(|e| fail("get", e))? {
            None => Ok(f(None)),
            Some(guard) => Ok(f(Some(Stored::decode(key, guard.value())?))),
        }
    }
}

impl RedbStore {
    /// Opens the database at `path`, creating the file (not its directory) if needed,
    /// and starts the persister thread.
    ///
    /// Fails if the file is not a redb database or another process has it open.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with_limits(path, MAX_OVERLAY_ENTRIES, MAX_OVERLAY_BYTES)
    }

    fn open_with_limits(
        path: impl AsRef<Path>,
        max_entries: usize,
        max_bytes: usize,
    ) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let db =
            Database::create(&path).map_err(|e| fail(format!("open {}", path.display()), e))?;
        Self::start(db, path, max_entries, max_bytes)
    }

    /// Serves `db`, opened from `path`: creates its table and starts the persister.
    fn start(
        db: Database,
        path: PathBuf,
        max_entries: usize,
        max_bytes: usize,
    ) -> StoreResult<Self> {
        // Create the table up front so read transactions always find it.
        let txn = db.begin_write().map_err(|e| fail("begin", e))?;
        txn.open_table(KV).map_err(|e| fail("open kv", e))?;
        move_old_tables(&txn)?;
        txn.commit().map_err(|e| fail("commit", e))?;

        let state = State {
            active: Layer::default(),
            active_bytes: 0,
            persisting: None,
            generation: 0,
            snapshot: Some(Snapshot::open(&db)?),
            written: 0,
            committed: 0,
            durable: 0,
            commits: 0,
            flushes: Vec::new(),
            idle: false,
            closing: false,
            failed: None,
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
            hold: Hold::No,
        };
        let shared = Arc::new(Shared {
            db,
            state: Mutex::new(state),
            wake: Condvar::new(),
            room: Notify::new(),
            stopped: Notify::new(),
        });
        let persister = Persister { shared: shared.clone(), nondurable: 0 };
        let persister = std::thread::Builder::new()
            .name("edgeq-redb-persister".into())
            .spawn(move || persister.run())
            .map_err(|e| fail("spawn persister thread", e))?;
        Ok(Self { shared, path, persister: Some(persister) })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Completes with the error that stopped the store taking writes: a commit
    /// redb refused (a full disk, an I/O error), or the store closing. A server
    /// waits on it to stop, so that a restart opens the file again.
    pub fn failure(&self) -> impl Future<Output = StoreError> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            loop {
                let stopped = shared.stopped.notified();
                let mut stopped = std::pin::pin!(stopped);
                // Registered before the check, so a stop right after it wakes us.
                stopped.as_mut().enable();
                if let Some(e) = shared.lock().failed.clone() {
                    return e;
                }
                stopped.await;
            }
        }
    }

    /// Runs `f` on `snapshot`, or on a read transaction of its own without one.
    fn read<T>(
        &self,
        snapshot: Option<Arc<Snapshot>>,
        f: impl FnOnce(&Snapshot) -> StoreResult<T>,
    ) -> StoreResult<T> {
        match snapshot {
            Some(s) => f(&s),
            None => f(&*Snapshot::open(&self.shared.db)?),
        }
    }

    /// What redb's commit in `snapshot` holds under `key`.
    fn committed_kind(&self, snapshot: Option<Arc<Snapshot>>, key: &str) -> StoreResult<Kind> {
        self.read(snapshot, |s| s.get(key, |stored| stored.map_or(Kind::Missing, |s| s.kind())))
    }

    fn get_now(&self, keys: &[&str]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        // The overlay first; `Err(())` marks a key that is not in it.
        let mut found: Vec<Result<Option<Arc<[u8]>>, ()>> = Vec::with_capacity(keys.len());
        let snapshot = {
            let st = self.shared.lock();
            for &key in keys {
                found.push(match st.lookup(key) {
                    Some(Entry::Value(v)) => Ok(Some(v.clone())),
                    Some(Entry::Counter(_)) => return Err(StoreError::misuse("get", key)),
                    Some(Entry::Deleted) => Ok(None),
                    None => Err(()),
                });
            }
            st.snapshot.clone()
        };
        // A key the overlay does not hold has every write in redb's latest commit.
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut missing = Vec::new();
        for (i, f) in found.into_iter().enumerate() {
            match f {
                Ok(v) => out[i] = v.map(|v| v.to_vec()),
                Err(()) => missing.push(i),
            }
        }
        if !missing.is_empty() {
            self.read(snapshot, |s| {
                for i in missing {
                    let key = keys[i];
                    out[i] = s.get(key, |stored| match stored {
                        None => Ok(None),
                        Some(Stored::Value(v)) => Ok(Some(v.to_vec())),
                        Some(Stored::Counter(_)) => Err(StoreError::misuse("get", key)),
                    })??;
                }
                Ok(())
            })?;
        }
        Ok(out)
    }

    fn counter_now(&self, key: &str) -> StoreResult<i64> {
        let (pending, snapshot) = {
            let st = self.shared.lock();
            (st.lookup(key).map(Entry::kind), st.snapshot.clone())
        };
        let kind = match pending {
            Some(kind) => kind,
            None => self.committed_kind(snapshot, key)?,
        };
        match kind {
            Kind::Counter(n) => Ok(n),
            Kind::Missing => Ok(0),
            Kind::Value => Err(StoreError::misuse("increment", key)),
        }
    }

    /// One try at a write to `key`: `decide` gets what the key holds and returns the
    /// entry to record (if any) and the call's result.
    fn try_write<T>(
        &self,
        key: &str,
        decide: &mut impl FnMut(Kind) -> StoreResult<(Option<Entry>, T)>,
    ) -> Attempt<T> {
        let mut st = self.shared.lock();
        loop {
            if let Some(e) = &st.failed {
                return Attempt::Done(Err(e.clone()));
            }
            let mut in_redb = Before::Maybe;
            let kind = match st.lookup(key) {
                Some(entry) => entry.kind(),
                None => {
                    // Read redb without the lock, then check nothing left the
                    // overlay meanwhile: if not, redb still holds the key's latest
                    // state (a write to it would be in the overlay).
                    let (generation, snapshot) = (st.generation, st.snapshot.clone());
                    drop(st);
                    let kind = match self.committed_kind(snapshot, key) {
                        Ok(kind) => kind,
                        Err(e) => return Attempt::Done(Err(e)),
                    };
                    st = self.shared.lock();
                    match st.lookup(key) {
                        Some(entry) => entry.kind(),
                        None if st.generation == generation => {
                            in_redb = Before::from(kind);
                            kind
                        }
                        None => continue,
                    }
                }
            };
            return match decide(kind) {
                Err(e) => Attempt::Done(Err(e)),
                Ok((None, out)) => Attempt::Done(Ok(out)),
                Ok((Some(_), _)) if st.full() => {
                    st.wake_persister(&self.shared.wake);
                    Attempt::Full
                }
                Ok((Some(entry), out)) => {
                    st.put(key, entry, in_redb, &self.shared.wake);
                    Attempt::Done(Ok(out))
                }
            };
        }
    }

    async fn write<T>(
        &self,
        key: &str,
        mut decide: impl FnMut(Kind) -> StoreResult<(Option<Entry>, T)>,
    ) -> StoreResult<T> {
        loop {
            match self.try_write(key, &mut decide) {
                Attempt::Done(result) => return result,
                Attempt::Full => self.room().await,
            }
        }
    }

    /// Waits until the overlay has room (the persister swapped it out).
    async fn room(&self) {
        let notified = self.shared.room.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a swap right after it still wakes us.
        notified.as_mut().enable();
        let full = {
            let mut st = self.shared.lock();
            st.wake_persister(&self.shared.wake);
            st.full() && st.failed.is_none()
        };
        if full {
            notified.await;
        }
    }

    fn try_delete(&self, keys: &[String]) -> Attempt<()> {
        let mut st = self.shared.lock();
        if let Some(e) = &st.failed {
            return Attempt::Done(Err(e.clone()));
        }
        if st.full() {
            st.wake_persister(&self.shared.wake);
            return Attempt::Full;
        }
        for key in keys {
            st.put(key, Entry::Deleted, Before::Maybe, &self.shared.wake);
        }
        Attempt::Done(Ok(()))
    }
}

/// Moves the entries of a file written before `kv` existed (tables `values` and
/// `counters`) into `kv`, tagged, and deletes the old tables. It runs in the
/// transaction that opens the store, so a crash leaves the old layout or the new,
/// never a mix.
fn move_old_tables(txn: &redb::WriteTransaction) -> StoreResult<()> {
    let tables: Vec<String> = txn
        .list_tables()
        .map_err(|e| fail("list tables", e))?
        .map(|t| t.name().to_owned())
        .collect();
    let has = |name: &str| tables.iter().any(|t| t == name);
    let (values, counters) = (has(OLD_VALUES.name()), has(OLD_COUNTERS.name()));
    if !values && !counters {
        return Ok(());
    }
    tracing::info!("moving the store's two tables of an earlier edgeq into one (once)");
    let mut kv = txn.open_table(KV).map_err(|e| fail("open kv", e))?;
    if values {
        let old = txn.open_table(OLD_VALUES).map_err(|e| fail("open values", e))?;
        for entry in old.iter().map_err(|e| fail("read values", e))? {
            let (key, value) = entry.map_err(|e| fail("read values", e))?;
            let stored = tagged::value(value.value());
            kv.insert(key.value(), &*stored).map_err(|e| fail("move values", e))?;
        }
    }
    if counters {
        let old = txn.open_table(OLD_COUNTERS).map_err(|e| fail("open counters", e))?;
        for entry in old.iter().map_err(|e| fail("read counters", e))? {
            let (key, n) = entry.map_err(|e| fail("read counters", e))?;
            let stored = tagged::counter(n.value());
            kv.insert(key.value(), &stored[..]).map_err(|e| fail("move counters", e))?;
        }
    }
    drop(kv);
    txn.delete_table(OLD_VALUES).map_err(|e| fail("delete values", e))?;
    txn.delete_table(OLD_COUNTERS).map_err(|e| fail("delete counters", e))?;
    Ok(())
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // The persister commits the overlay durably and exits.
        {
            let mut st = self.shared.lock();
            st.closing = true;
            st.hold = Hold::No;
        }
        self.shared.wake.notify_all();
        if let Some(persister) = self.persister.take() {
            // A panicked persister has nothing left to clean up.
            let _ = persister.join();
        }
    }
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send {
        std::future::ready(self.get_now(&[key]).map(|mut v| v.pop().flatten()))
    }

    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        std::future::ready(self.get_now(&keys))
    }

    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>> + Send {
        let checked = check_set(key, value).map(|()| Arc::<[u8]>::from(value));
        async move {
            let value = checked?;
            self.write(key, |kind| match kind {
                Kind::Counter(_) => Err(StoreError::misuse("set", key)),
                Kind::Value | Kind::Missing => Ok((Some(Entry::Value(value.clone())), ())),
            })
            .await
        }
    }

    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
        let keys = vec![key.to_owned()];
        async move { self.delete_many(&keys).await }
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
        loop {
            match self.try_delete(keys) {
                Attempt::Done(result) => return result,
                Attempt::Full => self.room().await,
            }
        }
    }

    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>> + Send {
        let checked = check_key(key);
        async move {
            checked?;
            if delta == 0 {
                return self.counter_now(key);
            }
            self.write(key, |kind| {
                let current = match kind {
                    Kind::Counter(n) => n,
                    Kind::Missing => 0,
                    Kind::Value => return Err(StoreError::misuse("increment", key)),
                };
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| StoreError(format!("counter {key} overflows")))?;
                Ok((Some(Entry::Counter(next)), next))
            })
            .await
        }
    }

    fn flush(&self) -> impl Future<Output = StoreResult<()>> + Send {
        // Every write that returned before this call has a sequence number at most
        // `written` now.
        let waiter = {
            let mut st = self.shared.lock();
            if st.durable >= st.written {
                Ok(None)
            } else if let Some(e) = &st.failed {
                Err(e.clone())
            } else {
                let (reply, answer) = oneshot::channel();
                let target = st.written;
                st.flushes.push((target, reply));
                st.wake_persister(&self.shared.wake);
                Ok(Some(answer))
            }
        };
        async move {
            match waiter? {
                None => Ok(()),
                Some(answer) => answer.await.map_err(|_| persister_gone())?,
            }
        }
    }
}

fn fail(what: impl Display, e: impl Display) -> StoreError {
    StoreError(format!("redb {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// redb storage that fails every write, resize and sync once `full` is set,
    /// as a full disk does.
    #[derive(Debug)]
    struct FillingDisk {
        memory: redb::backends::InMemoryBackend,
        full: Arc<std::sync::atomic::AtomicBool>,
    }

    impl FillingDisk {
        fn room(&self) -> std::io::Result<()> {
            match self.full.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err(std::io::Error::from_raw_os_error(28)),
                false => Ok(()),
            }
        }
    }

    impl redb::StorageBackend for FillingDisk {
        fn len(&self) -> std::io::Result<u64> {
            self.memory.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.memory.read(offset, out)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.room()?;
            self.memory.set_len(len)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            self.room()?;
            self.memory.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.room()?;
            self.memory.write(offset, data)
        }
    }

    #[tokio::test]
    async fn a_failed_commit_stops_writes_at_once_and_says_why() {
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let disk = FillingDisk { memory: Default::default(), full: full.clone() };
        let db = redb::Builder::new().create_with_backend(disk).unwrap();
        let s = RedbStore::start(db, "filling".into(), 100, 1 << 20).unwrap();
        s.set("kept", b"1").await.unwrap();
        s.flush().await.unwrap();
        let failure = s.failure();
        full.store(true, std::sync::atomic::Ordering::SeqCst);
        s.set("lost", b"2").await.unwrap();
        let e = s.flush().await.unwrap_err();
        assert!(e.0.contains("No space left on device"), "{e}");
        assert!(e.0.contains("restart edgeq"), "{e}");
        assert_eq!(failure.await, e, "the failure is announced");
        // From now on every write fails at once with the cause, however many
        // come (before, they piled up in the overlay, past its limits), and
        // reads of the overlay still see what the writers saw (of redb, only
        // what its cache holds, as here).
        for i in 0..1000 {
            assert_eq!(s.set(&format!("k{i}"), &[0; 4096]).await.unwrap_err(), e);
        }
        assert_eq!(s.increment("n", 1).await.unwrap_err(), e);
        assert_eq!(s.delete_many(&["kept".into()]).await.unwrap_err(), e);
        assert_eq!(s.flush().await.unwrap_err(), e);
        assert_eq!(s.get("kept").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.get("lost").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert!(s.shared.lock().active.is_empty());
    }

    fn temp_store() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("t.redb")).unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments_are_atomic() {
        let (_dir, store) = temp_store();
        let store = Arc::new(store);
        let all =
            crate::testing::increment_from_tasks(std::slice::from_ref(&store), "n", 16, 200).await;
        assert_eq!(all, (1..=3200).collect::<Vec<i64>>());
        assert_eq!(store.increment("n", 0).await.unwrap(), 3200);
        assert_eq!(store.increment("n", -200).await.unwrap(), 3000);
    }

    #[tokio::test]
    async fn counters_and_values_do_not_mix() {
        let (_dir, s) = temp_store();
        assert_eq!(s.increment("c", 2).await.unwrap(), 2);
        assert_eq!(s.increment("c", 0).await.unwrap(), 2);
        assert!(s.get("c").await.is_err());
        assert!(s.get_many(&["c".into()]).await.is_err());
        assert!(s.set("c", b"x").await.is_err());
        s.set("v", b"x").await.unwrap();
        assert!(s.increment("v", 1).await.is_err());
        assert!(s.increment("v", 0).await.is_err());
        assert_eq!(s.get("v").await.unwrap(), Some(b"x".to_vec()));
        // A failed call leaves the others of its round alone.
        assert_eq!(s.increment("c", 1).await.unwrap(), 3);
        s.delete_many(&["v".into(), "c".into()]).await.unwrap();
        assert_eq!(s.get("v").await.unwrap(), None);
        assert_eq!(s.increment("c", 0).await.unwrap(), 0);
        // Once deleted, a key may change kind.
        s.set("c", b"now a value").await.unwrap();
        assert_eq!(s.increment("v", 5).await.unwrap(), 5);
        assert!(s.increment("v", i64::MAX).await.is_err());
        assert_eq!(s.increment("v", 0).await.unwrap(), 5);
    }

    #[tokio::test]
    async fn rejects_oversized_keys_and_values() {
        let (_dir, s) = temp_store();
        crate::testing::refuses_oversized_keys_and_values(&s).await;
    }

    #[tokio::test]
    async fn get_many_keeps_order_and_delete_many_deletes_all() {
        let (_dir, s) = temp_store();
        crate::testing::get_many_keeps_order_and_delete_many_deletes_all(&s).await;
    }

    /// `(written, committed, durable, commits)`.
    fn seqs(s: &RedbStore) -> (u64, u64, u64, u64) {
        let st = s.shared.lock();
        (st.written, st.committed, st.durable, st.commits)
    }

    fn set_hold(s: &RedbStore, hold: Hold) {
        s.shared.lock().hold = hold;
        s.shared.wake.notify_all();
    }

    /// What redb's latest commit holds under `key`, bypassing the overlay: a
    /// value, a counter, or neither.
    fn in_redb(s: &RedbStore, key: &str) -> (Option<Vec<u8>>, Option<i64>) {
        s.read(None, |s| {
            s.get(key, |stored| match stored {
                None => (None, None),
                Some(Stored::Value(v)) => (Some(v.to_vec()), None),
                Some(Stored::Counter(n)) => (None, Some(n)),
            })
        })
        .unwrap()
    }

    #[tokio::test]
    async fn flush_skips_the_persister_when_everything_is_durable() {
        let (_dir, s) = temp_store();
        s.flush().await.unwrap();
        assert_eq!(seqs(&s), (0, 0, 0, 0));
        s.set("k", b"v").await.unwrap();
        let (written, _, durable, _) = seqs(&s);
        assert!(durable < written);
        s.flush().await.unwrap();
        let (written, committed, durable, commits) = seqs(&s);
        assert_eq!((committed, durable), (written, written));
        // Reads and a second flush commit nothing.
        s.get("k").await.unwrap();
        s.increment("missing", 0).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(seqs(&s), (written, written, written, commits));
    }

    #[tokio::test]
    async fn data_survives_drop_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            s.set("kept", b"yes").await.unwrap();
            s.set("gone", b"no").await.unwrap();
            s.delete("gone").await.unwrap();
            assert_eq!(s.increment("n", 41).await.unwrap(), 41);
            s.flush().await.unwrap();
            // Written after the last flush: the clean close persists it too.
            assert_eq!(s.increment("n", 1).await.unwrap(), 42);
        }
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.get("kept").await.unwrap(), Some(b"yes".to_vec()));
        assert_eq!(s.get("gone").await.unwrap(), None);
        assert_eq!(s.increment("n", 0).await.unwrap(), 42);
        assert_eq!(s.path(), path);
    }

    #[tokio::test]
    async fn flushed_data_is_in_redb_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            for i in 0..500 {
                s.set(&format!("v{i}"), format!("first {i}").as_bytes()).await.unwrap();
                s.increment(&format!("c{}", i % 7), 1).await.unwrap();
            }
            s.set("v3", b"second").await.unwrap();
            s.delete_many(&["v4".into(), "v5".into()]).await.unwrap();
            s.flush().await.unwrap();
            // Everything is in redb itself, nothing is left in the overlay.
            {
                let st = s.shared.lock();
                assert!(st.active.is_empty() && st.persisting.is_none());
            }
            assert_eq!(in_redb(&s, "v3"), (Some(b"second".to_vec()), None));
            assert_eq!(in_redb(&s, "v4"), (None, None));
            assert_eq!(in_redb(&s, "v499"), (Some(b"first 499".to_vec()), None));
            assert_eq!(in_redb(&s, "c0"), (None, Some(72)));
        }
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.get("v3").await.unwrap(), Some(b"second".to_vec()));
        assert_eq!(s.get("v5").await.unwrap(), None);
        assert_eq!(s.get("v6").await.unwrap(), Some(b"first 6".to_vec()));
        assert_eq!(s.increment("c0", 0).await.unwrap(), 72);
        assert_eq!(s.increment("c6", 1).await.unwrap(), 72);
    }

    #[tokio::test]
    async fn keys_changing_kind_across_rounds_keep_their_last_kind() {
        let (_dir, s) = temp_store();
        s.increment("x", 1).await.unwrap();
        s.set("y", b"v").await.unwrap();
        s.flush().await.unwrap();
        s.delete("x").await.unwrap();
        s.set("x", b"now a value").await.unwrap();
        s.delete_many(&["y".into()]).await.unwrap();
        assert_eq!(s.increment("y", 3).await.unwrap(), 3);
        // Never committed: set and deleted within one round.
        s.increment("z", 1).await.unwrap();
        s.delete("z").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(in_redb(&s, "x"), (Some(b"now a value".to_vec()), None));
        assert_eq!(in_redb(&s, "y"), (None, Some(3)));
        assert_eq!(in_redb(&s, "z"), (None, None));
        s.delete("x").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(in_redb(&s, "x"), (None, None));
        assert_eq!(s.increment("x", 2).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments_are_exact_under_the_overlay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            // A tiny overlay: rounds (and back-pressure) all the time, so increments
            // race with batches leaving the overlay.
            let store = Arc::new(RedbStore::open_with_limits(&path, 16, 1 << 20).unwrap());
            assert_eq!(store.increment("n", 1000).await.unwrap(), 1000);
            store.flush().await.unwrap();
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let mut seen = Vec::with_capacity(300);
                        for i in 0..300 {
                            seen.push(store.increment("n", 1).await.unwrap());
                            let own = format!("t{t}");
                            assert_eq!(store.increment(&own, 2).await.unwrap(), 2 * (i + 1));
                            store.set(&format!("t{t}/{i}"), b"x").await.unwrap();
                            if i % 50 == 0 {
                                store.flush().await.unwrap();
                            }
                        }
                        seen
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all.sort_unstable();
            assert_eq!(all, (1001..=3400).collect::<Vec<i64>>());
            assert_eq!(store.increment("n", 0).await.unwrap(), 3400);
            store.flush().await.unwrap();
            assert_eq!(in_redb(&store, "n"), (None, Some(3400)));
        }
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.increment("n", 0).await.unwrap(), 3400);
        assert_eq!(s.increment("t7", 0).await.unwrap(), 600);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_see_writes_being_persisted() {
        let (_dir, s) = temp_store();
        let s = Arc::new(s);
        s.set("old", b"committed").await.unwrap();
        s.increment("c", 5).await.unwrap();
        s.flush().await.unwrap();

        set_hold(&s, Hold::Commit);
        s.set("a", b"1").await.unwrap();
        s.increment("c", 1).await.unwrap();
        s.delete("old").await.unwrap();
        let flush = tokio::spawn({
            let s = s.clone();
            async move { s.flush().await }
        });
        // Wait for the round to swap the overlay out.
        for _ in 0..1000 {
            if s.shared.lock().persisting.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        {
            let st = s.shared.lock();
            assert!(st.persisting.is_some() && st.active.is_empty());
        }
        // Not in redb yet, but every read sees the batch being persisted.
        assert_eq!(in_redb(&s, "a"), (None, None));
        assert_eq!(in_redb(&s, "old"), (Some(b"committed".to_vec()), None));
        assert_eq!(s.get("a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get("old").await.unwrap(), None);
        assert_eq!(s.increment("c", 0).await.unwrap(), 6);
        assert!(s.increment("a", 1).await.is_err());
        assert!(s.get("c").await.is_err());
        // Newer writes go on top and win.
        assert_eq!(s.increment("c", 1).await.unwrap(), 7);
        s.set("a", b"2").await.unwrap();
        s.set("old", b"back").await.unwrap();
        assert_eq!(s.get("a").await.unwrap(), Some(b"2".to_vec()));
        assert!(!flush.is_finished());

        set_hold(&s, Hold::No);
        flush.await.unwrap().unwrap();
        // The round committed the batch it took; the newer writes were not lost.
        assert_eq!(in_redb(&s, "c").1, Some(6));
        assert_eq!(s.get("a").await.unwrap(), Some(b"2".to_vec()));
        assert_eq!(s.increment("c", 0).await.unwrap(), 7);
        s.flush().await.unwrap();
        assert_eq!(in_redb(&s, "a"), (Some(b"2".to_vec()), None));
        assert_eq!(in_redb(&s, "old"), (Some(b"back".to_vec()), None));
        assert_eq!(in_redb(&s, "c"), (None, Some(7)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_overlay_makes_writes_wait() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            Arc::new(RedbStore::open_with_limits(dir.path().join("t.redb"), 8, 1 << 20).unwrap());
        set_hold(&s, Hold::Rounds);
        for i in 0..8 {
            s.set(&format!("k{i}"), b"x").await.unwrap();
        }
        // Rewriting a key the overlay holds still needs room.
        let blocked: Vec<_> = ["k8", "k0"]
            .into_iter()
            .map(|key| {
                let s = s.clone();
                tokio::spawn(async move { s.set(key, b"y").await })
            })
            .collect();
        let deletes = tokio::spawn({
            let s = s.clone();
            async move { s.delete("k1").await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(blocked.iter().all(|t| !t.is_finished()) && !deletes.is_finished());
        assert_eq!(s.shared.lock().active.len(), 8);
        // Reads and failing writes do not wait.
        assert_eq!(s.get("k7").await.unwrap(), Some(b"x".to_vec()));
        assert!(s.increment("k7", 1).await.is_err());

        set_hold(&s, Hold::No);
        for t in blocked {
            t.await.unwrap().unwrap();
        }
        deletes.await.unwrap().unwrap();
        assert_eq!(s.get("k8").await.unwrap(), Some(b"y".to_vec()));
        assert_eq!(s.get("k0").await.unwrap(), Some(b"y".to_vec()));
        assert_eq!(s.get("k1").await.unwrap(), None);

        // The byte limit too.
        let s = RedbStore::open_with_limits(dir.path().join("b.redb"), 1000, 4096).unwrap();
        set_hold(&s, Hold::Rounds);
        s.set("a", &[0; 3000]).await.unwrap();
        s.set("b", &[0; 3000]).await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(100), s.set("c", b"x")).await;
        assert!(third.is_err(), "a write past the byte limit did not wait");
        set_hold(&s, Hold::No);
        s.set("c", b"x").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(s.get("b").await.unwrap().map(|v| v.len()), Some(3000));
    }

    #[tokio::test]
    async fn deletes_under_one_parent_remove_just_those_keys() {
        let (_dir, s) = temp_store();
        for k in ["s/1/a", "s/1/b", "s/1/b/x", "s/1/c", "s/1/d", "s/2/a", "s/2/b"] {
            s.set(k, k.as_bytes()).await.unwrap();
        }
        s.increment("s/1/n", 5).await.unwrap();
        s.flush().await.unwrap();
        // `s/1/c` lies between deleted keys and stays, and so does `s/1/b/x`,
        // another parent's key inside the span; `s/1/x` and `s/1/z` never
        // existed; `s/2/a` is deleted alone.
        let dead = ["s/1/a", "s/1/b", "s/1/d", "s/1/n", "s/1/x", "s/1/z", "s/2/a"];
        s.delete_many(&dead.map(String::from)).await.unwrap();
        s.flush().await.unwrap();
        for k in dead {
            assert_eq!(in_redb(&s, k), (None, None), "{k}");
        }
        for k in ["s/1/b/x", "s/1/c", "s/2/b"] {
            assert_eq!(in_redb(&s, k), (Some(k.as_bytes().to_vec()), None), "{k}");
        }
    }

    #[tokio::test]
    async fn a_file_with_the_old_two_tables_opens_with_everything_moved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        {
            // The layout of edgeq before `kv`: values and counters apart.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut values = txn.open_table(OLD_VALUES).unwrap();
                values.insert("q/meta", &b"{}"[..]).unwrap();
                values.insert("q/empty", &b""[..]).unwrap();
                let mut counters = txn.open_table(OLD_COUNTERS).unwrap();
                counters.insert("q/tail", 41).unwrap();
                counters.insert("q/neg", -3).unwrap();
            }
            txn.commit().unwrap();
        }
        {
            let s = RedbStore::open(&path).unwrap();
            assert_eq!(s.get("q/meta").await.unwrap(), Some(b"{}".to_vec()));
            assert_eq!(s.get("q/empty").await.unwrap(), Some(Vec::new()));
            assert_eq!(s.increment("q/tail", 1).await.unwrap(), 42);
            assert_eq!(s.increment("q/neg", 0).await.unwrap(), -3);
            // Kinds survive the move: a counter is still no value, and back.
            assert!(s.get("q/tail").await.is_err());
            assert!(s.increment("q/meta", 1).await.is_err());
        }
        // The old tables are gone and nothing is moved twice.
        let s = RedbStore::open(&path).unwrap();
        assert_eq!(s.increment("q/tail", 0).await.unwrap(), 42);
        let txn = s.shared.db.begin_read().unwrap();
        let tables: Vec<String> = txn.list_tables().unwrap().map(|t| t.name().to_owned()).collect();
        assert_eq!(tables, ["kv"]);
    }

    #[tokio::test]
    async fn refuses_a_file_already_open() {
        let (dir, _s) = temp_store();
        assert!(RedbStore::open(dir.path().join("t.redb")).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_and_flushes_all_answer() {
        let (_dir, store) = temp_store();
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        let key = format!("t{t}/{i}");
                        store.set(&key, key.as_bytes()).await.unwrap();
                        store.flush().await.unwrap();
                        // Visible as soon as the call returned.
                        assert_eq!(store.get(&key).await.unwrap(), Some(key.into_bytes()));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let keys: Vec<String> =
            (0..8).flat_map(|t| (0..50).map(move |i| format!("t{t}/{i}"))).collect();
        assert!(store.get_many(&keys).await.unwrap().iter().all(Option::is_some));
    }

    const KILL9_DB: &str = "EDGEQ_TEST_KILL9_DB";
    const FLUSHED_ROUNDS: usize = 20;

    /// The child side of `flushed_writes_survive_kill_9`: does nothing unless that
    /// test started this process.
    #[tokio::test]
    async fn kill9_child() {
        let Some(path) = std::env::var_os(KILL9_DB) else {
            return;
        };
        let s = RedbStore::open(path).unwrap();
        for i in 0..FLUSHED_ROUNDS {
            s.set(&format!("k{i:06}"), b"x").await.unwrap();
            s.increment("n", 1).await.unwrap();
            s.flush().await.unwrap();
            println!("flushed {i}");
        }
        // Keep writing without flushing until killed (bounded, should the parent die).
        for i in FLUSHED_ROUNDS..200_000 {
            s.set(&format!("k{i:06}"), b"x").await.unwrap();
            s.increment("n", 1).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }

    #[test]
    fn flushed_writes_survive_kill_9() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kill.redb");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "redb_store::tests::kill9_child", "--nocapture", "--test-threads=1"])
            .env(KILL9_DB, &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let last = format!("flushed {}", FLUSHED_ROUNDS - 1);
        let mut reached = false;
        for line in stdout.lines() {
            if line.unwrap().trim() == last {
                reached = true;
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(reached, "the child stopped before flushing");

        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let s = RedbStore::open(&path).unwrap();
            let n = s.increment("n", 0).await.unwrap();
            assert!(n >= FLUSHED_ROUNDS as i64, "flushed increments lost: n = {n}");
            // What survived is a prefix of the writes: k0..k(c-1), and n is c or c-1.
            let keys: Vec<String> = (0..200_000).map(|i| format!("k{i:06}")).collect();
            let found = s.get_many(&keys).await.unwrap();
            let c = found.iter().take_while(|v| v.is_some()).count();
            assert!(found[c..].iter().all(Option::is_none), "a hole in the writes");
            assert!(n == c as i64 || n + 1 == c as i64, "n = {n}, keys = {c}");
        });
    }
}
