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

/// The rules a new message must keep in queue `config`, checked before any
/// message of a send is stored.
fn check(config: &QueueConfig, m: &NewMessage) -> Result<()> {
    if m.body.len() > MAX_BODY_LEN {
        return Err(Error::MessageTooLarge(m.body.len()));
    }
    QueueConfig::check_delay(m.delay.unwrap_or(config.delay))?;
    QueueConfig::check_ttl(m.ttl.unwrap_or(config.message_ttl))?;
    if m.partition.is_some_and(|p| p >= config.partitions) {
        return Err(Error::BadRequest(format!("partition must be below {}", config.partitions)));
    }
    if let Some(ct) = &m.content_type {
        check_content_type(ct)?;
    }
    if let Some(key) = &m.idempotency_key {
        check_idempotency_key(key)?;
    }
    Ok(())
}

impl<S: Store, E: Env> Engine<S, E> {
    /// Sends messages (1..=1000); each gets its own outcome. Every message is
    /// checked first: one that breaks a rule refuses the whole call (prefixed
    /// `messages[i]:` in a batch) and nothing is sent, so a client's mistake
    /// never leaves half a batch stored.
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
        for (i, m) in messages.iter().enumerate() {
            match check(&queue.meta.config, m) {
                Err(Error::BadRequest(e)) if messages.len() > 1 => {
                    return Err(Error::BadRequest(format!("messages[{i}]: {e}")));
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            out.push(self.send_one(&queue, m).await);
        }
        Ok(out)
    }

    /// Sends `m`, which passed [`check`].
    async fn send_one(&self, queue: &Queue, m: NewMessage) -> Result<Sent> {
        let config = &queue.meta.config;
        let delay = m.delay.unwrap_or(config.delay);
        let ttl = m.ttl.unwrap_or(config.message_ttl);
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
        let id = match self.enqueue(queue, rec, m.partition).await {
            Ok(id) => id,
            Err(e) => {
                // Refused outright (nothing stored): the key is free for the
                // next repeat at once, not after `IDEM_TAKEOVER`. After any
                // other failure the message may be in, and the key stays taken.
                if let (Some(key), Error::QueueFull(_) | Error::Contention(_)) =
                    (&m.idempotency_key, &e)
                {
                    let _ = self.idem_refused(&queue.keys, key, now).await;
                }
                return Err(e);
            }
        };
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
        let reserved = self.reserve(queue, delta).await?;
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
        let pushed = match reserved {
            false => Err(Error::QueueFull(queue.name.to_string())),
            true => self.push(&qk.ring(p), &mut rec, &body).await,
        };
        match pushed {
            Err(_) if reserved => self.store.increment(&qk.held(), -delta).await.map(drop)?,
            Ok(_) if rec.delayed() => self.store.increment(&qk.delayed(), 1).await.map(drop)?,
            _ => {}
        }
        pushed
    }

    /// Counts `delta` (one message and its bytes) into `queue`'s `held` unless
    /// that breaks a limit. Over one, it gives the count back, finishes messages
    /// that expired unconsumed at the heads (`reap_expired`) and, if it took
    /// any, tries once more. Whether room was reserved; nothing stays counted
    /// when not.
    async fn reserve(&self, queue: &Queue, delta: i64) -> Result<bool> {
        let config = &queue.meta.config;
        let mut reaped = false;
        loop {
            let (n, b) = split_held(self.store.increment(&queue.keys.held(), delta).await?);
            if !(config.max_messages.is_some_and(|max| n > max)
                || config.max_bytes.is_some_and(|max| b > max))
            {
                return Ok(true);
            }
            self.store.increment(&queue.keys.held(), -delta).await?;
            if reaped || !self.reap_expired(queue).await? {
                return Ok(false);
            }
            reaped = true;
        }
    }
}
