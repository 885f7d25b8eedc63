//! The primary API, `/v1/...`: queues, messages and exchanges. The wire format is written
//! down in `docs/api-v1.md`; keep the two in step.
//!
//! Routing matches the path's segments (still percent-encoded for the fixed
//! parts, decoded for names and ids), then the method (405 + `Allow` for a known
//! path), and only then parses names, query and body, so every refusal happens
//! before the engine is called and nothing is stored for bad input.

mod delivery;
mod exchanges;
mod messages;
mod queues;
pub(super) mod wire;

use super::error::ApiError;
use super::router::{self, allow};
use crate::engine::{Engine, Env};
use crate::model::{Name, MAX_BODY_LEN};
use crate::store::Store;
use bytes::Bytes;
use http::{request::Parts, Method, Response};

/// Body limit of routes whose body is one raw message: the largest message plus
/// slack, so that a body just over the limit reaches the API and is refused with
/// the message-specific error.
pub(crate) const MESSAGE_BODY_LIMIT: usize = MAX_BODY_LEN + (64 << 10);
/// Body limit of `POST .../messages/batch`.
pub(crate) const BATCH_BODY_LIMIT: usize = 16 << 20;
/// Body limit of the receipt routes (1000 receipts of up to ~90 bytes each).
pub(crate) const RECEIPTS_BODY_LIMIT: usize = 256 << 10;
/// Body limit of every other route.
pub(crate) const SMALL_BODY_LIMIT: usize = 64 << 10;

/// What every handler needs.
pub(crate) struct Cx<'a, S, E> {
    /// The engine.
    pub engine: &'a Engine<S, E>,
    /// The namespace the v1 routes serve.
    pub ns: &'a Name,
    /// The request line and headers.
    pub parts: &'a Parts,
}

impl<S, E> Cx<'_, S, E> {
    /// The query string parsed against the route's `known` parameters.
    pub(crate) fn query(&self, known: &[&'static str]) -> Result<router::Query, ApiError> {
        router::Query::parse(self.parts.uri.query(), known)
    }
}

/// The body limit of the v1 route at `segs` (the segments after `v1`).
pub(crate) fn body_limit(method: &Method, segs: &[&str]) -> usize {
    match segs {
        ["queues", _, "messages"] if method == Method::POST => MESSAGE_BODY_LIMIT,
        ["queues", _, "messages", "batch"] if method == Method::POST => BATCH_BODY_LIMIT,
        ["queues", _, "messages", _] if method == Method::PUT => MESSAGE_BODY_LIMIT,
        ["queues", _, "ack" | "nack" | "extend"] => RECEIPTS_BODY_LIMIT,
        ["exchanges", _, "publish"] if method == Method::POST => MESSAGE_BODY_LIMIT,
        _ => SMALL_BODY_LIMIT,
    }
}

/// Serves one v1 request; `segs` are the path segments after `v1`.
pub(crate) async fn handle<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    segs: &[&str],
    body: Bytes,
) -> Result<Response<Bytes>, ApiError> {
    let m = &cx.parts.method;
    match segs {
        ["queues"] => {
            allow(m, "GET, HEAD")?;
            queues::list(cx).await
        }
        ["queues", q] => {
            allow(m, "GET, HEAD, PUT, DELETE")?;
            let q = router::name(q)?;
            match *m {
                Method::PUT => queues::put(cx, &q, &body).await,
                Method::DELETE => queues::delete(cx, &q).await,
                _ => queues::get(cx, &q).await,
            }
        }
        ["queues", q, "purge"] => {
            allow(m, "POST")?;
            queues::purge(cx, &router::name(q)?).await
        }
        ["queues", q, "messages"] => {
            allow(m, "GET, HEAD, POST")?;
            let q = router::name(q)?;
            match *m {
                Method::POST => messages::send(cx, &q, body).await,
                _ => messages::browse(cx, &q).await,
            }
        }
        ["queues", q, "messages", "batch"] => {
            allow(m, "POST")?;
            messages::send_batch(cx, &router::name(q)?, &body).await
        }
        ["queues", q, "messages", id] => {
            allow(m, "GET, HEAD, PUT, DELETE")?;
            let q = router::name(q)?;
            let id = wire::message_id(id)?;
            match *m {
                Method::PUT => messages::put(cx, &q, id, body).await,
                Method::DELETE => messages::delete(cx, &q, id).await,
                _ => messages::get(cx, &q, id).await,
            }
        }
        ["queues", q, "pop"] => {
            allow(m, "POST")?;
            delivery::pop(cx, &router::name(q)?).await
        }
        ["queues", q, "receive"] => {
            allow(m, "POST")?;
            delivery::receive(cx, &router::name(q)?).await
        }
        ["queues", q, op @ ("ack" | "nack" | "extend")] => {
            allow(m, "POST")?;
            let q = router::name(q)?;
            match *op {
                "ack" => delivery::ack(cx, &q, &body).await,
                "nack" => delivery::nack(cx, &q, &body).await,
                _ => delivery::extend(cx, &q, &body).await,
            }
        }
        ["exchanges", x] => {
            allow(m, "GET, HEAD, PUT, DELETE")?;
            let x = router::name(x)?;
            match *m {
                Method::PUT => exchanges::put(cx, &x, &body).await,
                Method::DELETE => exchanges::delete(cx, &x).await,
                _ => exchanges::get(cx, &x).await,
            }
        }
        ["exchanges", x, "bindings", q] => {
            allow(m, "PUT, DELETE")?;
            let bind = *m == Method::PUT;
            exchanges::binding(cx, &router::name(x)?, &router::name(q)?, bind).await
        }
        ["exchanges", x, "publish"] => {
            allow(m, "POST")?;
            exchanges::publish(cx, &router::name(x)?, body).await
        }
        _ => Err(ApiError::no_route(cx.parts.uri.path())),
    }
}
