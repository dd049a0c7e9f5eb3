//! The serde-based snapshot serialiser, kept as the tests' oracle.

use super::live::*;
use super::snapshot::*;
use super::writer::*;
use crate::ingest::state::packed::unpack;
use crate::ingest::state::GcRecord;

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
            truncated |= write_newest_serde(&mut out, ring, k_snaps, |g| gc_entry_json(g, false));
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
