//! The latency view: the summed histogram of one phase over the window, its
//! quantiles and extremes.

use super::choices::UiState;
use super::{shown, sum_buckets};
use crate::top::model::{Replica, PHASES};
use wire::histogram::quantile_seconds;

#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    pub phase: &'static str,
    pub window: f64,
    /// Samples (ticks) in the window.
    pub samples: usize,
    /// Requests in the histogram.
    pub requests: i64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub buckets: Vec<i64>,
}

pub fn latency(replica: &Replica, ui: &UiState, local_now: f64) -> Latency {
    let now = replica.ref_now(local_now);
    let phase = ui.phase_idx % PHASES.len();
    let win = ui.window();
    let (buckets, samples) = sum_buckets(
        shown(replica, ui).flat_map(|p| p.ticks_within(now, win)),
        phase,
    );
    let mut min: Option<f64> = None;
    let mut max: Option<f64> = None;
    for t in shown(replica, ui).flat_map(|p| p.ticks_within(now, win)) {
        if let Some(m) = t.mins[phase].filter(|v| *v > 0.0) {
            min = Some(min.map_or(m, |x| x.min(m)));
        }
        if let Some(m) = t.maxs[phase].filter(|v| *v > 0.0) {
            max = Some(max.map_or(m, |x| x.max(m)));
        }
    }
    Latency {
        phase: PHASES[phase],
        window: win,
        samples,
        requests: buckets.iter().sum(),
        p50: quantile_seconds(&buckets, 0.50),
        p90: quantile_seconds(&buckets, 0.90),
        p95: quantile_seconds(&buckets, 0.95),
        p99: quantile_seconds(&buckets, 0.99),
        min,
        max,
        buckets,
    }
}
