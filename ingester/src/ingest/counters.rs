//! Counters that only go up and merge by addition: requests by status
//! class, bytes, per-phase latency histograms (the wire's buckets), CPU and
//! busy thread-seconds, GC. The per-process totals of `/metrics`
//! (`state::totals`) and the history's points (`history`) both hold them;
//! this module knows neither.

use wire::histogram::BUCKETS;
use wire::id;

/// The phases exported as histograms: name, histogram field, mean field.
/// `request` is the whole request (server + queue + daemon + application).
pub(crate) const PHASES: [(&str, u16, u16); 5] = [
    ("server", id::SERVER_TIME_BUCKETS, id::SERVER_TIME),
    ("queue", id::QUEUE_TIME_BUCKETS, id::QUEUE_TIME),
    ("daemon", id::DAEMON_TIME_BUCKETS, id::DAEMON_TIME),
    (
        "application",
        id::APPLICATION_TIME_BUCKETS,
        id::APPLICATION_TIME,
    ),
    ("total", id::REQUEST_TIME_BUCKETS, id::REQUEST_TIME),
];

/// Python GC generations.
pub(crate) const GENERATIONS: usize = 3;

/// One phase's cumulative histogram.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PhaseTotals {
    /// Requests per wire bucket (not cumulative across buckets).
    pub(crate) buckets: [u64; BUCKETS],
    /// Sum of durations, seconds (interval mean × interval count).
    pub(crate) sum: f64,
}

impl Default for PhaseTotals {
    fn default() -> Self {
        PhaseTotals {
            buckets: [0; BUCKETS],
            sum: 0.0,
        }
    }
}

impl PhaseTotals {
    /// Requests recorded.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// Counters that only go up (per process, per group, or summed).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Totals {
    /// Requests by status class, 1xx..5xx (fields 120-124).
    pub(crate) requests_by_class: [u64; 5],
    /// Request-body bytes read (field 100).
    pub(crate) request_bytes: u64,
    /// Response-body bytes written (field 102).
    pub(crate) response_bytes: u64,
    /// [`PHASES`], in order.
    pub(crate) phases: [PhaseTotals; 5],
    /// Process user CPU seconds.
    pub(crate) cpu_user_seconds: f64,
    /// Process system CPU seconds.
    pub(crate) cpu_system_seconds: f64,
    /// Busy thread-seconds (capacity utilisation × period × threads).
    pub(crate) busy_thread_seconds: f64,
    /// Completed slow-request records.
    pub(crate) slow_completed: u64,
    /// GC collections per generation.
    pub(crate) gc_collections: [u64; GENERATIONS],
    /// GC pause seconds per generation (from GC events).
    pub(crate) gc_pause_seconds: [f64; GENERATIONS],
}

impl Totals {
    /// Adds `o` into `self`.
    pub(crate) fn add(&mut self, o: &Totals) {
        for (a, b) in self.requests_by_class.iter_mut().zip(&o.requests_by_class) {
            *a += b;
        }
        self.request_bytes += o.request_bytes;
        self.response_bytes += o.response_bytes;
        for (a, b) in self.phases.iter_mut().zip(&o.phases) {
            for (x, y) in a.buckets.iter_mut().zip(&b.buckets) {
                *x += y;
            }
            a.sum += b.sum;
        }
        self.cpu_user_seconds += o.cpu_user_seconds;
        self.cpu_system_seconds += o.cpu_system_seconds;
        self.busy_thread_seconds += o.busy_thread_seconds;
        self.slow_completed += o.slow_completed;
        for g in 0..GENERATIONS {
            self.gc_collections[g] += o.gc_collections[g];
            self.gc_pause_seconds[g] += o.gc_pause_seconds[g];
        }
    }
}
