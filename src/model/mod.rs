//! Pure data: names, message ids, queue configuration and stored records, with
//! their validation. Nothing here touches a store or the network.

mod config;
mod id;
mod name;
mod record;

pub use config::{
    ConfigError, QueueConfig, MAX_DELAY, MAX_PARTITIONS, MAX_TTL, MAX_VISIBILITY, MIN_TTL,
};
pub use id::MessageId;
pub use name::{Name, NameError};
pub use record::{MessageRecord, RecordError};

/// Milliseconds since the Unix epoch: the engine's only notion of time.
pub type Millis = u64;

/// Largest message body accepted (4 MiB).
pub const MAX_BODY_LEN: usize = 4 << 20;
/// Most messages in one batch send.
pub const MAX_BATCH: usize = 1000;
