//! The reporter: turns drained accumulators into datagrams, in the
//! reference's field order (via `wire::emit`), and counts what it could not
//! send. Pure Rust: the sink, clock and process probes are injected; the
//! same reporter serves an MPM child (embedded mode) and a mod_wsgi daemon
//! process.

use crate::accum::{self, Accounting, PhaseSum, SlowRecord, Snapshot};
use crate::app_metrics::{self, AppMetrics, Emit, Reading};
use crate::gc::GcRegistry;
use crate::sys::{ProcessStats, Sink};
use wire::emit::{self, Identity, Lifecycle, Phase, RequestTick, Slots};
use wire::MAX_DATAGRAM;

/// Identity strings, owned (captured once at start).
#[derive(Clone, Debug, Default)]
pub struct OwnedIdentity {
    /// e.g. `4.9.4`.
    pub mod_wsgi_version: Vec<u8>,
    /// e.g. `3.11.2`.
    pub python_version: Vec<u8>,
    /// e.g. `Apache/2.4.71`.
    pub apache_version: Vec<u8>,
    /// `event`, `prefork`, …
    pub mpm_name: Vec<u8>,
    /// `gethostname()`.
    pub hostname: Vec<u8>,
    /// Daemon group; empty in embedded mode.
    pub process_group: Vec<u8>,
    /// Apache parent pid.
    pub parent_pid: u64,
    /// `sys.getswitchinterval()` when known (daemon attach), else 0 (absent).
    pub switch_interval: f64,
}

impl OwnedIdentity {
    fn view(&self) -> Identity<'_> {
        Identity {
            mod_wsgi_version: &self.mod_wsgi_version,
            python_version: &self.python_version,
            apache_version: &self.apache_version,
            mpm_name: &self.mpm_name,
            hostname: &self.hostname,
            process_group: &self.process_group,
            process_parent_pid: self.parent_pid,
            // Read by the Python attach code (it holds the GIL); 0 = absent.
            switch_interval: self.switch_interval,
        }
    }
}

/// Parses `mod_wsgi/X` and `Python/Y` out of an Apache server description
/// such as `Apache/2.4.71 (Debian) mod_wsgi/4.9.4 Python/3.11`; returns
/// (apache base version, mod_wsgi version, python version).
pub fn parse_server_description(desc: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut apache = Vec::new();
    let mut wsgi = Vec::new();
    let mut py = Vec::new();
    for (i, tok) in desc.split(|b| b.is_ascii_whitespace()).enumerate() {
        if i == 0 && tok.starts_with(b"Apache/") {
            apache = tok.to_vec();
        } else if let Some(v) = tok.strip_prefix(b"mod_wsgi/") {
            wsgi = v.to_vec();
        } else if let Some(v) = tok.strip_prefix(b"Python/") {
            py = v.to_vec();
        }
    }
    (apache, wsgi, py)
}

/// First whitespace-delimited token of a Python version banner.
pub fn python_version_token(banner: &[u8]) -> Vec<u8> {
    banner
        .split(|b| *b == b' ' || *b == b'\t')
        .next()
        .unwrap_or(&[])
        .to_vec()
}

/// First-tick delay for a process: spreads the tick phase of many
/// processes over the interval (deterministic per pid), never below 10%.
pub fn first_tick_delay(pid: u32, interval_s: f64) -> f64 {
    let h = (pid as u64 ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let frac = (h >> 11) as f64 / (1u64 << 53) as f64;
    interval_s * (0.1 + 0.9 * frac)
}

/// Reporter settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Seconds.
    pub interval: f64,
    /// µs, 0 = off.
    pub slow_threshold_us: u64,
    /// Send field 217.
    pub capture_user_agent: bool,
    /// A mod_wsgi daemon process: queue and daemon phases are sent.
    pub daemon: bool,
}

/// One process's reporter state.
pub struct Reporter<S: Sink> {
    sink: S,
    settings: Settings,
    identity: OwnedIdentity,
    pid: u32,
    seq: u32,
    dropped: u64,
    sent: u64,
    start_us: u64,
    prev_stamp_us: u64,
    prev_cpu: (f64, f64),
    thread_cpu_prev: Vec<(i32, f64)>,
    lifetime_requests: u64,
    snapshot: Snapshot,
    slow_done: Vec<SlowRecord>,
    slow_active: Vec<SlowRecord>,
    slow_lost_total: u64,
    slow_lost_last_tick: u64,
    gc_scratch: Vec<crate::gc::Drained>,
    app_scratch: Vec<Reading>,
    app_ticks: u64,
    buf: Box<[u8; MAX_DATAGRAM]>,
    started: bool,
    stopped: bool,
}

impl<S: Sink> Reporter<S> {
    /// A reporter whose baselines are seeded at `now_us`: the first tick
    /// covers everything since then.
    pub fn new(
        sink: S,
        settings: Settings,
        identity: OwnedIdentity,
        pid: u32,
        slots: usize,
        now_us: u64,
        cpu: (f64, f64),
    ) -> Self {
        Reporter {
            sink,
            settings,
            identity,
            pid,
            seq: 0,
            dropped: 0,
            sent: 0,
            start_us: now_us,
            prev_stamp_us: now_us,
            prev_cpu: cpu,
            thread_cpu_prev: vec![(0, 0.0); slots],
            lifetime_requests: 0,
            snapshot: Snapshot::new(slots),
            slow_done: Vec::new(),
            slow_active: Vec::new(),
            slow_lost_total: 0,
            slow_lost_last_tick: 0,
            gc_scratch: Vec::new(),
            app_scratch: Vec::new(),
            app_ticks: 0,
            buf: Box::new([0; MAX_DATAGRAM]),
            started: false,
            stopped: false,
        }
    }

    /// Datagrams that could not be sent so far (field 19).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Datagrams sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Requests finished since start (as reported so far).
    pub fn lifetime_requests(&self) -> u64 {
        self.lifetime_requests
    }

    /// Completed slow records lost in the module (never encoded), since
    /// start. Each is also in [`Reporter::dropped`] and took a `seq`.
    pub fn slow_records_lost(&self) -> u64 {
        self.slow_lost_total
    }

    /// Completed slow records lost during the last [`Reporter::tick`]
    /// (for a once-per-tick log line).
    pub fn slow_records_lost_last_tick(&self) -> u64 {
        self.slow_lost_last_tick
    }

    /// The sink (tests).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn emit(&mut self, len: Result<usize, wire::EncodeError>) {
        match len {
            Ok(n) => {
                if self.sink.send(&self.buf[..n]) {
                    self.sent += 1;
                } else {
                    self.dropped += 1;
                }
            }
            // Cannot happen with the bounded field set; count it anyway.
            Err(_) => self.dropped += 1,
        }
    }

    /// PROCESS_STARTED, stamped with the reporter start.
    pub fn started(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let seq = self.next_seq();
        let id = self.identity.clone();
        let r = emit::process_started(
            &mut self.buf[..],
            self.pid,
            seq,
            self.start_us as f64 / 1e6,
            &id.view(),
        );
        self.emit(r);
    }

    /// One tick: REQUEST, then completed slow records, then active ones.
    pub fn tick(
        &mut self,
        acc: &Accounting,
        now_us: u64,
        ps: &ProcessStats,
        thread_cpu: &dyn Fn(i32) -> Option<f64>,
    ) {
        acc.snapshot(now_us, &mut self.snapshot);
        // Completed slow records first: those lost in the module count as
        // datagrams sent and lost, so field 19 of this tick's REQUEST
        // includes them and the receiver sees one seq gap per record,
        // just before that REQUEST (its seq gaps keep agreeing with
        // field 19).
        let mut done = std::mem::take(&mut self.slow_done);
        let lost = if self.settings.slow_threshold_us > 0 {
            acc.take_completed_slow(&mut done)
        } else {
            done.clear();
            0
        };
        self.slow_lost_last_tick = lost;
        self.slow_lost_total += lost;
        self.dropped += lost;
        self.seq = self.seq.wrapping_add(lost as u32);
        let period = ((now_us.saturating_sub(self.prev_stamp_us)) as f64 / 1e6).max(1e-9);
        self.prev_stamp_us = now_us;
        let du = (ps.cpu_user - self.prev_cpu.0).max(0.0) / period;
        let ds = (ps.cpu_system - self.prev_cpu.1).max(0.0) / period;
        self.prev_cpu = (ps.cpu_user, ps.cpu_system);
        let snap = &self.snapshot;
        let n = snap.completed.len();
        let max_threads = n as u64;

        // Per-slot thread CPU from the threads' CPU clocks (no request-path
        // cost): what the slot's thread used since the previous tick.
        let mut cpu = [0f64; wire::MAX_SLOTS];
        let slots = cpu
            .iter_mut()
            .zip(&snap.tids)
            .zip(&mut self.thread_cpu_prev);
        for ((cpu, &tid), prev) in slots.take(n.min(wire::MAX_SLOTS)) {
            if tid <= 0 {
                continue;
            }
            if let Some(now_cpu) = thread_cpu(tid) {
                if prev.0 == tid {
                    *cpu = (now_cpu - prev.1).max(0.0);
                }
                *prev = (tid, now_cpu);
            }
        }
        let m = n.min(wire::MAX_SLOTS);
        let mut busy = [0f64; wire::MAX_SLOTS];
        let mut cur = [0f64; wire::MAX_SLOTS];
        let mut maxd = [0f64; wire::MAX_SLOTS];
        for i in 0..m {
            busy[i] = snap.busy_us[i] as f64 / 1e6;
            cur[i] = (snap.current_elapsed_us[i] / 1000) as f64 / 1000.0;
            maxd[i] = (snap.max_duration_us[i] / 1000) as f64 / 1000.0;
        }
        // (sum s, count, min s, max s) per phase; the count comes from the
        // histogram, so each mean divides by the requests it recorded.
        let phase = |p: &PhaseSum| -> (f64, u64, f64, f64) {
            let count = p.buckets.iter().map(|&c| c as u64).sum::<u64>();
            let min = if count > 0 {
                p.min_us as f64 / 1e6
            } else {
                0.0
            };
            (p.sum_us as f64 / 1e6, count, min, p.max_us as f64 / 1e6)
        };
        let ph: [(f64, u64, f64, f64); accum::PHASES] =
            std::array::from_fn(|i| phase(&snap.phases[i]));
        let to_phase = |i: usize| Phase {
            sum: ph[i].0,
            count: ph[i].1,
            min: ph[i].2,
            max: ph[i].3,
            buckets: &snap.phases[i].buckets,
        };
        self.lifetime_requests += snap.request_count;
        let identity = self.identity.view();
        let tick = RequestTick {
            identity: &identity,
            sample_period: period,
            telemetry_interval: self.settings.interval,
            slow_requests_threshold: self.settings.slow_threshold_us as f64 / 1e6,
            reporter_dropped_datagrams: Some(self.dropped),
            request_count: snap.request_count,
            request_throughput: snap.request_count as f64 / period,
            capacity_utilization: snap.busy_us_total as f64
                / 1e6
                / period
                / max_threads.max(1) as f64,
            cpu_user_utilization: du,
            cpu_system_utilization: ds,
            cpu_utilization: du + ds,
            memory_rss: ps.rss,
            memory_max_rss: ps.max_rss.max(ps.rss),
            request_threads_maximum: max_threads,
            request_threads_started: snap.threads_started,
            request_threads_active: snap.threads_active,
            server: to_phase(accum::SERVER),
            application: to_phase(accum::APPLICATION),
            request: to_phase(accum::REQUEST),
            gil_wait: None,
            input_read: to_phase(accum::INPUT_READ),
            output_write: to_phase(accum::OUTPUT_WRITE),
            // As mod_wsgi 6.x: only daemon processes, only when requests
            // completed in the interval.
            queue_daemon: (self.settings.daemon && snap.request_count > 0)
                .then(|| (to_phase(accum::QUEUE), to_phase(accum::DAEMON))),
            input_bytes_total: snap.io[0],
            input_reads_total: snap.io[1],
            output_bytes_total: snap.io[2],
            output_writes_total: snap.io[3],
            status: snap.status,
            slots: Slots {
                completed: &snap.completed[..m],
                busy_time: &busy[..m],
                cpu_time: &cpu[..m],
                current_elapsed: &cur[..m],
                max_duration: &maxd[..m],
            },
        };
        let seq = self.seq.wrapping_add(1);
        self.seq = seq;
        let r = emit::request(&mut self.buf[..], self.pid, seq, now_us as f64 / 1e6, &tick);
        self.emit(r);

        let mut active = std::mem::take(&mut self.slow_active);
        acc.scan_active_slow(now_us, &mut active);
        for rec in done.iter().chain(active.iter()) {
            self.send_slow(rec, now_us);
        }
        self.slow_done = done;
        self.slow_active = active;
    }

    fn send_slow(&mut self, r: &SlowRecord, stamp_us: u64) {
        use accum::text::*;
        let ph = accum::phase_split(
            r.request_start_us,
            r.queue_start_us,
            r.daemon_start_us,
            r.claim_us,
            r.end_us,
        );
        let secs = |us: u64| us as f64 / 1e6;
        let ua: &[u8] = if self.settings.capture_user_agent {
            r.text.get(USER_AGENT)
        } else {
            b""
        };
        let w = emit::SlowRecord {
            state: r.completed as u64,
            // Arrival, so duration = server + application (compatibility.md C3).
            start_stamp: r.request_start_us as f64 / 1e6,
            duration: r.end_us.saturating_sub(r.request_start_us) as f64 / 1e6,
            thread_id: r.thread_id,
            server_pid: if r.server_pid != 0 {
                r.server_pid
            } else {
                self.pid as u64
            },
            input_bytes: r.io.input_bytes,
            input_reads: r.io.input_reads,
            output_bytes: r.io.output_bytes,
            output_writes: r.io.output_writes,
            cpu_user_time: r.cpu_user_us as f64 / 1e6,
            cpu_system_time: r.cpu_system_us as f64 / 1e6,
            server_time: secs(ph.server),
            queue_time: secs(ph.queue),
            daemon_time: secs(ph.daemon),
            application_time: secs(ph.application),
            gil_wait_time: 0.0,
            gil_wait_count: 0,
            input_read_time: r.io.input_read_us as f64 / 1e6,
            output_write_time: r.io.output_write_us as f64 / 1e6,
            active_at_start: r.active_at_start,
            active_at_completion: r.active_at_completion,
            status: r.status,
            log_id: r.text.get(LOG_ID),
            method: r.text.get(METHOD),
            scheme: r.text.get(SCHEME),
            hostname: r.text.get(HOSTNAME),
            script_name: r.text.get(SCRIPT_NAME),
            path_info: r.text.get(PATH_INFO),
            protocol: r.text.get(PROTOCOL),
            peer_ip: r.text.get(PEER_IP),
            user_agent: ua,
        };
        let seq = self.next_seq();
        let res = emit::slow_request(&mut self.buf[..], self.pid, seq, stamp_us as f64 / 1e6, &w);
        self.emit(res);
    }

    /// The application's own metrics (kind 10): what changed since the
    /// last tick, every name once in [`app_metrics::REFRESH_TICKS`] ticks.
    /// Called just before [`Reporter::tick`], so that the REQUEST datagram
    /// stays the newest of the tick (the reference ingester shows a
    /// process's figures from its newest sample of the periodic kinds).
    /// A datagram that cannot be sent counts in field 19 like any other,
    /// and its names go out again next tick.
    pub fn app_tick(&mut self, app: &AppMetrics, now_us: u64) {
        let full = self.app_ticks.is_multiple_of(app_metrics::REFRESH_TICKS);
        self.app_ticks += 1;
        let (seq, sink, sent, dropped) = (
            &mut self.seq,
            &mut self.sink,
            &mut self.sent,
            &mut self.dropped,
        );
        app.drain(
            full,
            &mut self.app_scratch,
            &mut self.buf,
            Emit {
                pid: self.pid,
                seq: || {
                    *seq = seq.wrapping_add(1);
                    *seq
                },
                stamp: now_us as f64 / 1e6,
                hostname: &self.identity.hostname,
                process_group: &self.identity.process_group,
                send: |d: &[u8]| {
                    let ok = sink.send(d);
                    if ok {
                        *sent += 1;
                    } else {
                        *dropped += 1;
                    }
                    ok
                },
            },
        );
    }

    /// GC_SNAPSHOT per attached interpreter, each followed by its GC_EVENTs
    /// (after REQUEST and slow records, as mod_wsgi 6.x orders them).
    pub fn gc_tick(&mut self, reg: &GcRegistry, now_us: u64) {
        let mut drained = std::mem::take(&mut self.gc_scratch);
        let names = reg.drain(&mut drained);
        let stamp = now_us as f64 / 1e6;
        for d in &drained {
            let name: &[u8] = if names { &d.name } else { b"" };
            let seq = self.next_seq();
            let r = emit::gc_snapshot(&mut self.buf[..], self.pid, seq, stamp, &d.values, name);
            self.emit(r);
            for ev in &d.events {
                let seq = self.next_seq();
                let r = emit::gc_event(&mut self.buf[..], self.pid, seq, stamp, ev, name);
                self.emit(r);
            }
        }
        self.gc_scratch = drained;
    }

    /// Sets `sys.getswitchinterval()` (field 13) once the attach code has
    /// read it.
    pub fn set_switch_interval(&mut self, v: f64) {
        if v > 0.0 {
            self.identity.switch_interval = v;
        }
    }

    /// Sets the daemon group name (field 7) when it is learnt late.
    pub fn set_process_group(&mut self, g: &[u8]) {
        if self.identity.process_group.is_empty() {
            self.identity.process_group = g.to_vec();
        }
    }

    /// PROCESS_STOPPING.
    pub fn stopping(&mut self, reason: &[u8], active: u64) {
        let l = Lifecycle {
            hostname: &self.identity.hostname.clone(),
            process_group: &self.identity.process_group.clone(),
            shutdown_reason: reason,
            active_requests_at_decision: active,
            ..Lifecycle::default()
        };
        let seq = self.next_seq();
        let r = emit::process_stopping(
            &mut self.buf[..],
            self.pid,
            seq,
            crate::sys::now_us() as f64 / 1e6,
            &l,
        );
        self.emit(r);
    }

    /// The sink waits longer for a full queue from now on (the final
    /// flush, see [`Sink::linger`]).
    pub fn linger(&mut self, budget: std::time::Duration) {
        self.sink.linger(budget);
    }

    /// PROCESS_STOPPED (at most once).
    pub fn stopped(&mut self, reason: &[u8], active: u64, now_us: u64) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let host = self.identity.hostname.clone();
        let group = self.identity.process_group.clone();
        let l = Lifecycle {
            hostname: &host,
            process_group: &group,
            shutdown_reason: reason,
            process_uptime: now_us.saturating_sub(self.start_us) as f64 / 1e6,
            lifetime_request_count: self.lifetime_requests,
            active_requests_at_exit: active,
            graceful_drain: active == 0,
            ..Lifecycle::default()
        };
        let seq = self.next_seq();
        let r = emit::process_stopped(&mut self.buf[..], self.pid, seq, now_us as f64 / 1e6, &l);
        self.emit(r);
    }
}

#[cfg(test)]
pub(crate) mod tests;
