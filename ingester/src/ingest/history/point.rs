//! One history point: what a series did during one period, in a form that
//! merges exactly (counters and histogram buckets add, gauges keep
//! min / sum / count / max), and its compact byte encoding.

use crate::ingest::counters::{Interval, PhaseTotals, Totals, GENERATIONS, PHASES};
use wire::histogram::BUCKETS;

/// A gauge over a period: the per-second values it saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gauge {
    /// Smallest per-second value.
    pub min: f64,
    /// Largest per-second value.
    pub max: f64,
    /// Sum of the per-second values (mean = sum / n).
    pub sum: f64,
    /// Seconds seen; 0 while a second is still being summed.
    pub n: u32,
}

impl Gauge {
    /// Mean of the per-second values.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }

    /// Folds another period's gauge in.
    fn merge(&mut self, o: &Gauge) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.sum += o.sum;
        self.n += o.n;
    }
}

/// The gauges a point keeps, in encoding order.
pub const GAUGES: [&str; 4] = ["rss_bytes", "processes", "busy_threads", "threads"];

/// What a series did during one period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Point {
    /// Counters and latency histograms, summed over the period.
    pub(crate) totals: Totals,
    /// [`GAUGES`], in order.
    pub gauges: [Gauge; 4],
}

/// One process's tick, as the history takes it.
#[derive(Clone, Debug, Default)]
pub struct Tick {
    /// What happened during the tick (histogram buckets sparse).
    pub(crate) interval: Interval,
    /// Resident memory, bytes.
    pub rss_bytes: f64,
    /// Busy request threads over the tick.
    pub busy_threads: f64,
    /// Configured request threads.
    pub threads: f64,
}

impl Point {
    /// Adds one process's tick to a second that is still open: gauges are
    /// summed across the group's processes (`n` stays 0 until [`Point::seal`]).
    pub fn add_tick(&mut self, t: &Tick) {
        self.totals.add_interval(&t.interval);
        let v = [t.rss_bytes, 1.0, t.busy_threads, t.threads];
        for (g, v) in self.gauges.iter_mut().zip(v) {
            g.sum += v;
        }
    }

    /// Closes a second: each gauge's summed value becomes that second's one
    /// observation.
    pub fn seal(&mut self) {
        for g in &mut self.gauges {
            if g.n == 0 {
                *g = Gauge {
                    min: g.sum,
                    max: g.sum,
                    sum: g.sum,
                    n: 1,
                };
            }
        }
    }

    /// Folds a sealed point of the same series into this one.
    pub fn merge(&mut self, o: &Point) {
        self.totals.add(&o.totals);
        for (a, b) in self.gauges.iter_mut().zip(&o.gauges) {
            a.merge(b);
        }
    }

    /// Requests of every status class.
    pub fn requests(&self) -> u64 {
        self.totals.requests_by_class.iter().sum()
    }

    /// Appends the encoding (see [`Point::decode`]) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let t = &self.totals;
        let ints = self.ints();
        let floats = self.floats();
        let mut mask = 0u64;
        for (i, v) in ints.iter().enumerate() {
            if *v != 0 {
                mask |= 1 << i;
            }
        }
        for (i, v) in floats.iter().enumerate() {
            if *v != 0.0 {
                mask |= 1 << (INTS + i);
            }
        }
        for (i, g) in self.gauges.iter().enumerate() {
            if g.n != 0 {
                mask |= 1 << (INTS + FLOATS + i);
            }
        }
        for (i, p) in t.phases.iter().enumerate() {
            if p.buckets.iter().any(|&c| c != 0) {
                mask |= 1 << (INTS + FLOATS + GAUGES.len() + i);
            }
        }
        put_varint(out, mask);
        for v in ints.iter().filter(|v| **v != 0) {
            put_varint(out, *v);
        }
        for v in floats.iter().filter(|v| **v != 0.0) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for g in self.gauges.iter().filter(|g| g.n != 0) {
            put_varint(out, u64::from(g.n));
            if g.n == 1 {
                out.extend_from_slice(&g.sum.to_le_bytes());
            } else {
                for v in [g.min, g.max, g.sum] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        for p in &t.phases {
            let used = p.buckets.iter().filter(|&&c| c != 0).count();
            if used == 0 {
                continue;
            }
            out.push(used as u8);
            for (i, &c) in p.buckets.iter().enumerate().filter(|(_, &c)| c != 0) {
                out.push(i as u8);
                put_varint(out, c);
            }
            out.extend_from_slice(&p.sum.to_le_bytes());
        }
    }

    /// Reads what [`Point::encode`] wrote; `None` if `b` is not exactly one
    /// point.
    pub fn decode(b: &[u8]) -> Option<Point> {
        let mut r = Reader { b, at: 0 };
        let mask = r.varint()?;
        let mut p = Point::default();
        let mut ints = [0u64; INTS];
        for (i, v) in ints.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *v = r.varint()?;
            }
        }
        let mut floats = [0f64; FLOATS];
        for (i, v) in floats.iter_mut().enumerate() {
            if mask & (1 << (INTS + i)) != 0 {
                *v = r.f64()?;
            }
        }
        for (i, g) in p.gauges.iter_mut().enumerate() {
            if mask & (1 << (INTS + FLOATS + i)) == 0 {
                continue;
            }
            let n = u32::try_from(r.varint()?).ok()?;
            *g = if n == 1 {
                let v = r.f64()?;
                Gauge {
                    min: v,
                    max: v,
                    sum: v,
                    n,
                }
            } else {
                Gauge {
                    min: r.f64()?,
                    max: r.f64()?,
                    sum: r.f64()?,
                    n,
                }
            };
        }
        for (i, ph) in p.totals.phases.iter_mut().enumerate() {
            if mask & (1 << (INTS + FLOATS + GAUGES.len() + i)) == 0 {
                continue;
            }
            let used = r.byte()?;
            for _ in 0..used {
                let at = usize::from(r.byte()?);
                *ph.buckets.get_mut(at)? = r.varint()?;
            }
            ph.sum = r.f64()?;
        }
        if r.at != b.len() || mask >> (INTS + FLOATS + GAUGES.len() + PHASES.len()) != 0 {
            return None;
        }
        p.set_ints(ints);
        p.set_floats(floats);
        Some(p)
    }

    fn ints(&self) -> [u64; INTS] {
        let t = &self.totals;
        let c = &t.requests_by_class;
        let g = &t.gc_collections;
        [
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            t.request_bytes,
            t.response_bytes,
            t.slow_completed,
            g[0],
            g[1],
            g[2],
        ]
    }

    fn set_ints(&mut self, v: [u64; INTS]) {
        let t = &mut self.totals;
        t.requests_by_class.copy_from_slice(&v[..5]);
        t.request_bytes = v[5];
        t.response_bytes = v[6];
        t.slow_completed = v[7];
        t.gc_collections.copy_from_slice(&v[8..8 + GENERATIONS]);
    }

    fn floats(&self) -> [f64; FLOATS] {
        let t = &self.totals;
        let g = &t.gc_pause_seconds;
        [
            t.cpu_user_seconds,
            t.cpu_system_seconds,
            t.busy_thread_seconds,
            g[0],
            g[1],
            g[2],
        ]
    }

    fn set_floats(&mut self, v: [f64; FLOATS]) {
        let t = &mut self.totals;
        t.cpu_user_seconds = v[0];
        t.cpu_system_seconds = v[1];
        t.busy_thread_seconds = v[2];
        t.gc_pause_seconds.copy_from_slice(&v[3..3 + GENERATIONS]);
    }
}

/// Integer counters in the encoding: 5 status classes, 2 byte counts, slow
/// completed, 3 GC generations.
const INTS: usize = 8 + GENERATIONS;
/// Float counters: CPU user, CPU system, busy thread-seconds, 3 GC pauses.
const FLOATS: usize = 3 + GENERATIONS;

const _: () = assert!(BUCKETS <= 255 && INTS + FLOATS + 4 + PHASES.len() <= 64);

/// A phase's quantile, seconds, from its summed buckets.
pub(crate) fn quantile(p: &PhaseTotals, q: f64) -> Option<f64> {
    let counts: [i64; BUCKETS] = p.buckets.map(|c| i64::try_from(c).unwrap_or(i64::MAX));
    wire::histogram::quantile_seconds(&counts, q)
}

/// LEB128.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over encoded bytes; every read is checked.
pub(super) struct Reader<'a> {
    pub b: &'a [u8],
    pub at: usize,
}

impl Reader<'_> {
    pub fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub fn f64(&mut self) -> Option<f64> {
        let s = self.b.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(f64::from_le_bytes(s.try_into().ok()?))
    }

    pub fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A tick with `n` requests of `ms` milliseconds each (status 2xx).
    pub fn tick(n: u64, ms: f64, rss: f64) -> Tick {
        let mut t = Tick {
            rss_bytes: rss,
            busy_threads: 0.5,
            threads: 8.0,
            ..Tick::default()
        };
        let i = &mut t.interval;
        i.requests_by_class[1] = n;
        i.request_bytes = 10 * n;
        let b = wire::histogram::bucket_index(ms / 1000.0);
        for (phase, sum) in i.phase_sums.iter_mut().enumerate() {
            i.buckets.push((phase as u8, b as u8, n));
            *sum = n as f64 * ms / 1000.0;
        }
        i.cpu_user_seconds = 0.01;
        t
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut p = Point::default();
        p.add_tick(&tick(5, 12.0, 1e8));
        p.add_tick(&tick(3, 250.0, 2e8));
        p.seal();
        let mut q = Point::default();
        q.add_tick(&tick(7, 3.0, 5e7));
        q.seal();
        p.merge(&q);
        p.totals.gc_pause_seconds[2] = 0.25;
        p.totals.slow_completed = 4;
        let mut b = Vec::new();
        p.encode(&mut b);
        assert_eq!(Point::decode(&b), Some(p.clone()));
        // Any cut or extra byte is refused.
        for cut in 0..b.len() {
            assert_eq!(Point::decode(&b[..cut]), None, "cut at {cut}");
        }
        b.push(0);
        assert_eq!(Point::decode(&b), None);
        // Empty point: one byte.
        let mut e = Vec::new();
        Point::default().encode(&mut e);
        assert_eq!(e, [0]);
    }

    #[test]
    fn sealed_gauges_are_per_second_sums() {
        let mut p = Point::default();
        p.add_tick(&tick(1, 1.0, 100.0));
        p.add_tick(&tick(1, 1.0, 300.0));
        p.seal();
        assert_eq!(
            p.gauges[0],
            Gauge {
                min: 400.0,
                max: 400.0,
                sum: 400.0,
                n: 1
            }
        );
        assert_eq!(p.gauges[1].sum, 2.0);
        let mut q = Point::default();
        q.add_tick(&tick(1, 1.0, 100.0));
        q.seal();
        p.merge(&q);
        assert_eq!(
            p.gauges[0],
            Gauge {
                min: 100.0,
                max: 400.0,
                sum: 500.0,
                n: 2
            }
        );
        assert_eq!(p.gauges[0].mean(), Some(250.0));
    }

    #[test]
    fn merged_quantiles_are_exact_to_the_bucket() {
        // 90 fast requests in one point, 10 slow ones in another: the
        // merged p95 lies in the slow bucket, which no average of the two
        // points' p95s would give.
        let mut a = Point::default();
        a.add_tick(&tick(90, 2.0, 0.0));
        let mut b = Point::default();
        b.add_tick(&tick(10, 800.0, 0.0));
        let pa = quantile(&a.totals.phases[4], 0.95).unwrap();
        let pb = quantile(&b.totals.phases[4], 0.95).unwrap();
        a.merge(&b);
        let m = quantile(&a.totals.phases[4], 0.95).unwrap();
        let slow = wire::histogram::bucket_index(0.8);
        assert_eq!(wire::histogram::bucket_index(m), slow);
        assert!((m - (pa + pb) / 2.0).abs() > 0.05, "{m} {pa} {pb}");
    }
}
