//! The key layout, in one place.
//!
//! A queue incarnation's keys all start with `{ns}/{queue}/{incarnation}`; a
//! partition's with that plus `/{p}`; a slot's with that plus `/{slot}`. Names use
//! `[A-Za-z0-9._-]`, so `/` cannot be forged by a name, and the longest key stays
//! under 250 bytes.
//!
//! A pop builds about twenty of these keys: they are joined with [`key`] and
//! [`key_n`] (one allocation, no `core::fmt`), which costs a fraction of a
//! `format!` on keys this short.

use crate::model::Name;

/// `prefix` followed by `suffix`, in a string with room for a number after it.
fn key(prefix: &str, suffix: &str) -> String {
    let mut k = String::with_capacity(prefix.len() + suffix.len() + 20);
    k.push_str(prefix);
    k.push_str(suffix);
    k
}

/// `prefix`, `suffix` and then `n` in decimal.
fn key_n(prefix: &str, suffix: &str, n: u64) -> String {
    let mut k = key(prefix, suffix);
    k.push_str(itoa::Buffer::new().format(n));
    k
}

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

/// Queue-list entry `n` (a plain value: the queue name; the metadata's `index`
/// says whether the entry is the queue's live one).
pub fn list_entry(ns: &Name, n: u64) -> String {
    format!("{ns}//list/{n}")
}

/// Counter: incarnations of a namespace's queues to reclaim (`reclaim.rs`).
pub fn graveyard_len(ns: &Name) -> String {
    format!("{ns}//gy")
}

/// Graveyard entry `n` (a plain value: the incarnation, its queue and more).
pub fn graveyard(ns: &Name, n: u64) -> String {
    format!("{ns}//gy/{n}")
}

/// Value: how far reclaiming the namespace's graveyard got.
pub fn graveyard_cursor(ns: &Name) -> String {
    format!("{ns}//gyc")
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
    inc: u64,
}

impl QueueKeys {
    /// Keys of incarnation `inc` of queue `q`.
    pub fn new(ns: &Name, q: &Name, inc: u64) -> Self {
        Self { prefix: format!("{ns}/{q}/{inc}"), inc }
    }

    /// Counter: messages and body bytes held, in one value so one increment
    /// changes both (messages × 2^40 + bytes).
    pub fn held(&self) -> String {
        key(&self.prefix, "/n")
    }
    /// Counter: messages under a receive lease.
    pub fn in_flight(&self) -> String {
        key(&self.prefix, "/f")
    }
    /// Counter: messages sent with a delay and not delivered yet.
    pub fn delayed(&self) -> String {
        key(&self.prefix, "/y")
    }
    /// Counter: messages dead-lettered.
    pub fn dead_lettered(&self) -> String {
        key(&self.prefix, "/x")
    }
    /// Counter deciding the first sender of an idempotency key.
    pub fn idem_decision(&self, key: &str) -> String {
        format!("{}/i/{key}", self.prefix)
    }
    /// Value: the id the first sender of an idempotency key stored.
    pub fn idem_value(&self, key: &str) -> String {
        format!("{}/I/{key}", self.prefix)
    }
    /// Counter: entries logged in bucket `b` of the idempotency log (`idem.rs`).
    pub fn idem_log_len(&self, b: u64) -> String {
        key_n(&self.prefix, "/il/", b)
    }
    /// Value: entry `n` of bucket `b` of the idempotency log, an idempotency key.
    pub fn idem_log(&self, b: u64, n: u64) -> String {
        let mut k = self.idem_log_len(b);
        k.push('/');
        k.push_str(itoa::Buffer::new().format(n));
        k
    }
    /// Value: the next idempotency log entry to clean (`b,n`).
    pub fn idem_cleaned(&self) -> String {
        key(&self.prefix, "/ilc")
    }
    /// Keys of partition `p`.
    pub fn ring(&self, p: u16) -> RingKeys {
        RingKeys { prefix: key_n(&self.prefix, "/", p.into()), partition: p, inc: self.inc }
    }
}

/// Keys of one partition's ticket ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingKeys {
    prefix: String,
    /// The partition.
    pub partition: u16,
    /// The queue's incarnation (message ids carry its low bits).
    pub inc: u64,
}

impl RingKeys {
    /// Counter: last ticket handed to a writer.
    pub fn tail(&self) -> String {
        key(&self.prefix, "/t")
    }
    /// Counter: last ticket handed to a consumer.
    pub fn head(&self) -> String {
        key(&self.prefix, "/h")
    }
    /// Value: every slot below it is finished (a hint that only moves forward in
    /// effect; a stale write only makes scans start earlier).
    pub fn low(&self) -> String {
        key(&self.prefix, "/lo")
    }
    /// Counter: where the next scan behind the head starts.
    pub fn scan(&self) -> String {
        key(&self.prefix, "/sc")
    }
    /// Value: fences listed for deletion once their writers cannot come (`fences.rs`).
    pub fn fences(&self) -> String {
        key(&self.prefix, "/fe")
    }
    /// Keys of slot `i`.
    pub fn slot(&self, i: u64) -> SlotKeys {
        SlotKeys { prefix: key_n(&self.prefix, "/", i) }
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
        key(&self.prefix, "/m")
    }
    /// Value: body chunk `j` of a large message.
    pub fn chunk(&self, j: u32) -> String {
        key_n(&self.prefix, "/b", j.into())
    }
    /// Counter: commit decision between the writer and the first consumer.
    pub fn commit(&self) -> String {
        key(&self.prefix, "/s")
    }
    /// Counter: claim numbers handed out.
    pub fn claims(&self) -> String {
        key(&self.prefix, "/c")
    }
    /// Value: what claim `k` intends or did.
    pub fn claim(&self, k: u64) -> String {
        key_n(&self.prefix, "/r", k)
    }
    /// Counter: deliveries so far.
    pub fn deliveries(&self) -> String {
        key(&self.prefix, "/d")
    }
    /// Value: the slot's state as last decided (a hint for scans).
    pub fn state(&self) -> String {
        key(&self.prefix, "/z")
    }
    /// Value: when a scan or take first saw the slot undecided. Kept apart from
    /// `state` so that a stamp written late never overwrites a decision.
    pub fn seen(&self) -> String {
        key(&self.prefix, "/u")
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
