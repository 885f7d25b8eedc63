//! Claims: who may deliver, defer or finish a committed message.
//!
//! Every claimant takes a claim number `k` from the slot's claim counter, writes
//! its intent under `r{k}`, and only then reads every other claim record. Two
//! claimants A and B each write before they read, so at least one of them sees the
//! other's record (whichever read comes last) and backs off: at most one wins,
//! whatever the interleaving and whoever crashes. Both may back off; the message
//! then stays visible to the next claimant (or, if a claimant died holding a live
//! intent, once that intent expires). No timeout decides a winner, so a slow
//! claimant can never make two deliveries.
//!
//! The consumer that took the slot from the head (its `increment(s, 2)` made
//! the commit counter 3, which happens once per slot) needs no number: claim 0
//! is reserved for it. It writes `r0` and reads the counter: two calls where a
//! numbered claim takes four (no number to draw, and no records to read while
//! nobody else claimed; a pop's most frequent path), and every numbered
//! claimant reads `r0` with the others, as the oldest claim. The handshake is the same:
//! whoever reads last sees the other's record.

use super::slot::{decode, encode, Claim, Slot};
use super::{Engine, Env, Result};
use crate::model::Millis;
use crate::store::Store;

/// Claim records one check reads at most; a slot with more claims than this is
/// treated as busy (it would take more than a thousand racing claimants).
const MAX_CLAIMS: u64 = 1000;

/// How soon a claimant that backed off because of a newer claim looks again.
const CONTENDED_RETRY: Millis = 1_000;

/// How a claim's check treats the other claims on its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A new claim: an older live, unexpired intent blocks it, and so does any
    /// newer live one. Claims up to `settled` are known to predate the race.
    New { settled: u64 },
    /// Rewriting one's own claim after it ended (ack, nack or extend of an
    /// expired lease), or overriding leases (delete by id): older claims do not
    /// matter, newer live ones do (they may have won).
    Own,
    /// Rewriting one's own claim while it still holds: older claims do not
    /// matter, and neither do newer delivery claims — each wrote its intent
    /// before reading ours, read ours live, and backs off. Only a newer override
    /// (delete by id) blocks.
    Holder,
}

/// The outcome of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// The claimant alone holds the slot with claim `k`; `claims` records exist;
    /// `ended_lease` says the newest older claim not abandoned was a receive
    /// lease, which the winner replaces: ended, for a new claim (a live one
    /// would have blocked it); ended or not, for an override (delete by id).
    Won { k: u64, claims: u64, ended_lease: bool },
    /// Someone else holds or wants the slot, until about `until`.
    Busy { until: Millis },
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Takes a new claim on `slot` with `intent`. Claims up to `settled` were
    /// there when the slot's state was last written (0 if unknown): one of them
    /// still live holds the slot for real, since a claimant that lost rewrites
    /// its record at once; a newer one may be racing us and back off too.
    pub(crate) async fn claim(
        &self,
        slot: &Slot,
        intent: Claim,
        settled: u64,
        now: Millis,
    ) -> Result<Claimed> {
        let k = self.store.increment(&slot.keys.claims(), 1).await? as u64;
        self.store.set(&slot.keys.claim(k), &encode(&intent)).await?;
        self.check(slot, k, now, Mode::New { settled }, Claim::Abandoned).await
    }

    /// Takes claim 0 on a slot this consumer took from the head (see the module
    /// docs): no number to draw, the same check.
    pub(crate) async fn claim_first(
        &self,
        slot: &Slot,
        intent: Claim,
        now: Millis,
    ) -> Result<Claimed> {
        self.store.set(&slot.keys.claim(0), &encode(&intent)).await?;
        self.check(slot, 0, now, Mode::New { settled: 0 }, Claim::Abandoned).await
    }

    /// Rewrites claim `k` (which held `before`) with `intent`, then checks it. If
    /// `before` still held once the rewrite landed, no newer delivery claim can
    /// have won (see [`Mode::Holder`]): an ack racing a consumer that is just
    /// trying its luck on the slot must not fail. On losing, `before` is put
    /// back, not `Abandoned`: a lease whose ack or extend lost to a newer
    /// claimant still holds, and that claimant must keep seeing it.
    pub(crate) async fn reclaim(
        &self,
        slot: &Slot,
        k: u64,
        before: Claim,
        intent: Claim,
        now: Millis,
    ) -> Result<Claimed> {
        self.store.set(&slot.keys.claim(k), &encode(&intent)).await?;
        let mode = match before.until() {
            Some(until) if until > self.env.now() => Mode::Holder,
            _ => Mode::Own,
        };
        self.check(slot, k, now, mode, before).await
    }

    /// The current record of claim `k`.
    pub(crate) async fn claim_record(&self, slot: &Slot, k: u64) -> Result<Option<Claim>> {
        let key = slot.keys.claim(k);
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(v) => decode(&key, &v).map(Some),
        }
    }

    async fn check(
        &self,
        slot: &Slot,
        k: u64,
        now: Millis,
        mode: Mode,
        on_loss: Claim,
    ) -> Result<Claimed> {
        let claims = self.store.increment(&slot.keys.claims(), 0).await?.max(0) as u64;
        let outcome = if claims > MAX_CLAIMS {
            Claimed::Busy { until: now }
        } else {
            let others: Vec<u64> = (0..=claims).filter(|&j| j != k).collect();
            let keys: Vec<String> = others.iter().map(|&j| slot.keys.claim(j)).collect();
            let records = match keys.is_empty() {
                true => Vec::new(),
                false => self.store.get_many(&keys).await?,
            };
            let mut outcome = Claimed::Won { k, claims, ended_lease: false };
            let mut newest_older = None;
            for (j, raw) in others.into_iter().zip(records) {
                let Some(raw) = raw else { continue };
                let older = j < k;
                let record = decode::<Claim>(&slot.keys.claim(j), &raw)?;
                let Some(until) = record.until() else { continue };
                if older && newest_older.is_none_or(|n| j > n) {
                    newest_older = Some(j);
                    if let Claimed::Won { ended_lease, .. } = &mut outcome {
                        *ended_lease = matches!(record, Claim::Live { lease: true, .. });
                    }
                }
                match mode {
                    Mode::Own | Mode::Holder if older => continue,
                    Mode::Holder if !matches!(record, Claim::Override { .. }) => continue,
                    _ => {}
                }
                if !(older && until <= now) {
                    // Two claimants that see each other both back off. One that
                    // may be racing us therefore does not hold the slot for
                    // sure: look again soon, not at the end of its intent (a
                    // winner rewrites the slot's state with its own lease
                    // anyway). Only a settled older claim surely holds it; claim 0
                    // counts as settled (its taker raced nobody unless it stalled
                    // past GRACE between taking the slot and claiming it).
                    let settled = match mode {
                        Mode::New { settled } => older && j <= settled,
                        Mode::Own | Mode::Holder => older,
                    };
                    let until = match settled {
                        true => until,
                        false => until.min(now + CONTENDED_RETRY),
                    }
                    .max(now);
                    outcome = match outcome {
                        Claimed::Busy { until: u } => Claimed::Busy { until: u.max(until) },
                        Claimed::Won { .. } => Claimed::Busy { until },
                    };
                }
            }
            outcome
        };
        if !matches!(outcome, Claimed::Won { .. }) {
            self.store.set(&slot.keys.claim(k), &encode(&on_loss)).await?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::keys::QueueKeys;
    use crate::engine::ManualEnv;
    use crate::model::Name;
    use crate::store::MemoryStore;
    use futures::executor::block_on;

    const T0: Millis = 1_800_000_000_000;

    #[test]
    fn a_claim_that_may_be_racing_makes_others_look_again_soon() {
        let e = super::super::Engine::new(MemoryStore::new(), ManualEnv::new(T0, 1));
        let name = |s| Name::new(s).unwrap();
        let slot = Slot::new(&QueueKeys::new(&name("ns"), &name("q"), 0).ring(0), 1);
        let hold = Claim::Live { until: T0 + 30_000, lease: false };
        // Claim 1 took its number and wrote its intent, and has not checked yet:
        // it may still back off.
        block_on(e.store.increment(&slot.keys.claims(), 1)).unwrap();
        block_on(e.store.set(&slot.keys.claim(1), &encode(&hold))).unwrap();
        let racing = block_on(e.claim(&slot, hold, 0, T0)).unwrap();
        assert_eq!(racing, Claimed::Busy { until: T0 + CONTENDED_RETRY });
        // Once the slot's state counted claim 1, it holds the slot until its end.
        let settled = block_on(e.claim(&slot, hold, 1, T0)).unwrap();
        assert_eq!(settled, Claimed::Busy { until: T0 + 30_000 });
    }
}
