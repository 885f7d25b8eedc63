//! Helpers for tests, here and in the workspace's black-box suites: not part of the
//! server.
//!
//! - [`RedisServer`]: a private `redis-server` per test.
//! - [`EdgeqProcess`]: an `edgeq serve` child process, once it listens.
//! - [`increment_from_tasks`]: the atomicity check every native store's tests run.

mod process;
mod redis;

pub use process::EdgeqProcess;
pub use redis::{RedisServer, REDIS_SERVER_ENV};

use edgeq::store::Store;
use std::sync::Arc;

/// Runs `tasks` tokio tasks that each call `increment(key, 1)` `each` times, task
/// `t` on `stores[t % stores.len()]`, and returns every value handed out, sorted:
/// an atomic counter hands out exactly `1..=tasks * each` (starting from 0).
///
/// # Panics
///
/// When a call fails or a task panics: this is a test helper.
pub async fn increment_from_tasks<S: Store + 'static>(
    stores: &[Arc<S>],
    key: &'static str,
    tasks: usize,
    each: usize,
) -> Vec<i64> {
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = stores[t % stores.len()].clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(each);
                for _ in 0..each {
                    seen.push(store.increment(key, 1).await.expect("increment"));
                }
                seen
            })
        })
        .collect();
    let mut all = Vec::with_capacity(tasks * each);
    for h in handles {
        all.extend(h.await.expect("increment task"));
    }
    all.sort_unstable();
    all
}
