//! [`InProcessServer`]: `edgeq_native::serve` in the test's own process.

use crate::{serve, NativeStore, StoreSpec, SystemEnv};
use edgeq::api::{Api, ApiConfig};
use edgeq::engine::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long [`InProcessServer::shutdown`] waits for `serve` to return: a guard
/// against a hung test, not a measure.
const SHUTDOWN_GUARD: Duration = Duration::from_secs(60);

/// A server on a loopback port over a store, as `edgeq serve` runs one: its stop
/// signal reaches the engine's environment too (long polls end at shutdown).
pub struct InProcessServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Sending `true` shuts it down.
    pub stop: watch::Sender<bool>,
    /// The `serve` task; it ends after a shutdown, or if serving fails.
    pub task: JoinHandle<std::io::Result<()>>,
}

impl InProcessServer {
    /// Opens the store `spec` names, checks that it answers, and serves it.
    ///
    /// # Panics
    ///
    /// When the store cannot be opened or reached, or no loopback port bound.
    pub async fn start(spec: &StoreSpec) -> Self {
        let store = NativeStore::open(spec).expect("open the store");
        store.check().await.expect("the store answers");
        let (stop, mut stopped) = watch::channel(false);
        let env = SystemEnv::stopped_by(stopped.clone());
        let api = Arc::new(Api::new(Engine::new(store, env), ApiConfig::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("the bound address");
        let task = tokio::spawn(serve(listener, api, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        InProcessServer { addr, stop, task }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Signals shutdown and waits for `serve` to return `Ok`.
    ///
    /// # Panics
    ///
    /// When it does not return within a minute, panicked or failed.
    pub async fn shutdown(self) {
        self.stop.send(true).expect("the server is running");
        let result = tokio::time::timeout(SHUTDOWN_GUARD, self.task)
            .await
            .expect("serve did not return after shutdown");
        result.expect("the server task panicked").expect("serve failed");
    }
}
