//! A host environment whose clock only moves when told to: for tests, the
//! simulation and any host that wants deterministic runs.

use super::Env;
use crate::model::Millis;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The increment of a splitmix64 stream: its state goes up by this per draw.
pub const SPLITMIX_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 output for the draw after `state` (a fixed, seedable stream of
/// well-mixed numbers; not for secrets).
pub fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(SPLITMIX_STEP);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A shared virtual clock, seeded random stream and stop flag. Clones share them.
#[derive(Debug, Clone)]
pub struct ManualEnv {
    now: Arc<AtomicU64>,
    rng: Arc<AtomicU64>,
    stopping: Arc<AtomicBool>,
}

impl ManualEnv {
    /// A clock at `now` with random stream `seed`.
    pub fn new(now: Millis, seed: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(now)),
            rng: Arc::new(AtomicU64::new(seed | 1)),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on the host is shutting down ([`Env::stopping`]).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&self, millis: Millis) {
        self.now.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Env for ManualEnv {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn random(&self) -> u64 {
        splitmix64(self.rng.fetch_add(SPLITMIX_STEP, Ordering::SeqCst))
    }

    /// Virtual sleep: moves the clock instead of waiting.
    fn sleep(&self, millis: u64) -> impl std::future::Future<Output = ()> + Send {
        self.advance(millis);
        std::future::ready(())
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}
