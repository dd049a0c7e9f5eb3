//! Cumulative totals for the `/metrics` exposition, kept as datagrams
//! arrive.
//!
//! A REQUEST datagram carries what happened *during its interval* (request
//! count, status classes, I/O bytes, histogram counts, CPU and busy time
//! as utilisations over `sample_period`); GC snapshots carry cumulative
//! collection counts per interpreter; GC events one collection each.
//! Prometheus wants counters that only go up, so each process sums its
//! intervals here ([`ProcessTotals`]) and, when the process is dropped, its
//! totals are folded into its group's [`GroupTotals::retired`]: a group's
//! counters stay monotonic while its processes come and go, and reset
//! only when the ingester restarts. Pure data, like the rest of the model.

use super::View;
use indexmap::IndexMap;
use std::sync::Arc;
use wire::histogram::BUCKETS;
use wire::id;

pub(crate) use crate::ingest::counters::{Totals, GENERATIONS, PHASES};
use crate::ingest::history::point::Tick;

/// A process's totals and its latest gauges.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProcessTotals {
    /// Counters; `gc_collections` holds only what earlier reporters of
    /// this pid counted (see [`ProcessTotals::totals`]).
    counters: Totals,
    /// Latest cumulative GC collections per interpreter.
    gc_latest: Vec<(Arc<str>, [u64; GENERATIONS])>,
    /// Configured request threads (field 50, latest tick).
    pub(crate) threads_configured: u64,
    /// Busy threads over the latest tick (utilisation × threads).
    pub(crate) threads_busy: f64,
    /// Resident memory, bytes (latest tick).
    pub(crate) rss_bytes: u64,
    /// A PROCESS_STOPPED came after the last PROCESS_STARTED.
    pub(crate) stopped: bool,
}

impl ProcessTotals {
    /// The counters, GC collections included.
    pub(crate) fn totals(&self) -> Totals {
        let mut t = self.counters.clone();
        for (_, c) in &self.gc_latest {
            for (t, c) in t.gc_collections.iter_mut().zip(c) {
                *t += c;
            }
        }
        t
    }

    /// Adds one REQUEST interval, read into `tick` (whose room is reused
    /// from datagram to datagram) for the history.
    pub(super) fn add_tick(&mut self, s: &impl View, tick: &mut Tick) {
        let t = &mut tick.interval;
        t.clear();
        for (k, c) in t.requests_by_class.iter_mut().enumerate() {
            *c = s.u64(id::STATUS_1XX_TOTAL + k as u16).unwrap_or(0);
        }
        t.request_bytes = s.u64(id::INPUT_BYTES_TOTAL).unwrap_or(0);
        t.response_bytes = s.u64(id::OUTPUT_BYTES_TOTAL).unwrap_or(0);
        for (phase, (_, buckets, mean)) in PHASES.into_iter().enumerate() {
            let mut n = 0u64;
            let list = &mut t.buckets;
            s.each_i32(buckets, &mut |i, c| {
                if let (true, Ok(c @ 1..)) = (i < BUCKETS, u64::try_from(c)) {
                    list.push((phase as u8, i as u8, c));
                    n += c;
                }
            });
            let m = s.f64(mean).unwrap_or(0.0);
            if n > 0 && m.is_finite() && m > 0.0 {
                t.phase_sums[phase] = m * n as f64;
            }
        }
        let period = s
            .f64(id::SAMPLE_PERIOD)
            .filter(|p| p.is_finite() && *p > 0.0);
        let period = period.unwrap_or(0.0);
        let pos = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0);
        t.cpu_user_seconds = pos(s.f64(id::CPU_USER_UTILIZATION)) * period;
        t.cpu_system_seconds = pos(s.f64(id::CPU_SYSTEM_UTILIZATION)) * period;
        let threads = s.u64(id::REQUEST_THREADS_MAXIMUM).unwrap_or(0);
        let utilization = pos(s.f64(id::CAPACITY_UTILIZATION));
        t.busy_thread_seconds = utilization * period * threads as f64;
        self.counters.add_interval(t);
        self.threads_configured = threads;
        self.threads_busy = utilization * threads as f64;
        self.rss_bytes = s.u64(id::MEMORY_RSS).unwrap_or(0);
        tick.rss_bytes = self.rss_bytes as f64;
        tick.busy_threads = self.threads_busy;
        tick.threads = threads as f64;
    }

    /// Takes a GC snapshot (cumulative per interpreter; at most
    /// `max_interpreters` are tracked) or a GC event (one collection).
    pub(super) fn add_gc(
        &mut self,
        s: &impl View,
        interpreter: &Arc<str>,
        snapshot: bool,
        max_interpreters: usize,
    ) {
        if !snapshot {
            let g = s.u64(id::GC_EVENT_GENERATION).unwrap_or(0) as usize;
            let d = s.f64(id::GC_EVENT_DURATION).unwrap_or(0.0);
            if g < GENERATIONS && d.is_finite() && d > 0.0 {
                self.counters.gc_pause_seconds[g] += d;
            }
            return;
        }
        let mut now = [0u64; GENERATIONS];
        for (g, v) in now.iter_mut().enumerate() {
            *v = s.u64(id::GC_COLLECTIONS0 + g as u16).unwrap_or(0);
        }
        let full = self.gc_latest.len() >= max_interpreters;
        match self.gc_latest.iter_mut().find(|(k, _)| k == interpreter) {
            Some((_, last)) => {
                for g in 0..GENERATIONS {
                    // Lower than before: a new reporter reusing the pid
                    // started over; keep what the old one counted.
                    if now[g] < last[g] {
                        self.counters.gc_collections[g] += last[g];
                    }
                }
                *last = now;
            }
            None if !full => {
                self.gc_latest.push((interpreter.clone(), now));
            }
            None => {}
        }
    }

    /// Counts a slow-request record that completed.
    pub(super) fn add_slow_completed(&mut self) {
        self.counters.slow_completed += 1;
    }
}

/// What a group (`hostname`, `process_group`) keeps beyond its live
/// processes.
#[derive(Clone, Debug, Default)]
pub(crate) struct GroupTotals {
    /// Totals of the group's processes already dropped.
    pub(crate) retired: Totals,
    /// PROCESS_STARTED datagrams.
    pub(crate) starts: u64,
    /// PROCESS_STOPPED datagrams by shutdown reason: at most
    /// [`STOP_REASONS`] reasons, later new ones counted as
    /// [`OTHER_REASON`].
    pub(crate) stops: IndexMap<String, u64>,
}

/// Most shutdown reasons a group counts apart. The reason is a datagram
/// string: mod_wsgi sends about a dozen, but one sender with a new reason
/// per PROCESS_STOPPED would otherwise add a `/metrics` series each
/// without bound (100,000 in a second).
pub(crate) const STOP_REASONS: usize = 32;

/// The reason under which a group counts stops past [`STOP_REASONS`].
pub(crate) const OTHER_REASON: &str = "other";

/// A group's key: (`hostname`, `process_group`).
pub(crate) type GroupKey = (String, String);

/// The group under which the figures of groups past
/// [`Limits::max_groups`](super::Limits) are counted.
pub(crate) fn other_group() -> GroupKey {
    ("(other)".to_string(), "(other)".to_string())
}

/// Whether `key`'s figures are counted apart: it is counted so already, or
/// there is room for one more group (`cap`). As groups are never removed,
/// the answer for a key does not change once the bound is reached.
pub(crate) fn counted_apart(
    groups: &IndexMap<GroupKey, GroupTotals>,
    cap: usize,
    key: &GroupKey,
) -> bool {
    groups.len() < cap || groups.contains_key(key)
}

/// The totals `key`'s figures go to: its own ([`counted_apart`]), else
/// those of [`other_group`]; and whether it was folded there.
pub(super) fn group_entry(
    groups: &mut IndexMap<GroupKey, GroupTotals>,
    cap: usize,
    key: GroupKey,
) -> (&mut GroupTotals, bool) {
    if counted_apart(groups, cap, &key) {
        (groups.entry(key).or_default(), false)
    } else {
        (groups.entry(other_group()).or_default(), true)
    }
}

impl super::State {
    /// The group a lifecycle event belongs to: its own identity fields,
    /// else what the process latched.
    fn lifecycle_group(&self, ev: &super::LifecycleEvent) -> GroupKey {
        let p = self.processes.get(&ev.pid);
        let pick = |own: &str, latched: Option<&str>| match (own, latched) {
            ("", Some(l)) => l.to_string(),
            (o, _) => o.to_string(),
        };
        (
            pick(&ev.hostname, p.map(|p| p.hostname.as_str())),
            pick(&ev.process_group, p.map(|p| p.process_group.as_str())),
        )
    }

    /// Counts starts and stops (by reason) for the event's group.
    pub(super) fn count_lifecycle(&mut self, ev: &super::LifecycleEvent, now: std::time::Instant) {
        let started = match ev.kind {
            "process_started" => true,
            "process_stopped" => false,
            _ => return,
        };
        let key = self.lifecycle_group(ev);
        let (g, folded) = group_entry(&mut self.groups, self.limits.max_groups, key);
        if started {
            g.starts += 1;
        } else {
            let reason = if ev.shutdown_reason.is_empty() {
                "unspecified"
            } else {
                ev.shutdown_reason.as_str()
            };
            let room = g.stops.len() < STOP_REASONS;
            match g.stops.get_mut(reason) {
                Some(n) => *n += 1,
                None if room => {
                    g.stops.insert(reason.to_string(), 1);
                }
                None => {
                    *g.stops.entry(OTHER_REASON.to_string()).or_default() += 1;
                    self.warnings.note(
                        now,
                        "shutdown reason folded",
                        &format!(
                            "pid {}: its group has {STOP_REASONS} shutdown reasons already; \
                             counted as '{OTHER_REASON}'",
                            ev.pid
                        ),
                    );
                }
            }
        }
        if folded {
            self.note_group_folded(ev.pid, now);
        }
        if let Some(p) = self.processes.get_mut(&ev.pid) {
            p.metrics.stopped = !started;
        }
    }

    /// Makes a live process's new identity a group counted apart if there
    /// is room ([`counted_apart`]), else counts and logs its folding.
    pub(super) fn admit_group(&mut self, pid: u32, key: GroupKey, now: std::time::Instant) {
        if counted_apart(&self.groups, self.limits.max_groups, &key) {
            self.groups.entry(key).or_default();
        } else {
            self.note_group_folded(pid, now);
        }
    }

    fn note_group_folded(&mut self, pid: u32, now: std::time::Instant) {
        self.groups_folded += 1;
        self.warnings.note(
            now,
            "group folded",
            &format!(
                "pid {pid}: {} groups counted apart already (--max-groups); counted as (other)",
                self.limits.max_groups
            ),
        );
    }

    /// Counts a completed slow request for its process (or, for a pid the
    /// model has no state for, for the group with no identity).
    pub(super) fn count_slow_completed(&mut self, pid: u32) {
        match self.processes.get_mut(&pid) {
            Some(p) => p.metrics.add_slow_completed(),
            None => {
                let cap = self.limits.max_groups;
                let (g, _) = group_entry(&mut self.groups, cap, GroupKey::default());
                g.retired.slow_completed += 1;
            }
        }
    }
}
