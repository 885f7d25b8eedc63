//! [`Store`] over Spin's `wasi:keyvalue` 0.2.0-draft2 bindings.

use crate::store::{Store, StoreError, StoreResult};
use foldhash::fast::FixedState;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};
use std::collections::HashMap;
use std::future::{ready, Future};

/// The label of the key-value store the component uses (`key_value_stores` in
/// `spin.toml`).
pub const BUCKET: &str = "default";

/// [`Store`] over one `wasi:keyvalue` bucket.
///
/// Every call is a synchronous host call: the returned futures are already
/// complete (`std::future::Ready`), so they hold no borrow and are `Send`.
pub struct SpinStore {
    bucket: Bucket,
}

/// The bucket resource, made `Send + Sync` for the `Store` bounds.
struct Bucket(store::Bucket);

// SAFETY: a `wasm32` component instance has exactly one thread (there is no way to
// spawn another in WASI 0.2 and Spin runs one instance per request), so the
// resource handle can never be used from two threads at once, nor dropped on a
// thread other than the one that opened it.
unsafe impl Send for Bucket {}
// SAFETY: as for `Send`: there is only one thread to share it with.
unsafe impl Sync for Bucket {}

impl SpinStore {
    /// Opens the bucket [`BUCKET`].
    pub fn open() -> StoreResult<Self> {
        Self::open_label(BUCKET)
    }

    /// Opens the bucket `label` (it must be listed in the component's
    /// `key_value_stores`).
    pub fn open_label(label: &str) -> StoreResult<Self> {
        let bucket = store::open(label).map_err(error)?;
        Ok(Self { bucket: Bucket(bucket) })
    }

    fn bucket(&self) -> &store::Bucket {
        &self.bucket.0
    }

    fn get_now(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.bucket().get(key).map_err(error)
    }

    fn get_many_now(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = batch::get_many(self.bucket(), keys).map_err(error)?;
        // The draft leaves the order of the pairs, and whether missing keys appear,
        // to the host (Spin returns only the keys it found): map them back to the
        // order of `keys`. A key asked for twice gets its value twice.
        // Fixed-seed hashing: a seeded one would ask the host for the time or
        // for entropy, one more host call per request for nothing (these maps
        // live for one call and hold the engine's own keys).
        let mut found: HashMap<String, Vec<u8>, FixedState> =
            found.into_iter().filter_map(|(key, value)| Some((key, value?))).collect();
        let last: HashMap<&str, usize, FixedState> =
            keys.iter().enumerate().map(|(i, key)| (key.as_str(), i)).collect();
        let values = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                if last.get(key.as_str()) == Some(&i) {
                    found.remove(key)
                } else {
                    found.get(key).cloned()
                }
            })
            .collect();
        Ok(values)
    }

    fn delete_many_now(&self, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        batch::delete_many(self.bucket(), keys).map_err(error)
    }
}

impl Store for SpinStore {
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send {
        ready(self.get_now(key))
    }

    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send {
        ready(self.get_many_now(keys))
    }

    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>> + Send {
        ready(self.bucket().set(key, value).map_err(error))
    }

    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
        ready(self.bucket().delete(key).map_err(error))
    }

    fn delete_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<()>> + Send {
        ready(self.delete_many_now(keys))
    }

    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>> + Send {
        ready(atomics::increment(self.bucket(), key, delta).map_err(error))
    }
}

fn error(e: store::Error) -> StoreError {
    StoreError(match e {
        store::Error::NoSuchStore => "no such store".into(),
        store::Error::AccessDenied => "access denied".into(),
        store::Error::Other(message) => message,
    })
}
