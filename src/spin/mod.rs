//! The Spin HTTP component (wasm32 only): edgeq's engine and HTTP layer served by
//! spin-sdk 5.2 over WASI 0.2.
//!
//! - [`SpinStore`]: the [`Store`](crate::store::Store) contract over the
//!   `wasi:keyvalue` 0.2.0-draft2 `store`/`atomics`/`batch` interfaces, on the
//!   bucket `"default"` (the manifest lists it under `key_value_stores`).
//! - [`SpinEnv`]: the engine's [`Env`](crate::engine::Env) over `wasi:clocks` and
//!   `wasi:random`.
//! - the `wasi:http/incoming-handler` export (`component.rs`): reads the
//!   configuration from `wasi:config/store` (Spin application variables), reads the
//!   request body (if one is declared) up to
//!   [`Api::body_limit`](crate::api::Api::body_limit), calls
//!   [`Api::handle`](crate::api::Api::handle) and writes the response back, in as
//!   few host calls as it can: each costs about a microsecond of the host's time.
//!
//! Spin makes a fresh instance for every request, so nothing here is cached between
//! requests: every request opens the bucket and reads its configuration again.
//! The world this component targets, and what every host must guarantee, is in
//! `wit/world.wit` and `wit/README.md`.
//!
//! # Why `wasi:config/store` and not `spin_sdk::variables`
//! `spin_sdk::variables::get` calls Spin's own `fermyon:spin/variables@2.0.0`.
//! `wasi:config/store@0.2.0-draft-2024-09-27` reads the very same component
//! variables on Spin 3.x/4.x and SpinKube, and is a WASI interface that other
//! hosts implement too (`wasmtime-wasi-config`), so the component's world stays
//! free of Spin-specific imports.

mod component;
mod env;
mod store;

pub use env::SpinEnv;
pub use store::SpinStore;
