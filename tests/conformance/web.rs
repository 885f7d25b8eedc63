//! The static pages and the API description: served the same on every host,
//! without a key even when keys are configured.

use crate::support::Client;

pub async fn pages_and_openapi_are_served_without_a_key(c: &Client) {
    for (path, ty, marker) in [
        ("/", "text/html", "<title>edgeq</title>"),
        ("/app.js", "text/javascript", "textContent"),
        ("/app.css", "text/css", "body"),
        ("/docs", "text/html", "/docs.js"),
        ("/docs.js", "text/javascript", "/openapi.json"),
    ] {
        let r = c.get(path).await;
        r.expect(200);
        assert!(r.header("content-type").is_some_and(|t| t.starts_with(ty)), "{path}");
        assert!(String::from_utf8_lossy(&r.body).contains(marker), "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
    }
    let r = c.get("/openapi.json").await;
    r.expect(200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    for (path, method) in [
        ("/v1/queues/{q}/messages", "post"),
        ("/v1/queues/{q}/receive", "post"),
        ("/v1/keys", "post"),
        ("/metrics", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    // Another method is outside the route table: with keys on it needs one first.
    let open = c.get("/healthz").await.json()["auth"] == "open";
    let r = c.post("/docs").await;
    match open {
        true => r.expect_error(405, "method_not_allowed"),
        false => r.expect_error(401, "unauthorized"),
    };
}
