//! The `native_redis` host: `edgeq_native::serve` over a [`NativeStore::Redis`] on a
//! private `redis-server` ([`RedisServer`]).
//!
//! Isolation: every test starts its own `redis-server` on a free loopback port, so
//! tests running in parallel never share a key, need no `FLUSHDB`, and can use the
//! fixed queue names of the scenarios in the default namespace, exactly as the other
//! hosts do. A server starts in a few milliseconds and holds almost nothing, so one
//! per test costs little; the server is killed when the host is dropped.
//! `redis-server` missing is a failure with a message, never a skip.

pub use edgeq_native::testing::RedisServer;

use super::{start_native, Running};
use edgeq_native::{NativeStore, StoreSpec};

/// Starts a `redis-server`, then a native server on it.
pub async fn start_native_redis() -> Running {
    let redis = RedisServer::start();
    let spec = StoreSpec::Redis(redis.url());
    NativeStore::open(&spec)
        .expect("open the redis store")
        .check()
        .await
        .expect("the private redis-server answers");
    let running = start_native(spec, None).await;
    // The edgeq server stops first, then Redis goes.
    Running { client: running.client, _guard: Box::new((running._guard, redis)) }
}
