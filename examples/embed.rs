//! Embedding edgeq in your own wasmtime program.
//!
//! ```text
//! cargo build --target wasm32-wasip2 --release -p edgeq
//! cargo run --example embed -- 127.0.0.1:8080 target/wasm32-wasip2/release/edgeq.wasm
//! curl -i http://127.0.0.1:8080/__heartbeat__
//! ```
//!
//! The host is `tests/support/wasm_host.rs` (the one the test suite runs the
//! component in): `wasmtime-wasi` and `wasmtime-wasi-http` for the standard
//! interfaces, and `bindgen!` over `wit/` (`world host-extras`) for
//! `wasi:keyvalue` draft2 and `wasi:config/store`, here over an in-memory store.
//! A real embedding keeps the same shape and puts the key-value calls on its own
//! database; `wit/README.md` says what each of them must guarantee (above all,
//! `increment` atomic across every instance).
//!
//! Arguments: the address to listen on (default `127.0.0.1:8080`) and the
//! component (default: build this workspace's). Configuration variables come from
//! `EDGEQ_VAR_<NAME>` environment variables, e.g. `EDGEQ_VAR_NAMESPACE=prod`.

/// mimalloc, as in the native server: each request's instance, host calls and
/// hyper buffers allocate and free many small objects.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/wasm_host.rs"]
mod wasm_host;

use wasm_host::{HostOptions, WasmHost};

#[tokio::main]
async fn main() -> wasmtime::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let component = args.next().map(Into::into);
    let variables = std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix("EDGEQ_VAR_")?.to_lowercase(), v)))
        .collect();

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let host =
        WasmHost::serve(listener, HostOptions { component, variables, ..HostOptions::default() })?;
    println!("edgeq component listening on http://{}", host.addr);
    // Serve until the process is stopped (ctrl-c).
    std::future::pending::<()>().await;
    Ok(())
}
