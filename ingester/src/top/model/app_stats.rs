//! The application's own metrics as `serve` answers them at
//! `GET /api/stats/detail` (docs/app-metrics.md): the latest answer for the
//! group filter shown, and each name's figure at the last
//! [`STATS_POINTS`] polls, from which the custom view computes counter
//! rates and draws sparklines. Pure data: polling is
//! [`crate::top::stats`]'s, statistics the view-model's.

use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// Polls kept per name (one a second: the last minute).
pub const STATS_POINTS: usize = 60;

/// The group filter an answer is for (`None`: every group; `Some("")`:
/// embedded mode), as `top` holds it.
pub type StatsKey = Option<String>;

/// One name's figure across the processes of the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum AppValue {
    /// Sum of the processes' totals (those gone included).
    Counter(f64),
    /// Sum of the live processes' levels, and how many they are.
    Gauge { sum: f64, processes: u64 },
    /// Merged distribution, seconds.
    Distribution {
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
        p50: f64,
        p90: f64,
        p95: f64,
        p99: f64,
    },
}

/// One name of an answer.
#[derive(Clone, Debug, PartialEq)]
pub struct AppFigure {
    pub name: String,
    pub value: AppValue,
}

/// What the ingester and the processes turned away (see the document).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppDropped {
    pub series: u64,
    pub processes: u64,
    pub type_conflicts: u64,
    pub calls: u64,
}

/// One answer of `/api/stats/detail`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsAnswer {
    /// Every (host, process group) with metrics, whatever the filter.
    pub groups: Vec<(String, String)>,
    /// By name.
    pub metrics: Vec<AppFigure>,
    /// Processes with live values.
    pub processes: u64,
    pub dropped: AppDropped,
}

/// Parses an answer body.
pub fn parse_stats(body: &str) -> Result<StatsAnswer, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))?;
    let f = |m: &Value, k: &str| {
        m[k].as_f64()
            .ok_or_else(|| format!("no number {k:?} in {m}"))
    };
    let u = |m: &Value, k: &str| {
        m[k].as_u64()
            .ok_or_else(|| format!("no count {k:?} in {m}"))
    };
    let s = |m: &Value, k: &str| {
        m[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no string {k:?} in {m}"))
    };
    let list = |k: &str| {
        v[k].as_array()
            .ok_or_else(|| format!("no {k:?} in the answer"))
    };
    let groups = list("groups")?
        .iter()
        .map(|g| Ok((s(g, "host")?, s(g, "process_group")?)))
        .collect::<Result<Vec<_>, String>>()?;
    let metrics = list("metrics")?
        .iter()
        .map(|m| {
            let value = match m["type"].as_str() {
                Some("counter") => AppValue::Counter(f(m, "value")?),
                Some("gauge") => AppValue::Gauge {
                    sum: f(m, "value")?,
                    processes: u(m, "processes")?,
                },
                Some("distribution") => AppValue::Distribution {
                    count: u(m, "count")?,
                    sum: f(m, "sum")?,
                    min: f(m, "min")?,
                    max: f(m, "max")?,
                    p50: f(m, "p50")?,
                    p90: f(m, "p90")?,
                    p95: f(m, "p95")?,
                    p99: f(m, "p99")?,
                },
                _ => return Err(format!("unknown metric type in {m}")),
            };
            Ok(AppFigure {
                name: s(m, "name")?,
                value,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let d = &v["dropped"];
    Ok(StatsAnswer {
        groups,
        metrics,
        processes: u(&v, "processes")?,
        dropped: AppDropped {
            series: u(d, "series")?,
            processes: u(d, "processes")?,
            type_conflicts: u(d, "type_conflicts")?,
            calls: u(d, "calls")?,
        },
    })
}

/// A name's value at one poll (local time).
#[derive(Clone, Debug, PartialEq)]
pub struct StatsPoint {
    pub local: f64,
    pub value: AppValue,
}

/// What `top` knows of the application metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppStats {
    /// The filter the answer and points are for; `None` until one came.
    pub key: Option<StatsKey>,
    /// The latest answer.
    pub answer: Option<StatsAnswer>,
    /// Why the latest poll failed (cleared by the next answer).
    pub error: Option<String>,
    /// The last [`STATS_POINTS`] values of each name of the latest answer.
    pub points: BTreeMap<String, VecDeque<StatsPoint>>,
}

impl AppStats {
    /// Takes in the result of one poll for `key`, received at `local_now`.
    /// Another filter than before starts over.
    pub fn take(&mut self, key: StatsKey, result: Result<StatsAnswer, String>, local_now: f64) {
        if self.key.as_ref() != Some(&key) {
            *self = AppStats {
                key: Some(key),
                ..AppStats::default()
            };
        }
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        self.error = None;
        // Names the server no longer has are forgotten: the points stay
        // bounded by the answer's size.
        self.points
            .retain(|name, _| a.metrics.iter().any(|m| &m.name == name));
        for m in &a.metrics {
            let p = self.points.entry(m.name.clone()).or_default();
            if p.len() == STATS_POINTS {
                p.pop_front();
            }
            p.push_back(StatsPoint {
                local: local_now,
                value: m.value.clone(),
            });
        }
        self.answer = Some(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{"groups": [{"host": "web1", "process_group": "app"}],
     "metrics": [
       {"name": "orders.placed", "type": "counter", "value": 1234},
       {"name": "payment.{0}", "type": "distribution", "count": 310,
        "sum": 12.9, "min": 0.004, "max": 1.92, "p50": 0.031,
        "p90": 0.088, "p95": 0.12, "p99": 0.61},
       {"name": "queue.depth", "type": "gauge", "value": 17, "processes": 2}],
     "processes": 3,
     "dropped": {"series": 0, "processes": 0, "type_conflicts": 0, "calls": 5}}"#;

    #[test]
    fn the_documented_answer_parses() {
        let a = parse_stats(ANSWER).unwrap();
        assert_eq!(a.groups, [("web1".to_string(), "app".to_string())]);
        assert_eq!(
            a.metrics[2],
            AppFigure {
                name: "queue.depth".into(),
                value: AppValue::Gauge {
                    sum: 17.0,
                    processes: 2
                }
            }
        );
        assert!(matches!(
            a.metrics[1].value,
            AppValue::Distribution { count: 310, p99, .. } if p99 == 0.61
        ));
        assert_eq!(a.processes, 3);
        assert_eq!(a.dropped.calls, 5);
        assert!(parse_stats("{}").is_err());
        assert!(parse_stats(&ANSWER.replace("\"gauge\"", "\"meter\"")).is_err());
    }

    #[test]
    fn points_are_bounded_and_follow_the_filter() {
        let mut s = AppStats::default();
        let a = parse_stats(ANSWER).unwrap();
        for i in 0..(STATS_POINTS + 3) {
            s.take(None, Ok(a.clone()), i as f64);
        }
        assert_eq!(s.points.len(), 3);
        assert_eq!(s.points["orders.placed"].len(), STATS_POINTS);
        assert_eq!(s.points["orders.placed"][0].local, 3.0);
        // A failure keeps what was known and says why.
        s.take(None, Err("HTTP 500".into()), 100.0);
        assert_eq!(s.error.as_deref(), Some("HTTP 500"));
        assert!(s.answer.is_some());
        // A name the server dropped is forgotten.
        let mut fewer = a.clone();
        fewer.metrics.truncate(1);
        s.take(None, Ok(fewer), 101.0);
        assert_eq!(s.error, None);
        assert_eq!(s.points.keys().collect::<Vec<_>>(), ["orders.placed"]);
        // Another group: start over.
        s.take(Some("app".into()), Ok(a), 102.0);
        assert_eq!(s.key, Some(Some("app".to_string())));
        assert_eq!(s.points["orders.placed"].len(), 1);
    }
}
