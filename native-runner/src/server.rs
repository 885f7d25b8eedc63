//! The HTTP server: an accept loop in the shape of mini-redis's `server.rs`.
//!
//! - [`serve`] takes an already bound listener (tests bind port 0) and a shutdown
//!   future. A semaphore caps open connections: the loop waits for a permit before
//!   it accepts, so past the cap new clients wait in the kernel's backlog.
//! - Each connection is served by hyper 1.x over HTTP/1.1 with keep-alive.
//! - A listener may serve a dialect at `/` ([`ServeOptions::root_dialect`]): each of
//!   its requests carries that [`Dialect`] in its extensions, where the `Api` looks.
//! - Each request: the body limit comes from [`Api::body_limit`]; a declared
//!   `Content-Length` over it is answered 413 without reading a byte of the body,
//!   and a body that streams past it (chunked) is cut off and answered 413 too, so no
//!   more than the limit is ever buffered. A body that fails to arrive is a 400; one
//!   that does not arrive whole within [`ServeOptions::body_read_timeout`] is a 408,
//!   and the connection is closed.
//! - The request then runs in its own task, so a client that hangs up mid-request
//!   cannot abandon the engine between two store calls, and a panic becomes a 500
//!   instead of a dropped connection.
//! - After [`Api::handle`], a request whose method may write (anything but GET,
//!   HEAD and OPTIONS) waits for [`Store::flush`] before its response is sent; if the
//!   flush fails the answer is a 503, because the write may not be durable.
//! - Shutdown: when the shutdown future completes, the listener is closed, every
//!   connection is told to finish (hyper's `graceful_shutdown`: idle keep-alive
//!   connections close at once, busy ones after their current response), and
//!   [`serve`] returns once every connection and request task has ended. Long
//!   polls end early only if the `Api`'s environment hears the same signal
//!   ([`SystemEnv::stopped_by`](crate::SystemEnv::stopped_by), as `edgeq serve`
//!   sets it); otherwise shutdown waits for them (up to 20 s).

use bytes::Bytes;
use edgeq::api::{error_response, Api, Dialect};
use edgeq::engine::Env;
use edgeq::store::Store;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, error, warn};

/// Options of [`serve_with`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most connections open at once (at least 1). Default 1024.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers. Default 30 s.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's whole body, counted from the
    /// end of its headers; past it the answer is `408 request_timeout` and the
    /// connection is closed. Default 30 s.
    pub body_read_timeout: Duration,
    /// The dialect this listener serves at `/`, over the `Api`'s own choice.
    /// Default `None` (the `Api`'s configuration decides).
    pub root_dialect: Option<Dialect>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            root_dialect: None,
        }
    }
}

/// Serves `api` on `listener` with [`ServeOptions::default`] until `shutdown`
/// completes, then finishes in-flight requests and returns.
///
/// Accept errors (out of file descriptors, aborted handshakes) are logged and
/// retried with a capped backoff rather than ending the server, so this returns
/// `Ok(())` after a graceful shutdown.
pub async fn serve<S: Store + 'static, E: Env + 'static>(
    listener: TcpListener,
    api: Arc<Api<S, E>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(listener, api, ServeOptions::default(), shutdown).await
}

/// [`serve`] with explicit [`ServeOptions`].
pub async fn serve_with<S: Store + 'static, E: Env + 'static>(
    listener: TcpListener,
    api: Arc<Api<S, E>>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let permits = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let limit = Arc::new(Semaphore::new(permits));
    // `true` tells every connection to shut down gracefully.
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection and request task holds a clone; `recv` returns `None` once
    // all are gone (mini-redis's `shutdown_complete` channel).
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let http = Http { header_read_timeout: options.header_read_timeout };
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::ZERO;
                accepted
            }
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(1), Duration::from_secs(1));
                error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                drop(permit);
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = Ctx {
            api: api.clone(),
            peer,
            root: options.root_dialect,
            body_read_timeout: options.body_read_timeout,
            _done: done_tx.clone(),
        };
        tokio::spawn(connection(ctx, http.clone(), stream, permit, stop_rx.clone()));
    }

    // Stop accepting, then tell the connections and wait for them.
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    let _ = done_rx.recv().await;
    Ok(())
}

/// Per-connection hyper settings.
#[derive(Debug, Clone)]
struct Http {
    header_read_timeout: Duration,
}

/// What a connection and its request tasks share. Field order matters: `api` drops
/// before `_done`, so when [`serve_with`] sees the last `_done` go, no task holds the
/// `Api` any more and its own reference is the last one (dropping the store then).
struct Ctx<S, E> {
    api: Arc<Api<S, E>>,
    peer: SocketAddr,
    root: Option<Dialect>,
    body_read_timeout: Duration,
    _done: mpsc::Sender<()>,
}

async fn connection<S: Store + 'static, E: Env + 'static>(
    ctx: Ctx<S, E>,
    http: Http,
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = Arc::new(ctx);
    let peer = ctx.peer;
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(respond(ctx, req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = async { drop(stop.wait_for(|stop| *stop).await) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "connection ended with an error");
    }
    drop(permit);
}

/// Answers one request; logs it at debug level.
async fn respond<S: Store + 'static, E: Env + 'static>(
    ctx: Arc<Ctx<S, E>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let peer = ctx.peer;
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (mut parts, body) = req.into_parts();
    if let Some(dialect) = ctx.root {
        parts.extensions.insert(dialect);
    }
    let limit = ctx.api.body_limit(&parts);
    let res = match collect_limited(body, limit, ctx.body_read_timeout).await {
        Err(BodyError::TooLarge) => ctx.api.payload_too_large(&parts, limit),
        Err(BodyError::Read(e)) => error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("could not read the request body: {e}"),
        ),
        Err(BodyError::TimedOut(after)) => {
            let mut res = error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request body did not arrive within {} s", after.as_secs_f64()),
            );
            // The rest of the body may still come: the connection cannot be reused.
            res.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
        Ok(body) => {
            let req = Request::from_parts(parts, body);
            // The task owns a `Ctx` clone: `serve_with` waits for it too.
            let task_ctx = ctx.clone();
            let task = tokio::spawn(async move { handle_durably(&task_ctx.api, req).await });
            match task.await {
                Ok(res) => res,
                Err(e) => {
                    error!(%method, path, error = %e, "request handler panicked");
                    error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "the request failed unexpectedly",
                    )
                }
            }
        }
    };
    debug!(
        %peer,
        %method,
        path,
        status = res.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    res.map(Full::new)
}

/// [`Api::handle`], then, for a method that may write, the durability barrier.
async fn handle_durably<S: Store, E: Env>(api: &Api<S, E>, req: Request<Bytes>) -> Response<Bytes> {
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let res = api.handle(req).await;
    if writes {
        if let Err(e) = api.engine().store().flush().await {
            warn!(error = %e, "flush failed; answering 503");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the write may not be durable: {e}"),
            );
        }
    }
    res
}

/// Why a body could not be collected.
#[derive(Debug)]
enum BodyError {
    /// Over the limit (declared or streamed).
    TooLarge,
    /// The body failed to arrive.
    Read(String),
    /// The body did not arrive whole within this long.
    TimedOut(Duration),
}

/// Collects `body` into one buffer of at most `limit` bytes, refusing a declared
/// size over the limit before reading anything, and giving up when the whole body
/// has not arrived within `timeout`.
async fn collect_limited<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_elapsed) => Err(BodyError::TimedOut(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Frame;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A body of `chunks` chunks of `size` bytes with no declared length, like a
    /// chunked upload; `fail` makes it end in an error instead.
    struct Chunks {
        chunks: usize,
        size: usize,
        fail: bool,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            if self.chunks == 0 {
                return Poll::Ready(if self.fail {
                    Some(Err(io::Error::other("peer went away")))
                } else {
                    None
                });
            }
            self.chunks -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; self.size])))))
        }
    }

    /// A body timeout no test body comes near.
    const NO_HURRY: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn bodies_are_limited_declared_or_streamed() {
        let full = |n: usize| Full::new(Bytes::from(vec![0u8; n]));
        let collect = |body, limit| collect_limited(body, limit, NO_HURRY);
        assert_eq!(collect(full(10), 10).await.unwrap().len(), 10);
        assert!(matches!(collect(full(11), 10).await, Err(BodyError::TooLarge)));
        let streamed = |chunks, fail| Chunks { chunks, size: 4, fail };
        let collect = |body, limit| collect_limited(body, limit, NO_HURRY);
        assert_eq!(collect(streamed(3, false), 12).await.unwrap().len(), 12);
        assert!(matches!(collect(streamed(4, false), 12).await, Err(BodyError::TooLarge)));
        assert!(matches!(collect(streamed(1, true), 12).await, Err(BodyError::Read(_))));
    }

    /// A body that declares `declared` bytes, delivers `sent` of them, then
    /// stalls for good (a client that stopped sending mid-body).
    struct Stalls {
        declared: u64,
        sent: Option<usize>,
    }

    impl Body for Stalls {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            match self.sent.take() {
                Some(n) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n]))))),
                // Never woken: the rest never comes.
                None => Poll::Pending,
            }
        }

        fn size_hint(&self) -> hyper::body::SizeHint {
            hyper::body::SizeHint::with_exact(self.declared)
        }
    }

    /// The stalled body ends in `TimedOut` whatever the bound; the test's runtime
    /// has no paused clock (tokio's `test-util` is not enabled), so the bound is a
    /// few real milliseconds, and nothing asserts on how long anything took.
    #[tokio::test]
    async fn a_body_that_stalls_times_out() {
        let bound = Duration::from_millis(5);
        let stalled = collect_limited(Stalls { declared: 10, sent: Some(3) }, 64, bound).await;
        assert!(
            matches!(stalled, Err(BodyError::TimedOut(after)) if after == bound),
            "{stalled:?}"
        );
        let silent = collect_limited(Stalls { declared: 10, sent: None }, 64, bound).await;
        assert!(matches!(silent, Err(BodyError::TimedOut(_))), "{silent:?}");
        // The size check still comes first, without waiting for anything.
        let too_large = collect_limited(Stalls { declared: 65, sent: None }, 64, bound).await;
        assert!(matches!(too_large, Err(BodyError::TooLarge)), "{too_large:?}");
        // A body that is all there is unaffected by a tight bound.
        let whole = collect_limited(Full::new(Bytes::from_static(b"abc")), 64, bound).await;
        assert_eq!(whole.unwrap(), "abc");
    }

    /// Over real TCP: a send whose body stops short of its `Content-Length` is
    /// answered `408 request_timeout`, the connection is closed, and nothing is
    /// stored.
    #[tokio::test]
    async fn a_stalled_body_is_408_and_closes_the_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let store = crate::NativeStore::open(&crate::StoreSpec::Memory).unwrap();
        let api = Arc::new(Api::new(
            edgeq::engine::Engine::new(store, crate::SystemEnv::default()),
            edgeq::api::ApiConfig::default(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let options =
            ServeOptions { body_read_timeout: Duration::from_millis(50), ..Default::default() };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_with(listener, api, options, async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        let url = format!("http://{addr}/v1/queues/w");
        let created = http.put(&url).body("{}").send().await.unwrap();
        assert!(created.status().is_success(), "{}", created.status());

        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(
            b"POST /v1/queues/w/messages HTTP/1.1\r\nHost: edgeq\r\n\
              Content-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc",
        )
        .await
        .unwrap();
        // The server answers and closes: reading to the end returns (a hung test
        // is cut off by the guard; nothing asserts on the time taken).
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut reply))
            .await
            .expect("the connection was not closed")
            .unwrap();
        let reply = String::from_utf8(reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
        assert!(reply.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{reply}");
        let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "request_timeout", "{reply}");

        let queue: serde_json::Value =
            serde_json::from_slice(&http.get(&url).send().await.unwrap().bytes().await.unwrap())
                .unwrap();
        assert_eq!(queue["stats"]["messages"], 0, "{queue}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn error_bodies_are_json() {
        let res = error_response(StatusCode::BAD_REQUEST, "bad_request", "a \"quoted\" word");
        assert_eq!(res.status(), 400);
        let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(v["error"]["code"], "bad_request");
        assert_eq!(v["error"]["message"], "a \"quoted\" word");
    }
}
