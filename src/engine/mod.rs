//! The queue engine: every rule of edgeq, over a [`Store`] and an [`Env`].
//!
//! The engine does no I/O of its own: it never opens a socket or file, never
//! reads a clock and draws no entropy except through [`Env`]. One request is one
//! engine call is one sequence of [`Store`] calls; hosts (the native server, the
//! Spin component, the simulation) only convert. Calls that mutate: everything
//! but `get_queue`, `list_queues`, `browse`, `get_message`, `get_exchange` and
//! `reclaim_backlog`. `now` comes from `Env::now` once per operation; hosts may
//! disagree by a small skew (well under the three-second margin between
//! `WRITER_DEADLINE`, 2 s, and `GRACE`, 5 s) and a repeated or early `now` is
//! harmless: every timeout is checked lazily against it.
//!
//! # Why the protocol looks like this
//!
//! Any number of hosts run this code against one store at once, and any host may
//! die between any two store calls. The store gives single-key reads and writes
//! and one atomic operation, `increment` (the only one that is atomic on every
//! Spin backend). So every decision that must have exactly one winner is a single
//! `increment`, or a write-then-read handshake whose outcome the writes record.
//! Increments commute, so a counter's value never tells a third party *who came
//! first*: whoever acts on a decision it did not make reads the decider's record.
//!
//! # Keys (see `keys.rs`)
//!
//! - `{ns}/{q}`: queue metadata (config, list index, tombstone); `{ns}/{q}//inc`:
//!   the incarnation counter, moved only by purge and delete; `{ns}/{q}//new/{inc}`:
//!   decides exclusive creation (`create_queue`). `{ns}//list`,
//!   `{ns}//list/{n}`: the creation-ordered queue list.
//! - `{ns}/{q}/{inc}/n|f|x|y`: counts (messages × 2^40 + bytes in one counter, in
//!   flight, dead-lettered, delayed — sent with a delay and not delivered yet);
//!   `…/i/{key}` and `…/I/{key}`: idempotency decision counter and outcome;
//!   `…/il/{b}` and `…/il/{b}/{n}`: the log of keys recorded in time bucket `b`,
//!   and `…/ilc`, how far cleaning it got (both `idem.rs`).
//! - `{ns}//gy`, `{ns}//gy/{n}` and `{ns}//gyc`: the namespace's graveyard,
//!   incarnations that purge and delete ended, whose keys are being deleted
//!   (`reclaim.rs`).
//! - per partition `p` (a FIFO ticket ring) `…/{p}/t` tail and `…/{p}/h` head
//!   counters, `…/{p}/lo` low-water mark, `…/{p}/sc` scan cursor, `…/{p}/fe`
//!   commit counters to delete once their writers cannot come (`fences.rs`).
//! - per slot `i` of partition `p`: `…/{p}/{i}/m` record (a body over 64 KiB
//!   goes in 1 MiB chunks `…/{p}/{i}/b{j}`), `…/s` commit counter, `…/c` claim
//!   counter and `…/r{k}` claim records, `…/d` deliveries counter, `…/z` state
//!   hint (written by the slot's deciders, claimants and finishers, never by a
//!   scan that only stamps it), `…/u` when the slot was first seen undecided with
//!   no live claim 0
//!   (a separate key, so a stamp written late never overwrites a decision: a
//!   finished slot stamped over would hold the low-water mark back for `GRACE`).
//!
//! - `{ns}//x/{x}`, `{ns}//x/{x}//inc` and `{ns}//x/{x}/{inc}/n|b/{n}`: an
//!   exchange's metadata, incarnation and binding log (protocol in `exchange.rs`).
//!
//! # Send (`ring.rs`, `send.rs`)
//!
//! Reserve room: one `increment(held, 2^40 + size)` counts the message and its
//! bytes; over a limit, give it back and refuse. Then push: `i = increment(tail, 1)`
//! hands the writer slot `i` alone; it writes its chunks and `m`, then
//! `r = increment(s, 1)`. `r == 1`: nobody reached the slot before the commit;
//! the message is committed and the send answers 2xx. Otherwise a consumer gave
//! the slot up first (it added 2, and decided the slot dead): the writer deletes
//! what it wrote and the commit counter with it (so third parties never read the
//! slot as committed, and the counter, which had to outlive the dead slot until
//! its writer came, goes) and pushes again on a new ticket — but only while it
//! is still within `WRITER_DEADLINE` of its old ticket, because until it deleted
//! the counter a third party could read `3` as "committed, then taken"
//! (increments commute); scans therefore never deliver such a slot before
//! `GRACE` after its ticket time (kept in the record), by which time a live
//! writer either deleted it or gave up without retrying. A writer past
//! `WRITER_DEADLINE` before committing gives the slot up without ever committing
//! (it adds `2^32`), so it never commits into a slot consumers stopped waiting
//! for, and pushes again on a new ticket (8 tickets in all, then the send fails
//! with `Contention`). A writer whose store call fails between its ticket and its commit gives
//! the slot up the same way, as far as the store lets it; when the commit
//! increment itself failed, it reads the counter back first: its own bit alone
//! means the commit landed and the send succeeded, no bit means it did not,
//! and its bit beside a consumer's fence leaves the error standing (who came
//! first cannot be told). Giving up deletes what the writer wrote, and the
//! commit counter too when a consumer's fence was there first (both sides have
//! come); otherwise the consumer who comes later finds `2^32` in it and deletes
//! it. A writer that dies before its increment never answered 2xx: nothing
//! acknowledged is lost.
//!
//! # First delivery (`ring.rs` `take`)
//!
//! Read `head` and `tail` (`increment(_, 0)`): `head >= tail` is empty, and the
//! head does not move. (An engine that recently read a deep backlog on the ring
//! skips this check: `hint.rs`.) Near the tail, peek at the next slot's commit
//! counter. Still 0: read `head` again, and start over if it moved (another
//! consumer took the slot); otherwise its writer is at work, so report empty
//! instead of making it retry — unless the slot was first seen undecided more
//! than `GRACE` ago (stamped in `u`). A stamp written on first sight is followed
//! by one more read of `head`: if it moved, another consumer took the slot
//! meanwhile and may have finished and swept it before the stamp landed, so the
//! stamp is deleted again. (Deep in a backlog the peek is skipped: the peek only
//! spares writers a retry, it decides nothing.) Then
//! `i = increment(head, 1)` gives this consumer slot `i` alone and
//! `increment(s, 2)` decides it against the writer: 3 means the writer committed
//! first; 2 means the consumer came first and the slot is given up (marked
//! dead, its counter kept for the writer and, once the writer holds its ticket,
//! listed for deletion when it can no longer come: `fences.rs`); with `2^32` in
//! it the writer had given up already, and the slot is finished with its counter.
//! Tickets past the tail only cost their writer a retry. A take burns at most 8
//! given-up tickets before it reports empty.
//!
//! # Claims (`claim.rs`): who delivers, defers or finishes a message
//!
//! A consumer that holds a committed slot does not deliver it yet: it claims it.
//! `k = increment(c, 1)`, `set(r{k}, intent)`, then read every other claim
//! record. (The consumer that took the slot from the head skips the number:
//! claim 0, `r0`, is reserved for it, and every other claimant reads `r0` as
//! the oldest claim.) An older intent that is live and unexpired, or any newer
//! live intent, makes it back off (rewriting `r{k}` as `Abandoned`). Two
//! claimants each write before they read, so whichever reads last sees the
//! other: at most one wins, however they interleave and whoever dies. Both may
//! back off; the message then waits for the next claimant (a scan looks again
//! 1 s later when the blocker was a newer claim, which may have backed off too;
//! or, after a crash, once the dead claimant's intent expires) — delayed, never
//! lost, never delivered twice while a lease holds.
//! Intents are `Live { until, lease }`: a receive lease, a pop or ack in progress
//! (a short hold), or a deferral for a delay or nack. The winner reads the message
//! only after winning: a claim taken after the slot was finished wins against
//! nobody and finds no record, so nothing is delivered. Ack, nack and extend
//! rewrite the receipt's own claim `r{k}` and check only newer claims. While the
//! lease still holds, newer delivery claims do not count: each wrote its intent
//! before reading `r{k}`, found it live (the lease or the rewrite) and backs off,
//! so an ack that races a consumer trying its luck on the slot succeeds (the
//! simulation checks that no ack inside its lease is refused). Only a newer
//! delete-by-id override blocks it. Once the lease has ended, any newer live
//! claim may have won: the receipt is stale (409) and the old record is put back
//! (not abandoned, so that a claimant it conflicted with keeps seeing it).
//! Acking a message that is gone succeeds, even when the ack lost to a newer
//! claim; only an ack that finishes the message counts it out of flight (one
//! gone was counted out by whoever finished it). Delete by id takes a new claim,
//! `Override { until }`, that ignores older leases and counts the lease it ends
//! out of flight.
//!
//! # Pop, receive, redelivery (`deliver.rs`; the scan behind the head: `scan.rs`)
//!
//! Pop and receive take fresh slots from the head, up to their count or until
//! the bodies taken reach `MAX_ANSWER_BYTES` (8 MiB: a trap building a larger
//! answer would lose what a pop had finished). One call in eight first scans
//! one batch (32 slots) behind the head, in each partition it visits, so that
//! redeliveries are not starved; any other call scans a partition once its head
//! is dry. A scan starts at the low-water mark or, every other turn, at a
//! rotating cursor, and reads the `z` hints with one `get_many`: leases and
//! deferrals whose time has come are due at once; for slots with no state yet it
//! reads claim 0, the `u` stamp and the mark in one more `get_many` (a slot below
//! the mark was swept meanwhile and is left alone): a live claim 0 means the slot's taker is at work on it (nothing is
//! written); one that ended means the taker died or stalled past its lease or
//! hold, and the slot is due like any ended lease (claim 0 is only written after
//! the taker's own `increment(s, 2)` found the writer's commit); one abandoned
//! means the taker lost to a newer claim whose claimant has not written the
//! slot's state, and perhaps never will: due too, since a claim backs off from
//! that one while it is live. (Stamping such a slot instead had every scan
//! take its stamp back at once, claim 0 being there, and left the message
//! undelivered for good: one seed in a million of the simulation.) A slot without
//! claim 0 is stamped when first seen so, then claim 0 and the mark are read once
//! more: most such slots are the newest, their takers between ticket and claim,
//! and one may finish (and sweep) its slot before the stamp lands; the stamp of a
//! slot claimed or swept since is deleted again, or it would outlive the slot.
//! Once no consumer decided a stamped slot within
//! `GRACE` (a consumer died between its ticket and its claim; at the mark with a
//! batch taken since, at once: see the known limits) the scan stands in for it:
//! it reads the commit counter and, still 0, adds 2 as a taker would (deciding
//! the slot dead); a committed slot it claims with a numbered claim and delivers
//! only `GRACE` after its ticket.
//! Each won slot: expired by TTL → finish; not visible yet → turn the claim into a
//! deferral until `visible_at`; else deliver (receive: a lease until now plus the
//! visibility timeout; pop: a short hold, then finish at once). A delivery is
//! counted (`increment(d, 1)`; a pop from the head needs no count: nothing was
//! delivered before, and the message is gone after). Past `max_receives` a
//! receive copies the message to the dead-letter queue first and finishes it
//! second (a crash between leaves two copies, never none); a pop takes the
//! message whatever its count, since no later delivery is left to limit. A call that stalled past a lease or hold it won drops that message
//! rather than hand it out (someone else may hold it by then). Pop is
//! at-most-once only in its last step: a host that dies after claiming but before
//! finishing leaves the message to be delivered again after the hold.
//!
//! Finishing deletes `m` (and chunks) and gives the count back; at the low-water
//! mark it deletes the slot's bookkeeping in the same call (with the stamp of the
//! slot just below the mark, should a late one have landed: see the known limits)
//! and moves the mark, elsewhere it marks `z` done for a later scan to sweep. A
//! sweep likewise deletes a run's keys before it moves the mark past the run
//! (then deletes the run's stamps once more: a scan may have stamped the run in
//! between), so a host dying between the two leaves the run to the scans rather
//! than its keys below the mark. A scan at the mark that
//! finds its whole batch finished sweeps up to 7 more batches, so a mark that was
//! held back catches up with the head. A long-lived deferral at
//! the mark keeps the mark there, so scans visit the slots behind it in rotation:
//! their cost per call is bounded (one batch), not their latency.
//!
//! # Protocol version
//!
//! A queue's metadata records the protocol its messages are kept with
//! (`PROTOCOL` in `queues.rs`; metadata without it was written by protocol 1). A
//! host refuses every operation on a queue of another protocol
//! (`ProtocolMismatch`, 503) and writes nothing to it, so hosts of two edgeq
//! versions can share a store during a rolling upgrade without misreading each
//! other's keys. A change to the keys or steps above that hosts of the old
//! version would misread raises `PROTOCOL`; one they read correctly does not (a
//! writer deleting a given-up slot's commit counter rather than marking it is
//! read by older hosts as the counter of a slot nobody reached, which they
//! decide dead, as they should).
//!
//! # Costs
//!
//! Send: 6 store calls plus one per 1 MiB chunk; with an idempotency key, 5
//! more, and a cleaning step of about 6 one keyed send in eight (`idem.rs`).
//! One that finds the queue full peeks at the heads of up to 4 partitions (2
//! calls each) and drops what expired there (about a pop's cost each, 8 per
//! partition at most: `reap_expired`) before it is refused or goes on.
//! Pop of one message: 12, independent of depth and of the number in flight (13
//! within 64 slots of the tail, where the take peeks at the writer's commit; 10
//! deep in a backlog, where it skips the emptiness check on an engine's hint:
//! `hint.rs`); a scan adds 2 to 4 one call in eight (per partition visited), 4
//! more when it sweeps a run at the mark, and 5 per further batch it sweeps; an
//! empty queue answers after 6. One consume call in 32 also takes a step of
//! reclaiming purged and deleted incarnations (2 calls when there is nothing to
//! reclaim). Purge and delete: a few calls, then up to 8 such steps (`reclaim.rs`), each a few calls and one `delete_many` of
//! up to 128 slots' keys.
//!
//! # Known limits (next steps)
//!
//! Counts (`in_flight` especially) drift if a host dies between a decision and its
//! count update (so the limits they enforce drift too; `delete_queue` with
//! `if_empty` reads the rings when the count says messages remain). A consumer that dies holding a lease-in-progress intent delays
//! that message by the intent's length. Counters of finished slots can be
//! re-created (as zeros), and their `u` stamps rewritten, by a very late reader.
//! A consumer finishing the slot at the mark deletes its keys *before* moving the
//! mark (so a host dying in between leaves the slot to a scan, not its keys below
//! the mark), and a scan that reads the slot and re-reads claim 0 and the mark
//! inside that one-call window sees an undecided slot at the mark and stamps it
//! (traced with Redis `MONITOR`). The next consumer or sweep to delete keys at the
//! mark deletes that stamp too (`late_stamp` in `slot.rs`); a stamp landing after
//! that is left (none after three 20,000-message pop stress runs on Redis with
//! eight consumers, `LEFTOVERS=1` in `benches/stress.sh`; 2 to 5 before).
//! The idempotency records' own limits are in `idem.rs`, those of reclaiming
//! purged and deleted incarnations in `reclaim.rs`.
//!
//! A taker (or scan) whose `increment(s, HOLDER)` reaches a slot that was swept
//! meanwhile re-creates its commit counter; finding the slot below the mark, it
//! deletes the counter again (`dead` in `ring.rs`: a missing counter means the
//! writer has come and gone). But the low-water mark is written with `set`, so
//! two sweeps that read it one after the other can write it back onto slots
//! already swept. Such a slot looks undecided and is not below the mark; at the
//! mark with a batch taken since, a scan decides it at once (`resolve`: dead,
//! swept, the mark moves on). The decision re-creates its commit counter, and no
//! writer comes to delete it: the fence list (`fences.rs`) deletes it `GRACE`
//! later, as it does the fences of writers that died between their ticket and
//! their commit (a list entry two deciders write at once can still be lost:
//! `SIM_LEFTOVERS=1` in the simulation counts the keys left). (Waiting
//! `GRACE` for it held the mark, and every sweep behind it, for five seconds:
//! 16,000 finished slots were left unswept at the end of a 20,000-message pop
//! stress on Redis with eight consumers.)

mod browse;
mod claim;
mod deliver;
mod error;
mod exchange;
mod fences;
mod hint;
mod idem;
mod keys;
mod manual;
mod queues;
mod reclaim;
mod ring;
mod scan;
mod send;
mod slot;
mod types;

pub use browse::MAX_BROWSE;
pub use deliver::MAX_TAKE;
pub use error::{Error, Result};
pub use exchange::{
    Binding, ExchangeInfo, ExchangeKind, Routed, MAX_BINDING_CHANGES, MAX_ROUTING_KEY,
};
pub(crate) use idem::check_idempotency_key;
pub use idem::{IDEM_WINDOW, MAX_IDEMPOTENCY_KEY};
pub use manual::{splitmix64, ManualEnv, SPLITMIX_STEP};
pub(crate) use send::check_content_type;
pub use send::MAX_CONTENT_TYPE;
pub use types::*;

use crate::model::Millis;
use crate::store::Store;
use std::future::Future;

/// What the host lends the engine: wall-clock time, randomness and sleeping.
///
/// `now` may differ between hosts by a small skew and may repeat; it must not run
/// backwards by more than that skew.
pub trait Env: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
    /// A random 64-bit number.
    fn random(&self) -> u64;
    /// Waits `millis` (used only by long polling). A host that is stopping may
    /// end the wait early.
    fn sleep(&self, millis: u64) -> impl Future<Output = ()> + Send;
    /// Whether the host is shutting down: a long poll then answers with what it
    /// has instead of waiting on (as SQS answers an empty receive), so a server
    /// stops at once rather than after its longest poll. Never, by default.
    fn stopping(&self) -> bool {
        false
    }
}

/// The queue engine over store `S` and host environment `E`.
pub struct Engine<S, E> {
    store: S,
    env: E,
    hints: hint::Hints,
}

impl<S: Store, E: Env> Engine<S, E> {
    /// An engine over `store` with `env`.
    pub fn new(store: S, env: E) -> Self {
        Self { store, env, hints: hint::Hints::default() }
    }

    /// The store this engine runs on.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The host environment.
    pub fn env(&self) -> &E {
        &self.env
    }
}

#[cfg(test)]
mod tests;
