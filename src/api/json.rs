//! JSON in and out: strict parsing whose errors say what is wrong, and response
//! builders.

use super::error::ApiError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses a request body, which must be a JSON object, as `T`. Syntax errors give `invalid_json`; well-formed
/// JSON of the wrong shape (wrong types, unknown or missing fields) gives
/// `invalid_body`. Both are 400 and carry serde's explanation.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::bad_request(
                "invalid_json",
                "the request body is empty; a JSON object is expected",
            ))
        }
        // serde would also read a struct from a JSON array; only objects are accepted.
        Some(b'[') => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "expected a JSON object, found an array",
            ))
        }
        Some(_) => {}
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Data => "invalid_body",
            Category::Io | Category::Syntax | Category::Eof => "invalid_json",
        };
        ApiError::bad_request(code, e.to_string())
    })
}

/// A JSON response.
pub(crate) fn response<T: Serialize>(status: StatusCode, value: &T) -> Response<Bytes> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut res = Response::new(Bytes::from(body));
            *res.status_mut() = status;
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        Err(e) => {
            ApiError::internal(format!("could not serialise the response: {e}")).into_response()
        }
    }
}

/// An empty response with `status` (204, or 200 for HEAD-style answers).
pub(crate) fn empty(status: StatusCode) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = status;
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn classifies_parse_errors() {
        assert_eq!(parse::<T>(b"{\"a\":1}").unwrap().a, 1);
        assert_eq!(parse::<T>(b"").unwrap_err().code(), "invalid_json");
        assert_eq!(parse::<T>(b"{\"a\":").unwrap_err().code(), "invalid_json");
        assert_eq!(parse::<T>(b"{a:1}").unwrap_err().code(), "invalid_json");
        assert_eq!(parse::<T>(b"\xff\xfe").unwrap_err().code(), "invalid_json");
        let e = parse::<T>(b"{\"a\":1,\"b\":2}").unwrap_err();
        assert_eq!(e.code(), "invalid_body");
        assert!(e.body().message.contains("unknown field `b`"));
        let e = parse::<T>(b"{\"a\":\"x\"}").unwrap_err();
        assert_eq!(e.code(), "invalid_body");
        assert!(e.body().message.contains("invalid type"));
        assert_eq!(parse::<T>(b"{}").unwrap_err().code(), "invalid_body");
        assert_eq!(parse::<T>(b"\"x\"").unwrap_err().code(), "invalid_body");
        assert_eq!(parse::<T>(b" [1]").unwrap_err().code(), "invalid_body");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse::<T>(deep.as_bytes()).is_err());
    }

    #[test]
    fn builds_json_responses() {
        let res = response(StatusCode::CREATED, &serde_json::json!({"id": 1}));
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(&res.body()[..], b"{\"id\":1}");
        assert_eq!(empty(StatusCode::NO_CONTENT).status(), 204);
    }
}
