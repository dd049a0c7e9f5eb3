//! How much the model keeps: the count and byte bounds every ring, table
//! and process obeys (defaults as the reference where it has one).

use std::time::Duration;

/// Retention bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Periodic samples kept per process (reference: 600).
    pub(crate) samples_per_process: usize,
    /// GC snapshots kept per interpreter (reference: 600).
    pub(crate) gc_snapshots_per_interpreter: usize,
    /// Interpreters tracked per process (reference: unbounded).
    pub(crate) interpreters_per_process: usize,
    /// GC events kept by age, seconds of event stamps (reference: 300).
    pub(crate) gc_event_seconds: f64,
    /// GC events kept per process by count (reference: unbounded).
    pub gc_events_per_process: usize,
    /// Lifecycle events kept (reference: 500).
    pub(crate) lifecycle_events: usize,
    /// Slow-request entries kept (reference: unbounded).
    pub slow_entries: usize,
    /// Slow-request entries kept per process (reference: unbounded).
    pub(crate) slow_entries_per_process: usize,
    /// Processes tracked at once (reference: unbounded). A datagram that
    /// would add one more is refused and counted; the processes already
    /// tracked keep working, and a place frees when one goes stale.
    pub(crate) max_processes: usize,
    /// (host, process_group) groups whose totals `/metrics` exposes apart
    /// (about 430 series each). Groups are never forgotten (their counters
    /// must not go down), so past this bound a new group's figures are
    /// counted under [`super::totals::other_group`] (reference: no
    /// `/metrics`).
    pub(crate) max_groups: usize,
    /// A process not heard from for this long is dropped (reference: 300 s).
    pub(crate) stale_after: Duration,
    /// Bytes of history (samples, GC snapshots, GC events) kept per process
    /// at most (reference: unbounded). The count limits keep ordinary
    /// traffic well below it; it bounds datagrams of unusual size. When a
    /// record takes a process over, the oldest records of the same kind
    /// leave first (the newest always stays), then those of whichever other
    /// kind has the most.
    pub(crate) bytes_per_process: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            samples_per_process: 600,
            gc_snapshots_per_interpreter: 600,
            interpreters_per_process: 8,
            gc_event_seconds: 300.0,
            gc_events_per_process: 1000,
            lifecycle_events: 500,
            slow_entries: 10_000,
            slow_entries_per_process: 1_000,
            max_processes: 2_000,
            max_groups: 256,
            stale_after: Duration::from_secs(300),
            bytes_per_process: 4 << 20,
        }
    }
}
