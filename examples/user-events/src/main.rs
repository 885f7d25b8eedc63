//! `user-events`: the seed 001 user API publishing its events through edgeq (see
//! the library's documentation). Declares the exchange, queue and binding, then
//! serves until ctrl-c or SIGTERM.

use clap::Parser;
use edgeq_native::client::Client;
use std::process::ExitCode;

/// A user API that publishes one event to edgeq per call.
#[derive(Debug, Parser)]
#[command(name = "user-events", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "USER_EVENTS_LISTEN", default_value = "127.0.0.1:5000")]
    listen: String,
    /// Base URL of the edgeq server.
    #[arg(long, env = "EDGEQ_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Key sent to edgeq as `Authorization: Bearer <key>`.
    #[arg(long, env = "EDGEQ_KEY", hide_env_values = true)]
    key: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("user-events: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let client = Client::new(&args.url, args.key).map_err(|e| e.to_string())?;
    user_events::declare(&client)
        .await
        .map_err(|e| format!("cannot declare the exchange, queue and binding: {e}"))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("user-events listening on http://{addr}, publishing to {}", args.url);
    user_events::serve(listener, user_events::App::new(client), edgeq_native::ctrl_c_or_sigterm())
        .await
        .map_err(|e| format!("server failed: {e}"))
}
