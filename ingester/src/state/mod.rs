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
pub mod totals;

use indexmap::IndexMap;
use packed::{kept_as_is, pack, pack_listed, pack_ref, Packed};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
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

    /// Counts a datagram with this seq; returns the sequence gap it shows.
    fn note_seq(&mut self, seq: u32) -> u64 {
        self.datagrams += 1;
        match self.last_any_seq {
            Some(last) => {
                let ahead = seq.wrapping_sub(last);
                if (1..1 << 31).contains(&ahead) {
                    let gap = (ahead - 1) as u64;
                    self.drops += gap;
                    self.last_any_seq = Some(seq);
                    return gap;
                } else if seq == 1 {
                    // A new reporter reusing the pid starts over.
                    self.last_any_seq = Some(seq);
                }
                // Otherwise a late (reordered) datagram: not a loss.
            }
            None => self.last_any_seq = Some(seq),
        }
        0
    }

    fn latch_identity(&mut self, s: &impl View, only_nonempty: bool) {
        for (fid, slot) in [
            (id::HOSTNAME, &mut self.hostname),
            (id::PROCESS_GROUP, &mut self.process_group),
            (id::MOD_WSGI_VERSION, &mut self.mod_wsgi_version),
            (id::PYTHON_VERSION, &mut self.python_version),
            (id::APACHE_VERSION, &mut self.apache_version),
            (id::MPM_NAME, &mut self.mpm_name),
        ] {
            if let Some(t) = s.text(fid) {
                if !(only_nonempty && t.is_empty()) {
                    *slot = t.into_owned();
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
    pub slow: IndexMap<SlowKey, Arc<SlowEntry>>,
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
            slow: IndexMap::new(),
            lifecycle: VecDeque::new(),
            total_received: 0,
            decode_errors: 0,
            seq_gaps: 0,
            slow_evicted: 0,
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
            tracing::warn!("decode error: {e}");
            self.last_decode_error = Some(e);
            return (Update::Nothing, None);
        }
        match wire::decode_ref(datagram) {
            // A GC datagram is asked for one field: the index (a pass over
            // the fields into two 64-entry arrays) would cost more than it
            // saves.
            Ok(r) if matches!(r.header.kind, Kind::GC_SNAPSHOT | Kind::GC_EVENT) => {
                (self.apply_view(&r, now), Some(r))
            }
            Ok(r) => (self.apply_view(&Indexed::new(r), now), Some(r)),
            Err(e) => {
                self.decode_errors += 1;
                tracing::warn!("decode error: {e} (len={})", datagram.len());
                self.last_decode_error = Some(e.to_string());
                (Update::Nothing, None)
            }
        }
    }

    /// Counts the datagram for `pid` (if it has state) and any sequence gap.
    fn note_seq(&mut self, pid: u32, seq: u32) {
        if let Some(p) = self.processes.get_mut(&pid) {
            self.seq_gaps += p.note_seq(seq);
        }
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
                self.note_seq(pid, seq);
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
        let gap = p.note_seq(header.seq);
        self.seq_gaps += gap;
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
        if header.kind == Kind::PROCESS_STARTED {
            let p = Self::process_entry(&mut self.processes, header.pid, now);
            p.last_seen = now;
            p.latch_identity(s, true);
            let gap = p.note_seq(header.seq);
            self.seq_gaps += gap;
        } else {
            self.note_seq(header.pid, header.seq);
        }
        Update::Lifecycle(ev)
    }

    fn apply_gc(&mut self, s: &impl View, now: Instant) -> Update<()> {
        let header = s.header();
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
        let gap = p.note_seq(header.seq);
        self.seq_gaps += gap;
        Update::Gc {
            sample: (),
            interpreter: interp,
        }
    }

    fn apply_slow(&mut self, s: &impl View, now: Instant) -> Update<()> {
        let header = s.header();
        let pid = header.pid;
        let log_id = text(s, id::SLOW_LOG_ID);
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
            method: text(s, id::SLOW_METHOD),
            scheme: text(s, id::SLOW_SCHEME),
            hostname: text(s, id::SLOW_HOSTNAME),
            script_name: text(s, id::SLOW_SCRIPT_NAME),
            path_info: text(s, id::SLOW_PATH_INFO),
            peer_ip: text(s, id::SLOW_PEER_IP),
            protocol: text(s, id::SLOW_PROTOCOL),
            user_agent: text(s, id::SLOW_USER_AGENT),
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
        if self.slow.len() > self.limits.slow_entries {
            // Evict the oldest completed entry, else the oldest entry.
            let victim = self
                .slow
                .iter()
                .position(|(_, e)| e.state == 1)
                .unwrap_or(0);
            self.slow.shift_remove_index(victim);
            self.slow_evicted += 1;
        }
        Update::Slow {
            key,
            entry,
            stamp: header.stamp,
        }
    }

    fn slow_ttl(&self, e: &SlowEntry) -> Duration {
        let sp = self
            .processes
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
                tracing::info!("gc: dropping stale pid={pid}");
                dropped.push(*pid);
                totals::retire(groups, p);
            }
            keep
        });
        if !self.slow.is_empty() {
            let keep: Vec<bool> = self
                .slow
                .values()
                .map(|e| {
                    // Records of a pid we never had state for (compatibility.md C20) are
                    // kept for their TTL instead of being dropped at once.
                    let gone = dropped.contains(&e.pid);
                    !gone && now.saturating_duration_since(e.last_seen) <= self.slow_ttl(e)
                })
                .collect();
            let mut it = keep.into_iter();
            self.slow.retain(|_, _| it.next().unwrap_or(true));
        }
        dropped
    }

    /// `POST /api/slow/clear`: keeps only live active entries; returns them.
    pub fn clear_slow(&mut self, now: Instant) -> Vec<(SlowKey, Arc<SlowEntry>)> {
        let keep: Vec<bool> = self
            .slow
            .values()
            .map(|e| {
                e.state != 1
                    && self.processes.contains_key(&e.pid)
                    && now.saturating_duration_since(e.last_seen) <= self.slow_ttl(e)
            })
            .collect();
        let mut it = keep.into_iter();
        self.slow.retain(|_, _| it.next().unwrap_or(false));
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
