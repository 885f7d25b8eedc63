//! The memfifo dialect (`dialects/memfifo.md`) under `/memfifo`: every route and
//! every error row, with exact queue objects.

use crate::support::{Client, Resp};
use reqwest::Method;

/// The mount.
const B: &str = "/memfifo";

/// `method B+path` with headers and a body.
async fn call(
    c: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut rb = c.req(method, &format!("{B}{path}")).body(body.to_vec());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    c.send(rb).await
}

/// Asserts status, JSON content type and the exact body.
#[track_caller]
fn exact(r: &Resp, status: u16, body: &str) {
    r.expect(status);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(std::str::from_utf8(&r.body).unwrap(), body);
}

/// The queue object memfifo renders.
fn object(name: &str, bytes: u64, size: u64, max_bytes: Option<u64>) -> String {
    let rw = max_bytes.map_or(String::new(), |m| format!(r#""max-bytes":{m}"#));
    format!(
        r#"{{"name":"{name}","driver":"memfifo","attributes":{{"read-only":{{"bytes":{bytes},"size":{size}}},"read-write":{{{rw}}}}}}}"#
    )
}

async fn create(c: &Client, body: &str) -> Resp {
    call(c, Method::POST, "/queues", &[("content-type", "application/json")], body.as_bytes()).await
}

const CLIENT: (&str, &str) = ("client-id", "tests");

pub async fn memfifo_create_get_list_delete(c: &Client) {
    exact(&call(c, Method::GET, "/queues", &[], b"").await, 200, "[]");
    let r =
        create(c, r#"{"name":"emails","driver":"memfifo","attributes":{"max-bytes":8589934592}}"#)
            .await;
    exact(&r, 200, &object("emails", 0, 0, Some(8_589_934_592)));
    exact(&create(c, r#"{"name":"receipts"}"#).await, 200, &object("receipts", 0, 0, None));
    exact(&create(c, r#"{"name":"r2","attributes":{}}"#).await, 200, &object("r2", 0, 0, None));

    exact(
        &call(c, Method::GET, "/queues/emails", &[], b"").await,
        200,
        &object("emails", 0, 0, Some(8_589_934_592)),
    );
    let all = format!(
        "[{},{},{}]",
        object("emails", 0, 0, Some(8_589_934_592)),
        object("receipts", 0, 0, None),
        object("r2", 0, 0, None)
    );
    exact(&call(c, Method::GET, "/queues", &[], b"").await, 200, &all);
    let r = call(c, Method::HEAD, "/queues/emails", &[], b"").await;
    r.expect(200);
    assert!(r.body.is_empty());

    // Delete drops the messages and answers what the queue was.
    call(c, Method::POST, "/queues/receipts/messages", &[CLIENT], b"abc").await.expect(200);
    exact(
        &call(c, Method::DELETE, "/queues/receipts", &[], b"").await,
        200,
        &object("receipts", 3, 1, None),
    );
    call(c, Method::DELETE, "/queues/receipts", &[], b"")
        .await
        .expect_error(404, "queue_not_found");
    call(c, Method::GET, "/queues/receipts", &[], b"").await.expect_error(404, "queue_not_found");
    call(c, Method::GET, "/queues/a%20b", &[], b"").await.expect_error(404, "queue_not_found");
    let all =
        format!("[{},{}]", object("emails", 0, 0, Some(8_589_934_592)), object("r2", 0, 0, None));
    exact(&call(c, Method::GET, "/queues", &[], b"").await, 200, &all);
    // Re-created after the delete: empty again.
    exact(&create(c, r#"{"name":"receipts"}"#).await, 200, &object("receipts", 0, 0, None));
}

pub async fn memfifo_invalid_creates_are_400(c: &Client) {
    create(c, r#"{"name":"taken"}"#).await.expect(200);
    for (body, code) in [
        ("", "invalid_json"),
        ("not json", "invalid_json"),
        ("[]", "invalid_body"),
        ("{}", "invalid_body"),
        (r#"{"name":5}"#, "invalid_body"),
        (r#"{"name":"x","colour":"red"}"#, "invalid_body"),
        (r#"{"name":"x","attributes":{"max-size":1}}"#, "invalid_body"),
        (r#"{"name":"x","attributes":{"max-bytes":-1}}"#, "invalid_body"),
        (r#"{"name":"x","attributes":{"max-bytes":"big"}}"#, "invalid_body"),
        (r#"{"name":"x","attributes":{"max-bytes":0}}"#, "invalid_value"),
        (r#"{"name":""}"#, "invalid_name"),
        (r#"{"name":"a b"}"#, "invalid_name"),
        (r#"{"name":"x","driver":"redis"}"#, "invalid_driver"),
        (r#"{"name":"taken"}"#, "queue_exists"),
        (r#"{"name":"taken","driver":"memfifo"}"#, "queue_exists"),
    ] {
        create(c, body).await.expect_error(400, code);
    }
    exact(
        &call(c, Method::GET, "/queues", &[], b"").await,
        200,
        &format!("[{}]", object("taken", 0, 0, None)),
    );
}

pub async fn memfifo_submit_and_read_round_trip(c: &Client) {
    create(c, r#"{"name":"q"}"#).await.expect(200);
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let r = call(
        c,
        Method::POST,
        "/queues/q/messages",
        &[CLIENT, ("content-type", "application/x-thing; v=1")],
        &binary,
    )
    .await;
    exact(&r, 200, &object("q", 256, 1, None));
    let first_id = r.header("message-id").expect("Message-Id").to_owned();
    let r = call(c, Method::POST, "/queues/q/messages", &[CLIENT], b"").await;
    exact(&r, 200, &object("q", 256, 2, None));
    let second_id = r.header("message-id").unwrap().to_owned();
    assert_ne!(first_id, second_id);
    exact(&call(c, Method::GET, "/queues/q", &[], b"").await, 200, &object("q", 256, 2, None));

    let r = call(c, Method::GET, "/queues/q/messages", &[CLIENT], b"").await;
    r.expect(200);
    assert_eq!(&r.body[..], &binary[..]);
    assert_eq!(r.header("content-type"), Some("application/x-thing; v=1"));
    assert_eq!(r.header("message-id"), Some(first_id.as_str()));
    let r = call(c, Method::GET, "/queues/q/messages", &[CLIENT], b"").await;
    r.expect(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("message-id"), Some(second_id.as_str()));
    let r = call(c, Method::GET, "/queues/q/messages", &[CLIENT], b"").await;
    r.expect(204);
    assert!(r.body.is_empty());
    exact(&call(c, Method::GET, "/queues/q", &[], b"").await, 200, &object("q", 0, 0, None));
}

pub async fn memfifo_client_id_limits_and_missing_queues(c: &Client) {
    create(c, r#"{"name":"small","attributes":{"max-bytes":10}}"#).await.expect(200);
    for headers in [&[][..], &[("client-id", "")][..], &[("client-id", "  ")][..]] {
        call(c, Method::POST, "/queues/small/messages", headers, b"x")
            .await
            .expect_error(400, "missing_client_id");
        call(c, Method::GET, "/queues/small/messages", headers, b"")
            .await
            .expect_error(400, "missing_client_id");
        // Checked before the queue is looked up.
        call(c, Method::GET, "/queues/nope/messages", headers, b"")
            .await
            .expect_error(400, "missing_client_id");
    }
    call(c, Method::POST, "/queues/nope/messages", &[CLIENT], b"x")
        .await
        .expect_error(404, "queue_not_found");
    call(c, Method::GET, "/queues/nope/messages", &[CLIENT], b"")
        .await
        .expect_error(404, "queue_not_found");

    // max-bytes: 10 fits, one more byte is 507 and the queue keeps what it holds.
    call(c, Method::POST, "/queues/small/messages", &[CLIENT], b"0123456789").await.expect(200);
    call(c, Method::POST, "/queues/small/messages", &[CLIENT], b"x")
        .await
        .expect_error(507, "queue_full");
    exact(
        &call(c, Method::GET, "/queues/small", &[], b"").await,
        200,
        &object("small", 10, 1, Some(10)),
    );

    // 4 MiB bodies are the limit.
    create(c, r#"{"name":"big"}"#).await.expect(200);
    let four = vec![b'a'; 4 << 20];
    call(c, Method::POST, "/queues/big/messages", &[CLIENT], &four).await.expect(200);
    let over = vec![b'a'; (4 << 20) + 1];
    call(c, Method::POST, "/queues/big/messages", &[CLIENT], &over)
        .await
        .expect_error(413, "message_too_large");
    let r = call(c, Method::GET, "/queues/big/messages", &[CLIENT], b"").await;
    r.expect(200);
    assert_eq!(r.body.len(), 4 << 20);

    for (m, path, allow) in [
        (Method::PUT, "/queues", "GET, HEAD, POST"),
        (Method::POST, "/queues/big", "GET, HEAD, DELETE"),
        (Method::HEAD, "/queues/big/messages", "GET, POST"),
        (Method::DELETE, "/queues/big/messages", "GET, POST"),
    ] {
        let r = call(c, m.clone(), path, &[CLIENT], b"").await;
        r.expect(405);
        assert_eq!(r.header("allow"), Some(allow), "{m} {path}");
    }
    for path in ["", "/", "/queue", "/queues/big/messages/1"] {
        call(c, Method::GET, path, &[CLIENT], b"").await.expect_error(404, "not_found");
    }
}
