//! Route sets share one set of queues: a message pushed with one is popped with
//! another and browsed with a third; each dialect lives under its own prefix.

use crate::support::Client;
use reqwest::Method;
use serde_json::json;

pub async fn messages_flow_across_route_sets(c: &Client) {
    c.post("/rest_queue/queues/shared").await.expect(201);
    for v in ["a", "b", "c"] {
        c.post_json("/rest_queue/queues/shared/push", &serde_json::json!(v)).await.expect(200);
    }
    // memfifo reads the oldest, as stored text.
    let r = c
        .send(c.req(Method::GET, "/memfifo/queues/shared/messages").header("client-id", "x"))
        .await;
    r.expect(200);
    assert_eq!(&r.body[..], b"a");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let id = r.header("message-id").unwrap().to_owned();
    assert_eq!(id.len(), 36, "a v1 message id: {id}");
    // v1 browses the rest without consuming, then pops one.
    let r = c.get("/v1/queues/shared/messages").await;
    r.expect(200);
    let bodies: Vec<String> = r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["b", "c"]);
    assert_eq!(&c.pop("shared").await.unwrap().body[..], b"b");
    let r = c.get("/memfifo/queues/shared").await;
    r.expect(200);
    assert_eq!(r.json()["attributes"]["read-only"], serde_json::json!({"bytes": 1, "size": 1}));
    let r = c.get("/rest_queue/queues/shared").await;
    assert_eq!(&r.body[..], br#"{"message":"items in queue 'shared'","items":["c"]}"#);

    // A memfifo queue is a rest_queue queue too; binary bodies come out lossily.
    let r = c
        .send(
            c.req(Method::POST, "/memfifo/queues")
                .header("content-type", "application/json")
                .body(r#"{"name":"bin"}"#),
        )
        .await;
    r.expect(200);
    c.send(
        c.req(Method::POST, "/memfifo/queues/bin/messages")
            .header("client-id", "x")
            .body(vec![b'o', 0xff, b'k']),
    )
    .await
    .expect(200);
    // A v1 queue whose name only looks like rest_queue's escape of another
    // (`..zz`) is one no rest_queue name reaches, so rest_queue does not list
    // it; a canonical escape (`..2061`, rest_queue's ` a`) it lists decoded.
    c.create("..zz", json!({})).await;
    c.create("..2061", json!({})).await;
    assert_eq!(c.get("/rest_queue/queues/..zz").await.status.as_u16(), 404);
    let r = c.get("/rest_queue/queues").await;
    assert_eq!(&r.body[..], br#"{"message":"list of queue names","items":["shared","bin"," a"]}"#);
    let r = c.post("/rest_queue/queues/bin/pop").await;
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        r#"{"message":"pop from queue 'bin'","data":"o\ufffdk","remaining_queue_size":0}"#
            .replace("\\ufffd", "\u{fffd}")
    );
}

pub async fn dialects_live_under_their_prefixes(c: &Client) {
    // Without a root dialect, dialect paths at the root are v1's unknown routes.
    c.get("/queues").await.expect_error(404, "not_found");
    c.get("/rest_queuex/queues").await.expect_error(404, "not_found");
    // The root routes stay where they are.
    c.get("/healthz").await.expect(200);
    c.get("/__heartbeat__").await.expect(200);
    c.get("/v1/queues").await.expect(200);
    c.get("/rest_queue/queues").await.expect(200);
    c.get("/memfifo/queues").await.expect(200);
}
