//! Operational routes outside `/v1`: `/healthz` and `/__heartbeat__`.

use super::error::ApiError;
use super::json;
use super::router::allow;
use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

/// The key `/healthz` reads: never written, so the read is one cheap miss.
const PROBE_KEY: &str = "edgeq-healthz-probe";

/// `GET /healthz`: 200 `{"status":"ok","store":"ok"}` when one store read
/// succeeds, else 503 `{"status":"unavailable","store":"<error>"}`.
pub(crate) async fn healthz<S: Store>(
    method: &Method,
    store: &S,
) -> Result<Response<Bytes>, ApiError> {
    allow(method, "GET, HEAD")?;
    Ok(match store.get(PROBE_KEY).await {
        Ok(_) => {
            json::response(StatusCode::OK, &serde_json::json!({"status": "ok", "store": "ok"}))
        }
        Err(e) => json::response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unavailable", "store": e.to_string()}),
        ),
    })
}

/// `GET|HEAD /__heartbeat__`: 200 `OK` as text (Queuey clients probe it).
pub(crate) fn heartbeat(method: &Method) -> Result<Response<Bytes>, ApiError> {
    allow(method, "GET, HEAD")?;
    let mut res = Response::new(Bytes::from_static(b"OK"));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(res)
}
