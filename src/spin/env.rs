//! The engine's [`Env`] over `wasi:clocks` and `wasi:random`.

use crate::engine::Env;
use crate::model::Millis;
use spin_sdk::wit::wasi::clocks0_2_0::{monotonic_clock, wall_clock};
use spin_sdk::wit::wasi::random0_2_0::random;

/// Time, randomness and sleep for the engine inside a component instance.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpinEnv;

impl Env for SpinEnv {
    fn now(&self) -> Millis {
        let now = wall_clock::now();
        now.seconds.saturating_mul(1000).saturating_add(u64::from(now.nanoseconds / 1_000_000))
    }

    fn random(&self) -> u64 {
        random::get_random_u64()
    }

    /// Blocks the instance on a monotonic-clock pollable. Each request has its own
    /// single-threaded instance, so blocking it holds up nothing else.
    async fn sleep(&self, millis: u64) {
        if millis > 0 {
            monotonic_clock::subscribe_duration(millis.saturating_mul(1_000_000)).block();
        }
    }
}
