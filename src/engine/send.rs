//! Sending: validation, capacity reservation and the push (idempotency keys:
//! `idem.rs`).

use super::idem::{check_idempotency_key, Idem};
use super::queues::Queue;
use super::slot::{held, split_held, CHUNK, INLINE_BODY};
use super::{Engine, Env, Error, NewMessage, Result, Sent};
use crate::model::{MessageId, MessageRecord, Name, QueueConfig, MAX_BATCH, MAX_BODY_LEN};
use crate::store::Store;

/// Longest Content-Type kept with a message, in bytes.
pub const MAX_CONTENT_TYPE: usize = 255;

/// The one rule for a Content-Type kept with a message, however it comes (a send,
/// an overwrite, a header or a JSON field, any dialect): printable ASCII, so any
/// HTTP response can carry it back as a header, and at most [`MAX_CONTENT_TYPE`]
/// bytes.
pub(crate) fn check_content_type(ct: &str) -> Result<()> {
    if ct.len() > MAX_CONTENT_TYPE {
        return Err(Error::BadRequest(format!(
            "content type is {} bytes long; the limit is {MAX_CONTENT_TYPE}",
            ct.len()
        )));
    }
    if !ct.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(Error::BadRequest(
            "content type must be printable ASCII (no tabs or control characters)".into(),
        ));
    }
    Ok(())
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
            check_content_type(ct)?;
        }
        if let Some(key) = &m.idempotency_key {
            check_idempotency_key(key)?;
        }
        let now = self.env.now();
        let clean = match &m.idempotency_key {
            None => false,
            Some(key) => match self.idem_begin(&queue.keys, key, now).await? {
                Idem::Duplicate(id) => return Ok(Sent { id, duplicate: true }),
                Idem::Owner { clean } => clean,
            },
        };
        let rec = MessageRecord {
            id: MessageId::new(now, 0, 0, 0),
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
            self.idem_sent(&queue.keys, key, id, clean, now).await?;
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
}
