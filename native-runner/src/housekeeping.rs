//! Background housekeeping of a server: reclaiming the keys of purged and deleted
//! queues (`reclaim.rs` in the engine).
//!
//! Consume calls take reclaim steps too, but only one call in 32 and only in
//! their own namespace; a purge of a large queue on a quiet server would wait
//! for consumers. So a server also takes steps itself, for each namespace it
//! serves: back to back (with a short pause, so that a purge of millions of
//! messages does not crowd out requests) while there is work, once a second
//! otherwise. Several servers on one store each do this; their steps repeat
//! each other's deletes harmlessly.

use edgeq::api::Api;
use edgeq::engine::Env;
use edgeq::model::Name;
use edgeq::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Pause between two steps while there is more to reclaim.
const BUSY_PAUSE: Duration = Duration::from_millis(5);
/// Pause between two looks when there is nothing to reclaim.
const IDLE_PAUSE: Duration = Duration::from_secs(1);

/// Takes reclaim steps for `namespaces` until `stop` turns true.
pub async fn reclaim<S: Store, E: Env>(
    api: Arc<Api<S, E>>,
    namespaces: Vec<Name>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let mut more = false;
        for ns in &namespaces {
            match api.engine().reclaim_step(ns).await {
                Ok(busy) => more |= busy,
                Err(e) => warn!(namespace = %ns, error = %e, "reclaim step failed; retrying later"),
            }
        }
        let pause = if more { BUSY_PAUSE } else { IDLE_PAUSE };
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SystemEnv;
    use edgeq::api::ApiConfig;
    use edgeq::engine::{Engine, NewMessage};
    use edgeq::model::QueueConfig;
    use edgeq::store::MemoryStore;

    #[tokio::test]
    async fn a_large_purge_is_reclaimed_without_any_request() {
        let store = Arc::new(MemoryStore::new());
        let api = Arc::new(Api::new(
            Engine::new(store.clone(), SystemEnv::default()),
            ApiConfig::default(),
        ));
        let (ns, q) = (Name::new("default").unwrap(), Name::new("q").unwrap());
        let engine = api.engine();
        engine.put_queue(&ns, &q, QueueConfig::default()).await.unwrap();
        for _ in 0..3 {
            let batch = (0..1000).map(|_| NewMessage::default()).collect();
            engine.send(&ns, &q, batch).await.unwrap();
        }
        engine.purge_queue(&ns, &q).await.unwrap();
        let old = |store: &MemoryStore| {
            store.keys().iter().filter(|k| k.starts_with("default/q/0/")).count()
        };
        // The purge's own steps cannot take 3,000 slots.
        assert!(old(&store) > 0);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(reclaim(api.clone(), vec![ns], stopped));
        // No request comes: the background steps alone empty the incarnation
        // (bounded wait for liveness, not a timing).
        for _ in 0..6000 {
            if old(&store) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(old(&store), 0);
        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
