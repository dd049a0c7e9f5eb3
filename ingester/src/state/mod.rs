//! The ingester's in-memory model: per-process state, slow-request table,
//! lifecycle ring and GC history, fed one datagram at a time.
//!
//! Pure data: no sockets, no HTTP, no JSON. Observable behaviour follows the
//! reference ingester with its defects fixed (`docs/compatibility.md`
//! C11, C12, C15, C17, C20):
//! everything is bounded by count (see [`Limits`]), expiry runs on a timer
//! ([`State::expire`]) instead of scanning on every datagram, sequence gaps
//! are counted across all kinds, and GC fields are decoded like any other.
//!
//! Memory budget per process, at the default limits: 600 packed samples
//! (≈ 0.5–1.2 KB each), up to 8 interpreters × 600 GC snapshots (≈ 200 B
//! each) and 1,000 GC events (≈ 100 B each): ≈ 1.8 MB for a process with 8
//! interpreters, ≈ 1 MB for the usual one or two. Datagrams of unusual
//! size (up to 64 KB each are accepted) cannot take more: a process's
//! history is also held to [`Limits::bytes_per_process`] (4 MiB), counted
//! as it is stored ([`Process::history_bytes`]), oldest records leaving
//! first.

pub mod packed;
pub mod slow;
pub mod totals;
pub mod warnings;

use indexmap::IndexMap;
use packed::{kept_as_is, pack, pack_listed, pack_ref, Packed};
pub use slow::SlowTable;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warnings::Warnings;
use wire::{id, Header, Kind, Sample, SampleRef, Value, ValueRef};

/// Retention bounds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Periodic samples kept per process (reference: 600).
    pub samples_per_process: usize,
    /// GC snapshots kept per interpreter (reference: 600).
    pub gc_snapshots_per_interpreter: usize,
    /// Interpreters tracked per process (reference: unbounded).
    pub interpreters_per_process: usize,
    /// GC events kept by age, seconds of event stamps (reference: 300).
    pub gc_event_seconds: f64,
    /// GC events kept per process by count (reference: unbounded).
    pub gc_events_per_process: usize,
    /// Lifecycle events kept (reference: 500).
    pub lifecycle_events: usize,
    /// Slow-request entries kept (reference: unbounded).
    pub slow_entries: usize,
    /// Slow-request entries kept per process (reference: unbounded).
    pub slow_entries_per_process: usize,
    /// Processes tracked at once (reference: unbounded). A datagram that
    /// would add one more is refused and counted; the processes already
    /// tracked keep working, and a place frees when one goes stale.
    pub max_processes: usize,
    /// A process not heard from for this long is dropped (reference: 300 s).
    pub stale_after: Duration,
    /// Bytes of history (samples, GC snapshots, GC events) kept per process
    /// at most (reference: unbounded). The count limits keep ordinary
    /// traffic well below it; it bounds datagrams of unusual size. When a
    /// record takes a process over, the oldest records of the same kind
    /// leave first (the newest always stays), then those of whichever other
    /// kind has the most.
    pub bytes_per_process: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            samples_per_process: 600,
            gc_snapshots_per_interpreter: 600,
            interpreters_per_process: 8,
            gc_event_seconds: 300.0,
            gc_events_per_process: 1000,
            lifecycle_events: 500,
            slow_entries: 10_000,
            slow_entries_per_process: 1_000,
            max_processes: 2_000,
            stale_after: Duration::from_secs(300),
            bytes_per_process: 4 << 20,
        }
    }
}

/// A stored GC snapshot or event (cloned by reference counts).
#[derive(Clone, Debug)]
pub struct GcRecord {
    /// Interpreter key (`""` for the main/sole interpreter).
    pub interpreter: Arc<str>,
    /// The datagram, packed.
    pub packed: Packed,
    /// Header stamp.
    pub stamp: f64,
}

/// One process (keyed by header pid).
#[derive(Debug)]
pub struct Process {
    /// Header pid.
    pub pid: u32,
    /// Latched identity.
    pub hostname: String,
    /// Latched `process_group` (`""` = embedded).
    pub process_group: String,
    /// Latched version strings and MPM.
    pub mod_wsgi_version: String,
    /// Latched.
    pub python_version: String,
    /// Latched.
    pub apache_version: String,
    /// Latched.
    pub mpm_name: String,
    /// Latched when > 0.
    pub process_parent_pid: u64,
    /// Latched when > 0; scales slow TTLs.
    pub sample_period: f64,
    /// Periodic samples, oldest first.
    pub samples: VecDeque<Packed>,
    /// Seq of the last periodic sample (as the reference).
    pub last_seq: u32,
    /// Datagrams lost, from sequence gaps across all kinds.
    pub drops: u64,
    /// Highest seq seen in any kind.
    last_any_seq: Option<u32>,
    /// Implausible sequence jumps (see [`SeqJump`]): counted here, not as
    /// drops.
    pub seq_resets: u64,
    /// Datagrams received from this pid.
    pub datagrams: u64,
    /// Arrival of the last periodic, STARTED or GC datagram.
    pub last_seen: Instant,
    /// GC snapshots per interpreter, in order of first appearance.
    pub gc_snapshots: IndexMap<Arc<str>, VecDeque<GcRecord>>,
    /// GC events, oldest first.
    pub gc_events: VecDeque<GcRecord>,
    /// GC datagrams discarded by the interpreter bound.
    pub gc_dropped_interpreters: u64,
    /// Bytes of `samples`, `gc_snapshots` and `gc_events` (each record's
    /// [`sample_cost`] / [`gc_cost`]), kept as records come and go.
    history_bytes: usize,
    /// Records dropped early to keep [`Limits::bytes_per_process`].
    pub evicted_for_bytes: u64,
    /// Cumulative totals for `/metrics`.
    pub metrics: totals::ProcessTotals,
}

/// Bytes a stored sample counts: its allocation (the datagram's bytes and
/// the two reference counts) and its ring slot.
fn sample_cost(p: &Packed) -> usize {
    p.heap_bytes() + 32
}

/// Bytes a stored GC record counts: its allocation, its slot (stamp and
/// interpreter key included).
fn gc_cost(g: &GcRecord) -> usize {
    g.packed.heap_bytes() + 16 + std::mem::size_of::<GcRecord>()
}

/// A ring of a process's history.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ring {
    Samples,
    /// The GC snapshots of the interpreter at this index.
    Snapshots(usize),
    Events,
}

impl Process {
    fn new(pid: u32, now: Instant) -> Process {
        Process {
            pid,
            hostname: String::new(),
            process_group: String::new(),
            mod_wsgi_version: String::new(),
            python_version: String::new(),
            apache_version: String::new(),
            mpm_name: String::new(),
            process_parent_pid: 0,
            sample_period: 1.0,
            samples: VecDeque::new(),
            last_seq: 0,
            drops: 0,
            last_any_seq: None,
            seq_resets: 0,
            datagrams: 0,
            last_seen: now,
            gc_snapshots: IndexMap::new(),
            gc_events: VecDeque::new(),
            gc_dropped_interpreters: 0,
            history_bytes: 0,
            evicted_for_bytes: 0,
            metrics: totals::ProcessTotals::default(),
        }
    }

    /// Bytes of history held now (see [`Limits::bytes_per_process`]).
    pub fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    fn ring_len(&self, r: Ring) -> usize {
        match r {
            Ring::Samples => self.samples.len(),
            Ring::Snapshots(i) => self.gc_snapshots.get_index(i).map_or(0, |(_, q)| q.len()),
            Ring::Events => self.gc_events.len(),
        }
    }

    /// The GC ring `r` names (`None` for the samples).
    fn gc_ring(&mut self, r: Ring) -> Option<&mut VecDeque<GcRecord>> {
        match r {
            Ring::Samples => None,
            Ring::Snapshots(i) => self.gc_snapshots.get_index_mut(i).map(|(_, q)| q),
            Ring::Events => Some(&mut self.gc_events),
        }
    }

    /// Appends a sample, counting its bytes.
    fn push_sample(&mut self, p: Packed) {
        self.history_bytes += sample_cost(&p);
        self.samples.push_back(p);
    }

    /// Appends a GC record to ring `r`, counting its bytes.
    fn push_gc(&mut self, r: Ring, rec: GcRecord) {
        let cost = gc_cost(&rec);
        if let Some(q) = self.gc_ring(r) {
            q.push_back(rec);
            self.history_bytes += cost;
        }
    }

    /// Drops the oldest record of `r` (into the graveyard), uncounting it.
    fn pop_oldest(&mut self, r: Ring, graveyard: &mut Graveyard) {
        let oldest = match r {
            Ring::Samples => self.samples.pop_front().map(|p| (sample_cost(&p), p)),
            _ => self
                .gc_ring(r)
                .and_then(VecDeque::pop_front)
                .map(|g| (gc_cost(&g), g.packed)),
        };
        if let Some((cost, p)) = oldest {
            self.history_bytes -= cost;
            graveyard.bury(p);
        }
    }

    /// Holds the history to `budget` bytes after `grew` took a record: its
    /// own oldest records go first, down to that newest one, then the
    /// oldest of whichever other ring holds the most records.
    #[inline]
    fn trim_to(&mut self, budget: usize, grew: Ring, graveyard: &mut Graveyard) {
        if self.history_bytes > budget {
            self.evict_down_to(budget, grew, graveyard);
        }
    }

    /// [`Process::trim_to`] once over the budget (never, for ordinary
    /// traffic: kept out of the per-datagram path).
    #[cold]
    #[inline(never)]
    fn evict_down_to(&mut self, budget: usize, grew: Ring, graveyard: &mut Graveyard) {
        while self.history_bytes > budget {
            let victim = if self.ring_len(grew) > 1 {
                grew
            } else {
                let others = std::iter::once(Ring::Samples)
                    .chain(std::iter::once(Ring::Events))
                    .chain((0..self.gc_snapshots.len()).map(Ring::Snapshots))
                    .filter(|&r| r != grew);
                match others.max_by_key(|&r| self.ring_len(r)) {
                    Some(r) if self.ring_len(r) > 0 => r,
                    _ => return, // only the newest record is left
                }
            };
            self.pop_oldest(victim, graveyard);
            self.evicted_for_bytes += 1;
        }
    }

    /// Counts a datagram with this seq; returns the sequence gap it shows
    /// and whether the seq was implausible (see [`SeqJump`]).
    fn note_seq(&mut self, seq: u32) -> (u64, bool) {
        self.datagrams += 1;
        match self.last_any_seq {
            Some(last) => match SeqJump::of(last, seq) {
                SeqJump::Ahead(gap) => {
                    self.drops += gap;
                    self.last_any_seq = Some(seq);
                    return (gap, false);
                }
                SeqJump::Late => {}
                SeqJump::Restart => self.last_any_seq = Some(seq),
                SeqJump::Implausible => {
                    self.seq_resets += 1;
                    self.last_any_seq = Some(seq);
                    return (0, true);
                }
            },
            None => self.last_any_seq = Some(seq),
        }
        (0, false)
    }

    fn latch_identity(&mut self, s: &impl View, only_nonempty: bool) {
        // The longest each field a reporter sends (its buffer less the
        // NUL); longer text is forged and cut there.
        for (fid, slot, most) in [
            (id::HOSTNAME, &mut self.hostname, 127),
            (id::PROCESS_GROUP, &mut self.process_group, 63),
            (id::MOD_WSGI_VERSION, &mut self.mod_wsgi_version, 31),
            (id::PYTHON_VERSION, &mut self.python_version, 63),
            (id::APACHE_VERSION, &mut self.apache_version, 63),
            (id::MPM_NAME, &mut self.mpm_name, 31),
        ] {
            if let Some(t) = s.text(fid) {
                if !(only_nonempty && t.is_empty()) && *slot != t {
                    *slot = cut(&t, most).into_owned();
                }
            }
        }
        if let Some(ppid) = s.u64(id::PROCESS_PARENT_PID) {
            if ppid > 0 {
                self.process_parent_pid = ppid;
            }
        }
    }

    /// Approximate heap bytes held by this process's history.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Process>() + self.history_bytes
    }

    /// [`Process::history_bytes`] counted afresh from the rings (tests).
    #[cfg(test)]
    fn history_bytes_recounted(&self) -> usize {
        let samples: usize = self.samples.iter().map(sample_cost).sum();
        let gc: usize = self
            .gc_snapshots
            .values()
            .flat_map(|r| r.iter())
            .chain(self.gc_events.iter())
            .map(gc_cost)
            .sum();
        samples + gc
    }
}

/// How a datagram's seq relates to the last one seen from its process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SeqJump {
    /// Ahead, with this many datagrams missing in between (lost).
    Ahead(u64),
    /// At or a little behind the last one: late (reordered) or repeated.
    Late,
    /// Back to 1: a new reporter reusing the pid starts over.
    Restart,
    /// Ahead by more than [`SeqJump::MOST_AHEAD`] or behind by more than
    /// [`SeqJump::MOST_LATE`]: no reporter loses or reorders that many in
    /// the time a process is kept, so the seq is forged or the counter was
    /// reset. Taken as the new position, not counted as a loss.
    Implausible,
}

impl SeqJump {
    /// Datagrams a process can plausibly lose in a row (about an hour of
    /// a busy reporter's traffic, far beyond the 300 s a silent process
    /// is kept).
    const MOST_AHEAD: u32 = 1 << 20;
    /// How far behind a reordered datagram can plausibly arrive.
    const MOST_LATE: u32 = 1 << 16;

    fn of(last: u32, seq: u32) -> SeqJump {
        let ahead = seq.wrapping_sub(last);
        let behind = last.wrapping_sub(seq);
        if ahead == 0 {
            SeqJump::Late
        } else if ahead <= Self::MOST_AHEAD {
            SeqJump::Ahead(u64::from(ahead - 1))
        } else if seq == 1 {
            SeqJump::Restart
        } else if behind <= Self::MOST_LATE {
            SeqJump::Late
        } else {
            SeqJump::Implausible
        }
    }
}

/// `t` cut to at most `most` bytes (on a character boundary).
fn cut(t: &str, most: usize) -> Cow<'_, str> {
    if t.len() <= most {
        return Cow::Borrowed(t);
    }
    let mut end = most;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Borrowed(&t[..end])
}

/// `t` held to a slow-request field's buffer of `cap` bytes, cut as the
/// reporter cuts (its first `cap - 4` bytes and `...`): longer text is
/// forged.
fn cut_slow(t: String, cap: wire::SlowStringCap) -> String {
    let cap = cap as usize;
    if t.len() < cap {
        return t;
    }
    let mut s = cut(&t, cap - 4).into_owned();
    s.push_str("...");
    s
}

/// Lifecycle event (`process_started` / `process_stopping` / `process_stopped`).
#[derive(Clone, Debug, PartialEq)]
pub struct LifecycleEvent {
    /// Kind name.
    pub kind: &'static str,
    /// Header pid.
    pub pid: u32,
    /// Header stamp.
    pub stamp: f64,
    /// Field 5.
    pub hostname: String,
    /// Field 6.
    pub process_group: String,
    /// Field 7.
    pub process_parent_pid: u64,
    /// Field 130.
    pub shutdown_reason: String,
    /// Field 131.
    pub process_uptime: f64,
    /// Field 132.
    pub lifetime_request_count: u64,
    /// Field 133.
    pub active_requests_at_decision: u64,
    /// Field 134.
    pub active_requests_at_exit: u64,
    /// Field 135.
    pub graceful_drain: u64,
}

/// Correlation key of a slow-request record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SlowKey {
    /// `(pid, log_id)` when the record carries a log id.
    LogId(u32, String),
    /// `(pid, thread_id, start_stamp bits)` otherwise.
    Slot(u32, u64, u64),
}

/// One slow-request entry (keys as the reference's `SlowEntry.to_dict`).
#[derive(Clone, Debug, PartialEq)]
pub struct SlowEntry {
    /// Header pid.
    pub pid: u32,
    /// 203.
    pub thread_id: u64,
    /// 205.
    pub server_pid: u64,
    /// Text fields 204, 210–217.
    pub log_id: String,
    /// 210.
    pub method: String,
    /// 211.
    pub scheme: String,
    /// 212.
    pub hostname: String,
    /// 213.
    pub script_name: String,
    /// 214.
    pub path_info: String,
    /// 216.
    pub peer_ip: String,
    /// 215.
    pub protocol: String,
    /// 217.
    pub user_agent: String,
    /// 201.
    pub start_stamp: f64,
    /// 202.
    pub duration: f64,
    /// 200.
    pub state: u64,
    /// 230.
    pub input_bytes: u64,
    /// 231.
    pub input_reads: u64,
    /// 232.
    pub output_bytes: u64,
    /// 233.
    pub output_writes: u64,
    /// 250.
    pub cpu_user_time: f64,
    /// 251.
    pub cpu_system_time: f64,
    /// 220.
    pub server_time: f64,
    /// 221.
    pub queue_time: f64,
    /// 222.
    pub daemon_time: f64,
    /// 223.
    pub application_time: f64,
    /// 224.
    pub gil_wait_time: f64,
    /// 225.
    pub gil_wait_count: u64,
    /// 234.
    pub input_read_time: f64,
    /// 235.
    pub output_write_time: f64,
    /// 260.
    pub active_at_start: u64,
    /// 261.
    pub active_at_completion: u64,
    /// 240.
    pub status: u64,
    /// Arrival time (not serialised).
    pub last_seen: Instant,
}

/// What one datagram changed, for the message layer to publish. `S` is
/// the decoded datagram (`()` inside the model, which never keeps it).
#[derive(Debug)]
pub enum Update<S = Sample> {
    /// A periodic sample (REQUEST or any other kind routed there).
    Sample(S),
    /// A lifecycle event.
    Lifecycle(LifecycleEvent),
    /// A GC snapshot or event.
    Gc {
        /// The decoded datagram.
        sample: S,
        /// Interpreter key.
        interpreter: Arc<str>,
    },
    /// A slow-request record.
    Slow {
        /// Its key.
        key: SlowKey,
        /// The new entry.
        entry: Arc<SlowEntry>,
        /// Header stamp.
        stamp: f64,
    },
    /// Nothing to publish (undecodable datagram).
    Nothing,
}

/// The whole model.
#[derive(Debug)]
pub struct State {
    /// Bounds.
    pub limits: Limits,
    /// Processes in order of first appearance.
    pub processes: IndexMap<u32, Process, PidHash>,
    /// Slow entries in order of first appearance of their key.
    pub slow: SlowTable,
    /// Lifecycle ring, oldest first.
    pub lifecycle: VecDeque<LifecycleEvent>,
    /// Every datagram received, including undecodable ones.
    pub total_received: u64,
    /// Datagrams that failed to decode.
    pub decode_errors: u64,
    /// Sum of per-process sequence gaps (datagrams lost in transit).
    pub seq_gaps: u64,
    /// Slow entries evicted by the count bound.
    pub slow_evicted: u64,
    /// Slow entries evicted by the per-process count bound.
    pub slow_evicted_per_process: u64,
    /// Datagrams refused because they would have added a process past
    /// [`Limits::max_processes`].
    pub processes_refused: u64,
    /// Datagrams with a wire version other than [`wire::VERSION`] (also
    /// counted in `decode_errors`).
    pub unsupported_version: u64,
    /// Implausible sequence jumps, all processes (see [`SeqJump`]).
    pub seq_resets: u64,
    /// Repeated warnings, summarised once per interval.
    pub warnings: Warnings,
    /// Last decode error, for diagnostics.
    pub last_decode_error: Option<String>,
    /// Per-group totals for `/metrics` beyond the live processes.
    pub groups: IndexMap<totals::GroupKey, totals::GroupTotals>,
    /// Samples just evicted from a ring, dropped a few evictions later.
    graveyard: Graveyard,
}

/// Where evicted samples wait before they are dropped. An evicted sample's
/// allocation has not been touched since it arrived (thousands of
/// datagrams ago), so dropping it at once stalls on the cache miss of its
/// reference count (an atomic decrement cannot be overlapped with other
/// work) and again in `free`. Held here, with a prefetch issued as it is
/// buried, it is in the cache by the time it is dropped,
/// [`Graveyard::DELAY`] evictions later. (At most that many samples wait;
/// samples of a process dropped whole are not buried.)
#[derive(Debug, Default)]
struct Graveyard(VecDeque<Packed>);

impl Graveyard {
    const DELAY: usize = 16;

    fn bury(&mut self, p: Packed) {
        p.prefetch();
        if self.0.len() >= Self::DELAY {
            self.0.pop_front();
        }
        self.0.push_back(p);
    }
}

/// What the model reads from a decoded datagram, owned ([`Sample`]) or
/// read in place ([`SampleRef`]).
trait View: totals::Arrays {
    fn header(&self) -> Header;
    /// Field `fid` when it is a scalar (U64, F64 or I64).
    fn scalar(&self, fid: u16) -> Option<Value>;
    fn text(&self, fid: u16) -> Option<Cow<'_, str>>;
    fn pack(&self) -> Packed;

    fn f64(&self, fid: u16) -> Option<f64> {
        self.scalar(fid)?.as_f64()
    }
    fn u64(&self, fid: u16) -> Option<u64> {
        self.scalar(fid)?.as_u64()
    }
}

impl View for Sample {
    fn header(&self) -> Header {
        self.header
    }
    fn scalar(&self, fid: u16) -> Option<Value> {
        match self.get(fid)? {
            v @ (Value::U64(_) | Value::F64(_) | Value::I64(_)) => Some(v.clone()),
            _ => None,
        }
    }
    fn text(&self, fid: u16) -> Option<Cow<'_, str>> {
        Sample::text(self, fid)
    }
    fn pack(&self) -> Packed {
        pack(self)
    }
}

/// A scalar field read in place as the owned value (`None` for text and
/// arrays).
fn scalar_of(v: ValueRef<'_>) -> Option<Value> {
    Some(match v {
        ValueRef::U64(x) => Value::U64(x),
        ValueRef::F64(x) => Value::F64(x),
        ValueRef::I64(x) => Value::I64(x),
        _ => return None,
    })
}

impl View for SampleRef<'_> {
    fn header(&self) -> Header {
        self.header
    }
    fn scalar(&self, fid: u16) -> Option<Value> {
        scalar_of(self.get(fid)?)
    }
    fn text(&self, fid: u16) -> Option<Cow<'_, str>> {
        SampleRef::text(self, fid)
    }
    fn pack(&self) -> Packed {
        pack_ref(self)
    }
}

/// A [`SampleRef`] with its fields listed once, in wire order, so each
/// lookup scans a short array of ids instead of walking the TLV records
/// again (a REQUEST datagram is asked for a dozen fields). Held on the stack;
/// a datagram with more fields than fit falls back to [`SampleRef::get`].
struct Indexed<'a> {
    r: SampleRef<'a>,
    /// `None` when the datagram has more than [`Indexed::CAP`] fields.
    n: Option<usize>,
    ids: [u16; Indexed::CAP],
    vals: [ValueRef<'a>; Indexed::CAP],
}

impl<'a> Indexed<'a> {
    const CAP: usize = 64;

    fn new(r: SampleRef<'a>) -> Indexed<'a> {
        let mut ix = Indexed {
            r,
            n: Some(0),
            ids: [0; Indexed::CAP],
            vals: [ValueRef::U64(0); Indexed::CAP],
        };
        // `fields` already resolves duplicates (first position, last value).
        let mut n = 0;
        for (id, v) in r.fields() {
            if n == Indexed::CAP {
                ix.n = None;
                return ix;
            }
            ix.ids[n] = id;
            ix.vals[n] = v;
            n += 1;
        }
        ix.n = Some(n);
        ix
    }

    fn get(&self, fid: u16) -> Option<ValueRef<'a>> {
        match self.n {
            Some(n) => self.ids[..n]
                .iter()
                .position(|&i| i == fid)
                .map(|k| self.vals[k]),
            None => self.r.get(fid),
        }
    }
}

impl View for Indexed<'_> {
    fn header(&self) -> Header {
        self.r.header
    }
    fn scalar(&self, fid: u16) -> Option<Value> {
        scalar_of(self.get(fid)?)
    }
    fn text(&self, fid: u16) -> Option<Cow<'_, str>> {
        self.get(fid)?.as_text()
    }
    fn pack(&self) -> Packed {
        match self.n {
            Some(n) if !kept_as_is(&self.r) => {
                pack_listed(&self.r.header, &self.ids[..n], &self.vals[..n])
            }
            _ => pack_ref(&self.r),
        }
    }
}

fn text(s: &impl View, fid: u16) -> String {
    s.text(fid).map(|t| t.into_owned()).unwrap_or_default()
}

fn num_u64(s: &impl View, fid: u16) -> u64 {
    match s.scalar(fid) {
        Some(Value::U64(v)) => v,
        Some(Value::I64(v)) => v.max(0) as u64,
        Some(Value::F64(v)) if v > 0.0 => v as u64,
        _ => 0,
    }
}

fn num_f64(s: &impl View, fid: u16) -> f64 {
    s.f64(fid).unwrap_or(0.0)
}

impl Update<()> {
    /// The update with its sample attached (made only when published).
    fn with<S>(self, sample: impl FnOnce() -> S) -> Update<S> {
        match self {
            Update::Sample(()) => Update::Sample(sample()),
            Update::Gc {
                sample: (),
                interpreter,
            } => Update::Gc {
                sample: sample(),
                interpreter,
            },
            Update::Lifecycle(ev) => Update::Lifecycle(ev),
            Update::Slow { key, entry, stamp } => Update::Slow { key, entry, stamp },
            Update::Nothing => Update::Nothing,
        }
    }
}

/// Hashes the pid keys of [`State::processes`] with one folded
/// multiplication (the 128-bit product's halves XORed, as foldhash and
/// wyhash do) instead of SipHash (looked up for every datagram): every bit
/// of the pid reaches both the low bits the table picks buckets from and
/// the high bits of its tags, so pids that share their low bits do not
/// share a probe chain (the pid is the sender's word: it need not be a
/// real one).
#[derive(Clone, Copy, Default)]
pub struct PidHash;

impl std::hash::BuildHasher for PidHash {
    type Hasher = PidHasher;
    fn build_hasher(&self) -> PidHasher {
        PidHasher(0)
    }
}

/// See [`PidHash`].
#[derive(Default)]
pub struct PidHasher(u64);

impl std::hash::Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u32(&mut self, pid: u32) {
        self.0 = folded_mul(self.0 ^ u64::from(pid), 0x9e37_79b9_7f4a_7c15);
    }
    fn write(&mut self, bytes: &[u8]) {
        // not used by u32 keys; kept correct for any other
        for &b in bytes {
            self.0 = folded_mul(self.0 ^ u64::from(b), 0x9e37_79b9_7f4a_7c15);
        }
    }
}

fn folded_mul(x: u64, k: u64) -> u64 {
    let m = u128::from(x) * u128::from(k);
    (m as u64) ^ ((m >> 64) as u64)
}

impl State {
    /// An empty model.
    pub fn new(limits: Limits) -> State {
        State {
            limits,
            processes: IndexMap::default(),
            slow: SlowTable::default(),
            lifecycle: VecDeque::new(),
            total_received: 0,
            decode_errors: 0,
            seq_gaps: 0,
            slow_evicted: 0,
            slow_evicted_per_process: 0,
            processes_refused: 0,
            unsupported_version: 0,
            seq_resets: 0,
            warnings: Warnings::default(),
            last_decode_error: None,
            groups: IndexMap::new(),
            graveyard: Graveyard::default(),
        }
    }

    /// Decodes and applies one datagram.
    pub fn ingest(&mut self, datagram: &[u8], now: Instant) -> Update {
        match self.ingest_in_place(datagram, now) {
            (u, Some(r)) => u.with(|| r.to_sample()),
            (u, None) => u.with(|| unreachable!("no sample without a decode")),
        }
    }

    /// As [`State::ingest`] for a datagram nobody will be told about: the
    /// datagram is read in place and nothing is allocated for it beyond
    /// what the model stores.
    pub fn ingest_quiet(&mut self, datagram: &[u8], now: Instant) {
        self.ingest_in_place(datagram, now);
    }

    fn ingest_in_place<'a>(
        &mut self,
        datagram: &'a [u8],
        now: Instant,
    ) -> (Update<()>, Option<SampleRef<'a>>) {
        self.total_received += 1;
        if let Some(e) = wire::oversize_error(datagram.len()) {
            self.decode_errors += 1;
            self.warnings.note(now, "decode error", &e);
            self.last_decode_error = Some(e);
            return (Update::Nothing, None);
        }
        match wire::decode_ref(datagram) {
            Ok(r) if r.header.version != wire::VERSION => {
                self.decode_errors += 1;
                self.unsupported_version += 1;
                let e = format!(
                    "unsupported wire version {} (pid {}, this ingester reads version {})",
                    r.header.version,
                    r.header.pid,
                    wire::VERSION
                );
                self.warnings.note(now, "unsupported wire version", &e);
                self.last_decode_error = Some(e);
                (Update::Nothing, None)
            }
            // A GC datagram is asked for one field: the index (a pass over
            // the fields into two 64-entry arrays) would cost more than it
            // saves.
            Ok(r) if matches!(r.header.kind, Kind::GC_SNAPSHOT | Kind::GC_EVENT) => {
                (self.apply_view(&r, now), Some(r))
            }
            Ok(r) => (self.apply_view(&Indexed::new(r), now), Some(r)),
            Err(e) => {
                self.decode_errors += 1;
                let e = format!("{e} (len={})", datagram.len());
                self.warnings.note(now, "decode error", &e);
                self.last_decode_error = Some(e);
                (Update::Nothing, None)
            }
        }
    }

    /// Counts the datagram for `pid` (if it has state) and any sequence gap.
    fn note_seq(&mut self, pid: u32, seq: u32, now: Instant) {
        if let Some(p) = self.processes.get_mut(&pid) {
            let noted = p.note_seq(seq);
            self.count_seq(pid, seq, noted, now);
        }
    }

    /// Adds what [`Process::note_seq`] found to the totals.
    fn count_seq(&mut self, pid: u32, seq: u32, (gap, implausible): (u64, bool), now: Instant) {
        self.seq_gaps += gap;
        if implausible {
            self.seq_resets += 1;
            self.warnings.note(
                now,
                "implausible sequence jump",
                &format!("pid {pid} jumped to seq {seq}; not counted as lost datagrams"),
            );
        }
    }

    /// False, counting and logging the refusal, when a datagram from `pid`
    /// would add a process past [`Limits::max_processes`].
    #[inline]
    fn admits(&mut self, pid: u32, now: Instant) -> bool {
        if self.processes.len() < self.limits.max_processes || self.processes.contains_key(&pid) {
            return true;
        }
        self.processes_refused += 1;
        self.warnings.note(
            now,
            "process refused",
            &format!(
                "pid {pid}: already tracking {} processes (--max-processes)",
                self.limits.max_processes
            ),
        );
        false
    }

    /// The process of `pid`, created if new. Takes the map alone, so the
    /// caller may still use the other fields (limits, graveyard) while it
    /// holds the process.
    fn process_entry(
        processes: &mut IndexMap<u32, Process, PidHash>,
        pid: u32,
        now: Instant,
    ) -> &mut Process {
        processes
            .entry(pid)
            .or_insert_with(|| Process::new(pid, now))
    }

    /// Applies one decoded datagram.
    pub fn apply(&mut self, s: Sample, now: Instant) -> Update {
        self.apply_view(&s, now).with(|| s)
    }

    fn apply_view(&mut self, s: &impl View, now: Instant) -> Update<()> {
        // Periodic, GC and STARTED datagrams count their seq on the process
        // they looked up; the others look it up (it may not exist).
        let h = s.header();
        let (pid, seq) = (h.pid, h.seq);
        match h.kind {
            Kind::SLOW_REQUEST => {
                let u = self.apply_slow(s, now);
                self.note_seq(pid, seq, now);
                u
            }
            Kind::PROCESS_STARTED | Kind::PROCESS_STOPPING | Kind::PROCESS_STOPPED => {
                self.apply_lifecycle(s, now)
            }
            Kind::GC_SNAPSHOT | Kind::GC_EVENT => self.apply_gc(s, now),
            _ => self.apply_periodic(s, now),
        }
    }

    fn apply_periodic(&mut self, s: &impl View, now: Instant) -> Update<()> {
        let header = s.header();
        if !self.admits(header.pid, now) {
            return Update::Nothing;
        }
        let limit = self.limits.samples_per_process;
        let p = Self::process_entry(&mut self.processes, header.pid, now);
        p.last_seq = header.seq;
        p.last_seen = now;
        p.latch_identity(s, false);
        if let Some(sp) = s.f64(id::SAMPLE_PERIOD) {
            if sp > 0.0 {
                p.sample_period = sp;
            }
        }
        if p.samples.len() >= limit {
            p.pop_oldest(Ring::Samples, &mut self.graveyard);
        }
        p.push_sample(s.pack());
        if header.kind == Kind::REQUEST {
            p.metrics.add_tick(s);
        }
        p.trim_to(
            self.limits.bytes_per_process,
            Ring::Samples,
            &mut self.graveyard,
        );
        let noted = p.note_seq(header.seq);
        self.count_seq(header.pid, header.seq, noted, now);
        Update::Sample(())
    }

    fn apply_lifecycle(&mut self, s: &impl View, now: Instant) -> Update<()> {
        let header = s.header();
        let ev = LifecycleEvent {
            kind: match header.kind {
                Kind::PROCESS_STARTED => "process_started",
                Kind::PROCESS_STOPPING => "process_stopping",
                _ => "process_stopped",
            },
            pid: header.pid,
            stamp: header.stamp,
            hostname: text(s, id::HOSTNAME),
            process_group: text(s, id::PROCESS_GROUP),
            process_parent_pid: num_u64(s, id::PROCESS_PARENT_PID),
            shutdown_reason: text(s, id::SHUTDOWN_REASON),
            process_uptime: num_f64(s, id::PROCESS_UPTIME),
            lifetime_request_count: num_u64(s, id::LIFETIME_REQUEST_COUNT),
            active_requests_at_decision: num_u64(s, id::ACTIVE_REQUESTS_AT_DECISION),
            active_requests_at_exit: num_u64(s, id::ACTIVE_REQUESTS_AT_EXIT),
            graceful_drain: num_u64(s, id::GRACEFUL_DRAIN),
        };
        if self.lifecycle.len() >= self.limits.lifecycle_events {
            self.lifecycle.pop_front();
        }
        self.lifecycle.push_back(ev.clone());
        self.count_lifecycle(&ev);
        if header.kind == Kind::PROCESS_STARTED && self.admits(header.pid, now) {
            let p = Self::process_entry(&mut self.processes, header.pid, now);
            p.last_seen = now;
            p.latch_identity(s, true);
            let noted = p.note_seq(header.seq);
            self.count_seq(header.pid, header.seq, noted, now);
        } else {
            self.note_seq(header.pid, header.seq, now);
        }
        Update::Lifecycle(ev)
    }

    fn apply_gc(&mut self, s: &impl View, now: Instant) -> Update<()> {
        let header = s.header();
        if !self.admits(header.pid, now) {
            return Update::Nothing;
        }
        let limits = &self.limits;
        let p = Self::process_entry(&mut self.processes, header.pid, now);
        p.last_seen = now;
        // Reuse the key of an interpreter already seen (no allocation on
        // the common path).
        let interp: Arc<str> = {
            // (the last event's first: a string compare, not a hash)
            let name = s.text(id::INTERPRETER_NAME).unwrap_or_default();
            match p.gc_events.back() {
                Some(e) if *e.interpreter == *name => e.interpreter.clone(),
                _ => match p.gc_snapshots.get_key_value(name.as_ref()) {
                    Some((k, _)) => k.clone(),
                    None => Arc::from(name.as_ref()),
                },
            }
        };
        let rec = GcRecord {
            interpreter: interp.clone(),
            packed: s.pack(),
            stamp: header.stamp,
        };
        if header.kind == Kind::GC_SNAPSHOT {
            if !p.gc_snapshots.contains_key(&interp)
                && p.gc_snapshots.len() >= limits.interpreters_per_process
            {
                p.gc_dropped_interpreters += 1;
            } else {
                let entry = p.gc_snapshots.entry(interp.clone());
                let ring = Ring::Snapshots(entry.index());
                entry.or_default();
                if p.ring_len(ring) >= limits.gc_snapshots_per_interpreter {
                    p.pop_oldest(ring, &mut self.graveyard);
                }
                p.push_gc(ring, rec);
                p.trim_to(limits.bytes_per_process, ring, &mut self.graveyard);
            }
        } else {
            let cutoff = header.stamp - limits.gc_event_seconds;
            p.push_gc(Ring::Events, rec);
            while p.gc_events.len() > limits.gc_events_per_process
                || p.gc_events.front().is_some_and(|e| e.stamp < cutoff)
            {
                p.pop_oldest(Ring::Events, &mut self.graveyard);
            }
            p.trim_to(limits.bytes_per_process, Ring::Events, &mut self.graveyard);
        }
        p.metrics.add_gc(
            s,
            &interp,
            header.kind == Kind::GC_SNAPSHOT,
            limits.interpreters_per_process,
        );
        let noted = p.note_seq(header.seq);
        self.count_seq(header.pid, header.seq, noted, now);
        Update::Gc {
            sample: (),
            interpreter: interp,
        }
    }

    fn apply_slow(&mut self, s: &impl View, now: Instant) -> Update<()> {
        let header = s.header();
        let pid = header.pid;
        use wire::SlowStringCap as C;
        let t = |fid, cap| cut_slow(text(s, fid), cap);
        let log_id = t(id::SLOW_LOG_ID, C::LogId);
        let thread_id = num_u64(s, id::SLOW_THREAD_ID);
        let start_stamp = num_f64(s, id::SLOW_START_STAMP);
        let key = if log_id.is_empty() {
            SlowKey::Slot(pid, thread_id, start_stamp.to_bits())
        } else {
            SlowKey::LogId(pid, log_id.clone())
        };
        let entry = Arc::new(SlowEntry {
            pid,
            thread_id,
            server_pid: num_u64(s, id::SLOW_SERVER_PID),
            log_id,
            method: t(id::SLOW_METHOD, C::Short),
            scheme: t(id::SLOW_SCHEME, C::Short),
            hostname: t(id::SLOW_HOSTNAME, C::Name),
            script_name: t(id::SLOW_SCRIPT_NAME, C::Name),
            path_info: t(id::SLOW_PATH_INFO, C::Long),
            peer_ip: t(id::SLOW_PEER_IP, C::PeerIp),
            protocol: t(id::SLOW_PROTOCOL, C::Short),
            user_agent: t(id::SLOW_USER_AGENT, C::Long),
            start_stamp,
            duration: num_f64(s, id::SLOW_DURATION),
            state: num_u64(s, id::SLOW_RECORD_STATE),
            input_bytes: num_u64(s, id::SLOW_INPUT_BYTES),
            input_reads: num_u64(s, id::SLOW_INPUT_READS),
            output_bytes: num_u64(s, id::SLOW_OUTPUT_BYTES),
            output_writes: num_u64(s, id::SLOW_OUTPUT_WRITES),
            cpu_user_time: num_f64(s, id::SLOW_CPU_USER_TIME),
            cpu_system_time: num_f64(s, id::SLOW_CPU_SYSTEM_TIME),
            server_time: num_f64(s, id::SLOW_SERVER_TIME),
            queue_time: num_f64(s, id::SLOW_QUEUE_TIME),
            daemon_time: num_f64(s, id::SLOW_DAEMON_TIME),
            application_time: num_f64(s, id::SLOW_APPLICATION_TIME),
            gil_wait_time: num_f64(s, id::SLOW_GIL_WAIT_TIME),
            gil_wait_count: num_u64(s, id::SLOW_GIL_WAIT_COUNT),
            input_read_time: num_f64(s, id::SLOW_INPUT_READ_TIME),
            output_write_time: num_f64(s, id::SLOW_OUTPUT_WRITE_TIME),
            active_at_start: num_u64(s, id::SLOW_ACTIVE_AT_START),
            active_at_completion: num_u64(s, id::SLOW_ACTIVE_AT_COMPLETION),
            status: num_u64(s, id::SLOW_STATUS),
            last_seen: now,
        });
        if entry.state == 1 && self.slow.get(&key).is_none_or(|w| w.state != 1) {
            self.count_slow_completed(pid);
        }
        self.slow.insert(key.clone(), entry.clone());
        // Evict the oldest completed entry, else the oldest entry: of this
        // process past its bound, then of all past theirs.
        if self.slow.len_of(pid) > self.limits.slow_entries_per_process
            && self.slow.evict_oldest_of(pid)
        {
            self.slow_evicted_per_process += 1;
            self.warnings.note(
                now,
                "slow request evicted",
                &format!(
                    "pid {pid} holds {} slow requests (--max-slow-per-process); oldest dropped",
                    self.limits.slow_entries_per_process
                ),
            );
        }
        if self.slow.len() > self.limits.slow_entries && self.slow.evict_oldest() {
            self.slow_evicted += 1;
            self.warnings.note(
                now,
                "slow request evicted",
                &format!(
                    "{} slow requests held (--max-slow); oldest dropped",
                    self.limits.slow_entries
                ),
            );
        }
        Update::Slow {
            key,
            entry,
            stamp: header.stamp,
        }
    }

    fn slow_ttl(processes: &IndexMap<u32, Process, PidHash>, e: &SlowEntry) -> Duration {
        let sp = processes
            .get(&e.pid)
            .map(|p| p.sample_period)
            .filter(|&sp| sp > 0.0)
            .unwrap_or(1.0);
        let secs = if e.state == 1 {
            (5.0 * sp).max(600.0)
        } else {
            (3.0 * sp).max(5.0)
        };
        Duration::from_secs_f64(secs)
    }

    /// Timer-driven expiry: stale processes, then slow entries past their
    /// TTL or whose process is gone. Returns the pids dropped.
    pub fn expire(&mut self, now: Instant) -> Vec<u32> {
        let stale_after = self.limits.stale_after;
        let mut dropped = Vec::new();
        let groups = &mut self.groups;
        self.processes.retain(|pid, p| {
            let keep = now.saturating_duration_since(p.last_seen) <= stale_after;
            if !keep {
                dropped.push(*pid);
                totals::retire(groups, p);
            }
            keep
        });
        match dropped.len() {
            0 => {}
            1..=8 => tracing::info!("gc: dropping stale pid(s) {dropped:?}"),
            n => tracing::info!(
                "gc: dropping {n} stale processes (pids {:?} …)",
                &dropped[..8]
            ),
        }
        if !self.slow.is_empty() {
            let gone: std::collections::HashSet<u32> = dropped.iter().copied().collect();
            let processes = &self.processes;
            self.slow.retain(|_, e| {
                // Records of a pid we never had state for (compatibility.md C20) are
                // kept for their TTL instead of being dropped at once.
                !gone.contains(&e.pid)
                    && now.saturating_duration_since(e.last_seen) <= Self::slow_ttl(processes, e)
            });
        }
        self.warnings.flush(now);
        dropped
    }

    /// `POST /api/slow/clear`: keeps only live active entries; returns them.
    pub fn clear_slow(&mut self, now: Instant) -> Vec<(SlowKey, Arc<SlowEntry>)> {
        let processes = &self.processes;
        self.slow.retain(|_, e| {
            e.state != 1
                && processes.contains_key(&e.pid)
                && now.saturating_duration_since(e.last_seen) <= Self::slow_ttl(processes, e)
        });
        self.slow
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Records the live processes dropped early to keep
    /// [`Limits::bytes_per_process`] (0 for ordinary traffic).
    pub fn evicted_for_bytes(&self) -> u64 {
        self.processes.values().map(|p| p.evicted_for_bytes).sum()
    }

    /// Approximate heap bytes of all history.
    pub fn heap_bytes(&self) -> usize {
        self.processes
            .values()
            .map(Process::heap_bytes)
            .sum::<usize>()
            + self.slow.len() * 512
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index answers as `SampleRef` does and packs the same bytes, for
    /// every corpus datagram, one with duplicated ids and one too long to
    /// index.
    #[test]
    fn indexed_view_reads_as_the_sample_ref() {
        let mut datagrams = corpus();
        let header = Header::new(Kind::REQUEST, 1, 2, 3.5);
        let dup = Sample {
            header,
            fields: vec![
                (7, Value::U64(1)),
                (9, Value::Bytes(b"a".to_vec())),
                (7, Value::F64(2.5)),
                (600, Value::I64(-3)),
                (600, Value::U64(4)),
            ],
        };
        let long = Sample {
            header,
            fields: (0..Indexed::CAP as u16 + 6)
                .map(|i| (i, Value::U64(i as u64)))
                .collect(),
        };
        datagrams.push(dup.encode().unwrap());
        datagrams.push(long.encode().unwrap());
        for d in &datagrams {
            let r = wire::decode_ref(d).unwrap();
            let ix = Indexed::new(r);
            for fid in (0..700).chain(r.fields().map(|(i, _)| i)) {
                assert_eq!(ix.get(fid), r.get(fid), "field {fid}");
            }
            assert_eq!(View::pack(&ix), pack_ref(&r));
        }
        let r = wire::decode_ref(datagrams.last().unwrap()).unwrap();
        assert!(Indexed::new(r).n.is_none());
        let r = wire::decode_ref(&datagrams[datagrams.len() - 2]).unwrap();
        assert!(r.has_duplicates() && Indexed::new(r).n == Some(3));
    }

    fn corpus() -> Vec<Vec<u8>> {
        let bin = crate::test_corpus();
        wire::capture::records(&bin)
            .map(|r| r.unwrap().to_vec())
            .collect()
    }

    /// A datagram of `kind` from pid 7, padded with an unknown field to
    /// about `size` bytes (kept, as every unknown field is).
    fn padded(kind: Kind, seq: u32, stamp: f64, interp: &str, size: usize) -> Vec<u8> {
        let mut fields = vec![(id::REQUEST_COUNT, Value::U64(u64::from(seq)))];
        if !interp.is_empty() {
            fields.push((id::INTERPRETER_NAME, Value::Bytes(interp.into())));
        }
        let mut d = Sample {
            header: Header::new(kind, 7, seq, stamp),
            fields,
        }
        .encode()
        .unwrap();
        // Beyond what the encoder writes (8 KB): a bytes record appended by
        // hand (id, tag 0x04, u16 length, body; the header counts nothing).
        d.extend_from_slice(&999u16.to_le_bytes());
        d.push(0x04);
        d.extend_from_slice(&(size as u16).to_le_bytes());
        d.resize(d.len() + size, b'x');
        d
    }

    /// Datagrams far larger than any reporter sends, of every stored kind,
    /// interleaved: the history never exceeds the byte budget, the running
    /// count always equals a recount, the newest record of the kind that
    /// arrived is always kept, and ordinary records (a small GC event)
    /// still get in.
    #[test]
    fn history_is_held_to_the_byte_budget() {
        let budget = 300_000;
        let mut st = State::new(Limits {
            bytes_per_process: budget,
            ..Limits::default()
        });
        let t = Instant::now();
        let mut seq = 0;
        let mut send = |st: &mut State, kind, stamp, interp: &str, size| {
            seq += 1;
            st.ingest_quiet(&padded(kind, seq, stamp, interp, size), t);
            let p = &st.processes[&7];
            assert_eq!(p.history_bytes(), p.history_bytes_recounted());
            assert!(p.history_bytes() <= budget, "{} bytes", p.history_bytes());
            seq
        };
        for round in 0..400u32 {
            let stamp = 1000.0 + f64::from(round);
            let size = 20_000 + (round as usize % 7) * 5_000;
            let s = send(&mut st, Kind::REQUEST, stamp, "", size);
            let newest = st.processes[&7].samples.back().map(packed::unpack);
            assert_eq!(newest.unwrap().header.seq, s);
            let interp = ["", "a", "b"][round as usize % 3];
            send(&mut st, Kind::GC_SNAPSHOT, stamp, interp, 9_000);
            let size = if round % 2 == 0 { 60_000 } else { 40 };
            let s = send(&mut st, Kind::GC_EVENT, stamp, "", size);
            let newest = st.processes[&7].gc_events.back();
            assert_eq!(
                newest.map(|g| packed::unpack(&g.packed).header.seq),
                Some(s)
            );
        }
        let p = &st.processes[&7];
        assert!(p.evicted_for_bytes > 0);
        assert!(!p.samples.is_empty() && !p.gc_events.is_empty());
        assert_eq!(p.gc_snapshots.len(), 3);
        assert_eq!(
            st.heap_bytes(),
            std::mem::size_of::<Process>() + p.history_bytes()
        );
    }

    /// Real traffic is held by the count limits alone, far inside the
    /// byte budget, with the running count equal to a recount.
    #[test]
    fn ordinary_traffic_stays_far_inside_the_byte_budget() {
        let mut st = State::new(Limits::default());
        let t = Instant::now();
        for d in corpus() {
            st.ingest_quiet(&d, t);
        }
        assert!(st.processes.len() > 1);
        for p in st.processes.values() {
            assert_eq!(p.evicted_for_bytes, 0, "pid {}", p.pid);
            assert_eq!(p.history_bytes(), p.history_bytes_recounted());
            assert!(
                p.history_bytes() < Limits::default().bytes_per_process / 4,
                "pid {}: {} bytes",
                p.pid,
                p.history_bytes()
            );
        }
    }

    /// A slow-request record of `pid`, worker slot `thread`, `state` (0
    /// active, 1 completed).
    fn slow_datagram(pid: u32, seq: u32, thread: u64, state: u64) -> Vec<u8> {
        Sample {
            header: Header::new(Kind::SLOW_REQUEST, pid, seq, 1000.0),
            fields: vec![
                (id::SLOW_RECORD_STATE, Value::U64(state)),
                (id::SLOW_START_STAMP, Value::F64(999.0)),
                (id::SLOW_THREAD_ID, Value::U64(thread)),
            ],
        }
        .encode()
        .unwrap()
    }

    /// 50,000 slow records with the table full (10,000): 10,000 active
    /// entries held ahead of the completed ones, then 40,000 completed
    /// records, each evicting the oldest completed entry. Finding it must
    /// not walk the active entries: with a scan per record (and a shifting
    /// removal) this took 18 s in a debug build; it takes well
    /// under a second now (on a loaded 2-core machine). The
    /// deadline is generous: it catches O(n) per record, not a slow machine.
    #[test]
    fn slow_eviction_does_not_walk_the_held_records() {
        let mut st = State::new(Limits::default());
        let cap = st.limits.slow_entries as u32;
        let t = Instant::now();
        for i in 0..cap {
            // 100 pids, 100 active records each
            st.ingest_quiet(&slow_datagram(10_000 + i % 100, i + 1, u64::from(i), 0), t);
        }
        assert_eq!(st.slow.len(), cap as usize);
        let started = Instant::now();
        for i in 0..40_000u32 {
            let pid = 20_000 + i % 100;
            st.ingest_quiet(&slow_datagram(pid, i + 1, u64::from(i), 1), t);
        }
        let took = started.elapsed();
        println!("40,000 evicting slow records: {took:?}");
        assert!(took < Duration::from_secs(8), "took {took:?}");
        assert_eq!(st.slow.len(), cap as usize);
        assert_eq!(st.slow_evicted, 40_000);
        // The active entries were all kept.
        assert_eq!(
            st.slow.values().filter(|e| e.state == 0).count(),
            cap as usize
        );
    }

    /// A forged seq far ahead (2^31 after 1) or far behind is taken as a
    /// reset, counted apart, and adds nothing to the gaps; ordinary gaps,
    /// late datagrams and a restart at 1 count as before.
    #[test]
    fn implausible_sequence_jumps_are_not_counted_as_losses() {
        let mut st = State::new(Limits::default());
        let t = Instant::now();
        let send = |st: &mut State, seq: u32| {
            let d = Header::new(Kind::PROCESS, 9, seq, 1.0).to_bytes();
            st.ingest_quiet(&d, t);
        };
        send(&mut st, 1);
        send(&mut st, 1 << 31);
        assert_eq!((st.seq_gaps, st.seq_resets), (0, 1));
        send(&mut st, (1 << 31) + 3); // two lost: a real gap
        assert_eq!((st.seq_gaps, st.seq_resets), (2, 1));
        send(&mut st, (1 << 31) + 2); // late
        send(&mut st, 5); // far behind, not 1
        assert_eq!((st.seq_gaps, st.seq_resets), (2, 2));
        send(&mut st, 5 + (1 << 20)); // 2^20 ahead: still plausible
        let gaps = 2 + (1 << 20) - 1;
        assert_eq!((st.seq_gaps, st.seq_resets), (gaps, 2));
        send(&mut st, 1); // a new reporter with this pid
        send(&mut st, 2);
        assert_eq!((st.seq_gaps, st.seq_resets), (gaps, 2));
        assert_eq!(st.processes[&9].seq_resets, 2);
        assert_eq!(st.processes[&9].drops, gaps);
    }

    /// A datagram whose version byte is not 1 is a decode error of its own
    /// reason and changes nothing else.
    #[test]
    fn unknown_wire_versions_are_refused() {
        let mut st = State::new(Limits::default());
        let t = Instant::now();
        let mut d = Sample {
            header: Header::new(Kind::REQUEST, 11, 1, 1.0),
            fields: vec![(id::REQUEST_COUNT, Value::U64(1))],
        }
        .encode()
        .unwrap();
        d[4] = 2;
        st.ingest_quiet(&d, t);
        assert_eq!((st.decode_errors, st.unsupported_version), (1, 1));
        assert!(st.processes.is_empty());
        assert!(st
            .last_decode_error
            .as_deref()
            .unwrap()
            .contains("unsupported wire version 2"));
        d[4] = 1;
        st.ingest_quiet(&d, t);
        assert_eq!((st.decode_errors, st.unsupported_version), (1, 1));
        assert_eq!(st.processes.len(), 1);
    }

    /// Past the process bound, datagrams of new pids are refused and
    /// counted; tracked processes keep taking samples; a place frees when
    /// one goes stale.
    #[test]
    fn processes_are_bounded() {
        let mut st = State::new(Limits {
            max_processes: 3,
            stale_after: Duration::from_secs(10),
            ..Limits::default()
        });
        let t = Instant::now();
        let req = |pid: u32, seq: u32| Header::new(Kind::REQUEST, pid, seq, 1.0).to_bytes();
        for pid in 1..=5 {
            st.ingest_quiet(&req(pid, 1), t);
        }
        st.ingest_quiet(&slow_datagram(6, 1, 1, 0), t);
        st.ingest_quiet(&padded(Kind::GC_EVENT, 1, 1.0, "", 10), t); // pid 7
        assert_eq!(st.processes.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(st.processes_refused, 3);
        st.ingest_quiet(&req(2, 2), t);
        assert_eq!(st.processes[&2].samples.len(), 2);
        // pid 1 goes stale, pid 2 and 3 stay: pid 4 gets the place.
        let later = t + Duration::from_secs(11);
        st.ingest_quiet(&req(2, 3), later);
        st.ingest_quiet(&req(3, 2), later);
        st.expire(later);
        st.ingest_quiet(&req(4, 2), later);
        assert_eq!(st.processes.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(st.processes_refused, 3);
    }

    /// Slow records are bounded per process and in all, and forged text
    /// longer than a reporter sends is cut as the reporter cuts it.
    #[test]
    fn slow_records_are_bounded_per_process_and_cut() {
        let mut st = State::new(Limits {
            slow_entries: 50,
            slow_entries_per_process: 10,
            ..Limits::default()
        });
        let t = Instant::now();
        for i in 0..30u32 {
            st.ingest_quiet(&slow_datagram(1, i + 1, u64::from(i), 0), t);
        }
        assert_eq!(st.slow.len_of(1), 10);
        assert_eq!(st.slow_evicted_per_process, 20);
        for pid in 2..=10u32 {
            for i in 0..10u32 {
                st.ingest_quiet(&slow_datagram(pid, i + 1, u64::from(i), 1), t);
            }
        }
        assert_eq!(st.slow.len(), 50);
        assert_eq!(st.slow_evicted, 50);
        // The newest of pid 1 (active) were kept over completed ones.
        assert_eq!(st.slow.len_of(1), 10);
        let long = Sample {
            header: Header::new(Kind::SLOW_REQUEST, 1, 99, 1.0),
            fields: vec![
                (id::SLOW_THREAD_ID, Value::U64(77)),
                (id::SLOW_USER_AGENT, Value::Bytes(vec![b'u'; 3000])),
                (id::SLOW_METHOD, Value::Bytes(b"GET".to_vec())),
            ],
        }
        .encode()
        .unwrap();
        st.ingest_quiet(&long, t);
        let e = st.slow.values().find(|e| e.thread_id == 77).unwrap();
        assert_eq!(e.user_agent.len(), 511);
        assert!(e.user_agent.ends_with("u..."));
        assert_eq!(e.method, "GET");
    }

    /// Pids that share their low bits still land in different buckets
    /// (the table indexes with the low bits of the hash).
    #[test]
    fn pid_hash_spreads_low_bits() {
        use std::hash::BuildHasher;
        for shift in [0, 8, 12, 16, 20] {
            let buckets: std::collections::HashSet<u64> = (0..1024u32)
                .map(|i| PidHash.hash_one(i << shift) & 1023)
                .collect();
            assert!(
                buckets.len() > 512,
                "pids spaced 2^{shift}: {} buckets",
                buckets.len()
            );
        }
    }
}
