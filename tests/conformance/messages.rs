//! Sending (single and batch), browsing, and reading/overwriting/deleting by id.

use crate::support::{eventually, Client};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const MAX: usize = 4 << 20;

pub async fn send_keeps_any_content_type(c: &Client) {
    c.create("q", json!({})).await;
    let r = c
        .send(
            c.req(Method::POST, "/v1/queues/q/messages")
                .header("content-type", "application/vnd.acme+xml; v=2")
                .body("<a/>"),
        )
        .await;
    r.expect(201);
    let v = r.json();
    let id = v["id"].as_str().expect("an id").to_owned();
    assert_eq!(v["duplicate"], false);
    assert_eq!(r.header("location"), Some(format!("/v1/queues/q/messages/{id}").as_str()));
    // Without a Content-Type too.
    let r = c.send(c.req(Method::POST, "/v1/queues/q/messages").body("plain")).await;
    r.expect(201);
    let id2 = r.json()["id"].as_str().unwrap().to_owned();
    assert_ne!(id, id2);
    assert_eq!(c.count("q").await, 2);

    let m = c.pop("q").await.expect("a message");
    assert_eq!(&m.body[..], b"<a/>");
    assert_eq!(m.header("content-type"), Some("application/vnd.acme+xml; v=2"));
    assert_eq!(m.header("edgeq-message-id"), Some(id.as_str()));
    let m = c.pop("q").await.expect("a message");
    assert_eq!(&m.body[..], b"plain");
    assert_eq!(m.header("edgeq-message-id"), Some(id2.as_str()));
    assert!(c.pop("q").await.is_none());

    // A body typed text/html comes back so, and a browser that opens it runs
    // nothing in it and gives it no origin.
    let html = "<script>alert(1)</script>";
    let r = c
        .send(
            c.req(Method::POST, "/v1/queues/q/messages")
                .header("content-type", "text/html")
                .body(html),
        )
        .await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let m = c.get(&format!("/v1/queues/q/messages/{id}")).await;
    assert_eq!((&m.body[..], m.header("content-type")), (html.as_bytes(), Some("text/html")));
    assert_sandboxed(&m);
    assert_sandboxed(&c.pop("q").await.expect("the html message"));

    // An empty Content-Type is none, not an empty one to hand back.
    let empty = c.req(Method::POST, "/v1/queues/q/messages").header("content-type", "").body("e");
    c.send(empty).await.expect(201);
    let m = c.pop("q").await.expect("the message");
    assert_eq!((&m.body[..], m.header("content-type")), (&b"e"[..], None));
}

/// An answer a browser will not run scripts in nor sniff another type from.
#[track_caller]
pub fn assert_sandboxed(r: &crate::support::Resp) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.split(';').any(|d| d.trim() == "sandbox"), "{csp:?}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

pub async fn binary_bodies_round_trip_byte_exact(c: &Client) {
    c.create("bin", json!({})).await;
    let body: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let r = c
        .send(
            c.req(Method::POST, "/v1/queues/bin/messages")
                .header("content-type", "application/octet-stream")
                .body(body.clone()),
        )
        .await;
    r.expect(201);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    // Empty body too.
    c.push("bin", Vec::<u8>::new()).await;

    // Browse (JSON): not UTF-8, so base64.
    let r = c.get("/v1/queues/bin/messages").await;
    r.expect(200);
    let v = r.json();
    let first = &v["messages"][0];
    assert_eq!(first["id"], id.as_str());
    assert!(first.get("body").is_none(), "binary is not given as text");
    let b64 = first["body_base64"].as_str().expect("body_base64");
    use base64::Engine as _;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(b64).unwrap(), body);
    assert_eq!(first["size"], body.len());
    assert_eq!(v["messages"][1]["body"], "");

    // By id and by pop (raw): byte exact.
    let r = c.get(&format!("/v1/queues/bin/messages/{id}")).await;
    r.expect(200);
    assert_eq!(&r.body[..], &body[..]);
    let m = c.pop("bin").await.expect("a message");
    assert_eq!(&m.body[..], &body[..]);
    assert_eq!(m.header("content-type"), Some("application/octet-stream"));
    let m = c.pop("bin").await.expect("the empty message");
    assert!(m.body.is_empty());
}

pub async fn four_mib_is_the_limit(c: &Client) {
    c.create("big", json!({})).await;
    let body: Vec<u8> = (0..MAX).map(|i| (i % 251) as u8).collect();
    let r = c.send(c.req(Method::POST, "/v1/queues/big/messages").body(body.clone())).await;
    r.expect(201);
    let mut over = body.clone();
    over.push(0);
    c.send(c.req(Method::POST, "/v1/queues/big/messages").body(over))
        .await
        .expect_error(413, "message_too_large");
    let stats = c.stats("big").await;
    assert_eq!(stats["messages"], 1);
    assert_eq!(stats["bytes"], MAX);
    let m = c.pop("big").await.expect("the 4 MiB message");
    assert_eq!(m.body.len(), MAX);
    assert!(m.body[..] == body[..], "the 4 MiB body came back changed");
    assert!(c.pop("big").await.is_none());
}

pub async fn answers_stop_at_eight_mib_of_bodies(c: &Client) {
    c.create("wide", json!({})).await;
    for fill in ["a", "b", "c"] {
        let r =
            c.send(c.req(Method::POST, "/v1/queues/wide/messages").body(fill.repeat(MAX))).await;
        r.expect(201);
    }
    // Each answer stops once its bodies reach 8 MiB: two of these.
    let firsts = |v: &Value| -> Vec<String> {
        let messages = v["messages"].as_array().expect("messages");
        messages.iter().map(|m| m["body"].as_str().expect("a text body")[..1].to_owned()).collect()
    };
    let page = c.get("/v1/queues/wide/messages?limit=10").await.expect(200).json();
    assert_eq!(firsts(&page), ["a", "b"]);
    assert_eq!(page["next_after"], page["messages"][1]["id"], "the page goes on after it");
    let after = page["next_after"].as_str().expect("a next page");
    let rest = c.get(&format!("/v1/queues/wide/messages?limit=10&after={after}")).await;
    assert_eq!(firsts(&rest.expect(200).json()), ["c"]);
    let leased = c.post("/v1/queues/wide/receive?count=10").await.expect(200).json();
    assert_eq!(firsts(&leased), ["a", "b"]);
    let popped = c.post("/v1/queues/wide/pop?count=10").await.expect(200).json();
    assert_eq!(firsts(&popped), ["c"], "what an answer did not take stays queued");
}

pub async fn delay_hides_then_shows(c: &Client) {
    c.create("d", json!({})).await;
    // Long delay: certainly hidden now, but held.
    let r = c
        .send(
            c.req(Method::POST, "/v1/queues/d/messages").header("edgeq-delay", "600").body("later"),
        )
        .await;
    r.expect(201);
    assert!(c.pop("d").await.is_none(), "a delayed message is hidden");
    assert_eq!(c.count("d").await, 1);
    assert_eq!(c.stats("d").await["delayed"], 1);
    c.post("/v1/queues/d/purge").await.expect(200);
    assert_eq!(c.stats("d").await["delayed"], 0);

    // Short delay: becomes visible by itself.
    c.send(c.req(Method::POST, "/v1/queues/d/messages").header("edgeq-delay", "1").body("soon"))
        .await
        .expect(201);
    assert_eq!(c.stats("d").await["delayed"], 1);
    let m =
        eventually("the delayed message to appear", Duration::from_secs(15), || c.pop("d")).await;
    assert_eq!(&m.body[..], b"soon");
    assert_eq!(c.stats("d").await["delayed"], 0, "delivered: no longer delayed");

    // The queue's default delay applies too.
    c.put_queue("d", &json!({"delay": 600})).await.expect(200);
    c.push("d", "queue-delayed").await;
    assert!(c.pop("d").await.is_none());
    assert_eq!(c.count("d").await, 1);
}

pub async fn ttl_expires_messages(c: &Client) {
    // One message is the limit: once the short-lived one expired unconsumed, a
    // send that finds the queue full drops it to make room.
    c.create("t", json!({"max_messages": 1})).await;
    c.send(
        c.req(Method::POST, "/v1/queues/t/messages").header("edgeq-ttl", "1").body("short-lived"),
    )
    .await
    .expect(201);
    // Browse until the short-lived one is gone (browsing does not consume).
    eventually("the message to expire", Duration::from_secs(15), || async move {
        let r = c.get("/v1/queues/t/messages").await;
        r.expect(200);
        r.json()["messages"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    assert_eq!(c.count("t").await, 1, "an expired message counts until it is dropped");
    c.push("t", "kept").await;
    assert_eq!(c.count("t").await, 1);
    let m = c.pop("t").await.expect("the kept message");
    assert_eq!(&m.body[..], b"kept");
    assert!(c.pop("t").await.is_none(), "the expired message is never delivered");

    // The longest TTL, 2^25 s (Queuey's), is kept as asked.
    let r = c
        .send(
            c.req(Method::POST, "/v1/queues/t/messages").header("edgeq-ttl", "33554432").body("x"),
        )
        .await;
    r.expect(201);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let m = c.get(&format!("/v1/queues/t/messages/{id}")).await;
    let at = |h: &str| m.header(h).and_then(|v| v.parse::<u64>().ok()).unwrap();
    // (The TTL counts from the send's start, a moment before the id's time.)
    let lives = at("edgeq-expires-at") - at("edgeq-enqueued-at");
    assert!((33_554_431_000..=33_554_432_000).contains(&lives), "{lives} ms");
}

pub async fn idempotency_key_repeat_returns_the_first_id(c: &Client) {
    c.create("i", json!({})).await;
    let send = |body: &'static str, key: &'static str| {
        c.send(
            c.req(Method::POST, "/v1/queues/i/messages").header("idempotency-key", key).body(body),
        )
    };
    let r = send("first", "order-42").await;
    r.expect(201);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = send("second", "order-42").await;
    r.expect(200);
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(r.json()["duplicate"], true);
    assert_eq!(c.count("i").await, 1, "a repeat stores nothing");
    let r = send("other", "order-43").await;
    r.expect(201);
    assert_ne!(r.json()["id"], id.as_str());

    // Even after the first message is gone, the key still answers with its id.
    let m = c.pop("i").await.expect("a message");
    assert_eq!(&m.body[..], b"first");
    let r = send("third", "order-42").await;
    r.expect(200);
    assert_eq!(r.json()["id"], id.as_str());
    assert_eq!(c.count("i").await, 1);

    // In a batch too.
    let r = c
        .post_json(
            "/v1/queues/i/messages/batch",
            &json!({"messages": [{"body": "b", "idempotency_key": "order-42"}]}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["results"][0]["id"], id.as_str());
    assert_eq!(r.json()["results"][0]["duplicate"], true);
    assert_eq!(c.count("i").await, 1);
}

pub async fn batch_mixes_text_and_base64(c: &Client) {
    c.create("b", json!({})).await;
    let r = c
        .post_json(
            "/v1/queues/b/messages/batch",
            &json!({"messages": [
                {"body": "héllo", "content_type": "text/plain; charset=utf-8"},
                {"body_base64": "AP8B", "content_type": "application/octet-stream"},
                {"body": "{\"k\":1}", "content_type": "application/json", "ttl": 60},
            ]}),
        )
        .await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["succeeded"], 3);
    assert_eq!(v["failed"], 0);
    let ids: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().expect("an id per entry").to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(c.count("b").await, 3);

    let r = c.post("/v1/queues/b/pop?count=10").await;
    r.expect(200);
    let v = r.json();
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["id"], ids[0].as_str());
    assert_eq!(msgs[0]["body"], "héllo");
    assert_eq!(msgs[0]["content_type"], "text/plain; charset=utf-8");
    assert_eq!(msgs[1]["body_base64"], "AP8B");
    assert_eq!(msgs[1]["content_type"], "application/octet-stream");
    assert_eq!(msgs[2]["body"], "{\"k\":1}");
    assert_eq!(msgs[2]["content_type"], "application/json");
}

pub async fn batch_limits(c: &Client) {
    c.create("b", json!({})).await;
    let entries = |n: usize| json!({"messages": (0..n).map(|i| json!({"body": format!("m{i}")})).collect::<Vec<_>>()});
    c.post_json("/v1/queues/b/messages/batch", &entries(1001))
        .await
        .expect_error(400, "too_many_entries");
    assert_eq!(c.count("b").await, 0, "a refused batch stores nothing");
    c.post_json("/v1/queues/b/messages/batch", &entries(0)).await.expect_error(400, "invalid_body");

    // One bad entry refuses the whole batch, naming it.
    let r = c
        .post_json(
            "/v1/queues/b/messages/batch",
            &json!({"messages": [{"body": "ok"}, {"body_base64": "not base64!"}]}),
        )
        .await;
    r.expect_error(400, "invalid_body");
    assert!(r.message().contains("messages[1]"), "{}", r.message());
    let r = c
        .post_json(
            "/v1/queues/b/messages/batch",
            &json!({"messages": [{"body": "ok"}, {"body": "x", "body_base64": "eA=="}]}),
        )
        .await;
    r.expect_error(400, "invalid_body");
    let r = c
        .post_json(
            "/v1/queues/b/messages/batch",
            &json!({"messages": [{"body": "ok"}, {"body": "x", "delay": 100000}]}),
        )
        .await;
    r.expect_error(400, "invalid_value");
    assert_eq!(c.count("b").await, 0, "a refused batch stores nothing");

    let r = c.post_json("/v1/queues/b/messages/batch", &entries(1000)).await;
    r.expect(200);
    assert_eq!(r.json()["succeeded"], 1000);
    assert_eq!(r.json()["results"].as_array().unwrap().len(), 1000);
    assert_eq!(c.count("b").await, 1000);
    // FIFO across the batch.
    let r = c.post("/v1/queues/b/pop?count=100").await;
    r.expect(200);
    let v = r.json();
    for (i, m) in v["messages"].as_array().unwrap().iter().enumerate() {
        assert_eq!(m["body"], format!("m{i}"));
    }
}

pub async fn browse_pages_without_consuming(c: &Client) {
    c.create("br", json!({})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(c.push("br", format!("m{i}")).await);
    }
    let page = |path: String| async move {
        let r = c.get(&path).await;
        r.expect(200);
        r.json()
    };
    let ids_of = |v: &serde_json::Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let v = page("/v1/queues/br/messages?limit=2".into()).await;
    assert_eq!(ids_of(&v), ids[..2]);
    assert_eq!(v["messages"][0]["body"], "m0");
    assert_eq!(v["messages"][0]["receive_count"], 0);
    assert!(v["messages"][0].get("receipt").is_none());
    let next = v["next_after"].as_str().expect("a full page has next_after");
    assert_eq!(next, ids[1]);

    let v = page(format!("/v1/queues/br/messages?limit=2&after={next}")).await;
    assert_eq!(ids_of(&v), ids[2..4]);
    let v = page(format!("/v1/queues/br/messages?after={}", ids[3])).await;
    assert_eq!(ids_of(&v), ids[4..]);
    assert!(v["next_after"].is_null());

    let v = page("/v1/queues/br/messages?order=desc&limit=3".into()).await;
    let rev: Vec<String> = ids.iter().rev().take(3).cloned().collect();
    assert_eq!(ids_of(&v), rev);

    let v = page("/v1/queues/br/messages?limit=1000".into()).await;
    assert_eq!(ids_of(&v), ids);
    assert_eq!(c.count("br").await, 5, "browsing consumes nothing");
    assert_eq!(&c.pop("br").await.unwrap().body[..], b"m0");
}

pub async fn get_put_delete_by_id(c: &Client) {
    c.create("q", json!({})).await;
    let a = c.push("q", "alpha").await;
    let b = c.push("q", "beta").await;

    let r = c.get(&format!("/v1/queues/q/messages/{a}")).await;
    r.expect(200);
    assert_eq!(&r.body[..], b"alpha");
    assert_eq!(r.header("edgeq-message-id"), Some(a.as_str()));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("edgeq-receive-count"), Some("0"));
    // An id has one spelling: the same UUID in capitals or braces names nothing.
    for other in [a.to_uppercase(), format!("%7B{a}%7D")] {
        let r = c.send(c.req(Method::DELETE, &format!("/v1/queues/q/messages/{other}"))).await;
        r.expect_error(400, "invalid_message_id");
    }

    let r = c
        .send(
            c.req(Method::PUT, &format!("/v1/queues/q/messages/{a}"))
                .header("content-type", "application/json")
                .body("{\"v\":2}"),
        )
        .await;
    r.expect(204);
    let r = c.get(&format!("/v1/queues/q/messages/{a}")).await;
    r.expect(200);
    assert_eq!(&r.body[..], b"{\"v\":2}");
    assert_eq!(r.header("content-type"), Some("application/json"));

    c.send(c.req(Method::DELETE, &format!("/v1/queues/q/messages/{b}"))).await.expect(204);
    c.get(&format!("/v1/queues/q/messages/{b}")).await.expect_error(404, "message_not_found");
    c.send(c.req(Method::DELETE, &format!("/v1/queues/q/messages/{b}")))
        .await
        .expect_error(404, "message_not_found");
    c.send(c.req(Method::PUT, &format!("/v1/queues/q/messages/{b}")).body("z"))
        .await
        .expect_error(404, "message_not_found");
    assert_eq!(c.count("q").await, 1);

    // The overwritten message keeps its place and id.
    let m = c.pop("q").await.expect("a message");
    assert_eq!(m.header("edgeq-message-id"), Some(a.as_str()));
    assert_eq!(&m.body[..], b"{\"v\":2}");
    assert!(c.pop("q").await.is_none());
    c.get(&format!("/v1/queues/q/messages/{a}")).await.expect_error(404, "message_not_found");
}

pub async fn partitions_route_messages(c: &Client) {
    c.create("p", json!({"partitions": 3})).await;
    let send = |p: &'static str, body: &'static str| {
        c.send(c.req(Method::POST, "/v1/queues/p/messages").header("edgeq-partition", p).body(body))
    };
    send("2", "two-a").await.expect(201);
    send("0", "zero").await.expect(201);
    send("2", "two-b").await.expect(201);
    send("3", "nope").await.expect_error(400, "bad_request");
    c.post_json(
        "/v1/queues/p/messages/batch",
        &json!({"messages": [{"body": "one", "partition": 1}]}),
    )
    .await
    .expect(200);
    assert_eq!(c.count("p").await, 4);
    // A batch naming a partition the queue lacks is refused whole: the good
    // entry before the bad one is not stored either.
    let r = c
        .post_json(
            "/v1/queues/p/messages/batch",
            &json!({"messages": [{"body": "fine", "partition": 0}, {"body": "bad", "partition": 3}]}),
        )
        .await;
    r.expect_error(400, "bad_request");
    assert!(r.message().starts_with("messages[1]: "), "{}", r.message());
    assert_eq!(c.count("p").await, 4);

    let r = c.get("/v1/queues/p/messages?partition=2").await;
    r.expect(200);
    let bodies: Vec<String> = r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies, ["two-a", "two-b"], "FIFO within a partition");

    let m = c.receive("p", "partition=2").await.expect("a message of partition 2");
    assert_eq!(&m.body[..], b"two-a");
    let r = c.post("/v1/queues/p/receive?partition=1&count=10").await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["body"], "one");
    c.post("/v1/queues/p/receive?partition=3").await.expect_error(400, "bad_request");

    // Without a partition, every partition is served.
    let r = c.post("/v1/queues/p/pop?count=10").await;
    r.expect(200);
    let mut got: Vec<String> = r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["two-b", "zero"]);
}

pub async fn head_answers_like_get_without_a_body(c: &Client) {
    c.create("h", json!({})).await;
    // HEAD has the GET's headers, `Content-Length` included: the length of the body
    // it leaves out. (The queue is still empty: a queue's stats carry the age of
    // its oldest message, whose length could change between the two requests.)
    let same_length = |path: String| async move {
        let get = c.get(&path).await;
        get.expect(200);
        let head = c.send(c.req(Method::HEAD, &path)).await;
        head.expect(200);
        let get_len = get.header("content-length").map(str::to_owned);
        assert_eq!(get_len, Some(get.body.len().to_string()), "GET {path}");
        assert_eq!(head.header("content-length"), get_len.as_deref(), "HEAD {path}");
    };
    same_length("/v1/queues/h".to_owned()).await;
    let id = c.push("h", "body").await;
    same_length(format!("/v1/queues/h/messages/{id}")).await;
    for path in
        ["/v1/queues/h".to_owned(), "/v1/queues".into(), format!("/v1/queues/h/messages/{id}")]
    {
        let r = c.send(c.req(Method::HEAD, &path)).await;
        r.expect(200);
        assert!(r.body.is_empty(), "{path}");
    }
    let r = c.send(c.req(Method::HEAD, &format!("/v1/queues/h/messages/{id}"))).await;
    assert_eq!(r.header("edgeq-message-id"), Some(id.as_str()));
    c.send(c.req(Method::HEAD, "/v1/queues/none")).await.expect(404);
    assert_eq!(c.count("h").await, 1);
}
