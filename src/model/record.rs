//! The stored form of a message: a small JSON header, then the body bytes.
//!
//! Layout: `[version: u8 = 1][header length: u32 BE][header JSON][inline body]`.
//! Bodies that do not fit beside the header in one store value (1 MiB) are kept in
//! `chunks` separate values of at most 1 MiB each and the record holds none of them.

use super::{MessageId, Millis};
use serde::{Deserialize, Serialize};

/// A message as stored in its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The message id (names the slot too).
    pub id: MessageId,
    /// When it was enqueued.
    pub enqueued_at: Millis,
    /// When it first becomes visible (enqueue time plus its delay).
    pub visible_at: Millis,
    /// When it expires unread.
    pub expires_at: Millis,
    /// Content-Type it was sent with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Body length in bytes.
    pub size: u64,
    /// How many deliveries it already had before it was moved here (dead-lettering).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prior_receives: u32,
    /// Number of body chunk values; 0 when the body is inline.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chunks: u32,
    /// The body when inline.
    #[serde(skip)]
    pub body: Vec<u8>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A stored value that is not a message record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt message record: {0}")]
pub struct RecordError(pub &'static str);

impl MessageRecord {
    /// Serialises the record (header and inline body).
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of plain fields into a Vec cannot fail.
        let header = serde_json::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(5 + header.len() + self.body.len());
        out.push(1);
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses a stored record; never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let (&version, rest) = bytes.split_first().ok_or(RecordError("empty"))?;
        if version != 1 || rest.len() < 4 {
            return Err(RecordError("unknown version"));
        }
        let (len, rest) = rest.split_at(4);
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if rest.len() < len {
            return Err(RecordError("truncated header"));
        }
        let (header, body) = rest.split_at(len);
        let mut rec: Self =
            serde_json::from_slice(header).map_err(|_| RecordError("bad header"))?;
        rec.body = body.to_vec();
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let rec = MessageRecord {
            id: MessageId::new(5, 0, 7),
            enqueued_at: 5,
            visible_at: 6,
            expires_at: 9,
            content_type: Some("text/plain".into()),
            size: 3,
            prior_receives: 0,
            chunks: 0,
            body: b"abc".to_vec(),
        };
        assert_eq!(MessageRecord::decode(&rec.encode()).unwrap(), rec);
        for junk in [&b""[..], b"\x01", b"\x02\0\0\0\0", b"\x01\0\0\0\x09{}", b"\x01\0\0\0\x02{}"] {
            assert!(MessageRecord::decode(junk).is_err());
        }
    }
}
