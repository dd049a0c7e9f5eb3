//! What the monitor keeps per process and per record: samples reduced to
//! what it shows ([`Tick`]), identity, life, the [`ProcessHistory`] of one
//! pid, slow records and lifecycle events.

use super::MAX_TICKS;
use std::collections::VecDeque;

/// One periodic `request_metrics` sample, reduced to what the monitor shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tick {
    pub stamp: f64,
    pub seq: u64,
    pub sample_period: f64,
    pub slow_requests_threshold: f64,
    pub request_count: f64,
    pub request_throughput: f64,
    pub capacity_utilization: f64,
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub cpu: f64,
    pub memory_rss: f64,
    pub memory_max_rss: f64,
    pub threads_maximum: f64,
    pub threads_active: f64,
    /// Per phase (see [`PHASES`](super::PHASES)): mean, absent when the field is absent.
    pub means: [Option<f64>; 5],
    pub mins: [Option<f64>; 5],
    pub maxs: [Option<f64>; 5],
    /// Per phase: the non-zero bucket counts as `(index, count)` (a
    /// histogram holds a dozen or so; 600 samples × processes adds up).
    pub buckets: [Vec<(u8, u32)>; 5],
    pub input_bytes: f64,
    pub output_bytes: f64,
    /// 1xx..5xx of this interval.
    pub status: [f64; 5],
    pub current_elapsed: Vec<f64>,
    /// Identity strings carried by the sample (non-empty only).
    pub identity: Identity,
}

/// Identity strings latched per process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identity {
    pub hostname: String,
    pub process_group: String,
    pub mod_wsgi_version: String,
    pub python_version: String,
    pub apache_version: String,
    pub mpm_name: String,
    pub process_parent_pid: u64,
}

impl Identity {
    pub(super) fn latch(&mut self, o: &Identity) {
        for (dst, src) in [
            (&mut self.hostname, &o.hostname),
            (&mut self.process_group, &o.process_group),
            (&mut self.mod_wsgi_version, &o.mod_wsgi_version),
            (&mut self.python_version, &o.python_version),
            (&mut self.apache_version, &o.apache_version),
            (&mut self.mpm_name, &o.mpm_name),
        ] {
            if !src.is_empty() {
                dst.clone_from(src);
            }
        }
        if o.process_parent_pid > 0 {
            self.process_parent_pid = o.process_parent_pid;
        }
    }
}

/// Where a process is in its life, from lifecycle events.
#[derive(Clone, Debug, PartialEq)]
pub enum Life {
    /// Started or simply sending samples.
    Running,
    /// Sent PROCESS_STOPPING.
    Stopping { reason: String, stamp: f64 },
    /// Sent PROCESS_STOPPED: it will send nothing more.
    Stopped { reason: String, stamp: f64 },
}

/// One process as the monitor knows it: identity, recent samples, life.
#[derive(Clone, Debug)]
pub struct ProcessHistory {
    pub pid: u32,
    pub identity: Identity,
    /// Latched from samples when > 0 (1.0 until known).
    pub sample_period: f64,
    /// Latched `slow_requests_threshold` (0 = feature off).
    pub slow_requests_threshold: f64,
    pub ticks: VecDeque<Tick>,
    pub life: Life,
    /// Local time the last message about this pid arrived.
    pub last_received_local: f64,
    /// As reported by the server (snapshot only).
    pub drops: u64,
}

impl ProcessHistory {
    pub(super) fn new(pid: u32, local_now: f64) -> ProcessHistory {
        ProcessHistory {
            pid,
            identity: Identity::default(),
            sample_period: 1.0,
            slow_requests_threshold: 0.0,
            ticks: VecDeque::new(),
            life: Life::Running,
            last_received_local: local_now,
            drops: 0,
        }
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&Tick> {
        self.ticks.back()
    }

    /// Samples whose stamp lies within `seconds` before `until`.
    pub fn ticks_within(&self, until: f64, seconds: f64) -> impl Iterator<Item = &Tick> {
        let from = until - seconds;
        // Newest last: walk back from the end while inside the window.
        let n = self
            .ticks
            .iter()
            .rev()
            .take_while(|t| t.stamp > from)
            .count();
        self.ticks
            .iter()
            .skip(self.ticks.len() - n)
            .filter(move |t| t.stamp <= until)
    }

    pub(super) fn push(&mut self, t: Tick) {
        self.identity.latch(&t.identity);
        if t.sample_period > 0.0 {
            self.sample_period = t.sample_period;
        }
        if t.slow_requests_threshold > 0.0 || self.slow_requests_threshold == 0.0 {
            self.slow_requests_threshold = t.slow_requests_threshold;
        }
        // A pid that sends samples again after STOPPED was reused.
        if let Life::Stopped { stamp, .. } = self.life {
            if t.stamp > stamp {
                self.life = Life::Running;
            }
        }
        if self.ticks.len() >= MAX_TICKS {
            self.ticks.pop_front();
        }
        // Only the newest sample's slot ages are ever shown.
        if let Some(prev) = self.ticks.back_mut() {
            prev.current_elapsed = Vec::new();
        }
        self.ticks.push_back(t);
    }
}

/// One slow-request record, as the monitor keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlowRecord {
    pub pid: u32,
    pub thread_id: u64,
    pub log_id: String,
    pub method: String,
    pub script_name: String,
    pub path_info: String,
    pub start_stamp: f64,
    pub duration: f64,
    /// 0 active, 1 completed.
    pub state: u64,
    pub status: u64,
    pub cpu_user_time: f64,
    pub cpu_system_time: f64,
    pub input_bytes: u64,
    pub input_reads: u64,
    pub output_bytes: u64,
    pub output_writes: u64,
    /// Reporter stamp of the datagram that last refreshed the entry.
    pub refreshed_stamp: f64,
}

impl SlowRecord {
    /// `script_name + path_info`, or `/`.
    pub fn url(&self) -> String {
        let u = format!("{}{}", self.script_name, self.path_info);
        if u.is_empty() {
            "/".to_string()
        } else {
            u
        }
    }
}

/// A lifecycle event (STARTED / STOPPING / STOPPED) as the monitor keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LifeEvent {
    pub kind: String,
    pub pid: u32,
    pub stamp: f64,
    pub hostname: String,
    pub process_group: String,
    pub shutdown_reason: String,
}
