//! The stored form of a message: a fixed binary header, then the body bytes.
//!
//! Layout (integers big-endian): `[version: u8 = 2][id: 16][enqueued_at: u64]
//! [visible_at: u64][expires_at: u64][size: u64][prior_receives: u32][chunks: u32]
//! [content-type length: u16, 0xFFFF = none][content type][inline body]`.
//! Every delivery reads a record, so the header is binary: decoding is a few
//! bounds-checked copies, no parser. Bodies that do not fit beside the header in
//! one store value (1 MiB) are kept in `chunks` separate values of at most 1 MiB
//! each and the record holds none of them.

use super::{MessageId, Millis};

/// A message as stored in its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub content_type: Option<String>,
    /// Body length in bytes.
    pub size: u64,
    /// How many deliveries it already had before it was moved here (dead-lettering).
    pub prior_receives: u32,
    /// Number of body chunk values; 0 when the body is inline.
    pub chunks: u32,
    /// The body when inline.
    pub body: Vec<u8>,
}

impl MessageRecord {
    /// Whether it was sent with a delay (it became visible after its enqueue
    /// time; a dead-letter copy keeps its original, earlier `visible_at`).
    pub fn delayed(&self) -> bool {
        self.visible_at > self.enqueued_at
    }
}

/// A stored value that is not a message record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt message record: {0}")]
pub struct RecordError(pub &'static str);

const VERSION: u8 = 2;
/// Content-type length that stands for "none".
const NO_CONTENT_TYPE: u16 = u16::MAX;
/// Bytes before the content type.
const FIXED: usize = 1 + 16 + 8 * 4 + 4 + 4 + 2;

impl MessageRecord {
    /// Serialises the record (header and inline body).
    pub fn encode(&self) -> Vec<u8> {
        let ct = self.content_type.as_deref().map(str::as_bytes);
        let ct_len = ct.map_or(0, <[u8]>::len);
        let mut out = Vec::with_capacity(FIXED + ct_len + self.body.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id.to_bytes());
        for n in [self.enqueued_at, self.visible_at, self.expires_at, self.size] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&self.prior_receives.to_be_bytes());
        out.extend_from_slice(&self.chunks.to_be_bytes());
        match ct {
            // Content types are capped far below 64 KiB before they get here.
            Some(ct) => out.extend_from_slice(&(ct.len().min(0xFFFE) as u16).to_be_bytes()),
            None => out.extend_from_slice(&NO_CONTENT_TYPE.to_be_bytes()),
        }
        out.extend_from_slice(&ct.unwrap_or_default()[..ct_len.min(0xFFFE)]);
        out.extend_from_slice(&self.body);
        out
    }

    /// Parses a stored record; never panics on any input.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader(bytes);
        if r.take::<1>()? != [VERSION] {
            return Err(RecordError("unknown version"));
        }
        let id = MessageId::from_bytes(r.take::<16>()?);
        let [enqueued_at, visible_at, expires_at, size] = [r.u64()?, r.u64()?, r.u64()?, r.u64()?];
        let prior_receives = u32::from_be_bytes(r.take::<4>()?);
        let chunks = u32::from_be_bytes(r.take::<4>()?);
        let content_type = match u16::from_be_bytes(r.take::<2>()?) {
            NO_CONTENT_TYPE => None,
            len => {
                let ct = r.slice(len as usize)?;
                Some(String::from_utf8(ct.to_vec()).map_err(|_| RecordError("content type"))?)
            }
        };
        Ok(Self {
            id,
            enqueued_at,
            visible_at,
            expires_at,
            content_type,
            size,
            prior_receives,
            chunks,
            body: r.0.to_vec(),
        })
    }
}

/// Reads a record front to back.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn slice(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(RecordError("truncated"))?;
        self.0 = rest;
        Ok(head)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        // `slice(N)` returned exactly N bytes.
        self.slice(N)?.try_into().map_err(|_| RecordError("truncated"))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(self.take::<8>()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let rec = MessageRecord {
            id: MessageId::new(5, 0, 0, 7),
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
        let none = MessageRecord { content_type: None, body: Vec::new(), ..rec.clone() };
        assert_eq!(MessageRecord::decode(&none.encode()).unwrap(), none);
        let bytes = rec.encode();
        // Every truncation of the header is refused, never a panic.
        for cut in 0..FIXED + "text/plain".len() {
            assert!(MessageRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 1;
        assert!(MessageRecord::decode(&wrong_version).is_err());
        let mut bad_ct = bytes;
        bad_ct[FIXED] = 0xff;
        assert!(MessageRecord::decode(&bad_ct).is_err());
    }
}
