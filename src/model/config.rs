//! Queue configuration, its defaults (SQS's where SQS has one) and its bounds.
//!
//! Durations are whole seconds on the wire, like SQS attributes. A `PUT` replaces
//! the whole configuration: omitted fields take their defaults, so the same body
//! always yields the same queue.

use super::Name;
use serde::{Deserialize, Serialize};

/// Most partitions a queue may have (Queuey's limit; ids have room for 4096).
pub const MAX_PARTITIONS: u16 = 200;

/// Fewest seconds a message lives.
pub const MIN_TTL: u64 = 1;
/// Most seconds a message lives: 2^25 (about 388 days), Queuey's limit, so no
/// dialect has to shorten a TTL its clients asked for; SQS's 14 days fit in it.
pub const MAX_TTL: u64 = 1 << 25;
/// Longest visibility timeout in seconds (12 hours, as SQS's).
pub const MAX_VISIBILITY: u64 = 12 * 3600;
/// Longest delay in seconds (15 minutes, as SQS's).
pub const MAX_DELAY: u64 = 15 * 60;
const MAX_RECEIVES: u32 = 1000;

/// How a queue behaves. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Most messages held at once; a send beyond it is refused (`None`: no limit).
    pub max_messages: Option<u64>,
    /// Most body bytes held at once (`None`: no limit).
    pub max_bytes: Option<u64>,
    /// Seconds a message lives unless its send says otherwise (default 4 days, max 14).
    pub message_ttl: u64,
    /// Seconds a received message stays hidden unless the receive says otherwise
    /// (default 30, max 12 hours).
    pub visibility_timeout: u64,
    /// Seconds a new message stays invisible (default 0, max 15 minutes).
    pub delay: u64,
    /// Deliveries after which an unacknowledged message moves to `dead_letter_queue`
    /// (or is dropped when that is unset); `None`: never.
    pub max_receives: Option<u32>,
    /// Queue (same namespace) that receives messages past `max_receives`.
    pub dead_letter_queue: Option<String>,
    /// FIFO lanes; can only grow (1..=200).
    pub partitions: u16,
    /// Whether anyone may browse the queue without a key.
    pub public: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_messages: None,
            max_bytes: None,
            message_ttl: 4 * 24 * 3600,
            visibility_timeout: 30,
            delay: 0,
            max_receives: None,
            dead_letter_queue: None,
            partitions: 1,
            public: false,
        }
    }
}

/// A configuration value out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { field, reason: reason.into() }
}

fn in_range(field: &'static str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(bad(field, format!("{v} is not between {lo} and {hi}")));
    }
    Ok(())
}

impl QueueConfig {
    /// Checks every bound; the first violation is reported.
    pub fn validate(&self) -> Result<(), ConfigError> {
        in_range("message_ttl", self.message_ttl, 1, MAX_TTL)?;
        in_range("visibility_timeout", self.visibility_timeout, 0, MAX_VISIBILITY)?;
        in_range("delay", self.delay, 0, MAX_DELAY)?;
        in_range("partitions", self.partitions.into(), 1, MAX_PARTITIONS.into())?;
        if let Some(n) = self.max_receives {
            in_range("max_receives", n.into(), 1, MAX_RECEIVES.into())?;
        }
        if self.max_messages == Some(0) {
            return Err(bad("max_messages", "must be at least 1"));
        }
        if self.max_bytes == Some(0) {
            return Err(bad("max_bytes", "must be at least 1"));
        }
        if let Some(dlq) = &self.dead_letter_queue {
            Name::new(dlq).map_err(|e| bad("dead_letter_queue", e.to_string()))?;
        }
        Ok(())
    }

    /// Bounds a per-message delay in seconds.
    pub fn check_delay(secs: u64) -> Result<(), ConfigError> {
        in_range("delay", secs, 0, MAX_DELAY)
    }

    /// Bounds a per-message time to live in seconds.
    pub fn check_ttl(secs: u64) -> Result<(), ConfigError> {
        in_range("ttl", secs, MIN_TTL, MAX_TTL)
    }

    /// Bounds a visibility timeout in seconds.
    pub fn check_visibility(secs: u64) -> Result<(), ConfigError> {
        in_range("visibility_timeout", secs, 0, MAX_VISIBILITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_are_enforced() {
        assert!(QueueConfig::default().validate().is_ok());
        let c = QueueConfig { partitions: 0, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "partitions");
        let c = QueueConfig { delay: 901, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "delay");
        let c = QueueConfig { dead_letter_queue: Some("a b".into()), ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "dead_letter_queue");
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<QueueConfig>(r#"{"partitons":2}"#).is_err());
        let c: QueueConfig = serde_json::from_str(r#"{"partitions":2}"#).unwrap();
        assert_eq!(c.partitions, 2);
        assert_eq!(c.visibility_timeout, 30);
    }
}
