//! The engine's one error type. Only `api` maps it to HTTP statuses.

use crate::model::{ConfigError, NameError};
use crate::store::StoreError;

/// Why an engine operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A name failed validation.
    #[error("invalid name: {0}")]
    InvalidName(#[from] NameError),
    /// A configuration or option value is out of bounds.
    #[error("invalid value: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// Some other argument is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such queue.
    #[error("queue {0} does not exist")]
    QueueNotFound(String),
    /// No such exchange.
    #[error("exchange {0} does not exist")]
    ExchangeNotFound(String),
    /// The exchange exists with another kind.
    #[error("exchange {name} exists with type {kind}")]
    ExchangeKindMismatch {
        /// The exchange.
        name: String,
        /// Its kind.
        kind: String,
    },
    /// The exchange's binding log is full.
    #[error("exchange {0} has had too many binding changes; delete and re-create it")]
    TooManyBindingChanges(String),
    /// The queue still holds messages (`if_empty`).
    #[error("queue {0} is not empty")]
    QueueNotEmpty(String),
    /// Partitions can only grow.
    #[error("partitions can only grow (from {from} to {to} refused)")]
    PartitionsShrink {
        /// Current count.
        from: u16,
        /// Requested count.
        to: u16,
    },
    /// The dead-letter queue names the queue itself or does not exist.
    #[error("dead-letter queue {0} does not exist or is the queue itself")]
    BadDeadLetterQueue(String),
    /// No such message (never was, or already gone).
    #[error("message {0} does not exist")]
    MessageNotFound(String),
    /// The body is over 4 MiB.
    #[error("message body of {0} bytes is over the 4 MiB limit")]
    MessageTooLarge(usize),
    /// `max_messages` or `max_bytes` would be exceeded.
    #[error("queue {0} is full")]
    QueueFull(String),
    /// The receipt is not for this queue or is malformed.
    #[error("invalid receipt: {0}")]
    InvalidReceipt(String),
    /// The lease ended and the message was leased again, acknowledged or deleted.
    #[error("receipt {0} is stale: its lease is over (it ran out, or was acked or nacked)")]
    StaleReceipt(String),
    /// A send with the same idempotency key is still in progress.
    #[error("a send with idempotency key {0:?} is still in progress")]
    IdempotencyInProgress(String),
    /// Too many concurrent writers made this call give up; retrying is safe.
    #[error("too much contention on queue {0}; retry")]
    Contention(String),
    /// The store failed; the call may be retried.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value could not be read back.
    #[error("corrupt stored value at {0}")]
    Corrupt(String),
    /// The queue is kept with a protocol this host does not speak (a host of
    /// another edgeq version shares the store).
    #[error(
        "queue {queue} is kept with edgeq protocol {found}; this host speaks protocol {}",
        super::queues::PROTOCOL
    )]
    ProtocolMismatch {
        /// The queue.
        queue: String,
        /// Its protocol.
        found: u32,
    },
}

/// Result of an engine operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
