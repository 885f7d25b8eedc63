//! API keys: `POST /v1/keys` (create), `GET /v1/keys` (list), `DELETE
//! /v1/keys/{id}` (revoke), and how keys are kept in the store.
//!
//! A key is 32 random bytes (256 bits) from the operating system (natively) or
//! `wasi:random` (in the component), shown once as `eqk_` + base64url. The
//! engine's `Env::random` is not used: natively it is a fast non-cryptographic
//! stream whose outputs also show in message ids, so a key drawn from it could
//! be predicted.
//!
//! # Keys in the store
//!
//! Every key starts with `//auth/`. Engine keys start with a namespace name,
//! which is never empty and never holds `/`, so the two spaces cannot meet.
//!
//! - `//auth/key/{sha256 hex}`: the [`KeyRecord`] (JSON), found by the hash of
//!   the presented key: the key itself is never stored.
//! - `//auth/n`: counter of list entries; `//auth/list/{n}`: the hash of key `n`.
//!   Like the engine's queue list, an append-only log: creating takes a ticket
//!   (`increment`), writes the entry, then the record; listing reads entries and
//!   records with `get_many` and skips entries without a record (a creator died
//!   before answering, so no one holds that key).
//! - Revoking rewrites the record with `revoked: true` (a tombstone): a revoked
//!   key is refused with its own message and stays out of listings.

use super::auth::{self, Principal};
use super::error::ApiError;
use super::json;
use super::router::{self, allow};
use super::routes::Right;
use crate::engine::{Engine, Env};
use crate::model::{Millis, Name};
use crate::store::Store;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// The namespace of a key valid in every namespace.
pub(crate) const ANY_NAMESPACE: &str = "*";
/// Prefix of every key shown to a user (lets secret scanners spot leaked keys).
const KEY_PREFIX: &str = "eqk_";
/// Most entries one listing reads.
const MAX_LIST: u64 = 1000;
/// Longest key label.
const MAX_LABEL: usize = 100;

const COUNTER: &str = "//auth/n";

fn record_key(hash: &[u8; 32]) -> String {
    format!("//auth/key/{}", hex(hash))
}

fn entry_key(n: u64) -> String {
    format!("//auth/list/{n}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    /// Its place in the list; the id users revoke it by.
    pub id: u64,
    /// A namespace name, or `*`.
    pub namespace: String,
    /// What it may do.
    pub rights: Vec<Right>,
    /// A label chosen by its creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was created.
    pub created_at: Millis,
    /// Hex SHA-256 of the key.
    pub hash: String,
    /// Tombstone of a revoked key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

/// The record of the key whose hash is `hash`, if any.
pub(crate) async fn lookup<S: Store>(
    store: &S,
    hash: &[u8; 32],
) -> Result<Option<KeyRecord>, ApiError> {
    let key = record_key(hash);
    let Some(raw) = store.get(&key).await.map_err(crate::engine::Error::from)? else {
        return Ok(None);
    };
    let record: KeyRecord = serde_json::from_slice(&raw)
        .map_err(|_| ApiError::from(crate::engine::Error::Corrupt(key)))?;
    // The lookup already matched on the hash; comparing again in constant time
    // costs nothing and does not rely on the store's key comparison.
    use subtle::ConstantTimeEq;
    let same = record.hash.as_bytes().ct_eq(hex(hash).as_bytes());
    Ok(bool::from(same).then_some(record))
}

/// Serves `/v1/keys` and `/v1/keys/{id}`; `segs` are the segments after `keys`.
pub(crate) async fn handle<S: Store, E: Env>(
    engine: &Engine<S, E>,
    served: Option<&Name>,
    principal: &Principal,
    parts: &http::request::Parts,
    segs: &[&str],
    body: &Bytes,
) -> Result<Response<Bytes>, ApiError> {
    let m = &parts.method;
    match segs {
        [] => {
            allow(m, "GET, HEAD, POST")?;
            if *m == Method::POST {
                router::Query::parse(parts.uri.query(), &[])?;
                create(engine, served, principal, body).await
            } else {
                let q = router::Query::parse(parts.uri.query(), &["cursor", "limit"])?;
                // A cursor is the `next_cursor` of a page: any other is malformed.
                // An empty one is the first page, as for `/v1/queues`.
                let start = q
                    .get("cursor")
                    .filter(|c| !c.is_empty())
                    .map(|c| {
                        router::parse_int(c, 1, u64::MAX).map_err(|_| {
                            ApiError::bad_request(
                                "invalid_query",
                                "query parameter cursor: not a cursor this server handed out",
                            )
                        })
                    })
                    .transpose()?
                    .unwrap_or(1);
                let limit = q.int("limit", 1, MAX_LIST)?.unwrap_or(100);
                list(engine, principal, start, limit).await
            }
        }
        [id] => {
            allow(m, "DELETE")?;
            router::Query::parse(parts.uri.query(), &[])?;
            let id = router::decode(id)?;
            let id = router::parse_int(&id, 1, u64::MAX).map_err(|_| {
                let shown: String = id.chars().take(32).collect();
                ApiError::bad_request(
                    "invalid_key_id",
                    format!("key id {shown:?} is not a positive integer"),
                )
            })?;
            revoke(engine, principal, id).await
        }
        _ => Err(ApiError::no_route(parts.uri.path())),
    }
}

/// The body of `POST /v1/keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    /// Defaults to the creator's namespace, else the served one.
    namespace: Option<String>,
    rights: Vec<Right>,
    name: Option<String>,
}

/// What listings show of a key.
#[derive(Serialize)]
struct KeyJson<'a> {
    id: u64,
    namespace: &'a str,
    rights: &'a [Right],
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    created_at: Millis,
    /// Only in the answer to a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
}

impl<'a> KeyJson<'a> {
    fn new(r: &'a KeyRecord, key: Option<&'a str>) -> Self {
        Self {
            id: r.id,
            namespace: &r.namespace,
            rights: &r.rights,
            name: r.name.as_deref(),
            created_at: r.created_at,
            key,
        }
    }
}

async fn create<S: Store, E: Env>(
    engine: &Engine<S, E>,
    served: Option<&Name>,
    principal: &Principal,
    body: &Bytes,
) -> Result<Response<Bytes>, ApiError> {
    let new: NewKey = json::parse(body)?;
    let namespace = match new.namespace {
        Some(ns) if ns == ANY_NAMESPACE => ns,
        Some(ns) => Name::new(&ns).map_err(crate::engine::Error::from)?.to_string(),
        None => principal
            .namespace()
            .map(str::to_owned)
            .or_else(|| served.map(|n| n.to_string()))
            .unwrap_or_else(|| ANY_NAMESPACE.to_owned()),
    };
    if principal.namespace().is_some_and(|own| own != namespace) {
        return Err(auth::forbidden(
            "a key scoped to one namespace can create keys for that namespace only",
        ));
    }
    let mut rights = new.rights;
    rights.sort_by_key(|r| *r as u8);
    rights.dedup();
    if rights.is_empty() {
        return Err(ApiError::bad_request("invalid_body", "rights: at least one right is needed"));
    }
    let name = new.name.filter(|n| !n.is_empty());
    if let Some(n) = &name {
        if n.chars().count() > MAX_LABEL || n.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_value",
                format!("name: at most {MAX_LABEL} characters, no control characters"),
            ));
        }
    }
    let key = new_key()?;
    let hash = auth::hash(&key);
    let store = engine.store();
    let n = store.increment(COUNTER, 1).await.map_err(crate::engine::Error::from)?;
    let id = u64::try_from(n).map_err(|_| ApiError::internal("the key counter is negative"))?;
    store.set(&entry_key(id), hex(&hash).as_bytes()).await.map_err(crate::engine::Error::from)?;
    let record = KeyRecord {
        id,
        namespace,
        rights,
        name,
        created_at: engine.env().now(),
        hash: hex(&hash),
        revoked: false,
    };
    write(store, &hash, &record).await?;
    let mut res = json::response(StatusCode::CREATED, &KeyJson::new(&record, Some(&key)));
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/keys/{id}")) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(res)
}

async fn write<S: Store>(store: &S, hash: &[u8; 32], record: &KeyRecord) -> Result<(), ApiError> {
    let value = serde_json::to_vec(record).map_err(|e| ApiError::internal(e.to_string()))?;
    store.set(&record_key(hash), &value).await.map_err(crate::engine::Error::from)?;
    Ok(())
}

/// The records of list entries `start..start + count`, skipping missing ones.
async fn records<S: Store>(
    store: &S,
    start: u64,
    count: u64,
) -> Result<Vec<(u64, KeyRecord)>, ApiError> {
    let ids: Vec<u64> = (start..start.saturating_add(count)).collect();
    let entries: Vec<String> = ids.iter().map(|n| entry_key(*n)).collect();
    let hashes = store.get_many(&entries).await.map_err(crate::engine::Error::from)?;
    let mut found = Vec::new();
    for (id, h) in ids.into_iter().zip(hashes) {
        let Some(h) = h.and_then(|h| String::from_utf8(h).ok()) else { continue };
        found.push((id, format!("//auth/key/{h}")));
    }
    let keys: Vec<String> = found.iter().map(|(_, k)| k.clone()).collect();
    let values = store.get_many(&keys).await.map_err(crate::engine::Error::from)?;
    Ok(found
        .into_iter()
        .zip(values)
        .filter_map(|((id, _), v)| {
            let r: KeyRecord = serde_json::from_slice(&v?).ok()?;
            (r.id == id).then_some((id, r))
        })
        .collect())
}

async fn list<S: Store, E: Env>(
    engine: &Engine<S, E>,
    principal: &Principal,
    start: u64,
    limit: u64,
) -> Result<Response<Bytes>, ApiError> {
    let store = engine.store();
    let len = store.increment(COUNTER, 0).await.map_err(crate::engine::Error::from)?.max(0) as u64;
    let count = limit.min(len.saturating_add(1).saturating_sub(start));
    let records = records(store, start, count).await?;
    let shown: Vec<KeyJson<'_>> = records
        .iter()
        .map(|(_, r)| r)
        .filter(|r| !r.revoked)
        .filter(|r| principal.namespace().is_none_or(|ns| ns == r.namespace))
        .map(|r| KeyJson::new(r, None))
        .collect();
    let next = start.saturating_add(count);
    #[derive(Serialize)]
    struct Page<'a> {
        keys: Vec<KeyJson<'a>>,
        next_cursor: Option<String>,
    }
    let next_cursor = (next <= len).then(|| next.to_string());
    Ok(json::response(StatusCode::OK, &Page { keys: shown, next_cursor }))
}

async fn revoke<S: Store, E: Env>(
    engine: &Engine<S, E>,
    principal: &Principal,
    id: u64,
) -> Result<Response<Bytes>, ApiError> {
    let store = engine.store();
    let record = records(store, id, 1).await?.pop().map(|(_, r)| r).filter(|r| !r.revoked);
    let Some(mut record) = record else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("no API key with id {id}"),
        ));
    };
    if principal.namespace().is_some_and(|ns| ns != record.namespace) {
        return Err(auth::forbidden("this key belongs to another namespace"));
    }
    let hash = parse_hex(&record.hash)
        .ok_or_else(|| ApiError::from(crate::engine::Error::Corrupt(entry_key(id))))?;
    record.revoked = true;
    write(store, &hash, &record).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A fresh key: `eqk_` + 32 random bytes in base64url.
fn new_key() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    secret_random(&mut bytes)?;
    Ok(format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(not(target_arch = "wasm32"))]
fn secret_random(buf: &mut [u8]) -> Result<(), ApiError> {
    getrandom::fill(buf).map_err(|e| ApiError::internal(format!("no secure randomness: {e}")))
}

#[cfg(target_arch = "wasm32")]
fn secret_random(buf: &mut [u8]) -> Result<(), ApiError> {
    let bytes = spin_sdk::wit::wasi::random0_2_0::random::get_random_bytes(buf.len() as u64);
    if bytes.len() != buf.len() {
        return Err(ApiError::internal("wasi:random gave too few bytes"));
    }
    buf.copy_from_slice(&bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 43);
    }

    #[test]
    fn hex_round_trips() {
        let h = auth::hash("k");
        assert_eq!(parse_hex(&hex(&h)), Some(h));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn store_keys_cannot_meet_engine_keys() {
        // Engine keys start with a namespace name, which cannot start with '/'.
        assert!(Name::new("").is_err());
        assert!(record_key(&[0; 32]).starts_with('/'));
        assert!(entry_key(1).starts_with('/') && COUNTER.starts_with('/'));
    }
}
