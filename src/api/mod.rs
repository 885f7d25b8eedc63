//! Transport-agnostic HTTP: one `Api::handle` for every host.
//!
//! Hosts read the request body with the limit [`Api::body_limit`] gives them
//! (refusing before buffering with [`Api::payload_too_large`]), call
//! [`Api::handle`], call `Store::flush` when [`Api::handle`] says the request
//! wrote, and send the response.

use crate::engine::{Engine, Env};
use crate::store::Store;
use bytes::Bytes;
use http::{Request, Response};

/// Options of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Namespace used by the v1 routes.
    pub namespace: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
        }
    }
}

/// The HTTP front of an [`Engine`].
pub struct Api<S, E> {
    engine: Engine<S, E>,
    config: ApiConfig,
}

impl<S: Store, E: Env> Api<S, E> {
    /// Serves `engine` with `config`.
    pub fn new(engine: Engine<S, E>, config: ApiConfig) -> Self {
        Self { engine, config }
    }

    /// The engine behind this API.
    pub fn engine(&self) -> &Engine<S, E> {
        &self.engine
    }

    /// Most body bytes a request to `parts` may carry; hosts refuse more before
    /// buffering it.
    pub fn body_limit(&self, _parts: &http::request::Parts) -> usize {
        let _ = &self.config;
        crate::model::MAX_BODY_LEN
    }

    /// The response for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Response<Bytes> {
        let body = format!(
            "{{\"error\":{{\"code\":\"payload_too_large\",\"message\":\"request body is over {limit} bytes\"}}}}"
        );
        Response::builder()
            .status(413)
            .header("content-type", "application/json")
            .body(Bytes::from(body))
            .unwrap_or_default()
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Bytes>) -> Response<Bytes> {
        let _ = req;
        Response::builder()
            .status(501)
            .body(Bytes::new())
            .unwrap_or_default()
    }
}
