//! What the model hands to the state directory and takes back after a
//! restart: lifecycle events and completed slow requests, kept as the
//! datagrams they came in (the wire format is already versioned and
//! decoded totally), and the history's limits.

use super::views::View;
use super::{lifecycle_event, slow_entry, State};
use std::sync::Arc;
use std::time::Instant;
use wire::{id, Kind, SampleRef, ValueRef};

/// Series the history keeps by default (groups and hosts).
pub(crate) const DEFAULT_HISTORY_SERIES: usize = 1_000;

/// Event kinds in the store.
pub(crate) const EVENT_LIFECYCLE: u8 = 1;
/// A completed slow-request record.
pub(crate) const EVENT_SLOW: u8 = 2;

impl State {
    /// From now on, keep lifecycle and completed slow-request datagrams
    /// for [`State::take_kept_events`].
    pub(crate) fn keep_events(&mut self) {
        self.keep_events = true;
    }

    /// Lifecycle datagrams and completed slow-request records.
    pub(super) fn keep_event(&mut self, r: &SampleRef<'_>, datagram: &[u8]) {
        let kind = match r.header.kind {
            Kind::PROCESS_STARTED | Kind::PROCESS_STOPPING | Kind::PROCESS_STOPPED => {
                EVENT_LIFECYCLE
            }
            Kind::SLOW_REQUEST
                if matches!(r.get(id::SLOW_RECORD_STATE), Some(ValueRef::U64(1))) =>
            {
                EVENT_SLOW
            }
            _ => return,
        };
        // Bounded like the rings they feed, in case the writer stalls.
        if self.kept_events.len() < 4 * self.limits.slow_entries.max(self.limits.lifecycle_events) {
            let stamp = r.header.stamp.max(0.0) as u64;
            self.kept_events.push((kind, stamp, datagram.to_vec()));
        }
    }

    /// The datagrams kept since the last call.
    pub(crate) fn take_kept_events(&mut self) -> Vec<(u8, u64, Vec<u8>)> {
        std::mem::take(&mut self.kept_events)
    }

    /// Puts back an event a previous run kept (oldest first): a lifecycle
    /// event into the event ring, a completed slow request into the slow
    /// table (while it has room). Returns false for bytes that are not one.
    pub(crate) fn restore_event(&mut self, kind: u8, datagram: &[u8], now: Instant) -> bool {
        let Ok(r) = wire::decode_ref(datagram) else {
            return false;
        };
        match kind {
            EVENT_LIFECYCLE
                if matches!(
                    r.header().kind,
                    Kind::PROCESS_STARTED | Kind::PROCESS_STOPPING | Kind::PROCESS_STOPPED
                ) =>
            {
                if self.lifecycle.len() >= self.limits.lifecycle_events {
                    self.lifecycle.pop_front();
                }
                self.lifecycle.push_back(lifecycle_event(&r));
                true
            }
            EVENT_SLOW if r.header().kind == Kind::SLOW_REQUEST => {
                let (key, entry) = slow_entry(&r, now);
                if self.slow.len() < self.limits.slow_entries
                    && self.slow.len_of(entry.pid) < self.limits.slow_entries_per_process
                    && self.slow.get(&key).is_none()
                {
                    self.slow.insert(key, Arc::new(entry));
                }
                true
            }
            _ => false,
        }
    }
}
