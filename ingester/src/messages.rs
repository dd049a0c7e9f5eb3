//! The JSON messages of the HTTP/WebSocket API, exactly the reference's keys
//! and shapes, plus a few extra keys (a superset: `docs/compatibility.md`
//! section 2).
//!
//! Every message is serialised once, by the ingest thread, and the same
//! bytes go to every subscriber. Snapshots are assembled from shared,
//! immutable pieces captured under the state lock and serialised outside it.
//! BYTES values are always written as text (UTF-8 with replacement), also
//! inside GC fields (the reference crashes there, `docs/compatibility.md` C11).

use crate::state::packed::{Packed, PackedValue};
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
    samples: Vec<crate::state::packed::Packed>,
    gc_snapshots: Vec<(Arc<str>, Vec<GcRecord>)>,
    gc_events: Vec<GcRecord>,
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
        extra: vec![
            ("processes_refused", state.processes_refused),
            ("slow_evicted_per_process", state.slow_evicted_per_process),
            ("unsupported_version", state.unsupported_version),
            ("seq_resets", state.seq_resets),
        ],
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

// ------------------------------------------------------------------------
// Direct writer: snapshots are serialised straight from the packed form.
// Every function here writes exactly the bytes serde_json writes for the
// same value (the tests compare the two on the corpus and on edge cases).

/// `"name":` for field ids below this bound, escaped once.
const KEY_TABLE: usize = 512;

fn field_key(id: u16) -> std::borrow::Cow<'static, [u8]> {
    static KEYS: std::sync::OnceLock<Vec<Box<[u8]>>> = std::sync::OnceLock::new();
    let key = |id: u16| -> Vec<u8> {
        let mut k = to_string(&*field_name(id)).into_bytes();
        k.push(b':');
        k
    };
    if (id as usize) < KEY_TABLE {
        let keys = KEYS.get_or_init(|| (0..KEY_TABLE as u16).map(|i| key(i).into()).collect());
        std::borrow::Cow::Borrowed(&keys[id as usize])
    } else {
        std::borrow::Cow::Owned(key(id))
    }
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_i32(out: &mut Vec<u8>, v: i32) {
    if (0..10).contains(&v) {
        out.push(b'0' + v as u8);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
}

/// As serde_json: shortest round-trip form (zmij, as serde_json), `null`
/// when not finite.
fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.to_bits() == 0 {
        out.extend_from_slice(b"0.0");
    } else if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn push_str(out: &mut Vec<u8>, v: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

fn le_i32(c: &[u8]) -> i32 {
    i32::from_le_bytes([c[0], c[1], c[2], c[3]])
}

fn le_f64(c: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    f64::from_bits(u64::from_le_bytes(a))
}

/// Writes `[e0,e1,...]` of a dense array of `width`-byte elements.
fn push_dense(
    out: &mut Vec<u8>,
    b: &[u8],
    width: usize,
    mut value: impl FnMut(&mut Vec<u8>, &[u8]),
) {
    out.push(b'[');
    for (j, c) in b.chunks_exact(width).enumerate() {
        if j > 0 {
            out.push(b',');
        }
        value(out, c);
    }
    out.push(b']');
}

/// `zero,zero,...,` repeated to fill `N` bytes.
const fn zeros<const N: usize>(zero: &[u8]) -> [u8; N] {
    let mut p = [0u8; N];
    let unit = zero.len() + 1;
    let mut k = 0;
    while k < N {
        let j = k % unit;
        p[k] = if j < zero.len() { zero[j] } else { b',' };
        k += 1;
    }
    p
}

const ZEROS_I32: [u8; 128] = zeros(b"0");
const ZEROS_F64: [u8; 256] = zeros(b"0.0");

/// Writes `n` absent elements of a sparse array, comma-separated (the
/// caller writes the comma before the first one): runs of zeros are the
/// bulk of the histograms, copied from a repeated pattern.
/// `pattern` is [`zeros`] of that element text.
fn push_zeros(out: &mut Vec<u8>, mut n: usize, pattern: &[u8]) {
    let unit = pattern.iter().position(|&b| b == b',').unwrap_or(0) + 1;
    let run = pattern.len() / unit;
    while n > 0 {
        let m = n.min(run);
        out.extend_from_slice(&pattern[..m * unit - 1]);
        n -= m;
        if n > 0 {
            out.push(b',');
        }
    }
}

/// Writes `[e0,e1,...]` of a sparse array: `pairs` are `width`-byte records
/// of a u16 index then the value, `zeros` the [`zeros`] pattern of an
/// absent element.
fn push_sparse(
    out: &mut Vec<u8>,
    len: usize,
    pairs: &[u8],
    width: usize,
    zeros: &[u8],
    mut value: impl FnMut(&mut Vec<u8>, &[u8]),
) {
    out.push(b'[');
    let mut i = 0;
    for c in pairs.chunks_exact(width) {
        let at = u16::from_le_bytes([c[0], c[1]]) as usize;
        if at > i {
            if i > 0 {
                out.push(b',');
            }
            push_zeros(out, at - i, zeros);
        }
        if at > 0 {
            out.push(b',');
        }
        value(out, &c[2..]);
        i = at + 1;
    }
    if len > i {
        if i > 0 {
            out.push(b',');
        }
        push_zeros(out, len - i, zeros);
    }
    out.push(b']');
}

/// A packed sample's fields as a JSON object, in wire order (as [`Fields`]).
fn push_fields(out: &mut Vec<u8>, p: &Packed) {
    out.push(b'{');
    for (i, (id, v)) in p.fields().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&field_key(id));
        match v {
            PackedValue::U64(x) => push_u64(out, x),
            PackedValue::F64(x) => push_f64(out, x),
            PackedValue::I64(x) => push_i64(out, x),
            PackedValue::Bytes(b) => push_str(out, &String::from_utf8_lossy(b)),
            PackedValue::I32Dense(b) => push_dense(out, b, 4, |o, c| push_i32(o, le_i32(c))),
            PackedValue::F64Dense(b) => push_dense(out, b, 8, |o, c| push_f64(o, le_f64(c))),
            PackedValue::I32Sparse { len, pairs } => {
                push_sparse(out, len, pairs, 6, &ZEROS_I32, |o, c| {
                    push_i32(o, le_i32(c))
                })
            }
            PackedValue::F64Sparse { len, pairs } => {
                push_sparse(out, len, pairs, 10, &ZEROS_F64, |o, c| {
                    push_f64(o, le_f64(c))
                })
            }
        }
    }
    out.push(b'}');
}

/// A stored periodic sample as its `{"type":"sample",...}` message (the
/// bytes of `to_string(&SampleMsg(&unpack(p)))`).
fn push_sample_msg(out: &mut Vec<u8>, p: &Packed) {
    let h = p.header();
    out.extend_from_slice(b"{\"type\":\"sample\",\"kind\":");
    push_str(out, &h.kind.name());
    out.extend_from_slice(b",\"pid\":");
    push_u64(out, h.pid as u64);
    out.extend_from_slice(b",\"seq\":");
    push_u64(out, h.seq as u64);
    out.extend_from_slice(b",\"stamp\":");
    push_f64(out, h.stamp);
    out.extend_from_slice(b",\"fields\":");
    push_fields(out, p);
    out.push(b'}');
}

fn push_gc_entry(out: &mut Vec<u8>, g: &GcRecord, with_interpreter: bool) {
    out.extend_from_slice(b"{\"stamp\":");
    push_f64(out, g.stamp);
    if with_interpreter {
        out.extend_from_slice(b",\"interpreter\":");
        push_str(out, &g.interpreter);
    }
    out.extend_from_slice(b",\"fields\":");
    push_fields(out, &g.packed);
    out.push(b'}');
}

/// Bytes of one item as written.
fn len_of(f: impl FnOnce(&mut Vec<u8>)) -> usize {
    let mut v = Vec::with_capacity(4096);
    f(&mut v);
    v.len()
}

/// Estimated JSON bytes per item of a ring: the largest of its oldest,
/// middle and newest item, plus 10 %.
fn est3<T>(items: &[T], f: impl Fn(&mut Vec<u8>, &T)) -> usize {
    let n = items.len();
    if n == 0 {
        return 0;
    }
    let m = [0, n / 2, n - 1]
        .iter()
        .map(|&i| len_of(|o| f(o, &items[i])))
        .max()
        .unwrap_or(0);
    m + m / 10
}

fn newest<T>(items: &[T], k: usize) -> &[T] {
    &items[items.len().saturating_sub(k)..]
}

/// Output in chunks: the buffer is handed to `emit` whenever it holds
/// `chunk` bytes or more, between items. `emit` returning false (the
/// receiver went away) stops the writer.
struct Chunked<'a> {
    buf: Vec<u8>,
    chunk: usize,
    emit: &'a mut dyn FnMut(Vec<u8>) -> bool,
    open: bool,
}

impl Chunked<'_> {
    /// Called between items; false once the receiver is gone.
    fn boundary(&mut self) -> bool {
        if self.open && self.buf.len() >= self.chunk {
            let cap = self.chunk + self.chunk / 4;
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(cap));
            self.open = (self.emit)(full);
        }
        self.open
    }

    fn finish(mut self) {
        if self.open && !self.buf.is_empty() {
            (self.emit)(std::mem::take(&mut self.buf));
        }
    }
}

/// Writes the newest `k` items as a JSON array and says whether older
/// items were left out.
fn write_newest<T>(
    out: &mut Chunked<'_>,
    items: &[T],
    k: usize,
    f: impl Fn(&mut Vec<u8>, &T),
) -> bool {
    let kept = newest(items, k);
    out.buf.push(b'[');
    for (i, it) in kept.iter().enumerate() {
        if i > 0 {
            out.buf.push(b',');
        }
        f(&mut out.buf, it);
        if !out.boundary() {
            break;
        }
    }
    out.buf.push(b']');
    kept.len() < items.len()
}

/// What a snapshot keeps under its budget (see [`snapshot_json`]).
struct Plan {
    /// The first `processes` processes are listed.
    processes: usize,
    /// Slow requests from this index on are listed (the newest).
    slow_from: usize,
    /// Newest samples, GC snapshots (per interpreter), GC events kept per
    /// ring.
    k_samples: usize,
    k_snaps: usize,
    k_events: usize,
}

impl Plan {
    /// Left out: processes, slow requests.
    fn omitted(&self, r: &SnapshotRefs) -> (usize, usize) {
        (r.processes.len() - self.processes, self.slow_from)
    }
}

/// The plan under `budget`, with the writer's own size estimates.
fn plan(r: &SnapshotRefs, budget: Option<usize>, slow: &[String], life: usize) -> Plan {
    plan_by(
        r,
        budget,
        slow,
        life,
        |s| est3(s, push_sample_msg),
        |g| est3(g, |o, g| push_gc_entry(o, g, false)),
        |g| est3(g, |o, g| push_gc_entry(o, g, true)),
    )
}

/// The budget policy (see [`snapshot_json`]): `slow` are the slow
/// requests as written, `life` the bytes of the lifecycle events; the
/// estimated bytes per item of each sample ring, GC snapshot ring and GC
/// event ring come from the three estimators.
fn plan_by(
    r: &SnapshotRefs,
    budget: Option<usize>,
    slow: &[String],
    life: usize,
    sample_size: impl Fn(&[crate::state::packed::Packed]) -> usize,
    snapshot_size: impl Fn(&[GcRecord]) -> usize,
    event_size: impl Fn(&[GcRecord]) -> usize,
) -> Plan {
    let full = usize::MAX;
    let Some(b) = budget else {
        return Plan {
            processes: r.processes.len(),
            slow_from: 0,
            k_samples: full,
            k_snaps: full,
            k_events: full,
        };
    };
    let mut left = b.saturating_sub(life + 4096);
    // Slow requests: the newest, in at most half of what is left.
    let mut slow_from = slow.len();
    let mut used = 0;
    while slow_from > 0 && used + slow[slow_from - 1].len() < left / 2 {
        slow_from -= 1;
        used += slow[slow_from].len() + 1;
    }
    left -= used;
    // Processes in order of appearance, while their fixed parts fit.
    let mut processes = 0;
    for p in &r.processes {
        let head = len_of(|o| push_process_head(o, p)) + 64;
        if head > left {
            break;
        }
        left -= head;
        processes += 1;
    }
    let kept = &r.processes[..processes];
    let sample_rings: Vec<(usize, usize)> = kept
        .iter()
        .map(|p| (p.samples.len(), sample_size(&p.samples)))
        .collect();
    let (k_samples, used) = uniform_count(&sample_rings, left, 0);
    left = left.saturating_sub(used);
    let snap_rings: Vec<(usize, usize)> = kept
        .iter()
        .flat_map(|p| p.gc_snapshots.iter())
        .map(|(_, ring)| (ring.len(), snapshot_size(ring)))
        .collect();
    let (k_snaps, used) = uniform_count(&snap_rings, left, 0);
    left = left.saturating_sub(used);
    let event_rings: Vec<(usize, usize)> = kept
        .iter()
        .map(|p| (p.gc_events.len(), event_size(&p.gc_events)))
        .collect();
    let (k_events, _) = uniform_count(&event_rings, left, 0);
    Plan {
        processes,
        slow_from,
        k_samples,
        k_snaps,
        k_events,
    }
}

/// A process's fixed part: `{"pid":…,…,"datagrams":N` (the object is left
/// open for its history).
fn push_process_head(o: &mut Vec<u8>, p: &ProcessRefs) {
    o.extend_from_slice(b"{\"pid\":");
    push_u64(o, p.pid as u64);
    for (key, v) in [
        "hostname",
        "process_group",
        "mod_wsgi_version",
        "python_version",
        "apache_version",
        "mpm_name",
    ]
    .iter()
    .zip(&p.identity)
    {
        o.extend_from_slice(b",\"");
        o.extend_from_slice(key.as_bytes());
        o.extend_from_slice(b"\":");
        push_str(o, v);
    }
    o.extend_from_slice(b",\"process_parent_pid\":");
    push_u64(o, p.process_parent_pid);
    o.extend_from_slice(b",\"last_seq\":");
    push_u64(o, p.last_seq as u64);
    o.extend_from_slice(b",\"drops\":");
    push_u64(o, p.drops);
    o.extend_from_slice(b",\"datagrams\":");
    push_u64(o, p.datagrams);
}

/// The slow requests as written, one string each.
fn slow_items(r: &SnapshotRefs) -> Vec<String> {
    r.slow
        .iter()
        .map(|(k, e)| to_string(&KeyEntry(k, e)))
        .collect()
}

/// `[a,b,…]` of already written items.
fn join_list(items: &[String]) -> String {
    let mut out = String::with_capacity(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(it);
    }
    out.push(']');
    out
}

/// The counters closing a snapshot: totals, what was left out, extras.
fn push_tail(o: &mut Vec<u8>, r: &SnapshotRefs, truncated: bool, (procs, slow): (usize, usize)) {
    o.extend_from_slice(
        format!(
            ",\"total_received\":{},\"decode_errors\":{},\"seq_gaps\":{},\"history_truncated\":{},\"processes_omitted\":{},\"slow_requests_omitted\":{}",
            r.total_received,
            r.decode_errors,
            r.seq_gaps,
            truncated || procs > 0 || slow > 0,
            procs,
            slow
        )
        .as_bytes(),
    );
    for (k, v) in &r.extra {
        o.extend_from_slice(format!(",{}:{}", to_string(k), v).as_bytes());
    }
    o.push(b'}');
}

/// Writes a snapshot message in pieces of about `chunk` bytes, handing each
/// to `emit` (see [`snapshot_json`] for `budget`). With `chunk` =
/// `usize::MAX` the whole message is one piece.
pub fn write_snapshot(
    r: &SnapshotRefs,
    budget: Option<usize>,
    chunk: usize,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) {
    let slow = slow_items(r);
    let life_js = to_string(&r.lifecycle);
    let plan = plan(r, budget, &slow, life_js.len());
    let (k_samples, k_snaps, k_events) = (plan.k_samples, plan.k_snaps, plan.k_events);
    let mut truncated = false;
    let mut out = Chunked {
        buf: Vec::with_capacity(if chunk == usize::MAX {
            1 << 16
        } else {
            chunk + chunk / 4
        }),
        chunk,
        emit,
        open: true,
    };
    out.buf
        .extend_from_slice(b"{\"type\":\"snapshot\",\"processes\":[");
    for (i, p) in r.processes[..plan.processes].iter().enumerate() {
        let o = &mut out.buf;
        if i > 0 {
            o.push(b',');
        }
        push_process_head(o, p);
        o.extend_from_slice(b",\"samples\":");
        truncated |= write_newest(&mut out, &p.samples, k_samples, |o, s| {
            push_sample_msg(o, s)
        });
        out.buf.extend_from_slice(b",\"gc_snapshots\":{");
        for (j, (interp, ring)) in p.gc_snapshots.iter().enumerate() {
            if j > 0 {
                out.buf.push(b',');
            }
            push_str(&mut out.buf, interp);
            out.buf.push(b':');
            truncated |= write_newest(&mut out, ring, k_snaps, |o, g| push_gc_entry(o, g, false));
        }
        out.buf.push(b'}');
        out.buf.extend_from_slice(b",\"gc_events\":");
        truncated |= write_newest(&mut out, &p.gc_events, k_events, |o, g| {
            push_gc_entry(o, g, true)
        });
        out.buf.push(b'}');
        if !out.boundary() {
            return;
        }
    }
    let o = &mut out.buf;
    o.extend_from_slice(b"],\"slow_requests\":");
    o.extend_from_slice(join_list(&slow[plan.slow_from..]).as_bytes());
    o.extend_from_slice(b",\"lifecycle_events\":");
    o.extend_from_slice(life_js.as_bytes());
    push_tail(o, r, truncated, plan.omitted(r));
    out.finish();
}

/// Serialises a snapshot message.
///
/// With `budget`, what does not fit is left out so the whole message stays
/// near `budget` bytes whatever the state holds, in this order of
/// priority: lifecycle events (at most 500) are always complete; then the
/// newest slow requests, in at most half of the budget; then each
/// process's fixed part (pid, identity, counters), in order of appearance;
/// then every listed process keeps the same number of newest periodic
/// samples (at least one when one each fits), so rates computed by
/// clients over a window are unbiased; then GC snapshots (the same count
/// per interpreter); then GC events (the same count per process).
/// `"history_truncated": true` says when anything was left out;
/// `"processes_omitted"` and `"slow_requests_omitted"` count the processes
/// and slow requests not listed.
pub fn snapshot_json(r: &SnapshotRefs, budget: Option<usize>) -> String {
    let mut all = Vec::new();
    write_snapshot(r, budget, usize::MAX, &mut |piece| {
        all = piece;
        true
    });
    // Only serde_json's strings and ASCII were written.
    String::from_utf8(all).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod serde_oracle {
    //! The serde-based snapshot serialiser, kept as the tests' oracle.
    use super::*;
    use crate::state::packed::unpack;

    /// The writer's estimate (largest of oldest, middle and newest, plus
    /// 10 %) over the serde form of the items.
    fn est3_serde<T>(items: &[T], f: impl Fn(&T) -> String) -> usize {
        est3(items, |o, it| o.extend_from_slice(f(it).as_bytes()))
    }

    pub(super) fn gc_entry_json(g: &GcRecord, with_interpreter: bool) -> String {
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
    fn write_newest_serde<T>(
        out: &mut String,
        items: &[T],
        k: usize,
        f: impl Fn(&T) -> String,
    ) -> bool {
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

    /// The serde implementation the direct writer replaced (the oracle).
    ///
    /// With `budget`, older history is left out so the whole message stays near
    /// `budget` bytes, in this order of priority: slow requests and lifecycle
    /// events are always complete; then every process keeps the same number of
    /// newest periodic samples (at least one), so rates computed by clients over
    /// a window are unbiased; then GC snapshots (the same count per interpreter,
    /// at least one); then GC events (the same count per process).
    /// `"history_truncated": true` says when anything was left out.
    pub(super) fn snapshot_json_serde(r: &SnapshotRefs, budget: Option<usize>) -> String {
        let slow = slow_items(r);
        let life_js = to_string(&r.lifecycle);
        let plan = plan_by(
            r,
            budget,
            &slow,
            life_js.len(),
            |s| est3_serde(s, |s| to_string(&SampleMsg(&unpack(s)))),
            |g| est3_serde(g, |g| gc_entry_json(g, false)),
            |g| est3_serde(g, |g| gc_entry_json(g, true)),
        );
        let (k_samples, k_snaps, k_events) = (plan.k_samples, plan.k_snaps, plan.k_events);
        let mut truncated = false;
        let mut out = String::with_capacity(1 << 16);
        out.push_str("{\"type\":\"snapshot\",\"processes\":[");
        for (i, p) in r.processes[..plan.processes].iter().enumerate() {
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
            truncated |= write_newest_serde(&mut out, &p.samples, k_samples, |s| {
                to_string(&SampleMsg(&unpack(s)))
            });
            out.push_str(",\"gc_snapshots\":{");
            for (j, (interp, ring)) in p.gc_snapshots.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push_str(&to_string(&**interp));
                out.push(':');
                truncated |=
                    write_newest_serde(&mut out, ring, k_snaps, |g| gc_entry_json(g, false));
            }
            out.push('}');
            out.push_str(",\"gc_events\":");
            truncated |=
                write_newest_serde(&mut out, &p.gc_events, k_events, |g| gc_entry_json(g, true));
            out.push('}');
        }
        out.push_str("],\"slow_requests\":");
        let kept: Vec<_> = r.slow[plan.slow_from..]
            .iter()
            .map(|(k, e)| KeyEntry(k, e))
            .collect();
        out.push_str(&to_string(&kept));
        out.push_str(",\"lifecycle_events\":");
        out.push_str(&life_js);
        let (procs, slow) = plan.omitted(r);
        out.push_str(&format!(
            ",\"total_received\":{},\"decode_errors\":{},\"seq_gaps\":{},\"history_truncated\":{},\"processes_omitted\":{procs},\"slow_requests_omitted\":{slow}",
            r.total_received,
            r.decode_errors,
            r.seq_gaps,
            truncated || procs > 0 || slow > 0
        ));
        for (k, v) in &r.extra {
            out.push_str(&format!(",{}:{}", to_string(k), v));
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Limits;
    use std::time::Instant;

    #[test]
    fn every_message_is_valid_json_with_text_interpreter_names() {
        let bin = crate::test_corpus();
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

    /// Equality of long texts, reporting the first difference briefly.
    #[track_caller]
    fn assert_same(ours: &[u8], want: &[u8], what: &str) {
        if ours == want {
            return;
        }
        let i = ours.iter().zip(want).take_while(|(a, b)| a == b).count();
        let ctx = |b: &[u8]| {
            String::from_utf8_lossy(&b[i.saturating_sub(60)..(i + 60).min(b.len())]).into_owned()
        };
        panic!(
            "{what}: differs at byte {i} (lengths {} vs {}):\n ours: {}\n want: {}",
            ours.len(),
            want.len(),
            ctx(ours),
            ctx(want)
        );
    }

    fn edge_sample(pid: u32, seq: u32) -> Sample {
        let floats = vec![
            0.0,
            -0.0,
            1.0,
            0.1,
            1e16,
            1e-7,
            123456789.123,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -2.5,
        ];
        let mut sparse_f = vec![0.0; 40];
        sparse_f[3] = -0.0;
        sparse_f[17] = 1e21;
        sparse_f[39] = f64::NAN;
        let mut sparse_i = vec![0i32; 40];
        sparse_i[0] = -1;
        sparse_i[39] = i32::MAX;
        sparse_i[5] = i32::MIN;
        Sample {
            header: wire::Header {
                version: 1,
                kind: wire::Kind::REQUEST,
                flags: 0,
                pid,
                seq,
                stamp: 1.7e9 + 0.123456789,
            },
            fields: vec![
                (
                    wire::id::HOSTNAME,
                    Value::Bytes(b"h\"o\\st\n\x01\x7f\xff\xfe".to_vec()),
                ),
                (2, Value::U64(u64::MAX)),
                (3, Value::I64(i64::MIN)),
                (4, Value::F64(f64::NAN)),
                (9, Value::F64(-0.0)),
                (100, Value::F64Array(floats.clone())),
                (101, Value::F64Array(sparse_f)),
                (
                    102,
                    Value::I32Array(vec![1, -1, 10, 9, -10, i32::MIN, 0, 0, 0]),
                ),
                (103, Value::I32Array(sparse_i)),
                (104, Value::I32Array(vec![])),
                (105, Value::F64Array(vec![])),
                (106, Value::Bytes(vec![])),
                (499, Value::U64(7)),
                (600, Value::F64(3.0)),
                (65535, Value::F64(1e300)),
            ],
        }
    }

    #[test]
    fn direct_sample_writer_matches_serde() {
        let bin = crate::test_corpus();
        let mut n = 0;
        for d in wire::capture::records(&bin).map(|r| r.unwrap()) {
            let s = wire::decode(d).unwrap();
            let p = crate::state::packed::pack(&s);
            let mut out = Vec::new();
            push_sample_msg(&mut out, &p);
            assert_same(&out, to_string(&SampleMsg(&s)).as_bytes(), "corpus sample");
            n += 1;
        }
        assert_eq!(n, 11888);
        let s = edge_sample(42, 7);
        let p = crate::state::packed::pack(&s);
        let mut out = Vec::new();
        push_sample_msg(&mut out, &p);
        assert_same(&out, to_string(&SampleMsg(&s)).as_bytes(), "edge sample");
        let ours = String::from_utf8(out).unwrap();
        // sanity: what the edge cases look like
        assert!(ours.contains("\"id65535\":1e+300"), "{ours}");
        assert!(ours.contains("[0.0,-0.0,1.0,0.1,1e+16,1e-7,"), "{ours}");
        assert!(ours.contains("null,null,null,-2.5]"), "{ours}");
    }

    #[test]
    fn direct_snapshot_matches_serde_whole_and_chunked() {
        let bin = crate::test_corpus();
        let mut st = State::new(Limits::default());
        let now = Instant::now();
        for d in wire::capture::records(&bin).map(|r| r.unwrap()) {
            st.ingest(d, now);
        }
        for seq in 1..30 {
            st.apply(edge_sample(4242, seq), now);
        }
        let refs = capture(&st);
        for budget in [None, Some(300_000), Some(3_500_000), Some(1)] {
            let want = serde_oracle::snapshot_json_serde(&refs, budget);
            assert_same(
                snapshot_json(&refs, budget).as_bytes(),
                want.as_bytes(),
                &format!("budget {budget:?}"),
            );
            let mut pieces = Vec::new();
            write_snapshot(&refs, budget, 10_000, &mut |p| {
                pieces.push(p);
                true
            });
            assert!(budget.is_some() || pieces.len() > 10, "{}", pieces.len());
            assert_same(
                &pieces.concat(),
                want.as_bytes(),
                &format!("chunked, budget {budget:?}"),
            );
        }
        // A receiver that goes away stops the writer.
        let mut calls = 0;
        write_snapshot(&refs, None, 10_000, &mut |_| {
            calls += 1;
            calls < 3
        });
        assert_eq!(calls, 3);
    }
}
