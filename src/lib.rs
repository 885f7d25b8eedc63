//! edgeq: an HTTP message queue whose one engine runs natively, as a Spin component
//! and inside any wasmtime host.
//!
//! The crate is layered; each layer may use only the ones above it:
//!
//! - [`model`]: pure data (names, ids, queue config, stored records) and validation.
//! - [`store`]: the `Store` contract (async key-value + atomic `increment`) and the
//!   in-memory reference store.
//! - [`engine`]: every queue rule, over a `Store` and an `Env` (clock, randomness,
//!   sleep). No I/O of its own: time and entropy are injected.
//! - [`api`]: transport-agnostic HTTP: `http::Request<Bytes>` in,
//!   `http::Response<Bytes>` out. Hosts only convert.
//! - `spin` (wasm32 only): `Store` over Spin key-value and the HTTP component.
//!
//! The native server (`edgeq serve`) lives in the `native-runner` crate.
#![warn(missing_docs)]

pub mod api;
pub mod engine;
pub mod model;
pub mod store;

#[cfg(target_arch = "wasm32")]
mod spin;
