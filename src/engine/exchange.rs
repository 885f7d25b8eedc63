//! Exchanges: `direct`, `topic` and `fanout` routing of one published message
//! to every bound queue (AMQP semantics, as in RabbitMQ).
//!
//! An exchange is a metadata value at `{ns}//x/{x}` (kind, creation time, or a
//! tombstone) and an incarnation counter that delete moves, so a re-created
//! exchange starts with no bindings. Its bindings are a **log** per incarnation:
//! bind and unbind each take a ticket `n = increment(len, 1)` and write entry `n`
//! = `(queue, key, bound)`. The binding set is the log replayed in ticket order,
//! the last entry of each `(queue, key)` pair winning. The ticket is the
//! operation's linearisation point: concurrent binds and unbinds of one pair end
//! in the order their tickets say, whatever order their entries land in; an
//! entry not written yet (its writer is at work or died) is skipped, exactly as
//! if the operation had not happened. No read-modify-write of a shared value, so
//! no concurrent change is lost.
//!
//! Publishing reads the metadata, the log length and the entries (one
//! `get_many`), then sends to each matching queue once (a queue bound twice gets
//! one copy, as in AMQP). A publish is not atomic across queues: a host that dies
//! half-way has stored the message in some queues only, and its client got no
//! answer. With an `Idempotency-Key` the retry stores it in the rest and nothing
//! twice (each queue remembers the key); without one a retry may duplicate.
//! A binding lives as long as the queue it binds, as in RabbitMQ: each entry
//! records which creation of the queue it bound (the queue's list `index`, new
//! with every creation and kept by purge and reconfiguration), and a binding
//! whose queue was deleted, or deleted and created again, is dropped when the
//! set is read (one `get_many` of the bound queues' metadata): a re-created
//! queue starts with no bindings. The log is capped at [`MAX_BINDING_CHANGES`] entries per exchange
//! incarnation so a publish costs a bounded number of store calls; re-create the
//! exchange to start a fresh log. Delete deletes the old incarnation's log.

use super::keys;
use super::{Engine, Env, Error, NewMessage, Result, Sent};
use crate::model::{Millis, Name};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Most bind and unbind operations one exchange incarnation takes.
pub const MAX_BINDING_CHANGES: u64 = 1000;
/// Longest routing key or binding pattern (AMQP's short string).
pub const MAX_ROUTING_KEY: usize = 255;

/// How an exchange matches routing keys to bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeKind {
    /// The binding key equals the routing key.
    Direct,
    /// The binding key is a pattern of `.`-separated words: `*` matches one
    /// word, `#` zero or more.
    Topic,
    /// Every bound queue, whatever the key.
    Fanout,
}

impl ExchangeKind {
    /// Whether a binding with `pattern` takes a message with `key`.
    pub fn matches(self, pattern: &str, key: &str) -> bool {
        match self {
            Self::Direct => pattern == key,
            Self::Fanout => true,
            Self::Topic => topic_matches(pattern, key),
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Direct => "direct",
            Self::Topic => "topic",
            Self::Fanout => "fanout",
        })
    }
}

impl FromStr for ExchangeKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "direct" => Ok(Self::Direct),
            "topic" => Ok(Self::Topic),
            "fanout" => Ok(Self::Fanout),
            _ => Err(Error::BadRequest(format!(
                "exchange type {s:?} is not one of direct, topic, fanout"
            ))),
        }
    }
}

/// A binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The bound queue.
    pub queue: String,
    /// Routing key (direct), pattern (topic), ignored (fanout).
    pub key: String,
}

/// An exchange and its current bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeInfo {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: ExchangeKind,
    /// When it was created.
    pub created_at: Millis,
    /// Bindings in the order they were (last) made.
    pub bindings: Vec<Binding>,
}

/// What a publish did in each queue it matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The queue.
    pub queue: String,
    /// The message stored there, or why it was not.
    pub outcome: Result<Sent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExchangeMeta {
    kind: ExchangeKind,
    created_at: Millis,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct LogEntry {
    #[serde(rename = "q")]
    queue: String,
    #[serde(rename = "k")]
    key: String,
    #[serde(rename = "b")]
    bound: bool,
    /// The list index of the queue that a bind bound (absent: written before
    /// the field existed, or by an unbind).
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
}

/// A live exchange resolved from its name.
struct Exchange {
    meta: ExchangeMeta,
    inc: u64,
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Creates exchange `x` of `kind`, or confirms it exists with that kind;
    /// returns it and whether it was created. A different kind is refused.
    pub async fn put_exchange(
        &self,
        ns: &Name,
        x: &Name,
        kind: ExchangeKind,
    ) -> Result<(ExchangeInfo, bool)> {
        if let Some(ex) = self.exchange(ns, x).await? {
            if ex.meta.kind != kind {
                return Err(Error::ExchangeKindMismatch {
                    name: x.to_string(),
                    kind: ex.meta.kind.to_string(),
                });
            }
            return Ok((self.info(ns, x, &ex).await?, false));
        }
        let meta = ExchangeMeta { kind, created_at: self.env.now(), deleted: false };
        self.write_exchange(ns, x, &meta).await?;
        let info = ExchangeInfo {
            name: x.to_string(),
            kind,
            created_at: meta.created_at,
            bindings: Vec::new(),
        };
        Ok((info, true))
    }

    /// Exchange `x` with its bindings.
    pub async fn get_exchange(&self, ns: &Name, x: &Name) -> Result<ExchangeInfo> {
        let ex = self.live_exchange(ns, x).await?;
        self.info(ns, x, &ex).await
    }

    /// Deletes exchange `x` and its bindings.
    pub async fn delete_exchange(&self, ns: &Name, x: &Name) -> Result<()> {
        let ex = self.live_exchange(ns, x).await?;
        self.store.increment(&keys::exchange_incarnation(ns, x), 1).await?;
        self.write_exchange(ns, x, &ExchangeMeta { deleted: true, ..ex.meta }).await?;
        // The old incarnation's log is never read again: delete it (at most
        // MAX_BINDING_CHANGES entries, one call). A bind of the old incarnation
        // still at work may write an entry after this; it stays.
        let len_key = keys::binding_log_len(ns, x, ex.inc);
        let len = self.store.increment(&len_key, 0).await?.clamp(0, MAX_BINDING_CHANGES as i64);
        let mut log: Vec<String> =
            (1..=len as u64).map(|n| keys::binding_log_entry(ns, x, ex.inc, n)).collect();
        log.push(len_key);
        Ok(self.store.delete_many(&log).await?)
    }

    /// Binds queue `q` to exchange `x` with `key` (idempotent).
    pub async fn bind(&self, ns: &Name, x: &Name, q: &Name, key: &str) -> Result<()> {
        let queue = self.queue(ns, q).await?;
        self.log_binding(ns, x, q, key, Some(queue.meta.index)).await
    }

    /// Removes the binding of `q` to `x` with `key` (idempotent).
    pub async fn unbind(&self, ns: &Name, x: &Name, q: &Name, key: &str) -> Result<()> {
        self.log_binding(ns, x, q, key, None).await
    }

    /// Sends `message` to every queue bound to `x` whose binding matches `key`,
    /// once per queue; returns the outcome per matched queue (none matched is
    /// not an error).
    pub async fn publish(
        &self,
        ns: &Name,
        x: &Name,
        key: &str,
        message: NewMessage,
    ) -> Result<Vec<Routed>> {
        check_key(key)?;
        let ex = self.live_exchange(ns, x).await?;
        let mut queues: Vec<&str> = Vec::new();
        let bindings = self.bindings(ns, x, ex.inc).await?;
        for b in &bindings {
            if ex.meta.kind.matches(&b.key, key) && !queues.contains(&b.queue.as_str()) {
                queues.push(&b.queue);
            }
        }
        let mut out = Vec::with_capacity(queues.len());
        for queue in queues {
            let Ok(q) = Name::new(queue) else { continue };
            let outcome = match self.send(ns, &q, vec![message.clone()]).await {
                Ok(mut sent) => sent.remove(0),
                Err(Error::QueueNotFound(_)) => continue,
                Err(e) => Err(e),
            };
            out.push(Routed { queue: queue.to_owned(), outcome });
        }
        Ok(out)
    }

    async fn exchange(&self, ns: &Name, x: &Name) -> Result<Option<Exchange>> {
        let key = keys::exchange_meta(ns, x);
        let Some(v) = self.store.get(&key).await? else { return Ok(None) };
        let meta: ExchangeMeta = serde_json::from_slice(&v).map_err(|_| Error::Corrupt(key))?;
        if meta.deleted {
            return Ok(None);
        }
        let inc = self.store.increment(&keys::exchange_incarnation(ns, x), 0).await?.max(0) as u64;
        Ok(Some(Exchange { meta, inc }))
    }

    async fn live_exchange(&self, ns: &Name, x: &Name) -> Result<Exchange> {
        self.exchange(ns, x).await?.ok_or_else(|| Error::ExchangeNotFound(x.to_string()))
    }

    async fn write_exchange(&self, ns: &Name, x: &Name, meta: &ExchangeMeta) -> Result<()> {
        let v = serde_json::to_vec(meta).map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(self.store.set(&keys::exchange_meta(ns, x), &v).await?)
    }

    async fn info(&self, ns: &Name, x: &Name, ex: &Exchange) -> Result<ExchangeInfo> {
        Ok(ExchangeInfo {
            name: x.to_string(),
            kind: ex.meta.kind,
            created_at: ex.meta.created_at,
            bindings: self.bindings(ns, x, ex.inc).await?,
        })
    }

    async fn log_binding(
        &self,
        ns: &Name,
        x: &Name,
        q: &Name,
        key: &str,
        bound: Option<u64>,
    ) -> Result<()> {
        check_key(key)?;
        let ex = self.live_exchange(ns, x).await?;
        let n = self.store.increment(&keys::binding_log_len(ns, x, ex.inc), 1).await? as u64;
        if n > MAX_BINDING_CHANGES {
            return Err(Error::TooManyBindingChanges(x.to_string()));
        }
        let entry = LogEntry {
            queue: q.to_string(),
            key: key.to_owned(),
            bound: bound.is_some(),
            index: bound,
        };
        let v = serde_json::to_vec(&entry).map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(self.store.set(&keys::binding_log_entry(ns, x, ex.inc, n), &v).await?)
    }

    /// The binding set of incarnation `inc`: the log replayed in ticket order,
    /// less the bindings whose queue is gone or was created again since.
    async fn bindings(&self, ns: &Name, x: &Name, inc: u64) -> Result<Vec<Binding>> {
        let len = self.store.increment(&keys::binding_log_len(ns, x, inc), 0).await?;
        let len = (len.max(0) as u64).min(MAX_BINDING_CHANGES);
        if len == 0 {
            return Ok(Vec::new());
        }
        let entry_keys: Vec<String> =
            (1..=len).map(|n| keys::binding_log_entry(ns, x, inc, n)).collect();
        let mut set: Vec<(Binding, Option<u64>)> = Vec::new();
        for e in self.store.get_many(&entry_keys).await?.into_iter().flatten() {
            let Ok(e) = serde_json::from_slice::<LogEntry>(&e) else { continue };
            set.retain(|(b, _)| b.queue != e.queue || b.key != e.key);
            if e.bound {
                set.push((Binding { queue: e.queue, key: e.key }, e.index));
            }
        }
        let live = self.live_indexes(ns, set.iter().map(|(b, _)| b.queue.as_str())).await?;
        Ok(set
            .into_iter()
            .filter(|(b, index)| {
                live.get(&b.queue).is_some_and(|live| index.is_none_or(|i| i == *live))
            })
            .map(|(b, _)| b)
            .collect())
    }
}

fn check_key(key: &str) -> Result<()> {
    if key.len() > MAX_ROUTING_KEY {
        return Err(Error::BadRequest(format!(
            "routing key of {} bytes is over the {MAX_ROUTING_KEY}-byte limit",
            key.len()
        )));
    }
    Ok(())
}

/// AMQP topic matching: `.`-separated words; `*` is exactly one word, `#` zero
/// or more. Dynamic programming over (pattern word, key word), so no pattern
/// makes it backtrack exponentially.
fn topic_matches(pattern: &str, key: &str) -> bool {
    let pat: Vec<&str> = pattern.split('.').collect();
    let words: Vec<&str> = key.split('.').collect();
    // reach[j]: the pattern words so far can match exactly the first j key words.
    let mut reach = vec![false; words.len() + 1];
    reach[0] = true;
    for p in pat {
        let mut next = vec![false; words.len() + 1];
        for j in 0..=words.len() {
            if !reach[j] {
                continue;
            }
            match p {
                "#" => next[j..].iter_mut().for_each(|r| *r = true),
                "*" if j < words.len() => next[j + 1] = true,
                w if j < words.len() && words[j] == w => next[j + 1] = true,
                _ => {}
            }
        }
        reach = next;
    }
    reach[words.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns_match_like_amqp() {
        let cases = [
            ("a.b.c", "a.b.c", true),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.b.b.c", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("#", "", true),
            ("#", "x.y", true),
            ("#.c", "c", true),
            ("#.c", "a.b.c", true),
            ("#.c", "a.b.d", false),
            ("*", "a.b", false),
            ("a.#.z", "a.z", true),
            ("a.#.z", "a.b.c.z", true),
            ("a.#.z", "a.b.c", false),
            ("stock.usd", "stock.eur", false),
            ("#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.x", &"a.".repeat(100), false),
        ];
        for (p, k, want) in cases {
            assert_eq!(topic_matches(p, k), want, "{p} vs {k}");
        }
    }

    #[test]
    fn kinds_parse_and_direct_and_fanout_match() {
        assert_eq!("topic".parse::<ExchangeKind>().unwrap(), ExchangeKind::Topic);
        assert!("headers".parse::<ExchangeKind>().is_err());
        assert!(ExchangeKind::Direct.matches("user", "user"));
        assert!(!ExchangeKind::Direct.matches("user", "users"));
        assert!(ExchangeKind::Fanout.matches("", "anything"));
    }
}
