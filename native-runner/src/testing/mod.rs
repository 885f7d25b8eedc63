//! Helpers for tests, here and in the workspace's black-box suites: not part of the
//! server.
//!
//! - [`RedisServer`]: a private `redis-server` per test.
//! - [`EdgeqProcess`]: an `edgeq serve` child process, once it listens.
//! - [`InProcessServer`]: `serve` in the test's process, over any store.
//! - [`temp_dir`]: a fresh temporary directory.
//! - [`increment_from_tasks`], [`refuses_oversized_keys_and_values`] and
//!   [`get_many_keeps_order_and_delete_many_deletes_all`]: parts of the store
//!   contract every native store's tests check the same way.

mod in_process;
mod process;
mod redis;

pub use in_process::InProcessServer;
pub use process::EdgeqProcess;
pub use redis::{RedisServer, REDIS_SERVER_ENV};

use edgeq::store::{Store, MAX_KEY_LEN, MAX_VALUE_LEN};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A fresh directory `edgeq-{what}-{pid}-{n}` under the system temp dir, unique in
/// this process. The caller removes it.
///
/// # Panics
///
/// When it cannot be created: this is a test helper.
pub fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "edgeq-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

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

/// Keys must be 1..=`MAX_KEY_LEN` bytes and values at most `MAX_VALUE_LEN`; the
/// limits themselves are accepted.
///
/// # Panics
///
/// When the store breaks the rule: this is a test helper.
pub async fn refuses_oversized_keys_and_values<S: Store>(s: &S) {
    let long = "k".repeat(MAX_KEY_LEN + 1);
    assert!(s.set(&long, b"").await.is_err());
    assert!(s.set("", b"").await.is_err());
    assert!(s.increment(&long, 1).await.is_err());
    assert!(s.set("k", &vec![0; MAX_VALUE_LEN + 1]).await.is_err());
    s.set("k", &vec![7; MAX_VALUE_LEN]).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().unwrap().len(), MAX_VALUE_LEN);
    s.set(&"k".repeat(MAX_KEY_LEN), b"max").await.unwrap();
}

/// `get_many` answers key by key in the order asked (repeats and missing keys
/// included); `delete_many` deletes values and counters alike, and deleting what
/// is not there is no error.
///
/// # Panics
///
/// When the store breaks the rule: this is a test helper.
pub async fn get_many_keeps_order_and_delete_many_deletes_all<S: Store>(s: &S) {
    s.set("b", b"2").await.unwrap();
    s.set("a", b"1").await.unwrap();
    let keys: Vec<String> = ["a", "missing", "b", "a"].map(String::from).to_vec();
    assert_eq!(
        s.get_many(&keys).await.unwrap(),
        vec![Some(b"1".to_vec()), None, Some(b"2".to_vec()), Some(b"1".to_vec())]
    );
    assert_eq!(s.get_many(&[]).await.unwrap(), Vec::<Option<Vec<u8>>>::new());

    let many: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
    for k in &many {
        s.set(k, k.as_bytes()).await.unwrap();
    }
    s.increment("k500", 1).await.unwrap();
    let mut all = many.clone();
    all.push("k500".into());
    all.push("never there".into());
    assert!(s.get_many(&many).await.unwrap().iter().all(Option::is_some));
    s.delete_many(&all).await.unwrap();
    assert!(s.get_many(&all).await.unwrap().iter().all(Option::is_none));
    assert_eq!(s.increment("k500", 0).await.unwrap(), 0);
    s.delete_many(&[]).await.unwrap();
    s.delete("never there").await.unwrap();
    s.set("one", b"1").await.unwrap();
    s.delete("one").await.unwrap();
    assert_eq!(s.get("one").await.unwrap(), None);
}
