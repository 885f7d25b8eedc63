//! The rest_queue dialect (seed 000, a FastAPI app): `/queues`, `/queues/{name}`,
//! `/queues/{name}/push|pop`, plus the original's `/docs` and `/openapi.json`.
//!
//! Bodies are byte-exact copies of what FastAPI sends, which is why responses are
//! serialised from structs (fixed key order) rather than `json!` (sorted keys),
//! names in messages are Python `repr()`s (`python.rs`), and refusals take
//! FastAPI's shapes: `{"detail":"..."}` or a list of pydantic errors for 422.
//!
//! Routing follows Starlette: the path is percent-decoded as a whole before it is
//! split (so `%2F` separates segments, as in the original), a path with a trailing
//! slash that would match without it is redirected (307), a known path with
//! another method is 405 with `Allow` (every method the path serves), anything
//! else is 404 `{"detail":"Not Found"}`. Query parameters a route does not know
//! are ignored and a repeated one counts by its last value, as in FastAPI.
//!
//! Names are any non-empty segment, mapped onto engine names by `names.rs`. Values
//! are text: a push stores the string as a `text/plain; charset=utf-8` message,
//! and pop and the item list return any message body as a JSON string (bodies that
//! are not UTF-8, sent through another route set, are decoded lossily).
//! The item list returns at most [`MAX_ITEMS`] items or about [`MAX_ITEMS_BYTES`].

mod names;
mod python;

use super::{all_queues, queue_config, send_one, size, Cx, Mount};
use crate::api::error::ApiError;
use crate::engine::{self, BrowseOptions, Engine, Env, NewMessage, Order, MAX_BROWSE};
use crate::model::Name;
use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use python::{repr, Json};
use serde::Serialize;

/// Most items `GET /queues/{name}` returns.
pub(crate) const MAX_ITEMS: usize = 10_000;
/// Body bytes after which `GET /queues/{name}` stops adding items.
pub(crate) const MAX_ITEMS_BYTES: usize = 16 << 20;

/// Content type of the messages a push stores.
const TEXT: &str = "text/plain; charset=utf-8";

/// The interactive docs page; `{openapi_url}` is replaced by the spec's URL.
const DOCS_HTML: &str = include_str!("rest_queue/docs.html");
/// The dialect's OpenAPI document.
const OPENAPI: &str = include_str!("rest_queue/openapi.json");

/// Characters escaped in a redirect's `Location` (the path is decoded by then).
const PATH: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'%').add(b'<').add(b'>').add(b'?').add(b'`');

/// A route of the dialect, with the (decoded) queue name it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'p> {
    Docs,
    OpenApi,
    List,
    Queue(&'p str),
    Push(&'p str),
    Pop(&'p str),
}

impl Route<'_> {
    /// Methods the route serves (`Allow` syntax); `None`: any (as FastAPI's docs).
    fn allow(self) -> Option<&'static str> {
        match self {
            Route::Docs | Route::OpenApi => None,
            Route::List => Some("GET"),
            Route::Queue(_) => Some("POST, GET, DELETE"),
            Route::Push(_) | Route::Pop(_) => Some("POST"),
        }
    }
}

/// The route at decoded `path`, if any.
fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix('/')?;
    let segs: Vec<&str> = rest.splitn(4, '/').collect();
    Some(match segs.as_slice() {
        ["docs"] => Route::Docs,
        ["openapi.json"] => Route::OpenApi,
        ["queues"] => Route::List,
        ["queues", q] if !q.is_empty() => Route::Queue(q),
        ["queues", q, "push"] if !q.is_empty() => Route::Push(q),
        ["queues", q, "pop"] if !q.is_empty() => Route::Pop(q),
        _ => return None,
    })
}

/// A refusal: its status and the whole `{"detail": ...}` body.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    body: Bytes,
    allow: Option<&'static str>,
}

impl Refused {
    /// `status` with body `{"detail": detail}`.
    fn new<T: Serialize>(status: StatusCode, detail: T) -> Self {
        #[derive(Serialize)]
        struct Body<T> {
            detail: T,
        }
        let body = serde_json::to_vec(&Body { detail }).unwrap_or_default();
        Self { status, body: Bytes::from(body), allow: None }
    }

    /// 422 with one pydantic error.
    fn invalid(kind: &str, loc: &[&str], msg: &str, input: Json) -> Self {
        Self::invalid_with(kind, loc, msg, input, None)
    }

    /// 422 with one pydantic error that has a `ctx`.
    fn invalid_with(
        kind: &str,
        loc: &[&str],
        msg: &str,
        input: Json,
        ctx: Option<serde_json::Value>,
    ) -> Self {
        #[derive(Serialize)]
        struct Invalid<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            loc: Vec<serde_json::Value>,
            msg: &'a str,
            input: Json,
            #[serde(skip_serializing_if = "Option::is_none")]
            ctx: Option<serde_json::Value>,
        }
        // A `loc` part that is a number (`"0"`) is rendered as one.
        let loc = loc
            .iter()
            .map(|p| p.parse::<u64>().map_or_else(|_| (*p).into(), serde_json::Value::from))
            .collect();
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, [Invalid { kind, loc, msg, input, ctx }])
    }

    fn into_response(self) -> Response<Bytes> {
        let mut res = json_body(self.status, self.body);
        if let Some(allow) = self.allow {
            res.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        res
    }
}

/// 404 `No such queue NAME`.
fn no_such_queue(shown: &str) -> Refused {
    Refused::new(StatusCode::NOT_FOUND, format!("No such queue {shown}"))
}

/// The one mapping of engine errors: a missing queue is rest_queue's 404, the
/// rest keep edgeq's status with the message as `detail`.
fn refuse(e: engine::Error, shown: &str) -> Refused {
    match e {
        engine::Error::QueueNotFound(_) => no_such_queue(shown),
        e => detail(ApiError::from(e)),
    }
}

/// edgeq's status with the message as `detail`.
fn detail(e: ApiError) -> Refused {
    Refused::new(e.status(), e.body().message)
}

/// `e` in rest_queue's shape ([`super::refusal`]).
pub(super) fn refusal(e: ApiError) -> Response<Bytes> {
    detail(e).into_response()
}

type Reply = Result<Response<Bytes>, Refused>;

/// A JSON response with an already serialised body.
fn json_body(status: StatusCode, body: Bytes) -> Response<Bytes> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// A JSON response of `value`, serialised in field order.
fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    serde_json::to_vec(value).map(|b| json_body(status, Bytes::from(b))).map_err(|e| {
        Refused::new(StatusCode::INTERNAL_SERVER_ERROR, format!("serialising the answer: {e}"))
    })
}

/// `{"message": ...}` plus the fields of each answer, in the original's order.
#[derive(Serialize)]
struct Message<'a> {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_queue_size: Option<u64>,
}

impl Message<'_> {
    fn new(message: String) -> Self {
        Self { message, items: None, data: None, remaining_queue_size: None }
    }
}

/// Serves one request inside the rest_queue mount.
pub(super) async fn handle<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    mount: Mount<'_>,
    body: Bytes,
) -> Response<Bytes> {
    let path = percent_decode_str(mount.rest).decode_utf8_lossy();
    let reply = match route(&path) {
        Some(r) => serve(cx, mount.prefix, r, &body).await,
        None => Ok(unrouted(mount.prefix, &path, cx.parts.uri.query())),
    };
    reply.unwrap_or_else(Refused::into_response)
}

/// 307 to the path without its trailing slashes when that is a route, else 404.
fn unrouted(prefix: &str, path: &str, query: Option<&str>) -> Response<Bytes> {
    let stripped = path.trim_end_matches('/');
    if path != "/" && stripped.len() < path.len() && route(stripped).is_some() {
        let mut location = format!("{prefix}{}", utf8_percent_encode(stripped, PATH));
        if let Some(q) = query {
            location = format!("{location}?{q}");
        }
        if let Ok(location) = HeaderValue::from_str(&location) {
            let mut res = Response::new(Bytes::new());
            *res.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            res.headers_mut().insert(header::LOCATION, location);
            return res;
        }
    }
    Refused::new(StatusCode::NOT_FOUND, "Not Found").into_response()
}

async fn serve<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    prefix: &str,
    route: Route<'_>,
    body: &[u8],
) -> Reply {
    let m = &cx.parts.method;
    if let Some(allow) = route.allow() {
        if !allow.split(", ").any(|a| a == m.as_str()) {
            let mut e = Refused::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
            e.allow = Some(allow);
            return Err(e);
        }
    }
    let (engine, ns) = (cx.engine, cx.ns);
    match route {
        Route::Docs => Ok(docs(prefix)),
        Route::OpenApi => openapi(prefix),
        Route::List => list(engine, ns).await,
        Route::Queue(q) => match *m {
            Method::POST => create(engine, ns, q).await,
            Method::DELETE => delete(engine, ns, q, cx.parts.uri.query()).await,
            _ => items(engine, ns, q).await,
        },
        Route::Push(q) => {
            let value = push_value(cx.parts, body)?;
            push(engine, ns, q, value).await
        }
        Route::Pop(q) => pop(engine, ns, q).await,
    }
}

/// The engine name of `q`, or 404 (a name too long to map cannot exist).
fn existing(q: &str) -> Result<Name, Refused> {
    names::encode(q).ok_or_else(|| no_such_queue(&repr(q)))
}

/// `POST /queues/{name}`: 201, or 409 when it exists (decided once by the engine).
async fn create<S: Store, E: Env>(engine: &Engine<S, E>, ns: &Name, q: &str) -> Reply {
    let shown = repr(q);
    let Some(name) = names::encode(q) else {
        let msg = format!(
            "String should have at most {} bytes unless it is a name of A-Z, a-z, 0-9, '.', '_' and '-' of at most {}",
            names::MAX_ESCAPED_BYTES,
            Name::MAX_LEN
        );
        let ctx = serde_json::json!({ "max_length": names::MAX_ESCAPED_BYTES });
        return Err(Refused::invalid_with(
            "string_too_long",
            &["path", "queue_name"],
            &msg,
            Json::String(q.to_owned()),
            Some(ctx),
        ));
    };
    let created =
        engine.create_queue(ns, &name, queue_config(None)).await.map_err(|e| refuse(e, &shown))?;
    if !created {
        return Err(Refused::new(StatusCode::CONFLICT, format!("Queue {shown} already exists")));
    }
    json(StatusCode::CREATED, &Message::new(format!("created {shown}")))
}

/// The value a push stores: the JSON string, the raw text, or `?value=` when the
/// body is empty.
fn push_value(parts: &http::request::Parts, body: &[u8]) -> Result<String, Refused> {
    if body.is_empty() {
        return last_query_value(parts.uri.query(), "value")
            .ok_or_else(|| Refused::invalid("missing", &["body"], "Field required", Json::Null));
    }
    if is_json(parts.headers.get(header::CONTENT_TYPE)) {
        return match serde_json::from_slice::<Json>(body) {
            Ok(Json::String(s)) => Ok(s),
            Ok(other) => Err(Refused::invalid(
                "string_type",
                &["body"],
                "Input should be a valid string",
                other,
            )),
            Err(_) => Err(Refused::invalid_with(
                "json_invalid",
                &["body", "0"],
                "JSON decode error",
                Json::Object(Vec::new()),
                Some(serde_json::json!({ "error": "Expecting value" })),
            )),
        };
    }
    String::from_utf8(body.to_vec()).map_err(|_| {
        Refused::invalid(
            "string_unicode",
            &["body"],
            "Input should be a valid string, unable to parse raw data as a unicode string",
            Json::Null,
        )
    })
}

/// Whether a Content-Type is JSON as FastAPI reads it: `application/json` or
/// `application/*+json`, any parameters, any case.
fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(v) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.strip_prefix("application/") {
        Some(sub) => sub == "json" || sub.ends_with("+json"),
        None => false,
    }
}

/// The last value of query parameter `name` (FastAPI reads the last one).
fn last_query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .filter(|(k, _)| k == name)
        .last()
        .map(|(_, v)| v.into_owned())
}

/// `POST /queues/{name}/push`: 200 with the size after the push.
async fn push<S: Store, E: Env>(engine: &Engine<S, E>, ns: &Name, q: &str, value: String) -> Reply {
    let shown = repr(q);
    let name = existing(q)?;
    let msg = NewMessage {
        body: Bytes::from(value),
        content_type: Some(TEXT.to_owned()),
        ..NewMessage::default()
    };
    send_one(engine, ns, &name, msg).await.map_err(|e| refuse(e, &shown))?;
    let n = size(engine, ns, &name).await.map_err(|e| refuse(e, &shown))?;
    let mut m = Message::new(format!("push to queue {shown}"));
    m.remaining_queue_size = Some(n);
    json(StatusCode::OK, &m)
}

/// `POST /queues/{name}/pop`: the oldest value, or `null` when empty.
async fn pop<S: Store, E: Env>(engine: &Engine<S, E>, ns: &Name, q: &str) -> Reply {
    let shown = repr(q);
    let name = existing(q)?;
    let popped = engine.pop(ns, &name, 1).await.map_err(|e| refuse(e, &shown))?;
    let n = size(engine, ns, &name).await.map_err(|e| refuse(e, &shown))?;
    let mut m = Message::new(format!("pop from queue {shown}"));
    m.data = Some(popped.first().map(|msg| String::from_utf8_lossy(&msg.body).into_owned()));
    m.remaining_queue_size = Some(n);
    json(StatusCode::OK, &m)
}

/// `GET /queues/{name}`: every value, oldest first (bounded: see the module doc).
async fn items<S: Store, E: Env>(engine: &Engine<S, E>, ns: &Name, q: &str) -> Reply {
    let shown = repr(q);
    let name = existing(q)?;
    let mut items = Vec::new();
    let mut bytes = 0;
    let mut after = None;
    while items.len() < MAX_ITEMS && bytes < MAX_ITEMS_BYTES {
        let opts =
            BrowseOptions { after, limit: MAX_BROWSE, order: Order::Ascending, partition: None };
        let page = engine.browse(ns, &name, opts).await.map_err(|e| refuse(e, &shown))?;
        for msg in page.messages.iter().take(MAX_ITEMS - items.len()) {
            bytes += msg.body.len();
            items.push(String::from_utf8_lossy(&msg.body).into_owned());
        }
        after = page.next_after;
        if after.is_none() {
            break;
        }
    }
    let mut m = Message::new(format!("items in queue {shown}"));
    m.items = Some(&items);
    json(StatusCode::OK, &m)
}

/// `DELETE /queues/{name}?safe_delete=`: refused (409) when safe and not empty.
async fn delete<S: Store, E: Env>(
    engine: &Engine<S, E>,
    ns: &Name,
    q: &str,
    query: Option<&str>,
) -> Reply {
    let safe = match last_query_value(query, "safe_delete") {
        None => true,
        Some(v) => python::parse_bool(&v).ok_or_else(|| {
            Refused::invalid(
                "bool_parsing",
                &["query", "safe_delete"],
                "Input should be a valid boolean, unable to interpret input",
                Json::String(v),
            )
        })?,
    };
    let shown = repr(q);
    let name = existing(q)?;
    let held = size(engine, ns, &name).await.map_err(|e| refuse(e, &shown))?;
    let not_empty = |count: u64| {
        #[derive(Serialize)]
        struct NotEmpty {
            message: String,
            count: u64,
        }
        let message = format!("Queue {shown} not empty");
        Refused::new(StatusCode::CONFLICT, NotEmpty { message, count })
    };
    if safe && held > 0 {
        return Err(not_empty(held));
    }
    match engine.delete_queue(ns, &name, safe).await {
        Ok(()) => {}
        Err(engine::Error::QueueNotEmpty(_)) => {
            // Filled since it was counted.
            let held = size(engine, ns, &name).await.map_err(|e| refuse(e, &shown))?;
            return Err(not_empty(held));
        }
        Err(e) => return Err(refuse(e, &shown)),
    }
    let mut m = Message::new(format!("deleted queue {shown}"));
    m.remaining_queue_size = Some(held);
    json(StatusCode::OK, &m)
}

/// `GET /queues`: every name, in creation order.
async fn list<S: Store, E: Env>(engine: &Engine<S, E>, ns: &Name) -> Reply {
    let queues = all_queues(engine, ns, false).await.map_err(|e| refuse(e, ""))?;
    let names: Vec<String> = queues.iter().filter_map(|q| names::decode(&q.name)).collect();
    let mut m = Message::new("list of queue names".to_owned());
    m.items = Some(&names);
    json(StatusCode::OK, &m)
}

/// `GET /docs`: Swagger UI over this mount's `/openapi.json`.
fn docs(prefix: &str) -> Response<Bytes> {
    let html = DOCS_HTML.replace("{openapi_url}", &format!("{prefix}/openapi.json"));
    let mut res = Response::new(Bytes::from(html));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    res
}

/// `GET /openapi.json`: the static document, with the mount as its server.
fn openapi(prefix: &str) -> Reply {
    let mut doc: serde_json::Value = serde_json::from_str(OPENAPI).map_err(|e| {
        Refused::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the OpenAPI document: {e}"))
    })?;
    if !prefix.is_empty() {
        doc["servers"] = serde_json::json!([{ "url": prefix }]);
    }
    json(StatusCode::OK, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_non_empty_names() {
        assert_eq!(route("/queues"), Some(Route::List));
        assert_eq!(route("/queues/a b"), Some(Route::Queue("a b")));
        assert_eq!(route("/queues/q/push"), Some(Route::Push("q")));
        assert_eq!(route("/queues/q/pop"), Some(Route::Pop("q")));
        for p in ["", "/", "/queues/", "/queues//push", "/queues/q/pop/x", "/queue", "/docs/"] {
            assert_eq!(route(p), None, "{p}");
        }
    }

    #[test]
    fn trailing_slashes_redirect_only_to_routes() {
        let res = unrouted("/rest_queue", "/queues/my q//", Some("a=1"));
        assert_eq!(res.status(), 307);
        assert_eq!(res.headers()[header::LOCATION], "/rest_queue/queues/my%20q?a=1");
        assert_eq!(unrouted("", "/queues/", None).headers()[header::LOCATION], "/queues");
        for p in ["/", "//", "/nope/", "/queues/q/x/"] {
            let res = unrouted("", p, None);
            assert_eq!(res.status(), 404, "{p}");
            assert_eq!(&res.body()[..], br#"{"detail":"Not Found"}"#);
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let is = |v: &str| is_json(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(is("application/json"));
        assert!(is("Application/JSON; charset=utf-8"));
        assert!(is("application/vnd.api+json"));
        assert!(!is("text/plain"));
        assert!(!is("application/jsonx"));
        assert!(!is("text/json"));
        assert!(!is_json(None));
    }

    #[test]
    fn the_openapi_document_is_valid_json() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["paths"]["/queues/{queue_name}/push"]["post"].is_object());
    }
}
