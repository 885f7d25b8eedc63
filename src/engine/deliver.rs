//! Consuming: pop, receive, ack, nack, extend. What is due behind the head
//! (delayed, expired-lease and orphaned messages) comes from `scan.rs`.

use super::claim::Claimed;
use super::keys::RingKeys;
use super::queues::Queue;
use super::reclaim::RECLAIM_EVERY;
use super::ring::GRACE;
use super::slot::{encode, Claim, Slot, SlotState};
use super::{answer_full, Engine, Env, Error, Message, Receipt, ReceiveOptions, Result};
use crate::model::{MessageRecord, Millis, Name, QueueConfig};
use crate::store::Store;
use bytes::Bytes;

/// Most messages one pop or receive returns.
pub const MAX_TAKE: usize = 100;
/// One consume call in this many scans behind the head before taking new slots.
const SCAN_EVERY: u64 = 8;
/// How long a pop holds its claim before the message is gone; a host that dies
/// inside this window leaves the message to be delivered again after it.
const POP_HOLD: Millis = 30_000;
/// Partitions one reap of expired messages looks at (`reap_expired`).
const REAP_PARTITIONS: u16 = 4;
/// Expired messages one reap finishes in a partition at most.
const REAP_MESSAGES: usize = 8;

/// How a consumer came to a slot.
#[derive(Debug, Clone, Copy)]
enum Reached {
    /// It took the slot from the head: claim 0 is its own (`claim.rs`).
    Head,
    /// A scan found it due; the slot's state counted `settled` claims.
    Scan { settled: u64 },
}

/// What the caller wants from a slot it reached.
#[derive(Debug, Clone, Copy)]
enum Want {
    Pop,
    /// A receive: a lease of `millis` from the call's `now`.
    Lease {
        millis: Millis,
    },
    /// A receive with a zero visibility timeout (SQS allows it): the message is
    /// delivered and stays visible, so no lease protects it.
    Glance,
    /// No delivery: finish the message if it expired, else leave it due again
    /// at once (`reap_expired`).
    Reap,
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Removes and returns up to `count` messages (at-most-once), taking no more
    /// once their bodies reach [`MAX_ANSWER_BYTES`](super::MAX_ANSWER_BYTES).
    pub async fn pop(&self, ns: &Name, q: &Name, count: usize) -> Result<Vec<Message>> {
        let queue = self.queue(ns, q).await?;
        self.consume(&queue, count, None, Want::Pop).await
    }

    /// Leases up to `opts.count` messages (at-least-once), as many as
    /// [`pop`](Self::pop) would take. Does not wait.
    pub async fn receive(&self, ns: &Name, q: &Name, opts: ReceiveOptions) -> Result<Vec<Message>> {
        let queue = self.queue(ns, q).await?;
        let vt = opts.visibility_timeout.unwrap_or(queue.meta.config.visibility_timeout);
        QueueConfig::check_visibility(vt)?;
        let want = if vt == 0 { Want::Glance } else { Want::Lease { millis: vt * 1000 } };
        self.consume(&queue, opts.count, opts.partition, want).await
    }

    async fn consume(
        &self,
        queue: &Queue,
        count: usize,
        partition: Option<u16>,
        want: Want,
    ) -> Result<Vec<Message>> {
        if count == 0 || count > MAX_TAKE {
            return Err(Error::BadRequest(format!("count must be 1..={MAX_TAKE}")));
        }
        let partitions = queue.meta.config.partitions;
        if partition.is_some_and(|p| p >= partitions) {
            return Err(Error::BadRequest(format!("partition must be below {partitions}")));
        }
        let mut out = Vec::new();
        let now = self.env.now();
        // One draw: its high half picks the first partition, its low bits make
        // redeliveries come first one call in SCAN_EVERY, so they are not starved
        // under load; otherwise the scan runs only when the head has no more.
        let roll = self.env.random();
        let first = partition.unwrap_or(((roll >> 32) % u64::from(partitions)) as u16);
        let lanes = if partition.is_some() { 1 } else { partitions };
        let scan_first = roll.is_multiple_of(SCAN_EVERY);
        for n in 0..lanes {
            let ring = queue.keys.ring((first + n) % partitions);
            if scan_first {
                self.deliver_due(queue, &ring, now, want, count, &mut out).await?;
            }
            while !answer_full(&out, count) {
                let Some(slot) = self.take(&ring, now).await? else {
                    break;
                };
                if let Some(m) = self.deliver(queue, &slot, Reached::Head, now, want).await? {
                    out.push(m);
                }
            }
            if !scan_first && !answer_full(&out, count) {
                self.deliver_due(queue, &ring, now, want, count, &mut out).await?;
            }
            if answer_full(&out, count) {
                break;
            }
        }
        // A message whose lease or hold ran out while this call worked may
        // already be someone else's: never hand it out (for a pop, whose message
        // is gone from the store by now, this is what makes it at-most-once).
        let end = self.env.now();
        if !matches!(want, Want::Glance) {
            out.retain(|m| m.lease_until.is_some_and(|u| u > end));
        }
        if let Want::Pop = want {
            out.iter_mut().for_each(|m| m.lease_until = None);
        }
        // Bits of the draw the choices above do not use.
        if (roll >> 16).is_multiple_of(RECLAIM_EVERY) {
            // Housekeeping for the namespace (`reclaim.rs`): a failed step is
            // taken again later and must not fail this call.
            let _ = self.reclaim_step(&queue.ns).await;
        }
        Ok(out)
    }

    /// Finishes messages that expired unconsumed at the heads of up to
    /// [`REAP_PARTITIONS`] partitions, [`REAP_MESSAGES`] each, so that a queue
    /// whose limits they take up accepts new messages (a send that finds it full
    /// calls this) and one holding nothing else can be deleted `if_empty`.
    /// Each head message is peeked at before its ticket is taken, and a live one
    /// ends the partition's turn: live messages keep their order. One that a
    /// race put under the ticket anyway is left due again at once, for a scan
    /// to deliver. Returns whether any ticket was taken.
    pub(crate) async fn reap_expired(&self, queue: &Queue) -> Result<bool> {
        let now = self.env.now();
        let partitions = queue.meta.config.partitions;
        let first = (self.env.random() % u64::from(partitions)) as u16;
        let mut took = false;
        for n in 0..partitions.min(REAP_PARTITIONS) {
            let ring = queue.keys.ring((first + n) % partitions);
            for _ in 0..REAP_MESSAGES {
                let head = self.store.increment(&ring.head(), 0).await?.max(0) as u64;
                let next = Slot::new(&ring, head + 1);
                if self.read_record_only(&next).await?.is_none_or(|r| r.expires_at > now) {
                    break;
                }
                let Some(slot) = self.take(&ring, now).await? else { break };
                took = true;
                self.deliver(queue, &slot, Reached::Head, now, Want::Reap).await?;
            }
        }
        Ok(took)
    }

    /// Delivers what a scan behind the head finds due, up to `count` in all.
    async fn deliver_due(
        &self,
        queue: &Queue,
        ring: &RingKeys,
        now: Millis,
        want: Want,
        count: usize,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        for (slot, settled) in self.scan(ring, now, count - out.len()).await? {
            // Due slots left unclaimed stay due for the next scan.
            if answer_full(out, count) {
                break;
            }
            let reached = Reached::Scan { settled };
            if let Some(m) = self.deliver(queue, &slot, reached, now, want).await? {
                out.push(m);
            }
        }
        Ok(())
    }

    /// Tries to deliver the message in `slot`; defers it when it is not visible yet
    /// and finishes it when it expired.
    async fn deliver(
        &self,
        queue: &Queue,
        slot: &Slot,
        reached: Reached,
        now: Millis,
        want: Want,
    ) -> Result<Option<Message>> {
        // Claim first, read second: a claim taken after the slot was finished and
        // swept wins against nobody, and must then find nothing to deliver.
        let (until, lease) = match want {
            Want::Pop | Want::Reap => (now + POP_HOLD, false),
            Want::Lease { millis } => (now + millis, true),
            Want::Glance => (now, true),
        };
        let intent = Claim::Live { until, lease };
        let claimed = match reached {
            Reached::Head => self.claim_first(slot, intent, now).await?,
            Reached::Scan { settled } => self.claim(slot, intent, settled, now).await?,
        };
        let (k, claims, ended_lease) = match claimed {
            Claimed::Won { k, claims, ended_lease } => (k, claims, ended_lease),
            Claimed::Busy { until } => {
                let claims = self.store.increment(&slot.keys.claims(), 0).await?.max(0) as u64;
                self.set_state(slot, SlotState::Live { until, claims }).await?;
                // The winner may have finished the slot before that write and
                // we wrote over its `Done`: then say it again, or the
                // low-water mark would wait for `until`.
                if self.read_record_only(slot).await?.is_none() {
                    let claims = self.store.increment(&slot.keys.claims(), 0).await?;
                    let claims = claims.max(0) as u64;
                    self.set_state(slot, SlotState::Done { claims }).await?;
                }
                return Ok(None);
            }
        };
        let qk = &queue.keys;
        let (rec, low) = self.read_slot(slot, true).await?;
        let Some(rec) = rec else {
            // Committed but gone: finished (and perhaps swept) under us.
            self.set_state(slot, SlotState::Done { claims }).await?;
            return Ok(None);
        };
        if rec.expires_at <= now {
            self.end_lease(queue, ended_lease).await?;
            self.undelay_if_undelivered(queue, slot, &rec).await?;
            self.finish(qk, slot, &rec, claims, low).await?;
            return Ok(None);
        }
        // Only a delay can make a message not visible yet: without one it is
        // visible on every host, even where this call's `now` is earlier than
        // the sender's (it started before the send, or its clock is behind).
        let hidden = rec.delayed() && rec.visible_at > now;
        if hidden || matches!(want, Want::Reap) {
            // Not visible yet: turn our claim into a deferral until it is. Whoever
            // claims it next reads `visible_at` again before delivering. (A reap
            // that found the message alive: due again at once, for a scan.)
            self.end_lease(queue, ended_lease).await?;
            let until = if hidden { rec.visible_at } else { now };
            let deferral = Claim::Live { until, lease: false };
            self.store.set(&slot.keys.claim(k), &encode(&deferral)).await?;
            self.set_state(slot, SlotState::Live { until, claims }).await?;
            return Ok(None);
        }
        let delivery = match want {
            // The head taker's claim won: every numbered claim on the slot lost
            // (any record a winner leaves would have blocked claim 0), so no
            // delivery came before, and a popped message is finished, so its
            // count is never read again.
            Want::Pop if k == 0 => 1,
            _ => self.store.increment(&slot.keys.deliveries(), 1).await? as u32,
        };
        if delivery == 1 && rec.delayed() {
            self.store.increment(&qk.delayed(), -1).await?;
        }
        let receives = delivery + rec.prior_receives;
        if let Want::Pop = want {
            self.end_lease(queue, ended_lease).await?;
            self.finish(qk, slot, &rec, claims, low).await?;
            // `consume` drops it if our hold ran out meanwhile (at-most-once).
            let mut m = message(rec, receives, None);
            m.lease_until = Some(until);
            return Ok(Some(m));
        }
        if let Some(max) = queue.meta.config.max_receives {
            if receives > max {
                self.end_lease(queue, ended_lease).await?;
                self.dead_letter(queue, slot, rec, receives - 1, claims, low).await?;
                return Ok(None);
            }
        }
        if !ended_lease {
            self.store.increment(&qk.in_flight(), 1).await?;
        }
        self.set_state(slot, SlotState::Live { until, claims }).await?;
        let receipt = Receipt {
            generation: queue.inc,
            partition: slot.ring.partition,
            slot: slot.index,
            claim: k,
            queue: queue.receipt_tag(),
        };
        // `consume` drops it if the lease ran out meanwhile.
        let mut m = message(rec, receives, Some(receipt));
        m.lease_until = Some(until);
        Ok(Some(m))
    }

    /// Takes a message sent with a delay out of the `delayed` count when it
    /// leaves without ever being delivered (expired, deleted by id).
    pub(crate) async fn undelay_if_undelivered(
        &self,
        queue: &Queue,
        slot: &Slot,
        rec: &MessageRecord,
    ) -> Result<()> {
        if rec.delayed() && self.store.increment(&slot.keys.deliveries(), 0).await? == 0 {
            self.store.increment(&queue.keys.delayed(), -1).await?;
        }
        Ok(())
    }

    /// Takes a lease that counted in flight out of the count, when `ended_lease`.
    pub(crate) async fn end_lease(&self, queue: &Queue, ended_lease: bool) -> Result<()> {
        if ended_lease {
            self.store.increment(&queue.keys.in_flight(), -1).await?;
        }
        Ok(())
    }

    /// Moves a message past `max_receives` to the dead-letter queue (copy first,
    /// then finish: a crash in between leaves a second copy, never none).
    async fn dead_letter(
        &self,
        queue: &Queue,
        slot: &Slot,
        rec: MessageRecord,
        receives: u32,
        claims: u64,
        low: u64,
    ) -> Result<()> {
        if let Some(dlq) = &queue.meta.config.dead_letter_queue {
            let dlq = Name::new(dlq)?;
            match self.queue(&queue.ns, &dlq).await {
                Ok(target) => {
                    let mut copy = rec.clone();
                    copy.prior_receives = receives;
                    // Boxed: a send that finds its queue full reaps expired
                    // messages (`reserve`), which can come back here.
                    Box::pin(self.enqueue(&target, copy, None)).await?;
                }
                // The dead-letter queue was deleted: the message is dropped, and
                // counted as dead-lettered like SQS counts a redrive to nowhere.
                Err(Error::QueueNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.store.increment(&queue.keys.dead_lettered(), 1).await?;
        self.finish(&queue.keys, slot, &rec, claims, low).await
    }

    /// Acknowledges (deletes) leased messages.
    pub async fn ack(&self, ns: &Name, q: &Name, receipts: &[Receipt]) -> Result<Vec<Result<()>>> {
        self.end_each(ns, q, receipts, End::Ack).await
    }

    /// Ends leases early; the messages become visible after `delay` seconds.
    pub async fn nack(
        &self,
        ns: &Name,
        q: &Name,
        receipts: &[Receipt],
        delay: u64,
    ) -> Result<Vec<Result<()>>> {
        QueueConfig::check_delay(delay)?;
        self.end_each(ns, q, receipts, End::Change { millis: delay * 1000, lease: false }).await
    }

    /// Extends leases to `visibility_timeout` seconds from now.
    pub async fn extend(
        &self,
        ns: &Name,
        q: &Name,
        receipts: &[Receipt],
        visibility_timeout: u64,
    ) -> Result<Vec<Result<()>>> {
        QueueConfig::check_visibility(visibility_timeout)?;
        let millis = visibility_timeout * 1000;
        self.end_each(ns, q, receipts, End::Change { millis, lease: true }).await
    }

    /// Ends (or changes) the lease of each receipt the same way; one outcome each.
    async fn end_each(
        &self,
        ns: &Name,
        q: &Name,
        receipts: &[Receipt],
        how: End,
    ) -> Result<Vec<Result<()>>> {
        let queue = self.queue(ns, q).await?;
        let mut out = Vec::with_capacity(receipts.len());
        for r in receipts {
            out.push(self.end(&queue, r, how).await);
        }
        Ok(out)
    }

    async fn end(&self, queue: &Queue, r: &Receipt, how: End) -> Result<()> {
        if r.queue != queue.receipt_tag() {
            return Err(Error::InvalidReceipt(format!("{r} is a receipt of another queue")));
        }
        if r.partition >= queue.meta.config.partitions {
            return Err(Error::InvalidReceipt(format!("{r} names a partition the queue lacks")));
        }
        if r.generation != queue.inc {
            return Err(Error::StaleReceipt(r.to_string()));
        }
        let slot = Slot::new(&queue.keys.ring(r.partition), r.slot);
        let now = self.env.now();
        let before = match (self.claim_record(&slot, r.claim).await?, how) {
            (Some(lease @ Claim::Live { lease: true, .. }), _) => lease,
            // Acknowledging a message that is gone is not an error (SQS's
            // DeleteMessage works the same): acknowledged twice, or finished by
            // another consumer after this lease ended.
            (_, End::Ack) if self.read_record_only(&slot).await?.is_none() => return Ok(()),
            _ => return Err(Error::StaleReceipt(r.to_string())),
        };
        let intent = match how {
            // Hold the message while finishing; if this host dies now, the hold
            // ends and the message is delivered again (at-least-once).
            End::Ack => Claim::Live { until: now + GRACE, lease: false },
            End::Change { millis, lease } => Claim::Live { until: now + millis, lease },
        };
        let Claimed::Won { claims, .. } = self.reclaim(&slot, r.claim, before, intent, now).await?
        else {
            // Lost to a delete by id (or, once the lease ended, to another
            // consumer): an ack of a message that is gone by now still succeeds.
            if let End::Ack = how {
                if self.read_record_only(&slot).await?.is_none() {
                    return Ok(());
                }
            }
            return Err(Error::StaleReceipt(r.to_string()));
        };
        match how {
            End::Ack => {
                // Gone already: whoever finished it (a delete by id, or the
                // consumer this lease ended for) took it out of the count.
                if let (Some(rec), low) = self.read_slot(&slot, false).await? {
                    self.store.increment(&queue.keys.in_flight(), -1).await?;
                    self.finish(&queue.keys, &slot, &rec, claims, low).await?;
                }
            }
            End::Change { millis, lease } => {
                if self.read_record_only(&slot).await?.is_none() {
                    // Finished while this lease was over (a delete by id):
                    // nothing left to hide or show.
                    return Err(Error::StaleReceipt(r.to_string()));
                }
                let until = now + millis;
                if !lease {
                    self.store.increment(&queue.keys.in_flight(), -1).await?;
                }
                self.set_state(&slot, SlotState::Live { until, claims }).await?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum End {
    Ack,
    /// A new intent `millis` from now: a lease (extend) or a deferral (nack).
    Change {
        millis: Millis,
        lease: bool,
    },
}

/// The message view of a record.
pub(crate) fn message(rec: MessageRecord, receive_count: u32, receipt: Option<Receipt>) -> Message {
    Message {
        id: rec.id,
        body: Bytes::from(rec.body),
        content_type: rec.content_type,
        enqueued_at: rec.enqueued_at,
        expires_at: rec.expires_at,
        receive_count,
        receipt,
        lease_until: None,
    }
}
