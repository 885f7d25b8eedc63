//! The rest_queue dialect (`dialects/rest_queue.md`) under `/rest_queue`: every
//! route and every error row, with byte-exact bodies.

use crate::support::{Client, Resp};
use reqwest::Method;

/// The mount.
const B: &str = "/rest_queue";

/// `method B+path` with an optional Content-Type and a body.
async fn call(c: &Client, method: Method, path: &str, ct: Option<&str>, body: &[u8]) -> Resp {
    let mut rb = c.req(method, &format!("{B}{path}")).body(body.to_vec());
    if let Some(ct) = ct {
        rb = rb.header("content-type", ct);
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

const JSON: Option<&str> = Some("application/json");

async fn push(c: &Client, q: &str, value: &str) -> Resp {
    let body = serde_json::to_vec(value).unwrap();
    call(c, Method::POST, &format!("/queues/{q}/push"), JSON, &body).await
}

pub async fn rest_queue_create_push_pop_items_delete(c: &Client) {
    exact(
        &call(c, Method::GET, "/queues", None, b"").await,
        200,
        r#"{"message":"list of queue names","items":[]}"#,
    );
    let r = call(c, Method::POST, "/queues/q1", None, b"ignored").await;
    exact(&r, 201, r#"{"message":"created 'q1'"}"#);
    let r = call(c, Method::POST, "/queues/q1", None, b"").await;
    exact(&r, 409, r#"{"detail":"Queue 'q1' already exists"}"#);

    exact(
        &push(c, "q1", "item1").await,
        200,
        r#"{"message":"push to queue 'q1'","remaining_queue_size":1}"#,
    );
    exact(
        &push(c, "q1", "é \"2\"").await,
        200,
        r#"{"message":"push to queue 'q1'","remaining_queue_size":2}"#,
    );
    let r = call(c, Method::GET, "/queues/q1", None, b"").await;
    exact(&r, 200, r#"{"message":"items in queue 'q1'","items":["item1","é \"2\""]}"#);

    let r = call(c, Method::POST, "/queues/q1/pop", None, b"ignored").await;
    exact(&r, 200, r#"{"message":"pop from queue 'q1'","data":"item1","remaining_queue_size":1}"#);
    let r = call(c, Method::POST, "/queues/q1/pop", None, b"").await;
    exact(
        &r,
        200,
        r#"{"message":"pop from queue 'q1'","data":"é \"2\"","remaining_queue_size":0}"#,
    );
    let r = call(c, Method::POST, "/queues/q1/pop", None, b"").await;
    exact(&r, 200, r#"{"message":"pop from queue 'q1'","data":null,"remaining_queue_size":0}"#);
    exact(
        &call(c, Method::GET, "/queues/q1", None, b"").await,
        200,
        r#"{"message":"items in queue 'q1'","items":[]}"#,
    );

    let r = call(c, Method::DELETE, "/queues/q1", None, b"").await;
    exact(&r, 200, r#"{"message":"deleted queue 'q1'","remaining_queue_size":0}"#);
    exact(
        &call(c, Method::GET, "/queues", None, b"").await,
        200,
        r#"{"message":"list of queue names","items":[]}"#,
    );
}

pub async fn rest_queue_missing_queues_are_404(c: &Client) {
    for (m, path) in [
        (Method::POST, "/queues/nope/pop"),
        (Method::GET, "/queues/nope"),
        (Method::DELETE, "/queues/nope"),
        (Method::DELETE, "/queues/nope?safe_delete=false"),
    ] {
        exact(&call(c, m, path, None, b"").await, 404, r#"{"detail":"No such queue 'nope'"}"#);
    }
    exact(&push(c, "nope", "x").await, 404, r#"{"detail":"No such queue 'nope'"}"#);
    // Body problems are found before the missing queue.
    let r = call(c, Method::POST, "/queues/nope/push", JSON, b"1").await;
    r.expect(422);
    let r = call(c, Method::POST, "/queues/nope/push", None, b"").await;
    r.expect(422);
    exact(
        &call(c, Method::GET, "/queues", None, b"").await,
        200,
        r#"{"message":"list of queue names","items":[]}"#,
    );
}

pub async fn rest_queue_names_are_any_text_rendered_with_repr(c: &Client) {
    // (path segment, Python repr of the decoded name)
    let cases = [
        ("it's", r#""it's""#),
        ("it's%22q", r#"'it\'s"q'"#),
        ("my%20queue", "'my queue'"),
        ("back%5Cslash", r"'back\\slash'"),
        ("tab%09nl%0A", r"'tab\tnl\n'"),
        ("%E6%97%A5%E6%9C%AC", "'日本'"),
        ("..dots", "'..dots'"),
        ("plain-1.x_y", "'plain-1.x_y'"),
    ];
    let text = |s: String| serde_json::to_string(&s).unwrap();
    for (seg, shown) in cases {
        let r = call(c, Method::POST, &format!("/queues/{seg}"), None, b"").await;
        exact(&r, 201, &format!(r#"{{"message":{}}}"#, text(format!("created {shown}"))));
        let r = push(c, seg, seg).await;
        let message = text(format!("push to queue {shown}"));
        exact(&r, 200, &format!(r#"{{"message":{message},"remaining_queue_size":1}}"#));
        let r = call(c, Method::GET, &format!("/queues/{seg}"), None, b"").await;
        r.expect(200);
        assert_eq!(r.json()["items"][0], seg);
    }
    let r = call(c, Method::GET, "/queues", None, b"").await;
    r.expect(200);
    let names: Vec<String> = serde_json::from_value(r.json()["items"].clone()).unwrap();
    assert_eq!(
        names,
        [
            "it's",
            "it's\"q",
            "my queue",
            "back\\slash",
            "tab\tnl\n",
            "日本",
            "..dots",
            "plain-1.x_y"
        ]
    );

    // Ordinary names are the engine's names: the v1 routes see the same queue.
    c.get("/v1/queues/plain-1.x_y").await.expect(200);

    // A re-created queue goes last.
    call(c, Method::DELETE, "/queues/it's", None, b"").await.expect(409);
    call(c, Method::DELETE, "/queues/it's?safe_delete=0", None, b"").await.expect(200);
    call(c, Method::POST, "/queues/it's", None, b"").await.expect(201);
    let r = call(c, Method::GET, "/queues", None, b"").await;
    let names: Vec<String> = serde_json::from_value(r.json()["items"].clone()).unwrap();
    assert_eq!(names.first().map(String::as_str), Some("it's\"q"));
    assert_eq!(names.last().map(String::as_str), Some("it's"));

    // A name that needs escaping and is over 39 bytes cannot be stored.
    let long = "%20".repeat(40);
    let r = call(c, Method::POST, &format!("/queues/{long}"), None, b"").await;
    r.expect(422);
    assert_eq!(r.json()["detail"][0]["type"], "string_too_long");
    assert_eq!(r.json()["detail"][0]["loc"], serde_json::json!(["path", "queue_name"]));
    let shown = format!("'{}'", " ".repeat(40));
    exact(&push(c, &long, "x").await, 404, &format!(r#"{{"detail":"No such queue {shown}"}}"#));
}

pub async fn rest_queue_push_body_rules(c: &Client) {
    call(c, Method::POST, "/queues/b", None, b"").await.expect(201);
    let ok = |n: u64| format!(r#"{{"message":"push to queue 'b'","remaining_queue_size":{n}}}"#);
    let path = "/queues/b/push";
    // JSON strings, any JSON media type, with a charset.
    exact(&call(c, Method::POST, path, JSON, br#""item1""#).await, 200, &ok(1));
    exact(
        &call(c, Method::POST, path, Some("application/json; charset=utf-8"), b" \"two\" ").await,
        200,
        &ok(2),
    );
    exact(
        &call(c, Method::POST, path, Some("application/vnd.x+json"), br#""3""#).await,
        200,
        &ok(3),
    );
    // Any other type (or none): the raw text.
    exact(&call(c, Method::POST, path, Some("text/plain"), br#"{"raw": 4}"#).await, 200, &ok(4));
    exact(&call(c, Method::POST, path, None, b"five").await, 200, &ok(5));
    // Empty body: the old `?value=` form.
    exact(&call(c, Method::POST, &format!("{path}?value=six%206"), None, b"").await, 200, &ok(6));
    exact(
        &call(c, Method::POST, &format!("{path}?value=ignored"), JSON, br#""seven""#).await,
        200,
        &ok(7),
    );

    let string_type = |input: &str| {
        format!(
            r#"{{"detail":[{{"type":"string_type","loc":["body"],"msg":"Input should be a valid string","input":{input}}}]}}"#
        )
    };
    for (body, input) in [
        (r#"{"b": 1, "a": [true, null]}"#, r#"{"b":1,"a":[true,null]}"#),
        ("12", "12"),
        ("2.5", "2.5"),
        ("null", "null"),
        ("[\"x\"]", "[\"x\"]"),
        ("false", "false"),
    ] {
        exact(&call(c, Method::POST, path, JSON, body.as_bytes()).await, 422, &string_type(input));
    }
    let json_invalid = r#"{"detail":[{"type":"json_invalid","loc":["body",0],"msg":"JSON decode error","input":{},"ctx":{"error":"Expecting value"}}]}"#;
    for body in ["{", "nope", "'single'", "\"x\" y", " "] {
        exact(&call(c, Method::POST, path, JSON, body.as_bytes()).await, 422, json_invalid);
    }
    let missing =
        r#"{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}"#;
    exact(&call(c, Method::POST, path, None, b"").await, 422, missing);
    exact(&call(c, Method::POST, path, JSON, b"").await, 422, missing);
    exact(&call(c, Method::POST, &format!("{path}?other=1"), None, b"").await, 422, missing);
    let r = call(c, Method::POST, path, Some("text/plain"), b"\xff\xfe").await;
    r.expect(422);
    assert_eq!(r.json()["detail"][0]["type"], "string_unicode");

    // Nothing refused was stored; the accepted values in order.
    let r = call(c, Method::GET, "/queues/b", None, b"").await;
    exact(
        &r,
        200,
        r#"{"message":"items in queue 'b'","items":["item1","two","3","{\"raw\": 4}","five","six 6","seven"]}"#,
    );
}

pub async fn rest_queue_safe_delete(c: &Client) {
    for q in ["a", "b", "c"] {
        call(c, Method::POST, &format!("/queues/{q}"), None, b"").await.expect(201);
        push(c, q, "x").await.expect(200);
        push(c, q, "y").await.expect(200);
    }
    let not_empty =
        |q: &str| format!(r#"{{"detail":{{"message":"Queue '{q}' not empty","count":2}}}}"#);
    exact(&call(c, Method::DELETE, "/queues/a", None, b"").await, 409, &not_empty("a"));
    for v in ["true", "TRUE", "1", "yes", "on", "t", "Y"] {
        let r = call(c, Method::DELETE, &format!("/queues/a?safe_delete={v}"), None, b"").await;
        exact(&r, 409, &not_empty("a"));
    }
    for v in ["", "maybe", "2", "truee"] {
        let r = call(c, Method::DELETE, &format!("/queues/a?safe_delete={v}"), None, b"").await;
        let body = format!(
            r#"{{"detail":[{{"type":"bool_parsing","loc":["query","safe_delete"],"msg":"Input should be a valid boolean, unable to interpret input","input":"{v}"}}]}}"#
        );
        exact(&r, 422, &body);
    }
    // Parsing comes first: a bad value on a missing queue is still 422.
    call(c, Method::DELETE, "/queues/zz?safe_delete=x", None, b"").await.expect(422);
    let deleted =
        |q: &str| format!(r#"{{"message":"deleted queue '{q}'","remaining_queue_size":2}}"#);
    exact(
        &call(c, Method::DELETE, "/queues/a?safe_delete=false", None, b"").await,
        200,
        &deleted("a"),
    );
    exact(
        &call(c, Method::DELETE, "/queues/b?safe_delete=OFF", None, b"").await,
        200,
        &deleted("b"),
    );
    exact(
        &call(c, Method::DELETE, "/queues/c?safe_delete=n&other=1", None, b"").await,
        200,
        &deleted("c"),
    );
    exact(
        &call(c, Method::GET, "/queues/a", None, b"").await,
        404,
        r#"{"detail":"No such queue 'a'"}"#,
    );
    // An empty queue goes with the default (safe) delete.
    call(c, Method::POST, "/queues/e", None, b"").await.expect(201);
    let r = call(c, Method::DELETE, "/queues/e?safe_delete=yes", None, b"").await;
    exact(&r, 200, r#"{"message":"deleted queue 'e'","remaining_queue_size":0}"#);
}

pub async fn rest_queue_redirects_405_404_and_docs(c: &Client) {
    call(c, Method::POST, "/queues/q", None, b"").await.expect(201);
    for (path, to) in [
        ("/queues/", "/rest_queue/queues"),
        ("/queues/q/", "/rest_queue/queues/q"),
        ("/queues/q/push//", "/rest_queue/queues/q/push"),
        ("/queues/q/pop/?x=1", "/rest_queue/queues/q/pop?x=1"),
    ] {
        let r = c
            .raw(&format!("POST {B}{path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"))
            .await;
        r.expect(307);
        assert_eq!(r.header("location"), Some(to), "{path}");
    }
    for (m, path, allow) in [
        (Method::PUT, "/queues", "GET"),
        (Method::POST, "/queues", "GET"),
        (Method::HEAD, "/queues", "GET"),
        (Method::PUT, "/queues/q", "POST, GET, DELETE"),
        (Method::PATCH, "/queues/q", "POST, GET, DELETE"),
        (Method::GET, "/queues/q/push", "POST"),
        (Method::DELETE, "/queues/q/pop", "POST"),
    ] {
        let r = call(c, m.clone(), path, None, b"").await;
        r.expect(405);
        assert_eq!(r.header("allow"), Some(allow), "{m} {path}");
        if m != Method::HEAD {
            exact(&r, 405, r#"{"detail":"Method Not Allowed"}"#);
        }
    }
    for path in ["", "/", "/nope", "/queues/q/peek", "/queues//push", "/queues/q/pop/x"] {
        exact(&call(c, Method::GET, path, None, b"").await, 404, r#"{"detail":"Not Found"}"#);
    }
    let r = call(c, Method::GET, "/docs", None, b"").await;
    r.expect(200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let html = std::str::from_utf8(&r.body).unwrap();
    assert!(html.contains("swagger-ui") && html.contains("/rest_queue/openapi.json"), "{html}");
    let r = call(c, Method::GET, "/openapi.json", None, b"").await;
    r.expect(200);
    let doc = r.json();
    assert_eq!(doc["servers"][0]["url"], "/rest_queue");
    for path in
        ["/queues", "/queues/{queue_name}", "/queues/{queue_name}/push", "/queues/{queue_name}/pop"]
    {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    // Nothing above changed the queue.
    exact(
        &call(c, Method::GET, "/queues/q", None, b"").await,
        200,
        r#"{"message":"items in queue 'q'","items":[]}"#,
    );
}

pub async fn rest_queue_concurrent_creates_have_one_winner(c: &Client) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                call(&c, Method::POST, "/queues/race", None, b"").await.status.as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    let r = call(c, Method::GET, "/queues", None, b"").await;
    exact(&r, 200, r#"{"message":"list of queue names","items":["race"]}"#);
}
