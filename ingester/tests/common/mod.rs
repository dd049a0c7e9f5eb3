//! Harness shared by the ingester's integration tests (`mod common;`): the
//! built binary, the corpus, our `serve` (or the reference's) on a free port
//! with a socket in its own temporary directory, raw HTTP/1.0 against it,
//! `replay`, and the reference virtualenv.
//!
//! Every process started here is killed by its pid when its guard drops.
//! Waits poll for a condition with a generous deadline (the machine may be
//! loaded); none sleeps a fixed time and assumes something happened.

#![allow(dead_code)]

use serde_json::Value as J;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to start, a condition to come true, or a process
/// to exit, before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mod_wsgi-telemetry")
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/fixtures/corpus/` of the repository, or `$TELEMETRY_CORPUS_DIR`.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("TELEMETRY_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/fixtures/corpus"))
}

/// The real mod_wsgi 6.1.1 capture.
pub fn corpus_path() -> PathBuf {
    corpus_dir().join("anchor-6.1.1-mixed.bin")
}

/// The capture's datagrams, in capture order.
pub fn corpus_records() -> Vec<Vec<u8>> {
    let buf = std::fs::read(corpus_path()).expect("corpus");
    wire::capture::records(&buf)
        .map(|r| r.unwrap().to_vec())
        .collect()
}

/// A file of `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `--listen` / `--socket` spelling of a socket path.
pub fn listen(p: &Path) -> String {
    format!("unix:{}", p.display())
}

/// Polls `probe` every 20 ms until it gives `Ok`; fails with `what` and the
/// last `Err` (what it saw instead) after [`PATIENCE`].
pub fn poll<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let t0 = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(seen) => assert!(
                t0.elapsed() < PATIENCE,
                "timed out waiting for {what}; last seen: {seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `done` until it holds (see [`poll`]).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    poll(what, || {
        if done() {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
}

/// Waits for a child that should exit by itself; kills it (by pid) and fails
/// after [`PATIENCE`].
pub fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP exchange with 127.0.0.1:`port`: `req` is sent as written, with
/// `{HOST}` replaced by the host and port; returns (status, head, body).
/// The server closes the connection after the body (HTTP/1.0), except after
/// refusing an upgrade, which is read up to the end of its head.
pub fn http(port: u16, req: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to serve");
    s.write_all(
        req.replace("{HOST}", &format!("127.0.0.1:{port}"))
            .as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        if out.starts_with(b"HTTP/1.1 403") && out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8(out).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Sends datagrams to a socket, blocking while its queue is full (lossless).
pub fn send_datagrams<D: AsRef<[u8]>>(sock: &Path, datagrams: impl IntoIterator<Item = D>) {
    let tx = UnixDatagram::unbound().unwrap();
    for d in datagrams {
        tx.send_to(d.as_ref(), sock).unwrap();
    }
}

/// Runs `replay` with `args` to its end; returns its stdout (the summary).
pub fn run_replay(args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("replay")
        .args(args)
        .output()
        .expect("run replay");
    assert!(
        out.status.success(),
        "replay {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The reference virtualenv (mod_wsgi-telemetry 1.1.0), created by
/// `scripts/ref-venv.sh` if missing.
pub fn ref_venv() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/ref-venv.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/ref-venv.sh");
    assert!(out.status.success(), "scripts/ref-venv.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The reference's `mod_wsgi-telemetry` executable.
pub fn reference_exe() -> PathBuf {
    let exe = ref_venv().join("bin/mod_wsgi-telemetry");
    assert!(exe.exists(), "{} missing", exe.display());
    exe
}

/// A running ingester (ours or the reference) with its socket in a
/// temporary directory and HTTP on a free port; killed by pid on drop.
pub struct Serve {
    pub child: Child,
    pub port: u16,
    pub sock: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Serve {
    /// Our `serve` with extra options (`--log-level warn` unless given).
    pub fn start(extra: &[&str]) -> Serve {
        Serve::start_at(tempfile::tempdir().unwrap(), free_port(), extra)
    }

    /// As [`Serve::start`], in `dir` and on `port`.
    pub fn start_at(dir: tempfile::TempDir, port: u16, extra: &[&str]) -> Serve {
        Serve::start_logging(dir, port, extra, Stdio::inherit())
    }

    /// As [`Serve::start_at`], its stderr (the log) going to `stderr`.
    pub fn start_logging(
        dir: tempfile::TempDir,
        port: u16,
        extra: &[&str],
        stderr: Stdio,
    ) -> Serve {
        let sock = dir.path().join("t.sock");
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .args(["--listen", &listen(&sock)])
            .args(["--http-port", &port.to_string()]);
        if !extra.contains(&"--log-level") {
            cmd.args(["--log-level", "warn"]);
        }
        cmd.args(extra).stderr(stderr);
        Serve::spawn(cmd, dir, port, sock, "serve")
    }

    /// The reference `serve` from the virtualenv of `scripts/ref-venv.sh`.
    pub fn reference() -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("r.sock");
        let port = free_port();
        let mut cmd = Command::new(reference_exe());
        cmd.arg("serve")
            .args(["--listen", &listen(&sock)])
            .args(["--http-port", &port.to_string(), "--log-level", "WARNING"])
            .stderr(Stdio::null());
        Serve::spawn(cmd, dir, port, sock, "reference serve")
    }

    /// Spawns `cmd` and waits until it has bound its socket and accepts
    /// HTTP connections; fails at once if it exits first.
    pub fn spawn(
        mut cmd: Command,
        dir: tempfile::TempDir,
        port: u16,
        sock: PathBuf,
        what: &str,
    ) -> Serve {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let mut s = Serve {
            child,
            port,
            sock,
            dir,
        };
        wait_until(&format!("{what} to listen"), || {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("{what} exited early: {st}");
            }
            s.sock.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        s
    }

    /// WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// See [`http`].
    pub fn http(&self, req: &str) -> (u16, String, String) {
        http(self.port, req)
    }

    /// `GET path` over HTTP/1.0: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let (st, _, body) = self.http(&format!("GET {path} HTTP/1.0\r\nHost: {{HOST}}\r\n\r\n"));
        (st, body)
    }

    /// `/api/state`, or `None` while it cannot be had (not listening, not
    /// 200, not JSON).
    pub fn try_state(&self) -> Option<J> {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        match self.get("/api/state") {
            (200, body) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// `/api/state` (must be 200 and JSON).
    pub fn state(&self) -> J {
        let (st, body) = self.get("/api/state");
        assert_eq!(st, 200, "/api/state: {body:.300}");
        serde_json::from_str(&body).expect("/api/state is JSON")
    }

    /// `total_received` of `/api/state` (0 while unavailable).
    pub fn total_received(&self) -> u64 {
        self.try_state()
            .and_then(|v| v["total_received"].as_u64())
            .unwrap_or(0)
    }

    /// Polls `/api/state` until `done` holds; returns that state.
    pub fn wait_state(&self, what: &str, done: impl Fn(&J) -> bool) -> J {
        poll(what, || {
            let st = self.state();
            if done(&st) {
                Ok(st)
            } else {
                Err(format!("{st:.300}"))
            }
        })
    }

    /// Waits until the server has taken in `n` datagrams, exactly; returns
    /// the state that counts them.
    pub fn wait_received(&self, n: usize) -> J {
        poll(&format!("{n} datagrams taken in"), || {
            let st = self.try_state().ok_or("no /api/state")?;
            let got = st["total_received"].as_u64().unwrap_or(0);
            assert!(got <= n as u64, "took in {got} datagrams, expected {n}");
            if got == n as u64 {
                Ok(st)
            } else {
                Err(format!("{got} taken in"))
            }
        })
    }

    /// Sends datagrams to the server's socket (see [`send_datagrams`]).
    pub fn send_all<D: AsRef<[u8]>>(&self, datagrams: impl IntoIterator<Item = D>) {
        send_datagrams(&self.sock, datagrams)
    }

    /// SIGTERM by pid; waits for the server to exit by itself.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Ok(Some(st)) = self.child.try_wait() {
            return st;
        }
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        wait_exit(&mut self.child, "serve after SIGTERM")
    }

    /// Kills the server by pid and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

// Datagrams of a busy daemon process, for `/metrics` tests and benchmarks.

fn text(v: &str) -> wire::Value {
    wire::Value::Bytes(v.as_bytes().to_vec())
}

/// A REQUEST datagram of `pid` (host `web1`, group `g<pid % 4>`): 80
/// requests (70 × 2xx, 5 × 3xx, 4 × 4xx, 1 × 5xx), all five phase
/// histograms filled, 8 threads 40 % busy.
pub fn tick(pid: u32, seq: u32) -> Vec<u8> {
    let group = format!("g{}", pid % 4);
    let mut buckets = vec![0i32; wire::histogram::BUCKETS];
    for (i, b) in buckets.iter_mut().enumerate().take(40) {
        *b = (i % 5) as i32;
    }
    let mut f = vec![
        (wire::id::HOSTNAME, text("web1")),
        (wire::id::PROCESS_GROUP, text(&group)),
        (wire::id::SAMPLE_PERIOD, wire::Value::F64(1.0)),
        (wire::id::REQUEST_COUNT, wire::Value::U64(80)),
        (wire::id::CAPACITY_UTILIZATION, wire::Value::F64(0.4)),
        (wire::id::CPU_USER_UTILIZATION, wire::Value::F64(0.2)),
        (wire::id::CPU_SYSTEM_UTILIZATION, wire::Value::F64(0.05)),
        (wire::id::MEMORY_RSS, wire::Value::U64(80 << 20)),
        (wire::id::REQUEST_THREADS_MAXIMUM, wire::Value::U64(8)),
        (wire::id::INPUT_BYTES_TOTAL, wire::Value::U64(4096)),
        (wire::id::OUTPUT_BYTES_TOTAL, wire::Value::U64(65536)),
    ];
    for fid in [
        wire::id::SERVER_TIME,
        wire::id::QUEUE_TIME,
        wire::id::DAEMON_TIME,
        wire::id::APPLICATION_TIME,
        wire::id::REQUEST_TIME,
    ] {
        f.push((fid, wire::Value::F64(0.01)));
        f.push((fid + 30, wire::Value::I32Array(buckets.clone())));
    }
    for (k, n) in [0, 70, 5, 4, 1].into_iter().enumerate() {
        f.push((wire::id::STATUS_1XX_TOTAL + k as u16, wire::Value::U64(n)));
    }
    wire::Sample {
        header: wire::Header::new(wire::Kind::REQUEST, pid, seq, 1000.0 + f64::from(seq)),
        fields: f,
    }
    .encode()
    .unwrap()
}

/// PROCESS_STARTED, five [`tick`]s and a GC snapshot of `pid`.
pub fn datagrams(pid: u32) -> Vec<Vec<u8>> {
    let group = format!("g{}", pid % 4);
    let started = wire::Sample {
        header: wire::Header::new(wire::Kind::PROCESS_STARTED, pid, 1, 1000.0),
        fields: vec![
            (wire::id::HOSTNAME, text("web1")),
            (wire::id::PROCESS_GROUP, text(&group)),
        ],
    };
    let mut out = vec![started.encode().unwrap()];
    for seq in 2..7 {
        out.push(tick(pid, seq));
    }
    let gc = wire::Sample {
        header: wire::Header::new(wire::Kind::GC_SNAPSHOT, pid, 7, 1007.0),
        fields: (0..18)
            .map(|k| (wire::id::GC_COUNT0 + k, wire::Value::U64(9)))
            .collect(),
    };
    out.push(gc.encode().unwrap());
    out
}
