//! Transport-agnostic HTTP: one [`Api::handle`] for every host.
//!
//! Hosts read the request body with the limit [`Api::body_limit`] gives them
//! (refusing before buffering with [`Api::payload_too_large`]), call
//! [`Api::handle`], call [`Store::flush`] when the request's method may write
//! (anything but GET, HEAD and OPTIONS; a failed flush turns the answer into a
//! 503), and send the response. `handle` checks the body limit again itself, so a
//! host that forgets cannot make it buffer more.
//!
//! Layout: `router` (segments, query strings, methods), `error` (the one mapping
//! of failures to statuses and JSON bodies), `json`, `ops` (`/healthz`,
//! `/__heartbeat__`), `v1` (the primary API; its wire format is written down
//! in `docs/api-v1.md`) and `dialect` (the seed systems' route sets, each under
//! its prefix or one of them at `/`). `routes` is the table of every edgeq route
//! with the right it needs, which `auth` (API keys, checked before any route
//! runs), `keys` (`/v1/keys`), `metrics` (`/metrics`, and counting every request)
//! and `openapi` (`/openapi.json`) share. `web` serves the dashboard and `/docs`
//! (unless a dialect is served at `/`: the root paths are then the dialect's).

mod auth;
mod dialect;
mod error;
mod json;
mod keys;
mod metrics;
mod openapi;
mod ops;
mod router;
mod routes;
mod v1;
mod web;

pub use metrics::RequestMetrics;

use crate::engine::{Engine, Env};
use crate::model::{Name, NameError};
use crate::store::Store;
use bytes::Bytes;
use error::ApiError;
use http::{Method, Request, Response};

pub use dialect::{BadQueueyApp, Dialect, QueueyApp, UnknownDialect};

/// A JSON error response in the API's shape, for what a host refuses or fails
/// at before (or after) [`Api::handle`]: an unreadable body, a missing store, a
/// failed flush, a trapped instance.
pub fn error_response(
    status: http::StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response<Bytes> {
    ApiError::new(status, code, message).into_response()
}

/// Options of the HTTP layer.
#[derive(Clone)]
pub struct ApiConfig {
    /// Namespace used by the v1 routes and the dialects.
    pub namespace: String,
    /// The dialect served at `/` besides its own prefix (`/v1`, `/healthz` and
    /// `/__heartbeat__` stay). A host may choose another per request by putting a
    /// [`Dialect`] in the request's extensions (the native server does, per listener).
    pub root_dialect: Option<Dialect>,
    /// The Queuey dialect's applications and their keys (none: every Queuey
    /// application URL is a 404).
    pub queuey_apps: Vec<QueueyApp>,
    /// The admin key. `None` (or empty) runs the API open: no key is asked for.
    pub admin_key: Option<String>,
    /// Where request counts for `/metrics` are kept.
    pub request_metrics: RequestMetrics,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            root_dialect: None,
            queuey_apps: Vec::new(),
            admin_key: None,
            request_metrics: RequestMetrics::default(),
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("namespace", &self.namespace)
            .field("root_dialect", &self.root_dialect)
            .field("queuey_apps", &format_args!("{} (keys redacted)", self.queuey_apps.len()))
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<redacted>"))
            .field("request_metrics", &self.request_metrics)
            .finish()
    }
}

/// The HTTP front of an [`Engine`].
pub struct Api<S, E> {
    engine: Engine<S, E>,
    config: ApiConfig,
    /// The validated namespace (an invalid one answers every v1 request with 500).
    ns: Result<Name, NameError>,
    /// `None`: open mode.
    auth: Option<auth::Auth>,
    metrics: metrics::Recorder,
}

impl<S: Store, E: Env> Api<S, E> {
    /// Serves `engine` with `config`.
    pub fn new(engine: Engine<S, E>, config: ApiConfig) -> Self {
        let ns = Name::new(&config.namespace);
        let auth = config.admin_key.as_deref().filter(|k| !k.is_empty()).map(auth::Auth::new);
        let metrics = metrics::Recorder::new(config.request_metrics);
        Self { engine, config, ns, auth, metrics }
    }

    /// Whether the API runs open (no admin key configured): every route is
    /// allowed without a key. Hosts say so loudly at start-up.
    pub fn is_open(&self) -> bool {
        self.auth.is_none()
    }

    /// The engine behind this API.
    pub fn engine(&self) -> &Engine<S, E> {
        &self.engine
    }

    /// The configuration this API serves with.
    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    /// Most body bytes a request to `parts` may carry; hosts refuse more before
    /// buffering it: 4 MiB plus slack for single-message routes, 16 MiB for batch
    /// sends, 256 KiB for the receipt routes and 64 KiB for everything else.
    pub fn body_limit(&self, parts: &http::request::Parts) -> usize {
        match router::raw_segments(parts.uri.path()).as_deref() {
            Some(["v1", rest @ ..]) if !self.queuey_at_root(parts, rest) => {
                v1::body_limit(&parts.method, rest)
            }
            _ => {
                dialect::body_limit(parts, self.root_dialect(parts)).unwrap_or(v1::SMALL_BODY_LIMIT)
            }
        }
    }

    /// The dialect served at `/` for this request: the host's choice in the
    /// request's extensions, else the configured one.
    fn root_dialect(&self, parts: &http::request::Parts) -> Option<Dialect> {
        parts.extensions.get::<Dialect>().copied().or(self.config.root_dialect)
    }

    /// Whether `/v1/{rest}` is Queuey's rather than edgeq's: Queuey is served at
    /// `/` for this request and `rest` starts with one of its applications (whose
    /// clients cannot take a prefix and also say `/v1`).
    /// Whether the request goes to the Queuey dialect, which has authentication of
    /// its own (`Authorization: Application <key>`), so the Bearer check of the
    /// other route sets leaves it alone.
    fn is_queuey(&self, parts: &http::request::Parts) -> bool {
        self.dialect_of(parts) == Some(Dialect::Queuey)
    }

    /// The dialect a request goes to, if any (`None`: edgeq's own routes).
    fn dialect_of(&self, parts: &http::request::Parts) -> Option<Dialect> {
        match router::raw_segments(parts.uri.path()).as_deref() {
            Some(["v1", rest @ ..]) => self.queuey_at_root(parts, rest).then_some(Dialect::Queuey),
            _ => dialect::mount(parts.uri.path(), self.root_dialect(parts)).map(|m| m.dialect),
        }
    }

    fn queuey_at_root(&self, parts: &http::request::Parts, rest: &[&str]) -> bool {
        self.root_dialect(parts) == Some(Dialect::Queuey)
            && rest
                .first()
                .is_some_and(|app| self.config.queuey_apps.iter().any(|a| a.name == *app))
    }

    /// The namespace every route set serves; a 500 when the configured one is invalid.
    fn ns(&self) -> Result<&Name, ApiError> {
        self.ns
            .as_ref()
            .map_err(|e| ApiError::internal(format!("the configured namespace is invalid: {e}")))
    }

    /// The response for a body over `limit` bytes to `parts`, in the error
    /// shape of the route set it was for.
    pub fn payload_too_large(&self, parts: &http::request::Parts, limit: usize) -> Response<Bytes> {
        let e = ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is over {limit} bytes"),
        );
        dialect::refusal(self.dialect_of(parts), e)
    }

    /// Answers one request. Never panics; every failure is a JSON error response.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        let (parts, body) = req.into_parts();
        let started = self.metrics.start();
        // With a dialect at `/`, the pages' paths are the dialect's, outside the table.
        let route = routes::find(&parts.method, parts.uri.path())
            .filter(|r| self.root_dialect(&parts).is_none() || !web::serves(r.path));
        let limit = self.body_limit(&parts);
        let mut res = if body.len() > limit {
            self.payload_too_large(&parts, limit)
        } else {
            match self.route(&parts, route, body).await {
                Ok(res) => res,
                Err(e) => e.into_response(),
            }
        };
        if parts.method == Method::HEAD {
            // Same headers as the GET, `Content-Length` included (no host adds it
            // for the empty body that is sent): the length of the body dropped here.
            let status = res.status();
            if !(status.is_informational()
                || status == http::StatusCode::NO_CONTENT
                || status == http::StatusCode::NOT_MODIFIED)
            {
                let len = http::HeaderValue::from(res.body().len());
                res.headers_mut().insert(http::header::CONTENT_LENGTH, len);
            }
            *res.body_mut() = Bytes::new();
        }
        self.metrics.record(self.engine.store(), route, res.status(), started).await;
        res
    }

    async fn route(
        &self,
        parts: &http::request::Parts,
        route: Option<&routes::Route>,
        body: Bytes,
    ) -> Result<Response<Bytes>, ApiError> {
        let path = parts.uri.path();
        let root_dialect = self.root_dialect(parts);
        let dialect_docs = dialect::is_docs(path, root_dialect);
        let principal = match &self.auth {
            None => auth::Principal::Anyone,
            // Queuey checks its own application keys (dialect/queuey.rs).
            Some(_) if route.is_none() && (self.is_queuey(parts) || dialect_docs) => {
                auth::Principal::Anyone
            }
            Some(a) => a.authorize(&self.engine, self.ns.as_ref().ok(), parts, route).await?,
        };
        match router::raw_segments(path).as_deref() {
            Some(["healthz"]) => {
                return ops::healthz(&parts.method, self.engine.store(), self.is_open()).await
            }
            Some(["__heartbeat__"]) => return ops::heartbeat(&parts.method),
            Some(["openapi.json"]) if !dialect_docs => return openapi::openapi_json(&parts.method),
            Some([seg @ ("" | "docs" | "app.js" | "docs.js" | "app.css")])
                if root_dialect.is_none() =>
            {
                return web::page(&parts.method, seg)
            }
            Some(["metrics"]) => {
                router::allow(&parts.method, "GET, HEAD")?;
                return self.metrics.render(&self.engine, self.ns()?).await;
            }
            Some(["v1", "keys", rest @ ..]) if !self.queuey_at_root(parts, rest) => {
                let ns = self.ns().ok();
                return keys::handle(&self.engine, ns, &principal, parts, rest, &body).await;
            }
            Some(["v1", rest @ ..]) if !self.queuey_at_root(parts, rest) => {
                let cx = v1::Cx { engine: &self.engine, ns: self.ns()?, parts };
                return v1::handle(&cx, rest, body).await;
            }
            _ => {}
        }
        // Everything else belongs to a dialect's mount, or to the root dialect.
        match dialect::mount(path, root_dialect) {
            Some(mount) => {
                let cx = dialect::Cx {
                    engine: &self.engine,
                    ns: self.ns()?,
                    parts,
                    config: &self.config,
                };
                Ok(dialect::handle(&cx, mount, body).await)
            }
            None => Err(ApiError::no_route(path)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Routing, limits and input checks: everything here is refused or answered
    //! before the engine is called, so it runs without an engine implementation.

    use super::*;
    use crate::model::Millis;
    use crate::store::MemoryStore;
    use futures::executor::block_on;
    use std::future::{ready, Future};

    struct FixedEnv;
    impl Env for FixedEnv {
        fn now(&self) -> Millis {
            1_700_000_000_000
        }
        fn random(&self) -> u64 {
            4
        }
        fn sleep(&self, _millis: u64) -> impl Future<Output = ()> + Send {
            ready(())
        }
    }

    fn api() -> Api<MemoryStore, FixedEnv> {
        Api::new(Engine::new(MemoryStore::new(), FixedEnv), ApiConfig::default())
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Request<Bytes> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Bytes::copy_from_slice(body)).unwrap()
    }

    fn call(r: Request<Bytes>) -> (u16, serde_json::Value, Response<Bytes>) {
        let res = block_on(api().handle(r));
        let v = serde_json::from_slice(res.body()).unwrap_or(serde_json::Value::Null);
        (res.status().as_u16(), v, res)
    }

    fn code(method: &str, uri: &str, body: &[u8]) -> (u16, String) {
        let (s, v, _) = call(req(method, uri, &[], body));
        (s, v["error"]["code"].as_str().unwrap_or("").to_owned())
    }

    #[test]
    fn heartbeat_and_health() {
        let (s, _, res) = call(req("GET", "/__heartbeat__", &[], b""));
        assert_eq!(s, 200);
        assert_eq!(&res.body()[..], b"OK");
        let (s, _, res) = call(req("HEAD", "/__heartbeat__", &[], b""));
        assert_eq!(s, 200);
        assert!(res.body().is_empty());
        let (s, v, _) = call(req("GET", "/healthz", &[], b""));
        assert_eq!(s, 200);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["store"], "ok");
        assert_eq!(code("POST", "/healthz", b""), (405, "method_not_allowed".into()));
    }

    #[test]
    fn unknown_routes_are_404_json() {
        for uri in [
            "/index.html",
            "/v2/queues",
            "/v1",
            "/v1/queue",
            "/v1/queues/q/nope",
            "/v1/queues/q/messages/a/b",
        ] {
            assert_eq!(code("GET", uri, b""), (404, "not_found".into()), "{uri}");
        }
        let deep = "/v1".repeat(1000);
        assert_eq!(code("GET", &deep, b"").0, 404);
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        let cases = [
            ("POST", "/v1/queues", "GET, HEAD"),
            ("POST", "/v1/queues/q", "GET, HEAD, PUT, DELETE"),
            ("GET", "/v1/queues/q/purge", "POST"),
            ("DELETE", "/v1/queues/q/messages", "GET, HEAD, POST"),
            ("GET", "/v1/queues/q/messages/batch", "POST"),
            ("POST", "/v1/queues/q/messages/x", "GET, HEAD, PUT, DELETE"),
            ("GET", "/v1/queues/q/pop", "POST"),
            ("GET", "/v1/queues/q/receive", "POST"),
            ("PUT", "/v1/queues/q/ack", "POST"),
            ("GET", "/v1/queues/q/nack", "POST"),
            ("DELETE", "/v1/queues/q/extend", "POST"),
        ];
        for (m, uri, allow) in cases {
            let (s, v, res) = call(req(m, uri, &[], b""));
            assert_eq!(s, 405, "{m} {uri}");
            assert_eq!(v["error"]["code"], "method_not_allowed");
            assert_eq!(res.headers()[http::header::ALLOW], allow, "{m} {uri}");
        }
    }

    #[test]
    fn bad_names_are_400_naming_the_rule() {
        let long = format!("/v1/queues/{}", "a".repeat(81));
        for (uri, rule) in [
            ("/v1/queues/", "empty"),
            (long.as_str(), "limit is 80"),
            ("/v1/queues/a%20b", "only A-Z"),
            ("/v1/queues/a%2Fb", "only A-Z"),
            ("/v1/queues/%C3%A9", "only A-Z"),
        ] {
            let (s, v, _) = call(req("PUT", uri, &[], b""));
            assert_eq!(s, 400, "{uri}");
            assert_eq!(v["error"]["code"], "invalid_name");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(rule), "{uri}: {msg}");
        }
        assert_eq!(code("GET", "/v1/queues/%FF", b"").1, "invalid_path");
    }

    #[test]
    fn queue_config_is_checked_before_the_engine() {
        assert_eq!(code("PUT", "/v1/queues/q", b"{"), (400, "invalid_json".into()));
        assert_eq!(code("PUT", "/v1/queues/q", b"[]"), (400, "invalid_body".into()));
        let (s, v, _) = call(req("PUT", "/v1/queues/q", &[], br#"{"partitons":2}"#));
        assert_eq!(s, 400);
        assert_eq!(v["error"]["code"], "invalid_body");
        assert!(v["error"]["message"].as_str().unwrap().contains("partitons"));
        let (s, v, _) = call(req("PUT", "/v1/queues/q", &[], br#"{"delay":"soon"}"#));
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_body")));
        let (s, v, _) = call(req("PUT", "/v1/queues/q", &[], br#"{"delay":100000}"#));
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_value")));
        assert!(v["error"]["message"].as_str().unwrap().contains("delay"));
        assert_eq!(code("PUT", "/v1/queues/q?x=1", b"").1, "invalid_query");
    }

    #[test]
    fn query_parameters_are_checked_before_the_engine() {
        // Malformed: not of the parameter's type, or not UTF-8 once decoded.
        for uri in [
            "/v1/queues?limit=ten",
            "/v1/queues?details=maybe",
            "/v1/queues?prefix=a/b",
            "/v1/queues?prefix=%FF",
            "/v1/queues?bogus=1",
            "/v1/queues/q/messages?order=up",
            "/v1/queues/q/messages?after=nope",
            "/v1/queues/q/messages?order=%FF",
        ] {
            assert_eq!(code("GET", uri, b""), (400, "invalid_query".into()), "{uri}");
        }
        for uri in [
            "/v1/queues/q/receive?visibility_timeout=-1",
            "/v1/queues/q/receive?wait=soon",
            "/v1/queues/q/receive?partition=x",
        ] {
            assert_eq!(code("POST", uri, b""), (400, "invalid_query".into()), "{uri}");
        }
        for uri in ["/v1/exchanges/x/bindings/q?key=%FF", "/v1/exchanges/x/bindings/q?key=a%C3"] {
            let (s, v, _) = call(req("PUT", uri, &[], b""));
            assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_query")), "{uri}");
            assert!(v["error"]["message"].as_str().unwrap().contains("key"), "{uri}");
            assert_eq!(code("DELETE", uri, b""), (400, "invalid_query".into()), "{uri}");
        }
        // Well-formed numbers out of range: the same code for every parameter.
        for uri in ["/v1/queues?limit=0", "/v1/queues?limit=1001", "/v1/queues/q/messages?limit=0"]
        {
            assert_eq!(code("GET", uri, b""), (400, "invalid_value".into()), "{uri}");
        }
        for uri in [
            "/v1/queues/q/pop?count=0",
            "/v1/queues/q/pop?count=101",
            "/v1/queues/q/receive?count=101",
            "/v1/queues/q/receive?wait=21",
            "/v1/queues/q/receive?visibility_timeout=43201",
            "/v1/queues/q/receive?visibility_timeout=999999",
            "/v1/queues/q/receive?partition=200",
        ] {
            assert_eq!(code("POST", uri, b""), (400, "invalid_value".into()), "{uri}");
        }
        let (_, v, _) =
            call(req("POST", "/v1/queues/q/receive?visibility_timeout=43201", &[], b""));
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("visibility_timeout") && msg.contains("43200"), "{msg}");
        let (_, v, _) = call(req("DELETE", "/v1/queues/q?if_empty=yes", &[], b""));
        assert_eq!(v["error"]["code"], "invalid_query");
        assert!(v["error"]["message"].as_str().unwrap().contains("true, false, 1 or 0"));
    }

    #[test]
    fn a_cursor_not_handed_out_is_a_malformed_query() {
        for cursor in ["garbage", "0", "-1", "1.5"] {
            let uri = format!("/v1/queues?cursor={cursor}");
            let (s, v, _) = call(req("GET", &uri, &[], b""));
            assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_query")), "{uri}");
            assert!(v["error"]["message"].as_str().unwrap().contains("cursor"), "{uri}");
        }
        assert_eq!(code("GET", "/v1/queues?cursor=1", b"").0, 200);
        for cursor in ["garbage", "0", "99999999999999999999999"] {
            let uri = format!("/v1/keys?cursor={cursor}");
            assert_eq!(code("GET", &uri, b""), (400, "invalid_query".into()), "{uri}");
        }
        assert_eq!(code("GET", "/v1/keys?cursor=1", b"").0, 200);
        // A key id that is not a positive integer says so, not u64::MAX.
        for id in ["0", "abc", "99999999999999999999999"] {
            let (s, v, _) = call(req("DELETE", &format!("/v1/keys/{id}"), &[], b""));
            assert_eq!((s, v["error"]["code"].as_str()), (400, Some("invalid_key_id")), "{id}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains("not a positive integer"), "{id}: {msg}");
            assert!(!msg.contains(&u64::MAX.to_string()), "{id}: {msg}");
        }
    }

    #[test]
    fn send_headers_are_checked_before_the_engine() {
        let uri = "/v1/queues/q/messages";
        for (h, v, expect) in [
            ("edgeq-delay", "soon", "invalid_header"),
            ("edgeq-delay", "-1", "invalid_header"),
            ("edgeq-delay", "901", "invalid_value"),
            ("edgeq-ttl", "0", "invalid_value"),
            ("edgeq-ttl", "1e3", "invalid_header"),
            ("edgeq-delay", "99999999999999999999999", "invalid_value"),
            ("edgeq-partition", "x", "invalid_header"),
            ("edgeq-partition", "200", "invalid_value"),
            ("idempotency-key", "a b", "invalid_header"),
        ] {
            let (s, body, _) = call(req("POST", uri, &[(h, v)], b"x"));
            assert_eq!(s, 400, "{h}: {v}");
            assert_eq!(body["error"]["code"], expect, "{h}: {v}");
        }
        // Refusals of numbers out of range state the real bounds.
        for (h, v, bounds) in [
            ("edgeq-delay", "99999999999999999999999", "between 0 and 900"),
            ("edgeq-ttl", "33554433", "between 1 and 33554432"),
            ("edgeq-partition", "65536", "no queue has more than 200"),
        ] {
            let (_, body, _) = call(req("POST", uri, &[(h, v)], b"x"));
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(msg.contains(bounds) && !msg.contains(&u64::MAX.to_string()), "{h}: {msg}");
        }
        let big = vec![b'a'; crate::model::MAX_BODY_LEN + 1];
        assert_eq!(code("POST", uri, &big), (413, "message_too_large".into()));
    }

    #[test]
    fn bodies_over_the_route_limit_are_refused() {
        let a = api();
        let parts = |m: &str, uri: &str| req(m, uri, &[], b"").into_parts().0;
        let single = a.body_limit(&parts("POST", "/v1/queues/q/messages"));
        assert!(single > crate::model::MAX_BODY_LEN);
        let id = crate::model::MessageId::new(1, 0, 0, 1);
        assert_eq!(a.body_limit(&parts("PUT", &format!("/v1/queues/q/messages/{id}"))), single);
        assert!(a.body_limit(&parts("POST", "/v1/queues/q/messages/batch")) >= 16 << 20);
        assert_eq!(a.body_limit(&parts("PUT", "/v1/queues/q")), 64 << 10);
        assert_eq!(a.body_limit(&parts("GET", "/nope")), 64 << 10);
        let (s, v, _) = call(req("PUT", "/v1/queues/q", &[], &vec![b' '; (64 << 10) + 1]));
        assert_eq!(s, 413);
        assert_eq!(v["error"]["code"], "payload_too_large");
    }

    #[test]
    fn batch_and_receipt_bodies_are_checked_before_the_engine() {
        let batch = "/v1/queues/q/messages/batch";
        assert_eq!(code("POST", batch, b"{\"messages\":[]}").1, "invalid_body");
        assert_eq!(code("POST", batch, b"{\"messages\":[{}]}").1, "invalid_body");
        assert_eq!(code("POST", batch, b"{\"msgs\":[]}").1, "invalid_body");
        assert_eq!(code("POST", batch, b"not json").1, "invalid_json");
        let many = format!("{{\"messages\":[{}]}}", vec!["{\"body\":\"x\"}"; 1001].join(","));
        assert_eq!(code("POST", batch, many.as_bytes()), (400, "too_many_entries".into()));
        let ack = "/v1/queues/q/ack";
        assert_eq!(code("POST", ack, b"{\"receipts\":[]}").1, "invalid_body");
        assert_eq!(code("POST", ack, b"").1, "invalid_json");
        assert_eq!(
            code("POST", ack, b"{\"receipts\":[\"nope\"]}"),
            (400, "invalid_receipt".into())
        );
        assert_eq!(
            code("POST", "/v1/queues/q/nack", b"{\"receipts\":[\"r1.0.1.1\"],\"delay\":901}").1,
            "invalid_value"
        );
        assert_eq!(
            code("POST", "/v1/queues/q/extend", b"{\"receipts\":[\"r1.0.1.1\"]}").1,
            "invalid_body"
        );
        assert_eq!(code("GET", "/v1/queues/q/messages/nope", b"").1, "invalid_message_id");
    }

    #[test]
    fn a_bad_namespace_is_a_server_error_not_a_panic() {
        let a = Api::new(
            Engine::new(MemoryStore::new(), FixedEnv),
            ApiConfig { namespace: "bad ns".into(), ..ApiConfig::default() },
        );
        let res = block_on(a.handle(req("GET", "/v1/queues", &[], b"")));
        assert_eq!(res.status(), 500);
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let junk: [&[u8]; 6] =
            [b"", b"\0", b"\xff\xfe{", b"{\"messages\":null}", b"[[[[[[", b"{\"receipts\":[1,2]}"];
        let uris = [
            "/v1/queues/q",
            "/v1/queues/q/messages/batch",
            "/v1/queues/q/ack",
            "/v1/queues/q/nack",
            "/v1/queues/q/extend",
            "/v1/queues/%00/pop?count=%FF",
            "/v1/queues/q/receive?wait=99999999999999999999999",
        ];
        for uri in uris {
            for body in junk {
                let (s, v, _) = call(req("POST", uri, &[], body));
                assert!((400..500).contains(&s), "{uri}: {s}");
                assert!(v["error"]["code"].is_string(), "{uri}");
            }
        }
    }

    #[test]
    fn the_handler_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let a = api();
        is_send(&a.handle(req("GET", "/healthz", &[], b"")));
    }
}
