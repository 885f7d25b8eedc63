//! Idempotency keys: one first sender per key, and the records forgotten after
//! the window.
//!
//! # Deciding the first sender
//!
//! `increment(…/i/{key}, 1) == 1` elects the first sender, which records
//! `Pending` in `…/I/{key}` and, once its message is in, `Sent(id)`. A repeat
//! returns the recorded id, or `IdempotencyInProgress` while the first sender
//! works. If the first sender died before recording an outcome, a repeat takes
//! over after `IDEM_TAKEOVER`: among concurrent repeats, the one whose increment
//! returns exactly the value it observed plus one wins. A first sender whose
//! message was refused with nothing stored (a full queue) records `Pending`
//! dated `IDEM_TAKEOVER` back, so the next repeat takes over at once.
//!
//! # Forgetting after the window
//!
//! A key's records are kept at least [`IDEM_WINDOW`] (SQS's deduplication
//! interval) and then deleted, so a queue whose every message carries a fresh
//! key does not keep two keys per message forever; a repeat after that is a new
//! message. The store cannot list keys, so every sender that records a key also
//! logs it, in the bucket of its clock: `b = now / IDEM_WINDOW`,
//! `n = increment(…/il/{b}, 1)`, `set(…/il/{b}/{n}, key)`, before it writes
//! `…/I/{key}`. A bucket is *closed* two windows after it began: by then every
//! writer of its entries is done or dead (a sender takes well under a second
//! from its ticket to its entry), so an entry still missing there will never
//! come, and the records its entries name are all at least one window old.
//!
//! Cleaning walks the closed buckets in order from `…/ilc` (`b,n`: the next
//! entry to look at), one batch of [`CLEAN_BATCH`] entries per step: it reads
//! the entries and the records they name, deletes the entries, and deletes a
//! key's two records only when the recorded outcome (`Pending` since, or the
//! message id of `Sent`) dates from the bucket or shortly after
//! ([`IDEM_WINDOW`] / 2): a record written since by a new first sender (the old
//! one deleted by a racing cleaner) is newer than that and stays. A key whose
//! outcome record is missing keeps its decision counter (its first sender may
//! be between its increment and its record; if it died there, that counter is
//! left). Steps run in the sender that logs entry 1 of a bucket, or any
//! [`CLEAN_EVERY`]th one, so cleaning keeps pace with logging, and never fail
//! the send. Two cleaners may do the same step: deletes repeat harmlessly, and
//! `…/ilc` (a plain value) may move back, which only repeats reads.
//!
//! Known limits: the first step starts [`FIRST_LOOKBACK`] windows back, so the
//! entries of a first sender that died before its step are left if no other
//! sender took a step within that time; a bucket's counter is deleted once the
//! bucket is cleaned, so an entry logged into it later still (a sender stalled
//! for a window) is never cleaned; a queue that logs keys more rarely than once
//! every [`EMPTY_BUCKETS`] windows falls behind, and the cursor then jumps to
//! [`MAX_LAG`] windows back, leaving older entries; records of keys sent before
//! this log existed are not in it.

use super::keys::QueueKeys;
use super::slot::{decode, encode, numbers, Compact};
use super::{Engine, Env, Error, Result};
use crate::model::{MessageId, Millis};
use crate::store::Store;

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 64;
/// How long a key's records are kept at least (at most about twice as long
/// while cleaning keeps pace).
pub const IDEM_WINDOW: Millis = 5 * 60_000;
/// After this long, a first sender that recorded no outcome is presumed dead and
/// a repeat may take its place (far beyond any live writer's deadline).
const IDEM_TAKEOVER: Millis = 30_000;
/// Log entries one cleaning step reads.
const CLEAN_BATCH: u64 = 16;
/// Log entries one step reads in a dead incarnation (`reclaim.rs`).
const DEAD_BATCH: u64 = 128;
/// A sender whose log entry number is a multiple of this cleans one step.
const CLEAN_EVERY: u64 = 8;
/// Empty buckets one cleaning step walks past.
const EMPTY_BUCKETS: usize = 32;
/// How many windows before its own a first cleaning step starts.
const FIRST_LOOKBACK: u64 = 4;
/// How many windows the cleaning cursor may fall behind before it jumps.
const MAX_LAG: u64 = 288;

/// What an idempotency key's first sender recorded (`P{millis}` or `M{id}`).
#[derive(Debug)]
enum IdemState {
    /// Sending since then.
    Pending(Millis),
    /// Sent as this message.
    Sent(MessageId),
}

impl IdemState {
    /// When the record was made: its clock or its message's enqueue time.
    fn since(&self) -> Millis {
        match self {
            IdemState::Pending(at) => *at,
            IdemState::Sent(id) => id.millis(),
        }
    }
}

impl Compact for IdemState {
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = match self {
            IdemState::Pending(at) => write!(out, "P{at}"),
            IdemState::Sent(id) => write!(out, "M{id}"),
        };
    }
    fn read(s: &str) -> Option<Self> {
        let (tag, rest) = s.split_at_checked(1)?;
        match tag {
            "P" => rest.parse().ok().map(IdemState::Pending),
            "M" => rest.parse().ok().map(IdemState::Sent),
            _ => None,
        }
    }
}

/// Where cleaning goes on: entry `n` of bucket `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub b: u64,
    pub n: u64,
}

impl Compact for Cursor {
    fn write(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(out, "{},{}", self.b, self.n);
    }
    fn read(s: &str) -> Option<Self> {
        let [b, n] = numbers::<2>(s)?;
        Some(Cursor { b, n })
    }
}

/// Which records a walk of the log deletes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Forget {
    /// A live queue's cleaning: those the entries' buckets account for; a
    /// record written since by a new first sender stays (module docs).
    Expired,
    /// A dead incarnation's (`reclaim.rs`): every one.
    All,
}

/// What [`Engine::idem_begin`] decided.
pub(crate) enum Idem {
    /// This caller sends; `clean`: it should also take a cleaning step.
    Owner { clean: bool },
    /// Already sent as this id.
    Duplicate(MessageId),
}

/// The log bucket of `now`.
pub(crate) fn bucket(now: Millis) -> u64 {
    now / IDEM_WINDOW
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Decides whether this caller is the first sender of `key` (module docs).
    pub(crate) async fn idem_begin(&self, qk: &QueueKeys, key: &str, now: Millis) -> Result<Idem> {
        let decision = qk.idem_decision(key);
        let seen = self.store.increment(&decision, 1).await?;
        if seen == 1 {
            let clean = self.idem_pending(qk, key, now).await?;
            return Ok(Idem::Owner { clean });
        }
        let value = qk.idem_value(key);
        let state = match self.store.get(&value).await? {
            Some(v) => decode::<IdemState>(&value, &v)?,
            None => {
                // The first sender died before recording anything: start its
                // clock (and log the key, which it may not have done either).
                self.idem_pending(qk, key, now).await?;
                return Err(Error::IdempotencyInProgress(key.to_owned()));
            }
        };
        match state {
            IdemState::Sent(id) => Ok(Idem::Duplicate(id)),
            IdemState::Pending(at) if now < at.saturating_add(IDEM_TAKEOVER) => {
                Err(Error::IdempotencyInProgress(key.to_owned()))
            }
            IdemState::Pending(_) => {
                if self.store.increment(&decision, 1).await? != seen + 1 {
                    return Err(Error::IdempotencyInProgress(key.to_owned()));
                }
                let clean = self.idem_pending(qk, key, now).await?;
                Ok(Idem::Owner { clean })
            }
        }
    }

    /// Records that the first sender of `key` sent it as `id`, then takes a
    /// cleaning step if `clean`.
    pub(crate) async fn idem_sent(
        &self,
        qk: &QueueKeys,
        key: &str,
        id: MessageId,
        clean: bool,
        now: Millis,
    ) -> Result<()> {
        self.store.set(&qk.idem_value(key), &encode(&IdemState::Sent(id))).await?;
        if clean {
            // The message is sent and its outcome recorded: a failed step is
            // taken again by a later sender, and must not fail this send.
            let _ = self.idem_clean(qk, now).await;
        }
        Ok(())
    }

    /// Gives `key` up after its first sender's message was refused with nothing
    /// stored (a full queue): its outcome becomes a `Pending` old enough for the
    /// next repeat to take over at once, which hosts of every version read the
    /// same way. If this write fails, a repeat takes over after `IDEM_TAKEOVER`.
    pub(crate) async fn idem_refused(&self, qk: &QueueKeys, key: &str, now: Millis) -> Result<()> {
        let given_up = IdemState::Pending(now.saturating_sub(IDEM_TAKEOVER));
        Ok(self.store.set(&qk.idem_value(key), &encode(&given_up)).await?)
    }

    /// Logs `key` in the bucket of `now`, then records it `Pending` since
    /// `now` (module docs); whether this sender should take a cleaning step.
    async fn idem_pending(&self, qk: &QueueKeys, key: &str, now: Millis) -> Result<bool> {
        let b = bucket(now);
        let n = self.store.increment(&qk.idem_log_len(b), 1).await?.max(0) as u64;
        self.store.set(&qk.idem_log(b, n), key.as_bytes()).await?;
        self.store.set(&qk.idem_value(key), &encode(&IdemState::Pending(now))).await?;
        Ok(n == 1 || n.is_multiple_of(CLEAN_EVERY))
    }

    /// One cleaning step (module docs): at most one batch of log entries, after
    /// walking past at most [`EMPTY_BUCKETS`] finished buckets.
    pub(crate) async fn idem_clean(&self, qk: &QueueKeys, now: Millis) -> Result<()> {
        let Some(closed) = bucket(now).checked_sub(2) else {
            return Ok(());
        };
        let start = self.idem_cursor(qk).await?;
        // Nothing cleaned yet: the log began in this bucket (its first sender
        // takes the first step) or, if that sender died, shortly before.
        let mut at =
            start.unwrap_or(Cursor { b: bucket(now).saturating_sub(FIRST_LOOKBACK), n: 1 });
        if at.b.saturating_add(MAX_LAG) < closed {
            at = Cursor { b: closed - MAX_LAG, n: 1 };
        }
        let at = self.idem_sweep(qk, at, closed, Forget::Expired).await?;
        if start != Some(at) {
            self.store.set(&qk.idem_cleaned(), &encode(&at)).await?;
        }
        Ok(())
    }

    /// Where the cleaning of `qk`'s log got, if it ever started (an unreadable
    /// cursor counts as none, and is rewritten by the step that reads it).
    pub(crate) async fn idem_cursor(&self, qk: &QueueKeys) -> Result<Option<Cursor>> {
        let cursor_key = qk.idem_cleaned();
        let raw = self.store.get(&cursor_key).await?;
        Ok(raw.and_then(|v| decode::<Cursor>(&cursor_key, &v).ok()))
    }

    /// Walks `qk`'s log from `at` through bucket `last`: past at most
    /// [`EMPTY_BUCKETS`] finished buckets (deleting their counters), then one
    /// batch of entries, deleting them and the records they name as `forget`
    /// says. Returns where the next step starts.
    pub(crate) async fn idem_sweep(
        &self,
        qk: &QueueKeys,
        mut at: Cursor,
        last: u64,
        forget: Forget,
    ) -> Result<Cursor> {
        // Counters of buckets walked past: finished, or read (and on some
        // backends thereby created) while empty.
        let mut dead = Vec::new();
        while at.b <= last && dead.len() < EMPTY_BUCKETS {
            let len_key = qk.idem_log_len(at.b);
            let len = self.store.increment(&len_key, 0).await?.max(0) as u64;
            if at.n > len {
                dead.push(len_key);
                at = Cursor { b: at.b + 1, n: 1 };
                continue;
            }
            let batch = match forget {
                Forget::Expired => CLEAN_BATCH,
                Forget::All => DEAD_BATCH,
            };
            let end = len.min(at.n + batch - 1);
            let entries: Vec<String> = (at.n..=end).map(|n| qk.idem_log(at.b, n)).collect();
            let logged: Vec<String> = self
                .store
                .get_many(&entries)
                .await?
                .into_iter()
                .flatten()
                .filter_map(|raw| String::from_utf8(raw).ok())
                .collect();
            let values: Vec<String> = logged.iter().map(|key| qk.idem_value(key)).collect();
            let records = match forget {
                Forget::Expired => self.store.get_many(&values).await?,
                Forget::All => Vec::new(),
            };
            // Records from this bucket, or written shortly after it by its senders.
            let old = (at.b + 1) * IDEM_WINDOW + IDEM_WINDOW / 2;
            dead.extend(entries);
            for (i, (key, value)) in logged.iter().zip(values).enumerate() {
                if let Forget::Expired = forget {
                    let Some(Some(raw)) = records.get(i) else { continue };
                    let since = decode::<IdemState>(&value, raw).map_or(0, |s| s.since());
                    if since >= old {
                        continue;
                    }
                }
                dead.push(value);
                dead.push(qk.idem_decision(key));
            }
            at.n = end + 1;
            break;
        }
        if !dead.is_empty() {
            self.store.delete_many(&dead).await?;
        }
        Ok(at)
    }
}

/// Idempotency keys: 1..=64 visible ASCII characters.
pub(crate) fn check_idempotency_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Error::BadRequest(format!(
            "idempotency key must be 1..={MAX_IDEMPOTENCY_KEY} visible ASCII characters"
        )));
    }
    Ok(())
}
