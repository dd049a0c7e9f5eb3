//! The state directory (`--state-dir`): opening it at start (history
//! points back into the tiers, events back into the model) and `serve`'s
//! writer thread that, once a second, closes finished seconds and appends
//! what closed to the store, off the receive path and outside the state
//! lock. It sits above [`receive`](crate::ingest::receive) and
//! [`state`](crate::ingest::state), whose shared state it reads, and uses
//! the history's [`store`](crate::ingest::history::store) below them;
//! neither of them calls into it.

use crate::ingest::history::point::Point;
use crate::ingest::history::store::{OpenError, Store};
use crate::ingest::history::Tier;
use crate::ingest::receive::Shared;
use crate::ingest::state::State;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lifecycle events and completed slow requests are kept as long as the
/// coarsest tier.
fn event_retention(tiers: &[Tier]) -> u64 {
    tiers.last().map_or(7 * 86400, |t| t.retention)
}

/// Opens `dir` and loads what it holds into `state` (whose history must
/// have been made with `tiers`).
pub(crate) fn open(dir: &Path, tiers: &[Tier], state: &mut State) -> Result<Store, OpenError> {
    let started = Instant::now();
    let latest = state.history.latest_allowed();
    let (store, points, events, rec) = Store::open(dir, tiers, event_retention(tiers), latest)?;
    let (mut loaded, mut bad) = (0u64, rec.bad_records);
    for (tier, key, start, bytes) in points {
        match Point::decode(&bytes) {
            Some(p) => {
                state.history.load(tier, key, start, p);
                loaded += 1;
            }
            None => bad += 1,
        }
    }
    let now = Instant::now();
    let mut restored = 0u64;
    for (kind, bytes) in &events {
        if state.restore_event(*kind, bytes, now) {
            restored += 1;
        } else {
            bad += 1;
        }
    }
    state.history.set_persist(true);
    state.keep_events();
    tracing::info!(
        "state directory {} ({:.1} MB): {loaded} history points and {restored} events loaded in {:.0} ms{}{}{}",
        dir.display(),
        store.disk_bytes() as f64 / 1e6,
        started.elapsed().as_secs_f64() * 1e3,
        if rec.torn_bytes > 0 {
            format!(", {} bytes of a torn last write cut", rec.torn_bytes)
        } else {
            String::new()
        },
        if bad > 0 {
            format!(", {bad} unreadable records skipped")
        } else {
            String::new()
        },
        match rec.future_records {
            0 => String::new(),
            n => format!(", {n} points stamped more than the allowed seconds ahead of this host's clock left out"),
        },
    );
    Ok(store)
}

/// Logs ticks kept out of the history for a stamp ahead of the clock: one
/// line at the first, then at most one a minute while more come.
#[derive(Default)]
struct FutureLog {
    /// The count at the last line.
    logged: u64,
    /// When the last line was written.
    at: Option<Instant>,
}

impl FutureLog {
    fn note(&mut self, count: u64, latest: u64) {
        if count == self.logged
            || self
                .at
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        tracing::warn!(
            "history: {} ticks stamped more than the allowed seconds ahead of this host's clock (--history-max-ahead) kept out of the history (the latest stamped {latest}, {} s ahead); counted as history_ticks_future",
            count - self.logged,
            latest.saturating_sub(crate::clock::wall_now() as u64),
        );
        self.logged = count;
        self.at = Some(Instant::now());
    }
}

/// Starts the writer thread: every second it closes the seconds past the
/// grace and, with a store, appends what closed (pushed to the kernel each
/// second, to the disk every fifth). Stops when `shared.stop` is set, after
/// a last flush.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    mut store: Option<Store>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("history".into())
        .spawn(move || {
            let mut round = 0u64;
            let mut failing = false;
            let mut future = FutureLog::default();
            loop {
                let stopping = shared.stop.load(Ordering::Relaxed);
                let (closed, events, newest, ahead) = {
                    let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                    if stopping {
                        st.history.close_all();
                    } else {
                        st.history.advance();
                    }
                    (
                        st.history.take_closed(),
                        st.take_kept_events(),
                        st.history.newest(),
                        (st.history.future_ticks, st.history.future_newest),
                    )
                };
                future.note(ahead.0, ahead.1);
                if let Some(s) = &mut store {
                    for (tier, key, start, bytes) in &closed {
                        s.append_point(*tier, key, *start, bytes);
                    }
                    for (kind, stamp, bytes) in &events {
                        s.append_event(*kind, *stamp, bytes);
                    }
                    round += 1;
                    let ok = s.flush(newest, stopping || round.is_multiple_of(5));
                    if !ok && !failing {
                        tracing::error!(
                            "state directory {}: cannot write ({}); serving from memory, what is not yet written is kept and written when writing works again (counted as history_write_errors)",
                            s.root().display(),
                            s.failing.as_deref().unwrap_or("flush failed")
                        );
                    } else if ok && failing {
                        tracing::info!(
                            "state directory {}: writing works again; what waited is written{}",
                            s.root().display(),
                            match s.dropped_records {
                                0 => String::new(),
                                n => format!(" but for {n} records dropped while it failed (the memory has them)"),
                            }
                        );
                    }
                    if !ok && stopping {
                        tracing::error!(
                            "state directory {}: {} records could not be written before stopping",
                            s.root().display(),
                            s.queued_records()
                        );
                    }
                    failing = !ok;
                    let errors = s.write_errors;
                    shared.state.lock().unwrap_or_else(|e| e.into_inner()).history_write_errors = errors;
                }
                if stopping {
                    return;
                }
                // Sleep a second in small steps, so a stop is seen soon.
                for _ in 0..10 {
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
}
