//! A worker slot: its spin lock, the epoch saying which of its two
//! interval buffers request threads fill, and the in-flight request's
//! claim (plus, with slow requests on, its strings and a ring of completed
//! slow records).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};

use super::phases::{PhaseAcc, PHASES};
use super::slow::{Detail, LiveIo, SlowRecord};

/// One interval's worth of a slot's counters.
pub struct Interval {
    pub(super) completed: AtomicU32,
    pub(super) busy_us: AtomicU64,
    pub(super) max_duration_us: AtomicU64,
    pub(super) phases: [PhaseAcc; PHASES],
    pub(super) io: [AtomicU64; 4],
    pub(super) status: [AtomicU64; 5],
}

impl Interval {
    pub(super) fn new() -> Interval {
        Interval {
            completed: AtomicU32::new(0),
            busy_us: AtomicU64::new(0),
            max_duration_us: AtomicU64::new(0),
            phases: std::array::from_fn(|_| PhaseAcc::new()),
            io: std::array::from_fn(|_| AtomicU64::new(0)),
            status: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One worker slot.
#[repr(align(128))]
pub struct Slot {
    pub(super) lock: AtomicU32,
    pub(super) epoch: AtomicU32,
    pub(super) buf: [Interval; 2],
    /// Claim time of the in-flight request, µs; 0 when idle.
    pub(super) claim_us: AtomicU64,
    pub(super) request_start_us: AtomicU64,
    pub(super) generation: AtomicU64,
    pub(super) ever_used: AtomicBool,
    pub(super) tid: AtomicI32,
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
            buf: [Interval::new(), Interval::new()],
            claim_us: AtomicU64::new(0),
            request_start_us: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            ever_used: AtomicBool::new(false),
            tid: AtomicI32::new(0),
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
