//! A fault-injecting wrapper for tests and the deterministic simulation.
//!
//! Every call first yields to the executor a seeded-random number of times, so a
//! seeded single-threaded scheduler interleaves concurrent callers differently per
//! seed (and reproducibly). Then, by the same seeded plan, the call may fail before
//! it reaches the inner store (no effect) or after it (the effect happened but the
//! caller sees an error, like a lost reply). A "crash" of a caller between any two
//! calls is the scheduler dropping that caller's future at one of these yields.

use super::{Store, StoreError, StoreResult};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// How often calls are delayed and fail. Probabilities are in parts per million.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Seed of the plan's random stream.
    pub seed: u64,
    /// Most yields before a call runs (0 = never delay).
    pub max_delay: u32,
    /// Chance that a call fails without effect.
    pub fail_before_ppm: u32,
    /// Chance that a call takes effect and then reports failure.
    pub fail_after_ppm: u32,
}

impl FaultPlan {
    /// A plan that only reorders calls, never fails them.
    pub fn reorder_only(seed: u64) -> Self {
        Self { seed, max_delay: 3, fail_before_ppm: 0, fail_after_ppm: 0 }
    }
}

/// A store that delays and fails calls to `inner` by a seeded [`FaultPlan`].
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    plan: FaultPlan,
    rng: AtomicU64,
    calls: AtomicU64,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, plan: FaultPlan) -> Self {
        let rng = AtomicU64::new(plan.seed | 1);
        Self { inner, plan, rng, calls: AtomicU64::new(0) }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many calls were made through this wrapper.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn next(&self) -> u64 {
        // xorshift64*: deterministic as long as callers are scheduled deterministically.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&self, ppm: u32) -> bool {
        ppm > 0 && self.next() % 1_000_000 < u64::from(ppm)
    }

    async fn run<T, F, Fut>(&self, op: F) -> StoreResult<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let delay = if self.plan.max_delay == 0 {
            0
        } else {
            self.next() % (u64::from(self.plan.max_delay) + 1)
        };
        for _ in 0..=delay {
            YieldOnce(false).await;
        }
        if self.chance(self.plan.fail_before_ppm) {
            return Err(StoreError("injected failure before the call".into()));
        }
        let out = op().await;
        if out.is_ok() && self.chance(self.plan.fail_after_ppm) {
            return Err(StoreError("injected failure after the call".into()));
        }
        out
    }
}

/// Returns `Pending` once, so the scheduler gets to pick who runs next.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl<S: Store> Store for FaultyStore<S> {
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send {
        self.run(move || self.inner.get(key))
    }
    fn get_many(
        &self,
        keys: &[String],
    ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send {
        self.run(move || self.inner.get_many(keys))
    }
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = StoreResult<()>> + Send {
        self.run(move || self.inner.set(key, value))
    }
    fn delete(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send {
        self.run(move || self.inner.delete(key))
    }
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = StoreResult<()>> + Send {
        self.run(move || self.inner.delete_many(keys))
    }
    fn increment(&self, key: &str, delta: i64) -> impl Future<Output = StoreResult<i64>> + Send {
        self.run(move || self.inner.increment(key, delta))
    }
}

/// Shared handle, so a simulation can inspect the store its actors use.
impl<S: Store> FaultyStore<Arc<S>> {
    /// The shared inner store.
    pub fn shared(&self) -> Arc<S> {
        self.inner.clone()
    }
}
