//! The reporter's drain of one interval: every slot's old buffer summed
//! into a [`Snapshot`], plus each slot's in-flight request.

use std::sync::atomic::Ordering::*;

use super::phases::{PhaseSum, PHASES};
use super::Accounting;

/// One drained interval, summed over slots; reused tick after tick.
pub struct Snapshot {
    /// Requests finished.
    pub request_count: u64,
    /// Sum of busy µs over slots.
    pub busy_us_total: u64,
    /// Per phase.
    pub phases: [PhaseSum; PHASES],
    /// in bytes, reads, out bytes, writes.
    pub io: [u64; 4],
    /// 1xx..5xx.
    pub status: [u64; 5],
    /// Slots that ever ran a request.
    pub threads_started: u64,
    /// Slots with a completion or in flight.
    pub threads_active: u64,
    /// In flight at snapshot.
    pub in_flight: u64,
    /// Per slot: completed.
    pub completed: Vec<i32>,
    /// Per slot: busy µs.
    pub busy_us: Vec<u64>,
    /// Per slot: age of in-flight request, µs.
    pub current_elapsed_us: Vec<u64>,
    /// Per slot: longest completed, µs.
    pub max_duration_us: Vec<u64>,
    /// Per slot: kernel thread id (0 unknown).
    pub tids: Vec<i32>,
}

impl Snapshot {
    /// Empty snapshot for `n` slots.
    pub fn new(n: usize) -> Snapshot {
        let mut s = Snapshot {
            request_count: 0,
            busy_us_total: 0,
            phases: [PhaseSum::default(); PHASES],
            io: [0; 4],
            status: [0; 5],
            threads_started: 0,
            threads_active: 0,
            in_flight: 0,
            completed: Vec::new(),
            busy_us: Vec::new(),
            current_elapsed_us: Vec::new(),
            max_duration_us: Vec::new(),
            tids: Vec::new(),
        };
        s.reset(n);
        s
    }

    fn reset(&mut self, n: usize) {
        self.request_count = 0;
        self.busy_us_total = 0;
        self.phases = [PhaseSum::default(); PHASES];
        self.io = [0; 4];
        self.status = [0; 5];
        self.threads_started = 0;
        self.threads_active = 0;
        self.in_flight = 0;
        for v in [
            &mut self.busy_us,
            &mut self.current_elapsed_us,
            &mut self.max_duration_us,
        ] {
            v.clear();
            v.resize(n, 0);
        }
        self.completed.clear();
        self.completed.resize(n, 0);
        self.tids.clear();
        self.tids.resize(n, 0);
    }
}

impl Accounting {
    /// Drains one interval into `out` (reporter thread only; never call
    /// concurrently with itself). `now_us` becomes the new tick boundary.
    pub fn snapshot(&self, now_us: u64, out: &mut Snapshot) {
        out.reset(self.reported);
        let prev_tick = self.last_tick_us.swap(now_us, Relaxed);
        for (i, s) in self.slots.iter().enumerate() {
            let old = s.epoch.load(Relaxed) as usize;
            s.epoch.store(1 - old as u32, SeqCst);
            // Wait out a writer that may still be filling the old buffer.
            let mut spins = 0u32;
            while s.lock.load(SeqCst) != 0 {
                spins += 1;
                if spins > 1000 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
            std::sync::atomic::fence(Acquire);
            let b = &s.buf[old];
            let completed = b.completed.swap(0, Relaxed);
            let mut busy = b.busy_us.swap(0, Relaxed);
            let max_d = b.max_duration_us.swap(0, Relaxed);
            for (phase, p) in out.phases.iter_mut().enumerate() {
                b.take_phase(phase, p);
            }
            for (o, v) in out.io.iter_mut().zip(&b.io) {
                *o += v.swap(0, Relaxed);
            }
            for (o, v) in out.status.iter_mut().zip(&b.status) {
                *o += u64::from(v.swap(0, Relaxed));
            }
            let claim = s.claim_us.load(Acquire);
            let mut current = 0;
            if claim != 0 && i < self.reported {
                busy += now_us.saturating_sub(claim.max(prev_tick));
                current = now_us.saturating_sub(claim);
                out.in_flight += 1;
            }
            out.request_count += completed as u64;
            out.busy_us_total += busy;
            if s.ever_used.load(Relaxed) && i < self.reported {
                out.threads_started += 1;
            }
            if i < self.reported {
                out.completed[i] = completed as i32;
                out.busy_us[i] = busy;
                out.current_elapsed_us[i] = current;
                out.max_duration_us[i] = max_d;
                out.tids[i] = s.tid.load(Relaxed);
                if completed > 0 || claim != 0 {
                    out.threads_active += 1;
                }
            }
        }
    }
}
