//! [`EdgeqProcess`]: `edgeq serve` as a child process, for the tests that need the
//! real binary (startup flags, signals, `kill -9`, memory use). It is run with
//! `RUST_LOG=info`, and its listeners are taken from its startup lines
//! (`edgeq listening addr=… root_dialect=…`), so `--listen 127.0.0.1:0` works.
//! The child is killed (as `kill -9` would) and reaped when dropped, so a failing
//! test leaves no server behind.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A running `edgeq serve` child.
#[derive(Debug)]
pub struct EdgeqProcess {
    child: Child,
    /// Every listener announced: its address and the dialect it serves at `/`
    /// (empty for none), in the order announced.
    listeners: Vec<(SocketAddr, String)>,
    /// The child's log lines after its startup lines.
    log: Receiver<String>,
}

impl EdgeqProcess {
    /// Runs `bin serve ARGS` and waits up to `limit` until it has announced
    /// `listeners` listeners. On failure (it exited, or stayed silent) the child is
    /// killed and the error holds the lines it logged.
    pub fn spawn(
        bin: &str,
        args: &[&str],
        listeners: usize,
        limit: Duration,
    ) -> Result<Self, String> {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("run {bin}: {e}"))?;
        let (tx, log) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Self { child, listeners: Vec::new(), log };
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while process.listeners.len() < listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = process.log.recv_timeout(left) else {
                return Err(format!("edgeq did not start; it logged: {seen:?}"));
            };
            if line.contains("edgeq listening") {
                if let Some(addr) = field(&line, "addr").and_then(|a| a.parse().ok()) {
                    let dialect = field(&line, "root_dialect").unwrap_or_default().to_owned();
                    process.listeners.push((addr, dialect));
                }
            }
            seen.push(line);
        }
        Ok(process)
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].0
    }

    /// Every listener announced, with the dialect it serves at `/`.
    pub fn listeners(&self) -> &[(SocketAddr, String)] {
        &self.listeners
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the process, in KiB (from `/proc`).
    ///
    /// # Panics
    ///
    /// When `/proc/<pid>/status` cannot be read: this is a test helper.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Waits up to `limit` for the process to exit by itself: its status and the
    /// lines it logged after starting. `None` (and the process is killed) when it
    /// did not exit in time.
    pub fn wait(mut self, limit: Duration) -> Option<(ExitStatus, Vec<String>)> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().ok()? {
                return Some((status, self.log.try_iter().collect()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for EdgeqProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name=` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    line[at..].split_whitespace().next()
}
