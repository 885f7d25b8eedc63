//! Reading without consuming: browse, and get / overwrite / delete by id.

use super::claim::Claimed;
use super::deliver::message;
use super::queues::Queue;
use super::ring::GRACE;
use super::send::check_content_type;
use super::slot::{Claim, Slot, CHUNK, INLINE_BODY};
use super::{answer_full, BrowseOptions, BrowsePage, Engine, Env, Error, Message, Order, Result};
use crate::model::{MessageId, MessageRecord, Millis, Name, QueueConfig, MAX_BODY_LEN};
use crate::store::Store;
use bytes::Bytes;

/// Most messages one browse returns.
pub const MAX_BROWSE: usize = 1000;
/// Slots read per browse batch.
const BROWSE_BATCH: u64 = 100;
/// Most slots one browse call reads, so its cost stays bounded however sparse the
/// queue is; page on with `after`.
const BROWSE_SCAN: u64 = 10_000;

impl<S: Store, E: Env> Engine<S, E> {
    /// Reads messages without consuming them, partition by partition; at most
    /// `BROWSE_SCAN` slots per call and [`MAX_ANSWER_BYTES`](super::MAX_ANSWER_BYTES)
    /// of bodies, so the page may end short of `limit` with a `next_after` to go
    /// on from.
    pub async fn browse(&self, ns: &Name, q: &Name, opts: BrowseOptions) -> Result<BrowsePage> {
        if opts.limit == 0 || opts.limit > MAX_BROWSE {
            return Err(Error::BadRequest(format!("limit must be 1..={MAX_BROWSE}")));
        }
        let queue = self.queue(ns, q).await?;
        let partitions = queue.meta.config.partitions;
        if opts.partition.is_some_and(|p| p >= partitions) {
            return Err(Error::BadRequest(format!("partition must be below {partitions}")));
        }
        let mut lanes: Vec<u16> = match opts.partition {
            Some(p) => vec![p],
            None => (0..partitions).collect(),
        };
        if opts.order == Order::Descending {
            lanes.reverse();
        }
        if let Some(after) = opts.after {
            lanes.retain(|&p| match opts.order {
                Order::Ascending => p >= after.partition(),
                Order::Descending => p <= after.partition(),
            });
        }
        let now = self.env.now();
        let mut out = Vec::new();
        let mut budget = BROWSE_SCAN;
        let mut read = None;
        for p in lanes {
            let from = opts.after.filter(|a| a.partition() == p).map(|a| a.slot());
            read = self.browse_lane(&queue, p, from, &opts, now, &mut budget, &mut out).await?;
            if answer_full(&out, opts.limit) || budget == 0 {
                break;
            }
        }
        let next_after = match (answer_full(&out, opts.limit), read) {
            (true, _) => out.last().map(|m| m.id),
            // The slot budget ran out first: go on from the last slot read.
            (false, Some((p, slot))) if budget == 0 => Some(MessageId::new(0, queue.inc, p, slot)),
            _ => None,
        };
        Ok(BrowsePage { messages: out, next_after })
    }

    #[allow(clippy::too_many_arguments)]
    async fn browse_lane(
        &self,
        queue: &Queue,
        p: u16,
        after: Option<u64>,
        opts: &BrowseOptions,
        now: Millis,
        budget: &mut u64,
        out: &mut Vec<Message>,
    ) -> Result<Option<(u16, u64)>> {
        let ring = queue.keys.ring(p);
        let mut read = None;
        let low = self.low(&ring).await?;
        let tail = self.store.increment(&ring.tail(), 0).await?.max(0) as u64;
        let (mut lo, mut hi) = (low, tail);
        match (opts.order, after) {
            (Order::Ascending, Some(a)) => lo = lo.max(a.saturating_add(1)),
            (Order::Descending, Some(a)) => hi = hi.min(a.saturating_sub(1)),
            _ => {}
        }
        while lo <= hi && !answer_full(out, opts.limit) && *budget > 0 {
            let n = BROWSE_BATCH.min(hi - lo + 1).min(*budget);
            *budget -= n;
            let range: Vec<u64> = match opts.order {
                Order::Ascending => {
                    lo += n;
                    (lo - n..lo).collect()
                }
                Order::Descending => {
                    let first = hi + 1 - n;
                    let range = (first..=hi).rev().collect();
                    match first.checked_sub(1) {
                        Some(h) => hi = h,
                        None => lo = hi + 1,
                    }
                    range
                }
            };
            read = range.last().map(|&i| (p, i));
            // Each slot's record and state: a slot with no state was never
            // delivered (receive writes one), so only the others' delivery
            // counters are read.
            let keys: Vec<String> = range
                .iter()
                .flat_map(|&i| {
                    let slot = ring.slot(i);
                    [slot.record(), slot.state()]
                })
                .collect();
            let mut found = self.store.get_many(&keys).await?.into_iter();
            for &i in &range {
                let (raw, state) = (found.next().flatten(), found.next().flatten());
                let Some(raw) = raw.filter(|_| !answer_full(out, opts.limit)) else { continue };
                let slot = Slot::new(&ring, i);
                let rec =
                    MessageRecord::decode(&raw).map_err(|_| Error::Corrupt(slot.keys.record()));
                let rec = match rec? {
                    rec if rec.chunks == 0 => rec,
                    // The body is in chunks: read it whole.
                    _ => match self.read_message(&slot).await? {
                        Some(rec) => rec,
                        None => continue,
                    },
                };
                if rec.expires_at <= now {
                    continue;
                }
                let delivered = match state {
                    Some(_) => self.store.increment(&slot.keys.deliveries(), 0).await?.max(0),
                    None => 0,
                };
                let receives = rec.prior_receives.saturating_add(delivered as u32);
                out.push(message(rec, receives, None));
            }
        }
        Ok(read)
    }

    async fn slot_of(&self, queue: &Queue, id: MessageId) -> Result<Slot> {
        if id.partition() >= queue.meta.config.partitions {
            return Err(Error::MessageNotFound(id.to_string()));
        }
        Ok(Slot::new(&queue.keys.ring(id.partition()), id.slot()))
    }

    /// Reads one message by id.
    pub async fn get_message(&self, ns: &Name, q: &Name, id: MessageId) -> Result<Message> {
        let queue = self.queue(ns, q).await?;
        let slot = self.slot_of(&queue, id).await?;
        match self.read_message(&slot).await? {
            Some(rec) if rec.id == id && rec.expires_at > self.env.now() => {
                // Counted as a delivery does: this queue's, and any before a
                // move to the dead-letter queue.
                let delivered = self.store.increment(&slot.keys.deliveries(), 0).await?.max(0);
                let receives = rec.prior_receives.saturating_add(delivered as u32);
                Ok(message(rec, receives, None))
            }
            _ => Err(Error::MessageNotFound(id.to_string())),
        }
    }

    /// Replaces the body (and Content-Type) of a message, keeping its place, its
    /// id and its times; with `ttl`, it expires `ttl` seconds from now instead.
    pub async fn put_message(
        &self,
        ns: &Name,
        q: &Name,
        id: MessageId,
        body: Bytes,
        content_type: Option<String>,
        ttl: Option<u64>,
    ) -> Result<()> {
        if body.len() > MAX_BODY_LEN {
            return Err(Error::MessageTooLarge(body.len()));
        }
        if let Some(ct) = &content_type {
            check_content_type(ct)?;
        }
        if let Some(secs) = ttl {
            QueueConfig::check_ttl(secs)?;
        }
        let queue = self.queue(ns, q).await?;
        let slot = self.slot_of(&queue, id).await?;
        let Some(old) = self.read_message(&slot).await?.filter(|r| r.id == id) else {
            return Err(Error::MessageNotFound(id.to_string()));
        };
        let mut rec = old.clone();
        rec.content_type = content_type;
        if let Some(secs) = ttl {
            rec.expires_at = self.env.now() + secs * 1000;
        }
        rec.size = body.len() as u64;
        rec.chunks = 0;
        rec.body = body.to_vec();
        if rec.body.len() > INLINE_BODY {
            rec.chunks = rec.body.len().div_ceil(CHUNK) as u32;
            for (j, chunk) in rec.body.chunks(CHUNK).enumerate() {
                self.store.set(&slot.keys.chunk(j as u32), chunk).await?;
            }
            rec.body = Vec::new();
        }
        self.store.set(&slot.keys.record(), &rec.encode()).await?;
        let stale: Vec<String> = (rec.chunks..old.chunks).map(|j| slot.keys.chunk(j)).collect();
        if !stale.is_empty() {
            self.store.delete_many(&stale).await?;
        }
        let delta = rec.size as i64 - old.size as i64;
        // Bytes sit in the low bits of `held`: adding the difference adjusts them.
        self.store.increment(&queue.keys.held(), delta).await?;
        Ok(())
    }

    /// Deletes one message by id, whatever lease it is under.
    pub async fn delete_message(&self, ns: &Name, q: &Name, id: MessageId) -> Result<()> {
        let queue = self.queue(ns, q).await?;
        let slot = self.slot_of(&queue, id).await?;
        if self.read_record_only(&slot).await?.is_none_or(|r| r.id != id) {
            return Err(Error::MessageNotFound(id.to_string()));
        }
        let now = self.env.now();
        let k = self.store.increment(&slot.keys.claims(), 1).await? as u64;
        let intent = Claim::Override { until: now + GRACE };
        match self.reclaim(&slot, k, Claim::Abandoned, intent, now).await? {
            Claimed::Won { claims, ended_lease, .. } => match self.read_slot(&slot, false).await? {
                (Some(rec), low) => {
                    // The lease this ends counted in flight; its holder's ack
                    // will find the message gone and count nothing (`end`).
                    self.end_lease(&queue, ended_lease).await?;
                    self.undelay_if_undelivered(&queue, &slot, &rec).await?;
                    self.finish(&queue.keys, &slot, &rec, claims, low).await
                }
                (None, _) => Err(Error::MessageNotFound(id.to_string())),
            },
            Claimed::Busy { .. } => Err(Error::Contention(id.to_string())),
        }
    }
}
