//! API keys, on hosts started with an admin key (`support::ADMIN_KEY`): every
//! route refuses a missing, unknown, revoked and wrong-scope key with its
//! 401/403 JSON error and changes nothing, and serves the right key.

use crate::support::{Client, Resp, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};

/// `method path` with `body`, as `key` (none: no `Authorization` header).
async fn call(c: &Client, key: Option<&str>, method: &str, path: &str, body: &str) -> Resp {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let mut rb = c.req(method, path).header("content-type", "application/json");
    if let Some(key) = key {
        rb = rb.bearer_auth(key);
    }
    if !body.is_empty() {
        rb = rb.body(body.to_owned());
    }
    c.send(rb).await
}

/// Creates a key as the admin; returns `(id, key)`.
async fn new_key(c: &Client, namespace: &str, rights: &[&str]) -> (u64, String) {
    let body = json!({ "namespace": namespace, "rights": rights }).to_string();
    let r = call(c, Some(ADMIN_KEY), "POST", "/v1/keys", &body).await;
    r.expect(201);
    let v = r.json();
    (v["id"].as_u64().expect("an id"), v["key"].as_str().expect("the key").to_owned())
}

/// Queues with their counts, exchanges with their bindings, and the keys: what a
/// refused request must not change.
async fn snapshot(c: &Client) -> Value {
    let r = call(c, Some(ADMIN_KEY), "GET", "/v1/queues?details=true", "").await;
    r.expect(200);
    let queues: Vec<Value> = r.json()["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| {
            let s = &q["stats"];
            json!([q["name"], q["config"], s["messages"], s["bytes"], s["in_flight"]])
        })
        .collect();
    let mut exchanges = Vec::new();
    for x in ["ex", "ex2", "exdel"] {
        let r = call(c, Some(ADMIN_KEY), "GET", &format!("/v1/exchanges/{x}"), "").await;
        exchanges.push(json!([r.status.as_u16(), String::from_utf8_lossy(&r.body)]));
    }
    let r = call(c, Some(ADMIN_KEY), "GET", "/v1/keys", "").await;
    r.expect(200);
    json!({ "queues": queues, "exchanges": exchanges, "keys": r.json()["keys"] })
}

async fn send(c: &Client, q: &str, body: &str) -> String {
    let r = call(c, Some(ADMIN_KEY), "POST", &format!("/v1/queues/{q}/messages"), body).await;
    r.expect(201);
    r.json()["id"].as_str().expect("an id").to_owned()
}

pub async fn every_route_refuses_bad_keys_and_serves_the_right_one(c: &Client) {
    for q in ["q", "del", "pur"] {
        let r = call(c, Some(ADMIN_KEY), "PUT", &format!("/v1/queues/{q}"), "").await;
        r.expect(201);
    }
    let fanout = r#"{"type":"fanout"}"#;
    for x in ["ex", "exdel"] {
        let r = call(c, Some(ADMIN_KEY), "PUT", &format!("/v1/exchanges/{x}"), fanout).await;
        r.expect(201);
    }
    // A receipt of `q` that names no lease: one of a lease acknowledged at once,
    // moved to a later generation of the queue.
    send(c, "q", "\"leased\"").await;
    let leased = call(c, Some(ADMIN_KEY), "POST", "/v1/queues/q/receive", "").await;
    let leased = leased.header("edgeq-receipt").expect("a receipt").to_owned();
    let ack = json!({ "receipts": [leased] }).to_string();
    call(c, Some(ADMIN_KEY), "POST", "/v1/queues/q/ack", &ack).await.expect(200);
    let (generation, rest) = leased[1..].split_once('.').expect("r<generation>.…");
    let stale = format!("r{}.{rest}", generation.parse::<u64>().expect("a number") + 1);
    for i in 0..4 {
        send(c, "q", &format!("{{\"n\":{i}}}")).await;
    }
    let id = send(c, "q", "\"by id\"").await;
    let doomed = send(c, "q", "\"deleted by id\"").await;
    let mut keys = std::collections::HashMap::new();
    for right in ["admin", "produce", "consume", "browse"] {
        keys.insert(right, new_key(c, "default", &[right]).await.1);
    }
    let (_, other_ns) = new_key(c, "other", &["admin"]).await;
    let (revoked_id, revoked) = new_key(c, "default", &["admin"]).await;
    call(c, Some(ADMIN_KEY), "DELETE", &format!("/v1/keys/{revoked_id}"), "").await.expect(204);
    let (victim, _) = new_key(c, "default", &["browse"]).await;

    let receipt = json!({ "receipts": [stale] }).to_string();
    let nack = json!({ "receipts": [stale], "delay": 0 }).to_string();
    let extend = json!({ "receipts": [stale], "visibility_timeout": 5 }).to_string();
    let batch = json!({ "messages": [{ "body": "b" }] }).to_string();
    let new_key_body = json!({ "rights": ["browse"] }).to_string();
    // Every route of the table in routes.rs that needs a key: (method, path, body,
    // the right it needs, a right that is not enough, the status the right key gets).
    let cases: Vec<(&str, String, String, &str, &str, u16)> = vec![
        ("GET", "/metrics".into(), "".into(), "admin", "browse", 200),
        ("GET", "/v1/queues".into(), "".into(), "browse", "produce", 200),
        ("GET", "/v1/queues/q".into(), "".into(), "browse", "consume", 200),
        ("PUT", "/v1/queues/new".into(), "".into(), "admin", "produce", 201),
        ("DELETE", "/v1/queues/del".into(), "".into(), "admin", "consume", 204),
        ("POST", "/v1/queues/pur/purge".into(), "".into(), "admin", "browse", 200),
        ("GET", "/v1/queues/q/messages".into(), "".into(), "browse", "produce", 200),
        ("POST", "/v1/queues/q/messages".into(), "{}".into(), "produce", "consume", 201),
        ("POST", "/v1/queues/q/messages/batch".into(), batch, "produce", "browse", 200),
        ("GET", format!("/v1/queues/q/messages/{id}"), "".into(), "browse", "consume", 200),
        ("PUT", format!("/v1/queues/q/messages/{id}"), "1".into(), "produce", "browse", 204),
        ("DELETE", format!("/v1/queues/q/messages/{doomed}"), "".into(), "consume", "produce", 204),
        ("POST", "/v1/queues/q/pop".into(), "".into(), "consume", "browse", 200),
        ("POST", "/v1/queues/q/receive".into(), "".into(), "consume", "produce", 200),
        // The receipt names no lease: past auth, the engine says so.
        ("POST", "/v1/queues/q/ack".into(), receipt, "consume", "browse", 409),
        ("POST", "/v1/queues/q/nack".into(), nack, "consume", "produce", 409),
        ("POST", "/v1/queues/q/extend".into(), extend, "consume", "browse", 409),
        ("GET", "/v1/exchanges/ex".into(), "".into(), "browse", "produce", 200),
        ("PUT", "/v1/exchanges/ex2".into(), fanout.into(), "admin", "produce", 201),
        ("DELETE", "/v1/exchanges/exdel".into(), "".into(), "admin", "browse", 204),
        ("PUT", "/v1/exchanges/ex/bindings/q".into(), "".into(), "admin", "produce", 204),
        ("DELETE", "/v1/exchanges/ex/bindings/q".into(), "".into(), "admin", "consume", 204),
        ("POST", "/v1/exchanges/ex/publish".into(), "{}".into(), "produce", "consume", 200),
        ("GET", "/v1/keys".into(), "".into(), "admin", "consume", 200),
        ("POST", "/v1/keys".into(), new_key_body, "admin", "produce", 201),
        ("DELETE", format!("/v1/keys/{victim}"), "".into(), "admin", "browse", 204),
    ];
    for (method, path, body, right, weak, ok) in &cases {
        let what = format!("{method} {path}");
        let before = snapshot(c).await;
        for (who, key, status, code) in [
            ("no key", None, 401, "unauthorized"),
            (
                "an unknown key",
                Some("eqk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                401,
                "unauthorized",
            ),
            ("a revoked key", Some(revoked.as_str()), 401, "unauthorized"),
            ("another namespace's admin key", Some(other_ns.as_str()), 403, "forbidden"),
            ("a key without the right", Some(keys[weak].as_str()), 403, "forbidden"),
        ] {
            let r = call(c, key, method, path, body).await;
            assert_eq!(r.status.as_u16(), status, "{what} with {who}: {:?}", r.body);
            r.expect_error(status, code);
            if status == 401 {
                assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
            }
        }
        assert_eq!(snapshot(c).await, before, "{what}: a refused request changed something");
        let r = call(c, Some(keys[right].as_str()), method, path, body).await;
        assert_eq!(r.status.as_u16(), *ok, "{what} with the {right} key: {:?}", r.body);
        // Admin includes every right.
        if *right != "admin" {
            let r = call(c, Some(keys["admin"].as_str()), "GET", "/v1/queues/q", "").await;
            r.expect(200);
        }
    }
    // Unknown routes and methods need a valid key before they say 404/405.
    call(c, None, "GET", "/v1/nope", "").await.expect_error(401, "unauthorized");
    call(c, Some(&keys["browse"]), "GET", "/v1/nope", "").await.expect_error(404, "not_found");
    call(c, None, "PATCH", "/v1/queues/q", "").await.expect_error(401, "unauthorized");
    let r = call(c, Some(&keys["browse"]), "PATCH", "/v1/queues/q", "").await;
    r.expect_error(405, "method_not_allowed");
    // Health stays open and says keys are on.
    let r = call(c, None, "GET", "/healthz", "").await;
    r.expect(200);
    assert_eq!(r.json()["auth"], "keys");
    call(c, None, "GET", "/__heartbeat__", "").await.expect(200);
}

pub async fn malformed_authorization_is_401(c: &Client) {
    for header in ["", "Bearer", "Bearer ", "Basic YWRtaW46eA==", ADMIN_KEY, "Bearer\tx"] {
        let r = c.send(c.req(Method::GET, "/v1/queues").header("authorization", header)).await;
        r.expect_error(401, "unauthorized");
    }
    // The admin key is accepted whatever the case of the scheme.
    let r = c
        .send(
            c.req(Method::GET, "/v1/queues").header("authorization", format!("bearer {ADMIN_KEY}")),
        )
        .await;
    r.expect(200);
    // A prefix of the admin key, or the key with one more character, is not it.
    call(c, Some(&ADMIN_KEY[..ADMIN_KEY.len() - 1]), "GET", "/v1/queues", "").await.expect(401);
    call(c, Some(&format!("{ADMIN_KEY}0")), "GET", "/v1/queues", "").await.expect(401);
}

pub async fn public_queues_are_readable_without_a_key(c: &Client) {
    let admin = Some(ADMIN_KEY);
    call(c, admin, "PUT", "/v1/queues/pub", r#"{"public": true}"#).await.expect(201);
    call(c, admin, "PUT", "/v1/queues/priv", "").await.expect(201);
    let id = send(c, "pub", "\"hello\"").await;
    send(c, "priv", "\"secret\"").await;

    call(c, None, "GET", "/v1/queues/pub", "").await.expect(200);
    let r = call(c, None, "GET", "/v1/queues/pub/messages", "").await;
    r.expect(200);
    assert_eq!(r.json()["messages"][0]["body"], "\"hello\"");
    let r = call(c, None, "GET", &format!("/v1/queues/pub/messages/{id}"), "").await;
    r.expect(200);
    assert_eq!(&r.body[..], b"\"hello\"");
    // Reading is all: taking, sending and listing still need a key.
    for (m, path) in [
        ("POST", "/v1/queues/pub/pop"),
        ("POST", "/v1/queues/pub/messages"),
        ("PUT", "/v1/queues/pub"),
        ("POST", "/v1/queues/pub/purge"),
        ("GET", "/v1/queues"),
        ("GET", "/v1/queues/priv"),
        ("GET", "/v1/queues/priv/messages"),
        // A queue that does not exist looks like a private one.
        ("GET", "/v1/queues/missing/messages"),
    ] {
        call(c, None, m, path, "{}").await.expect_error(401, "unauthorized");
    }
    // A bad key is refused even on a public queue (the client should learn it is bad).
    call(c, Some("eqk_nope"), "GET", "/v1/queues/pub", "").await.expect_error(401, "unauthorized");
    let r = call(c, admin, "GET", "/v1/queues/pub", "").await;
    assert_eq!(r.json()["stats"]["messages"], 1);
}

pub async fn keys_are_shown_once_scoped_and_revocable(c: &Client) {
    let admin = Some(ADMIN_KEY);
    let body = json!({ "rights": ["produce", "browse", "produce"], "name": "ci" }).to_string();
    let r = call(c, admin, "POST", "/v1/keys", &body).await;
    r.expect(201);
    let created = r.json();
    let key = created["key"].as_str().expect("the key is shown").to_owned();
    assert!(key.starts_with("eqk_") && key.len() >= 4 + 22, "{key}");
    assert_eq!(created["namespace"], "default");
    assert_eq!(created["rights"], json!(["produce", "browse"]));
    assert_eq!(created["name"], "ci");
    let id = created["id"].as_u64().expect("an id");
    assert_eq!(r.header("location"), Some(format!("/v1/keys/{id}").as_str()));

    // Listed without the key, and never stored in the clear.
    let r = call(c, admin, "GET", "/v1/keys", "").await;
    r.expect(200);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(!text.contains(&key[4..]), "a listing shows the key");
    let listed = r.json()["keys"].as_array().expect("keys").clone();
    let entry = listed.iter().find(|k| k["id"] == id).expect("the new key is listed");
    assert!(entry.get("key").is_none());

    // It works for what it holds and no more.
    call(c, Some(&key), "PUT", "/v1/queues/k", "").await.expect_error(403, "forbidden");
    call(c, admin, "PUT", "/v1/queues/k", "").await.expect(201);
    call(c, Some(&key), "POST", "/v1/queues/k/messages", "1").await.expect(201);
    call(c, Some(&key), "POST", "/v1/queues/k/pop", "").await.expect_error(403, "forbidden");

    // A namespace admin manages keys of its own namespace only.
    let (_, ns_admin) = new_key(c, "default", &["admin"]).await;
    let (_, other) = new_key(c, "other", &["browse"]).await;
    let mine = json!({ "rights": ["consume"] }).to_string();
    let r = call(c, Some(&ns_admin), "POST", "/v1/keys", &mine).await;
    r.expect(201);
    assert_eq!(r.json()["namespace"], "default");
    for ns in ["*", "other"] {
        let body = json!({ "namespace": ns, "rights": ["browse"] }).to_string();
        call(c, Some(&ns_admin), "POST", "/v1/keys", &body).await.expect_error(403, "forbidden");
    }
    let r = call(c, Some(&ns_admin), "GET", "/v1/keys", "").await;
    r.expect(200);
    let namespaces: Vec<Value> =
        r.json()["keys"].as_array().expect("keys").iter().map(|k| k["namespace"].clone()).collect();
    assert!(namespaces.iter().all(|ns| ns == "default"), "{namespaces:?}");
    let r = call(c, admin, "GET", "/v1/keys", "").await;
    let other_id = r.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["namespace"] == "other")
        .map(|k| k["id"].clone())
        .expect("the other namespace's key");
    let path = format!("/v1/keys/{other_id}");
    call(c, Some(&ns_admin), "DELETE", &path, "").await.expect_error(403, "forbidden");
    call(c, Some(&other), "GET", "/v1/queues", "").await.expect_error(403, "forbidden");

    // Bad input is refused and stores nothing.
    let before = call(c, admin, "GET", "/v1/keys", "").await.json();
    for (body, code) in [
        (r#"{"rights": []}"#, "invalid_body"),
        (r#"{"rights": ["root"]}"#, "invalid_body"),
        (r#"{"rights": ["browse"], "extra": 1}"#, "invalid_body"),
        (r#"{"rights": ["browse"], "namespace": "a b"}"#, "invalid_name"),
        ("{", "invalid_json"),
    ] {
        call(c, admin, "POST", "/v1/keys", body).await.expect_error(400, code);
    }
    assert_eq!(call(c, admin, "GET", "/v1/keys", "").await.json(), before);
    let first_page = call(c, admin, "GET", "/v1/keys?cursor=", "").await;
    assert_eq!(first_page.expect(200).json(), before, "an empty cursor is the first page");
    call(c, admin, "DELETE", "/v1/keys/999999", "").await.expect_error(404, "key_not_found");
    call(c, admin, "DELETE", "/v1/keys/abc", "").await.expect_error(400, "invalid_key_id");
    call(c, admin, "GET", "/v1/keys?limit=0", "").await.expect_error(400, "invalid_value");
    call(c, admin, "GET", "/v1/keys?limit=ten", "").await.expect_error(400, "invalid_query");
    call(c, admin, "GET", "/v1/keys?cursor=0", "").await.expect_error(400, "invalid_query");
    let r = call(c, admin, "DELETE", "/v1/keys/0", "").await;
    r.expect_error(400, "invalid_key_id");
    assert!(!r.message().contains(&u64::MAX.to_string()), "{}", r.message());

    // Revoked: refused with its own message, gone from the list, not revocable twice.
    call(c, admin, "DELETE", &format!("/v1/keys/{id}"), "").await.expect(204);
    let r = call(c, Some(&key), "POST", "/v1/queues/k/messages", "2").await;
    r.expect_error(401, "unauthorized");
    assert!(r.message().contains("revoked"), "{}", r.message());
    let r = call(c, admin, "GET", "/v1/keys", "").await;
    assert!(r.json()["keys"].as_array().expect("keys").iter().all(|k| k["id"] != id));
    call(c, admin, "DELETE", &format!("/v1/keys/{id}"), "")
        .await
        .expect_error(404, "key_not_found");
    let r = call(c, admin, "GET", "/v1/queues/k", "").await;
    assert_eq!(r.json()["stats"]["messages"], 1, "the revoked key's send stored nothing");
}

/// With keys on, Queuey keeps its own application keys (no Bearer key needed or
/// accepted in their place); the dialects whose originals had no authentication
/// (rest_queue, memfifo, monty) need an edgeq key like v1.
pub async fn dialects_under_keys(c: &Client) {
    let queuey = |auth: Option<String>| {
        let mut rb = c.req(Method::POST, "/queuey/v1/notes").form(&[("queue_name", "todo")]);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        c.send(rb)
    };
    queuey(Some("Application notes-key".into())).await.expect(201);
    // Queuey's own rules answer: no application key is its 403, a Bearer key is
    // not an application key.
    queuey(None).await.expect(403);
    queuey(Some(format!("Bearer {ADMIN_KEY}"))).await.expect(403);

    call(c, None, "POST", "/rest_queue/queues/plain", "").await.expect_error(401, "unauthorized");
    call(c, None, "GET", "/memfifo/queues", "").await.expect_error(401, "unauthorized");
    call(c, Some("eqk_wrong"), "GET", "/monty/Consume", "").await.expect_error(401, "unauthorized");
    call(c, Some(ADMIN_KEY), "POST", "/rest_queue/queues/plain", "").await.expect(201);
    call(c, Some(ADMIN_KEY), "GET", "/memfifo/queues/plain", "").await.expect(200);
}
