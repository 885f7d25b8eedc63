//! Bad input: every kind the issue lists gets a 4xx with a JSON error that says
//! what is wrong, and nothing is stored or lost (checked through the stats and
//! the queue list after each refusal).

use crate::support::Client;
use reqwest::Method;
use serde_json::json;

/// The queue names listed.
async fn queue_names(c: &Client) -> Vec<String> {
    let r = c.get("/v1/queues").await;
    r.expect(200);
    r.json()["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A queue holding one message ("keep"), to check nothing changes.
async fn witness(c: &Client) -> serde_json::Value {
    c.create("w", json!({"visibility_timeout": 7})).await;
    c.push("w", "keep").await;
    c.get("/v1/queues/w").await.json()
}

/// Asserts the witness queue is exactly as `before`.
async fn unchanged(c: &Client, before: &serde_json::Value) {
    let now = c.get("/v1/queues/w").await.json();
    assert_eq!(now["config"], before["config"], "config changed");
    assert_eq!(now["stats"]["messages"], 1, "messages changed");
    assert_eq!(now["stats"]["bytes"], 4, "bytes changed");
    assert_eq!(queue_names(c).await, ["w"], "the queue list changed");
}

pub async fn malformed_json_stores_nothing(c: &Client) {
    let before = witness(c).await;
    for body in ["{", "{\"delay\":}", "nope", "{\"delay\":1,}", "\u{0}"] {
        let r = c.send(c.req(Method::PUT, "/v1/queues/new").body(body)).await;
        r.expect_error(400, "invalid_json");
        let r = c.send(c.req(Method::PUT, "/v1/queues/w").body(body)).await;
        r.expect_error(400, "invalid_json");
    }
    for path in [
        "/v1/queues/w/messages/batch",
        "/v1/queues/w/ack",
        "/v1/queues/w/nack",
        "/v1/queues/w/extend",
    ] {
        let r = c.send(c.req(Method::POST, path).body("{\"rece")).await;
        r.expect_error(400, "invalid_json");
        let r = c.send(c.req(Method::POST, path)).await;
        r.expect_error(400, "invalid_json");
    }
    unchanged(c, &before).await;
}

pub async fn unknown_fields_are_refused(c: &Client) {
    let before = witness(c).await;
    let r = c.put_queue("new", &json!({"partitons": 2})).await;
    r.expect_error(400, "invalid_body");
    assert!(r.message().contains("partitons"), "{}", r.message());
    c.put_queue("w", &json!({"visibility_timeout": 9, "colour": "red"}))
        .await
        .expect_error(400, "invalid_body");
    let r = c
        .post_json(
            "/v1/queues/w/messages/batch",
            &json!({"messages": [{"body": "x", "priority": 1}]}),
        )
        .await;
    r.expect_error(400, "invalid_body");
    assert!(r.message().contains("priority"), "{}", r.message());
    c.post_json(
        "/v1/queues/w/messages/batch",
        &json!({"messages": [{"body": "x"}], "atomic": true}),
    )
    .await
    .expect_error(400, "invalid_body");
    c.post_json("/v1/queues/w/ack", &json!({"receipts": ["r1.0.1.1"], "force": true}))
        .await
        .expect_error(400, "invalid_body");
    unchanged(c, &before).await;
}

pub async fn wrong_types_and_out_of_range_values(c: &Client) {
    let before = witness(c).await;
    for bad in [
        json!({"delay": "soon"}),
        json!({"partitions": -1}),
        json!({"public": "yes"}),
        json!({"max_messages": 1.5}),
        json!([]),
        json!("config"),
    ] {
        let r = c.put_queue("w", &bad).await;
        r.expect_error(400, "invalid_body");
    }
    for (bad, field) in [
        (json!({"delay": 100000}), "delay"),
        (json!({"visibility_timeout": 999999}), "visibility_timeout"),
        (json!({"message_ttl": 0}), "message_ttl"),
        (json!({"partitions": 0}), "partitions"),
        (json!({"partitions": 201}), "partitions"),
        (json!({"max_receives": 0}), "max_receives"),
        (json!({"max_messages": 0}), "max_messages"),
    ] {
        let r = c.put_queue("w", &bad).await;
        r.expect_error(400, "invalid_value");
        assert!(r.message().contains(field), "{field}: {}", r.message());
    }
    c.post_json("/v1/queues/w/messages/batch", &json!({"messages": "x"}))
        .await
        .expect_error(400, "invalid_body");
    c.post_json("/v1/queues/w/messages/batch", &json!({"messages": [{"body": 5}]}))
        .await
        .expect_error(400, "invalid_body");
    c.post_json("/v1/queues/w/ack", &json!({"receipts": "r1.0.1.1"}))
        .await
        .expect_error(400, "invalid_body");
    c.post_json("/v1/queues/w/nack", &json!({"receipts": ["r1.0.1.1"], "delay": 100000}))
        .await
        .expect_error(400, "invalid_value");
    c.post_json("/v1/queues/w/extend", &json!({"receipts": ["r1.0.1.1"]}))
        .await
        .expect_error(400, "invalid_body");
    unchanged(c, &before).await;
}

pub async fn bad_names_name_the_rule(c: &Client) {
    let before = witness(c).await;
    let long = "a".repeat(81);
    let cases = [
        ("/v1/queues/", "empty"),
        (&*format!("/v1/queues/{long}"), "80"),
        ("/v1/queues/a%20b", "only A-Z"),
        ("/v1/queues/a%2Fb", "only A-Z"),
        ("/v1/queues/caf%C3%A9", "only A-Z"),
        ("/v1/queues/a*b", "only A-Z"),
    ];
    for (path, rule) in cases {
        let r = c.send(c.req(Method::PUT, path).body("{}")).await;
        r.expect_error(400, "invalid_name");
        assert!(r.message().contains(rule), "{path}: {}", r.message());
        let r = c.send(c.req(Method::POST, &format!("{path}/messages")).body("x")).await;
        if path != "/v1/queues/" {
            r.expect_error(400, "invalid_name");
        }
    }
    // The longest valid name works.
    c.create(&"a".repeat(80), json!({})).await;
    c.send(c.req(Method::DELETE, &format!("/v1/queues/{}", "a".repeat(80)))).await.expect(204);
    unchanged(c, &before).await;
}

pub async fn oversized_bodies_are_413(c: &Client) {
    let before = witness(c).await;
    let over = vec![b'x'; (4 << 20) + 1];
    c.send(c.req(Method::POST, "/v1/queues/w/messages").body(over.clone()))
        .await
        .expect_error(413, "message_too_large");
    let id = c.get("/v1/queues/w/messages").await.json()["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    c.send(c.req(Method::PUT, &format!("/v1/queues/w/messages/{id}")).body(over))
        .await
        .expect_error(413, "message_too_large");
    // Far over any route's limit: refused from the declared length, before a
    // byte of the body is read (so the client sends none).
    for path in ["/v1/queues/w/messages", "/v1/queues/w/messages/batch"] {
        let r = c
            .raw(&format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                17 << 20
            ))
            .await;
        r.expect_error(413, "payload_too_large");
    }
    // A dialect's client gets that refusal in the dialect's shape.
    for (path, shape) in [
        ("/rest_queue/queues/w/push", "/detail"),
        ("/monty/Message", "/Error"),
        ("/queuey/v1/notes/w", "/error_msg/payload_too_large"),
    ] {
        let r = c
            .raw(&format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                17 << 20
            ))
            .await;
        r.expect(413);
        let message = r.json().pointer(shape).and_then(|m| m.as_str().map(str::to_owned));
        assert!(message.is_some_and(|m| m.contains("over")), "{path}: {:?}", r.json());
    }
    // A queue config is small.
    c.raw(&format!(
        "PUT /v1/queues/w HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        65 << 10
    ))
    .await
    .expect_error(413, "payload_too_large");
    // A batch entry over 4 MiB.
    let body = "y".repeat((4 << 20) + 1);
    c.post_json(
        "/v1/queues/w/messages/batch",
        &json!({"messages": [{"body": "fine"}, {"body": body}]}),
    )
    .await
    .expect_error(413, "message_too_large");
    unchanged(c, &before).await;
    let r = c.get(&format!("/v1/queues/w/messages/{id}")).await;
    r.expect(200);
    assert_eq!(&r.body[..], b"keep");
}

/// A body in chunks (no `content-length`) is read whole, and refused once it
/// passes the route's limit, which stores nothing.
pub async fn chunked_bodies_are_read_and_limited(c: &Client) {
    let before = witness(c).await;
    let chunked = |method: &str, path: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
             content-type: text/plain\r\nconnection: close\r\n\r\n{body}"
        )
    };
    let two = "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
    c.raw(&chunked("POST", "/v1/queues/w/messages", two)).await.expect(201);
    assert_eq!(c.count("w").await, 2);
    // A queue config is at most 64 KiB.
    let over = (64 << 10) + 1;
    let big = format!("{over:x}\r\n{}\r\n0\r\n\r\n", " ".repeat(over));
    c.raw(&chunked("PUT", "/v1/queues/w", &big)).await.expect_error(413, "payload_too_large");
    // The first message is still first; the chunked one came whole.
    assert_eq!(&c.pop("w").await.expect("the witness message").body[..], b"keep");
    assert_eq!(&c.pop("w").await.expect("the chunked message").body[..], b"hello");
    c.push("w", "keep").await;
    unchanged(c, &before).await;
}

pub async fn bad_header_values_store_nothing(c: &Client) {
    let before = witness(c).await;
    for (name, value, code) in [
        ("edgeq-delay", "soon", "invalid_header"),
        ("edgeq-delay", "-5", "invalid_header"),
        ("edgeq-delay", "1.5", "invalid_header"),
        ("edgeq-delay", "", "invalid_header"),
        ("edgeq-delay", "99999999999999999999999", "invalid_value"),
        ("edgeq-delay", "901", "invalid_value"),
        ("edgeq-ttl", "forever", "invalid_header"),
        ("edgeq-ttl", "0", "invalid_value"),
        ("edgeq-ttl", "99999999", "invalid_value"),
        ("edgeq-partition", "x", "invalid_header"),
        ("edgeq-partition", "5000", "invalid_value"),
        ("idempotency-key", "has space", "invalid_header"),
        ("idempotency-key", &"k".repeat(65), "invalid_header"),
        ("content-type", "text/plain;\tcharset=utf-8", "invalid_header"),
        ("content-type", &"t".repeat(256), "invalid_header"),
    ] {
        let r = c
            .send(c.req(Method::POST, "/v1/queues/w/messages").header(name, value).body("nope"))
            .await;
        r.expect_error(400, code);
        assert!(
            r.message().to_lowercase().contains(&name.to_lowercase())
                || r.message().contains("ttl")
                || r.message().contains("delay"),
            "{name}: {}",
            r.message()
        );
    }
    // Out-of-range refusals state the real bounds, never u64::MAX.
    for (name, value, bounds) in [
        ("edgeq-delay", "99999999999999999999999", "between 0 and 900"),
        ("edgeq-ttl", "99999999", "between 1 and 33554432"),
        ("edgeq-partition", "65536", "no queue has more than 200"),
    ] {
        let r = c
            .send(c.req(Method::POST, "/v1/queues/w/messages").header(name, value).body("nope"))
            .await;
        r.expect_error(400, "invalid_value");
        assert!(r.message().contains(bounds), "{name}: {}", r.message());
        assert!(!r.message().contains(&u64::MAX.to_string()), "{name}: {}", r.message());
    }
    // A partition the queue does not have.
    let r = c
        .send(
            c.req(Method::POST, "/v1/queues/w/messages")
                .header("edgeq-partition", "3")
                .body("nope"),
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{:?}", r.body);
    unchanged(c, &before).await;
}

pub async fn unknown_routes_are_404(c: &Client) {
    witness(c).await;
    // `/` is the dashboard (tests/conformance/web.rs).
    for path in [
        "/index.html",
        "/nope",
        "/v2/queues",
        "/v1",
        "/v1/queue",
        "/v1/queues/w/bogus",
        "/v1/queues/w/messages/batch/x",
        "/v1/queues/w/messages/a/b/c",
    ] {
        c.get(path).await.expect_error(404, "not_found");
        c.post(path).await.expect_error(404, "not_found");
    }
}

pub async fn wrong_methods_are_405_with_allow(c: &Client) {
    let before = witness(c).await;
    for (method, path, allow) in [
        (Method::POST, "/v1/queues", "GET, HEAD"),
        (Method::PATCH, "/v1/queues/w", "GET, HEAD, PUT, DELETE"),
        (Method::POST, "/v1/queues/w", "GET, HEAD, PUT, DELETE"),
        (Method::GET, "/v1/queues/w/purge", "POST"),
        (Method::DELETE, "/v1/queues/w/messages", "GET, HEAD, POST"),
        (Method::PUT, "/v1/queues/w/messages/batch", "POST"),
        (Method::GET, "/v1/queues/w/pop", "POST"),
        (Method::GET, "/v1/queues/w/receive", "POST"),
        (Method::GET, "/v1/queues/w/ack", "POST"),
        (Method::PUT, "/v1/queues/w/nack", "POST"),
        (Method::DELETE, "/v1/queues/w/extend", "POST"),
        (Method::DELETE, "/healthz", "GET, HEAD"),
    ] {
        let r = c.send(c.req(method.clone(), path)).await;
        r.expect_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    unchanged(c, &before).await;
}

pub async fn bad_query_parameters(c: &Client) {
    let before = witness(c).await;
    // Unknown, repeated or malformed (not of the parameter's type, not UTF-8 once
    // percent-decoded, a cursor the server did not hand out): invalid_query.
    for path in [
        "/v1/queues?limit=lots",
        "/v1/queues?details=maybe",
        "/v1/queues?colour=red",
        "/v1/queues?limit=1&limit=2",
        "/v1/queues?cursor=garbage",
        "/v1/queues?prefix=%FF",
        "/v1/queues/w/messages?order=sideways",
        "/v1/queues/w/messages?order=%FF",
        "/v1/queues/w/messages?after=nope",
        "/v1/queues/w?verbose=1",
    ] {
        c.get(path).await.expect_error(400, "invalid_query");
    }
    for path in [
        "/v1/queues/w/pop?count=-1",
        "/v1/queues/w/receive?wait=soon",
        "/v1/queues/w/receive?visibility_timeout=x",
        "/v1/queues/w/purge?all=true",
    ] {
        c.post(path).await.expect_error(400, "invalid_query");
    }
    // Well-formed numbers out of range: invalid_value, whichever the parameter,
    // and the message names the bounds.
    for (path, bounds) in [
        ("/v1/queues?limit=0", "between 1 and 1000"),
        ("/v1/queues?limit=1001", "between 1 and 1000"),
        ("/v1/queues/w/messages?limit=0", "between 1 and 1000"),
        ("/v1/queues/w/messages?limit=1001", "between 1 and 1000"),
        ("/v1/queues/w/messages?partition=200", "no queue has more than 200"),
    ] {
        let r = c.get(path).await;
        r.expect_error(400, "invalid_value");
        assert!(r.message().contains(bounds), "{path}: {}", r.message());
    }
    for (path, bounds) in [
        ("/v1/queues/w/pop?count=0", "between 1 and 100"),
        ("/v1/queues/w/pop?count=101", "between 1 and 100"),
        ("/v1/queues/w/receive?count=101", "between 1 and 100"),
        ("/v1/queues/w/receive?wait=21", "between 0 and 20"),
        ("/v1/queues/w/receive?visibility_timeout=43201", "between 0 and 43200"),
        ("/v1/queues/w/receive?visibility_timeout=999999", "between 0 and 43200"),
        ("/v1/queues/w/receive?partition=999", "no queue has more than 200"),
    ] {
        let r = c.post(path).await;
        r.expect_error(400, "invalid_value");
        assert!(r.message().contains(bounds), "{path}: {}", r.message());
    }
    // Booleans are true, false, 1 or 0, and the refusal says so.
    let r = c.send(c.req(Method::DELETE, "/v1/queues/w?if_empty=perhaps")).await;
    r.expect_error(400, "invalid_query");
    assert!(r.message().contains("true, false, 1 or 0"), "{}", r.message());
    unchanged(c, &before).await;
}

pub async fn bad_receipts_and_ids(c: &Client) {
    let before = witness(c).await;
    for bad in [
        "nope",
        "",
        "r1.2.3",
        "r1.2.0.4",
        "r1.99999.3.4",
        "r0.0.1.0",
        "r0.0.1.0.0000000g",
        "r00.0.1.0.00000000",
        "r0.0.+1.0.00000000",
    ] {
        c.ack("w", &[bad]).await.expect_error(400, "invalid_receipt");
    }
    c.ack("w", &[]).await.expect_error(400, "invalid_body");
    let many: Vec<String> = (0..1001).map(|i| format!("r1.0.{i}.1.00000000")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    c.ack("w", &refs).await.expect_error(400, "too_many_entries");
    // A lease of another queue: its receipt may be spelled like one of `w`'s
    // (both queues' first lease), and must not acknowledge `w`'s message.
    c.create("other", json!({})).await;
    c.push("other", "theirs").await;
    let theirs = c.receive("other", "visibility_timeout=60").await.expect("a message");
    let theirs = theirs.header("edgeq-receipt").expect("a receipt").to_owned();
    let r = c.ack("w", &[&theirs]).await;
    r.expect_error(400, "invalid_receipt");
    assert!(r.message().contains("another queue"), "{}", r.message());
    c.ack("other", &[&theirs]).await.expect(200);
    c.send(c.req(Method::DELETE, "/v1/queues/other")).await.expect(204);
    // Well-formed receipts of `w` that no lease had: another lease of the
    // witness is stale; one of a slot with no message acknowledges a message
    // that is gone, which is not an error (as acknowledging twice is not).
    let ours = c.receive("w", "visibility_timeout=60").await.expect("the witness");
    let ours = ours.header("edgeq-receipt").expect("a receipt").to_owned();
    let with = |i: usize, v: &str| {
        let mut parts: Vec<&str> = ours.split('.').collect();
        parts[i] = v;
        parts.join(".")
    };
    c.ack("w", &[&with(3, "7")]).await.expect_error(409, "stale_receipt");
    c.ack("w", &[&with(2, "999999")]).await.expect(200);
    let nack = json!({"receipts": [ours], "delay": 0});
    c.post_json("/v1/queues/w/nack", &nack).await.expect(200);
    for id in ["nope", "0190f1d6-2c3e-1000-8000-000000000001"] {
        c.get(&format!("/v1/queues/w/messages/{id}")).await.expect_error(400, "invalid_message_id");
    }
    c.get("/v1/queues/w/messages/0190f1d6-2c3e-7000-8000-000000000001")
        .await
        .expect_error(404, "message_not_found");
    unchanged(c, &before).await;
}

pub async fn full_queue_is_507_and_keeps_what_it_holds(c: &Client) {
    c.create("full", json!({"max_messages": 2})).await;
    c.push("full", "a").await;
    c.push("full", "b").await;
    c.send(c.req(Method::POST, "/v1/queues/full/messages").body("c"))
        .await
        .expect_error(507, "queue_full");
    let r =
        c.post_json("/v1/queues/full/messages/batch", &json!({"messages": [{"body": "d"}]})).await;
    r.expect(200);
    assert_eq!(r.json()["failed"], 1);
    assert_eq!(r.json()["results"][0]["error"]["code"], "queue_full");
    assert_eq!(c.count("full").await, 2);

    c.create("bytes", json!({"max_bytes": 10})).await;
    c.push("bytes", "0123456789").await;
    c.send(c.req(Method::POST, "/v1/queues/bytes/messages").body("x"))
        .await
        .expect_error(507, "queue_full");
    assert_eq!(c.stats("bytes").await["bytes"], 10);

    // Room again once a message is gone.
    assert_eq!(&c.pop("full").await.unwrap().body[..], b"a");
    c.push("full", "c").await;
    assert_eq!(&c.pop("full").await.unwrap().body[..], b"b");
    assert_eq!(&c.pop("full").await.unwrap().body[..], b"c");
}
