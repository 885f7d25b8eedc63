//! The route table: every route `Api` serves, with who may call it.
//!
//! One table serves three purposes, so they cannot drift apart:
//! - **authorization** (`auth.rs`): the right a key needs for each route;
//! - **metrics** (`metrics.rs`): the bounded `method`/`route` labels of request
//!   counts (a request outside the table is labelled `other`, so clients cannot
//!   grow the label set);
//! - **the OpenAPI document** (`openapi.rs`): its tests check that every v1 route
//!   here is described, and the router's tests check that every route here is
//!   served and that no other method is.
//!
//! Patterns are `/`-separated; `{name}` matches any one segment. Where a literal
//! and a placeholder could both match (`messages/batch` and `messages/{id}`), the
//! literal is listed first, and a path is matched against the first pattern that
//! fits it, as the router does.

use http::Method;

/// A right a key can hold. `Admin` includes all the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Right {
    /// Manage queues and keys, read metrics; implies every other right.
    Admin,
    /// Send and overwrite messages.
    Produce,
    /// Take messages: pop, receive, ack, nack, extend, delete by id.
    Consume,
    /// Read without consuming: list and get queues, browse and get messages.
    Browse,
}

/// Who may call a route when keys are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone (health, static pages, the API description).
    Open,
    /// A key with this right in the served namespace.
    Key(Right),
    /// A key with [`Right::Browse`], or anyone when the queue (`{q}`) is `public`.
    Public,
}

/// One route: method, path pattern and access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// The method (`HEAD` is served wherever `GET` is).
    pub method: &'static str,
    /// The path pattern, e.g. `/v1/queues/{q}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> Route {
    Route { method, path, access }
}

use Access::{Key, Open, Public};
use Right::{Admin, Browse, Consume, Produce};

/// Every route, in the order the router matches them.
pub(crate) static ROUTES: &[Route] = &[
    r("GET", "/", Open),
    r("GET", "/app.js", Open),
    r("GET", "/app.css", Open),
    r("GET", "/docs", Open),
    r("GET", "/docs.js", Open),
    r("GET", "/openapi.json", Open),
    r("GET", "/healthz", Open),
    r("GET", "/__heartbeat__", Open),
    r("GET", "/metrics", Key(Admin)),
    r("GET", "/v1/queues", Key(Browse)),
    r("GET", "/v1/queues/{q}", Public),
    r("PUT", "/v1/queues/{q}", Key(Admin)),
    r("DELETE", "/v1/queues/{q}", Key(Admin)),
    r("POST", "/v1/queues/{q}/purge", Key(Admin)),
    r("GET", "/v1/queues/{q}/messages", Public),
    r("POST", "/v1/queues/{q}/messages", Key(Produce)),
    r("POST", "/v1/queues/{q}/messages/batch", Key(Produce)),
    r("GET", "/v1/queues/{q}/messages/{id}", Public),
    r("PUT", "/v1/queues/{q}/messages/{id}", Key(Produce)),
    r("DELETE", "/v1/queues/{q}/messages/{id}", Key(Consume)),
    r("POST", "/v1/queues/{q}/pop", Key(Consume)),
    r("POST", "/v1/queues/{q}/receive", Key(Consume)),
    r("POST", "/v1/queues/{q}/ack", Key(Consume)),
    r("POST", "/v1/queues/{q}/nack", Key(Consume)),
    r("POST", "/v1/queues/{q}/extend", Key(Consume)),
    r("GET", "/v1/exchanges/{x}", Key(Browse)),
    r("PUT", "/v1/exchanges/{x}", Key(Admin)),
    r("DELETE", "/v1/exchanges/{x}", Key(Admin)),
    r("PUT", "/v1/exchanges/{x}/bindings/{q}", Key(Admin)),
    r("DELETE", "/v1/exchanges/{x}/bindings/{q}", Key(Admin)),
    r("POST", "/v1/exchanges/{x}/publish", Key(Produce)),
    r("GET", "/v1/keys", Key(Admin)),
    r("POST", "/v1/keys", Key(Admin)),
    r("DELETE", "/v1/keys/{id}", Key(Admin)),
];

/// The route serving `method` on `path`, if the table has one.
pub(crate) fn find(method: &Method, path: &str) -> Option<&'static Route> {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    let mut fitting: Option<&str> = None;
    for route in ROUTES {
        match fitting {
            Some(p) if p != route.path => continue,
            Some(_) => {}
            None if matches(route.path, path) => fitting = Some(route.path),
            None => continue,
        }
        if route.method == method {
            return Some(route);
        }
    }
    None
}

/// The raw `{q}` segment of `path` under `pattern` (which must match it).
pub(crate) fn queue_segment<'p>(pattern: &str, path: &'p str) -> Option<&'p str> {
    pattern.split('/').zip(path.split('/')).find(|(p, _)| *p == "{q}").map(|(_, seg)| seg)
}

/// Whether `path` fits `pattern`: literal bytes equal, each `{..}` placeholder
/// one whole segment (possibly empty). One pass that stops at the first
/// differing byte: every request tries most of the table.
fn matches(pattern: &str, path: &str) -> bool {
    let (pat, path) = (pattern.as_bytes(), path.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < pat.len() {
        if pat[i] == b'{' {
            let Some(close) = pat[i..].iter().position(|&b| b == b'}') else {
                return false;
            };
            i += close + 1;
            j += path[j..].iter().position(|&b| b == b'/').unwrap_or(path.len() - j);
        } else if path.get(j) == Some(&pat[i]) {
            i += 1;
            j += 1;
        } else {
            return false;
        }
    }
    j == path.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: &str, path: &str) -> Option<(&'static str, &'static str)> {
        find(&Method::from_bytes(method.as_bytes()).unwrap(), path).map(|r| (r.method, r.path))
    }

    #[test]
    fn literals_win_over_placeholders() {
        let batch = "/v1/queues/q/messages/batch";
        assert_eq!(found("POST", batch), Some(("POST", "/v1/queues/{q}/messages/batch")));
        // The router answers 405 there: the table must not call it "read one message".
        assert_eq!(found("GET", batch), None);
        assert_eq!(
            found("GET", "/v1/queues/q/messages/x"),
            Some(("GET", "/v1/queues/{q}/messages/{id}"))
        );
    }

    #[test]
    fn a_placeholder_is_one_whole_segment() {
        let p = "/v1/queues/{q}/pop";
        assert!(matches(p, "/v1/queues/a.b-c/pop"));
        assert!(matches(p, "/v1/queues//pop"), "an empty segment is the handler's to refuse");
        assert!(!matches(p, "/v1/queues/a/b/pop"));
        assert!(!matches(p, "/v1/queues/a/pop/"));
        assert!(!matches(p, "/v1/queues/a/po"));
        assert!(!matches(p, "/v1/queues/a"));
        assert!(matches("/v1/queues/{q}", "/v1/queues/"));
        assert!(!matches("/v1/queues/{q}", "/v1/queues"));
    }

    #[test]
    fn head_is_get_and_unknown_is_none() {
        assert_eq!(found("HEAD", "/v1/queues/a"), Some(("GET", "/v1/queues/{q}")));
        assert_eq!(found("PATCH", "/v1/queues/a"), None);
        assert_eq!(found("GET", "/v1/queues/a/b/c/d/e"), None);
        assert_eq!(found("GET", "/v1"), None);
        assert_eq!(found("GET", ""), None);
    }

    /// The table and the router agree: every route in the table is served (not
    /// 404, not 405), and on every path of the table the router serves no method
    /// the table lacks.
    #[test]
    fn the_table_is_what_the_router_serves() {
        use crate::api::{Api, ApiConfig};
        use crate::engine::{Engine, ManualEnv};
        use crate::store::MemoryStore;
        let api = Api::new(
            Engine::new(MemoryStore::new(), ManualEnv::new(1_000, 1)),
            ApiConfig::default(),
        );
        let id = crate::model::MessageId::new(1, 0, 0, 1).to_string();
        let concrete = |p: &str| {
            p.replace("{q}", "q")
                .replace("{x}", "x")
                .replace("{id}", if p.starts_with("/v1/keys") { "1" } else { &id })
        };
        let status = |m: &str, path: &str| {
            let req =
                http::Request::builder().method(m).uri(path).body(bytes::Bytes::new()).unwrap();
            let res = futures::executor::block_on(api.handle(req));
            let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap_or_default();
            (res.status().as_u16(), v["error"]["code"].as_str().unwrap_or("").to_owned())
        };
        for route in ROUTES {
            let path = concrete(route.path);
            let (s, code) = status(route.method, &path);
            assert!(code != "not_found" && s != 405, "{} {}: {s} {code}", route.method, route.path);
            for m in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
                if ROUTES.iter().any(|r| r.path == route.path && r.method == m) {
                    continue;
                }
                assert_eq!(
                    status(m, &path).0,
                    405,
                    "{m} {}: the router serves it, the table does not",
                    route.path
                );
            }
        }
    }

    #[test]
    fn finds_the_queue_segment() {
        assert_eq!(
            queue_segment("/v1/queues/{q}/messages", "/v1/queues/a%20b/messages"),
            Some("a%20b")
        );
        assert_eq!(queue_segment("/v1/queues", "/v1/queues"), None);
    }
}
