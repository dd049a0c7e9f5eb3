//! The slow-request table: entries by key, listed in order of first
//! appearance of their key, with the count bounds enforced in O(log n) per
//! record.
//!
//! Eviction takes the oldest completed entry (the oldest entry when none
//! is completed), of the whole table or of one process. Both are found
//! through ordered indexes of arrival ordinals, never by a scan: a scan
//! per record, with thousands of active entries held ahead of the first
//! completed one, made every slow datagram cost O(entries).

use super::{SlowEntry, SlowKey};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// One entry with its arrival ordinal.
#[derive(Debug)]
struct Slot {
    ord: u64,
    entry: Arc<SlowEntry>,
}

/// Ordinals of one process's entries (all, and the completed ones).
#[derive(Debug, Default)]
struct PidIndex {
    all: BTreeSet<u64>,
    completed: BTreeSet<u64>,
}

/// Slow-request entries (see the module docs).
#[derive(Debug, Default)]
pub struct SlowTable {
    map: HashMap<SlowKey, Slot>,
    /// Every entry's key by ordinal: the listing order.
    order: BTreeMap<u64, SlowKey>,
    /// Ordinals of completed entries.
    completed: BTreeSet<u64>,
    by_pid: HashMap<u32, PidIndex>,
    next: u64,
    /// Entries visited by walks over the table ([`SlowTable::iter`]): what
    /// the tests count to show that an operation does not walk it.
    #[cfg(test)]
    pub(super) walked: std::cell::Cell<u64>,
}

fn pid_of(k: &SlowKey) -> u32 {
    match k {
        SlowKey::LogId(pid, _) | SlowKey::Slot(pid, _, _) => *pid,
    }
}

impl SlowTable {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries held for `pid`.
    pub(crate) fn len_of(&self, pid: u32) -> usize {
        self.by_pid.get(&pid).map_or(0, |i| i.all.len())
    }

    /// The entry of `key`.
    pub(crate) fn get(&self, key: &SlowKey) -> Option<&Arc<SlowEntry>> {
        self.map.get(key).map(|s| &s.entry)
    }

    /// Entries in order of first appearance of their key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SlowKey, &Arc<SlowEntry>)> + '_ {
        self.order.values().filter_map(|k| {
            #[cfg(test)]
            self.walked.set(self.walked.get() + 1);
            let s = self.map.get(k)?;
            Some((k, &s.entry))
        })
    }

    /// Entries, as [`SlowTable::iter`].
    pub(crate) fn values(&self) -> impl Iterator<Item = &Arc<SlowEntry>> + '_ {
        self.iter().map(|(_, e)| e)
    }

    /// Inserts or replaces the entry of `key` (a replaced entry keeps its
    /// place in the order).
    pub(crate) fn insert(&mut self, key: SlowKey, entry: Arc<SlowEntry>) {
        let done = entry.state == 1;
        let pid = pid_of(&key);
        if let Some(slot) = self.map.get_mut(&key) {
            let was = slot.entry.state == 1;
            let ord = slot.ord;
            slot.entry = entry;
            if was != done {
                let ix = self.by_pid.entry(pid).or_default();
                if done {
                    self.completed.insert(ord);
                    ix.completed.insert(ord);
                } else {
                    self.completed.remove(&ord);
                    ix.completed.remove(&ord);
                }
            }
            return;
        }
        let ord = self.next;
        self.next += 1;
        let ix = self.by_pid.entry(pid).or_default();
        ix.all.insert(ord);
        if done {
            ix.completed.insert(ord);
            self.completed.insert(ord);
        }
        self.order.insert(ord, key.clone());
        self.map.insert(key, Slot { ord, entry });
    }

    /// Removes the entry of `key`.
    pub(crate) fn remove(&mut self, key: &SlowKey) -> Option<Arc<SlowEntry>> {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.ord);
        self.completed.remove(&slot.ord);
        let pid = pid_of(key);
        if let Some(ix) = self.by_pid.get_mut(&pid) {
            ix.all.remove(&slot.ord);
            ix.completed.remove(&slot.ord);
            if ix.all.is_empty() {
                self.by_pid.remove(&pid);
            }
        }
        Some(slot.entry)
    }

    /// Removes the oldest completed entry, else the oldest entry.
    pub(crate) fn evict_oldest(&mut self) -> bool {
        let ord = match self.completed.first() {
            Some(&o) => o,
            None => match self.order.first_key_value() {
                Some((&o, _)) => o,
                None => return false,
            },
        };
        self.remove_ord(ord)
    }

    /// Removes `pid`'s oldest completed entry, else its oldest entry.
    pub(crate) fn evict_oldest_of(&mut self, pid: u32) -> bool {
        let Some(ix) = self.by_pid.get(&pid) else {
            return false;
        };
        let ord = match ix.completed.first().or_else(|| ix.all.first()) {
            Some(&o) => o,
            None => return false,
        };
        self.remove_ord(ord)
    }

    fn remove_ord(&mut self, ord: u64) -> bool {
        match self.order.get(&ord).cloned() {
            Some(k) => self.remove(&k).is_some(),
            None => false,
        }
    }

    /// Keeps the entries for which `keep` holds (O(n log n): timer-driven
    /// expiry and the clear command only).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&SlowKey, &SlowEntry) -> bool) {
        let gone: Vec<SlowKey> = self
            .iter()
            .filter(|(k, e)| !keep(k, e))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn entry(pid: u32, state: u64) -> Arc<SlowEntry> {
        Arc::new(SlowEntry {
            pid,
            thread_id: 0,
            server_pid: 0,
            log_id: String::new(),
            method: String::new(),
            scheme: String::new(),
            hostname: String::new(),
            script_name: String::new(),
            path_info: String::new(),
            peer_ip: String::new(),
            protocol: String::new(),
            user_agent: String::new(),
            start_stamp: 0.0,
            duration: 0.0,
            state,
            input_bytes: 0,
            input_reads: 0,
            output_bytes: 0,
            output_writes: 0,
            cpu_user_time: 0.0,
            cpu_system_time: 0.0,
            server_time: 0.0,
            queue_time: 0.0,
            daemon_time: 0.0,
            application_time: 0.0,
            gil_wait_time: 0.0,
            gil_wait_count: 0,
            input_read_time: 0.0,
            output_write_time: 0.0,
            active_at_start: 0,
            active_at_completion: 0,
            status: 0,
            last_seen: Instant::now(),
        })
    }

    fn key(pid: u32, n: u64) -> SlowKey {
        SlowKey::Slot(pid, n, 0)
    }

    /// Order of first appearance survives replacement; eviction takes the
    /// oldest completed entry, else the oldest; a state change moves an
    /// entry in and out of the completed index.
    #[test]
    fn eviction_order_and_replacement() {
        let mut t = SlowTable::default();
        t.insert(key(1, 1), entry(1, 0));
        t.insert(key(1, 2), entry(1, 0));
        t.insert(key(2, 3), entry(2, 1));
        t.insert(key(1, 1), entry(1, 1)); // completes, keeps its place
        let keys: Vec<_> = t.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![key(1, 1), key(1, 2), key(2, 3)]);
        assert!(t.evict_oldest());
        assert!(t.get(&key(1, 1)).is_none());
        t.insert(key(2, 3), entry(2, 0)); // active again
        assert!(t.evict_oldest());
        assert!(t.get(&key(1, 2)).is_none(), "oldest active goes");
        assert_eq!(t.len(), 1);
        t.insert(key(2, 4), entry(2, 1));
        assert!(t.evict_oldest_of(2));
        assert!(t.get(&key(2, 4)).is_none());
        assert!(!t.evict_oldest_of(1));
        assert_eq!((t.len_of(2), t.len_of(1)), (1, 0));
        t.retain(|_, _| false);
        assert!(t.is_empty() && t.by_pid.is_empty() && t.order.is_empty());
    }
}
