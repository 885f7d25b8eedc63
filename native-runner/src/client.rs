//! A typed async client for the edgeq v1 HTTP API: the one HTTP client of the
//! project. The `edgeq` command-line client and the `user-events` example both go
//! through it, so what "talking to edgeq" means (URLs, headers, the error body,
//! the single-message response headers) is written down once.
//!
//! - [`Client::new`] takes the base URL of a server (`http://HOST:PORT`, optionally
//!   with a path prefix) and an optional key, sent as `Authorization: Bearer <key>`.
//!   It is built on `reqwest` without TLS, so only `http://` URLs are accepted: the
//!   error says so up front instead of at the first request.
//! - Every method is one request (except [`Client::list_queues`], which follows
//!   `next_cursor` to the last page). Nothing is retried here: whether a retry is
//!   safe depends on the caller (a publish is only safe to retry with an
//!   `Idempotency-Key`); [`Error::is_transient`] says when one may succeed.
//! - A non-2xx answer becomes [`Error::Api`] with the server's
//!   `{"error":{"code","message"}}`; an answer that does not parse becomes
//!   [`Error::Unexpected`], never a panic.
//! - Single messages travel raw (the body byte for byte, metadata in `Edgeq-*`
//!   headers), so [`Message::body`] is exactly what was sent, whatever its type.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use reqwest::{RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long connecting to the server may take before the request fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one edgeq server (cheap to clone: clones share connections).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: Option<String>,
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL given to [`Client::new`] cannot be used.
    #[error("invalid edgeq URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The request did not get an answer (connection refused, reset, timed out).
    #[error("cannot reach edgeq at {url}")]
    Transport {
        /// The URL of the request.
        url: String,
        /// The underlying failure.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status and its JSON error body.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The error code (`queue_not_found`, `stale_receipt`, ...).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    Unexpected {
        /// The URL of the request.
        url: String,
        /// The HTTP status of the answer.
        status: StatusCode,
        /// What was wrong with it.
        detail: String,
    },
}

impl Error {
    /// Whether the same request may succeed later: no answer arrived, or the server
    /// said so (`503`, or `409 idempotency_in_progress`). Only requests that are
    /// safe to repeat should be retried.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Api { status, code, .. } => {
                *status == StatusCode::SERVICE_UNAVAILABLE || transient_code(code)
            }
            Error::InvalidUrl { .. } | Error::Unexpected { .. } => false,
        }
    }

    /// The server's error code, for [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An error as the server reports it, alone or per entry of a multi-result answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// Whether the same request may succeed later (the store was unavailable or
    /// contended, or the first send with this `Idempotency-Key` has not finished).
    pub fn is_transient(&self) -> bool {
        transient_code(&self.code)
    }
}

/// The error codes the API answers with `Retry-After`.
fn transient_code(code: &str) -> bool {
    matches!(code, "store_unavailable" | "contention" | "idempotency_in_progress")
}

/// A queue: its configuration and, from [`Client::get_queue`] and
/// [`Client::list_queues`], its statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queue {
    /// Queue name.
    pub name: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// The configuration object, as `PUT /v1/queues/{q}` takes it.
    pub config: Map<String, Value>,
    /// Counts, when the server sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<QueueStats>,
}

/// The statistics of a queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueStats {
    /// Messages stored (visible, delayed or leased).
    pub messages: u64,
    /// Bytes of message bodies stored.
    pub bytes: u64,
    /// Messages leased and not yet acknowledged.
    pub in_flight: u64,
    /// Any other figure the server reports, kept so that `--json` shows it.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// The outcome of a create-or-replace (`PUT`) of a queue or an exchange.
#[derive(Debug, Clone)]
pub struct Put<T> {
    /// The object as it is now.
    pub value: T,
    /// `true` when it did not exist before (`201`), `false` when it did (`200`).
    pub created: bool,
}

/// Optional headers of a send or a publish.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// `Content-Type` of the body, kept and returned as sent.
    pub content_type: Option<String>,
    /// `Idempotency-Key`: a repeat stores nothing and answers the first id.
    pub idempotency_key: Option<String>,
    /// `Edgeq-Delay`: seconds before the message becomes visible.
    pub delay: Option<u32>,
    /// `Edgeq-TTL`: seconds the message lives.
    pub ttl: Option<u32>,
}

/// The answer to [`Client::send`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sent {
    /// The message id (the first message's when `duplicate`).
    pub id: String,
    /// `true` when the `Idempotency-Key` was seen before and nothing was stored.
    pub duplicate: bool,
}

/// One message, as pop or receive hand it out.
#[derive(Debug, Clone)]
pub struct Message {
    /// Message id.
    pub id: String,
    /// The body, byte for byte.
    pub body: Bytes,
    /// `Content-Type` as sent, when it was sent with one.
    pub content_type: Option<String>,
    /// Deliveries by receive so far (this one included).
    pub receive_count: u64,
    /// When it was sent, milliseconds since the Unix epoch.
    pub enqueued_at: u64,
    /// When it expires, milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// The receipt that acks, nacks or extends this delivery (received messages only).
    pub receipt: Option<String>,
    /// When the lease ends, milliseconds since the Unix epoch (received messages only).
    pub lease_until: Option<u64>,
}

/// Query parameters of [`Client::receive`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiveOptions {
    /// Long poll: seconds to wait for a message (0..=20).
    pub wait: Option<u32>,
    /// Seconds the message stays leased (default: the queue's).
    pub visibility_timeout: Option<u32>,
}

/// The answer to [`Client::ack`] and [`Client::nack`]: one result per receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptResults {
    /// Results in request order.
    pub results: Vec<ReceiptResult>,
    /// How many receipts succeeded.
    pub succeeded: u64,
    /// How many failed.
    pub failed: u64,
}

/// The outcome for one receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptResult {
    /// The receipt.
    pub receipt: String,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// How an exchange routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeType {
    /// A binding takes the messages whose routing key equals its key.
    Direct,
    /// A binding key is a pattern of `.`-separated words (`*` one word, `#` any).
    Topic,
    /// Every binding takes every message.
    Fanout,
}

impl ExchangeType {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeType::Direct => "direct",
            ExchangeType::Topic => "topic",
            ExchangeType::Fanout => "fanout",
        }
    }
}

impl fmt::Display for ExchangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExchangeType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "direct" => Ok(ExchangeType::Direct),
            "topic" => Ok(ExchangeType::Topic),
            "fanout" => Ok(ExchangeType::Fanout),
            _ => Err(format!("unknown exchange type {s:?} (direct, topic or fanout)")),
        }
    }
}

/// An exchange and its bindings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    /// Exchange name.
    pub name: String,
    /// How it routes.
    #[serde(rename = "type")]
    pub kind: ExchangeType,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Its bindings.
    pub bindings: Vec<Binding>,
}

/// A queue bound to an exchange with a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The bound queue.
    pub queue: String,
    /// The binding key (a pattern for topic exchanges).
    pub key: String,
}

/// The answer to [`Client::publish`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Published {
    /// How many queues stored the message.
    pub routed: u64,
    /// The outcome in each matched queue.
    pub queues: Vec<RoutedTo>,
}

/// What one matched queue did with a published message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoutedTo {
    /// The queue.
    pub queue: String,
    /// The message id, when stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Whether the `Idempotency-Key` was seen before in this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Why the queue did not store it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Client {
    /// A client of the server at `base_url` (`http://HOST:PORT`, optionally with a
    /// path prefix), sending `key` as a bearer token when given.
    pub fn new(base_url: &str, key: Option<String>) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidUrl { url: base_url.to_owned(), reason };
        let base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        match base.scheme() {
            "http" => {}
            "https" => return Err(invalid("https is not supported by this build (no TLS)".into())),
            other => return Err(invalid(format!("scheme {other:?} is not http"))),
        }
        if base.host().is_none() {
            return Err(invalid("no host".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Client { http, base, key })
    }

    /// Every queue whose name starts with `prefix` (all with `None`), with its
    /// statistics, in creation order.
    pub async fn list_queues(&self, prefix: Option<&str>) -> Result<Vec<Queue>, Error> {
        #[derive(Deserialize)]
        struct Page {
            queues: Vec<Queue>,
            next_cursor: Option<String>,
        }
        let mut queues = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(&["v1", "queues"]);
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("details", "true").append_pair("limit", "1000");
                if let Some(prefix) = prefix {
                    query.append_pair("prefix", prefix);
                }
                if let Some(cursor) = &cursor {
                    query.append_pair("cursor", cursor);
                }
            }
            let page: Page = self.json(self.request(Method::GET, url)).await?;
            queues.extend(page.queues);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(queues),
            }
        }
    }

    /// Creates queue `name` with `config` (`None`: every default), or replaces the
    /// whole configuration of an existing one.
    pub async fn create_queue(
        &self,
        name: &str,
        config: Option<&Map<String, Value>>,
    ) -> Result<Put<Queue>, Error> {
        let mut request = self.request(Method::PUT, self.url(&["v1", "queues", name]));
        if let Some(config) = config {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Value::Object(config.clone()).to_string());
        }
        self.put(request).await
    }

    /// Queue `name` with its statistics.
    pub async fn get_queue(&self, name: &str) -> Result<Queue, Error> {
        self.json(self.request(Method::GET, self.url(&["v1", "queues", name]))).await
    }

    /// Deletes queue `name` and its messages; with `if_empty`, only when it holds none.
    pub async fn delete_queue(&self, name: &str, if_empty: bool) -> Result<(), Error> {
        let mut url = self.url(&["v1", "queues", name]);
        if if_empty {
            url.query_pairs_mut().append_pair("if_empty", "true");
        }
        self.send_request(self.request(Method::DELETE, url)).await.map(drop)
    }

    /// Drops every message of queue `name`; answers how many.
    pub async fn purge_queue(&self, name: &str) -> Result<u64, Error> {
        #[derive(Deserialize)]
        struct Purged {
            purged: u64,
        }
        let url = self.url(&["v1", "queues", name, "purge"]);
        let purged: Purged = self.json(self.request(Method::POST, url)).await?;
        Ok(purged.purged)
    }

    /// Sends one message to `queue`.
    pub async fn send(
        &self,
        queue: &str,
        body: Bytes,
        options: &SendOptions,
    ) -> Result<Sent, Error> {
        let url = self.url(&["v1", "queues", queue, "messages"]);
        self.json(with_send_options(self.request(Method::POST, url), options).body(body)).await
    }

    /// Takes the oldest visible message of `queue` for good (at-most-once);
    /// `None` when there is none.
    pub async fn pop(&self, queue: &str) -> Result<Option<Message>, Error> {
        let url = self.url(&["v1", "queues", queue, "pop"]);
        self.message(self.request(Method::POST, url)).await
    }

    /// Leases the oldest visible message of `queue` (at-least-once): it comes back
    /// unless acknowledged before its lease ends. `None` when none arrived.
    pub async fn receive(
        &self,
        queue: &str,
        options: ReceiveOptions,
    ) -> Result<Option<Message>, Error> {
        let mut url = self.url(&["v1", "queues", queue, "receive"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(wait) = options.wait {
                query.append_pair("wait", &wait.to_string());
            }
            if let Some(timeout) = options.visibility_timeout {
                query.append_pair("visibility_timeout", &timeout.to_string());
            }
        }
        self.message(self.request(Method::POST, url)).await
    }

    /// Acknowledges (deletes) the messages leased under `receipts`.
    pub async fn ack(&self, queue: &str, receipts: &[String]) -> Result<ReceiptResults, Error> {
        let body = serde_json::json!({ "receipts": receipts });
        self.receipts(queue, "ack", body).await
    }

    /// Gives the messages leased under `receipts` back, visible again after
    /// `delay` seconds (`None`: at once).
    pub async fn nack(
        &self,
        queue: &str,
        receipts: &[String],
        delay: Option<u32>,
    ) -> Result<ReceiptResults, Error> {
        let mut body = serde_json::json!({ "receipts": receipts });
        if let Some(delay) = delay {
            body["delay"] = delay.into();
        }
        self.receipts(queue, "nack", body).await
    }

    /// Creates exchange `name` of type `kind`, or confirms that it exists with that
    /// type (`409 exchange_type_mismatch` when it has another).
    pub async fn put_exchange(
        &self,
        name: &str,
        kind: ExchangeType,
    ) -> Result<Put<Exchange>, Error> {
        let request = self
            .request(Method::PUT, self.url(&["v1", "exchanges", name]))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::json!({ "type": kind }).to_string());
        self.put(request).await
    }

    /// Exchange `name` with its bindings.
    pub async fn get_exchange(&self, name: &str) -> Result<Exchange, Error> {
        self.json(self.request(Method::GET, self.url(&["v1", "exchanges", name]))).await
    }

    /// Deletes exchange `name` and its bindings.
    pub async fn delete_exchange(&self, name: &str) -> Result<(), Error> {
        let url = self.url(&["v1", "exchanges", name]);
        self.send_request(self.request(Method::DELETE, url)).await.map(drop)
    }

    /// Binds `queue` to `exchange` with `key` (idempotent).
    pub async fn bind(&self, exchange: &str, queue: &str, key: &str) -> Result<(), Error> {
        self.binding(Method::PUT, exchange, queue, key).await
    }

    /// Removes the binding of `queue` to `exchange` with `key` (idempotent).
    pub async fn unbind(&self, exchange: &str, queue: &str, key: &str) -> Result<(), Error> {
        self.binding(Method::DELETE, exchange, queue, key).await
    }

    /// Publishes one message to `exchange` with `routing_key`: every bound queue
    /// whose binding matches stores it once. Per-queue failures are in the answer,
    /// not an error.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
        options: &SendOptions,
    ) -> Result<Published, Error> {
        let url = self.url(&["v1", "exchanges", exchange, "publish"]);
        let request = with_send_options(self.request(Method::POST, url), options)
            .header("edgeq-routing-key", routing_key)
            .body(body);
        self.json(request).await
    }

    /// The URL of the path made of `segments` under the base URL, each segment
    /// percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        // `new` refused URLs that cannot be a base, the only case this fails.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request with the bearer key when there is one.
    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends `request`; a non-2xx answer becomes an error.
    async fn send_request(&self, request: RequestBuilder) -> Result<Response, Error> {
        let request = request
            .build()
            .map_err(|e| Error::InvalidUrl { url: self.base.to_string(), reason: e.to_string() })?;
        let url = request.url().to_string();
        let response =
            self.http.execute(request).await.map_err(|source| transport(&url, source))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        #[derive(Deserialize)]
        struct ErrorBody {
            error: ApiError,
        }
        let body = response.bytes().await.map_err(|source| transport(&url, source))?;
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => {
                Err(Error::Api { status, code: error.code, message: error.message })
            }
            Err(_) => Err(Error::Unexpected {
                url,
                status,
                detail: format!("not an error body: {}", String::from_utf8_lossy(&body)),
            }),
        }
    }

    /// Sends `request` and parses its JSON answer.
    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, Error> {
        Self::parse_json(self.send_request(request).await?).await
    }

    /// Sends a `PUT` that answers `201` when it created the object.
    async fn put<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<Put<T>, Error> {
        let response = self.send_request(request).await?;
        let created = response.status() == StatusCode::CREATED;
        Ok(Put { value: Self::parse_json(response).await?, created })
    }

    async fn parse_json<T: DeserializeOwned>(response: Response) -> Result<T, Error> {
        let url = response.url().to_string();
        let status = response.status();
        let body = response.bytes().await.map_err(|source| transport(&url, source))?;
        serde_json::from_slice(&body).map_err(|e| Error::Unexpected {
            url,
            status,
            detail: format!("{e}: {}", String::from_utf8_lossy(&body)),
        })
    }

    /// Sends a pop or receive and reads the raw single-message answer (`204`: none).
    async fn message(&self, request: RequestBuilder) -> Result<Option<Message>, Error> {
        let response = self.send_request(request).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let url = response.url().to_string();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|source| transport(&url, source))?;
        message_from(&headers, body).map(Some).map_err(|detail| Error::Unexpected {
            url,
            status,
            detail,
        })
    }

    async fn receipts(
        &self,
        queue: &str,
        action: &str,
        body: Value,
    ) -> Result<ReceiptResults, Error> {
        let request = self
            .request(Method::POST, self.url(&["v1", "queues", queue, action]))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.json(request).await
    }

    async fn binding(
        &self,
        method: Method,
        exchange: &str,
        queue: &str,
        key: &str,
    ) -> Result<(), Error> {
        let mut url = self.url(&["v1", "exchanges", exchange, "bindings", queue]);
        url.query_pairs_mut().append_pair("key", key);
        self.send_request(self.request(method, url)).await.map(drop)
    }
}

/// A request that got no answer; the URL is said once, by [`Error::Transport`].
fn transport(url: &str, source: reqwest::Error) -> Error {
    Error::Transport { url: url.to_owned(), source: source.without_url() }
}

/// Adds the headers of `options` to a send or publish request.
fn with_send_options(mut request: RequestBuilder, options: &SendOptions) -> RequestBuilder {
    if let Some(content_type) = &options.content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    if let Some(key) = &options.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    if let Some(delay) = options.delay {
        request = request.header("edgeq-delay", delay);
    }
    if let Some(ttl) = options.ttl {
        request = request.header("edgeq-ttl", ttl);
    }
    request
}

/// Reads a raw single-message response.
fn message_from(headers: &HeaderMap, body: Bytes) -> Result<Message, String> {
    let text = |name: &str| -> Result<Option<String>, String> {
        headers
            .get(name)
            .map(|v| v.to_str().map(str::to_owned).map_err(|_| format!("{name} is not text")))
            .transpose()
    };
    let number = |name: &str| -> Result<Option<u64>, String> {
        text(name)?
            .map(|v| v.parse().map_err(|_| format!("{name} is not a number: {v:?}")))
            .transpose()
    };
    let required = |name: &str| format!("no {name} header");
    Ok(Message {
        id: text("edgeq-message-id")?.ok_or_else(|| required("Edgeq-Message-Id"))?,
        content_type: text("content-type")?,
        receive_count: number("edgeq-receive-count")?
            .ok_or_else(|| required("Edgeq-Receive-Count"))?,
        enqueued_at: number("edgeq-enqueued-at")?.ok_or_else(|| required("Edgeq-Enqueued-At"))?,
        expires_at: number("edgeq-expires-at")?.ok_or_else(|| required("Edgeq-Expires-At"))?,
        receipt: text("edgeq-receipt")?,
        lease_until: number("edgeq-lease-until")?,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        assert!(Client::new("http://127.0.0.1:8080", None).is_ok());
        for bad in
            ["https://edgeq.example", "ftp://host", "127.0.0.1:8080", "http://", "mailto:x@y"]
        {
            let error = Client::new(bad, None).unwrap_err();
            assert!(matches!(error, Error::InvalidUrl { .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn paths_are_percent_encoded_under_the_base_path() {
        let client = Client::new("http://h:1/prefix/?x=1", None).unwrap();
        assert_eq!(
            client.url(&["v1", "queues", "a b/c"]).as_str(),
            "http://h:1/prefix/v1/queues/a%20b%2Fc"
        );
        let client = Client::new("http://h:1", None).unwrap();
        assert_eq!(client.url(&["v1", "queues"]).as_str(), "http://h:1/v1/queues");
    }

    #[test]
    fn a_message_needs_its_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("edgeq-message-id", "m1".parse().unwrap());
        headers.insert("edgeq-receive-count", "2".parse().unwrap());
        headers.insert("edgeq-enqueued-at", "10".parse().unwrap());
        headers.insert("edgeq-expires-at", "20".parse().unwrap());
        headers.insert("edgeq-receipt", "r1.0.1.1.0000abcd".parse().unwrap());
        let message = message_from(&headers, Bytes::from_static(b"hi")).unwrap();
        assert_eq!(message.id, "m1");
        assert_eq!(message.receive_count, 2);
        assert_eq!(message.receipt.as_deref(), Some("r1.0.1.1.0000abcd"));
        assert_eq!(message.lease_until, None);
        assert_eq!(message.content_type, None);

        headers.insert("edgeq-receive-count", "two".parse().unwrap());
        assert!(message_from(&headers, Bytes::new()).unwrap_err().contains("not a number"));
        headers.remove("edgeq-message-id");
        assert!(message_from(&headers, Bytes::new()).unwrap_err().contains("Edgeq-Message-Id"));
    }
}
