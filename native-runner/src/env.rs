//! [`SystemEnv`]: the host environment of the native server.

use edgeq::engine::{splitmix64, Env, SPLITMIX_STEP};
use edgeq::model::Millis;
use std::cell::Cell;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The real world: the system clock, the OS random source and tokio's timer, and
/// optionally the server's stop signal.
#[derive(Debug, Clone, Default)]
pub struct SystemEnv {
    stop: Option<watch::Receiver<bool>>,
}

impl SystemEnv {
    /// An environment that is [`Env::stopping`] once `stop` holds `true`: long
    /// polls then answer at once, so a server shutting down does not wait out
    /// its clients' polls (up to 20 s) before it exits.
    pub fn stopped_by(stop: watch::Receiver<bool>) -> Self {
        Self { stop: Some(stop) }
    }
}

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

    /// tokio's timer; cut short when the stop signal comes.
    fn sleep(&self, millis: u64) -> impl Future<Output = ()> + Send {
        let stop = self.stop.clone();
        async move {
            let sleep = tokio::time::sleep(Duration::from_millis(millis));
            match stop {
                Some(mut stop) => tokio::select! {
                    () = sleep => {}
                    // A closed channel (Err) never stops the sleep.
                    Ok(_) = stop.wait_for(|stop| *stop) => {}
                },
                None => sleep.await,
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| *stop.borrow())
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
    use std::pin::pin;
    use std::task::{Context, Waker};

    #[test]
    fn clock_and_entropy_look_real() {
        let env = SystemEnv::default();
        // After 2020-01-01 and before 2200.
        assert!(env.now() > 1_577_836_800_000 && env.now() < 7_258_118_400_000);
        assert_ne!(env.random(), env.random());
        assert_ne!(fallback_random(), fallback_random());
    }

    #[tokio::test]
    async fn the_stop_signal_cuts_sleeps_short() {
        let mut cx = Context::from_waker(Waker::noop());
        let (stop, stopped) = watch::channel(false);
        let env = SystemEnv::stopped_by(stopped);
        assert!(!env.stopping());
        assert!(pin!(env.sleep(60_000)).poll(&mut cx).is_pending());
        stop.send(true).unwrap();
        assert!(env.stopping());
        assert!(pin!(env.sleep(60_000)).poll(&mut cx).is_ready());
        // No signal, or one whose sender is gone without a stop: sleeps are whole.
        assert!(pin!(SystemEnv::default().sleep(60_000)).poll(&mut cx).is_pending());
        let (stop, stopped) = watch::channel(false);
        drop(stop);
        let env = SystemEnv::stopped_by(stopped);
        assert!(!env.stopping());
        assert!(pin!(env.sleep(60_000)).poll(&mut cx).is_pending());
    }
}
