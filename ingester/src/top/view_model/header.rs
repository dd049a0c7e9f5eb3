//! The always-visible header: totals over the counted processes, windowed
//! rates, status shares, latency quantiles and slow-request counts.

use super::choices::UiState;
use super::status::{liveness, recently_gone, slow_state, Liveness, SlowState};
use super::{group_label, shown, sum_buckets};
use crate::top::model::{ProcessHistory, Replica, REQUEST_PHASE};
use wire::histogram::quantile_seconds;

/// The always-visible header (and the `--once` summary).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    pub hosts: Vec<String>,
    /// Group filter, or the groups of the shown processes.
    pub groups_label: String,
    pub tick: Option<f64>,
    pub refresh: f64,
    pub window: f64,
    pub live_processes: usize,
    pub other_processes: usize,
    pub rps_now: f64,
    pub rps_1m: Option<f64>,
    pub rps_10m: Option<f64>,
    pub in_bps: f64,
    pub out_bps: f64,
    pub threads_busy: u64,
    pub threads_total: u64,
    /// Busy-thread-seconds ÷ capacity, latest tick, weighted by threads.
    pub utilization: Option<f64>,
    pub queue_mean: Option<f64>,
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub cpu_total: f64,
    pub rss_total: f64,
    pub rss_largest: f64,
    /// 1xx..5xx over the last minute.
    pub status: [f64; 5],
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub slow_active: usize,
    pub slow_1m: usize,
    pub slow_total: usize,
    pub total_received: u64,
    pub decode_errors: u64,
    /// Windowed figures rest on partial history (server snapshot budget).
    pub history_truncated: bool,
}

impl Header {
    pub fn status_total(&self) -> f64 {
        self.status.iter().sum()
    }
    /// Share of status class `i` (0 = 1xx), `None` without requests.
    pub fn status_share(&self, i: usize) -> Option<f64> {
        let t = self.status_total();
        (t > 0.0).then(|| self.status[i] / t)
    }
    /// `threads_busy / threads_total`.
    pub fn busy_fraction(&self) -> Option<f64> {
        (self.threads_total > 0).then(|| self.threads_busy as f64 / self.threads_total as f64)
    }
}

/// Request rate over the `seconds` before `now`: requests of the samples in
/// the window divided by the time those samples cover.
pub fn windowed_rate<'a>(
    procs: impl Iterator<Item = &'a ProcessHistory>,
    now: f64,
    seconds: f64,
) -> Option<f64> {
    let mut count = 0.0;
    let mut start = f64::INFINITY;
    let mut end = f64::NEG_INFINITY;
    let mut max_period: f64 = 0.0;
    for p in procs {
        for t in p.ticks_within(now, seconds) {
            let period = if t.sample_period > 0.0 {
                t.sample_period
            } else {
                p.sample_period
            };
            count += t.request_count;
            start = start.min(t.stamp - period);
            end = end.max(t.stamp);
            max_period = max_period.max(period);
        }
    }
    if !start.is_finite() {
        return None;
    }
    // A stalled feed: the silence since the last sample counts too.
    if now - end > 2.0 * max_period {
        end = now;
    }
    let span = end - start;
    (span > 0.0).then(|| count / span)
}

/// Computes the header.
pub fn header(replica: &Replica, ui: &UiState, local_now: f64) -> Header {
    let now = replica.ref_now(local_now);
    let mut h = Header {
        refresh: ui.refresh(),
        window: ui.window(),
        total_received: replica.server_total_received,
        decode_errors: replica.server_decode_errors,
        history_truncated: replica.history_truncated,
        ..Header::default()
    };
    let mut groups: Vec<String> = Vec::new();
    let mut util_num = 0.0;
    let mut util_den = 0.0;
    let mut queue_num = 0.0;
    let mut queue_den = 0.0;
    for p in shown(replica, ui) {
        match liveness(p, now, local_now) {
            Liveness::Starting => continue,
            l if !l.counts() => {
                if recently_gone(p, now) {
                    h.other_processes += 1;
                }
                continue;
            }
            _ => {}
        }
        let Some(t) = p.latest() else { continue };
        h.live_processes += 1;
        if !p.identity.hostname.is_empty() && !h.hosts.contains(&p.identity.hostname) {
            h.hosts.push(p.identity.hostname.clone());
        }
        let g = group_label(&p.identity.process_group);
        if !groups.contains(&g) {
            groups.push(g);
        }
        h.tick.get_or_insert(p.sample_period);
        h.rps_now += t.request_throughput;
        let sp = if p.sample_period > 0.0 {
            p.sample_period
        } else {
            1.0
        };
        h.in_bps += t.input_bytes / sp;
        h.out_bps += t.output_bytes / sp;
        h.threads_busy += t.threads_active as u64;
        h.threads_total += t.threads_maximum as u64;
        util_num += t.capacity_utilization * t.threads_maximum;
        util_den += t.threads_maximum;
        if let Some(q) = t.means[1].filter(|q| *q > 0.0) {
            let w = t.request_count.max(1.0);
            queue_num += q * w;
            queue_den += w;
        }
        h.cpu_user += t.cpu_user;
        h.cpu_system += t.cpu_system;
        h.cpu_total += t.cpu;
        h.rss_total += t.memory_rss;
        h.rss_largest = h.rss_largest.max(t.memory_rss);
    }
    groups.sort();
    h.groups_label = match &ui.group {
        Some(g) => group_label(g),
        None if groups.is_empty() => "(any)".to_string(),
        None => groups.join(","),
    };
    h.utilization = (util_den > 0.0).then(|| util_num / util_den);
    h.queue_mean = (queue_den > 0.0).then(|| queue_num / queue_den);
    h.rps_1m = windowed_rate(shown(replica, ui), now, 60.0);
    h.rps_10m = windowed_rate(shown(replica, ui), now, 600.0);

    // Status shares and latency cover every process that served requests in
    // the window, including ones that stopped since: those requests happened.
    for p in shown(replica, ui) {
        for t in p.ticks_within(now, 60.0) {
            for (s, v) in h.status.iter_mut().zip(t.status) {
                *s += v;
            }
        }
    }
    let win = ui.window();
    let (buckets, _) = sum_buckets(
        shown(replica, ui).flat_map(|p| p.ticks_within(now, win)),
        REQUEST_PHASE,
    );
    h.p50 = quantile_seconds(&buckets, 0.50);
    h.p95 = quantile_seconds(&buckets, 0.95);
    h.p99 = quantile_seconds(&buckets, 0.99);
    for p in shown(replica, ui) {
        for t in p.ticks_within(now, win) {
            if let Some(m) = t.mins[REQUEST_PHASE].filter(|v| *v > 0.0) {
                h.min = Some(h.min.map_or(m, |x: f64| x.min(m)));
            }
            if let Some(m) = t.maxs[REQUEST_PHASE].filter(|v| *v > 0.0) {
                h.max = Some(h.max.map_or(m, |x: f64| x.max(m)));
            }
        }
    }
    for e in replica.slow.values() {
        if let Some(g) = &ui.group {
            match replica.processes.get(&e.pid) {
                Some(p) if &p.identity.process_group == g => {}
                _ => continue,
            }
        }
        h.slow_total += 1;
        if slow_state(e, replica, now) == SlowState::Active {
            h.slow_active += 1;
        }
        if e.start_stamp >= now - 60.0 {
            h.slow_1m += 1;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{lifecycle, tick};

    #[test]
    fn windowed_rate_has_no_fencepost() {
        let mut s = Replica::new();
        // 10 ticks of 5 requests, one second apart: 5 req/s exactly.
        for i in 0..10 {
            s.apply(tick(1, 1000.0 + i as f64, 5), 0.0);
        }
        let r = windowed_rate(s.processes.values(), s.ref_now(0.0), 60.0).unwrap();
        assert!((r - 5.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn stopped_processes_leave_the_totals() {
        let mut s = Replica::new();
        s.apply(tick(1, 1000.0, 5), 0.0);
        s.apply(tick(2, 1000.0, 7), 0.0);
        let ui = UiState::default();
        assert_eq!(header(&s, &ui, 0.0).rps_now, 12.0);
        s.apply(lifecycle("process_stopped", 2, 1000.5, ""), 0.0);
        let h = header(&s, &ui, 0.0);
        assert_eq!(h.rps_now, 5.0);
        assert_eq!(h.threads_total, 4);
        assert_eq!((h.live_processes, h.other_processes), (1, 1));
        // Silence makes a process stale, on either clock.
        s.apply(tick(1, 1001.0, 5), 0.0);
        assert_eq!(header(&s, &ui, 11.0).live_processes, 0);
    }
}
