//! What the screen shows, computed from the [`Replica`] and the UI choices.
//! Every statistic of the monitor is computed here, once per frame; the
//! widgets only lay out and colour these values. One file per view, plus
//! [`choices`] (the inputs), [`status`] (how processes and slow records are
//! classified) and [`header`]; this file assembles the whole [`Frame`].
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

mod choices;
mod custom;
mod header;
mod latency;
mod overview;
mod processes;
mod slow;
mod status;
mod workers;

pub use choices::{
    ConnView, UiState, View, PROC_SORTS, REFRESH, SLOW_FILTERS, SLOW_SORTS, WINDOWS,
};
pub use custom::{custom, Custom, CustomRow};
pub use header::{header, Header};
pub use latency::{latency, Latency};
pub use overview::{overview, ranged_overview, Overview, Series};
pub use processes::{process_rows, ProcRow};
pub use slow::{slow_list, SlowList};
pub use status::{liveness, SlowState};
pub use workers::{worker_rows, Cell, WorkerRow};

use crate::top::model::{ProcessHistory, Replica, Tick};
use wire::histogram::BUCKETS;

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

fn shown<'a>(
    replica: &'a Replica,
    ui: &'a UiState,
) -> impl Iterator<Item = &'a ProcessHistory> + 'a {
    replica.processes.values().filter(move |p| ui.shows(p))
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
pub fn groups(replica: &Replica, local_now: f64) -> Vec<String> {
    let now = replica.ref_now(local_now);
    let mut v: Vec<String> = replica
        .processes
        .values()
        .filter(|p| liveness(p, now, local_now).counts())
        .map(|p| p.identity.process_group.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

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
    Custom(Custom),
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
pub fn frame(
    replica: &Replica,
    ui: &UiState,
    conn: &ConnView,
    local_now: f64,
    color: bool,
) -> Frame {
    let header = header(replica, ui, local_now);
    let body = match ui.view {
        View::Overview => Body::Overview(match ui.range() {
            Some(range) => ranged_overview(range, &conn.history),
            None => overview(replica, ui, local_now, &header),
        }),
        View::Processes => Body::Processes {
            sort: PROC_SORTS[ui.proc_sort % PROC_SORTS.len()],
            rows: process_rows(replica, ui, local_now),
        },
        View::Workers => Body::Workers(worker_rows(replica, ui, local_now)),
        View::Latency => Body::Latency(latency(replica, ui, local_now)),
        View::Slow => Body::Slow(slow_list(replica, ui, local_now)),
        View::Custom => Body::Custom(custom(&conn.stats, ui)),
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
        let ago = replica
            .last_message_local
            .map(|t| format!("{:.1}s", (local_now - t).max(0.0)))
            .unwrap_or_else(|| "-".into());
        format!(
            "connected to {}  pids={}  slow={}  rcvd={}  last_msg={} ago{}{}",
            conn.url,
            replica.processes.len(),
            replica.slow.len(),
            replica.messages,
            ago,
            if replica.history_truncated {
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
