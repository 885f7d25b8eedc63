//! The bad-input matrix against the `edgeq` binary (a child process, so its memory
//! can be read from `/proc/<pid>/status`) over raw loopback TCP: malformed and
//! truncated JSON, wrong types, huge and negative numbers, names of every bad kind,
//! 1 GiB declared and streamed bodies, header injection, huge headers, a slowloris
//! client.
//!
//! Two kinds of refusal, both checked:
//!
//! - **API** refusals: a 4xx with a JSON `{"error":{"code","message"}}` body. Every
//!   request that is valid HTTP/1.1 but bad for edgeq gets one, including the
//!   413 for a body over the limit (declared or streamed).
//! - **Protocol** refusals, made by hyper before edgeq sees the request: a bare CR
//!   or LF inside a header, a header block over hyper's buffer (~400 KiB: 431), more
//!   than 100 headers (431), a malformed chunk size. hyper answers with an empty-
//!   bodied 4xx or just closes the connection; either is accepted here, a 2xx or
//!   5xx never.
//!
//! After every case the store must be unchanged: the queue list and every queue's
//! config and counts are compared with a snapshot.

use edgeq_native::testing::EdgeqProcess;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Guards against a hung test only; nothing asserts on how long anything takes.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// `edgeq serve` on the memory store, on a free loopback port.
fn start() -> EdgeqProcess {
    let args = ["--listen", "127.0.0.1:0", "--store", "memory"];
    EdgeqProcess::spawn(env!("CARGO_BIN_EXE_edgeq"), &args, 1, HANG_GUARD).expect("edgeq starts")
}

/// What came back for one request.
#[derive(Debug)]
enum Outcome {
    /// A response: status, head, body.
    Answered { status: u16, head: String, body: Vec<u8> },
    /// The connection closed (or was reset) without a response.
    Closed,
}

/// Writes `request` on a fresh connection and reads until the server closes it
/// (requests carry `Connection: close`, and protocol errors close it too).
fn send(addr: SocketAddr, request: &[u8]) -> Outcome {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(HANG_GUARD)).unwrap();
    // The server may answer and close before reading everything: a failed write
    // is not an error here, the answer is what counts.
    let _ = conn.write_all(request);
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => panic!("no answer: hung"),
            Err(_) => break, // reset: keep what came
        }
    }
    parse(&reply)
}

fn parse(reply: &[u8]) -> Outcome {
    let Some(at) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        assert!(reply.is_empty(), "a partial response: {:?}", String::from_utf8_lossy(reply));
        return Outcome::Closed;
    };
    let head = String::from_utf8_lossy(&reply[..at]).into_owned();
    assert!(head.starts_with("HTTP/1.1 "), "not HTTP/1.1: {head}");
    let status = head[9..12].parse().expect("a status code");
    Outcome::Answered { status, head, body: reply[at + 4..].to_vec() }
}

/// A request with `Connection: close` and the given extra header lines and body.
fn request(method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: edgeq\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// Asserts an API refusal: a 4xx with a JSON error body.
#[track_caller]
fn assert_api_error(what: &str, outcome: &Outcome) {
    let Outcome::Answered { status, head, body } = outcome else {
        panic!("{what}: the connection closed without an answer")
    };
    assert!((400..500).contains(status), "{what}: {head}\n{}", String::from_utf8_lossy(body));
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/json"),
        "{what}: not JSON: {head}"
    );
    let json: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {body:?}"));
    assert!(json["error"]["code"].is_string(), "{what}: {json}");
    assert!(json["error"]["message"].is_string(), "{what}: {json}");
}

/// Asserts a protocol refusal: an empty-bodied 4xx, a JSON 4xx, or a closed connection.
#[track_caller]
fn assert_refused(what: &str, outcome: &Outcome) {
    if let Outcome::Answered { status, head, body } = outcome {
        assert!((400..500).contains(status), "{what}: {head}\n{}", String::from_utf8_lossy(body));
    }
}

/// The store as clients see it: the queue list and each queue's config and counts
/// (its `oldest_age_ms` moves with the clock, so it is left out).
fn snapshot(addr: SocketAddr) -> serde_json::Value {
    let get = |path: &str| match send(addr, &request("GET", path, &[], b"")) {
        Outcome::Answered { status: 200, body, .. } => {
            serde_json::from_slice::<serde_json::Value>(&body).expect("JSON")
        }
        other => panic!("GET {path}: {other:?}"),
    };
    let list = get("/v1/queues");
    let mut queues = Vec::new();
    for q in list["queues"].as_array().expect("a queue list") {
        let name = q["name"].as_str().expect("a queue name");
        let mut info = get(&format!("/v1/queues/{name}"));
        info["stats"]["oldest_age_ms"] = serde_json::Value::Null;
        queues.push(info);
    }
    serde_json::Value::Array(queues)
}

/// A server with queue `q` holding one message.
fn seeded() -> EdgeqProcess {
    let server = start();
    let ok = |path: &str, method: &str, body: &[u8]| match send(
        server.addr(),
        &request(method, path, &["Content-Type: text/plain"], body),
    ) {
        Outcome::Answered { status, .. } if (200..300).contains(&status) => {}
        other => panic!("{method} {path}: {other:?}"),
    };
    ok("/v1/queues/q", "PUT", b"");
    ok("/v1/queues/q/messages", "POST", b"keep");
    server
}

#[test]
fn malformed_wrong_typed_and_out_of_range_json_is_refused_and_changes_nothing() {
    let server = seeded();
    let before = snapshot(server.addr());
    let json = ["Content-Type: application/json"];
    let cases: Vec<(&str, &str, &[u8])> = vec![
        // Malformed and truncated.
        ("PUT", "/v1/queues/new", b"{"),
        ("PUT", "/v1/queues/new", b"{\"visibility_timeout\": 30"),
        ("PUT", "/v1/queues/new", b"{\"visibility_timeout\":}"),
        ("PUT", "/v1/queues/q", b"[1, 2"),
        ("PUT", "/v1/queues/q", b"nul"),
        ("PUT", "/v1/queues/q", b"{\"delay\": 1}{\"delay\": 2}"),
        ("PUT", "/v1/queues/q", b"\xff\xfe{}"),
        ("POST", "/v1/queues/q/messages/batch", b"{\"messages\": [{\"body\": \"a\"}"),
        ("POST", "/v1/queues/q/messages/batch", b"{\"messages\": [{\"body_base64\": \"!!\"}]}"),
        ("POST", "/v1/queues/q/ack", b"{\"receipts\": ["),
        ("POST", "/v1/queues/q/nack", b""),
        // Wrong types.
        ("PUT", "/v1/queues/q", b"{\"visibility_timeout\": \"30\"}"),
        ("PUT", "/v1/queues/q", b"{\"partitions\": true}"),
        ("PUT", "/v1/queues/q", b"{\"dead_letter_queue\": 5}"),
        ("PUT", "/v1/queues/q", b"{\"public\": \"yes\"}"),
        ("PUT", "/v1/queues/q", b"[]"),
        ("POST", "/v1/queues/q/ack", b"{\"receipts\": \"r1.0.1.1\"}"),
        ("POST", "/v1/queues/q/ack", b"{\"receipts\": [1]}"),
        ("POST", "/v1/queues/q/ack", b"{\"receipts\": []}"),
        ("POST", "/v1/queues/q/messages/batch", b"{\"messages\": {}}"),
        ("POST", "/v1/queues/q/messages/batch", b"{\"messages\": [{\"body\": 7}]}"),
        // Huge, negative and fractional numbers.
        ("PUT", "/v1/queues/q", b"{\"visibility_timeout\": -1}"),
        ("PUT", "/v1/queues/q", b"{\"visibility_timeout\": 1.5}"),
        ("PUT", "/v1/queues/q", b"{\"visibility_timeout\": 1e300}"),
        ("PUT", "/v1/queues/q", b"{\"visibility_timeout\": 18446744073709551616}"),
        ("PUT", "/v1/queues/q", b"{\"message_ttl\": 9223372036854775808}"),
        ("PUT", "/v1/queues/q", b"{\"partitions\": 70000}"),
        ("PUT", "/v1/queues/q", b"{\"partitions\": 0}"),
        ("PUT", "/v1/queues/q", b"{\"max_receives\": -5}"),
        ("PUT", "/v1/queues/q", b"{\"delay\": 99999999999999999999999999}"),
        (
            "POST",
            "/v1/queues/q/extend",
            b"{\"receipts\": [\"r1.0.1.1\"], \"visibility_timeout\": -1}",
        ),
        ("POST", "/v1/queues/q/nack", b"{\"receipts\": [\"r1.0.1.1\"], \"delay\": 1e9}"),
    ];
    for (method, path, body) in cases {
        let what = format!("{method} {path} {}", String::from_utf8_lossy(body));
        assert_api_error(&what, &send(server.addr(), &request(method, path, &json, body)));
        assert_eq!(snapshot(server.addr()), before, "{what} changed the store");
    }
    // Out-of-range query parameters and headers on a send or a take.
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        ("POST", "/v1/queues/q/pop?count=-1", vec![]),
        ("POST", "/v1/queues/q/pop?count=99999999999999999999", vec![]),
        ("POST", "/v1/queues/q/pop?count=0", vec![]),
        ("POST", "/v1/queues/q/pop?count=1.5", vec![]),
        ("POST", "/v1/queues/q/receive?wait=-1", vec![]),
        ("POST", "/v1/queues/q/receive?visibility_timeout=1e9", vec![]),
        ("POST", "/v1/queues/q/receive?partition=70000", vec![]),
        ("GET", "/v1/queues/q/messages?limit=-3", vec![]),
        ("GET", "/v1/queues?limit=%00", vec![]),
        ("POST", "/v1/queues/q/messages", vec!["Edgeq-Delay: -5"]),
        ("POST", "/v1/queues/q/messages", vec!["Edgeq-Delay: 99999999999999999999"]),
        ("POST", "/v1/queues/q/messages", vec!["Edgeq-TTL: 0"]),
        ("POST", "/v1/queues/q/messages", vec!["Edgeq-Partition: 65536"]),
        ("POST", "/v1/queues/q/messages", vec!["Edgeq-Delay: 1", "Edgeq-Delay: 2"]),
    ];
    for (method, path, headers) in cases {
        let what = format!("{method} {path} {headers:?}");
        // Every take sends no body; every send sends one that would be stored.
        let outcome = send(server.addr(), &request(method, path, &headers, b"x"));
        assert_api_error(&what, &outcome);
        assert_eq!(snapshot(server.addr()), before, "{what} changed the store");
    }
}

#[test]
fn names_of_every_bad_kind_are_refused() {
    let server = seeded();
    let before = snapshot(server.addr());
    let long = "a".repeat(81);
    // ("." and ".." are valid names under `[A-Za-z0-9._-]{1,80}`, though URL
    // normalisation makes them hard to address: not refused today.)
    let names = [
        "a%20b",
        "a%2Fb",
        "%00",
        ".%2E%2F",
        "%C3%BC",
        "q%0D%0AX-Injected:1",
        "a*b",
        "%FF",
        "a%",
        "%2",
        &long,
        "a:b",
        "a@b",
        "a+b",
        "%E2%80%AE",
    ];
    for name in names {
        for (method, path) in [
            ("PUT", format!("/v1/queues/{name}")),
            ("POST", format!("/v1/queues/{name}/messages")),
            ("PUT", format!("/v1/queues/q?dead_letter_queue={name}")),
        ] {
            let what = format!("{method} {path}");
            let outcome = send(server.addr(), &request(method, &path, &[], b"{}"));
            assert_api_error(&what, &outcome);
        }
        let body = format!("{{\"dead_letter_queue\": {:?}}}", name.replace("%20", " "));
        let outcome = send(server.addr(), &request("PUT", "/v1/queues/q", &[], body.as_bytes()));
        assert_api_error(&format!("dead_letter_queue {name}"), &outcome);
    }
    assert_eq!(snapshot(server.addr()), before);
}

#[test]
fn header_injection_and_huge_headers_are_refused() {
    let server = seeded();
    let before = snapshot(server.addr());
    let post = |headers: &[u8]| {
        let mut r =
            b"POST /v1/queues/q/messages HTTP/1.1\r\nHost: edgeq\r\nConnection: close\r\n".to_vec();
        r.extend_from_slice(headers);
        r.extend_from_slice(b"Content-Length: 1\r\n\r\nx");
        r
    };
    // Values edgeq itself refuses (valid HTTP): non-UTF-8 and non-ASCII bytes,
    // control characters hyper lets through (tab is legal inside a value).
    for headers in [
        &b"Content-Type: text/\xff\xfe\r\n"[..],
        b"Content-Type: text/pl\xc3\xa4in\r\n",
        b"Idempotency-Key: \x80\x81\r\n",
        b"Edgeq-Delay: 1\t2\r\n",
        b"Edgeq-TTL: \xef\xbb\xbf60\r\n",
    ] {
        let what = format!("header {:?}", String::from_utf8_lossy(headers));
        assert_api_error(&what, &send(server.addr(), &post(headers)));
        assert_eq!(snapshot(server.addr()), before, "{what} changed the store");
    }
    // Injection attempts hyper refuses before edgeq sees them: a bare CR inside
    // a value, a NUL, obsolete line folding, a 1 MiB header, 200 headers.
    let huge = format!("X-Big: {}\r\n", "a".repeat(1 << 20));
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    for headers in [
        &b"Content-Type: text/plain\rX-Injected: 1\r\n"[..],
        b"Content-Type: text/plain\x00X-Injected: 1\r\n",
        b"Content-Type: text/plain\r\n X-Folded: 1\r\n",
        huge.as_bytes(),
        many.as_bytes(),
    ] {
        let shown: String = String::from_utf8_lossy(headers).chars().take(60).collect();
        let what = format!("header {shown:?}");
        assert_refused(&what, &send(server.addr(), &post(headers)));
        assert_eq!(snapshot(server.addr()), before, "{what} changed the store");
    }
    // A bare LF ends a header line (RFC 9112 lets a server accept it, hyper does):
    // the send is valid, and what follows the LF is a header of its own, never
    // part of the stored Content-Type.
    let outcome = send(server.addr(), &post(b"Content-Type: text/plain\nX-Injected: 1\r\n"));
    let Outcome::Answered { status: 201, body, .. } = outcome else {
        panic!("a bare LF: {outcome:?}")
    };
    let sent: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let id = sent["id"].as_str().expect("an id");
    let read =
        send(server.addr(), &request("GET", &format!("/v1/queues/q/messages/{id}"), &[], b""));
    let Outcome::Answered { status: 200, head, .. } = read else {
        panic!("read it back: {read:?}")
    };
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/plain\r\n"), "{head}");
    assert!(!head.contains("injected"), "{head}");
}

#[test]
fn a_gibibyte_declared_or_streamed_is_refused_without_buffering() {
    let server = seeded();
    let before = snapshot(server.addr());
    let rss_before = server.rss_kib();

    // Declared: only the head is sent, the answer must come without the body.
    let head = "POST /v1/queues/q/messages HTTP/1.1\r\nHost: edgeq\r\n\
                Content-Type: application/octet-stream\r\nContent-Length: 1073741824\r\n\r\n";
    let mut conn = TcpStream::connect(server.addr()).expect("connect");
    conn.set_read_timeout(Some(HANG_GUARD)).unwrap();
    conn.write_all(head.as_bytes()).unwrap();
    let mut reply = vec![0u8; 4096];
    let n = conn.read(&mut reply).expect("an answer before any body byte");
    let outcome = parse(&reply[..n]);
    assert!(matches!(outcome, Outcome::Answered { status: 413, .. }), "{outcome:?}");
    drop(conn);

    // Streamed: a chunked body of up to 1 GiB, written while the answer is awaited.
    let mut conn = TcpStream::connect(server.addr()).expect("connect");
    conn.write_all(
        b"POST /v1/queues/q/messages HTTP/1.1\r\nHost: edgeq\r\n\
          Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    let mut reader = conn.try_clone().unwrap();
    reader.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let answered = answered.clone();
        std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 << 10];
            let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
            frame.extend_from_slice(&chunk);
            frame.extend_from_slice(b"\r\n");
            let mut sent = 0u64;
            let deadline = Instant::now() + HANG_GUARD;
            while sent < 1 << 30 && Instant::now() < deadline {
                if answered.load(std::sync::atomic::Ordering::SeqCst)
                    || conn.write_all(&frame).is_err()
                {
                    break;
                }
                sent += chunk.len() as u64;
            }
            sent
        })
    };
    let n = reader.read(&mut reply).expect("an answer to the streamed body");
    answered.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcome = parse(&reply[..n]);
    let sent = writer.join().expect("writer thread");
    assert!(matches!(outcome, Outcome::Answered { status: 413, .. }), "{outcome:?}");
    // Refused at the 4 MiB limit: what was written past it is what the sockets'
    // buffers held, far from the gibibyte.
    assert!(sent < 64 << 20, "{sent} bytes were sent before the 413");
    let rss_after = server.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "the server grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(snapshot(server.addr()), before);
}

#[test]
fn a_slowloris_client_does_not_block_others() {
    let server = seeded();
    let before = snapshot(server.addr());
    // One byte a second of a request head, on two connections.
    let head = b"POST /v1/queues/q/messages HTTP/1.1\r\nHost: edgeq\r\nContent-Length: 1\r\n";
    let slow: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(server.addr()).unwrap()).collect();
    let mut sent = 0;
    for byte in head.iter().take(5) {
        for conn in &slow {
            (&*conn).write_all(&[*byte]).expect("the slow client is still connected");
        }
        sent += 1;
        // Meanwhile other clients are served in full.
        match send(server.addr(), &request("GET", "/v1/queues/q", &[], b"")) {
            Outcome::Answered { status: 200, .. } => {}
            other => panic!("a normal client was not served: {other:?}"),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(sent, 5);
    assert_eq!(snapshot(server.addr()), before, "a half-sent request changed the store");
}
