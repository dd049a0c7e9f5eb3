//! `GET /api/history`: the query string, and the JSON body (docs/history.md
//! documents both).

use super::point::{quantile, Gauge, Point, GAUGES};
use super::{Extract, History, SeriesKey};
use crate::ingest::counters::PHASES;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Named ranges the UI and `top` offer.
pub const RANGES: [(&str, u64); 5] = [
    ("10m", 600),
    ("1h", 3600),
    ("6h", 6 * 3600),
    ("24h", 86400),
    ("7d", 7 * 86400),
];

/// Points a range is cut into when no step is asked for.
const DEFAULT_POINTS: u64 = 300;
/// Most points one response carries.
const MAX_POINTS: u64 = 20_000;

/// A parsed query.
#[derive(Debug, Default, PartialEq)]
pub struct Query {
    /// Only this host (all hosts summed when `None`).
    pub host: Option<String>,
    /// Only this process group (the whole host(s) when `None`).
    pub group: Option<String>,
    /// Start, Unix seconds (inclusive).
    pub from: Option<u64>,
    /// End, Unix seconds (exclusive).
    pub to: Option<u64>,
    /// Seconds per point.
    pub step: Option<u64>,
    /// A named range ending at the newest stamp (instead of from/to).
    pub range: Option<u64>,
}

/// Parses `host=&group=&from=&to=&step=&range=` (values percent-decoded by
/// the caller); unknown keys are refused, so a typo is not silently ignored.
pub fn parse_query(pairs: &[(String, String)]) -> Result<Query, String> {
    let mut q = Query::default();
    let secs = |k: &str, v: &str| -> Result<u64, String> {
        match v.parse::<f64>() {
            Ok(x) if (0.0..1e12).contains(&x) => Ok(x as u64),
            _ => Err(format!("{k}={v:?}: expected Unix seconds")),
        }
    };
    for (k, v) in pairs {
        match k.as_str() {
            "host" => q.host = Some(v.clone()),
            "group" => q.group = Some(v.clone()),
            "from" => q.from = Some(secs(k, v)?),
            "to" => q.to = Some(secs(k, v)?),
            "step" => {
                q.step = Some(match v.parse::<u64>() {
                    Ok(s) if (1..=7 * 86400).contains(&s) => s,
                    _ => return Err(format!("step={v:?}: expected whole seconds, 1 to 604800")),
                })
            }
            "range" => {
                q.range = Some(
                    RANGES
                        .iter()
                        .find(|(n, _)| n == v)
                        .map(|(_, s)| *s)
                        .ok_or_else(|| {
                            format!("range={v:?}: expected one of 10m, 1h, 6h, 24h, 7d")
                        })?,
                )
            }
            _ => {
                return Err(format!(
                    "unknown parameter {k:?} (host, group, from, to, step, range)"
                ))
            }
        }
    }
    if q.range.is_some() && (q.from.is_some() || q.to.is_some()) {
        return Err("give range, or from/to, not both".into());
    }
    if let (Some(f), Some(t)) = (q.from, q.to) {
        if f >= t {
            return Err(format!("from={f} is not before to={t}"));
        }
    }
    Ok(q)
}

/// Answers a query: points summed over the series that match.
pub fn answer(h: &History, q: &Query) -> Value {
    extract(h, q).to_json()
}

/// What [`answer`] reads from the history, copied out of it: take it under
/// the state lock, make the JSON ([`Answer::to_json`]) after letting go.
#[derive(Debug)]
pub struct Answer {
    host: Option<String>,
    group: Option<String>,
    from: u64,
    to: u64,
    step: u64,
    newest: u64,
    /// One per matching series, in key order.
    series: Vec<Extract>,
}

/// The part of [`answer`] that reads the history: the matching series'
/// points in range, still encoded (cheap to copy; decoding is the cost).
pub fn extract(h: &History, q: &Query) -> Answer {
    let newest = h.newest();
    let to = q.to.unwrap_or(newest + 1);
    let from = match (q.from, q.range) {
        (Some(f), _) => f,
        (None, Some(r)) => to.saturating_sub(r),
        (None, None) => to.saturating_sub(600),
    };
    let span = to.saturating_sub(from).max(1);
    let step = q
        .step
        .unwrap_or_else(|| span.div_ceil(DEFAULT_POINTS))
        .max(span.div_ceil(MAX_POINTS));
    let matches = |k: &SeriesKey| {
        q.host.as_deref().is_none_or(|h| h == &*k.host)
            && match (&q.group, &k.group) {
                (None, None) => true,
                (Some(g), Some(kg)) => g == &**kg,
                _ => false,
            }
    };
    let mut keys: Vec<&SeriesKey> = h.series().filter(|k| matches(k)).collect();
    keys.sort();
    Answer {
        host: q.host.clone(),
        group: q.group.clone(),
        from,
        to,
        step,
        newest,
        series: keys
            .into_iter()
            .map(|k| h.extract(k, from, to, step))
            .collect(),
    }
}

impl Answer {
    /// The JSON body (docs/history.md).
    pub fn to_json(&self) -> Value {
        let mut used_step = self.step;
        let mut sum: BTreeMap<u64, Point> = BTreeMap::new();
        for x in &self.series {
            let (s, pts) = x.points();
            used_step = s;
            for (t, p) in pts {
                // Hosts' points are summed per second bucket, so their gauges
                // add like the processes of one group do.
                sum.entry(t).or_default().merge_across(&p);
            }
        }
        let points: Vec<Value> = sum
            .iter()
            .map(|(t, p)| point_json(*t, used_step, p))
            .collect();
        json!({
            "host": self.host,
            "group": self.group,
            "from": self.from,
            "to": self.to,
            "step": used_step,
            "newest": self.newest,
            "series": self.series.len(),
            "points": points,
        })
    }
}

/// The series held: `[{"host":…, "group":…}]`, groups first.
pub fn series_list(h: &History) -> Value {
    let mut keys: Vec<&SeriesKey> = h.series().collect();
    keys.sort_by(|a, b| {
        (a.group.is_none(), &a.host, &a.group).cmp(&(b.group.is_none(), &b.host, &b.group))
    });
    Value::Array(
        keys.into_iter()
            .map(|k| json!({"host": &*k.host, "group": k.group.as_deref()}))
            .collect(),
    )
}

fn gauge(g: &Gauge) -> Value {
    match g.mean() {
        Some(mean) => json!({"min": g.min, "mean": mean, "max": g.max}),
        None => Value::Null,
    }
}

fn point_json(t: u64, step: u64, p: &Point) -> Value {
    let tt = &p.totals;
    let requests = p.requests();
    let mut latency = Map::new();
    for ((name, ..), ph) in PHASES.iter().zip(&tt.phases) {
        let n = ph.count();
        if n == 0 {
            continue;
        }
        let q = |x| quantile(ph, x);
        latency.insert(
            (*name).to_string(),
            json!({"count": n, "mean": ph.sum / n as f64, "p50": q(0.5), "p90": q(0.9), "p95": q(0.95), "p99": q(0.99)}),
        );
    }
    let secs = step as f64;
    let mut gauges = Map::new();
    for (name, g) in GAUGES.iter().zip(&p.gauges) {
        gauges.insert((*name).to_string(), gauge(g));
    }
    let threads = p.gauges[3].mean().unwrap_or(0.0);
    json!({
        "t": t,
        "requests": requests,
        "rate": requests as f64 / secs,
        "status": tt.requests_by_class,
        "request_bytes": tt.request_bytes,
        "response_bytes": tt.response_bytes,
        "latency": latency,
        "cpu_user": tt.cpu_user_seconds / secs,
        "cpu_system": tt.cpu_system_seconds / secs,
        "capacity_utilization": if threads > 0.0 { Some(tt.busy_thread_seconds / (threads * secs)) } else { None },
        "gauges": gauges,
        "slow_completed": tt.slow_completed,
        "gc_collections": tt.gc_collections,
        "gc_pause_seconds": tt.gc_pause_seconds,
    })
}

impl Point {
    /// Adds another series' point of the same period (hosts summed): counters
    /// and buckets add; gauges add their per-second figures (min and max
    /// of a sum are bounded by the sums of mins and maxes).
    fn merge_across(&mut self, o: &Point) {
        self.totals.add(&o.totals);
        for (a, b) in self.gauges.iter_mut().zip(&o.gauges) {
            if b.n == 0 {
                continue;
            }
            if a.n == 0 {
                *a = *b;
                continue;
            }
            let n = a.n.max(b.n);
            let mean = a.sum / f64::from(a.n) + b.sum / f64::from(b.n);
            *a = Gauge {
                min: a.min + b.min,
                max: a.max + b.max,
                sum: mean * f64::from(n),
                n,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::point::tests::tick;
    use super::super::DEFAULT_TIERS;
    use super::*;

    fn pairs(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn queries_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_query(&pairs("group=app&range=1h")).unwrap(),
            Query {
                group: Some("app".into()),
                range: Some(3600),
                ..Query::default()
            }
        );
        for (bad, why) in [
            ("range=2h", "expected one of"),
            ("step=0", "whole seconds"),
            ("from=x", "Unix seconds"),
            ("from=10&to=5", "not before"),
            ("range=1h&from=5", "not both"),
            ("grup=a", "unknown parameter"),
        ] {
            let e = parse_query(&pairs(bad)).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn answers_sum_hosts_and_groups() {
        let mut h = History::new(&DEFAULT_TIERS, 100).unwrap();
        for i in 0..120u64 {
            let t = (12_000 + i) as f64;
            h.record("a", "web", t, &tick(2, 10.0, 100.0));
            h.record("b", "web", t, &tick(1, 10.0, 50.0));
            h.record("a", "api", t, &tick(4, 300.0, 10.0));
            h.advance();
        }
        let get = |s: &str| answer(&h, &parse_query(&pairs(s)).unwrap());
        let total = |v: &Value| {
            v["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["requests"].as_u64().unwrap())
                .sum::<u64>()
        };
        let web = get("group=web&from=12000&to=12120&step=60");
        assert_eq!(web["series"], 2);
        assert_eq!(total(&web), 120 * 3);
        assert_eq!(web["step"], 60);
        let p = &web["points"][0];
        assert_eq!(p["rate"], 3.0);
        assert_eq!(p["gauges"]["rss_bytes"]["mean"], 150.0);
        assert_eq!(p["gauges"]["processes"]["max"], 2.0);
        let host_a = get("host=a&from=12000&to=12120&step=60");
        assert_eq!(total(&host_a), 120 * 6);
        let api = get("group=api&from=12000&to=12120&step=120");
        let p99 = api["points"][0]["latency"]["total"]["p99"]
            .as_f64()
            .unwrap();
        assert_eq!(
            wire::histogram::bucket_index(p99),
            wire::histogram::bucket_index(0.3)
        );
        assert_eq!(get("group=none")["points"].as_array().unwrap().len(), 0);
        let list = series_list(&h);
        assert_eq!(list.as_array().unwrap().len(), 5);
        assert_eq!(list[0], json!({"host": "a", "group": "api"}));
    }
}
