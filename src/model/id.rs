//! Message ids: UUIDv7 whose counter bits name the message's place in its queue.
//!
//! RFC 9562 §6.2 lets a UUIDv7 fill `rand_a`/`rand_b` with a counter. edgeq puts the
//! low 4 bits of the queue's incarnation and the partition in the 12 bits of
//! `rand_a` (the id's *place*), and the slot (the message's ticket in that
//! partition) in the 62 bits of `rand_b`. Ids stay 128-bit and time-ordered, and
//! finding a message by id costs one store read, with no index. They are unique
//! within a queue across purges and re-creations too: those start the slots over,
//! and the incarnation bits keep the first message after one from taking the id
//! of the first message before it sent in the same millisecond (16 purges within
//! one millisecond would be needed to repeat an id).

use crate::model::MAX_PARTITIONS;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

// A partition number takes the low 8 bits of the place.
const _: () = assert!(MAX_PARTITIONS <= 256);

/// A message id; rendered in the canonical lowercase hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(Uuid);

impl MessageId {
    /// The id of the message enqueued at `millis` in `slot` of `partition` (< 256)
    /// of the queue's incarnation `generation` (of which the low 4 bits are kept).
    pub fn new(millis: u64, generation: u64, partition: u16, slot: u64) -> Self {
        debug_assert!(partition < 256, "partition {partition}");
        let place = ((generation & 0x0f) as u16) << 8 | (partition & 0xff);
        Self::from_place(millis, place, slot)
    }

    /// The id of `millis`, `place` (12 bits: see [`MessageId::place`]) and `slot`.
    pub fn from_place(millis: u64, place: u16, slot: u64) -> Self {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
        b[6] = 0x70 | ((place >> 8) as u8 & 0x0f);
        b[7] = place as u8;
        b[8] = 0x80 | ((slot >> 56) as u8 & 0x3f);
        b[9..].copy_from_slice(&slot.to_be_bytes()[1..]);
        Self(Uuid::from_bytes(b))
    }

    /// The id's 16 bytes (as stored in message records).
    pub fn to_bytes(&self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    /// The id of 16 stored bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(b))
    }

    /// Milliseconds since the epoch when the message was enqueued.
    pub fn millis(&self) -> u64 {
        let b = self.0.as_bytes();
        let mut m = [0u8; 8];
        m[2..].copy_from_slice(&b[..6]);
        u64::from_be_bytes(m)
    }

    /// The 12 bits of `rand_a`: the incarnation's low 4 bits, then the partition.
    pub fn place(&self) -> u16 {
        let b = self.0.as_bytes();
        (u16::from(b[6] & 0x0f) << 8) | u16::from(b[7])
    }

    /// The partition the message lives in.
    pub fn partition(&self) -> u16 {
        self.place() & 0xff
    }

    /// The message's slot in its partition.
    pub fn slot(&self) -> u64 {
        let b = self.0.as_bytes();
        let mut s = [0u8; 8];
        s[1..].copy_from_slice(&b[9..]);
        s[0] = b[8] & 0x3f;
        u64::from_be_bytes(s)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for MessageId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let u = Uuid::try_parse(s).map_err(|_| "not a UUID")?;
        // One spelling per id (uuid also reads braces, `urn:uuid:`, no hyphens
        // and upper case), as ids are compared and cached as text by clients.
        let mut canonical = [0u8; uuid::fmt::Hyphenated::LENGTH];
        if u.hyphenated().encode_lower(&mut canonical).as_bytes() != s.as_bytes() {
            return Err("not in the canonical form (lowercase, hyphenated)");
        }
        let b = u.as_bytes();
        if b[6] >> 4 != 7 || b[8] >> 6 != 0b10 {
            return Err("not an edgeq message id (UUIDv7)");
        }
        Ok(Self(u))
    }
}

impl serde::Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_its_parts() {
        let id = MessageId::new(1_795_392_819_615, 0x2b, 199, (1 << 62) - 1);
        assert_eq!(id.millis(), 1_795_392_819_615);
        assert_eq!(id.partition(), 199);
        assert_eq!(id.place(), 0xb00 | 199);
        assert_eq!(id.slot(), (1 << 62) - 1);
        let parsed: MessageId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        assert_eq!(id.to_string().as_bytes()[14], b'7');
        assert_eq!(MessageId::from_place(id.millis(), id.place(), id.slot()), id);
    }

    #[test]
    fn orders_by_time_then_place() {
        assert!(MessageId::new(1, 0, 0, 9) < MessageId::new(2, 0, 0, 1));
        assert!(MessageId::new(1, 0, 0, 1) < MessageId::new(1, 0, 0, 2));
    }

    #[test]
    fn incarnations_do_not_share_ids() {
        // The first message of a queue and the first after its purge, sent in
        // the same millisecond: same partition, same slot.
        assert_ne!(MessageId::new(5, 0, 0, 1), MessageId::new(5, 1, 0, 1));
        assert_eq!(MessageId::new(5, 1, 3, 1).partition(), 3);
    }

    #[test]
    fn refuses_other_uuids() {
        assert!("6ba7b810-9dad-11d1-80b4-00c04fd430c8".parse::<MessageId>().is_err());
        assert!("nope".parse::<MessageId>().is_err());
        let id = MessageId::new(1_795_392_819_615, 0, 3, 42).to_string();
        let simple: String = id.chars().filter(|&c| c != '-').collect();
        for other in [id.to_uppercase(), format!("{{{id}}}"), format!("urn:uuid:{id}"), simple] {
            assert!(other.parse::<MessageId>().is_err(), "{other}");
        }
        assert!(id.parse::<MessageId>().is_ok());
    }
}
