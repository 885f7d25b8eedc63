//! The queue engine: every rule of edgeq, over a [`Store`] and an [`Env`].
//!
//! PROTOCOL DOCS: written with the implementation (see below).

mod error;
mod types;

pub use error::{Error, Result};
pub use types::*;

use crate::model::{MessageId, Millis, Name, QueueConfig};
use crate::store::Store;
use bytes::Bytes;
use std::future::Future;

/// What the host lends the engine: wall-clock time, randomness and sleeping.
///
/// `now` may differ between hosts by a small skew and may repeat; it must not run
/// backwards by more than that skew.
pub trait Env: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
    /// A random 64-bit number.
    fn random(&self) -> u64;
    /// Waits `millis` (used only by long polling).
    fn sleep(&self, millis: u64) -> impl Future<Output = ()> + Send;
}

/// The queue engine over store `S` and host environment `E`.
pub struct Engine<S, E> {
    store: S,
    env: E,
}

impl<S: Store, E: Env> Engine<S, E> {
    /// An engine over `store` with `env`.
    pub fn new(store: S, env: E) -> Self {
        Self { store, env }
    }

    /// The store this engine runs on.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The host environment.
    pub fn env(&self) -> &E {
        &self.env
    }

    /// Creates or replaces queue `q`; returns it and whether it was created.
    pub async fn put_queue(
        &self,
        ns: &Name,
        q: &Name,
        config: QueueConfig,
    ) -> Result<(QueueInfo, bool)> {
        let _ = (ns, q, config);
        unimplemented!()
    }
    /// Queue `q` with its stats.
    pub async fn get_queue(&self, ns: &Name, q: &Name) -> Result<QueueInfo> {
        let _ = (ns, q);
        unimplemented!()
    }
    /// Lists queues in creation order, `limit` per page, optionally with stats.
    pub async fn list_queues(
        &self,
        ns: &Name,
        prefix: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
        details: bool,
    ) -> Result<QueuePage> {
        let _ = (ns, prefix, limit, cursor, details);
        unimplemented!()
    }
    /// Deletes queue `q` (refused with `QueueNotEmpty` when `if_empty` and it holds messages).
    pub async fn delete_queue(&self, ns: &Name, q: &Name, if_empty: bool) -> Result<()> {
        let _ = (ns, q, if_empty);
        unimplemented!()
    }
    /// Drops every message of `q`; returns how many it held.
    pub async fn purge_queue(&self, ns: &Name, q: &Name) -> Result<u64> {
        let _ = (ns, q);
        unimplemented!()
    }
    /// Sends messages (1..=1000); each gets its own outcome.
    pub async fn send(
        &self,
        ns: &Name,
        q: &Name,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Result<Sent>>> {
        let _ = (ns, q, messages);
        unimplemented!()
    }
    /// Removes and returns up to `count` messages (at-most-once).
    pub async fn pop(&self, ns: &Name, q: &Name, count: usize) -> Result<Vec<Message>> {
        let _ = (ns, q, count);
        unimplemented!()
    }
    /// Leases up to `opts.count` messages (at-least-once). Does not wait.
    pub async fn receive(&self, ns: &Name, q: &Name, opts: ReceiveOptions) -> Result<Vec<Message>> {
        let _ = (ns, q, opts);
        unimplemented!()
    }
    /// Acknowledges (deletes) leased messages.
    pub async fn ack(&self, ns: &Name, q: &Name, receipts: &[Receipt]) -> Result<Vec<Result<()>>> {
        let _ = (ns, q, receipts);
        unimplemented!()
    }
    /// Ends leases early; the messages become visible after `delay` seconds.
    pub async fn nack(
        &self,
        ns: &Name,
        q: &Name,
        receipts: &[Receipt],
        delay: u64,
    ) -> Result<Vec<Result<()>>> {
        let _ = (ns, q, receipts, delay);
        unimplemented!()
    }
    /// Extends leases to `visibility_timeout` seconds from now.
    pub async fn extend(
        &self,
        ns: &Name,
        q: &Name,
        receipts: &[Receipt],
        visibility_timeout: u64,
    ) -> Result<Vec<Result<()>>> {
        let _ = (ns, q, receipts, visibility_timeout);
        unimplemented!()
    }
    /// Reads messages without consuming them.
    pub async fn browse(&self, ns: &Name, q: &Name, opts: BrowseOptions) -> Result<Vec<Message>> {
        let _ = (ns, q, opts);
        unimplemented!()
    }
    /// Reads one message by id.
    pub async fn get_message(&self, ns: &Name, q: &Name, id: MessageId) -> Result<Message> {
        let _ = (ns, q, id);
        unimplemented!()
    }
    /// Replaces the body (and Content-Type) of a message, keeping its place.
    pub async fn put_message(
        &self,
        ns: &Name,
        q: &Name,
        id: MessageId,
        body: Bytes,
        content_type: Option<String>,
    ) -> Result<()> {
        let _ = (ns, q, id, body, content_type);
        unimplemented!()
    }
    /// Deletes one message by id.
    pub async fn delete_message(&self, ns: &Name, q: &Name, id: MessageId) -> Result<()> {
        let _ = (ns, q, id);
        unimplemented!()
    }
}
