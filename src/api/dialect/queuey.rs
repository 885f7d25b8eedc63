//! The Queuey dialect (seed 004, mozilla-services/queuey): applications with
//! keys, each an edgeq namespace, whose queues are managed with form posts and
//! whose messages are browsed by time (`since`), not consumed; specified in
//! `dialects/queuey.md`.
//!
//! - Applications and their keys are configuration ([`QueueyApp`] in
//!   [`crate::api::ApiConfig::queuey_apps`]); the application name is the
//!   namespace of its queues, so `/v1/{app}/{q}` is queue `q` of namespace `app`.
//! - Queuey's own queue settings (`type`, `consistency`, `principles`) live in a
//!   small value beside the engine's queue ([`queues`]); `type=public` is also
//!   the engine's `public`, and `partitions` is the engine's.
//! - Message ids and timestamps are the engine's, rendered as uuid1 ([`ids`]).
//! - Checks run in the original's order: application (404), queue (404),
//!   permission (401 for an unknown key, 403 otherwise), then the parameters,
//!   every failing field reported at once with colander's texts.
//!
//! Bodies are compact JSON sent as `text/html; charset=UTF-8` (the original's
//! quirk, kept for clients that look at it); 403 and unknown routes are HTML
//! pages like Pyramid's.

mod ids;
mod messages;
mod queues;

use super::Cx;
use crate::engine::{self, Env};
use crate::model::Name;
use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;
use std::str::FromStr;

/// A Queuey application: its name (a namespace) and the keys that act as it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueyApp {
    /// The application name, also the namespace of its queues.
    pub name: String,
    /// Keys presented as `Authorization: Application <key>`.
    pub keys: Vec<String>,
}

/// A malformed application entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queuey application {0:?}: expected NAME=KEY1,KEY2 with NAME a valid namespace and non-empty keys")]
pub struct BadQueueyApp(String);

impl FromStr for QueueyApp {
    type Err = BadQueueyApp;
    /// `NAME=KEY1,KEY2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadQueueyApp(s.chars().take(100).collect());
        let (name, keys) = s.trim().split_once('=').ok_or_else(bad)?;
        let keys: Vec<String> = keys.split(',').map(|k| k.trim().to_owned()).collect();
        if Name::new(name).is_err() || keys.iter().any(|k| k.is_empty() || k.contains(';')) {
            return Err(bad());
        }
        Ok(Self { name: name.to_owned(), keys })
    }
}

impl QueueyApp {
    /// Applications written `app1=k1,k2;app2=k3` (empty: none).
    pub fn parse_list(s: &str) -> Result<Vec<Self>, BadQueueyApp> {
        s.split(';').filter(|e| !e.trim().is_empty()).map(str::parse).collect()
    }
}

/// Serves one request inside the Queuey mount; `rest` is the path inside it.
pub(super) async fn handle<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    rest: &str,
    body: Bytes,
) -> Response<Bytes> {
    match route(cx, rest, body).await {
        Ok(res) => res,
        Err(Refusal::Page(res)) => *res,
        Err(Refusal::Engine(e)) => engine_error(e),
    }
}

async fn route<S: Store, E: Env>(
    cx: &Cx<'_, S, E>,
    rest: &str,
    body: Bytes,
) -> Result<Response<Bytes>, Refusal> {
    let segs = crate::api::router::raw_segments(rest).unwrap_or_default();
    let (app, tail) = match segs.as_slice() {
        ["v1", app, tail @ ..] if tail.len() <= 2 => (*app, tail),
        _ => return Err(not_found()),
    };
    let app = cx.config.queuey_apps.iter().find(|a| a.name == app).ok_or_else(not_found)?;
    let ns = Name::new(&app.name).map_err(|_| not_found())?;
    let cx = Queuey { cx, app, ns, caller: caller(cx) };
    let m = &cx.cx.parts.method;
    match tail {
        [] | [""] => match *m {
            Method::GET | Method::HEAD => queues::list(&cx).await,
            Method::POST => queues::create(&cx, &body).await,
            _ => Err(method_not_allowed("GET, HEAD, POST")),
        },
        [q] | [q, ""] => {
            let q = queue_name(q)?;
            match *m {
                Method::GET | Method::HEAD => messages::browse(&cx, &q).await,
                Method::POST => messages::post(&cx, &q, body).await,
                Method::PUT => queues::update(&cx, &q, &body).await,
                Method::DELETE => queues::delete(&cx, &q).await,
                _ => Err(method_not_allowed("GET, HEAD, POST, PUT, DELETE")),
            }
        }
        [q, ids] => {
            let q = queue_name(q)?;
            match *m {
                Method::GET | Method::HEAD => messages::get(&cx, &q, ids).await,
                Method::PUT => messages::put(&cx, &q, ids, body).await,
                Method::DELETE => messages::delete(&cx, &q, ids).await,
                _ => Err(method_not_allowed("GET, HEAD, PUT, DELETE")),
            }
        }
        _ => Err(not_found()),
    }
}

/// A request inside one application.
struct Queuey<'a, S, E> {
    cx: &'a Cx<'a, S, E>,
    app: &'a QueueyApp,
    ns: Name,
    caller: Caller<'a>,
}

/// Who the `Authorization` header says is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller<'a> {
    /// No `Application` credentials.
    Anonymous,
    /// A configured key: the application it belongs to.
    App(&'a str),
    /// A key no application has.
    Unknown,
}

/// The caller named by `Authorization: Application <key>` (parts separated by
/// `;`, other schemes ignored).
fn caller<'a, S, E>(cx: &Cx<'a, S, E>) -> Caller<'a> {
    let key = cx
        .parts
        .headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|part| part.trim().strip_prefix("Application "));
    let Some(key) = key.map(str::trim) else { return Caller::Anonymous };
    cx.config
        .queuey_apps
        .iter()
        .find(|a| a.keys.iter().any(|k| k == key))
        .map_or(Caller::Unknown, |a| Caller::App(&a.name))
}

impl<S, E> Queuey<'_, S, E> {
    /// Only the owner application may do this.
    fn owner_only(&self) -> Result<(), Refusal> {
        match self.caller {
            Caller::App(a) if a == self.app.name => Ok(()),
            other => Err(denied(other)),
        }
    }

    /// Viewing or deleting messages: the queue's principles when it has any,
    /// else the owner; anyone may view a public queue (`public_read`).
    fn may_read(&self, settings: &queues::Settings, public_read: bool) -> Result<(), Refusal> {
        if self.caller == Caller::Unknown {
            return Err(denied(self.caller));
        }
        if public_read && settings.public {
            return Ok(());
        }
        if settings.principles.is_empty() {
            return self.owner_only();
        }
        match self.caller {
            Caller::App(a)
                if settings.principles.iter().any(|p| p.strip_prefix("app:") == Some(a)) =>
            {
                Ok(())
            }
            other => Err(denied(other)),
        }
    }
}

/// 401 for an unknown key, else 403.
fn denied(caller: Caller<'_>) -> Refusal {
    if caller == Caller::Unknown {
        return fail(
            StatusCode::UNAUTHORIZED,
            Fields::one("InvalidApplicationKey", "Invalid application key"),
        );
    }
    Refusal::Page(Box::new(page(StatusCode::FORBIDDEN, "Access was denied to this resource.")))
}

/// A queue name from the path: over 50 characters, or one edgeq cannot have,
/// is a missing queue.
fn queue_name(seg: &str) -> Result<Name, Refusal> {
    let decoded = crate::api::router::decode(seg).map_err(|_| queue_not_found())?;
    if decoded.chars().count() > 50 {
        return Err(fail(
            StatusCode::NOT_FOUND,
            Fields::one("InvalidQueueName", "Queue name longer than 50 characters."),
        ));
    }
    Name::new(&decoded).map_err(|_| queue_not_found())
}

fn queue_not_found() -> Refusal {
    fail(
        StatusCode::NOT_FOUND,
        Fields::one("InvalidQueueName", "Queue of that name was not found."),
    )
}

/// Why a request was not served.
enum Refusal {
    /// An answer ready to send (boxed: it is large and errors travel far).
    Page(Box<Response<Bytes>>),
    /// An engine failure, mapped by [`engine_error`].
    Engine(engine::Error),
}

impl From<engine::Error> for Refusal {
    fn from(e: engine::Error) -> Self {
        match e {
            engine::Error::QueueNotFound(_) => queue_not_found(),
            e => Refusal::Engine(e),
        }
    }
}

/// Engine failures other than a missing queue keep the v1 status, in Queuey's
/// error shape keyed by the v1 code.
fn engine_error(e: engine::Error) -> Response<Bytes> {
    refusal(crate::api::error::ApiError::from(e))
}

/// `e` in Queuey's shape, `{FIELD_OR_KIND: MESSAGE}` ([`super::refusal`]).
pub(super) fn refusal(api: crate::api::error::ApiError) -> Response<Bytes> {
    let status = api.status();
    let body = api.body();
    let mut res = ok_json(&Status::error(&Fields::one(body.code, body.message)));
    *res.status_mut() = status;
    res
}

/// Field errors, in the order they were found (serialised as a JSON object).
#[derive(Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn one(field: &str, message: &str) -> Self {
        Self(vec![(field.to_owned(), message.to_owned())])
    }

    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    /// `Ok` when nothing failed, else a 400 with every failure.
    fn check(self) -> Result<(), Refusal> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(fail(StatusCode::BAD_REQUEST, self))
        }
    }
}

impl Serialize for Fields {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `{"status":"error","error_msg":{...}}`.
#[derive(serde::Serialize)]
struct Status<'a> {
    status: &'static str,
    error_msg: &'a Fields,
}

impl<'a> Status<'a> {
    fn error(fields: &'a Fields) -> Self {
        Self { status: "error", error_msg: fields }
    }
}

/// A Queuey error response.
fn fail(status: StatusCode, fields: Fields) -> Refusal {
    let mut res = ok_json(&Status::error(&fields));
    *res.status_mut() = status;
    Refusal::Page(Box::new(res))
}

/// Queuey's type for every answer, JSON included.
const HTML: &str = "text/html; charset=UTF-8";

/// 200 with `value` as compact JSON, typed `text/html; charset=UTF-8`.
fn ok_json<T: Serialize>(value: &T) -> Response<Bytes> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    super::html_answer(Bytes::from(body), HTML)
}

/// 200 `{"status":"ok"}`.
fn done() -> Response<Bytes> {
    ok_json(&serde_json::json!({"status": "ok"}))
}

/// A Pyramid-style HTML error page.
fn page(status: StatusCode, detail: &str) -> Response<Bytes> {
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let html = format!(
        "<html>\n <head>\n  <title>{title}</title>\n </head>\n <body>\n  <h1>{title}</h1>\n  {detail}<br/><br/>\n\n\n\n </body>\n</html>"
    );
    let mut res = super::html_answer(Bytes::from(html), HTML);
    *res.status_mut() = status;
    res
}

fn not_found() -> Refusal {
    Refusal::Page(Box::new(page(StatusCode::NOT_FOUND, "The resource could not be found.")))
}

fn method_not_allowed(allow: &'static str) -> Refusal {
    let mut res =
        page(StatusCode::METHOD_NOT_ALLOWED, "The method is not allowed for this resource.");
    res.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    Refusal::Page(Box::new(res))
}

/// Request parameters as Pyramid's `request.params`: the query string, then a
/// form-encoded body. An empty value counts as absent (colander's null).
struct Params(Vec<(String, String)>);

impl Params {
    fn new(query: Option<&str>, form: &[u8]) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .chain(form_urlencoded::parse(form))
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Self(pairs)
    }

    /// The last value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Colander's `Int` with `Range(lo, hi)`: the value, or the message; `None`
/// when absent.
fn int_field(v: Option<&str>, lo: i64, hi: i64) -> Result<Option<i64>, String> {
    let Some(v) = v else { return Ok(None) };
    let t = v.trim();
    let n: i64 = t
        .strip_prefix('+')
        .unwrap_or(t)
        .parse()
        .map_err(|_| format!("\"{}\" is not a number", Shown(v)))?;
    if n < lo {
        return Err(format!("{n} is less than minimum value {lo}"));
    }
    if n > hi {
        return Err(format!("{n} is greater than maximum value {hi}"));
    }
    Ok(Some(n))
}

/// Colander's `OneOf`: `None` when absent.
fn one_of<'v>(v: Option<&'v str>, choices: &[&str]) -> Result<Option<&'v str>, String> {
    match v {
        Some(v) if !choices.contains(&v) => {
            Err(format!("\"{}\" is not one of {}", Shown(v), choices.join(", ")))
        }
        v => Ok(v),
    }
}

/// A value shown in a message, cut to 100 characters.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.chars().take(100).try_for_each(|c| fmt::Write::write_char(f, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_parse_from_configuration_text() {
        let apps = QueueyApp::parse_list("notes=k1, k2; ;mail=k3").unwrap();
        assert_eq!(
            apps[0],
            QueueyApp { name: "notes".into(), keys: vec!["k1".into(), "k2".into()] }
        );
        assert_eq!(apps[1].keys, vec!["k3"]);
        assert!(QueueyApp::parse_list("").unwrap().is_empty());
        for bad in ["notes", "notes=", "no tes=k", "=k", "a=k,,l"] {
            assert!(QueueyApp::parse_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn colander_texts() {
        assert_eq!(int_field(Some("0"), 1, 200), Err("0 is less than minimum value 1".into()));
        assert_eq!(
            int_field(Some("201"), 1, 200),
            Err("201 is greater than maximum value 200".into())
        );
        assert_eq!(int_field(Some("abc"), 1, 2), Err("\"abc\" is not a number".into()));
        assert_eq!(int_field(Some(" +7 "), 1, 200), Ok(Some(7)));
        assert_eq!(int_field(None, 1, 200), Ok(None));
        assert_eq!(
            one_of(Some("x"), &["public", "user"]),
            Err("\"x\" is not one of public, user".into())
        );
    }
}
