//! `mod_wsgi-telemetry simulate`: synthetic telemetry for demos and UI work,
//! no Apache needed. Sends real wire-format datagrams (through the `wire`
//! encoders, following the 6.x emission rules) to a UNIX datagram socket.
//!
//! The model is a small Apache + mod_wsgi site:
//! * daemon group `app` (8 threads per process), the busy web application;
//! * daemon group `reports` (4 threads), slow report rendering and exports;
//! * embedded Apache children (25 threads, no process group) serving static
//!   and light dynamic pages, each with a sub-interpreter next to the main
//!   one (so their GC datagrams carry `interpreter_name`).
//!
//! Load follows a slow wave per group with noise and an occasional burst
//! (with a 5xx incident); queue time grows with utilisation; slow requests
//! occupy worker slots, are reported active on every tick past the
//! threshold and completed at the end; processes restart for the reasons
//! mod_wsgi gives (maximum requests, restart interval, signals, request
//! timeout cutting requests off), with STARTED / STOPPING / STOPPED; GC
//! snapshots and events follow the allocation rate. Nothing here blocks on
//! anything but the socket send.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wire::emit::{self, GcEvent, Identity, Lifecycle, Phase, RequestTick, Slots, SlowRecord};
use wire::histogram::{bucket_index, BUCKETS};

/// Options of `simulate`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Datagram socket of the ingester: `unix:<path>`.
    #[arg(long, value_name = "SPEC", value_parser = crate::cli::parse_unix_spec)]
    pub target: PathBuf,
    /// Simulated processes (split over the `app` and `reports` daemon
    /// groups and embedded Apache children).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub processes: u32,
    /// Tick length in seconds (the reporter interval).
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Stop after this many seconds (0 = run until interrupted).
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
    /// Random seed (a fixed seed gives the same stream shape).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Do not send GC datagrams.
    #[arg(long)]
    pub no_gc: bool,
    /// Load multiplier (1 = a few hundred requests per second in total).
    #[arg(long, default_value_t = 1.0)]
    pub load: f64,
    /// Probability per process and tick of an unplanned restart.
    #[arg(long, default_value_t = 0.0015)]
    pub restart_probability: f64,
    /// First pid to use.
    #[arg(long, default_value_t = 100000)]
    pub first_pid: u32,
}

/// Shape of a simulated process group.
#[derive(Clone, Copy, Debug)]
struct Shape {
    group: &'static str,
    threads: usize,
    daemon: bool,
    /// Requests per second per process at load 1, mid-wave.
    base_rps: f64,
    /// Median application time (s) and log-normal sigma.
    median: f64,
    sigma: f64,
    /// Slow requests started per second per process.
    slow_rate: f64,
    /// `maximum-requests` (0 = none).
    max_requests: u64,
    rss_base: f64,
}

const APP: Shape = Shape {
    group: "app",
    threads: 8,
    daemon: true,
    base_rps: 120.0,
    median: 0.025,
    sigma: 0.7,
    slow_rate: 0.15,
    max_requests: 60000,
    rss_base: 96.0 * 1048576.0,
};
const REPORTS: Shape = Shape {
    group: "reports",
    threads: 4,
    daemon: true,
    base_rps: 6.0,
    median: 0.180,
    sigma: 0.9,
    slow_rate: 0.12,
    max_requests: 5000,
    rss_base: 180.0 * 1048576.0,
};
const EMBEDDED: Shape = Shape {
    group: "",
    threads: 25,
    daemon: false,
    base_rps: 260.0,
    median: 0.004,
    sigma: 0.6,
    slow_rate: 0.03,
    max_requests: 0,
    rss_base: 40.0 * 1048576.0,
};

const SLOW_THRESHOLD: f64 = 1.0;
const SUB_INTERPRETER: &[u8] = b"localhost:80|/static-pages";

const SLOW_PATHS: &[(&str, &str, &str)] = &[
    ("reports", "GET", "/reports/quarterly.pdf"),
    ("reports", "GET", "/reports/export.csv"),
    ("reports", "POST", "/reports/render"),
    ("app", "POST", "/api/orders/checkout"),
    ("app", "GET", "/api/search"),
    ("app", "POST", "/api/images/thumbnail"),
    ("", "GET", "/legacy/sitemap.xml"),
    ("", "POST", "/upload"),
];

const REASONS: &[&str] = &[
    "restart_interval",
    "graceful_signal",
    "script_reload",
    "request_timeout",
    "deadlock_timeout",
    "cpu_time_limit",
];

/// One request holding a worker slot for longer than a tick.
#[derive(Clone, Debug)]
struct LongRequest {
    slot: usize,
    start: f64,
    total: f64,
    log_id: String,
    method: &'static str,
    path: &'static str,
    peer: String,
    active_at_start: u64,
    input_bytes: u64,
    output_bytes: u64,
}

#[derive(Clone, Debug)]
struct Proc {
    shape: Shape,
    pid: u32,
    seq: u32,
    started: f64,
    lifetime_requests: u64,
    max_requests: u64,
    max_rss: f64,
    leak: f64,
    long: Vec<LongRequest>,
    gc_collections: [u64; 3],
    gc_collected: [u64; 3],
    gc_dropped_pending: u64,
    /// Ticks until the first REQUEST (the reporter's first tick is a seed).
    warmup: u32,
    /// Request-log-id counter.
    next_id: u64,
}

/// The simulated site; [`Simulator::tick`] gives one interval's datagrams.
pub struct Simulator {
    rng: StdRng,
    procs: Vec<Proc>,
    next_pid: u32,
    interval: f64,
    load: f64,
    restart_probability: f64,
    gc: bool,
    hostname: Vec<u8>,
    parent_pid: u64,
    t0: Option<f64>,
    /// End of the current burst (reporter time).
    burst_until: f64,
}

fn hostname() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, gethostname writes
    // at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return b"localhost".to_vec();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf[..n].to_vec()
}

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        return (mean + mean.sqrt() * normal(rng)).round().max(0.0) as u64;
    }
    let l = (-mean).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Per-phase accumulator for one tick.
struct Acc {
    sum: f64,
    count: u64,
    min: f64,
    max: f64,
    buckets: [i32; BUCKETS],
}

impl Acc {
    fn new() -> Acc {
        Acc {
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: 0.0,
            buckets: [0; BUCKETS],
        }
    }
    fn add(&mut self, v: f64) {
        // The reporter records whole microseconds.
        let v = (v * 1e6).round() / 1e6;
        self.sum += v;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.buckets[bucket_index(v)] += 1;
    }
    fn phase(&self) -> Phase<'_> {
        Phase {
            sum: self.sum,
            count: self.count,
            min: if self.count > 0 { self.min } else { 0.0 },
            max: self.max,
            buckets: &self.buckets,
        }
    }
}

impl Simulator {
    /// A site of `processes` processes.
    pub fn new(args: &SimulateArgs) -> Simulator {
        let rng = match args.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let n = args.processes.max(1) as usize;
        // Half `app`, a quarter `reports` (at least one from 3 up), the rest embedded.
        let reports = if n >= 3 { (n / 4).max(1) } else { 0 };
        let app = (n - reports).div_ceil(2).max(1);
        let embedded = n - reports - app;
        let mut sim = Simulator {
            rng,
            procs: Vec::new(),
            next_pid: args.first_pid,
            interval: if args.interval > 0.0 {
                args.interval
            } else {
                1.0
            },
            load: args.load.max(0.0),
            restart_probability: args.restart_probability.clamp(0.0, 1.0),
            gc: !args.no_gc,
            hostname: hostname(),
            parent_pid: std::process::id() as u64,
            t0: None,
            burst_until: 0.0,
        };
        for shape in std::iter::repeat_n(APP, app)
            .chain(std::iter::repeat_n(REPORTS, reports))
            .chain(std::iter::repeat_n(EMBEDDED, embedded))
        {
            let p = sim.new_proc(shape, 0.0);
            sim.procs.push(p);
        }
        sim
    }

    fn new_proc(&mut self, shape: Shape, now: f64) -> Proc {
        let pid = self.next_pid;
        self.next_pid += 1;
        let max_requests = if shape.max_requests > 0 {
            // Spread so processes of a group do not restart together.
            (shape.max_requests as f64 * self.rng.random_range(0.6..1.4)) as u64
        } else {
            0
        };
        Proc {
            shape,
            pid,
            seq: 0,
            started: now,
            lifetime_requests: 0,
            max_requests,
            max_rss: 0.0,
            leak: 0.0,
            long: Vec::new(),
            gc_collections: [0; 3],
            gc_collected: [0; 3],
            gc_dropped_pending: 0,
            warmup: 1,
            next_id: self.rng.random_range(1..1_000_000),
        }
    }

    fn identity<'a>(host: &'a [u8], group: &'static str, parent_pid: u64) -> Identity<'a> {
        Identity {
            mod_wsgi_version: b"6.1.1",
            python_version: b"3.12.8",
            apache_version: b"Apache/2.4.62",
            mpm_name: b"event",
            hostname: host,
            process_group: group.as_bytes(),
            process_parent_pid: parent_pid,
            switch_interval: 0.005,
        }
    }

    fn started(&self, p: &mut Proc, now: f64, out: &mut Vec<Vec<u8>>) {
        p.started = now;
        p.seq += 1;
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        let id = Self::identity(&self.hostname, p.shape.group, self.parent_pid);
        if let Ok(n) = emit::process_started(&mut buf, p.pid, p.seq, now, &id) {
            out.push(buf[..n].to_vec());
        }
    }

    /// Current pids (for tests and logs).
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.pid).collect()
    }

    /// The datagrams of one tick ending at `now` (epoch seconds).
    pub fn tick(&mut self, now: f64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.t0.is_none() {
            self.t0 = Some(now);
            let mut procs = std::mem::take(&mut self.procs);
            for p in &mut procs {
                self.started(p, now, &mut out);
            }
            self.procs = procs;
            return out;
        }
        let t = now - self.t0.unwrap_or(now);
        // A burst every few minutes: 2.5x load for 15 s.
        if now > self.burst_until + 60.0 && self.rng.random::<f64>() < self.interval / 120.0 {
            self.burst_until = now + 15.0;
        }
        let bursting = now < self.burst_until;
        let mut procs = std::mem::take(&mut self.procs);
        let mut replacements = Vec::new();
        for (i, p) in procs.iter_mut().enumerate() {
            if p.warmup > 0 {
                p.warmup -= 1;
                continue;
            }
            self.request_tick(p, i, t, now, bursting, &mut out);
            if let Some(reason) = self.restart_due(p) {
                self.stop(p, reason, now, &mut out);
                replacements.push(i);
            }
        }
        for i in replacements {
            let shape = procs[i].shape;
            let mut np = self.new_proc(shape, now);
            self.started(&mut np, now, &mut out);
            procs[i] = np;
        }
        self.procs = procs;
        out
    }

    fn restart_due(&mut self, p: &Proc) -> Option<&'static str> {
        if p.max_requests > 0 && p.lifetime_requests >= p.max_requests {
            return Some("maximum_requests");
        }
        if self.rng.random::<f64>() < self.restart_probability {
            if p.shape.daemon {
                return Some(REASONS[self.rng.random_range(0..REASONS.len())]);
            }
            // Embedded children stop without a reason (MaxConnectionsPerChild).
            return Some("");
        }
        None
    }

    fn stop(&mut self, p: &mut Proc, reason: &'static str, now: f64, out: &mut Vec<Vec<u8>>) {
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        let in_flight = p.long.len() as u64;
        // request_timeout and deadlock_timeout cut requests off; the others
        // drain them first.
        let cut = matches!(reason, "request_timeout" | "deadlock_timeout");
        let host = self.hostname.clone();
        let l = Lifecycle {
            hostname: &host,
            process_group: p.shape.group.as_bytes(),
            shutdown_reason: reason.as_bytes(),
            active_requests_at_decision: in_flight,
            process_uptime: now - p.started,
            lifetime_request_count: p.lifetime_requests,
            active_requests_at_exit: if cut { in_flight } else { 0 },
            graceful_drain: !cut || in_flight == 0,
        };
        p.seq += 1;
        if let Ok(n) = emit::process_stopping(&mut buf, p.pid, p.seq, now, &l) {
            out.push(buf[..n].to_vec());
        }
        if !cut {
            let long = std::mem::take(&mut p.long);
            for r in &long {
                let d = (now - r.start).max(SLOW_THRESHOLD);
                self.slow_record(p, r, true, d, now, out);
            }
        }
        p.seq += 1;
        let stamp = now + 0.05;
        if let Ok(n) = emit::process_stopped(&mut buf, p.pid, p.seq, stamp, &l) {
            out.push(buf[..n].to_vec());
        }
    }

    fn slow_record(
        &mut self,
        p: &mut Proc,
        r: &LongRequest,
        completed: bool,
        duration: f64,
        now: f64,
        out: &mut Vec<Vec<u8>>,
    ) {
        let server = 0.0004 + 0.0002 * self.rng.random::<f64>();
        let (queue, daemon) = if p.shape.daemon {
            (
                0.0003 + 0.002 * self.rng.random::<f64>(),
                0.0004 + 0.0003 * self.rng.random::<f64>(),
            )
        } else {
            (0.0, 0.0)
        };
        let app = (duration - server - queue - daemon).max(0.0);
        let cpu = if completed {
            let share = match r.path {
                "/api/orders/checkout" | "/reports/render" => 0.9,
                "/reports/export.csv" | "/api/search" => 0.15,
                _ => 0.45,
            };
            duration * share * self.rng.random_range(0.8..1.1)
        } else {
            0.0
        };
        let status = if !completed {
            0
        } else if self.rng.random::<f64>() < 0.06 {
            504
        } else {
            200
        };
        let rec = SlowRecord {
            state: completed as u64,
            start_stamp: r.start,
            duration,
            thread_id: r.slot as u64 + 1,
            server_pid: if p.shape.daemon {
                p.pid as u64 + 7
            } else {
                p.pid as u64
            },
            input_bytes: if completed { r.input_bytes } else { 0 },
            input_reads: if completed && r.input_bytes > 0 {
                1 + r.input_bytes / 65536
            } else {
                0
            },
            output_bytes: if completed { r.output_bytes } else { 0 },
            output_writes: if completed {
                1 + r.output_bytes / 8192
            } else {
                0
            },
            cpu_user_time: cpu * 0.9,
            cpu_system_time: cpu * 0.1,
            server_time: server,
            queue_time: queue,
            daemon_time: daemon,
            application_time: app,
            gil_wait_time: app * 0.01,
            gil_wait_count: (app * 40.0) as u64,
            input_read_time: 0.0,
            output_write_time: 0.0,
            active_at_start: r.active_at_start,
            active_at_completion: if completed {
                p.long.len() as u64 + 1
            } else {
                0
            },
            status,
            log_id: r.log_id.as_bytes(),
            method: r.method.as_bytes(),
            scheme: b"https",
            hostname: b"www.example.com",
            script_name: b"",
            path_info: r.path.as_bytes(),
            protocol: b"HTTP/2.0",
            peer_ip: r.peer.as_bytes(),
            user_agent: b"Mozilla/5.0 (X11; Linux x86_64) simulate/1",
        };
        p.seq += 1;
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        if let Ok(n) = emit::slow_request(&mut buf, p.pid, p.seq, now, &rec) {
            out.push(buf[..n].to_vec());
        }
    }

    fn log_id(&mut self, p: &mut Proc) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        p.next_id += 1;
        let mut s: String = (0..19)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        s.push_str(&format!("{:08X}", p.next_id & 0xffff_ffff));
        s
    }

    fn request_tick(
        &mut self,
        p: &mut Proc,
        index: usize,
        t: f64,
        now: f64,
        bursting: bool,
        out: &mut Vec<Vec<u8>>,
    ) {
        let iv = self.interval;
        let sh = p.shape;
        let threads = sh.threads;
        // Load: a slow wave (period 5 min, phase per group) plus noise.
        let phase = match sh.group {
            "app" => 0.0,
            "reports" => 2.0,
            _ => 4.0,
        } + index as f64 * 0.3;
        let wave = 1.0 + 0.45 * (2.0 * std::f64::consts::PI * t / 300.0 + phase).sin();
        let burst = if bursting && sh.group == "app" {
            2.5
        } else {
            1.0
        };
        let offered = sh.base_rps * self.load * wave * burst;
        let mut count = poisson(&mut self.rng, offered * iv);

        // Slow requests occupy slots across ticks.
        let mut slots_busy = vec![false; threads];
        for r in &p.long {
            slots_busy[r.slot] = true;
        }
        if p.long.len() < threads.saturating_sub(1)
            && self.rng.random::<f64>() < sh.slow_rate * iv * burst
        {
            let candidates: Vec<&(&str, &str, &str)> = SLOW_PATHS
                .iter()
                .filter(|(g, _, _)| *g == sh.group)
                .collect();
            if let Some(slot) = (0..threads).find(|s| !slots_busy[*s]) {
                let (_, method, path) = candidates[self.rng.random_range(0..candidates.len())];
                let total = if *path == "/reports/quarterly.pdf" {
                    self.rng.random_range(8.0..40.0)
                } else {
                    lognormal(&mut self.rng, 2.5, 0.6).clamp(1.05, 30.0)
                };
                let start = now - iv * self.rng.random::<f64>();
                let peer = format!(
                    "{}.{}.{}.{}",
                    [10, 192, 203][self.rng.random_range(0..3)],
                    self.rng.random_range(0..255),
                    self.rng.random_range(0..255),
                    self.rng.random_range(1..255)
                );
                let log_id = self.log_id(p);
                let input_bytes = if *method == "POST" {
                    self.rng.random_range(2_000..400_000)
                } else {
                    0
                };
                let output_bytes = if path.ends_with(".csv") || path.ends_with(".pdf") {
                    self.rng.random_range(5_000_000..80_000_000)
                } else {
                    self.rng.random_range(2_000..200_000)
                };
                slots_busy[slot] = true;
                p.long.push(LongRequest {
                    slot,
                    start,
                    total,
                    log_id,
                    method,
                    path,
                    peer,
                    active_at_start: p.long.len() as u64 + 1,
                    input_bytes,
                    output_bytes,
                });
            }
        }
        let free_slots = threads - p.long.len();

        // Short requests: service times, capped by the free slots' capacity.
        let capacity_s = free_slots as f64 * iv;
        let mut app = Acc::new();
        let mut server = Acc::new();
        let mut queue = Acc::new();
        let mut daemon = Acc::new();
        let mut request = Acc::new();
        let mut gil = Acc::new();
        let mut input = Acc::new();
        let mut output = Acc::new();
        let mut busy = 0.0;
        let mut samples = Vec::with_capacity(count.min(20000) as usize);
        for _ in 0..count.min(20000) {
            samples.push(lognormal(&mut self.rng, sh.median, sh.sigma).min(0.95));
        }
        // Overload: what does not fit waits (queue) or is not served this tick.
        let demand: f64 = samples.iter().sum();
        let rho = (demand / capacity_s.max(1e-9)).min(1.5);
        if rho > 1.0 {
            let keep = (samples.len() as f64 / rho) as usize;
            samples.truncate(keep);
            count = keep as u64;
        }
        let mut in_bytes = 0u64;
        let mut in_reads = 0u64;
        let mut out_bytes = 0u64;
        let mut out_writes = 0u64;
        let mut status = [0u64; 5];
        let err_rate = if bursting && sh.group == "app" {
            0.04
        } else {
            0.003
        };
        let mut max_dur = vec![0.0f64; threads];
        let mut completed = vec![0i32; threads];
        let mut slot_busy = vec![0.0f64; threads];
        let mut slot_cpu = vec![0.0f64; threads];
        let free: Vec<usize> = (0..threads).filter(|s| !slots_busy[*s]).collect();
        if free.is_empty() {
            // Every slot is held by a long request: nothing else is served.
            samples.clear();
            count = 0;
        }
        // Apache hands connections to the first idle threads: light load
        // keeps most slots idle, so spread requests over just enough slots.
        let used =
            ((demand.min(capacity_s) / iv * 1.3).ceil() as usize + 1).clamp(1, free.len().max(1));
        for (k, a) in samples.iter().enumerate() {
            let s = 0.0002 + 0.0004 * self.rng.random::<f64>();
            let d = 0.0003 + 0.0004 * self.rng.random::<f64>();
            let q = if sh.daemon {
                0.0002 + 0.0008 * rho.min(0.99) / (1.0 - rho.min(0.97)) * self.rng.random::<f64>()
            } else {
                0.0
            };
            let total = s + a + if sh.daemon { q + d } else { 0.0 };
            server.add(s);
            app.add(*a);
            if sh.daemon {
                queue.add(q);
                daemon.add(d);
            }
            request.add(total);
            gil.add(a * 0.02 * self.rng.random::<f64>());
            input.add(0.00002 * self.rng.random::<f64>());
            output.add(a * 0.05 * self.rng.random::<f64>());
            busy += a;
            let slot = free[k % used];
            completed[slot] += 1;
            slot_busy[slot] += a;
            slot_cpu[slot] += a * 0.5;
            max_dur[slot] = max_dur[slot].max((total * 1000.0).floor() / 1000.0);
            if self.rng.random::<f64>() < 0.2 {
                let b = self.rng.random_range(200..60_000);
                in_bytes += b;
                in_reads += 1 + b / 8192;
            }
            let ob: u64 = lognormal(&mut self.rng, 6000.0, 1.0) as u64;
            out_bytes += ob;
            out_writes += 1 + ob / 16384;
            let x: f64 = self.rng.random();
            let class = if x < err_rate {
                4
            } else if x < err_rate + 0.02 {
                3
            } else if x < err_rate + 0.05 {
                2
            } else {
                1
            };
            status[class] += 1;
        }

        // Slow requests: active records past the threshold, completion at the end.
        let mut current = vec![0.0f64; threads];
        let mut finished = Vec::new();
        for (k, r) in p.long.iter().enumerate() {
            let elapsed = now - r.start;
            if elapsed >= r.total {
                finished.push(k);
            } else {
                current[r.slot] = (elapsed * 1000.0).floor() / 1000.0;
                slot_busy[r.slot] += iv.min(elapsed);
            }
        }
        let long = p.long.clone();
        for r in &long {
            let elapsed = now - r.start;
            if elapsed >= r.total {
                continue;
            }
            if elapsed >= SLOW_THRESHOLD {
                self.slow_record(p, r, false, elapsed, now, out);
            }
        }
        for k in finished.iter().rev() {
            let r = p.long.remove(*k);
            let d = r.total;
            self.slow_record(p, &r, true, d, now, out);
            count += 1;
            server.add(0.0004);
            app.add(d);
            request.add(d + 0.001);
            if sh.daemon {
                queue.add(0.0005);
                daemon.add(0.0004);
            }
            completed[r.slot] += 1;
            max_dur[r.slot] = max_dur[r.slot].max((d * 1000.0).floor() / 1000.0);
            slot_cpu[r.slot] += d * 0.4;
            status[1] += 1;
        }
        // In-flight short requests at the snapshot instant.
        for s in &free {
            if self.rng.random::<f64>() < (rho * 0.5).min(0.9) {
                current[*s] = (lognormal(&mut self.rng, sh.median, sh.sigma) * 1000.0)
                    .floor()
                    .max(1.0)
                    / 1000.0;
            }
        }
        for b in slot_busy.iter_mut() {
            *b = b.min(iv);
        }
        busy = slot_busy
            .iter()
            .sum::<f64>()
            .max(busy.min(threads as f64 * iv));
        let active = (0..threads)
            .filter(|s| completed[*s] > 0 || current[*s] > 0.0)
            .count() as u64;
        p.lifetime_requests += count;

        // Memory: a slow leak reset by restarts, plus allocation noise.
        p.leak += count as f64 * 300.0;
        let rss = sh.rss_base + p.leak + 2.0 * 1048576.0 * self.rng.random::<f64>();
        p.max_rss = p.max_rss.max(rss);
        // Process CPU accrues while requests run (slot CPU is credited at
        // completion, so it cannot be used here).
        let cpu_user = (busy * 0.25 / iv).min(threads as f64);
        let cpu_sys = cpu_user * 0.15 + 0.002;
        let qd = if sh.daemon && queue.count > 0 {
            Some((queue.phase(), daemon.phase()))
        } else {
            None
        };
        let host = self.hostname.clone();
        let identity = Self::identity(&host, sh.group, self.parent_pid);
        let sample_period = iv * self.rng.random_range(0.998..1.002);
        let tick = RequestTick {
            identity: &identity,
            sample_period,
            telemetry_interval: iv,
            slow_requests_threshold: SLOW_THRESHOLD,
            reporter_dropped_datagrams: None,
            request_count: count,
            request_throughput: count as f64 / iv,
            capacity_utilization: (busy / (threads as f64 * iv)).min(1.0),
            cpu_user_utilization: cpu_user,
            cpu_system_utilization: cpu_sys,
            cpu_utilization: cpu_user + cpu_sys,
            memory_rss: rss as u64,
            memory_max_rss: p.max_rss as u64,
            request_threads_maximum: threads as u64,
            request_threads_started: if sh.daemon {
                threads as u64
            } else {
                (threads as u64).min(p.lifetime_requests.max(1))
            },
            request_threads_active: active,
            server: server.phase(),
            application: app.phase(),
            request: request.phase(),
            gil_wait: Some(gil.phase()),
            input_read: input.phase(),
            output_write: output.phase(),
            queue_daemon: qd,
            input_bytes_total: in_bytes,
            input_reads_total: in_reads,
            output_bytes_total: out_bytes,
            output_writes_total: out_writes,
            status,
            slots: Slots {
                completed: &completed,
                busy_time: &slot_busy,
                cpu_time: &slot_cpu,
                current_elapsed: &current,
                max_duration: &max_dur,
            },
        };
        p.seq += 1;
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        if let Ok(n) = emit::request(&mut buf, p.pid, p.seq, now, &tick) {
            out.push(buf[..n].to_vec());
        }
        if self.gc {
            self.gc_tick(p, count, now, out);
        }
    }

    fn gc_tick(&mut self, p: &mut Proc, requests: u64, now: f64, out: &mut Vec<Vec<u8>>) {
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        // Embedded children host a sub-interpreter next to the main one.
        let interpreters: &[&[u8]] = if p.shape.daemon {
            &[b""]
        } else {
            &[b"", SUB_INTERPRETER]
        };
        for (ii, name) in interpreters.iter().enumerate() {
            let share = if ii == 0 { 1.0 } else { 0.3 };
            let gen0 = poisson(&mut self.rng, requests as f64 * share / 40.0);
            let mut events = Vec::new();
            for _ in 0..gen0 {
                p.gc_collections[0] += 1;
                let gen = if p.gc_collections[0].is_multiple_of(100) {
                    p.gc_collections[2] += 1;
                    2
                } else if p.gc_collections[0].is_multiple_of(10) {
                    p.gc_collections[1] += 1;
                    1
                } else {
                    0
                };
                let collected = self.rng.random_range(0..[400, 2000, 20000][gen]);
                p.gc_collected[gen] += collected;
                let dur = [0.0002, 0.0015, 0.025][gen] * lognormal(&mut self.rng, 1.0, 0.5);
                events.push(GcEvent {
                    start_stamp: now - self.interval * self.rng.random::<f64>(),
                    duration: dur,
                    generation: gen as u64,
                    collected,
                    uncollectable: 0,
                });
            }
            events.sort_by(|a, b| a.start_stamp.total_cmp(&b.start_stamp));
            let dropped = events.len().saturating_sub(64) as u64;
            events.truncate(64);
            let c = p.gc_collections;
            let k = p.gc_collected;
            let values: [u64; 18] = [
                self.rng.random_range(0..700),
                self.rng.random_range(0..10),
                self.rng.random_range(0..10),
                700,
                10,
                10,
                c[0],
                c[1],
                c[2],
                k[0],
                k[1],
                k[2],
                0,
                0,
                0,
                1,
                0,
                std::mem::take(&mut p.gc_dropped_pending),
            ];
            p.gc_dropped_pending = dropped;
            p.seq += 1;
            if let Ok(n) = emit::gc_snapshot(&mut buf, p.pid, p.seq, now, &values, name) {
                out.push(buf[..n].to_vec());
            }
            for ev in &events {
                p.seq += 1;
                if let Ok(n) = emit::gc_event(&mut buf, p.pid, p.seq, now, ev, name) {
                    out.push(buf[..n].to_vec());
                }
            }
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Sends datagrams, counting failures; reports the first failure of a run
/// of failures (the ingester may simply not be up yet).
struct Sender {
    sock: UnixDatagram,
    target: PathBuf,
    sent: u64,
    failed: u64,
    failing: bool,
    quiet: bool,
}

impl Sender {
    fn new(target: &Path, quiet: bool) -> io::Result<Sender> {
        let sock = UnixDatagram::unbound()?;
        // Blocking with a limit: lossless against a live ingester, never
        // stuck forever behind a stalled one.
        sock.set_write_timeout(Some(Duration::from_secs(1)))?;
        Ok(Sender {
            sock,
            target: target.to_path_buf(),
            sent: 0,
            failed: 0,
            failing: false,
            quiet,
        })
    }

    fn send(&mut self, d: &[u8]) {
        match self.sock.send_to(d, &self.target) {
            Ok(_) => {
                self.sent += 1;
                self.failing = false;
            }
            Err(e) => {
                self.failed += 1;
                if !self.failing && !self.quiet {
                    eprintln!("sendto failed: {e}");
                }
                self.failing = true;
            }
        }
    }
}

/// Runs `simulate`; returns the exit status.
pub fn run(args: SimulateArgs) -> anyhow::Result<i32> {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; installing it has no other effect.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut sim = Simulator::new(&args);
    let mut tx = Sender::new(&args.target, false)?;
    let start = Instant::now();
    let interval = Duration::from_secs_f64(sim.interval);
    let mut next = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        if args.duration > 0.0 && start.elapsed().as_secs_f64() >= args.duration {
            break;
        }
        for d in sim.tick(wall_now()) {
            tx.send(&d);
        }
        next += interval;
        while Instant::now() < next && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
        }
    }
    println!("sent {} datagrams ({} failed)", tx.sent, tx.failed);
    Ok(0)
}

/// Starts a simulator on a background thread, feeding `socket_path`
/// forever (for `serve --demo`): six processes over both daemon groups and
/// embedded children, 1 s ticks. Send failures are silent (the socket may
/// not be bound yet).
pub fn spawn_demo(socket_path: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("demo-simulator".into())
        .spawn(move || {
            let args = SimulateArgs {
                target: socket_path.clone(),
                processes: 6,
                interval: 1.0,
                duration: 0.0,
                seed: None,
                no_gc: false,
                load: 1.0,
                restart_probability: 0.0015,
                first_pid: 100000,
            };
            let mut sim = Simulator::new(&args);
            let Ok(mut tx) = Sender::new(&socket_path, true) else {
                return;
            };
            let interval = Duration::from_secs_f64(sim.interval);
            let mut next = Instant::now();
            loop {
                for d in sim.tick(wall_now()) {
                    tx.send(&d);
                }
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        })
        .expect("spawn demo simulator thread")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use wire::{id, Kind};

    fn args(n: u32) -> SimulateArgs {
        SimulateArgs {
            target: PathBuf::from("/nonexistent"),
            processes: n,
            interval: 1.0,
            duration: 0.0,
            seed: Some(7),
            no_gc: false,
            load: 0.2,
            restart_probability: 0.05,
            first_pid: 100000,
        }
    }

    /// Ten minutes of a 6-process site, every datagram decoded.
    fn run_sim(n: u32, ticks: usize) -> Vec<wire::Sample> {
        let mut sim = Simulator::new(&args(n));
        let mut all = Vec::new();
        for k in 0..ticks {
            for d in sim.tick(1_800_000_000.0 + k as f64) {
                assert!(d.len() <= wire::MAX_DATAGRAM);
                all.push(wire::decode(&d).expect("decodes"));
            }
        }
        all
    }

    #[test]
    fn stream_has_every_kind_and_shape() {
        let all = run_sim(6, 300);
        let mut kinds: HashMap<u8, usize> = HashMap::new();
        for s in &all {
            *kinds.entry(s.header.kind.0).or_default() += 1;
        }
        for k in [2u8, 4, 5, 6, 7, 8, 9] {
            assert!(
                kinds.get(&k).copied().unwrap_or(0) > 0,
                "kind {k}: {kinds:?}"
            );
        }
        let groups: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|s| s.header.kind == Kind::REQUEST)
            .map(|s| {
                s.text(id::PROCESS_GROUP)
                    .map(|c| c.into_owned())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            groups.into_iter().collect::<Vec<_>>(),
            vec!["".to_string(), "app".into(), "reports".into()]
        );
        // Daemon ticks with requests carry queue/daemon; embedded never.
        for s in all.iter().filter(|s| s.header.kind == Kind::REQUEST) {
            let daemon = s.get(id::PROCESS_GROUP).is_some();
            if !daemon {
                assert!(s.get(id::QUEUE_TIME).is_none());
            } else if s.u64(id::REQUEST_COUNT).unwrap() > 0 {
                assert!(s.get(id::QUEUE_TIME_BUCKETS).is_some());
            }
            let total: u64 = (0..5)
                .map(|k| s.u64(id::STATUS_1XX_TOTAL + k).unwrap())
                .sum();
            assert_eq!(total, s.u64(id::REQUEST_COUNT).unwrap());
        }
        // Embedded GC datagrams of the sub-interpreter carry its name.
        assert!(all
            .iter()
            .any(|s| s.header.kind == Kind::GC_SNAPSHOT && s.get(id::INTERPRETER_NAME).is_some()));
    }

    #[test]
    fn seq_is_per_process_from_one_and_lifecycle_is_ordered() {
        let all = run_sim(4, 300);
        let mut last: HashMap<u32, u32> = HashMap::new();
        let mut stopped: HashMap<u32, bool> = HashMap::new();
        for s in &all {
            let h = s.header;
            let prev = last.insert(h.pid, h.seq);
            match prev {
                None => {
                    assert_eq!(h.seq, 1, "pid {} starts at 1", h.pid);
                    assert_eq!(h.kind, Kind::PROCESS_STARTED);
                }
                Some(p) => assert_eq!(h.seq, p + 1, "pid {}", h.pid),
            }
            assert!(
                !stopped.get(&h.pid).copied().unwrap_or(false),
                "after STOPPED"
            );
            if h.kind == Kind::PROCESS_STOPPED {
                stopped.insert(h.pid, true);
            }
        }
        assert!(stopped.len() >= 2, "restarts happen: {}", stopped.len());
    }

    #[test]
    fn slow_requests_go_active_then_complete() {
        let all = run_sim(4, 300);
        let mut active: HashMap<String, usize> = HashMap::new();
        let mut completed = 0;
        for s in all.iter().filter(|s| s.header.kind == Kind::SLOW_REQUEST) {
            let log = s.text(id::SLOW_LOG_ID).unwrap().into_owned();
            match s.u64(id::SLOW_RECORD_STATE).unwrap() {
                0 => {
                    assert!(s.f64(id::SLOW_DURATION).unwrap() >= SLOW_THRESHOLD);
                    *active.entry(log).or_default() += 1;
                }
                _ => {
                    completed += 1;
                    assert!(s.u64(id::SLOW_STATUS).unwrap() >= 200);
                }
            }
        }
        assert!(completed > 5, "{completed}");
        assert!(active.values().any(|n| *n >= 2), "heartbeats repeat");
    }
}
