//! The client commands of the `edgeq` binary (`edgeq queues list`, `edgeq send`,
//! `edgeq consume`, ...): seed 001's operator CLI (`broker list_queues`,
//! `broker start <queue>`) over the v1 API, through [`crate::client`].
//!
//! - Where: `--url` / `EDGEQ_URL` (default `http://127.0.0.1:8080`) and `--key` /
//!   `EDGEQ_KEY`, given before the command (`edgeq --url U queues list`): after the
//!   command, `--key` is a routing or binding key (`edgeq publish x --key user`).
//! - Output: text for people by default; `--json` (anywhere on the line) prints the
//!   server's JSON instead, one document per line, so scripts can parse it.
//!   Messages print as the JSON envelope of the API (`body`, or `body_base64` when
//!   the body is not UTF-8).
//! - Exit codes: 0 done; 1 the server refused, could not be reached, or part of a
//!   multi-part request failed (the message on stderr says which); 2 bad usage
//!   (clap's own message). An empty queue is not a failure: `pop` and `receive`
//!   print nothing on stdout and say so on stderr.
//! - `move FROM TO` redrives: it leases each visible message of `FROM`, sends it to
//!   `TO` with its id as the idempotency key and acks it (`move_messages`).
//! - `consume` leases one message at a time with a long poll, hands it to stdout or
//!   to `--exec` (through `sh -c`, the body on its stdin), acks it when that worked
//!   and nacks it when not, until ctrl-c / SIGTERM or `--max`, and ends with
//!   `consumed N, failed M` on stderr. It is at-least-once: a consumer killed
//!   between handing a message out and acking it leaves the message leased, and
//!   it is delivered again when the lease ends. A worker outlives the server's
//!   restarts: when the server cannot be reached or answers 503, it says so on
//!   stderr and tries again after a pause that doubles up to 30 s (an ack or nack
//!   is retried the same way); any other refusal (no such queue, a bad key) ends
//!   it with exit code 1.

use crate::client::{
    Client, Error as ClientError, Exchange, ExchangeType, Message, Put, Queue, ReceiptResults,
    ReceiveOptions, SendOptions,
};
use base64::Engine as _;
use bytes::Bytes;
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use tokio::io::AsyncWriteExt;

/// Where the client commands find the server, and how they print.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Base URL of the edgeq server (client commands; give it before the command).
    #[arg(long, env = "EDGEQ_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Key sent as `Authorization: Bearer <key>` (client commands; give it before
    /// the command).
    #[arg(long, env = "EDGEQ_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Print JSON (one document per line) instead of text (client commands).
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lists, creates, shows, deletes or purges queues.
    #[command(subcommand)]
    Queues(QueuesCommand),
    /// Sends one message (the BODY argument, --file, or standard input); prints its id.
    Send(SendArgs),
    /// Takes the oldest message for good (at-most-once) and prints it.
    Pop(QueueArg),
    /// Leases the oldest message (at-least-once) and prints it with its receipt.
    Receive(ReceiveArgs),
    /// Acknowledges (deletes) received messages by receipt.
    Ack(AckArgs),
    /// Gives received messages back by receipt: they are delivered again.
    Nack(NackArgs),
    /// Receives messages in a loop, hands each to stdout or to --exec, acks or nacks it.
    Consume(ConsumeArgs),
    /// Moves the visible messages of one queue to another, oldest first (a
    /// dead-letter queue's back to where they failed, say). Each move is a
    /// receive: from a queue with max_receives, a message at its limit goes to
    /// that queue's dead-letter queue instead.
    Move(MoveArgs),
    /// Publishes one message to an exchange with a routing key.
    Publish(PublishArgs),
    /// Creates, shows or deletes exchanges; binds and unbinds queues.
    #[command(subcommand)]
    Exchanges(ExchangesCommand),
}

/// `edgeq queues ...`.
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Lists queues with their depth.
    List {
        /// Only queues whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Creates a queue, or replaces the whole configuration of an existing one.
    Create {
        /// Queue name.
        queue: String,
        /// Configuration as JSON, e.g. '{"visibility_timeout": 60}' (omitted fields
        /// take their defaults).
        #[arg(long, value_parser = parse_config)]
        config: Option<Map<String, Value>>,
    },
    /// Shows a queue's configuration and statistics.
    Get(QueueArg),
    /// Deletes a queue and its messages.
    Delete {
        /// Queue name.
        queue: String,
        /// Only when it holds no message.
        #[arg(long)]
        if_empty: bool,
    },
    /// Drops every message of a queue.
    Purge(QueueArg),
}

/// `edgeq exchanges ...`.
#[derive(Debug, Subcommand)]
pub enum ExchangesCommand {
    /// Creates an exchange, or checks that it exists with this type.
    Create {
        /// Exchange name.
        exchange: String,
        /// direct, topic or fanout.
        #[arg(long = "type", default_value = "direct")]
        kind: ExchangeType,
    },
    /// Shows an exchange and its bindings.
    Get {
        /// Exchange name.
        exchange: String,
    },
    /// Deletes an exchange and its bindings.
    Delete {
        /// Exchange name.
        exchange: String,
    },
    /// Binds a queue to an exchange with a key.
    Bind(BindingArgs),
    /// Removes a binding.
    Unbind(BindingArgs),
}

/// A command that names one queue.
#[derive(Debug, Args)]
pub struct QueueArg {
    /// Queue name.
    queue: String,
}

/// `edgeq send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Queue name.
    queue: String,
    #[command(flatten)]
    body: BodyArgs,
}

/// `edgeq publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Exchange name.
    exchange: String,
    /// Routing key.
    #[arg(long, short = 'k', default_value = "")]
    key: String,
    #[command(flatten)]
    body: BodyArgs,
}

/// The body and headers of a send or a publish.
#[derive(Debug, Args)]
struct BodyArgs {
    /// Message body; without it, --file or standard input.
    body: Option<String>,
    /// Read the body from this file.
    #[arg(long, short = 'f', conflicts_with = "body")]
    file: Option<PathBuf>,
    /// Content-Type of the body (kept and returned as sent).
    #[arg(long)]
    content_type: Option<String>,
    /// Idempotency-Key: a repeat within the dedup window stores nothing.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Seconds before the message becomes visible.
    #[arg(long)]
    delay: Option<u32>,
    /// Seconds the message lives.
    #[arg(long)]
    ttl: Option<u32>,
}

/// `edgeq receive`.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Queue name.
    queue: String,
    #[command(flatten)]
    lease: LeaseArgs,
}

/// How a message is leased.
#[derive(Debug, Args)]
struct LeaseArgs {
    /// Seconds to wait for a message (long poll, 0..=20).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=20))]
    wait: Option<u32>,
    /// Seconds the message stays leased (default: the queue's).
    #[arg(long)]
    visibility_timeout: Option<u32>,
}

/// `edgeq ack`.
#[derive(Debug, Args)]
pub struct AckArgs {
    /// Queue name.
    queue: String,
    /// Receipts of received messages.
    #[arg(required = true)]
    receipts: Vec<String>,
}

/// `edgeq move`.
#[derive(Debug, Args)]
pub struct MoveArgs {
    /// The queue to take messages from.
    from: String,
    /// The queue to send them to.
    to: String,
    /// Stop after this many messages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
}

/// `edgeq nack`.
#[derive(Debug, Args)]
pub struct NackArgs {
    /// Queue name.
    queue: String,
    /// Receipts of received messages.
    #[arg(required = true)]
    receipts: Vec<String>,
    /// Seconds before the messages are visible again.
    #[arg(long)]
    delay: Option<u32>,
}

/// `edgeq consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Queue name.
    queue: String,
    /// Run this shell command (`sh -c`) per message, the body on its stdin and
    /// EDGEQ_QUEUE, EDGEQ_MESSAGE_ID, EDGEQ_RECEIVE_COUNT, EDGEQ_CONTENT_TYPE in its
    /// environment; exit 0 acks the message, anything else nacks it.
    #[arg(long)]
    exec: Option<String>,
    /// Stop after this many messages (acked or nacked).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max: Option<u64>,
    /// Seconds each receive waits for a message (long poll, 0..=20).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=20))]
    wait: u32,
    /// Seconds a message stays leased (default: the queue's).
    #[arg(long)]
    visibility_timeout: Option<u32>,
    /// Seconds before a nacked message is visible again.
    #[arg(long)]
    nack_delay: Option<u32>,
}

/// `edgeq exchanges bind|unbind`.
#[derive(Debug, Args)]
pub struct BindingArgs {
    /// Exchange name.
    exchange: String,
    /// Queue name.
    queue: String,
    /// Binding key (a pattern for topic exchanges; ignored by fanout).
    #[arg(long, short = 'k', default_value = "")]
    key: String,
}

/// Runs one client command on its own runtime; errors are printed on stderr.
pub fn run(args: ClientArgs, command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            return report(&Failure::Io { what: "cannot start the runtime".into(), source: e })
        }
    };
    match runtime.block_on(execute(args, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(&failure),
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// Anything else, said in a sentence (details may be on stderr already).
    #[error("{0}")]
    Other(String),
}

/// Prints `failure` and its causes on stderr.
fn report(failure: &Failure) -> ExitCode {
    let mut line = format!("edgeq: {failure}");
    let mut source = std::error::Error::source(failure);
    while let Some(cause) = source {
        line.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if let Failure::Client(e) = failure {
        if e.code() == Some("unauthorized") {
            line.push_str("\nedgeq: give a key with --key KEY before the command, or EDGEQ_KEY");
        }
    }
    eprintln!("{line}");
    ExitCode::FAILURE
}

fn io_failure(what: impl Into<String>) -> impl FnOnce(io::Error) -> Failure {
    let what = what.into();
    move |source| Failure::Io { what, source }
}

async fn execute(args: ClientArgs, command: Command) -> Result<(), Failure> {
    let client = Client::new(&args.url, args.key)?;
    let out = Output { json: args.json };
    match command {
        Command::Queues(command) => queues(&client, &out, command).await,
        Command::Send(send) => {
            let (body, options) = send.body.read()?;
            let sent = client.send(&send.queue, body, &options).await?;
            if sent.duplicate {
                eprintln!("duplicate: this idempotency key was sent before; nothing stored");
            }
            out.print(&sent, || format!("{}\n", sent.id))
        }
        Command::Pop(QueueArg { queue }) => {
            let message = client.pop(&queue).await?;
            out.message_or_empty(&queue, message.as_ref())
        }
        Command::Receive(receive) => {
            let options = receive.lease.options();
            let message = client.receive(&receive.queue, options).await?;
            out.message_or_empty(&receive.queue, message.as_ref())
        }
        Command::Ack(AckArgs { queue, receipts }) => {
            let results = client.ack(&queue, &receipts).await?;
            out.receipt_results("acked", &results)
        }
        Command::Nack(NackArgs { queue, receipts, delay }) => {
            let results = client.nack(&queue, &receipts, delay).await?;
            out.receipt_results("nacked", &results)
        }
        Command::Consume(consume) => self::consume(&client, &out, consume).await,
        Command::Move(args) => {
            let moved = move_messages(&client, &args).await?;
            out.print(&json!({ "moved": moved }), || format!("moved {moved}\n"))
        }
        Command::Publish(publish) => {
            let (body, options) = publish.body.read()?;
            let published = client.publish(&publish.exchange, &publish.key, body, &options).await?;
            let failed: Vec<_> = published
                .queues
                .iter()
                .filter_map(|q| q.error.as_ref().map(|e| (&q.queue, e)))
                .collect();
            for (queue, error) in &failed {
                eprintln!("queue {queue}: {} ({})", error.message, error.code);
            }
            out.print(&published, || {
                let stored: Vec<&str> = published
                    .queues
                    .iter()
                    .filter(|q| q.error.is_none())
                    .map(|q| q.queue.as_str())
                    .collect();
                match stored.len() {
                    0 => format!("routed to no queue (key {:?})\n", publish.key),
                    n => format!("routed to {n} queue(s): {}\n", stored.join(", ")),
                }
            })?;
            match failed.len() {
                0 => Ok(()),
                n => Err(Failure::Other(format!("{n} queue(s) did not store the message"))),
            }
        }
        Command::Exchanges(command) => exchanges(&client, &out, command).await,
    }
}

async fn queues(client: &Client, out: &Output, command: QueuesCommand) -> Result<(), Failure> {
    match command {
        QueuesCommand::List { prefix } => {
            let queues = client.list_queues(prefix.as_deref()).await?;
            out.print(&json!({ "queues": queues }), || queue_table(&queues))
        }
        QueuesCommand::Create { queue, config } => {
            let put = client.create_queue(&queue, config.as_ref()).await?;
            out.print(&put.value, || {
                created_or(&put, &format!("queue {queue}"), "configuration replaced")
            })
        }
        QueuesCommand::Get(QueueArg { queue }) => {
            let queue = client.get_queue(&queue).await?;
            out.print(&queue, || describe_queue(&queue))
        }
        QueuesCommand::Delete { queue, if_empty } => {
            client.delete_queue(&queue, if_empty).await?;
            out.done(|| format!("deleted queue {queue}\n"))
        }
        QueuesCommand::Purge(QueueArg { queue }) => {
            let purged = client.purge_queue(&queue).await?;
            out.print(&json!({ "purged": purged }), || {
                format!("purged {purged} message(s) from {queue}\n")
            })
        }
    }
}

async fn exchanges(
    client: &Client,
    out: &Output,
    command: ExchangesCommand,
) -> Result<(), Failure> {
    match command {
        ExchangesCommand::Create { exchange, kind } => {
            let put = client.put_exchange(&exchange, kind).await?;
            out.print(&put.value, || {
                created_or(&put, &format!("exchange {exchange} ({kind})"), "already there")
            })
        }
        ExchangesCommand::Get { exchange } => {
            let exchange = client.get_exchange(&exchange).await?;
            out.print(&exchange, || describe_exchange(&exchange))
        }
        ExchangesCommand::Delete { exchange } => {
            client.delete_exchange(&exchange).await?;
            out.done(|| format!("deleted exchange {exchange}\n"))
        }
        ExchangesCommand::Bind(BindingArgs { exchange, queue, key }) => {
            client.bind(&exchange, &queue, &key).await?;
            out.done(|| format!("bound queue {queue} to exchange {exchange} with key {key:?}\n"))
        }
        ExchangesCommand::Unbind(BindingArgs { exchange, queue, key }) => {
            client.unbind(&exchange, &queue, &key).await?;
            out.done(|| format!("unbound queue {queue} from exchange {exchange} (key {key:?})\n"))
        }
    }
}

/// Seconds a message being moved stays leased in its old queue: ample for one
/// send and one ack.
const MOVE_LEASE: u32 = 60;

/// Moves messages one at a time: lease from `from`, send to `to` with the same
/// body and Content-Type, ack. At-least-once, made exact by the send's
/// idempotency key (the message's id): a move retried after a failure between
/// the send and the ack, within the key's window, stores nothing twice. Ends
/// when `from` has no visible message, or after `max`; returns how many moved.
async fn move_messages(client: &Client, args: &MoveArgs) -> Result<u64, Failure> {
    if args.from == args.to {
        // Each message would come back under a new id: it would never end.
        return Err(Failure::Other(format!("cannot move {} to itself", args.from)));
    }
    let lease = ReceiveOptions { wait: Some(0), visibility_timeout: Some(MOVE_LEASE) };
    let mut moved = 0;
    while args.max.is_none_or(|max| moved < max) {
        let Some(message) = client.receive(&args.from, lease).await? else {
            break;
        };
        let Some(receipt) = message.receipt else {
            return Err(Failure::Other(format!("message {} came without a receipt", message.id)));
        };
        let options = SendOptions {
            content_type: message.content_type,
            idempotency_key: Some(format!("move:{}", message.id)),
            ..SendOptions::default()
        };
        let sent = match client.send(&args.to, message.body, &options).await {
            Ok(sent) => sent,
            Err(e) => {
                // Give it back at once rather than when its lease ends.
                let _ = client.nack(&args.from, &[receipt], None).await;
                return Err(e.into());
            }
        };
        let acked = client.ack(&args.from, &[receipt]).await?;
        if acked.failed > 0 {
            // The lease ended first: the message may be delivered again (and is
            // then moved again, stored once by its key within the window).
            eprintln!("message {}: moved, but its lease in {} had ended", message.id, args.from);
        }
        // A duplicate was moved before (its ack had not landed): count it once.
        if !sent.duplicate {
            moved += 1;
        }
    }
    Ok(moved)
}

/// The consume loop (see the module doc).
async fn consume(client: &Client, out: &Output, args: ConsumeArgs) -> Result<(), Failure> {
    let stop = crate::ctrl_c_or_sigterm();
    tokio::pin!(stop);
    let options =
        ReceiveOptions { wait: Some(args.wait), visibility_timeout: args.visibility_timeout };
    let (mut consumed, mut failed) = (0u64, 0u64);
    let mut backoff = Backoff::default();
    let result = 'consume: loop {
        if args.max.is_some_and(|max| consumed + failed >= max) {
            break Ok(());
        }
        // Stopping drops a receive in flight; a message it had leased is delivered
        // again when its lease ends.
        let received = tokio::select! {
            biased;
            () = &mut stop => break Ok(()),
            received = client.receive(&args.queue, options) => received,
        };
        let message = match received {
            Ok(Some(message)) => message,
            Ok(None) => continue,
            Err(e) if e.is_transient() => {
                let pause = backoff.after(&e);
                tokio::select! {
                    biased;
                    () = &mut stop => break Ok(()),
                    () = tokio::time::sleep(pause) => continue,
                }
            }
            Err(e) => break Err(e.into()),
        };
        backoff = Backoff::default();
        let Some(receipt) = message.receipt.clone() else {
            break Err(Failure::Other(format!("message {} came without a receipt", message.id)));
        };
        let handled = match &args.exec {
            Some(command) => exec(command, &args.queue, &message).await,
            None => out.message(&message, false).map(|()| true),
        };
        let handled = match handled {
            Ok(handled) => handled,
            Err(e) => break Err(e),
        };
        let receipts = std::slice::from_ref(&receipt);
        let settled = loop {
            let settled = match handled {
                true => client.ack(&args.queue, receipts).await,
                false => client.nack(&args.queue, receipts, args.nack_delay).await,
            };
            match settled {
                // Stopping here leaves the message leased: delivered again later.
                Err(e) if e.is_transient() => tokio::select! {
                    biased;
                    () = &mut stop => break 'consume Ok(()),
                    () = tokio::time::sleep(backoff.after(&e)) => {}
                },
                settled => break settled,
            }
        };
        match settled {
            Ok(_) if handled => consumed += 1,
            Ok(_) => failed += 1,
            // The lease ended first: the message is someone else's now.
            Err(e) if e.code() == Some("stale_receipt") => {
                eprintln!("message {}: {e}", message.id);
                failed += 1;
            }
            Err(e) => break Err(e.into()),
        }
    };
    eprintln!("consumed {consumed}, failed {failed}");
    result
}

/// The pause after a transient failure of `consume`: 0.5 s, doubling up to 30 s.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Says on stderr that `error` happened, and returns how long to wait.
    fn after(&mut self, error: &ClientError) -> std::time::Duration {
        let pause = std::time::Duration::from_millis(500 << self.failures.min(6))
            .min(std::time::Duration::from_secs(30));
        self.failures += 1;
        eprintln!("{error}; trying again in {:.1} s", pause.as_secs_f64());
        pause
    }
}

/// Runs `command` through `sh -c` with the message body on its stdin; `Ok(true)`
/// when it exited 0.
async fn exec(command: &str, queue: &str, message: &Message) -> Result<bool, Failure> {
    let mut child = tokio::process::Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .env("EDGEQ_QUEUE", queue)
        .env("EDGEQ_MESSAGE_ID", &message.id)
        .env("EDGEQ_RECEIVE_COUNT", message.receive_count.to_string())
        .stdin(Stdio::piped());
    match &message.content_type {
        Some(content_type) => child.env("EDGEQ_CONTENT_TYPE", content_type),
        None => child.env_remove("EDGEQ_CONTENT_TYPE"),
    };
    let mut child = child.spawn().map_err(io_failure(format!("cannot run sh -c {command:?}")))?;
    let stdin = child.stdin.take();
    let body = message.body.clone();
    // Written while the command runs, so that a body larger than the pipe cannot
    // block it; a command that exits without reading it all is not an error here.
    let feed = async move {
        if let Some(mut stdin) = stdin {
            match stdin.write_all(&body).await {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                _ => {}
            }
        }
        Ok(())
    };
    let (fed, status) = tokio::join!(feed, child.wait());
    let status: ExitStatus = status.map_err(io_failure("cannot wait for --exec"))?;
    fed.map_err(io_failure("cannot write the message to --exec"))?;
    if !status.success() {
        eprintln!("message {}: --exec failed ({status}); nacked", message.id);
    }
    Ok(status.success())
}

impl BodyArgs {
    /// The body (argument, file or stdin) and the send options.
    fn read(self) -> Result<(Bytes, SendOptions), Failure> {
        let body = match (self.body, &self.file) {
            (Some(body), _) => Bytes::from(body),
            (None, Some(file)) => std::fs::read(file)
                .map(Bytes::from)
                .map_err(io_failure(format!("cannot read {}", file.display())))?,
            (None, None) => {
                let mut body = Vec::new();
                io::stdin().read_to_end(&mut body).map_err(io_failure("cannot read stdin"))?;
                Bytes::from(body)
            }
        };
        let options = SendOptions {
            content_type: self.content_type,
            idempotency_key: self.idempotency_key,
            delay: self.delay,
            ttl: self.ttl,
        };
        Ok((body, options))
    }
}

impl LeaseArgs {
    fn options(&self) -> ReceiveOptions {
        ReceiveOptions { wait: self.wait, visibility_timeout: self.visibility_timeout }
    }
}

/// Parses `--config`: a JSON object.
fn parse_config(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(config)) => Ok(config),
        Ok(_) => Err("the configuration must be a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

/// Prints text or JSON on stdout. Writes go through `write!` so that a closed
/// stdout (`edgeq ... | head`) is an error to report, not a panic.
struct Output {
    json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `text()` as it is.
    fn print(&self, value: &impl Serialize, text: impl FnOnce() -> String) -> Result<(), Failure> {
        if self.json {
            let line = serde_json::to_string(value)
                .map_err(|e| Failure::Io { what: "cannot print JSON".into(), source: e.into() })?;
            self.write(format!("{line}\n").as_bytes())
        } else {
            self.write(text().as_bytes())
        }
    }

    /// Reports a command that answers no document: text only, nothing in JSON.
    fn done(&self, text: impl FnOnce() -> String) -> Result<(), Failure> {
        if self.json {
            return Ok(());
        }
        self.write(text().as_bytes())
    }

    fn message_or_empty(&self, queue: &str, message: Option<&Message>) -> Result<(), Failure> {
        match message {
            Some(message) => self.message(message, true),
            None => {
                eprintln!("queue {queue} has no message to deliver");
                Ok(())
            }
        }
    }

    /// Prints a message: its JSON envelope, or its body (after its metadata when
    /// `with_metadata`), ending with a newline.
    fn message(&self, message: &Message, with_metadata: bool) -> Result<(), Failure> {
        if self.json {
            return self.print(&envelope(message), String::new);
        }
        let mut text = Vec::new();
        if with_metadata {
            let mut fields = vec![("id", message.id.clone())];
            if let Some(receipt) = &message.receipt {
                fields.push(("receipt", receipt.clone()));
            }
            fields.push(("receive_count", message.receive_count.to_string()));
            if let Some(content_type) = &message.content_type {
                fields.push(("content_type", content_type.clone()));
            }
            text.extend(columns(&fields).into_bytes());
            text.push(b'\n');
        }
        text.extend_from_slice(&message.body);
        if !message.body.ends_with(b"\n") {
            text.push(b'\n');
        }
        self.write(&text)
    }

    fn receipt_results(&self, verb: &str, results: &ReceiptResults) -> Result<(), Failure> {
        for result in &results.results {
            if let Some(error) = &result.error {
                eprintln!("{}: {} ({})", result.receipt, error.message, error.code);
            }
        }
        self.print(results, || format!("{verb} {}\n", results.succeeded))?;
        match results.failed {
            0 => Ok(()),
            n => Err(Failure::Other(format!("{n} receipt(s) failed"))),
        }
    }

    fn write(&self, bytes: &[u8]) -> Result<(), Failure> {
        let mut stdout = io::stdout().lock();
        stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .map_err(io_failure("cannot write to stdout"))
    }
}

/// A message as the API's JSON envelope.
fn envelope(message: &Message) -> Value {
    let mut envelope = json!({ "id": message.id });
    match std::str::from_utf8(&message.body) {
        Ok(text) => envelope["body"] = text.into(),
        Err(_) => {
            envelope["body_base64"] =
                base64::engine::general_purpose::STANDARD.encode(&message.body).into();
        }
    }
    if let Some(content_type) = &message.content_type {
        envelope["content_type"] = content_type.as_str().into();
    }
    envelope["size"] = message.body.len().into();
    envelope["enqueued_at"] = message.enqueued_at.into();
    envelope["expires_at"] = message.expires_at.into();
    envelope["receive_count"] = message.receive_count.into();
    if let Some(receipt) = &message.receipt {
        envelope["receipt"] = receipt.as_str().into();
    }
    if let Some(lease_until) = message.lease_until {
        envelope["lease_until"] = lease_until.into();
    }
    envelope
}

/// "created X" or "X: `otherwise`".
fn created_or<T>(put: &Put<T>, what: &str, otherwise: &str) -> String {
    if put.created {
        format!("created {what}\n")
    } else {
        format!("{what}: {otherwise}\n")
    }
}

/// `queues list` as a table: name, messages, in flight.
fn queue_table(queues: &[Queue]) -> String {
    let mut rows = vec![["NAME".to_owned(), "MESSAGES".to_owned(), "IN FLIGHT".to_owned()]];
    for queue in queues {
        let (messages, in_flight) = match &queue.stats {
            Some(stats) => (stats.messages.to_string(), stats.in_flight.to_string()),
            None => ("-".to_owned(), "-".to_owned()),
        };
        rows.push([queue.name.clone(), messages, in_flight]);
    }
    table(&rows)
}

fn describe_queue(queue: &Queue) -> String {
    let mut fields =
        vec![("name", queue.name.clone()), ("created_at", queue.created_at.to_string())];
    if let Some(stats) = &queue.stats {
        fields.push(("messages", stats.messages.to_string()));
        fields.push(("in_flight", stats.in_flight.to_string()));
        fields.push(("bytes", stats.bytes.to_string()));
        fields.extend(stats.other.iter().map(|(k, v)| (k.as_str(), v.to_string())));
    }
    fields.extend(queue.config.iter().map(|(k, v)| (k.as_str(), v.to_string())));
    columns(&fields)
}

fn describe_exchange(exchange: &Exchange) -> String {
    let mut text = columns(&[
        ("name", exchange.name.clone()),
        ("type", exchange.kind.to_string()),
        ("created_at", exchange.created_at.to_string()),
    ]);
    let mut rows = vec![["QUEUE".to_owned(), "KEY".to_owned()]];
    rows.extend(exchange.bindings.iter().map(|b| [b.queue.clone(), format!("{:?}", b.key)]));
    text.push('\n');
    text.push_str(&table(&rows));
    text
}

/// `label  value` lines, the values aligned.
fn columns(fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    fields.iter().map(|(label, value)| format!("{label:width$}  {value}\n")).collect()
}

/// Rows of cells, each column as wide as its widest cell.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}
