//! The embedded durable store: [`RedbStore`], a [`Store`] in one [redb] file.
//!
//! # Why redb
//!
//! redb is pure Rust (no C toolchain, builds anywhere `cargo` does), keeps everything
//! in one file, and is crash-safe by construction: a copy-on-write B-tree whose
//! commits flip between two checksummed commit slots, so after a crash (a `kill -9`
//! or a power cut) the file always opens at its last durable commit, never at a torn
//! one. It also offers cheap *non-durable* commits (visible to readers, not yet
//! fsynced), which is what makes group commit below possible.
//!
//! # Layout
//!
//! Two tables, so counters and values can never be confused:
//!
//! - `values`: `&str` → `&[u8]`, written by `set`, read by `get`/`get_many`;
//! - `counters`: `&str` → `i64`, touched only by `increment`.
//!
//! As in [`MemoryStore`](edgeq::store::MemoryStore), a `get` on a counter key, or a
//! `set`/`increment` on a key of the other kind, is an error (the engine never does
//! it; a real Spin backend would be corrupted by it). One difference: reading a
//! missing counter with `increment(key, 0)` does not create it here.
//! Keys are checked against [`MAX_KEY_LEN`] and values against [`MAX_VALUE_LEN`].
//!
//! # Group commit
//!
//! An fsync costs far more than the work of a request (milliseconds against
//! microseconds), and redb allows one write transaction at a time. Committing every
//! store call durably would cap the server at a few hundred writes per second, all of
//! them queued behind each other. So writes are *group committed*:
//!
//! - One dedicated writer thread owns every write transaction. Each write call
//!   (`set`, `delete`, `delete_many`, `increment` with `delta != 0`) is sent to it
//!   over a bounded channel with a oneshot for the reply; a full channel makes
//!   callers wait (back-pressure).
//! - The thread takes whatever is queued (up to a cap), applies all of it in order
//!   in **one** write transaction, commits it with [`Durability::None`] (visible to
//!   readers at once, no fsync) and only then replies; increments get their new
//!   values. So a write call returns only once its effect is committed, and the
//!   per-call cost of a transaction is shared by everything that arrived meanwhile.
//! - `flush()` sends a barrier. When a round holds barriers, its transaction (even an
//!   empty one) is committed with [`Durability::Immediate`], which fsyncs and so
//!   persists every earlier non-durable commit too; then the barriers are answered.
//!   A flush does not even reach the thread when nothing was committed since the
//!   last durable commit (two sequence numbers, `committed` and `durable`, tell), so
//!   a flush after a request that wrote nothing, or a second flush, costs nothing. Durability is therefore always a *prefix* of the commit order:
//!   a crash loses at most the newest non-durable commits, never a hole.
//! - Every [`FORCE_DURABLE_EVERY`] non-durable commits one is made durable even
//!   without a barrier, which bounds what redb keeps pending in memory.
//! - A per-call failure (a counter/value mix-up, an overflow, a bad key) is checked
//!   before anything is written and fails only that call. A storage error aborts
//!   the round's transaction and fails every call in it: none of them took effect.
//! - Dropping the store closes the channel; the thread commits what is pending
//!   durably and exits, and the drop waits for it.
//!
//! Reads (`get`, `get_many`, `increment(key, 0)`) do not go through the thread: they
//! open a read transaction directly in the caller. redb reads are MVCC snapshots of
//! the latest commit (durable or not) and come from its page cache, so they take
//! microseconds and never wait for the writer. Because a write call replies only
//! after its commit, every read sees every write whose call already returned.
//!
//! # Why a 2xx survives `kill -9`
//!
//! The HTTP host calls [`Store::flush`] after every request that may have written,
//! and answers only after it returns (a failed flush answers 503). `flush` returns
//! after a durable commit that came after every write of that request, so by the
//! time a client sees a 2xx its writes are on disk. A crash after that loses only
//! writes of requests that were not answered yet, which the engine's protocol must
//! tolerate anyway (a host may die between any two store calls). Concurrent requests
//! share one fsync instead of paying one each.

use edgeq::store::{Store, StoreError, StoreResult, MAX_KEY_LEN, MAX_VALUE_LEN};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

const VALUES: TableDefinition<&str, &[u8]> = TableDefinition::new("values");
const COUNTERS: TableDefinition<&str, i64> = TableDefinition::new("counters");

/// How many write calls may wait for the writer thread before callers wait too.
const QUEUE_DEPTH: usize = 4096;
/// Most write calls applied in one transaction.
const MAX_BATCH_OPS: usize = 1024;
/// Most value bytes applied in one transaction (a round stops taking calls past it).
const MAX_BATCH_BYTES: usize = 32 << 20;
/// After this many non-durable commits in a row, the next commit is durable.
pub const FORCE_DURABLE_EVERY: u32 = 1024;

/// A [`Store`] in one redb file, with group commit. See the module docs.
pub struct RedbStore {
    db: Arc<Database>,
    seqs: Arc<Seqs>,
    path: PathBuf,
    /// `None` only while dropping.
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the database at `path`, creating the file (not its directory) if needed,
    /// and starts the writer thread.
    ///
    /// Fails if the file is not a redb database or another process has it open.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let db =
            Database::create(&path).map_err(|e| fail(format!("open {}", path.display()), e))?;
        // Create both tables up front so read transactions always find them.
        let txn = db.begin_write().map_err(|e| fail("begin", e))?;
        txn.open_table(VALUES).map_err(|e| fail("open values", e))?;
        txn.open_table(COUNTERS).map_err(|e| fail("open counters", e))?;
        txn.commit().map_err(|e| fail("commit", e))?;

        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let seqs = Arc::new(Seqs::default());
        let writer = Writer::new(db.clone(), seqs.clone());
        let writer = std::thread::Builder::new()
            .name("edgeq-redb-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| fail("spawn writer thread", e))?;
        Ok(Self { db, seqs, path, ops: Some(tx), writer: Some(writer) })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Op,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        let ops = self.ops.as_ref().ok_or_else(writer_gone)?;
        ops.send(make(reply)).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    fn read<T>(
        &self,
        f: impl FnOnce(
            &redb::ReadOnlyTable<&'static str, &'static [u8]>,
            &redb::ReadOnlyTable<&'static str, i64>,
        ) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let txn = self.db.begin_read().map_err(|e| fail("begin read", e))?;
        let values = txn.open_table(VALUES).map_err(|e| fail("open values", e))?;
        let counters = txn.open_table(COUNTERS).map_err(|e| fail("open counters", e))?;
        f(&values, &counters)
    }

    fn get_now(&self, keys: &[&str]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.read(|values, counters| {
            keys.iter()
                .map(|&key| match values.get(key).map_err(|e| fail("get", e))? {
                    Some(v) => Ok(Some(v.value().to_vec())),
                    None if counters.get(key).map_err(|e| fail("get", e))?.is_some() => {
                        Err(misuse("get", key))
                    }
                    None => Ok(None),
                })
                .collect()
        })
    }

    fn counter_now(&self, key: &str) -> StoreResult<i64> {
        self.read(|values, counters| match counters.get(key).map_err(|e| fail("get", e))? {
            Some(n) => Ok(n.value()),
            None if values.get(key).map_err(|e| fail("get", e))?.is_some() => {
                Err(misuse("increment", key))
            }
            None => Ok(0),
        })
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        // Closing the channel stops the writer after it has committed (durably)
        // everything already sent.
        self.ops = None;
        if let Some(writer) = self.writer.take() {
            // A panicked writer has nothing left to clean up.
            let _ = writer.join();
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
        let checked = check_key(key).and_then(|()| {
            if value.len() > MAX_VALUE_LEN {
                Err(StoreError(format!("value for {key} is over 1 MiB")))
            } else {
                Ok((key.to_owned(), value.to_vec()))
            }
        });
        async move {
            let (key, value) = checked?;
            self.call(|reply| Op::Set { key, value, reply }).await
        }
    }

    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
        let keys = vec![key.to_owned()];
        async move { self.call(|reply| Op::Delete { keys, reply }).await }
    }

    fn delete_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<()>> + Send {
        let keys = keys.to_vec();
        async move {
            if keys.is_empty() {
                return Ok(());
            }
            self.call(|reply| Op::Delete { keys, reply }).await
        }
    }

    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>> + Send {
        let checked = check_key(key).map(|()| key.to_owned());
        async move {
            let key = checked?;
            if delta == 0 {
                return self.counter_now(&key);
            }
            self.call(|reply| Op::Increment { key, delta, reply }).await
        }
    }

    fn flush(&self) -> impl Future<Output = StoreResult<()>> + Send {
        // Every write that returned before this call has a commit number at most
        // `target` (the writer publishes it before replying).
        let target = self.seqs.committed.load(Ordering::Acquire);
        let durable = self.seqs.durable.load(Ordering::Acquire) >= target;
        async move {
            if durable {
                return Ok(());
            }
            self.call(|reply| Op::Flush { reply }).await
        }
    }
}

/// One call sent to the writer thread.
enum Op {
    Set { key: String, value: Vec<u8>, reply: oneshot::Sender<StoreResult<()>> },
    Delete { keys: Vec<String>, reply: oneshot::Sender<StoreResult<()>> },
    Increment { key: String, delta: i64, reply: oneshot::Sender<StoreResult<i64>> },
    Flush { reply: oneshot::Sender<StoreResult<()>> },
}

impl Op {
    fn bytes(&self) -> usize {
        match self {
            Op::Set { key, value, .. } => key.len() + value.len(),
            Op::Delete { keys, .. } => keys.iter().map(String::len).sum(),
            Op::Increment { key, .. } => key.len(),
            Op::Flush { .. } => 0,
        }
    }
}

/// The result of one op inside a round, sent once the round's commit is known.
enum Outcome {
    Unit(oneshot::Sender<StoreResult<()>>, StoreResult<()>),
    Count(oneshot::Sender<StoreResult<i64>>, StoreResult<i64>),
}

/// Commit numbers, written only by the writer thread.
#[derive(Debug, Default)]
struct Seqs {
    /// Number of the newest commit (durable or not).
    committed: AtomicU64,
    /// Number of the newest durable commit.
    durable: AtomicU64,
}

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    seqs: Arc<Seqs>,
    /// Non-durable commits since the last durable one.
    pending: u32,
}

impl Writer {
    fn new(db: Arc<Database>, seqs: Arc<Seqs>) -> Self {
        Self { db, seqs, pending: 0 }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.blocking_recv() {
            let mut round = vec![first];
            let mut bytes = round[0].bytes();
            while round.len() < MAX_BATCH_OPS && bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(op) => {
                        bytes += op.bytes();
                        round.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.round(round);
        }
        // The channel is closed: the store is being dropped. Persist what is pending.
        if self.pending > 0 {
            if let Err((e, _)) = self.commit(Vec::new(), true) {
                eprintln!("edgeq: final durable commit failed: {e}");
            }
        }
    }

    /// Applies one round of calls in one transaction and answers them.
    fn round(&mut self, round: Vec<Op>) {
        let mut writes = Vec::with_capacity(round.len());
        let mut barriers = Vec::new();
        for op in round {
            match op {
                Op::Flush { reply } => barriers.push(reply),
                op => writes.push(op),
            }
        }
        let durable = !barriers.is_empty() || self.pending + 1 >= FORCE_DURABLE_EVERY;
        let result = if writes.is_empty() && self.pending == 0 {
            // Nothing non-durable to persist: the barriers are already satisfied.
            Ok(Vec::new())
        } else {
            self.commit(writes, durable)
        };
        match result {
            Ok(outcomes) => {
                for outcome in outcomes {
                    match outcome {
                        Outcome::Unit(reply, r) => drop(reply.send(r)),
                        Outcome::Count(reply, r) => drop(reply.send(r)),
                    }
                }
                for reply in barriers {
                    let _ = reply.send(Ok(()));
                }
            }
            Err((e, replies)) => {
                for outcome in replies {
                    match outcome {
                        Outcome::Unit(reply, _) => drop(reply.send(Err(e.clone()))),
                        Outcome::Count(reply, _) => drop(reply.send(Err(e.clone()))),
                    }
                }
                for reply in barriers {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Applies `writes` in order in one transaction and commits it. On a storage
    /// error nothing is committed and every reply is handed back for failing.
    fn commit(
        &mut self,
        writes: Vec<Op>,
        durable: bool,
    ) -> Result<Vec<Outcome>, (StoreError, Vec<Outcome>)> {
        let mut outcomes = Vec::with_capacity(writes.len());
        let result = self.apply(writes, durable, &mut outcomes);
        match result {
            Ok(()) => {
                self.pending = if durable { 0 } else { self.pending + 1 };
                // Published before any reply, so a caller's later flush sees it.
                let seq = self.seqs.committed.load(Ordering::Relaxed) + 1;
                self.seqs.committed.store(seq, Ordering::Release);
                if durable {
                    self.seqs.durable.store(seq, Ordering::Release);
                }
                Ok(outcomes)
            }
            Err(e) => Err((e, outcomes)),
        }
    }

    fn apply(
        &self,
        writes: Vec<Op>,
        durable: bool,
        outcomes: &mut Vec<Outcome>,
    ) -> StoreResult<()> {
        let mut writes = writes.into_iter();
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                outcomes.extend(writes.filter_map(failed_outcome));
                return Err(fail("begin write", e));
            }
        };
        let durability = if durable { Durability::Immediate } else { Durability::None };
        let mut error = txn.set_durability(durability).err().map(|e| fail("set durability", e));
        if error.is_none() {
            let tables = txn.open_table(VALUES).and_then(|v| Ok((v, txn.open_table(COUNTERS)?)));
            match tables {
                Ok((mut values, mut counters)) => {
                    for op in writes.by_ref() {
                        match apply_one(&mut values, &mut counters, op) {
                            Ok(outcome) => outcomes.push(outcome),
                            Err((e, outcome)) => {
                                outcomes.extend(outcome);
                                error = Some(e);
                                break;
                            }
                        }
                    }
                }
                Err(e) => error = Some(fail("open tables", e)),
            }
        }
        if let Some(e) = error {
            outcomes.extend(writes.filter_map(failed_outcome));
            // Dropping the transaction aborts it; an abort error adds nothing.
            let _ = txn.abort();
            return Err(e);
        }
        txn.commit().map_err(|e| fail("commit", e))
    }
}

/// The reply slot of an op that never ran (its round failed before it).
fn failed_outcome(op: Op) -> Option<Outcome> {
    match op {
        Op::Set { reply, .. } | Op::Delete { reply, .. } => Some(Outcome::Unit(reply, Ok(()))),
        Op::Increment { reply, .. } => Some(Outcome::Count(reply, Ok(0))),
        Op::Flush { .. } => None,
    }
}

type Values<'t> = redb::Table<'t, &'static str, &'static [u8]>;
type Counters<'t> = redb::Table<'t, &'static str, i64>;

/// What one write did, or the storage error that aborts its round.
type Applied<T> = Result<StoreResult<T>, redb::StorageError>;

/// Applies one write. A per-call error (misuse, overflow) is its outcome; a storage
/// error is returned as `Err` (with the op's reply slot) and aborts the round.
fn apply_one(
    values: &mut Values<'_>,
    counters: &mut Counters<'_>,
    op: Op,
) -> Result<Outcome, (StoreError, Option<Outcome>)> {
    let (applied, outcome) = match op {
        Op::Set { key, value, reply } => {
            let r = set_one(values, counters, &key, &value);
            (r.map(|r| r.map(|()| 0)), Outcome::Unit(reply, Ok(())))
        }
        Op::Delete { keys, reply } => {
            let r = delete_all(values, counters, &keys);
            (r.map(|()| Ok(0)), Outcome::Unit(reply, Ok(())))
        }
        Op::Increment { key, delta, reply } => {
            let r = increment_one(values, counters, &key, delta);
            (r, Outcome::Count(reply, Ok(0)))
        }
        Op::Flush { reply } => (Ok(Ok(0)), Outcome::Unit(reply, Ok(()))),
    };
    match (applied, outcome) {
        (Ok(r), Outcome::Unit(reply, _)) => Ok(Outcome::Unit(reply, r.map(|_| ()))),
        (Ok(r), Outcome::Count(reply, _)) => Ok(Outcome::Count(reply, r)),
        (Err(e), outcome) => Err((fail("write", e), Some(outcome))),
    }
}

fn set_one(
    values: &mut Values<'_>,
    counters: &mut Counters<'_>,
    key: &str,
    value: &[u8],
) -> Applied<()> {
    if counters.get(key)?.is_some() {
        return Ok(Err(misuse("set", key)));
    }
    values.insert(key, value)?;
    Ok(Ok(()))
}

fn delete_all(
    values: &mut Values<'_>,
    counters: &mut Counters<'_>,
    keys: &[String],
) -> Result<(), redb::StorageError> {
    for key in keys {
        values.remove(key.as_str())?;
        counters.remove(key.as_str())?;
    }
    Ok(())
}

fn increment_one(
    values: &mut Values<'_>,
    counters: &mut Counters<'_>,
    key: &str,
    delta: i64,
) -> Applied<i64> {
    let current = match counters.get(key)? {
        Some(n) => n.value(),
        None if values.get(key)?.is_some() => return Ok(Err(misuse("increment", key))),
        None => 0,
    };
    let Some(next) = current.checked_add(delta) else {
        return Ok(Err(StoreError(format!("counter {key} overflows"))));
    };
    counters.insert(key, next)?;
    Ok(Ok(next))
}

fn check_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StoreError(format!("key of {} bytes", key.len())));
    }
    Ok(())
}

fn misuse(op: &str, key: &str) -> StoreError {
    StoreError(format!("{op} on {key} mixes counters and values"))
}

fn fail(what: impl Display, e: impl Display) -> StoreError {
    StoreError(format!("redb {what}: {e}"))
}

fn writer_gone() -> StoreError {
    StoreError("redb writer thread stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn temp_store() -> (tempfile::TempDir, RedbStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("t.redb")).unwrap();
        (dir, store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments_are_atomic() {
        let (_dir, store) = temp_store();
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::with_capacity(200);
                    for _ in 0..200 {
                        seen.push(store.increment("n", 1).await.unwrap());
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
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(s.set(&long, b"").await.is_err());
        assert!(s.set("", b"").await.is_err());
        assert!(s.increment(&long, 1).await.is_err());
        assert!(s.set("k", &vec![0; MAX_VALUE_LEN + 1]).await.is_err());
        s.set("k", &vec![7; MAX_VALUE_LEN]).await.unwrap();
        assert_eq!(s.get("k").await.unwrap().unwrap().len(), MAX_VALUE_LEN);
        s.set(&"k".repeat(MAX_KEY_LEN), b"max").await.unwrap();
    }

    #[tokio::test]
    async fn get_many_keeps_order() {
        let (_dir, s) = temp_store();
        s.set("b", b"2").await.unwrap();
        s.set("a", b"1").await.unwrap();
        let keys: Vec<String> = ["a", "missing", "b", "a"].map(String::from).to_vec();
        assert_eq!(
            s.get_many(&keys).await.unwrap(),
            vec![Some(b"1".to_vec()), None, Some(b"2".to_vec()), Some(b"1".to_vec())]
        );
        assert_eq!(s.get_many(&[]).await.unwrap(), Vec::<Option<Vec<u8>>>::new());
        s.delete_many(&[]).await.unwrap();
        s.delete("never there").await.unwrap();
    }

    #[tokio::test]
    async fn flush_skips_the_writer_when_everything_is_durable() {
        let (_dir, s) = temp_store();
        s.flush().await.unwrap();
        s.set("k", b"v").await.unwrap();
        assert!(s.seqs.durable.load(Ordering::Acquire) < s.seqs.committed.load(Ordering::Acquire));
        s.flush().await.unwrap();
        let durable = s.seqs.durable.load(Ordering::Acquire);
        assert_eq!(durable, s.seqs.committed.load(Ordering::Acquire));
        // Reads and a second flush commit nothing.
        s.get("k").await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(s.seqs.committed.load(Ordering::Acquire), durable);
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
