//! Queue metadata: create/update, get, list, delete, purge.
//!
//! A queue's metadata is one plain value at `{ns}/{q}`: its configuration and its
//! place in the namespace's list (or a tombstone once deleted). Every key of the
//! queue's messages carries its *incarnation*, a counter beside the metadata that
//! only purge and delete move, with `increment`: purge is one increment (the old
//! incarnation's keys are never read again, and are deleted in steps afterwards:
//! `reclaim.rs`), delete is an increment plus a tombstone. Creating and updating
//! only write the metadata, so concurrent creators all land on the same
//! incarnation and no creator's messages can end up in one that loses, and an
//! update racing a purge cannot undo it. A sender that read the incarnation just
//! before a purge or delete lands in the old one: it ran concurrently with the
//! purge and is ordered before it.
//!
//! The list is a creation-ordered log: a creator appends an entry (ticket from a
//! counter) *before* writing the metadata that points at it, and a listing keeps
//! an entry only when the live metadata points back at it. Duplicate entries from
//! racing creators and entries of crashed creators are thus skipped.

use super::keys::{self, QueueKeys};
use super::reclaim::Grave;
use super::slot::{decode, split_held, SlotState};
use super::{Engine, Env, Error, QueueInfo, QueuePage, QueueStats, Result};
use crate::model::{Millis, Name, QueueConfig};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Finished slots behind the head that deleting a queue `if_empty` sweeps per
/// partition, rather than refusing until a scan has (`drained`).
const DRAIN_CHECK: u64 = 256;

/// Most list entries one listing call reads before returning a cursor.
const LIST_SCAN: u64 = 1000;

/// The version of the protocol (the keys and the steps in the module docs of
/// [`super`]) this engine keeps a queue's messages with. A change that hosts of
/// the old version would misread raises it.
pub(crate) const PROTOCOL: u32 = 1;

/// The stored metadata of a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueueMeta {
    /// List entry that belongs to this incarnation.
    pub index: u64,
    pub created_at: Millis,
    pub config: QueueConfig,
    /// The protocol the queue's messages are kept with (absent: written before
    /// the field existed, by protocol 1).
    #[serde(default = "first_protocol")]
    pub protocol: u32,
    /// Tombstone of a deleted queue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

fn first_protocol() -> u32 {
    1
}

impl QueueMeta {
    /// Refuses a queue kept with another protocol than this engine's.
    fn check_protocol(&self, q: &Name) -> Result<()> {
        match self.protocol {
            PROTOCOL => Ok(()),
            found => Err(Error::ProtocolMismatch { queue: q.to_string(), found }),
        }
    }
}

/// A live queue resolved from its name.
#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub ns: Name,
    pub name: Name,
    pub meta: Arc<QueueMeta>,
    /// Current incarnation.
    pub inc: u64,
    pub keys: QueueKeys,
}

impl Queue {
    /// The tag a receipt carries of the queue that leased it (`Receipt`): FNV-1a
    /// of the namespace and name, folded to 32 bits. Not a secret, a guard
    /// against receipts given to the wrong queue; computed, not stored, and the
    /// same on every host and version. (Earlier incarnations of the same queue
    /// share it: their receipts are told by the generation, and are stale.)
    pub(crate) fn receipt_tag(&self) -> u32 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.ns.as_str().bytes().chain([b'/']).chain(self.name.as_str().bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        (h ^ (h >> 32)) as u32
    }
}

impl<S: Store, E: Env> Engine<S, E> {
    async fn read_meta(&self, ns: &Name, q: &Name) -> Result<Option<Arc<QueueMeta>>> {
        let key = keys::queue_meta(ns, q);
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(v) => decode_meta(v).map(Some).ok_or(Error::Corrupt(key)),
        }
    }

    async fn write_meta(&self, ns: &Name, q: &Name, meta: &QueueMeta) -> Result<()> {
        let v = serde_json::to_vec(meta).map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(self.store.set(&keys::queue_meta(ns, q), &v).await?)
    }

    /// The list index of each live queue among `names` (one `get_many`); names
    /// that are no live queue's are left out.
    pub(crate) async fn live_indexes(
        &self,
        ns: &Name,
        names: impl IntoIterator<Item = &str>,
    ) -> Result<HashMap<String, u64>> {
        let mut names: Vec<Name> = names.into_iter().filter_map(|q| Name::new(q).ok()).collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<String> = names.iter().map(|q| keys::queue_meta(ns, q)).collect();
        let found = self.store.get_many(&keys).await?;
        Ok(names
            .into_iter()
            .zip(found)
            .filter_map(|(q, v)| {
                let meta = v.and_then(decode_meta).filter(|m| !m.deleted)?;
                Some((q.to_string(), meta.index))
            })
            .collect())
    }

    /// The live queue `q`, or `QueueNotFound`.
    pub(crate) async fn queue(&self, ns: &Name, q: &Name) -> Result<Queue> {
        match self.read_meta(ns, q).await? {
            Some(meta) if !meta.deleted => {
                meta.check_protocol(q)?;
                let inc = self.store.increment(&keys::incarnation(ns, q), 0).await?.max(0) as u64;
                let keys = QueueKeys::new(ns, q, inc);
                Ok(Queue { ns: ns.clone(), name: q.clone(), meta, inc, keys })
            }
            _ => Err(Error::QueueNotFound(q.to_string())),
        }
    }

    /// Creates or replaces queue `q`; returns it and whether it was created.
    pub async fn put_queue(
        &self,
        ns: &Name,
        q: &Name,
        config: QueueConfig,
    ) -> Result<(QueueInfo, bool)> {
        self.check_config(ns, q, &config).await?;
        let meta = match self.read_meta(ns, q).await? {
            Some(old) if !old.deleted => {
                old.check_protocol(q)?;
                if config.partitions < old.config.partitions {
                    return Err(Error::PartitionsShrink {
                        from: old.config.partitions,
                        to: config.partitions,
                    });
                }
                let meta = QueueMeta { config, ..(*old).clone() };
                self.write_meta(ns, q, &meta).await?;
                return Ok((info(q, &meta, None), false));
            }
            _ => self.create(ns, q, config).await?,
        };
        Ok((info(q, &meta, None), true))
    }

    /// Creates queue `q` only if it does not exist: `true` when this call created
    /// it, `false` when it existed (its configuration is left alone).
    ///
    /// Among concurrent creators of one incarnation exactly one gets `true`: the
    /// one whose `increment` of `{ns}/{q}//new/{inc}` returns 1. A loser that finds
    /// no metadata yet writes it too (the winner may have died before writing it;
    /// otherwise the name would stay taken by a queue nobody can use), so the
    /// queue always ends up live, with either creator's configuration.
    pub async fn create_queue(&self, ns: &Name, q: &Name, config: QueueConfig) -> Result<bool> {
        self.check_config(ns, q, &config).await?;
        if self.read_meta(ns, q).await?.is_some_and(|m| !m.deleted) {
            return Ok(false);
        }
        let inc = self.store.increment(&keys::incarnation(ns, q), 0).await?.max(0) as u64;
        let won = self.store.increment(&keys::creation(ns, q, inc), 1).await? == 1;
        if !won && self.read_meta(ns, q).await?.is_some_and(|m| !m.deleted) {
            return Ok(false);
        }
        self.create(ns, q, config).await?;
        Ok(won)
    }

    /// Refuses a configuration that is invalid or names a missing dead-letter queue.
    async fn check_config(&self, ns: &Name, q: &Name, config: &QueueConfig) -> Result<()> {
        config.validate()?;
        if let Some(dlq) = &config.dead_letter_queue {
            let dlq = Name::new(dlq)?;
            if &dlq == q || self.queue(ns, &dlq).await.is_err() {
                return Err(Error::BadDeadLetterQueue(dlq.to_string()));
            }
        }
        Ok(())
    }

    /// Appends `q` to the namespace's list, then writes its live metadata.
    async fn create(&self, ns: &Name, q: &Name, config: QueueConfig) -> Result<QueueMeta> {
        let index = self.store.increment(&keys::list_len(ns), 1).await? as u64;
        self.store.set(&keys::list_entry(ns, index), q.as_str().as_bytes()).await?;
        let meta = QueueMeta {
            index,
            created_at: self.env.now(),
            config,
            protocol: PROTOCOL,
            deleted: false,
        };
        self.write_meta(ns, q, &meta).await?;
        Ok(meta)
    }

    /// Queue `q` with its stats.
    pub async fn get_queue(&self, ns: &Name, q: &Name) -> Result<QueueInfo> {
        let queue = self.queue(ns, q).await?;
        let stats = self.stats(&queue).await?;
        Ok(info(q, &queue.meta, Some(stats)))
    }

    pub(crate) async fn stats(&self, queue: &Queue) -> Result<QueueStats> {
        let k = &queue.keys;
        let (messages, bytes) = split_held(self.store.increment(&k.held(), 0).await?);
        let in_flight = self.store.increment(&k.in_flight(), 0).await?.max(0) as u64;
        let dead_lettered = self.store.increment(&k.dead_lettered(), 0).await?.max(0) as u64;
        let delayed = self.store.increment(&k.delayed(), 0).await?.max(0) as u64;
        let oldest_age_ms = if messages == 0 {
            None
        } else {
            self.oldest(queue).await?.map(|t| self.env.now().saturating_sub(t))
        };
        Ok(QueueStats { messages, bytes, in_flight, dead_lettered, delayed, oldest_age_ms })
    }

    /// When the oldest message held was enqueued: the first record at or after
    /// each partition's low-water mark, or else the next one at the head. (A few
    /// slots are read at the mark; finished slots the scan has not swept yet can
    /// hide a message deferred behind them, never the backlog at the head.)
    async fn oldest(&self, queue: &Queue) -> Result<Option<Millis>> {
        let mut oldest = None;
        for p in 0..queue.meta.config.partitions {
            let ring = queue.keys.ring(p);
            let low = self.low(&ring).await?;
            let head = self.store.increment(&ring.head(), 0).await?.max(0) as u64;
            let mut keys: Vec<String> = (low..low + 8).map(|i| ring.slot(i).record()).collect();
            if head + 1 >= low + 8 {
                keys.push(ring.slot(head + 1).record());
            }
            let first = self.store.get_many(&keys).await?.into_iter().flatten().next();
            if let Some(rec) = first.and_then(|r| crate::model::MessageRecord::decode(&r).ok()) {
                oldest = Some(oldest.map_or(rec.enqueued_at, |o: Millis| o.min(rec.enqueued_at)));
            }
        }
        Ok(oldest)
    }

    /// Lists queues in creation order, `limit` per page, optionally with stats.
    ///
    /// A page may hold fewer than `limit` queues and still carry a cursor: one call
    /// reads at most 1000 list entries, so its cost does not grow with the number
    /// of deleted or filtered-out queues.
    pub async fn list_queues(
        &self,
        ns: &Name,
        prefix: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
        details: bool,
    ) -> Result<QueuePage> {
        let limit = limit.clamp(1, 1000) as u64;
        let start = match cursor {
            None => 1,
            Some(c) => c
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| Error::BadRequest(format!("invalid cursor {c:?}")))?,
        };
        let len = self.store.increment(&keys::list_len(ns), 0).await?.max(0) as u64;
        let end = len.min(start.saturating_add(LIST_SCAN - 1));
        let mut queues = Vec::new();
        let mut next = start;
        while next <= end && (queues.len() as u64) < limit {
            let batch_end = end.min(next + limit - 1);
            let slots: Vec<u64> = (next..=batch_end).collect();
            let entry_keys: Vec<String> = slots.iter().map(|n| keys::list_entry(ns, *n)).collect();
            let entries = self.store.get_many(&entry_keys).await?;
            let mut names = Vec::new();
            for (n, e) in slots.iter().zip(entries) {
                let Some(name) = e.and_then(|e| Name::new(std::str::from_utf8(&e).ok()?).ok())
                else {
                    continue;
                };
                if prefix.is_some_and(|p| !name.as_str().starts_with(p)) {
                    continue;
                }
                names.push((*n, name));
            }
            let meta_keys: Vec<String> =
                names.iter().map(|(_, q)| keys::queue_meta(ns, q)).collect();
            let metas = self.store.get_many(&meta_keys).await?;
            for ((n, name), meta) in names.into_iter().zip(metas) {
                let Some(meta) = meta.and_then(|m| serde_json::from_slice::<QueueMeta>(&m).ok())
                else {
                    continue;
                };
                if meta.deleted || meta.index != n {
                    continue;
                }
                if (queues.len() as u64) < limit {
                    queues.push((n, name, meta));
                }
            }
            next = batch_end + 1;
        }
        let next_cursor = match queues.last() {
            Some((n, _, _)) if (queues.len() as u64) == limit && *n < len => Some(n + 1),
            _ if next <= len => Some(next),
            _ => None,
        };
        let mut out = Vec::with_capacity(queues.len());
        for (_, name, meta) in queues {
            let stats = match details {
                true => Some(self.stats(&self.queue(ns, &name).await?).await?),
                false => None,
            };
            out.push(info(&name, &meta, stats));
        }
        Ok(QueuePage { queues: out, next_cursor: next_cursor.map(|n| n.to_string()) })
    }

    /// Deletes queue `q` (refused with `QueueNotEmpty` when `if_empty` and it holds
    /// messages; messages that expired unconsumed at the heads are finished
    /// first, a bounded number of them: `reap_expired`).
    ///
    /// The count says whether it holds any, except after a host died between
    /// a message's change and the count's (see the known limits): then the
    /// rings decide, since a count that drifted up would refuse for good.
    pub async fn delete_queue(&self, ns: &Name, q: &Name, if_empty: bool) -> Result<()> {
        let queue = self.queue(ns, q).await?;
        if if_empty {
            let held = || async {
                let v = self.store.increment(&queue.keys.held(), 0).await?;
                Ok::<_, Error>(split_held(v).0)
            };
            if held().await? > 0
                && (!self.reap_expired(&queue).await? || held().await? > 0)
                && !self.drained(&queue).await?
            {
                return Err(Error::QueueNotEmpty(q.to_string()));
            }
        }
        let inc = self.store.increment(&keys::incarnation(ns, q), 1).await?;
        let tomb = QueueMeta { deleted: true, ..(*queue.meta).clone() };
        self.write_meta(ns, q, &tomb).await?;
        self.bury(ns, self.grave(&queue, inc, queue.meta.index)).await
    }

    /// Whether no partition of `queue` holds a message: none ahead of its head
    /// (`head >= tail`) and every slot up to the head finished (none leased,
    /// deferred or delayed). Slots finished away from the low-water mark wait
    /// for a scan to sweep them; up to [`DRAIN_CHECK`] of them are read and swept
    /// here. Three store calls per partition, five more for one that needs it.
    async fn drained(&self, queue: &Queue) -> Result<bool> {
        for p in 0..queue.meta.config.partitions {
            let ring = queue.keys.ring(p);
            let head = self.store.increment(&ring.head(), 0).await?.max(0) as u64;
            if self.store.increment(&ring.tail(), 0).await?.max(0) as u64 > head {
                return Ok(false);
            }
            let low = self.low(&ring).await?;
            if low > head {
                continue;
            }
            if head - low >= DRAIN_CHECK {
                return Ok(false);
            }
            let keys: Vec<String> = (low..=head).map(|i| ring.slot(i).state()).collect();
            let mut run = Vec::new();
            for (i, (key, raw)) in (low..).zip(keys.iter().zip(self.store.get_many(&keys).await?)) {
                match raw.map(|raw| decode::<SlotState>(key, &raw)).transpose()? {
                    Some(state @ (SlotState::Done { .. } | SlotState::Dead)) => {
                        run.push((i, state))
                    }
                    _ => return Ok(false),
                }
            }
            self.sweep(&ring, &run).await?;
        }
        Ok(true)
    }

    /// Drops every message of `q`; returns how many it held.
    pub async fn purge_queue(&self, ns: &Name, q: &Name) -> Result<u64> {
        let queue = self.queue(ns, q).await?;
        let (held, _) = split_held(self.store.increment(&queue.keys.held(), 0).await?);
        let inc = self.store.increment(&keys::incarnation(ns, q), 1).await?;
        self.bury(ns, self.grave(&queue, inc, 0)).await?;
        Ok(held)
    }

    /// The incarnation of `queue` that the increment to `inc` ended (not
    /// necessarily `queue.inc`: another purge may have come in between).
    fn grave(&self, queue: &Queue, inc: i64, list: u64) -> Grave {
        Grave {
            inc: (inc.max(1) - 1) as u64,
            partitions: queue.meta.config.partitions,
            at: self.env.now(),
            list,
            queue: queue.name.clone(),
        }
    }
}

/// Decoded metadata most recently read on this thread, by stored bytes.
const MEMO: usize = 4;

/// Stored bytes and what they decoded to.
type Decoded = (Vec<u8>, Arc<QueueMeta>);

thread_local! {
    /// The next entry to replace, and the entries.
    static META_MEMO: RefCell<(usize, [Option<Decoded>; MEMO])> =
        const { RefCell::new((0, [const { None }; MEMO])) };
}

/// Decodes stored metadata. Every operation reads the metadata again (another
/// host may have changed it), but it rarely changes, and decoding its JSON was
/// an eighth of a small operation's CPU: the same bytes decode to the same
/// value, so the last few decoded on this thread are kept, keyed by the bytes
/// themselves (no key, no time: a memo can never be stale).
fn decode_meta(raw: Vec<u8>) -> Option<Arc<QueueMeta>> {
    META_MEMO.with_borrow_mut(|(next, memo)| {
        if let Some((_, meta)) = memo.iter().flatten().find(|(bytes, _)| *bytes == raw) {
            return Some(meta.clone());
        }
        let meta = Arc::new(serde_json::from_slice::<QueueMeta>(&raw).ok()?);
        memo[*next] = Some((raw, meta.clone()));
        *next = (*next + 1) % MEMO;
        Some(meta)
    })
}

fn info(q: &Name, meta: &QueueMeta, stats: Option<QueueStats>) -> QueueInfo {
    QueueInfo {
        name: q.to_string(),
        config: meta.config.clone(),
        created_at: meta.created_at,
        stats,
    }
}
