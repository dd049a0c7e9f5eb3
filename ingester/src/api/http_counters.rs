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
    /// WebSocket upgrades answered 503: `--max-clients` connected.
    pub(crate) ws_clients_refused: AtomicU64,
    /// Requests refused because their `Host` is not allowed.
    pub(crate) host_refused: AtomicU64,
    /// `X-Forwarded-Prefix` values ignored as unsafe.
    pub(crate) prefix_refused: AtomicU64,
}

/// How many counters [`HttpCounters::snapshot`] gives.
pub(crate) const COUNTERS: usize = 11;

/// Each counter's key in `/api/state`, its Prometheus family on
/// `/metrics` (docs/metrics.md) and the family's help, in
/// [`HttpCounters::snapshot`]'s order.
pub(crate) const NAMES: [(&str, &str, &str); COUNTERS] = [
    ("http_state_refused", "mod_wsgi_telemetry_state_responses_refused",
     "/api/state requests answered 503 because --max-state-responses snapshots were being sent."),
    ("http_state_cancelled", "mod_wsgi_telemetry_state_responses_cancelled",
     "Snapshots being sent whose client had stopped reading, cut to give their place to a new request."),
    ("http_state_trimmed", "mod_wsgi_telemetry_state_responses_trimmed",
     "Snapshots asked for whole that were held to --snapshot-budget and left history out."),
    ("http_connections_refused", "mod_wsgi_telemetry_http_connections_refused",
     "HTTP connections answered 503 and closed at --max-connections."),
    ("http_connections_evicted", "mod_wsgi_telemetry_http_connections_evicted",
     "HTTP connections waiting for a request closed to make room for a new one at --max-connections."),
    ("http_read_timeouts", "mod_wsgi_telemetry_http_read_timeouts",
     "HTTP connections closed by --header-timeout or --idle-timeout."),
    ("http_write_timeouts", "mod_wsgi_telemetry_http_write_timeouts",
     "HTTP responses or WebSocket messages whose write stalled for --write-timeout."),
    ("ws_clients_dropped_slow", "mod_wsgi_telemetry_websocket_clients_dropped_slow",
     "WebSocket clients disconnected because they stopped reading or answering pings."),
    ("ws_clients_refused", "mod_wsgi_telemetry_websocket_clients_refused",
     "WebSocket upgrades answered 503 at --max-clients."),
    ("http_host_refused", "mod_wsgi_telemetry_http_host_refused",
     "Requests answered 421 because their Host is not allowed."),
    ("http_prefix_refused", "mod_wsgi_telemetry_http_prefix_refused",
     "X-Forwarded-Prefix values ignored because they named another origin."),
];

impl HttpCounters {
    /// (key in `/api/state`, value) pairs, in [`NAMES`]' order.
    pub(crate) fn snapshot(&self) -> [(&'static str, u64); COUNTERS] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let values = [
            g(&self.state_refused),
            g(&self.state_cancelled),
            g(&self.state_trimmed),
            g(&self.connections_refused),
            g(&self.connections_evicted),
            g(&self.read_timeouts),
            g(&self.write_timeouts),
            g(&self.ws_clients_dropped),
            g(&self.ws_clients_refused),
            g(&self.host_refused),
            g(&self.prefix_refused),
        ];
        std::array::from_fn(|i| (NAMES[i].0, values[i]))
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
