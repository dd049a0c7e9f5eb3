//! One process's slice of the model: identity latched from its datagrams,
//! its history rings (periodic samples, GC snapshots per interpreter, GC
//! events) held to the count and byte bounds, and its sequence accounting.
//! Also the pieces the model keys and frees processes with ([`PidHash`],
//! [`Graveyard`]).

use super::packed::Packed;
use super::records::cut;
use super::totals;
use super::views::View;
use crate::ingest::history::SeriesIds;
use indexmap::IndexMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use wire::id;

/// A stored GC snapshot or event (cloned by reference counts).
#[derive(Clone, Debug)]
pub(crate) struct GcRecord {
    /// Interpreter key (`""` for the main/sole interpreter).
    pub(crate) interpreter: Arc<str>,
    /// The datagram, packed.
    pub(crate) packed: Packed,
    /// Header stamp.
    pub(crate) stamp: f64,
}

/// One process (keyed by header pid).
#[derive(Debug)]
pub(crate) struct Process {
    /// Header pid.
    pub(crate) pid: u32,
    /// Latched identity.
    pub(crate) hostname: String,
    /// Latched `process_group` (`""` = embedded).
    pub(crate) process_group: String,
    /// Latched version strings and MPM.
    pub(crate) mod_wsgi_version: String,
    /// Latched.
    pub(crate) python_version: String,
    /// Latched.
    pub(crate) apache_version: String,
    /// Latched.
    pub(crate) mpm_name: String,
    /// Latched when > 0.
    pub(crate) process_parent_pid: u64,
    /// Latched when > 0; scales slow TTLs.
    pub(crate) sample_period: f64,
    /// Periodic samples, oldest first.
    pub(crate) samples: VecDeque<Packed>,
    /// Seq of the last periodic sample (as the reference).
    pub(crate) last_seq: u32,
    /// Datagrams lost, from sequence gaps across all kinds.
    pub(crate) drops: u64,
    /// Highest seq seen in any kind.
    last_any_seq: Option<u32>,
    /// Implausible sequence jumps (see [`SeqJump`]): counted here, not as
    /// drops.
    pub(crate) seq_resets: u64,
    /// Datagrams received from this pid.
    pub(crate) datagrams: u64,
    /// Arrival of the last periodic, STARTED or GC datagram.
    pub(crate) last_seen: Instant,
    /// GC snapshots per interpreter, in order of first appearance.
    pub(crate) gc_snapshots: IndexMap<Arc<str>, VecDeque<GcRecord>>,
    /// GC events, oldest first.
    pub(crate) gc_events: VecDeque<GcRecord>,
    /// GC datagrams discarded by the interpreter bound.
    pub(crate) gc_dropped_interpreters: u64,
    /// Bytes of `samples`, `gc_snapshots` and `gc_events` (each record's
    /// [`sample_cost`] / [`gc_cost`]), kept as records come and go.
    history_bytes: usize,
    /// Records dropped early to keep [`Limits::bytes_per_process`].
    pub(crate) evicted_for_bytes: u64,
    /// Cumulative totals for `/metrics`.
    pub(crate) metrics: totals::ProcessTotals,
    /// The history series this process's ticks go to (found at its first
    /// tick; forgotten when its host or group changes).
    pub(crate) history_ids: Option<SeriesIds>,
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
pub(super) enum Ring {
    Samples,
    /// The GC snapshots of the interpreter at this index.
    Snapshots(usize),
    Events,
}

impl Process {
    pub(super) fn new(pid: u32, now: Instant) -> Process {
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
            history_ids: None,
        }
    }

    #[cfg(test)]
    /// Bytes of history held now (see [`Limits::bytes_per_process`]).
    pub(crate) fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    pub(super) fn ring_len(&self, r: Ring) -> usize {
        match r {
            Ring::Samples => self.samples.len(),
            Ring::Snapshots(i) => self.gc_snapshots.get_index(i).map_or(0, |(_, q)| q.len()),
            Ring::Events => self.gc_events.len(),
        }
    }

    /// The GC ring `r` names (`None` for the samples).
    pub(super) fn gc_ring(&mut self, r: Ring) -> Option<&mut VecDeque<GcRecord>> {
        match r {
            Ring::Samples => None,
            Ring::Snapshots(i) => self.gc_snapshots.get_index_mut(i).map(|(_, q)| q),
            Ring::Events => Some(&mut self.gc_events),
        }
    }

    /// Appends a sample, counting its bytes.
    pub(super) fn push_sample(&mut self, p: Packed) {
        self.history_bytes += sample_cost(&p);
        self.samples.push_back(p);
    }

    /// Appends a GC record to ring `r`, counting its bytes.
    pub(super) fn push_gc(&mut self, r: Ring, rec: GcRecord) {
        let cost = gc_cost(&rec);
        if let Some(q) = self.gc_ring(r) {
            q.push_back(rec);
            self.history_bytes += cost;
        }
    }

    /// Drops the oldest record of `r` (into the graveyard), uncounting it.
    pub(super) fn pop_oldest(&mut self, r: Ring, graveyard: &mut Graveyard) {
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
    pub(super) fn trim_to(&mut self, budget: usize, grew: Ring, graveyard: &mut Graveyard) {
        if self.history_bytes > budget {
            self.evict_down_to(budget, grew, graveyard);
        }
    }

    /// [`Process::trim_to`] once over the budget (never, for ordinary
    /// traffic: kept out of the per-datagram path).
    #[cold]
    #[inline(never)]
    pub(super) fn evict_down_to(&mut self, budget: usize, grew: Ring, graveyard: &mut Graveyard) {
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
    pub(super) fn note_seq(&mut self, seq: u32) -> (u64, bool) {
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

    /// Returns whether the host or group changed.
    pub(super) fn latch_identity(&mut self, s: &impl View, only_nonempty: bool) -> bool {
        // The longest each field a reporter sends (its buffer less the
        // NUL); longer text is forged and cut there.
        let mut renamed = false;
        for (fid, slot, most) in [
            (id::HOSTNAME, &mut self.hostname, 127),
            (id::PROCESS_GROUP, &mut self.process_group, 63),
            (id::MOD_WSGI_VERSION, &mut self.mod_wsgi_version, 31),
            (id::PYTHON_VERSION, &mut self.python_version, 63),
            (id::APACHE_VERSION, &mut self.apache_version, 63),
            (id::MPM_NAME, &mut self.mpm_name, 31),
        ] {
            if let Some(t) = s.text(fid) {
                if only_nonempty && t.is_empty() {
                    continue;
                }
                // Compared once cut: text longer than `most` would
                // otherwise differ from what is kept at every datagram.
                let t = cut(&t, most);
                if slot.as_str() != t.as_ref() {
                    *slot = t.into_owned();
                    renamed |= matches!(fid, id::HOSTNAME | id::PROCESS_GROUP);
                }
            }
        }
        if renamed {
            self.history_ids = None;
        }
        if let Some(ppid) = s.u64(id::PROCESS_PARENT_PID) {
            if ppid > 0 {
                self.process_parent_pid = ppid;
            }
        }
        renamed
    }

    #[cfg(test)]
    /// Approximate heap bytes held by this process's history.
    pub(crate) fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Process>() + self.history_bytes
    }

    /// [`Process::history_bytes`] counted afresh from the rings (tests).
    #[cfg(test)]
    pub(super) fn history_bytes_recounted(&self) -> usize {
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

/// Where evicted samples wait before they are dropped. An evicted sample's
/// allocation has not been touched since it arrived (thousands of
/// datagrams ago), so dropping it at once stalls on the cache miss of its
/// reference count (an atomic decrement cannot be overlapped with other
/// work) and again in `free`. Held here, with a prefetch issued as it is
/// buried, it is in the cache by the time it is dropped,
/// [`Graveyard::DELAY`] evictions later. (At most that many samples wait;
/// samples of a process dropped whole are not buried.)
#[derive(Debug, Default)]
pub(super) struct Graveyard(VecDeque<Packed>);

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

/// Hashes the pid keys of [`State::processes`] with one folded
/// multiplication (the 128-bit product's halves XORed, as foldhash and
/// wyhash do) instead of SipHash (looked up for every datagram): every bit
/// of the pid reaches both the low bits the table picks buckets from and
/// the high bits of its tags, so pids that share their low bits do not
/// share a probe chain (the pid is the sender's word: it need not be a
/// real one).
#[derive(Clone, Copy, Default)]
pub(crate) struct PidHash;

impl std::hash::BuildHasher for PidHash {
    type Hasher = PidHasher;
    fn build_hasher(&self) -> PidHasher {
        PidHasher(0)
    }
}

/// See [`PidHash`].
#[derive(Default)]
pub(crate) struct PidHasher(u64);

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

/// Folds a dropped process's totals into its group (see
/// [`totals::group_entry`]: at most `max_groups` are counted apart).
pub(super) fn retire(
    groups: &mut IndexMap<totals::GroupKey, totals::GroupTotals>,
    max_groups: usize,
    p: &Process,
) {
    let key = (p.hostname.clone(), p.process_group.clone());
    totals::group_entry(groups, max_groups, key)
        .0
        .retired
        .add(&p.metrics.totals());
}
