//! The monitor's data model: the [`Replica`], `top`'s reduced copy of what
//! `serve` holds, rebuilt from each WebSocket snapshot and updated by the live
//! messages (`crate::ingest::json`). Pure data; it knows nothing of terminals,
//! and never computes display statistics (that is [`super::view_model`]).
//! Its types are named apart from the ingest state's (`crate::ingest::state`):
//! [`ProcessHistory`], [`SlowRecord`], [`LifeEvent`].
//!
//! Beside it, [`AppStats`]: the application's own metrics, which `serve`
//! answers over HTTP rather than the WebSocket.
//!
//! Times: `stamp` values are the reporters' wall clocks; `local` values are
//! this machine's clock, passed in by the caller (so tests are
//! deterministic). [`Replica::ref_now`] joins the two: the newest reporter stamp
//! seen, advanced by the local time since it arrived, so windows and ages are
//! measured on the reporters' clock even when the local clock is skewed.

mod app_stats;
mod message;
mod records;

pub use app_stats::{
    parse_stats, AppDropped, AppStats, AppValue, StatsAnswer, StatsKey, StatsPoint,
};
/// Tests build messages as JSON values.
#[cfg(test)]
pub use message::parse_value;
pub use message::{parse_message, Message, Snapshot};
pub use records::{Identity, Life, LifeEvent, ProcessHistory, SlowRecord, Tick};

use std::collections::{BTreeMap, VecDeque};

/// Samples kept per process (10 minutes at the default 1 s tick).
pub const MAX_TICKS: usize = 600;
/// Lifecycle events kept.
pub const MAX_LIFECYCLE: usize = 500;
/// Slow entries are forgotten this long after their last refresh (the
/// server's completed-entry TTL).
pub const SLOW_RETENTION: f64 = 600.0;
/// At most this many slow entries are kept.
pub const MAX_SLOW: usize = 5000;
/// Processes are forgotten after this long without news (the server's
/// stale-process limit).
pub const PROCESS_RETENTION: f64 = 300.0;

/// The latency phases, in the order the latency view cycles through them.
pub const PHASES: [&str; 5] = ["server", "queue", "daemon", "application", "request"];
/// Index of the `request` phase in [`PHASES`].
pub const REQUEST_PHASE: usize = 4;

/// Everything the monitor knows: `serve`'s processes, slow records and
/// lifecycle events, as the last snapshot and the live messages since left
/// them.
#[derive(Clone, Debug, Default)]
pub struct Replica {
    pub processes: BTreeMap<u32, ProcessHistory>,
    pub slow: BTreeMap<String, SlowRecord>,
    pub lifecycle: VecDeque<LifeEvent>,
    /// Server counters at the last snapshot.
    pub server_total_received: u64,
    pub server_decode_errors: u64,
    /// The last snapshot did not carry the server's whole history.
    pub history_truncated: bool,
    /// Messages received on this connection and the ones before.
    pub messages: u64,
    /// Local time of the last message.
    pub last_message_local: Option<f64>,
    /// Newest reporter stamp seen, and the local time it arrived.
    pub newest_stamp: f64,
    pub newest_stamp_local: f64,
}

impl Replica {
    /// An empty replica (nothing received yet).
    pub fn new() -> Replica {
        Replica::default()
    }

    /// The reporters' "now": the newest stamp advanced by local time since.
    pub fn ref_now(&self, local_now: f64) -> f64 {
        if self.newest_stamp == 0.0 {
            return local_now;
        }
        self.newest_stamp + (local_now - self.newest_stamp_local).max(0.0)
    }

    fn saw_stamp(&mut self, stamp: f64, local_now: f64) {
        if stamp.is_finite() && stamp > self.newest_stamp {
            self.newest_stamp = stamp;
            self.newest_stamp_local = local_now;
        }
    }

    /// Forgets what `serve` has forgotten too (it does not say so): slow
    /// entries not refreshed for [`SLOW_RETENTION`] seconds, then the oldest
    /// beyond [`MAX_SLOW`]; processes silent for [`PROCESS_RETENTION`]
    /// seconds (reporter clock, see [`Replica::ref_now`]).
    pub fn prune(&mut self, local_now: f64) {
        let now = self.ref_now(local_now);
        self.slow
            .retain(|_, e| now - e.refreshed_stamp <= SLOW_RETENTION);
        if self.slow.len() > MAX_SLOW {
            let mut stamps: Vec<f64> = self.slow.values().map(|e| e.refreshed_stamp).collect();
            stamps.sort_by(f64::total_cmp);
            let cut = stamps[self.slow.len() - MAX_SLOW];
            self.slow.retain(|_, e| e.refreshed_stamp >= cut);
        }
        self.processes.retain(|_, p| {
            let last = p.latest().map(|t| t.stamp).unwrap_or(f64::NEG_INFINITY);
            now - last <= PROCESS_RETENTION
                || local_now - p.last_received_local <= PROCESS_RETENTION
        });
    }

    /// Applies one message received at local time `local_now`.
    pub fn apply(&mut self, msg: Message, local_now: f64) {
        if self.messages % 1024 == 1023 {
            self.prune(local_now);
        }
        self.messages += 1;
        self.last_message_local = Some(local_now);
        match msg {
            Message::Snapshot(s) => self.apply_snapshot(*s, local_now),
            Message::Sample { pid, tick } => {
                self.saw_stamp(tick.stamp, local_now);
                let p = self
                    .processes
                    .entry(pid)
                    .or_insert_with(|| ProcessHistory::new(pid, local_now));
                p.last_received_local = local_now;
                p.push(tick);
            }
            Message::Slow { key, entry } => {
                self.saw_stamp(entry.refreshed_stamp, local_now);
                self.slow.insert(key, entry);
            }
            Message::SlowClear(kept) => {
                self.slow = kept.into_iter().collect();
            }
            Message::Lifecycle(ev) => {
                self.saw_stamp(ev.stamp, local_now);
                self.apply_lifecycle(&ev, local_now);
                if self.lifecycle.len() >= MAX_LIFECYCLE {
                    self.lifecycle.pop_front();
                }
                self.lifecycle.push_back(ev);
            }
            Message::Other => {}
        }
    }

    fn apply_lifecycle(&mut self, ev: &LifeEvent, local_now: f64) {
        let p = self
            .processes
            .entry(ev.pid)
            .or_insert_with(|| ProcessHistory::new(ev.pid, local_now));
        let id = Identity {
            hostname: ev.hostname.clone(),
            process_group: ev.process_group.clone(),
            ..Identity::default()
        };
        p.identity.latch(&id);
        let reason = ev.shutdown_reason.clone();
        match ev.kind.as_str() {
            "process_started" => {
                p.life = Life::Running;
                p.last_received_local = local_now;
            }
            "process_stopping" if p.life == Life::Running => {
                p.life = Life::Stopping {
                    reason,
                    stamp: ev.stamp,
                };
            }
            "process_stopped" => {
                p.life = Life::Stopped {
                    reason,
                    stamp: ev.stamp,
                };
            }
            _ => {}
        }
    }

    fn apply_snapshot(&mut self, s: Snapshot, local_now: f64) {
        let messages = self.messages;
        *self = Replica::new();
        self.messages = messages;
        self.last_message_local = Some(local_now);
        self.server_total_received = s.total_received;
        self.server_decode_errors = s.decode_errors;
        self.history_truncated = s.history_truncated;
        for sp in s.processes {
            let mut p = ProcessHistory::new(sp.pid, local_now);
            p.identity.latch(&sp.identity);
            p.drops = sp.drops;
            for t in sp.ticks {
                self.saw_stamp(t.stamp, local_now);
                p.push(t);
            }
            self.processes.insert(sp.pid, p);
        }
        for ev in s.lifecycle {
            self.saw_stamp(ev.stamp, local_now);
            // Only events about known processes change their state; a
            // STARTED for a pid the server already forgot must not revive it.
            if self.processes.contains_key(&ev.pid) {
                self.apply_lifecycle(&ev, local_now);
            }
            if self.lifecycle.len() >= MAX_LIFECYCLE {
                self.lifecycle.pop_front();
            }
            self.lifecycle.push_back(ev);
        }
        self.slow = s.slow.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    fn sample(pid: u32, stamp: f64, count: u64) -> String {
        serde_json::json!({
            "type": "sample", "kind": "request_metrics", "pid": pid, "seq": 2,
            "stamp": stamp,
            "fields": {"hostname": "h", "process_group": "app", "sample_period": 1.0,
                       "request_count": count, "request_throughput": count as f64,
                       "request_time_buckets": [0, 3, 0]}
        })
        .to_string()
    }

    #[test]
    fn samples_latch_identity_and_are_bounded() {
        let mut s = Replica::new();
        for i in 0..(MAX_TICKS + 5) {
            s.apply(parse_message(&sample(7, 100.0 + i as f64, 2)).unwrap(), 1.0);
        }
        let p = &s.processes[&7];
        assert_eq!(p.ticks.len(), MAX_TICKS);
        assert_eq!(p.identity.process_group, "app");
        assert_eq!(p.ticks.back().unwrap().buckets[REQUEST_PHASE], vec![(1, 3)]);
        assert_eq!(s.newest_stamp, 100.0 + (MAX_TICKS + 4) as f64);
        assert_eq!(s.ref_now(3.0), s.newest_stamp + 2.0);
    }

    #[test]
    fn lifecycle_marks_processes_and_reuse_revives() {
        let mut s = Replica::new();
        s.apply(parse_message(&sample(7, 100.0, 1)).unwrap(), 0.0);
        let stop = serde_json::json!({"type": "lifecycle", "event": {
            "kind": "process_stopped", "pid": 7, "stamp": 101.0,
            "shutdown_reason": "maximum_requests"}});
        s.apply(parse_value(&stop).unwrap(), 0.0);
        assert!(matches!(s.processes[&7].life, Life::Stopped { .. }));
        s.apply(parse_message(&sample(7, 200.0, 1)).unwrap(), 0.0);
        assert_eq!(s.processes[&7].life, Life::Running);
    }

    #[test]
    fn snapshot_replaces_everything() {
        let mut s = Replica::new();
        s.apply(parse_message(&sample(9, 50.0, 1)).unwrap(), 0.0);
        let snap = serde_json::json!({"type": "snapshot", "total_received": 12,
            "decode_errors": 1,
            "processes": [{"pid": 3, "hostname": "x", "process_group": "", "drops": 0,
                "samples": [serde_json::from_str::<Json>(&sample(3, 60.0, 4)).unwrap()],
                "gc_snapshots": {}, "gc_events": []}],
            "slow_requests": [{"key": [3, "abc"], "entry": {"pid": 3, "state": 0,
                "start_stamp": 55.0, "duration": 5.0, "method": "GET", "path_info": "/x"}}],
            "lifecycle_events": []});
        s.apply(parse_value(&snap).unwrap(), 0.0);
        assert_eq!(s.processes.keys().copied().collect::<Vec<_>>(), vec![3]);
        assert_eq!(s.server_total_received, 12);
        let e = &s.slow["[3,\"abc\"]"];
        assert_eq!(e.url(), "/x");
        assert_eq!(e.refreshed_stamp, 60.0);
    }

    #[test]
    fn prune_forgets_old_slow_entries_and_silent_processes() {
        let mut s = Replica::new();
        s.apply(parse_message(&sample(1, 1000.0, 1)).unwrap(), 0.0);
        for (k, stamp) in [("a", 300.0), ("b", 999.0)] {
            let m = serde_json::json!({"type": "slow_request", "key": [1, k], "stamp": stamp,
                "entry": {"pid": 1, "state": 1, "start_stamp": stamp - 2.0, "duration": 2.0}});
            s.apply(parse_value(&m).unwrap(), 0.0);
        }
        s.prune(0.0);
        assert_eq!(s.slow.keys().collect::<Vec<_>>(), vec!["[1,\"b\"]"]);
        assert_eq!(s.processes.len(), 1);
        s.prune(301.0);
        assert!(s.processes.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_message("{").is_err());
        assert!(parse_message("[]").is_err());
        assert!(matches!(
            parse_message(r#"{"type":"gc_event"}"#).unwrap(),
            Message::Other
        ));
    }
}
