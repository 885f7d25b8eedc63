//! The memfifo dialect (seed 003): queue objects with kebab-case attributes, and
//! raw messages submitted and read by clients that name themselves in `Client-Id`.
//!
//! Only the seed's document is known of the original; what it leaves open is
//! decided in `dialects/memfifo.md`: `driver` is `memfifo` (the default and the
//! only one), `max-bytes` is the queue's `max_bytes`, and errors use edgeq's
//! `{"error":{"code","message"}}`. That is the v1 shape, so engine errors map
//! through the API's one mapping (`ApiError::from`: 404 `queue_not_found`, 413,
//! 507 `queue_full`, ...); the refusals of this dialect's own are 400
//! `queue_exists`, `invalid_driver` and `missing_client_id`.
//!
//! Decisions beyond the document: a name in a path that no queue can have is a
//! 404 like any missing queue; `DELETE` answers with the queue object as it was;
//! a queue without a byte limit has no `max-bytes` in `read-write`; `Client-Id`
//! is required (non-empty) but not otherwise used. `Client-Id` is checked before
//! the queue is looked up, so a request missing it changes nothing.

use super::{all_queues, queue_config, send_one, Cx};
use crate::api::error::ApiError;
use crate::api::json;
use crate::api::router::{self, allow};
use crate::api::v1::wire;
use crate::engine::{Env, NewMessage, QueueInfo};
use crate::model::{Name, MAX_BODY_LEN};
use crate::store::Store;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// The only driver.
const DRIVER: &str = "memfifo";
/// Header naming the calling system; required on message routes.
const CLIENT_ID: &str = "client-id";
/// Header carrying the message id.
const MESSAGE_ID: HeaderName = HeaderName::from_static("message-id");

/// Serves one request inside the memfifo mount; `rest` is the path inside it.
pub(super) async fn handle<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    rest: &str,
    body: Bytes,
) -> Response<Bytes> {
    route(cx, rest, body).await.unwrap_or_else(ApiError::into_response)
}

async fn route<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    rest: &str,
    body: Bytes,
) -> Result<Response<Bytes>, ApiError> {
    let m = &cx.parts.method;
    let segs = router::raw_segments(rest).unwrap_or_default();
    match segs.as_slice() {
        ["queues"] => {
            allow(m, "GET, HEAD, POST")?;
            match *m {
                Method::POST => create(cx, &body).await,
                _ => list(cx).await,
            }
        }
        ["queues", q] => {
            allow(m, "GET, HEAD, DELETE")?;
            let q = path_name(q)?;
            match *m {
                Method::DELETE => delete(cx, &q).await,
                _ => get(cx, &q).await,
            }
        }
        ["queues", q, "messages"] => {
            allow(m, "GET, POST")?;
            client_id(cx)?;
            let q = path_name(q)?;
            match *m {
                Method::POST => submit(cx, &q, body).await,
                _ => read(cx, &q).await,
            }
        }
        _ => Err(ApiError::no_route(cx.parts.uri.path())),
    }
}

/// A queue name from the path; one no queue can have is a missing queue.
fn path_name(seg: &str) -> Result<Name, ApiError> {
    router::name(seg).map_err(|_| {
        let shown: String = seg.chars().take(100).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "queue_not_found",
            format!("queue {shown} does not exist"),
        )
    })
}

/// Refuses a request without a non-empty `Client-Id`.
fn client_id<S, E>(cx: &Cx<'_, S, E>) -> Result<(), ApiError> {
    match wire::header(&cx.parts.headers, CLIENT_ID)? {
        Some(id) if !id.trim().is_empty() => Ok(()),
        _ => Err(ApiError::bad_request("missing_client_id", "the Client-Id header is required")),
    }
}

/// A queue as memfifo renders it.
#[derive(Debug, Serialize)]
struct QueueObject<'a> {
    name: &'a str,
    driver: &'static str,
    attributes: Attributes,
}

#[derive(Debug, Serialize)]
struct Attributes {
    #[serde(rename = "read-only")]
    read_only: ReadOnly,
    #[serde(rename = "read-write")]
    read_write: ReadWrite,
}

#[derive(Debug, Serialize)]
struct ReadOnly {
    bytes: u64,
    size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadWrite {
    #[serde(rename = "max-bytes", default, skip_serializing_if = "Option::is_none")]
    max_bytes: Option<u64>,
}

impl<'a> From<&'a QueueInfo> for QueueObject<'a> {
    fn from(q: &'a QueueInfo) -> Self {
        let stats = q.stats.clone().unwrap_or_default();
        QueueObject {
            name: &q.name,
            driver: DRIVER,
            attributes: Attributes {
                read_only: ReadOnly { bytes: stats.bytes, size: stats.messages },
                read_write: ReadWrite { max_bytes: q.config.max_bytes },
            },
        }
    }
}

/// The body of `POST /queues`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewQueue {
    name: String,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    attributes: Option<ReadWrite>,
}

/// `POST /queues`: 200 with the new queue; 400 for bad data or a taken name.
async fn create<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    body: &[u8],
) -> Result<Response<Bytes>, ApiError> {
    let new: NewQueue = json::parse(body)?;
    let name = Name::new(&new.name).map_err(crate::engine::Error::from)?;
    if let Some(driver) = new.driver.filter(|d| d != DRIVER) {
        let shown: String = driver.chars().take(64).collect();
        return Err(ApiError::bad_request(
            "invalid_driver",
            format!("unknown driver {shown:?}; the only driver is {DRIVER:?}"),
        ));
    }
    let max_bytes = new.attributes.and_then(|a| a.max_bytes);
    let config = queue_config(max_bytes);
    config.validate().map_err(crate::engine::Error::from)?;
    if !cx.engine.create_queue(cx.ns, &name, config).await? {
        return Err(ApiError::bad_request("queue_exists", format!("queue {name} already exists")));
    }
    let info = cx.engine.get_queue(cx.ns, &name).await?;
    Ok(json::response(StatusCode::OK, &QueueObject::from(&info)))
}

/// `GET /queues`: every queue, in creation order.
async fn list<S: Store, E: Env>(cx: &Cx<'_, S, E>) -> Result<Response<Bytes>, ApiError> {
    let queues = all_queues(cx.engine, cx.ns, true).await?;
    let objects: Vec<QueueObject<'_>> = queues.iter().map(QueueObject::from).collect();
    Ok(json::response(StatusCode::OK, &objects))
}

/// `GET /queues/{name}`
async fn get<S: Store, E: Env>(cx: &Cx<'_, S, E>, q: &Name) -> Result<Response<Bytes>, ApiError> {
    let info = cx.engine.get_queue(cx.ns, q).await?;
    Ok(json::response(StatusCode::OK, &QueueObject::from(&info)))
}

/// `DELETE /queues/{name}`: drops it with its messages; answers what it was.
async fn delete<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, ApiError> {
    let info = cx.engine.get_queue(cx.ns, q).await?;
    cx.engine.delete_queue(cx.ns, q, false).await?;
    Ok(json::response(StatusCode::OK, &QueueObject::from(&info)))
}

/// `POST /queues/{name}/messages`: the raw body, any Content-Type; answers the
/// queue after the submit and the message's id in `Message-Id`.
async fn submit<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    body: Bytes,
) -> Result<Response<Bytes>, ApiError> {
    let content_type = wire::content_type_header(&cx.parts.headers)?;
    if body.len() > MAX_BODY_LEN {
        return Err(ApiError::message_too_large(body.len()));
    }
    let msg = NewMessage { body, content_type, ..NewMessage::default() };
    let sent = send_one(cx.engine, cx.ns, q, msg).await?;
    let info = cx.engine.get_queue(cx.ns, q).await?;
    let mut res = json::response(StatusCode::OK, &QueueObject::from(&info));
    if let Ok(id) = HeaderValue::from_str(&sent.id.to_string()) {
        res.headers_mut().insert(MESSAGE_ID, id);
    }
    Ok(res)
}

/// `GET /queues/{name}/messages`: removes the oldest message and answers it as
/// it was submitted; 204 when the queue is empty.
async fn read<S: Store, E: Env>(cx: &Cx<'_, S, E>, q: &Name) -> Result<Response<Bytes>, ApiError> {
    let Some(m) = cx.engine.pop(cx.ns, q, 1).await?.into_iter().next() else {
        return Ok(json::empty(StatusCode::NO_CONTENT));
    };
    let mut res = Response::new(m.body);
    let h = res.headers_mut();
    wire::put_content_type(h, m.content_type.as_deref());
    if let Ok(id) = HeaderValue::from_str(&m.id.to_string()) {
        h.insert(MESSAGE_ID, id);
    }
    Ok(res)
}
