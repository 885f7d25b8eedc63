//! A tiny router toolkit: path segments (percent-decoded), strict query strings,
//! and method checks with `Allow`. No framework: every route set matches on
//! slices of segments.

use super::error::ApiError;
use crate::model::{Name, MAX_PARTITIONS};
use http::Method;
use std::borrow::Cow;
use std::fmt;

/// Most path segments any route has; longer paths are unknown routes and are
/// not split further (no allocation proportional to the path).
const MAX_SEGMENTS: usize = 8;

/// The raw (still percent-encoded) segments of `path`, or `None` when it has
/// more than [`MAX_SEGMENTS`] or does not start with `/`.
pub(crate) fn raw_segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    let segs: Vec<&str> = rest.splitn(MAX_SEGMENTS + 1, '/').collect();
    if segs.len() > MAX_SEGMENTS {
        return None;
    }
    Some(segs)
}

/// Percent-decodes one path segment; it must be UTF-8 afterwards.
pub(crate) fn decode(seg: &str) -> Result<Cow<'_, str>, ApiError> {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("invalid_path", "path segment is not UTF-8"))
}

/// Decodes and validates a name taken from the path.
pub(crate) fn name(seg: &str) -> Result<Name, ApiError> {
    let s = decode(seg)?;
    Ok(Name::new(&s).map_err(crate::engine::Error::from)?)
}

/// Checks `method` against the route's `allowed` methods (`Allow` syntax, e.g.
/// `"GET, HEAD, PUT"`).
pub(crate) fn allow(method: &Method, allowed: &'static str) -> Result<(), ApiError> {
    if allowed.split(", ").any(|m| m == method.as_str()) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(method, allowed))
    }
}

/// A parsed query string: every parameter known to the route, each at most once.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(&'static str, String)>,
}

impl Query {
    /// Parses `query`, refusing parameters not in `known`, repeated ones, and
    /// names or values that are not UTF-8 once decoded (`+` is a space, then
    /// percent-decoding, as in `application/x-www-form-urlencoded`; never a lossy
    /// decoding, which would turn `%FF` into U+FFFD).
    pub(crate) fn parse(query: Option<&str>, known: &[&'static str]) -> Result<Self, ApiError> {
        let mut pairs: Vec<(&'static str, String)> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (raw_k, raw_v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode_component(raw_k).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    "a query parameter name is not UTF-8 once percent-decoded",
                )
            })?;
            let Some(name) = known.iter().copied().find(|n| *n == k) else {
                let shown: String = k.chars().take(64).collect();
                let expected = if known.is_empty() {
                    "this route takes none".to_owned()
                } else {
                    format!("expected one of: {}", known.join(", "))
                };
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown query parameter {shown:?}; {expected}"),
                ));
            };
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("query parameter {name:?} is repeated"),
                ));
            }
            let v = decode_component(raw_v)
                .ok_or_else(|| query_error(name, "not UTF-8 once percent-decoded".into()))?;
            pairs.push((name, v));
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// An integer parameter within `lo..=hi`: not a number is `invalid_query`,
    /// a number out of bounds `invalid_value`.
    pub(crate) fn int(&self, name: &str, lo: u64, hi: u64) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_int(v, lo, hi)
                    .map_err(|e| e.into_api("invalid_query", "query parameter", name))
            })
            .transpose()
    }

    /// A partition parameter (see [`parse_partition`]).
    pub(crate) fn partition(&self, name: &str) -> Result<Option<u16>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_partition(v).map_err(|e| e.into_api("invalid_query", "query parameter", name))
            })
            .transpose()
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`).
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name)
            .map(|v| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(query_error(name, "must be true, false, 1 or 0".into())),
            })
            .transpose()
    }
}

/// Decodes one name or value of a query string: `+` is a space, then
/// percent-decoding; `None` when the bytes are not UTF-8.
fn decode_component(raw: &str) -> Option<String> {
    let spaced: Cow<'_, str> =
        if raw.contains('+') { Cow::Owned(raw.replace('+', " ")) } else { Cow::Borrowed(raw) };
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(Cow::into_owned)
}

fn query_error(name: &str, msg: String) -> ApiError {
    ApiError::bad_request("invalid_query", format!("query parameter {name}: {msg}"))
}

/// Why a text is not an integer within the wanted bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntError {
    /// Not a decimal integer at all: the value is malformed.
    Malformed(String),
    /// A decimal integer outside the bounds: well-formed, out of range.
    OutOfRange(String),
}

impl IntError {
    /// The API error for the value of `what` `name` (`"query parameter"`,
    /// `"header"`): `malformed` (the code of its channel, `invalid_query` or
    /// `invalid_header`) when it is not a number, `invalid_value` when it is
    /// one out of bounds (`docs/api-v1.md`, Errors).
    pub(crate) fn into_api(self, malformed: &'static str, what: &str, name: &str) -> ApiError {
        match self {
            Self::Malformed(m) => ApiError::bad_request(malformed, format!("{what} {name}: {m}")),
            Self::OutOfRange(m) => {
                ApiError::bad_request("invalid_value", format!("{what} {name}: {m}"))
            }
        }
    }
}

impl fmt::Display for IntError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(m) | Self::OutOfRange(m) => f.write_str(m),
        }
    }
}

/// Parses a decimal integer within `lo..=hi`; the error says why not.
pub(crate) fn parse_int(v: &str, lo: u64, hi: u64) -> Result<u64, IntError> {
    let shown: String = v.chars().take(32).collect();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IntError::Malformed(format!("{shown:?} is not a non-negative integer")));
    }
    match v.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        // Digits only: either out of the bounds or too large for any.
        _ => Err(IntError::OutOfRange(format!("{shown} is not between {lo} and {hi}"))),
    }
}

/// Parses a partition number. Only the most partitions a queue may have is
/// known here; whether the queue has this partition is the engine's check.
pub(crate) fn parse_partition(v: &str) -> Result<u16, IntError> {
    match parse_int(v, 0, u64::MAX) {
        Ok(p) => partition(p),
        Err(IntError::OutOfRange(_)) => Err(IntError::OutOfRange(not_a_partition(v))),
        Err(e) => Err(e),
    }
}

/// Partition number `p`, if some queue may have it (below [`MAX_PARTITIONS`]).
pub(crate) fn partition(p: u64) -> Result<u16, IntError> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p < MAX_PARTITIONS)
        .ok_or_else(|| IntError::OutOfRange(not_a_partition(&p.to_string())))
}

/// The refusal of partition `v`, which no queue has.
fn not_a_partition(v: &str) -> String {
    let shown: String = v.chars().take(32).collect();
    format!(
        "{shown} is not a partition: a queue's partitions are numbered from 0 to its \
         partitions - 1, and no queue has more than {MAX_PARTITIONS}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_paths_into_a_bounded_number_of_segments() {
        assert_eq!(raw_segments("/v1/queues").unwrap(), vec!["v1", "queues"]);
        assert_eq!(raw_segments("/v1/queues/").unwrap(), vec!["v1", "queues", ""]);
        assert_eq!(raw_segments("/").unwrap(), vec![""]);
        assert!(raw_segments("v1").is_none());
        assert!(raw_segments(&"/a".repeat(100_000)).is_none());
        assert_eq!(raw_segments(&"/a".repeat(8)).unwrap().len(), 8);
    }

    #[test]
    fn decodes_names_and_refuses_bad_ones() {
        assert_eq!(name("orders").unwrap().as_str(), "orders");
        assert_eq!(name("a%2Db").unwrap().as_str(), "a-b");
        assert_eq!(name("a%2Fb").unwrap_err().code(), "invalid_name");
        assert_eq!(name("").unwrap_err().code(), "invalid_name");
        assert_eq!(name(&"a".repeat(81)).unwrap_err().code(), "invalid_name");
        assert_eq!(name("%FF").unwrap_err().code(), "invalid_path");
        assert_eq!(name("%").unwrap_err().code(), "invalid_name");
        assert_eq!(name("%2E%2E").unwrap_err().code(), "invalid_name");
        assert_eq!(name(".").unwrap_err().code(), "invalid_name");
    }

    #[test]
    fn checks_methods() {
        assert!(allow(&Method::GET, "GET, HEAD, PUT, DELETE").is_ok());
        assert!(allow(&Method::HEAD, "GET, HEAD, PUT").is_ok());
        assert!(allow(&Method::HEAD, "GET, PUT").is_err());
        assert!(allow(&Method::HEAD, "POST").is_err());
        let e = allow(&Method::PATCH, "GET, PUT").unwrap_err();
        assert_eq!(e.status(), 405);
        let e = allow(&Method::from_bytes(b"GE").unwrap(), "GET").unwrap_err();
        assert_eq!(e.status(), 405);
    }

    #[test]
    fn queries_are_strict() {
        let q = Query::parse(Some("limit=5&prefix=a%20b"), &["limit", "prefix"]).unwrap();
        assert_eq!(q.int("limit", 1, 10).unwrap(), Some(5));
        assert_eq!(q.get("prefix"), Some("a b"));
        assert_eq!(q.int("cursor", 1, 10).unwrap(), None);
        assert_eq!(Query::parse(Some("limt=5"), &["limit"]).unwrap_err().code(), "invalid_query");
        assert!(Query::parse(Some("limit=1&limit=2"), &["limit"]).is_err());
        assert!(Query::parse(None, &[]).is_ok());
        assert!(Query::parse(Some(""), &[]).is_ok());
        let q = Query::parse(Some("limit=0&x=true"), &["limit", "x"]).unwrap();
        assert!(q.int("limit", 1, 10).is_err());
        assert_eq!(q.bool("x").unwrap(), Some(true));
        let q = Query::parse(Some("x=yes"), &["x"]).unwrap();
        let e = q.bool("x").unwrap_err();
        assert_eq!(e.code(), "invalid_query");
        // The message names every spelling accepted.
        assert!(e.body().message.contains("true, false, 1 or 0"), "{}", e.body().message);
        let q = Query::parse(Some("x=0&y=1"), &["x", "y"]).unwrap();
        assert_eq!((q.bool("x").unwrap(), q.bool("y").unwrap()), (Some(false), Some(true)));
    }

    #[test]
    fn query_values_are_decoded_strictly() {
        let q = Query::parse(Some("key=a+b%2Bc%C3%A9&x&&y="), &["key", "x", "y"]).unwrap();
        assert_eq!(q.get("key"), Some("a b+c\u{e9}"));
        assert_eq!((q.get("x"), q.get("y")), (Some(""), Some("")));
        // Bytes that are not UTF-8 are refused, never replaced by U+FFFD.
        for query in ["key=%FF", "key=a%C3", "key=%ED%A0%80", "%FF=1", "k%FFey=1"] {
            let e = Query::parse(Some(query), &["key"]).unwrap_err();
            assert_eq!(e.code(), "invalid_query", "{query}");
            assert!(e.body().message.contains("UTF-8"), "{query}: {}", e.body().message);
        }
        // A name that decodes to a known one is that one.
        assert_eq!(Query::parse(Some("k%65y=v"), &["key"]).unwrap().get("key"), Some("v"));
        assert!(Query::parse(Some("key=1&k%65y=2"), &["key"]).is_err());
    }

    #[test]
    fn out_of_range_numbers_are_invalid_values_and_malformed_ones_invalid_queries() {
        let q =
            Query::parse(Some("a=21&b=soon&c=99999999999999999999999&d=-1"), &["a", "b", "c", "d"])
                .unwrap();
        let e = q.int("a", 0, 20).unwrap_err();
        assert_eq!(e.code(), "invalid_value");
        assert_eq!(e.body().message, "query parameter a: 21 is not between 0 and 20");
        assert_eq!(q.int("b", 0, 20).unwrap_err().code(), "invalid_query");
        assert_eq!(q.int("c", 0, 20).unwrap_err().code(), "invalid_value");
        assert_eq!(q.int("d", 0, 20).unwrap_err().code(), "invalid_query");
    }

    #[test]
    fn partitions_are_bounded_by_the_most_a_queue_has() {
        assert_eq!(parse_partition("0"), Ok(0));
        assert_eq!(parse_partition("199"), Ok(199));
        assert!(matches!(parse_partition("x"), Err(IntError::Malformed(_))));
        for v in ["200", "65536", "99999999999999999999999"] {
            let Err(IntError::OutOfRange(m)) = parse_partition(v) else {
                panic!("{v} is out of range");
            };
            assert!(m.starts_with(&format!("{v} is not a partition")), "{m}");
            assert!(m.contains("200") && !m.contains("18446744073709551615"), "{m}");
        }
        let q = Query::parse(Some("partition=200"), &["partition"]).unwrap();
        assert_eq!(q.partition("partition").unwrap_err().code(), "invalid_value");
    }

    #[test]
    fn integers_are_bounded_and_never_overflow() {
        assert_eq!(parse_int("10", 0, 20), Ok(10));
        assert!(matches!(parse_int("21", 0, 20), Err(IntError::OutOfRange(_))));
        assert!(matches!(parse_int("-1", 0, 20), Err(IntError::Malformed(_))));
        assert!(matches!(parse_int("+1", 0, 20), Err(IntError::Malformed(_))));
        assert!(matches!(parse_int("1.5", 0, 20), Err(IntError::Malformed(_))));
        assert!(matches!(parse_int("", 0, 20), Err(IntError::Malformed(_))));
        assert!(matches!(parse_int(&"9".repeat(400), 0, 20), Err(IntError::OutOfRange(_))));
    }
}
