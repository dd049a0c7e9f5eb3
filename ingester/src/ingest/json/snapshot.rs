//! The snapshot a client gets first (`/api/state` and the WebSocket's first
//! message): captured as shared references under the state lock
//! ([`capture`]), then written outside it by the direct writer, within a
//! byte budget when one is given ([`write_snapshot`]).

use super::live::{to_string, KeyEntry};
use super::writer::*;
use crate::ingest::state::{GcRecord, LifecycleEvent, SlowEntry, SlowKey, State};
use std::sync::Arc;

/// One process as captured for a snapshot.
pub(crate) struct ProcessRefs {
    pub(super) pid: u32,
    pub(super) identity: [String; 6],
    pub(super) process_parent_pid: u64,
    pub(super) last_seq: u32,
    pub(super) drops: u64,
    pub(super) datagrams: u64,
    pub(super) samples: Vec<crate::ingest::state::packed::Packed>,
    pub(super) gc_snapshots: Vec<(Arc<str>, Vec<GcRecord>)>,
    pub(super) gc_events: Vec<GcRecord>,
}

/// Everything a snapshot needs, captured cheaply (reference counts, no
/// serialisation) while the state lock is held.
pub(crate) struct SnapshotRefs {
    pub(super) processes: Vec<ProcessRefs>,
    pub(super) slow: Vec<(SlowKey, Arc<SlowEntry>)>,
    pub(super) lifecycle: Vec<LifecycleEvent>,
    pub(super) total_received: u64,
    pub(super) decode_errors: u64,
    pub(super) seq_gaps: u64,
    /// Extra ingester counters to publish (name, value).
    pub(crate) extra: Vec<(&'static str, u64)>,
}

/// Captures the state for a snapshot.
pub(crate) fn capture(state: &State) -> SnapshotRefs {
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
            ("groups_folded", state.groups_folded),
            ("slow_evicted_per_process", state.slow_evicted_per_process),
            ("unsupported_version", state.unsupported_version),
            ("seq_resets", state.seq_resets),
            ("history_write_errors", state.history_write_errors),
            ("history_ticks_refused", state.history.refused_ticks),
            ("history_ticks_future", state.history.future_ticks),
            ("history_series_removed", state.history.series_removed),
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

/// What a snapshot keeps under its budget (see [`write_snapshot`]).
pub(super) struct Plan {
    /// The first `processes` processes are listed.
    pub(super) processes: usize,
    /// Slow requests from this index on are listed (the newest).
    pub(super) slow_from: usize,
    /// Newest samples, GC snapshots (per interpreter), GC events kept per
    /// ring.
    pub(super) k_samples: usize,
    pub(super) k_snaps: usize,
    pub(super) k_events: usize,
}

impl Plan {
    /// Left out: processes, slow requests.
    pub(super) fn omitted(&self, r: &SnapshotRefs) -> (usize, usize) {
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

/// The budget policy (see [`write_snapshot`]): `slow` are the slow
/// requests as written, `life` the bytes of the lifecycle events; the
/// estimated bytes per item of each sample ring, GC snapshot ring and GC
/// event ring come from the three estimators.
pub(super) fn plan_by(
    r: &SnapshotRefs,
    budget: Option<usize>,
    slow: &[String],
    life: usize,
    sample_size: impl Fn(&[crate::ingest::state::packed::Packed]) -> usize,
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
pub(super) fn slow_items(r: &SnapshotRefs) -> Vec<String> {
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
/// to `emit`. With `chunk` = `usize::MAX` the whole message is one piece.
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
/// and slow requests not listed. Returns whether anything was left out
/// (false when `emit` refused a piece before the end).
pub(crate) fn write_snapshot(
    r: &SnapshotRefs,
    budget: Option<usize>,
    chunk: usize,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> bool {
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
            return false;
        }
    }
    let o = &mut out.buf;
    o.extend_from_slice(b"],\"slow_requests\":");
    o.extend_from_slice(join_list(&slow[plan.slow_from..]).as_bytes());
    o.extend_from_slice(b",\"lifecycle_events\":");
    o.extend_from_slice(life_js.as_bytes());
    let omitted = plan.omitted(r);
    push_tail(o, r, truncated, omitted);
    out.finish();
    truncated || omitted != (0, 0)
}
