//! rest_queue names (any non-empty text) as engine names (`[A-Za-z0-9._-]{1,80}`).
//!
//! The mapping is a bijection between the rest_queue names it accepts and the
//! engine names it produces:
//!
//! - a valid engine name that does not start with [`ESCAPE`] is itself, so queues
//!   with ordinary names are shared with the other route sets as they are;
//! - any other name becomes [`ESCAPE`] followed by the lowercase hex of its UTF-8
//!   bytes (`"my queue"` → `..6d79207175657565`). Escaped names start with
//!   `ESCAPE` and plain ones never do, so the two never collide.
//!
//! An escaped name must fit in 80 characters, so a name that needs escaping may
//! be at most [`MAX_ESCAPED_BYTES`] bytes long: longer ones cannot exist
//! (creating one is a 422, every other route answers 404).
//!
//! Listing shows an engine name decoded when it is the canonical escape of a name
//! that needed one, and a plain name as it is. A name that starts with the escape
//! but is not a canonical one (`..zz`, made through v1) is not listed: no
//! rest_queue name reaches it (`..zz` itself is escaped to `..2e2e7a7a`), and a
//! listing shows only what its `GET` finds. So no two queues are ever listed
//! under the same name, and every listed name can be used.

use crate::model::Name;

/// Prefix of escaped names: valid in engine names, and unusual enough at the start.
const ESCAPE: &str = "..";

/// Longest name (in UTF-8 bytes) that can be escaped within 80 characters.
pub(super) const MAX_ESCAPED_BYTES: usize = (Name::MAX_LEN - ESCAPE.len()) / 2;

/// The engine name of rest_queue name `s`; `None` when `s` is empty or too long
/// to escape.
pub(super) fn encode(s: &str) -> Option<Name> {
    if let Ok(name) = Name::new(s) {
        if !s.starts_with(ESCAPE) {
            return Some(name);
        }
    }
    if s.is_empty() || s.len() > MAX_ESCAPED_BYTES {
        return None;
    }
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    // ESCAPE plus hex digits, at most 80 characters: always a valid name.
    Name::new(&format!("{ESCAPE}{hex}")).ok()
}

/// The rest_queue name that reaches engine name `name`, if any.
pub(super) fn decode(name: &str) -> Option<String> {
    if name.starts_with(ESCAPE) {
        escaped(name)
    } else {
        Some(name.to_owned())
    }
}

/// The name `name` is the canonical escape of, if it is one.
fn escaped(name: &str) -> Option<String> {
    let hex = name.strip_prefix(ESCAPE)?;
    if hex.len() % 2 != 0 || hex.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let s = String::from_utf8(bytes).ok()?;
    // Canonical only if encoding gives it back (a plain name encodes to itself).
    (encode(&s)?.as_str() == name).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_through_and_others_are_escaped() {
        assert_eq!(encode("orders.v2_eu-1").unwrap().as_str(), "orders.v2_eu-1");
        assert_eq!(encode("my queue").unwrap().as_str(), "..6d79207175657565");
        assert_eq!(encode("..x").unwrap().as_str(), "..2e2e78");
        assert_eq!(encode("é").unwrap().as_str(), "..c3a9");
        assert!(encode(&"a".repeat(81)).is_none());
        assert!(encode("").is_none());
    }

    #[test]
    fn long_names_that_need_escaping_cannot_exist() {
        assert_eq!(MAX_ESCAPED_BYTES, 39);
        assert!(encode(&" ".repeat(39)).is_some());
        assert!(encode(&" ".repeat(40)).is_none());
        assert!(encode(&"a".repeat(80)).is_some(), "a plain name of 80 is fine");
    }

    #[test]
    fn decoding_inverts_encoding_and_nothing_else() {
        for s in ["q1", "my queue", "..x", "it's", "日本", "a/b", "..", "...."] {
            let name = encode(s).unwrap();
            assert_eq!(decode(name.as_str()).as_deref(), Some(s), "{s:?}");
        }
        // Not canonical escapes: no rest_queue name reaches them.
        for raw in ["..zz", "..6", "..41", "..4A20", "..ff"] {
            assert_eq!(decode(raw), None, "{raw}");
            assert_ne!(encode(raw).unwrap().as_str(), raw);
        }
        assert_eq!(decode("plain").as_deref(), Some("plain"));
    }
}
