//! The slow-requests view: the records filtered by replica, group and URL
//! search, in-flight ones first.

use super::choices::{UiState, SLOW_FILTERS, SLOW_SORTS};
use super::status::{slow_elapsed, slow_state, SlowState};
use crate::top::model::Replica;

#[derive(Clone, Debug, PartialEq)]
pub struct SlowRow {
    pub state: SlowState,
    pub elapsed: f64,
    pub pid: u32,
    pub method: String,
    pub status: u64,
    pub log_id: String,
    pub url: String,
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub input_bytes: u64,
    pub input_reads: u64,
    pub output_bytes: u64,
    pub output_writes: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SlowList {
    pub sort: &'static str,
    pub filter: &'static str,
    pub search: String,
    pub total: usize,
    pub rows: Vec<SlowRow>,
}

pub fn slow_list(replica: &Replica, ui: &UiState, local_now: f64) -> SlowList {
    let now = replica.ref_now(local_now);
    let filter = SLOW_FILTERS[ui.slow_filter % SLOW_FILTERS.len()];
    let sort = SLOW_SORTS[ui.slow_sort % SLOW_SORTS.len()];
    let needle = ui.search.to_lowercase();
    let mut total = 0;
    let mut rows: Vec<SlowRow> = Vec::new();
    for e in replica.slow.values() {
        if let Some(g) = &ui.group {
            match replica.processes.get(&e.pid) {
                Some(p) if &p.identity.process_group == g => {}
                _ => continue,
            }
        }
        total += 1;
        let st = slow_state(e, replica, now);
        let keep = match filter {
            "active" => st == SlowState::Active,
            "completed" => st == SlowState::Completed,
            _ => true,
        };
        let url = e.url();
        if !keep || (!needle.is_empty() && !url.to_lowercase().contains(&needle)) {
            continue;
        }
        rows.push(SlowRow {
            state: st,
            elapsed: slow_elapsed(e, st, now),
            pid: e.pid,
            method: e.method.clone(),
            status: e.status,
            log_id: e.log_id.clone(),
            url,
            cpu_user: e.cpu_user_time,
            cpu_system: e.cpu_system_time,
            input_bytes: e.input_bytes,
            input_reads: e.input_reads,
            output_bytes: e.output_bytes,
            output_writes: e.output_writes,
        });
    }
    let by_elapsed = |a: &SlowRow, b: &SlowRow| {
        b.elapsed
            .partial_cmp(&a.elapsed)
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    // In-flight requests first: they are what an operator is looking for.
    let rank = |s: SlowState| match s {
        SlowState::Active => 0,
        SlowState::Lost => 1,
        SlowState::Completed => 2,
    };
    rows.sort_by(|a, b| {
        rank(a.state)
            .cmp(&rank(b.state))
            .then_with(|| match sort {
                "pid" => a.pid.cmp(&b.pid),
                "method" => a.method.cmp(&b.method),
                "url" => a.url.cmp(&b.url),
                _ => std::cmp::Ordering::Equal,
            })
            .then_with(|| by_elapsed(a, b))
            .then_with(|| a.log_id.cmp(&b.log_id))
    });
    SlowList {
        sort,
        filter,
        search: ui.search.clone(),
        total,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{slow, tick};
    use crate::top::view_model::header;
    use serde_json::json;

    #[test]
    fn unrefreshed_active_slow_records_become_lost() {
        let mut s = Replica::new();
        s.apply(tick(1, 1000.0, 5), 0.0);
        s.apply(
            slow(
                1,
                "a",
                1000.0,
                json!({"state": 0, "start_stamp": 998.0, "duration": 2.0,
                    "method": "GET", "path_info": "/slow"}),
            ),
            0.0,
        );
        let ui = UiState::default();
        let l = slow_list(&s, &ui, 1.0);
        assert_eq!(l.rows[0].state, SlowState::Active);
        assert!((l.rows[0].elapsed - 3.0).abs() < 1e-9);
        assert_eq!(header(&s, &ui, 1.0).slow_active, 1);
        let l = slow_list(&s, &ui, 6.0);
        assert_eq!(l.rows[0].state, SlowState::Lost);
        assert_eq!(header(&s, &ui, 6.0).slow_active, 0);
    }
}
