//! A wasmtime host for the edgeq component, serving it over HTTP the way `spin up`
//! does: a fresh instance per request, many requests at once, one key-value store
//! shared by every instance.
//!
//! Used by the tests (`start_wasm_host`) and by `examples/embed.rs` (`WasmHost::serve`),
//! which includes this file with `#[path]`. The component's contract is `wit/world.wit`;
//! this host provides it with:
//!
//! - `wasmtime-wasi` (`wasi:cli`, `wasi:clocks`, `wasi:random`, `wasi:io`) and
//!   `wasmtime-wasi-http` (`wasi:http`, outgoing requests refused);
//! - `wasi:keyvalue` 0.2.0-draft2 and `wasi:config/store`, generated with `bindgen!`
//!   from `wit/` (`world host-extras`) and implemented over [`MemoryKv`], a
//!   mutex-guarded map: every call, `increment` included, is atomic across all
//!   instances. With [`HostOptions::redis`] the bucket lives in a Redis instead,
//!   through `edgeq_native::RedisStore`, the store `edgeq serve --store redis://…`
//!   uses: `increment` is `INCRBY` (atomic across instances, hosts and native
//!   servers; counters as decimal text) and values are raw bytes, as in Spin's
//!   Redis backend, so the component and native servers can share one Redis.
//!
//! A request body that declares at most 64 KiB is read whole before the instance
//! starts (see `prefetch`); a larger or chunked one streams to the instance as it
//! arrives, so the component's body limits hold before anything is buffered.
//!
//! A trap in the component (or in a host call) fails only its own request: the
//! client gets a 500 and the host keeps serving.
#![allow(dead_code)] // Each includer uses its own part of this module.

use edgeq::store::Store as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use std::collections::{hash_map, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

mod bindings {
    //! Host bindings for the imports `wasmtime-wasi` does not provide.
    wasmtime::component::bindgen!({
        path: "wit",
        world: "edgeq:component/host-extras",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::KvBucket,
            "wasi:keyvalue/atomics.cas": super::KvCas,
        },
    });
}

use bindings::wasi::config::store as config;
use bindings::wasi::keyvalue::{atomics, batch, store};

/// The key-value bucket label the component opens (`key_value_stores` in `spin.toml`).
pub const BUCKET: &str = "default";

// ---------------------------------------------------------------------------
// Starting a host
// ---------------------------------------------------------------------------

/// A running host. It listens on [`WasmHost::addr`] until dropped.
pub struct WasmHost {
    /// The loopback address the host serves HTTP/1.1 on.
    pub addr: SocketAddr,
    /// The key-value store shared by every instance of this host.
    pub kv: Arc<MemoryKv>,
    stats: Arc<HostStats>,
    server: tokio::task::JoinHandle<()>,
}

/// Options of a host.
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// The component to serve; `None` builds the workspace's own (see [`edgeq_wasm`]).
    pub component: Option<PathBuf>,
    /// Values for `wasi:config/store`, over the defaults of `spin.toml`
    /// (`namespace = "default"`, `admin_key = ""`, `root_dialect = ""`).
    pub variables: Vec<(String, String)>,
    /// The store all instances share; `None` gives the host a fresh one.
    pub kv: Option<Arc<MemoryKv>>,
    /// `redis://…`: keep the bucket in this Redis instead of in [`MemoryKv`] (which
    /// then only injects traps). The engine's calls are all supported; `list-keys`
    /// and compare-and-swap, which Spin's Redis backend offers but edgeq never
    /// calls, answer an error.
    pub redis: Option<String>,
}

/// Counters of what the host has served (tests read them; never timings).
#[derive(Debug, Default)]
pub struct HostStats {
    /// Requests handed to an instance.
    pub requests: AtomicU64,
    /// Requests whose instance trapped or never answered (each answered 500).
    pub traps: AtomicU64,
}

/// Starts a host for the workspace's component (built once per test binary) on
/// `127.0.0.1:0`, with a fresh in-memory store and `spin.toml`'s default variables.
pub async fn start_wasm_host() -> WasmHost {
    start_wasm_host_with(HostOptions::default()).await
}

/// Starts a host with `options` on `127.0.0.1:0`.
pub async fn start_wasm_host_with(options: HostOptions) -> WasmHost {
    let listener =
        TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port for the wasm host");
    WasmHost::serve(listener, options).expect("start the wasm host")
}

impl WasmHost {
    /// Serves the component on `listener` from a task on the current tokio runtime.
    pub fn serve(listener: TcpListener, options: HostOptions) -> wasmtime::Result<Self> {
        let addr = listener.local_addr()?;
        let shared = Shared::new(&options)?;
        let (kv, stats) = (shared.kv.clone(), shared.stats.clone());
        let server = tokio::spawn(accept_loop(listener, shared));
        Ok(Self { addr, kv, stats, server })
    }

    /// `http://{addr}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What the host has served so far.
    pub fn stats(&self) -> &HostStats {
        &self.stats
    }

    /// Makes the next `n` key-value calls (from any instance) trap the calling
    /// instance, as a host or store failure would.
    pub fn trap_next_store_calls(&self, n: usize) {
        self.kv.trap_next.store(n, Ordering::SeqCst);
    }
}

impl Drop for WasmHost {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts every
        // connection task (and with them the instances they run).
        self.server.abort();
    }
}

// ---------------------------------------------------------------------------
// The component: built once, compiled once per process
// ---------------------------------------------------------------------------

/// The release component of this workspace, built once per process with
/// `cargo build --target wasm32-wasip2 --release -p edgeq` into the workspace's
/// target directory. `EDGEQ_WASM=/path/to/edgeq.wasm` skips the build.
pub fn edgeq_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| match std::env::var_os("EDGEQ_WASM") {
        Some(path) => PathBuf::from(path),
        None => build_component(&["-p", "edgeq"], "edgeq.wasm"),
    })
}

/// Builds a release `wasm32-wasip2` component, `cargo build` with `args` run
/// from the workspace into [`target_dir`], and returns the path of `file` there.
pub fn build_component(args: &[&str], file: &str) -> PathBuf {
    let target_dir = target_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--target", "wasm32-wasip2", "--release"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .expect("run cargo to build a component");
    assert!(status.success(), "building {file} failed");
    target_dir.join("wasm32-wasip2/release").join(file)
}

/// The target directory this binary was built in (`<target>/<profile>/deps/<test>`
/// or `<target>/<profile>/examples/<example>`), else `CARGO_TARGET_DIR`, else
/// `<workspace>/target`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|dir| dir.join("CACHEDIR.TAG").exists())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Bytes of each linear memory kept resident between instances (the edgeq
/// component's stack, data and a request's heap fit in it).
const KEEP_RESIDENT: usize = 2 << 20;

/// The wasmtime engine of this process: Cranelift and the pooling allocator.
fn engine() -> wasmtime::Result<&'static Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(engine) = ENGINE.get() {
        return Ok(engine);
    }
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(512)
        .total_core_instances(512)
        .total_memories(512)
        .total_tables(512)
        .max_memory_size(256 << 20)
        // A fresh instance per request: reset the first MiBs of a freed slot in
        // place and keep them resident, so the next instance does not fault them
        // back in (page faults, madvise and TLB shootdowns were most of a
        // request's host time without it).
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        // Reset only the pages an instance wrote (Linux 6.7+: PAGEMAP_SCAN)
        // instead of the whole resident part of its memory: for the edgeq
        // component about 20 KiB instead of 448 KiB per request.
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `EDGEQ_PERFMAP=1`: name the guest's compiled functions for `perf` (see
    // benches/README.md, "Where the rest goes").
    if std::env::var_os("EDGEQ_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config)?;
    Ok(ENGINE.get_or_init(|| engine))
}

/// The workspace's component ([`edgeq_wasm`]), compiled once per process, and
/// the engine it was compiled for.
pub fn shared_component() -> wasmtime::Result<(Engine, Component)> {
    static COMPONENT: OnceLock<Component> = OnceLock::new();
    let engine = engine()?;
    if let Some(component) = COMPONENT.get() {
        return Ok((engine.clone(), component.clone()));
    }
    let component = Component::from_file(engine, edgeq_wasm())?;
    Ok((engine.clone(), COMPONENT.get_or_init(|| component).clone()))
}

// ---------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------

/// What every request of one host shares.
struct Shared {
    pre: ProxyPre<HostState>,
    kv: Arc<MemoryKv>,
    redis: Option<Arc<edgeq_native::RedisStore>>,
    variables: Arc<HashMap<String, String>>,
    stats: Arc<HostStats>,
}

impl Shared {
    /// Compiles (or takes) the component and links it with every import.
    fn new(options: &HostOptions) -> wasmtime::Result<Arc<Self>> {
        let (engine, component) = match &options.component {
            None => shared_component()?,
            Some(path) => {
                let engine = engine()?.clone();
                let component = Component::from_file(&engine, path)?;
                (engine, component)
            }
        };
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        bindings::HostExtras::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;

        let mut variables: HashMap<String, String> =
            [("namespace", "default"), ("admin_key", ""), ("root_dialect", "")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        variables.extend(options.variables.iter().cloned());

        let redis = match &options.redis {
            None => None,
            Some(url) => Some(Arc::new(
                edgeq_native::RedisStore::open(url)
                    .map_err(|e| wasmtime::Error::msg(e.to_string()))?,
            )),
        };
        Ok(Arc::new(Shared {
            pre,
            kv: options.kv.clone().unwrap_or_default(),
            redis,
            variables: Arc::new(variables),
            stats: Arc::default(),
        }))
    }
}

/// The component ready to answer requests on fresh instances, driven directly
/// instead of over a listener: each call is what the host does for one request
/// once hyper has parsed it (`benches/instance.rs` times it).
pub struct Instances(Arc<Shared>);

impl Instances {
    /// Compiles and links the component as [`WasmHost::serve`] does.
    pub fn new(options: &HostOptions) -> wasmtime::Result<Self> {
        Ok(Self(Shared::new(options)?))
    }

    /// Runs `req` on a fresh instance; the response's status and whole body.
    pub async fn call(
        &self,
        req: http::Request<bytes::Bytes>,
    ) -> wasmtime::Result<(u16, bytes::Bytes)> {
        let (parts, body) = req.into_parts();
        let body = Full::new(body).map_err(|never| match never {}).boxed_unsync();
        let response = run_instance(&self.0, hyper::Request::from_parts(parts, body)).await?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| wasmtime::Error::msg(format!("{e:?}")))?;
        Ok((status, body.to_bytes()))
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // Out of file descriptors and the like: try again.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
            });
            // A client that goes away mid-request is not the host's problem.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Runs one request on a fresh instance; any failure becomes a 500.
async fn handle(
    shared: &Shared,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<HyperOutgoingBody> {
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    let req = match prefetch(req).await {
        Ok(req) => req,
        // The client broke off its body: answered as the component answers a
        // body it cannot read (if the client is still there to hear it).
        Err(e) => {
            let message = format!("reading the request body: {e}");
            return json_error(hyper::StatusCode::BAD_REQUEST, "bad_request", message);
        }
    };
    match run_instance(shared, req).await {
        Ok(response) => response,
        Err(e) => {
            shared.stats.traps.fetch_add(1, Ordering::Relaxed);
            eprintln!("wasm host: request failed: {e:?}");
            internal_error()
        }
    }
}

async fn run_instance(
    shared: &Shared,
    req: hyper::Request<RequestBody>,
) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
    let mut store = Store::new(
        shared.pre.engine(),
        HostState {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().inherit_stderr().build(),
            http: WasiHttpCtx::new(),
            hooks: NoOutbound,
            kv: shared.kv.clone(),
            redis: shared.redis.clone(),
            variables: shared.variables.clone(),
        },
    );
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = store.data_mut().http().new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let pre = shared.pre.clone();

    // The instance runs in its own task so that it may keep streaming the body
    // after it has set the response.
    let task = tokio::task::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy.wasi_http_incoming_handler().call_handle(&mut store, req, out).await
    });

    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => wasmtime::bail!("the component answered with error {code:?}"),
        // The sender was dropped with the store: the instance trapped or
        // returned without setting a response.
        Err(_) => match task.await {
            Ok(Ok(())) => wasmtime::bail!("the component never set a response"),
            Ok(Err(e)) => Err(e),
            Err(e) => wasmtime::bail!("the instance task failed: {e}"),
        },
    }
}

/// A request body as the instance gets it: read whole, or streaming.
type RequestBody = UnsyncBoxBody<bytes::Bytes, hyper::Error>;

/// Request bodies of at most this many declared bytes are read whole before the
/// instance starts.
const PREFETCH_MAX: u64 = 64 << 10;

/// `req` with its body read whole when it declares a length of at most
/// [`PREFETCH_MAX`]; other bodies (larger, or chunked) stream to the instance.
///
/// hyper hands a body over through a channel that its connection task fills
/// only when the body is polled: an instance running in a task of its own that
/// reads the body waits for that task to run and wake it again. Reading a small
/// body here, in the connection task itself, spares every such request those
/// two task switches.
async fn prefetch(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Request<RequestBody>, hyper::Error> {
    use hyper::body::Body as _;
    let small = req.body().size_hint().exact().is_some_and(|len| len <= PREFETCH_MAX);
    let (parts, body) = req.into_parts();
    let body = if small {
        let whole = body.collect().await?.to_bytes();
        Full::new(whole).map_err(|never| match never {}).boxed_unsync()
    } else {
        body.boxed_unsync()
    };
    Ok(hyper::Request::from_parts(parts, body))
}

fn internal_error() -> hyper::Response<HyperOutgoingBody> {
    json_error(hyper::StatusCode::INTERNAL_SERVER_ERROR, "internal", "the component failed")
}

/// A JSON error response in the API's shape, answered by the host itself.
fn json_error(
    status: hyper::StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> hyper::Response<HyperOutgoingBody> {
    edgeq::api::error_response(status, code, message)
        .map(|body| Full::new(body).map_err(|never| match never {}).boxed_unsync())
}

// ---------------------------------------------------------------------------
// Per-instance state
// ---------------------------------------------------------------------------

/// The data of one instance's `Store`.
struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: NoOutbound,
    kv: Arc<MemoryKv>,
    /// When set, the bucket lives here and `kv` only injects traps.
    redis: Option<Arc<edgeq_native::RedisStore>>,
    variables: Arc<HashMap<String, String>>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

/// `wasi:http` hooks that refuse every outgoing request, like a Spin component
/// with no `allowed_outbound_hosts`.
struct NoOutbound;

impl WasiHttpHooks for NoOutbound {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<
                            dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                                + Send,
                        >,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

// ---------------------------------------------------------------------------
// The shared key-value store
// ---------------------------------------------------------------------------

/// An in-memory `wasi:keyvalue` store shared by every instance of a host.
///
/// One `std::sync::Mutex` guards the map and is never held across an `.await`,
/// so every call (each batch included) is atomic with respect to all others.
/// Counters are kept as `i64`; reading one with `get` gives its 8-byte
/// little-endian encoding, as on Spin's SQLite backend.
///
/// The map is a hash map (foldhash), updated in place: a queue under load holds
/// hundreds of thousands of keys that share long prefixes, where an ordered map
/// compares strings all the way down. Only `list-keys`, which edgeq never calls,
/// wants order, and sorts.
#[derive(Debug, Default)]
pub struct MemoryKv {
    entries: Mutex<Map>,
    trap_next: AtomicUsize,
}

type Map = HashMap<String, Entry, foldhash::fast::RandomState>;

#[derive(Debug, Clone)]
enum Entry {
    Bytes(Vec<u8>),
    Counter(i64),
}

impl Entry {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Entry::Bytes(b) => b.clone(),
            Entry::Counter(n) => n.to_le_bytes().to_vec(),
        }
    }
}

impl MemoryKv {
    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Every key, in order (for tests that check for leftovers).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// The bytes under `key` (counters in 8-byte little endian).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().get(key).map(Entry::bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        // A panic while holding the lock cannot leave the map half-written: every
        // critical section is a single map operation.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Traps the calling instance if a trap was requested with
    /// [`WasmHost::trap_next_store_calls`].
    fn check_trap(&self) -> wasmtime::Result<()> {
        let take =
            self.trap_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if take.is_ok() {
            wasmtime::bail!("injected key-value failure");
        }
        Ok(())
    }

    fn increment(&self, key: String, delta: i64) -> Result<i64, store::Error> {
        let mut entries = self.lock();
        let entry = entries.entry(key);
        let current = match &entry {
            hash_map::Entry::Vacant(_) => 0,
            hash_map::Entry::Occupied(e) => match e.get() {
                Entry::Counter(n) => *n,
                Entry::Bytes(b) => match <[u8; 8]>::try_from(b.as_slice()) {
                    Ok(le) => i64::from_le_bytes(le),
                    Err(_) => {
                        return Err(store::Error::Other(format!(
                            "increment: key {:?} holds a non-counter value",
                            e.key()
                        )))
                    }
                },
            },
        };
        let Some(next) = current.checked_add(delta) else {
            return Err(store::Error::Other(format!("increment: key {:?} overflows", entry.key())));
        };
        entry.insert_entry(Entry::Counter(next));
        Ok(next)
    }
}

/// The host side of a `wasi:keyvalue/store.bucket` (there is one bucket).
pub struct KvBucket;

/// The host side of a `wasi:keyvalue/atomics.cas`: the value seen when it was made.
pub struct KvCas {
    key: String,
    seen: Option<Vec<u8>>,
}

type KvResult<T> = wasmtime::Result<Result<T, store::Error>>;

/// A failed Redis call as the component sees it.
fn redis_error(e: edgeq::store::StoreError) -> store::Error {
    store::Error::Other(e.0)
}

/// What the Redis bucket does not offer (edgeq never calls it).
fn unsupported(what: &str) -> store::Error {
    store::Error::Other(format!("{what} is not supported by this host's Redis bucket"))
}

impl store::Host for HostState {
    async fn open(&mut self, identifier: String) -> KvResult<Resource<KvBucket>> {
        self.kv.check_trap()?;
        if identifier != BUCKET {
            return Ok(Err(store::Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(KvBucket)?))
    }
}

impl store::HostBucket for HostState {
    async fn get(&mut self, _: Resource<KvBucket>, key: String) -> KvResult<Option<Vec<u8>>> {
        self.kv.check_trap()?;
        if let Some(redis) = &self.redis {
            return Ok(redis.get(&key).await.map_err(redis_error));
        }
        Ok(Ok(self.kv.get(&key)))
    }

    async fn set(&mut self, _: Resource<KvBucket>, key: String, value: Vec<u8>) -> KvResult<()> {
        self.kv.check_trap()?;
        if let Some(redis) = &self.redis {
            return Ok(redis.set(&key, &value).await.map_err(redis_error));
        }
        self.kv.lock().insert(key, Entry::Bytes(value));
        Ok(Ok(()))
    }

    async fn delete(&mut self, _: Resource<KvBucket>, key: String) -> KvResult<()> {
        self.kv.check_trap()?;
        if let Some(redis) = &self.redis {
            return Ok(redis.delete(&key).await.map_err(redis_error));
        }
        self.kv.lock().remove(&key);
        Ok(Ok(()))
    }

    async fn exists(&mut self, _: Resource<KvBucket>, key: String) -> KvResult<bool> {
        self.kv.check_trap()?;
        if let Some(redis) = &self.redis {
            return Ok(redis.get(&key).await.map(|v| v.is_some()).map_err(redis_error));
        }
        Ok(Ok(self.kv.lock().contains_key(&key)))
    }

    async fn list_keys(
        &mut self,
        _: Resource<KvBucket>,
        cursor: Option<String>,
    ) -> KvResult<store::KeyResponse> {
        self.kv.check_trap()?;
        if self.redis.is_some() {
            return Ok(Err(unsupported("list-keys")));
        }
        const PAGE: usize = 1000;
        let after = cursor.unwrap_or_default();
        let mut keys: Vec<String> =
            self.kv.lock().keys().filter(|k| **k > after).cloned().collect();
        keys.sort_unstable();
        keys.truncate(PAGE + 1);
        let cursor = if keys.len() > PAGE {
            keys.truncate(PAGE);
            keys.last().cloned()
        } else {
            None
        };
        Ok(Ok(store::KeyResponse { keys, cursor }))
    }

    async fn drop(&mut self, bucket: Resource<KvBucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for HostState {
    async fn increment(&mut self, _: Resource<KvBucket>, key: String, delta: i64) -> KvResult<i64> {
        self.kv.check_trap()?;
        if let Some(redis) = &self.redis {
            return Ok(redis.increment(&key, delta).await.map_err(redis_error));
        }
        Ok(self.kv.increment(key, delta))
    }

    async fn swap(
        &mut self,
        cas: Resource<KvCas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        self.kv.check_trap()?;
        let swapped = {
            let op = self.table.get(&cas)?;
            let mut entries = self.kv.lock();
            let now = entries.get(&op.key).map(Entry::bytes);
            if now == op.seen {
                entries.insert(op.key.clone(), Entry::Bytes(value));
                true
            } else {
                false
            }
        };
        if swapped {
            self.table.delete(cas)?;
            Ok(Ok(()))
        } else {
            Ok(Err(atomics::CasError::CasFailed(cas)))
        }
    }
}

impl atomics::HostCas for HostState {
    async fn new(&mut self, _: Resource<KvBucket>, key: String) -> KvResult<Resource<KvCas>> {
        self.kv.check_trap()?;
        if self.redis.is_some() {
            // No handle is ever made, so `swap` never runs on a Redis bucket.
            return Ok(Err(unsupported("compare-and-swap")));
        }
        let seen = self.kv.get(&key);
        Ok(Ok(self.table.push(KvCas { key, seen })?))
    }

    async fn current(&mut self, cas: Resource<KvCas>) -> KvResult<Option<Vec<u8>>> {
        Ok(Ok(self.table.get(&cas)?.seen.clone()))
    }

    async fn drop(&mut self, cas: Resource<KvCas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for HostState {
    async fn get_many(
        &mut self,
        _: Resource<KvBucket>,
        keys: Vec<String>,
    ) -> KvResult<Vec<(String, Option<Vec<u8>>)>> {
        self.kv.check_trap()?;
        if let Some(redis) = &self.redis {
            // Like Spin: only the keys found, in the order asked.
            return Ok(redis.get_many(&keys).await.map_err(redis_error).map(|values| {
                keys.into_iter()
                    .zip(values)
                    .filter_map(|(key, value)| Some((key, Some(value?))))
                    .collect()
            }));
        }
        let entries = self.kv.lock();
        // Like Spin: only the keys found, in the order asked.
        let found = keys
            .into_iter()
            .filter_map(|key| {
                let value = entries.get(&key)?.bytes();
                Some((key, Some(value)))
            })
            .collect();
        Ok(Ok(found))
    }

    async fn set_many(
        &mut self,
        _: Resource<KvBucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        self.kv.check_trap()?;
        if let Some(redis) = &self.redis {
            for (key, value) in key_values {
                if let Err(e) = redis.set(&key, &value).await {
                    return Ok(Err(redis_error(e)));
                }
            }
            return Ok(Ok(()));
        }
        let mut entries = self.kv.lock();
        for (key, value) in key_values {
            entries.insert(key, Entry::Bytes(value));
        }
        Ok(Ok(()))
    }

    async fn delete_many(&mut self, _: Resource<KvBucket>, keys: Vec<String>) -> KvResult<()> {
        self.kv.check_trap()?;
        if let Some(redis) = &self.redis {
            return Ok(redis.delete_many(&keys).await.map_err(redis_error));
        }
        let mut entries = self.kv.lock();
        for key in keys {
            entries.remove(&key);
        }
        Ok(Ok(()))
    }
}

impl config::Host for HostState {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, config::Error>> {
        Ok(Ok(self.variables.get(&key).cloned()))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, config::Error>> {
        let mut all: Vec<(String, String)> =
            self.variables.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        all.sort();
        Ok(Ok(all))
    }
}
