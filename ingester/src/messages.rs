//! The JSON messages of the HTTP/WebSocket API (`ingester.md` §7.2), exactly
//! the reference's keys and shapes, plus a few extra keys (a superset).
//!
//! Every message is serialised once, by the ingest thread, and the same
//! bytes go to every subscriber. Snapshots are assembled from shared,
//! immutable pieces captured under the state lock and serialised outside it.
//! BYTES values are always written as text (UTF-8 with replacement), also
//! inside GC fields (the reference crashes there, gap 16).

use crate::state::packed::unpack;
use crate::state::{GcRecord, LifecycleEvent, SlowEntry, SlowKey, State, Update};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::sync::Arc;
use wire::{field_name, Sample, Value};

struct V<'a>(&'a Value);

impl Serialize for V<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::U64(v) => s.serialize_u64(*v),
            Value::F64(v) => s.serialize_f64(*v),
            Value::I64(v) => s.serialize_i64(*v),
            Value::Bytes(b) => s.serialize_str(&String::from_utf8_lossy(b)),
            Value::I32Array(a) => a.serialize(s),
            Value::F64Array(a) => a.serialize(s),
        }
    }
}

/// A sample's fields as a JSON object in wire order.
pub struct Fields<'a>(pub &'a [(u16, Value)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (id, v) in self.0 {
            m.serialize_entry(&*field_name(*id), &V(v))?;
        }
        m.end()
    }
}

/// `{"type":"sample", kind, pid, seq, stamp, fields}`.
pub struct SampleMsg<'a>(pub &'a Sample);

impl Serialize for SampleMsg<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let h = &self.0.header;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("type", "sample")?;
        m.serialize_entry("kind", &*h.kind.name())?;
        m.serialize_entry("pid", &h.pid)?;
        m.serialize_entry("seq", &h.seq)?;
        m.serialize_entry("stamp", &h.stamp)?;
        m.serialize_entry("fields", &Fields(&self.0.fields))?;
        m.end()
    }
}

impl Serialize for LifecycleEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(12))?;
        m.serialize_entry("kind", self.kind)?;
        m.serialize_entry("pid", &self.pid)?;
        m.serialize_entry("stamp", &self.stamp)?;
        m.serialize_entry("hostname", &self.hostname)?;
        m.serialize_entry("process_group", &self.process_group)?;
        m.serialize_entry("process_parent_pid", &self.process_parent_pid)?;
        m.serialize_entry("shutdown_reason", &self.shutdown_reason)?;
        m.serialize_entry("process_uptime", &self.process_uptime)?;
        m.serialize_entry("lifetime_request_count", &self.lifetime_request_count)?;
        m.serialize_entry(
            "active_requests_at_decision",
            &self.active_requests_at_decision,
        )?;
        m.serialize_entry("active_requests_at_exit", &self.active_requests_at_exit)?;
        m.serialize_entry("graceful_drain", &self.graceful_drain)?;
        m.end()
    }
}

impl Serialize for SlowKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SlowKey::LogId(pid, log_id) => (pid, log_id).serialize(s),
            SlowKey::Slot(pid, thread, stamp) => (pid, thread, f64::from_bits(*stamp)).serialize(s),
        }
    }
}

impl Serialize for SlowEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(32))?;
        m.serialize_entry("pid", &self.pid)?;
        m.serialize_entry("thread_id", &self.thread_id)?;
        m.serialize_entry("server_pid", &self.server_pid)?;
        m.serialize_entry("log_id", &self.log_id)?;
        m.serialize_entry("method", &self.method)?;
        m.serialize_entry("scheme", &self.scheme)?;
        m.serialize_entry("hostname", &self.hostname)?;
        m.serialize_entry("script_name", &self.script_name)?;
        m.serialize_entry("path_info", &self.path_info)?;
        m.serialize_entry("peer_ip", &self.peer_ip)?;
        m.serialize_entry("protocol", &self.protocol)?;
        m.serialize_entry("user_agent", &self.user_agent)?;
        m.serialize_entry("start_stamp", &self.start_stamp)?;
        m.serialize_entry("duration", &self.duration)?;
        m.serialize_entry("state", &self.state)?;
        m.serialize_entry("input_bytes", &self.input_bytes)?;
        m.serialize_entry("input_reads", &self.input_reads)?;
        m.serialize_entry("output_bytes", &self.output_bytes)?;
        m.serialize_entry("output_writes", &self.output_writes)?;
        m.serialize_entry("cpu_user_time", &self.cpu_user_time)?;
        m.serialize_entry("cpu_system_time", &self.cpu_system_time)?;
        m.serialize_entry("server_time", &self.server_time)?;
        m.serialize_entry("queue_time", &self.queue_time)?;
        m.serialize_entry("daemon_time", &self.daemon_time)?;
        m.serialize_entry("application_time", &self.application_time)?;
        m.serialize_entry("gil_wait_time", &self.gil_wait_time)?;
        m.serialize_entry("gil_wait_count", &self.gil_wait_count)?;
        m.serialize_entry("input_read_time", &self.input_read_time)?;
        m.serialize_entry("output_write_time", &self.output_write_time)?;
        m.serialize_entry("active_at_start", &self.active_at_start)?;
        m.serialize_entry("active_at_completion", &self.active_at_completion)?;
        m.serialize_entry("status", &self.status)?;
        m.end()
    }
}

struct KeyEntry<'a>(&'a SlowKey, &'a SlowEntry);

impl Serialize for KeyEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("key", self.0)?;
        m.serialize_entry("entry", self.1)?;
        m.end()
    }
}

fn to_string<T: Serialize + ?Sized>(v: &T) -> String {
    // Serialising our own types into memory cannot fail.
    serde_json::to_string(v)
        .unwrap_or_else(|e| format!("{{\"type\":\"error\",\"error\":{:?}}}", e.to_string()))
}

/// The broadcast message for one update (`None` when nothing to publish).
pub fn update_json(u: &Update) -> Option<String> {
    Some(match u {
        Update::Nothing => return None,
        Update::Sample(s) => to_string(&SampleMsg(s)),
        Update::Lifecycle(ev) => to_string(&serde_json::json!({"type": "lifecycle", "event": ev})),
        Update::Gc {
            sample,
            interpreter,
        } => {
            let kind = sample.header.kind.name();
            to_string(&GcMsg {
                kind: &kind,
                pid: sample.header.pid,
                interpreter,
                stamp: sample.header.stamp,
                fields: Fields(&sample.fields),
            })
        }
        Update::Slow { key, entry, stamp } => to_string(
            &serde_json::json!({"type": "slow_request", "key": key, "entry": &**entry, "stamp": stamp}),
        ),
    })
}

struct GcMsg<'a> {
    kind: &'a str,
    pid: u32,
    interpreter: &'a str,
    stamp: f64,
    fields: Fields<'a>,
}

impl Serialize for GcMsg<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("type", self.kind)?;
        m.serialize_entry("pid", &self.pid)?;
        m.serialize_entry("interpreter", self.interpreter)?;
        m.serialize_entry("stamp", &self.stamp)?;
        m.serialize_entry("fields", &self.fields)?;
        m.end()
    }
}

/// `{"type":"slow_clear","kept":[{key, entry}, ...]}`.
pub fn slow_clear_json(kept: &[(SlowKey, Arc<SlowEntry>)]) -> String {
    let kept: Vec<_> = kept.iter().map(|(k, e)| KeyEntry(k, e)).collect();
    to_string(&serde_json::json!({"type": "slow_clear", "kept": kept}))
}

/// One process as captured for a snapshot.
pub struct ProcessRefs {
    pid: u32,
    identity: [String; 6],
    process_parent_pid: u64,
    last_seq: u32,
    drops: u64,
    datagrams: u64,
    samples: Vec<Arc<crate::state::packed::Packed>>,
    gc_snapshots: Vec<(Arc<str>, Vec<Arc<GcRecord>>)>,
    gc_events: Vec<Arc<GcRecord>>,
}

/// Everything a snapshot needs, captured cheaply (reference counts, no
/// serialisation) while the state lock is held.
pub struct SnapshotRefs {
    processes: Vec<ProcessRefs>,
    slow: Vec<(SlowKey, Arc<SlowEntry>)>,
    lifecycle: Vec<LifecycleEvent>,
    total_received: u64,
    decode_errors: u64,
    seq_gaps: u64,
    /// Extra ingester counters to publish (name, value).
    pub extra: Vec<(&'static str, u64)>,
}

/// Captures the state for a snapshot.
pub fn capture(state: &State) -> SnapshotRefs {
    SnapshotRefs {
        processes: state
            .processes
            .values()
            .map(|p| ProcessRefs {
                pid: p.pid,
                identity: [
                    p.hostname.clone(),
                    p.process_group.clone(),
                    p.mod_wsgi_version.clone(),
                    p.python_version.clone(),
                    p.apache_version.clone(),
                    p.mpm_name.clone(),
                ],
                process_parent_pid: p.process_parent_pid,
                last_seq: p.last_seq,
                drops: p.drops,
                datagrams: p.datagrams,
                samples: p.samples.iter().cloned().collect(),
                gc_snapshots: p
                    .gc_snapshots
                    .iter()
                    .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
                    .collect(),
                gc_events: p.gc_events.iter().cloned().collect(),
            })
            .collect(),
        slow: state
            .slow
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect(),
        lifecycle: state.lifecycle.iter().cloned().collect(),
        total_received: state.total_received,
        decode_errors: state.decode_errors,
        seq_gaps: state.seq_gaps,
        extra: Vec::new(),
    }
}

/// The largest per-ring count `k` (at least `min_k`) such that keeping the
/// newest `min(k, len)` items of every ring costs at most `budget` bytes,
/// with `rings` given as `(len, estimated bytes per item)`. Returns `k` and
/// the bytes it costs.
fn uniform_count(rings: &[(usize, usize)], budget: usize, min_k: usize) -> (usize, usize) {
    let cost = |k: usize| -> usize {
        rings
            .iter()
            .map(|&(len, size)| len.min(k) * (size + 1))
            .sum()
    };
    let max_len = rings.iter().map(|r| r.0).max().unwrap_or(0);
    if cost(max_len) <= budget {
        return (max_len, cost(max_len));
    }
    let (mut lo, mut hi) = (min_k, max_len);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if cost(mid) <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    (lo, cost(lo))
}

/// Estimated JSON bytes per item of a ring: the largest of its oldest,
/// middle and newest item, plus 10 %.
fn est3<T>(items: &[T], f: impl Fn(&T) -> String) -> usize {
    let n = items.len();
    if n == 0 {
        return 0;
    }
    let m = [0, n / 2, n - 1]
        .iter()
        .map(|&i| f(&items[i]).len())
        .max()
        .unwrap_or(0);
    m + m / 10
}

fn newest<T>(items: &[T], k: usize) -> &[T] {
    &items[items.len().saturating_sub(k)..]
}

fn gc_entry_json(g: &GcRecord, with_interpreter: bool) -> String {
    let s = unpack(&g.packed);
    let mut out = String::with_capacity(256);
    out.push_str("{\"stamp\":");
    out.push_str(&to_string(&g.stamp));
    if with_interpreter {
        out.push_str(",\"interpreter\":");
        out.push_str(&to_string(&*g.interpreter));
    }
    out.push_str(",\"fields\":");
    out.push_str(&to_string(&Fields(&s.fields)));
    out.push('}');
    out
}

/// Writes the newest `k` items as a JSON array straight into `out` (no
/// intermediate list of strings: a full snapshot is hundreds of MB) and
/// says whether older items were left out.
fn write_newest<T>(out: &mut String, items: &[T], k: usize, f: impl Fn(&T) -> String) -> bool {
    let kept = newest(items, k);
    out.push('[');
    for (i, it) in kept.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&f(it));
    }
    out.push(']');
    kept.len() < items.len()
}

/// Serialises a snapshot message.
///
/// With `budget`, older history is left out so the whole message stays near
/// `budget` bytes, in this order of priority: slow requests and lifecycle
/// events are always complete; then every process keeps the same number of
/// newest periodic samples (at least one), so rates computed by clients over
/// a window are unbiased; then GC snapshots (the same count per interpreter,
/// at least one); then GC events (the same count per process).
/// `"history_truncated": true` says when anything was left out.
pub fn snapshot_json(r: &SnapshotRefs, budget: Option<usize>) -> String {
    let slow: Vec<_> = r.slow.iter().map(|(k, e)| KeyEntry(k, e)).collect();
    let slow_js = to_string(&slow);
    let life_js = to_string(&r.lifecycle);
    let full = usize::MAX;
    let (k_samples, k_snaps, k_events) = match budget {
        None => (full, full, full),
        Some(b) => {
            let mut left =
                b.saturating_sub(slow_js.len() + life_js.len() + 4096 + 512 * r.processes.len());
            let sample_rings: Vec<(usize, usize)> = r
                .processes
                .iter()
                .map(|p| {
                    (
                        p.samples.len(),
                        est3(&p.samples, |s| to_string(&SampleMsg(&unpack(s)))),
                    )
                })
                .collect();
            let (ks, used) = uniform_count(&sample_rings, left, 1);
            left = left.saturating_sub(used);
            let snap_rings: Vec<(usize, usize)> = r
                .processes
                .iter()
                .flat_map(|p| p.gc_snapshots.iter())
                .map(|(_, ring)| (ring.len(), est3(ring, |g| gc_entry_json(g, false))))
                .collect();
            let (kg, used) = uniform_count(&snap_rings, left, 1);
            left = left.saturating_sub(used);
            let event_rings: Vec<(usize, usize)> = r
                .processes
                .iter()
                .map(|p| {
                    (
                        p.gc_events.len(),
                        est3(&p.gc_events, |g| gc_entry_json(g, true)),
                    )
                })
                .collect();
            let (ke, _) = uniform_count(&event_rings, left, 0);
            (ks, kg, ke)
        }
    };
    let mut truncated = false;
    let mut out = String::with_capacity(1 << 16);
    out.push_str("{\"type\":\"snapshot\",\"processes\":[");
    for (i, p) in r.processes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&to_string(&serde_json::json!({
            "pid": p.pid,
            "hostname": p.identity[0],
            "process_group": p.identity[1],
            "mod_wsgi_version": p.identity[2],
            "python_version": p.identity[3],
            "apache_version": p.identity[4],
            "mpm_name": p.identity[5],
            "process_parent_pid": p.process_parent_pid,
            "last_seq": p.last_seq,
            "drops": p.drops,
            "datagrams": p.datagrams,
        })));
        out.pop(); // reopen the object
        out.push_str(",\"samples\":");
        truncated |= write_newest(&mut out, &p.samples, k_samples, |s| {
            to_string(&SampleMsg(&unpack(s)))
        });
        out.push_str(",\"gc_snapshots\":{");
        for (j, (interp, ring)) in p.gc_snapshots.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&to_string(&**interp));
            out.push(':');
            truncated |= write_newest(&mut out, ring, k_snaps, |g| gc_entry_json(g, false));
        }
        out.push('}');
        out.push_str(",\"gc_events\":");
        truncated |= write_newest(&mut out, &p.gc_events, k_events, |g| gc_entry_json(g, true));
        out.push('}');
    }
    out.push_str("],\"slow_requests\":");
    out.push_str(&slow_js);
    out.push_str(",\"lifecycle_events\":");
    out.push_str(&life_js);
    out.push_str(&format!(
        ",\"total_received\":{},\"decode_errors\":{},\"seq_gaps\":{},\"history_truncated\":{}",
        r.total_received, r.decode_errors, r.seq_gaps, truncated
    ));
    for (k, v) in &r.extra {
        out.push_str(&format!(",{}:{}", to_string(k), v));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Limits;
    use std::time::Instant;

    fn corpus() -> Vec<u8> {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        let dir = std::env::var_os("TELEMETRY_CORPUS_DIR")
            .map(Into::into)
            .unwrap_or(dir);
        std::fs::read(dir.join("anchor-6.1.1-mixed.bin")).expect("corpus")
    }

    #[test]
    fn every_message_is_valid_json_with_text_interpreter_names() {
        let bin = corpus();
        let mut st = State::new(Limits::default());
        let now = Instant::now();
        let mut gc_named = 0;
        for d in wire::capture::records(&bin).map(|r| r.unwrap()) {
            let u = st.ingest(d, now);
            let js = update_json(&u).unwrap();
            let v: serde_json::Value = serde_json::from_str(&js).unwrap();
            if let Some(name) = v["fields"].get("interpreter_name") {
                assert!(name.is_string());
                gc_named += 1;
            }
        }
        assert_eq!(gc_named, 3610);
        let snap = snapshot_json(&capture(&st), None);
        let v: serde_json::Value = serde_json::from_str(&snap).unwrap();
        assert_eq!(v["type"], "snapshot");
        assert_eq!(v["processes"].as_array().unwrap().len(), 22);
        assert_eq!(v["total_received"], 11888);
        assert_eq!(v["decode_errors"], 0);
        assert_eq!(v["seq_gaps"], 0);
        let samples: usize = v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["samples"].as_array().unwrap().len())
            .sum();
        assert_eq!(samples, 386);
        assert_eq!(v["lifecycle_events"].as_array().unwrap().len(), 66);
        // budgeted: smaller, still one sample per process that has any
        let small = snapshot_json(&capture(&st), Some(300_000));
        assert!(small.len() < 400_000, "{}", small.len());
        let v: serde_json::Value = serde_json::from_str(&small).unwrap();
        assert_eq!(v["history_truncated"], true);
        let procs = v["processes"].as_array().unwrap();
        for p in procs {
            assert!(!p["samples"].as_array().unwrap().is_empty());
        }
        // Every process keeps the same number of newest samples (or all of
        // its own), so windowed rates stay unbiased.
        let counts: Vec<usize> = procs
            .iter()
            .map(|p| p["samples"].as_array().unwrap().len())
            .collect();
        let k = *counts.iter().max().unwrap();
        for (p, c) in st.processes.values().zip(&counts) {
            assert_eq!(*c, p.samples.len().min(k));
        }
        // With the default budget, GC events go before any sample does.
        let js = snapshot_json(&capture(&st), Some(3_500_000));
        assert!(js.len() <= 3_500_000, "{}", js.len());
        let v: serde_json::Value = serde_json::from_str(&js).unwrap();
        let samples: usize = v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["samples"].as_array().unwrap().len())
            .sum();
        assert_eq!(samples, 386);
        assert_eq!(v["history_truncated"], true);
    }
}
