//! `GET /metrics`: request counts and latencies, and per-queue gauges, in the
//! OpenMetrics text format that Prometheus scrapes (encoded by
//! `prometheus-client`, so escaping and the format's rules are not ours to get
//! wrong).
//!
//! # Per queue (from the store, on every host)
//!
//! Read at scrape time from the engine's stats (`list_queues` with details, the
//! first 1000 list entries of the served namespace): `edgeq_queue_messages`,
//! `_bytes`, `_in_flight`, `_dead_lettered`, `_delayed`, `_oldest_message_age_seconds`,
//! labelled `namespace` and `queue`. `edgeq_queue_list_truncated` is 1 when the
//! namespace has more list entries than one scrape reads.
//! `edgeq_reclaim_backlog` (labelled `namespace`) counts the purged and deleted
//! queue incarnations whose keys are still being deleted (`reclaim.rs`).
//!
//! # Per request: where the counts live ([`RequestMetrics`])
//!
//! Labels are `method` and `route` from the route table (`routes.rs`; `other`
//! for anything outside it, so clients cannot grow the label set) and `status`
//! as a class (`2xx`, `4xx`, `5xx`).
//!
//! - **In process** (the native server): `edgeq_http_requests_total` and the
//!   histogram `edgeq_http_request_duration_seconds`, kept in memory. Each server
//!   process reports its own; Prometheus sums them.
//! - **In the store** (the Spin component, whose instance lives for one request):
//!   `edgeq_http_requests_total` only, as one `increment` per request on
//!   `//metrics/requests/{route}/{class}`, so the count is right across any
//!   number of instances. A histogram would cost one increment per bucket per
//!   request; latency there is the platform's to measure. A scrape reads every
//!   counter (`routes × 4` increments of 0), which is bounded and rare.
//!
//! `//metrics/` keys start with `/`, which no namespace name can, so they never
//! meet engine keys.

use super::error::ApiError;
use super::routes::{Route, ROUTES};
use crate::engine::{Engine, Env};
use crate::model::Name;
use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Where request counts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestMetrics {
    /// In this process's memory, with latency histograms: for a long-lived server.
    #[default]
    InProcess,
    /// In the store, one `increment` per request, no latency: for hosts whose
    /// instances live for one request (the Spin component).
    Store,
}

/// Most queues one scrape reports.
const MAX_QUEUES: usize = 1000;
/// Status classes a scrape reads back from the store (the API answers no 1xx).
const CLASSES: [(u16, &str); 4] = [(2, "2xx"), (3, "3xx"), (4, "4xx"), (5, "5xx")];
/// The `OpenMetrics` content type Prometheus asks for.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of the request metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    namespace: String,
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

pub(crate) type Histograms = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Records requests as its [`RequestMetrics`] mode says.
pub(crate) enum Recorder {
    /// Counters and histograms in memory.
    InProcess { requests: Family<RequestLabels, Counter>, latency: Histograms },
    /// One counter per route and status class in the store.
    Store,
}

fn histogram() -> Histogram {
    // 0.5 ms to ~8 s in factors of 4.
    Histogram::new(exponential_buckets(0.0005, 4.0, 8))
}

fn class(status: StatusCode) -> (u16, &'static str) {
    match status.as_u16() / 100 {
        1 => (1, "1xx"),
        2 => (2, "2xx"),
        3 => (3, "3xx"),
        4 => (4, "4xx"),
        _ => (5, "5xx"),
    }
}

/// The index of `route` in the table (`None`: outside it).
fn index(route: Option<&Route>) -> Option<usize> {
    route.and_then(|r| ROUTES.iter().position(|x| x == r))
}

fn labels(i: Option<usize>, status: &'static str) -> RequestLabels {
    let (method, route) =
        i.and_then(|i| ROUTES.get(i)).map_or(("other", "other"), |r| (r.method, r.path));
    RequestLabels { method, route, status }
}

fn counter_key(i: Option<usize>, class: u16) -> String {
    match i {
        Some(i) => format!("//metrics/requests/{i}/{class}"),
        None => format!("//metrics/requests/other/{class}"),
    }
}

impl Recorder {
    pub(crate) fn new(mode: RequestMetrics) -> Self {
        match mode {
            RequestMetrics::InProcess => Self::InProcess {
                requests: Family::default(),
                latency: Family::new_with_constructor(histogram),
            },
            RequestMetrics::Store => Self::Store,
        }
    }

    /// When a request started, if this mode measures latency.
    pub(crate) fn start(&self) -> Option<Instant> {
        matches!(self, Self::InProcess { .. }).then(Instant::now)
    }

    /// Counts one answered request. A store failure loses the count, not the answer.
    pub(crate) async fn record<S: Store>(
        &self,
        store: &S,
        route: Option<&Route>,
        status: StatusCode,
        started: Option<Instant>,
    ) {
        let i = index(route);
        let (n, class) = class(status);
        match self {
            Self::InProcess { requests, latency } => {
                let l = labels(i, class);
                requests.get_or_create(&l).inc();
                if let Some(t) = started {
                    latency.get_or_create(&l).observe(t.elapsed().as_secs_f64());
                }
            }
            Self::Store => {
                if CLASSES.iter().any(|(c, _)| *c == n) {
                    let _ = store.increment(&counter_key(i, n), 1).await;
                }
            }
        }
    }

    /// The `/metrics` answer for namespace `ns`.
    pub(crate) async fn render<S: Store, E: Env>(
        &self,
        engine: &Engine<S, E>,
        ns: &Name,
    ) -> Result<Response<Bytes>, ApiError> {
        let mut registry = Registry::default();
        match self {
            Self::InProcess { requests, latency } => {
                registry.register(
                    "edgeq_http_requests",
                    "HTTP requests answered",
                    requests.clone(),
                );
                registry.register(
                    "edgeq_http_request_duration_seconds",
                    "Time to answer an HTTP request",
                    latency.clone(),
                );
            }
            Self::Store => {
                let requests = Family::<RequestLabels, Counter>::default();
                let slots = (0..ROUTES.len()).map(Some).chain([None]);
                for i in slots {
                    for (n, status) in CLASSES {
                        let v = engine.store().increment(&counter_key(i, n), 0).await;
                        let v = v.map_err(crate::engine::Error::from)?;
                        if v > 0 {
                            requests.get_or_create(&labels(i, status)).inc_by(v as u64);
                        }
                    }
                }
                registry.register("edgeq_http_requests", "HTTP requests answered", requests);
            }
        }
        queue_gauges(&mut registry, engine, ns).await?;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .map_err(|e| ApiError::internal(format!("encoding metrics: {e}")))?;
        let mut res = Response::new(Bytes::from(text));
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        Ok(res)
    }
}

async fn queue_gauges<S: Store, E: Env>(
    registry: &mut Registry,
    engine: &Engine<S, E>,
    ns: &Name,
) -> Result<(), ApiError> {
    let page = engine.list_queues(ns, None, MAX_QUEUES, None, true).await?;
    let gauge = Family::<QueueLabels, Gauge>::default;
    let (messages, bytes, in_flight, dead, delayed) = (gauge(), gauge(), gauge(), gauge(), gauge());
    let age = Family::<QueueLabels, Gauge<f64, AtomicU64>>::default();
    for q in &page.queues {
        let l = QueueLabels { namespace: ns.to_string(), queue: q.name.clone() };
        let s = q.stats.clone().unwrap_or_default();
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        messages.get_or_create(&l).set(int(s.messages));
        bytes.get_or_create(&l).set(int(s.bytes));
        in_flight.get_or_create(&l).set(int(s.in_flight));
        dead.get_or_create(&l).set(int(s.dead_lettered));
        delayed.get_or_create(&l).set(int(s.delayed));
        age.get_or_create(&l).set(s.oldest_age_ms.map_or(0.0, |ms| ms as f64 / 1000.0));
    }
    registry.register(
        "edgeq_queue_messages",
        "Messages held (visible, delayed or in flight)",
        messages,
    );
    registry.register("edgeq_queue_bytes", "Message body bytes held", bytes);
    registry.register("edgeq_queue_in_flight", "Messages under a receive lease", in_flight);
    registry.register("edgeq_queue_dead_lettered", "Messages moved to the dead-letter queue", dead);
    registry.register(
        "edgeq_queue_delayed",
        "Messages sent with a delay, not delivered yet",
        delayed,
    );
    registry.register(
        "edgeq_queue_oldest_message_age_seconds",
        "Age of the oldest message held (0 when empty)",
        age,
    );
    let truncated: Gauge = Gauge::default();
    truncated.set(i64::from(page.next_cursor.is_some()));
    registry.register(
        "edgeq_queue_list_truncated",
        "1 when the namespace has more queues than one scrape reports",
        truncated,
    );
    let backlog = Family::<NamespaceLabels, Gauge>::default();
    let pending = engine.reclaim_backlog(ns).await?;
    backlog
        .get_or_create(&NamespaceLabels { namespace: ns.to_string() })
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
    registry.register(
        "edgeq_reclaim_backlog",
        "Purged or deleted queue incarnations whose keys are still being deleted",
        backlog,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_labels_are_bounded() {
        assert_eq!(class(StatusCode::NO_CONTENT), (2, "2xx"));
        assert_eq!(class(StatusCode::from_u16(599).unwrap()), (5, "5xx"));
        let l = labels(None, "4xx");
        assert_eq!((l.method, l.route), ("other", "other"));
        let l = labels(Some(0), "2xx");
        assert_eq!((l.method, l.route), (ROUTES[0].method, ROUTES[0].path));
        assert!(counter_key(Some(3), 2).starts_with("//metrics/"));
    }
}
