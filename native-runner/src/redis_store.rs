//! The shared store: [`RedisStore`], a [`Store`] on a Redis server, so that several
//! edgeq processes (native servers, Spin instances) serve the same queues.
//!
//! # Mapping
//!
//! | `Store` call | Redis |
//! |---|---|
//! | `get(k)` | `GET k` |
//! | `get_many(ks)` | one `MGET k1 k2 …` |
//! | `set(k, v)` | `SET k v` (raw bytes) |
//! | `delete(k)`, `delete_many(ks)` | one `DEL k1 k2 …` |
//! | `increment(k, d)`, `d != 0` | `INCRBY k d` (atomic in Redis) |
//! | `increment(k, 0)` | `GET k`, parsed as a decimal `i64` (missing = 0) |
//! | `flush()` | nothing (see Durability) |
//!
//! Every call is one Redis command, so each is atomic and linearizable per key, and
//! the batch calls cost one round trip however many keys they name.
//!
//! # Counters are decimal text, shared with Spin
//!
//! `INCRBY` keeps a counter as the decimal text of its value, which is exactly how
//! Spin's Redis key-value backend keeps the counters of `wasi:keyvalue/atomics`
//! (it also uses `INCRBY`), and values are stored as the raw bytes given, as Spin
//! does. So a Spin component whose `default` store points at a Redis and a native
//! server given `--store redis://…` of the same Redis (same database, same
//! namespace) share every queue: any number of either may run at once, because the
//! engine only relies on `increment` being atomic.
//!
//! Unlike [`MemoryStore`](edgeq::store::MemoryStore) and
//! [`RedbStore`](crate::RedbStore), Redis cannot tell a counter from a value: both
//! are strings. A `get` of a counter key returns its decimal text, and a `set` of a
//! counter key replaces it, where those stores refuse both. The engine never does
//! either (counter keys are only ever touched by `increment`, see the
//! [`Store`] contract); `increment` of a key holding a non-number is still refused
//! by Redis and surfaces as a [`StoreError`].
//!
//! Keys and values are checked against the engine's limits on writes with
//! [`check_key`] and [`check_set`],
//! as in every store.
//!
//! # Connections
//!
//! A small fixed pool ([`DEFAULT_CONNECTIONS`]) of redis-rs
//! [`ConnectionManager`]s, used round-robin. Each is one *multiplexed* connection:
//! any number of calls share it concurrently, their commands pipelined on the
//! socket, so a handful of sockets carry any number of requests. A manager
//! reconnects by itself when its socket breaks (the call that saw the break fails,
//! later calls use the new socket). A call that finds its connection's last
//! reconnect refused (Redis was down when it tried) was never sent: it is sent
//! once more on a fresh attempt, so once Redis is back every call succeeds. More than one socket keeps one large value
//! (up to 1 MiB) from delaying every other call behind it and spreads the protocol
//! work of the replies over tokio's workers; more than a few would only add
//! sockets to Redis, which executes commands on one thread anyway.
//!
//! Connections are opened lazily, on a slot's first call: [`RedisStore::open`] only
//! parses the URL (no runtime, no network), and a server can start before its
//! Redis does (its requests answer 503 meanwhile). `edgeq serve` calls
//! [`RedisStore::ping`] at startup to fail fast on a wrong URL.
//!
//! A failed or timed-out command is a [`StoreError`] (the request answers 503);
//! nothing that may have been sent is retried, so an `INCRBY` whose reply was lost
//! is never applied twice.
//! The engine's protocol tolerates a call whose effect is unknown, as it tolerates a
//! host dying between two calls. Commands time out after [`RESPONSE_TIMEOUT`].
//!
//! # Durability
//!
//! Each command returns after Redis has applied it in memory, and every later
//! command on any connection sees it, so `flush` has nothing to wait for and is a
//! no-op. Whether an acknowledged write survives a crash of *Redis* is the
//! operator's choice, in the Redis configuration: with `appendonly yes` and
//! `appendfsync always` every write is fsynced before its reply; with the common
//! `appendfsync everysec` up to about a second of writes can be lost; with RDB
//! snapshots only, everything since the last snapshot. Replication is asynchronous:
//! a replica promoted after a failover lacks the writes it had not received yet,
//! which is the same as a crash of Redis. A crash of an edgeq process loses nothing
//! that was acknowledged.
//!
//! One Redis (or one primary) only: `MGET`/`DEL` of keys on different Redis Cluster
//! slots would be refused, and this build has no cluster client.

use edgeq::store::{check_key, check_set, Store, StoreError, StoreResult};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

/// Connections in a [`RedisStore`]'s pool unless [`RedisStore::open_with`] says
/// otherwise.
pub const DEFAULT_CONNECTIONS: usize = 4;
/// How long a command may wait for its reply before it fails.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt to connect may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Further attempts (with backoff) when connecting or reconnecting fails.
const CONNECT_RETRIES: usize = 2;

/// A [`Store`] on one Redis database. See the module docs.
pub struct RedisStore {
    client: Client,
    /// The URL with any password hidden, for messages.
    url: String,
    conns: Box<[OnceCell<ConnectionManager>]>,
    next: AtomicUsize,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[[user]:password@]host[:port][/db]`,
    /// or `redis+unix:///path/to/socket[?db=N]`), with [`DEFAULT_CONNECTIONS`]
    /// connections.
    ///
    /// Only parses the URL: connections open on first use (see the module docs).
    /// `rediss://` is refused: this build has no TLS.
    pub fn open(url: &str) -> StoreResult<Self> {
        Self::open_with(url, DEFAULT_CONNECTIONS)
    }

    /// As [`open`](Self::open), with `connections` connections (at least one).
    pub fn open_with(url: &str, connections: usize) -> StoreResult<Self> {
        let shown = redact_url(url);
        if url.starts_with("rediss://") {
            return Err(StoreError(format!(
                "{shown}: TLS (rediss://) is not supported by this build; use redis://"
            )));
        }
        let client =
            Client::open(url).map_err(|e| StoreError(format!("bad redis URL {shown}: {e}")))?;
        let conns = (0..connections.max(1)).map(|_| OnceCell::new()).collect();
        Ok(Self { client, url: shown, conns, next: AtomicUsize::new(0) })
    }

    /// The URL this store talks to, with any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks that Redis answers (`PING`), connecting if needed.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(|e| self.fail("PING", e))
    }

    /// Redis's `maxmemory-policy` when it is one that may evict edgeq's keys
    /// (`allkeys-*`: any key, when Redis is out of memory), which would lose
    /// messages and corrupt queues without a word. `None` when the policy spares
    /// them (`noeviction`, or `volatile-*`: edgeq's keys never expire) or cannot
    /// be read (managed Redis often refuses `CONFIG`).
    pub async fn evicting_policy(&self) -> Option<String> {
        let mut conn = self.conn().await.ok()?;
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await
            .ok()?;
        reply.into_iter().nth(1).filter(|policy| policy.starts_with("allkeys-"))
    }

    /// The next connection of the pool, round-robin, opened on its first use.
    async fn conn(&self) -> StoreResult<ConnectionManager> {
        let slot = &self.conns[self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len()];
        let manager = slot
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECTION_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(CONNECT_RETRIES)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .map_err(|e| self.fail("connect", e))?;
        Ok(manager.clone())
    }

    fn fail(&self, what: &str, e: RedisError) -> StoreError {
        StoreError(format!("redis {what} ({}): {e}", self.url))
    }

    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> StoreResult<T> {
        let mut conn = self.conn().await?;
        match cmd.query_async(&mut conn).await {
            // The connection's last attempt to reconnect was refused (Redis was
            // down): the command was never sent, and the failure has the manager
            // connect again, so one retry cannot apply it twice, and after an
            // outage it spares the first call on each connection a 503.
            Err(e) if e.is_connection_refusal() => cmd.query_async(&mut conn).await,
            result => result,
        }
        .map_err(|e| self.fail(what, e))
    }
}

impl Store for RedisStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query("GET", redis::cmd("GET").arg(key)).await
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<Vec<u8>>> = self.query("MGET", redis::cmd("MGET").arg(keys)).await?;
        if values.len() != keys.len() {
            return Err(StoreError(format!(
                "redis MGET ({}): {} values for {} keys",
                self.url,
                values.len(),
                keys.len()
            )));
        }
        Ok(values)
    }

    async fn set(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        check_set(key, value)?;
        self.query("SET", redis::cmd("SET").arg(key).arg(value)).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.query("DEL", redis::cmd("DEL").arg(key)).await
    }

    async fn delete_many(&self, keys: &[String]) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.query("DEL", redis::cmd("DEL").arg(keys)).await
    }

    async fn increment(&self, key: &str, delta: i64) -> StoreResult<i64> {
        check_key(key)?;
        if delta != 0 {
            return self.query("INCRBY", redis::cmd("INCRBY").arg(key).arg(delta)).await;
        }
        // A read: `INCRBY k 0` would create a missing counter.
        let value: Option<Vec<u8>> = self.query("GET", redis::cmd("GET").arg(key)).await?;
        let Some(text) = value else { return Ok(0) };
        std::str::from_utf8(&text).ok().and_then(|t| t.parse::<i64>().ok()).ok_or_else(|| {
            StoreError(format!("increment on {key}: it holds a value, not a counter"))
        })
    }

    // `flush` keeps the default no-op: see "Durability" in the module docs.
}

/// `url` with the password of its user info (if any) replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let (userinfo, host) = (&rest[..at], &rest[at..]);
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{host}"),
        // `redis://password@host` is not a form redis-rs reads a password from,
        // but hide it all the same.
        None => format!("{scheme}://***{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, increment_from_tasks, RedisServer};
    use std::sync::Arc;

    fn store(server: &RedisServer) -> RedisStore {
        RedisStore::open(&server.url()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments_are_atomic() {
        let server = RedisServer::start();
        let store = Arc::new(store(&server));
        let all = increment_from_tasks(std::slice::from_ref(&store), "n", 16, 200).await;
        assert_eq!(all, (1..=3200).collect::<Vec<i64>>());
        assert_eq!(store.increment("n", 0).await.unwrap(), 3200);
        assert_eq!(store.increment("n", -200).await.unwrap(), 3000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_on_one_redis_share_counters() {
        // Two servers on one Redis: each `increment` result is handed out once.
        let server = RedisServer::start();
        let stores = [Arc::new(store(&server)), Arc::new(store(&server))];
        let all = increment_from_tasks(&stores, "shared", 8, 100).await;
        assert_eq!(all, (1..=800).collect::<Vec<i64>>());
        stores[0].set("v", b"from 0").await.unwrap();
        assert_eq!(stores[1].get("v").await.unwrap(), Some(b"from 0".to_vec()));
    }

    #[tokio::test]
    async fn counters_are_decimal_text_and_values_raw_bytes() {
        let server = RedisServer::start();
        let s = store(&server);
        assert_eq!(s.increment("c", 0).await.unwrap(), 0);
        // Reading a missing counter does not create it.
        assert_eq!(s.get("c").await.unwrap(), None);
        assert_eq!(s.increment("c", 42).await.unwrap(), 42);
        assert_eq!(s.increment("c", -50).await.unwrap(), -8);
        assert_eq!(s.increment("c", 0).await.unwrap(), -8);
        // What Spin's Redis backend keeps (and so reads) for the same counter.
        assert_eq!(s.get("c").await.unwrap(), Some(b"-8".to_vec()));

        let bytes: Vec<u8> = (0..=255).collect();
        s.set("v", &bytes).await.unwrap();
        assert_eq!(s.get("v").await.unwrap(), Some(bytes.clone()));
        s.set("empty", b"").await.unwrap();
        assert_eq!(s.get("empty").await.unwrap(), Some(Vec::new()));
        // A value is not a counter.
        assert!(s.increment("v", 1).await.is_err());
        assert!(s.increment("v", 0).await.is_err());
        assert_eq!(s.get("v").await.unwrap(), Some(bytes));
        // Overflow is an error and changes nothing.
        assert_eq!(s.increment("big", i64::MAX).await.unwrap(), i64::MAX);
        assert!(s.increment("big", 1).await.is_err());
        assert_eq!(s.increment("big", 0).await.unwrap(), i64::MAX);
        // Once deleted, a key may change kind.
        s.delete_many(&["v".into(), "c".into()]).await.unwrap();
        assert_eq!(s.increment("v", 5).await.unwrap(), 5);
        s.set("c", b"now a value").await.unwrap();
        s.flush().await.unwrap();
    }

    #[tokio::test]
    async fn get_many_keeps_order_and_delete_many_deletes_all() {
        let server = RedisServer::start();
        testing::get_many_keeps_order_and_delete_many_deletes_all(&store(&server)).await;
    }

    #[tokio::test]
    async fn rejects_oversized_keys_and_values() {
        let server = RedisServer::start();
        testing::refuses_oversized_keys_and_values(&store(&server)).await;
    }

    #[tokio::test]
    async fn databases_are_separate() {
        let server = RedisServer::start();
        let db1 = RedisStore::open(&server.url_db(1)).unwrap();
        let db2 = RedisStore::open(&server.url_db(2)).unwrap();
        db1.set("k", b"one").await.unwrap();
        assert_eq!(db2.get("k").await.unwrap(), None);
        assert_eq!(store(&server).get("k").await.unwrap(), None);
        assert_eq!(db1.get("k").await.unwrap(), Some(b"one".to_vec()));
    }

    #[tokio::test]
    async fn an_eviction_policy_that_may_drop_keys_is_reported() {
        let server = RedisServer::start();
        let s = store(&server);
        let set = |policy: &'static str| {
            let cmd = redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg(policy).clone();
            let s = &s;
            async move { s.query::<()>("CONFIG SET", &cmd).await.unwrap() }
        };
        assert_eq!(s.evicting_policy().await, None, "Redis's default, noeviction");
        set("allkeys-lru").await;
        assert_eq!(s.evicting_policy().await.as_deref(), Some("allkeys-lru"));
        set("volatile-lru").await;
        assert_eq!(s.evicting_policy().await, None, "edgeq's keys never expire");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_redis_is_an_error_then_reconnects() {
        let mut server = RedisServer::start();
        let s = RedisStore::open_with(&server.url(), 2).unwrap();
        s.ping().await.unwrap();
        s.set("k", b"v").await.unwrap();
        server.kill();
        for _ in 0..4 {
            let e = s.get("k").await.expect_err("Redis is down");
            assert!(e.0.contains("redis"), "{e}");
        }
        server.restart();
        // The managers reconnect by themselves; the restarted server is empty.
        let mut answered = false;
        for _ in 0..100 {
            if let Ok(v) = s.get("k").await {
                assert_eq!(v, None);
                answered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(answered, "never reconnected");
        for _ in 0..4 {
            s.increment("n", 1).await.unwrap();
        }
        assert_eq!(s.increment("n", 0).await.unwrap(), 4);
    }

    #[tokio::test]
    async fn unreachable_or_bad_urls_are_errors_not_panics() {
        assert!(RedisStore::open("rediss://127.0.0.1:6379").is_err());
        assert!(RedisStore::open("redis://127.0.0.1:notaport").is_err());
        assert!(RedisStore::open("http://127.0.0.1").is_err());
        // A port nobody listens on (just freed).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let s = RedisStore::open_with(&format!("redis://127.0.0.1:{port}"), 1).unwrap();
        assert!(s.ping().await.is_err());
        assert!(s.get("k").await.is_err());
        assert!(s.increment("k", 1).await.is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact_url("redis://127.0.0.1:6379/2"), "redis://127.0.0.1:6379/2");
        assert_eq!(redact_url("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://user:secret@h"), "redis://user:***@h");
        assert_eq!(redact_url("redis://secret@h"), "redis://***@h");
        assert_eq!(redact_url("redis+unix:///tmp/r.sock"), "redis+unix:///tmp/r.sock");
        let s = RedisStore::open("redis://:secret@127.0.0.1:1").unwrap();
        assert!(!format!("{s:?}").contains("secret"));
        assert_eq!(s.url(), "redis://:***@127.0.0.1:1");
    }
}
