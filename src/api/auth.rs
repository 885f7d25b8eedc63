//! Who is calling: `Authorization: Bearer <key>` checked against the route table.
//!
//! With no admin key configured the API is **open** (every request is allowed and
//! nothing here runs: no store call). With one, [`Auth::authorize`] runs before
//! every route:
//!
//! - the route's [`Access`] comes from the one table in `routes.rs`; a request
//!   outside the table (unknown path or method) needs a valid key of any right,
//!   so nothing is learnt about routes without one;
//! - the presented key is hashed (SHA-256) and compared with the admin key's
//!   hash in constant time (no store call), else looked up by its hash under
//!   `//auth/key/{hash}` (one `get`). Looking up by hash means the store never
//!   sees the key and a wrong key's timing depends only on its hash, which
//!   reveals nothing about a prefix; the stored hash is compared again in
//!   constant time;
//! - a key holds a namespace (or `*`) and rights; `admin` includes the others.
//!   The v1 routes serve the one configured namespace, so a key scoped to
//!   another namespace is refused there (403);
//! - a `public` queue is readable (`Access::Public` routes) without any key,
//!   which costs one queue lookup for such anonymous requests only.
//!
//! Missing, malformed, unknown and revoked keys are `401 unauthorized` (with
//! `WWW-Authenticate: Bearer`); a valid key without the right or the namespace is
//! `403 forbidden`. Both are answered before any handler runs, so they change
//! nothing.

use super::error::ApiError;
use super::keys::{self, KeyRecord};
use super::router;
use super::routes::{self, Access, Right, Route};
use crate::engine::{Engine, Env};
use crate::model::Name;
use crate::store::Store;
use http::request::Parts;
use http::StatusCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The checker, present when an admin key is configured.
pub(crate) struct Auth {
    admin_hash: [u8; 32],
}

/// Who a request was allowed as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// Open mode, an open route, or an anonymous read of a public queue.
    Anyone,
    /// The configured admin key: every right in every namespace.
    Admin,
    /// A stored key.
    Key(KeyRecord),
}

impl Principal {
    /// The namespace this principal is limited to (`None`: all of them).
    pub(crate) fn namespace(&self) -> Option<&str> {
        match self {
            Principal::Key(k) if k.namespace != keys::ANY_NAMESPACE => Some(&k.namespace),
            _ => None,
        }
    }
}

/// The SHA-256 of `key`.
pub(crate) fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// `401 unauthorized`.
pub(crate) fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_bearer_challenge()
}

/// `403 forbidden`.
pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

impl Auth {
    /// Checks keys against `admin_key`.
    pub(crate) fn new(admin_key: &str) -> Self {
        Self { admin_hash: hash(admin_key) }
    }

    /// Allows or refuses one request to `route` (from [`routes::find`]) in
    /// namespace `ns`.
    pub(crate) async fn authorize<S: Store, E: Env>(
        &self,
        engine: &Engine<S, E>,
        ns: Option<&Name>,
        parts: &Parts,
        route: Option<&Route>,
    ) -> Result<Principal, ApiError> {
        let access = route.map_or(Access::Key(Right::Browse), |r| r.access);
        if access == Access::Open {
            return Ok(Principal::Anyone);
        }
        let Some(header) = parts.headers.get(http::header::AUTHORIZATION) else {
            if let (Access::Public, Some(route), Some(ns)) = (access, route, ns) {
                if is_public(engine, ns, route, parts.uri.path()).await? {
                    return Ok(Principal::Anyone);
                }
            }
            return Err(unauthorized("this route needs an API key: Authorization: Bearer <key>"));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header is not \"Bearer <key>\""))?;
        let presented = hash(token);
        let principal = if bool::from(presented.ct_eq(&self.admin_hash)) {
            Principal::Admin
        } else {
            match keys::lookup(engine.store(), &presented).await? {
                Some(record) if !record.revoked => Principal::Key(record),
                Some(_) => return Err(unauthorized("this API key was revoked")),
                None => return Err(unauthorized("unknown API key")),
            }
        };
        if let Principal::Key(k) = &principal {
            // Outside the table (a 404 or 405 to come), any valid key will do.
            let needed = match (route, access) {
                (None, _) => None,
                (_, Access::Key(right)) => Some(right),
                _ => Some(Right::Browse),
            };
            if let Some(right) = needed {
                k.allows(ns.map(Name::as_str), right)?;
            }
        }
        Ok(principal)
    }
}

/// Whether the queue named in `path` (under `route`) exists and is `public`.
async fn is_public<S: Store, E: Env>(
    engine: &Engine<S, E>,
    ns: &Name,
    route: &Route,
    path: &str,
) -> Result<bool, ApiError> {
    let Some(q) = routes::queue_segment(route.path, path).and_then(|s| router::name(s).ok()) else {
        return Ok(false);
    };
    match engine.queue(ns, &q).await {
        Ok(queue) => Ok(queue.meta.config.public),
        Err(crate::engine::Error::QueueNotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl KeyRecord {
    /// `Ok` when this key may use `right` in namespace `ns` (`None`: a route
    /// outside any namespace, such as `/metrics`, which needs an all-namespace key
    /// or the served namespace).
    pub(crate) fn allows(&self, ns: Option<&str>, right: Right) -> Result<(), ApiError> {
        let in_scope = self.namespace == keys::ANY_NAMESPACE || ns == Some(&self.namespace);
        if !in_scope {
            return Err(forbidden(format!(
                "this API key is scoped to namespace {:?}; this route serves {}",
                self.namespace,
                ns.map_or("every namespace".to_owned(), |n| format!("{n:?}"))
            )));
        }
        if !self.rights.iter().any(|r| *r == right || *r == Right::Admin) {
            let right = serde_json::to_value(right).unwrap_or_default();
            return Err(forbidden(format!("this API key lacks the {right} right")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Api, ApiConfig};
    use crate::engine::ManualEnv;
    use crate::store::{FaultPlan, FaultyStore, MemoryStore};
    use bytes::Bytes;
    use futures::executor::block_on;
    use std::sync::Arc;

    type Counted = Arc<FaultyStore<MemoryStore>>;

    fn api(admin_key: Option<&str>) -> (Api<Counted, ManualEnv>, Counted) {
        let plan = FaultPlan { seed: 1, max_delay: 0, fail_before_ppm: 0, fail_after_ppm: 0 };
        let store = Arc::new(FaultyStore::new(MemoryStore::new(), plan));
        let config = ApiConfig { admin_key: admin_key.map(str::to_owned), ..ApiConfig::default() };
        (Api::new(Engine::new(store.clone(), ManualEnv::new(1_000, 1)), config), store)
    }

    fn call(api: &Api<Counted, ManualEnv>, method: &str, uri: &str, key: Option<&str>) -> u16 {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        block_on(api.handle(b.body(Bytes::from_static(b"{\"rights\":[\"browse\"]}")).unwrap()))
            .status()
            .as_u16()
    }

    /// Store calls made by one `GET /v1/queues/q` (a missing queue).
    fn calls(api: &Api<Counted, ManualEnv>, store: &Counted, key: Option<&str>) -> u64 {
        let before = store.calls();
        assert_eq!(call(api, "GET", "/v1/queues/q", key), 404);
        store.calls() - before
    }

    #[test]
    fn keys_cost_one_get_and_the_open_mode_none() {
        let (open, store) = api(None);
        let base = calls(&open, &store, None);
        let (keyed, store) = api(Some("admin"));
        assert_eq!(calls(&keyed, &store, Some("admin")), base, "the admin key costs no call");
        let res = block_on(
            keyed.handle(
                http::Request::post("/v1/keys")
                    .header("authorization", "Bearer admin")
                    .body(Bytes::from_static(br#"{"rights":["browse"]}"#))
                    .unwrap(),
            ),
        );
        assert_eq!(res.status(), 201);
        let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        let key = v["key"].as_str().unwrap();
        assert_eq!(calls(&keyed, &store, Some(key)), base + 1, "a stored key costs one get");
        // Refusals happen before any handler: a wrong key costs its one lookup only.
        let before = store.calls();
        assert_eq!(call(&keyed, "POST", "/v1/queues/q/pop", Some("wrong")), 401);
        assert_eq!(call(&keyed, "POST", "/v1/queues/q/pop", None), 401);
        assert_eq!(store.calls() - before, 1);
    }

    #[test]
    fn healthz_says_whether_the_api_is_open() {
        for (admin, mode) in [(None, "open"), (Some(""), "open"), (Some("k"), "keys")] {
            let (a, _) = api(admin);
            let res =
                block_on(a.handle(http::Request::get("/healthz").body(Bytes::new()).unwrap()));
            let v: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
            assert_eq!(v["auth"], mode);
            assert_eq!(a.is_open(), mode == "open");
        }
    }

    fn key(ns: &str, rights: &[Right]) -> KeyRecord {
        KeyRecord {
            id: 1,
            namespace: ns.into(),
            rights: rights.to_vec(),
            name: None,
            created_at: 0,
            hash: String::new(),
            revoked: false,
        }
    }

    #[test]
    fn admin_includes_every_right_and_scope_is_checked() {
        let k = key("default", &[Right::Admin]);
        for r in [Right::Admin, Right::Produce, Right::Consume, Right::Browse] {
            assert!(k.allows(Some("default"), r).is_ok());
        }
        assert_eq!(k.allows(Some("other"), Right::Browse).unwrap_err().code(), "forbidden");
        let k = key("*", &[Right::Produce]);
        assert!(k.allows(Some("x"), Right::Produce).is_ok());
        assert!(k.allows(None, Right::Produce).is_ok());
        let e = k.allows(Some("x"), Right::Consume).unwrap_err();
        assert!(e.body().message.contains("\"consume\""), "{}", e.body().message);
        assert!(key("default", &[Right::Admin]).allows(None, Right::Admin).is_err());
    }

    #[test]
    fn hashes_are_sha256() {
        assert_eq!(
            hash("abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256 of \"abc\" starts ba7816bf"
        );
    }
}
