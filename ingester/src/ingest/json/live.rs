//! The live messages, one per update, serialised with serde: a periodic
//! sample, a lifecycle event, a GC record, a slow request, the reply to a
//! slow-table clear. The same `Serialize` impls give the slow-request
//! entries of a snapshot.

use crate::ingest::state::{LifecycleEvent, SlowEntry, SlowKey, Update};
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
pub(crate) struct Fields<'a>(pub &'a [(u16, Value)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fields(s, self.0, false)
    }
}

/// True for the request-time histograms (`*_buckets`, 65 counts each).
fn is_time_histogram(id: u16) -> bool {
    (wire::id::SERVER_TIME_BUCKETS..=wire::id::OUTPUT_WRITE_TIME_BUCKETS).contains(&id)
}

/// A histogram as `[index, count, ...]` of its non-zero buckets.
struct Pairs<'a>(&'a [i32]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let n = self.0.iter().filter(|&&c| c != 0).count();
        let mut q = s.serialize_seq(Some(2 * n))?;
        for (i, &c) in self.0.iter().enumerate().filter(|(_, &c)| c != 0) {
            q.serialize_element(&i)?;
            q.serialize_element(&c)?;
        }
        q.end()
    }
}

/// The fields as an object; with `pairs`, the request-time histograms as
/// [`Pairs`].
fn fields<S: Serializer>(s: S, f: &[(u16, Value)], pairs: bool) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(f.len()))?;
    for (id, v) in f {
        match v {
            Value::I32Array(a) if pairs && is_time_histogram(*id) => {
                m.serialize_entry(&*field_name(*id), &Pairs(a))?
            }
            _ => m.serialize_entry(&*field_name(*id), &V(v))?,
        }
    }
    m.end()
}

/// The fields with the request-time histograms as [`Pairs`].
struct PairFields<'a>(&'a [(u16, Value)]);

impl Serialize for PairFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fields(s, self.0, true)
    }
}

/// `{"type":"sample", kind, pid, seq, stamp, fields}`.
pub(crate) struct SampleMsg<'a>(pub &'a Sample);
/// [`SampleMsg`] with [`PairFields`] (the batched stream's form).
struct PairsSampleMsg<'a>(&'a Sample);

fn sample_msg<S: Serializer>(
    s: S,
    sample: &Sample,
    fields: impl Serialize,
) -> Result<S::Ok, S::Error> {
    let h = &sample.header;
    let mut m = s.serialize_map(Some(6))?;
    m.serialize_entry("type", "sample")?;
    m.serialize_entry("kind", &*h.kind.name())?;
    m.serialize_entry("pid", &h.pid)?;
    m.serialize_entry("seq", &h.seq)?;
    m.serialize_entry("stamp", &h.stamp)?;
    m.serialize_entry("fields", &fields)?;
    m.end()
}

impl Serialize for SampleMsg<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        sample_msg(s, self.0, Fields(&self.0.fields))
    }
}

impl Serialize for PairsSampleMsg<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        sample_msg(s, self.0, PairFields(&self.0.fields))
    }
}

/// A sample as the batched stream carries it: the per-datagram message
/// with each request-time histogram as `[index, count, ...]` of its
/// non-zero buckets (most of the 65 are zero: a third of the bytes).
pub(crate) fn sample_pairs_json(s: &Sample) -> String {
    to_string(&PairsSampleMsg(s))
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

pub(super) struct KeyEntry<'a>(pub(super) &'a SlowKey, pub(super) &'a SlowEntry);

impl Serialize for KeyEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("key", self.0)?;
        m.serialize_entry("entry", self.1)?;
        m.end()
    }
}

pub(super) fn to_string<T: Serialize + ?Sized>(v: &T) -> String {
    // Serialising our own types into memory cannot fail.
    serde_json::to_string(v)
        .unwrap_or_else(|e| format!("{{\"type\":\"error\",\"error\":{:?}}}", e.to_string()))
}

/// The broadcast message for one update (`None` when nothing to publish).
pub(crate) fn update_json(u: &Update) -> Option<String> {
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
pub(crate) fn slow_clear_json(kept: &[(SlowKey, Arc<SlowEntry>)]) -> String {
    let kept: Vec<_> = kept.iter().map(|(k, e)| KeyEntry(k, e)).collect();
    to_string(&serde_json::json!({"type": "slow_clear", "kept": kept}))
}
