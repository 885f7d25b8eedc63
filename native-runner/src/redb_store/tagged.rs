//! How a key's state is stored in redb's one table: a tag byte, then the payload.
//!
//! Values and counters share the table `kv`, so a commit rewrites one B-tree
//! instead of two: a slot's record and its commit counter, neighbours in key
//! order, share a leaf page, and the persister (the durable store's busiest
//! thread) copies and checksums fewer pages per round. A lookup that misses costs
//! one B-tree search instead of two, and a delete one remove. Durable pops went
//! from 21,600–24,500 to 30,900–32,800 req/s in `benches/http.sh` (see
//! `benches/README.md`).

use super::overlay::Kind;
use edgeq::store::{StoreError, StoreResult};

const VALUE: u8 = 0;
const COUNTER: u8 = 1;

/// `value` as stored.
pub(super) fn value(value: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(value.len() + 1);
    stored.push(VALUE);
    stored.extend_from_slice(value);
    stored
}

/// Counter `n` as stored.
pub(super) fn counter(n: i64) -> [u8; 9] {
    let mut stored = [COUNTER; 9];
    stored[1..].copy_from_slice(&n.to_le_bytes());
    stored
}

/// What a stored state holds: a value (its bytes) or a counter.
pub(super) enum Stored<'a> {
    Value(&'a [u8]),
    Counter(i64),
}

impl<'a> Stored<'a> {
    /// Reads what `key` holds; an unknown tag or a short counter is corruption.
    pub(super) fn decode(key: &str, stored: &'a [u8]) -> StoreResult<Self> {
        match stored.split_first() {
            Some((&VALUE, value)) => Ok(Self::Value(value)),
            Some((&COUNTER, n)) => match <[u8; 8]>::try_from(n) {
                Ok(n) => Ok(Self::Counter(i64::from_le_bytes(n))),
                Err(_) => Err(corrupt(key)),
            },
            _ => Err(corrupt(key)),
        }
    }

    pub(super) fn kind(&self) -> Kind {
        match self {
            Self::Value(_) => Kind::Value,
            Self::Counter(n) => Kind::Counter(*n),
        }
    }
}

fn corrupt(key: &str) -> StoreError {
    StoreError(format!("redb holds a corrupt entry under {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_counters_come_back_as_stored() {
        let v = value(b"abc");
        assert!(matches!(Stored::decode("k", &v), Ok(Stored::Value(b"abc"))));
        // A value of eight bytes stays a value.
        let v = value(&7i64.to_le_bytes());
        assert!(matches!(Stored::decode("k", &v), Ok(Stored::Value(_))));
        assert!(matches!(Stored::decode("k", &value(b"")), Ok(Stored::Value(b""))));
        let c = counter(-42);
        assert!(matches!(Stored::decode("k", &c), Ok(Stored::Counter(-42))));
        assert!(Stored::decode("k", &[]).is_err());
        assert!(Stored::decode("k", &[COUNTER, 1, 2]).is_err());
        assert!(Stored::decode("k", &[9, 1]).is_err());
    }
}
