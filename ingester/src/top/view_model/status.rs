//! How a process and a slow record are classified at a given moment:
//! live / stopping / stopped / stale / starting, and active / lost / done.
//! The header, the lists and `--once` all use these, so they agree.

use crate::top::model::{Life, ProcessHistory, Replica, SlowRecord};
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
pub(super) fn recently_gone(p: &ProcessHistory, now: f64) -> bool {
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
pub fn liveness(p: &ProcessHistory, now: f64, local_now: f64) -> Liveness {
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

/// How a slow record is shown.
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

pub(super) fn slow_state(e: &SlowRecord, replica: &Replica, now: f64) -> SlowState {
    if e.state != 0 {
        return SlowState::Completed;
    }
    let p = replica.processes.get(&e.pid);
    let sp = p.map(|p| p.sample_period).unwrap_or(1.0);
    let dead = matches!(p.map(|p| &p.life), Some(Life::Stopped { .. }));
    if dead || now - e.refreshed_stamp > active_ttl(sp) {
        SlowState::Lost
    } else {
        SlowState::Active
    }
}

pub(super) fn slow_elapsed(e: &SlowRecord, st: SlowState, now: f64) -> f64 {
    match st {
        SlowState::Active => e.duration.max(now - e.start_stamp),
        _ => e.duration,
    }
}
