//! The static pages: the dashboard at `/` (`web/index.html`, `web/app.js`), the
//! API page at `/docs` (`web/docs.html`, `web/docs.js`, which render
//! `/openapi.json`) and their style sheet (`web/app.css`).
//!
//! They are compiled into the binary and the component (`include_str!`): no
//! build step, no CDN, nothing to deploy beside edgeq. They are open routes (a
//! page holds no data); everything they show comes from the v1 API with the key
//! the user types in, kept in the tab's `sessionStorage`. They insert data with
//! `textContent` only, so a message body or queue name can never become markup,
//! and the `Content-Security-Policy` allows scripts from these files only.

use super::error::ApiError;
use super::router::allow;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const DOCS_HTML: &str = include_str!("../../web/docs.html");
const DOCS_JS: &str = include_str!("../../web/docs.js");

/// Whether `path` (a route-table pattern) is one of these files.
pub(crate) fn serves(path: &str) -> bool {
    matches!(path, "/" | "/docs" | "/app.js" | "/docs.js" | "/app.css")
}

/// `GET` of one static file, by its path segment (`""` is `/`).
pub(crate) fn page(method: &Method, seg: &str) -> Result<Response<Bytes>, ApiError> {
    let (body, content_type) = match seg {
        "" => (INDEX_HTML, "text/html; charset=utf-8"),
        "docs" => (DOCS_HTML, "text/html; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "docs.js" => (DOCS_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::no_route(seg)),
    };
    allow(method, "GET, HEAD").map(|()| {
        let mut res = with_type(Bytes::from_static(body.as_bytes()), content_type);
        // Scripts, styles and fetches from this origin only (no inline script), no framing.
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
        );
        res
    })
}

/// A 200 with `body` of `content_type`.
pub(crate) fn with_type(body: Bytes, content_type: &'static str) -> Response<Bytes> {
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::OK;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}
