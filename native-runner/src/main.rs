//! `edgeq`: the native edgeq server (`edgeq serve`) and its client commands
//! (`edgeq queues list`, `edgeq consume`, ...: [`edgeq_native::cli`]).
//!
//! `main` stays thin: parse flags, open the store, build the `Api`, bind, and hand
//! everything to [`edgeq_native::serve_with`] with ctrl-c / SIGTERM as the shutdown
//! signal; client commands go to [`edgeq_native::cli::run`]. Logs go to stderr;
//! `RUST_LOG` filters them (default `info`; `debug` adds one line per request).

use clap::{Args, Parser, Subcommand};
use edgeq::api::{Api, ApiConfig, Dialect, QueueyApp};
use edgeq::engine::Engine;
use edgeq::model::Name;
use edgeq_native::{serve_with, NativeStore, ServeOptions, StoreSpec, SystemEnv};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: every request allocates and frees a few small
/// buffers on worker threads, where glibc's arenas cost ~12% of a pop's CPU
/// (`_int_malloc`, `_int_free`, `malloc_consolidate` in perf); mimalloc's
/// thread-local free lists make that a fraction (benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An HTTP message queue.
#[derive(Debug, Parser)]
#[command(name = "edgeq", version, about)]
struct Cli {
    #[command(flatten)]
    client: edgeq_native::cli::ClientArgs,
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the HTTP server until ctrl-c or SIGTERM.
    Serve(ServeArgs),
    #[command(flatten)]
    Client(edgeq_native::cli::Command),
}

/// Flags of `edgeq serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the startup log line shows it).
    /// `DIALECT=ADDR` serves that dialect at `/` on this listener. Repeat the flag (or
    /// separate with commas) for more listeners.
    #[arg(long, env = "EDGEQ_LISTEN", default_value = "127.0.0.1:8080", value_delimiter = ',')]
    listen: Vec<Listen>,
    /// Dialect served at `/` (`rest_queue`, `memfifo`, `monty` or `queuey`) on
    /// listeners that name none.
    #[arg(long, env = "EDGEQ_ROOT_DIALECT")]
    root_dialect: Option<Dialect>,
    /// Where data lives: `memory`, `redb:PATH` or a file PATH (its directory is created),
    /// or `redis://[:PASSWORD@]HOST[:PORT][/DB]`, which several servers can share.
    #[arg(long, env = "EDGEQ_STORE", default_value = edgeq_native::DEFAULT_STORE_PATH)]
    store: StoreSpec,
    /// Namespace served by the v1 routes and the dialects.
    #[arg(long, env = "EDGEQ_NAMESPACE", default_value = "default", value_parser = namespace)]
    namespace: String,
    /// A Queuey application and its keys, `NAME=KEY1,KEY2` (repeat the flag, or
    /// separate entries with `;` in the environment variable).
    #[arg(long = "queuey-app", env = "EDGEQ_QUEUEY_APPS", value_delimiter = ';')]
    queuey_apps: Vec<QueueyApp>,
    /// Admin key: with one, every route but `/healthz` and the static pages needs an
    /// `Authorization: Bearer` key (this one, or one created under `/v1/keys`).
    /// Without one the server runs open: anyone may do anything.
    #[arg(long, env = "EDGEQ_ADMIN_KEY", hide_env_values = true, value_parser = admin_key)]
    admin_key: Option<String>,
    /// Most client connections open at once, per listener (at least 1).
    #[arg(
        long,
        env = "EDGEQ_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    max_connections: usize,
}

/// A namespace must be a name, or every request would fail.
fn namespace(s: &str) -> Result<String, String> {
    edgeq::model::Name::new(s).map(|_| s.to_owned()).map_err(|e| e.to_string())
}

/// A blank admin key is refused rather than taken for none: `EDGEQ_ADMIN_KEY=$KEY`
/// with `KEY` unset must not quietly start an open server.
fn admin_key(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the admin key is blank; to run open on purpose, leave the flag and \
                    EDGEQ_ADMIN_KEY unset"
            .into());
    }
    Ok(s.to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Client(command) => return edgeq_native::cli::run(cli.client, command),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let store = NativeStore::open(&args.store)
        .map_err(|e| format!("cannot open store {}: {e}", args.store))?;
    store.check().await.map_err(|e| format!("cannot reach store {}: {e}", args.store))?;
    let failure = store.failure();
    let config = ApiConfig {
        namespace: args.namespace.clone(),
        root_dialect: args.root_dialect,
        queuey_apps: args.queuey_apps.clone(),
        admin_key: args.admin_key.clone(),
        ..ApiConfig::default()
    };
    // Tells the listeners, the housekeeping and long polls to stop.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let env = SystemEnv::stopped_by(stopped.clone());
    let api = Arc::new(Api::new(Engine::new(store, env), config));
    if api.is_open() {
        warn!(
            "NO ADMIN KEY CONFIGURED: edgeq runs OPEN, anyone who can reach it may read, \
             send and delete every message; set --admin-key or EDGEQ_ADMIN_KEY"
        );
    }
    // Bind every listener before serving any, so a bad address fails at startup.
    let mut listeners = Vec::new();
    for l in &args.listen {
        let listener = tokio::net::TcpListener::bind(&l.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", l.addr))?;
        listeners.push((listener, l.dialect));
    }
    let mut servers = tokio::task::JoinSet::new();
    for (listener, dialect) in listeners {
        let addr =
            listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
        let root = dialect.or(args.root_dialect).map_or("none", Dialect::name);
        info!(
            addr = %addr,
            root_dialect = %root,
            store = %args.store,
            namespace = %args.namespace,
            auth = if api.is_open() { "open" } else { "keys" },
            max_connections = args.max_connections,
            "edgeq listening"
        );
        let options = ServeOptions {
            max_connections: args.max_connections,
            root_dialect: dialect,
            ..ServeOptions::default()
        };
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        servers.spawn(serve_with(listener, api.clone(), options, shutdown));
    }
    // The namespace served, and each Queuey application's (names checked at
    // startup by the `Api`'s configuration).
    let namespaces = std::iter::once(&args.namespace)
        .chain(args.queuey_apps.iter().map(|app| &app.name))
        .filter_map(|ns| Name::new(ns).ok())
        .collect();
    let housekeeping =
        tokio::spawn(edgeq_native::housekeeping::reclaim(api.clone(), namespaces, stopped.clone()));
    drop(api);
    // Serve until the signal, until a listener fails (then stop the others too),
    // or until the store takes no more writes: stopping then lets a supervisor's
    // restart open it again, at its last durable commit.
    let mut failed = None;
    let early = tokio::select! {
        () = shutdown_signal() => None,
        Some(done) = servers.join_next() => Some(done),
        e = failure => {
            error!(error = %e, "the store takes no more writes: stopping");
            failed = Some(e);
            None
        }
    };
    let _ = stop.send(true);
    let _ = housekeeping.await;
    for done in early.into_iter().chain(servers.join_all().await.into_iter().map(Ok)) {
        done.map_err(|e| format!("server task failed: {e}"))?
            .map_err(|e| format!("server failed: {e}"))?;
    }
    if let Some(e) = failed {
        return Err(format!("stopped because the store failed: {e}"));
    }
    // The last `Api` reference is gone: dropping the store has persisted it.
    info!("edgeq stopped");
    Ok(())
}

/// One `--listen` value: `[DIALECT=]ADDR`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listen {
    /// The dialect served at `/` on this listener, if named.
    dialect: Option<Dialect>,
    /// The address to bind.
    addr: String,
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            None => Ok(Listen { dialect: None, addr: s.to_owned() }),
            Some((dialect, addr)) => {
                let dialect = dialect.parse().map_err(|e| format!("{e}"))?;
                Ok(Listen { dialect: Some(dialect), addr: addr.to_owned() })
            }
        }
    }
}

/// Completes on ctrl-c or (on Unix) SIGTERM.
async fn shutdown_signal() {
    edgeq_native::ctrl_c_or_sigterm().await;
    info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_an_optional_dialect() {
        let l: Listen = "127.0.0.1:80".parse().unwrap();
        assert_eq!(l, Listen { dialect: None, addr: "127.0.0.1:80".into() });
        let l: Listen = "rest_queue=127.0.0.1:5000".parse().unwrap();
        assert_eq!(l, Listen { dialect: Some(Dialect::RestQueue), addr: "127.0.0.1:5000".into() });
        assert!("queue=127.0.0.1:5000".parse::<Listen>().unwrap_err().contains("unknown dialect"));
    }

    #[test]
    fn listen_repeats_and_splits_on_commas() {
        let cli = Cli::try_parse_from([
            "edgeq",
            "serve",
            "--listen",
            "127.0.0.1:1,memfifo=127.0.0.1:2",
            "--listen",
            "rest_queue=127.0.0.1:3",
            "--root-dialect",
            "memfifo",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else { panic!("not parsed as serve") };
        let dialects: Vec<_> = args.listen.iter().map(|l| l.dialect).collect();
        assert_eq!(dialects, [None, Some(Dialect::Memfifo), Some(Dialect::RestQueue)]);
        assert_eq!(args.root_dialect, Some(Dialect::Memfifo));
    }

    #[test]
    fn values_that_would_break_every_request_are_refused_at_start() {
        for bad in [
            &["--namespace", "bad name"][..],
            &["--admin-key", ""],
            &["--admin-key", " "],
            &["--max-connections", "0"],
        ] {
            let args = ["edgeq", "serve"].iter().chain(bad);
            let e = Cli::try_parse_from(args).expect_err(&format!("{bad:?} is refused"));
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
        }
        let ok =
            Cli::try_parse_from(["edgeq", "serve", "--namespace", "team-a", "--admin-key", "k"]);
        let Command::Serve(args) = ok.unwrap().command else { panic!("not parsed as serve") };
        assert_eq!((args.namespace.as_str(), args.admin_key.as_deref()), ("team-a", Some("k")));
    }
}
