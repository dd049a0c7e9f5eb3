//! Hand-built messages and a small fixed site for the unit tests of the
//! view-model and the widgets. Every figure is chosen here, so the expected
//! screens can be checked by hand against it.

use super::model::{parse_stats, parse_value, AppStats, Message, Replica};
use super::view_model::{self, ConnView, Frame, UiState};
use ratatui::backend::TestBackend;
use ratatui::widgets::Widget;
use ratatui::Terminal;
use serde_json::{json, Value as Json};

/// Local clock of every message and frame of [`small_site`]; the reporters'
/// clock then reads [`SITE_NOW`].
pub const SITE_LOCAL: f64 = 0.0;
/// Newest reporter stamp of [`small_site`].
pub const SITE_NOW: f64 = 1000.0;

/// A `request_metrics` sample of `pid` at `stamp` (1 s sample period unless
/// `fields` says otherwise).
pub fn sample(pid: u32, stamp: f64, fields: Json) -> Message {
    let mut f = json!({"sample_period": 1.0});
    if let (Some(f), Json::Object(extra)) = (f.as_object_mut(), fields) {
        f.extend(extra);
    }
    parse_value(
        &json!({"type": "sample", "kind": "request_metrics", "pid": pid,
        "seq": 1, "stamp": stamp, "fields": f}),
    )
    .expect("sample parses")
}

/// A sample of `count` requests in one second on 2 of 4 threads, 1000 B of
/// RSS, all `2xx`.
pub fn tick(pid: u32, stamp: f64, count: u64) -> Message {
    sample(
        pid,
        stamp,
        json!({"request_count": count, "request_throughput": count as f64,
            "request_threads_maximum": 4, "request_threads_active": 2,
            "memory_rss": 1000, "status_2xx_total": count}),
    )
}

/// A `slow_request` message keyed `[pid, log_id]`, refreshed at `stamp`.
pub fn slow(pid: u32, log_id: &str, stamp: f64, entry: Json) -> Message {
    let mut e = json!({"pid": pid, "log_id": log_id});
    if let (Some(e), Json::Object(extra)) = (e.as_object_mut(), entry) {
        e.extend(extra);
    }
    parse_value(
        &json!({"type": "slow_request", "key": [pid, log_id], "stamp": stamp,
        "entry": e}),
    )
    .expect("slow_request parses")
}

/// A lifecycle message (`process_started`, `process_stopping`,
/// `process_stopped`).
pub fn lifecycle(kind: &str, pid: u32, stamp: f64, reason: &str) -> Message {
    parse_value(
        &json!({"type": "lifecycle", "event": {"kind": kind, "pid": pid,
        "stamp": stamp, "shutdown_reason": reason}}),
    )
    .expect("lifecycle parses")
}

/// Three processes and two slow records, seen at [`SITE_NOW`]:
/// * pid 101 on `web1`, group `app`: ten samples (991..=1000 s) of 6
///   requests (5 `2xx`, 1 `5xx`), 4 threads of which 1 busy (2 in the last
///   sample, whose slots have run 0, 0.3, 1.5 and 0 s), 0.25 cores, 50 MB;
///   request times 4 × ~40 ms and 2 × ~80 ms per sample.
/// * pid 102 on `web1`, embedded: ten samples of 2 requests, both threads
///   busy, 0.5 cores, 100 MB, slow threshold 2 s; request times ~1.2 s;
///   slots at 2.5 and 0.4 s.
/// * pid 103 on `web2`, group `app`: five samples (986..=990 s) of 3
///   requests, then PROCESS_STOPPED (`maximum_requests`) at 990.5 s.
/// * slow records: `a1` active on 102 (`GET /report`, started 997.5 s),
///   `b2` done on 101 (`POST /api/upload`, 3.2 s, status 200).
pub fn small_site() -> Replica {
    let mut r = Replica::new();
    let mut put = |m: Message| r.apply(m, SITE_LOCAL);
    for i in 0..5 {
        put(sample(
            103,
            986.0 + i as f64,
            json!({"hostname": "web2", "process_group": "app",
                "request_count": 3, "request_throughput": 3.0,
                "request_threads_maximum": 4, "request_threads_active": 1,
                "cpu_utilization": 0.1, "memory_rss": 20971520,
                "status_2xx_total": 3, "request_time_buckets": bucket_counts(&[(20, 3)])}),
        ));
    }
    put(lifecycle("process_stopped", 103, 990.5, "maximum_requests"));
    for i in 0..10 {
        let last = i == 9;
        put(sample(
            101,
            991.0 + i as f64,
            json!({"hostname": "web1", "process_group": "app",
                "request_count": 6, "request_throughput": 6.0,
                "request_threads_maximum": 4, "request_threads_active": if last { 2 } else { 1 },
                "capacity_utilization": 0.25, "cpu_user_utilization": 0.2,
                "cpu_system_utilization": 0.05, "cpu_utilization": 0.25,
                "memory_rss": 52428800, "input_bytes_total": 1024, "output_bytes_total": 10240,
                "server_time": 0.001, "application_time": 0.045,
                "request_time": 0.05, "request_time_min": 0.03, "request_time_max": 0.09,
                "request_time_buckets": bucket_counts(&[(20, 4), (24, 2)]),
                "status_2xx_total": 5, "status_5xx_total": 1,
                "request_threads_current_elapsed":
                    if last { json!([0.0, 0.3, 1.5, 0.0]) } else { json!([]) }}),
        ));
        put(sample(
            102,
            991.0 + i as f64,
            json!({"hostname": "web1", "process_group": "",
                "slow_requests_threshold": 2.0,
                "request_count": 2, "request_throughput": 2.0,
                "request_threads_maximum": 2, "request_threads_active": 2,
                "capacity_utilization": 1.0, "cpu_utilization": 0.5,
                "memory_rss": 104857600, "server_time": 0.002, "application_time": 1.1,
                "request_time": 1.2, "request_time_min": 1.1, "request_time_max": 1.3,
                "request_time_buckets": bucket_counts(&[(41, 2)]),
                "status_2xx_total": 2,
                "request_threads_current_elapsed":
                    if last { json!([2.5, 0.4]) } else { json!([]) }}),
        ));
    }
    put(slow(
        102,
        "a1",
        1000.0,
        json!({"state": 0, "method": "GET", "path_info": "/report",
            "start_stamp": 997.5, "duration": 2.5}),
    ));
    put(slow(
        101,
        "b2",
        996.2,
        json!({"state": 1, "method": "POST", "script_name": "/api", "path_info": "/upload",
            "start_stamp": 993.0, "duration": 3.2, "status": 200,
            "cpu_user_time": 0.5, "cpu_system_time": 0.1,
            "input_bytes": 2048, "input_reads": 2, "output_bytes": 512, "output_writes": 1}),
    ));
    r
}

/// The application metrics of every group after three polls, at local
/// times 0, 2 and 4 s: counter `orders.placed` 1200, 1210, 1240; the
/// distribution `payment.{0}` (p95 100, 110, 120 ms; last 310 values,
/// p50 31 ms, p99 610 ms); gauge `queue.depth` 15, 16, 17 over 2 processes;
/// 3 processes; the last answer counts 44 dropped calls.
pub fn app_stats() -> AppStats {
    let mut s = AppStats::default();
    for (i, (orders, p95, depth)) in [(1200, 0.1, 15), (1210, 0.11, 16), (1240, 0.12, 17)]
        .into_iter()
        .enumerate()
    {
        let body = json!({
            "groups": [{"host": "web1", "process_group": "app"},
                       {"host": "web1", "process_group": ""}],
            "metrics": [
                {"name": "orders.placed", "type": "counter", "value": orders},
                {"name": "payment.{0}", "type": "distribution", "count": 310,
                 "sum": 12.9, "min": 0.004, "max": 1.92, "p50": 0.031,
                 "p90": 0.088, "p95": p95, "p99": 0.61},
                {"name": "queue.depth", "type": "gauge", "value": depth, "processes": 2}],
            "processes": 3,
            "dropped": {"series": 0, "processes": 0, "type_conflicts": 0,
                        "calls": if i == 2 { 44 } else { 0 }}});
        s.take(None, parse_stats(&body.to_string()), 2.0 * i as f64);
    }
    s
}

/// A 65-bucket histogram with these `(index, count)` set.
fn bucket_counts(set: &[(usize, u32)]) -> Json {
    let mut b = vec![0u32; wire::histogram::BUCKETS];
    for &(i, c) in set {
        b[i] = c;
    }
    json!(b)
}

/// The frame of [`small_site`] for `ui`, connected to `ws://test/ws`.
pub fn site_frame(ui: &UiState) -> Frame {
    let conn = ConnView {
        url: "ws://test/ws".into(),
        connected: true,
        ..ConnView::default()
    };
    view_model::frame(&small_site(), ui, &conn, SITE_LOCAL, false)
}

/// `widget` drawn over the whole of a `width` × `height` test terminal.
pub fn draw_widget(width: u16, height: u16, widget: impl Widget) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    t.draw(|f| f.render_widget(widget, f.area()))
        .expect("draws");
    t
}

/// A whole frame drawn on a `width` × `height` test terminal.
pub fn draw_frame(width: u16, height: u16, vm: &Frame) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("test backend");
    t.draw(|f| super::widgets::draw(f, vm)).expect("draws");
    t
}

#[test]
fn the_small_site_is_seen_at_its_newest_stamp() {
    let site = small_site();
    assert_eq!(site.ref_now(SITE_LOCAL), SITE_NOW);
    assert_eq!(site.processes.len(), 3);
    assert_eq!(site.slow.len(), 2);
}
