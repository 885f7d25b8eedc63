//! Queue routes: list, create or update, get, delete, purge.

use super::wire::QueueJson;
use super::Cx;
use crate::api::error::ApiError;
use crate::api::json;
use crate::engine::{Env, QueueInfo};
use crate::model::{Name, QueueConfig};
use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// Default page size of `GET /v1/queues`.
const DEFAULT_LIST_LIMIT: u64 = 100;
/// Largest page size of `GET /v1/queues`.
const MAX_LIST_LIMIT: u64 = 1000;
/// Longest cursor accepted (cursors are opaque and short).
const MAX_CURSOR_LEN: usize = 256;

/// `GET /v1/queues?prefix=&limit=&cursor=&details=`
pub(super) async fn list<S: Store, E: Env>(cx: &Cx<'_, S, E>) -> Result<Response<Bytes>, ApiError> {
    let q = cx.query(&["prefix", "limit", "cursor", "details"])?;
    let limit = q.int("limit", 1, MAX_LIST_LIMIT)?.unwrap_or(DEFAULT_LIST_LIMIT);
    let details = q.bool("details")?.unwrap_or(false);
    let prefix = q.get("prefix").filter(|p| !p.is_empty());
    if let Some(p) = prefix {
        if p.len() > Name::MAX_LEN
            || !p.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ApiError::bad_request(
                "invalid_query",
                "query parameter prefix: a prefix of a name is at most 80 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            ));
        }
    }
    let cursor = q.get("cursor").filter(|c| !c.is_empty());
    let bad_cursor = || {
        ApiError::bad_request(
            "invalid_query",
            "query parameter cursor: not a cursor this server handed out",
        )
    };
    if cursor.is_some_and(|c| c.len() > MAX_CURSOR_LEN) {
        return Err(bad_cursor());
    }
    // `limit` is at most MAX_LIST_LIMIT, so the cast cannot truncate. The cursor's
    // format is the engine's: the one argument of a listing it refuses as a bad
    // request is a cursor it did not hand out, a malformed query parameter here.
    let page =
        cx.engine.list_queues(cx.ns, prefix, limit as usize, cursor, details).await.map_err(
            |e| match e {
                crate::engine::Error::BadRequest(_) if cursor.is_some() => bad_cursor(),
                e => ApiError::from(e),
            },
        )?;
    #[derive(Serialize)]
    struct Page<'a> {
        queues: Vec<QueueJson<'a>>,
        next_cursor: Option<&'a str>,
    }
    Ok(json::response(
        StatusCode::OK,
        &Page {
            queues: page.queues.iter().map(QueueJson::from).collect(),
            next_cursor: page.next_cursor.as_deref(),
        },
    ))
}

/// `PUT /v1/queues/{q}`: an empty body means every default.
pub(super) async fn put<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
    body: &Bytes,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let config: QueueConfig = if body.iter().all(u8::is_ascii_whitespace) {
        QueueConfig::default()
    } else {
        json::parse(body)?
    };
    config.validate().map_err(crate::engine::Error::from)?;
    let (info, created) = cx.engine.put_queue(cx.ns, q, config).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let mut res = json::response(status, &QueueJson::from(&info));
    if created {
        if let Ok(loc) = HeaderValue::from_str(&format!("/v1/queues/{q}")) {
            res.headers_mut().insert(header::LOCATION, loc);
        }
    }
    Ok(res)
}

/// `GET /v1/queues/{q}`: configuration and stats.
pub(super) async fn get<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let info: QueueInfo = cx.engine.get_queue(cx.ns, q).await?;
    Ok(json::response(StatusCode::OK, &QueueJson::from(&info)))
}

/// `DELETE /v1/queues/{q}?if_empty=`
pub(super) async fn delete<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, ApiError> {
    let query = cx.query(&["if_empty"])?;
    let if_empty = query.bool("if_empty")?.unwrap_or(false);
    cx.engine.delete_queue(cx.ns, q, if_empty).await?;
    Ok(json::empty(StatusCode::NO_CONTENT))
}

/// `POST /v1/queues/{q}/purge`
pub(super) async fn purge<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    q: &Name,
) -> Result<Response<Bytes>, ApiError> {
    cx.query(&[])?;
    let purged = cx.engine.purge_queue(cx.ns, q).await?;
    Ok(json::response(StatusCode::OK, &serde_json::json!({ "purged": purged })))
}
