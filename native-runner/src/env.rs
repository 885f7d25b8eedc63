//! [`SystemEnv`]: the host environment of the native server.

use edgeq::engine::{splitmix64, Env, SPLITMIX_STEP};
use edgeq::model::Millis;
use std::cell::Cell;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The real world: the system clock, the OS random source and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

impl Env for SystemEnv {
    /// Milliseconds since the Unix epoch by the system clock (0 before 1970).
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
            .unwrap_or(0)
    }

    /// 64 bits from a per-thread splitmix64 stream seeded once from the OS random
    /// source. The engine draws randomness only to spread load (which partition,
    /// when to scan), never for secrets, so one system call per thread is enough
    /// (one per request showed in profiles). Should the OS refuse, the seed comes
    /// from std's randomly keyed SipHash over a counter and the time.
    fn random(&self) -> u64 {
        thread_local! {
            static STATE: Cell<u64> = Cell::new(getrandom::u64().unwrap_or_else(|_| fallback_random()));
        }
        STATE.with(|state| {
            let x = state.get();
            state.set(x.wrapping_add(SPLITMIX_STEP));
            splitmix64(x)
        })
    }

    fn sleep(&self, millis: u64) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(Duration::from_millis(millis))
    }
}

fn fallback_random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_entropy_look_real() {
        let env = SystemEnv;
        // After 2020-01-01 and before 2200.
        assert!(env.now() > 1_577_836_800_000 && env.now() < 7_258_118_400_000);
        assert_ne!(env.random(), env.random());
        assert_ne!(fallback_random(), fallback_random());
    }
}
