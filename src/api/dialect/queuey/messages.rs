//! Messages: post (single or batch), browse by time, and get / put / delete by id.
//!
//! Queuey partitions are 1-based, the engine's 0-based. Queuey's longest TTL is
//! the engine's. A batch entry's non-string body is
//! stored as text: numbers as JSON writes them, booleans as Python's `str`
//! (`True`), arrays and objects as compact JSON (Python would store its repr).
//! Bodies are returned as UTF-8 text (invalid sequences replaced). Browsing never consumes: `since` is
//! applied per partition as Cassandra compared time uuids (time, then clock
//! sequence, then node), which for edgeq ids is (millisecond, partition, slot).
//! A `since` message id of the browsed partition starts the engine browse at
//! that message; a `since` time walks the partition from its oldest (or newest)
//! message, at most [`MAX_PAGES`] engine pages.
//!
//! `PUT` of an id replaces the body of that message, keeping its place, id and
//! expiry (`X-TTL` is checked, not applied). An id that names no stored message
//! is refused with 404 and nothing changes: the engine cannot put a message at
//! a position of the client's choosing, and creating it at the end under
//! another id would break the client's later reads of that id.

use super::ids;
use super::{int_field, ok_json, one_of, Fields, Queuey, Refusal, Shown};
use crate::api::router::decode;
use crate::engine::{
    answer_full, BrowseOptions, Env, Message, NewMessage, Order, MAX_ANSWER_BYTES, MAX_BROWSE,
};
use crate::model::{MessageId, Name, MAX_BATCH};
use crate::store::Store;
use bytes::Bytes;
use http::{header, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

/// Queuey's longest TTL in seconds, which the engine's is.
const MAX_TTL: i64 = crate::model::MAX_TTL as i64;
/// Queuey's default TTL: three days.
const DEFAULT_TTL: u64 = 259_200;
/// Most engine browse pages one Queuey browse reads per partition.
const MAX_PAGES: usize = 100;

/// One message as Queuey renders a stored one.
#[derive(Serialize)]
struct Rendered {
    message_id: String,
    timestamp: String,
    body: String,
    partition: u16,
}

impl From<&Message> for Rendered {
    fn from(m: &Message) -> Self {
        Rendered {
            message_id: ids::to_hex(m.id),
            timestamp: ids::timestamp(m.id),
            body: String::from_utf8_lossy(&m.body).into_owned(),
            partition: m.id.partition() + 1,
        }
    }
}

#[derive(Serialize)]
struct Listing<T> {
    status: &'static str,
    messages: Vec<T>,
}

fn listing<T: Serialize>(messages: Vec<T>) -> Response<Bytes> {
    ok_json(&Listing { status: "ok", messages })
}

/// One message of a post, checked.
struct Entry {
    body: Bytes,
    partition: Option<u16>,
    ttl: u64,
}

/// Checks `partition` (1..=partitions) and `ttl` (1..=[`MAX_TTL`]), reporting
/// failures under `prefix` + the field name.
fn entry(
    body: Bytes,
    partition: Option<&str>,
    ttl: Option<&str>,
    partitions: u16,
    prefix: &str,
    errors: &mut Fields,
) -> Entry {
    let partition = int_field(partition, 1, i64::from(partitions)).unwrap_or_else(|m| {
        errors.add(format!("{prefix}partition"), m);
        None
    });
    let ttl = int_field(ttl, 1, MAX_TTL).unwrap_or_else(|m| {
        errors.add(format!("{prefix}ttl"), m);
        None
    });
    Entry {
        body,
        partition: partition.map(|p| p as u16 - 1),
        ttl: ttl.map_or(DEFAULT_TTL, |t| t as u64),
    }
}

/// A header's text; empty means absent.
fn header_text<'h, S, E>(cx: &'h Queuey<'_, S, E>, name: &str) -> Option<&'h str> {
    cx.cx.parts.headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.trim().is_empty())
}

/// `POST /v1/{app}/{q}`: a JSON batch, or one raw message; 201.
pub(super) async fn post<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
    body: Bytes,
) -> Result<Response<Bytes>, Refusal> {
    let (info, _) = cx.queue(q).await?;
    cx.owner_only()?;
    let partitions = info.config.partitions;
    let content_type = header_text(cx, header::CONTENT_TYPE.as_str());
    let mut errors = Fields::default();
    let entries = if content_type.is_some_and(|c| c.starts_with("application/json")) {
        batch(&body, partitions, &mut errors)?
    } else {
        if body.is_empty() {
            errors.add("body", "Required");
        }
        let (p, ttl) = (header_text(cx, "x-partition"), header_text(cx, "x-ttl"));
        vec![entry(body, p, ttl, partitions, "", &mut errors)]
    };
    errors.check()?;
    let stored_type = content_type.filter(|_| entries.len() == 1).map(str::to_owned);
    let msgs = entries
        .into_iter()
        .map(|e| NewMessage {
            body: e.body,
            content_type: stored_type.clone(),
            ttl: Some(e.ttl),
            partition: e.partition,
            ..NewMessage::default()
        })
        .collect();
    let mut out = Vec::new();
    for sent in cx.cx.engine.send(&cx.ns, q, msgs).await? {
        let id = sent?.id;
        out.push(Posted {
            key: ids::to_hex(id),
            timestamp: ids::timestamp(id),
            partition: id.partition() + 1,
        });
    }
    let mut res = listing(out);
    *res.status_mut() = StatusCode::CREATED;
    Ok(res)
}

#[derive(Serialize)]
struct Posted {
    key: String,
    timestamp: String,
    partition: u16,
}

/// The entries of `{"messages":[{"body","partition"?,"ttl"?}]}`.
fn batch(body: &[u8], partitions: u16, errors: &mut Fields) -> Result<Vec<Entry>, Refusal> {
    let unreadable = || {
        super::fail(
            StatusCode::BAD_REQUEST,
            Fields::one("InvalidParameter", "Unable to properly deserialize JSON body."),
        )
    };
    let v: Value = serde_json::from_slice(body).map_err(|_| unreadable())?;
    let Some(list) = v.get("messages").and_then(Value::as_array) else { return Err(unreadable()) };
    if list.len() > MAX_BATCH {
        return Err(super::fail(
            StatusCode::BAD_REQUEST,
            Fields::one("messages", &format!("Longer than maximum length {MAX_BATCH}")),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let prefix = format!("{i}.");
        // colander's String takes any falsy value for a missing one.
        let text = match m.get("body").filter(|v| !falsy(v)) {
            None => {
                errors.add(format!("{i}.body"), "Required");
                String::new()
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => if *b { "True" } else { "False" }.to_owned(),
            Some(other) => other.to_string(),
        };
        let (p, ttl) = (scalar(m.get("partition")), scalar(m.get("ttl")));
        out.push(entry(
            Bytes::from(text),
            p.as_deref(),
            ttl.as_deref(),
            partitions,
            &prefix,
            errors,
        ));
    }
    Ok(out)
}

/// Whether Python finds `v` false: `""`, `0`, `0.0`, `false`, `[]`, `{}`.
fn falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// A JSON scalar as colander sees it (`null` is absent).
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `GET /v1/{app}/{q}`: messages of each listed partition, in the order given.
pub(super) async fn browse<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, Refusal> {
    let (info, settings) = cx.queue(q).await?;
    cx.may_read(&settings, true)?;
    let params = super::Params::new(cx.cx.parts.uri.query(), b"");
    let mut errors = Fields::default();
    let limit = int_field(params.get("limit"), 1, MAX_BROWSE as i64).unwrap_or_else(|m| {
        errors.add("limit", m);
        None
    });
    let order = match one_of(params.get("order"), &["ascending", "descending"]) {
        Ok(Some("descending")) => Order::Descending,
        Ok(_) => Order::Ascending,
        Err(m) => {
            errors.add("order", m);
            Order::Ascending
        }
    };
    let mut lanes = Vec::new();
    for p in params.get("partitions").unwrap_or("1").split(',') {
        match int_field(Some(p), 1, i64::from(info.config.partitions)) {
            Ok(Some(p)) if !lanes.contains(&(p as u16 - 1)) => lanes.push(p as u16 - 1),
            Ok(_) => {}
            Err(m) => errors.add("partitions", m),
        }
    }
    let since = match params.get("since") {
        None => None,
        Some(s) => match since(s, order) {
            Some(key) => Some(key),
            None => {
                errors.add("since", format!("\"{}\" is not a timestamp or message id", Shown(s)));
                None
            }
        },
    };
    errors.check()?;
    let limit = limit.map_or(MAX_BROWSE, |l| l as usize);
    let mut out = Vec::new();
    let mut bytes = 0;
    'lanes: for p in lanes {
        for m in browse_lane(cx, q, p, order, since, limit).await? {
            // Past the engine's answer size the rest is left out, as a short
            // page: the client asks again from where it got.
            if bytes >= MAX_ANSWER_BYTES {
                break 'lanes;
            }
            bytes += m.body.len();
            out.push(Rendered::from(&m));
        }
    }
    Ok(listing(out))
}

/// The uuid1 ordering key `since` stands for (inclusive), given the order.
fn since(s: &str, order: Order) -> Option<(u64, u16, u64)> {
    if let Some(ticks) = ids::parse_seconds(s) {
        let t = ids::ticks_to_uuid_time(ticks);
        return Some(match order {
            Order::Ascending => (t, 0, 0),
            Order::Descending => (t, u16::MAX, u64::MAX),
        });
    }
    ids::parse_uuid1(s)
}

/// Up to `limit` live messages of partition `p` on the `since` side.
async fn browse_lane<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
    p: u16,
    order: Order,
    since: Option<(u64, u16, u64)>,
    limit: usize,
) -> Result<Vec<Message>, Refusal> {
    let passes = |id: MessageId| match (since, order) {
        (None, _) => true,
        (Some(s), Order::Ascending) => ids::key(id) >= s,
        (Some(s), Order::Descending) => ids::key(id) <= s,
    };
    // A `since` id of this partition is a place to start from (exclusive bound).
    let mut after = since.and_then(|(t, seq, node)| {
        let id = ids::to_engine(t, seq, node).filter(|id| id.partition() == p)?;
        let slot = match order {
            Order::Ascending => id.slot().checked_sub(1)?,
            Order::Descending => id.slot().checked_add(1)?,
        };
        Some(MessageId::from_place(id.millis(), id.place(), slot))
    });
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let opts = BrowseOptions { after, limit: MAX_BROWSE, order, partition: Some(p) };
        let page = cx.cx.engine.browse(&cx.ns, q, opts).await?;
        out.extend(page.messages.into_iter().filter(|m| passes(m.id)));
        if answer_full(&out, limit) {
            out.truncate(limit);
            break;
        }
        after = page.next_after;
        if after.is_none() {
            break;
        }
    }
    Ok(out)
}

/// Ids `[P:]hex32,...` as engine ids (`None` for those that name no edgeq
/// message); 400 when any is malformed.
fn parse_ids(seg: &str) -> Result<Vec<Option<MessageId>>, Refusal> {
    let invalid = || {
        super::fail(
            StatusCode::BAD_REQUEST,
            Fields::one("InvalidMessageID", "Invalid message id's."),
        )
    };
    let text = decode(seg).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() > MAX_BATCH {
        return Err(invalid());
    }
    parts
        .into_iter()
        .map(|part| {
            let (p, hex) = match part.split_once(':') {
                Some((p, hex)) => {
                    (p.parse::<u16>().ok().filter(|p| *p >= 1).ok_or_else(invalid)?, hex)
                }
                None => (1, part),
            };
            let (t, seq, node) = ids::parse_uuid1(hex).ok_or_else(invalid)?;
            Ok(ids::to_engine(t, seq, node).filter(|id| id.partition() == p - 1))
        })
        .collect()
}

/// The stored messages among `ids`.
async fn found<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
    ids: &[Option<MessageId>],
) -> Result<Vec<Message>, Refusal> {
    let mut out = Vec::new();
    for id in ids.iter().flatten() {
        match cx.cx.engine.get_message(&cx.ns, q, *id).await {
            Ok(m) => out.push(m),
            Err(crate::engine::Error::MessageNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// `GET /v1/{app}/{q}/{ids}`: the ones found.
pub(super) async fn get<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
    seg: &str,
) -> Result<Response<Bytes>, Refusal> {
    let (_, settings) = cx.queue(q).await?;
    cx.may_read(&settings, true)?;
    let ids = parse_ids(seg)?;
    let messages = found(cx, q, &ids).await?;
    Ok(listing(messages.iter().map(Rendered::from).collect()))
}

/// `PUT /v1/{app}/{q}/{ids}`: replaces the body of each; 404 (nothing changed)
/// when any names no stored message.
pub(super) async fn put<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
    seg: &str,
    body: Bytes,
) -> Result<Response<Bytes>, Refusal> {
    let (info, _) = cx.queue(q).await?;
    cx.owner_only()?;
    let ids = parse_ids(seg)?;
    let mut errors = Fields::default();
    if body.is_empty() {
        errors.add("body", "Required");
    }
    let ttl = entry(
        Bytes::new(),
        None,
        header_text(cx, "x-ttl"),
        info.config.partitions,
        "",
        &mut errors,
    )
    .ttl;
    errors.check()?;
    let messages = found(cx, q, &ids).await?;
    if messages.len() != ids.len() {
        return Err(super::fail(
            StatusCode::NOT_FOUND,
            Fields::one(
                "InvalidMessageID",
                "No message with that id; edgeq cannot create one at a given id.",
            ),
        ));
    }
    let content_type = header_text(cx, header::CONTENT_TYPE.as_str()).map(str::to_owned);
    for m in messages {
        let (body, content_type) = (body.clone(), content_type.clone());
        cx.cx.engine.put_message(&cx.ns, q, m.id, body, content_type, Some(ttl)).await?;
    }
    Ok(super::done())
}

/// `DELETE /v1/{app}/{q}/{ids}`: 200 whether or not they exist.
pub(super) async fn delete<S: Store, E: Env>(
    cx: &Queuey<'_, S, E>,
    q: &Name,
    seg: &str,
) -> Result<Response<Bytes>, Refusal> {
    let (_, settings) = cx.queue(q).await?;
    cx.may_read(&settings, false)?;
    for id in parse_ids(seg)?.into_iter().flatten() {
        match cx.cx.engine.delete_message(&cx.ns, q, id).await {
            Ok(()) | Err(crate::engine::Error::MessageNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(super::done())
}
