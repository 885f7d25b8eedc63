//! `stress`: the stress checker against running edgeq servers (see `checker.rs`).
//!
//! ```sh
//! cargo run --release -p edgeq-native --example stress -- \
//!     --url http://127.0.0.1:8080 -p 8 -c 8 -n 100000 --mode pop --label memory
//! ```
//!
//! Prints one Markdown table row (`--header` adds the header first) and exits
//! non-zero when an acknowledged message was lost, a message was delivered twice
//! where the mode forbids it, or a body nobody sent was delivered.
//! `benches/stress.sh` starts the servers and runs it for every store.

mod checker;

use clap::Parser;
use std::process::ExitCode;
use std::time::Duration;

/// P producers and C consumers over HTTP; counts what was lost or duplicated.
#[derive(Debug, Parser)]
struct Args {
    /// A server's base URL; repeat for several servers on one store.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Producers.
    #[arg(short = 'p', long, default_value_t = 8)]
    producers: usize,
    /// Consumers.
    #[arg(short = 'c', long, default_value_t = 8)]
    consumers: usize,
    /// Messages in all.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    messages: u64,
    /// `pop` or `receive` (receive + ack).
    #[arg(long, default_value = "pop")]
    mode: checker::Mode,
    /// Queue to use (created or updated).
    #[arg(long, default_value = "stress")]
    queue: String,
    /// Lease length in receive mode, seconds.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: u64,
    /// Seconds to wait for the queue to drain once producers are done.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
    /// Seconds one consumer alone may then sweep what is left ("late" messages).
    #[arg(long, default_value_t = 45)]
    sweep_timeout: u64,
    /// First column of the row (e.g. the store).
    #[arg(long, default_value = "")]
    label: String,
    /// Print the table header first.
    #[arg(long)]
    header: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config =
        checker::Config::new(args.urls, args.producers, args.consumers, args.messages, args.mode);
    config.label = args.label;
    config.queue = args.queue;
    config.visibility_timeout = args.visibility_timeout;
    config.drain_timeout = Duration::from_secs(args.drain_timeout);
    config.sweep_timeout = Duration::from_secs(args.sweep_timeout);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("stress: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(checker::run(&config)) {
        Ok(report) => {
            if args.header {
                println!("{}", checker::Report::header());
            }
            println!("{}", report.row());
            for failure in &report.failures {
                eprintln!("stress: failed request: {failure}");
            }
            if report.lost > 0 || report.bad_duplicates() > 0 || report.phantom > 0 {
                eprintln!("stress: the queue lost or duplicated messages");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("stress: {e}");
            ExitCode::FAILURE
        }
    }
}
