//! The overview view: one-second sparkline series over the window and the
//! request-weighted mean time of each phase.

use super::choices::UiState;
use super::header::Header;
use super::shown;
use super::status::liveness;
use crate::top::format::{fmt_bytes, fmt_seconds, fmt_window};
use crate::top::history::{HistoryPoint, HistoryState};
use crate::top::model::{Replica, PHASES};

/// One sparkline series (oldest first, one point per second).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: &'static str,
    pub points: Vec<f64>,
    /// Bottom of the scale: 0 for rates; just under the smallest value for
    /// levels such as memory, whose changes would otherwise not show.
    pub floor: f64,
    /// Latest value, formatted with its caption ("now 8.0 req/s").
    pub latest: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Overview {
    /// What the series cover, e.g. "last 10s (use < > to change window)".
    pub title: String,
    /// Why the ranged series are missing ("loading", "history not available: …").
    pub note: Option<String>,
    pub window: f64,
    pub series: Vec<Series>,
    /// `(phase, request-weighted mean of the latest ticks)`.
    pub phase_means: Vec<(&'static str, Option<f64>)>,
}

/// The bottom of a level's sparkline: just under its smallest value above
/// zero (0 when it has none), so that its changes show.
pub fn level_floor(points: &[f64]) -> f64 {
    let min = points
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    if min.is_finite() {
        min * 0.9
    } else {
        0.0
    }
}

/// The overview of the window, with the header's latest figures (computed
/// once per frame by the caller).
pub fn overview(replica: &Replica, ui: &UiState, local_now: f64, h: &Header) -> Overview {
    let now = replica.ref_now(local_now);
    let win = ui.window();
    let n = win as usize;
    let start = now - win;
    let mut thr = vec![0.0; n];
    let mut act = vec![0.0; n];
    let mut max = vec![0.0; n];
    let mut cpu = vec![0.0; n];
    let mut rss = vec![0.0; n];
    for p in shown(replica, ui) {
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
    let rss_floor = level_floor(&rss_mb);
    let series = vec![
        Series {
            label: "throughput",
            points: thr,
            floor: 0.0,
            latest: format!("now {:.1} req/s", h.rps_now),
        },
        Series {
            label: "capacity",
            points: cap,
            floor: 0.0,
            latest: match h.busy_fraction() {
                Some(f) => format!("now {:.0}%", f * 100.0),
                None => "now -".into(),
            },
        },
        Series {
            label: "cpu",
            points: cpu,
            floor: 0.0,
            latest: format!("now {:.2} cores", h.cpu_total),
        },
        Series {
            label: "rss",
            points: rss_mb,
            floor: rss_floor,
            latest: format!("now {}", fmt_bytes(h.rss_total)),
        },
    ];
    let mut phase_means = Vec::new();
    for (i, name) in PHASES.iter().enumerate() {
        let (mut num, mut den) = (0.0, 0.0);
        for p in shown(replica, ui) {
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
        title: format!("last {} (use < > to change window)", fmt_window(win)),
        note: None,
        window: win,
        series,
        phase_means,
    }
}

/// The overview of a range read from the history: one point per step of
/// the answer (a step without a point is blank), the newest and largest
/// value of each series.
pub fn ranged_overview(range: &str, state: &HistoryState) -> Overview {
    let title = format!("last {range} from the history (t: live/1h/6h/24h/7d)");
    let empty = |note: String| Overview {
        title: title.clone(),
        note: Some(note),
        window: 0.0,
        series: Vec::new(),
        phase_means: Vec::new(),
    };
    let a = match state {
        HistoryState::Ready(a) => a,
        HistoryState::Unavailable(why) => return empty(format!("history not available: {why}")),
        HistoryState::Loading | HistoryState::Idle => return empty("loading…".into()),
    };
    if a.points.is_empty() {
        return empty("no history in this range".into());
    }
    let n = ((a.to - a.from) / a.step).ceil().max(1.0) as usize;
    let slot = |t: f64| (((t - a.from) / a.step).floor().max(0.0) as usize).min(n - 1);
    let series_of = |label: &'static str,
                     value: &dyn Fn(&HistoryPoint) -> Option<f64>,
                     fmt: &dyn Fn(f64) -> String| {
        let mut points = vec![0.0; n];
        let mut newest = None;
        let mut max = f64::NEG_INFINITY;
        for p in &a.points {
            if let Some(v) = value(p) {
                points[slot(p.t)] = v;
                newest = Some(v);
                max = max.max(v);
            }
        }
        Series {
            label,
            points,
            floor: 0.0,
            latest: match newest {
                Some(v) => format!("newest {}  max {}", fmt(v), fmt(max)),
                None => "no data".into(),
            },
        }
    };
    let series = vec![
        series_of("throughput", &|p| Some(p.rate), &|v| {
            format!("{v:.1} req/s")
        }),
        series_of("p95 time", &|p| p.p95, &|v| fmt_seconds(Some(v))),
        series_of("capacity", &|p| p.capacity.map(|c| c * 100.0), &|v| {
            format!("{v:.0}%")
        }),
        series_of("cpu", &|p| Some(p.cpu), &|v| format!("{v:.2} cores")),
        series_of("rss mean", &|p| Some(p.rss_mean), &fmt_bytes),
    ];
    Overview {
        title: format!("{title}, one point per {}", fmt_window(a.step)),
        note: None,
        window: a.to - a.from,
        series,
        phase_means: Vec::new(),
    }
}
