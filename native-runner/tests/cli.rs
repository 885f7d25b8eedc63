//! The `edgeq` client commands, run as the real binary against a real server on
//! loopback (in-process, memory store): each subcommand's output and exit code,
//! sends from an argument, a file and stdin, and the consume loop (stdout,
//! `--exec` with a failure retried after its nack, SIGTERM). Then seed 001 end to
//! end: the `user-events` example publishes one event per call and the CLI
//! consumes them, including after a consumer died before acking.

use edgeq::api::{Api, ApiConfig};
use edgeq::engine::{Engine, NewMessage};
use edgeq::model::{Name, QueueConfig};
use edgeq_native::client::Client;
use edgeq_native::{serve, NativeStore, StoreSpec, SystemEnv};
use serde_json::{json, Value};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Guards against a hung test only; nothing asserts on how long anything takes.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// What a [`Server`] is given to stop on.
type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server on a loopback port, on its own thread, stopped when dropped.
struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// edgeq over the memory store.
    fn start() -> Self {
        Self::run(|listener, stop| async move {
            let store = NativeStore::open(&StoreSpec::Memory).unwrap();
            let api =
                Arc::new(Api::new(Engine::new(store, SystemEnv::default()), ApiConfig::default()));
            serve(listener, api, stop).await.unwrap();
        })
    }

    /// Runs `server` on a loopback listener on its own thread; the future it is
    /// given completes when the [`Server`] is dropped.
    fn run<F, S>(server: S) -> Self
    where
        S: FnOnce(tokio::net::TcpListener, Stop) -> F + Send + 'static,
        F: Future<Output = ()>,
    {
        Self::run_on(TcpListener::bind("127.0.0.1:0").unwrap(), server)
    }

    /// [`run`](Self::run) on `listener`.
    fn run_on<F, S>(listener: TcpListener, server: S) -> Self
    where
        S: FnOnce(tokio::net::TcpListener, Stop) -> F + Send + 'static,
        F: Future<Output = ()>,
    {
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                server(
                    listener,
                    Box::pin(async move {
                        let _ = stopped.await;
                    }),
                )
                .await;
            });
        });
        Server { url, stop: Some(stop), thread: Some(thread) }
    }

    /// The `edgeq` binary pointed at this server through `EDGEQ_URL`.
    fn edgeq(&self, args: &[&str]) -> Command {
        edgeq(&self.url, args)
    }

    /// Runs `edgeq args`, expects success and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = run(self.edgeq(args), None);
        assert!(out.status.success(), "edgeq {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Runs `edgeq --json args`, expects success and parses its stdout.
    fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(&[&["--json"], args].concat());
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    /// Runs `edgeq args`, expects exit code 1 and returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = run(self.edgeq(args), None);
        assert_eq!(out.status.code(), Some(1), "edgeq {args:?}: {out:?}");
        out.stderr
    }

    /// The number of messages stored in `queue` and leased, from `queues get`.
    fn depth(&self, queue: &str) -> (u64, u64) {
        let queue = self.json(&["queues", "get", queue]);
        (
            queue["stats"]["messages"].as_u64().unwrap(),
            queue["stats"]["in_flight"].as_u64().unwrap(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `edgeq args` with `EDGEQ_URL=url` and no key from the environment.
fn edgeq(url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgeq"));
    command.args(args).env("EDGEQ_URL", url).env_remove("EDGEQ_KEY").env("RUST_LOG", "warn");
    command
}

/// What a finished command printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `command` with `stdin` as its standard input (none: empty) and waits for
/// it, killing it if it outlives [`HANG_GUARD`].
fn run(mut command: Command, stdin: Option<&[u8]>) -> Output {
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("the edgeq binary runs");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    let stdout = reader(child.stdout.take().unwrap());
    let stderr = reader(child.stderr.take().unwrap());
    let status = wait(&mut child);
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

fn reader(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        pipe.read_to_string(&mut text).unwrap();
        text
    })
}

/// The lines `pipe` delivers, as they come.
fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (send, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            if send.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    lines
}

/// Waits for `child`; kills it and fails the test past [`HANG_GUARD`].
fn wait(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            panic!("edgeq did not finish");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn queues_create_list_get_purge_delete() {
    let server = Server::start();
    assert_eq!(server.ok(&["queues", "create", "orders"]), "created queue orders\n");
    assert_eq!(
        server.ok(&["queues", "create", "orders", "--config", r#"{"visibility_timeout": 7}"#]),
        "queue orders: configuration replaced\n"
    );
    server.ok(&["queues", "create", "other"]);
    for body in ["a", "b"] {
        server.ok(&["send", "orders", body]);
    }

    let table = server.ok(&["queues", "list"]);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [
            vec!["NAME", "MESSAGES", "IN", "FLIGHT"],
            vec!["orders", "2", "0"],
            vec!["other", "0", "0"]
        ]
    );
    let listed = server.json(&["queues", "list", "--prefix", "ord"]);
    assert_eq!(listed["queues"].as_array().unwrap().len(), 1);
    assert_eq!(listed["queues"][0]["name"], "orders");

    let queue = server.json(&["queues", "get", "orders"]);
    assert_eq!(queue["config"]["visibility_timeout"], 7);
    assert_eq!(queue["stats"]["messages"], 2);
    let text = server.ok(&["queues", "get", "orders"]);
    assert!(text.lines().any(|l| l.split_whitespace().eq(["visibility_timeout", "7"])), "{text}");

    let stderr = server.fails(&["queues", "delete", "orders", "--if-empty"]);
    assert!(stderr.contains("queue_not_empty"), "{stderr}");
    assert_eq!(server.ok(&["queues", "purge", "orders"]), "purged 2 message(s) from orders\n");
    assert_eq!(server.json(&["queues", "purge", "orders"])["purged"], 0);
    assert_eq!(server.ok(&["queues", "delete", "orders", "--if-empty"]), "deleted queue orders\n");
    let stderr = server.fails(&["queues", "get", "orders"]);
    assert!(stderr.starts_with("edgeq: ") && stderr.contains("queue_not_found"), "{stderr}");
}

#[test]
fn send_takes_an_argument_a_file_or_stdin_and_pop_returns_them_in_order() {
    let server = Server::start();
    server.ok(&["queues", "create", "q"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.bin");
    let binary = [0u8, 159, 146, 150, b'\n'];
    std::fs::write(&file, binary).unwrap();

    let id = server.ok(&["send", "q", "from an argument", "--content-type", "text/plain"]);
    let sent = server.json(&["send", "q", "--file", file.to_str().unwrap()]);
    let out = run(server.edgeq(&["send", "q", "--idempotency-key", "k1"]), Some(b"from stdin"));
    assert!(out.status.success(), "{out:?}");
    let repeat = server.json(&["send", "q", "again", "--idempotency-key", "k1"]);
    assert_eq!(repeat["duplicate"], true);
    assert_eq!(repeat["id"].as_str(), Some(out.stdout.trim()));

    let first = server.json(&["pop", "q"]);
    assert_eq!(first["id"].as_str(), Some(id.trim()));
    assert_eq!(first["body"], "from an argument");
    assert_eq!(first["content_type"], "text/plain");
    let second = server.json(&["pop", "q"]);
    assert_eq!(second["id"], sent["id"]);
    assert_eq!(second["body_base64"], "AJ+Slgo=");
    assert_eq!(second["size"], binary.len());
    // Text output: the metadata, a blank line, then the body.
    let third = server.ok(&["pop", "q"]);
    assert!(third.starts_with(&format!("id             {}\n", out.stdout.trim())), "{third}");
    assert!(third.ends_with("\n\nfrom stdin\n"), "{third}");

    let empty = run(server.edgeq(&["pop", "q"]), None);
    assert!(empty.status.success());
    assert_eq!(empty.stdout, "");
    assert_eq!(empty.stderr, "queue q has no message to deliver\n");

    let missing = dir.path().join("missing");
    let stderr = server.fails(&["send", "q", "--file", missing.to_str().unwrap()]);
    assert!(stderr.starts_with("edgeq: cannot read "), "{stderr}");
}

#[test]
fn receive_prints_a_receipt_that_ack_and_nack_take() {
    let server = Server::start();
    server.ok(&["queues", "create", "q"]);
    server.ok(&["send", "q", "job"]);

    let text = server.ok(&["receive", "q", "--visibility-timeout", "600"]);
    let receipt = text
        .lines()
        .find_map(|l| l.strip_prefix("receipt"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no receipt in {text}"));
    assert!(text.ends_with("\njob\n"), "{text}");
    assert_eq!(server.depth("q"), (1, 1));
    assert_eq!(server.ok(&["nack", "q", receipt]), "nacked 1\n");

    let again = server.json(&["receive", "q", "--wait", "1"]);
    assert_eq!(again["body"], "job");
    assert_eq!(again["receive_count"], 2);
    let receipt = again["receipt"].as_str().unwrap();
    // One good receipt and one malformed: the good one is acked, the exit code says
    // that not all were.
    let out = run(server.edgeq(&["ack", "q", receipt, "bogus"]), None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(out.stdout, "acked 1\n");
    assert!(out.stderr.contains("bogus: ") && out.stderr.contains("invalid_receipt"), "{out:?}");
    assert_eq!(server.depth("q"), (0, 0));
    let empty = run(server.edgeq(&["receive", "q"]), None);
    assert!(empty.status.success() && empty.stdout.is_empty(), "{empty:?}");
}

#[test]
fn move_takes_the_visible_messages_to_another_queue_in_order() {
    let server = Server::start();
    server.ok(&["queues", "create", "dlq"]);
    server.ok(&["queues", "create", "q"]);
    server.ok(&["send", "dlq", "leased"]);
    server.ok(&["send", "dlq", "{\"n\":1}", "--content-type", "application/json"]);
    server.ok(&["send", "dlq", "two"]);
    server.ok(&["send", "dlq", "three"]);
    server.ok(&["receive", "dlq", "--visibility-timeout", "600"]);

    assert_eq!(server.ok(&["move", "dlq", "q", "--max", "2"]), "moved 2\n");
    assert_eq!(server.json(&["move", "dlq", "q"]), json!({ "moved": 1 }));
    // The leased message stays where it is, leased.
    assert_eq!(server.ok(&["move", "dlq", "q"]), "moved 0\n");
    assert_eq!(server.depth("dlq"), (1, 1));
    let first = server.json(&["pop", "q"]);
    assert_eq!(
        (&first["body"], &first["content_type"]),
        (&json!({"n": 1}).to_string().into(), &"application/json".into())
    );
    assert!(server.ok(&["pop", "q"]).ends_with("\ntwo\n"));
    assert!(server.ok(&["pop", "q"]).ends_with("\nthree\n"));
    assert_eq!(server.depth("q"), (0, 0));
    // A message that could not be sent is given back at once.
    server.ok(&["send", "dlq", "four"]);
    assert!(server.fails(&["move", "dlq", "nowhere"]).contains("queue_not_found"));
    assert_eq!(server.depth("dlq"), (2, 1));
    assert!(server.fails(&["move", "dlq", "dlq"]).contains("to itself"));
}

#[test]
fn consume_exec_nacks_a_failure_and_acks_the_redelivery() {
    let server = Server::start();
    server.ok(&["queues", "create", "jobs"]);
    for body in ["one", "two"] {
        server.ok(&["send", "jobs", body]);
    }
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    // Fails each message's first delivery; appends the body on the second.
    let script = r#"[ "$EDGEQ_RECEIVE_COUNT" -ge 2 ] || exit 3; cat >> "$DONE"; echo >> "$DONE""#;
    let mut command = server.edgeq(&["consume", "jobs", "--exec", script, "--max", "4"]);
    command.env("DONE", &done);
    let out = run(command, None);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.ends_with("consumed 2, failed 2\n"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("--exec failed (exit status: 3); nacked").count(), 2);
    let mut handled: Vec<String> =
        std::fs::read_to_string(&done).unwrap().lines().map(str::to_owned).collect();
    handled.sort();
    assert_eq!(handled, ["one", "two"]);
    assert_eq!(server.depth("jobs"), (0, 0));
}

#[test]
fn consume_prints_to_stdout_and_stops_on_sigterm() {
    let server = Server::start();
    server.ok(&["queues", "create", "q"]);
    server.ok(&["send", "q", "first"]);
    // Short polls: the poll in flight when it stops ends soon, and with it the
    // server's shutdown at the end of the test.
    let mut child = server
        .edgeq(&["consume", "q", "--wait", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines(child.stdout.take().unwrap());
    let next_line = || lines.recv_timeout(HANG_GUARD).expect("a line from edgeq consume");
    assert_eq!(next_line(), "first");
    // A second message arrives while it long-polls.
    server.ok(&["send", "q", "second"]);
    assert_eq!(next_line(), "second");

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = wait(&mut child);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stderr, "consumed 2, failed 0\n");
    assert_eq!(server.depth("q"), (0, 0));

    // Another queue: the poll the stopped consumer left in flight may still lease
    // what `q` gets next, until its lease ends.
    server.ok(&["queues", "create", "q2"]);
    server.ok(&["send", "q2", "third"]);
    let out = server.ok(&["--json", "consume", "q2", "--max", "1"]);
    let envelope: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(envelope["body"], "third");
}

#[test]
fn consume_waits_for_a_server_that_is_down_and_goes_on_once_it_is_up() {
    // A loopback port nobody listens on yet.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = edgeq(&format!("http://127.0.0.1:{port}"), &["consume", "jobs", "--max", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines(child.stderr.take().unwrap());
    let line = stderr.recv_timeout(HANG_GUARD).expect("consume reports the failure");
    assert!(line.contains("cannot reach edgeq") && line.contains("trying again"), "{line}");
    assert!(child.try_wait().unwrap().is_none(), "consume gave up: {line}");

    // The server comes up on that port with a message waiting.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let server = Server::run_on(listener, |listener, stop| async move {
        let store = NativeStore::open(&StoreSpec::Memory).unwrap();
        let engine = Engine::new(store, SystemEnv::default());
        let (ns, q) = (Name::new("default").unwrap(), Name::new("jobs").unwrap());
        engine.put_queue(&ns, &q, QueueConfig::default()).await.unwrap();
        let job = NewMessage { body: "job 1".into(), ..Default::default() };
        engine.send(&ns, &q, vec![job]).await.unwrap().remove(0).unwrap();
        let api = Arc::new(Api::new(engine, ApiConfig::default()));
        serve(listener, api, stop).await.unwrap();
    });
    let stdout = reader(child.stdout.take().unwrap());
    let status = wait(&mut child);
    let said: Vec<String> = stderr.iter().collect();
    assert!(status.success(), "{status}: {said:?}");
    assert_eq!(stdout.join().unwrap(), "job 1\n");
    assert_eq!(said.last().map(String::as_str), Some("consumed 1, failed 0"), "{said:?}");
    assert_eq!(server.depth("jobs"), (0, 0));
}

#[test]
fn exchanges_route_published_messages_to_bound_queues() {
    let server = Server::start();
    server.ok(&["queues", "create", "eu"]);
    assert_eq!(
        server.ok(&["exchanges", "create", "orders", "--type", "topic"]),
        "created exchange orders (topic)\n"
    );
    assert_eq!(
        server.ok(&["exchanges", "create", "orders", "--type", "topic"]),
        "exchange orders (topic): already there\n"
    );
    let stderr = server.fails(&["exchanges", "create", "orders", "--type", "fanout"]);
    assert!(stderr.contains("exchange_type_mismatch"), "{stderr}");
    server.ok(&["exchanges", "bind", "orders", "eu", "--key", "order.eu.#"]);
    let exchange = server.json(&["exchanges", "get", "orders"]);
    assert_eq!(exchange["type"], "topic");
    assert_eq!(exchange["bindings"], serde_json::json!([{"queue": "eu", "key": "order.eu.#"}]));

    assert_eq!(
        server.ok(&["publish", "orders", "--key", "order.eu.paris", "bonjour"]),
        "routed to 1 queue(s): eu\n"
    );
    let out = run(server.edgeq(&["publish", "orders", "-k", "order.us"]), Some(b"hello"));
    assert_eq!(out.stdout, "routed to no queue (key \"order.us\")\n");
    let published = server.json(&["publish", "orders", "--key", "order.eu", "salut"]);
    assert_eq!(published["routed"], 1);
    assert_eq!(server.json(&["pop", "eu"])["body"], "bonjour");
    assert_eq!(server.json(&["pop", "eu"])["id"], published["queues"][0]["id"]);

    server.ok(&["exchanges", "unbind", "orders", "eu", "--key", "order.eu.#"]);
    assert_eq!(server.json(&["exchanges", "get", "orders"])["bindings"], serde_json::json!([]));
    assert_eq!(server.ok(&["exchanges", "delete", "orders"]), "deleted exchange orders\n");
    let stderr = server.fails(&["exchanges", "get", "orders"]);
    assert!(stderr.contains("exchange_not_found"), "{stderr}");
}

#[test]
fn bad_usage_is_a_clap_error_and_a_missing_server_a_clear_one() {
    for args in [
        &["queues", "create", "q", "--config", "[1]"][..],
        &["consume", "q", "--wait", "21"],
        &["exchanges", "create", "x", "--type", "headers"],
        &["send", "q", "body", "--file", "f"],
        &["ack", "q"],
    ] {
        let out = run(edgeq("http://127.0.0.1:9", args), None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("error: "), "{args:?}: {}", out.stderr);
    }

    // A port nobody listens on: bound, then closed.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}");
    let out = run(edgeq("http://ignored.invalid", &["--url", &url, "queues", "list"]), None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.starts_with(&format!("edgeq: cannot reach edgeq at {url}/v1/queues")));

    let out = run(edgeq("https://127.0.0.1:1", &["queues", "list"]), None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("https is not supported"), "{}", out.stderr);
}

#[test]
fn the_key_is_sent_as_a_bearer_token_and_a_foreign_answer_is_reported() {
    // A fake server: it records one request and answers a non-edgeq 502.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let fake = thread::spawn(move || {
        let start = Instant::now();
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < HANG_GUARD, "edgeq never connected");
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        conn.write_all(
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 7\r\nconnection: close\r\n\r\nno edgq",
        )
        .unwrap();
        String::from_utf8(head).unwrap().to_lowercase()
    });
    let out = run(edgeq(&url, &["--key", "s3cret", "queues", "get", "q"]), None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let head = fake.join().unwrap();
    assert!(head.starts_with("get /v1/queues/q http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nauthorization: bearer s3cret\r\n"), "{head}");
    assert!(out.stderr.contains("unexpected answer") && out.stderr.contains("no edgq"), "{out:?}");
}

#[test]
fn a_refused_key_says_how_to_give_one() {
    let server = Server::run(|listener, stop| async move {
        let store = NativeStore::open(&StoreSpec::Memory).unwrap();
        let config = ApiConfig { admin_key: Some("admin".into()), ..ApiConfig::default() };
        serve(listener, Arc::new(Api::new(Engine::new(store, SystemEnv::default()), config)), stop)
            .await
            .unwrap();
    });
    let err = server.fails(&["queues", "list"]);
    assert!(err.contains("(unauthorized, HTTP 401") && err.contains("--key KEY"), "{err}");
    let out = run(edgeq(&server.url, &["--key", "admin", "queues", "list"]), None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// The `user-events` example publishing to `edgeq` (declared first: requests wait
/// in the listener's backlog until it is done).
fn user_events(edgeq_url: &str) -> Server {
    let client = Client::new(edgeq_url, None).unwrap();
    Server::run(move |listener, stop| async move {
        user_events::declare(&client).await.unwrap();
        user_events::serve(listener, user_events::App::new(client), stop).await.unwrap();
    })
}

/// One call to the example: the status and the JSON body (`Null` when empty).
fn call(method: &str, url: &str, body: &str) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let client = reqwest::Client::builder().timeout(HANG_GUARD).build().unwrap();
        let response = client.request(method, url).body(body.to_owned()).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        let json =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
        (status, json)
    })
}

#[test]
fn user_events_publishes_one_event_per_call_and_the_cli_consumes_them() {
    let edgeq = Server::start();
    let app = user_events(&edgeq.url);
    let users = format!("{}/users", app.url);
    let john = format!("{users}/john.doe@user.com");
    let created = json!({"email": "john.doe@user.com", "first_name": "Doe", "last_name": "John"});
    let updated = json!({"email": "john.doe@user.com", "first_name": "Done", "last_name": "John"});

    // Bad input and missing users: refused, nothing published.
    for bad in [
        r#"{"first_name": "Doe", "last_name": "John"}"#,
        r#"{"email": 7, "first_name": "Doe", "last_name": "John"}"#,
        r#"{"email": "nobody", "first_name": "Doe", "last_name": "John"}"#,
        r#"{"email": "a@b", "first_name": "Doe", "last_name": "John", "age": 3}"#,
        "not json",
    ] {
        let (status, body) = call("POST", &users, bad);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(call("GET", &john, "").0, 404);

    // The four calls.
    assert_eq!(call("POST", &users, &created.to_string()), (201, created.clone()));
    assert_eq!(call("POST", &users, &created.to_string()).0, 409);
    assert_eq!(call("GET", &john, ""), (200, created.clone()));
    assert_eq!(call("PATCH", &john, r#"{"last_name": 1}"#).0, 400);
    assert_eq!(call("PATCH", &john, r#"{"first_name": "Done"}"#), (200, updated.clone()));
    assert_eq!(call("DELETE", &john, ""), (204, Value::Null));
    assert_eq!(call("DELETE", &john, "").0, 404);

    let table = edgeq.ok(&["queues", "list"]);
    assert!(table.lines().any(|l| l.split_whitespace().eq(["user", "4", "0"])), "{table}");
    let consumed = edgeq.ok(&["--json", "consume", "user", "--max", "4"]);
    let events: Vec<Value> = consumed
        .lines()
        .map(|line| {
            let envelope: Value = serde_json::from_str(line).unwrap();
            assert_eq!(envelope["content_type"], "application/json");
            serde_json::from_str(envelope["body"].as_str().unwrap()).unwrap()
        })
        .collect();
    let expected = [
        ("user.created", &created),
        ("user.fetched", &created),
        ("user.updated", &updated),
        ("user.deleted", &updated),
    ];
    assert_eq!(events.len(), expected.len(), "{consumed}");
    for (event, (name, context)) in events.iter().zip(expected) {
        assert_eq!(event["event"], name, "{event}");
        assert_eq!(&event["context"], context, "{event}");
        assert_eq!(event["queue"], "user");
        let created_at = event["created_at"].as_str().unwrap();
        assert!(created_at.len() == 24 && created_at.as_bytes()[10] == b'T', "{created_at}");
        assert!(created_at.ends_with('Z'), "{created_at}");
    }
    assert_eq!(edgeq.depth("user"), (0, 0));

    // edgeq refuses the publish (nothing bound): 503, and the user is not created.
    edgeq.ok(&["exchanges", "unbind", "my-exchange", "user", "--key", "user"]);
    let jane = json!({"email": "jane@user.com", "first_name": "Jane", "last_name": "Roe"});
    let (status, body) = call("POST", &users, &jane.to_string());
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "events_unavailable");
    edgeq.ok(&["exchanges", "bind", "my-exchange", "user", "--key", "user"]);
    assert_eq!(call("GET", &format!("{users}/jane@user.com"), "").0, 404);
    assert_eq!(edgeq.depth("user"), (0, 0));

    // A consumer killed before it acks: the next run gets the same event again.
    assert_eq!(call("POST", &users, &jane.to_string()).0, 201);
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let mut killed = edgeq.edgeq(&[
        "consume",
        "user",
        "--visibility-timeout",
        "1",
        "--exec",
        r#"echo "$EDGEQ_MESSAGE_ID" > "$SEEN"; kill -9 "$PPID""#,
    ]);
    killed.env("SEEN", &seen);
    let out = run(killed, None);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    let seen = std::fs::read_to_string(&seen).unwrap();
    let again = edgeq.json(&["consume", "user", "--max", "1"]);
    assert_eq!(again["id"].as_str(), Some(seen.trim()));
    assert_eq!(again["receive_count"], 2);
    let event: Value = serde_json::from_str(again["body"].as_str().unwrap()).unwrap();
    assert_eq!((&event["event"], &event["context"]), (&json!("user.created"), &jane));
    assert_eq!(edgeq.depth("user"), (0, 0));
}

#[test]
fn user_events_answers_503_and_changes_nothing_when_edgeq_is_down() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let client = Client::new(&format!("http://{closed}"), None).unwrap();
    let app = Server::run(move |listener, stop| async move {
        user_events::serve(listener, user_events::App::new(client), stop).await.unwrap();
    });
    let users = format!("{}/users", app.url);
    let john = json!({"email": "john@user.com", "first_name": "John", "last_name": "Doe"});
    let (status, body) = call("POST", &users, &john.to_string());
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("cannot publish user.created: cannot reach edgeq"), "{message}");
    assert_eq!(call("GET", &format!("{users}/john@user.com"), "").0, 404);
}
