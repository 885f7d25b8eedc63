//! The key layout, in one place.
//!
//! A queue incarnation's keys all start with `{ns}/{queue}/{incarnation}`; a
//! partition's with that plus `/{p}`; a slot's with that plus `/{slot}`. Names use
//! `[A-Za-z0-9._-]`, so `/` cannot be forged by a name, and the longest key stays
//! under 250 bytes.

use crate::model::Name;

/// The key of a queue's metadata record (a plain value; a deleted queue keeps a
/// tombstone).
pub fn queue_meta(ns: &Name, q: &Name) -> String {
    format!("{ns}/{q}")
}

/// Counter: a queue's incarnation, moved by purge and delete.
pub fn incarnation(ns: &Name, q: &Name) -> String {
    format!("{ns}/{q}//inc")
}

/// Counter deciding which exclusive creator of incarnation `inc` of `q` wins.
pub fn creation(ns: &Name, q: &Name, inc: u64) -> String {
    format!("{ns}/{q}//new/{inc}")
}

/// Counter of queue-list entries in a namespace.
pub fn list_len(ns: &Name) -> String {
    format!("{ns}//list")
}

/// Queue-list entry `n` (a plain value: the queue name and incarnation).
pub fn list_entry(ns: &Name, n: u64) -> String {
    format!("{ns}//list/{n}")
}

/// The key of an exchange's metadata record (a deleted exchange keeps a
/// tombstone). `//x/` cannot be formed by queue keys, whose second part is a name.
pub fn exchange_meta(ns: &Name, x: &Name) -> String {
    format!("{ns}//x/{x}")
}

/// Counter: an exchange's incarnation, moved by delete (so a re-created
/// exchange starts with no bindings).
pub fn exchange_incarnation(ns: &Name, x: &Name) -> String {
    format!("{ns}//x/{x}//inc")
}

/// Counter of binding-log entries of incarnation `inc` of exchange `x`.
pub fn binding_log_len(ns: &Name, x: &Name, inc: u64) -> String {
    format!("{ns}//x/{x}/{inc}/n")
}

/// Binding-log entry `n` (a plain value: queue, routing key, bound or unbound).
pub fn binding_log_entry(ns: &Name, x: &Name, inc: u64, n: u64) -> String {
    format!("{ns}//x/{x}/{inc}/b/{n}")
}

/// Where a queue incarnation's keys live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    prefix: String,
}

impl QueueKeys {
    /// Keys of incarnation `inc` of queue `q`.
    pub fn new(ns: &Name, q: &Name, inc: u64) -> Self {
        Self { prefix: format!("{ns}/{q}/{inc}") }
    }

    /// Counter: messages and body bytes held, in one value so one increment
    /// changes both (messages × 2^40 + bytes).
    pub fn held(&self) -> String {
        format!("{}/n", self.prefix)
    }
    /// Counter: messages under a receive lease.
    pub fn in_flight(&self) -> String {
        format!("{}/f", self.prefix)
    }
    /// Counter: messages sent with a delay and not delivered yet.
    pub fn delayed(&self) -> String {
        format!("{}/y", self.prefix)
    }
    /// Counter: messages dead-lettered.
    pub fn dead_lettered(&self) -> String {
        format!("{}/x", self.prefix)
    }
    /// Counter deciding the first sender of an idempotency key.
    pub fn idem_decision(&self, key: &str) -> String {
        format!("{}/i/{key}", self.prefix)
    }
    /// Value: the id the first sender of an idempotency key stored.
    pub fn idem_value(&self, key: &str) -> String {
        format!("{}/I/{key}", self.prefix)
    }
    /// Keys of partition `p`.
    pub fn ring(&self, p: u16) -> RingKeys {
        RingKeys { prefix: format!("{}/{p}", self.prefix), partition: p }
    }
}

/// Keys of one partition's ticket ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingKeys {
    prefix: String,
    /// The partition.
    pub partition: u16,
}

impl RingKeys {
    /// Counter: last ticket handed to a writer.
    pub fn tail(&self) -> String {
        format!("{}/t", self.prefix)
    }
    /// Counter: last ticket handed to a consumer.
    pub fn head(&self) -> String {
        format!("{}/h", self.prefix)
    }
    /// Value: every slot below it is finished (a hint that only moves forward in
    /// effect; a stale write only makes scans start earlier).
    pub fn low(&self) -> String {
        format!("{}/lo", self.prefix)
    }
    /// Counter: where the next scan behind the head starts.
    pub fn scan(&self) -> String {
        format!("{}/sc", self.prefix)
    }
    /// Keys of slot `i`.
    pub fn slot(&self, i: u64) -> SlotKeys {
        SlotKeys { prefix: format!("{}/{i}", self.prefix) }
    }
}

/// Keys of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotKeys {
    prefix: String,
}

impl SlotKeys {
    /// Value: the message record.
    pub fn record(&self) -> String {
        format!("{}/m", self.prefix)
    }
    /// Value: body chunk `j` of a large message.
    pub fn chunk(&self, j: u32) -> String {
        format!("{}/b{j}", self.prefix)
    }
    /// Counter: commit decision between the writer and the first consumer.
    pub fn commit(&self) -> String {
        format!("{}/s", self.prefix)
    }
    /// Counter: claim numbers handed out.
    pub fn claims(&self) -> String {
        format!("{}/c", self.prefix)
    }
    /// Value: what claim `k` intends or did.
    pub fn claim(&self, k: u64) -> String {
        format!("{}/r{k}", self.prefix)
    }
    /// Counter: deliveries so far.
    pub fn deliveries(&self) -> String {
        format!("{}/d", self.prefix)
    }
    /// Value: the slot's state as last decided (a hint for scans).
    pub fn state(&self) -> String {
        format!("{}/z", self.prefix)
    }
    /// Value: when a scan or take first saw the slot undecided. Kept apart from
    /// `state` so that a stamp written late never overwrites a decision.
    pub fn seen(&self) -> String {
        format!("{}/u", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_key_fits() {
        let n = Name::new(&"n".repeat(80)).unwrap();
        let q = Name::new(&"q".repeat(80)).unwrap();
        let k = QueueKeys::new(&n, &q, u64::MAX).ring(4095).slot(u64::MAX).claim(u64::MAX);
        assert!(k.len() <= crate::store::MAX_KEY_LEN, "{}", k.len());
        let i = QueueKeys::new(&n, &q, u64::MAX).idem_value(&"k".repeat(64));
        assert!(i.len() <= crate::store::MAX_KEY_LEN, "{}", i.len());
    }
}
