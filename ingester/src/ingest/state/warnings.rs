//! Warnings about what senders do wrong (undecodable datagrams, refused
//! processes, evicted records), rate-limited: the first of each kind in an
//! interval is logged at once, the rest are counted and summarised in one
//! line when the interval ends. A sender can then make the log grow by a
//! few lines per interval at most, however many datagrams it sends.

use std::time::{Duration, Instant};

/// Per-kind counts of the current interval.
#[derive(Debug)]
pub(crate) struct Warnings {
    /// Length of an interval.
    pub(crate) interval: Duration,
    started: Option<Instant>,
    /// (kind, warnings of the interval, last detail), in order of first
    /// appearance; a handful of kinds, so a list.
    kinds: Vec<(&'static str, u64, String)>,
}

impl Default for Warnings {
    fn default() -> Self {
        Warnings {
            interval: Duration::from_secs(10),
            started: None,
            kinds: Vec::new(),
        }
    }
}

impl Warnings {
    /// One warning of `kind` (a fixed phrase) with its `detail`.
    pub(crate) fn note(&mut self, now: Instant, kind: &'static str, detail: &str) {
        self.started.get_or_insert(now);
        match self.kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, n, last)) => {
                *n += 1;
                // Only the last detail is kept, for the summary.
                last.clear();
                last.push_str(detail);
            }
            None => {
                tracing::warn!("{kind}: {detail}");
                self.kinds.push((kind, 1, String::new()));
            }
        }
    }

    /// Ends the interval once it has run its length: one summary line per
    /// kind that had more than its first warning.
    pub(crate) fn flush(&mut self, now: Instant) {
        let Some(started) = self.started else {
            return;
        };
        if now.saturating_duration_since(started) < self.interval {
            return;
        }
        let secs = now.saturating_duration_since(started).as_secs();
        for (kind, n, last) in self.kinds.drain(..) {
            if n > 1 {
                tracing::warn!("{kind}: {} more in the last {secs} s (last: {last})", n - 1);
            }
        }
        self.started = None;
    }
}
