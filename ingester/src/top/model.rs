//! The monitor's data model: the [`Replica`], `top`'s reduced copy of what
//! `serve` holds, rebuilt from each WebSocket snapshot and updated by the live
//! messages (`crate::messages`). Pure data; it knows nothing of terminals,
//! and never computes display statistics (that is [`super::view_model`]).
//! Its types are named apart from the ingest state's (`crate::state`):
//! [`ProcessHistory`], [`SlowRecord`], [`LifeEvent`].
//!
//! Times: `stamp` values are the reporters' wall clocks; `local` values are
//! this machine's clock, passed in by the caller (so tests are
//! deterministic). [`Replica::ref_now`] joins the two: the newest reporter stamp
//! seen, advanced by the local time since it arrived, so windows and ages are
//! measured on the reporters' clock even when the local clock is skewed.

use serde_json::Value as Json;
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

/// One periodic `request_metrics` sample, reduced to what the monitor shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tick {
    pub stamp: f64,
    pub seq: u64,
    pub sample_period: f64,
    pub slow_requests_threshold: f64,
    pub request_count: f64,
    pub request_throughput: f64,
    pub capacity_utilization: f64,
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub cpu: f64,
    pub memory_rss: f64,
    pub memory_max_rss: f64,
    pub threads_maximum: f64,
    pub threads_active: f64,
    /// Per phase (see [`PHASES`]): mean, absent when the field is absent.
    pub means: [Option<f64>; 5],
    pub mins: [Option<f64>; 5],
    pub maxs: [Option<f64>; 5],
    /// Per phase: the non-zero bucket counts as `(index, count)` (a
    /// histogram holds a dozen or so; 600 samples × processes adds up).
    pub buckets: [Vec<(u8, u32)>; 5],
    pub input_bytes: f64,
    pub output_bytes: f64,
    /// 1xx..5xx of this interval.
    pub status: [f64; 5],
    pub current_elapsed: Vec<f64>,
    /// Identity strings carried by the sample (non-empty only).
    pub identity: Identity,
}

/// Identity strings latched per process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identity {
    pub hostname: String,
    pub process_group: String,
    pub mod_wsgi_version: String,
    pub python_version: String,
    pub apache_version: String,
    pub mpm_name: String,
    pub process_parent_pid: u64,
}

impl Identity {
    fn latch(&mut self, o: &Identity) {
        for (dst, src) in [
            (&mut self.hostname, &o.hostname),
            (&mut self.process_group, &o.process_group),
            (&mut self.mod_wsgi_version, &o.mod_wsgi_version),
            (&mut self.python_version, &o.python_version),
            (&mut self.apache_version, &o.apache_version),
            (&mut self.mpm_name, &o.mpm_name),
        ] {
            if !src.is_empty() {
                dst.clone_from(src);
            }
        }
        if o.process_parent_pid > 0 {
            self.process_parent_pid = o.process_parent_pid;
        }
    }
}

/// Where a process is in its life, from lifecycle events.
#[derive(Clone, Debug, PartialEq)]
pub enum Life {
    /// Started or simply sending samples.
    Running,
    /// Sent PROCESS_STOPPING.
    Stopping { reason: String, stamp: f64 },
    /// Sent PROCESS_STOPPED: it will send nothing more.
    Stopped { reason: String, stamp: f64 },
}

/// One process as the monitor knows it: identity, recent samples, life.
#[derive(Clone, Debug)]
pub struct ProcessHistory {
    pub pid: u32,
    pub identity: Identity,
    /// Latched from samples when > 0 (1.0 until known).
    pub sample_period: f64,
    /// Latched `slow_requests_threshold` (0 = feature off).
    pub slow_requests_threshold: f64,
    pub ticks: VecDeque<Tick>,
    pub life: Life,
    /// Local time the last message about this pid arrived.
    pub last_received_local: f64,
    /// As reported by the server (snapshot only).
    pub drops: u64,
}

impl ProcessHistory {
    fn new(pid: u32, local_now: f64) -> ProcessHistory {
        ProcessHistory {
            pid,
            identity: Identity::default(),
            sample_period: 1.0,
            slow_requests_threshold: 0.0,
            ticks: VecDeque::new(),
            life: Life::Running,
            last_received_local: local_now,
            drops: 0,
        }
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&Tick> {
        self.ticks.back()
    }

    /// Samples whose stamp lies within `seconds` before `until`.
    pub fn ticks_within(&self, until: f64, seconds: f64) -> impl Iterator<Item = &Tick> {
        let from = until - seconds;
        // Newest last: walk back from the end while inside the window.
        let n = self
            .ticks
            .iter()
            .rev()
            .take_while(|t| t.stamp > from)
            .count();
        self.ticks
            .iter()
            .skip(self.ticks.len() - n)
            .filter(move |t| t.stamp <= until)
    }

    fn push(&mut self, t: Tick) {
        self.identity.latch(&t.identity);
        if t.sample_period > 0.0 {
            self.sample_period = t.sample_period;
        }
        if t.slow_requests_threshold > 0.0 || self.slow_requests_threshold == 0.0 {
            self.slow_requests_threshold = t.slow_requests_threshold;
        }
        // A pid that sends samples again after STOPPED was reused.
        if let Life::Stopped { stamp, .. } = self.life {
            if t.stamp > stamp {
                self.life = Life::Running;
            }
        }
        if self.ticks.len() >= MAX_TICKS {
            self.ticks.pop_front();
        }
        // Only the newest sample's slot ages are ever shown.
        if let Some(prev) = self.ticks.back_mut() {
            prev.current_elapsed = Vec::new();
        }
        self.ticks.push_back(t);
    }
}

/// One slow-request record, as the monitor keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlowRecord {
    pub pid: u32,
    pub thread_id: u64,
    pub log_id: String,
    pub method: String,
    pub script_name: String,
    pub path_info: String,
    pub start_stamp: f64,
    pub duration: f64,
    /// 0 active, 1 completed.
    pub state: u64,
    pub status: u64,
    pub cpu_user_time: f64,
    pub cpu_system_time: f64,
    pub input_bytes: u64,
    pub input_reads: u64,
    pub output_bytes: u64,
    pub output_writes: u64,
    /// Reporter stamp of the datagram that last refreshed the entry.
    pub refreshed_stamp: f64,
}

impl SlowRecord {
    /// `script_name + path_info`, or `/`.
    pub fn url(&self) -> String {
        let u = format!("{}{}", self.script_name, self.path_info);
        if u.is_empty() {
            "/".to_string()
        } else {
            u
        }
    }
}

/// A lifecycle event (STARTED / STOPPING / STOPPED) as the monitor keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LifeEvent {
    pub kind: String,
    pub pid: u32,
    pub stamp: f64,
    pub hostname: String,
    pub process_group: String,
    pub shutdown_reason: String,
}

/// A message from `serve`, parsed (off the UI thread). Samples dominate
/// the stream, so they are stored inline; the client boxes whole messages.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    Snapshot(Box<Snapshot>),
    Sample {
        pid: u32,
        tick: Tick,
    },
    Slow {
        key: String,
        entry: SlowRecord,
    },
    SlowClear(Vec<(String, SlowRecord)>),
    Lifecycle(LifeEvent),
    /// GC and any future message type: counted, otherwise unused.
    Other,
}

/// The `snapshot` message.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub processes: Vec<SnapshotProcess>,
    pub slow: Vec<(String, SlowRecord)>,
    pub lifecycle: Vec<LifeEvent>,
    pub total_received: u64,
    pub decode_errors: u64,
    /// The server left older history out (its snapshot budget).
    pub history_truncated: bool,
}

/// One process of a snapshot.
#[derive(Clone, Debug, Default)]
pub struct SnapshotProcess {
    pub pid: u32,
    pub identity: Identity,
    pub drops: u64,
    pub ticks: Vec<Tick>,
}

/// Why a message could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("message without a type")]
    NoType,
}

fn num(v: Option<&Json>) -> f64 {
    v.and_then(Json::as_f64).unwrap_or(0.0)
}

fn opt_num(v: Option<&Json>) -> Option<f64> {
    v.and_then(Json::as_f64)
}

/// A string field, made [`printable`](crate::printable::printable) here, where
/// it enters the monitor: hostnames, groups, paths and reasons come from
/// whoever can write to the telemetry socket, and every view, `--once` and
/// `--json` included, shows them only as escaped.
fn text(v: Option<&Json>) -> String {
    crate::printable::printable(v.and_then(Json::as_str).unwrap_or("")).into_owned()
}

fn uint(v: Option<&Json>) -> u64 {
    v.and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
        .unwrap_or(0)
}

fn identity_of(o: &Json) -> Identity {
    Identity {
        hostname: text(o.get("hostname")),
        process_group: text(o.get("process_group")),
        mod_wsgi_version: text(o.get("mod_wsgi_version")),
        python_version: text(o.get("python_version")),
        apache_version: text(o.get("apache_version")),
        mpm_name: text(o.get("mpm_name")),
        process_parent_pid: uint(o.get("process_parent_pid")),
    }
}

/// Builds a [`Tick`] from a `sample` message body (`stamp`, `seq`, `fields`).
pub fn tick_from_json(m: &Json) -> Tick {
    let empty = Json::Null;
    let f = m.get("fields").unwrap_or(&empty);
    let g = |k: &str| f.get(k);
    let mut t = Tick {
        stamp: num(m.get("stamp")),
        seq: uint(m.get("seq")),
        sample_period: num(g("sample_period")),
        slow_requests_threshold: num(g("slow_requests_threshold")),
        request_count: num(g("request_count")),
        request_throughput: num(g("request_throughput")),
        capacity_utilization: num(g("capacity_utilization")),
        cpu_user: num(g("cpu_user_utilization")),
        cpu_system: num(g("cpu_system_utilization")),
        cpu: num(g("cpu_utilization")),
        memory_rss: num(g("memory_rss")),
        memory_max_rss: num(g("memory_max_rss")),
        threads_maximum: num(g("request_threads_maximum")),
        threads_active: num(g("request_threads_active")),
        input_bytes: num(g("input_bytes_total")),
        output_bytes: num(g("output_bytes_total")),
        identity: identity_of(f),
        ..Tick::default()
    };
    for (i, p) in PHASES.iter().enumerate() {
        t.means[i] = opt_num(g(&format!("{p}_time")));
        t.mins[i] = opt_num(g(&format!("{p}_time_min")));
        t.maxs[i] = opt_num(g(&format!("{p}_time_max")));
        if let Some(a) = g(&format!("{p}_time_buckets")).and_then(Json::as_array) {
            t.buckets[i] = a
                .iter()
                .take(256)
                .enumerate()
                .filter_map(|(k, x)| {
                    let c = x.as_i64().unwrap_or(0);
                    (c > 0).then(|| (k as u8, c.min(u32::MAX as i64) as u32))
                })
                .collect();
        }
    }
    for (i, c) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        t.status[i] = num(g(&format!("status_{c}_total")));
    }
    if let Some(a) = g("request_threads_current_elapsed").and_then(Json::as_array) {
        t.current_elapsed = a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect();
    }
    t
}

fn slow_from_json(e: &Json, stamp: f64) -> SlowRecord {
    SlowRecord {
        pid: uint(e.get("pid")) as u32,
        thread_id: uint(e.get("thread_id")),
        log_id: text(e.get("log_id")),
        method: text(e.get("method")),
        script_name: text(e.get("script_name")),
        path_info: text(e.get("path_info")),
        start_stamp: num(e.get("start_stamp")),
        duration: num(e.get("duration")),
        state: uint(e.get("state")),
        status: uint(e.get("status")),
        cpu_user_time: num(e.get("cpu_user_time")),
        cpu_system_time: num(e.get("cpu_system_time")),
        input_bytes: uint(e.get("input_bytes")),
        input_reads: uint(e.get("input_reads")),
        output_bytes: uint(e.get("output_bytes")),
        output_writes: uint(e.get("output_writes")),
        refreshed_stamp: stamp,
    }
}

fn lifecycle_from_json(e: &Json) -> LifeEvent {
    LifeEvent {
        kind: text(e.get("kind")),
        pid: uint(e.get("pid")) as u32,
        stamp: num(e.get("stamp")),
        hostname: text(e.get("hostname")),
        process_group: text(e.get("process_group")),
        shutdown_reason: text(e.get("shutdown_reason")),
    }
}

fn key_string(k: Option<&Json>) -> String {
    k.map(|k| k.to_string()).unwrap_or_default()
}

/// Parses one WebSocket text frame.
pub fn parse_message(text_frame: &str) -> Result<Message, ParseError> {
    let m: Json = serde_json::from_str(text_frame)?;
    parse_value(&m)
}

/// Parses one already-decoded JSON message.
pub fn parse_value(m: &Json) -> Result<Message, ParseError> {
    let ty = m
        .get("type")
        .and_then(Json::as_str)
        .ok_or(ParseError::NoType)?;
    Ok(match ty {
        "sample" => {
            let kind = m.get("kind").and_then(Json::as_str).unwrap_or("");
            if kind != "request_metrics" {
                return Ok(Message::Other);
            }
            Message::Sample {
                pid: uint(m.get("pid")) as u32,
                tick: tick_from_json(m),
            }
        }
        "slow_request" => {
            let empty = Json::Null;
            Message::Slow {
                key: key_string(m.get("key")),
                entry: slow_from_json(m.get("entry").unwrap_or(&empty), num(m.get("stamp"))),
            }
        }
        "slow_clear" => Message::SlowClear(slow_list(m.get("kept"), 0.0)),
        "lifecycle" => match m.get("event") {
            Some(e) => Message::Lifecycle(lifecycle_from_json(e)),
            None => Message::Other,
        },
        "snapshot" => {
            let mut s = Snapshot {
                total_received: uint(m.get("total_received")),
                decode_errors: uint(m.get("decode_errors")),
                history_truncated: m
                    .get("history_truncated")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
                ..Snapshot::default()
            };
            for p in m
                .get("processes")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let ticks = p
                    .get("samples")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|x| {
                        x.get("kind")
                            .and_then(Json::as_str)
                            .unwrap_or("request_metrics")
                            == "request_metrics"
                    })
                    .map(tick_from_json)
                    .collect();
                s.processes.push(SnapshotProcess {
                    pid: uint(p.get("pid")) as u32,
                    identity: identity_of(p),
                    drops: uint(p.get("drops")),
                    ticks,
                });
            }
            // Snapshot entries carry no stamp: they are as fresh as the
            // newest sample in the snapshot (the server expires stale ones).
            let newest = s
                .processes
                .iter()
                .filter_map(|p| p.ticks.last().map(|t| t.stamp))
                .fold(0.0, f64::max);
            s.slow = slow_list(m.get("slow_requests"), newest);
            s.lifecycle = m
                .get("lifecycle_events")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(lifecycle_from_json)
                .collect();
            Message::Snapshot(Box::new(s))
        }
        _ => Message::Other,
    })
}

fn slow_list(v: Option<&Json>, stamp: f64) -> Vec<(String, SlowRecord)> {
    v.and_then(Json::as_array)
        .into_iter()
        .flatten()
        .map(|x| {
            let empty = Json::Null;
            let e = x.get("entry").unwrap_or(&empty);
            let st = if stamp > 0.0 {
                stamp
            } else {
                num(e.get("start_stamp")) + num(e.get("duration"))
            };
            (key_string(x.get("key")), slow_from_json(e, st))
        })
        .collect()
}

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
