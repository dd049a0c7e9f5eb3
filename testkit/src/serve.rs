//! A running ingester, ours or the reference's: `serve` with its datagram
//! socket and its HTTP API on a free 127.0.0.1 port, stopped by its pid
//! when dropped. Our binary is the caller's to name (the ingester's tests
//! have Cargo's path of it, the httpd tests build it), so this crate
//! depends on no ingester code.

use serde_json::Value as J;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::{
    free_port, http, last_lines, poll, poll_progress, read_lossy, signal, wait_exit, wait_until,
};

/// `/api/state` asking for everything: as much as the server's
/// `--snapshot-budget` allows (all of it with `--snapshot-budget 0`).
const WHOLE_STATE: &str = "/api/state?budget=0";

/// A running `serve`; killed by pid and reaped on drop.
pub struct Serve {
    /// The process.
    pub child: Child,
    /// Its HTTP port (UI, API, WebSocket).
    pub port: u16,
    /// Its datagram socket.
    pub sock: PathBuf,
    /// The temporary directory holding the socket, when it owns one.
    _dir: Option<tempfile::TempDir>,
    /// The file its stderr goes to, when it has one: its tail is shown when
    /// a wait on it times out.
    log: Option<PathBuf>,
}

/// The `--listen` / `--socket` spelling of a socket path.
pub fn listen(p: &Path) -> String {
    format!("unix:{}", p.display())
}

impl Serve {
    /// `bin serve` with `extra` options (`--log-level warn` unless given),
    /// its socket in a new temporary directory, HTTP on a free port.
    pub fn start(bin: impl AsRef<Path>, extra: &[&str]) -> Serve {
        Serve::start_at(bin, tempfile::tempdir().unwrap(), free_port(), extra)
    }

    /// As [`Serve::start`], in `dir` and on `port`.
    pub fn start_at(
        bin: impl AsRef<Path>,
        dir: tempfile::TempDir,
        port: u16,
        extra: &[&str],
    ) -> Serve {
        Serve::start_logging(bin, dir, port, extra, Stdio::inherit())
    }

    /// As [`Serve::start_at`], its stderr (the log) going to `stderr`.
    pub fn start_logging(
        bin: impl AsRef<Path>,
        dir: tempfile::TempDir,
        port: u16,
        extra: &[&str],
        stderr: Stdio,
    ) -> Serve {
        let sock = dir.path().join("t.sock");
        let mut cmd = Command::new(bin.as_ref());
        cmd.arg("serve")
            .args(["--listen", &listen(&sock)])
            .args(["--http-port", &port.to_string()]);
        if !extra.contains(&"--log-level") {
            cmd.args(["--log-level", "warn"]);
        }
        cmd.args(extra).stderr(stderr);
        Serve::spawn(cmd, dir, port, sock, "serve")
    }

    /// The reference's `serve` (see [`crate::reference_exe`]).
    pub fn reference() -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("r.sock");
        let port = free_port();
        let mut cmd = Command::new(crate::reference_exe());
        cmd.arg("serve")
            .args(["--listen", &listen(&sock)])
            .args(["--http-port", &port.to_string(), "--log-level", "WARNING"])
            .stderr(Stdio::null());
        Serve::spawn(cmd, dir, port, sock, "reference serve")
    }

    /// Spawns `cmd` (a `serve` listening on `sock` and `port`) and waits
    /// until it has bound its socket and accepts HTTP connections; fails at
    /// once if it exits first.
    pub fn spawn(
        cmd: Command,
        dir: tempfile::TempDir,
        port: u16,
        sock: PathBuf,
        what: &str,
    ) -> Serve {
        Serve::spawn_inner(cmd, Some(dir), port, sock, None, what)
    }

    /// `bin serve` (ours or the reference's) on a socket the caller placed
    /// (a test's server root), with HTTP on 127.0.0.1 and a free port, in a
    /// process group of its own, its stderr in `<socket>.ingester.log`.
    /// Waits until `/api/state` answers, then opens the socket to every
    /// user (Apache children run as another user).
    pub fn at_socket(bin: impl AsRef<Path>, socket: &Path, extra: &[&str]) -> Serve {
        let port = free_port();
        let log = socket.with_extension("ingester.log");
        let stderr = std::fs::File::create(&log).expect("ingester log file");
        let mut cmd = Command::new(bin.as_ref());
        cmd.arg("serve")
            .args(["--listen", &listen(socket)])
            .args(["--http-host", "127.0.0.1", "--http-port", &port.to_string()])
            .args(extra)
            .process_group(0)
            .stderr(stderr);
        let s = Serve::spawn_inner(cmd, None, port, socket.to_path_buf(), Some(log), "ingester");
        poll("the ingester's /api/state", || {
            s.try_state().ok_or_else(|| s.log_tail(20))
        });
        let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666));
        s
    }

    fn spawn_inner(
        mut cmd: Command,
        dir: Option<tempfile::TempDir>,
        port: u16,
        sock: PathBuf,
        log: Option<PathBuf>,
        what: &str,
    ) -> Serve {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what} ({:?}): {e}", cmd.get_program()));
        let mut s = Serve {
            child,
            port,
            sock,
            _dir: dir,
            log,
        };
        wait_until(&format!("{what} to listen"), || {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("{what} exited early: {st}\n{}", s.log_tail(40));
            }
            s.sock.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        s
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` lines of its log, when its stderr goes to a file.
    pub fn log_tail(&self, n: usize) -> String {
        match &self.log {
            Some(p) => format!(
                "--- {} (last {n} lines):\n{}",
                p.display(),
                last_lines(&read_lossy(p), n)
            ),
            None => String::new(),
        }
    }

    /// WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// The UI page's URL.
    pub fn page_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
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

    /// The whole `/api/state` (`?budget=0`: everything up to the server's
    /// `--snapshot-budget`, so a test whose state is bigger than that, 3.5 MB
    /// by default, starts `serve` with `--snapshot-budget 0`; the counters
    /// are whole either way; the reference ignores the parameter), or `None`
    /// while it cannot be had (not listening, not 200, not JSON).
    pub fn try_state(&self) -> Option<J> {
        let (status, _, body) = crate::http_get(self.port, WHOLE_STATE, "")?;
        if status != 200 {
            return None;
        }
        serde_json::from_slice(&body).ok()
    }

    /// The whole `/api/state` (must be 200 and JSON).
    pub fn state(&self) -> J {
        self.api_state("?budget=0")
    }

    /// `/api/state` with a query string (e.g. `?budget=…`; must be 200 and
    /// JSON).
    pub fn api_state(&self, query: &str) -> J {
        let (status, body) = self.get(&format!("/api/state{query}"));
        assert_eq!(status, 200, "/api/state{query}: {body:.300}");
        serde_json::from_str(&body).expect("/api/state is JSON")
    }

    /// `total_received` of `/api/state` (0 while unavailable).
    pub fn total_received(&self) -> u64 {
        self.try_state()
            .and_then(|v| v["total_received"].as_u64())
            .unwrap_or(0)
    }

    /// Polls `/api/state` until `done` holds; returns that state. On a
    /// timeout it shows the last state's counters and processes
    /// ([`state_summary`]) and the tail of the log.
    pub fn wait_state(&self, what: &str, done: impl Fn(&J) -> bool) -> J {
        poll(what, || match self.try_state() {
            Some(st) if done(&st) => Ok(st),
            Some(st) => Err(format!("{}\n{}", state_summary(&st), self.log_tail(40))),
            None => Err(format!("no /api/state\n{}", self.log_tail(40))),
        })
    }

    /// Waits until the server has taken in `n` datagrams, exactly; returns
    /// the state that counts them.
    pub fn wait_received(&self, n: usize) -> J {
        // A long replay into a debug build on a loaded machine can take
        // more than PATIENCE to work through: fail only when it stalls.
        poll_progress(&format!("{n} datagrams taken in"), || {
            let st = self.try_state().ok_or((0, "no /api/state".to_string()))?;
            let got = st["total_received"].as_u64().unwrap_or(0);
            assert!(got <= n as u64, "took in {got} datagrams, expected {n}");
            if got == n as u64 {
                Ok(st)
            } else {
                Err((got, format!("{got} taken in")))
            }
        })
    }

    /// Sends datagrams to the server's socket (see [`send_datagrams`]).
    pub fn send_all<D: AsRef<[u8]>>(&self, datagrams: impl IntoIterator<Item = D>) {
        send_datagrams(&self.sock, datagrams)
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the server.
    pub fn freeze(&self, on: bool) {
        signal(self.pid(), if on { libc::SIGSTOP } else { libc::SIGCONT });
    }

    /// SIGTERM by pid; waits for the server to exit by itself.
    pub fn terminate(&mut self) -> ExitStatus {
        if let Ok(Some(st)) = self.child.try_wait() {
            return st;
        }
        signal(self.pid(), libc::SIGTERM);
        wait_exit(&mut self.child, "serve after SIGTERM")
    }

    /// Kills the server by pid (resuming it first, were it stopped) and
    /// reaps it.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.pid(), libc::SIGCONT);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends datagrams to a socket, blocking while its queue is full (lossless).
pub fn send_datagrams<D: AsRef<[u8]>>(sock: &Path, datagrams: impl IntoIterator<Item = D>) {
    let tx = UnixDatagram::unbound().unwrap();
    for d in datagrams {
        tx.send_to(d.as_ref(), sock)
            .unwrap_or_else(|e| panic!("send to {}: {e}", sock.display()));
    }
}

/// A sample's field 19 (`reporter_dropped_datagrams`; `id19` to an
/// ingester that does not know the name) from its JSON `fields`.
pub fn drop_counter(fields: &J) -> Option<u64> {
    fields["reporter_dropped_datagrams"]
        .as_u64()
        .or_else(|| fields["id19"].as_u64())
}

/// The samples of every process of an `/api/state` or WebSocket snapshot,
/// counted (panics when it has no process list or a process no samples).
pub fn sample_count(st: &J) -> usize {
    st["processes"]
        .as_array()
        .expect("a process list")
        .iter()
        .map(|p| p["samples"].as_array().expect("a sample list").len())
        .sum()
}

/// Counters of an `/api/state` and, per process, its samples and the
/// newest one's request count, drop counter (field 19) and seq: what a
/// timed-out wait shows.
pub fn state_summary(st: &J) -> String {
    let mut out = format!(
        "total_received {}, decode_errors {}, seq_gaps {}, receive_pauses {}",
        st["total_received"], st["decode_errors"], st["seq_gaps"], st["receive_pauses"]
    );
    for p in st["processes"].as_array().into_iter().flatten() {
        let samples = p["samples"].as_array().map_or(0, Vec::len);
        let newest = p["samples"].as_array().and_then(|v| v.last());
        let f = newest.map(|n| &n["fields"]);
        out.push_str(&format!(
            "\n  pid {}: {samples} samples, newest seq {} request_count {} dropped {}",
            p["pid"],
            newest.map_or(J::Null, |n| n["seq"].clone()),
            f.map_or(J::Null, |f| f["request_count"].clone()),
            f.and_then(drop_counter)
                .map_or("none".into(), |d| d.to_string()),
        ));
    }
    out
}
