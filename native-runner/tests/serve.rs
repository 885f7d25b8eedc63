//! The native server over real loopback TCP, asserting on raw HTTP/1.1 bytes.
//!
//! What the host itself promises is checked here: the server answers, refuses
//! oversized bodies before reading them, shuts down gracefully, the `edgeq` binary
//! restarts on its redb file after `kill -9` and stops cleanly on SIGTERM, and every
//! send it acknowledged with a 2xx survives a `kill -9`; each `--listen DIALECT=ADDR`
//! (or `--root-dialect`) serves its dialect at `/`. Queue behaviour as such is
//! the workspace's black-box conformance suite's job.

use edgeq_native::testing::{EdgeqProcess, InProcessServer};
use edgeq_native::StoreSpec;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Guards against a hung test only; nothing asserts on how long anything takes.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// A server in this process, on the memory store.
async fn start_in_process() -> InProcessServer {
    InProcessServer::start(&StoreSpec::Memory).await
}

/// One response: the head (status line and headers) and the body.
struct Reply {
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn status(&self) -> u16 {
        assert!(self.head.starts_with("HTTP/1.1 "), "not HTTP/1.1: {}", self.head);
        self.head[9..12].parse().unwrap()
    }
}

/// Reads one response with a `Content-Length` (or a 204) from `conn`.
async fn read_reply(conn: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().unwrap())
        })
        .unwrap_or_else(|| {
            assert!(head.starts_with("HTTP/1.1 204 "), "no Content-Length: {head}");
            0
        });
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside a response body");
        body.extend_from_slice(&chunk[..n]);
    }
    Reply { head, body }
}

/// Sends the head of `request_line` with a 2-byte body to come and
/// `Expect: 100-continue`, and reads the "100 Continue" that proves the server
/// is inside the request (reading its body).
async fn send_head_until_continue(conn: &mut TcpStream, request_line: &str) {
    let head = format!(
        "{request_line} HTTP/1.1\r\nHost: edgeq\r\nContent-Length: 2\r\n\
         Expect: 100-continue\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "closed early");
        interim.push(byte[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");
}

async fn exchange(addr: SocketAddr, request: &str) -> Reply {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    read_reply(&mut conn).await
}

#[tokio::test]
async fn healthz_answers_and_shutdown_completes() {
    let server = start_in_process().await;
    let reply =
        exchange(server.addr, "GET /healthz HTTP/1.1\r\nHost: edgeq\r\nConnection: close\r\n\r\n")
            .await;
    let status = reply.status();
    assert!((100..600).contains(&status));
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_sent() {
    let server = start_in_process().await;
    // Only the head is sent: the server must answer without waiting for the body.
    for (path, len) in [("/healthz", 5 << 20), ("/v1/queues/q/messages", 1 << 30)] {
        let reply = exchange(
            server.addr,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: edgeq\r\nContent-Type: application/json\r\n\
                 Content-Length: {len}\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(reply.status(), 413, "{}", reply.head);
        let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(json["error"]["code"], "payload_too_large");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    let server = start_in_process().await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: edgeq\r\n\r\n").await.unwrap();
    read_reply(&mut conn).await.status();
    // The connection is open and idle; shutdown must not wait for the client.
    server.shutdown().await;
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let server = start_in_process().await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    // A first exchange proves the connection was accepted.
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: edgeq\r\n\r\n").await.unwrap();
    read_reply(&mut conn).await.status();
    // A request that waits for its body: "100 Continue" proves the server is inside
    // it (reading the body). Then shutdown, then the body: it is still answered.
    send_head_until_continue(&mut conn, "POST /v1/queues").await;
    let InProcessServer { stop, task, .. } = server;
    stop.send(true).unwrap();
    conn.write_all(b"{}").await.unwrap();
    let status = read_reply(&mut conn).await.status();
    assert!((200..600).contains(&status));
    let result = tokio::time::timeout(HANG_GUARD, task).await;
    result.expect("serve did not return").unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_answers_a_long_poll_in_flight() {
    let server = start_in_process().await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"PUT /v1/queues/lp HTTP/1.1\r\nHost: edgeq\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_reply(&mut conn).await.status(), 201);
    // "100 Continue" proves the server is inside the request; after the stop, its
    // body arrives and the poll looks at the queue once and answers like an
    // empty poll.
    send_head_until_continue(&mut conn, "POST /v1/queues/lp/receive?wait=20").await;
    let InProcessServer { stop, task, .. } = server;
    stop.send(true).unwrap();
    conn.write_all(b"{}").await.unwrap();
    // Not a measure of speed: an answer only after the poll's own 20 s is the
    // behaviour this test exists to rule out.
    let reply = tokio::time::timeout(Duration::from_secs(15), read_reply(&mut conn)).await;
    assert_eq!(reply.expect("the poll waited on through the shutdown").status(), 204);
    let result = tokio::time::timeout(HANG_GUARD, task).await;
    result.expect("serve did not return").unwrap().unwrap();
}

/// `edgeq serve --listen 127.0.0.1:0 --store STORE`.
fn start(store: &str) -> EdgeqProcess {
    start_with(&["--listen", "127.0.0.1:0", "--store", store], 1)
}

/// `edgeq serve ARGS`, once it has announced `listeners` listeners.
fn start_with(args: &[&str], listeners: usize) -> EdgeqProcess {
    EdgeqProcess::spawn(env!("CARGO_BIN_EXE_edgeq"), args, listeners, HANG_GUARD)
        .expect("edgeq starts")
}

/// One request on a fresh connection (`Connection: close`): status and body.
fn request_std(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: edgeq\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).unwrap();
    assert!(reply.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&reply));
    let status = std::str::from_utf8(&reply[9..12]).unwrap().parse().unwrap();
    let body_at = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (status, reply[body_at..].to_vec())
}

fn healthz_over_std(addr: SocketAddr) -> u16 {
    request_std(addr, "GET", "/healthz", b"").0
}

#[test]
fn binary_restarts_on_its_file_after_kill_9_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data/edgeq.redb");
    let store = format!("redb:{}", file.display());

    let first = start(&store);
    assert!(file.exists());
    assert_eq!(healthz_over_std(first.addr()), 200);

    // A second server on the same file is refused while the first holds it.
    let second = Command::new(env!("CARGO_BIN_EXE_edgeq"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &store])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!second.success());

    // kill -9, then the same file opens again.
    drop(first); // kill -9
    let restarted = start(&store);
    assert_eq!(healthz_over_std(restarted.addr()), 200);

    // SIGTERM stops it gracefully, with a zero exit status.
    let pid = restarted.pid().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(term.success());
    let (status, log) = restarted.wait(HANG_GUARD).expect("edgeq exits on SIGTERM");
    assert!(status.success(), "exit status {status}, log: {log:?}");
    assert!(log.iter().any(|l| l.contains("edgeq stopped")), "{log:?}");

    // And once more after the clean stop.
    let last = start(&store);
    assert_eq!(healthz_over_std(last.addr()), 200);
    drop(last); // kill -9
}

#[test]
fn acknowledged_sends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("redb:{}", dir.path().join("edgeq.redb").display());
    let server = start(&store);
    let (status, _) = request_std(server.addr(), "PUT", "/v1/queues/durable", b"");
    assert_eq!(status, 201);
    for i in 0..50 {
        let (status, body) = request_std(
            server.addr(),
            "POST",
            "/v1/queues/durable/messages",
            format!("m{i}").as_bytes(),
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    }
    // Killed right after the last 201: every acknowledged send must still be there.
    drop(server); // kill -9

    let server = start(&store);
    let mut popped = Vec::new();
    loop {
        let (status, body) = request_std(server.addr(), "POST", "/v1/queues/durable/pop", b"");
        if status == 204 {
            break;
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        popped.push(String::from_utf8(body).unwrap());
        assert!(popped.len() <= 50, "more messages than were sent: {popped:?}");
    }
    let sent: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(popped, sent);
    drop(server); // kill -9
}

#[test]
fn listeners_serve_their_dialect_at_the_root() {
    let server = start_with(
        &[
            "--store",
            "memory",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "rest_queue=127.0.0.1:0,memfifo=127.0.0.1:0",
        ],
        3,
    );
    let roots: Vec<&str> = server.listeners().iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(roots, ["none", "rest_queue", "memfifo"]);
    let (plain, rest_queue, memfifo) =
        (server.listeners()[0].0, server.listeners()[1].0, server.listeners()[2].0);

    // The rest_queue listener: rest_queue at `/`, its prefix and the root routes too.
    let (status, body) = request_std(rest_queue, "POST", "/queues/q1", b"");
    assert_eq!((status, body.as_slice()), (201, &br#"{"message":"created 'q1'"}"#[..]));
    let (status, _) = request_std(rest_queue, "POST", "/queues/q1/push?value=hello", b"");
    assert_eq!(status, 200);
    assert_eq!(request_std(rest_queue, "GET", "/rest_queue/queues", b"").0, 200);
    assert_eq!(request_std(rest_queue, "GET", "/v1/queues/q1", b"").0, 200);
    assert_eq!(healthz_over_std(rest_queue), 200);

    // The memfifo listener sees the same queue at `/`.
    let (status, body) = request_std(memfifo, "GET", "/queues/q1", b"");
    assert_eq!(status, 200);
    assert!(body.starts_with(br#"{"name":"q1","driver":"memfifo""#), "{body:?}");

    // The plain listener has no dialect at `/`, only under the prefixes.
    assert_eq!(request_std(plain, "GET", "/queues", b"").0, 404);
    let (status, body) = request_std(plain, "POST", "/rest_queue/queues/q1/pop", b"");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        br#"{"message":"pop from queue 'q1'","data":"hello","remaining_queue_size":0}"#
    );
    drop(server); // kill -9
}

#[test]
fn root_dialect_applies_to_listeners_that_name_none() {
    let server = start_with(
        &["--store", "memory", "--listen", "127.0.0.1:0", "--root-dialect", "memfifo"],
        1,
    );
    assert_eq!(server.listeners()[0].1, "memfifo");
    let (status, body) = request_std(server.addr(), "GET", "/queues", b"");
    assert_eq!((status, body.as_slice()), (200, &b"[]"[..]));
    drop(server); // kill -9

    // An unknown dialect is refused at startup.
    let refused = Command::new(env!("CARGO_BIN_EXE_edgeq"))
        .args(["serve", "--store", "memory", "--listen", "nosuch=127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!refused.success());
}
