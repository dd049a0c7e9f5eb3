//! The application's own metrics (`app_metrics` datagrams, kind 10) summed
//! across processes, per host and process group: the model behind
//! `GET /api/stats`. Pure data: no HTTP, no sockets, no clock.
//!
//! Every datagram carries per-process totals (`wire::app`), so:
//! * a **counter** is the sum over live processes of their latest totals,
//!   plus the last totals of processes that went away (retired), so the
//!   sum never goes down while processes come and go; a total that goes
//!   down for the same pid (the pid was reused) retires the old one first;
//! * a **gauge** is kept per process (its last level) and summed over live
//!   processes; a process that goes away takes its level with it;
//! * a **distribution** keeps per process its count, sum, min, max and 64-bit
//!   bucket counts (the wire sends them modulo 2^32; the difference from
//!   the previous datagram is taken modulo 2^32), and merges across
//!   processes bucket by bucket, so percentiles across processes are
//!   exact to the bucket (and clamped to the exact min and max).
//!
//! Bounded: at most [`Limits::series`] (host, group, name) series and
//! [`Limits::processes`] processes; what does not fit is counted, not kept.
//!
//! The model reads no clock: the caller passes the arrival instant of each
//! datagram and asks it to expire processes (see [`AppMetricsState::expire`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Map, Number, Value as J};
use wire::app::{
    derived_name, AppMetrics as Datagram, DistributionTotals, MetricType, MetricValue,
};
use wire::histogram::{quantile_seconds, BUCKETS};

/// Bounds of the model.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// (host, group, name) series kept.
    pub series: usize,
    /// Processes with live values.
    pub processes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            series: 10_000,
            processes: 4_096,
        }
    }
}

/// What did not fit or did not agree, since the ingester started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Metric updates for a new series past [`Limits::series`].
    pub series: u64,
    /// Datagrams of a new process past [`Limits::processes`].
    pub processes: u64,
    /// Updates whose type disagrees with the series' (one process's
    /// counter named like another's gauge in the same group).
    pub type_conflicts: u64,
    /// Calls the processes themselves refused (their tables were full):
    /// the latest figure of each live process plus the last of each
    /// retired one.
    pub calls: u64,
}

/// A distribution's totals, with 64-bit bucket counts.
#[derive(Clone, Debug, PartialEq)]
struct Dist {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    buckets: [u64; BUCKETS],
}

impl Dist {
    fn empty() -> Dist {
        Dist {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            buckets: [0; BUCKETS],
        }
    }

    fn merge(&mut self, o: &Dist) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
    }
}

/// One process's latest value of one series.
#[derive(Clone, Debug)]
enum Live {
    Counter(f64),
    Gauge(f64),
    /// The totals, and the bucket counts as last received (mod 2^32).
    Dist(Box<(Dist, [u32; BUCKETS])>),
}

#[derive(Debug)]
struct Series {
    kind: MetricType,
    live: HashMap<u32, Live>,
    retired_counter: f64,
    retired_dist: Dist,
}

impl Series {
    fn new(kind: MetricType) -> Series {
        Series {
            kind,
            live: HashMap::new(),
            retired_counter: 0.0,
            retired_dist: Dist::empty(),
        }
    }

    /// The live values in pid order, so that sums of floats do not depend
    /// on the map's order.
    fn live_by_pid(&self) -> Vec<(&u32, &Live)> {
        let mut v: Vec<_> = self.live.iter().collect();
        v.sort_unstable_by_key(|(pid, _)| **pid);
        v
    }

    fn retire(&mut self, pid: u32) {
        match self.live.remove(&pid) {
            Some(Live::Counter(v)) => self.retired_counter += v,
            Some(Live::Dist(d)) => self.retired_dist.merge(&d.0),
            Some(Live::Gauge(_)) | None => {}
        }
    }

    fn update(&mut self, pid: u32, v: &MetricValue) {
        match (v, self.live.get_mut(&pid)) {
            (MetricValue::Counter(v), Some(Live::Counter(old))) if *v >= *old => *old = *v,
            (MetricValue::Counter(v), _) => {
                self.retire(pid);
                self.live.insert(pid, Live::Counter(*v));
            }
            (MetricValue::Gauge(v), _) => {
                self.live.insert(pid, Live::Gauge(*v));
            }
            (MetricValue::Distribution(d), Some(Live::Dist(old))) if d.count >= old.0.count => {
                let (acc, wire) = &mut **old;
                for ((a, w), n) in acc.buckets.iter_mut().zip(wire.iter_mut()).zip(&d.buckets) {
                    *a += u64::from(n.wrapping_sub(*w));
                    *w = *n;
                }
                acc.count = d.count;
                acc.sum = d.sum;
                acc.min = d.min;
                acc.max = d.max;
            }
            (MetricValue::Distribution(d), _) => {
                self.retire(pid);
                self.live.insert(pid, Live::Dist(Box::new(first_dist(d))));
            }
        }
    }
}

fn first_dist(d: &DistributionTotals) -> (Dist, [u32; BUCKETS]) {
    (
        Dist {
            count: d.count,
            sum: d.sum,
            min: d.min,
            max: d.max,
            buckets: d.buckets.map(u64::from),
        },
        d.buckets,
    )
}

/// (host, group, name).
type Key = (String, String, String);

#[derive(Debug)]
struct Process {
    host: String,
    group: String,
    keys: BTreeSet<Key>,
    dropped_calls: u64,
    /// When its latest datagram arrived.
    last_seen: Instant,
}

/// Which processes a view covers (`None`: all).
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter<'a> {
    /// Only this host.
    pub host: Option<&'a str>,
    /// Only this process group (`""` for embedded mode).
    pub group: Option<&'a str>,
}

impl Filter<'_> {
    fn admits(&self, host: &str, group: &str) -> bool {
        self.host.is_none_or(|h| h == host) && self.group.is_none_or(|g| g == group)
    }
}

/// A merged distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// Values recorded.
    pub count: u64,
    /// Their sum, seconds.
    pub sum: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// 50th, 90th, 95th and 99th percentiles, interpolated inside the
    /// bucket and clamped to [min, max].
    pub p50: f64,
    /// See `p50`.
    pub p90: f64,
    /// See `p50`.
    pub p95: f64,
    /// See `p50`.
    pub p99: f64,
}

/// One name's figure across the processes of a view.
#[derive(Clone, Debug, PartialEq)]
pub enum Figure {
    /// Sum of the totals (live and retired).
    Counter(f64),
    /// Sum of the live levels, and each live process's level by pid.
    Gauge {
        /// The sum.
        sum: f64,
        /// (pid, level), by pid.
        per_process: Vec<(u32, f64)>,
    },
    /// The merged distribution.
    Distribution(Merged),
}

/// One (host, group, name) series summed over its processes (live and
/// retired): what `/metrics` shows.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesFigure {
    /// Host.
    pub host: String,
    /// Process group (`""` for embedded mode).
    pub group: String,
    /// Metric name.
    pub name: String,
    /// The figure.
    pub value: SeriesValue,
}

/// The figure of a [`SeriesFigure`].
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesValue {
    /// Sum of the totals (live and retired).
    Counter(f64),
    /// Sum of the live levels.
    Gauge(f64),
    /// Values recorded, their sum, and the values per wire bucket.
    Distribution {
        /// Values recorded.
        count: u64,
        /// Their sum, seconds.
        sum: f64,
        /// Per bucket of `wire::histogram` (not cumulative).
        buckets: Box<[u64; BUCKETS]>,
    },
}

/// The application metrics of every process heard from.
#[derive(Debug, Default)]
pub struct AppMetricsState {
    limits: Limits,
    series: BTreeMap<Key, Series>,
    processes: HashMap<u32, Process>,
    dropped: Dropped,
    retired_dropped_calls: u64,
}

impl AppMetricsState {
    /// An empty model with these bounds.
    pub fn new(limits: Limits) -> AppMetricsState {
        AppMetricsState {
            limits,
            ..AppMetricsState::default()
        }
    }

    /// Takes in one decoded datagram of process `pid` (now).
    #[cfg(test)]
    pub fn ingest(&mut self, pid: u32, d: &Datagram) {
        self.ingest_at(pid, d, Instant::now());
    }

    /// Takes in one decoded datagram of process `pid`, arrived at `now`.
    pub fn ingest_at(&mut self, pid: u32, d: &Datagram, now: Instant) {
        if let Some(p) = self.processes.get(&pid) {
            if p.host != d.hostname || p.group != d.process_group {
                self.process_gone(pid); // the pid now belongs to another process
            }
        }
        if !self.processes.contains_key(&pid) {
            if self.processes.len() >= self.limits.processes {
                self.dropped.processes += 1;
                return;
            }
            self.processes.insert(
                pid,
                Process {
                    host: d.hostname.clone(),
                    group: d.process_group.clone(),
                    keys: BTreeSet::new(),
                    dropped_calls: 0,
                    last_seen: now,
                },
            );
        }
        let Some(p) = self.processes.get_mut(&pid) else {
            return;
        };
        p.dropped_calls = d.dropped_calls;
        p.last_seen = now;
        for m in &d.metrics {
            let key = (d.hostname.clone(), d.process_group.clone(), m.name.clone());
            let kind = m.value.metric_type();
            if !self.series.contains_key(&key) && self.series.len() >= self.limits.series {
                self.dropped.series += 1;
                continue;
            }
            let series = self
                .series
                .entry(key.clone())
                .or_insert_with(|| Series::new(kind));
            if series.kind != kind {
                self.dropped.type_conflicts += 1;
                continue;
            }
            series.update(pid, &m.value);
            p.keys.insert(key);
        }
    }

    /// Process `pid` stopped (or was expired): its counters and
    /// distributions are retired into the sums, its gauges dropped.
    pub fn process_gone(&mut self, pid: u32) {
        let Some(p) = self.processes.remove(&pid) else {
            return;
        };
        self.retired_dropped_calls += p.dropped_calls;
        for key in &p.keys {
            if let Some(s) = self.series.get_mut(key) {
                s.retire(pid);
            }
        }
    }

    /// Retires (as [`AppMetricsState::process_gone`]) every process not
    /// heard from for `stale_after` that `alive` does not vouch for, and
    /// returns their pids. A process sends kind 10 only when a figure
    /// changed (and every name once a minute), so silence alone does not
    /// mean it is gone: `alive` says whether its server ticks still come.
    /// Retiring a live process would count its totals twice when it sends
    /// them again.
    pub fn expire(
        &mut self,
        now: Instant,
        stale_after: Duration,
        alive: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        let gone: Vec<u32> = self
            .processes
            .iter()
            .filter(|(pid, p)| {
                now.saturating_duration_since(p.last_seen) > stale_after && !alive(**pid)
            })
            .map(|(pid, _)| *pid)
            .collect();
        for &pid in &gone {
            self.process_gone(pid);
        }
        gone
    }

    /// What did not fit or did not agree.
    pub fn dropped(&self) -> Dropped {
        Dropped {
            calls: self.retired_dropped_calls
                + self
                    .processes
                    .values()
                    .map(|p| p.dropped_calls)
                    .sum::<u64>(),
            ..self.dropped
        }
    }

    /// The (host, group) pairs that have series, sorted.
    pub fn groups(&self) -> Vec<(String, String)> {
        let mut g: Vec<_> = self
            .series
            .keys()
            .map(|(h, g, _)| (h.clone(), g.clone()))
            .collect();
        g.dedup();
        g
    }

    /// Every name in the view with its figure, sorted by name. A name
    /// used with different types in different groups takes the type of
    /// the first (host, group) in order; the others are left out.
    pub fn figures(&self, f: &Filter<'_>) -> Vec<(String, Figure)> {
        // name -> (type, counter sum, gauge levels, merged distribution)
        type Acc = (MetricType, f64, Vec<(u32, f64)>, Dist);
        let mut by_name: BTreeMap<&str, Acc> = BTreeMap::new();
        for ((host, group, name), s) in &self.series {
            if !f.admits(host, group) {
                continue;
            }
            let acc = by_name
                .entry(name.as_str())
                .or_insert_with(|| (s.kind, 0.0, Vec::new(), Dist::empty()));
            if acc.0 != s.kind {
                continue;
            }
            acc.1 += s.retired_counter;
            acc.3.merge(&s.retired_dist);
            for (pid, v) in s.live_by_pid() {
                match v {
                    Live::Counter(v) => acc.1 += v,
                    Live::Gauge(v) => acc.2.push((*pid, *v)),
                    Live::Dist(d) => acc.3.merge(&d.0),
                }
            }
        }
        by_name
            .into_iter()
            .filter_map(|(name, (kind, total, mut levels, dist))| {
                let fig = match kind {
                    MetricType::Counter => Figure::Counter(total),
                    // A gauge no live process holds is left out.
                    MetricType::Gauge if levels.is_empty() => return None,
                    MetricType::Gauge => {
                        levels.sort_by_key(|(pid, _)| *pid);
                        Figure::Gauge {
                            sum: levels.iter().map(|(_, v)| v).sum(),
                            per_process: levels,
                        }
                    }
                    MetricType::Distribution => Figure::Distribution(merged(&dist)?),
                };
                Some((name.to_string(), fig))
            })
            .collect()
    }

    /// Every (host, group, name) series, sorted; a distribution nothing
    /// was recorded in yet and a gauge no live process holds are left out.
    pub fn series_figures(&self) -> Vec<SeriesFigure> {
        self.series
            .iter()
            .filter_map(|((host, group, name), s)| {
                let value = match s.kind {
                    MetricType::Counter => SeriesValue::Counter(
                        s.retired_counter
                            + s.live_by_pid()
                                .into_iter()
                                .map(|(_, v)| match v {
                                    Live::Counter(v) => *v,
                                    _ => 0.0,
                                })
                                .sum::<f64>(),
                    ),
                    MetricType::Gauge => {
                        // Summed in pid order, so the figure does not depend
                        // on the map's order.
                        let mut levels: Vec<(u32, f64)> = s
                            .live
                            .iter()
                            .filter_map(|(pid, v)| match v {
                                Live::Gauge(v) => Some((*pid, *v)),
                                _ => None,
                            })
                            .collect();
                        if levels.is_empty() {
                            return None;
                        }
                        levels.sort_by_key(|(pid, _)| *pid);
                        SeriesValue::Gauge(levels.iter().map(|(_, v)| v).sum())
                    }
                    MetricType::Distribution => {
                        let mut d = s.retired_dist.clone();
                        for (_, v) in s.live_by_pid() {
                            if let Live::Dist(l) = v {
                                d.merge(&l.0);
                            }
                        }
                        if d.count == 0 {
                            return None;
                        }
                        SeriesValue::Distribution {
                            count: d.count,
                            sum: d.sum,
                            buckets: Box::new(d.buckets),
                        }
                    }
                };
                Some(SeriesFigure {
                    host: host.clone(),
                    group: group.clone(),
                    name: name.clone(),
                    value,
                })
            })
            .collect()
    }

    /// The body of `GET /api/stats`: one flat JSON object, statvent's
    /// shape: each counter's sum and each gauge's sum under the metric's
    /// name, and for each distribution `count`, `sum`, `min`, `max`, `p50`,
    /// `p90`, `p95`, `p99` under names derived from the metric's (the
    /// `{0}` placeholder replaced, or `.p99` appended). Whole numbers are
    /// written as integers.
    pub fn stats_json(&self, f: &Filter<'_>) -> String {
        let mut out = Map::new();
        for (name, fig) in self.figures(f) {
            match fig {
                Figure::Counter(v) | Figure::Gauge { sum: v, .. } => {
                    out.insert(name, number(v));
                }
                Figure::Distribution(m) => {
                    for (stat, v) in [
                        ("count", m.count as f64),
                        ("sum", m.sum),
                        ("min", m.min),
                        ("max", m.max),
                        ("p50", m.p50),
                        ("p90", m.p90),
                        ("p95", m.p95),
                        ("p99", m.p99),
                    ] {
                        out.insert(derived_name(&name, stat), number(v));
                    }
                }
            }
        }
        J::Object(out).to_string()
    }
}

impl AppMetricsState {
    /// The body of `GET /api/stats/detail` (the UI's and `top`'s view):
    /// the (host, group) pairs, each name with its type and figures, and
    /// what was dropped; see docs/app-metrics.md.
    pub fn detail_json(&self, f: &Filter<'_>) -> String {
        let groups: Vec<J> = self
            .groups()
            .into_iter()
            .map(|(h, g)| serde_json::json!({"host": h, "process_group": g}))
            .collect();
        let metrics: Vec<J> = self
            .figures(f)
            .into_iter()
            .map(|(name, fig)| match fig {
                Figure::Counter(v) => {
                    serde_json::json!({"name": name, "type": "counter", "value": number(v)})
                }
                Figure::Gauge { sum, per_process } => serde_json::json!({
                    "name": name, "type": "gauge", "value": number(sum),
                    "processes": per_process.len(),
                }),
                Figure::Distribution(m) => serde_json::json!({
                    "name": name, "type": "distribution",
                    "count": m.count, "sum": number(m.sum),
                    "min": number(m.min), "max": number(m.max),
                    "p50": number(m.p50), "p90": number(m.p90),
                    "p95": number(m.p95), "p99": number(m.p99),
                }),
            })
            .collect();
        let d = self.dropped();
        serde_json::json!({
            "groups": groups,
            "metrics": metrics,
            "processes": self.processes.len(),
            "dropped": {
                "series": d.series, "processes": d.processes,
                "type_conflicts": d.type_conflicts, "calls": d.calls,
            },
        })
        .to_string()
    }
}

fn merged(d: &Dist) -> Option<Merged> {
    if d.count == 0 {
        return None;
    }
    let counts: Vec<i64> = d
        .buckets
        .iter()
        .map(|&c| i64::try_from(c).unwrap_or(i64::MAX))
        .collect();
    let q = |q: f64| {
        quantile_seconds(&counts, q)
            .unwrap_or(d.min)
            .clamp(d.min, d.max)
    };
    Some(Merged {
        count: d.count,
        sum: d.sum,
        min: d.min,
        max: d.max,
        p50: q(0.50),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
    })
}

/// A whole number below 2^53 as a JSON integer, anything else as a float.
fn number(v: f64) -> J {
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        J::Number(Number::from(v as i64))
    } else {
        Number::from_f64(v).map_or(J::Null, J::Number)
    }
}

/// An `app_metrics` datagram's bytes, for the tests of the model's users.
#[cfg(test)]
pub(crate) fn test_datagram(
    pid: u32,
    seq: u32,
    host: &str,
    group: &str,
    metrics: &[wire::app::AppMetric<'_>],
) -> Vec<u8> {
    let mut buf = [0u8; wire::MAX_DATAGRAM];
    let head = wire::app::AppMetricsHead {
        hostname: host.as_bytes(),
        process_group: group.as_bytes(),
        dropped_calls: 0,
    };
    let n = wire::app::encode(&mut buf, pid, seq, 1000.0, &head, metrics).expect("fits");
    buf[..n].to_vec()
}

#[cfg(test)]
mod tests;
