//! The custom view: the application's own metrics (`incr` / `set` /
//! `record`, docs/app-metrics.md) as `serve` sums them, one row per name:
//! its value, a counter's rate over the last poll, a distribution's
//! percentiles, and a sparkline of the last minute (a counter's rate, a
//! gauge's level, a distribution's p95), as the browser's Custom tab shows
//! them.

use super::choices::UiState;
use super::group_label;
use super::overview::level_floor;
use crate::top::model::{AppDropped, AppStats, AppValue, StatsPoint};

/// One name.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomRow {
    pub name: String,
    /// `counter`, `gauge` or `distribution`.
    pub kind: &'static str,
    /// The counter's total, the gauge's sum, the distribution's count.
    pub value: f64,
    /// Live processes holding a gauge.
    pub processes: Option<u64>,
    /// A counter's increase per second between the last two polls.
    pub rate: Option<f64>,
    /// A distribution's p50, p95, p99 (seconds).
    pub percentiles: Option<[f64; 3]>,
    /// Oldest first.
    pub spark: Vec<f64>,
    /// The sparkline's bottom: 0 for rates, just under the smallest value
    /// for levels and p95s.
    pub floor: f64,
}

/// The body of the custom view.
#[derive(Clone, Debug, PartialEq)]
pub struct Custom {
    pub title: String,
    /// Why there are no rows, or why they are old.
    pub note: Option<String>,
    pub rows: Vec<CustomRow>,
    /// What was turned away, when anything was.
    pub dropped: Option<AppDropped>,
}

/// Increase per second between two polls of a counter.
fn rate(a: &StatsPoint, b: &StatsPoint) -> Option<f64> {
    match (&a.value, &b.value) {
        (AppValue::Counter(x), AppValue::Counter(y)) if b.local > a.local => {
            Some(((y - x) / (b.local - a.local)).max(0.0))
        }
        _ => None,
    }
}

/// The custom view of what `top` holds.
pub fn custom(stats: &AppStats, ui: &UiState) -> Custom {
    let group = ui
        .group
        .as_deref()
        .map(group_label)
        .unwrap_or_else(|| "all".into());
    let mut title = format!("Application metrics - group: {group}");
    let note = |n: &str| Some(n.to_string());
    let shown_key = stats.key.as_ref() == Some(&ui.group);
    let answer = stats.answer.as_ref().filter(|_| shown_key);
    let Some(a) = answer else {
        let why = match (&stats.error, shown_key) {
            (Some(e), true) => format!("application metrics not available: {e}"),
            _ => "loading…".into(),
        };
        return Custom {
            title: format!("{title}   (f group)"),
            note: Some(why),
            rows: Vec::new(),
            dropped: None,
        };
    };
    title.push_str(&format!(
        "  ({} names, {} processes)   (f group)",
        a.metrics.len(),
        a.processes
    ));
    let rows: Vec<CustomRow> = a
        .metrics
        .iter()
        .map(|m| {
            let points: Vec<&StatsPoint> = stats
                .points
                .get(&m.name)
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let spark: Vec<f64> = match m.value {
                AppValue::Counter(_) => {
                    points.windows(2).filter_map(|w| rate(w[0], w[1])).collect()
                }
                _ => points
                    .iter()
                    .filter_map(|p| match p.value {
                        AppValue::Gauge { sum, .. } => Some(sum),
                        AppValue::Distribution { p95, .. } => Some(p95),
                        AppValue::Counter(_) => None,
                    })
                    .collect(),
            };
            let last_rate = match points.as_slice() {
                [.., a, b] => rate(a, b),
                _ => None,
            };
            let (kind, value, processes, percentiles) = match m.value {
                AppValue::Counter(v) => ("counter", v, None, None),
                AppValue::Gauge { sum, processes } => ("gauge", sum, Some(processes), None),
                AppValue::Distribution {
                    count,
                    p50,
                    p95,
                    p99,
                    ..
                } => ("distribution", count as f64, None, Some([p50, p95, p99])),
            };
            let floor = if kind == "counter" {
                0.0
            } else {
                level_floor(&spark)
            };
            CustomRow {
                name: m.name.clone(),
                kind,
                value,
                processes,
                rate: last_rate,
                percentiles,
                spark,
                floor,
            }
        })
        .collect();
    let note = match (&stats.error, rows.is_empty()) {
        (Some(e), _) => Some(format!("not updated: {e}")),
        (None, true) => {
            note("no application metrics (WSGITelemetryOptions +AppMetrics, docs/app-metrics.md)")
        }
        (None, false) => None,
    };
    Custom {
        title,
        note,
        rows,
        dropped: Some(a.dropped).filter(|d| *d != AppDropped::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::app_stats;

    #[test]
    fn rates_percentiles_and_sparklines() {
        let c = custom(&app_stats(), &UiState::default());
        assert_eq!(
            c.title,
            "Application metrics - group: all  (3 names, 3 processes)   (f group)"
        );
        assert_eq!(c.note, None);
        let orders = &c.rows[0];
        assert_eq!(orders.kind, "counter");
        assert_eq!(orders.value, 1240.0);
        // 1200 → 1210 → 1240 over two 2-second polls.
        assert_eq!(orders.rate, Some(15.0));
        assert_eq!(orders.spark, vec![5.0, 15.0]);
        let pay = &c.rows[1];
        assert_eq!(pay.percentiles, Some([0.031, 0.12, 0.61]));
        assert_eq!(pay.spark, vec![0.1, 0.11, 0.12]);
        assert_eq!(c.rows[2].processes, Some(2));
        assert_eq!(c.dropped.map(|d| d.calls), Some(44));
    }

    #[test]
    fn other_filter_loading_and_refusals() {
        let ui = UiState {
            group: Some("app".into()),
            ..UiState::default()
        };
        // The answers held are for every group: not shown for `app`.
        let c = custom(&app_stats(), &ui);
        assert_eq!(c.note.as_deref(), Some("loading…"));
        assert!(c.rows.is_empty());
        let mut s = AppStats::default();
        s.take(None, Err("the server has no /api/stats/detail".into()), 0.0);
        let c = custom(&s, &UiState::default());
        assert_eq!(
            c.note.as_deref(),
            Some("application metrics not available: the server has no /api/stats/detail")
        );
    }
}
