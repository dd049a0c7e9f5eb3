//! `GET /metrics`: the model as Prometheus metrics, so fleets, retention,
//! alerting and dashboards run on Prometheus.
//!
//! OpenMetrics text (`application/openmetrics-text; version=1.0.0`) when the
//! scraper's `Accept` asks for it (Prometheus does), the Prometheus text
//! format 0.0.4 otherwise. Both are written by the `prometheus-client`
//! crate (the Prometheus project's Rust client): it implements the two
//! text formats natively, escapes label values, writes `_total`, units and
//! `# EOF` as the specification says, and its [`Collector`] lets a scrape
//! encode values computed on the spot, with no per-series metric objects to
//! register, update or forget (the `prometheus` crate has no OpenMetrics).
//!
//! Series are labelled by `host` and `process_group` (`""` for embedded
//! mode), and by `pid` only with `--metrics-per-process`. A group's
//! counters are its live processes' totals plus those of its processes
//! already dropped (see [`crate::ingest::state::totals`]), so they never go down
//! while processes come and go; they reset only when the ingester restarts.
//! With `--metrics-per-process` a dropped process's series simply end
//! (`sum(rate(...))` stays right; a raw `sum()` of counters does not).
//!
//! Latency histograms use the wire's 64 finite bucket bounds (1.25 ms to
//! 65.536 s, four per octave) and `+Inf`, so Prometheus sees exactly what
//! the reporters measured.
//!
//! The applications' own metrics (kind 10, docs/app-metrics.md) are three
//! families labelled by `host`, `process_group` and `name` (their names
//! allow `.`, `:`, `/`, `-`, which Prometheus metric names do not, so the
//! name is a label value): counters summed and monotonic, gauges summed
//! over live processes, and distributions as **histograms** on the same
//! wire buckets. Histograms, not summaries, because the buckets are what
//! the processes sent: Prometheus can sum them across hosts and groups and
//! take `histogram_quantile` over any window and any selection, exact to
//! the bucket, where a summary's precomputed quantiles can be neither
//! summed nor re-windowed.
//!
//! The state lock is held only while the numbers are copied (and summed
//! per group) into a [`Capture`]; the text is written after it is released.

use crate::ingest::app_metrics::{Dropped, SeriesFigure, SeriesValue};
use crate::ingest::state::totals::{
    counted_apart, other_group, GroupKey, Totals, GENERATIONS, PHASES,
};
use crate::ingest::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// Content type of the OpenMetrics text format.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format 0.0.4.
pub(crate) const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// True when an `Accept` header asks for OpenMetrics text.
pub(crate) fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|r| {
            let media = r.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("application/openmetrics-text")
        })
    })
}

/// The ingester's own counters, read outside the model.
#[derive(Clone, Copy, Debug, Default)]
pub struct IngesterCounters {
    /// Times the receive thread paused for a slow ingest thread.
    pub(crate) receive_pauses: u64,
    /// WebSocket clients connected.
    pub(crate) websocket_clients: u64,
    /// Messages slow WebSocket clients missed (`ws_messages_dropped`).
    pub(crate) ws_messages_dropped: u64,
    /// What the HTTP side refused or cut off, in the order of
    /// [`crate::api::http_counters::NAMES`].
    pub(crate) http: [u64; crate::api::http_counters::COUNTERS],
}

/// Labels of one series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    host: String,
    group: String,
    pid: Option<u32>,
}

#[derive(Clone, Debug, Default)]
struct Series {
    totals: Totals,
    threads_configured: u64,
    threads_busy: f64,
    rss_bytes: u64,
}

#[derive(Clone, Debug, Default)]
struct Group {
    processes_live: u64,
    slow_active: u64,
    starts: u64,
    stops: Vec<(String, u64)>,
}

/// What a scrape needs, copied out of the model.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    series: BTreeMap<SeriesKey, Series>,
    groups: BTreeMap<GroupKey, Group>,
    datagrams: u64,
    decode_errors: u64,
    seq_gaps: u64,
    own: IngesterCounters,
    app: Vec<SeriesFigure>,
    app_dropped: Dropped,
    app_decode_errors: u64,
    /// History ticks refused by the series bound, and for a stamp ahead of
    /// the clock.
    history_refused: [u64; 2],
    /// What the state's bounds refused or folded: datagrams of processes
    /// past `--max-processes`, slow records evicted by `--max-slow` and by
    /// `--max-slow-per-process`, identities and lifecycle events of groups
    /// past `--max-groups`, datagrams of another wire version.
    processes_refused: u64,
    slow_evicted: [u64; 2],
    groups_folded: u64,
    unsupported_version: u64,
}

/// A process counts as live (for the gauges) until it sends
/// PROCESS_STOPPED or is not heard from for three sample periods (at
/// least 5 s); its counters stay in its group either way.
fn live(p: &crate::ingest::state::Process, now: Instant) -> bool {
    let quiet = Duration::from_secs_f64((3.0 * p.sample_period).max(5.0));
    !p.metrics.stopped && now.saturating_duration_since(p.last_seen) <= quiet
}

/// Copies (and, without `per_process`, sums per group) what the exposition
/// shows. Call with the state lock held; it only reads.
pub fn capture(st: &State, per_process: bool, own: IngesterCounters, now: Instant) -> Capture {
    let mut c = Capture {
        datagrams: st.total_received,
        decode_errors: st.decode_errors,
        seq_gaps: st.seq_gaps,
        own,
        app: st.app.series_figures(),
        app_dropped: st.app.dropped(),
        app_decode_errors: st.app_decode_errors,
        history_refused: [st.history.refused_ticks, st.history.future_ticks],
        processes_refused: st.processes_refused,
        slow_evicted: [st.slow_evicted, st.slow_evicted_per_process],
        groups_folded: st.groups_folded,
        unsupported_version: st.unsupported_version,
        ..Capture::default()
    };
    // A live process of a group past --max-groups is counted under
    // `other_group`, as its totals will be when it is dropped.
    let group_of = |host: &str, group: &str| {
        let key = (host.to_string(), group.to_string());
        if counted_apart(&st.groups, st.limits.max_groups, &key) {
            key
        } else {
            other_group()
        }
    };
    for p in st.processes.values() {
        let (host, group) = group_of(&p.hostname, &p.process_group);
        let key = SeriesKey {
            host: host.clone(),
            group: group.clone(),
            pid: per_process.then_some(p.pid),
        };
        let s = c.series.entry(key).or_default();
        s.totals.add(&p.metrics.totals());
        let g = c.groups.entry((host, group)).or_default();
        if live(p, now) {
            s.threads_configured += p.metrics.threads_configured;
            s.threads_busy += p.metrics.threads_busy;
            s.rss_bytes += p.metrics.rss_bytes;
            g.processes_live += 1;
        }
    }
    for ((host, group), gt) in &st.groups {
        if !per_process {
            let key = SeriesKey {
                host: host.clone(),
                group: group.clone(),
                pid: None,
            };
            c.series.entry(key).or_default().totals.add(&gt.retired);
        }
        let g = c.groups.entry(group_of(host, group)).or_default();
        g.starts += gt.starts;
        g.stops
            .extend(gt.stops.iter().map(|(r, n)| (r.clone(), *n)));
    }
    for e in st.slow.values().filter(|e| e.state == 0) {
        let key = match st.processes.get(&e.pid) {
            Some(p) => group_of(&p.hostname, &p.process_group),
            None => GroupKey::default(),
        };
        c.groups.entry(key).or_default().slow_active += 1;
    }
    c
}

type Labels = Vec<(&'static str, String)>;

/// A label value from a datagram string: the exposition is read with `curl`
/// on a terminal as often as by Prometheus, so control and bidi characters
/// are written as visible escapes, as `top` and `dump` show them.
fn label(s: &str) -> String {
    crate::printable::printable(s).into_owned()
}

fn series_labels(k: &SeriesKey) -> Labels {
    let mut l = vec![("host", label(&k.host)), ("process_group", label(&k.group))];
    if let Some(pid) = k.pid {
        l.push(("pid", pid.to_string()));
    }
    l
}

fn group_labels(k: &GroupKey) -> Labels {
    vec![("host", label(&k.0)), ("process_group", label(&k.1))]
}

fn with(mut l: Labels, name: &'static str, value: impl Into<String>) -> Labels {
    l.push((name, value.into()));
    l
}

/// One family: its descriptor, then one sample per row.
fn family<R>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    ty: MetricType,
    rows: impl IntoIterator<Item = (Labels, R)>,
    mut write: impl FnMut(&mut MetricEncoder<'_>, &R) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut me = enc.encode_descriptor(name, help, unit.as_ref(), ty)?;
    for (labels, r) in rows {
        write(&mut me.encode_family(&labels)?, &r)?;
    }
    Ok(())
}

fn counter_u64(me: &mut MetricEncoder<'_>, v: &u64) -> std::fmt::Result {
    me.encode_counter::<NoLabelSet, _, u64>(v, None)
}

fn counter_f64(me: &mut MetricEncoder<'_>, v: &f64) -> std::fmt::Result {
    me.encode_counter::<NoLabelSet, _, f64>(v, None)
}

fn gauge_u64(me: &mut MetricEncoder<'_>, v: &u64) -> std::fmt::Result {
    me.encode_gauge(v)
}

fn gauge_f64(me: &mut MetricEncoder<'_>, v: &f64) -> std::fmt::Result {
    me.encode_gauge(v)
}

/// The histogram of one phase, as (upper bound in seconds, count) pairs.
fn buckets(counts: &[u64]) -> Vec<(f64, u64)> {
    counts
        .iter()
        .enumerate()
        .map(|(i, &n)| (wire::histogram::upper_ms(i) / 1000.0, n))
        .collect()
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const GEN: [&str; GENERATIONS] = ["0", "1", "2"];

impl Collector for Capture {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        use MetricType::{Counter, Gauge, Histogram};
        let s = &self.series;
        let sl = series_labels;
        family(
            &mut enc,
            "mod_wsgi_requests",
            "Requests completed, by response status class.",
            None,
            Counter,
            s.iter().flat_map(|(k, v)| {
                (0..5).map(move |i| {
                    let l = with(sl(k), "status_class", STATUS_CLASSES[i]);
                    (l, v.totals.requests_by_class[i])
                })
            }),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_request_body",
            "Request-body bytes read by the applications.",
            Some(Unit::Bytes),
            Counter,
            s.iter().map(|(k, v)| (sl(k), v.totals.request_bytes)),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_response_body",
            "Response-body bytes the applications handed to Apache.",
            Some(Unit::Bytes),
            Counter,
            s.iter().map(|(k, v)| (sl(k), v.totals.response_bytes)),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_request_phase_duration",
            "Time of each request phase: server (Apache), queue and daemon (daemon mode only), application, and total.",
            Some(Unit::Seconds),
            Histogram,
            s.iter().flat_map(|(k, v)| {
                PHASES
                    .iter()
                    .enumerate()
                    // Queue and daemon phases exist in daemon mode only.
                    .filter(move |(_, (phase, _, _))| {
                        !k.group.is_empty() || !matches!(*phase, "queue" | "daemon")
                    })
                    .map(move |(i, (phase, _, _))| {
                        (with(sl(k), "phase", *phase), &v.totals.phases[i])
                    })
            }),
            |me, p| me.encode_histogram::<NoLabelSet>(p.sum, p.count(), &buckets(&p.buckets), None),
        )?;
        family(
            &mut enc,
            "mod_wsgi_cpu",
            "Process CPU time, by mode.",
            Some(Unit::Seconds),
            Counter,
            s.iter().flat_map(|(k, v)| {
                [
                    (with(sl(k), "mode", "user"), v.totals.cpu_user_seconds),
                    (with(sl(k), "mode", "system"), v.totals.cpu_system_seconds),
                ]
            }),
            counter_f64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_thread_busy",
            "Request-thread time spent inside requests.",
            Some(Unit::Seconds),
            Counter,
            s.iter().map(|(k, v)| (sl(k), v.totals.busy_thread_seconds)),
            counter_f64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_threads_configured",
            "Request threads configured in live processes.",
            None,
            Gauge,
            s.iter().map(|(k, v)| (sl(k), v.threads_configured)),
            gauge_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_threads_busy",
            "Request threads busy over the latest interval (capacity utilisation times threads).",
            None,
            Gauge,
            s.iter().map(|(k, v)| (sl(k), v.threads_busy)),
            gauge_f64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_capacity_utilization",
            "Busy request threads over configured ones in the latest interval (0 to 1).",
            Some(Unit::Other("ratio".into())),
            Gauge,
            s.iter().map(|(k, v)| {
                let r = if v.threads_configured > 0 {
                    v.threads_busy / v.threads_configured as f64
                } else {
                    0.0
                };
                (sl(k), r)
            }),
            gauge_f64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_resident_memory",
            "Resident memory of live processes.",
            Some(Unit::Bytes),
            Gauge,
            s.iter().map(|(k, v)| (sl(k), v.rss_bytes)),
            gauge_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_slow_requests_completed",
            "Slow requests completed (records of requests over WSGISlowRequests).",
            None,
            Counter,
            s.iter().map(|(k, v)| (sl(k), v.totals.slow_completed)),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_gc_collections",
            "Python garbage collections, by generation.",
            None,
            Counter,
            s.iter().flat_map(|(k, v)| {
                (0..GENERATIONS).map(move |g| {
                    (
                        with(sl(k), "generation", GEN[g]),
                        v.totals.gc_collections[g],
                    )
                })
            }),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_gc_pause",
            "Time Python spent in garbage collections, by generation (from GC events, which the reporter may drop under load).",
            Some(Unit::Seconds),
            Counter,
            s.iter().flat_map(|(k, v)| {
                (0..GENERATIONS).map(move |g| {
                    (with(sl(k), "generation", GEN[g]), v.totals.gc_pause_seconds[g])
                })
            }),
            counter_f64,
        )?;
        self.encode_app(&mut enc)?;
        let g = &self.groups;
        family(
            &mut enc,
            "mod_wsgi_processes",
            "Live processes (not stopped, heard from within three sample periods).",
            None,
            Gauge,
            g.iter().map(|(k, v)| (group_labels(k), v.processes_live)),
            gauge_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_slow_requests_active",
            "Slow requests in flight.",
            None,
            Gauge,
            g.iter().map(|(k, v)| (group_labels(k), v.slow_active)),
            gauge_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_process_starts",
            "Processes started.",
            None,
            Counter,
            g.iter().map(|(k, v)| (group_labels(k), v.starts)),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_process_stops",
            "Processes stopped, by shutdown reason.",
            None,
            Counter,
            g.iter().flat_map(|(k, v)| {
                v.stops
                    .iter()
                    .map(move |(r, n)| (with(group_labels(k), "reason", label(r)), *n))
            }),
            counter_u64,
        )?;
        let one = |v: u64| [(Labels::new(), v)];
        family(
            &mut enc,
            "mod_wsgi_telemetry_datagrams_received",
            "Datagrams received by the ingester, undecodable ones included.",
            None,
            Counter,
            one(self.datagrams),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_decode_errors",
            "Datagrams that could not be decoded.",
            None,
            Counter,
            one(self.decode_errors),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_sequence_gaps",
            "Datagrams lost between reporters and the ingester, from sequence gaps.",
            None,
            Counter,
            one(self.seq_gaps),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_history_ticks_refused",
            "Ticks kept out of the history: past the series bound (series), stamped too far ahead of the ingester's clock (future).",
            None,
            Counter,
            ["series", "future"]
                .into_iter()
                .zip(self.history_refused)
                .map(|(r, n)| (vec![("reason", r.to_string())], n)),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_unsupported_version",
            "Datagrams of a wire version this ingester does not read (also in mod_wsgi_telemetry_decode_errors).",
            None,
            Counter,
            one(self.unsupported_version),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_processes_refused",
            "Datagrams refused because their process would have been one past --max-processes.",
            None,
            Counter,
            one(self.processes_refused),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_slow_records_evicted",
            "Slow-request records dropped (the oldest completed one first) to keep within --max-slow (total) or --max-slow-per-process (per_process).",
            None,
            Counter,
            ["total", "per_process"]
                .into_iter()
                .zip(self.slow_evicted)
                .map(|(b, n)| (vec![("bound", b.to_string())], n)),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_groups_folded",
            "Process identities and lifecycle events of groups past --max-groups, counted under process_group=\"(other)\".",
            None,
            Counter,
            one(self.groups_folded),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_receive_pauses",
            "Times the receive thread paused because ingestion was behind.",
            None,
            Counter,
            one(self.own.receive_pauses),
            counter_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_websocket_clients",
            "WebSocket clients connected.",
            None,
            Gauge,
            one(self.own.websocket_clients),
            gauge_u64,
        )?;
        family(
            &mut enc,
            "mod_wsgi_telemetry_websocket_messages_dropped",
            "Messages WebSocket clients that fell behind did not get.",
            None,
            Counter,
            one(self.own.ws_messages_dropped),
            counter_u64,
        )?;
        for ((_, name, help), v) in crate::api::http_counters::NAMES.iter().zip(self.own.http) {
            family(&mut enc, name, help, None, Counter, one(v), counter_u64)?;
        }
        Ok(())
    }
}

impl Capture {
    /// The applications' own metrics (see the module's docs).
    fn encode_app(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let labels = |f: &SeriesFigure| {
            vec![
                ("host", label(&f.host)),
                ("process_group", label(&f.group)),
                ("name", f.name.clone()),
            ]
        };
        let rows = |want: fn(&SeriesValue) -> Option<f64>| {
            self.app
                .iter()
                .filter_map(move |f| Some((labels(f), want(&f.value)?)))
        };
        family(
            enc,
            "mod_wsgi_app_counter",
            "The applications' counters (mod_wsgi_telemetry.incr), summed over their processes, including those gone.",
            None,
            MetricType::Counter,
            rows(|v| match v {
                SeriesValue::Counter(x) => Some(*x),
                _ => None,
            }),
            counter_f64,
        )?;
        family(
            enc,
            "mod_wsgi_app_gauge",
            "The applications' gauges (mod_wsgi_telemetry.set), summed over their live processes.",
            None,
            MetricType::Gauge,
            rows(|v| match v {
                SeriesValue::Gauge(x) => Some(*x),
                _ => None,
            }),
            gauge_f64,
        )?;
        family(
            enc,
            "mod_wsgi_app_distribution",
            "The applications' recorded durations (mod_wsgi_telemetry.record), merged over their processes, including those gone.",
            Some(Unit::Seconds),
            MetricType::Histogram,
            self.app.iter().filter_map(|f| match &f.value {
                SeriesValue::Distribution {
                    count,
                    sum,
                    buckets: b,
                } => Some((labels(f), (*sum, *count, &**b))),
                _ => None,
            }),
            |me, (sum, count, b)| {
                me.encode_histogram::<NoLabelSet>(*sum, *count, &buckets(&b[..]), None)
            },
        )?;
        let d = &self.app_dropped;
        family(
            enc,
            "mod_wsgi_app_metrics_dropped",
            "Application-metric updates not kept: new series past the ingester's bound (series), datagrams of processes past its bound (processes), names used as another type in the group (type_conflicts), and calls the processes refused with a full name table (calls).",
            None,
            MetricType::Counter,
            [
                ("series", d.series),
                ("processes", d.processes),
                ("type_conflicts", d.type_conflicts),
                ("calls", d.calls),
            ]
            .map(|(what, n)| (vec![("reason", what.to_string())], n)),
            counter_u64,
        )?;
        family(
            enc,
            "mod_wsgi_app_metrics_decode_errors",
            "app_metrics datagrams (kind 10) whose columns did not agree, skipped (also in mod_wsgi_telemetry_decode_errors).",
            None,
            MetricType::Counter,
            [(Labels::new(), self.app_decode_errors)],
            counter_u64,
        )
    }
}

/// The scrape-duration family, written last (its value is known then).
#[derive(Debug)]
struct ScrapeDuration(f64);

impl Collector for ScrapeDuration {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let me = enc.encode_descriptor(
            "mod_wsgi_telemetry_scrape_duration",
            "Time this scrape took to copy and format everything above.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        prometheus_client::metrics::gauge::ConstGauge::new(self.0).encode(me)
    }
}

fn encode_registry(out: &mut String, r: &Registry, openmetrics: bool) -> std::fmt::Result {
    if openmetrics {
        prometheus_client::encoding::text::encode_registry(out, r)
    } else {
        prometheus_client::encoding::prometheus_text::encode(out, r)
    }
}

/// The exposition of `c`; `elapsed` gives the scrape duration once the
/// rest is written (the caller measures from before it took the lock).
pub fn render(c: Capture, openmetrics: bool, elapsed: impl FnOnce() -> f64) -> String {
    let mut out = String::new();
    let mut r = Registry::default();
    r.register_collector(Box::new(c));
    // Writing into a String cannot fail.
    let _ = encode_registry(&mut out, &r, openmetrics);
    let mut r = Registry::default();
    r.register_collector(Box::new(ScrapeDuration(elapsed())));
    let _ = encode_registry(&mut out, &r, openmetrics);
    if openmetrics {
        let _ = out.write_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests;
