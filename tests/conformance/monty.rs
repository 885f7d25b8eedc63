//! The MontyExchange dialect (`dialects/monty.md`) under `/monty`: every row,
//! with exact bodies and content types.

use crate::support::{Client, Resp};
use reqwest::Method;
use serde_json::json;

const POSTED: &str = "{\"Message\":\"Order Posted Successfully\"}\n";
const EMPTY: &str = "{\"Message\":\"There are no Available Messages to Consume.\"}\n";

async fn post(c: &Client, content_type: Option<&str>, body: &[u8]) -> Resp {
    let mut rb = c.req(Method::POST, "/monty/Message").body(body.to_vec());
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    c.send(rb).await
}

async fn consume(c: &Client) -> Resp {
    c.get("/monty/Consume").await
}

#[track_caller]
fn exact(r: &Resp, status: u16, content_type: &str, body: &str) {
    r.expect(status);
    assert_eq!(r.header("content-type"), Some(content_type));
    assert_eq!(std::str::from_utf8(&r.body).unwrap(), body);
    if content_type.starts_with("text/html") {
        crate::messages::assert_sandboxed(r);
    }
}

/// A 400 `{"Error": ...}` in the dialect's rendering.
#[track_caller]
fn refused(r: &Resp, status: u16) {
    r.expect(status);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.body.ends_with(b"\n"));
    assert!(r.json()["Error"].as_str().is_some_and(|m| !m.is_empty()), "{:?}", r.body);
}

pub async fn monty_publish_and_consume_in_order(c: &Client) {
    // Nothing exists before the first publish; consuming creates nothing.
    exact(&consume(c).await, 200, "application/json", EMPTY);
    c.get("/v1/queues/monty-queue").await.expect_error(404, "queue_not_found");

    let bodies: [&[u8]; 6] = [
        br#"{"z": 1, "a": {"y": [1.0, 2.5, 1e16], "b": "caf\u00e9 \ud83d\ude00"}}"#,
        "[\"naïve\", null, true]".as_bytes(),
        br#""hello <b>world</b> \u00e9""#,
        b"42",
        b" false ",
        b"null",
    ];
    let types = [
        Some("application/json"),
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded"),
        None,
        None,
    ];
    for (body, ct) in bodies.iter().zip(types) {
        exact(&post(c, ct, body).await, 201, "application/json", POSTED);
    }
    assert_eq!(c.count("monty-queue").await, 6);
    let r = c.get("/v1/exchanges/monty.exchange").await;
    r.expect(200);
    assert_eq!(r.json()["type"], "direct");
    assert_eq!(r.json()["bindings"], json!([{"queue": "monty-queue", "key": "message"}]));

    exact(
        &consume(c).await,
        200,
        "application/json",
        "{\"a\":{\"b\":\"caf\\u00e9 \\ud83d\\ude00\",\"y\":[1.0,2.5,1e+16]},\"z\":1}\n",
    );
    exact(&consume(c).await, 200, "application/json", "[\"na\\u00efve\",null,true]\n");
    exact(&consume(c).await, 200, "text/html; charset=utf-8", "hello <b>world</b> é");
    exact(&consume(c).await, 200, "application/json", "42\n");
    exact(&consume(c).await, 200, "application/json", "false\n");
    exact(&consume(c).await, 200, "application/json", "null\n");
    exact(&consume(c).await, 200, "application/json", EMPTY);
}

pub async fn monty_other_bindings_receive_publishes(c: &Client) {
    post(c, None, b"{\"n\":1}").await.expect(201);
    c.create("audit", json!({})).await;
    c.send(c.req(Method::PUT, "/v1/exchanges/monty.exchange/bindings/audit?key=message"))
        .await
        .expect(204);
    post(c, None, b"{\"n\":2}").await.expect(201);
    // The binding is logged once, not on every publish.
    let r = c.get("/v1/exchanges/monty.exchange").await;
    assert_eq!(
        r.json()["bindings"],
        json!([{"queue": "monty-queue", "key": "message"}, {"queue": "audit", "key": "message"}])
    );
    let audit = c.pop("audit").await.expect("audit got the publish");
    assert_eq!(&audit.body[..], b"{\"n\":2}");
    assert_eq!(audit.header("content-type"), Some("application/json"));
    exact(&consume(c).await, 200, "application/json", "{\"n\":1}\n");
    exact(&consume(c).await, 200, "application/json", "{\"n\":2}\n");

    // A message sent through v1 that is not JSON comes back as it was, not lost.
    c.push("monty-queue", "plain text").await;
    exact(&consume(c).await, 200, "text/plain", "plain text");
    // A queue deleted behind Monty's back is declared again by the next publish.
    c.send(c.req(Method::DELETE, "/v1/queues/monty-queue")).await.expect(204);
    exact(&consume(c).await, 200, "application/json", EMPTY);
    post(c, None, b"[]").await.expect(201);
    exact(&consume(c).await, 200, "application/json", "[]\n");
}

pub async fn monty_bad_input_is_400_and_stores_nothing(c: &Client) {
    post(c, None, b"{}").await.expect(201);
    exact(&consume(c).await, 200, "application/json", "{}\n");
    for (ct, body) in [
        (None, &b""[..]),
        (Some("application/json"), b"   "),
        (Some("application/json"), b"{\"a\":"),
        (Some("application/x-www-form-urlencoded"), b"a=1&b=2"),
        (Some("text/plain"), b"hello"),
        (None, b"\xff\xfe"),
        (None, b"NaN"),
        (None, b"1e999"),
        (None, b"{} {}"),
    ] {
        refused(&post(c, ct, body).await, 400);
    }
    assert_eq!(c.count("monty-queue").await, 0);

    // Routes are case-sensitive and exact; each answers one method.
    for path in ["/monty/message", "/monty/consume", "/monty/Message/", "/monty", "/monty/"] {
        refused(&c.get(path).await, 404);
    }
    let r = c.get("/monty/Message").await;
    refused(&r, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    for m in [Method::POST, Method::DELETE] {
        let r = c.send(c.req(m, "/monty/Consume")).await;
        refused(&r, 405);
        assert_eq!(r.header("allow"), Some("GET"));
    }
    assert_eq!(c.count("monty-queue").await, 0);
}
