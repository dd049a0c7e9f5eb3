//! What the HTTP side refused or cut off, for `/api/state` (and the
//! WebSocket snapshot) and for one log line per interval.
//!
//! Counters only; they never decide anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts of refused requests and dropped connections since start.
#[derive(Debug, Default)]
pub(crate) struct HttpCounters {
    /// `/api/state` answered 503: `--max-state-responses` bodies in flight.
    pub(crate) state_refused: AtomicU64,
    /// Snapshots being sent whose writes had stalled for
    /// `--state-stall-timeout`, cut to give their place to a new request.
    pub(crate) state_cancelled: AtomicU64,
    /// Snapshots asked for whole (`?history=full`, `?budget=0`, a budget
    /// over `--snapshot-budget`) that were held to `--snapshot-budget`
    /// and left something out.
    pub(crate) state_trimmed: AtomicU64,
    /// Connections answered 503 and closed: `--max-connections` open.
    pub(crate) connections_refused: AtomicU64,
    /// Connections waiting for a request closed to make room for a new
    /// one at `--max-connections`.
    pub(crate) connections_evicted: AtomicU64,
    /// Connections closed for `--header-timeout` or `--idle-timeout`.
    pub(crate) read_timeouts: AtomicU64,
    /// Responses or WebSocket messages whose writing stalled for
    /// `--write-timeout` (the connection was closed).
    pub(crate) write_timeouts: AtomicU64,
    /// WebSocket clients disconnected because they stopped reading.
    pub(crate) ws_clients_dropped: AtomicU64,
    /// Requests refused because their `Host` is not allowed.
    pub(crate) host_refused: AtomicU64,
    /// `X-Forwarded-Prefix` values ignored as unsafe.
    pub(crate) prefix_refused: AtomicU64,
}

impl HttpCounters {
    /// (key in `/api/state`, value) pairs.
    pub(crate) fn snapshot(&self) -> [(&'static str, u64); 10] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("http_state_refused", g(&self.state_refused)),
            ("http_state_cancelled", g(&self.state_cancelled)),
            ("http_state_trimmed", g(&self.state_trimmed)),
            ("http_connections_refused", g(&self.connections_refused)),
            ("http_connections_evicted", g(&self.connections_evicted)),
            ("http_read_timeouts", g(&self.read_timeouts)),
            ("http_write_timeouts", g(&self.write_timeouts)),
            ("ws_clients_dropped_slow", g(&self.ws_clients_dropped)),
            ("http_host_refused", g(&self.host_refused)),
            ("http_prefix_refused", g(&self.prefix_refused)),
        ]
    }

    /// Counts a snapshot held to `--snapshot-budget` against its client's
    /// wish, when `trimmed`.
    pub(crate) fn count_trimmed(&self, trimmed: bool) {
        if trimmed {
            self.state_trimmed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Logs, once per `every`, what changed since the last line (nothing
    /// when nothing did). Runs until the task is dropped.
    pub(crate) async fn log_every(self: std::sync::Arc<Self>, every: Duration) {
        let mut last = self.snapshot();
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = self.snapshot();
            let changed: Vec<String> = now
                .iter()
                .zip(last.iter())
                .filter(|(n, l)| n.1 > l.1)
                .map(|(n, l)| format!("{} +{}", n.0, n.1 - l.1))
                .collect();
            if !changed.is_empty() {
                tracing::warn!(
                    "http limits in the last {} s: {}",
                    every.as_secs(),
                    changed.join(", ")
                );
            }
            last = now;
        }
    }
}
