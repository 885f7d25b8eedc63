//! The native edgeq host: the [`serve`] loop behind `edgeq serve`, the host
//! environment ([`SystemEnv`]) and the stores a native server runs on
//! ([`NativeStore`]: in memory, durable in one [`redb_store`] file, or shared in a
//! Redis through [`redis_store`]).
//!
//! Modules, top-down:
//!
//! - `server`: the accept loop (tokio + hyper 1.x, HTTP/1.1), request/response
//!   conversion with body limits enforced before buffering, the durability barrier
//!   after writes, graceful shutdown.
//! - `store`: [`StoreSpec`] (the `--store` flag) and [`NativeStore`], one `Store`
//!   over the backend it names.
//! - [`redb_store`]: the embedded durable store with group commit.
//! - [`redis_store`]: the store several servers (and Spin instances) share.
//! - `env`: [`SystemEnv`], the real clock, entropy and timer.
//! - [`housekeeping`]: what a server does in the background (reclaiming the
//!   keys of purged and deleted queues).
//! - [`testing`]: helpers for tests (a private `redis-server` per test).
//! - [`client`]: the typed HTTP client of the v1 API, the project's only one.
//! - [`cli`]: the client commands of the `edgeq` binary, over [`client`].
//! - `signal`: [`ctrl_c_or_sigterm`], the stop signal of `serve` and `consume`.
//!
//! Everything queue-related lives in the `edgeq` crate; this crate only converts.
//! It is a library as well as the `edgeq` binary so that tests (here and in the
//! workspace's black-box suites) can start a real server in-process on a port-0
//! listener.
#![warn(missing_docs)]

pub mod cli;
pub mod client;
mod env;
pub mod housekeeping;
pub mod redb_store;
pub mod redis_store;
mod server;
mod signal;
mod store;
pub mod testing;

pub use env::SystemEnv;
pub use redb_store::RedbStore;
pub use redis_store::RedisStore;
pub use server::{serve, serve_with, ServeOptions};
pub use signal::ctrl_c_or_sigterm;
pub use store::{NativeStore, StoreSpec, StoreSpecError, DEFAULT_STORE_PATH};
