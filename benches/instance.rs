//! One request at a time on fresh instances, in process: the wasmtime host's whole
//! per-request path (`tests/support/wasm_host.rs`: a `Store`, instantiation from
//! the `InstancePre`, the handler, the response collected, the `Store` dropped)
//! with no sockets, no hyper parsing and no load tool sharing the cores.
//!
//! ```text
//! cargo bench --bench instance           # N=5000 requests per phase, best of 3 rounds
//! N=20000 ROUNDS=5 cargo bench --bench instance
//! ```
//!
//! To profile one phase alone, run the built binary under `perf` with a control
//! fifo and name the phase (a part of its name) in `PERF_PHASE`; the bench
//! enables perf only around that phase:
//!
//! ```text
//! mkfifo /tmp/perfctl
//! PERF_PHASE=pop PERF_CTL=/tmp/perfctl perf record -g --control fifo:/tmp/perfctl -D -1 \
//!     target/release/deps/instance-<hash>
//! ```
//!
//! It builds the edgeq component and the empty component of
//! `benches/empty-component/` first (cargo does nothing when they are fresh). The figures are µs of one
//! core per request, and `empty / edgeq` is the serial counterpart of the ratios
//! `benches/component.sh` measures under `wrk` (where every cost is 2–2.5 times
//! larger and the VM's noise far wider). In each round the pushes fill the queue
//! that its pops then empty.

/// The allocator of `examples/embed.rs` (the host `benches/component.sh` serves).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/support/wasm_host.rs"]
mod wasm_host;

use bytes::Bytes;
use std::path::PathBuf;
use std::time::Instant;
use wasm_host::{HostOptions, Instances};

/// Writes `command` to perf's control fifo.
fn perf_control(fifo: &str, command: &str) {
    use std::io::Write;
    let mut ctl = std::fs::OpenOptions::new().write(true).open(fifo).expect("perf's control fifo");
    writeln!(ctl, "{command}").expect("perf takes the command");
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn request(method: &str, path: &str, body: &[u8]) -> http::Request<Bytes> {
    http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/octet-stream")
        .header("content-length", body.len())
        .body(Bytes::copy_from_slice(body))
        .expect("a valid request")
}

/// µs per call of `n` calls of `req`, each checked for `status`.
async fn timed(host: &Instances, n: usize, status: u16, req: &http::Request<Bytes>) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        let mut copy = http::Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.headers_mut() = req.headers().clone();
        let (got, body) = host.call(copy).await.expect("the instance answers");
        assert_eq!(
            got,
            status,
            "{} {}: {}",
            req.method(),
            req.uri(),
            String::from_utf8_lossy(&body)
        );
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (n, rounds) = (knob("N", 5000), knob("ROUNDS", 3));
    let empty_wasm = wasm_host::build_component(
        &["--manifest-path", "benches/empty-component/Cargo.toml"],
        "edgeq_bench_empty.wasm",
    );
    let edgeq_wasm = wasm_host::edgeq_wasm().to_path_buf();
    let body = [b'x'; 128];
    let phases = [
        ("empty component", 200, request("GET", "/healthz", b"")),
        ("edgeq unknown path (404)", 404, request("GET", "/nope", b"")),
        ("edgeq GET /healthz", 200, request("GET", "/healthz", b"")),
        ("edgeq push 1 x 128 B", 201, request("POST", "/v1/queues/bench/messages", &body)),
        ("edgeq pop 1 msg", 200, request("POST", "/v1/queues/bench/pop", b"")),
    ];
    let load = |wasm: &PathBuf| {
        Instances::new(&HostOptions { component: Some(wasm.clone()), ..HostOptions::default() })
            .expect("load the component")
    };
    let (empty, edgeq) = (load(&empty_wasm), load(&edgeq_wasm));
    let (status, _) = edgeq.call(request("PUT", "/v1/queues/bench", b"")).await.expect("PUT");
    assert_eq!(status, 201, "create the queue");
    // `perf record --control fifo:CTL -D -1` profiles just the phases whose
    // name contains PERF_PHASE (see benches/README.md).
    let perf = std::env::var("PERF_PHASE").ok().zip(std::env::var("PERF_CTL").ok());
    let mut best = [f64::INFINITY; 5];
    for _ in 0..rounds {
        for (i, (name, status, req)) in phases.iter().enumerate() {
            let host = if i == 0 { &empty } else { &edgeq };
            let profiled = perf.as_ref().filter(|(phase, _)| name.contains(phase.as_str()));
            if let Some((_, ctl)) = profiled {
                perf_control(ctl, "enable");
            }
            best[i] = best[i].min(timed(host, n, *status, req).await);
            if let Some((_, ctl)) = profiled {
                perf_control(ctl, "disable");
            }
        }
    }
    println!("one request at a time on fresh instances, {n} per phase, best of {rounds} rounds");
    println!("{:<28} {:>9} {:>13}", "phase", "µs", "empty / this");
    for ((name, _, _), us) in phases.iter().zip(best) {
        println!("{name:<28} {us:>9.1} {:>13.2}", best[0] / us);
    }
}
