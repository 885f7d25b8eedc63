//! `/healthz` and `/__heartbeat__`.

use crate::support::Client;
use reqwest::Method;

pub async fn healthz_and_heartbeat(c: &Client) {
    let r = c.get("/healthz").await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["store"], "ok");

    let r = c.get("/__heartbeat__").await;
    r.expect(200);
    assert_eq!(&r.body[..], b"OK");
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/plain")));

    let r = c.send(c.req(Method::HEAD, "/__heartbeat__")).await;
    r.expect(200);
    assert!(r.body.is_empty());

    c.post("/__heartbeat__").await.expect_error(405, "method_not_allowed");
}
