//! Exchange routes: create/get/delete, bindings, publish (direct, topic, fanout).

use crate::support::Client;
use reqwest::Method;
use serde_json::json;

async fn put_exchange(c: &Client, x: &str, body: &str) -> crate::support::Resp {
    c.send(
        c.req(Method::PUT, &format!("/v1/exchanges/{x}"))
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

async fn bind(c: &Client, x: &str, q: &str, key: &str) -> crate::support::Resp {
    c.send(c.req(Method::PUT, &format!("/v1/exchanges/{x}/bindings/{q}")).query(&[("key", key)]))
        .await
}

async fn publish(c: &Client, x: &str, key: &str, body: &str) -> crate::support::Resp {
    c.send(
        c.req(Method::POST, &format!("/v1/exchanges/{x}/publish"))
            .header("edgeq-routing-key", key)
            .header("content-type", "application/json")
            .body(body.to_owned()),
    )
    .await
}

async fn pop_body(c: &Client, q: &str) -> Option<String> {
    c.pop(q).await.map(|r| String::from_utf8(r.body.to_vec()).unwrap())
}

pub async fn direct_exchange_routes_by_key(c: &Client) {
    c.create("user", json!({})).await;
    c.create("audit", json!({})).await;
    let r = put_exchange(c, "my-exchange", r#"{"type":"direct"}"#).await;
    r.expect(201);
    assert_eq!(r.header("location"), Some("/v1/exchanges/my-exchange"));
    assert_eq!(r.json()["type"], "direct");
    // Idempotent; another type is a conflict.
    put_exchange(c, "my-exchange", r#"{"type":"direct"}"#).await.expect(200);
    put_exchange(c, "my-exchange", r#"{"type":"fanout"}"#)
        .await
        .expect_error(409, "exchange_type_mismatch");

    bind(c, "my-exchange", "user", "user").await.expect(204);
    bind(c, "my-exchange", "user", "user").await.expect(204);
    bind(c, "my-exchange", "audit", "user").await.expect(204);
    let r = c.get("/v1/exchanges/my-exchange").await;
    r.expect(200);
    assert_eq!(
        r.json()["bindings"],
        json!([{"queue": "user", "key": "user"}, {"queue": "audit", "key": "user"}])
    );

    let r = publish(c, "my-exchange", "user", r#"{"event":"user.created"}"#).await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["routed"], 2, "{v}");
    assert!(v["queues"][0]["id"].as_str().is_some(), "{v}");
    assert_eq!(pop_body(c, "user").await.as_deref(), Some(r#"{"event":"user.created"}"#));
    assert_eq!(pop_body(c, "audit").await.as_deref(), Some(r#"{"event":"user.created"}"#));

    // No match is not an error, but is visible.
    let r = publish(c, "my-exchange", "order", "{}").await;
    r.expect(200);
    assert_eq!(r.json()["routed"], 0);
    assert_eq!(r.json()["queues"], json!([]));

    // Unbinding stops delivery; so does deleting the queue, for good: a queue
    // created again under the name starts unbound (as in RabbitMQ).
    c.send(c.req(Method::DELETE, "/v1/exchanges/my-exchange/bindings/audit?key=user"))
        .await
        .expect(204);
    assert_eq!(publish(c, "my-exchange", "user", "{}").await.json()["routed"], 1);
    c.send(c.req(Method::DELETE, "/v1/queues/user")).await.expect(204);
    c.create("user", json!({})).await;
    assert_eq!(publish(c, "my-exchange", "user", "{}").await.json()["routed"], 0);
    assert_eq!(c.get("/v1/exchanges/my-exchange").await.json()["bindings"], json!([]));
    assert_eq!(pop_body(c, "user").await, None);
    bind(c, "my-exchange", "user", "user").await.expect(204);
    assert_eq!(publish(c, "my-exchange", "user", "{}").await.json()["routed"], 1);
    c.send(c.req(Method::DELETE, "/v1/exchanges/my-exchange")).await.expect(204);
    c.get("/v1/exchanges/my-exchange").await.expect_error(404, "exchange_not_found");
    publish(c, "my-exchange", "user", "{}").await.expect_error(404, "exchange_not_found");
}

pub async fn topic_and_fanout_exchanges(c: &Client) {
    for q in ["eu", "all", "stock"] {
        c.create(q, json!({})).await;
    }
    put_exchange(c, "t", r#"{"type":"topic"}"#).await.expect(201);
    bind(c, "t", "eu", "*.eu.#").await.expect(204);
    bind(c, "t", "all", "#").await.expect(204);
    bind(c, "t", "stock", "stock.*").await.expect(204);
    assert_eq!(publish(c, "t", "order.eu.paris.new", "1").await.json()["routed"], 2);
    assert_eq!(publish(c, "t", "stock.usd", "2").await.json()["routed"], 2);
    assert_eq!(publish(c, "t", "stock.usd.nyse", "3").await.json()["routed"], 1);
    assert_eq!(pop_body(c, "eu").await.as_deref(), Some("1"));
    assert_eq!(pop_body(c, "stock").await.as_deref(), Some("2"));
    for want in ["1", "2", "3"] {
        assert_eq!(pop_body(c, "all").await.as_deref(), Some(want));
    }

    put_exchange(c, "f", r#"{"type":"fanout"}"#).await.expect(201);
    bind(c, "f", "eu", "").await.expect(204);
    bind(c, "f", "stock", "whatever").await.expect(204);
    assert_eq!(publish(c, "f", "ignored", "x").await.json()["routed"], 2);

    // An empty body creates a direct exchange.
    let r = c.send(c.req(Method::PUT, "/v1/exchanges/plain")).await;
    r.expect(201);
    assert_eq!(r.json()["type"], "direct");
}

pub async fn publish_with_idempotency_key_stores_once_per_queue(c: &Client) {
    c.create("a", json!({})).await;
    c.create("b", json!({})).await;
    put_exchange(c, "x", r#"{"type":"fanout"}"#).await.expect(201);
    bind(c, "x", "a", "").await.expect(204);
    bind(c, "x", "b", "").await.expect(204);
    let send = || {
        c.send(
            c.req(Method::POST, "/v1/exchanges/x/publish")
                .header("idempotency-key", "evt-1")
                .body("once"),
        )
    };
    let first = send().await;
    first.expect(200);
    let again = send().await;
    again.expect(200);
    assert_eq!(again.json()["queues"][0]["duplicate"], true);
    assert_eq!(again.json()["queues"][0]["id"], first.json()["queues"][0]["id"]);
    assert_eq!(c.count("a").await, 1);
    assert_eq!(c.count("b").await, 1);
}

pub async fn exchange_errors_store_nothing(c: &Client) {
    c.create("q", json!({})).await;
    put_exchange(c, "x", r#"{"type":"headers"}"#).await.expect_error(400, "invalid_body");
    put_exchange(c, "x", r#"{"type":"direct","durable":true}"#)
        .await
        .expect_error(400, "invalid_body");
    put_exchange(c, "x", "{").await.expect_error(400, "invalid_json");
    put_exchange(c, "bad name", r#"{"type":"direct"}"#).await.expect_error(400, "invalid_name");
    c.get("/v1/exchanges/x").await.expect_error(404, "exchange_not_found");
    bind(c, "x", "q", "k").await.expect_error(404, "exchange_not_found");
    put_exchange(c, "x", r#"{"type":"direct"}"#).await.expect(201);
    bind(c, "x", "missing", "k").await.expect_error(404, "queue_not_found");
    let long = "k".repeat(256);
    bind(c, "x", "q", &long).await.expect_error(400, "invalid_query");
    let unbind_long = format!("/v1/exchanges/x/bindings/q?key={long}");
    c.send(c.req(Method::DELETE, &unbind_long)).await.expect_error(400, "invalid_query");
    // A key that is not UTF-8 once percent-decoded is refused, never stored as
    // U+FFFD; so is one ending in half a character.
    for key in ["%FF", "a%C3"] {
        for method in [Method::PUT, Method::DELETE] {
            let r = c.send(c.req(method, &format!("/v1/exchanges/x/bindings/q?key={key}"))).await;
            r.expect_error(400, "invalid_query");
            assert!(r.message().contains("key"), "{key}: {}", r.message());
        }
    }
    publish(c, "x", &long, "m").await.expect_error(400, "invalid_header");
    c.send(c.req(Method::POST, "/v1/exchanges/x")).await.expect_error(405, "method_not_allowed");
    c.send(c.req(Method::GET, "/v1/exchanges/x/publish"))
        .await
        .expect_error(405, "method_not_allowed");
    assert_eq!(c.get("/v1/exchanges/x").await.json()["bindings"], json!([]));
    assert_eq!(c.count("q").await, 0);
}
