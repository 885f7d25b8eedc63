//! A tiny router toolkit: path segments (percent-decoded), strict query strings,
//! and method checks with `Allow`. No framework: every route set matches on
//! slices of segments.

use super::error::ApiError;
use crate::model::Name;
use http::Method;
use std::borrow::Cow;

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
    /// Parses `query`, refusing parameters not in `known` and repeated ones.
    pub(crate) fn parse(query: Option<&str>, known: &[&'static str]) -> Result<Self, ApiError> {
        let mut pairs: Vec<(&'static str, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
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
            pairs.push((name, v.into_owned()));
        }
        Ok(Self { pairs })
    }

    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// An integer parameter within `lo..=hi`.
    pub(crate) fn int(&self, name: &str, lo: u64, hi: u64) -> Result<Option<u64>, ApiError> {
        self.get(name).map(|v| parse_int(v, lo, hi).map_err(|m| query_error(name, m))).transpose()
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`).
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name)
            .map(|v| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(query_error(name, "must be true or false".into())),
            })
            .transpose()
    }
}

fn query_error(name: &str, msg: String) -> ApiError {
    ApiError::bad_request("invalid_query", format!("query parameter {name}: {msg}"))
}

/// Parses a decimal integer within `lo..=hi`; the error says why not.
pub(crate) fn parse_int(v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let shown: String = v.chars().take(32).collect();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{shown:?} is not a non-negative integer"));
    }
    match v.parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{shown} is not between {lo} and {hi}")),
    }
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
        assert!(q.bool("x").is_err());
    }

    #[test]
    fn integers_are_bounded_and_never_overflow() {
        assert_eq!(parse_int("10", 0, 20), Ok(10));
        assert!(parse_int("21", 0, 20).is_err());
        assert!(parse_int("-1", 0, 20).is_err());
        assert!(parse_int("+1", 0, 20).is_err());
        assert!(parse_int("1.5", 0, 20).is_err());
        assert!(parse_int("", 0, 20).is_err());
        assert!(parse_int(&"9".repeat(400), 0, 20).is_err());
    }
}
