//! Consuming: pop, receive, ack, nack, extend — and the scan behind the head that
//! finds delayed, expired-lease and orphaned messages.

use super::claim::Claimed;
use super::keys::RingKeys;
use super::queues::Queue;
use super::ring::GRACE;
use super::slot::{committed, decode, decode_low, encode, Claim, Slot, SlotState, HOLDER};
use super::{Engine, Env, Error, Message, Receipt, ReceiveOptions, Result};
use crate::model::{MessageRecord, Millis, Name, QueueConfig};
use crate::store::Store;
use bytes::Bytes;

/// Most messages one pop or receive returns.
pub const MAX_TAKE: usize = 100;
/// One consume call in this many scans behind the head before taking new slots.
const SCAN_EVERY: u64 = 8;
/// Slots one scan behind the head reads.
const SCAN_BATCH: u64 = 32;
/// Further batches a scan sweeps when a whole batch at the mark was finished.
const SWEEP_AHEAD: usize = 7;
/// How long a pop holds its claim before the message is gone; a host that dies
/// inside this window leaves the message to be delivered again after it.
const POP_HOLD: Millis = 30_000;

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
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Removes and returns up to `count` messages (at-most-once).
    pub async fn pop(&self, ns: &Name, q: &Name, count: usize) -> Result<Vec<Message>> {
        let queue = self.queue(ns, q).await?;
        self.consume(&queue, count, None, Want::Pop).await
    }

    /// Leases up to `opts.count` messages (at-least-once). Does not wait.
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
            while out.len() < count {
                let Some(slot) = self.take(&ring, now).await? else {
                    break;
                };
                if let Some(m) = self.deliver(queue, &slot, Reached::Head, now, want).await? {
                    out.push(m);
                }
            }
            if !scan_first && out.len() < count {
                self.deliver_due(queue, &ring, now, want, count, &mut out).await?;
            }
            if out.len() == count {
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
        Ok(out)
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
            Want::Pop => (now + POP_HOLD, false),
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
        if rec.delayed() && rec.visible_at > now {
            // Not visible yet: turn our claim into a deferral until it is. Whoever
            // claims it next reads `visible_at` again before delivering.
            self.end_lease(queue, ended_lease).await?;
            let deferral = Claim::Live { until: rec.visible_at, lease: false };
            self.store.set(&slot.keys.claim(k), &encode(&deferral)).await?;
            self.set_state(slot, SlotState::Live { until: rec.visible_at, claims }).await?;
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

    async fn end_lease(&self, queue: &Queue, ended_lease: bool) -> Result<()> {
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
                    self.enqueue(&target, copy, None).await?;
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
        if r.partition >= queue.meta.config.partitions {
            return Err(Error::InvalidReceipt(r.to_string()));
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
            return Err(Error::StaleReceipt(r.to_string()));
        };
        match how {
            End::Ack => {
                self.store.increment(&queue.keys.in_flight(), -1).await?;
                if let (Some(rec), low) = self.read_slot(&slot, false).await? {
                    self.finish(&queue.keys, &slot, &rec, claims, low).await?;
                }
            }
            End::Change { millis, lease } => {
                let until = now + millis;
                if !lease {
                    self.store.increment(&queue.keys.in_flight(), -1).await?;
                }
                self.set_state(&slot, SlotState::Live { until, claims }).await?;
            }
        }
        Ok(())
    }

    /// Reads one batch of slots behind the head and returns those due for delivery
    /// (deferrals and leases that ended, and slots whose consumer vanished),
    /// oldest first, each with the claims its state counted. Runs of finished
    /// slots at the low-water mark are swept.
    async fn scan(&self, ring: &RingKeys, now: Millis, want: usize) -> Result<Vec<(Slot, u64)>> {
        let low = self.low(ring).await?;
        let head = self.store.increment(&ring.head(), 0).await?.max(0) as u64;
        if low > head {
            return Ok(Vec::new());
        }
        let width = head - low + 1;
        // Every other turn starts at the mark (sweeping finished runs there); the
        // others rotate through the rest, so a long lease at the mark does not
        // hide what lies behind it.
        let start = if width <= SCAN_BATCH {
            low
        } else {
            let turn = self.store.increment(&ring.scan(), 1).await? as u64;
            match turn % 2 {
                0 => low,
                _ => low + (turn / 2).wrapping_mul(SCAN_BATCH) % width,
            }
        };
        let end = head.min(start + SCAN_BATCH - 1);
        let keys: Vec<String> = (start..=end).map(|i| ring.slot(i).state()).collect();
        let states = self.store.get_many(&keys).await?;
        let mut due = Vec::new();
        let mut run = Vec::new();
        let mut undecided = Vec::new();
        for (i, raw) in (start..=end).zip(states) {
            let slot = Slot::new(ring, i);
            let Some(raw) = raw else {
                undecided.push(slot);
                continue;
            };
            match decode::<SlotState>(&slot.keys.state(), &raw)? {
                finished @ (SlotState::Done { .. } | SlotState::Dead) => {
                    if start == low && i == low + run.len() as u64 {
                        run.push((i, finished));
                    }
                }
                SlotState::Live { until, claims } => {
                    if until <= now && due.len() < want {
                        due.push((slot, claims));
                    }
                }
            }
        }
        self.sweep(ring, &run).await?;
        if start == low && run.len() as u64 == SCAN_BATCH {
            self.sweep_ahead(ring, end + 1, head).await?;
        }
        if !undecided.is_empty() {
            self.undecided(ring, undecided, head, now, want, &mut due).await?;
            due.sort_by_key(|(s, _)| s.index);
        }
        Ok(due)
    }

    /// Slots a scan found with no state yet; adds the due ones to `due`.
    ///
    /// Most were taken from the head and are being worked on right now: their
    /// taker's claim 0 is live, and the slot is left alone. Past its end the
    /// taker died or stalled (and then drops the message): due now, like any
    /// ended lease or hold. Without claim 0, the slot is stamped when first seen
    /// so (the stamp is taken back if the slot turns out to be taken: see
    /// `unstamp_taken`), and `resolve`d in its consumer's stead once that is GRACE
    /// ago. The mark is read again with them: a slot below it was finished and
    /// swept since the scan read its state, and stamping it would leave a key
    /// nobody deletes.
    async fn undecided(
        &self,
        ring: &RingKeys,
        slots: Vec<Slot>,
        head: u64,
        now: Millis,
        want: usize,
        due: &mut Vec<(Slot, u64)>,
    ) -> Result<()> {
        let mut keys: Vec<String> =
            slots.iter().flat_map(|s| [s.keys.claim(0), s.keys.seen()]).collect();
        keys.push(ring.low());
        let mut found = self.store.get_many(&keys).await?;
        let low = decode_low(ring, found.pop().flatten())?;
        let mut found = found.into_iter();
        let mut stamped = Vec::new();
        for slot in slots {
            let (first, seen) = (found.next().flatten(), found.next().flatten());
            if slot.index < low {
                continue;
            }
            let first = first.map(|v| decode::<Claim>(&slot.keys.claim(0), &v)).transpose()?;
            match first.and_then(|claim| claim.until()) {
                Some(until) if until > now => continue,
                Some(_) => {
                    if due.len() < want {
                        due.push((slot, 0));
                    }
                    continue;
                }
                None => {}
            }
            let overdue = match seen {
                // At the mark with a batch taken since: its consumer is far behind
                // every other, or the slot was swept already and a racing sweep
                // moved the mark back onto it. Either way, waiting GRACE would
                // hold the mark, and every sweep behind it, for nothing: `resolve`
                // decides it as safely now as later.
                _ if slot.index == low && head >= low + SCAN_BATCH => true,
                None => {
                    self.store.set(&slot.keys.seen(), &encode(&now)).await?;
                    stamped.push(slot);
                    continue;
                }
                Some(v) => now >= decode::<Millis>(&slot.keys.seen(), &v)?.saturating_add(GRACE),
            };
            if overdue && due.len() < want && self.resolve(&slot).await? {
                due.push((slot, 0));
            }
        }
        self.unstamp_taken(ring, &stamped).await
    }

    /// Takes back the stamps just written on slots that turn out to be taken:
    /// claim 0 written since (its taker was between its ticket and its claim,
    /// as the newest slots often are), or below the mark (finished and swept
    /// meanwhile; a sweep moves the mark before it deletes, so a stamp that
    /// landed after the delete is seen here). Left there, such a stamp is a
    /// key nobody deletes.
    async fn unstamp_taken(&self, ring: &RingKeys, stamped: &[Slot]) -> Result<()> {
        if stamped.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<String> = stamped.iter().map(|s| s.keys.claim(0)).collect();
        keys.push(ring.low());
        let mut found = self.store.get_many(&keys).await?;
        let low = decode_low(ring, found.pop().flatten())?;
        let taken: Vec<String> = stamped
            .iter()
            .zip(found)
            .filter(|(slot, first)| slot.index < low || first.is_some())
            .map(|(slot, _)| slot.keys.seen())
            .collect();
        if !taken.is_empty() {
            self.store.delete_many(&taken).await?;
        }
        Ok(())
    }

    /// Sweeps the runs of finished slots from `from` (the mark, just moved past a
    /// whole finished batch), a few batches at most. The mark moves past slots
    /// finished out of order only in scans; after a slot held it back, this lets
    /// it catch up with the head in a few scans rather than one batch per scan.
    async fn sweep_ahead(&self, ring: &RingKeys, from: u64, head: u64) -> Result<()> {
        let mut start = from;
        for _ in 0..SWEEP_AHEAD {
            if start > head {
                break;
            }
            let end = head.min(start + SCAN_BATCH - 1);
            let keys: Vec<String> = (start..=end).map(|i| ring.slot(i).state()).collect();
            let mut run = Vec::new();
            for (i, raw) in (start..=end).zip(self.store.get_many(&keys).await?) {
                match raw.map(|v| decode::<SlotState>(&ring.slot(i).state(), &v)).transpose()? {
                    Some(finished @ (SlotState::Done { .. } | SlotState::Dead)) => {
                        run.push((i, finished));
                    }
                    _ => break,
                }
            }
            self.sweep(ring, &run).await?;
            if run.len() as u64 != SCAN_BATCH {
                break;
            }
            start = end + 1;
        }
        Ok(())
    }

    /// Decides a slot behind the head that no consumer decided within the grace
    /// period: stands in for the vanished consumer. Returns whether the slot holds
    /// a committed message ready to be claimed like any other (`false` also while
    /// its writer may still be marking it lost).
    async fn resolve(&self, slot: &Slot) -> Result<bool> {
        let mut s = self.store.increment(&slot.keys.commit(), 0).await?;
        if s == 0 {
            s = self.store.increment(&slot.keys.commit(), HOLDER).await?;
        }
        if committed(s) {
            // A writer that lost the slot looks committed until it marks it; it
            // marks before its deadline or never retries, so wait out GRACE after
            // its ticket before delivering.
            return match self.read_record_only(slot).await? {
                Some(rec) => Ok(self.env.now() >= rec.enqueued_at.saturating_add(GRACE)),
                None => {
                    self.dead(slot).await?;
                    Ok(false)
                }
            };
        }
        self.dead(slot).await?;
        Ok(false)
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
