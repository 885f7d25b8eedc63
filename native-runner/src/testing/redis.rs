//! [`RedisServer`] runs a private `redis-server` for one test: on a free loopback
//! port, with nothing persisted (`--save '' --appendonly no`), in a temporary
//! directory, killed when dropped. A test that needs Redis starts its own, so tests
//! running in parallel never share a key, and nothing depends on a Redis the machine
//! may or may not run. [`RedisServer::start_persistent`] keeps an append-only file
//! fsynced on every write instead, so a [`kill`](RedisServer::kill) and
//! [`restart`](RedisServer::restart) bring back every write it acknowledged.
//! `scripts/test.sh` installs `redis-server` when it is missing; without it
//! [`RedisServer::start`] panics with a message that says so. A test is never
//! skipped silently.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Names the `redis-server` binary to run instead of the one on `PATH`.
pub const REDIS_SERVER_ENV: &str = "EDGEQ_REDIS_SERVER";

/// How long a fresh `redis-server` may take to answer `PING`.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);

/// A `redis-server` child process on `127.0.0.1:port`, killed (and its directory
/// removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Whether it keeps an append-only file (`appendfsync always`) in `dir`.
    persistent: bool,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed (the message says how to install it) or
    /// does not come up; this is a test helper, and a test without its Redis fails.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// As [`start`](Self::start), but persistent: `--appendonly yes --appendfsync
    /// always` in its temporary directory, so every write is fsynced before Redis
    /// answers it, and a [`restart`](Self::restart) after a [`kill`](Self::kill)
    /// (even `kill -9`) loads every write it acknowledged.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_persistent() -> Self {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> Self {
        let dir = super::temp_dir("redis");
        let mut last = String::new();
        // A free port can be taken by someone else between our probe and the
        // server's bind: try a few.
        for _ in 0..5 {
            let port = free_port();
            match spawn(&dir, port, persistent) {
                Ok(child) => return Self { child: Some(child), port, dir, persistent },
                Err(e) => last = e,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("redis-server did not start: {last}");
    }

    /// The server's port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`: database 0.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT/db`.
    pub fn url_db(&self, db: u32) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// The running server's process id; `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (`kill -9`) and waits for it to exit. It stays
    /// down until [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory after a
    /// [`kill`](Self::kill), and waits until it answers (and, when
    /// [persistent](Self::start_persistent), has loaded its append-only file).
    /// Without persistence it comes back empty.
    ///
    /// # Panics
    ///
    /// When it does not come up.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + STARTUP_LIMIT;
        // The old socket may linger for a moment; the port is ours to take again.
        loop {
            match spawn(&self.dir, self.port, self.persistent) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("redis-server did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `redis-server` on `port` and waits until it answers; on failure the child is
/// gone and the error says why (with the server's log). `persistent`: an append-only
/// file in `dir`, fsynced before every reply.
fn spawn(dir: &std::path::Path, port: u16, persistent: bool) -> Result<Child, String> {
    let program = std::env::var_os(REDIS_SERVER_ENV).unwrap_or_else(|| "redis-server".into());
    let log = dir.join(format!("redis-{port}.log"));
    let persistence: &[&str] = if persistent {
        &["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
    } else {
        &["--save", "", "--appendonly", "no"]
    };
    let mut child = Command::new(&program)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(persistence)
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!(
                    "{} not found: the Redis tests need redis-server. Run scripts/test.sh \
                     (it installs it), or `apt-get install redis-server`, or set {REDIS_SERVER_ENV} \
                     to its path",
                    program.to_string_lossy()
                )
            }
            panic!("cannot run {}: {e}", program.to_string_lossy())
        });
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP_LIMIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("exited with {status} on port {port}; log:\n{log}"));
        }
        if answers_as(addr, child.id()) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("no answer on port {port} within {STARTUP_LIMIT:?}; log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the Redis answering at `addr` is process `pid` (its `INFO server` says
/// so: a server someone else started on the same port would answer `PING` too) and
/// serves commands (`PING` answers `PONG`, not `-LOADING` while it reads its data).
fn answers_as(addr: SocketAddr, pid: u32) -> bool {
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    if conn.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    // A bulk string: `$<len>\r\n<len bytes>\r\n`.
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if conn.read_exact(&mut byte).is_err() || reply.len() > 32 {
            return false;
        }
        reply.push(byte[0]);
    }
    let Some(len) = std::str::from_utf8(&reply[..reply.len() - 2])
        .ok()
        .and_then(|h| h.strip_prefix('$'))
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return false;
    };
    let mut info = vec![0u8; len];
    if conn.read_exact(&mut info).is_err() {
        return false;
    }
    let ours = String::from_utf8_lossy(&info)
        .lines()
        .any(|line| line.trim() == format!("process_id:{pid}"));
    if !ours || conn.read_exact(&mut [0u8; 2]).is_err() || conn.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut pong = [0u8; 7];
    conn.read_exact(&mut pong).is_ok() && &pong == b"+PONG\r\n"
}

/// A port that was free a moment ago on `127.0.0.1`.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port to find a free one")
}
