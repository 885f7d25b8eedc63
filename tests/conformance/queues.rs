//! Queue routes: create/update/get/list/delete/purge.

use crate::support::Client;
use reqwest::Method;
use serde_json::json;

pub async fn create_get_update(c: &Client) {
    let r = c.put_queue("orders", &json!({})).await;
    r.expect(201);
    assert_eq!(r.header("location"), Some("/v1/queues/orders"));
    let v = r.json();
    assert_eq!(v["name"], "orders");
    assert_eq!(v["config"]["visibility_timeout"], 30);
    assert_eq!(v["config"]["partitions"], 1);
    assert!(v["created_at"].as_u64().is_some_and(|t| t > 0));

    // Idempotent: the same PUT again is 200 and changes nothing.
    let r = c.put_queue("orders", &json!({})).await;
    r.expect(200);
    assert_eq!(r.json()["config"], v["config"]);

    // Update: a PUT replaces the whole configuration.
    let r = c.put_queue("orders", &json!({"visibility_timeout": 5, "max_receives": 3})).await;
    r.expect(200);
    assert_eq!(r.json()["config"]["visibility_timeout"], 5);
    assert_eq!(r.json()["config"]["max_receives"], 3);

    let r = c.get("/v1/queues/orders").await;
    r.expect(200);
    let got = r.json();
    assert_eq!(got["config"]["visibility_timeout"], 5);
    assert_eq!(got["stats"]["messages"], 0);
    assert_eq!(got["stats"]["in_flight"], 0);

    // The config read back can be PUT back unchanged.
    let r = c.put_queue("orders", &got["config"]).await;
    r.expect(200);
    assert_eq!(r.json()["config"], got["config"]);

    // An empty body means every default.
    let r = c.send(c.req(Method::PUT, "/v1/queues/orders")).await;
    r.expect(200);
    assert_eq!(r.json()["config"]["visibility_timeout"], 30);
    assert!(r.json()["config"]["max_receives"].is_null());
}

pub async fn list_paginates_with_prefix_and_details(c: &Client) {
    let names = ["a1", "a2", "b1", "a3", "b2"];
    for n in names {
        c.create(n, json!({})).await;
    }
    c.push("a2", "x").await;

    // Page through everything two at a time.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            None => "/v1/queues?limit=2".to_owned(),
            Some(cur) => format!("/v1/queues?limit=2&cursor={cur}"),
        };
        let r = c.get(&path).await;
        r.expect(200);
        let v = r.json();
        let page = v["queues"].as_array().expect("queues is a list").clone();
        assert!(page.len() <= 2);
        for q in &page {
            assert!(q.get("stats").is_none(), "no stats without details: {q}");
            seen.push(q["name"].as_str().unwrap().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, names, "every queue once, in creation order");

    // Prefix.
    let r = c.get("/v1/queues?prefix=a").await;
    r.expect(200);
    let got: Vec<String> = r.json()["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["a1", "a2", "a3"]);

    // Details.
    let r = c.get("/v1/queues?prefix=a2&details=true").await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["queues"].as_array().unwrap().len(), 1);
    assert_eq!(v["queues"][0]["stats"]["messages"], 1);
    assert!(v["next_cursor"].is_null());

    // Nothing matches.
    let r = c.get("/v1/queues?prefix=zz").await;
    r.expect(200);
    assert_eq!(r.json()["queues"].as_array().unwrap().len(), 0);
}

pub async fn delete_if_empty(c: &Client) {
    c.create("q", json!({})).await;
    c.push("q", "one").await;
    c.send(c.req(Method::DELETE, "/v1/queues/q?if_empty=true"))
        .await
        .expect_error(409, "queue_not_empty");
    assert_eq!(c.count("q").await, 1, "a refused delete keeps the queue");
    // `1` is `true`, as for every boolean parameter.
    c.send(c.req(Method::DELETE, "/v1/queues/q?if_empty=1"))
        .await
        .expect_error(409, "queue_not_empty");
    assert_eq!(c.count("q").await, 1, "a refused delete keeps the queue");

    c.send(c.req(Method::DELETE, "/v1/queues/q")).await.expect(204);
    c.get("/v1/queues/q").await.expect_error(404, "queue_not_found");
    c.send(c.req(Method::DELETE, "/v1/queues/q")).await.expect_error(404, "queue_not_found");

    // An empty queue goes with if_empty; a recreated queue starts empty.
    c.create("e", json!({})).await;
    c.send(c.req(Method::DELETE, "/v1/queues/e?if_empty=true")).await.expect(204);
    c.create("q", json!({})).await;
    assert_eq!(c.count("q").await, 0);
    assert!(c.pop("q").await.is_none());
    let r = c.get("/v1/queues").await;
    let names: Vec<String> = r.json()["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["q"], "deleted queues are not listed");
}

pub async fn purge_empties_the_queue(c: &Client) {
    c.create("q", json!({})).await;
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(c.push("q", format!("m{i}")).await);
    }
    let r = c.post("/v1/queues/q/purge").await;
    r.expect(200);
    assert_eq!(r.json()["purged"], 3);
    assert_eq!(c.count("q").await, 0);
    assert!(c.pop("q").await.is_none());
    // The queue itself stays and works. Its slots start over, but no id repeats
    // one from before the purge, and those ids find nothing.
    let after = c.push("q", "after").await;
    assert!(!before.contains(&after), "{after} was given out before the purge");
    c.get(&format!("/v1/queues/q/messages/{}", before[0]))
        .await
        .expect_error(404, "message_not_found");
    assert_eq!(&c.pop("q").await.expect("a message").body[..], b"after");
}

pub async fn routes_of_a_missing_queue_are_404(c: &Client) {
    let q = "/v1/queues/ghost";
    c.get(q).await.expect_error(404, "queue_not_found");
    c.post(&format!("{q}/purge")).await.expect_error(404, "queue_not_found");
    c.send(c.req(Method::POST, &format!("{q}/messages")).body("x"))
        .await
        .expect_error(404, "queue_not_found");
    c.post_json(&format!("{q}/messages/batch"), &json!({"messages": [{"body": "x"}]}))
        .await
        .expect_error(404, "queue_not_found");
    c.get(&format!("{q}/messages")).await.expect_error(404, "queue_not_found");
    c.post(&format!("{q}/pop")).await.expect_error(404, "queue_not_found");
    c.post(&format!("{q}/receive")).await.expect_error(404, "queue_not_found");
    // Nothing was created on the way.
    let r = c.get("/v1/queues").await;
    assert_eq!(r.json()["queues"].as_array().unwrap().len(), 0);
}

pub async fn partitions_only_grow(c: &Client) {
    c.create("p", json!({"partitions": 2})).await;
    c.put_queue("p", &json!({"partitions": 4})).await.expect(200);
    c.put_queue("p", &json!({"partitions": 1})).await.expect_error(409, "partitions_cannot_shrink");
    let r = c.get("/v1/queues/p").await;
    assert_eq!(r.json()["config"]["partitions"], 4);
}

pub async fn dead_letter_queue_must_exist(c: &Client) {
    c.put_queue("q", &json!({"max_receives": 2, "dead_letter_queue": "nope"}))
        .await
        .expect_error(400, "invalid_dead_letter_queue");
    c.get("/v1/queues/q").await.expect_error(404, "queue_not_found");
    c.put_queue("q", &json!({"dead_letter_queue": "bad name"}))
        .await
        .expect_error(400, "invalid_value");
    // `..` is no name: clients resolve it as a path segment, even as `%2E%2E`.
    let r = c.put_queue("q", &json!({"dead_letter_queue": ".."})).await;
    r.expect_error(400, "invalid_value");
    assert!(r.message().contains("relative path"), "{}", r.message());
}
