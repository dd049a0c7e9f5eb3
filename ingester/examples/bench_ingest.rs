//! Ingest benchmark: our `serve` against the reference ingester
//! (mod_wsgi-telemetry 1.1.0, Python) on the same machine in the same run.
//!
//!     cargo build --release
//!     bash scripts/ref-venv.sh            # once; prints the venv path
//!     cargo run --release -p mod_wsgi-telemetry --example bench_ingest -- [--quick]
//!         [--skip-reference] [--ours PATH] [--reference PATH]
//!
//! Each implementation runs `serve` pinned to core 0 with its own socket (in
//! a temporary directory) and a free 127.0.0.1 port; this process (the
//! sender and the HTTP/WebSocket clients) pins itself to core 1.
//!
//! 1. Sustained zero-loss rate. The corpus (`tests/fixtures/corpus/anchor-6.1.1-mixed.bin`,
//!    22 real processes) is rewritten to stand for 50, 200 and 1,000
//!    processes: every datagram of an original pid goes to the next of that
//!    pid's synthetic pids (round-robin), each synthetic pid keeps its own
//!    increasing seq, and every loop over the capture shifts the header
//!    stamps by the capture's span. Field 8 (`interpreter_name`) is dropped
//!    from GC datagrams for both implementations (the reference crashes on
//!    it). Sends are non-blocking (`MSG_DONTWAIT`), paced in small bursts
//!    every millisecond, for a few seconds per step on a rate ladder. Loss
//!    of a step = EAGAIN at the sender + (sent − delta of `total_received`).
//!    A lossy step is repeated once (the machine is shared); the ladder stops
//!    when the repeat loses too. CPU = utime+stime of the server (all
//!    threads) across the step, per 10,000 datagrams received.
//! 2. Fill: N processes × 600 REQUEST samples (blocking sends), then
//!    `GET /api/state` and the first WebSocket message are timed, with a
//!    1,000/s probe stream sent (non-blocking) meanwhile to show whether
//!    ingestion goes on. Peak RSS = VmHWM. Ours: 200 and 1,000 processes;
//!    reference: 200 only (1,000 × 600 would need more than 10 GB).
//!
//! Prints figures and ratios against the targets of issue 2; asserts nothing
//! about time. Everything started is killed by pid (Drop guards).

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use wire::Kind;

/// Process counts of the ladder.
const LADDER_PROCS: [usize; 3] = [50, 200, 1000];
/// Samples per process in the fill (the rolling window).
const WINDOW: usize = 600;
/// First synthetic pid of the ladder / fill.
const PID_BASE: u32 = 2_000_000;
/// Pid of the probe stream (no process state: a slow-request heartbeat).
const PROBE_PID: u32 = 3_999_999;
/// Rate of the probe stream during API/WS measurements.
const PROBE_RATE: u64 = 1000;
/// Datagrams a fill of ours keeps in flight at most (so the fill measures
/// the state at rest, not a 64 MB in-process queue still being applied).
const FILL_WINDOW: u64 = 40_000;
/// Server core and sender core.
const SERVER_CPU: usize = 0;
const SENDER_CPU: usize = 1;

// ---------------------------------------------------------------- options

struct Opts {
    quick: bool,
    pacings: Vec<Pacing>,
    skip_reference: bool,
    ours: PathBuf,
    reference: Option<PathBuf>,
    /// Run only one part: ladders (with saturation), saturation (no ladder
    /// steps) or fills.
    only: Option<Part>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    Ladders,
    Saturation,
    Fills,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        quick: false,
        pacings: vec![Pacing::Burst, Pacing::Even],
        skip_reference: false,
        ours: workspace_root().join("target/release/mod_wsgi-telemetry"),
        reference: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                SAT_SECS.store(0, Ordering::Relaxed);
            }
            "--skip-reference" => o.skip_reference = true,
            "--rt" => RT.store(true, Ordering::Relaxed),
            "--sat-secs" => SAT_SECS.store(
                it.next()
                    .and_then(|v| v.parse().ok())
                    .context("--sat-secs SECONDS")?,
                Ordering::Relaxed,
            ),
            "--pacing" => {
                o.pacings = match it.next().as_deref() {
                    Some("burst") => vec![Pacing::Burst],
                    Some("even") => vec![Pacing::Even],
                    Some("both") => vec![Pacing::Burst, Pacing::Even],
                    _ => bail!("--pacing burst|even|both"),
                }
            }
            "--only" => {
                o.only = Some(match it.next().as_deref() {
                    Some("ladders") => Part::Ladders,
                    Some("saturation") => Part::Saturation,
                    Some("fills") => Part::Fills,
                    _ => bail!("--only ladders|saturation|fills"),
                })
            }
            "--ours" => o.ours = it.next().context("--ours PATH")?.into(),
            "--reference" => o.reference = Some(it.next().context("--reference PATH")?.into()),
            "-h" | "--help" => {
                println!(
                    "bench_ingest [--quick] [--skip-reference] [--pacing burst|even|both] [--rt] [--ours PATH] [--reference PATH]\n\
                     [--only ladders|saturation|fills] (saturation: no ladder steps, only the\n\
                     saturation step of the last pacing) [--sat-secs N] (length of the saturation\n\
                     step; default 10 s, with --quick the ladder step's; give --sat-secs after --quick)\n\
                     ours defaults to target/release/mod_wsgi-telemetry (cargo build --release);\n\
                     the reference to $REF_VENV/bin/mod_wsgi-telemetry (default /tmp/refvenv,\n\
                     created with `bash scripts/ref-venv.sh` when missing)."
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other} (try --help)"),
        }
    }
    if !o.ours.is_file() {
        bail!(
            "{} not found: run `cargo build --release` first or pass --ours PATH",
            o.ours.display()
        );
    }
    if !o.skip_reference && o.reference.is_none() {
        let venv = std::env::var("REF_VENV").unwrap_or_else(|_| "/tmp/refvenv".into());
        let bin = Path::new(&venv).join("bin/mod_wsgi-telemetry");
        if bin.is_file() {
            o.reference = Some(bin);
        } else {
            eprintln!("reference venv missing: running scripts/ref-venv.sh");
            let out = Command::new("bash")
                .arg(workspace_root().join("scripts/ref-venv.sh"))
                .stderr(Stdio::inherit())
                .output()
                .context("running scripts/ref-venv.sh")?;
            let venv = String::from_utf8_lossy(&out.stdout).trim().to_string();
            o.reference = Some(Path::new(&venv).join("bin/mod_wsgi-telemetry"));
        }
    }
    if let Some(r) = &o.reference {
        if !r.is_file() {
            bail!(
                "reference {} not found (or pass --skip-reference)",
                r.display()
            );
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------- corpus

struct Tmpl {
    /// Index of the original pid (order of first appearance).
    orig: usize,
    kind: u8,
    bytes: Vec<u8>,
    stamp: f64,
}

struct Corpus {
    all: Vec<Tmpl>,
    n_orig: usize,
    /// Stamp shift per loop over the capture.
    span: f64,
    field8_dropped: usize,
}

fn load_corpus() -> Result<Corpus> {
    let dir = std::env::var_os("TELEMETRY_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tests/fixtures/corpus"));
    let path = dir.join("anchor-6.1.1-mixed.bin");
    let bin = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut pids: Vec<u32> = Vec::new();
    let mut all = Vec::new();
    let mut dropped = 0;
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for rec in wire::capture::records(&bin) {
        let d = rec.map_err(|off| anyhow!("bad capture record at {off}"))?;
        let mut s = wire::decode(d).map_err(|e| anyhow!("corpus datagram: {e}"))?;
        let orig = match pids.iter().position(|&p| p == s.header.pid) {
            Some(i) => i,
            None => {
                pids.push(s.header.pid);
                pids.len() - 1
            }
        };
        let is_gc = matches!(s.header.kind, Kind::GC_SNAPSHOT | Kind::GC_EVENT);
        let bytes = if is_gc && s.get(wire::id::INTERPRETER_NAME).is_some() {
            s.fields.retain(|(id, _)| *id != wire::id::INTERPRETER_NAME);
            dropped += 1;
            s.encode().map_err(|e| anyhow!("re-encode: {e}"))?
        } else {
            d.to_vec()
        };
        lo = lo.min(s.header.stamp);
        hi = hi.max(s.header.stamp);
        all.push(Tmpl {
            orig,
            kind: s.header.kind.0,
            bytes,
            stamp: s.header.stamp,
        });
    }
    Ok(Corpus {
        all,
        n_orig: pids.len(),
        span: (hi - lo).ceil() + 1.0,
        field8_dropped: dropped,
    })
}

fn patch_header(d: &mut [u8], pid: u32, seq: u32, stamp: f64) {
    d[8..12].copy_from_slice(&pid.to_le_bytes());
    d[12..16].copy_from_slice(&seq.to_le_bytes());
    d[16..24].copy_from_slice(&stamp.to_bits().to_le_bytes());
}

/// The corpus looped forever as `n` processes.
struct Feed<'a> {
    c: &'a Corpus,
    copies: Vec<Vec<u32>>,
    rr: Vec<usize>,
    seqs: Vec<u32>,
    idx: usize,
    pass: u64,
    buf: Vec<u8>,
}

impl<'a> Feed<'a> {
    fn new(c: &'a Corpus, n: usize) -> Feed<'a> {
        let copies = (0..c.n_orig)
            .map(|i| {
                let v: Vec<u32> = (0..n)
                    .filter(|j| j % c.n_orig == i)
                    .map(|j| j as u32)
                    .collect();
                if v.is_empty() {
                    vec![(i % n) as u32]
                } else {
                    v
                }
            })
            .collect();
        Feed {
            c,
            copies,
            rr: vec![0; c.n_orig],
            seqs: vec![0; n],
            idx: 0,
            pass: 0,
            buf: Vec::with_capacity(wire::MAX_DATAGRAM),
        }
    }

    fn next(&mut self) -> &[u8] {
        let t = &self.c.all[self.idx];
        let cs = &self.copies[t.orig];
        let j = cs[self.rr[t.orig] % cs.len()] as usize;
        self.rr[t.orig] += 1;
        self.seqs[j] += 1;
        self.buf.clear();
        self.buf.extend_from_slice(&t.bytes);
        let stamp = t.stamp + self.pass as f64 * self.c.span;
        patch_header(&mut self.buf, PID_BASE + j as u32, self.seqs[j], stamp);
        self.idx += 1;
        if self.idx == self.c.all.len() {
            self.idx = 0;
            self.pass += 1;
        }
        &self.buf
    }
}

// ---------------------------------------------------------------- system

fn pin_self(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; pid 0 = this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn clk_tck() -> f64 {
    // SAFETY: plain sysconf query.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime+stime (all threads) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after ")": state is field 3, utime 14, stime 15
    let g = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    g(11) + g(12)
}

/// A `/proc/PID/status` value in kB (VmRSS, VmHWM).
fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn status_str(pid: u32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

/// Run-queue wait (ns) and timeslices from `/proc/<task>/schedstat`.
fn schedstat(task_dir: &Path) -> (u64, u64) {
    let s = std::fs::read_to_string(task_dir.join("schedstat")).unwrap_or_default();
    let f: Vec<u64> = s
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    (
        f.get(1).copied().unwrap_or(0),
        f.get(2).copied().unwrap_or(0),
    )
}

/// Run-queue wait of a process: (all threads ns, receive thread ns,
/// receive thread timeslices). The receive thread is `telemetry-recv`
/// (ours) or the main thread (the reference).
#[derive(Default, Clone, Copy)]
struct Sched {
    all_ns: u64,
    recv_ns: u64,
    recv_slices: u64,
}

fn sched_of(pid: u32) -> Sched {
    let mut r = Sched::default();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return r;
    };
    let (mut named, mut main) = (None, None);
    for e in rd.flatten() {
        let dir = e.path();
        let (d, n) = schedstat(&dir);
        r.all_ns += d;
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == "telemetry-recv" {
            named = Some((d, n));
        }
        if e.file_name().to_string_lossy() == pid.to_string() {
            main = Some((d, n));
        }
    }
    if let Some((d, n)) = named.or(main) {
        r.recv_ns = d;
        r.recv_slices = n;
    }
    r
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `--rt`: servers, the bare receiver and the sender run SCHED_FIFO 1.
static RT: AtomicBool = AtomicBool::new(false);
/// Length of the saturation step in seconds (0: the ladder's step length,
/// what `--quick` uses). Ten by default: a sustained rate is a steady
/// state, and the reference drains its first second faster than the rest
/// (its per-second figures show it), so a short step flatters it.
static SAT_SECS: AtomicU64 = AtomicU64::new(10);

/// How long the saturation step lasts, given the ladder's step length.
fn saturation_step(ladder_step: Duration) -> Duration {
    match SAT_SECS.load(Ordering::Relaxed) {
        0 => ladder_step,
        s => Duration::from_secs(s),
    }
}

/// SCHED_FIFO priority 1 for the calling thread (threads it creates later
/// inherit it).
fn set_fifo() -> bool {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain syscall on the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0 }
}

/// Back to SCHED_OTHER for the calling thread.
fn set_other() {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &p) };
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

macro_rules! progress {
    ($($t:tt)*) => {{
        let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
        eprintln!("[{:7.1}s] {}", t, format!($($t)*));
    }};
}

// ---------------------------------------------------------------- server

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    Ours,
    Reference,
    /// A bare `recv` loop on the server core: the noise floor of the machine.
    Floor,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Reference => "reference",
            Impl::Floor => "bare-recv",
        }
    }
}

/// A running `serve`, killed (by pid) when dropped.
struct Server {
    child: Child,
    pid: u32,
    sock: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `bin serve` pinned to the server core; `rt`: SCHED_FIFO 1.
    fn start(bin: &Path, rt: bool) -> Result<Server> {
        let dir = tempfile::Builder::new().prefix("bench-ingest-").tempdir()?;
        let sock = dir.path().join("telemetry.sock");
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(["--http-port", &port.to_string(), "--socket-mode", "0666"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: only an async-signal-safe syscall runs in the child.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(SERVER_CPU, &mut set) };
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn cpu(&self) -> u64 {
        cpu_ticks(self.pid)
    }

    /// Waits until the server has used at most one clock tick over 150 ms
    /// (it has drained its queues), at most `max`.
    fn wait_idle(&self, max: Duration) {
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
    fn counters(&self) -> Result<Counters> {
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
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
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
struct Floor {
    dir: tempfile::TempDir,
    received: Arc<std::sync::atomic::AtomicU64>,
    tid: Arc<std::sync::atomic::AtomicI32>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Floor {
    fn start() -> Result<Floor> {
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
    fn task_dir(&self) -> PathBuf {
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
enum Target {
    Server(Server),
    Floor(Floor),
}

impl Target {
    fn sock(&self) -> PathBuf {
        match self {
            Target::Server(s) => s.sock.clone(),
            Target::Floor(f) => f.dir.path().join("telemetry.sock"),
        }
    }
    fn cpu(&self) -> u64 {
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
    fn sched(&self) -> Sched {
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
    fn wait_idle(&self, max: Duration) {
        match self {
            Target::Server(s) => s.wait_idle(max),
            Target::Floor(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    fn counters(&self) -> Result<Counters> {
        match self {
            Target::Server(s) => s.counters(),
            Target::Floor(f) => Ok(Counters {
                total_received: f.received.load(Ordering::Relaxed),
                ..Counters::default()
            }),
        }
    }
    fn check_alive(&mut self) -> Result<()> {
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
struct Counters {
    total_received: u64,
    queue_overflow: Option<u64>,
    seq_gaps: Option<u64>,
}

impl Counters {
    fn parse(tail: &[u8]) -> Counters {
        Counters {
            total_received: json_u64_last(tail, "total_received").unwrap_or(0),
            queue_overflow: json_u64_last(tail, "receive_pauses"),
            seq_gaps: json_u64_last(tail, "seq_gaps"),
        }
    }
}

/// The number after the last `"key":` in `hay`.
fn json_u64_last(hay: &[u8], key: &str) -> Option<u64> {
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

fn find_last(hay: &[u8], pat: &[u8]) -> Option<usize> {
    if pat.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - pat.len())
        .rev()
        .find(|&i| &hay[i..i + pat.len()] == pat)
}

fn count(hay: &[u8], pat: &[u8]) -> u64 {
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

// ---------------------------------------------------------------- HTTP

struct HttpResult {
    status: u16,
    ttfb: Duration,
    total: Duration,
    body_bytes: u64,
    /// The whole body when it was at most `keep` bytes.
    body: Option<Vec<u8>>,
    /// The last 4 KiB of the body.
    tail: Vec<u8>,
}

/// `GET path` over HTTP/1.0 (no chunking; the server closes at the end).
/// The body is counted while it streams; kept only when <= `keep` bytes.
fn http_get(port: u16, path: &str, keep: usize) -> Result<HttpResult> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut ttfb = None;
    let mut body: Option<Vec<u8>> = Some(Vec::new());
    let mut body_bytes = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    let mut in_body = false;
    let mut on_body = |chunk: &[u8], body: &mut Option<Vec<u8>>, tail: &mut Vec<u8>| {
        body_bytes += chunk.len() as u64;
        if let Some(b) = body.as_mut() {
            if b.len() + chunk.len() <= keep {
                b.extend_from_slice(chunk);
            } else {
                *body = None;
            }
        }
        tail.extend_from_slice(chunk);
        if tail.len() > 8192 {
            tail.drain(..tail.len() - 4096);
        }
    };
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if ttfb.is_none() {
            ttfb = Some(t0.elapsed());
        }
        if in_body {
            on_body(&buf[..n], &mut body, &mut tail);
        } else {
            head.extend_from_slice(&buf[..n]);
            if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = head.split_off(p + 4);
                in_body = true;
                on_body(&rest, &mut body, &mut tail);
            }
        }
    }
    let total = t0.elapsed();
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(HttpResult {
        status,
        ttfb: ttfb.unwrap_or(total),
        total,
        body_bytes,
        body,
        tail,
    })
}

// ---------------------------------------------------------------- sending

struct Sender {
    sock: UnixDatagram,
}

impl Sender {
    fn connect(path: &Path) -> Result<Sender> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        sock.set_write_timeout(Some(Duration::from_secs(60)))?;
        Ok(Sender { sock })
    }

    /// Ok(true) sent, Ok(false) refused (EAGAIN/ENOBUFS, non-blocking only).
    fn send(&self, d: &[u8], nonblocking: bool) -> Result<bool> {
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        loop {
            // SAFETY: valid fd and buffer.
            let n = unsafe {
                libc::send(
                    self.sock.as_raw_fd(),
                    d.as_ptr() as *const libc::c_void,
                    d.len(),
                    flags,
                )
            };
            if n >= 0 {
                return Ok(true);
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) if nonblocking => return Ok(false),
                _ => return Err(anyhow!("send: {e}")),
            }
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Sent {
    attempted: u64,
    ok: u64,
    refused: u64,
    secs: f64,
}

/// How a ladder step spaces its datagrams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pacing {
    /// `rate / 1000` datagrams back to back every millisecond (as issue 2's
    /// benchmark asks). With `net.unix.max_dgram_qlen` = 10, a burst of
    /// more than ~10 datagrams overflows the kernel queue before the
    /// receiver on the other core has even woken up, whatever it does.
    Burst,
    /// Each datagram at its own time (`i / rate`), so the receiver only has
    /// to keep up on average: what the ingester itself sustains.
    Even,
}

impl Pacing {
    fn name(self) -> &'static str {
        match self {
            Pacing::Burst => "1 ms bursts",
            Pacing::Even => "even",
        }
    }
}

/// Sends `rate` datagrams/s for `dur`. The sender spins on its own core
/// (no sleep overshoot, so bursts stay `rate / 1000` unless it is preempted).
fn paced(feed: &mut Feed, tx: &Sender, rate: u64, dur: Duration, pacing: Pacing) -> Result<Sent> {
    let mut r = Sent::default();
    let start = Instant::now();
    let tick = match pacing {
        Pacing::Burst => 0.001,
        Pacing::Even => 0.0,
    };
    let mut next_tick = 0.0f64;
    loop {
        let el = start.elapsed().as_secs_f64();
        if el >= dur.as_secs_f64() {
            break;
        }
        if el < next_tick {
            // Sleep when far ahead (a SCHED_FIFO spinner would be throttled),
            // spin for the last stretch.
            if next_tick - el > 150e-6 {
                std::thread::sleep(Duration::from_secs_f64(next_tick - el - 100e-6));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        next_tick = if tick > 0.0 {
            (el / tick).floor() * tick + tick
        } else {
            // the time the next datagram is due
            (rate as f64 * el).ceil() / rate as f64
        };
        let target = (rate as f64 * el).ceil() as u64;
        while r.attempted < target {
            r.attempted += 1;
            if tx.send(feed.next(), true)? {
                r.ok += 1;
            } else {
                r.refused += 1;
            }
        }
    }
    r.secs = start.elapsed().as_secs_f64();
    Ok(r)
}

/// A 1,000/s non-blocking stream of one slow-request heartbeat from a pid
/// without process state, run while an API/WS measurement is in progress.
struct Probe {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Sent>,
}

impl Probe {
    fn start(sock: &Path, template: &[u8]) -> Result<Probe> {
        let tx = Sender::connect(sock)?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let mut d = template.to_vec();
        let handle = std::thread::spawn(move || {
            let mut r = Sent::default();
            let start = Instant::now();
            let mut seq = 0u32;
            while !st.load(Ordering::Relaxed) {
                let target = (PROBE_RATE as f64 * start.elapsed().as_secs_f64()).ceil() as u64;
                while r.attempted < target {
                    seq += 1;
                    patch_header(&mut d, PROBE_PID, seq, epoch_now());
                    r.attempted += 1;
                    match tx.send(&d, true) {
                        Ok(true) => r.ok += 1,
                        _ => r.refused += 1,
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            r.secs = start.elapsed().as_secs_f64();
            r
        });
        Ok(Probe { stop, handle })
    }

    fn finish(self) -> Sent {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

// ---------------------------------------------------------------- ladder

#[derive(Clone, Copy)]
struct Step {
    rate: u64,
    sent: Sent,
    received: u64,
    cpu_s: f64,
    repeat: bool,
    /// Run-queue wait of all server threads during the sending, ms.
    wait_all_ms: f64,
    /// Run-queue wait of the receiving thread during the sending, ms.
    wait_recv_ms: f64,
    /// Times the receiving thread was scheduled during the sending.
    recv_slices: u64,
}

impl Step {
    fn loss(&self) -> u64 {
        self.sent.refused + self.sent.ok.saturating_sub(self.received)
    }
    fn achieved(&self) -> f64 {
        self.sent.attempted as f64 / self.sent.secs.max(1e-9)
    }
    fn cpu_per_10k(&self) -> f64 {
        if self.received == 0 {
            f64::NAN
        } else {
            self.cpu_s / self.received as f64 * 10_000.0
        }
    }
    /// The sender could not reach the nominal rate (its core is shared).
    fn sender_limited(&self) -> bool {
        self.achieved() < 0.95 * self.rate as f64
    }
}

struct Ladder {
    imp: Impl,
    pacing: Pacing,
    procs: usize,
    steps: Vec<Step>,
    /// The ladder ran to its top without loss.
    topped: bool,
    error: Option<String>,
    /// Run the saturation test after the ladder.
    saturate: bool,
    sat: Option<Sat>,
}

impl Ladder {
    /// The highest step without loss.
    fn best(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| s.loss() == 0)
            .max_by_key(|s| s.rate)
    }
    /// The step that ended the ladder (lost twice).
    fn first_lossy(&self) -> Option<&Step> {
        if self.topped {
            None
        } else {
            self.steps.last().filter(|s| s.loss() > 0)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_ladder(
    imp: Impl,
    pacing: Pacing,
    saturate: bool,
    bin: &Path,
    corpus: &Corpus,
    procs: usize,
    rates: &[u64],
    step: Duration,
) -> Ladder {
    let mut lad = Ladder {
        imp,
        pacing,
        procs,
        steps: Vec::new(),
        topped: false,
        error: None,
        saturate,
        sat: None,
    };
    if let Err(e) = ladder_inner(&mut lad, bin, corpus, rates, step) {
        progress!("{} {} processes: ladder aborted: {e:#}", imp.name(), procs);
        lad.error = Some(format!("{e:#}"));
    }
    lad
}

fn ladder_inner(
    lad: &mut Ladder,
    bin: &Path,
    corpus: &Corpus,
    rates: &[u64],
    step: Duration,
) -> Result<()> {
    let mut srv = match lad.imp {
        Impl::Floor => Target::Floor(Floor::start()?),
        _ => Target::Server(Server::start(bin, RT.load(Ordering::Relaxed))?),
    };
    let tx = Sender::connect(&srv.sock())?;
    let mut feed = Feed::new(corpus, lad.procs);
    // Warm-up (not counted): creates the processes.
    let w = paced(
        &mut feed,
        &tx,
        1000,
        Duration::from_millis(700),
        Pacing::Even,
    )?;
    srv.wait_idle(Duration::from_secs(10));
    let mut base = srv.counters()?.total_received;
    progress!(
        "{} ({}) {} processes: warm-up {} datagrams, {} refused, received {}",
        lad.imp.name(),
        lad.pacing.name(),
        lad.procs,
        w.attempted,
        w.refused,
        base
    );
    let mut i = 0;
    let mut repeated = false;
    while i < rates.len() {
        let rate = rates[i];
        let cpu0 = srv.cpu();
        let sched0 = srv.sched();
        let sent = paced(&mut feed, &tx, rate, step, lad.pacing)?;
        let sched1 = srv.sched();
        srv.wait_idle(Duration::from_secs(20));
        let mut cpu1 = srv.cpu();
        let mut c1 = srv.counters()?;
        let mut total = c1.total_received;
        // A server descheduled by other load may still be working: re-read
        // until stable before calling a shortfall a loss.
        for _ in 0..3 {
            if total - base >= sent.ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            srv.wait_idle(Duration::from_secs(10));
            let c = srv.cpu();
            let c2 = srv.counters()?;
            if c2.total_received == total {
                break;
            }
            cpu1 = c;
            total = c2.total_received;
            c1 = c2;
        }
        srv.check_alive()?;
        let st = Step {
            rate,
            sent,
            received: total - base,
            cpu_s: (cpu1 - cpu0) as f64 / clk_tck(),
            repeat: repeated,
            wait_all_ms: (sched1.all_ns - sched0.all_ns) as f64 / 1e6,
            wait_recv_ms: (sched1.recv_ns - sched0.recv_ns) as f64 / 1e6,
            recv_slices: sched1.recv_slices - sched0.recv_slices,
        };
        base = total;
        progress!(
            "{} {} {:>4} procs {:>7}/s: sent {:>8} ({:>9.0}/s{}) refused {:>7} received {:>8} loss {:>7}  CPU {:.2} s = {:.3} s/10k; run-queue wait: recv thread {:.1} ms over {} slices, all threads {:.1} ms{}",
            lad.imp.name(),
            lad.pacing.name(),
            lad.procs,
            rate,
            st.sent.attempted,
            st.achieved(),
            if st.sender_limited() { ", sender-limited" } else { "" },
            st.sent.refused,
            st.received,
            st.loss(),
            st.cpu_s,
            st.cpu_per_10k(),
            st.wait_recv_ms,
            st.recv_slices,
            st.wait_all_ms,
            match (c1.seq_gaps, c1.queue_overflow) {
                (Some(g), Some(q)) => format!(" (seq_gaps {g}, queue_overflow {q} so far)"),
                _ => String::new(),
            }
        );
        lad.steps.push(st);
        if st.loss() > 0 {
            if repeated {
                break;
            }
            repeated = true;
            continue;
        }
        repeated = false;
        i += 1;
    }
    lad.topped = i == rates.len();
    if lad.saturate {
        lad.sat = Some(saturate(lad, &srv, &tx, &mut feed, step)?);
    }
    Ok(())
}

/// Saturation: blocking sends for `dur` (the server never waits for a
/// datagram, so wake-up latency and the 10-deep kernel queue do not
/// matter): how many datagrams/s one core drains, without loss.
fn saturate(
    lad: &Ladder,
    srv: &Target,
    tx: &Sender,
    feed: &mut Feed,
    dur: Duration,
) -> Result<Sat> {
    let dur = saturation_step(dur);
    srv.wait_idle(Duration::from_secs(10));
    let base = srv.counters()?.total_received;
    let cpu0 = srv.cpu();
    let t0 = Instant::now();
    let mut sent = 0u64;
    // Datagrams sent in each second of the step (with blocking sends the
    // kernel queue holds 11 at most, so this is what was drained).
    let mut per_sec: Vec<u64> = Vec::new();
    while t0.elapsed() < dur {
        let sec = t0.elapsed().as_secs() as usize;
        if per_sec.len() <= sec {
            per_sec.resize(sec + 1, 0);
        }
        per_sec[sec] += 64;
        for _ in 0..64 {
            tx.send(feed.next(), false)?;
        }
        sent += 64;
    }
    let send_end = t0.elapsed().as_secs_f64();
    // Ours may still hold a backlog in its in-process queue: its run ends
    // when everything is counted (a cheap counter read). The reference has
    // no queue of its own beyond the kernel's 10 datagrams: its run ends
    // with the last send (reading its counters costs it a full snapshot).
    let (secs, cpu_s) = if lad.imp == Impl::Ours {
        loop {
            let received = srv.counters()?.total_received - base;
            if received >= sent || t0.elapsed() > dur * 10 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (
            t0.elapsed().as_secs_f64(),
            (srv.cpu() - cpu0) as f64 / clk_tck(),
        )
    } else {
        std::thread::sleep(Duration::from_millis(5));
        (send_end, (srv.cpu() - cpu0) as f64 / clk_tck())
    };
    srv.wait_idle(Duration::from_secs(20));
    let received = srv.counters()?.total_received - base;
    let sat = Sat {
        sent,
        received,
        secs,
        cpu_s,
    };
    progress!(
        "{} {} procs saturation (blocking sends): {} sent, {} received in {:.2} s = {:.0}/s, CPU {:.2} s = {:.3} s/10k; sent per second: {:?}",
        lad.imp.name(),
        lad.procs,
        sent,
        received,
        secs,
        sat.rate(),
        cpu_s,
        cpu_s / received.max(1) as f64 * 1e4,
        per_sec
    );
    Ok(sat)
}

#[derive(Clone, Copy)]
struct Sat {
    sent: u64,
    received: u64,
    secs: f64,
    cpu_s: f64,
}

impl Sat {
    fn rate(&self) -> f64 {
        self.received as f64 / self.secs.max(1e-9)
    }
    fn cpu_per_10k(&self) -> f64 {
        self.cpu_s / self.received.max(1) as f64 * 1e4
    }
}

// ---------------------------------------------------------------- fill

struct Api {
    secs: f64,
    ttfb: f64,
    bytes: u64,
    processes: Option<u64>,
    total_received: u64,
    probe: Sent,
}

struct Ws {
    label: String,
    secs: f64,
    handshake: f64,
    bytes: u64,
    processes: u64,
    truncated: Option<bool>,
    probe: Sent,
}

struct Fill {
    imp: Impl,
    procs: usize,
    datagrams: u64,
    fill_secs: f64,
    fill_cpu_s: f64,
    received: u64,
    queue_overflow: Option<u64>,
    rss_fill_kb: u64,
    hwm_fill_kb: u64,
    api: Option<Api>,
    ws: Vec<Ws>,
    hwm_end_kb: u64,
    error: Option<String>,
}

fn run_fill(
    imp: Impl,
    bin: &Path,
    corpus: &Corpus,
    procs: usize,
    ws_paths: &[(&str, &str)],
    rt: &tokio::runtime::Runtime,
) -> Fill {
    let mut f = Fill {
        imp,
        procs,
        datagrams: 0,
        fill_secs: 0.0,
        fill_cpu_s: 0.0,
        received: 0,
        queue_overflow: None,
        rss_fill_kb: 0,
        hwm_fill_kb: 0,
        api: None,
        ws: Vec::new(),
        hwm_end_kb: 0,
        error: None,
    };
    if let Err(e) = fill_inner(&mut f, bin, corpus, ws_paths, rt) {
        progress!("{} fill {procs}: aborted: {e:#}", imp.name());
        f.error = Some(format!("{e:#}"));
    }
    f
}

fn fill_inner(
    f: &mut Fill,
    bin: &Path,
    corpus: &Corpus,
    ws_paths: &[(&str, &str)],
    rt: &tokio::runtime::Runtime,
) -> Result<()> {
    let srv = Server::start(bin, false)?;
    let tx = Sender::connect(&srv.sock)?;
    let requests: Vec<&Tmpl> = corpus
        .all
        .iter()
        .filter(|t| t.kind == Kind::REQUEST.0)
        .collect();
    let probe_tmpl = corpus
        .all
        .iter()
        .find(|t| t.kind == Kind::SLOW_REQUEST.0)
        .map(|t| t.bytes.clone())
        .context("no slow_request in corpus")?;
    let base_stamp = epoch_now() - WINDOW as f64;
    let mut buf = Vec::with_capacity(wire::MAX_DATAGRAM);
    let cpu0 = srv.cpu();
    let t0 = Instant::now();
    let mut last_note = Instant::now();
    for r in 0..WINDOW {
        for p in 0..f.procs {
            let t = requests[(r * f.procs + p) % requests.len()];
            buf.clear();
            buf.extend_from_slice(&t.bytes);
            patch_header(
                &mut buf,
                PID_BASE + p as u32,
                r as u32 + 1,
                base_stamp + r as f64,
            );
            tx.send(&buf, false)?;
            f.datagrams += 1;
            // Ours stops reading once its in-process queue holds 64 MB
            // (recv.rs MAX_QUEUED_BYTES), so a blocking sender waits and
            // nothing is lost; the window only keeps the queue short, as
            // in the runs before that back-pressure existed (the figures
            // stay comparable).
            if f.imp == Impl::Ours && f.datagrams.is_multiple_of(10_000) {
                while f.datagrams - srv.counters()?.total_received > FILL_WINDOW {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        if last_note.elapsed() > Duration::from_secs(10) {
            last_note = Instant::now();
            progress!(
                "{} fill {}: {} of {} sent",
                f.imp.name(),
                f.procs,
                f.datagrams,
                WINDOW * f.procs
            );
        }
    }
    srv.wait_idle(Duration::from_secs(120));
    f.fill_secs = t0.elapsed().as_secs_f64();
    f.fill_cpu_s = (srv.cpu() - cpu0) as f64 / clk_tck();
    f.rss_fill_kb = status_kb(srv.pid, "VmRSS:");
    f.hwm_fill_kb = status_kb(srv.pid, "VmHWM:");
    progress!(
        "{} fill {} × {}: {} datagrams in {:.1} s ({:.0}/s), CPU {:.1} s, RSS {} MB (peak {} MB)",
        f.imp.name(),
        f.procs,
        WINDOW,
        f.datagrams,
        f.fill_secs,
        f.datagrams as f64 / f.fill_secs,
        f.fill_cpu_s,
        f.rss_fill_kb / 1024,
        f.hwm_fill_kb / 1024
    );

    // GET /api/state (everything).
    let probe = Probe::start(&srv.sock, &probe_tmpl)?;
    let r = http_get(srv.port, "/api/state", 1 << 30);
    let probe = probe.finish();
    let r = r?;
    if r.status != 200 {
        bail!("/api/state answered {}", r.status);
    }
    let c = Counters::parse(&r.tail);
    f.received = c.total_received;
    f.queue_overflow = c.queue_overflow;
    let api = Api {
        secs: r.total.as_secs_f64(),
        ttfb: r.ttfb.as_secs_f64(),
        bytes: r.body_bytes,
        processes: r.body.as_deref().map(|b| count(b, b"\"last_seq\"")),
        total_received: c.total_received,
        probe,
    };
    progress!(
        "{} {} procs: GET /api/state {:.3} s (first byte {:.3} s), {} bytes, {} processes, total_received {}; probe refused {}/{}",
        f.imp.name(),
        f.procs,
        api.secs,
        api.ttfb,
        api.bytes,
        api.processes.map(|p| p.to_string()).unwrap_or("(not counted)".into()),
        api.total_received,
        api.probe.refused,
        api.probe.attempted
    );
    drop(r);
    f.api = Some(api);
    if f.received < f.datagrams {
        progress!(
            "{} fill {}: WARNING only {} of {} datagrams received",
            f.imp.name(),
            f.procs,
            f.received,
            f.datagrams
        );
    }

    for (label, path) in ws_paths {
        srv.wait_idle(Duration::from_secs(30));
        let url = format!("ws://127.0.0.1:{}{}", srv.port, path);
        let probe = Probe::start(&srv.sock, &probe_tmpl)?;
        let res = rt.block_on(ws_first(&url));
        let probe = probe.finish();
        let (secs, handshake, text) = res?;
        let w = Ws {
            label: label.to_string(),
            secs,
            handshake,
            bytes: text.len() as u64,
            processes: count(text.as_bytes(), b"\"last_seq\""),
            truncated: find_last(text.as_bytes(), b"\"history_truncated\"").map(|i| {
                text.as_bytes()[i..]
                    .iter()
                    .take(30)
                    .copied()
                    .collect::<Vec<u8>>()
                    .windows(4)
                    .any(|w| w == b"true")
            }),
            probe,
        };
        drop(text);
        progress!(
            "{} {} procs: WS {} first message {:.3} s (handshake {:.3} s), {} bytes, {} processes{}; probe refused {}/{}",
            f.imp.name(),
            f.procs,
            w.label,
            w.secs,
            w.handshake,
            w.bytes,
            w.processes,
            match w.truncated {
                Some(t) => format!(", history_truncated {t}"),
                None => String::new(),
            },
            w.probe.refused,
            w.probe.attempted
        );
        f.ws.push(w);
    }
    f.hwm_end_kb = status_kb(srv.pid, "VmHWM:");
    Ok(())
}

/// Connects and waits for the first text message: (seconds to it,
/// seconds to the upgrade, text).
async fn ws_first(url: &str) -> Result<(f64, f64, String)> {
    let cfg = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let t0 = Instant::now();
    let fut = async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(cfg), false).await?;
        let hs = t0.elapsed().as_secs_f64();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let secs = t0.elapsed().as_secs_f64();
                    let _ = ws.close(None).await;
                    return Ok::<_, anyhow::Error>((secs, hs, t.as_str().to_owned()));
                }
                Some(Ok(Message::Binary(b))) => {
                    let secs = t0.elapsed().as_secs_f64();
                    let _ = ws.send(Message::Close(None)).await;
                    return Ok((secs, hs, String::from_utf8_lossy(&b).into_owned()));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed before the first message"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), fut)
        .await
        .map_err(|_| anyhow!("no first message within 300 s"))?
}

// ---------------------------------------------------------------- report

fn fmt_rate(r: f64) -> String {
    if r >= 1000.0 {
        format!("{:.0}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}

fn mb(kb: u64) -> String {
    format!("{:.0} MB", kb as f64 / 1024.0)
}

fn bytes_h(b: u64) -> String {
    if b >= 10_000_000 {
        format!("{:.0} MB", b as f64 / 1e6)
    } else if b >= 1_000_000 {
        format!("{:.2} MB", b as f64 / 1e6)
    } else {
        format!("{:.0} kB", b as f64 / 1e3)
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets target"
    } else {
        "MISSES target"
    }
}

fn machine_facts(cores: usize) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let qlen = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    format!(
        "{} cores ({cpu}), {:.1} GB RAM, Linux {}, net.unix.max_dgram_qlen = {}",
        cores,
        mem as f64 / 1024.0 / 1024.0,
        kernel.trim(),
        qlen.trim()
    )
}

fn main() -> Result<()> {
    START.get_or_init(Instant::now);
    let opts = parse_opts()?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pinned = cores > SENDER_CPU && pin_self(SENDER_CPU);
    if RT.load(Ordering::Relaxed) && !set_fifo() {
        bail!("--rt: cannot set SCHED_FIFO (needs CAP_SYS_NICE)");
    }
    let corpus = load_corpus()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut rates, step): (Vec<u64>, Duration) = if opts.quick {
        (
            vec![1_000, 5_000, 20_000, 50_000, 100_000, 200_000],
            Duration::from_secs(2),
        )
    } else {
        (
            vec![
                1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 150_000, 200_000, 300_000,
            ],
            Duration::from_secs(3),
        )
    };
    let cmdline = std::env::args().collect::<Vec<_>>().join(" ");
    let mut head = String::new();
    writeln!(head, "bench_ingest: {cmdline}")?;
    writeln!(head, "date: {}", utc_now())?;
    writeln!(head, "load average at start: {}", loadavg())?;
    writeln!(head, "machine: {}", machine_facts(cores))?;
    writeln!(
        head,
        "server pinned to core {SERVER_CPU}; sender{} ",
        if pinned {
            format!(" pinned to core {SENDER_CPU}")
        } else {
            " NOT pinned (single core?)".into()
        }
    )?;
    writeln!(
        head,
        "scheduling: {}",
        if RT.load(Ordering::Relaxed) {
            "--rt: during the ladders, servers, bare receiver and sender run SCHED_FIFO priority 1 (shielded from other tenants' load); fills and snapshots run SCHED_OTHER"
        } else {
            "SCHED_OTHER (shares the cores with whatever else runs on the machine)"
        }
    )?;
    writeln!(head, "ours: {}", opts.ours.display())?;
    match &opts.reference {
        Some(r) => writeln!(head, "reference: {}", r.display())?,
        None => writeln!(head, "reference: skipped")?,
    }
    writeln!(
        head,
        "corpus: {} datagrams of {} processes, capture span {:.0} s; field 8 dropped from {} GC datagrams (both implementations)",
        corpus.all.len(),
        corpus.n_orig,
        corpus.span,
        corpus.field8_dropped
    )?;
    writeln!(
        head,
        "ladder: {} s per step at {:?} datagrams/s; a lossy step is repeated once, the ladder stops when it loses again",
        step.as_secs(),
        rates
    )?;
    eprint!("{head}");

    let mut impls = vec![(Impl::Ours, opts.ours.clone())];
    if let Some(r) = &opts.reference {
        impls.push((Impl::Reference, r.clone()));
    }

    if opts.only == Some(Part::Saturation) {
        rates.clear();
    }
    let ladders_wanted = opts.only != Some(Part::Fills);
    let fills_wanted = matches!(opts.only, None | Some(Part::Fills));

    // 1. ladders
    let mut ladders = Vec::new();
    for &pacing in opts.pacings.iter().filter(|_| ladders_wanted) {
        if rates.is_empty() && Some(&pacing) != opts.pacings.last() {
            continue;
        }
        let sat = Some(&pacing) == opts.pacings.last();
        ladders.push(run_ladder(
            Impl::Floor,
            pacing,
            sat,
            &opts.ours,
            &corpus,
            200,
            &rates,
            step,
        ));
        for (imp, bin) in &impls {
            for &n in &LADDER_PROCS {
                ladders.push(run_ladder(*imp, pacing, sat, bin, &corpus, n, &rates, step));
            }
        }
    }

    // 2. fills (always SCHED_OTHER: with SCHED_FIFO the snapshot thread
    // would never yield the core to the receive thread)
    set_other();
    let mut fills = Vec::new();
    if fills_wanted {
        fills.push(run_fill(
            Impl::Ours,
            &opts.ours,
            &corpus,
            200,
            &[("default", "/ws"), ("?history=full", "/ws?history=full")],
            &rt,
        ));
        if let Some(r) = &opts.reference {
            fills.push(run_fill(
                Impl::Reference,
                r,
                &corpus,
                200,
                &[("(only form)", "/ws")],
                &rt,
            ));
        }
        fills.push(run_fill(
            Impl::Ours,
            &opts.ours,
            &corpus,
            1000,
            &[("default", "/ws")],
            &rt,
        ));
    }

    // 3. report
    let mut out = String::new();
    out.push_str(&head);
    writeln!(out, "load average at end: {}", loadavg())?;
    writeln!(out, "finished: {}", utc_now())?;
    writeln!(out)?;
    writeln!(out, "### Sustained zero-loss rate (server on one core)")?;
    writeln!(out)?;
    writeln!(
        out,
        "| pacing | impl | processes | highest zero-loss step (achieved/s) | CPU-s per 10k there | first lossy step: loss | steps run |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---|---:|")?;
    for l in &ladders {
        let best = l.best();
        let lossy = if l.topped {
            "none (top of ladder)".to_string()
        } else if let Some(s) = l.first_lossy() {
            format!(
                "{}/s: {} of {} ({:.1}%)",
                fmt_rate(s.rate as f64),
                s.loss(),
                s.sent.attempted,
                100.0 * s.loss() as f64 / s.sent.attempted.max(1) as f64
            )
        } else {
            l.error.clone().unwrap_or_default()
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            l.pacing.name(),
            l.imp.name(),
            l.procs,
            best.map(|s| format!(
                "{}/s ({:.0}/s{})",
                fmt_rate(s.rate as f64),
                s.achieved(),
                if s.sender_limited() {
                    ", sender-limited"
                } else {
                    ""
                }
            ))
            .unwrap_or_else(|| format!(
                "< {}/s",
                rates
                    .first()
                    .map(|&r| fmt_rate(r as f64))
                    .unwrap_or_default()
            )),
            best.map(|s| format!("{:.3}", s.cpu_per_10k()))
                .unwrap_or("-".into()),
            lossy,
            l.steps.len()
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Saturation (blocking sends for {} s: the server never waits for a datagram, so neither wake-up latency nor the 10-deep kernel queue limits it; lossless by construction, except for ours' in-process queue bound):",
        saturation_step(step).as_secs()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| impl | processes | datagrams/s drained | sent | received | CPU-s per 10k |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for l in &ladders {
        if let Some(s) = &l.sat {
            writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {:.3} |",
                l.imp.name(),
                l.procs,
                s.rate(),
                s.sent,
                s.received,
                s.cpu_per_10k()
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "Every step:")?;
    writeln!(out)?;
    writeln!(
        out,
        "| impl | procs | rate | sent | achieved/s | refused (EAGAIN) | received | loss | CPU-s | CPU-s/10k | recv-thread run-queue wait ms (slices) | all threads ms |"
    )?;
    writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for l in &ladders {
        for s in &l.steps {
            writeln!(
                out,
                "| {} | {} | {} | {}{} | {} | {:.0} | {} | {} | {} | {:.2} | {:.3} | {:.1} ({}) | {:.1} |",
                l.pacing.name(),
                l.imp.name(),
                l.procs,
                fmt_rate(s.rate as f64),
                if s.repeat { " (repeat)" } else { "" },
                s.sent.attempted,
                s.achieved(),
                s.sent.refused,
                s.received,
                s.loss(),
                s.cpu_s,
                s.cpu_per_10k(),
                s.wait_recv_ms,
                s.recv_slices,
                s.wait_all_ms
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "### Fill: N processes × 600 REQUEST samples")?;
    writeln!(out)?;
    writeln!(
        out,
        "| impl | processes | fill rate (blocking sends; ours ≤ 40k in flight) | CPU-s/10k in fill | RSS after fill | peak RSS (VmHWM, end) | /api/state time (first byte) | /api/state bytes | probe refused during /api/state |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for f in &fills {
        if let Some(e) = &f.error {
            writeln!(
                out,
                "| {} | {} | error: {} |",
                f.imp.name(),
                f.procs,
                e.lines().next().unwrap_or("")
            )?;
            if f.api.is_none() {
                continue;
            }
        }
        let api = f.api.as_ref();
        writeln!(
            out,
            "| {} | {} | {:.0}/s | {:.3} | {} | {} | {} | {} | {} |",
            f.imp.name(),
            f.procs,
            f.datagrams as f64 / f.fill_secs.max(1e-9),
            f.fill_cpu_s / f.datagrams.max(1) as f64 * 10_000.0,
            mb(f.rss_fill_kb),
            mb(f.hwm_end_kb.max(f.hwm_fill_kb)),
            api.map(|a| format!("{:.3} s ({:.3} s)", a.secs, a.ttfb))
                .unwrap_or("-".into()),
            api.map(|a| bytes_h(a.bytes)).unwrap_or("-".into()),
            api.map(|a| format!("{} of {}", a.probe.refused, a.probe.attempted))
                .unwrap_or("-".into()),
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "| impl | processes | first WebSocket message | time to it (upgrade) | bytes | processes in it | history_truncated | probe refused meanwhile |"
    )?;
    writeln!(out, "|---|---:|---|---:|---:|---:|---|---:|")?;
    for f in &fills {
        for w in &f.ws {
            writeln!(
                out,
                "| {} | {} | {} | {:.3} s ({:.3} s) | {} | {} | {} | {} of {} |",
                f.imp.name(),
                f.procs,
                w.label,
                w.secs,
                w.handshake,
                bytes_h(w.bytes),
                w.processes,
                w.truncated
                    .map(|t| t.to_string())
                    .unwrap_or("(no such key)".into()),
                w.probe.refused,
                w.probe.attempted
            )?;
        }
    }
    for f in &fills {
        if f.received != f.datagrams && f.api.is_some() {
            writeln!(
                out,
                "\nnote: {} fill {}: {} datagrams sent, total_received {} (queue_overflow {:?})",
                f.imp.name(),
                f.procs,
                f.datagrams,
                f.received,
                f.queue_overflow
            )?;
        }
    }
    if opts.reference.is_some() {
        writeln!(
            out,
            "\nThe reference is filled with 200 processes only: 1,000 × 600 samples would need more than 10 GB of RSS."
        )?;
    }

    // ratios
    writeln!(out)?;
    writeln!(out, "### Ratios against the targets (issue 2)")?;
    writeln!(out)?;
    if opts.reference.is_none() {
        writeln!(out, "(reference skipped: no ratios)")?;
    } else {
        for (&pacing, &n) in opts
            .pacings
            .iter()
            .flat_map(|p| LADDER_PROCS.iter().map(move |n| (p, n)))
        {
            let pn = pacing.name();
            let o = ladders
                .iter()
                .find(|l| l.imp == Impl::Ours && l.procs == n && l.pacing == pacing);
            let r = ladders
                .iter()
                .find(|l| l.imp == Impl::Reference && l.procs == n && l.pacing == pacing);
            if let (Some(o), Some(r)) = (o, r) {
                let orate = o.best().map(|s| s.achieved());
                let rrate = r.best().map(|s| s.achieved());
                match (orate, rrate) {
                    (Some(a), Some(b)) => {
                        let x = a / b;
                        writeln!(
                            out,
                            "- sustained zero-loss rate ({pn}), {n} processes: ours {:.0}/s{} vs reference {:.0}/s = {:.1}× (target ≥ 20×: {}); CPU per 10k: ours {:.3} s vs {:.3} s = 1/{:.0}",
                            a,
                            if o.topped { " (top of ladder, a lower bound)" } else { "" },
                            b,
                            x,
                            verdict(x >= 20.0),
                            o.best().map(|s| s.cpu_per_10k()).unwrap_or(f64::NAN),
                            r.best().map(|s| s.cpu_per_10k()).unwrap_or(f64::NAN),
                            r.best().map(|s| s.cpu_per_10k()).unwrap_or(f64::NAN)
                                / o.best().map(|s| s.cpu_per_10k()).unwrap_or(f64::NAN)
                        )?;
                    }
                    _ => writeln!(
                        out,
                        "- sustained zero-loss rate ({pn}), {n} processes: ours {} vs reference {} (no ratio; compare the bare-recv floor: on a loaded core even a bare recv loop loses)",
                        orate.map(|r| format!("{r:.0}/s")).unwrap_or("no zero-loss step".into()),
                        rrate.map(|r| format!("{r:.0}/s")).unwrap_or("no zero-loss step".into()),
                    )?,
                }
            }
        }
        for &n in &LADDER_PROCS {
            let sat = |imp: Impl| {
                ladders
                    .iter()
                    .find(|l| l.imp == imp && l.procs == n && l.sat.is_some())
                    .and_then(|l| l.sat)
            };
            if let (Some(o), Some(r)) = (sat(Impl::Ours), sat(Impl::Reference)) {
                let x = o.rate() / r.rate();
                writeln!(
                    out,
                    "- saturation throughput (blocking sends), {n} processes: ours {:.0}/s vs reference {:.0}/s = {:.1}× (target ≥ 20×: {}); CPU per 10k {:.3} s vs {:.3} s = 1/{:.1}",
                    o.rate(),
                    r.rate(),
                    x,
                    verdict(x >= 20.0),
                    o.cpu_per_10k(),
                    r.cpu_per_10k(),
                    r.cpu_per_10k() / o.cpu_per_10k()
                )?;
            }
        }
        let o = fills.iter().find(|f| f.imp == Impl::Ours && f.procs == 200);
        let r = fills.iter().find(|f| f.imp == Impl::Reference);
        if let (Some(o), Some(r)) = (o, r) {
            let (oh, rh) = (
                o.hwm_end_kb.max(o.hwm_fill_kb),
                r.hwm_end_kb.max(r.hwm_fill_kb),
            );
            if rh > 0 {
                writeln!(
                    out,
                    "- peak RSS at 200 × 600: ours {} vs reference {} = 1/{:.1} (target ≤ 1/5: {}); after the fill alone {} vs {} = 1/{:.1}",
                    mb(oh),
                    mb(rh),
                    rh as f64 / oh.max(1) as f64,
                    verdict(oh * 5 <= rh),
                    mb(o.rss_fill_kb),
                    mb(r.rss_fill_kb),
                    r.rss_fill_kb as f64 / o.rss_fill_kb.max(1) as f64
                )?;
            }
            if let Some(rw) = r.ws.first() {
                for w in &o.ws {
                    let x = w.secs / rw.secs;
                    writeln!(
                        out,
                        "- first WebSocket snapshot at 200 × 600: ours {} {:.3} s vs reference {:.3} s = 1/{:.0} (target ≤ 1/10: {})",
                        w.label,
                        w.secs,
                        rw.secs,
                        1.0 / x,
                        verdict(x <= 0.1)
                    )?;
                }
            }
            if let (Some(oa), Some(ra)) = (&o.api, &r.api) {
                let x = oa.secs / ra.secs;
                writeln!(
                    out,
                    "- GET /api/state at 200 × 600: ours {:.3} s vs reference {:.3} s = 1/{:.0} (target ≤ 1/10: {}); bytes {} vs {}",
                    oa.secs,
                    ra.secs,
                    1.0 / x,
                    verdict(x <= 0.1),
                    bytes_h(oa.bytes),
                    bytes_h(ra.bytes)
                )?;
            }
        }
    }
    println!("\n{out}");
    Ok(())
}
