//! The workers view: one cell per request thread of each counted process,
//! classed by how long its current request has run.

use super::choices::UiState;
use super::status::{liveness, slow_state, SlowState};
use super::{group_label, shown};
use crate::top::model::Replica;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// `.`
    Idle,
    /// `*` under 1 s.
    Short,
    /// `#` 1 s or more.
    Long,
    /// `!` at or over the slow-request threshold.
    Slow,
}

impl Cell {
    pub fn glyph(self) -> char {
        match self {
            Cell::Idle => '.',
            Cell::Short => '*',
            Cell::Long => '#',
            Cell::Slow => '!',
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkerRow {
    pub pid: u32,
    pub group: String,
    pub cells: Vec<Cell>,
    /// 1-based slot and its elapsed time, when one is busy.
    pub longest: Option<(usize, f64)>,
    /// Method and URL of the pid's longest active slow request.
    pub longest_request: Option<(String, String)>,
}

pub fn worker_rows(replica: &Replica, ui: &UiState, local_now: f64) -> Vec<WorkerRow> {
    let now = replica.ref_now(local_now);
    let mut rows = Vec::new();
    for p in shown(replica, ui) {
        if !liveness(p, now, local_now).counts() {
            continue;
        }
        let Some(t) = p.latest() else { continue };
        let thr = p.slow_requests_threshold;
        let cells = t
            .current_elapsed
            .iter()
            .map(|&e| {
                if e <= 0.0 {
                    Cell::Idle
                } else if thr > 0.0 && e >= thr {
                    Cell::Slow
                } else if e >= 1.0 {
                    Cell::Long
                } else {
                    Cell::Short
                }
            })
            .collect();
        let longest = t
            .current_elapsed
            .iter()
            .enumerate()
            .filter(|(_, e)| **e > 0.0)
            .max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))
            .map(|(i, e)| (i + 1, *e));
        let longest_request = replica
            .slow
            .values()
            .filter(|e| e.pid == p.pid && slow_state(e, replica, now) == SlowState::Active)
            .max_by(|a, b| {
                a.duration
                    .partial_cmp(&b.duration)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .map(|e| (e.method.clone(), e.url()));
        rows.push(WorkerRow {
            pid: p.pid,
            group: group_label(&p.identity.process_group),
            cells,
            longest,
            longest_request,
        });
    }
    rows
}
