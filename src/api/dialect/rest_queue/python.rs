//! What rest_queue's bodies inherit from Python: `repr()` of a str (queue names
//! in every message are rendered with it), FastAPI's boolean query parsing, and
//! JSON values echoed back in validation errors with their keys in the order they
//! came (a Python `dict` keeps insertion order; `serde_json::Value` sorts them).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::fmt::{self, Write};
use unicode_general_category::{get_general_category, GeneralCategory as G};

/// `repr(s)` as CPython renders a `str`: single quotes unless the text holds `'`
/// and no `"`; the chosen quote and `\` escaped; `\t`, `\n`, `\r` by name; other
/// characters that are not printable as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub(super) fn repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            // Writing to a String cannot fail.
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one character: everything but the "Other"
/// and "Separator" categories, except the ASCII space.
fn is_printable(c: char) -> bool {
    c == ' '
        || !matches!(
            get_general_category(c),
            G::Control
                | G::Format
                | G::Surrogate
                | G::PrivateUse
                | G::Unassigned
                | G::LineSeparator
                | G::ParagraphSeparator
                | G::SpaceSeparator
        )
}

/// A boolean query value as FastAPI (pydantic) reads it, case-insensitively;
/// `None` when it is neither.
pub(super) fn parse_bool(v: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["true", "1", "yes", "on", "t", "y"];
    const FALSE: [&str; 6] = ["false", "0", "no", "off", "f", "n"];
    let v = v.to_ascii_lowercase();
    if TRUE.contains(&v.as_str()) {
        Some(true)
    } else if FALSE.contains(&v.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// A JSON value whose objects keep their keys in document order (a repeated key
/// keeps its first place and its last value, as `json.loads` does).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number as serde_json holds it.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, in document order.
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(v)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("number out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries: Vec<(String, Json)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Json>()? {
                    match entries.iter_mut().find(|(key, _)| *key == k) {
                        Some(entry) => entry.1 = v,
                        None => entries.push((k, v)),
                    }
                }
                Ok(Json::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_quotes_like_python() {
        let cases = [
            ("q1", "'q1'"),
            ("it's", "\"it's\""),
            ("it's\"q", "'it\\'s\"q'"),
            ("say \"hi\"", "'say \"hi\"'"),
            ("a\\b", "'a\\\\b'"),
            ("t\tn\nr\r", "'t\\tn\\nr\\r'"),
            ("\0\x1f\x7f", "'\\x00\\x1f\\x7f'"),
            ("\u{a0}\u{ad}", "'\\xa0\\xad'"),
            ("é ü 日本 😀", "'é ü 日本 😀'"),
            ("\u{2028}\u{200b}\u{feff}", "'\\u2028\\u200b\\ufeff'"),
            ("\u{e000}\u{378}", "'\\ue000\\u0378'"),
            ("\u{e0001}\u{10ffff}", "'\\U000e0001\\U0010ffff'"),
            ("", "''"),
        ];
        for (s, want) in cases {
            assert_eq!(repr(s), want, "{s:?}");
        }
    }

    #[test]
    fn booleans_parse_like_pydantic() {
        for v in ["true", "TRUE", "1", "yes", "On", "t", "Y"] {
            assert_eq!(parse_bool(v), Some(true), "{v}");
        }
        for v in ["false", "0", "No", "OFF", "f", "n"] {
            assert_eq!(parse_bool(v), Some(false), "{v}");
        }
        for v in ["", "2", "maybe", "tru", " true"] {
            assert_eq!(parse_bool(v), None, "{v}");
        }
    }

    #[test]
    fn json_keeps_key_order_and_renders_compactly() {
        let v: Json =
            serde_json::from_str(r#"{ "b": 1, "a": [true, null, 2.5], "b": "x" }"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"b":"x","a":[true,null,2.5]}"#);
        let v: Json = serde_json::from_str("\"s\"").unwrap();
        assert_eq!(v, Json::String("s".into()));
        assert!(serde_json::from_str::<Json>(&"[".repeat(100_000)).is_err());
    }
}
