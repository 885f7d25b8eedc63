//! Delivery: pop (FIFO, destructive), receive / ack / nack / extend, lease
//! expiry, dead-lettering and long polling. Short visibility timeouts are waited
//! for by polling, never by fixed sleeps, and nothing asserts on timing.

use crate::support::{eventually, Client};
use serde_json::json;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(15);

fn receipt(r: &crate::support::Resp) -> String {
    r.header("edgeq-receipt").expect("a received message has a receipt").to_owned()
}

pub async fn pop_is_fifo_and_destructive(c: &Client) {
    c.create("f", json!({})).await;
    for i in 0..20 {
        c.push("f", format!("m{i:02}")).await;
    }
    for i in 0..20 {
        let m = c.pop("f").await.expect("a message");
        assert_eq!(m.body, format!("m{i:02}").into_bytes());
        assert!(m.header("edgeq-receipt").is_none(), "pop gives no receipt");
    }
    assert!(c.pop("f").await.is_none());
    assert_eq!(c.count("f").await, 0);
}

pub async fn pop_with_count_is_an_envelope(c: &Client) {
    c.create("f", json!({})).await;
    for i in 0..5 {
        c.push("f", format!("m{i}")).await;
    }
    let r = c.post("/v1/queues/f/pop?count=3").await;
    r.expect(200);
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    let v = r.json();
    let bodies: Vec<&str> =
        v["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["m0", "m1", "m2"]);
    // count=1 is still an envelope.
    let r = c.post("/v1/queues/f/pop?count=1").await;
    r.expect(200);
    assert_eq!(r.json()["messages"][0]["body"], "m3");
    let r = c.post("/v1/queues/f/pop?count=100").await;
    r.expect(200);
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 1);
    c.post("/v1/queues/f/pop?count=10").await.expect(204);
}

pub async fn receive_then_ack(c: &Client) {
    c.create("l", json!({})).await;
    let id = c.push("l", "work").await;
    let m = c.receive("l", "visibility_timeout=60").await.expect("a message");
    assert_eq!(&m.body[..], b"work");
    assert_eq!(m.header("edgeq-message-id"), Some(id.as_str()));
    assert_eq!(m.header("edgeq-receive-count"), Some("1"));
    assert_eq!(m.header("content-type"), Some("text/plain"));
    assert!(m.header("edgeq-lease-until").is_some());
    let r = receipt(&m);

    assert!(c.receive("l", "").await.is_none(), "a leased message is hidden");
    let stats = c.stats("l").await;
    assert_eq!(stats["messages"], 1);
    assert_eq!(stats["in_flight"], 1);

    let a = c.ack("l", &[&r]).await;
    a.expect(200);
    let v = a.json();
    assert_eq!(v["succeeded"], 1);
    assert_eq!(v["results"][0]["receipt"], r.as_str());
    assert!(v["results"][0].get("error").is_none());
    assert_eq!(c.count("l").await, 0);

    // Acknowledging twice is not an error (a client retrying a lost answer).
    c.ack("l", &[&r]).await.expect(200);
    // But the lease is over: it cannot be extended or nacked any more.
    let body = json!({"receipts": [r], "visibility_timeout": 30});
    c.post_json("/v1/queues/l/extend", &body).await.expect_error(409, "stale_receipt");
    assert!(c.receive("l", "").await.is_none());
}

pub async fn receive_many_and_ack_in_one_call(c: &Client) {
    c.create("l", json!({})).await;
    for i in 0..4 {
        c.push("l", format!("m{i}")).await;
    }
    let r = c.post("/v1/queues/l/receive?count=10&visibility_timeout=60").await;
    r.expect(200);
    let v = r.json();
    let msgs = v["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    let mut receipts = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m["body"], format!("m{i}"));
        assert_eq!(m["receive_count"], 1);
        assert!(m["lease_until"].as_u64().is_some());
        receipts.push(m["receipt"].as_str().expect("a receipt").to_owned());
    }
    let refs: Vec<&str> = receipts.iter().map(String::as_str).collect();
    let a = c.ack("l", &refs).await;
    a.expect(200);
    assert_eq!(a.json()["succeeded"], 4);
    assert_eq!(a.json()["failed"], 0);
    assert_eq!(c.count("l").await, 0);
}

pub async fn nack_makes_visible_again(c: &Client) {
    c.create("l", json!({})).await;
    c.push("l", "retry-me").await;
    let m = c.receive("l", "visibility_timeout=600").await.expect("a message");
    let r1 = receipt(&m);
    let n = c.post_json("/v1/queues/l/nack", &json!({"receipts": [r1]})).await;
    n.expect(200);
    assert_eq!(n.json()["succeeded"], 1);
    let m = eventually("the nacked message", PATIENCE, || c.receive("l", "visibility_timeout=600"))
        .await;
    assert_eq!(&m.body[..], b"retry-me");
    assert_eq!(m.header("edgeq-receive-count"), Some("2"));
    let r2 = receipt(&m);
    assert_ne!(r1, r2);
    c.ack("l", &[&r1]).await.expect_error(409, "stale_receipt");
    c.ack("l", &[&r2]).await.expect(200);
    assert_eq!(c.count("l").await, 0);

    // A nack with a delay hides it for that long.
    c.push("l", "later").await;
    let m = c.receive("l", "").await.expect("a message");
    c.post_json("/v1/queues/l/nack", &json!({"receipts": [receipt(&m)], "delay": 600}))
        .await
        .expect(200);
    assert!(c.receive("l", "").await.is_none());
    assert_eq!(c.count("l").await, 1);
}

pub async fn expired_lease_is_redelivered_and_old_receipt_stale(c: &Client) {
    c.create("l", json!({})).await;
    c.push("l", "x").await;
    let m = c.receive("l", "visibility_timeout=1").await.expect("a message");
    let old = receipt(&m);
    let m = eventually("the lease to expire", PATIENCE, || c.receive("l", "visibility_timeout=60"))
        .await;
    assert_eq!(&m.body[..], b"x");
    assert_eq!(m.header("edgeq-receive-count"), Some("2"));
    let new = receipt(&m);
    c.ack("l", &[&old]).await.expect_error(409, "stale_receipt");
    c.post_json("/v1/queues/l/extend", &json!({"receipts": [old], "visibility_timeout": 60}))
        .await
        .expect_error(409, "stale_receipt");
    c.ack("l", &[&new]).await.expect(200);
    assert_eq!(c.count("l").await, 0);
}

pub async fn extend_keeps_the_lease(c: &Client) {
    c.create("l", json!({})).await;
    c.push("l", "x").await;
    let start = Instant::now();
    let m = c.receive("l", "visibility_timeout=2").await.expect("a message");
    let r = receipt(&m);
    let e = c
        .post_json("/v1/queues/l/extend", &json!({"receipts": [r], "visibility_timeout": 600}))
        .await;
    // The extension succeeded, so the lease now ends 600 s after it: once the
    // original 2 s are certainly over, the message must still be hidden.
    e.expect(200);
    assert_eq!(e.json()["succeeded"], 1);
    let wait = Duration::from_millis(2500).saturating_sub(start.elapsed());
    tokio::time::sleep(wait).await;
    assert!(c.receive("l", "").await.is_none(), "an extended lease is still held");
    c.ack("l", &[&r]).await.expect(200);
    assert_eq!(c.count("l").await, 0);
}

pub async fn receipt_batches_report_per_receipt(c: &Client) {
    c.create("l", json!({})).await;
    c.push("l", "a").await;
    c.push("l", "b").await;
    let r = c.post("/v1/queues/l/receive?count=2").await;
    r.expect(200);
    let v = r.json();
    let ra = v["messages"][0]["receipt"].as_str().unwrap().to_owned();
    let rb = v["messages"][1]["receipt"].as_str().unwrap().to_owned();
    c.ack("l", &[&ra]).await.expect(200);

    let a = c.ack("l", &[&ra, "garbage", &rb]).await;
    a.expect(200);
    let v = a.json();
    // `ra` again: acknowledging twice succeeds; `garbage` is refused.
    assert_eq!(v["succeeded"], 2);
    assert_eq!(v["failed"], 1);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["receipt"], ra.as_str());
    assert!(results[0].get("error").is_none());
    assert_eq!(results[1]["receipt"], "garbage");
    assert_eq!(results[1]["error"]["code"], "invalid_receipt");
    assert_eq!(results[2]["receipt"], rb.as_str());
    assert!(results[2].get("error").is_none());
    assert_eq!(c.count("l").await, 0);
}

pub async fn dead_letter_after_max_receives(c: &Client) {
    c.create("dlq", json!({})).await;
    c.create("work", json!({"max_receives": 2, "dead_letter_queue": "dlq"})).await;
    c.push("work", "poison").await;
    let deliveries = std::cell::Cell::new(0u32);
    let moved = eventually("the message to be dead-lettered", PATIENCE, || {
        let deliveries = &deliveries;
        async move {
            if let Some(m) = c.receive("work", "").await {
                deliveries.set(deliveries.get() + 1);
                let n: u32 = m.header("edgeq-receive-count").unwrap().parse().unwrap();
                assert!(n <= 2, "delivered past max_receives: {n}");
                c.post_json("/v1/queues/work/nack", &json!({"receipts": [receipt(&m)]}))
                    .await
                    .expect(200);
                return None;
            }
            c.pop("dlq").await
        }
    })
    .await;
    assert_eq!(&moved.body[..], b"poison");
    assert_eq!(deliveries.get(), 2);
    assert!(c.receive("work", "").await.is_none());
    assert_eq!(c.count("work").await, 0);
    assert_eq!(c.stats("work").await["dead_lettered"], 1);
}

pub async fn long_poll_returns_a_message_sent_meanwhile(c: &Client) {
    c.create("lp", json!({})).await;
    // Nothing arrives: the long poll ends by itself with 204.
    c.post("/v1/queues/lp/receive?wait=1").await.expect(204);

    let sender = c.clone();
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.push("lp", "awaited").await
    });
    let r = c.post("/v1/queues/lp/receive?wait=20").await;
    let id = send.await.expect("the sender finished");
    r.expect(200);
    assert_eq!(&r.body[..], b"awaited");
    assert_eq!(r.header("edgeq-message-id"), Some(id.as_str()));
}

pub async fn long_poll_with_count_returns_an_envelope(c: &Client) {
    c.create("lp", json!({})).await;
    c.post("/v1/queues/lp/receive?wait=1&count=5").await.expect(204);
    let sender = c.clone();
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sender
            .post_json("/v1/queues/lp/messages/batch", &json!({"messages": [{"body": "x"}]}))
            .await
            .expect(200);
    });
    let r = c.post("/v1/queues/lp/receive?wait=20&count=5&visibility_timeout=60").await;
    send.await.expect("the sender finished");
    r.expect(200);
    let v = r.json();
    assert_eq!(v["messages"][0]["body"], "x");
    assert!(v["messages"][0]["receipt"].is_string());
}
