//! `top --once`: one plain-text (or JSON) frame of the header and the
//! process table, for scripts and health checks.

use super::format::{fmt_bytes, fmt_seconds, fmt_window};
use super::health::Failure;
use super::view_model::{Header, ProcRow};
use serde_json::json;

/// The text frame (no trailing newline).
pub fn text(h: &Header, rows: &[ProcRow], failures: &[Failure]) -> String {
    let mut out = Vec::new();
    let host = if h.hosts.is_empty() {
        "-".to_string()
    } else {
        h.hosts.join(",")
    };
    out.push(format!(
        "mod_wsgi-telemetry top  host={host}  group={}",
        h.groups_label
    ));
    let rate = |r: Option<f64>| r.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into());
    out.push(format!(
        "  rps:  now {:.1}   1m {}   10m {}   in {}/s  out {}/s",
        h.rps_now,
        rate(h.rps_1m),
        rate(h.rps_10m),
        fmt_bytes(h.in_bps),
        fmt_bytes(h.out_bps)
    ));
    out.push(format!(
        "  cap:  {}/{} threads ({:.1}%)   util {}   queue {}",
        h.threads_busy,
        h.threads_total,
        h.busy_fraction().unwrap_or(0.0) * 100.0,
        h.utilization
            .map(|u| format!("{:.1}%", u * 100.0))
            .unwrap_or_else(|| "-".into()),
        fmt_seconds(h.queue_mean)
    ));
    out.push(format!(
        "  cpu:  user {:.2}  sys {:.2}   rss {} (largest process {})",
        h.cpu_user,
        h.cpu_system,
        fmt_bytes(h.rss_total),
        fmt_bytes(h.rss_largest)
    ));
    let pct = |i: usize| format!("{:.1}%", h.status_share(i).unwrap_or(0.0) * 100.0);
    let mut stat = Vec::new();
    if h.status[0] > 0.0 {
        stat.push(format!("1xx {:.0} (PEP 3333 violation)", h.status[0]));
    }
    for (i, c) in [(1, "2xx"), (2, "3xx"), (3, "4xx"), (4, "5xx")] {
        stat.push(format!("{c} {}", pct(i)));
    }
    out.push(format!("  stat: {}   (last 1m)", stat.join("  ")));
    out.push(format!(
        "  lat:  p50 {}  p95 {}  p99 {}   min {}  max {}   (last {})",
        fmt_seconds(h.p50),
        fmt_seconds(h.p95),
        fmt_seconds(h.p99),
        fmt_seconds(h.min),
        fmt_seconds(h.max),
        fmt_window(h.window)
    ));
    out.push(format!(
        "  slow: {} active / {} 1m / {} total",
        h.slow_active, h.slow_1m, h.slow_total
    ));
    out.push(format!(
        "  procs: {} live / {} gone",
        h.live_processes, h.other_processes
    ));
    out.push(String::new());
    out.push("processes:".into());
    out.push(format!(
        "  {:>7}  {:<16}  {:<8}  {:>9}  {:>7}  {:>6}  {:>9}",
        "PID", "GROUP", "STATE", "THR", "RPS", "CPU", "RSS"
    ));
    for r in rows {
        out.push(format!(
            "  {:>7}  {:<16}  {:<8}  {:>4}/{:<4}  {:>7.1}  {:>6.2}  {:>9}",
            r.pid,
            r.group.chars().take(16).collect::<String>(),
            r.liveness.label(),
            r.threads_active,
            r.threads_max,
            r.rps,
            r.cpu,
            fmt_bytes(r.rss)
        ));
    }
    if !failures.is_empty() {
        out.push(String::new());
        out.push("failing:".into());
        for f in failures {
            out.push(format!("  {f}"));
        }
    }
    out.join("\n")
}

/// The JSON frame: machine-readable values in base units (seconds, bytes,
/// fractions), `null` where there is no value.
pub fn json(
    url: &str,
    received: bool,
    h: &Header,
    rows: &[ProcRow],
    failures: &[Failure],
) -> serde_json::Value {
    let status: serde_json::Map<String, serde_json::Value> = ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), json!(h.status[i])))
        .collect();
    json!({
        "url": url,
        "received": received,
        "hosts": h.hosts,
        "groups": h.groups_label,
        "window_seconds": h.window,
        "live_processes": h.live_processes,
        "gone_processes": h.other_processes,
        "rps": {"now": h.rps_now, "1m": h.rps_1m, "10m": h.rps_10m},
        "input_bytes_per_second": h.in_bps,
        "output_bytes_per_second": h.out_bps,
        "threads": {"busy": h.threads_busy, "total": h.threads_total},
        "capacity_utilization": h.utilization,
        "queue_time": h.queue_mean,
        "cpu": {"user": h.cpu_user, "system": h.cpu_system, "total": h.cpu_total},
        "memory_rss": {"total": h.rss_total, "largest_process": h.rss_largest},
        "status_1m": status,
        "latency": {"p50": h.p50, "p95": h.p95, "p99": h.p99, "min": h.min, "max": h.max},
        "slow": {"active": h.slow_active, "last_1m": h.slow_1m, "total": h.slow_total},
        "server": {"total_received": h.total_received, "decode_errors": h.decode_errors,
                   "history_truncated": h.history_truncated},
        "processes": rows.iter().map(|r| json!({
            "pid": r.pid,
            "group": r.group,
            "hostname": r.host,
            "state": r.liveness.label(),
            "threads_active": r.threads_active,
            "threads_maximum": r.threads_max,
            "rps": r.rps,
            "cpu": r.cpu,
            "memory_rss": r.rss,
            "p95_1m": r.p95,
            "slow": r.slow,
        })).collect::<Vec<_>>(),
        "failing": failures.iter().map(|f| json!({
            "condition": f.condition.text,
            "metric": f.condition.metric,
            "value": f.value,
            "threshold": f.condition.threshold,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{small_site, SITE_LOCAL};
    use crate::top::health::{evaluate, parse};
    use crate::top::view_model::{header, process_rows, UiState};

    #[test]
    fn text_frame_of_the_small_site_with_failing_conditions() {
        let (site, ui) = (small_site(), UiState::default());
        let h = header(&site, &ui, SITE_LOCAL);
        let rows = process_rows(&site, &ui, SITE_LOCAL);
        let conds = [parse("busy>0.5").unwrap(), parse("p95>2s").unwrap()];
        // Busy is 4 of 6 threads: the first holds; p95 is 1.48 s: the second
        // does not.
        let failures = evaluate(&conds, &h);
        let expected = [
            "mod_wsgi-telemetry top  host=web1  group=(embedded),app",
            "  rps:  now 8.0   1m 6.3   10m 6.3   in 1.0KB/s  out 10.0KB/s",
            "  cap:  4/6 threads (66.7%)   util 50.0%   queue -",
            "  cpu:  user 0.20  sys 0.05   rss 150.0MB (largest process 100.0MB)",
            "  stat: 2xx 89.5%  3xx 0.0%  4xx 0.0%  5xx 10.5%   (last 1m)",
            "  lat:  p50 38.9ms  p95 1.48s  p99 1.52s   min 30.0ms  max 1.30s   (last 1m)",
            "  slow: 1 active / 2 1m / 2 total",
            "  procs: 2 live / 1 gone",
            "",
            "processes:",
            "      PID  GROUP             STATE           THR      RPS     CPU        RSS",
            "      101  app               live         2/4         6.0    0.25     50.0MB",
            "      102  (embedded)        live         2/2         2.0    0.50    100.0MB",
            "      103  app               stopped      0/4         0.0    0.00     20.0MB",
            "",
            "failing:",
            "  busy = 0.6667 > 0.5000",
        ]
        .join("\n");
        assert_eq!(text(&h, &rows, &failures), expected);
    }
}
