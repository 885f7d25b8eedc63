//! `/metrics`: per-queue gauges and request counts, in the OpenMetrics text format.

use crate::support::{Client, ADMIN_KEY};
use reqwest::Method;

/// The value of the sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

async fn scrape(c: &Client, key: Option<&str>) -> String {
    let mut rb = c.req(Method::GET, "/metrics");
    if let Some(key) = key {
        rb = rb.bearer_auth(key);
    }
    let r = c.send(rb).await;
    r.expect(200);
    assert!(
        r.header("content-type").is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        r.headers
    );
    let text = String::from_utf8(r.body.to_vec()).expect("metrics are text");
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

async fn shows_queues_and_requests(c: &Client, key: Option<&str>) {
    let auth = |rb: reqwest::RequestBuilder| match key {
        Some(k) => rb.bearer_auth(k),
        None => rb,
    };
    c.send(auth(c.req(Method::PUT, "/v1/queues/metered"))).await.expect(201);
    for body in ["one", "three"] {
        c.send(auth(c.req(Method::POST, "/v1/queues/metered/messages")).body(body))
            .await
            .expect(201);
    }
    c.send(auth(c.req(Method::GET, "/v1/queues/missing"))).await.expect(404);
    let text = scrape(c, key).await;
    let q = r#"{namespace="default",queue="metered"}"#;
    assert_eq!(sample(&text, &format!("edgeq_queue_messages{q}")), Some(2.0), "{text}");
    assert_eq!(sample(&text, &format!("edgeq_queue_bytes{q}")), Some(8.0), "{text}");
    assert_eq!(sample(&text, &format!("edgeq_queue_in_flight{q}")), Some(0.0), "{text}");
    assert_eq!(sample(&text, &format!("edgeq_queue_delayed{q}")), Some(0.0), "{text}");
    assert!(sample(&text, &format!("edgeq_queue_oldest_message_age_seconds{q}")).is_some());
    let sent =
        r#"edgeq_http_requests_total{method="POST",route="/v1/queues/{q}/messages",status="2xx"}"#;
    assert_eq!(sample(&text, sent), Some(2.0), "{text}");
    let missing = r#"edgeq_http_requests_total{method="GET",route="/v1/queues/{q}",status="4xx"}"#;
    assert_eq!(sample(&text, missing), Some(1.0), "{text}");
    // The scrape itself is counted once it is answered.
    let text = scrape(c, key).await;
    let scrapes = r#"edgeq_http_requests_total{method="GET",route="/metrics",status="2xx"}"#;
    assert_eq!(sample(&text, scrapes), Some(1.0), "{text}");
    // A purge of a small queue deletes its old keys before it answers: nothing
    // is left to reclaim.
    let backlog = r#"edgeq_reclaim_backlog{namespace="default"}"#;
    assert_eq!(sample(&text, backlog), Some(0.0), "{text}");
    c.send(auth(c.req(Method::POST, "/v1/queues/metered/purge"))).await.expect(200);
    let text = scrape(c, key).await;
    assert_eq!(sample(&text, &format!("edgeq_queue_messages{q}")), Some(0.0), "{text}");
    assert_eq!(sample(&text, backlog), Some(0.0), "{text}");
}

pub async fn metrics_show_queues_and_requests(c: &Client) {
    shows_queues_and_requests(c, None).await;
}

pub async fn metrics_need_the_admin_right(c: &Client) {
    c.get("/metrics").await.expect_error(401, "unauthorized");
    shows_queues_and_requests(c, Some(ADMIN_KEY)).await;
}
