//! What one engine remembers about how deep a ring's backlog is.
//!
//! A take reads `head` and `tail` before it moves the head, so that an empty ring
//! does not hand consumers tickets that writers then have to skip. Deep in a
//! backlog that check cannot fail, and it is two of the twelve store calls a pop
//! makes there (two network round trips on Redis). So an engine remembers, per
//! ring, the backlog its last check saw, counts its own takes against it, and
//! while the remembered backlog is over [`DEEP`] and younger than [`MAX_AGE`] it
//! takes tickets without the check.
//!
//! The hint decides nothing. Other consumers (other threads of this engine,
//! other hosts) also drain the ring, so a hint can be wrong; then the ticket is
//! past the tail, and that is a case the protocol already has: the consumer
//! reaches the slot before its writer, the slot is given up and its writer
//! retries on a new ticket (`ring.rs`). The taker then drops the hint, so each
//! engine costs writers at most one retry per hint it believed, and the next
//! take checks again.

use super::keys::RingKeys;
use crate::model::Millis;
use std::sync::{Mutex, MutexGuard};

/// A backlog deeper than this many tickets lets takes skip the emptiness check.
const DEEP: u64 = 1024;
/// How long a remembered backlog is believed.
const MAX_AGE: Millis = 1_000;
/// Rings remembered at once (the oldest entry is replaced).
const RINGS: usize = 8;

#[derive(Debug)]
struct Hint {
    ring: RingKeys,
    /// Tickets between head and tail at `seen`, less the takes counted since.
    backlog: u64,
    seen: Millis,
}

/// Per-engine backlog hints; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Hints {
    /// The entries, and the next one to replace.
    entries: Mutex<(Vec<Hint>, usize)>,
}

impl Hints {
    /// Whether a take on `ring` may skip the emptiness check; if so, counts the
    /// take against the remembered backlog.
    pub fn skip_check(&self, ring: &RingKeys, now: Millis) -> bool {
        let mut guard = self.lock();
        let Some(h) = guard.0.iter_mut().find(|h| h.ring == *ring) else {
            return false;
        };
        if h.backlog <= DEEP || now >= h.seen.saturating_add(MAX_AGE) {
            return false;
        }
        h.backlog -= 1;
        true
    }

    /// Remembers the backlog a check on `ring` just read (or forgets a shallow one).
    pub fn record(&self, ring: &RingKeys, backlog: u64, now: Millis) {
        let mut guard = self.lock();
        let (entries, next) = &mut *guard;
        match entries.iter_mut().position(|h| h.ring == *ring) {
            Some(i) if backlog > DEEP => {
                entries[i].backlog = backlog;
                entries[i].seen = now;
            }
            Some(i) => {
                entries.swap_remove(i);
            }
            None if backlog <= DEEP => {}
            None => {
                let hint = Hint { ring: ring.clone(), backlog, seen: now };
                if entries.len() < RINGS {
                    entries.push(hint);
                } else {
                    entries[*next] = hint;
                    *next = (*next + 1) % RINGS;
                }
            }
        }
    }

    /// Drops what is remembered about `ring` (a take found the hint wrong).
    pub fn forget(&self, ring: &RingKeys) {
        let mut guard = self.lock();
        if let Some(i) = guard.0.iter().position(|h| h.ring == *ring) {
            guard.0.swap_remove(i);
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Vec<Hint>, usize)> {
        // Every critical section leaves the entries whole: a poisoned lock is fine.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::keys::QueueKeys;
    use crate::model::Name;

    fn ring(q: &str) -> RingKeys {
        QueueKeys::new(&Name::new("ns").unwrap(), &Name::new(q).unwrap(), 0).ring(0)
    }

    #[test]
    fn only_a_recent_deep_backlog_skips_the_check_and_takes_count_against_it() {
        let (h, a) = (Hints::default(), ring("a"));
        assert!(!h.skip_check(&a, 0), "nothing known");
        h.record(&a, DEEP, 0);
        assert!(!h.skip_check(&a, 0), "not deep");
        h.record(&a, DEEP + 2, 0);
        assert!(h.skip_check(&a, 10));
        assert!(h.skip_check(&a, 10));
        assert!(!h.skip_check(&a, 10), "two takes brought it down to DEEP");
        h.record(&a, DEEP + 100, 0);
        assert!(!h.skip_check(&a, MAX_AGE), "too old");
        assert!(!h.skip_check(&ring("b"), 0), "another ring");
        h.record(&a, DEEP + 100, 0);
        h.forget(&a);
        assert!(!h.skip_check(&a, 0), "forgotten");
    }

    #[test]
    fn a_shallow_check_forgets_and_the_oldest_ring_makes_room() {
        let h = Hints::default();
        h.record(&ring("a"), DEEP + 10, 0);
        h.record(&ring("a"), 3, 0);
        assert!(!h.skip_check(&ring("a"), 0));
        let names: Vec<String> = (0..=RINGS).map(|i| format!("q{i}")).collect();
        for n in &names {
            h.record(&ring(n), DEEP + 10, 0);
        }
        assert!(!h.skip_check(&ring("q0"), 0), "replaced by the ninth");
        assert!(names[1..].iter().all(|n| h.skip_check(&ring(n), 0)));
    }
}
