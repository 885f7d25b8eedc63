//! What the engine's operations take and return.

use crate::model::{MessageId, Millis, QueueConfig};
use bytes::Bytes;
use std::fmt;
use std::str::FromStr;

/// A queue's configuration and, when asked for, its statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Queue name.
    pub name: String,
    /// Its configuration.
    pub config: QueueConfig,
    /// When it was created.
    pub created_at: Millis,
    /// Counts, when requested.
    pub stats: Option<QueueStats>,
}

/// Counts kept beside every change with `increment`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages held (visible, delayed or in flight).
    pub messages: u64,
    /// Body bytes held.
    pub bytes: u64,
    /// Messages leased by a receive and not yet acknowledged (counted when the
    /// lease ends, so an expired lease counts until someone notices it).
    pub in_flight: u64,
    /// Messages moved to the dead-letter queue (or dropped) after `max_receives`.
    pub dead_lettered: u64,
    /// Messages sent with a delay and not delivered yet (approximate, like SQS's
    /// `ApproximateNumberOfMessagesDelayed`: counted from the send until the first
    /// delivery, expiry or delete).
    pub delayed: u64,
    /// Age of the oldest message held, in milliseconds.
    pub oldest_age_ms: Option<u64>,
}

/// One page of a queue listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePage {
    /// Queues in creation order.
    pub queues: Vec<QueueInfo>,
    /// Pass back as `cursor` for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// Raw body, kept and returned as sent.
    pub body: Bytes,
    /// Its Content-Type.
    pub content_type: Option<String>,
    /// Seconds before it becomes visible (queue default when `None`).
    pub delay: Option<u64>,
    /// Seconds it lives (queue default when `None`).
    pub ttl: Option<u64>,
    /// Partition (0-based); chosen at random when `None`.
    pub partition: Option<u16>,
    /// Deduplication key: a repeat within the window returns the first id.
    pub idempotency_key: Option<String>,
}

/// The outcome of one sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Id of the stored message (of the first one for a duplicate).
    pub id: MessageId,
    /// Whether the idempotency key had been seen: nothing new was stored.
    pub duplicate: bool,
}

/// A delivered or browsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// The body as sent.
    pub body: Bytes,
    /// The Content-Type it was sent with.
    pub content_type: Option<String>,
    /// When it was enqueued.
    pub enqueued_at: Millis,
    /// When it expires.
    pub expires_at: Millis,
    /// Deliveries so far, this one included (0 when browsing a never-received message).
    pub receive_count: u32,
    /// The lease's receipt, for received messages.
    pub receipt: Option<Receipt>,
    /// When the lease ends, for received messages.
    pub lease_until: Option<Millis>,
}

/// Names one lease of one message: refused once a later lease exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub(crate) generation: u64,
    pub(crate) partition: u16,
    pub(crate) slot: u64,
    pub(crate) claim: u64,
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}.{}.{}.{}", self.generation, self.partition, self.slot, self.claim)
    }
}

impl FromStr for Receipt {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: &str = "not an edgeq receipt";
        let mut parts = s.strip_prefix('r').ok_or(BAD)?.split('.');
        let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok()).ok_or(BAD);
        let r = Receipt {
            generation: next()?,
            partition: u16::try_from(next()?).map_err(|_| BAD)?,
            slot: next()?,
            claim: next()?,
        };
        if parts.next().is_some() || r.slot == 0 {
            return Err(BAD);
        }
        Ok(r)
    }
}

/// Options of a receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// Most messages to lease (1..=100).
    pub count: usize,
    /// Lease length in seconds (queue default when `None`).
    pub visibility_timeout: Option<u64>,
    /// Only this partition.
    pub partition: Option<u16>,
}

/// Browse order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    #[default]
    Ascending,
    /// Newest first.
    Descending,
}

/// Options of a browse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowseOptions {
    /// Start after this message (exclusive).
    pub after: Option<MessageId>,
    /// Most messages to return (1..=1000).
    pub limit: usize,
    /// Direction.
    pub order: Order,
    /// Only this partition (else all, partition by partition).
    pub partition: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_garbage_is_refused() {
        let r = Receipt { generation: 3, partition: 1, slot: 99, claim: 2 };
        assert_eq!(r.to_string().parse::<Receipt>().unwrap(), r);
        for bad in ["", "r", "r1.2.3", "r1.2.3.4.5", "x1.2.3.4", "r1.70000.3.4", "r1.2.0.4"] {
            assert!(bad.parse::<Receipt>().is_err(), "{bad}");
        }
    }
}
