//! The in-memory reference store: `HashMap`s behind std `Mutex`es.
//!
//! Keys are grouped by parent, the key up to and with its last `/` (the empty
//! parent for a key without one): a map from parent to a small map of the
//! leaves under it (`m`, `s`, `c`, `r0`, … of one slot; `h`, `t`, `lo` of one
//! ring; but every idempotency key of a queue too, hence a map and not a list).
//! The engine touches most keys of a slot, or of a ring, together, so one
//! lookup of the parent brings all of them into cache; with a key per map
//! entry, every key of a slot deep in a backlog was a separate trip to memory.
//! Measured on this project's 2-core machine (a scratch loop, 1,000,000
//! messages of 128 bytes queued, `Engine::pop` one at a time): 3.75 → 2.45 µs
//! a pop and 3.21 → 1.67 µs a send on one thread, 7.3 → 5.9 and 4.2 → 1.9 µs
//! of CPU on two; over HTTP (`benches/http.sh`) pop went from 0.48 to 0.55 of
//! `/healthz`, and 1M queued from 0.74 to 1.01 of an empty queue (figures in
//! `benches/README.md`).
//!
//! Parents are spread over 256 shards by hash, so concurrent callers rarely
//! wait on each other and a growing map rehashes one small shard at a time
//! instead of stopping every caller while millions of keys move: the slowest of
//! 8,000,000 increments of new keys (one thread, a scratch loop, when each key
//! was its own entry) took 133-209 ms with 16 shards, 37 ms with 64 and 5-11 ms
//! with 256, the whole loop no slower. Hashing is foldhash (seeded per store
//! and per group), several times cheaper than SipHash on short keys; an
//! existing key is updated in place, without allocating a new key, and reading
//! a missing counter (`increment(k, 0)`) creates nothing. The locks are std
//! `Mutex`es, not tokio's: each is held for one key's read or update and never
//! across an `.await`, so it cannot block the runtime. The store also checks
//! the contract the engine must keep: a counter read with `get` or a value
//! incremented is an error, as it would corrupt a real Spin backend.

use super::{check_key, check_set, Store, StoreError, StoreResult};
use foldhash::fast::RandomState;
use std::collections::HashMap;
use std::future::{ready, Future};
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 256;

#[derive(Debug, Clone)]
enum Entry {
    Value(Vec<u8>),
    Counter(i64),
}

/// The keys under one parent (`a/b/` for `a/b/m`), by leaf: a slot's dozen at
/// most, but a queue's idempotency keys or a namespace's queues are as many as
/// there are, so a map and not a list.
type Group = HashMap<Box<str>, Entry, RandomState>;

/// One shard: groups by parent.
type Map = HashMap<Box<str>, Group, RandomState>;

/// `key` split after its last `/` into parent (`a/b/` for `a/b/m`, with the
/// `/`, so that parent and leaf make the key again) and leaf.
fn split(key: &str) -> (&str, &str) {
    key.split_at(key.rfind('/').map_or(0, |i| i + 1))
}

/// A store kept in process memory; the reference every other store is tested against.
#[derive(Debug)]
pub struct MemoryStore {
    shards: [Mutex<Map>; SHARDS],
    hasher: RandomState,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self { shards: std::array::from_fn(|_| Mutex::default()), hasher: RandomState::default() }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys are held (values and counters).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).values().map(HashMap::len).sum::<usize>()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every key held, sorted: for tests that look for leftovers.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .shards
            .iter()
            .flat_map(|s| {
                lock(s)
                    .iter()
                    .flat_map(|(parent, group)| {
                        group.keys().map(move |leaf| format!("{parent}{leaf}"))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        keys.sort();
        keys
    }

    /// The shard that holds the keys under `parent`, locked.
    fn lock(&self, parent: &str) -> MutexGuard<'_, Map> {
        lock(&self.shards[self.hasher.hash_one(parent) as usize % SHARDS])
    }

    /// The value under `key`.
    fn get_now(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let (parent, leaf) = split(key);
        let map = self.lock(parent);
        match map.get(parent).and_then(|group| group.get(leaf)) {
            None => Ok(None),
            Some(Entry::Value(v)) => Ok(Some(v.clone())),
            Some(Entry::Counter(_)) => Err(StoreError::misuse("get", key)),
        }
    }

    /// Runs `f` on the entry under `key` (`None`: there is none), holding the
    /// shard's lock throughout; the entry `f` returns beside its answer, if any,
    /// is added under `key` (which had none).
    fn update<T>(
        &self,
        key: &str,
        f: impl FnOnce(Option<&mut Entry>) -> StoreResult<(T, Option<Entry>)>,
    ) -> StoreResult<T> {
        let (parent, leaf) = split(key);
        let mut map = self.lock(parent);
        if let Some(group) = map.get_mut(parent) {
            if let Some(entry) = group.get_mut(leaf) {
                return f(Some(entry)).map(|(answer, _)| answer);
            }
            let (answer, new) = f(None)?;
            group.extend(new.map(|entry| (leaf.into(), entry)));
            return Ok(answer);
        }
        let (answer, new) = f(None)?;
        if let Some(entry) = new {
            map.insert(parent.into(), Group::from_iter([(leaf.into(), entry)]));
        }
        Ok(answer)
    }

    fn remove(&self, key: &str) {
        let (parent, leaf) = split(key);
        let mut map = self.lock(parent);
        let Some(group) = map.get_mut(parent) else { return };
        if group.remove(leaf).is_some() && group.is_empty() {
            map.remove(parent);
        }
    }

    fn set_now(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        check_set(key, value)?;
        self.update(key, |entry| match entry {
            Some(Entry::Counter(_)) => Err(StoreError::misuse("set", key)),
            Some(Entry::Value(v)) => {
                v.clear();
                v.extend_from_slice(value);
                Ok(((), None))
            }
            None => Ok(((), Some(Entry::Value(value.to_vec())))),
        })
    }

    fn increment_now(&self, key: &str, delta: i64) -> StoreResult<i64> {
        check_key(key)?;
        self.update(key, |entry| match entry {
            Some(Entry::Counter(n)) => {
                *n = n
                    .checked_add(delta)
                    .ok_or_else(|| StoreError(format!("counter {key} overflows")))?;
                Ok((*n, None))
            }
            Some(Entry::Value(_)) => Err(StoreError::misuse("increment", key)),
            None if delta == 0 => Ok((0, None)),
            None => Ok((delta, Some(Entry::Counter(delta)))),
        })
    }
}

fn lock<M>(shard: &Mutex<M>) -> MutexGuard<'_, M> {
    // Nothing under the lock panics (allocation failure aborts), and every step
    // leaves the maps whole, at worst with an empty group: a poisoned lock is
    // still usable.
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send {
        ready(self.get_now(key))
    }

    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send {
        ready(keys.iter().map(|k| self.get_now(k)).collect())
    }

    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>> + Send {
        ready(self.set_now(key, value))
    }

    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
        self.remove(key);
        ready(Ok(()))
    }

    fn delete_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<()>> + Send {
        for k in keys {
            self.remove(k);
        }
        ready(Ok(()))
    }

    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>> + Send {
        ready(self.increment_now(key, delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MAX_KEY_LEN, MAX_VALUE_LEN};
    use futures::executor::block_on;

    #[test]
    fn counters_and_values_do_not_mix() {
        let s = MemoryStore::new();
        block_on(async {
            assert_eq!(s.increment("c", 2).await.unwrap(), 2);
            assert_eq!(s.increment("c", 0).await.unwrap(), 2);
            assert!(s.get("c").await.is_err());
            assert!(s.set("c", b"x").await.is_err());
            s.set("v", b"x").await.unwrap();
            assert!(s.increment("v", 1).await.is_err());
            assert_eq!(s.get("v").await.unwrap(), Some(b"x".to_vec()));
            s.delete_many(&["v".into(), "c".into()]).await.unwrap();
            assert!(s.is_empty());
        });
    }

    #[test]
    fn keys_are_whole_again_however_they_split() {
        let s = MemoryStore::new();
        let keys = ["/", "//", "/x", "a", "a/", "a/b", "a//b", "a/b/c"];
        block_on(async {
            for (i, k) in keys.iter().enumerate() {
                s.set(k, &[i as u8]).await.unwrap();
            }
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(s.get(k).await.unwrap(), Some(vec![i as u8]), "{k}");
            }
            assert_eq!(s.keys(), {
                let mut sorted = keys.map(String::from).to_vec();
                sorted.sort();
                sorted
            });
            s.delete_many(&keys.map(String::from)).await.unwrap();
            assert!(s.is_empty());
        });
    }

    #[test]
    fn a_parent_holds_any_number_of_leaves() {
        // Idempotency keys all share their queue's parent.
        let s = MemoryStore::new();
        let keys: Vec<String> = (0..10_000).map(|i| format!("ns/q/0/i/key-{i}")).collect();
        block_on(async {
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(s.increment(k, i as i64 + 1).await.unwrap(), i as i64 + 1);
            }
            assert_eq!(s.len(), keys.len());
            assert_eq!(s.increment(&keys[4321], 0).await.unwrap(), 4322);
            s.delete_many(&keys[..5_000]).await.unwrap();
            assert_eq!(s.increment(&keys[4321], 0).await.unwrap(), 0);
            assert_eq!(s.increment(&keys[5_000], 0).await.unwrap(), 5_001);
            s.delete_many(&keys[5_000..]).await.unwrap();
            assert!(s.is_empty());
        });
    }

    #[test]
    fn first_increments_from_many_threads_make_one_counter() {
        // Each round, every thread increments the same new key at once: finding
        // no entry and adding one must be a single step, or a counter ends up
        // twice under one key and increments go missing.
        let (s, threads, rounds) = (MemoryStore::new(), 4, 500);
        let start = std::sync::Barrier::new(threads);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    for round in 0..rounds {
                        start.wait();
                        block_on(s.increment(&format!("g/{round}/n"), 1)).unwrap();
                    }
                });
            }
        });
        assert_eq!(s.len(), rounds);
        for round in 0..rounds {
            let n = block_on(s.increment(&format!("g/{round}/n"), 0)).unwrap();
            assert_eq!(n, threads as i64);
        }
    }

    #[test]
    fn rejects_oversized_keys_and_values() {
        let s = MemoryStore::new();
        block_on(async {
            assert!(s.set(&"k".repeat(MAX_KEY_LEN + 1), b"").await.is_err());
            assert!(s.set("k", &vec![0; MAX_VALUE_LEN + 1]).await.is_err());
            assert!(s.get("k").await.unwrap().is_none());
        });
    }
}
