//! The application's own metrics, per process: the table behind the C ABI
//! that the `mod_wsgi_telemetry` Python package calls (`incr`, `set`,
//! `record`; docs/app-metrics.md), drained once per tick into `app_metrics`
//! datagrams (kind 10, `wire::app`).
//!
//! What a call must never do: allocate (the table, names included, is
//! allocated once, when the process starts reporting), take a lock, wait
//! for the reporter, or grow without bound. So:
//! * names live inline in a fixed open-addressing table (linear probing,
//!   twice as many slots as names allowed, never deleted); a slot is
//!   claimed once by a single CAS and published with a release store, and
//!   from then on every call on that name is a probe plus one to four
//!   atomic read-modify-writes on the slot;
//! * past the name limit, calls on new names are refused and counted
//!   (`dropped_calls`, sent as field 407);
//! * everything is a total since the process started (counter sums,
//!   distribution count, sum and bucket counts) or a level (gauges), so
//!   the reporter reads without resetting anything and a datagram lost on
//!   the way is made good by the next one.
//!
//! This file is plain Rust: no FFI, no Apache. The exported C functions
//! (`mod_wsgi_reporter`'s `ffi/app_abi.rs`) only turn their arguments
//! into slices and call [`AppMetrics`].

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::*};

use wire::app::{
    check_name, encode_all, AppMetric, AppMetricsHead, AppValue, Distribution, MetricType,
    MAX_NAME_LEN,
};
use wire::histogram::{bucket_index, BUCKETS};
use wire::MAX_DATAGRAM;

/// What a call returns: the C ABI's return codes (docs/app-metrics.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// Counted.
    Ok = 0,
    /// The name is new and the table is full: not counted (the call is
    /// added to `dropped_calls`).
    Dropped = 1,
    /// The module is loaded but application metrics are off
    /// (`WSGITelemetryOptions -AppMetrics`): nothing done. Returned by the
    /// exported functions, never by the table.
    Disabled = 2,
    /// The name breaks the rule of `wire::app::check_name`.
    BadName = -1,
    /// Not finite, negative where a non-negative value is required
    /// (`incr`, `record`), or a counter or sum that would overflow.
    BadValue = -2,
    /// The name is already used by another kind of metric.
    TypeClash = -3,
}

/// Default number of names per process.
pub const DEFAULT_MAX_NAMES: usize = 256;
/// The reporter sends every name, changed or not, once in this many ticks,
/// so that a lost datagram or an ingester started late is corrected.
pub const REFRESH_TICKS: u64 = 60;

const WORDS: usize = MAX_NAME_LEN / 8;
const EMPTY: u8 = 0;
const CLAIMED: u8 = 1;
const READY: u8 = 2;
/// `f64::INFINITY`'s bits: the minimum of a distribution with no value.
const INF_BITS: u64 = 0x7ff0_0000_0000_0000;

/// One name's slot. Non-negative `f64`s order like their bits as `u64`,
/// so a distribution's min and max are a single `fetch_min`/`fetch_max`.
struct Slot {
    state: AtomicU8,
    kind: AtomicU8,
    len: AtomicU8,
    hash: AtomicU64,
    name: [AtomicU64; WORDS],
    /// Counter total, gauge level, or distribution sum (`f64` bits).
    value: AtomicU64,
    /// Distribution: values recorded (written last, read first).
    count: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    buckets: [AtomicU32; BUCKETS],
    /// What the reporter last sent (reporter only).
    sent_value: AtomicU64,
    sent_count: AtomicU64,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: AtomicU8::new(EMPTY),
            kind: AtomicU8::new(0),
            len: AtomicU8::new(0),
            hash: AtomicU64::new(0),
            name: std::array::from_fn(|_| AtomicU64::new(0)),
            value: AtomicU64::new(0),
            count: AtomicU64::new(0),
            min: AtomicU64::new(INF_BITS),
            max: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU32::new(0)),
            // A value no metric reaches: the first drain sends every name.
            sent_value: AtomicU64::new(u64::MAX),
            sent_count: AtomicU64::new(u64::MAX),
        }
    }

    /// After an acquire load of `state == READY`.
    fn is(&self, hash: u64, len: usize, words: &[u64; WORDS]) -> bool {
        self.hash.load(Relaxed) == hash
            && self.len.load(Relaxed) as usize == len
            && self
                .name
                .iter()
                .zip(words)
                .all(|(a, w)| a.load(Relaxed) == *w)
    }

    fn name_into(&self, out: &mut [u8; MAX_NAME_LEN]) -> usize {
        for (i, w) in self.name.iter().enumerate() {
            out[8 * i..8 * i + 8].copy_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        self.len.load(Relaxed) as usize
    }
}

/// The name's bytes as zero-padded little-endian words, and its FNV-1a
/// hash.
fn pack(name: &[u8]) -> ([u64; WORDS], u64) {
    let mut words = [0u64; WORDS];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, &b) in name.iter().enumerate() {
        words[i / 8] |= (b as u64) << (8 * (i % 8));
        hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (words, hash)
}

/// Adds `v` to the `f64` held in `a`; refuses a non-finite result.
fn add_f64(a: &AtomicU64, v: f64) -> Status {
    match a.fetch_update(Relaxed, Relaxed, |old| {
        let new = f64::from_bits(old) + v;
        new.is_finite().then_some(new.to_bits())
    }) {
        Ok(_) => Status::Ok,
        Err(_) => Status::BadValue,
    }
}

/// One process's application metrics.
pub struct AppMetrics {
    slots: Box<[Slot]>,
    mask: usize,
    max_names: usize,
    names: AtomicU64,
    dropped_calls: AtomicU64,
    sent_dropped: AtomicU64,
}

/// One metric as the reporter read it (see [`AppMetrics::collect`]).
#[derive(Clone, Debug)]
pub struct Reading {
    slot: usize,
    name: [u8; MAX_NAME_LEN],
    len: usize,
    kind: MetricType,
    value: f64,
    count: u64,
    min: f64,
    max: f64,
    buckets: [u32; BUCKETS],
}

impl Reading {
    /// The name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.len]
    }

    /// The metric for the encoder.
    pub fn metric(&self) -> AppMetric<'_> {
        AppMetric {
            name: self.name(),
            value: match self.kind {
                MetricType::Counter => AppValue::Counter(self.value),
                MetricType::Gauge => AppValue::Gauge(self.value),
                MetricType::Distribution => AppValue::Distribution(Distribution {
                    count: self.count,
                    sum: self.value,
                    min: self.min,
                    max: self.max,
                    buckets: &self.buckets,
                }),
            },
        }
    }
}

/// Where a tick's datagrams come from and go to (see [`AppMetrics::drain`]).
pub struct Emit<'a, S: FnMut() -> u32, F: FnMut(&[u8]) -> bool> {
    /// The process id for the header.
    pub pid: u32,
    /// Gives each datagram its sequence number.
    pub seq: S,
    /// Seconds since the Unix epoch.
    pub stamp: f64,
    /// 5.
    pub hostname: &'a [u8],
    /// 6.
    pub process_group: &'a [u8],
    /// Sends one datagram; `false` when it could not be sent.
    pub send: F,
}

impl AppMetrics {
    /// A table for up to `max_names` names (at least 1), allocated now.
    pub fn new(max_names: usize) -> AppMetrics {
        let max_names = max_names.max(1);
        let cap = (2 * max_names).next_power_of_two();
        AppMetrics {
            slots: (0..cap).map(|_| Slot::new()).collect(),
            mask: cap - 1,
            max_names,
            names: AtomicU64::new(0),
            dropped_calls: AtomicU64::new(0),
            sent_dropped: AtomicU64::new(0),
        }
    }

    /// Names in use.
    pub fn names(&self) -> usize {
        self.names.load(Relaxed) as usize
    }

    /// Calls refused because the table was full.
    pub fn dropped_calls(&self) -> u64 {
        self.dropped_calls.load(Relaxed)
    }

    /// The slot of `name` as a `kind`, claiming one on first use.
    fn slot(&self, name: &[u8], kind: MetricType) -> Result<&Slot, Status> {
        if name.len() > MAX_NAME_LEN {
            return Err(Status::BadName);
        }
        let (words, hash) = pack(name);
        let mut i = hash as usize & self.mask;
        let mut probes = 0;
        let mut spins = 0u32;
        while probes <= self.mask {
            let s = &self.slots[i];
            match s.state.load(Acquire) {
                READY if s.is(hash, name.len(), &words) => {
                    return if s.kind.load(Relaxed) == kind as u8 {
                        Ok(s)
                    } else {
                        Err(Status::TypeClash)
                    };
                }
                READY => {
                    i = (i + 1) & self.mask;
                    probes += 1;
                }
                EMPTY => {
                    // Validated once, here: a name found READY is the
                    // same bytes as one that passed.
                    if check_name(name).is_err() {
                        return Err(Status::BadName);
                    }
                    if self.names.load(Relaxed) >= self.max_names as u64 {
                        self.dropped_calls.fetch_add(1, Relaxed);
                        return Err(Status::Dropped);
                    }
                    if s.state
                        .compare_exchange(EMPTY, CLAIMED, Acquire, Acquire)
                        .is_err()
                    {
                        continue; // another thread took it: look again
                    }
                    if self.names.fetch_add(1, Relaxed) >= self.max_names as u64 {
                        // Lost the race for the last name: give the slot
                        // back (nobody can have used it while CLAIMED).
                        self.names.fetch_sub(1, Relaxed);
                        self.dropped_calls.fetch_add(1, Relaxed);
                        s.state.store(EMPTY, Release);
                        return Err(Status::Dropped);
                    }
                    s.hash.store(hash, Relaxed);
                    s.len.store(name.len() as u8, Relaxed);
                    for (a, w) in s.name.iter().zip(words) {
                        a.store(w, Relaxed);
                    }
                    s.kind.store(kind as u8, Relaxed);
                    s.state.store(READY, Release);
                    return Ok(s);
                }
                _ => {
                    // Being claimed by another thread, for a few stores.
                    spins += 1;
                    if spins.is_multiple_of(64) {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        self.dropped_calls.fetch_add(1, Relaxed);
        Err(Status::Dropped)
    }

    /// `incr(name, value)`: adds a finite, non-negative `value` to the
    /// counter `name`.
    pub fn incr(&self, name: &[u8], value: f64) -> Status {
        if !(value.is_finite() && value >= 0.0) {
            return Status::BadValue;
        }
        match self.slot(name, MetricType::Counter) {
            Ok(s) => add_f64(&s.value, value),
            Err(e) => e,
        }
    }

    /// `set(name, value)`: the gauge `name` is now the finite `value`.
    pub fn set(&self, name: &[u8], value: f64) -> Status {
        if !value.is_finite() {
            return Status::BadValue;
        }
        match self.slot(name, MetricType::Gauge) {
            Ok(s) => {
                s.value.store(value.to_bits(), Relaxed);
                Status::Ok
            }
            Err(e) => e,
        }
    }

    /// `record(name, seconds)`: adds a finite, non-negative duration to the
    /// distribution `name`.
    pub fn record(&self, name: &[u8], seconds: f64) -> Status {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Status::BadValue;
        }
        let v = if seconds == 0.0 { 0.0 } else { seconds }; // no -0.0
        match self.slot(name, MetricType::Distribution) {
            Ok(s) => {
                let st = add_f64(&s.value, v);
                if st != Status::Ok {
                    return st;
                }
                s.min.fetch_min(v.to_bits(), Relaxed);
                s.max.fetch_max(v.to_bits(), Relaxed);
                s.buckets[bucket_index(v)].fetch_add(1, Relaxed);
                // Last, so a reader that sees this count sees the rest.
                s.count.fetch_add(1, Release);
                Status::Ok
            }
            Err(e) => e,
        }
    }

    /// Reads the names that changed since they were last marked sent (all
    /// of them when `full`) into `out` (cleared first; give it a capacity
    /// of the name limit and it never reallocates). Reporter thread only.
    pub fn collect(&self, full: bool, out: &mut Vec<Reading>) {
        out.clear();
        for (slot, s) in self.slots.iter().enumerate() {
            if s.state.load(Acquire) != READY {
                continue;
            }
            let Some(kind) = MetricType::from_u8(s.kind.load(Relaxed)) else {
                continue;
            };
            let mut r = Reading {
                slot,
                name: [0; MAX_NAME_LEN],
                len: 0,
                kind,
                value: 0.0,
                count: 0,
                min: 0.0,
                max: 0.0,
                buckets: [0; BUCKETS],
            };
            if kind == MetricType::Distribution {
                r.count = s.count.load(Acquire);
                if r.count == 0 || (!full && r.count == s.sent_count.load(Relaxed)) {
                    continue; // claimed, nothing recorded yet; or unchanged
                }
                r.min = f64::from_bits(s.min.load(Relaxed));
                r.max = f64::from_bits(s.max.load(Relaxed));
                for (o, b) in r.buckets.iter_mut().zip(&s.buckets) {
                    *o = b.load(Relaxed);
                }
                r.value = f64::from_bits(s.value.load(Relaxed));
            } else {
                let bits = s.value.load(Relaxed);
                if !full && bits == s.sent_value.load(Relaxed) {
                    continue;
                }
                r.value = f64::from_bits(bits);
            }
            r.len = s.name_into(&mut r.name);
            out.push(r);
        }
    }

    /// Records that `r` reached the socket. Reporter thread only.
    pub fn mark_sent(&self, r: &Reading) {
        let s = &self.slots[r.slot];
        s.sent_value.store(r.value.to_bits(), Relaxed);
        s.sent_count.store(r.count, Relaxed);
    }

    /// One tick: collects (see [`collect`](Self::collect)), encodes as many
    /// `app_metrics` datagrams as the changes need and sends them; marks
    /// sent what was. With nothing changed and no new refused calls, sends
    /// nothing; `full` (every [`REFRESH_TICKS`]) sends every name, and the
    /// refused-call count if it is not zero. Returns the number of metrics
    /// sent. Reporter thread only.
    pub fn drain<S: FnMut() -> u32, F: FnMut(&[u8]) -> bool>(
        &self,
        full: bool,
        scratch: &mut Vec<Reading>,
        buf: &mut [u8; MAX_DATAGRAM],
        mut emit: Emit<'_, S, F>,
    ) -> usize {
        self.collect(full, scratch);
        let dropped = self.dropped_calls();
        let dropped_changed = dropped != self.sent_dropped.load(Relaxed);
        // Nothing changed; or a refresh with no name and nothing refused
        // (an application that never calls sends nothing at all).
        if scratch.is_empty() && !dropped_changed && (!full || dropped == 0) {
            return 0;
        }
        let head = AppMetricsHead {
            hostname: emit.hostname,
            process_group: emit.process_group,
            dropped_calls: dropped,
        };
        let metrics: Vec<AppMetric<'_>> = scratch.iter().map(Reading::metric).collect();
        let mut done = 0;
        let mut any = false;
        let sent = encode_all(
            buf,
            emit.pid,
            &mut emit.seq,
            emit.stamp,
            &head,
            &metrics,
            |d, k| {
                if !(emit.send)(d) {
                    return false;
                }
                any = true;
                for r in &scratch[done..done + k] {
                    self.mark_sent(r);
                }
                done += k;
                true
            },
        );
        if any {
            self.sent_dropped.store(dropped, Relaxed);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::app::{decode, MetricValue};

    /// Drains into decoded datagrams.
    fn drain(m: &AppMetrics, full: bool) -> Vec<wire::app::AppMetrics> {
        let mut out = Vec::new();
        let mut seq = 0;
        let mut scratch = Vec::new();
        let mut buf = [0u8; MAX_DATAGRAM];
        m.drain(
            full,
            &mut scratch,
            &mut buf,
            Emit {
                pid: 42,
                seq: || {
                    seq += 1;
                    seq
                },
                stamp: 1.0,
                hostname: b"web1",
                process_group: b"app",
                send: |d: &[u8]| {
                    out.push(decode(&wire::decode_ref(d).unwrap()).unwrap());
                    true
                },
            },
        );
        out
    }

    fn value_of(d: &[wire::app::AppMetrics], name: &str) -> Option<MetricValue> {
        d.iter()
            .flat_map(|d| &d.metrics)
            .find(|m| m.name == name)
            .map(|m| m.value.clone())
    }

    #[test]
    fn calls_and_codes() {
        let m = AppMetrics::new(8);
        assert_eq!(m.incr(b"orders", 1.0), Status::Ok);
        assert_eq!(m.incr(b"orders", 2.5), Status::Ok);
        assert_eq!(m.set(b"depth", -3.0), Status::Ok);
        assert_eq!(m.set(b"depth", 7.0), Status::Ok);
        for v in [0.5, 0.001, 2.0, -0.0] {
            assert_eq!(m.record(b"db.{0}", v), Status::Ok);
        }
        assert_eq!(m.incr(b"orders", -1.0), Status::BadValue);
        assert_eq!(m.incr(b"orders", f64::NAN), Status::BadValue);
        assert_eq!(m.set(b"depth", f64::INFINITY), Status::BadValue);
        assert_eq!(m.record(b"db.{0}", -0.1), Status::BadValue);
        assert_eq!(m.incr(b"orders", f64::MAX), Status::Ok);
        assert_eq!(m.incr(b"orders", f64::MAX), Status::BadValue, "overflow");
        assert_eq!(m.incr(b"bad name", 1.0), Status::BadName);
        assert_eq!(m.incr(b"", 1.0), Status::BadName);
        assert_eq!(m.incr(&[b'a'; 65], 1.0), Status::BadName);
        assert_eq!(m.set(b"orders", 1.0), Status::TypeClash);
        assert_eq!(m.record(b"depth", 1.0), Status::TypeClash);
        assert_eq!(m.names(), 3);

        let d = drain(&m, false);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].hostname.as_str(), d[0].process_group.as_str()),
            ("web1", "app")
        );
        assert_eq!(
            value_of(&d, "orders"),
            Some(MetricValue::Counter(3.5 + f64::MAX))
        );
        assert_eq!(value_of(&d, "depth"), Some(MetricValue::Gauge(7.0)));
        let Some(MetricValue::Distribution(dist)) = value_of(&d, "db.{0}") else {
            panic!("{d:?}")
        };
        assert_eq!(
            (dist.count, dist.sum, dist.min, dist.max),
            (4, 2.501, 0.0, 2.0)
        );
        let mut want = [0u32; BUCKETS];
        for v in [0.5, 0.001, 2.0, 0.0] {
            want[bucket_index(v)] += 1;
        }
        assert_eq!(dist.buckets, want);
    }

    #[test]
    fn only_changes_are_sent_and_a_failed_send_is_retried() {
        let m = AppMetrics::new(8);
        assert!(drain(&m, true).is_empty(), "no name, nothing refused");
        m.incr(b"a", 1.0);
        m.set(b"g", 1.0);
        m.record(b"d", 0.1);
        assert_eq!(drain(&m, false)[0].metrics.len(), 3);
        assert!(drain(&m, false).is_empty(), "nothing changed");
        m.incr(b"a", 0.0);
        m.set(b"g", 1.0);
        assert!(drain(&m, false).is_empty(), "same values");
        m.record(b"d", 0.0);
        let d = drain(&m, false);
        assert_eq!(d[0].metrics.len(), 1);
        assert_eq!(d[0].metrics[0].name, "d");
        assert_eq!(drain(&m, true)[0].metrics.len(), 3, "refresh sends all");

        // A send that fails leaves the change pending.
        m.incr(b"a", 1.0);
        let mut scratch = Vec::new();
        let mut buf = [0u8; MAX_DATAGRAM];
        let refused = Emit {
            pid: 1,
            seq: || 1,
            stamp: 0.0,
            hostname: b"",
            process_group: b"",
            send: |_: &[u8]| false,
        };
        assert_eq!(m.drain(false, &mut scratch, &mut buf, refused), 0);
        assert_eq!(
            value_of(&drain(&m, false), "a"),
            Some(MetricValue::Counter(2.0))
        );
    }

    #[test]
    fn bounded_names_count_dropped_calls() {
        let m = AppMetrics::new(3);
        for n in [&b"n1"[..], b"n2", b"n3"] {
            assert_eq!(m.incr(n, 1.0), Status::Ok);
        }
        assert_eq!(m.incr(b"n4", 1.0), Status::Dropped);
        assert_eq!(m.set(b"n5", 1.0), Status::Dropped);
        assert_eq!(m.incr(b"n1", 1.0), Status::Ok, "known names still count");
        assert_eq!((m.names(), m.dropped_calls()), (3, 2));
        let d = drain(&m, false);
        assert_eq!(d[0].dropped_calls, 2);
        assert!(drain(&m, false).is_empty());
        m.incr(b"n6", 1.0);
        let d = drain(&m, false);
        assert_eq!((d[0].metrics.len(), d[0].dropped_calls), (0, 3));
        let d = drain(&m, true);
        assert_eq!((d[0].metrics.len(), d[0].dropped_calls), (3, 3));
    }

    #[test]
    fn many_names_split_into_datagrams() {
        let m = AppMetrics::new(1000);
        for i in 0..1000 {
            let name = format!("a.fairly.long.metric.name.for.splitting.{i:04}");
            m.record(name.as_bytes(), i as f64 / 1000.0);
        }
        let d = drain(&m, false);
        assert!(d.len() > 1, "{} datagrams", d.len());
        assert_eq!(d.iter().map(|d| d.metrics.len()).sum::<usize>(), 1000);
    }

    #[test]
    fn eight_threads_sum_exactly() {
        const THREADS: usize = 8;
        const CALLS: usize = 20_000;
        let m = std::sync::Arc::new(AppMetrics::new(64));
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for k in 0..CALLS {
                        // Every thread meets every name first at once.
                        let name = format!("shared.{}", k % 16);
                        assert_eq!(m.incr(name.as_bytes(), 1.0), Status::Ok);
                        assert_eq!(m.incr(b"total", 3.0), Status::Ok);
                        assert_eq!(m.record(b"lat", (k % 100) as f64 / 1000.0), Status::Ok);
                        assert_eq!(m.set(format!("g{t}").as_bytes(), k as f64), Status::Ok);
                    }
                })
            })
            .collect();
        // The reporter drains while they run.
        let mut seen = 0;
        while seen < 50 {
            drain(&m, false);
            seen += 1;
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(m.names(), 16 + 2 + THREADS);
        let d = drain(&m, true);
        for i in 0..16 {
            assert_eq!(
                value_of(&d, &format!("shared.{i}")),
                Some(MetricValue::Counter((THREADS * CALLS / 16) as f64))
            );
        }
        assert_eq!(
            value_of(&d, "total"),
            Some(MetricValue::Counter((3 * THREADS * CALLS) as f64))
        );
        let Some(MetricValue::Distribution(dist)) = value_of(&d, "lat") else {
            panic!()
        };
        assert_eq!(dist.count, (THREADS * CALLS) as u64);
        assert_eq!(
            dist.buckets.iter().map(|&c| c as u64).sum::<u64>(),
            dist.count
        );
        assert_eq!((dist.min, dist.max), (0.0, 0.099));
        for t in 0..THREADS {
            assert_eq!(
                value_of(&d, &format!("g{t}")),
                Some(MetricValue::Gauge((CALLS - 1) as f64))
            );
        }
    }
}
