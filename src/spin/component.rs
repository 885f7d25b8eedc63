//! The `wasi:http/incoming-handler` export: one request, one fresh instance.

use super::{SpinEnv, SpinStore};
use crate::api::{Api, ApiConfig, QueueyApp, RequestMetrics};
use crate::engine::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::wit::wasi::config::store as config;

/// Configuration variables the component reads (declared in `spin.toml`), with
/// the value used when the host has none.
const NAMESPACE: (&str, &str) = ("namespace", "default");
/// The dialect served at `/`; empty for none.
const ROOT_DIALECT: (&str, &str) = ("root_dialect", "");
/// Queuey applications and keys, `app1=k1,k2;app2=k3`; empty for none.
const QUEUEY_APPS: (&str, &str) = ("queuey_apps", "");
/// Empty means no admin key: the API runs open (and `/healthz` says so).
const ADMIN_KEY: (&str, &str) = ("admin_key", "");

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let head = matches!(req.method(), Method::Head);
    let mut response = answer(req).await;
    if !head {
        frame(&mut response);
    }
    send(out, response).await;
}

/// Gives `response` a `content-length`, as a native hyper server does for a
/// whole body (otherwise the host would send it chunked).
fn frame(response: &mut http::Response<Bytes>) {
    let status = response.status();
    if status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED
        || response.headers().contains_key(http::header::CONTENT_LENGTH)
    {
        return;
    }
    let len = http::HeaderValue::from(response.body().len());
    response.headers_mut().insert(http::header::CONTENT_LENGTH, len);
}

/// The response to `req`.
async fn answer(req: IncomingRequest) -> http::Response<Bytes> {
    let parts = match parts(&req) {
        Ok(parts) => parts,
        Err(message) => return error(400, "bad_request", &message),
    };
    let store = match SpinStore::open() {
        Ok(store) => store,
        Err(e) => return error(503, "store_unavailable", &e.to_string()),
    };
    // Without its variables (the admin key among them) the API must not run open.
    let vars = match Variables::read() {
        Ok(vars) => vars,
        Err(e) => return error(500, "internal", &format!("reading the variables: {e:?}")),
    };
    let root_dialect = match vars.get(ROOT_DIALECT) {
        "" => None,
        name => match name.parse() {
            Ok(dialect) => Some(dialect),
            Err(e) => return error(500, "internal", &format!("variable root_dialect: {e}")),
        },
    };
    let queuey_apps = match QueueyApp::parse_list(vars.get(QUEUEY_APPS)) {
        Ok(apps) => apps,
        Err(e) => return error(500, "internal", &format!("variable queuey_apps: {e}")),
    };
    let config = ApiConfig {
        namespace: vars.get(NAMESPACE).to_owned(),
        root_dialect,
        queuey_apps,
        admin_key: Some(vars.get(ADMIN_KEY)).filter(|k| !k.is_empty()).map(str::to_owned),
        // An instance lives for one request: request counts live in the store.
        request_metrics: RequestMetrics::Store,
    };
    let api = Api::new(Engine::new(store, SpinEnv), config);

    let limit = api.body_limit(&parts);
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Api::<SpinStore, SpinEnv>::payload_too_large(limit);
    }
    let body = match read_body(req, limit).await {
        Ok(Some(body)) => body,
        Ok(None) => return Api::<SpinStore, SpinEnv>::payload_too_large(limit),
        Err(message) => return error(400, "bad_request", &message),
    };
    api.handle(http::Request::from_parts(parts, body)).await
}

/// Method, target and headers of `req`, as `http` types.
fn parts(req: &IncomingRequest) -> Result<http::request::Parts, String> {
    let method = req.method().to_string();
    let target = req.path_with_query().unwrap_or_else(|| "/".into());
    let mut builder = http::Request::builder().method(method.as_str()).uri(target.as_str());
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).map_err(|e| e.to_string())?.into_parts();
    Ok(parts)
}

/// The body of `req`, or `None` as soon as it is over `limit` bytes (the rest is
/// never read).
async fn read_body(req: IncomingRequest, limit: usize) -> Result<Option<Bytes>, String> {
    let mut stream = std::pin::pin!(req.into_body_stream());
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading the request body: {e}"))?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(Bytes::from(body)))
}

/// Sends `response` through `out`.
async fn send(out: ResponseOutparam, response: http::Response<Bytes>) {
    let (parts, body) = response.into_parts();
    let fields = Fields::new();
    for (name, value) in &parts.headers {
        // The host refuses headers it owns (e.g. `connection`): drop just those.
        let _ = fields.append(name.as_str(), value.as_bytes());
    }
    let outgoing = OutgoingResponse::new(fields);
    // `http::StatusCode` is always in 100..=999, which wasi:http accepts.
    let _ = outgoing.set_status_code(parts.status.as_u16());
    let mut sink = outgoing.take_body();
    out.set(outgoing);
    if !body.is_empty() {
        // An error here means the client went away: there is no one left to tell.
        let _ = sink.send(body.to_vec()).await;
    }
    // Dropping the sink finishes the body.
}

/// The configuration variables, read with one host call (`get-all`).
struct Variables(Vec<(String, String)>);

impl Variables {
    fn read() -> Result<Self, config::Error> {
        config::get_all().map(Self)
    }

    /// The variable `name`, or `default` when it is unset or empty.
    fn get<'a>(&'a self, (name, default): (&str, &'a str)) -> &'a str {
        match self.0.iter().find(|(n, _)| n == name) {
            Some((_, value)) if !value.is_empty() => value,
            _ => default,
        }
    }
}

/// A JSON error response in the API's shape.
fn error(status: u16, code: &str, message: &str) -> http::Response<Bytes> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_string()))
        .unwrap_or_default()
}
