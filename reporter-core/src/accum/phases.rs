//! Phases of a request: their indices, splitting a request's instants into
//! them, and one phase's aggregate as the reporter drains it (sum, exact
//! minimum and maximum, the wire's 65-bucket histogram). The per-slot
//! accumulators they are drained from are `slot::Interval`'s.

use std::sync::atomic::{AtomicU64, Ordering::*};

use wire::histogram::{bucket_index, BUCKETS};

/// Phase indices into an interval buffer's per-phase aggregates.
pub const SERVER: usize = 0;
/// WSGI application phase.
pub const APPLICATION: usize = 1;
/// Whole request (server + application).
pub const REQUEST: usize = 2;
/// Time inside `wsgi.input` reads.
pub const INPUT_READ: usize = 3;
/// Time handing output to Apache.
pub const OUTPUT_WRITE: usize = 4;
/// Apache child connecting to the daemon -> daemon picks it up (daemon mode).
pub const QUEUE: usize = 5;
/// Daemon picked the request up -> WSGI callable invoked (daemon mode).
pub const DAEMON: usize = 6;
/// Number of phases (QUEUE and DAEMON stay empty in embedded mode).
pub const PHASES: usize = 7;

/// No sample yet.
pub const MIN_SENTINEL: u64 = u64::MAX;

#[inline]
pub(super) fn add(a: &AtomicU64, v: u64) {
    // Single writer inside the slot's critical section: a plain
    // load + store is enough, no locked RMW needed.
    a.store(a.load(Relaxed).wrapping_add(v), Relaxed);
}

/// `bucket_index(us / 1e6)` without floating point below 1 ms (where it
/// is always bucket 0), which most phases of most requests are.
#[inline]
pub(super) fn bucket_of_us(us: u64) -> usize {
    if us < 1000 {
        0
    } else {
        bucket_index(us as f64 / 1e6)
    }
}

/// A drained phase aggregate (summed over slots).
#[derive(Clone, Copy, Debug)]
pub struct PhaseSum {
    /// Microseconds summed over requests.
    pub sum_us: u64,
    /// Exact minimum, µs (sentinel when none).
    pub min_us: u64,
    /// Exact maximum, µs.
    pub max_us: u64,
    /// 65 bucket counts.
    pub buckets: [i32; BUCKETS],
}

impl Default for PhaseSum {
    fn default() -> Self {
        PhaseSum {
            sum_us: 0,
            min_us: MIN_SENTINEL,
            max_us: 0,
            buckets: [0; BUCKETS],
        }
    }
}

/// One request's phases, µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// Apache side: arrival -> hand-off to the daemon (daemon mode) or ->
    /// the application (embedded).
    pub server: u64,
    /// Daemon mode only: connect -> the daemon picks the request up.
    pub queue: u64,
    /// Daemon mode only: pick-up -> WSGI callable invoked.
    pub daemon: u64,
    /// WSGI callable start -> end of response.
    pub application: u64,
}

/// Splits a request's instants into mod_wsgi 6.x's phases: server (arrival to
/// queue, or to the application in embedded mode), queue, daemon,
/// application. A `queue_start` of 0 means embedded mode. Each difference is clamped at 0.
#[inline]
pub fn phase_split(request: u64, queue: u64, daemon: u64, app: u64, end: u64) -> Phases {
    if queue == 0 {
        Phases {
            server: app.saturating_sub(request),
            application: end.saturating_sub(app),
            ..Phases::default()
        }
    } else {
        Phases {
            server: queue.saturating_sub(request),
            queue: daemon.saturating_sub(queue),
            daemon: app.saturating_sub(daemon),
            application: end.saturating_sub(app),
        }
    }
}

/// Status class index 0..5 for 1xx..5xx; 0 counts as 5xx; others none.
#[inline]
pub fn status_class(status: i32) -> Option<usize> {
    match status {
        0 => Some(4),
        100..=599 => Some((status / 100 - 1) as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_bucket_shortcut_agrees_with_the_wire_rule() {
        // Every µs value up to 3 s, and the octave edges beyond.
        let edges = (10..40).flat_map(|k| {
            let p = 1u64 << k;
            [p - 1, p, p + 1]
        });
        for us in (0..3_000_000u64).chain(edges) {
            assert_eq!(bucket_of_us(us), bucket_index(us as f64 / 1e6), "{us} µs");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(0), Some(4));
        assert_eq!(status_class(404), Some(3));
        assert_eq!(status_class(599), Some(4));
        assert_eq!(status_class(600), None);
        assert_eq!(status_class(99), None);
    }
}
