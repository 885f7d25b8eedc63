//! Exchange routes: create, get, delete, bind, unbind, publish.

use super::messages::{raw_new_message, SentJson};
use super::{wire, Cx};
use crate::api::error::ApiError;
use crate::api::json;
use crate::engine::{Env, ExchangeInfo, ExchangeKind, MAX_ROUTING_KEY};
use crate::model::{Millis, Name};
use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// Header: the routing key of a publish.
const ROUTING_KEY: &str = "edgeq-routing-key";

/// `PUT /v1/exchanges/{x}` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeRequest {
    #[serde(rename = "type")]
    kind: ExchangeKind,
}

#[derive(Serialize)]
struct ExchangeJson<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: ExchangeKind,
    created_at: Millis,
    bindings: &'a [crate::engine::Binding],
}

impl<'a> From<&'a ExchangeInfo> for ExchangeJson<'a> {
    fn from(x: &'a ExchangeInfo) -> Self {
        Self { name: &x.name, kind: x.kind, created_at: x.created_at, bindings: &x.bindings }
    }
}

/// `PUT /v1/exchanges/{x}`: `{"type": "direct" | "topic" | "fanout"}`; an empty
/// body means `direct` (AMQP's default kind).
pub(super) async fn put<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    x: &Name,
    body: &Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let kind = if body.iter().all(u8::is_ascii_whitespace) {
        ExchangeKind::Direct
    } else {
        json::parse::<ExchangeRequest>(body)?.kind
    };
    let (info, created) = cx.engine.put_exchange(cx.ns, x, kind).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let mut res = json::response(status, &ExchangeJson::from(&info));
    if created {
        if let Ok(loc) = HeaderValue::from_str(&format!("/v1/exchanges/{x}")) {
            res.headers_mut().insert(header::LOCATION, loc);
        }
    }
    Ok(res)
}

/// `GET /v1/exchanges/{x}`: kind and bindings.
pub(super) async fn get<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    x: &Name,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let info = cx.engine.get_exchange(cx.ns, x).await?;
    Ok(json::response(StatusCode::OK, &ExchangeJson::from(&info)))
}

/// `DELETE /v1/exchanges/{x}`
pub(super) async fn delete<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    x: &Name,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    cx.engine.delete_exchange(cx.ns, x).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}

/// `PUT|DELETE /v1/exchanges/{x}/bindings/{q}?key=` (no key = the empty key).
pub(super) async fn binding<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    x: &Name,
    q: &Name,
    bind: bool,
) -> Result<Response<Bytes>, ApiError> {
    let query = cx.query(&["key"])?;
    let key = query.get("key").unwrap_or("");
    if key.len() > MAX_ROUTING_KEY {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("query parameter key: over {MAX_ROUTING_KEY} bytes"),
        ));
    }
    if bind {
        cx.engine.bind(cx.ns, x, q, key).await?;
    } else {
        cx.engine.unbind(cx.ns, x, q, key).await?;
    }
    Ok(json::empty(StatusCode::NO_CONTENT))
}

/// Where a publish went: `{"routed": N, "queues": [{"queue", "id", "duplicate"}
/// | {"queue", "error"}]}`.
#[derive(Serialize)]
struct PublishedJson<'a> {
    routed: usize,
    queues: Vec<QueueOutcome<'a>>,
}

#[derive(Serialize)]
struct QueueOutcome<'a> {
    queue: &'a str,
    #[serde(flatten)]
    sent: Option<SentJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<crate::api::error::ErrorBody<'a>>,
}

/// `POST /v1/exchanges/{x}/publish`: the raw body is the message, headers as
/// for a single send plus `Edgeq-Routing-Key`. 200 with the outcome per matched
/// queue; routing to no queue is not an error (`"routed": 0`).
pub(super) async fn publish<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    x: &Name,
    body: Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let h = &cx.parts.headers;
    let key = wire::header(h, ROUTING_KEY)?.unwrap_or("");
    if key.len() > MAX_ROUTING_KEY {
        return Err(ApiError::bad_request(
            "invalid_header",
            format!("header Edgeq-Routing-Key: over {MAX_ROUTING_KEY} bytes"),
        ));
    }
    let msg = raw_new_message(h, body)?;
    let routed = cx.engine.publish(cx.ns, x, key, msg).await?;
    let errors: Vec<Option<ApiError>> =
        routed.iter().map(|r| r.outcome.as_ref().err().map(|e| e.clone().into())).collect();
    let out = PublishedJson {
        routed: routed.iter().filter(|r| r.outcome.is_ok()).count(),
        queues: routed
            .iter()
            .zip(&errors)
            .map(|(r, e)| QueueOutcome {
                queue: &r.queue,
                sent: r.outcome.as_ref().ok().map(|s| SentJson::from(*s)),
                error: e.as_ref().map(ApiError::body),
            })
            .collect(),
    };
    Ok(json::response(StatusCode::OK, &out))
}
