//! The `wasi:http/incoming-handler` export: one request, one fresh instance.

use super::{SpinEnv, SpinStore};
use crate::api::{error_response, Api, ApiConfig, QueueyApp, RequestMetrics};
use crate::engine::Engine;
use bytes::Bytes;
use http::StatusCode;
use spin_sdk::http::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use spin_sdk::http_component;
use spin_sdk::wit::wasi::config::store as config;
use wasi::io::streams::{OutputStream, StreamError};

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
    let method = req.method();
    let head = matches!(method, Method::Head);
    let mut response = answer(req, method).await;
    if head {
        send_head(out, response);
    } else {
        frame(&mut response);
        send(out, response);
    }
}

/// Sends the answer to a HEAD request: its headers (the GET's, `content-length`
/// included) and no body. The body resource is never taken, so the host sends
/// an empty one; taken and finished empty, it would fail `finish` against that
/// `content-length` (wasi:http checks the two agree) and abort the response.
fn send_head(out: ResponseOutparam, response: http::Response<Bytes>) {
    let outgoing = OutgoingResponse::new(fields(response.headers()));
    let _ = outgoing.set_status_code(response.status().as_u16());
    out.set(outgoing);
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
async fn answer(req: IncomingRequest, method: Method) -> http::Response<Bytes> {
    let parts = match parts(&req, &method) {
        Ok(parts) => parts,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, "bad_request", message),
    };
    let store = match SpinStore::open() {
        Ok(store) => store,
        Err(e) => {
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
        }
    };
    // Without its variables (the admin key among them) the API must not run open.
    let vars = match Variables::read() {
        Ok(vars) => vars,
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("reading the variables: {e:?}"),
            )
        }
    };
    let root_dialect = match vars.get(ROOT_DIALECT) {
        "" => None,
        name => match name.parse() {
            Ok(dialect) => Some(dialect),
            Err(e) => {
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("variable root_dialect: {e}"),
                )
            }
        },
    };
    let queuey_apps = match QueueyApp::parse_list(vars.get(QUEUEY_APPS)) {
        Ok(apps) => apps,
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("variable queuey_apps: {e}"),
            )
        }
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
        return api.payload_too_large(&parts, limit);
    }
    let body = if has_body(&parts, declared) {
        match read_body(req, limit, declared) {
            Ok(Some(body)) => body,
            Ok(None) => return api.payload_too_large(&parts, limit),
            Err(message) => return error_response(StatusCode::BAD_REQUEST, "bad_request", message),
        }
    } else {
        Bytes::new()
    };
    api.handle(http::Request::from_parts(parts, body)).await
}

/// Method, target and headers of `req`, as `http` types: the header map is
/// built in place, each value taking its bytes without a copy.
fn parts(req: &IncomingRequest, method: &Method) -> Result<http::request::Parts, String> {
    let method = match method {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Patch => http::Method::PATCH,
        Method::Head => http::Method::HEAD,
        Method::Options => http::Method::OPTIONS,
        Method::Connect => http::Method::CONNECT,
        Method::Trace => http::Method::TRACE,
        Method::Other(other) => {
            http::Method::from_bytes(other.as_bytes()).map_err(|e| e.to_string())?
        }
    };
    let target = req.path_with_query().unwrap_or_else(|| "/".into());
    let uri = http::Uri::try_from(target).map_err(|e| e.to_string())?;
    let entries = req.headers().entries();
    let mut headers = http::HeaderMap::with_capacity(entries.len());
    for (name, value) in entries {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value =
            http::HeaderValue::from_maybe_shared(Bytes::from(value)).map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.headers = headers;
    Ok(parts)
}

/// Whether the request may carry a body. Reading even an empty one takes five
/// host calls, so a request that declares none (`content-length: 0`, or a GET,
/// HEAD, DELETE or OPTIONS with neither `content-length` nor
/// `transfer-encoding`: a body there has no meaning) is not read at all.
fn has_body(parts: &http::request::Parts, declared: Option<u64>) -> bool {
    use http::Method as M;
    match declared {
        Some(len) => len > 0,
        None => {
            parts.headers.contains_key(http::header::TRANSFER_ENCODING)
                || !matches!(parts.method, M::GET | M::HEAD | M::DELETE | M::OPTIONS)
        }
    }
}

/// The body of `req`, or `None` as soon as it is over `limit` bytes (the rest is
/// never read). The handler has nothing else to do meanwhile, so it blocks.
/// Once a declared `content-length` has arrived the body is whole: it is not
/// read again just to be told so.
fn read_body(
    req: IncomingRequest,
    limit: usize,
    declared: Option<u64>,
) -> Result<Option<Bytes>, String> {
    let taken = |()| "the request body was already taken".to_owned();
    // Dropped in reverse order: the stream before the body it belongs to.
    let incoming = req.consume().map_err(taken)?;
    let stream = incoming.stream().map_err(taken)?;
    let mut body = Vec::new();
    loop {
        // One byte over the limit is enough to know the body is too large.
        let room = (limit + 1 - body.len()) as u64;
        match stream.blocking_read(room.min(READ_SIZE)) {
            Ok(chunk) if body.len() + chunk.len() > limit => return Ok(None),
            Ok(chunk) if body.is_empty() => body = chunk,
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(Some(Bytes::from(body))),
            Err(e) => return Err(format!("reading the request body: {e:?}")),
        }
        if declared == Some(body.len() as u64) {
            return Ok(Some(Bytes::from(body)));
        }
    }
}

/// The most a single read asks the host for.
const READ_SIZE: u64 = 64 << 10;

/// Sends `response` through `out`: the headers in one host call, the body in
/// as few as it fits.
///
/// A body that fits one `blocking-write-and-flush` is written and finished
/// *before* the response is handed over: the host then gets headers, body and
/// end in one piece and wakes its connection task once, instead of once for the
/// headers and again for the body and for its end. A larger body is streamed
/// after the hand-over, when the host drains what it buffers.
fn send(out: ResponseOutparam, response: http::Response<Bytes>) {
    let (parts, body) = response.into_parts();
    let outgoing = OutgoingResponse::new(fields(&parts.headers));
    // `http::StatusCode` is always in 100..=999, which wasi:http accepts.
    let _ = outgoing.set_status_code(parts.status.as_u16());
    let Ok(sink) = outgoing.body() else { return };
    if body.len() <= WRITE_AND_FLUSH_MAX {
        write_body(&sink, &body);
        let _ = OutgoingBody::finish(sink, None);
        out.set(outgoing);
    } else {
        out.set(outgoing);
        write_body(&sink, &body);
        let _ = OutgoingBody::finish(sink, None);
    }
}

/// Writes `body` to `sink`'s stream (and drops the stream, as `finish` requires).
fn write_body(sink: &OutgoingBody, body: &[u8]) {
    if body.is_empty() {
        return;
    }
    if let Ok(stream) = sink.write() {
        // An error here means the client went away: there is no one left to tell.
        let _ = write_all(&stream, body);
    }
}

/// `headers` as wasi:http fields, in one call when the host takes them all.
fn fields(headers: &http::HeaderMap) -> Fields {
    let list: Vec<(String, Vec<u8>)> =
        headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec())).collect();
    Fields::from_list(&list).unwrap_or_else(|_| {
        // The host refuses headers it owns (e.g. `connection`): drop just those.
        let fields = Fields::new();
        for (name, value) in &list {
            let _ = fields.append(name, value);
        }
        fields
    })
}

/// The most `blocking-write-and-flush` takes in one call (wasi:io 0.2).
const WRITE_AND_FLUSH_MAX: usize = 4096;

/// Writes `bytes` to `stream` and flushes it: one host call for a body of up to
/// [`WRITE_AND_FLUSH_MAX`] bytes, chunks of what the host permits for a larger
/// one.
fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    if bytes.len() <= WRITE_AND_FLUSH_MAX {
        return stream.blocking_write_and_flush(bytes);
    }
    while !bytes.is_empty() {
        let permitted = stream.check_write()?;
        if permitted == 0 {
            stream.subscribe().block();
            continue;
        }
        let (now, rest) = bytes.split_at(bytes.len().min(permitted as usize));
        stream.write(now)?;
        bytes = rest;
    }
    stream.blocking_flush()
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
