//! The implementations under test: our `serve` or the reference's on the
//! server core, or a bare receive loop (the machine's floor), and the
//! counters read from their `/api/state`.

use crate::http::http_get;
use crate::opts::RT;
use crate::system::{cpu_ticks, pin_self, sched_of, schedstat, set_fifo, status_str, Sched};
use crate::SERVER_CPU;
use anyhow::{bail, Context, Result};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- server

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Impl {
    Ours,
    /// Ours with `--state-dir` (the history written to disk).
    OursStateDir,
    Reference,
    /// A bare `recv` loop on the server core: the noise floor of the machine.
    Floor,
}

impl Impl {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::OursStateDir => "ours+state-dir",
            Impl::Reference => "reference",
            Impl::Floor => "bare-recv",
        }
    }
}

/// A running `serve`, killed (by pid) when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) sock: PathBuf,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Server {
    /// Starts `bin serve` (as `imp`) pinned to the server core; `rt`:
    /// SCHED_FIFO 1; `OursStateDir`: with `--state-dir` in its temporary
    /// directory. Ours takes stamps of any future: the feed moves the
    /// corpus's stamps on by its span at every pass, past the clock in a
    /// long run, and history refusing them would not be the history's cost.
    pub(crate) fn start(bin: &Path, rt: bool, imp: Impl) -> Result<Server> {
        let state_dir = imp == Impl::OursStateDir;
        let dir = tempfile::Builder::new().prefix("bench-ingest-").tempdir()?;
        let sock = dir.path().join("telemetry.sock");
        let port = testkit::free_port();
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(["--http-port", &port.to_string(), "--socket-mode", "0666"])
            .args(if imp == Impl::Reference {
                &[][..]
            } else {
                &["--history-max-ahead", "315360000"][..]
            })
            .args(if state_dir {
                vec![
                    "--state-dir".into(),
                    dir.path().join("state").into_os_string(),
                ]
            } else {
                Vec::new()
            })
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: SERVER_CPU is below CPU_SETSIZE, `set` a valid local.
        unsafe { libc::CPU_SET(SERVER_CPU, &mut set) };
        // SAFETY: only async-signal-safe syscalls run in the child.
        unsafe {
            cmd.pre_exec(move || {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if rt {
                    let p = libc::sched_param { sched_priority: 1 };
                    if libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut srv = Server {
            pid: child.id(),
            child,
            sock,
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = srv.child.try_wait()? {
                bail!("server exited with {st} during start-up:\n{}", srv.log());
            }
            if srv.sock.exists() {
                if let Ok(r) = http_get(port, "/api/state?budget=1", 1 << 20) {
                    if r.status == 200 {
                        break;
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("server not ready after 30 s:\n{}", srv.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        progress!(
            "started {} (pid {}, Cpus_allowed_list {}, policy {}, port {})",
            bin.display(),
            srv.pid,
            status_str(srv.pid, "Cpus_allowed_list:"),
            // SAFETY: plain query.
            match unsafe { libc::sched_getscheduler(srv.pid as libc::pid_t) } {
                libc::SCHED_FIFO => "SCHED_FIFO",
                libc::SCHED_OTHER => "SCHED_OTHER",
                _ => "other",
            },
            port
        );
        Ok(srv)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn cpu(&self) -> u64 {
        cpu_ticks(self.pid)
    }

    /// Waits until the server has used at most one clock tick over 150 ms
    /// (it has drained its queues), at most `max`.
    pub(crate) fn wait_idle(&self, max: Duration) {
        let end = Instant::now() + max;
        let mut last = self.cpu();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let c = self.cpu();
            if c <= last + 1 || Instant::now() > end {
                return;
            }
            last = c;
        }
    }

    /// Counters from a cheap `/api/state` (ours honours `?budget=1`; the
    /// reference ignores the query and answers with everything).
    pub(crate) fn counters(&self) -> Result<Counters> {
        let r = http_get(self.port, "/api/state?budget=1", 256 << 20)?;
        if r.status != 200 {
            bail!("/api/state answered {}", r.status);
        }
        Ok(Counters::parse(&r.tail))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        testkit::signal(self.pid, libc::SIGTERM);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare receiver thread pinned to the server core: `recv` and count,
/// nothing else. What any ingester could at best do on this machine.
pub(crate) struct Floor {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) received: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) tid: Arc<std::sync::atomic::AtomicI32>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) handle: Option<std::thread::JoinHandle<()>>,
}

impl Floor {
    pub(crate) fn start() -> Result<Floor> {
        let dir = tempfile::Builder::new().prefix("bench-ingest-").tempdir()?;
        let sock = UnixDatagram::bind(dir.path().join("telemetry.sock"))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, t, st) = (received.clone(), tid.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("bare-recv".into())
            .spawn(move || {
                pin_self(SERVER_CPU);
                if RT.load(Ordering::Relaxed) {
                    set_fifo();
                }
                // SAFETY: gettid has no preconditions.
                t.store(unsafe { libc::gettid() }, Ordering::SeqCst);
                let mut buf = vec![0u8; wire::RECV_BUFFER];
                while !st.load(Ordering::Relaxed) {
                    if sock.recv(&mut buf).is_ok() {
                        r.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })?;
        while tid.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Floor {
            dir,
            received,
            tid,
            stop,
            handle: Some(handle),
        })
    }
    pub(crate) fn task_dir(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/self/task/{}",
            self.tid.load(Ordering::SeqCst)
        ))
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What a ladder runs against.
pub(crate) enum Target {
    Server(Server),
    Floor(Floor),
}

impl Target {
    pub(crate) fn sock(&self) -> PathBuf {
        match self {
            Target::Server(s) => s.sock.clone(),
            Target::Floor(f) => f.dir.path().join("telemetry.sock"),
        }
    }
    pub(crate) fn cpu(&self) -> u64 {
        match self {
            Target::Server(s) => s.cpu(),
            Target::Floor(f) => {
                let st = std::fs::read_to_string(f.task_dir().join("stat")).unwrap_or_default();
                let rest = st.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
                let v: Vec<u64> = rest
                    .split_whitespace()
                    .map(|x| x.parse().unwrap_or(0))
                    .collect();
                v.get(11).copied().unwrap_or(0) + v.get(12).copied().unwrap_or(0)
            }
        }
    }
    pub(crate) fn sched(&self) -> Sched {
        match self {
            Target::Server(s) => sched_of(s.pid),
            Target::Floor(f) => {
                let (d, n) = schedstat(&f.task_dir());
                Sched {
                    all_ns: d,
                    recv_ns: d,
                    recv_slices: n,
                }
            }
        }
    }
    pub(crate) fn wait_idle(&self, max: Duration) {
        match self {
            Target::Server(s) => s.wait_idle(max),
            Target::Floor(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    pub(crate) fn counters(&self) -> Result<Counters> {
        match self {
            Target::Server(s) => s.counters(),
            Target::Floor(f) => Ok(Counters {
                total_received: f.received.load(Ordering::Relaxed),
                ..Counters::default()
            }),
        }
    }
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        match self {
            Target::Server(s) => {
                if !s.alive() {
                    bail!("server died:\n{}", s.log());
                }
                Ok(())
            }
            Target::Floor(_) => Ok(()),
        }
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct Counters {
    pub(crate) total_received: u64,
    pub(crate) queue_overflow: Option<u64>,
    pub(crate) seq_gaps: Option<u64>,
}

impl Counters {
    pub(crate) fn parse(tail: &[u8]) -> Counters {
        Counters {
            total_received: json_u64_last(tail, "total_received").unwrap_or(0),
            queue_overflow: json_u64_last(tail, "receive_pauses"),
            seq_gaps: json_u64_last(tail, "seq_gaps"),
        }
    }
}

/// The number after the last `"key":` in `hay`.
pub(crate) fn json_u64_last(hay: &[u8], key: &str) -> Option<u64> {
    let pat = format!("\"{key}\"");
    let pos = find_last(hay, pat.as_bytes())?;
    let rest = &hay[pos + pat.len()..];
    let rest = rest
        .iter()
        .skip_while(|&&b| b == b' ' || b == b':')
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect::<String>();
    rest.parse().ok()
}

pub(crate) fn find_last(hay: &[u8], pat: &[u8]) -> Option<usize> {
    if pat.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - pat.len())
        .rev()
        .find(|&i| &hay[i..i + pat.len()] == pat)
}

pub(crate) fn count(hay: &[u8], pat: &[u8]) -> u64 {
    let first = pat[0];
    let mut n = 0;
    let mut i = 0;
    while i + pat.len() <= hay.len() {
        if hay[i] == first && &hay[i..i + pat.len()] == pat {
            n += 1;
            i += pat.len();
        } else {
            i += 1;
        }
    }
    n
}
