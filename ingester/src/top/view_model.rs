//! What the screen shows, computed from [`State`] and the UI choices. Every
//! statistic of the monitor is computed here, once per frame; the widgets
//! only lay out and colour these values.
//!
//! Differences from the reference monitor, on purpose (`docs/compatibility.md`
//! C33-C38):
//! * processes that sent PROCESS_STOPPED, or whose samples stopped arriving,
//!   do not count in the header totals;
//! * an active slow request that is no longer refreshed by its process
//!   (missed completion, dead process) becomes `lost`, not active forever;
//! * windowed rates divide the requests of the samples in the window by the
//!   time those samples cover (no N/(N−1) fencepost);
//! * bucket 0 starts at 0 ms, as in the browser; the largest RSS is labelled
//!   as a per-process figure; the embedded group can be selected.

use super::state::{Life, Process, SlowEntry, State, Tick, PHASES, REQUEST_PHASE};
use wire::histogram::{quantile_seconds, BUCKETS};

/// Windows offered by `<` / `>` (seconds).
pub const WINDOWS: [f64; 3] = [10.0, 60.0, 600.0];
/// Refresh periods offered by `+` / `-` (seconds).
pub const REFRESH: [f64; 4] = [0.5, 1.0, 2.0, 5.0];

/// The five views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Processes,
    Workers,
    Latency,
    Slow,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Overview,
        View::Processes,
        View::Workers,
        View::Latency,
        View::Slow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Processes => "processes",
            View::Workers => "workers",
            View::Latency => "latency",
            View::Slow => "slow",
        }
    }

    pub fn from_name(s: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// Sort keys of the processes view, in cycle order.
pub const PROC_SORTS: [&str; 6] = ["rps", "cpu", "rss", "p95", "slow", "pid"];
/// Sort keys of the slow view, in cycle order.
pub const SLOW_SORTS: [&str; 4] = ["elapsed", "pid", "method", "url"];
/// State filters of the slow view, in cycle order.
pub const SLOW_FILTERS: [&str; 3] = ["any", "active", "completed"];

/// The user's choices (keys and options).
#[derive(Clone, Debug)]
pub struct UiState {
    pub view: View,
    pub window_idx: usize,
    pub phase_idx: usize,
    pub proc_sort: usize,
    pub slow_sort: usize,
    pub slow_filter: usize,
    /// Applied search text of the slow view.
    pub search: String,
    /// Search being typed (`/` mode).
    pub search_edit: Option<String>,
    /// Process-group filter; `Some("")` is the embedded (no group) set.
    pub group: Option<String>,
    pub refresh_idx: usize,
    pub help: bool,
    pub paused: bool,
    /// First row shown in the processes and slow lists.
    pub scroll: usize,
}

impl Default for UiState {
    fn default() -> Self {
        UiState {
            view: View::Overview,
            window_idx: 1,
            phase_idx: REQUEST_PHASE,
            proc_sort: 0,
            slow_sort: 0,
            slow_filter: 0,
            search: String::new(),
            search_edit: None,
            group: None,
            refresh_idx: 1,
            help: false,
            paused: false,
            scroll: 0,
        }
    }
}

impl UiState {
    pub fn window(&self) -> f64 {
        WINDOWS[self.window_idx % WINDOWS.len()]
    }
    pub fn refresh(&self) -> f64 {
        REFRESH[self.refresh_idx % REFRESH.len()]
    }
    fn shows(&self, p: &Process) -> bool {
        match &self.group {
            None => true,
            Some(g) => &p.identity.process_group == g,
        }
    }
}

/// The connection as the footer shows it.
#[derive(Clone, Debug, Default)]
pub struct ConnView {
    pub url: String,
    pub connected: bool,
    /// Last connection error, or `None` while (re)connecting for the first time.
    pub error: Option<String>,
    /// Seconds until the next connection attempt, when waiting.
    pub retry_in: Option<f64>,
}

/// How alive a process is.
#[derive(Clone, Debug, PartialEq)]
pub enum Liveness {
    /// Sending samples.
    Live,
    /// Sent PROCESS_STOPPING; still serving.
    Stopping(String),
    /// Sent PROCESS_STOPPED.
    Stopped(String),
    /// No sample for longer than `max(10 s, 3 × sample_period)`.
    Stale,
    /// Announced (STARTED) but no sample yet.
    Starting,
}

impl Liveness {
    /// Counts in the header totals.
    pub fn counts(&self) -> bool {
        matches!(self, Liveness::Live | Liveness::Stopping(_))
    }
    pub fn label(&self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Stopping(_) => "stopping",
            Liveness::Stopped(_) => "stopped",
            Liveness::Stale => "stale",
            Liveness::Starting => "starting",
        }
    }
}

/// Stopped or stale processes stay listed this long after their last
/// sample (reporter clock), so recent restarts are visible.
pub const GONE_VISIBLE: f64 = 120.0;

/// Whether a process that no longer counts is still worth listing.
fn recently_gone(p: &Process, now: f64) -> bool {
    let last = p
        .latest()
        .map(|t| t.stamp)
        .or(match &p.life {
            Life::Stopped { stamp, .. } | Life::Stopping { stamp, .. } => Some(*stamp),
            Life::Running => None,
        })
        .unwrap_or(f64::NEG_INFINITY);
    now - last <= GONE_VISIBLE
}

/// Seconds without a sample after which a process is stale.
pub fn stale_after(sample_period: f64) -> f64 {
    (3.0 * sample_period).max(10.0)
}

/// A process's liveness at reporter time `now` and local time `local_now`.
pub fn liveness(p: &Process, now: f64, local_now: f64) -> Liveness {
    match &p.life {
        Life::Stopped { reason, .. } => return Liveness::Stopped(reason.clone()),
        Life::Stopping { reason, .. } if p.ticks.is_empty() => {
            return Liveness::Stopping(reason.clone())
        }
        _ => {}
    }
    let Some(t) = p.latest() else {
        return Liveness::Starting;
    };
    let limit = stale_after(p.sample_period);
    if now - t.stamp > limit || local_now - p.last_received_local > limit {
        return Liveness::Stale;
    }
    match &p.life {
        Life::Stopping { reason, .. } => Liveness::Stopping(reason.clone()),
        _ => Liveness::Live,
    }
}

/// State of a slow entry as displayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowState {
    Active,
    /// Was active, but its process stopped refreshing it (missed
    /// completion, process gone).
    Lost,
    Completed,
}

impl SlowState {
    pub fn label(self) -> &'static str {
        match self {
            SlowState::Active => "ACTIVE",
            SlowState::Lost => "lost",
            SlowState::Completed => "done",
        }
    }
}

/// How long an active record stays active without a refresh.
pub fn active_ttl(sample_period: f64) -> f64 {
    (3.0 * sample_period).max(5.0)
}

fn slow_state(e: &SlowEntry, state: &State, now: f64) -> SlowState {
    if e.state != 0 {
        return SlowState::Completed;
    }
    let p = state.processes.get(&e.pid);
    let sp = p.map(|p| p.sample_period).unwrap_or(1.0);
    let dead = matches!(p.map(|p| &p.life), Some(Life::Stopped { .. }));
    if dead || now - e.refreshed_stamp > active_ttl(sp) {
        SlowState::Lost
    } else {
        SlowState::Active
    }
}

fn slow_elapsed(e: &SlowEntry, st: SlowState, now: f64) -> f64 {
    match st {
        SlowState::Active => e.duration.max(now - e.start_stamp),
        _ => e.duration,
    }
}

// ---------------------------------------------------------------------------
// Header

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
    procs: impl Iterator<Item = &'a Process>,
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

fn sum_buckets<'a>(ticks: impl Iterator<Item = &'a Tick>, phase: usize) -> (Vec<i64>, usize) {
    let mut out = vec![0i64; BUCKETS];
    let mut n = 0;
    for t in ticks {
        n += 1;
        for &(k, c) in &t.buckets[phase] {
            if let Some(o) = out.get_mut(k as usize) {
                *o += c as i64;
            }
        }
    }
    (out, n)
}

fn shown<'a>(state: &'a State, ui: &'a UiState) -> impl Iterator<Item = &'a Process> + 'a {
    state.processes.values().filter(move |p| ui.shows(p))
}

/// Computes the header.
pub fn header(state: &State, ui: &UiState, local_now: f64) -> Header {
    let now = state.ref_now(local_now);
    let mut h = Header {
        refresh: ui.refresh(),
        window: ui.window(),
        total_received: state.server_total_received,
        decode_errors: state.server_decode_errors,
        history_truncated: state.history_truncated,
        ..Header::default()
    };
    let mut groups: Vec<String> = Vec::new();
    let mut util_num = 0.0;
    let mut util_den = 0.0;
    let mut queue_num = 0.0;
    let mut queue_den = 0.0;
    for p in shown(state, ui) {
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
    h.rps_1m = windowed_rate(shown(state, ui), now, 60.0);
    h.rps_10m = windowed_rate(shown(state, ui), now, 600.0);

    // Status shares and latency cover every process that served requests in
    // the window, including ones that stopped since: those requests happened.
    for p in shown(state, ui) {
        for t in p.ticks_within(now, 60.0) {
            for (s, v) in h.status.iter_mut().zip(t.status) {
                *s += v;
            }
        }
    }
    let win = ui.window();
    let (buckets, _) = sum_buckets(
        shown(state, ui).flat_map(|p| p.ticks_within(now, win)),
        REQUEST_PHASE,
    );
    h.p50 = quantile_seconds(&buckets, 0.50);
    h.p95 = quantile_seconds(&buckets, 0.95);
    h.p99 = quantile_seconds(&buckets, 0.99);
    for p in shown(state, ui) {
        for t in p.ticks_within(now, win) {
            if let Some(m) = t.mins[REQUEST_PHASE].filter(|v| *v > 0.0) {
                h.min = Some(h.min.map_or(m, |x: f64| x.min(m)));
            }
            if let Some(m) = t.maxs[REQUEST_PHASE].filter(|v| *v > 0.0) {
                h.max = Some(h.max.map_or(m, |x: f64| x.max(m)));
            }
        }
    }
    for e in state.slow.values() {
        if let Some(g) = &ui.group {
            match state.processes.get(&e.pid) {
                Some(p) if &p.identity.process_group == g => {}
                _ => continue,
            }
        }
        h.slow_total += 1;
        if slow_state(e, state, now) == SlowState::Active {
            h.slow_active += 1;
        }
        if e.start_stamp >= now - 60.0 {
            h.slow_1m += 1;
        }
    }
    h
}

/// `(embedded)` for the empty group.
pub fn group_label(g: &str) -> String {
    if g.is_empty() {
        "(embedded)".to_string()
    } else {
        g.to_string()
    }
}

/// Groups offered by `f`: every group of a counted process, embedded first.
pub fn groups(state: &State, local_now: f64) -> Vec<String> {
    let now = state.ref_now(local_now);
    let mut v: Vec<String> = state
        .processes
        .values()
        .filter(|p| liveness(p, now, local_now).counts())
        .map(|p| p.identity.process_group.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

// ---------------------------------------------------------------------------
// Overview

/// One sparkline series (oldest first, one point per second).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: &'static str,
    pub points: Vec<f64>,
    /// Bottom of the scale: 0 for rates; just under the smallest value for
    /// levels such as memory, whose changes would otherwise not show.
    pub floor: f64,
    /// Latest value, formatted.
    pub latest: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Overview {
    pub window: f64,
    pub series: Vec<Series>,
    /// `(phase, request-weighted mean of the latest ticks)`.
    pub phase_means: Vec<(&'static str, Option<f64>)>,
}

fn overview_with(state: &State, ui: &UiState, local_now: f64, h: &Header) -> Overview {
    let now = state.ref_now(local_now);
    let win = ui.window();
    let n = win as usize;
    let start = now - win;
    let mut thr = vec![0.0; n];
    let mut act = vec![0.0; n];
    let mut max = vec![0.0; n];
    let mut cpu = vec![0.0; n];
    let mut rss = vec![0.0; n];
    for p in shown(state, ui) {
        for t in p.ticks_within(now, win + p.sample_period) {
            let period = if t.sample_period > 0.0 {
                t.sample_period
            } else {
                p.sample_period
            };
            // The tick covers (stamp - period, stamp]: fill the seconds
            // whose centre it covers.
            // Centre c_b = start + b + 0.5 lies in (stamp - period, stamp].
            let lo = (t.stamp - period - start - 0.5).floor() as i64 + 1;
            let hi = (t.stamp - start - 0.5).floor() as i64;
            for b in lo.max(0)..=hi.min(n as i64 - 1) {
                let b = b as usize;
                let c = start + b as f64 + 0.5;
                if c > t.stamp - period && c <= t.stamp {
                    thr[b] += t.request_throughput;
                    act[b] += t.threads_active;
                    max[b] += t.threads_maximum;
                    cpu[b] += t.cpu;
                    rss[b] += t.memory_rss;
                }
            }
        }
    }
    let cap: Vec<f64> = act
        .iter()
        .zip(&max)
        .map(|(a, m)| if *m > 0.0 { 100.0 * a / m } else { 0.0 })
        .collect();
    let rss_mb: Vec<f64> = rss.iter().map(|r| r / 1048576.0).collect();
    let rss_floor = rss_mb
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let rss_floor = if rss_floor.is_finite() {
        rss_floor * 0.9
    } else {
        0.0
    };
    let series = vec![
        Series {
            label: "throughput",
            points: thr,
            floor: 0.0,
            latest: format!("{:.1} req/s", h.rps_now),
        },
        Series {
            label: "capacity",
            points: cap,
            floor: 0.0,
            latest: match h.busy_fraction() {
                Some(f) => format!("{:.0}%", f * 100.0),
                None => "-".into(),
            },
        },
        Series {
            label: "cpu",
            points: cpu,
            floor: 0.0,
            latest: format!("{:.2} cores", h.cpu_total),
        },
        Series {
            label: "rss",
            points: rss_mb,
            floor: rss_floor,
            latest: fmt_bytes(h.rss_total),
        },
    ];
    let mut phase_means = Vec::new();
    for (i, name) in PHASES.iter().enumerate() {
        let (mut num, mut den) = (0.0, 0.0);
        for p in shown(state, ui) {
            if !liveness(p, now, local_now).counts() {
                continue;
            }
            if let Some(t) = p.latest() {
                if let Some(m) = t.means[i].filter(|m| *m > 0.0) {
                    let w = t.request_count.max(1.0);
                    num += m * w;
                    den += w;
                }
            }
        }
        phase_means.push((*name, (den > 0.0).then(|| num / den)));
    }
    Overview {
        window: win,
        series,
        phase_means,
    }
}

// ---------------------------------------------------------------------------
// Processes

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
pub fn process_rows(state: &State, ui: &UiState, local_now: f64) -> Vec<ProcRow> {
    let now = state.ref_now(local_now);
    let mut rows: Vec<ProcRow> = shown(state, ui)
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
                slow: state.slow.values().filter(|e| e.pid == p.pid).count(),
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

// ---------------------------------------------------------------------------
// Workers

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

pub fn worker_rows(state: &State, ui: &UiState, local_now: f64) -> Vec<WorkerRow> {
    let now = state.ref_now(local_now);
    let mut rows = Vec::new();
    for p in shown(state, ui) {
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
        let longest_request = state
            .slow
            .values()
            .filter(|e| e.pid == p.pid && slow_state(e, state, now) == SlowState::Active)
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

// ---------------------------------------------------------------------------
// Latency

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

pub fn latency(state: &State, ui: &UiState, local_now: f64) -> Latency {
    let now = state.ref_now(local_now);
    let phase = ui.phase_idx % PHASES.len();
    let win = ui.window();
    let (buckets, samples) = sum_buckets(
        shown(state, ui).flat_map(|p| p.ticks_within(now, win)),
        phase,
    );
    let mut min: Option<f64> = None;
    let mut max: Option<f64> = None;
    for t in shown(state, ui).flat_map(|p| p.ticks_within(now, win)) {
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

// ---------------------------------------------------------------------------
// Slow requests

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

pub fn slow_list(state: &State, ui: &UiState, local_now: f64) -> SlowList {
    let now = state.ref_now(local_now);
    let filter = SLOW_FILTERS[ui.slow_filter % SLOW_FILTERS.len()];
    let sort = SLOW_SORTS[ui.slow_sort % SLOW_SORTS.len()];
    let needle = ui.search.to_lowercase();
    let mut total = 0;
    let mut rows: Vec<SlowRow> = Vec::new();
    for e in state.slow.values() {
        if let Some(g) = &ui.group {
            match state.processes.get(&e.pid) {
                Some(p) if &p.identity.process_group == g => {}
                _ => continue,
            }
        }
        total += 1;
        let st = slow_state(e, state, now);
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

// ---------------------------------------------------------------------------
// Whole frame

/// The body of the current view.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Overview(Overview),
    Processes {
        sort: &'static str,
        rows: Vec<ProcRow>,
    },
    Workers(Vec<WorkerRow>),
    Latency(Latency),
    Slow(SlowList),
}

/// Connection label of the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Live,
    Paused,
    Disconnected,
}

/// Everything one screen shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub header: Header,
    pub mode: Mode,
    pub view: View,
    pub body: Body,
    pub footer: String,
    pub help: bool,
    pub color: bool,
    /// First row shown in long lists (clamped by the widgets).
    pub scroll: usize,
}

/// Computes the frame for the current view.
pub fn frame(state: &State, ui: &UiState, conn: &ConnView, local_now: f64, color: bool) -> Frame {
    let header = header(state, ui, local_now);
    let body = match ui.view {
        View::Overview => Body::Overview(overview_with(state, ui, local_now, &header)),
        View::Processes => Body::Processes {
            sort: PROC_SORTS[ui.proc_sort % PROC_SORTS.len()],
            rows: process_rows(state, ui, local_now),
        },
        View::Workers => Body::Workers(worker_rows(state, ui, local_now)),
        View::Latency => Body::Latency(latency(state, ui, local_now)),
        View::Slow => Body::Slow(slow_list(state, ui, local_now)),
    };
    let mode = if ui.paused {
        Mode::Paused
    } else if conn.connected {
        Mode::Live
    } else {
        Mode::Disconnected
    };
    let footer = if let Some(buf) = &ui.search_edit {
        format!(" / search: {buf}_  (Enter=apply  Esc=cancel) ")
    } else if conn.connected {
        let ago = state
            .last_message_local
            .map(|t| format!("{:.1}s", (local_now - t).max(0.0)))
            .unwrap_or_else(|| "-".into());
        format!(
            "connected to {}  pids={}  slow={}  rcvd={}  last_msg={} ago{}{}",
            conn.url,
            state.processes.len(),
            state.slow.len(),
            state.messages,
            ago,
            if state.history_truncated {
                "  partial history"
            } else {
                ""
            },
            if ui.paused { "  [PAUSED]" } else { "" }
        )
    } else {
        let why = conn.error.clone().unwrap_or_else(|| "connecting...".into());
        let retry = conn
            .retry_in
            .map(|s| format!("  retry in {s:.0}s"))
            .unwrap_or_default();
        format!("disconnected ({why})  url={}{retry}", conn.url)
    };
    Frame {
        header,
        mode,
        view: ui.view,
        body,
        footer,
        help: ui.help,
        color,
        scroll: ui.scroll,
    }
}

// ---------------------------------------------------------------------------
// Formatting shared by widgets and `--once`

/// `Nµs` below 1 ms, `N.Nms` below 1 s, else `N.NNs`; `-` for none.
pub fn fmt_seconds(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 0.001 => format!("{:.0}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.1}ms", s * 1000.0),
        Some(s) => format!("{s:.2}s"),
    }
}

/// `NB`, then `N.NKB` … `N.NPB` (base 1024).
pub fn fmt_bytes(n: f64) -> String {
    if n < 1024.0 {
        return format!("{}B", n.max(0.0) as u64);
    }
    let mut n = n;
    for unit in ["KB", "MB", "GB", "TB"] {
        n /= 1024.0;
        if n < 1024.0 {
            return format!("{n:.1}{unit}");
        }
    }
    format!("{:.1}PB", n / 1024.0)
}

/// `10s`, `1m`, `10m`.
pub fn fmt_window(s: f64) -> String {
    if s >= 60.0 {
        format!("{:.0}m", s / 60.0)
    } else {
        format!("{s:.0}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::state::{parse_value, Message};
    use serde_json::json;

    fn tick(pid: u32, stamp: f64, count: u64) -> Message {
        parse_value(
            &json!({"type": "sample", "kind": "request_metrics", "pid": pid,
            "seq": 1, "stamp": stamp, "fields": {"sample_period": 1.0,
            "request_count": count, "request_throughput": count as f64,
            "request_threads_maximum": 4, "request_threads_active": 2,
            "memory_rss": 1000, "status_2xx_total": count}}),
        )
        .unwrap()
    }

    #[test]
    fn windowed_rate_has_no_fencepost() {
        let mut s = State::new();
        // 10 ticks of 5 requests, one second apart: 5 req/s exactly.
        for i in 0..10 {
            s.apply(tick(1, 1000.0 + i as f64, 5), 0.0);
        }
        let r = windowed_rate(s.processes.values(), s.ref_now(0.0), 60.0).unwrap();
        assert!((r - 5.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn stopped_processes_leave_the_totals() {
        let mut s = State::new();
        s.apply(tick(1, 1000.0, 5), 0.0);
        s.apply(tick(2, 1000.0, 7), 0.0);
        let ui = UiState::default();
        assert_eq!(header(&s, &ui, 0.0).rps_now, 12.0);
        s.apply(
            parse_value(
                &json!({"type": "lifecycle", "event": {"kind": "process_stopped",
                "pid": 2, "stamp": 1000.5}}),
            )
            .unwrap(),
            0.0,
        );
        let h = header(&s, &ui, 0.0);
        assert_eq!(h.rps_now, 5.0);
        assert_eq!(h.threads_total, 4);
        assert_eq!((h.live_processes, h.other_processes), (1, 1));
        // Silence makes a process stale, on either clock.
        s.apply(tick(1, 1001.0, 5), 0.0);
        assert_eq!(header(&s, &ui, 11.0).live_processes, 0);
    }

    #[test]
    fn unrefreshed_active_slow_entries_become_lost() {
        let mut s = State::new();
        s.apply(tick(1, 1000.0, 5), 0.0);
        s.apply(
            parse_value(
                &json!({"type": "slow_request", "key": [1, "a"], "stamp": 1000.0,
                "entry": {"pid": 1, "state": 0, "start_stamp": 998.0, "duration": 2.0,
                          "method": "GET", "path_info": "/slow"}}),
            )
            .unwrap(),
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

    #[test]
    fn formats() {
        assert_eq!(fmt_seconds(Some(0.0005)), "500µs");
        assert_eq!(fmt_seconds(Some(0.0461)), "46.1ms");
        assert_eq!(fmt_seconds(Some(2.5)), "2.50s");
        assert_eq!(fmt_bytes(1000.0), "1000B");
        assert_eq!(fmt_bytes(1536.0), "1.5KB");
        assert_eq!(fmt_bytes(3.0 * 1048576.0), "3.0MB");
        assert_eq!(fmt_window(600.0), "10m");
    }
}
