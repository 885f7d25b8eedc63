//! The v1 wire format shared by the handlers: queue and message JSON, the raw
//! single-message response, and the checks on values that arrive in headers or
//! JSON fields.

use crate::api::error::ApiError;
use crate::api::router;
use crate::engine::{Message, QueueInfo, QueueStats};
use crate::model::{MessageId, Millis, QueueConfig};
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// Most entries in a JSON list of a request (`messages`, `receipts`).
pub(crate) const MAX_ENTRIES: usize = crate::model::MAX_BATCH;
/// Marker in the error of a list over [`MAX_ENTRIES`], used to give it its own code.
pub(crate) const TOO_MANY_ENTRIES: &str = "entries; the limit is";

/// Parses a message id from a path segment.
pub(crate) fn message_id(seg: &str) -> Result<MessageId, ApiError> {
    let s = router::decode(seg)?;
    s.parse().map_err(|e: &str| {
        let shown: String = s.chars().take(64).collect();
        ApiError::bad_request("invalid_message_id", format!("{shown:?}: {e}"))
    })
}

/// Checks a Content-Type to keep with a message (the engine's rule).
pub(crate) fn content_type(v: &str) -> Result<String, String> {
    crate::engine::check_content_type(v).map(|()| v.to_owned()).map_err(|e| e.to_string())
}

/// Answers with a message's Content-Type. Every stored one passed
/// [`content_type`], which only lets through what a header carries; one that
/// does not (a store edited by hand) is left out, never a reason to fail a read.
/// The body is whatever a sender sent, typed as the sender chose (`text/html`
/// too), so the answer is also [`sandbox`]ed.
pub(crate) fn put_content_type(h: &mut HeaderMap, ct: Option<&str>) {
    if let Some(ct) = ct.and_then(|c| HeaderValue::from_str(c).ok()) {
        h.insert(header::CONTENT_TYPE, ct);
    }
    sandbox(h);
}

/// Tells a browser that opens an answer carrying stored or echoed input to run
/// nothing in it and give it no origin (so a script sent as a message reaches
/// no dashboard key in the origin's storage), and not to guess another type.
/// HTTP clients ignore both headers: the body stays exactly what was stored.
pub(crate) fn sandbox(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// The request's Content-Type header, checked to be kept with a message.
pub(crate) fn content_type_header(h: &HeaderMap) -> Result<Option<String>, ApiError> {
    // An empty one is no type: it would come back as an empty header.
    header(h, header::CONTENT_TYPE.as_str())?
        .filter(|c| !c.trim().is_empty())
        .map(content_type)
        .transpose()
        .map_err(|m| ApiError::bad_request("invalid_header", format!("header Content-Type: {m}")))
}

/// Checks an idempotency key (the engine's rule: 1 to 64 visible ASCII characters).
pub(crate) fn idempotency_key(v: &str) -> Result<String, String> {
    crate::engine::check_idempotency_key(v).map(|()| v.to_owned()).map_err(|e| e.to_string())
}

/// The single value of header `name`, if present, as text.
pub(crate) fn header<'h>(h: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    let mut all = h.get_all(name).iter();
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(ApiError::bad_request("invalid_header", format!("header {name} is repeated")));
    }
    v.to_str().map(Some).map_err(|_| {
        ApiError::bad_request("invalid_header", format!("header {name} is not visible ASCII"))
    })
}

/// An integer header within `lo..=hi`: not a number is `invalid_header`, a
/// number out of bounds `invalid_value`.
pub(crate) fn int_header(
    h: &HeaderMap,
    name: &str,
    lo: u64,
    hi: u64,
) -> Result<Option<u64>, ApiError> {
    header(h, name)?
        .map(|v| {
            router::parse_int(v.trim(), lo, hi)
                .map_err(|e| e.into_api("invalid_header", "header", name))
        })
        .transpose()
}

/// A partition header (below the most partitions a queue may have; whether the
/// queue has it is the engine's check).
pub(crate) fn partition_header(h: &HeaderMap, name: &str) -> Result<Option<u16>, ApiError> {
    header(h, name)?
        .map(|v| {
            router::parse_partition(v.trim())
                .map_err(|e| e.into_api("invalid_header", "header", name))
        })
        .transpose()
}

/// A queue as JSON: the configuration can be sent back to `PUT` unchanged.
#[derive(Serialize)]
pub(crate) struct QueueJson<'a> {
    name: &'a str,
    created_at: Millis,
    config: &'a QueueConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<StatsJson>,
}

#[derive(Serialize)]
struct StatsJson {
    messages: u64,
    bytes: u64,
    in_flight: u64,
    dead_lettered: u64,
    delayed: u64,
    oldest_age_ms: Option<u64>,
}

impl<'a> From<&'a QueueInfo> for QueueJson<'a> {
    fn from(q: &'a QueueInfo) -> Self {
        Self {
            name: &q.name,
            created_at: q.created_at,
            config: &q.config,
            stats: q.stats.as_ref().map(|s: &QueueStats| StatsJson {
                messages: s.messages,
                bytes: s.bytes,
                in_flight: s.in_flight,
                dead_lettered: s.dead_lettered,
                delayed: s.delayed,
                oldest_age_ms: s.oldest_age_ms,
            }),
        }
    }
}

/// A message inside a JSON envelope: `body` when the body is UTF-8, else
/// `body_base64`.
#[derive(Serialize)]
pub(crate) struct MessageJson<'a> {
    id: MessageId,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    size: usize,
    enqueued_at: Millis,
    expires_at: Millis,
    receive_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_until: Option<Millis>,
}

impl<'a> From<&'a Message> for MessageJson<'a> {
    fn from(m: &'a Message) -> Self {
        let (body, body_base64) = match std::str::from_utf8(&m.body) {
            Ok(s) => (Some(s), None),
            Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(&m.body))),
        };
        Self {
            id: m.id,
            body,
            body_base64,
            content_type: m.content_type.as_deref(),
            size: m.body.len(),
            enqueued_at: m.enqueued_at,
            expires_at: m.expires_at,
            receive_count: m.receive_count,
            receipt: m.receipt.map(|r| r.to_string()),
            lease_until: m.lease_until,
        }
    }
}

/// `{"messages":[...]}`, plus `next_after` for browsing.
#[derive(Serialize)]
pub(crate) struct MessagesJson<'a> {
    messages: Vec<MessageJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_after: Option<Option<MessageId>>,
}

impl<'a> MessagesJson<'a> {
    /// The envelope of `msgs`; `next_after` is given for browse pages only.
    pub(crate) fn new(msgs: &'a [Message], next_after: Option<Option<MessageId>>) -> Self {
        Self { messages: msgs.iter().map(MessageJson::from).collect(), next_after }
    }
}

/// Message metadata headers.
pub(crate) const MESSAGE_ID: &str = "edgeq-message-id";
/// The lease receipt header.
pub(crate) const RECEIPT: &str = "edgeq-receipt";
/// Deliveries so far.
pub(crate) const RECEIVE_COUNT: &str = "edgeq-receive-count";
/// Enqueue time (ms since the epoch).
pub(crate) const ENQUEUED_AT: &str = "edgeq-enqueued-at";
/// Expiry time (ms since the epoch).
pub(crate) const EXPIRES_AT: &str = "edgeq-expires-at";
/// Lease end (ms since the epoch).
pub(crate) const LEASE_UNTIL: &str = "edgeq-lease-until";

/// One message as the raw body with its metadata in headers.
pub(crate) fn raw_message(m: Message) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    let h = res.headers_mut();
    let mut put = |name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put(MESSAGE_ID, m.id.to_string());
    put(RECEIVE_COUNT, m.receive_count.to_string());
    put(ENQUEUED_AT, m.enqueued_at.to_string());
    put(EXPIRES_AT, m.expires_at.to_string());
    if let Some(r) = m.receipt {
        put(RECEIPT, r.to_string());
    }
    if let Some(t) = m.lease_until {
        put(LEASE_UNTIL, t.to_string());
    }
    put_content_type(h, m.content_type.as_deref());
    *res.status_mut() = StatusCode::OK;
    *res.body_mut() = m.body;
    res
}

/// Deserialises a list of at most [`MAX_ENTRIES`] items, refusing longer ones
/// while reading instead of after allocating them all.
pub(crate) fn bounded_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_ENTRIES} entries")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                if out.len() == MAX_ENTRIES {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_ENTRIES} {TOO_MANY_ENTRIES} {MAX_ENTRIES}"
                    )));
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(PhantomData))
}

/// Gives the error of an over-long list its own code, `too_many_entries`.
pub(crate) fn too_many(e: ApiError) -> ApiError {
    if e.code() == "invalid_body" && e.body().message.contains(TOO_MANY_ENTRIES) {
        ApiError::bad_request("too_many_entries", e.body().message.to_owned())
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Receipt, MAX_CONTENT_TYPE};

    fn msg(body: &'static [u8]) -> Message {
        Message {
            id: MessageId::new(1000, 0, 0, 1),
            body: Bytes::from_static(body),
            content_type: Some("text/plain".into()),
            enqueued_at: 1000,
            expires_at: 2000,
            receive_count: 2,
            receipt: "r1.0.1.2.0000abcd".parse::<Receipt>().ok(),
            lease_until: Some(1500),
        }
    }

    #[test]
    fn envelopes_text_as_text_and_binary_as_base64() {
        let m = msg(b"hello");
        let v = serde_json::to_value(MessageJson::from(&m)).unwrap();
        assert_eq!(v["body"], "hello");
        assert!(v.get("body_base64").is_none());
        assert_eq!(v["receipt"], "r1.0.1.2.0000abcd");
        assert_eq!(v["receive_count"], 2);
        assert_eq!(v["content_type"], "text/plain");
        let m = msg(b"\xff\x00");
        let v = serde_json::to_value(MessageJson::from(&m)).unwrap();
        assert!(v.get("body").is_none());
        assert_eq!(v["body_base64"], "/wA=");
        assert_eq!(v["size"], 2);
    }

    #[test]
    fn raw_messages_carry_metadata_headers() {
        let res = raw_message(msg(b"\x00\x01"));
        assert_eq!(res.status(), 200);
        assert_eq!(&res.body()[..], b"\x00\x01");
        let h = res.headers();
        assert_eq!(h[MESSAGE_ID], MessageId::new(1000, 0, 0, 1).to_string().as_str());
        assert_eq!(h[RECEIPT], "r1.0.1.2.0000abcd");
        assert_eq!(h[RECEIVE_COUNT], "2");
        assert_eq!(h[header::CONTENT_TYPE], "text/plain");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "sandbox; default-src 'none'");
        let mut m = msg(b"x");
        m.content_type = Some("bad\nvalue".into());
        m.receipt = None;
        let res = raw_message(m);
        assert!(res.headers().get(header::CONTENT_TYPE).is_none());
        assert!(res.headers().get(RECEIPT).is_none());
    }

    #[test]
    fn checks_header_values() {
        let mut h = HeaderMap::new();
        h.insert("edgeq-delay", HeaderValue::from_static("5"));
        assert_eq!(int_header(&h, "edgeq-delay", 0, 10).unwrap(), Some(5));
        assert_eq!(int_header(&h, "edgeq-ttl", 0, 10).unwrap(), None);
        h.insert("edgeq-delay", HeaderValue::from_static("soon"));
        assert_eq!(int_header(&h, "edgeq-delay", 0, 10).unwrap_err().code(), "invalid_header");
        // A number out of bounds is well-formed: invalid_value, naming the bounds.
        h.insert("edgeq-delay", HeaderValue::from_static("99999999999999999999999"));
        let e = int_header(&h, "edgeq-delay", 0, crate::model::MAX_DELAY).unwrap_err();
        assert_eq!(e.code(), "invalid_value");
        assert!(e.body().message.ends_with("is not between 0 and 900"), "{}", e.body().message);
        h.insert("edgeq-partition", HeaderValue::from_static("65536"));
        let e = partition_header(&h, "edgeq-partition").unwrap_err();
        assert_eq!(e.code(), "invalid_value");
        assert!(e.body().message.contains("65536 is not a partition"), "{}", e.body().message);
        h.insert("edgeq-partition", HeaderValue::from_static(" 7 "));
        assert_eq!(partition_header(&h, "edgeq-partition").unwrap(), Some(7));
        h.append("edgeq-delay", HeaderValue::from_static("1"));
        assert!(header(&h, "edgeq-delay").is_err());
        h.insert("x", HeaderValue::from_bytes(b"\xe9").unwrap());
        assert!(header(&h, "x").is_err());
        assert!(idempotency_key("abc-123").is_ok());
        assert!(idempotency_key("").is_err());
        assert!(idempotency_key("a b").is_err());
        assert!(idempotency_key(&"k".repeat(65)).is_err());
        assert!(content_type("application/json; charset=utf-8").is_ok());
        assert!(content_type("a\nb").is_err());
        assert!(content_type("a\tb").is_err());
        assert!(content_type(&"a".repeat(MAX_CONTENT_TYPE)).is_ok());
        assert!(content_type(&"a".repeat(MAX_CONTENT_TYPE + 1)).is_err());
    }

    #[test]
    fn message_ids_are_checked() {
        let id = MessageId::new(5, 0, 0, 1);
        assert_eq!(message_id(&id.to_string()).unwrap(), id);
        assert_eq!(message_id("nope").unwrap_err().code(), "invalid_message_id");
        assert_eq!(message_id("%FF").unwrap_err().code(), "invalid_path");
    }

    #[derive(Debug, Deserialize)]
    struct L {
        #[serde(deserialize_with = "bounded_list")]
        xs: Vec<u8>,
    }

    #[test]
    fn lists_are_bounded_while_reading() {
        let ok = format!("{{\"xs\":[{}]}}", vec!["1"; MAX_ENTRIES].join(","));
        assert_eq!(crate::api::json::parse::<L>(ok.as_bytes()).unwrap().xs.len(), MAX_ENTRIES);
        let long = format!("{{\"xs\":[{}]}}", vec!["1"; MAX_ENTRIES + 1].join(","));
        let e = too_many(crate::api::json::parse::<L>(long.as_bytes()).unwrap_err());
        assert_eq!(e.code(), "too_many_entries");
        let e = too_many(crate::api::json::parse::<L>(b"{\"xs\":[\"a\"]}").unwrap_err());
        assert_eq!(e.code(), "invalid_body");
    }
}
