//! The places of `--max-state-responses`: snapshots (`/api/state` bodies,
//! WebSocket first snapshots) produced and sent at once.
//!
//! A place is held until its snapshot is sent or its connection is gone.
//! A client that asks and then stops reading would hold it until
//! `--write-timeout`, and clients that reopen would hold every place for
//! as long as they like. So when a request finds no place, the holder
//! whose write has waited longest for its client to read, if it has waited
//! at least `--state-stall-timeout`, is cut (its connection closed, its
//! snapshot thread released) and the place goes to the new request. A
//! reader that is slow but still reading is never cut: each write that
//! progresses starts its wait again.

use super::server::ConnHandle;
use crate::api::http_counters::HttpCounters;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for the place of a holder it cut (the holder's
/// connection closes at its task's next poll).
const CUT_WAIT: Duration = Duration::from_secs(1);

/// The snapshot places and who holds them.
pub(crate) struct SnapshotSlots {
    sem: Arc<Semaphore>,
    holders: Mutex<Vec<Weak<Holder>>>,
    stall: Duration,
    counters: Arc<HttpCounters>,
}

/// A holder's connection, if the request came through our listener.
struct Holder(Option<ConnHandle>);

/// A place, given back when dropped.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    _holder: Arc<Holder>,
}

impl SnapshotSlots {
    pub(crate) fn new(places: usize, stall: Duration, counters: Arc<HttpCounters>) -> Self {
        SnapshotSlots {
            sem: Arc::new(Semaphore::new(places.max(1))),
            holders: Mutex::new(Vec::new()),
            stall,
            counters,
        }
    }

    /// A place for `conn`'s snapshot. With no place free, cuts the holder
    /// stalled longest (past `--state-stall-timeout`) and takes its place;
    /// if none is stalled, `None` or, with `wait`, waits its turn (looking
    /// again for stalled holders every `--state-stall-timeout`).
    pub(crate) async fn acquire(&self, conn: Option<ConnHandle>, wait: bool) -> Option<Slot> {
        loop {
            if let Ok(p) = self.sem.clone().try_acquire_owned() {
                return Some(self.hold(p, conn));
            }
            let cut = self.cut_stalled();
            if !cut && !wait {
                return None;
            }
            let patience = if cut { CUT_WAIT } else { self.stall };
            match tokio::time::timeout(patience, self.sem.clone().acquire_owned()).await {
                Ok(Ok(p)) => return Some(self.hold(p, conn)),
                Ok(Err(_closed)) => return None,
                // Another waiter took the place, or the cut connection is
                // slow to close: look again (each holder is cut once, so
                // this ends).
                Err(_elapsed) => {}
            }
        }
    }

    fn hold(&self, permit: OwnedSemaphorePermit, conn: Option<ConnHandle>) -> Slot {
        let holder = Arc::new(Holder(conn));
        if let Ok(mut v) = self.holders.lock() {
            v.retain(|w| w.strong_count() > 0);
            v.push(Arc::downgrade(&holder));
        }
        Slot {
            _permit: permit,
            _holder: holder,
        }
    }

    /// Cuts the holder whose write has stalled longest, if that is at
    /// least `--state-stall-timeout`; false if none has.
    fn cut_stalled(&self) -> bool {
        let Ok(v) = self.holders.lock() else {
            return false;
        };
        let worst = v
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|h| {
                let c = h.0.as_ref()?;
                let stalled = c.write_stalled_for()?;
                (stalled >= self.stall).then(|| (stalled, c.clone()))
            })
            .max_by_key(|(stalled, _)| *stalled);
        drop(v);
        let Some((_, conn)) = worst else {
            return false;
        };
        conn.abort();
        self.counters
            .state_cancelled
            .fetch_add(1, Ordering::Relaxed);
        true
    }
}
