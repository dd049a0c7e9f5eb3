//! The simulated site: its process groups' shapes, the processes with what
//! they carry from tick to tick, and [`Simulator::tick`], which runs one
//! interval over every process (requests, restarts, GC) in a fixed order.

use super::SimulateArgs;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wire::emit::Identity;

/// Shape of a simulated process group.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    pub(super) group: &'static str,
    pub(super) threads: usize,
    pub(super) daemon: bool,
    /// Requests per second per process at load 1, mid-wave.
    pub(super) base_rps: f64,
    /// Median application time (s) and log-normal sigma.
    pub(super) median: f64,
    pub(super) sigma: f64,
    /// Slow requests started per second per process.
    pub(super) slow_rate: f64,
    /// `maximum-requests` (0 = none).
    pub(super) max_requests: u64,
    pub(super) rss_base: f64,
}

pub(super) const APP: Shape = Shape {
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
pub(super) const REPORTS: Shape = Shape {
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
pub(super) const EMBEDDED: Shape = Shape {
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

pub(super) const SLOW_THRESHOLD: f64 = 1.0;
pub(super) const SUB_INTERPRETER: &[u8] = b"localhost:80|/static-pages";

pub(super) const SLOW_PATHS: &[(&str, &str, &str)] = &[
    ("reports", "GET", "/reports/quarterly.pdf"),
    ("reports", "GET", "/reports/export.csv"),
    ("reports", "POST", "/reports/render"),
    ("app", "POST", "/api/orders/checkout"),
    ("app", "GET", "/api/search"),
    ("app", "POST", "/api/images/thumbnail"),
    ("", "GET", "/legacy/sitemap.xml"),
    ("", "POST", "/upload"),
];

pub(super) const REASONS: &[&str] = &[
    "restart_interval",
    "graceful_signal",
    "script_reload",
    "request_timeout",
    "deadlock_timeout",
    "cpu_time_limit",
];

/// One request holding a worker slot for longer than a tick.
#[derive(Clone, Debug)]
pub(super) struct LongRequest {
    pub(super) slot: usize,
    pub(super) start: f64,
    pub(super) total: f64,
    pub(super) log_id: String,
    pub(super) method: &'static str,
    pub(super) path: &'static str,
    pub(super) peer: String,
    pub(super) active_at_start: u64,
    pub(super) input_bytes: u64,
    pub(super) output_bytes: u64,
}

#[derive(Clone, Debug)]
pub(super) struct Proc {
    pub(super) shape: Shape,
    pub(super) pid: u32,
    pub(super) seq: u32,
    pub(super) started: f64,
    pub(super) lifetime_requests: u64,
    pub(super) max_requests: u64,
    pub(super) max_rss: f64,
    pub(super) leak: f64,
    pub(super) long: Vec<LongRequest>,
    pub(super) gc_collections: [u64; 3],
    pub(super) gc_collected: [u64; 3],
    pub(super) gc_dropped_pending: u64,
    /// Ticks until the first REQUEST (the reporter's first tick is a seed).
    pub(super) warmup: u32,
    /// Request-log-id counter.
    pub(super) next_id: u64,
}

/// The simulated site; [`Simulator::tick`] gives one interval's datagrams.
pub(super) struct Simulator {
    pub(super) rng: StdRng,
    pub(super) procs: Vec<Proc>,
    pub(super) next_pid: u32,
    pub(super) interval: f64,
    pub(super) load: f64,
    pub(super) restart_probability: f64,
    pub(super) gc: bool,
    pub(super) hostname: Vec<u8>,
    pub(super) parent_pid: u64,
    pub(super) t0: Option<f64>,
    /// End of the current burst (reporter time).
    pub(super) burst_until: f64,
}

pub(super) fn hostname() -> Vec<u8> {
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

pub(super) fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub(super) fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

pub(super) fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
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

impl Simulator {
    /// A site of `processes` processes.
    pub(crate) fn new(args: &SimulateArgs) -> Simulator {
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

    pub(super) fn new_proc(&mut self, shape: Shape, now: f64) -> Proc {
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

    pub(super) fn identity<'a>(
        host: &'a [u8],
        group: &'static str,
        parent_pid: u64,
    ) -> Identity<'a> {
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

    /// The datagrams of one tick ending at `now` (epoch seconds).
    pub(super) fn tick(&mut self, now: f64) -> Vec<Vec<u8>> {
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
}
