//! Message routes: send one (raw body) or a batch (JSON), browse, and read,
//! overwrite or delete one message by id.

use super::wire::{self, bounded_list, MessagesJson};
use super::Cx;
use crate::api::error::ApiError;
use crate::api::{json, router};
use crate::engine::{self, BrowseOptions, Env, NewMessage, Order, Sent};
use crate::model::{MessageId, Name, QueueConfig, MAX_BODY_LEN, MAX_DELAY, MAX_TTL, MIN_TTL};
use crate::store::Store;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// Header: seconds before the message becomes visible.
const DELAY: &str = "edgeq-delay";
/// Header: seconds the message lives.
const TTL: &str = "edgeq-ttl";
/// Header: the partition to send to.
const PARTITION: &str = "edgeq-partition";
/// Header: deduplication key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Default page size of a browse.
const DEFAULT_BROWSE_LIMIT: u64 = 100;
/// Largest page size of a browse.
const MAX_BROWSE_LIMIT: u64 = 1000;

/// `{"id": ..., "duplicate": ...}`: the outcome of one send.
#[derive(Serialize)]
pub(super) struct SentJson {
    id: MessageId,
    duplicate: bool,
}

impl From<Sent> for SentJson {
    fn from(s: Sent) -> Self {
        Self { id: s.id, duplicate: s.duplicate }
    }
}

fn location(q: &Name, id: MessageId) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("/v1/queues/{q}/messages/{id}")).ok()
}

fn body_size(len: usize) -> Result<(), ApiError> {
    if len > MAX_BODY_LEN {
        return Err(ApiError::message_too_large(len));
    }
    Ok(())
}

/// `POST /v1/queues/{q}/messages`: the raw body is the message.
pub(super) async fn send<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    body: Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let msg = raw_new_message(&cx.parts.headers, body)?;
    let sent =
        cx.engine.send(cx.ns, q, vec![msg]).await?.into_iter().next().ok_or_else(|| {
            ApiError::internal("the engine returned no outcome for the message")
        })??;
    let status = if sent.duplicate { StatusCode::OK } else { StatusCode::CREATED };
    let mut res = json::response(status, &SentJson::from(sent));
    if let Some(loc) = location(q, sent.id) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

/// A message from a raw body and the `Edgeq-*`, `Idempotency-Key` and
/// `Content-Type` headers (single sends and publishes).
pub(super) fn raw_new_message(h: &HeaderMap, body: Bytes) -> Result<NewMessage, ApiError> {
    let delay = wire::int_header(h, DELAY, 0, MAX_DELAY)?;
    let ttl = wire::int_header(h, TTL, MIN_TTL, MAX_TTL)?;
    let partition = wire::partition_header(h, PARTITION)?;
    let idempotency_key = wire::header(h, IDEMPOTENCY_KEY)?
        .map(|k| {
            wire::idempotency_key(k).map_err(|m| {
                ApiError::bad_request("invalid_header", format!("header Idempotency-Key: {m}"))
            })
        })
        .transpose()?;
    let content_type = wire::content_type_header(h)?;
    body_size(body.len())?;
    Ok(NewMessage { body, content_type, delay, ttl, partition, idempotency_key })
}

/// One entry of a batch send.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchEntry {
    body: Option<String>,
    body_base64: Option<String>,
    content_type: Option<String>,
    delay: Option<u64>,
    ttl: Option<u64>,
    /// Wider than a partition, so that one out of bounds is `invalid_value`.
    partition: Option<u64>,
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    #[serde(deserialize_with = "bounded_list")]
    messages: Vec<BatchEntry>,
}

impl BatchEntry {
    /// Checks the entry at `i` and turns it into a message.
    fn into_message(self, i: usize) -> Result<NewMessage, ApiError> {
        let at = |m: String| format!("messages[{i}]: {m}");
        let bad = |m: String| ApiError::bad_request("invalid_body", at(m));
        let body = match (self.body, self.body_base64) {
            (Some(text), None) => Bytes::from(text),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map(Bytes::from)
                .map_err(|e| bad(format!("body_base64 is not base64: {e}")))?,
            _ => return Err(bad("exactly one of body and body_base64 is required".into())),
        };
        if body.len() > MAX_BODY_LEN {
            let e = engine::Error::MessageTooLarge(body.len());
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "message_too_large",
                at(e.to_string()),
            ));
        }
        let invalid = |e: crate::model::ConfigError| {
            ApiError::bad_request("invalid_value", at(e.to_string()))
        };
        if let Some(d) = self.delay {
            QueueConfig::check_delay(d).map_err(invalid)?;
        }
        if let Some(t) = self.ttl {
            QueueConfig::check_ttl(t).map_err(invalid)?;
        }
        let partition = self
            .partition
            .map(|p| {
                router::partition(p).map_err(|e| {
                    ApiError::bad_request("invalid_value", at(format!("partition: {e}")))
                })
            })
            .transpose()?;
        let content_type =
            self.content_type.map(|c| wire::content_type(&c).map_err(bad)).transpose()?;
        let idempotency_key =
            self.idempotency_key.map(|k| wire::idempotency_key(&k).map_err(bad)).transpose()?;
        Ok(NewMessage {
            body,
            content_type,
            delay: self.delay,
            ttl: self.ttl,
            partition,
            idempotency_key,
        })
    }
}

/// One entry of a batch's results: its outcome or its error.
#[derive(Serialize)]
#[serde(untagged)]
enum EntryResult<'a, T> {
    Ok(T),
    Err { error: crate::api::error::ErrorBody<'a> },
}

/// `POST /v1/queues/{q}/messages/batch`: every entry is checked before any is
/// sent, so a malformed batch stores nothing; then each entry gets its outcome.
pub(super) async fn send_batch<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    body: &Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let req: BatchRequest = json::parse(body).map_err(wire::too_many)?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "messages is empty; send 1 to 1000 entries",
        ));
    }
    let msgs = req
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.into_message(i))
        .collect::<Result<Vec<_>, _>>()?;
    let n = msgs.len();
    let outcomes = cx.engine.send(cx.ns, q, msgs).await?;
    if outcomes.len() != n {
        return Err(ApiError::internal(format!(
            "the engine returned {} outcomes for {n} messages",
            outcomes.len()
        )));
    }
    let errors: Vec<Option<ApiError>> =
        outcomes.iter().map(|o| o.as_ref().err().map(|e| ApiError::from(e.clone()))).collect();
    let results: Vec<EntryResult<'_, SentJson>> = outcomes
        .iter()
        .zip(&errors)
        .map(|(o, e)| match (o, e) {
            (Ok(s), _) => EntryResult::Ok(SentJson::from(*s)),
            (Err(_), Some(e)) => EntryResult::Err { error: e.body() },
            (Err(_), None) => EntryResult::Err {
                error: crate::api::error::ErrorBody { code: "internal", message: "" },
            },
        })
        .collect();
    let failed = errors.iter().filter(|e| e.is_some()).count();
    #[derive(Serialize)]
    struct Batch<'a> {
        results: Vec<EntryResult<'a, SentJson>>,
        succeeded: usize,
        failed: usize,
    }
    Ok(json::response(StatusCode::OK, &Batch { results, succeeded: n - failed, failed }))
}

/// `GET /v1/queues/{q}/messages?after=&limit=&order=&partition=`
pub(super) async fn browse<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, ApiError> {
    let query = cx.query(&["after", "limit", "order", "partition"])?;
    let after = query
        .get("after")
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<MessageId>().map_err(|e| {
                ApiError::bad_request("invalid_query", format!("query parameter after: {e}"))
            })
        })
        .transpose()?;
    let limit = query.int("limit", 1, MAX_BROWSE_LIMIT)?.unwrap_or(DEFAULT_BROWSE_LIMIT);
    let order = match query.get("order") {
        None | Some("asc") => Order::Ascending,
        Some("desc") => Order::Descending,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "query parameter order: must be asc or desc",
            ))
        }
    };
    let partition = query.partition("partition")?;
    // Bounded above by MAX_BROWSE_LIMIT.
    let opts = BrowseOptions { after, limit: limit as usize, order, partition };
    let page = cx.engine.browse(cx.ns, q, opts).await?;
    Ok(json::response(StatusCode::OK, &MessagesJson::new(&page.messages, Some(page.next_after))))
}

/// `GET /v1/queues/{q}/messages/{id}`: the raw body with metadata headers.
pub(super) async fn get<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    id: MessageId,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let m = cx.engine.get_message(cx.ns, q, id).await?;
    Ok(wire::raw_message(m))
}

/// `PUT /v1/queues/{q}/messages/{id}`: replaces body and Content-Type.
pub(super) async fn put<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    id: MessageId,
    body: Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let content_type = wire::content_type_header(&cx.parts.headers)?;
    body_size(body.len())?;
    cx.engine.put_message(cx.ns, q, id, body, content_type, None).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /v1/queues/{q}/messages/{id}`
pub(super) async fn delete<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    id: MessageId,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    cx.engine.delete_message(cx.ns, q, id).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Result<NewMessage, ApiError> {
        let e: BatchEntry = serde_json::from_str(json).unwrap();
        e.into_message(3)
    }

    #[test]
    fn batch_entries_are_checked() {
        let m = entry(r#"{"body":"hi","content_type":"text/plain","delay":5}"#).unwrap();
        assert_eq!(&m.body[..], b"hi");
        assert_eq!(m.delay, Some(5));
        let m = entry(r#"{"body_base64":"/wA="}"#).unwrap();
        assert_eq!(&m.body[..], b"\xff\x00");
        let e = entry(r#"{}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_body");
        assert!(e.body().message.starts_with("messages[3]"));
        assert!(entry(r#"{"body":"a","body_base64":"YQ=="}"#).is_err());
        assert_eq!(entry(r#"{"body_base64":"!!"}"#).unwrap_err().code(), "invalid_body");
        assert_eq!(entry(r#"{"body":"a","delay":901}"#).unwrap_err().code(), "invalid_value");
        assert_eq!(entry(r#"{"body":"a","ttl":0}"#).unwrap_err().code(), "invalid_value");
        for p in ["200", "65536"] {
            let e = entry(&format!("{{\"body\":\"a\",\"partition\":{p}}}")).unwrap_err();
            assert_eq!(e.code(), "invalid_value", "{p}");
            assert!(e.body().message.starts_with("messages[3]: partition: "), "{p}");
        }
        assert_eq!(entry(r#"{"body":"a","partition":199}"#).unwrap().partition, Some(199));
        assert!(serde_json::from_str::<BatchEntry>(r#"{"body":"a","partition":-1}"#).is_err());
        assert!(entry(r#"{"body":"a","idempotency_key":""}"#).is_err());
        assert!(serde_json::from_str::<BatchEntry>(r#"{"body":"a","extra":1}"#).is_err());
    }

    #[test]
    fn batch_entries_over_the_size_limit_are_413() {
        let big = "a".repeat(MAX_BODY_LEN + 1);
        let e = entry(&format!("{{\"body\":\"{big}\"}}")).unwrap_err();
        assert_eq!(e.status(), 413);
        assert_eq!(e.code(), "message_too_large");
        let ok = "a".repeat(MAX_BODY_LEN);
        assert!(entry(&format!("{{\"body\":\"{ok}\"}}")).is_ok());
    }
}
