//! The one place that turns failures into HTTP: every [`engine::Error`] and every
//! refusal of the HTTP layer itself becomes a status and the JSON body
//! `{"error":{"code":"...","message":"..."}}`.
//!
//! Codes are stable, lowercase snake case, and listed in `docs/api-v1.md`.

use crate::engine;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// A refused request: status, stable code and a message saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `Allow` header value for 405.
    allow: Option<&'static str>,
    /// Whether retrying later may succeed (adds `Retry-After: 1`).
    retry: bool,
    /// Whether to add `WWW-Authenticate: Bearer` (401).
    challenge: bool,
}

/// The JSON body of an error, also used for per-entry outcomes of batch routes.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    /// Stable code.
    pub code: &'a str,
    /// Human-readable explanation.
    pub message: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorBody<'a>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), allow: None, retry: false, challenge: false }
    }

    /// Adds `WWW-Authenticate: Bearer` to the response.
    pub(crate) fn with_bearer_challenge(mut self) -> Self {
        self.challenge = true;
        self
    }

    /// 400 with `code`.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a path no route serves.
    pub(crate) fn no_route(path: &str) -> Self {
        let shown: String = path.chars().take(200).collect();
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no route for {shown}"))
    }

    /// 405 for a known path with a method it does not serve.
    pub(crate) fn method_not_allowed(method: &http::Method, allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed here; allowed: {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    /// 413 for a message body over the limit.
    pub(crate) fn message_too_large(len: usize) -> Self {
        engine::Error::MessageTooLarge(len).into()
    }

    /// 500 for a broken invariant of the server itself.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    /// The body as a serialisable value (for per-entry results).
    pub(crate) fn body(&self) -> ErrorBody<'_> {
        ErrorBody { code: self.code, message: &self.message }
    }

    /// The HTTP response.
    pub(crate) fn into_response(self) -> Response<Bytes> {
        let body = serde_json::to_vec(&Envelope { error: self.body() }).unwrap_or_default();
        let mut res = Response::new(Bytes::from(body));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.retry {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> Self {
        use engine::Error as E;
        let (status, code, retry) = match &e {
            E::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name", false),
            E::InvalidConfig(_) => (StatusCode::BAD_REQUEST, "invalid_value", false),
            E::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request", false),
            E::BadDeadLetterQueue(_) => {
                (StatusCode::BAD_REQUEST, "invalid_dead_letter_queue", false)
            }
            E::InvalidReceipt(_) => (StatusCode::BAD_REQUEST, "invalid_receipt", false),
            E::QueueNotFound(_) => (StatusCode::NOT_FOUND, "queue_not_found", false),
            E::MessageNotFound(_) => (StatusCode::NOT_FOUND, "message_not_found", false),
            E::ExchangeNotFound(_) => (StatusCode::NOT_FOUND, "exchange_not_found", false),
            E::ExchangeKindMismatch { .. } => {
                (StatusCode::CONFLICT, "exchange_type_mismatch", false)
            }
            E::TooManyBindingChanges(_) => {
                (StatusCode::CONFLICT, "too_many_binding_changes", false)
            }
            E::QueueNotEmpty(_) => (StatusCode::CONFLICT, "queue_not_empty", false),
            E::PartitionsShrink { .. } => (StatusCode::CONFLICT, "partitions_cannot_shrink", false),
            E::StaleReceipt(_) => (StatusCode::CONFLICT, "stale_receipt", false),
            E::IdempotencyInProgress(_) => (StatusCode::CONFLICT, "idempotency_in_progress", true),
            E::MessageTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "message_too_large", false),
            E::QueueFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "queue_full", false),
            E::Contention(_) => (StatusCode::SERVICE_UNAVAILABLE, "contention", true),
            E::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", true),
            E::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt_data", false),
            // A host of another version may serve it: no Retry-After for this one.
            E::ProtocolMismatch { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "protocol_mismatch", false)
            }
        };
        let mut err = Self::new(status, code, e.to_string());
        err.retry = retry;
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConfigError, NameError};
    use crate::store::StoreError;

    fn json(res: &Response<Bytes>) -> serde_json::Value {
        serde_json::from_slice(res.body()).unwrap()
    }

    #[test]
    fn engine_errors_map_to_status_and_code() {
        use engine::Error as E;
        let cases: Vec<(E, u16, &str)> = vec![
            (E::InvalidName(NameError::Empty), 400, "invalid_name"),
            (
                E::InvalidConfig(ConfigError { field: "delay", reason: "x".into() }),
                400,
                "invalid_value",
            ),
            (E::BadRequest("x".into()), 400, "bad_request"),
            (E::BadDeadLetterQueue("d".into()), 400, "invalid_dead_letter_queue"),
            (E::InvalidReceipt("r".into()), 400, "invalid_receipt"),
            (E::QueueNotFound("q".into()), 404, "queue_not_found"),
            (E::MessageNotFound("m".into()), 404, "message_not_found"),
            (E::QueueNotEmpty("q".into()), 409, "queue_not_empty"),
            (E::PartitionsShrink { from: 2, to: 1 }, 409, "partitions_cannot_shrink"),
            (E::StaleReceipt("r".into()), 409, "stale_receipt"),
            (E::IdempotencyInProgress("k".into()), 409, "idempotency_in_progress"),
            (E::MessageTooLarge(5 << 20), 413, "message_too_large"),
            (E::QueueFull("q".into()), 507, "queue_full"),
            (E::Contention("q".into()), 503, "contention"),
            (E::Store(StoreError("down".into())), 503, "store_unavailable"),
            (E::Corrupt("k".into()), 500, "corrupt_data"),
            (E::ProtocolMismatch { queue: "q".into(), found: 2 }, 503, "protocol_mismatch"),
        ];
        for (e, status, code) in cases {
            let msg = e.to_string();
            let res = ApiError::from(e).into_response();
            assert_eq!(res.status().as_u16(), status, "{code}");
            let v = json(&res);
            assert_eq!(v["error"]["code"], code);
            assert_eq!(v["error"]["message"], msg.as_str());
            assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        }
    }

    #[test]
    fn retryable_errors_say_when_to_retry() {
        let res = ApiError::from(engine::Error::Contention("q".into())).into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        let res = ApiError::from(engine::Error::QueueNotFound("q".into())).into_response();
        assert!(res.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn method_not_allowed_carries_allow() {
        let res = ApiError::method_not_allowed(&http::Method::PATCH, "GET, PUT").into_response();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()[header::ALLOW], "GET, PUT");
        assert_eq!(json(&res)["error"]["code"], "method_not_allowed");
    }

    #[test]
    fn no_route_bounds_the_echoed_path() {
        let long = "/x".repeat(10_000);
        let e = ApiError::no_route(&long);
        assert_eq!(e.status(), 404);
        assert!(e.body().message.len() < 300);
    }
}
