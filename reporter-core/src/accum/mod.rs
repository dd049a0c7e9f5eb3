//! Per-worker-slot interval accumulators: written by request threads,
//! drained by the reporter thread.
//!
//! Design (what the request path must never do: allocate, block on the
//! reporter, make a syscall):
//! * Each worker thread owns one [`Slot`] (assigned on its first request).
//! * A slot has two interval buffers and an `epoch` saying which one writers
//!   fill. The reporter flips the epoch, waits until no writer is inside the
//!   slot's short critical section, then reads and zeroes the old buffer.
//!   Writers therefore never wait for the reporter's drain, and each request
//!   lands whole in exactly one interval: `request_count`, status classes,
//!   histograms and I/O totals always agree (`docs/compatibility.md` C2).
//! * The critical section is a per-slot spin flag taken by a single CAS.
//!   Normally only the owning thread takes it; the reporter takes it only to
//!   copy slow-request details (bounded memcpy, only for slow requests).
//! * Everything is preallocated in child init.
//!
//! Files: `phases` (phase indices, one phase's aggregate, splitting a
//! request into phases), `slot` (a worker slot and its two interval
//! buffers), `slow` (slow-request strings and records, the reporter's
//! take of them), `snapshot` (the reporter's drain of one interval);
//! this file holds what the request path calls (claim, finish, abandon).

mod phases;
mod slot;
mod slow;
mod snapshot;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

pub use phases::{
    phase_split, status_class, PhaseSum, Phases, APPLICATION, DAEMON, INPUT_READ, MIN_SENTINEL,
    OUTPUT_WRITE, PHASES, QUEUE, REQUEST, SERVER,
};
pub use slot::{Interval, Slot};
pub use slow::{text, Detail, LiveIo, SlowRecord, SlowText, SLOW_CAPS};
pub use snapshot::Snapshot;

use phases::add;

/// A request's I/O as the application saw it: `wsgi.input` reads and the
/// response handed to Apache (or, in a daemon, what mod_wsgi reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Io {
    /// Request body bytes the application read.
    pub input_bytes: u64,
    /// Read calls.
    pub input_reads: u64,
    /// µs inside `wsgi.input` reads.
    pub input_read_us: u64,
    /// Response body bytes handed to Apache.
    pub output_bytes: u64,
    /// Output hand-offs carrying data.
    pub output_writes: u64,
    /// µs handing output down the filter chain.
    pub output_write_us: u64,
}

/// What the request path knows when a request's response is finished.
#[derive(Clone, Copy, Debug, Default)]
pub struct Finished {
    /// Apache arrival (`r->request_time`), µs since the epoch.
    pub request_start_us: u64,
    /// Daemon mode: the Apache child started talking to the daemon, µs
    /// (0 in embedded mode).
    pub queue_start_us: u64,
    /// Daemon mode: the daemon picked the request up, µs (0 in embedded).
    pub daemon_start_us: u64,
    /// Slot claim = just before mod_wsgi's handler (embedded) or the WSGI
    /// callable's start (daemon), µs.
    pub claim_us: u64,
    /// End of response (EOS through our output filter), µs.
    pub finish_us: u64,
    /// I/O so far.
    pub io: Io,
    /// Final HTTP status.
    pub status: i32,
    /// Per-request thread CPU (user, system) µs, when measured.
    pub cpu_us: Option<(u64, u64)>,
}

/// All slots of one process plus the shared per-tick clock.
pub struct Accounting {
    slots: Box<[Slot]>,
    /// Number of slots reported on the wire (`request_threads_maximum`).
    reported: usize,
    next_slot: AtomicU32,
    /// Time of the last snapshot, µs: busy time of a request is counted
    /// from `max(claim, last_tick)` so the reporter's in-flight tail and the
    /// release do not count the same span twice.
    last_tick_us: AtomicU64,
    /// Slow threshold, µs (0 = off).
    pub slow_threshold_us: u64,
}

/// Returned by [`Accounting::claim`]; handed back at finish.
#[derive(Clone, Copy, Debug, Default)]
pub struct Claim {
    /// Slot index.
    pub slot: u32,
    /// Generation of the slot at claim.
    pub generation: u64,
}

impl Accounting {
    /// `threads` = slots on the wire (MPM threads per child, ≥ 1). One
    /// extra, shared overflow slot absorbs threads beyond that.
    pub fn new(threads: usize, slow_threshold_us: u64, interval_s: f64) -> Accounting {
        let threads = threads.max(1);
        let ring = if slow_threshold_us > 0 {
            // A thread completes at most interval/threshold slow requests
            // per interval; keep room for two intervals' worth.
            let per = (interval_s * 1e6 / slow_threshold_us as f64).ceil() as usize;
            (2 * per + 2).clamp(2, 64)
        } else {
            0
        };
        Accounting {
            slots: (0..=threads).map(|_| Slot::new(ring)).collect(),
            reported: threads,
            next_slot: AtomicU32::new(0),
            last_tick_us: AtomicU64::new(0),
            slow_threshold_us,
        }
    }

    /// Slots reported on the wire.
    pub fn slot_count(&self) -> usize {
        self.reported
    }

    /// Assigns a slot to a new worker thread (call once per thread).
    pub fn assign_slot(&self) -> u32 {
        let n = self.next_slot.fetch_add(1, Relaxed) as usize;
        n.min(self.reported) as u32
    }

    #[inline]
    fn is_overflow(&self, slot: u32) -> bool {
        slot as usize >= self.reported
    }

    /// Age of the oldest in-flight request (from its claim), µs.
    pub fn oldest_in_flight_us(&self, now_us: u64) -> u64 {
        self.slots[..self.reported]
            .iter()
            .map(|s| s.claim_us.load(Relaxed))
            .filter(|&c| c != 0)
            .map(|c| now_us.saturating_sub(c))
            .max()
            .unwrap_or(0)
    }

    /// Count of slots with a request in flight.
    #[inline]
    pub fn active(&self) -> u64 {
        self.slots.iter().filter(|s| s.in_flight()).count() as u64
    }

    /// Start of request execution on `slot`. `detail` only when slow
    /// requests are on (it is what active records will show).
    #[inline]
    pub fn claim(
        &self,
        slot: u32,
        tid: i32,
        request_start_us: u64,
        now_us: u64,
        detail: Option<&Detail>,
    ) -> Claim {
        let s = &self.slots[slot as usize];
        if !s.ever_used.load(Relaxed) {
            s.ever_used.store(true, Relaxed);
            s.tid.store(tid, Relaxed);
        }
        if self.is_overflow(slot) {
            return Claim {
                slot,
                generation: 0,
            };
        }
        let generation;
        if let Some(d) = detail {
            s.lock();
            generation = s.generation.load(Relaxed) + 1;
            s.generation.store(generation, Relaxed);
            // SAFETY: lock held.
            unsafe { *s.detail.get() = *d };
            s.live_io.publish(&Io::default());
            s.request_start_us.store(request_start_us, Relaxed);
            s.claim_us.store(now_us.max(1), Release);
            s.unlock();
        } else {
            generation = s.generation.load(Relaxed) + 1;
            s.generation.store(generation, Relaxed);
            s.request_start_us.store(request_start_us, Relaxed);
            s.claim_us.store(now_us.max(1), Release);
        }
        Claim { slot, generation }
    }

    /// End of a request mod_wsgi ran in this process: record it and free
    /// the slot. Returns false if the claim was already released.
    #[inline]
    pub fn finish(&self, c: Claim, f: &Finished) -> bool {
        let s = &self.slots[c.slot as usize];
        let overflow = self.is_overflow(c.slot);
        s.lock();
        if !overflow
            && (s.generation.load(Relaxed) != c.generation || s.claim_us.load(Relaxed) == 0)
        {
            s.unlock();
            return false;
        }
        let last_tick = self.last_tick_us.load(Relaxed);
        let b = &s.buf[s.epoch.load(SeqCst) as usize];
        b.completed.store(b.completed.load(Relaxed) + 1, Relaxed);
        let elapsed = f.finish_us.saturating_sub(f.claim_us);
        add(
            &b.busy_us,
            f.finish_us.saturating_sub(f.claim_us.max(last_tick)),
        );
        if elapsed > b.max_duration_us.load(Relaxed) {
            b.max_duration_us.store(elapsed, Relaxed);
        }
        let p = phase_split(
            f.request_start_us,
            f.queue_start_us,
            f.daemon_start_us,
            f.claim_us,
            f.finish_us,
        );
        // In phase-index order; QUEUE and DAEMON (the last two) only in
        // daemon mode. One out-of-line `record`, not seven inlined copies:
        // the request path's code is mostly out of the instruction cache
        // when a request comes, so its size costs more than a few calls.
        let us = [
            p.server,
            p.application,
            p.server + p.queue + p.daemon + p.application,
            f.io.input_read_us,
            f.io.output_write_us,
            p.queue,
            p.daemon,
        ];
        const _: () = assert!(
            SERVER == 0
                && APPLICATION == 1
                && REQUEST == 2
                && INPUT_READ == 3
                && OUTPUT_WRITE == 4
                && QUEUE == 5
                && DAEMON == 6
        );
        let n = if f.queue_start_us != 0 { PHASES } else { QUEUE };
        for (phase, &us) in us[..n].iter().enumerate() {
            b.record(phase, us);
        }
        add(&b.io[0], f.io.input_bytes);
        add(&b.io[1], f.io.input_reads);
        add(&b.io[2], f.io.output_bytes);
        add(&b.io[3], f.io.output_writes);
        if let Some(k) = status_class(f.status) {
            let n = &b.status[k];
            n.store(n.load(Relaxed) + 1, Relaxed);
        }
        add(&s.recorded, 1);
        let total = f.finish_us.saturating_sub(f.request_start_us);
        if self.slow_threshold_us > 0 && total >= self.slow_threshold_us {
            self.keep_slow(s, c, f, overflow);
        }
        if !overflow {
            self.forget_detail(s);
            s.claim_us.store(0, Release);
        }
        s.unlock();
        true
    }

    /// A completed slow request's record, into the slot's ring (or counted
    /// as lost). Out of line: most requests are not slow. Call with `s`
    /// locked.
    #[cold]
    #[inline(never)]
    fn keep_slow(&self, s: &Slot, c: Claim, f: &Finished, overflow: bool) {
        // SAFETY: the caller holds the lock.
        let (d, ring) = unsafe { (&*s.detail.get(), &mut *s.ring.get()) };
        // The shared overflow slot keeps no strings, so no record.
        if overflow || ring.len == ring.items.len() {
            s.slow_lost.store(s.slow_lost.load(Relaxed) + 1, Relaxed);
            return;
        }
        let cap = ring.items.len();
        let rec = &mut ring.items[(ring.head + ring.len) % cap];
        ring.len += 1;
        d.copy_to(&mut rec.text);
        let (u, sy) = f.cpu_us.unwrap_or((0, 0));
        let active_now = self.active();
        rec.completed = true;
        rec.thread_id = c.slot as u64 + 1;
        rec.request_start_us = f.request_start_us;
        rec.queue_start_us = f.queue_start_us;
        rec.daemon_start_us = f.daemon_start_us;
        rec.server_pid = d.server_pid;
        rec.claim_us = f.claim_us;
        rec.end_us = f.finish_us;
        rec.status = f.status.max(0) as u64;
        rec.io = f.io;
        rec.cpu_user_us = u;
        rec.cpu_system_us = sy;
        rec.active_at_start = d.active_at_start;
        rec.active_at_completion = active_now;
    }

    /// Requests recorded in this process since it started (over every
    /// slot; read rarely: for a daemon's stop reason).
    pub fn recorded_total(&self) -> u64 {
        self.slots.iter().map(|s| s.recorded.load(Relaxed)).sum()
    }

    /// Where the request thread of `slot` publishes its I/O so far for
    /// active slow records: only with slow requests on, and not for the
    /// shared overflow slot (it makes no records).
    #[inline]
    pub fn live_io(&self, slot: u32) -> Option<&LiveIo> {
        (self.slow_threshold_us > 0 && !self.is_overflow(slot))
            .then(|| &self.slots[slot as usize].live_io)
    }

    /// Releases a claim without recording it (a request mod_wsgi handed to
    /// a daemon process: the daemon reports it).
    #[inline]
    pub fn abandon(&self, c: Claim) {
        if self.is_overflow(c.slot) {
            return;
        }
        let s = &self.slots[c.slot as usize];
        s.lock();
        if s.generation.load(Relaxed) == c.generation {
            self.forget_detail(s);
            s.claim_us.store(0, Release);
        }
        s.unlock();
    }

    /// Drops the ended request's strings (pointers into its pool). Only
    /// claims with slow requests on write them. Call with `s` locked.
    #[inline]
    fn forget_detail(&self, s: &Slot) {
        if self.slow_threshold_us > 0 {
            // SAFETY: the caller holds the lock.
            unsafe { *s.detail.get() = Detail::default() };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    /// A finished request (10 bytes written in one write).
    pub(crate) fn fin(start: u64, claim: u64, end: u64, status: i32) -> Finished {
        Finished {
            request_start_us: start,
            claim_us: claim,
            finish_us: end,
            status,
            io: Io {
                output_bytes: 10,
                output_writes: 1,
                ..Io::default()
            },
            ..Finished::default()
        }
    }

    #[test]
    fn one_request_lands_whole() {
        let a = Accounting::new(2, 0, 1.0);
        let slot = a.assign_slot();
        let c = a.claim(slot, 7, 1_000, 1_500, None);
        assert_eq!(a.active(), 1);
        assert!(a.finish(c, &fin(1_000, 1_500, 301_500, 200)));
        assert!(
            !a.finish(c, &fin(1_000, 1_500, 301_500, 200)),
            "second finish of one claim"
        );
        assert_eq!(a.recorded_total(), 1);
        let mut s = Snapshot::new(2);
        a.snapshot(400_000, &mut s);
        assert_eq!(s.request_count, 1);
        assert_eq!(s.status, [0, 1, 0, 0, 0]);
        assert_eq!(s.io, [0, 0, 10, 1]);
        assert_eq!(s.phases[SERVER].sum_us, 500);
        assert_eq!(s.phases[APPLICATION].max_us, 300_000);
        assert_eq!(s.phases[REQUEST].min_us, 300_500);
        // 300.5 ms -> bucket [256, 320) ms = 32.
        assert_eq!(s.phases[REQUEST].buckets[32], 1);
        assert_eq!(s.completed, vec![1, 0]);
        assert_eq!(s.max_duration_us[0], 300_000);
        assert_eq!(s.threads_started, 1);
        assert_eq!(s.tids[0], 7);
        a.snapshot(500_000, &mut s);
        assert_eq!(s.request_count, 0);
        assert_eq!(s.phases[REQUEST].min_us, MIN_SENTINEL);
    }

    #[test]
    fn in_flight_busy_tail_is_not_counted_twice() {
        let a = Accounting::new(1, 0, 1.0);
        let c = a.claim(0, 1, 0, 100, None);
        let mut s = Snapshot::new(1);
        a.snapshot(1_100, &mut s);
        assert_eq!(s.busy_us[0], 1_000);
        assert_eq!(s.current_elapsed_us[0], 1_000);
        assert_eq!(s.threads_active, 1);
        a.finish(c, &fin(0, 100, 1_600, 200));
        a.snapshot(2_100, &mut s);
        assert_eq!(s.busy_us[0], 500);
        assert_eq!(s.max_duration_us[0], 1_500);
    }

    #[test]
    fn abandoned_claims_are_not_counted() {
        let a = Accounting::new(1, 0, 1.0);
        let c = a.claim(0, 1, 0, 100, None);
        a.abandon(c);
        assert!(!a.finish(c, &fin(0, 100, 200, 200)));
        let mut s = Snapshot::new(1);
        a.snapshot(300, &mut s);
        assert_eq!(s.request_count, 0);
        assert_eq!(s.in_flight, 0);
    }
    #[test]
    fn concurrent_writers_and_reporter_lose_nothing() {
        let a = Arc::new(Accounting::new(4, 0, 1.0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut hs = Vec::new();
        for _ in 0..4 {
            let a = a.clone();
            hs.push(std::thread::spawn(move || {
                let slot = a.assign_slot();
                for k in 0..20_000u64 {
                    let c = a.claim(slot, 1, k, k + 1, None);
                    a.finish(c, &fin(k, k + 1, k + 3, if k % 3 == 0 { 404 } else { 200 }));
                }
            }));
        }
        let (a2, stop2) = (a.clone(), stop.clone());
        let rep = std::thread::spawn(move || {
            let mut s = Snapshot::new(4);
            let (mut n, mut st, mut h) = (0u64, 0u64, 0i64);
            let mut t = 1_000_000;
            loop {
                let done = stop2.load(SeqCst);
                t += 1;
                a2.snapshot(t, &mut s);
                n += s.request_count;
                st += s.status.iter().sum::<u64>();
                h += s.phases[REQUEST]
                    .buckets
                    .iter()
                    .map(|&x| x as i64)
                    .sum::<i64>();
                assert_eq!(
                    s.request_count,
                    s.status.iter().sum::<u64>(),
                    "one interval, one story"
                );
                if done {
                    return (n, st, h);
                }
            }
        });
        for h in hs {
            h.join().unwrap();
        }
        stop.store(true, SeqCst);
        let (n, st, h) = rep.join().unwrap();
        assert_eq!(n, 80_000);
        assert_eq!(st, 80_000);
        assert_eq!(h, 80_000);
    }
}
