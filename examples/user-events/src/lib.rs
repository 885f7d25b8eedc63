//! Seed 001 (a Flask API publishing domain events through RabbitMQ) on edgeq: a
//! user API whose four routes each publish one event through an edgeq exchange,
//! with [`edgeq_native::client`], the same client the `edgeq` CLI uses.
//!
//! | route | answer | event |
//! |---|---|---|
//! | `POST /users` `{"email","first_name","last_name"}` | `201` + the user; `409` if it exists | `user.created` |
//! | `GET /users/{email}` | `200` + the user; `404` | `user.fetched` |
//! | `PATCH /users/{email}` `{"first_name"?, "last_name"?}` | `200` + the user; `404` | `user.updated` |
//! | `DELETE /users/{email}` | `204`; `404` | `user.deleted` |
//!
//! Each event goes to exchange [`EXCHANGE`] (direct) with routing key
//! [`ROUTING_KEY`], which [`declare`] binds to queue [`QUEUE`]; its body is
//! `{"created_at": <RFC 3339>, "queue": "user", "event": "user.created", "context": <the user>}`.
//!
//! **Publish first, then apply.** A call checks its input (bad payload: `400`,
//! nothing published), publishes its event, and only once edgeq has stored it
//! applies the change and answers. When edgeq is down or refuses the publish, the
//! call answers `503` and nothing changed. Publishing first needs no rollback and
//! never shows another call a change that might still be undone; the other
//! order would need an undo per route. One lock held from the check to the apply
//! keeps the events in the order of the changes (calls run one at a time: the
//! price of that order in a single-process example).
//!
//! **Nothing twice.** Every call publishes with its own `Idempotency-Key`, and
//! retries a transient failure (no answer, `503`) with the same key, so edgeq
//! stores the event once however many attempts reached it. What no HTTP service
//! can rule out: if edgeq stored the event but every answer was lost, the call
//! answers `503` while its event exists (once). A consumer may rely on "no event
//! without a `2xx` before it" only up to that case.
//!
//! Each call runs in its own task, so a client that hangs up mid-call cannot cut
//! it between the publish and the apply; [`serve`] waits for the calls in flight
//! before it returns.

use bytes::Bytes;
use edgeq_native::client::{self, Client, ExchangeType, SendOptions};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};

/// The exchange events are published to.
pub const EXCHANGE: &str = "my-exchange";
/// The queue [`declare`] binds to [`EXCHANGE`].
pub const QUEUE: &str = "user";
/// The routing key of every event and of the binding.
pub const ROUTING_KEY: &str = "user";

/// Attempts per publish (the first and the retries of transient failures).
const PUBLISH_ATTEMPTS: u32 = 3;
/// Pause before the first retry, doubled before each next one.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Largest request body read.
const BODY_LIMIT: usize = 64 * 1024;
/// Calls in flight at most: each holds a permit of [`App::calls`].
const MAX_CALLS: u32 = 1 << 16;

/// A user, as stored, answered and put in events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The key: `GET /users/{email}`.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
}

/// The body of `PATCH /users/{email}`: the fields to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    first_name: Option<String>,
    last_name: Option<String>,
}

/// Declares, idempotently, what the events need: the direct exchange, the queue
/// (created with default settings only when missing, so an operator's settings
/// are kept) and the binding.
pub async fn declare(client: &Client) -> Result<(), client::Error> {
    client.put_exchange(EXCHANGE, ExchangeType::Direct).await?;
    match client.get_queue(QUEUE).await {
        Ok(_) => {}
        Err(e) if e.code() == Some("queue_not_found") => {
            client.create_queue(QUEUE, None).await?;
        }
        Err(e) => return Err(e),
    }
    client.bind(EXCHANGE, QUEUE, ROUTING_KEY).await
}

/// The service: users in memory and the client that publishes their events.
#[derive(Debug)]
pub struct App {
    users: Mutex<HashMap<String, User>>,
    client: Client,
    calls: Arc<Semaphore>,
}

impl App {
    /// A service with no users, publishing through `client`.
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(App {
            users: Mutex::new(HashMap::new()),
            client,
            calls: Arc::new(Semaphore::new(MAX_CALLS as usize)),
        })
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for the calls
/// in flight and returns.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted?,
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.call(request).await) }
            });
            // A connection that fails (the client went away) ends here; its call,
            // if any, runs on in its own task.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
    drop(listener);
    // Every call holds a permit: taking them all waits for the last one.
    let _all = app.calls.acquire_many(MAX_CALLS).await;
    Ok(())
}

/// A refused call: its status and `{"error":{"code","message"}}`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal { status, code, message: message.into() }
    }
}

type Answer = Result<Response<Full<Bytes>>, Refusal>;

impl App {
    /// Runs one call in its own task (see the module doc).
    async fn call(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let Ok(permit) = self.calls.clone().try_acquire_owned() else {
            return refused(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the service is stopping",
            ));
        };
        let task = tokio::spawn(async move {
            let _permit = permit;
            self.route(request).await.unwrap_or_else(refused)
        });
        task.await.unwrap_or_else(|e| {
            refused(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
        })
    }

    async fn route(&self, request: Request<Incoming>) -> Answer {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        let email = match path.strip_prefix("/users") {
            Some("") => None,
            Some(rest) => match rest.strip_prefix('/') {
                Some(email) if !email.is_empty() && !email.contains('/') => Some(email),
                _ => return Err(not_found(path)),
            },
            None => return Err(not_found(path)),
        };
        let allowed = if email.is_some() { "GET, PATCH, DELETE" } else { "POST" };
        let email = email
            .map(|e| percent_encoding::percent_decode_str(e).decode_utf8())
            .transpose()
            .map_err(|_| {
                Refusal::new(StatusCode::BAD_REQUEST, "invalid_path", "the email is not UTF-8")
            })?;
        match (&parts.method, email) {
            (&Method::POST, None) => self.create(read_body(body).await?).await,
            (&Method::GET, Some(email)) => self.fetch(&email).await,
            (&Method::PATCH, Some(email)) => self.update(&email, read_body(body).await?).await,
            (&Method::DELETE, Some(email)) => self.delete(&email).await,
            (method, _) => Err(Refusal::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not served here; allowed: {allowed}"),
            )),
        }
    }

    async fn create(&self, body: Bytes) -> Answer {
        let user: User = parse(&body)?;
        check_email(&user.email)?;
        let mut users = self.users.lock().await;
        if users.contains_key(&user.email) {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "user_exists",
                format!("user {} exists", user.email),
            ));
        }
        self.publish("user.created", &user).await?;
        users.insert(user.email.clone(), user.clone());
        Ok(json_response(StatusCode::CREATED, &user))
    }

    async fn fetch(&self, email: &str) -> Answer {
        let users = self.users.lock().await;
        let user = users.get(email).ok_or_else(|| no_user(email))?;
        self.publish("user.fetched", user).await?;
        Ok(json_response(StatusCode::OK, user))
    }

    async fn update(&self, email: &str, body: Bytes) -> Answer {
        let patch: UserPatch = parse(&body)?;
        let mut users = self.users.lock().await;
        let mut user = users.get(email).ok_or_else(|| no_user(email))?.clone();
        if let Some(first_name) = patch.first_name {
            user.first_name = first_name;
        }
        if let Some(last_name) = patch.last_name {
            user.last_name = last_name;
        }
        self.publish("user.updated", &user).await?;
        users.insert(user.email.clone(), user.clone());
        Ok(json_response(StatusCode::OK, &user))
    }

    async fn delete(&self, email: &str) -> Answer {
        let mut users = self.users.lock().await;
        let user = users.get(email).ok_or_else(|| no_user(email))?;
        self.publish("user.deleted", user).await?;
        users.remove(email);
        Ok(empty_response(StatusCode::NO_CONTENT))
    }

    /// Publishes `event` about `user`, retrying transient failures with the same
    /// `Idempotency-Key`; any failure is a `503`.
    async fn publish(&self, event: &str, user: &User) -> Result<(), Refusal> {
        let unavailable = |reason: String| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "events_unavailable",
                format!("cannot publish {event}: {reason}; nothing was changed"),
            )
        };
        let body = Bytes::from(
            json!({
                "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "queue": QUEUE,
                "event": event,
                "context": user,
            })
            .to_string(),
        );
        let options = SendOptions {
            content_type: Some("application/json".into()),
            idempotency_key: Some(call_key().map_err(unavailable)?),
            ..SendOptions::default()
        };
        let mut pause = RETRY_PAUSE;
        let mut attempt = 1;
        loop {
            let (reason, transient) =
                match self.client.publish(EXCHANGE, ROUTING_KEY, body.clone(), &options).await {
                    Ok(published) => {
                        let failed: Vec<_> =
                            published.queues.iter().filter_map(|q| q.error.as_ref()).collect();
                        match (published.routed, failed.first()) {
                            (1.., None) => return Ok(()),
                            (0, None) => (format!("no queue is bound to {EXCHANGE}"), false),
                            (_, Some(error)) => (
                                format!("a queue refused it: {}", error.message),
                                failed.iter().all(|e| e.is_transient()),
                            ),
                        }
                    }
                    Err(e) => (e.to_string(), e.is_transient()),
                };
            if !transient || attempt == PUBLISH_ATTEMPTS {
                return Err(unavailable(reason));
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
            attempt += 1;
        }
    }
}

/// A fresh `Idempotency-Key` for one call.
fn call_key() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for its key: {e}"))?;
    Ok(bytes.iter().fold("user-events-".to_owned(), |key, b| key + &format!("{b:02x}")))
}

async fn read_body(body: Incoming) -> Result<Bytes, Refusal> {
    match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {BODY_LIMIT} bytes"),
        )),
        Err(e) => Err(Refusal::new(StatusCode::BAD_REQUEST, "bad_body", e.to_string())),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()))
}

/// An email is the key in a path segment: it needs an `@` and no whitespace.
fn check_email(email: &str) -> Result<(), Refusal> {
    if email.contains('@') && !email.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_email",
            format!("{email:?} is not an email address"),
        ))
    }
}

fn no_user(email: &str) -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, "user_not_found", format!("no user {email}"))
}

fn not_found(path: &str) -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, "not_found", format!("no route {path}"))
}

fn refused(refusal: Refusal) -> Response<Full<Bytes>> {
    json_response(
        refusal.status,
        &json!({"error": {"code": refusal.code, "message": refusal.message}}),
    )
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let mut response = empty_response(status);
    // Serializing a `User` or a `json!` value cannot fail. The newline is for curl.
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    *response.body_mut() = Full::new(Bytes::from(body));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn empty_response(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
