//! [`StoreSpec`] (what `--store` names) and [`NativeStore`] (the store it opens).

use crate::redb_store::RedbStore;
use crate::redis_store::{redact_url, RedisStore};
use edgeq::store::{MemoryStore, Store, StoreError, StoreResult};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the native server keeps its data unless `--store` says otherwise.
pub const DEFAULT_STORE_PATH: &str = "./edgeq-data/edgeq.redb";

/// Which store to open, as written in `--store`:
///
/// - `memory`: in process memory, lost on exit (tests, demos);
/// - `redb:PATH` or a bare `PATH`: the durable redb file at `PATH`;
/// - `redis://[[user]:password@]host[:port][/db]` or `redis+unix:///socket[?db=N]`:
///   the Redis database at that URL, which several servers (and Spin instances) may
///   share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// [`MemoryStore`].
    Memory,
    /// [`RedbStore`] in this file.
    Redb(PathBuf),
    /// [`RedisStore`] on the Redis at this URL.
    Redis(String),
}

impl Default for StoreSpec {
    fn default() -> Self {
        StoreSpec::Redb(DEFAULT_STORE_PATH.into())
    }
}

/// A `--store` value that names no store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSpecError(String);

impl fmt::Display for StoreSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreSpecError {}

impl FromStr for StoreSpec {
    type Err = StoreSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let path = match s {
            "memory" => return Ok(StoreSpec::Memory),
            _ if s.starts_with("rediss://") => {
                return Err(StoreSpecError(
                    "TLS (rediss://) is not supported by this build: use redis://".into(),
                ))
            }
            _ if s.starts_with("redis://") || s.starts_with("redis+unix://") => {
                // Refuse a malformed URL now rather than at the first request.
                RedisStore::open(s).map_err(|e| StoreSpecError(e.0))?;
                return Ok(StoreSpec::Redis(s.to_owned()));
            }
            _ => s.strip_prefix("redb:").unwrap_or(s),
        };
        if path.is_empty() {
            return Err(StoreSpecError(format!(
                "{s:?} names no store: use memory, redb:PATH or a file path"
            )));
        }
        Ok(StoreSpec::Redb(path.into()))
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("memory"),
            StoreSpec::Redb(path) => write!(f, "redb:{}", path.display()),
            // Shown in logs: never the password.
            StoreSpec::Redis(url) => f.write_str(&redact_url(url)),
        }
    }
}

/// The store a native server runs on, chosen at startup by a [`StoreSpec`].
///
/// An enum rather than a generic so `main` builds one `Api` type whatever the flag
/// says; each call is a `match` and a delegation.
#[derive(Debug)]
pub enum NativeStore {
    /// In memory, lost on exit.
    Memory(Box<MemoryStore>),
    /// Durable, in one redb file.
    Redb(RedbStore),
    /// Shared, in a Redis database.
    Redis(RedisStore),
}

impl NativeStore {
    /// Opens the store `spec` names, creating a redb file's parent directory.
    ///
    /// A Redis store connects on first use; [`NativeStore::check`] connects now.
    pub fn open(spec: &StoreSpec) -> StoreResult<Self> {
        match spec {
            StoreSpec::Memory => Ok(NativeStore::Memory(Box::default())),
            StoreSpec::Redb(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
                }
                RedbStore::open(path).map(NativeStore::Redb)
            }
            StoreSpec::Redis(url) => RedisStore::open(url).map(NativeStore::Redis),
        }
    }

    /// Completes with the error that stopped the store taking writes, should
    /// one do so: a redb file whose commit failed (a full disk, an I/O error),
    /// which only opening it again can cure. The other stores never stop.
    pub fn failure(&self) -> impl Future<Output = StoreError> + Send + 'static {
        let redb = match self {
            NativeStore::Redb(s) => Some(s.failure()),
            NativeStore::Memory(_) | NativeStore::Redis(_) => None,
        };
        async move {
            match redb {
                Some(failure) => failure.await,
                None => std::future::pending().await,
            }
        }
    }

    /// Checks that the store can be reached: pings a Redis store (connecting to
    /// it), and warns when its eviction policy may drop edgeq's keys; the local
    /// stores are always there once open.
    pub async fn check(&self) -> StoreResult<()> {
        match self {
            NativeStore::Memory(_) | NativeStore::Redb(_) => Ok(()),
            NativeStore::Redis(s) => {
                s.ping().await?;
                if let Some(policy) = s.evicting_policy().await {
                    tracing::warn!(
                        %policy,
                        "Redis may evict edgeq's keys when it runs out of memory, losing \
                         messages: set maxmemory-policy noeviction (writes then fail instead)"
                    );
                }
                Ok(())
            }
        }
    }
}

impl Store for NativeStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match self {
            NativeStore::Memory(s) => s.get(key).await,
            NativeStore::Redb(s) => s.get(key).await,
            NativeStore::Redis(s) => s.get(key).await,
        }
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        match self {
            NativeStore::Memory(s) => s.get_many(keys).await,
            NativeStore::Redb(s) => s.get_many(keys).await,
            NativeStore::Redis(s) => s.get_many(keys).await,
        }
    }

    async fn set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        match self {
            NativeStore::Memory(s) => s.set(key, value).await,
            NativeStore::Redb(s) => s.set(key, value).await,
            NativeStore::Redis(s) => s.set(key, value).await,
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        match self {
            NativeStore::Memory(s) => s.delete(key).await,
            NativeStore::Redb(s) => s.delete(key).await,
            NativeStore::Redis(s) => s.delete(key).await,
        }
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
        match self {
            NativeStore::Memory(s) => s.delete_many(keys).await,
            NativeStore::Redb(s) => s.delete_many(keys).await,
            NativeStore::Redis(s) => s.delete_many(keys).await,
        }
    }

    async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
        match self {
            NativeStore::Memory(s) => s.increment(key, delta).await,
            NativeStore::Redb(s) => s.increment(key, delta).await,
            NativeStore::Redis(s) => s.increment(key, delta).await,
        }
    }

    async fn flush(&self) -> StoreResult<()> {
        match self {
            NativeStore::Memory(s) => s.flush().await,
            NativeStore::Redb(s) => s.flush().await,
            NativeStore::Redis(s) => s.flush().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_specs() {
        assert_eq!("memory".parse(), Ok(StoreSpec::Memory));
        assert_eq!("redb:a/b.redb".parse(), Ok(StoreSpec::Redb("a/b.redb".into())));
        assert_eq!("/x/y.redb".parse(), Ok(StoreSpec::Redb("/x/y.redb".into())));
        assert!("".parse::<StoreSpec>().is_err());
        assert!("redb:".parse::<StoreSpec>().is_err());
        assert_eq!(
            "redis://127.0.0.1:6379/3".parse(),
            Ok(StoreSpec::Redis("redis://127.0.0.1:6379/3".into()))
        );
        assert!("redis+unix:///run/redis.sock".parse::<StoreSpec>().is_ok());
        assert!("rediss://127.0.0.1".parse::<StoreSpec>().is_err());
        assert!("redis://127.0.0.1:nope".parse::<StoreSpec>().is_err());
        let spec: StoreSpec = "redis://:pw@127.0.0.1:6379/1".parse().unwrap();
        assert_eq!(spec.to_string(), "redis://:***@127.0.0.1:6379/1");
        let spec: StoreSpec = "redis://127.0.0.1:6379/1".parse().unwrap();
        assert_eq!(spec.to_string().parse(), Ok(spec));
        let spec = StoreSpec::default();
        assert_eq!(spec.to_string().parse(), Ok(spec));
    }

    #[tokio::test]
    async fn opens_every_kind_and_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/e.redb");
        let redis = crate::testing::RedisServer::start();
        for spec in
            [StoreSpec::Memory, StoreSpec::Redb(path.clone()), StoreSpec::Redis(redis.url())]
        {
            let s = NativeStore::open(&spec).unwrap();
            s.check().await.unwrap();
            s.set("v", b"1").await.unwrap();
            assert_eq!(s.get_many(&["v".into()]).await.unwrap(), vec![Some(b"1".to_vec())]);
            assert_eq!(s.increment("c", 3).await.unwrap(), 3);
            s.delete("v").await.unwrap();
            s.delete_many(&["c".into()]).await.unwrap();
            assert_eq!(s.get("v").await.unwrap(), None);
            s.flush().await.unwrap();
        }
        assert!(path.exists());
    }
}
