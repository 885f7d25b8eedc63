//! The storage contract every host provides, and the in-memory reference store.
//!
//! `Store` is shaped after what every backend edgeq runs on really gives: Spin's
//! `wasi:keyvalue` 0.2.0-draft2 (`store`, `atomics`, `batch`), Redis, an embedded
//! database, memory. It is deliberately small:
//!
//! - `get`, `get_many`, `set`, `delete`, `delete_many`: plain single-key reads and
//!   writes, each linearizable per key. `get_many`/`delete_many` are batches of
//!   independent single-key operations, not transactions.
//! - `increment(key, delta)`: atomic add on a 64-bit signed counter, returning the new
//!   value; a missing key counts as 0. It is the **only** atomic read-modify-write, the
//!   one primitive that is atomic on every Spin backend (see `SPIN.md`). Counter keys
//!   are only ever touched by `increment`: read one with `increment(key, 0)`, never
//!   with `get`, and never `set` one (SQLite keeps counters as 8-byte little endian,
//!   Redis as decimal text).
//! - no compare-and-swap, no multi-key transactions, no listing by prefix.
//! - `flush`: a durability barrier. Hosts whose writes are not durable on return
//!   (the native embedded store, which group-commits) make every earlier write
//!   durable before it returns; the HTTP adapters call it before answering a request
//!   that wrote. Stores whose writes are durable on return keep the default no-op.
//!
//! Keys are ASCII and at most [`MAX_KEY_LEN`] bytes; values at most [`MAX_VALUE_LEN`]
//! bytes (hosted Spin limits). The engine keeps to both.

mod faulty;
mod memory;

pub use faulty::{FaultPlan, FaultyStore};
pub use memory::MemoryStore;

use std::future::Future;

/// Longest key the engine writes (Spin's hosted platforms allow 256 bytes).
pub const MAX_KEY_LEN: usize = 250;
/// Largest value the engine writes (Spin's hosted platforms allow 1 MiB).
pub const MAX_VALUE_LEN: usize = 1 << 20;

/// A failed store call. The engine never retries on its own: the operation fails
/// and the caller sees a 503; the protocol keeps the queue consistent whatever
/// call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// A counter read as a value or a value incremented: the engine never does
    /// this, and on a real Spin backend it would corrupt the key.
    pub fn misuse(op: &str, key: &str) -> Self {
        StoreError(format!("{op} on {key} mixes counters and values"))
    }
}

/// Refuses a key the engine never writes: empty, or over [`MAX_KEY_LEN`] bytes.
/// Every store checks keys with this, so all of them refuse the same ones.
pub fn check_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StoreError(format!("key of {} bytes", key.len())));
    }
    Ok(())
}

/// Refuses a `set` the engine never makes: a bad key ([`check_key`]) or a value
/// over [`MAX_VALUE_LEN`] bytes.
pub fn check_set(key: &str, value: &[u8]) -> StoreResult<()> {
    check_key(key)?;
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError(format!("value for {key} is over 1 MiB")));
    }
    Ok(())
}

/// The key-value contract the engine runs on. See the module docs for the rules.
pub trait Store: Send + Sync {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;
    /// The values under `keys`, in the same order.
    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send;
    /// Writes `value` under `key`, replacing what was there.
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes `key`; removing a missing key is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes every key in `keys`.
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<()>> + Send;
    /// Atomically adds `delta` to the counter at `key` (missing = 0) and returns the
    /// new value.
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Makes every write that returned before this call durable.
    fn flush(&self) -> impl Future<Output = StoreResult<()>> + Send {
        async { Ok(()) }
    }
}

impl<S: Store> Store for std::sync::Arc<S> {
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send {
        (**self).get(key)
    }
    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send {
        (**self).get_many(keys)
    }
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>> + Send {
        (**self).set(key, value)
    }
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
        (**self).delete(key)
    }
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<()>> + Send {
        (**self).delete_many(keys)
    }
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>> + Send {
        (**self).increment(key, delta)
    }
    fn flush(&self) -> impl Future<Output = StoreResult<()>> + Send {
        (**self).flush()
    }
}
