//! Sending: validation, capacity reservation, idempotency keys, and the push.

use super::keys::QueueKeys;
use super::queues::Queue;
use super::slot::{decode, encode, held, split_held, Compact, CHUNK, INLINE_BODY};
use super::{Engine, Env, Error, NewMessage, Result, Sent};
use crate::model::{MessageId, MessageRecord, Millis, Name, QueueConfig, MAX_BATCH, MAX_BODY_LEN};
use crate::store::Store;

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 64;
/// Longest Content-Type kept.
pub const MAX_CONTENT_TYPE: usize = 256;
/// After this long, a first sender that recorded no outcome is presumed dead and
/// a repeat may take its place (far beyond any live writer's deadline).
const IDEM_TAKEOVER: Millis = 30_000;

/// What an idempotency key's first sender recorded (`P{millis}` or `M{id}`).
#[derive(Debug)]
enum IdemState {
    /// Sending since then.
    Pending(Millis),
    /// Sent as this message.
    Sent(MessageId),
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

enum Idem {
    /// This caller sends.
    Owner,
    /// Already sent as this id.
    Duplicate(MessageId),
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Sends messages (1..=1000); each gets its own outcome.
    pub async fn send(
        &self,
        ns: &Name,
        q: &Name,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Result<Sent>>> {
        if messages.is_empty() || messages.len() > MAX_BATCH {
            return Err(Error::BadRequest(format!("send 1..={MAX_BATCH} messages")));
        }
        let queue = self.queue(ns, q).await?;
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            out.push(self.send_one(&queue, m).await);
        }
        Ok(out)
    }

    async fn send_one(&self, queue: &Queue, m: NewMessage) -> Result<Sent> {
        let config = &queue.meta.config;
        if m.body.len() > MAX_BODY_LEN {
            return Err(Error::MessageTooLarge(m.body.len()));
        }
        let delay = m.delay.unwrap_or(config.delay);
        QueueConfig::check_delay(delay)?;
        let ttl = m.ttl.unwrap_or(config.message_ttl);
        QueueConfig::check_ttl(ttl)?;
        if m.partition.is_some_and(|p| p >= config.partitions) {
            return Err(Error::BadRequest(format!(
                "partition must be below {}",
                config.partitions
            )));
        }
        if let Some(ct) = &m.content_type {
            if ct.len() > MAX_CONTENT_TYPE || !ct.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(Error::BadRequest(
                    "content type is not printable ASCII of at most 256 bytes".into(),
                ));
            }
        }
        if let Some(key) = &m.idempotency_key {
            check_idempotency_key(key)?;
        }
        let now = self.env.now();
        if let Some(key) = &m.idempotency_key {
            if let Idem::Duplicate(id) = self.idem_begin(&queue.keys, key, now).await? {
                return Ok(Sent { id, duplicate: true });
            }
        }
        let rec = MessageRecord {
            id: MessageId::new(now, 0, 0),
            enqueued_at: now,
            visible_at: now + delay * 1000,
            expires_at: now + ttl * 1000,
            content_type: m.content_type,
            size: m.body.len() as u64,
            prior_receives: 0,
            chunks: 0,
            body: m.body.to_vec(),
        };
        let id = self.enqueue(queue, rec, m.partition).await?;
        if let Some(key) = &m.idempotency_key {
            let done = encode(&IdemState::Sent(id));
            self.store.set(&queue.keys.idem_value(key), &done).await?;
        }
        Ok(Sent { id, duplicate: false })
    }

    /// Reserves room for `rec` in `queue` and pushes it to `partition` (random
    /// when `None`); the reservation is returned if the push fails.
    pub(crate) async fn enqueue(
        &self,
        queue: &Queue,
        mut rec: MessageRecord,
        partition: Option<u16>,
    ) -> Result<MessageId> {
        let qk = &queue.keys;
        let config = &queue.meta.config;
        let delta = held(rec.size);
        let (n, b) = split_held(self.store.increment(&qk.held(), delta).await?);
        let full = config.max_messages.is_some_and(|max| n > max)
            || config.max_bytes.is_some_and(|max| b > max);
        let partitions = u64::from(config.partitions);
        let p = match partition {
            Some(p) => p,
            None if partitions == 1 => 0,
            None => (self.env.random() % partitions) as u16,
        };
        let body = if rec.body.len() > INLINE_BODY {
            rec.chunks = rec.body.len().div_ceil(CHUNK) as u32;
            std::mem::take(&mut rec.body)
        } else {
            Vec::new()
        };
        let pushed = match full {
            true => Err(Error::QueueFull(queue.name.to_string())),
            false => self.push(&qk.ring(p), &mut rec, &body).await,
        };
        match pushed {
            Err(_) => self.store.increment(&qk.held(), -delta).await.map(drop)?,
            Ok(_) if rec.delayed() => self.store.increment(&qk.delayed(), 1).await.map(drop)?,
            Ok(_) => {}
        }
        pushed
    }

    /// Decides whether this caller is the first sender of `key`.
    ///
    /// `increment(decision, 1) == 1` elects the first sender, which records
    /// `Pending` and later `Sent(id)`. A repeat returns the recorded id, or
    /// `IdempotencyInProgress` while the first sender works. If the first sender
    /// died before recording an outcome, a repeat takes over after
    /// `IDEM_TAKEOVER`: among concurrent repeats, the one whose increment returns
    /// exactly the value it observed plus one wins.
    async fn idem_begin(&self, qk: &QueueKeys, key: &str, now: Millis) -> Result<Idem> {
        let decision = qk.idem_decision(key);
        let value = qk.idem_value(key);
        let pending = encode(&IdemState::Pending(now));
        let seen = self.store.increment(&decision, 1).await?;
        if seen == 1 {
            self.store.set(&value, &pending).await?;
            return Ok(Idem::Owner);
        }
        let state = match self.store.get(&value).await? {
            Some(v) => decode::<IdemState>(&value, &v)?,
            None => {
                // The first sender died before recording anything: start its clock.
                self.store.set(&value, &encode(&IdemState::Pending(now))).await?;
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
                self.store.set(&value, &pending).await?;
                Ok(Idem::Owner)
            }
        }
    }
}

/// Idempotency keys: 1..=64 visible ASCII characters.
fn check_idempotency_key(key: &str) -> Result<()> {
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
