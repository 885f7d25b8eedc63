//! Dialects: route sets that speak the wire format of a system our users ran
//! before (the seeds), so that their existing clients work unchanged against edgeq.
//!
//! Each dialect is mounted under its own prefix (`/rest_queue/...`, `/memfifo/...`);
//! because some clients cannot take a path prefix, one dialect may also be served
//! at `/` instead, for the whole server ([`super::ApiConfig::root_dialect`]) or
//! for one listener (a host puts the [`Dialect`] in the request's extensions). The
//! routes that are always at the root (`/v1`, `/healthz`, `/__heartbeat__`) win
//! over a root dialect.
//!
//! Every dialect works on the same engine queues, in the namespace the v1 routes
//! serve ([`super::ApiConfig::namespace`]): a message pushed with one route set can
//! be popped with another. Each dialect keeps its own error body shapes and maps
//! engine errors in one place of its module.
//!
//! Queues a dialect creates keep messages as long as the engine allows
//! ([`DIALECT_TTL`]): the originals kept them until consumed.

mod memfifo;
mod monty;
mod queuey;
mod rest_queue;

pub use queuey::{BadQueueyApp, QueueyApp};

use super::error::ApiError;
use super::v1::MESSAGE_BODY_LIMIT;
use crate::engine::{self, Engine, Env, NewMessage, QueueInfo, Sent};
use crate::model::{Name, QueueConfig};
use crate::store::Store;
use bytes::Bytes;
use http::{header, request::Parts, HeaderValue, Method, Response};
use std::fmt;
use std::str::FromStr;

/// A route set that speaks another system's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// ptmcg/rest_queue (seed 000): FastAPI JSON, `/queues/{name}/push|pop`.
    RestQueue,
    /// memfifo (seed 003): queue objects and raw messages with `Client-Id`.
    Memfifo,
    /// MontyExchange (seed 002): `POST /Message` through a direct exchange, `GET /Consume`.
    Monty,
    /// Queuey (seed 004): applications with keys, form-managed queues, browse by time.
    Queuey,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Dialect; 4] =
        [Dialect::RestQueue, Dialect::Memfifo, Dialect::Monty, Dialect::Queuey];

    /// The dialect's name (as configured), which is also its mount prefix.
    pub fn name(self) -> &'static str {
        &self.prefix()[1..]
    }

    /// The dialect's default mount: `/{name}`.
    fn prefix(self) -> &'static str {
        match self {
            Dialect::RestQueue => "/rest_queue",
            Dialect::Memfifo => "/memfifo",
            Dialect::Monty => "/monty",
            Dialect::Queuey => "/queuey",
        }
    }

    /// The body limit of the dialect's route `method rest` (`rest` is the path
    /// inside the mount).
    fn body_limit(self, method: &Method, rest: &str) -> Option<usize> {
        let takes_message = match self {
            Dialect::RestQueue => rest.ends_with("/push"),
            Dialect::Memfifo => rest.ends_with("/messages"),
            Dialect::Monty => rest == "/Message",
            // Queue management forms are small; message posts and puts are not.
            Dialect::Queuey => {
                let posts = method == Method::POST && rest.matches('/').count() >= 3;
                return (posts || method == Method::PUT).then_some(MESSAGE_BODY_LIMIT);
            }
        };
        (takes_message && method == Method::POST).then_some(MESSAGE_BODY_LIMIT)
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dialect {0:?}; known: rest_queue, memfifo, monty, queuey")]
pub struct UnknownDialect(String);

impl FromStr for Dialect {
    type Err = UnknownDialect;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| UnknownDialect(s.to_owned()))
    }
}

/// Where a request landed inside a dialect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mount<'a> {
    /// The dialect.
    pub dialect: Dialect,
    /// The mount prefix (`""` at the root, else `/{name}`), for links and redirects.
    pub prefix: &'static str,
    /// The path inside the mount (still percent-encoded; `""` for the mount itself).
    pub rest: &'a str,
}

/// The dialect serving `path`: the one whose prefix it starts with, else `root`.
pub(crate) fn mount(path: &str, root: Option<Dialect>) -> Option<Mount<'_>> {
    for dialect in Dialect::ALL {
        let prefix = dialect.prefix();
        if let Some(rest) = path.strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                return Some(Mount { dialect, prefix, rest });
            }
        }
    }
    root.map(|dialect| Mount { dialect, prefix: "", rest: path })
}

/// Whether `path` is a dialect's own documentation (rest_queue's `/docs` and
/// `/openapi.json`): static pages, open to anyone like edgeq's `/docs`, and at a
/// root dialect's listener they answer instead of edgeq's.
pub(crate) fn is_docs(path: &str, root: Option<Dialect>) -> bool {
    mount(path, root).is_some_and(|m| {
        m.dialect == Dialect::RestQueue && matches!(m.rest, "/docs" | "/openapi.json")
    })
}

/// The body limit of a dialect route, `None` when `path` is not one or the route
/// takes no message (the small default applies).
pub(crate) fn body_limit(parts: &Parts, root: Option<Dialect>) -> Option<usize> {
    let m = mount(parts.uri.path(), root)?;
    m.dialect.body_limit(&parts.method, m.rest)
}

/// What every dialect handler needs.
pub(crate) struct Cx<'a, S, E> {
    /// The engine.
    pub engine: &'a Engine<S, E>,
    /// The namespace the dialects serve.
    pub ns: &'a Name,
    /// The request line and headers.
    pub parts: &'a Parts,
    /// The API's configuration.
    pub config: &'a super::ApiConfig,
}

/// Serves one request that [`mount`] gave to a dialect.
pub(crate) async fn handle<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    mount: Mount<'_>,
    body: Bytes,
) -> Response<Bytes> {
    match mount.dialect {
        Dialect::RestQueue => rest_queue::handle(cx, mount, body).await,
        Dialect::Memfifo => memfifo::handle(cx, mount.rest, body).await,
        Dialect::Monty => monty::handle(cx, mount.rest, body).await,
        Dialect::Queuey => queuey::handle(cx, mount.rest, body).await,
    }
}

/// `e` in the error shape of `dialect` (`None`: edgeq's own): for the refusals
/// a host makes before a request reaches its route (a body over the limit), so
/// a dialect's clients see the shape they parse.
pub(crate) fn refusal(dialect: Option<Dialect>, e: ApiError) -> Response<Bytes> {
    match dialect {
        Some(Dialect::RestQueue) => rest_queue::refusal(e),
        Some(Dialect::Monty) => monty::refusal(e),
        Some(Dialect::Queuey) => queuey::refusal(e),
        // memfifo's errors are edgeq's own.
        Some(Dialect::Memfifo) | None => e.into_response(),
    }
}

/// Seconds a message sent to a queue a dialect created lives: the engine's longest.
const DIALECT_TTL: u64 = crate::model::MAX_TTL;

/// An answer typed `text/html`, as some originals sent their data (Queuey's
/// JSON, Monty's string messages): stored messages and echoed input land in
/// it, so it is [`sandbox`](super::v1::wire::sandbox)ed.
pub(crate) fn html_answer(body: Bytes, content_type: &'static str) -> Response<Bytes> {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    super::v1::wire::sandbox(h);
    res
}

/// The configuration of a queue a dialect creates.
fn queue_config(max_bytes: Option<u64>) -> QueueConfig {
    QueueConfig { message_ttl: DIALECT_TTL, max_bytes, ..QueueConfig::default() }
}

/// Most queues a dialect's listing returns (it has no paging of its own).
pub(crate) const MAX_LISTED: usize = 10_000;

/// Every queue of `ns` in creation order (at most [`MAX_LISTED`]), with stats
/// when `details`.
async fn all_queues<S: Store, E: Env>(
    engine: &Engine<S, E>,
    ns: &Name,
    details: bool,
) -> Result<Vec<QueueInfo>, engine::Error> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = engine.list_queues(ns, None, 1000, cursor.as_deref(), details).await?;
        out.extend(page.queues);
        cursor = page.next_cursor;
        if cursor.is_none() || out.len() >= MAX_LISTED {
            out.truncate(MAX_LISTED);
            return Ok(out);
        }
    }
}

/// Sends one message.
async fn send_one<S: Store, E: Env>(
    engine: &Engine<S, E>,
    ns: &Name,
    q: &Name,
    msg: NewMessage,
) -> Result<Sent, engine::Error> {
    engine
        .send(ns, q, vec![msg])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| engine::Error::BadRequest("the engine returned no outcome".into()))?
}

/// Messages held by `q` right now.
async fn size<S: Store, E: Env>(
    engine: &Engine<S, E>,
    ns: &Name,
    q: &Name,
) -> Result<u64, engine::Error> {
    Ok(engine.get_queue(ns, q).await?.stats.map_or(0, |s| s.messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Api, ApiConfig};
    use crate::engine::ManualEnv;
    use crate::store::MemoryStore;
    use futures::executor::block_on;
    use http::Request;

    #[test]
    fn dialects_parse_and_print_their_names() {
        for d in Dialect::ALL {
            assert_eq!(d.name().parse::<Dialect>().unwrap(), d);
            assert_eq!(d.to_string(), d.name());
        }
        assert!("queue".parse::<Dialect>().is_err());
        assert!("".parse::<Dialect>().is_err());
    }

    #[test]
    fn mounts_match_whole_prefix_segments() {
        let m = mount("/rest_queue/queues", None).unwrap();
        assert_eq!((m.dialect, m.prefix, m.rest), (Dialect::RestQueue, "/rest_queue", "/queues"));
        let m = mount("/memfifo", None).unwrap();
        assert_eq!((m.dialect, m.rest), (Dialect::Memfifo, ""));
        assert!(mount("/memfifox/queues", None).is_none());
        assert!(mount("/queues", None).is_none());
        let m = mount("/queues", Some(Dialect::Memfifo)).unwrap();
        assert_eq!((m.dialect, m.prefix, m.rest), (Dialect::Memfifo, "", "/queues"));
        let m = mount("/rest_queue/queues", Some(Dialect::Memfifo)).unwrap();
        assert_eq!(m.dialect, Dialect::RestQueue, "prefixes win over the root dialect");
    }

    fn api(root: Option<Dialect>) -> Api<MemoryStore, ManualEnv> {
        let queuey_apps = QueueyApp::parse_list("notes=k").unwrap();
        let config = ApiConfig { root_dialect: root, queuey_apps, ..ApiConfig::default() };
        Api::new(Engine::new(MemoryStore::new(), ManualEnv::new(1_700_000_000_000, 7)), config)
    }

    fn call(api: &Api<MemoryStore, ManualEnv>, req: Request<Bytes>) -> (u16, Bytes) {
        let res = block_on(api.handle(req));
        (res.status().as_u16(), res.body().clone())
    }

    fn req(method: &str, uri: &str, body: &[u8]) -> Request<Bytes> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("client-id", "t")
            .header("content-type", "application/json")
            .body(Bytes::copy_from_slice(body))
            .unwrap()
    }

    #[test]
    fn the_root_dialect_comes_from_the_request_or_the_config() {
        let plain = api(None);
        assert_eq!(call(&plain, req("GET", "/queues", b"")).0, 404);
        let mut r = req("GET", "/queues", b"");
        r.extensions_mut().insert(Dialect::Memfifo);
        assert_eq!(call(&plain, r), (200, Bytes::from_static(b"[]")));
        let rooted = api(Some(Dialect::RestQueue));
        let (s, body) = call(&rooted, req("GET", "/queues", b""));
        assert_eq!((s, &body[..]), (200, &br#"{"message":"list of queue names","items":[]}"#[..]));
        assert_eq!(call(&rooted, req("GET", "/v1/queues", b"")).0, 200, "v1 wins over the root");
        // The root dialect's own docs answer at its root, open like edgeq's own.
        let mut keyed =
            ApiConfig { root_dialect: Some(Dialect::RestQueue), ..ApiConfig::default() };
        keyed.admin_key = Some("admin".into());
        let keyed = Api::new(Engine::new(MemoryStore::new(), ManualEnv::new(0, 1)), keyed);
        for a in [&rooted, &keyed] {
            let (s, body) = call(a, req("GET", "/openapi.json", b""));
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!((s, doc["info"]["title"].as_str()), (200, Some("rest_queue")));
            assert_eq!(call(a, req("GET", "/docs", b"")).0, 200);
        }
        assert_eq!(call(&keyed, req("GET", "/queues", b"")).0, 401, "the rest needs the key");
        let (_, body) = call(&plain, req("GET", "/openapi.json", b""));
        assert!(String::from_utf8_lossy(&body).contains("\"title\":\"edgeq\""));
        let message = req("POST", "/memfifo/queues/q/messages", b"");
        assert_eq!(rooted.body_limit(&message.into_parts().0), MESSAGE_BODY_LIMIT);
        let mut push = req("POST", "/queues/q/push", b"");
        push.extensions_mut().insert(Dialect::RestQueue);
        assert_eq!(plain.body_limit(&push.into_parts().0), MESSAGE_BODY_LIMIT);
    }

    #[test]
    fn queuey_at_the_root_takes_v1_paths_of_its_applications_only() {
        let a = api(Some(Dialect::Queuey));
        let mut r = req("GET", "/v1/notes", b"");
        r.headers_mut().insert("authorization", "Application k".parse().unwrap());
        assert_eq!(call(&a, r), (200, Bytes::from_static(br#"{"status":"ok","queues":[]}"#)));
        assert_eq!(call(&a, req("GET", "/v1/queues", b"")).0, 200, "v1 keeps the rest");
        let post = req("POST", "/v1/notes/q", b"");
        assert_eq!(a.body_limit(&post.into_parts().0), MESSAGE_BODY_LIMIT);
        let v1 = req("GET", "/v1/notes", b"");
        assert_eq!(call(&api(None), v1).0, 404, "not Queuey's without the root");
    }

    #[test]
    fn hostile_inputs_never_panic_and_store_nothing() {
        let a = api(None);
        let junk: [&[u8]; 6] = [b"", b"\0", b"\xff\xfe{", b"[[[[[[", b"{\"name\":null}", b"1e999"];
        let uris = [
            "/rest_queue/queues/%FF%FE/pop",
            "/rest_queue/queues/%00/push?value=%FF",
            "/rest_queue/queues/q/pop",
            "/rest_queue/queues/..%2F../push",
            "/rest_queue/queues/q/push?safe_delete=%00",
            "/memfifo/queues",
            "/memfifo/queues/%FF/messages",
            "/memfifo/queues/q/messages",
            "/monty/Consume",
            "/monty/%FF",
            // Without a key: refused before anything is read or written.
            "/queuey/v1/notes",
            "/queuey/v1/notes/q",
            "/queuey/v1/notes/%FF%FE",
            "/queuey/v1/notes/q/1:%00,zz",
            "/queuey/v1/%00/q",
        ];
        for uri in uris {
            for body in junk {
                for m in ["GET", "POST", "DELETE", "PUT"] {
                    let (s, _) = call(&a, req(m, uri, body));
                    assert!(s < 500, "{m} {uri}: {s}");
                }
            }
        }
        // (Reads may leave zero counters behind; no queue may appear.)
        let (_, listed) = call(&a, req("GET", "/memfifo/queues", b""));
        assert_eq!(&listed[..], b"[]", "nothing was created");
    }
}
