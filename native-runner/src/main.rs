//! `edgeq`: the native edgeq server (`edgeq serve`) and, later, its client commands.
//!
//! `main` stays thin: parse flags, open the store, build the `Api`, bind, and hand
//! everything to [`edgeq_native::serve_with`] with ctrl-c / SIGTERM as the shutdown
//! signal. Logs go to stderr; `RUST_LOG` filters them (default `info`; `debug`
//! adds one line per request).

use clap::{Args, Parser, Subcommand};
use edgeq::api::{Api, ApiConfig};
use edgeq::engine::Engine;
use edgeq_native::{serve_with, NativeStore, ServeOptions, StoreSpec, SystemEnv};
use std::process::ExitCode;
use std::sync::Arc;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// An HTTP message queue.
#[derive(Debug, Parser)]
#[command(name = "edgeq", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the HTTP server until ctrl-c or SIGTERM.
    Serve(ServeArgs),
}

/// Flags of `edgeq serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the startup log line shows it).
    #[arg(long, env = "EDGEQ_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Where data lives: `memory`, `redb:PATH` or a file PATH (its directory is created),
    /// or `redis://HOST[:PORT][/DB]`, which several servers can share.
    #[arg(long, env = "EDGEQ_STORE", default_value = edgeq_native::DEFAULT_STORE_PATH)]
    store: StoreSpec,
    /// Namespace served by the v1 routes.
    #[arg(long, env = "EDGEQ_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Most client connections open at once.
    #[arg(long, env = "EDGEQ_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    };
    match result {
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
    let config = ApiConfig { namespace: args.namespace.clone() };
    let api = Arc::new(Api::new(Engine::new(store, SystemEnv), config));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr =
        listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    info!(
        addr = %addr,
        store = %args.store,
        namespace = %args.namespace,
        max_connections = args.max_connections,
        "edgeq listening"
    );
    let options = ServeOptions { max_connections: args.max_connections, ..ServeOptions::default() };
    serve_with(listener, api, options, shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    // The last `Api` reference is gone: dropping the store has persisted it.
    info!("edgeq stopped");
    Ok(())
}

/// Completes on ctrl-c or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    info!("shutting down: finishing in-flight requests");
}
