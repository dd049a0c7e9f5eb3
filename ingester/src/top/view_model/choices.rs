//! The user's choices (keys and command-line options) and the connection
//! state the footer reports: the inputs of the view-model besides the
//! [`Replica`](crate::top::model::Replica).

use crate::top::history::{HistoryState, RANGES};
use crate::top::model::{AppStats, ProcessHistory, REQUEST_PHASE};
/// Windows offered by `<` / `>` (seconds).
pub const WINDOWS: [f64; 3] = [10.0, 60.0, 600.0];
/// Refresh periods offered by `+` / `-` (seconds).
pub const REFRESH: [f64; 4] = [0.5, 1.0, 2.0, 5.0];

/// The six views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Overview,
    Processes,
    Workers,
    Latency,
    Slow,
    /// The application's own metrics.
    Custom,
}

impl View {
    pub const ALL: [View; 6] = [
        View::Overview,
        View::Processes,
        View::Workers,
        View::Latency,
        View::Slow,
        View::Custom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Processes => "processes",
            View::Workers => "workers",
            View::Latency => "latency",
            View::Slow => "slow",
            View::Custom => "custom",
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
/// Record-state filters of the slow view, in cycle order.
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
    /// ProcessHistory group filter; `Some("")` is the embedded (no group) set.
    pub group: Option<String>,
    pub refresh_idx: usize,
    /// Time range of the overview (index into [`RANGES`]; 0 = live window).
    pub range_idx: usize,
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
            range_idx: 0,
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
    /// The overview's range: `None` for the live window.
    pub fn range(&self) -> Option<&'static str> {
        Some(RANGES[self.range_idx % RANGES.len()]).filter(|r| *r != "live")
    }
    pub fn refresh(&self) -> f64 {
        REFRESH[self.refresh_idx % REFRESH.len()]
    }
    pub(super) fn shows(&self, p: &ProcessHistory) -> bool {
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
    /// What `/api/history` answered for the overview's range.
    pub history: HistoryState,
    /// What `/api/stats/detail` answered for the custom view.
    pub stats: AppStats,
}
