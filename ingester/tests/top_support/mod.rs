//! Helpers of the `top_*` integration tests: corpus facts, `top` itself and
//! a tmux pseudo-terminal, on top of the crate's harness ([`common`], with
//! the test kit: `serve` ours and the reference's, `replay`). Every process
//! started here is stopped by pid (or its tmux server) on drop.

#![allow(dead_code)]

#[path = "../common/mod.rs"]
pub mod common;

pub use common::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    for r in corpus_records() {
        let s = wire::decode(&r).unwrap();
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

/// Replays the first `count` corpus datagrams to `sock` (losslessly) and
/// waits for replay to finish.
pub fn replay(sock: &Path, count: usize, extra: &[&str]) {
    let count = count.to_string();
    let mut args = vec!["--count", &count];
    args.extend_from_slice(extra);
    replay_corpus(sock, &args);
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

/// `top --url <s> <extra>` in a 120 × 40 [`Tmux`], once it shows `[live]`.
pub fn top_tui(s: &Serve, extra: &str) -> Tmux {
    let cmd = format!("{} top --url {} {extra}", bin(), s.url());
    let tmux = Tmux::start(&["sh", "-c", &cmd], 120, 40);
    tmux.wait_for("top running", Duration::from_secs(30), |x| {
        x.contains("[live]")
    });
    tmux
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
    send_datagrams(sock, &corpus_records()[from..to]);
}

/// `serve`'s queue of the per-datagram stream, per subscriber (messages,
/// `cmd/serve.rs`): a subscriber that falls further behind misses the
/// oldest (as with the reference).
pub const SERVE_WS_QUEUE: usize = 1024;

/// How many datagrams [`feed_top`] lets `serve` hold for `top` at once:
/// half the queue, so a subscriber that takes them slowly misses none.
const FEED_CHUNK: usize = SERVE_WS_QUEUE / 2;

/// `rcvd=N` of top's footer: the messages it has taken in (its snapshot
/// counts one).
pub fn top_received(screen: &str) -> Option<u64> {
    screen
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rcvd=")?.parse().ok())
}

/// Sends corpus datagrams `from..to` (capture order, unchanged) to `sock`
/// while `top` watches it in `tmux`, at the pace top takes them in: a
/// chunk, then a wait until top's footer counts it. `serve`'s per-datagram
/// stream drops what a subscriber falls more than its queue behind (as the
/// reference does), and a debug `top` on a loaded machine falls that far
/// behind a replay at full speed: it then never shows some processes.
/// Each datagram of the capture is one message to top.
pub fn feed_top(tmux: &Tmux, sock: &Path, from: usize, to: usize) {
    let base = top_received(
        &tmux.wait_for("top's footer", Duration::from_secs(30), |x| {
            top_received(x).is_some()
        }),
    )
    .unwrap();
    let records = corpus_records();
    let mut sent = from;
    while sent < to {
        let end = (sent + FEED_CHUNK).min(to);
        send_datagrams(sock, &records[sent..end]);
        let want = base + (end - from) as u64;
        tmux.wait_for(
            &format!("top to count {want} messages"),
            Duration::from_secs(30),
            |x| top_received(x).is_some_and(|n| n >= want),
        );
        sent = end;
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
