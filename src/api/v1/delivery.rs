//! Delivery routes: pop (destructive), receive (lease, with long polling), and
//! ack / nack / extend by receipts.
//!
//! Response shape of pop and receive: without `count` the answer is ONE message
//! as its raw body with metadata headers; with `count` (even `count=1`) it is the
//! JSON envelope `{"messages":[...]}`. Either way an empty queue answers 204.

use super::wire::{self, bounded_list, MessagesJson};
use super::Cx;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::json;
use crate::engine::{self, Env, Message, Receipt, ReceiveOptions};
use crate::model::{Name, QueueConfig, MAX_VISIBILITY};
use crate::store::Store;
use bytes::Bytes;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

/// Most messages one pop or receive returns.
const MAX_COUNT: u64 = 100;
/// Longest long poll, in seconds.
const MAX_WAIT: u64 = 20;
/// First pause between polls of a long poll, in milliseconds.
const FIRST_POLL_INTERVAL: u64 = 50;
/// Longest pause between polls of a long poll, in milliseconds.
const MAX_POLL_INTERVAL: u64 = 500;

/// The answer to a pop or receive: 204 when empty, raw when `count` was not
/// given, else the JSON envelope.
fn delivered(msgs: Vec<Message>, enveloped: bool) -> Response<Bytes> {
    if msgs.is_empty() {
        return json::empty(StatusCode::NO_CONTENT);
    }
    if enveloped {
        return json::response(StatusCode::OK, &MessagesJson::new(&msgs, None));
    }
    match msgs.into_iter().next() {
        Some(m) => wire::raw_message(m),
        None => json::empty(StatusCode::NO_CONTENT),
    }
}

/// `POST /v1/queues/{q}/pop?count=`
pub(super) async fn pop<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, ApiError> {
    let query = cx.query(&["count"])?;
    let count = query.int("count", 1, MAX_COUNT)?;
    // Bounded by MAX_COUNT.
    let msgs = cx.engine.pop(cx.ns, q, count.unwrap_or(1) as usize).await?;
    Ok(delivered(msgs, count.is_some()))
}

/// `POST /v1/queues/{q}/receive?count=&visibility_timeout=&wait=&partition=`
pub(super) async fn receive<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, ApiError> {
    let query = cx.query(&["count", "visibility_timeout", "wait", "partition"])?;
    let count = query.int("count", 1, MAX_COUNT)?;
    let visibility_timeout = query.int("visibility_timeout", 0, MAX_VISIBILITY)?;
    let wait = query.int("wait", 0, MAX_WAIT)?.unwrap_or(0);
    let partition = query.partition("partition")?;
    // Bounded above by MAX_COUNT.
    let opts = ReceiveOptions { count: count.unwrap_or(1) as usize, visibility_timeout, partition };
    let env = cx.engine.env();
    let deadline = env.now().saturating_add(wait * 1000);
    let mut interval = FIRST_POLL_INTERVAL;
    let msgs = loop {
        let msgs = cx.engine.receive(cx.ns, q, opts).await?;
        let now = env.now();
        if !msgs.is_empty() || now >= deadline || env.stopping() {
            break msgs;
        }
        env.sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
    };
    Ok(delivered(msgs, count.is_some()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckRequest {
    #[serde(deserialize_with = "bounded_list")]
    receipts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NackRequest {
    #[serde(deserialize_with = "bounded_list")]
    receipts: Vec<String>,
    #[serde(default)]
    delay: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendRequest {
    #[serde(deserialize_with = "bounded_list")]
    receipts: Vec<String>,
    visibility_timeout: u64,
}

/// The operation to apply to parsed receipts.
enum LeaseOp {
    Ack,
    Nack(u64),
    Extend(u64),
}

/// `POST /v1/queues/{q}/ack` with `{"receipts":[...]}`
pub(super) async fn ack<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    body: &Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let req: AckRequest = json::parse(body).map_err(wire::too_many)?;
    by_receipts(cx, q, req.receipts, LeaseOp::Ack).await
}

/// `POST /v1/queues/{q}/nack` with `{"receipts":[...], "delay": s}`
pub(super) async fn nack<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    body: &Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let req: NackRequest = json::parse(body).map_err(wire::too_many)?;
    QueueConfig::check_delay(req.delay).map_err(engine::Error::from)?;
    by_receipts(cx, q, req.receipts, LeaseOp::Nack(req.delay)).await
}

/// `POST /v1/queues/{q}/extend` with `{"receipts":[...], "visibility_timeout": s}`
pub(super) async fn extend<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    body: &Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let req: ExtendRequest = json::parse(body).map_err(wire::too_many)?;
    QueueConfig::check_visibility(req.visibility_timeout).map_err(engine::Error::from)?;
    by_receipts(cx, q, req.receipts, LeaseOp::Extend(req.visibility_timeout)).await
}

/// One receipt's outcome in the results.
#[derive(Serialize)]
struct ReceiptResult<'a> {
    receipt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody<'a>>,
}

/// Applies `op` to every well-formed receipt. A request with one receipt answers
/// with that receipt's own status (409 when stale); with several, 200 and one
/// result per receipt, in order.
async fn by_receipts<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    raw: Vec<String>,
    op: LeaseOp,
) -> Result<Response<Bytes>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "receipts is empty; give 1 to 1000 receipts",
        ));
    }
    let parsed: Vec<Result<Receipt, ApiError>> = raw
        .iter()
        .map(|r| {
            r.parse::<Receipt>().map_err(|e| {
                let shown: String = r.chars().take(64).collect();
                ApiError::from(engine::Error::InvalidReceipt(format!("{shown:?}: {e}")))
            })
        })
        .collect();
    let valid: Vec<Receipt> = parsed.iter().filter_map(|p| p.as_ref().ok().copied()).collect();
    let done = if valid.is_empty() {
        Vec::new()
    } else {
        match op {
            LeaseOp::Ack => cx.engine.ack(cx.ns, q, &valid).await?,
            LeaseOp::Nack(d) => cx.engine.nack(cx.ns, q, &valid, d).await?,
            LeaseOp::Extend(v) => cx.engine.extend(cx.ns, q, &valid, v).await?,
        }
    };
    if done.len() != valid.len() {
        return Err(ApiError::internal(format!(
            "the engine returned {} outcomes for {} receipts",
            done.len(),
            valid.len()
        )));
    }
    // Merge the engine's outcomes back among the malformed receipts, in order.
    let mut done = done.into_iter();
    let outcomes: Vec<Result<(), ApiError>> = parsed
        .into_iter()
        .map(|p| match p {
            Ok(_) => done.next().unwrap_or(Ok(())).map_err(ApiError::from),
            Err(e) => Err(e),
        })
        .collect();
    if let [only] = outcomes.as_slice() {
        return match only {
            Ok(()) => Ok(results(&raw, &outcomes)),
            Err(e) => Err(e.clone()),
        };
    }
    Ok(results(&raw, &outcomes))
}

fn results(raw: &[String], outcomes: &[Result<(), ApiError>]) -> Response<Bytes> {
    #[derive(Serialize)]
    struct Results<'a> {
        results: Vec<ReceiptResult<'a>>,
        succeeded: usize,
        failed: usize,
    }
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    json::response(
        StatusCode::OK,
        &Results {
            results: raw
                .iter()
                .zip(outcomes)
                .map(|(r, o)| ReceiptResult {
                    receipt: r,
                    error: o.as_ref().err().map(ApiError::body),
                })
                .collect(),
            succeeded: outcomes.len() - failed,
            failed,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_bodies_are_strict() {
        assert!(json::parse::<AckRequest>(br#"{"receipts":["r1.0.1.1"]}"#).is_ok());
        assert_eq!(
            json::parse::<AckRequest>(br#"{"receipts":"r1.0.1.1"}"#).unwrap_err().code(),
            "invalid_body"
        );
        assert!(json::parse::<AckRequest>(br#"{"receipts":[],"delay":1}"#).is_err());
        let n: NackRequest = json::parse(br#"{"receipts":["a"]}"#).unwrap();
        assert_eq!(n.delay, 0);
        assert!(json::parse::<ExtendRequest>(br#"{"receipts":["a"]}"#).is_err());
    }

    #[test]
    fn results_keep_order_and_count_failures() {
        let raw = vec!["a".to_owned(), "b".to_owned()];
        let outcomes = vec![Ok(()), Err(ApiError::from(engine::Error::StaleReceipt("b".into())))];
        let res = results(&raw, &outcomes);
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(v["succeeded"], 1);
        assert_eq!(v["failed"], 1);
        assert_eq!(v["results"][0]["receipt"], "a");
        assert!(v["results"][0].get("error").is_none());
        assert_eq!(v["results"][1]["error"]["code"], "stale_receipt");
    }

    /// A long poll on an empty queue, on a virtual clock: how long it waited.
    fn long_poll_wait(stopping: bool) -> (u16, u64) {
        use crate::api::{Api, ApiConfig};
        use crate::engine::{Engine, ManualEnv};
        use crate::store::MemoryStore;
        use futures::executor::block_on;
        let env = ManualEnv::new(1_000, 1);
        let api = Api::new(Engine::new(MemoryStore::new(), env.clone()), ApiConfig::default());
        let call = |method: &str, uri: &str| {
            let req = http::Request::builder().method(method).uri(uri).body(Bytes::new());
            block_on(api.handle(req.unwrap())).status().as_u16()
        };
        assert_eq!(call("PUT", "/v1/queues/q"), 201);
        if stopping {
            env.stop();
        }
        let start = env.now();
        let status = call("POST", "/v1/queues/q/receive?wait=20");
        (status, env.now() - start)
    }

    #[test]
    fn a_long_poll_waits_its_time_unless_the_host_is_stopping() {
        let (status, waited) = long_poll_wait(false);
        assert_eq!((status, waited), (204, 20_000));
        // Stopping: one look at the queue, no wait.
        let (status, waited) = long_poll_wait(true);
        assert_eq!((status, waited), (204, 0));
    }
}
