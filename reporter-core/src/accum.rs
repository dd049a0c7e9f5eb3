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

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::*};

use wire::histogram::{bucket_index, BUCKETS};

/// Phase indices into [`Interval::phases`].
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
fn add(a: &AtomicU64, v: u64) {
    // Single writer inside the slot's critical section: a plain
    // load + store is enough, no locked RMW needed.
    a.store(a.load(Relaxed).wrapping_add(v), Relaxed);
}

/// `bucket_index(us / 1e6)` without floating point below 1 ms (where it
/// is always bucket 0), which most phases of most requests are.
#[inline]
fn bucket_of_us(us: u64) -> usize {
    if us < 1000 {
        0
    } else {
        bucket_index(us as f64 / 1e6)
    }
}

/// One phase's aggregate for an interval.
pub struct PhaseAcc {
    sum_us: AtomicU64,
    min_us: AtomicU64,
    max_us: AtomicU64,
    buckets: [AtomicU32; BUCKETS],
}

impl PhaseAcc {
    fn new() -> PhaseAcc {
        PhaseAcc {
            sum_us: AtomicU64::new(0),
            min_us: AtomicU64::new(MIN_SENTINEL),
            max_us: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
    #[inline]
    fn record(&self, us: u64) {
        add(&self.sum_us, us);
        if us < self.min_us.load(Relaxed) {
            self.min_us.store(us, Relaxed);
        }
        if us > self.max_us.load(Relaxed) {
            self.max_us.store(us, Relaxed);
        }
        let b = &self.buckets[bucket_of_us(us)];
        b.store(b.load(Relaxed) + 1, Relaxed);
    }
    fn take_into(&self, out: &mut PhaseSum) {
        out.sum_us += self.sum_us.swap(0, Relaxed);
        out.min_us = out.min_us.min(self.min_us.swap(MIN_SENTINEL, Relaxed));
        out.max_us = out.max_us.max(self.max_us.swap(0, Relaxed));
        for (o, b) in out.buckets.iter_mut().zip(&self.buckets) {
            *o += b.swap(0, Relaxed) as i32;
        }
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

/// One interval's worth of a slot's counters.
pub struct Interval {
    completed: AtomicU32,
    busy_us: AtomicU64,
    max_duration_us: AtomicU64,
    phases: [PhaseAcc; PHASES],
    io: [AtomicU64; 4],
    status: [AtomicU64; 5],
}

impl Interval {
    fn new() -> Interval {
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
    fn copy_to(&self, t: &mut SlowText) {
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

    fn read(&self) -> Io {
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

/// One worker slot.
#[repr(align(128))]
pub struct Slot {
    lock: AtomicU32,
    epoch: AtomicU32,
    buf: [Interval; 2],
    /// Claim time of the in-flight request, µs; 0 when idle.
    claim_us: AtomicU64,
    request_start_us: AtomicU64,
    generation: AtomicU64,
    ever_used: AtomicBool,
    tid: AtomicI32,
    /// Completed slow records lost since the last take (ring full, or a
    /// thread beyond the reported slots); written under `lock`.
    slow_lost: AtomicU64,
    detail: UnsafeCell<Detail>,
    ring: UnsafeCell<Ring>,
    live_io: LiveIo,
}

struct Ring {
    items: Box<[SlowRecord]>,
    head: usize,
    len: usize,
}

// SAFETY: `detail` and `ring` are only touched with `lock` held; everything
// else is atomic.
unsafe impl Sync for Slot {}
// SAFETY: as above; the raw pointers inside `Detail` are plain data.
unsafe impl Send for Slot {}

impl Slot {
    fn new(ring_capacity: usize) -> Slot {
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
    fn lock(&self) {
        while self
            .lock
            .compare_exchange_weak(0, 1, SeqCst, Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
    }

    #[inline]
    fn unlock(&self) {
        self.lock.store(0, Release);
    }

    /// Whether a request is in flight on this slot.
    #[inline]
    pub fn in_flight(&self) -> bool {
        self.claim_us.load(Relaxed) != 0
    }
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
        b.phases[SERVER].record(p.server);
        b.phases[APPLICATION].record(p.application);
        b.phases[REQUEST].record(p.server + p.queue + p.daemon + p.application);
        if f.queue_start_us != 0 {
            b.phases[QUEUE].record(p.queue);
            b.phases[DAEMON].record(p.daemon);
        }
        b.phases[INPUT_READ].record(f.io.input_read_us);
        b.phases[OUTPUT_WRITE].record(f.io.output_write_us);
        add(&b.io[0], f.io.input_bytes);
        add(&b.io[1], f.io.input_reads);
        add(&b.io[2], f.io.output_bytes);
        add(&b.io[3], f.io.output_writes);
        if let Some(k) = status_class(f.status) {
            add(&b.status[k], 1);
        }
        let total = f.finish_us.saturating_sub(f.request_start_us);
        if self.slow_threshold_us > 0 && total >= self.slow_threshold_us {
            // SAFETY: lock held.
            let (d, ring) = unsafe { (&*s.detail.get(), &mut *s.ring.get()) };
            // The shared overflow slot keeps no strings, so no record.
            if overflow || ring.len == ring.items.len() {
                s.slow_lost.store(s.slow_lost.load(Relaxed) + 1, Relaxed);
            } else {
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
        }
        if !overflow {
            self.forget_detail(s);
            s.claim_us.store(0, Release);
        }
        s.unlock();
        true
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
            for (p, acc) in out.phases.iter_mut().zip(&b.phases) {
                acc.take_into(p);
            }
            for (o, v) in out.io.iter_mut().zip(&b.io) {
                *o += v.swap(0, Relaxed);
            }
            for (o, v) in out.status.iter_mut().zip(&b.status) {
                *o += v.swap(0, Relaxed);
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

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
    fn status_classes() {
        assert_eq!(status_class(0), Some(4));
        assert_eq!(status_class(404), Some(3));
        assert_eq!(status_class(599), Some(4));
        assert_eq!(status_class(600), None);
        assert_eq!(status_class(99), None);
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
