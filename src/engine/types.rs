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

/// Bytes of message bodies past which a pop, receive or browse takes no more
/// messages: its answer holds at most this much plus one message. Without it,
/// 100 messages of 4 MiB would make one answer of 400 MiB, more than a
/// component's memory may hold (a trap that loses the messages a pop had
/// already finished) and more than a server should buffer for one request.
pub const MAX_ANSWER_BYTES: usize = 8 << 20;

/// Whether `out` holds `limit` messages or [`MAX_ANSWER_BYTES`] of bodies.
pub(crate) fn answer_full(out: &[Message], limit: usize) -> bool {
    out.len() >= limit || out.iter().map(|m| m.body.len()).sum::<usize>() >= MAX_ANSWER_BYTES
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
///
/// Written `r{generation}.{partition}.{slot}.{claim}.{queue}`: decimal numbers
/// without leading zeros, and the queue's tag as 8 lowercase hex digits (a hash
/// of its namespace and name: `Queue::receipt_tag`), so a receipt given to the
/// wrong queue is refused instead of naming one of that queue's leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub(crate) generation: u64,
    pub(crate) partition: u16,
    pub(crate) slot: u64,
    pub(crate) claim: u64,
    pub(crate) queue: u32,
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Receipt { generation, partition, slot, claim, queue } = self;
        write!(f, "r{generation}.{partition}.{slot}.{claim}.{queue:08x}")
    }
}

impl FromStr for Receipt {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: &str = "not an edgeq receipt (r followed by four numbers and a queue tag)";
        let mut parts = s.strip_prefix('r').ok_or(BAD)?.split('.');
        // One spelling per number: no sign, no leading zero.
        let canonical =
            |p: &str| p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
        let mut next =
            || parts.next().filter(|p| canonical(p)).and_then(|p| p.parse::<u64>().ok()).ok_or(BAD);
        let (generation, partition, slot, claim) = (next()?, next()?, next()?, next()?);
        let tag = parts.next().filter(|t| {
            t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        let queue = tag.and_then(|t| u32::from_str_radix(t, 16).ok()).ok_or(BAD)?;
        if parts.next().is_some() || slot == 0 {
            return Err(BAD);
        }
        let partition = u16::try_from(partition).map_err(|_| BAD)?;
        Ok(Receipt { generation, partition, slot, claim, queue })
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

/// One page of a browse.
#[derive(Debug, Clone, Default)]
pub struct BrowsePage {
    /// The messages, in the order asked for.
    pub messages: Vec<Message>,
    /// Where the next page starts (its `after`), or `None` when this one reached
    /// the end. Usually the last message's id; after a long run of slots whose
    /// messages are gone, the id of the last slot read (a place, naming no
    /// message), so a page that is not full does not read as the end.
    pub next_after: Option<MessageId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_garbage_is_refused() {
        let r = Receipt { generation: 3, partition: 1, slot: 99, claim: 2, queue: 0xab };
        assert_eq!(r.to_string(), "r3.1.99.2.000000ab");
        assert_eq!(r.to_string().parse::<Receipt>().unwrap(), r);
        for bad in [
            "",
            "r",
            "r1.2.3.4",
            "r1.2.3.4.000000ab.5",
            "x1.2.3.4.000000ab",
            "r1.70000.3.4.000000ab",
            "r1.2.0.4.000000ab",
            "r01.2.3.4.000000ab",
            "r1.2.+3.4.000000ab",
            "r1.2.3.4.000000AB",
            "r1.2.3.4.ab",
            "r1.2.3.4.+00000ab",
        ] {
            assert!(bad.parse::<Receipt>().is_err(), "{bad}");
        }
    }
}
