//! A worker slot: its spin lock, the epoch saying which of its two
//! interval buffers request threads fill, and the in-flight request's
//! claim (plus, with slow requests on, its strings and a ring of completed
//! slow records).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};

use wire::histogram::BUCKETS;

use super::phases::{add, bucket_of_us, PhaseSum, MIN_SENTINEL, PHASES};
use super::slow::{Detail, LiveIo, SlowRecord};

/// Phases rounded up to a power of two: one bucket row of [`Interval`].
const ROW: usize = 8;
const _: () = assert!(ROW >= PHASES);

/// One interval's worth of a slot's counters, laid out for the request
/// path: the first 240 bytes (four cache lines) hold everything a request
/// adds to besides its histogram buckets (count, status classes, busy time,
/// I/O, each phase's sum, minimum and maximum), and the buckets are stored
/// by bucket, then phase: row `b` holds bucket `b` of every phase, so a
/// request whose phases all take under a millisecond (bucket 0, most phases
/// of most requests) adds to one line for its seven histograms, not seven.
/// Status classes are 32-bit like `completed`: a class never counts more
/// requests than the slot completed in the interval.
#[repr(C, align(64))]
pub struct Interval {
    pub(super) completed: AtomicU32,
    pub(super) status: [AtomicU32; 5],
    pub(super) busy_us: AtomicU64,
    pub(super) max_duration_us: AtomicU64,
    pub(super) io: [AtomicU64; 4],
    sum_us: [AtomicU64; PHASES],
    min_us: [AtomicU64; PHASES],
    max_us: [AtomicU64; PHASES],
    buckets: Buckets,
}

/// `buckets[b][phase]`, starting on a line of its own.
#[repr(C, align(64))]
struct Buckets([[AtomicU32; ROW]; BUCKETS]);

impl Interval {
    pub(super) fn new() -> Interval {
        Interval {
            completed: AtomicU32::new(0),
            status: std::array::from_fn(|_| AtomicU32::new(0)),
            busy_us: AtomicU64::new(0),
            max_duration_us: AtomicU64::new(0),
            io: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: std::array::from_fn(|_| AtomicU64::new(0)),
            min_us: std::array::from_fn(|_| AtomicU64::new(MIN_SENTINEL)),
            max_us: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: Buckets(std::array::from_fn(|_| {
                std::array::from_fn(|_| AtomicU32::new(0))
            })),
        }
    }

    /// Adds one request's `us` in `phase` (single writer: the slot lock's
    /// holder). Not inlined: called for five or seven phases per request,
    /// one copy of its code is fewer instruction-cache lines to miss than
    /// seven.
    #[inline(never)]
    pub(super) fn record(&self, phase: usize, us: u64) {
        add(&self.sum_us[phase], us);
        if us < self.min_us[phase].load(Relaxed) {
            self.min_us[phase].store(us, Relaxed);
        }
        if us > self.max_us[phase].load(Relaxed) {
            self.max_us[phase].store(us, Relaxed);
        }
        let b = &self.buckets.0[bucket_of_us(us)][phase];
        b.store(b.load(Relaxed) + 1, Relaxed);
    }

    /// Moves `phase`'s aggregate into `out` and zeroes it (the reporter,
    /// once no writer can be in this buffer).
    pub(super) fn take_phase(&self, phase: usize, out: &mut PhaseSum) {
        out.sum_us += self.sum_us[phase].swap(0, Relaxed);
        out.min_us = out
            .min_us
            .min(self.min_us[phase].swap(MIN_SENTINEL, Relaxed));
        out.max_us = out.max_us.max(self.max_us[phase].swap(0, Relaxed));
        for (o, row) in out.buckets.iter_mut().zip(&self.buckets.0) {
            *o += row[phase].swap(0, Relaxed) as i32;
        }
    }
}

/// One worker slot. Its first cache line holds what every request touches
/// outside its interval buffer (the lock, the epoch, the claim), written by
/// the slot's own thread only.
#[repr(C, align(128))]
pub struct Slot {
    pub(super) lock: AtomicU32,
    pub(super) epoch: AtomicU32,
    pub(super) generation: AtomicU64,
    /// Claim time of the in-flight request, µs; 0 when idle.
    pub(super) claim_us: AtomicU64,
    pub(super) request_start_us: AtomicU64,
    /// Requests recorded on this slot since the process started (written
    /// under `lock`).
    pub(super) recorded: AtomicU64,
    pub(super) tid: AtomicI32,
    pub(super) ever_used: AtomicBool,
    pub(super) buf: [Interval; 2],
    /// Completed slow records lost since the last take (ring full, or a
    /// thread beyond the reported slots); written under `lock`.
    pub(super) slow_lost: AtomicU64,
    pub(super) detail: UnsafeCell<Detail>,
    pub(super) ring: UnsafeCell<Ring>,
    pub(super) live_io: LiveIo,
}

pub(super) struct Ring {
    pub(super) items: Box<[SlowRecord]>,
    pub(super) head: usize,
    pub(super) len: usize,
}

// SAFETY: `detail` and `ring` are only touched with `lock` held; everything
// else is atomic.
unsafe impl Sync for Slot {}
// SAFETY: as above; the raw pointers inside `Detail` are plain data.
unsafe impl Send for Slot {}

impl Slot {
    pub(super) fn new(ring_capacity: usize) -> Slot {
        Slot {
            lock: AtomicU32::new(0),
            epoch: AtomicU32::new(0),
            generation: AtomicU64::new(0),
            claim_us: AtomicU64::new(0),
            request_start_us: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            tid: AtomicI32::new(0),
            ever_used: AtomicBool::new(false),
            buf: [Interval::new(), Interval::new()],
            slow_lost: AtomicU64::new(0),
            detail: UnsafeCell::new(Detail::default()),
            ring: UnsafeCell::new(Ring {
                items: vec![SlowRecord::default(); ring_capacity].into_boxed_slice(),
                head: 0,
                len: 0,
            }),
            live_io: LiveIo::default(),
        }
    }

    #[inline]
    pub(super) fn lock(&self) {
        while self
            .lock
            .compare_exchange_weak(0, 1, SeqCst, Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    #[inline]
    pub(super) fn unlock(&self) {
        self.lock.store(0, Release);
    }

    /// Whether a request is in flight on this slot.
    #[inline]
    pub fn in_flight(&self) -> bool {
        self.claim_us.load(Relaxed) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn what_a_request_touches_is_packed() {
        // Every per-request field of an interval in its first four lines,
        // the bucket rows from the fifth, two rows to a line.
        assert_eq!(
            offset_of!(Interval, max_us) + size_of::<[AtomicU64; PHASES]>(),
            240
        );
        assert_eq!(offset_of!(Interval, buckets), 256);
        assert_eq!(size_of::<[AtomicU32; ROW]>(), 32);
        // The slot's own per-request fields in its first line.
        assert!(offset_of!(Slot, ever_used) < 64);
        assert_eq!(offset_of!(Slot, buf), 64);
    }

    #[test]
    fn bucket_rows_keep_each_phase_apart() {
        let i = Interval::new();
        i.record(0, 10);
        i.record(6, 5_000);
        i.record(6, 7);
        let mut a = PhaseSum::default();
        let mut g = PhaseSum::default();
        i.take_phase(0, &mut a);
        i.take_phase(6, &mut g);
        assert_eq!((a.sum_us, a.min_us, a.max_us), (10, 10, 10));
        assert_eq!(a.buckets.iter().sum::<i32>(), 1);
        assert_eq!(a.buckets[0], 1);
        assert_eq!((g.sum_us, g.min_us, g.max_us), (5_007, 7, 5_000));
        assert_eq!(g.buckets[0], 1);
        assert_eq!(g.buckets[bucket_of_us(5_000)], 1);
        // Taken: zero again.
        let mut z = PhaseSum::default();
        i.take_phase(6, &mut z);
        assert_eq!(
            (z.sum_us, z.min_us, z.buckets.iter().sum::<i32>()),
            (0, MIN_SENTINEL, 0)
        );
    }
}
