//! The processes view: one row per process, counted ones first in the chosen
//! sort order, then recently stopped or stale ones.

use super::choices::{UiState, PROC_SORTS};
use super::status::{liveness, recently_gone, Liveness};
use super::{group_label, shown, sum_buckets};
use crate::top::model::{Replica, REQUEST_PHASE};
use wire::histogram::quantile_seconds;

#[derive(Clone, Debug, PartialEq)]
pub struct ProcRow {
    pub pid: u32,
    pub group: String,
    pub host: String,
    pub liveness: Liveness,
    pub threads_active: u64,
    pub threads_max: u64,
    pub rps: f64,
    pub cpu: f64,
    pub rss: f64,
    pub p95: Option<f64>,
    pub slow: usize,
    pub drops: u64,
}

impl ProcRow {
    /// 0 normal, 1 ≥ 70 % threads active, 2 ≥ 90 %.
    pub fn load_level(&self) -> u8 {
        if self.threads_max == 0 || !self.liveness.counts() {
            return 0;
        }
        let f = self.threads_active as f64 / self.threads_max as f64;
        if f >= 0.9 {
            2
        } else if f >= 0.7 {
            1
        } else {
            0
        }
    }
}

/// Rows of the processes view: counted processes first in the chosen order,
/// then stopped / stale ones (most recent first).
pub fn process_rows(replica: &Replica, ui: &UiState, local_now: f64) -> Vec<ProcRow> {
    let now = replica.ref_now(local_now);
    let mut rows: Vec<ProcRow> = shown(replica, ui)
        .filter_map(|p| {
            let lv = liveness(p, now, local_now);
            if !lv.counts() && lv != Liveness::Starting && !recently_gone(p, now) {
                return None;
            }
            let t = p.latest().cloned().unwrap_or_default();
            let alive = lv.counts();
            let (b, _) = sum_buckets(p.ticks_within(now, 60.0), REQUEST_PHASE);
            Some(ProcRow {
                pid: p.pid,
                group: group_label(&p.identity.process_group),
                host: p.identity.hostname.clone(),
                threads_active: if alive { t.threads_active as u64 } else { 0 },
                threads_max: t.threads_maximum as u64,
                rps: if alive { t.request_throughput } else { 0.0 },
                cpu: if alive { t.cpu } else { 0.0 },
                rss: t.memory_rss,
                p95: quantile_seconds(&b, 0.95),
                slow: replica.slow.values().filter(|e| e.pid == p.pid).count(),
                drops: p.drops,
                liveness: lv,
            })
        })
        .collect();
    let key = PROC_SORTS[ui.proc_sort % PROC_SORTS.len()];
    let desc = |a: f64, b: f64| b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal);
    rows.sort_by(|a, b| {
        let alive = b.liveness.counts().cmp(&a.liveness.counts());
        alive.then_with(|| {
            match key {
                "cpu" => desc(a.cpu, b.cpu),
                "rss" => desc(a.rss, b.rss),
                "p95" => desc(a.p95.unwrap_or(-1.0), b.p95.unwrap_or(-1.0)),
                "slow" => b.slow.cmp(&a.slow),
                "pid" => a.pid.cmp(&b.pid),
                _ => desc(a.rps, b.rps),
            }
            .then(a.pid.cmp(&b.pid))
        })
    });
    rows
}
