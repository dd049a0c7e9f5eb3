//! The WebSocket messages of `serve`, parsed into [`Message`]s (on the
//! client thread). Every string that enters the monitor is made printable
//! here.

use super::records::{Identity, LifeEvent, SlowRecord, Tick};
use super::PHASES;
use serde_json::Value as Json;

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
