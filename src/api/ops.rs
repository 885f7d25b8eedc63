//! Operational routes outside `/v1`: `/healthz` and `/__heartbeat__`.

use super::error::ApiError;
use super::json;
use super::router::allow;
use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

/// The key `/healthz` reads: never written, so the read is one cheap miss.
const PROBE_KEY: &str = "edgeq-healthz-probe";

/// `GET /healthz`: 200 `{"status":"ok","store":"ok","auth":"keys"}` when one
/// store read succeeds, else 503 `{"status":"unavailable","store":"<error>",...}`.
/// `auth` is `"open"` when no admin key is configured (anyone may do anything).
pub(crate) async fn healthz<S: Store>(
    method: &Method,
    store: &S,
    open: bool,
) -> Result<Response<Bytes>, ApiError> {
    allow(method, "GET, HEAD")?;
    let auth = if open { "open" } else { "keys" };
    Ok(match store.get(PROBE_KEY).await {
        Ok(_) => json::response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "store": "ok", "auth": auth}),
        ),
        Err(e) => json::response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"status": "unavailable", "store": e.to_string(), "auth": auth}),
        ),
    })
}

/// `GET|HEAD /__heartbeat__`: 200 `OK` as text (Queuey clients probe it).
pub(crate) fn heartbeat(method: &Method) -> Result<Response<Bytes>, ApiError> {
    allow(method, "GET, HEAD")?;
    let mut res = Response::new(Bytes::from_static(b"OK"));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, StoreError, StoreResult};
    use futures::executor::block_on;
    use std::future::{ready, Future};

    /// A store whose every call fails.
    struct Down;
    impl Store for Down {
        fn get(&self, _: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send {
            ready(Err(StoreError("down".into())))
        }
        fn get_many(
            &self,
            _: &[String],
        ) -> impl Future<Output = StoreResult<Vec<Option<Vec<u8>>>>> + Send {
            ready(Err(StoreError("down".into())))
        }
        fn set(&self, _: &str, _: &[u8]) -> impl Future<Output = StoreResult<()>> + Send {
            ready(Err(StoreError("down".into())))
        }
        fn delete(&self, _: &str) -> impl Future<Output = StoreResult<()>> + Send {
            ready(Err(StoreError("down".into())))
        }
        fn delete_many(&self, _: &[String]) -> impl Future<Output = StoreResult<()>> + Send {
            ready(Err(StoreError("down".into())))
        }
        fn increment(&self, _: &str, _: i64) -> impl Future<Output = StoreResult<i64>> + Send {
            ready(Err(StoreError("down".into())))
        }
    }

    #[test]
    fn healthz_reports_the_store() {
        let res = block_on(healthz(&Method::GET, &MemoryStore::new(), true)).unwrap();
        assert_eq!(res.status(), 200);
        let res = block_on(healthz(&Method::GET, &Down, true)).unwrap();
        assert_eq!(res.status(), 503);
        let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(v["status"], "unavailable");
        assert!(v["store"].as_str().unwrap().contains("down"));
        let store = MemoryStore::new();
        block_on(healthz(&Method::GET, &store, true)).unwrap();
        assert!(store.is_empty(), "the probe writes nothing");
    }
}
