//! One process's REQUEST datagram per tick: offered load, slow requests
//! taking and leaving worker slots, short requests spread over the free
//! slots, the per-phase and per-slot figures the reporter would send, and
//! the slow-request records.

use super::model::{
    lognormal, poisson, LongRequest, Proc, Shape, Simulator, SLOW_PATHS, SLOW_THRESHOLD,
};
use rand::Rng;
use wire::emit::{self, Phase, RequestTick, Slots, SlowRecord};
use wire::histogram::{bucket_index, BUCKETS};

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

/// What one tick's requests add up to: per phase, in bytes and status
/// classes, and per worker slot (the REQUEST datagram's figures).
struct Interval {
    /// Requests completed in the tick.
    count: u64,
    server: Acc,
    queue: Acc,
    daemon: Acc,
    app: Acc,
    request: Acc,
    gil: Acc,
    input: Acc,
    output: Acc,
    /// Seconds of application time (then of slot time) in the tick.
    busy: f64,
    in_bytes: u64,
    in_reads: u64,
    out_bytes: u64,
    out_writes: u64,
    /// Requests per status class (1xx to 5xx).
    status: [u64; 5],
    /// Per slot: requests completed, busy and CPU seconds, the longest
    /// request (ms resolution), the elapsed time of the one running now.
    completed: Vec<i32>,
    slot_busy: Vec<f64>,
    slot_cpu: Vec<f64>,
    max_dur: Vec<f64>,
    current: Vec<f64>,
}

impl Interval {
    fn new(threads: usize, count: u64) -> Interval {
        Interval {
            count,
            server: Acc::new(),
            queue: Acc::new(),
            daemon: Acc::new(),
            app: Acc::new(),
            request: Acc::new(),
            gil: Acc::new(),
            input: Acc::new(),
            output: Acc::new(),
            busy: 0.0,
            in_bytes: 0,
            in_reads: 0,
            out_bytes: 0,
            out_writes: 0,
            status: [0; 5],
            completed: vec![0; threads],
            slot_busy: vec![0.0; threads],
            slot_cpu: vec![0.0; threads],
            max_dur: vec![0.0; threads],
            current: vec![0.0; threads],
        }
    }
}

impl Simulator {
    /// One tick of process `p` (the `index`th, `t` seconds into the run):
    /// its REQUEST datagram, the slow-request records due, and its GC
    /// datagrams. The steps draw from the generator in a fixed order, so
    /// a seed gives the same stream.
    pub(super) fn request_tick(
        &mut self,
        p: &mut Proc,
        index: usize,
        t: f64,
        now: f64,
        bursting: bool,
        out: &mut Vec<Vec<u8>>,
    ) {
        let sh = p.shape;
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
        let count = poisson(&mut self.rng, offered * self.interval);

        let slots_busy = self.maybe_start_slow(p, now, burst);
        let mut tick = Interval::new(sh.threads, count);
        let (free, rho) = self.short_requests(p, &slots_busy, bursting, &mut tick);
        self.slow_progress(p, now, &mut tick, out);
        self.in_flight(sh, &free, rho, &mut tick);
        let requests = self.send_request(p, tick, now, out);
        if self.gc {
            self.gc_tick(p, requests, now, out);
        }
    }

    /// Slow requests occupy slots across ticks: maybe starts one in a free
    /// slot. Returns which slots slow requests hold.
    fn maybe_start_slow(&mut self, p: &mut Proc, now: f64, burst: f64) -> Vec<bool> {
        let iv = self.interval;
        let sh = p.shape;
        let threads = sh.threads;
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
        slots_busy
    }

    /// Short requests: service times, capped by the free slots' capacity,
    /// spread over the free slots. Returns the free slots and the
    /// utilisation the load asked for (`rho`, up to 1.5).
    fn short_requests(
        &mut self,
        p: &Proc,
        slots_busy: &[bool],
        bursting: bool,
        t: &mut Interval,
    ) -> (Vec<usize>, f64) {
        let iv = self.interval;
        let sh = p.shape;
        let threads = sh.threads;
        let free_slots = threads - p.long.len();
        let capacity_s = free_slots as f64 * iv;
        let mut samples = Vec::with_capacity(t.count.min(20000) as usize);
        for _ in 0..t.count.min(20000) {
            samples.push(lognormal(&mut self.rng, sh.median, sh.sigma).min(0.95));
        }
        // Overload: what does not fit waits (queue) or is not served this tick.
        let demand: f64 = samples.iter().sum();
        let rho = (demand / capacity_s.max(1e-9)).min(1.5);
        if rho > 1.0 {
            let keep = (samples.len() as f64 / rho) as usize;
            samples.truncate(keep);
            t.count = keep as u64;
        }
        let err_rate = if bursting && sh.group == "app" {
            0.04
        } else {
            0.003
        };
        let free: Vec<usize> = (0..threads).filter(|s| !slots_busy[*s]).collect();
        if free.is_empty() {
            // Every slot is held by a long request: nothing else is served.
            samples.clear();
            t.count = 0;
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
            t.server.add(s);
            t.app.add(*a);
            if sh.daemon {
                t.queue.add(q);
                t.daemon.add(d);
            }
            t.request.add(total);
            t.gil.add(a * 0.02 * self.rng.random::<f64>());
            t.input.add(0.00002 * self.rng.random::<f64>());
            t.output.add(a * 0.05 * self.rng.random::<f64>());
            t.busy += a;
            let slot = free[k % used];
            t.completed[slot] += 1;
            t.slot_busy[slot] += a;
            t.slot_cpu[slot] += a * 0.5;
            t.max_dur[slot] = t.max_dur[slot].max((total * 1000.0).floor() / 1000.0);
            if self.rng.random::<f64>() < 0.2 {
                let b = self.rng.random_range(200..60_000);
                t.in_bytes += b;
                t.in_reads += 1 + b / 8192;
            }
            let ob: u64 = lognormal(&mut self.rng, 6000.0, 1.0) as u64;
            t.out_bytes += ob;
            t.out_writes += 1 + ob / 16384;
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
            t.status[class] += 1;
        }
        (free, rho)
    }

    /// Slow requests: active records past the threshold, completion at the
    /// end (counted in the tick like any request).
    fn slow_progress(&mut self, p: &mut Proc, now: f64, t: &mut Interval, out: &mut Vec<Vec<u8>>) {
        let iv = self.interval;
        let sh = p.shape;
        let mut finished = Vec::new();
        for (k, r) in p.long.iter().enumerate() {
            let elapsed = now - r.start;
            if elapsed >= r.total {
                finished.push(k);
            } else {
                t.current[r.slot] = (elapsed * 1000.0).floor() / 1000.0;
                t.slot_busy[r.slot] += iv.min(elapsed);
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
            t.count += 1;
            t.server.add(0.0004);
            t.app.add(d);
            t.request.add(d + 0.001);
            if sh.daemon {
                t.queue.add(0.0005);
                t.daemon.add(0.0004);
            }
            t.completed[r.slot] += 1;
            t.max_dur[r.slot] = t.max_dur[r.slot].max((d * 1000.0).floor() / 1000.0);
            t.slot_cpu[r.slot] += d * 0.4;
            t.status[1] += 1;
        }
    }

    /// In-flight short requests at the snapshot instant, in the free slots.
    fn in_flight(&mut self, sh: Shape, free: &[usize], rho: f64, t: &mut Interval) {
        for s in free {
            if self.rng.random::<f64>() < (rho * 0.5).min(0.9) {
                t.current[*s] = (lognormal(&mut self.rng, sh.median, sh.sigma) * 1000.0)
                    .floor()
                    .max(1.0)
                    / 1000.0;
            }
        }
    }

    /// The REQUEST datagram of the tick, with the process's memory and CPU;
    /// returns the requests it counts.
    fn send_request(
        &mut self,
        p: &mut Proc,
        mut t: Interval,
        now: f64,
        out: &mut Vec<Vec<u8>>,
    ) -> u64 {
        let iv = self.interval;
        let sh = p.shape;
        let threads = sh.threads;
        for b in t.slot_busy.iter_mut() {
            *b = b.min(iv);
        }
        let busy = t
            .slot_busy
            .iter()
            .sum::<f64>()
            .max(t.busy.min(threads as f64 * iv));
        let active = (0..threads)
            .filter(|s| t.completed[*s] > 0 || t.current[*s] > 0.0)
            .count() as u64;
        let count = t.count;
        p.lifetime_requests += count;

        // Memory: a slow leak reset by restarts, plus allocation noise.
        p.leak += count as f64 * 300.0;
        let rss = sh.rss_base + p.leak + 2.0 * 1048576.0 * self.rng.random::<f64>();
        p.max_rss = p.max_rss.max(rss);
        // Process CPU accrues while requests run (slot CPU is credited at
        // completion, so it cannot be used here).
        let cpu_user = (busy * 0.25 / iv).min(threads as f64);
        let cpu_sys = cpu_user * 0.15 + 0.002;
        let qd = if sh.daemon && t.queue.count > 0 {
            Some((t.queue.phase(), t.daemon.phase()))
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
            server: t.server.phase(),
            application: t.app.phase(),
            request: t.request.phase(),
            gil_wait: Some(t.gil.phase()),
            input_read: t.input.phase(),
            output_write: t.output.phase(),
            queue_daemon: qd,
            input_bytes_total: t.in_bytes,
            input_reads_total: t.in_reads,
            output_bytes_total: t.out_bytes,
            output_writes_total: t.out_writes,
            status: t.status,
            slots: Slots {
                completed: &t.completed,
                busy_time: &t.slot_busy,
                cpu_time: &t.slot_cpu,
                current_elapsed: &t.current,
                max_duration: &t.max_dur,
            },
        };
        p.seq += 1;
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        if let Ok(n) = emit::request(&mut buf, p.pid, p.seq, now, &tick) {
            out.push(buf[..n].to_vec());
        }
        count
    }

    pub(super) fn slow_record(
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

    pub(super) fn log_id(&mut self, p: &mut Proc) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        p.next_id += 1;
        let mut s: String = (0..19)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        s.push_str(&format!("{:08X}", p.next_id & 0xffff_ffff));
        s
    }
}
