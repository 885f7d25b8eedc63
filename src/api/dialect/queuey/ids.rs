//! Queuey's message ids and timestamps over edgeq's.
//!
//! Queuey ids are uuid1 (60 bits of time in 100-ns intervals since 1582-10-15,
//! 14 bits of clock sequence, 48 bits of node). An edgeq id is a UUIDv7 naming
//! (millisecond, partition, slot), so the map is a bijection between edgeq ids
//! and the uuid1 whose time is a whole millisecond, whose clock sequence is the
//! partition (< 4096) and whose node is the slot (slots are tickets, far below
//! 2^48). A Queuey id therefore turns back into the engine id without any
//! lookup, and getting or deleting by id is one engine call. A uuid1 that is not
//! the image of an edgeq id (made by a client) names no message.
//!
//! Timestamps are the uuid1 time as epoch seconds with exactly 7 decimals (the
//! last four are zero: edgeq keeps milliseconds).

use crate::model::MessageId;

/// 100-ns intervals between 1582-10-15 (the uuid1 epoch) and 1970-01-01.
const GREGORIAN_OFFSET: u64 = 0x01B2_1DD2_1381_4000;
/// 100-ns intervals per millisecond.
const TICKS_PER_MILLI: u64 = 10_000;
/// Slots a uuid1 node can carry.
const MAX_NODE: u64 = (1 << 48) - 1;

/// An edgeq id as 32 lowercase hex characters of a uuid1.
pub(super) fn to_hex(id: MessageId) -> String {
    let time = id.millis() * TICKS_PER_MILLI + GREGORIAN_OFFSET;
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&(time as u32).to_be_bytes());
    b[4..6].copy_from_slice(&((time >> 32) as u16).to_be_bytes());
    b[6..8].copy_from_slice(&(0x1000 | ((time >> 48) as u16 & 0x0fff)).to_be_bytes());
    let seq = id.place();
    b[8] = 0x80 | ((seq >> 8) as u8 & 0x3f);
    b[9] = seq as u8;
    // Slots above 2^48 would need a queue to take 2^48 messages in one partition.
    b[10..].copy_from_slice(&(id.slot() & MAX_NODE).to_be_bytes()[2..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A uuid1 hex string (32 hex digits, version 1, RFC variant) as uuid1 time,
/// clock sequence and node; `None` when it is not one.
pub(super) fn parse_uuid1(hex: &str) -> Option<(u64, u16, u64)> {
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let v = u128::from_str_radix(hex, 16).ok()?;
    let b = v.to_be_bytes();
    if b[6] >> 4 != 1 || b[8] >> 6 != 0b10 {
        return None;
    }
    let low = u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let mid = u64::from(u16::from_be_bytes([b[4], b[5]]));
    let high = u64::from(u16::from_be_bytes([b[6], b[7]]) & 0x0fff);
    let time = (high << 48) | (mid << 32) | low;
    let seq = u16::from_be_bytes([b[8], b[9]]) & 0x3fff;
    let mut node = [0u8; 8];
    node[2..].copy_from_slice(&b[10..]);
    Some((time, seq, u64::from_be_bytes(node)))
}

/// The edgeq id a uuid1 stands for, if it stands for one.
pub(super) fn to_engine(time: u64, seq: u16, node: u64) -> Option<MessageId> {
    let ticks = time.checked_sub(GREGORIAN_OFFSET)?;
    (ticks % TICKS_PER_MILLI == 0 && seq < 4096)
        .then(|| MessageId::from_place(ticks / TICKS_PER_MILLI, seq, node))
}

/// The uuid1 time of an epoch time given in 100-ns intervals.
pub(super) fn ticks_to_uuid_time(ticks: u64) -> u64 {
    ticks.saturating_add(GREGORIAN_OFFSET)
}

/// The uuid1 ordering key of a message: (time, clock sequence, node).
pub(super) fn key(id: MessageId) -> (u64, u16, u64) {
    (id.millis() * TICKS_PER_MILLI + GREGORIAN_OFFSET, id.place(), id.slot())
}

/// A message's timestamp: epoch seconds with 7 decimals.
pub(super) fn timestamp(id: MessageId) -> String {
    let ms = id.millis();
    format!("{}.{:03}0000", ms / 1000, ms % 1000)
}

/// Epoch seconds `^\d+(\.\d+)?$` as 100-ns intervals (extra decimals dropped).
pub(super) fn parse_seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
    if int.is_empty() || !digits(int) || (s.contains('.') && frac.is_empty()) || !digits(frac) {
        return None;
    }
    let mut ticks = int.parse::<u64>().ok()?.checked_mul(10_000_000)?;
    for (i, c) in frac.bytes().take(7).enumerate() {
        ticks += u64::from(c - b'0') * 10u64.pow(6 - i as u32);
    }
    Some(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_ids_round_trip_through_uuid1() {
        for (ms, p, slot) in [(0, 0, 0), (1_795_392_819_615, 3, 42), (1 << 40, 4095, MAX_NODE)] {
            let id = MessageId::from_place(ms, p, slot);
            let hex = to_hex(id);
            assert_eq!(hex.len(), 32);
            assert_eq!(&hex[12..13], "1", "version nibble");
            let (t, s, n) = parse_uuid1(&hex).unwrap();
            assert_eq!(to_engine(t, s, n), Some(id));
            assert_eq!(key(id), (t, s, n));
        }
        let id = MessageId::new(1_795_392_819_615, 0, 0, 7);
        assert_eq!(timestamp(id), "1795392819.6150000");
        let uuid = uuid::Uuid::parse_str(&to_hex(id)).unwrap();
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!((secs, nanos), (1_795_392_819, 615_000_000));
    }

    #[test]
    fn foreign_and_malformed_ids_are_refused() {
        assert!(parse_uuid1("").is_none());
        assert!(parse_uuid1(&"g".repeat(32)).is_none());
        let v4 = "0123456789ab4def8123456789abcdef";
        assert!(parse_uuid1(v4).is_none());
        // A client's uuid1 whose time is not a whole millisecond is no edgeq id.
        let (t, s, n) = parse_uuid1("0123456789ab1def8123456789abcdef").unwrap();
        assert_eq!(to_engine(t, s, n), None);
    }

    #[test]
    fn seconds_parse_to_ticks() {
        assert_eq!(parse_seconds("1"), Some(10_000_000));
        assert_eq!(parse_seconds("1.5"), Some(15_000_000));
        assert_eq!(parse_seconds("1.123456789"), Some(11_234_567));
        for bad in ["", ".5", "1.", "-1", "1e5", "abc", "99999999999999999999"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }
}
