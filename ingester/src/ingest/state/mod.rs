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

mod limits;
pub(crate) mod packed;
mod persisted;
mod process;
mod records;
mod slow;
pub(crate) mod totals;
mod views;
mod warnings;

pub use limits::Limits;
pub(crate) use process::{GcRecord, Process};
pub(crate) use records::{LifecycleEvent, SlowEntry, SlowKey};
pub use slow::SlowTable;

use crate::ingest::app_metrics::AppMetricsState;
use crate::ingest::history::point::Tick;
use crate::ingest::history::{History, DEFAULT_TIERS};
use indexmap::IndexMap;
use persisted::DEFAULT_HISTORY_SERIES;
use process::{Graveyard, PidHash, Ring};
use records::cut_slow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use views::{num_f64, num_u64, text, Indexed, View};
use warnings::Warnings;
use wire::{id, Kind, Sample, SampleRef};

/// What one datagram changed, for the message layer to publish. `S` is
/// the decoded datagram (`()` inside the model, which never keeps it).
#[derive(Debug)]
pub(crate) enum Update<S = Sample> {
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
    pub(crate) processes: IndexMap<u32, Process, PidHash>,
    /// Slow entries in order of first appearance of their key.
    pub slow: SlowTable,
    /// Lifecycle ring, oldest first.
    pub(crate) lifecycle: VecDeque<LifecycleEvent>,
    /// Every datagram received, including undecodable ones.
    pub(crate) total_received: u64,
    /// Datagrams that failed to decode.
    pub(crate) decode_errors: u64,
    /// Sum of per-process sequence gaps (datagrams lost in transit).
    pub(crate) seq_gaps: u64,
    /// Slow entries evicted by the count bound.
    pub slow_evicted: u64,
    /// Slow entries evicted by the per-process count bound.
    pub(crate) slow_evicted_per_process: u64,
    /// Datagrams refused because they would have added a process past
    /// [`Limits::max_processes`].
    pub(crate) processes_refused: u64,
    /// Identities and lifecycle events of groups past
    /// [`Limits::max_groups`], counted under
    /// [`totals::other_group`] instead.
    pub(crate) groups_folded: u64,
    /// Datagrams with a wire version other than [`wire::VERSION`] (also
    /// counted in `decode_errors`).
    pub(crate) unsupported_version: u64,
    /// Implausible sequence jumps, all processes (see [`SeqJump`]).
    pub(crate) seq_resets: u64,
    /// Repeated warnings, summarised once per interval.
    pub(crate) warnings: Warnings,
    /// Last decode error, for diagnostics.
    pub(crate) last_decode_error: Option<String>,
    /// Per-group totals for `/metrics` beyond the live processes.
    pub(crate) groups: IndexMap<totals::GroupKey, totals::GroupTotals>,
    /// Samples just evicted from a ring, dropped a few evictions later.
    graveyard: Graveyard,
    /// Tiered history per group and per host (fed by REQUEST ticks).
    pub history: History,
    /// The REQUEST tick being applied (its room reused, see [`Tick`]).
    tick: Tick,
    /// Keep lifecycle and completed slow-request datagrams for the store.
    keep_events: bool,
    /// Kept datagrams: (kind, stamp, bytes), taken by the history writer.
    kept_events: Vec<(u8, u64, Vec<u8>)>,
    /// Failed writes to the state directory (set by the history writer).
    pub(crate) history_write_errors: u64,
    /// The applications' own metrics (kind 10), summed per host and group.
    pub(crate) app: AppMetricsState,
    /// Kind-10 datagrams whose columns did not agree (also counted in
    /// `decode_errors`).
    pub(crate) app_decode_errors: u64,
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
            groups_folded: 0,
            unsupported_version: 0,
            seq_resets: 0,
            warnings: Warnings::default(),
            last_decode_error: None,
            groups: IndexMap::new(),
            graveyard: Graveyard::default(),
            history: History::new(&DEFAULT_TIERS, DEFAULT_HISTORY_SERIES)
                .expect("the default tiers are valid"),
            tick: Tick::default(),
            keep_events: false,
            kept_events: Vec::new(),
            history_write_errors: 0,
            app: AppMetricsState::new(crate::ingest::app_metrics::Limits::default()),
            app_decode_errors: 0,
        }
    }

    /// Decodes and applies one datagram.
    pub(crate) fn ingest(&mut self, datagram: &[u8], now: Instant) -> Update {
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
            // Never a sample: it carries no server figure (the reference
            // files it with the samples, and its "now" reads zero).
            Ok(r) if r.header.kind == Kind::APP_METRICS => (self.apply_app(&r, now), None),
            Ok(r) => {
                let refused = self.processes_refused;
                let u = self.apply_view(&Indexed::new(r), now);
                // What the process bound refused is not kept either.
                if self.keep_events && self.processes_refused == refused {
                    self.keep_event(&r, datagram);
                }
                (u, Some(r))
            }
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

    #[cfg(test)]
    /// Applies one decoded datagram.
    pub(crate) fn apply(&mut self, s: Sample, now: Instant) -> Update {
        if s.header.kind == Kind::APP_METRICS {
            // Read from its bytes, as the socket's datagrams are.
            let bytes = s.encode().expect("encodable");
            return self.ingest(&bytes, now);
        }
        self.apply_view(&s, now).with(|| s)
    }

    /// An `app_metrics` datagram (kind 10): into the application-metrics
    /// model, keyed by its pid's host and group. Its sequence number is
    /// counted like any other kind's (one counter per process); a datagram
    /// whose columns disagree is counted and skipped. Publishes nothing.
    fn apply_app(&mut self, r: &SampleRef<'_>, now: Instant) -> Update<()> {
        let h = r.header;
        match wire::app::decode(r) {
            Ok(d) => self.app.ingest_at(h.pid, &d, now),
            Err(e) => {
                self.decode_errors += 1;
                self.app_decode_errors += 1;
                let e = format!("app_metrics from pid {}: {e}", h.pid);
                self.warnings.note(now, "decode error", &e);
                self.last_decode_error = Some(e);
            }
        }
        self.note_seq(h.pid, h.seq, now);
        Update::Nothing
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
        let renamed = p
            .latch_identity(s, false)
            .then(|| (p.hostname.clone(), p.process_group.clone()));
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
            p.metrics.add_tick(s, &mut self.tick);
            self.history.record_cached(
                &mut p.history_ids,
                &p.hostname,
                &p.process_group,
                header.stamp,
                &self.tick,
            );
        }
        p.trim_to(
            self.limits.bytes_per_process,
            Ring::Samples,
            &mut self.graveyard,
        );
        let noted = p.note_seq(header.seq);
        self.count_seq(header.pid, header.seq, noted, now);
        if let Some(key) = renamed {
            self.admit_group(header.pid, key, now);
        }
        Update::Sample(())
    }

    fn apply_lifecycle(&mut self, s: &impl View, now: Instant) -> Update<()> {
        let header = s.header();
        // A pid refused by the process bound gets no events either: they
        // would fill the ring and the per-group counts as forged pids do.
        if !self.admits(header.pid, now) {
            return Update::Nothing;
        }
        let ev = lifecycle_event(s);
        if self.lifecycle.len() >= self.limits.lifecycle_events {
            self.lifecycle.pop_front();
        }
        self.lifecycle.push_back(ev.clone());
        self.count_lifecycle(&ev, now);
        if header.kind == Kind::PROCESS_STARTED {
            // A new process: whatever this pid sent before was another's.
            self.app.process_gone(header.pid);
            let p = Self::process_entry(&mut self.processes, header.pid, now);
            p.last_seen = now;
            // Its group was admitted or folded with the event, above.
            p.latch_identity(s, true);
            let noted = p.note_seq(header.seq);
            self.count_seq(header.pid, header.seq, noted, now);
        } else {
            if header.kind == Kind::PROCESS_STOPPED {
                // Its last figures came before this, in its own sequence:
                // its gauges leave the sums now, its totals stay.
                self.app.process_gone(header.pid);
            }
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
        // A record does not add a process, but a pid the bound refuses
        // gets no records either: forged pids would fill the table.
        if !self.admits(pid, now) {
            return Update::Nothing;
        }
        let (key, entry) = slow_entry(s, now);
        let entry = Arc::new(entry);
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
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<u32> {
        let stale_after = self.limits.stale_after;
        let mut dropped = Vec::new();
        let groups = &mut self.groups;
        let max_groups = self.limits.max_groups;
        self.processes.retain(|pid, p| {
            let keep = now.saturating_duration_since(p.last_seen) <= stale_after;
            if !keep {
                dropped.push(*pid);
                process::retire(groups, max_groups, p);
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
        let processes = &self.processes;
        self.app
            .expire(now, stale_after, |pid| processes.contains_key(&pid));
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
    pub(crate) fn clear_slow(&mut self, now: Instant) -> Vec<(SlowKey, Arc<SlowEntry>)> {
        let processes = &self.processes;
        self.slow.retain(|_, e| {
            e.state != 1
                && processes.contains_key(&e.pid)
                && now.saturating_duration_since(e.last_seen) <= Self::slow_ttl(processes, e)
        });
        self.slow_records()
    }

    /// Every slow record held, oldest first.
    pub(crate) fn slow_records(&self) -> Vec<(SlowKey, Arc<SlowEntry>)> {
        self.slow
            .iter()
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// Records the live processes dropped early to keep
    /// [`Limits::bytes_per_process`] (0 for ordinary traffic).
    pub(crate) fn evicted_for_bytes(&self) -> u64 {
        self.processes.values().map(|p| p.evicted_for_bytes).sum()
    }

    #[cfg(test)]
    /// Approximate heap bytes of all history.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.processes
            .values()
            .map(Process::heap_bytes)
            .sum::<usize>()
            + self.slow.len() * 512
    }
}

#[cfg(test)]
mod tests;

/// A lifecycle datagram as the model keeps it.
fn lifecycle_event(s: &impl View) -> LifecycleEvent {
    let header = s.header();
    LifecycleEvent {
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
    }
}

/// A slow-request datagram as the model keeps it, with its key.
fn slow_entry(s: &impl View, now: Instant) -> (SlowKey, SlowEntry) {
    let pid = s.header().pid;
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
    let entry = SlowEntry {
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
    };
    (key, entry)
}
