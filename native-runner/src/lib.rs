//! The native edgeq host: the [`serve`] loop behind `edgeq serve`, the host
//! environment ([`SystemEnv`]) and the stores a native server runs on
//! ([`NativeStore`]: in memory, or durable in one [`redb_store`] file).
//!
//! Modules, top-down:
//!
//! - `server`: the accept loop (tokio + hyper 1.x, HTTP/1.1), request/response
//!   conversion with body limits enforced before buffering, the durability barrier
//!   after writes, graceful shutdown.
//! - `store`: [`StoreSpec`] (the `--store` flag) and [`NativeStore`], one `Store`
//!   over the backend it names.
//! - [`redb_store`]: the embedded durable store with group commit.
//! - `env`: [`SystemEnv`], the real clock, entropy and timer.
//!
//! Everything queue-related lives in the `edgeq` crate; this crate only converts.
//! It is a library as well as the `edgeq` binary so that tests (here and in the
//! workspace's black-box suites) can start a real server in-process on a port-0
//! listener.
#![warn(missing_docs)]

mod env;
pub mod redb_store;
mod server;
mod store;

pub use env::SystemEnv;
pub use redb_store::RedbStore;
pub use server::{serve, serve_with, ServeOptions};
pub use store::{NativeStore, StoreSpec, StoreSpecError, DEFAULT_STORE_PATH};
