//! Shared helpers of the `top_*` integration tests: real `serve` (ours and
//! the reference), `replay`, a tmux pseudo-terminal, and corpus facts.
//! Every process started here is stopped by pid (or its tmux server) on drop.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mod_wsgi-telemetry")
}

pub fn corpus_path() -> PathBuf {
    std::env::var_os("TELEMETRY_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
        .join("anchor-6.1.1-mixed.bin")
}

/// Facts about the first `seconds` of the corpus.
pub struct Prefix {
    /// Datagrams in the prefix.
    pub count: usize,
    /// Pids that sent a periodic sample in the prefix.
    pub pids: BTreeSet<u32>,
    /// Pids sending samples at the end of the prefix (a sample within the
    /// last 3 s, no PROCESS_STOPPED).
    pub live: BTreeSet<u32>,
    /// Paths of slow requests in the prefix.
    pub slow_paths: BTreeSet<String>,
    /// Per pid: latest `(request_throughput, request_threads_maximum)`.
    pub latest: std::collections::HashMap<u32, (f64, u64)>,
    /// Request-time histogram of all samples in the prefix.
    pub buckets: Vec<i64>,
}

pub fn corpus_prefix(seconds: f64) -> Prefix {
    let buf = std::fs::read(corpus_path()).expect("corpus");
    let mut p = Prefix {
        count: 0,
        pids: BTreeSet::new(),
        live: BTreeSet::new(),
        slow_paths: BTreeSet::new(),
        latest: Default::default(),
        buckets: vec![0; wire::histogram::BUCKETS],
    };
    let mut ticks: Vec<(f64, Vec<i32>)> = Vec::new();
    let mut first = None;
    let mut last_tick = std::collections::HashMap::new();
    let mut stopped = BTreeSet::new();
    let mut end = 0.0;
    for r in wire::capture::records(&buf) {
        let s = wire::decode(r.unwrap()).unwrap();
        let t0 = *first.get_or_insert(s.header.stamp);
        if s.header.stamp > t0 + seconds {
            break;
        }
        end = s.header.stamp;
        p.count += 1;
        match s.header.kind {
            wire::Kind::REQUEST => {
                p.pids.insert(s.header.pid);
                last_tick.insert(s.header.pid, s.header.stamp);
                p.latest.insert(
                    s.header.pid,
                    (
                        s.f64(wire::id::REQUEST_THROUGHPUT).unwrap(),
                        s.u64(wire::id::REQUEST_THREADS_MAXIMUM).unwrap(),
                    ),
                );
                if let Some(wire::Value::I32Array(b)) = s.get(wire::id::REQUEST_TIME_BUCKETS) {
                    ticks.push((s.header.stamp, b.clone()));
                }
            }
            wire::Kind::PROCESS_STOPPED => {
                stopped.insert(s.header.pid);
            }
            wire::Kind::SLOW_REQUEST => {
                if let Some(t) = s.text(wire::id::SLOW_PATH_INFO) {
                    let sn = s.text(wire::id::SLOW_SCRIPT_NAME).unwrap_or_default();
                    p.slow_paths.insert(format!("{sn}{t}"));
                }
            }
            _ => {}
        }
    }
    for (_, b) in &ticks {
        for (o, c) in p.buckets.iter_mut().zip(b) {
            *o += *c as i64;
        }
    }
    for (pid, t) in last_tick {
        if t > end - 3.0 && !stopped.contains(&pid) {
            p.live.insert(pid);
        }
    }
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_socket(path: &Path, what: &str) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}: no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running ingester (ours or the reference), killed by pid on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub sock: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Our `serve`.
    pub fn ours(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        Server::ours_at(dir, port, extra)
    }

    pub fn ours_at(dir: tempfile::TempDir, port: u16, extra: &[&str]) -> Server {
        let sock = dir.path().join("t.sock");
        let child = Command::new(bin())
            .arg("serve")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(["--http-port", &port.to_string(), "--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let s = Server {
            child,
            port,
            sock,
            dir,
        };
        wait_port(port, "serve");
        wait_socket(&s.sock, "serve");
        s
    }

    /// The reference `serve` (mod_wsgi-telemetry 1.1.0) from the throwaway
    /// virtualenv made by `scripts/ref-venv.sh`.
    pub fn reference() -> Server {
        let venv = ref_venv();
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("r.sock");
        let port = free_port();
        let child = Command::new(venv.join("bin/mod_wsgi-telemetry"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(["--http-port", &port.to_string(), "--log-level", "WARNING"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Server {
            child,
            port,
            sock,
            dir,
        };
        wait_port(port, "reference serve");
        wait_socket(&s.sock, "reference serve");
        s
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// `total_received` of `/api/state` (0 when unreachable).
    pub fn total_received(&self) -> u64 {
        use std::io::{Read, Write};
        let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return 0;
        };
        let _ = write!(
            c,
            "GET /api/state HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        );
        let mut body = Vec::new();
        let _ = c.read_to_end(&mut body);
        let text = String::from_utf8_lossy(&body);
        let Some(json) = text.split("\r\n\r\n").nth(1) else {
            return 0;
        };
        serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v["total_received"].as_u64())
            .unwrap_or(0)
    }

    /// Waits until the server has taken in `count` datagrams.
    pub fn wait_received(&self, count: usize) {
        let t0 = Instant::now();
        while self.total_received() < count as u64 {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "server took in only {} of {count} datagrams",
                self.total_received()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server by pid and waits for it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The reference virtualenv, created if missing (`scripts/ref-venv.sh`).
pub fn ref_venv() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ref-venv.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/ref-venv.sh");
    assert!(out.status.success(), "scripts/ref-venv.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Replays the first `count` corpus datagrams to `sock` (losslessly) and
/// waits for replay to finish.
pub fn replay(sock: &Path, count: usize, extra: &[&str]) {
    let st = Command::new(bin())
        .arg("replay")
        .arg(corpus_path())
        .arg("--socket")
        .arg(format!("unix:{}", sock.display()))
        .args(["--count", &count.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "replay failed");
}

/// Runs `top` with arguments and returns its output.
pub fn top(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("top")
        .args(args)
        .env_remove("MOD_WSGI_TELEMETRY_URL")
        .output()
        .unwrap()
}

/// A tmux server of its own (private socket) running one command in a
/// pane of a fixed size; the server is killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(cmd: &[&str], width: u16, height: u16) -> Tmux {
        let socket = unique_socket_name();
        let t = Tmux { socket };
        let st = Command::new("tmux")
            .args(["-L", &t.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .args(["-s", "top"])
            .args(cmd)
            .status()
            .expect("tmux");
        assert!(st.success(), "tmux new-session failed");
        t
    }

    /// A tmux format evaluated against the pane (`#{alternate_on}`, …).
    pub fn format(&self, fmt: &str) -> String {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "display-message",
                "-p",
                "-t",
                "top",
                fmt,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux display-message {fmt}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn keys(&self, keys: &str) {
        let st = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "top", "-l", keys])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// A key by tmux name (`C-c`, `Enter`, …).
    pub fn key_name(&self, key: &str) {
        let st = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "top", key])
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-t", "top"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `pred` holds; panics with the last screen
    /// after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.capture();
            if pred(&s) {
                return s;
            }
            if t0.elapsed() > limit {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the pane's command is still running.
    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", "top"])
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Tmux {
    /// Kills the tmux server: the pane's terminal hangs up.
    pub fn hang_up(&self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether a process is gone (or a zombie waiting to be reaped).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .map(|rest| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

/// Sends corpus datagrams `from..to` (capture order) unchanged to `sock`,
/// blocking while the receiver's queue is full (lossless).
pub fn send_corpus_range(sock: &Path, from: usize, to: usize) {
    let buf = std::fs::read(corpus_path()).expect("corpus");
    let tx = std::os::unix::net::UnixDatagram::unbound().unwrap();
    for r in wire::capture::records(&buf).skip(from).take(to - from) {
        tx.send_to(r.unwrap(), sock).unwrap();
    }
}

/// A tmux server name no other test of this run uses (a "free port" can be
/// handed to two tests at once, and two tests sharing a server kill each
/// other's sessions).
fn unique_socket_name() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("top-e2e-{}-{n}", std::process::id())
}
