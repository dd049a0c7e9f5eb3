//! Slow requests: the request strings kept while a request is in flight,
//! the records of completed slow requests waiting in each slot's ring, the
//! I/O an in-flight request has published, and the reporter's take of
//! them each interval.

use std::sync::atomic::{AtomicU64, Ordering::*};

use super::{Accounting, Io};

/// Capacities of the slow-request string fields ([`wire::SlowStringCap`]). Storing `C`
/// bytes of a longer string keeps the encoder's cut decision intact.
pub const SLOW_CAPS: [usize; 9] = [64, 16, 16, 256, 256, 512, 16, 46, 512];
const SLOW_TEXT_LEN: usize = 64 + 16 + 16 + 256 + 256 + 512 + 16 + 46 + 512;

/// Order of [`SLOW_CAPS`] / [`SlowText`] fields.
pub mod text {
    /// Index of the log id.
    pub const LOG_ID: usize = 0;
    /// Method.
    pub const METHOD: usize = 1;
    /// Scheme.
    pub const SCHEME: usize = 2;
    /// Host name.
    pub const HOSTNAME: usize = 3;
    /// SCRIPT_NAME.
    pub const SCRIPT_NAME: usize = 4;
    /// PATH_INFO.
    pub const PATH_INFO: usize = 5;
    /// Protocol.
    pub const PROTOCOL: usize = 6;
    /// Peer IP.
    pub const PEER_IP: usize = 7;
    /// User-Agent.
    pub const USER_AGENT: usize = 8;
}

/// Request strings copied out of the request (fixed size, no heap).
#[derive(Clone, Copy)]
pub struct SlowText {
    buf: [u8; SLOW_TEXT_LEN],
    len: [u16; 9],
}

impl Default for SlowText {
    fn default() -> Self {
        SlowText {
            buf: [0; SLOW_TEXT_LEN],
            len: [0; 9],
        }
    }
}

impl SlowText {
    fn offset(i: usize) -> usize {
        SLOW_CAPS[..i].iter().sum()
    }
    /// Field `i` as stored.
    pub fn get(&self, i: usize) -> &[u8] {
        let o = Self::offset(i);
        &self.buf[o..o + self.len[i] as usize]
    }
    /// Copies at most the field's capacity.
    #[inline]
    pub fn set(&mut self, i: usize, s: &[u8]) {
        let n = s.len().min(SLOW_CAPS[i]);
        let o = Self::offset(i);
        self.buf[o..o + n].copy_from_slice(&s[..n]);
        self.len[i] = n as u16;
    }
}

/// Borrowed request strings, as raw (pointer, length) pairs into memory
/// that lives as long as the request (`r->pool` or static).
#[derive(Clone, Copy)]
pub struct Detail {
    /// (ptr, len) per [`text`] index.
    pub strings: [(*const u8, usize); 9],
    /// In-flight requests in the process at claim, this one included.
    pub active_at_start: u64,
    /// Daemon mode: queue and daemon start, µs (0 in embedded mode).
    pub queue_start_us: u64,
    /// .
    pub daemon_start_us: u64,
    /// Daemon mode: pid of the Apache child that accepted the request
    /// (0 = this process).
    pub server_pid: u64,
}

impl Default for Detail {
    fn default() -> Self {
        Detail {
            strings: [(std::ptr::null(), 0); 9],
            active_at_start: 0,
            queue_start_us: 0,
            daemon_start_us: 0,
            server_pid: 0,
        }
    }
}

impl Detail {
    #[inline]
    pub(super) fn copy_to(&self, t: &mut SlowText) {
        for (i, &(p, n)) in self.strings.iter().enumerate() {
            if p.is_null() || n == 0 {
                t.len[i] = 0;
            } else {
                // SAFETY: the claimer guarantees the memory outlives the
                // claim, and every reader holds the slot lock, which release
                // also takes before the request's pool can go away.
                let s = unsafe { std::slice::from_raw_parts(p, n.min(SLOW_CAPS[i])) };
                t.set(i, s);
            }
        }
    }
}

/// A slow-request record ready for encoding (fields 200-299, [`wire::emit::slow_request`]).
#[derive(Clone, Copy, Default)]
pub struct SlowRecord {
    /// 0 active, 1 completed.
    pub completed: bool,
    /// 1-based slot.
    pub thread_id: u64,
    /// Request arrival, µs.
    pub request_start_us: u64,
    /// Daemon mode: queue start, µs (0 in embedded mode).
    pub queue_start_us: u64,
    /// Daemon mode: daemon start, µs (0 in embedded mode).
    pub daemon_start_us: u64,
    /// Apache child that accepted the request (0 = this process).
    pub server_pid: u64,
    /// Slot claim (application start), µs.
    pub claim_us: u64,
    /// Final or running end, µs.
    pub end_us: u64,
    /// Final status (0 while active).
    pub status: u64,
    /// I/O counters and times (so far, in an active record).
    pub io: Io,
    /// µs (final only, when measured).
    pub cpu_user_us: u64,
    /// µs.
    pub cpu_system_us: u64,
    /// In flight at claim.
    pub active_at_start: u64,
    /// In flight at completion (this one included).
    pub active_at_completion: u64,
    /// Strings.
    pub text: SlowText,
}

/// I/O of the request in flight on a slot, so far: published by the
/// request's own thread after each read and write (relaxed stores, only
/// with slow requests on), read by the active-slow scan. Fields in [`Io`]
/// order.
#[derive(Default)]
pub struct LiveIo([AtomicU64; 6]);

impl LiveIo {
    /// Publishes the request's running totals.
    #[inline]
    pub fn publish(&self, io: &Io) {
        let v = [
            io.input_bytes,
            io.input_reads,
            io.input_read_us,
            io.output_bytes,
            io.output_writes,
            io.output_write_us,
        ];
        for (a, v) in self.0.iter().zip(v) {
            a.store(v, Relaxed);
        }
    }

    pub(super) fn read(&self) -> Io {
        let v: [u64; 6] = std::array::from_fn(|i| self.0[i].load(Relaxed));
        Io {
            input_bytes: v[0],
            input_reads: v[1],
            input_read_us: v[2],
            output_bytes: v[3],
            output_writes: v[4],
            output_write_us: v[5],
        }
    }
}

impl Accounting {
    /// Appends every completed slow record waiting in the slots to `out`
    /// (cleared first) and returns how many completed slow records were
    /// lost since the previous call (full rings; threads beyond the
    /// reported slots).
    pub fn take_completed_slow(&self, out: &mut Vec<SlowRecord>) -> u64 {
        out.clear();
        let mut lost = 0;
        for s in self.slots.iter() {
            s.lock();
            lost += s.slow_lost.swap(0, Relaxed);
            // SAFETY: lock held.
            let ring = unsafe { &mut *s.ring.get() };
            let cap = ring.items.len();
            while ring.len > 0 {
                out.push(ring.items[ring.head]);
                ring.head = (ring.head + 1) % cap;
                ring.len -= 1;
            }
            s.unlock();
        }
        lost
    }

    /// Active records for every in-flight request older than the threshold
    /// (no cap: one record per such request).
    pub fn scan_active_slow(&self, now_us: u64, out: &mut Vec<SlowRecord>) {
        out.clear();
        if self.slow_threshold_us == 0 {
            return;
        }
        for (i, s) in self.slots[..self.reported].iter().enumerate() {
            if !s.in_flight() {
                continue;
            }
            s.lock();
            let claim = s.claim_us.load(Relaxed);
            let start = s.request_start_us.load(Relaxed);
            if claim != 0 && now_us.saturating_sub(start) >= self.slow_threshold_us {
                let mut rec = SlowRecord {
                    completed: false,
                    thread_id: i as u64 + 1,
                    request_start_us: start,
                    claim_us: claim,
                    end_us: now_us,
                    ..SlowRecord::default()
                };
                // SAFETY: lock held; the request cannot release meanwhile.
                let d = unsafe { &*s.detail.get() };
                d.copy_to(&mut rec.text);
                rec.active_at_start = d.active_at_start;
                rec.io = s.live_io.read();
                rec.queue_start_us = d.queue_start_us;
                rec.daemon_start_us = d.daemon_start_us;
                rec.server_pid = d.server_pid;
                out.push(rec);
            }
            s.unlock();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fin;
    use super::*;

    #[test]
    fn slow_records_without_cap() {
        let a = Accounting::new(40, 1_000, 1.0);
        let path = b"/sleep".to_vec();
        let mut d = Detail::default();
        d.strings[text::PATH_INFO] = (path.as_ptr(), path.len());
        let claims: Vec<_> = (0..40).map(|i| a.claim(i, 1, 0, 10, Some(&d))).collect();
        let mut out = Vec::new();
        a.scan_active_slow(5_000, &mut out);
        assert_eq!(out.len(), 40, "more than 16 active records in one tick");
        assert_eq!(out[0].text.get(text::PATH_INFO), b"/sleep");
        for c in &claims {
            a.finish(*c, &fin(0, 10, 6_000, 200));
        }
        let dropped = a.take_completed_slow(&mut out);
        assert_eq!(out.len(), 40);
        assert_eq!(dropped, 0);
        assert!(out
            .iter()
            .all(|r| r.completed && r.status == 200 && r.end_us == 6_000));
        assert_eq!(out[0].text.get(text::PATH_INFO), b"/sleep");
    }

    #[test]
    fn active_records_carry_the_io_published_so_far() {
        let a = Accounting::new(2, 1_000, 1.0);
        let c = a.claim(0, 1, 0, 10, Some(&Detail::default()));
        let live = a.live_io(0).expect("slow requests on");
        live.publish(&Io {
            output_bytes: 5000,
            output_writes: 1,
            ..Io::default()
        });
        let mut out = Vec::new();
        a.scan_active_slow(5_000, &mut out);
        assert_eq!((out[0].io.output_bytes, out[0].io.output_writes), (5000, 1));
        a.finish(c, &fin(0, 10, 6_000, 200));
        // The next request on the slot starts from zero.
        a.claim(0, 1, 7_000, 7_010, Some(&Detail::default()));
        a.scan_active_slow(9_000, &mut out);
        assert_eq!(out[0].io, Io::default());
        assert!(a.live_io(2).is_none(), "the overflow slot keeps no records");
        assert!(Accounting::new(2, 0, 1.0).live_io(0).is_none(), "slow off");
    }

    #[test]
    fn overflowing_rings_are_counted() {
        let a = Accounting::new(1, 1, 0.5);
        let mut n = 0;
        for _ in 0..100 {
            let c = a.claim(0, 1, 0, 10, Some(&Detail::default()));
            a.finish(c, &fin(0, 10, 20, 200));
            n += 1;
        }
        let mut out = Vec::new();
        let lost = a.take_completed_slow(&mut out);
        assert_eq!(out.len() as u64 + lost, n);
        assert!(lost > 0);
        // Counted once: the next take starts from zero.
        assert_eq!(a.take_completed_slow(&mut out), 0);
        assert!(out.is_empty());
        // A thread beyond the reported slots (the shared overflow slot)
        // keeps no record: counted as lost, not silently skipped.
        assert_eq!(
            (a.assign_slot(), a.assign_slot(), a.assign_slot()),
            (0, 1, 1)
        );
        let c = a.claim(1, 1, 0, 10, Some(&Detail::default()));
        a.finish(c, &fin(0, 10, 20, 200));
        assert_eq!(a.take_completed_slow(&mut out), 1);
        assert!(out.is_empty());
    }
}
