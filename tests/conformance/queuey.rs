//! The Queuey dialect (`dialects/queuey.md`) under `/queuey`: applications and
//! keys (`support::QUEUEY_APPS`), the 401/403 rules, queue management, messages
//! by time and by id, and colander-style errors with every failing field.

use crate::support::{Client, Resp};
use reqwest::Method;
use serde_json::{json, Value};

const NOTES: &str = "Application notes-key";
const MAIL: &str = "Application mail-key";
const HTML: &str = "text/html; charset=UTF-8";

async fn call(
    c: &Client,
    method: Method,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut rb = c.req(method, &format!("/queuey/v1{path}")).body(body.to_vec());
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    c.send(rb).await
}

/// A form post or put.
async fn form(c: &Client, method: Method, path: &str, auth: Option<&str>, body: &str) -> Resp {
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    call(c, method, path, auth, &ct, body.as_bytes()).await
}

async fn get(c: &Client, path: &str, auth: Option<&str>) -> Resp {
    call(c, Method::GET, path, auth, &[], b"").await
}

/// Asserts status, Queuey's content type and the exact body.
#[track_caller]
fn exact(r: &Resp, status: u16, body: &str) {
    r.expect(status);
    assert_eq!(r.header("content-type"), Some(HTML));
    crate::messages::assert_sandboxed(r);
    assert_eq!(std::str::from_utf8(&r.body).unwrap(), body);
}

/// Asserts a Queuey error with exactly `fields`.
#[track_caller]
fn error(r: &Resp, status: u16, fields: Value) {
    r.expect(status);
    assert_eq!(r.header("content-type"), Some(HTML));
    crate::messages::assert_sandboxed(r);
    assert_eq!(r.json(), json!({"status": "error", "error_msg": fields}));
}

#[track_caller]
fn forbidden(r: &Resp) {
    r.expect(403);
    assert_eq!(r.header("content-type"), Some(HTML));
    assert!(String::from_utf8_lossy(&r.body).contains("Access was denied to this resource."));
}

#[track_caller]
fn invalid_key(r: &Resp) {
    error(r, 401, json!({"InvalidApplicationKey": "Invalid application key"}));
}

fn not_found_queue() -> Value {
    json!({"InvalidQueueName": "Queue of that name was not found."})
}

pub async fn queuey_queue_management(c: &Client) {
    exact(&get(c, "/notes", Some(NOTES)).await, 200, r#"{"status":"ok","queues":[]}"#);
    let r = form(c, Method::POST, "/notes", Some(NOTES), "queue_name=inbox").await;
    exact(
        &r,
        201,
        r#"{"status":"ok","queue_name":"inbox","partitions":1,"type":"user","consistency":"strong","principles":null}"#,
    );
    // The default name is a uuid4 hex.
    let r = form(c, Method::POST, "/notes", Some(NOTES), "partitions=3&type=public").await;
    r.expect(201);
    let v = r.json();
    let name = v["queue_name"].as_str().unwrap().to_owned();
    assert_eq!(name.len(), 32);
    assert_eq!(&name[12..13], "4");
    assert_eq!((v["partitions"].clone(), v["type"].clone()), (json!(3), json!("public")));
    // A duplicate asking for fewer partitions keeps its own: messages in the
    // others would become unreachable.
    let again = form(c, Method::POST, "/notes", Some(NOTES), &format!("queue_name={name}")).await;
    again.expect(201);
    assert_eq!(
        (again.json()["partitions"].clone(), again.json()["type"].clone()),
        (json!(3), json!("user"))
    );
    // A duplicate name is 201 and overwrites the settings.
    let r = form(
        c,
        Method::POST,
        "/notes",
        Some(NOTES),
        "queue_name=inbox&consistency=weak&principles=app:mail,app:notes",
    )
    .await;
    exact(
        &r,
        201,
        r#"{"status":"ok","queue_name":"inbox","partitions":1,"type":"user","consistency":"weak","principles":["app:mail","app:notes"]}"#,
    );

    // Listing: sorted names, offset, limit, details, include_count.
    form(c, Method::POST, "/notes", Some(NOTES), "queue_name=alpha").await.expect(201);
    let r = get(c, "/notes", Some(NOTES)).await;
    let mut names = ["alpha".to_owned(), "inbox".to_owned(), name.clone()];
    names.sort();
    let listed: Vec<Value> = names.iter().map(|n| json!({"queue_name": n})).collect();
    assert_eq!(r.json(), json!({"status": "ok", "queues": listed}));
    let r = get(c, "/notes?offset=b&limit=1", Some(NOTES)).await;
    let from_b = names.iter().find(|n| n.as_str() >= "b").unwrap();
    assert_eq!(r.json()["queues"], json!([{ "queue_name": from_b }]));
    let r = get(c, "/notes?offset=inbox&details=true&include_count=1", Some(NOTES)).await;
    let q = &r.json()["queues"][0];
    assert_eq!(q["queue_name"], "inbox");
    assert_eq!(q["application"], "notes");
    assert_eq!((q["consistency"].clone(), q["type"].clone()), (json!("weak"), json!("user")));
    assert_eq!(q["principles"], "app:mail,app:notes");
    assert_eq!((q["partitions"].clone(), q["count"].clone()), (json!(1), json!(0)));
    assert!(q["created"].as_f64().is_some_and(|t| t > 1.7e9));
    let r = get(c, "/notes?details=false&include_count=0", Some(NOTES)).await;
    assert_eq!(r.json()["queues"][0], json!({ "queue_name": names[0] }));
    error(
        &get(c, "/notes?limit=abc", Some(NOTES)).await,
        400,
        json!({"limit": "\"abc\" is not a number"}),
    );

    // Update: partitions only grow; omitted type/consistency reset; principles stay.
    let r = form(c, Method::PUT, "/notes/inbox", Some(NOTES), "partitions=4&type=public").await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["queue_name"], "inbox");
    assert_eq!((v["partitions"].clone(), v["type"].clone()), (json!(4), json!("public")));
    assert_eq!(v["principles"], json!(["app:mail", "app:notes"]));
    assert!(v["created"].as_f64().is_some());
    error(
        &form(c, Method::PUT, "/notes/inbox", Some(NOTES), "partitions=2").await,
        400,
        json!({"InvalidUpdate": "Partitions can only be increased."}),
    );
    let r = form(c, Method::PUT, "/notes/inbox", Some(NOTES), "").await;
    assert_eq!(
        (r.json()["partitions"].clone(), r.json()["type"].clone()),
        (json!(4), json!("user"))
    );
    let r = get(c, "/notes?offset=inbox&details=true", Some(NOTES)).await;
    assert_eq!(r.json()["queues"][0]["consistency"], "strong");

    // Validation: every failing field at once, colander texts; nothing created.
    error(
        &form(
            c,
            Method::POST,
            "/notes",
            Some(NOTES),
            "queue_name=bad1&partitions=0&type=x&consistency=y&principles=user:z",
        )
        .await,
        400,
        json!({
            "partitions": "0 is less than minimum value 1",
            "type": "\"x\" is not one of public, user",
            "consistency": "\"y\" is not one of weak, strong, very_strong",
            "principles": "\"user:z\" is not a valid principle",
        }),
    );
    error(
        &form(c, Method::POST, "/notes", Some(NOTES), "queue_name=bad2&partitions=201").await,
        400,
        json!({"partitions": "201 is greater than maximum value 200"}),
    );
    error(
        &form(c, Method::POST, "/notes", Some(NOTES), &format!("queue_name={}", "a".repeat(51)))
            .await,
        400,
        json!({"queue_name": "Longer than maximum length 50"}),
    );
    error(
        &form(c, Method::PUT, "/notes/inbox", Some(NOTES), "partitions=abc").await,
        400,
        json!({"partitions": "\"abc\" is not a number"}),
    );
    assert_eq!(get(c, "/notes", Some(NOTES)).await.json()["queues"].as_array().unwrap().len(), 3);

    // Delete: the queue and its messages.
    call(c, Method::POST, "/notes/alpha", Some(NOTES), &[], b"m").await.expect(201);
    exact(
        &call(c, Method::DELETE, "/notes/alpha", Some(NOTES), &[], b"").await,
        200,
        r#"{"status":"ok"}"#,
    );
    error(
        &call(c, Method::DELETE, "/notes/alpha", Some(NOTES), &[], b"").await,
        404,
        not_found_queue(),
    );
    error(&get(c, "/notes/alpha", Some(NOTES)).await, 404, not_found_queue());
    error(
        &get(c, &format!("/notes/{}", "a".repeat(51)), Some(NOTES)).await,
        404,
        json!({"InvalidQueueName": "Queue name longer than 50 characters."}),
    );
    // Each application is its own namespace.
    exact(&get(c, "/mail", Some(MAIL)).await, 200, r#"{"status":"ok","queues":[]}"#);
    c.get("/v1/queues/inbox").await.expect_error(404, "queue_not_found");
}

pub async fn queuey_applications_and_keys(c: &Client) {
    form(c, Method::POST, "/notes", Some(NOTES), "queue_name=private").await.expect(201);
    form(c, Method::POST, "/notes", Some(NOTES), "queue_name=open&type=public").await.expect(201);
    form(c, Method::POST, "/notes", Some(NOTES), "queue_name=shared&principles=app:mail")
        .await
        .expect(201);
    for q in ["private", "open", "shared"] {
        call(c, Method::POST, &format!("/notes/{q}"), Some(NOTES), &[], b"hi").await.expect(201);
    }

    // Unknown applications and routes are 404.
    get(c, "/nope", Some(NOTES)).await.expect(404);
    c.get("/queuey/v2/notes").await.expect(404);
    // Keys: a second key works, other schemes are ignored, `;` parts are allowed.
    get(c, "/notes", Some("Application notes-key-2")).await.expect(200);
    get(c, "/notes", Some("Basic abc; Application notes-key")).await.expect(200);
    forbidden(&get(c, "/notes", Some("Basic abc")).await);
    forbidden(&get(c, "/notes", None).await);
    forbidden(&get(c, "/notes", Some(MAIL)).await);
    invalid_key(&get(c, "/notes", Some("Application nope")).await);
    forbidden(&form(c, Method::POST, "/notes", Some(MAIL), "queue_name=x").await);
    invalid_key(&form(c, Method::POST, "/notes", Some("Application nope"), "queue_name=x").await);

    // Viewing: the owner; a public queue: anyone; principles: only them.
    get(c, "/notes/private", Some(NOTES)).await.expect(200);
    forbidden(&get(c, "/notes/private", None).await);
    forbidden(&get(c, "/notes/private", Some(MAIL)).await);
    get(c, "/notes/open", None).await.expect(200);
    get(c, "/notes/open", Some(MAIL)).await.expect(200);
    invalid_key(&get(c, "/notes/open", Some("Application nope")).await);
    get(c, "/notes/shared", Some(MAIL)).await.expect(200);
    forbidden(&get(c, "/notes/shared", Some(NOTES)).await);
    // Posting, updating and deleting queues are the owner's, even when public.
    forbidden(&call(c, Method::POST, "/notes/open", None, &[], b"x").await);
    forbidden(&call(c, Method::POST, "/notes/shared", Some(MAIL), &[], b"x").await);
    forbidden(&form(c, Method::PUT, "/notes/open", Some(MAIL), "").await);
    forbidden(&call(c, Method::DELETE, "/notes/open", None, &[], b"").await);
    // Deleting messages: principles or owner, not the public.
    let key = get(c, "/notes/open", None).await.json()["messages"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    forbidden(&call(c, Method::DELETE, &format!("/notes/open/{key}"), None, &[], b"").await);
    assert_eq!(get(c, "/notes/open", None).await.json()["messages"].as_array().unwrap().len(), 1);
    // Nothing a refused request touched changed.
    for q in ["private", "open", "shared"] {
        let owner = if q == "shared" { MAIL } else { NOTES };
        let r = get(c, &format!("/notes/{q}"), Some(owner)).await;
        assert_eq!(r.json()["messages"].as_array().unwrap().len(), 1, "{q}");
    }
}

/// Posts `body` as one raw message with `headers`; returns the posted entry.
async fn post_one(c: &Client, q: &str, headers: &[(&str, &str)], body: &[u8]) -> Value {
    let r = call(c, Method::POST, &format!("/notes/{q}"), Some(NOTES), headers, body).await;
    r.expect(201);
    assert_eq!(r.header("content-type"), Some(HTML));
    r.json()["messages"][0].clone()
}

fn ids_of(r: &Resp) -> Vec<String> {
    r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn queuey_post_and_browse_messages(c: &Client) {
    form(c, Method::POST, "/notes", Some(NOTES), "queue_name=q&partitions=3").await.expect(201);
    let first = post_one(c, "q", &[("x-partition", "2"), ("x-ttl", "60")], b"one").await;
    let key = first["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(&key[12..13], "1", "a uuid1");
    assert_eq!(first["partition"], 2);
    let ts = first["timestamp"].as_str().unwrap().to_owned();
    let (secs, frac) = ts.split_once('.').unwrap();
    assert!(secs.parse::<u64>().unwrap() > 1_700_000_000 && frac.len() == 7, "{ts}");
    // Empty headers are absent: a random partition.
    form(c, Method::POST, "/notes", Some(NOTES), "queue_name=r&partitions=3").await.expect(201);
    let p = post_one(c, "r", &[("x-partition", ""), ("x-ttl", "")], b"two").await["partition"]
        .as_u64()
        .unwrap();
    assert!((1..=3).contains(&p));

    // A batch: non-string bodies as their string form; per-entry partitions.
    let batch = json!({"messages": [
        {"body": "b1", "partition": 1},
        {"body": 5, "partition": "1", "ttl": 100},
        {"body": "b3", "partition": 1},
    ]});
    let r = call(
        c,
        Method::POST,
        "/notes/q",
        Some(NOTES),
        &[("content-type", "application/json; charset=utf-8")],
        batch.to_string().as_bytes(),
    )
    .await;
    r.expect(201);
    let posted = r.json()["messages"].clone();
    assert_eq!(posted.as_array().unwrap().len(), 3);
    assert!(posted.as_array().unwrap().iter().all(|m| m["partition"] == 1));

    // Browse: partition 1 by default, ascending; `partitions` in the order given.
    let r = get(c, "/notes/q", Some(NOTES)).await;
    let m = r.json()["messages"].clone();
    assert_eq!(
        m.as_array().unwrap().iter().map(|m| m["body"].clone()).collect::<Vec<_>>(),
        vec![json!("b1"), json!("5"), json!("b3")]
    );
    assert_eq!(m[0]["message_id"], posted[0]["key"]);
    assert_eq!(m[0]["timestamp"], posted[0]["timestamp"]);
    assert_eq!(m[0]["partition"], 1);
    let r = get(c, "/notes/q?partitions=2,1&limit=2", Some(NOTES)).await;
    let bodies: Vec<Value> =
        r.json()["messages"].as_array().unwrap().iter().map(|m| m["body"].clone()).collect();
    assert_eq!(bodies, vec![json!("one"), json!("b1"), json!("5")]);
    let r = get(c, "/notes/q?order=descending&limit=2", Some(NOTES)).await;
    assert_eq!(
        ids_of(&r),
        vec![posted[2]["key"].as_str().unwrap(), posted[1]["key"].as_str().unwrap()]
    );
    // `since` a message id is inclusive, both ways.
    let mid = posted[1]["key"].as_str().unwrap();
    let r = get(c, &format!("/notes/q?since={mid}"), Some(NOTES)).await;
    assert_eq!(ids_of(&r), vec![mid, posted[2]["key"].as_str().unwrap()]);
    let r = get(c, &format!("/notes/q?since={mid}&order=descending"), Some(NOTES)).await;
    assert_eq!(ids_of(&r), vec![mid, posted[0]["key"].as_str().unwrap()]);
    // `since` a time: everything at or after it; a time in the future: nothing.
    let t0 = posted[0]["timestamp"].as_str().unwrap();
    assert_eq!(ids_of(&get(c, &format!("/notes/q?since={t0}"), Some(NOTES)).await).len(), 3);
    assert_eq!(ids_of(&get(c, "/notes/q?since=99999999999", Some(NOTES)).await).len(), 0);
    assert_eq!(ids_of(&get(c, "/notes/q?since=1&order=descending", Some(NOTES)).await).len(), 0);
    // Browsing consumed nothing.
    assert_eq!(ids_of(&get(c, "/notes/q", Some(NOTES)).await).len(), 3);

    // Errors: every failing field together, nothing stored.
    error(
        &call(
            c,
            Method::POST,
            "/notes/q",
            Some(NOTES),
            &[("x-partition", "fred"), ("x-ttl", "0")],
            b"x",
        )
        .await,
        400,
        json!({"partition": "\"fred\" is not a number", "ttl": "0 is less than minimum value 1"}),
    );
    error(
        &call(c, Method::POST, "/notes/q", Some(NOTES), &[("x-partition", "4")], b"").await,
        400,
        json!({"body": "Required", "partition": "4 is greater than maximum value 3"}),
    );
    error(
        &call(c, Method::POST, "/notes/q", Some(NOTES), &[("x-ttl", "33554433")], b"x").await,
        400,
        json!({"ttl": "33554433 is greater than maximum value 33554432"}),
    );
    let json_ct = [("content-type", "application/json")];
    for bad in [&b"{"[..], b"[]", b"{}", b"{\"messages\":5}"] {
        error(
            &call(c, Method::POST, "/notes/q", Some(NOTES), &json_ct, bad).await,
            400,
            json!({"InvalidParameter": "Unable to properly deserialize JSON body."}),
        );
    }
    let bad_batch =
        json!({"messages": [{"body": "ok"}, {"body": "x", "partition": 9}, {"ttl": "a"}]});
    error(
        &call(c, Method::POST, "/notes/q", Some(NOTES), &json_ct, bad_batch.to_string().as_bytes())
            .await,
        400,
        json!({
            "1.partition": "9 is greater than maximum value 3",
            "2.body": "Required",
            "2.ttl": "\"a\" is not a number",
        }),
    );
    // colander takes any falsy body for a missing one.
    let falsy = json!({"messages": [{"body": ""}, {"body": 0}, {"body": false}, {"body": []}, {"body": 1}]});
    error(
        &call(c, Method::POST, "/notes/q", Some(NOTES), &json_ct, falsy.to_string().as_bytes())
            .await,
        400,
        json!({"0.body": "Required", "1.body": "Required", "2.body": "Required", "3.body": "Required"}),
    );
    error(
        &get(c, "/notes/q?limit=0&order=up&partitions=1,4&since=yesterday", Some(NOTES)).await,
        400,
        json!({
            "limit": "0 is less than minimum value 1",
            "order": "\"up\" is not one of ascending, descending",
            "partitions": "4 is greater than maximum value 3",
            "since": "\"yesterday\" is not a timestamp or message id",
        }),
    );
    let all = get(c, "/notes/q?partitions=1,2,3", Some(NOTES)).await;
    assert_eq!(ids_of(&all).len(), 4, "nothing refused was stored");
    error(
        &call(c, Method::POST, "/notes/nope", Some(NOTES), &[], b"x").await,
        404,
        not_found_queue(),
    );
}

pub async fn queuey_messages_by_id(c: &Client) {
    form(c, Method::POST, "/notes", Some(NOTES), "queue_name=q&partitions=2").await.expect(201);
    let a =
        post_one(c, "q", &[("x-partition", "1")], b"a").await["key"].as_str().unwrap().to_owned();
    let b =
        post_one(c, "q", &[("x-partition", "2")], b"b").await["key"].as_str().unwrap().to_owned();

    // Get: `[P:]id` comma-separated (`:` may be `%3A`), missing partition = 1.
    let r = get(c, &format!("/notes/q/{a},2%3A{b}"), Some(NOTES)).await;
    r.expect(200);
    assert_eq!(r.header("content-type"), Some(HTML));
    let v = r.json();
    assert_eq!(
        (v["messages"][0]["body"].clone(), v["messages"][1]["body"].clone()),
        (json!("a"), json!("b"))
    );
    assert_eq!(v["messages"][1]["partition"], 2);
    // Only the found ones: a wrong partition or a client-made uuid1 finds nothing.
    let foreign = "0123456789ab1def8123456789abcdef";
    let r = get(c, &format!("/notes/q/{b},1:{a},{foreign}"), Some(NOTES)).await;
    assert_eq!(ids_of(&r), vec![a.clone()]);
    for bad in
        ["xyz", "0:0123456789ab1def8123456789abcdef", "0123456789ab4def8123456789abcdef", "1:"]
    {
        error(
            &get(c, &format!("/notes/q/{bad}"), Some(NOTES)).await,
            400,
            json!({"InvalidMessageID": "Invalid message id's."}),
        );
    }

    // Put replaces the body, keeping the id and place.
    exact(
        &call(c, Method::PUT, &format!("/notes/q/{a}"), Some(NOTES), &[], b"A2").await,
        200,
        r#"{"status":"ok"}"#,
    );
    let r = get(c, "/notes/q", Some(NOTES)).await;
    assert_eq!(r.json()["messages"][0]["body"], "A2");
    assert_eq!(ids_of(&r), vec![a.clone()]);
    error(
        &call(c, Method::PUT, &format!("/notes/q/{a}"), Some(NOTES), &[], b"").await,
        400,
        json!({"body": "Required"}),
    );
    // An id that names no message is refused, and nothing changes.
    let r = call(c, Method::PUT, &format!("/notes/q/{a},{foreign}"), Some(NOTES), &[], b"zz").await;
    r.expect(404);
    assert_eq!(get(c, "/notes/q", Some(NOTES)).await.json()["messages"][0]["body"], "A2");
    forbidden(&call(c, Method::PUT, &format!("/notes/q/{a}"), Some(MAIL), &[], b"x").await);

    // Put sets the TTL anew: `X-TTL`, or three days without it. (Waiting out the
    // 2 s TTLs is the only way a client sees them.)
    let start = std::time::Instant::now();
    let p1 = ("x-partition", "1");
    let short =
        post_one(c, "q", &[p1, ("x-ttl", "2")], b"s").await["key"].as_str().unwrap().to_owned();
    let long = post_one(c, "q", &[p1], b"l").await["key"].as_str().unwrap().to_owned();
    let put = |id: String, ttl: &'static [(&'static str, &'static str)], body: &'static [u8]| async move {
        call(c, Method::PUT, &format!("/notes/q/{id}"), Some(NOTES), ttl, body).await
    };
    put(short.clone(), &[], b"s2").await.expect(200);
    put(long.clone(), &[("x-ttl", "2")], b"l2").await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(3000).saturating_sub(start.elapsed()))
        .await;
    let r = get(c, &format!("/notes/q/{short},{long}"), Some(NOTES)).await;
    assert_eq!(ids_of(&r), vec![short.clone()], "the put TTLs hold, not the posted ones");
    let r = call(c, Method::DELETE, &format!("/notes/q/{short}"), Some(NOTES), &[], b"").await;
    r.expect(200);

    // Delete is 200 whether or not they exist.
    for _ in 0..2 {
        exact(
            &call(
                c,
                Method::DELETE,
                &format!("/notes/q/{a},2:{b},{foreign}"),
                Some(NOTES),
                &[],
                b"",
            )
            .await,
            200,
            r#"{"status":"ok"}"#,
        );
    }
    assert!(ids_of(&get(c, "/notes/q?partitions=1,2", Some(NOTES)).await).is_empty());
    error(&get(c, &format!("/notes/nope/{a}"), Some(NOTES)).await, 404, not_found_queue());
}
