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

/// One interval's counters as a REQUEST datagram carries them, the
/// histograms sparse: a datagram fills a few of the 5 × 65 buckets, and
/// this is added per datagram to a process's totals and to its group's and
/// host's open history seconds, so the empty buckets are never touched
/// (a dense [`Totals`] would be zeroed and added three times over). Reused
/// from datagram to datagram: [`Interval::clear`] keeps the bucket list's
/// room.
#[derive(Clone, Debug, Default)]
pub(crate) struct Interval {
    /// Requests by status class, 1xx..5xx.
    pub(crate) requests_by_class: [u64; 5],
    /// Request-body bytes read.
    pub(crate) request_bytes: u64,
    /// Response-body bytes written.
    pub(crate) response_bytes: u64,
    /// The non-empty histogram buckets: (phase, bucket, requests).
    pub(crate) buckets: Vec<(u8, u8, u64)>,
    /// Per phase ([`PHASES`]): sum of durations, seconds.
    pub(crate) phase_sums: [f64; 5],
    /// Process user CPU seconds.
    pub(crate) cpu_user_seconds: f64,
    /// Process system CPU seconds.
    pub(crate) cpu_system_seconds: f64,
    /// Busy thread-seconds.
    pub(crate) busy_thread_seconds: f64,
}

impl Interval {
    /// Empties the interval, keeping the bucket list's allocation.
    pub(crate) fn clear(&mut self) {
        let mut buckets = std::mem::take(&mut self.buckets);
        buckets.clear();
        *self = Interval {
            buckets,
            ..Interval::default()
        };
    }
}

impl Totals {
    /// Adds one interval into `self`, touching only its non-empty buckets.
    pub(crate) fn add_interval(&mut self, i: &Interval) {
        for (a, b) in self.requests_by_class.iter_mut().zip(&i.requests_by_class) {
            *a += b;
        }
        self.request_bytes += i.request_bytes;
        self.response_bytes += i.response_bytes;
        for &(phase, bucket, n) in &i.buckets {
            if let Some(b) = self
                .phases
                .get_mut(usize::from(phase))
                .and_then(|p| p.buckets.get_mut(usize::from(bucket)))
            {
                *b += n;
            }
        }
        for (p, s) in self.phases.iter_mut().zip(&i.phase_sums) {
            p.sum += s;
        }
        self.cpu_user_seconds += i.cpu_user_seconds;
        self.cpu_system_seconds += i.cpu_system_seconds;
        self.busy_thread_seconds += i.busy_thread_seconds;
    }

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
