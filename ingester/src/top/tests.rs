//! Smoke tests over a real capture: every view drawn into ratatui's
//! `TestBackend` from a model built by replaying the anchor corpus as the
//! WebSocket messages `serve` sends (`crate::ingest::json`), checked with
//! `contains` on whole screens, plus the keys of [`App`]. The exact
//! whole-buffer tests sit next to each widget, on the small fixed site of
//! `fixture`.

use super::model::{parse_value, Replica};
use super::view_model::{self, ConnView, UiState, View};
use super::{widgets, Action, App};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use serde_json::{json, Map, Value as Json};
use wire::Value;

fn value_json(v: &Value) -> Json {
    match v {
        Value::U64(n) => json!(n),
        Value::I64(n) => json!(n),
        Value::F64(f) => json!(f),
        Value::Bytes(b) => json!(String::from_utf8_lossy(b)),
        Value::I32Array(a) => json!(a),
        Value::F64Array(a) => json!(a),
    }
}

/// The corpus datagrams up to `seconds` after the first, as WebSocket
/// messages (sample, slow_request, lifecycle; GC ones as `gc_*`).
pub(crate) fn corpus_messages(seconds: f64) -> Vec<Json> {
    static ALL: std::sync::OnceLock<Vec<(f64, Json)>> = std::sync::OnceLock::new();
    let all = ALL.get_or_init(all_corpus_messages);
    let t0 = all.first().map(|m| m.0).unwrap_or(0.0);
    all.iter()
        .take_while(|(t, _)| *t <= t0 + seconds)
        .map(|(_, m)| m.clone())
        .collect()
}

fn all_corpus_messages() -> Vec<(f64, Json)> {
    let buf = testkit::corpus_capture();
    let mut out = Vec::new();
    for rec in wire::capture::records(&buf) {
        let s = wire::decode(rec.expect("record")).expect("decodes");
        let h = s.header;
        let fields: Map<String, Json> = s
            .fields
            .iter()
            .map(|(id, v)| (wire::field_name(*id).into_owned(), value_json(v)))
            .collect();
        let text = |k: &str| fields.get(k).cloned().unwrap_or(json!(""));
        let num = |k: &str| fields.get(k).cloned().unwrap_or(json!(0));
        let kind = h.kind.name().into_owned();
        out.push((
            h.stamp,
            match kind.as_str() {
                "slow_request" => {
                    let log = text("slow_log_id");
                    let mut entry = Map::new();
                    entry.insert("pid".into(), json!(h.pid));
                    for (k, wk) in [
                        ("thread_id", "slow_thread_id"),
                        ("start_stamp", "slow_start_stamp"),
                        ("duration", "slow_duration"),
                        ("state", "slow_record_state"),
                        ("status", "slow_status"),
                        ("cpu_user_time", "slow_cpu_user_time"),
                        ("cpu_system_time", "slow_cpu_system_time"),
                        ("input_bytes", "slow_input_bytes"),
                        ("input_reads", "slow_input_reads"),
                        ("output_bytes", "slow_output_bytes"),
                        ("output_writes", "slow_output_writes"),
                    ] {
                        entry.insert(k.into(), num(wk));
                    }
                    for (k, wk) in [
                        ("log_id", "slow_log_id"),
                        ("method", "slow_method"),
                        ("script_name", "slow_script_name"),
                        ("path_info", "slow_path_info"),
                    ] {
                        entry.insert(k.into(), text(wk));
                    }
                    json!({"type": "slow_request", "key": [h.pid, log], "entry": entry,
                       "stamp": h.stamp})
                }
                "process_started" | "process_stopping" | "process_stopped" => json!({
                "type": "lifecycle",
                "event": {"kind": kind, "pid": h.pid, "stamp": h.stamp,
                          "hostname": text("hostname"), "process_group": text("process_group"),
                          "shutdown_reason": text("shutdown_reason")}}),
                "gc_snapshot" | "gc_event" => json!({"type": kind, "pid": h.pid,
                "interpreter": text("interpreter_name"), "stamp": h.stamp, "fields": fields}),
                _ => json!({"type": "sample", "kind": kind, "pid": h.pid, "seq": h.seq,
                        "stamp": h.stamp, "fields": fields}),
            },
        ));
    }
    out
}

const LOCAL: f64 = 5000.0;

/// The model after the first `seconds` of the corpus, all received at
/// local time [`LOCAL`].
fn corpus_state(seconds: f64) -> Replica {
    let mut s = Replica::new();
    for m in corpus_messages(seconds) {
        s.apply(parse_value(&m).expect("parses"), LOCAL);
    }
    s
}

fn render(replica: &Replica, ui: &UiState, w: u16, h: u16) -> Vec<String> {
    let conn = ConnView {
        url: "ws://test/ws".into(),
        connected: true,
        ..ConnView::default()
    };
    let vm = view_model::frame(replica, ui, &conn, LOCAL, false);
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| widgets::draw(f, &vm)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

fn screen(replica: &Replica, view: View) -> String {
    let ui = UiState {
        view,
        ..UiState::default()
    };
    render(replica, &ui, 140, 50).join("\n")
}

/// Processes sending samples at the 45 s cut, per the corpus summary.
fn live_pids(s: &Replica) -> Vec<u32> {
    let now = s.ref_now(LOCAL);
    s.processes
        .values()
        .filter(|p| view_model::liveness(p, now, LOCAL).counts())
        .map(|p| p.pid)
        .collect()
}

#[test]
fn header_from_corpus() {
    let s = corpus_state(45.0);
    let out = screen(&s, View::Overview);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("mod_wsgi-telemetry top  vm · (embedded),app,aux"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("tick=1.00s") && lines[0].contains("[live]"),
        "{}",
        lines[0]
    );
    assert!(lines[1].starts_with("Throughput: "), "{}", lines[1]);
    assert!(lines[2].starts_with("Capacity: ") && lines[2].contains("threads busy"));
    assert!(lines[3].contains("Memory: RSS") && lines[3].contains("largest process"));
    assert!(
        lines[4].starts_with("Status (1m): 1xx 0  2xx "),
        "{}",
        lines[4]
    );
    assert!(lines[5].starts_with("Latency (1m): p50 ") && !lines[5].contains("p50 -"));
    assert!(lines[6].starts_with("Slow: "));
    assert!(lines[7].contains("1 overview") && lines[7].contains("5 slow"));
    // Header totals: threads of live processes only.
    let now = s.ref_now(LOCAL);
    let total: u64 = s
        .processes
        .values()
        .filter(|p| view_model::liveness(p, now, LOCAL).counts())
        .map(|p| p.latest().unwrap().threads_maximum as u64)
        .sum();
    assert!(
        lines[2].contains(&format!("/{total} threads busy")),
        "{} vs {total}",
        lines[2]
    );
}

#[test]
fn overview_view() {
    let s = corpus_state(45.0);
    let out = screen(&s, View::Overview);
    assert!(
        out.contains("Overview: last 1m (use < > to change window)"),
        "{out}"
    );
    for l in ["throughput", "capacity", "cpu", "rss"] {
        let line = out.lines().find(|x| x.starts_with(l)).expect(l);
        // A real series: block characters of several heights.
        assert!(
            line.chars().filter(|c| "▁▂▃▄▅▆▇█".contains(*c)).count() > 20,
            "{line}"
        );
    }
    assert!(out.contains("Phase mean times (current tick):"));
    assert!(out.contains("server=") && out.contains("request=") && !out.contains("request=-"));
}

#[test]
fn processes_view() {
    let s = corpus_state(45.0);
    let out = screen(&s, View::Processes);
    assert!(
        out.contains("Processes - sort: rps (use < > to change)"),
        "{out}"
    );
    assert!(out.contains("PID  GROUP"));
    let live = live_pids(&s);
    assert!(live.len() >= 4, "{live:?}");
    for pid in &live {
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(&pid.to_string()))
            .unwrap_or_else(|| panic!("pid {pid} missing:\n{out}"));
        assert!(row.contains("live") || row.contains("stopping"), "{row}");
    }
    // The daemon restarted by the script reload at ~27 s is listed as stopped.
    let stopped: Vec<u32> = s
        .processes
        .values()
        .filter(|p| matches!(p.life, super::model::Life::Stopped { .. }))
        .map(|p| p.pid)
        .collect();
    assert!(!stopped.is_empty());
    for pid in stopped {
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(&pid.to_string()))
            .unwrap();
        assert!(row.contains("stopped") && row.contains(" 0.0 "), "{row}");
    }
    assert!(out.contains("(embedded)") && out.contains("app") && out.contains("aux"));
}

#[test]
fn processes_sorting_by_pid() {
    let s = corpus_state(45.0);
    let ui = UiState {
        view: View::Processes,
        proc_sort: 5,
        ..UiState::default()
    };
    let rows = view_model::process_rows(&s, &ui, LOCAL);
    let live: Vec<u32> = rows
        .iter()
        .filter(|r| r.liveness.counts())
        .map(|r| r.pid)
        .collect();
    let mut sorted = live.clone();
    sorted.sort();
    assert_eq!(live, sorted);
    let out = render(&s, &ui, 140, 50).join("\n");
    assert!(out.contains("sort: pid"));
}

#[test]
fn workers_view() {
    let s = corpus_state(45.0);
    let out = screen(&s, View::Workers);
    assert!(
        out.contains(". idle") && out.contains("! >=slow-threshold"),
        "{out}"
    );
    for pid in live_pids(&s) {
        let p = &s.processes[&pid];
        let slots = p.latest().unwrap().current_elapsed.len();
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{pid} ")))
            .unwrap_or_else(|| panic!("pid {pid} missing:\n{out}"));
        let cells = row.chars().filter(|c| ".*#!".contains(*c)).count();
        assert_eq!(cells, slots, "{row}");
    }
}

#[test]
fn latency_view_and_phase_keys() {
    let s = corpus_state(45.0);
    let out = screen(&s, View::Latency);
    assert!(
        out.contains("Latency - phase: request  window: 1m  samples: "),
        "{out}"
    );
    assert!(out.contains("p50 ") && out.contains("p99 "));
    assert!(out.contains('█'), "histogram bars:\n{out}");
    assert!(
        out.contains("16ms") && out.contains("1s"),
        "octave labels:\n{out}"
    );
    let mut app = App::new(
        UiState {
            view: View::Latency,
            ..UiState::default()
        },
        "u".into(),
        false,
    );
    app.replica = s;
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    assert_eq!(app.on_key(key(']'), LOCAL), Action::Redraw);
    assert_eq!(app.ui.phase_idx, 0);
    let vm = app.frame(LOCAL);
    match vm.body {
        view_model::Body::Latency(l) => assert_eq!(l.phase, "server"),
        _ => panic!("not latency"),
    }
    // Queue exists only for daemons: still samples in the window.
    app.on_key(key(']'), LOCAL);
    let l = view_model::latency(&app.replica, &app.ui, LOCAL);
    assert_eq!(l.phase, "queue");
    assert!(l.requests > 0);
}

#[test]
fn latency_view_empty() {
    let s = Replica::new();
    let out = screen(&s, View::Latency);
    assert!(out.contains("(no samples in window)"), "{out}");
}

#[test]
fn slow_view_filter_and_search() {
    let s = corpus_state(45.0);
    let out = screen(&s, View::Slow);
    assert!(
        out.contains("Slow requests - sort: elapsed  state: any"),
        "{out}"
    );
    assert!(out.contains("STATE") && out.contains("LOG ID") && out.contains("URL"));
    assert!(
        out.contains("/daemon/sleep") || out.contains("/embedded/sleep"),
        "{out}"
    );
    assert!(out.contains("done"));
    let mut app = App::new(
        UiState {
            view: View::Slow,
            ..UiState::default()
        },
        "u".into(),
        false,
    );
    app.replica = s;
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    app.on_key(key('f'), LOCAL);
    app.on_key(key('f'), LOCAL);
    let l = view_model::slow_list(&app.replica, &app.ui, LOCAL);
    assert_eq!(l.filter, "completed");
    assert!(!l.rows.is_empty());
    assert!(l
        .rows
        .iter()
        .all(|r| r.state == view_model::SlowState::Completed));
    // Search for the embedded mount only.
    app.on_key(key('/'), LOCAL);
    for c in "EMBEDDED".chars() {
        app.on_key(key(c), LOCAL);
    }
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE), LOCAL);
    let l = view_model::slow_list(&app.replica, &app.ui, LOCAL);
    assert!(!l.rows.is_empty());
    assert!(l.rows.iter().all(|r| r.url.starts_with("/embedded")));
    let t = render(&app.replica, &app.ui, 140, 50).join("\n");
    assert!(t.contains("search: 'EMBEDDED'"), "{t}");
    app.on_key(key('r'), LOCAL);
    assert_eq!((app.ui.search.as_str(), app.ui.slow_filter), ("", 0));
}

#[test]
fn active_slow_entries_of_stopped_processes_are_not_active() {
    // At the end of the capture every process has stopped: nothing may be
    // shown as active, and no process counts in the header.
    let s = corpus_state(1e9);
    let ui = UiState::default();
    let h = view_model::header(&s, &ui, LOCAL);
    assert_eq!(h.live_processes, 0);
    assert_eq!(h.rps_now, 0.0);
    assert_eq!(h.slow_active, 0);
    assert!(h.slow_total > 0);
}

#[test]
fn pause_freezes_the_screen() {
    let msgs = corpus_messages(45.0);
    let (a, b) = msgs.split_at(msgs.len() / 2);
    let mut app = App::new(UiState::default(), "u".into(), false);
    for m in a {
        app.replica.apply(parse_value(m).unwrap(), LOCAL);
    }
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    app.on_key(key(' '), LOCAL);
    let before = app.frame(LOCAL + 3.0);
    for m in b {
        app.replica.apply(parse_value(m).unwrap(), LOCAL + 1.0);
    }
    let during = app.frame(LOCAL + 3.0);
    assert_eq!(before.header, during.header);
    assert_eq!(during.mode, view_model::Mode::Paused);
    app.on_key(key(' '), LOCAL + 3.0);
    let after = app.frame(LOCAL + 3.0);
    assert_ne!(before.header, after.header);
}

#[test]
fn datagram_strings_are_shown_escaped_never_raw() {
    let hostile_host = "\u{1b}]0;pwned\u{7}\u{1b}[2Jweb1";
    let hostile_group = "app\u{9b}31m\u{202e}x";
    let mut s = Replica::new();
    let sample = json!({"type": "sample", "kind": "request_metrics", "pid": 4242,
        "seq": 2, "stamp": LOCAL, "fields": {"hostname": hostile_host,
        "process_group": hostile_group, "sample_period": 1.0,
        "request_threads_maximum": 5}});
    s.apply(parse_value(&sample).expect("parses"), LOCAL);
    let mut app = App::new(UiState::default(), "u".into(), false);
    app.replica = s;
    app.ui.view = View::Processes;
    let out = render(&app.replica, &app.ui, 140, 20).join("\n");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("4242"))
        .unwrap_or_else(|| panic!("no row for 4242:\n{out}"));
    assert!(row.contains(" app\\x9b31m\\u{20"), "{row}");
    app.ui.view = View::Overview;
    let out = render(&app.replica, &app.ui, 140, 20).join("\n");
    assert!(out.contains("\\x1b]0;pwned\\x07\\x1b[2Jweb1"), "{out}");
    assert!(
        !out.lines()
            .flat_map(str::chars)
            .any(crate::printable::is_unsafe),
        "{out:?}"
    );
}

#[test]
fn group_filter_cycles_through_embedded() {
    let s = corpus_state(45.0);
    let mut app = App::new(UiState::default(), "u".into(), false);
    app.replica = s;
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    let mut seen = Vec::new();
    for _ in 0..4 {
        app.on_key(key('f'), LOCAL);
        seen.push(app.ui.group.clone());
    }
    assert_eq!(
        seen,
        vec![
            Some(String::new()),
            Some("app".into()),
            Some("aux".into()),
            None
        ]
    );
    app.ui.group = Some(String::new());
    app.ui.view = View::Processes;
    let out = render(&app.replica, &app.ui, 140, 50).join("\n");
    assert!(out.lines().next().unwrap().contains("· (embedded)"));
    assert!(!out.contains(" app ") && !out.contains(" aux "), "{out}");
}

#[test]
fn help_overlay_and_disconnected_footer() {
    let s = corpus_state(10.0);
    let ui = UiState {
        help: true,
        ..UiState::default()
    };
    let conn = ConnView {
        url: "ws://x/ws".into(),
        connected: false,
        error: Some("Connection refused".into()),
        retry_in: Some(2.0),
        ..ConnView::default()
    };
    let vm = view_model::frame(&s, &ui, &conn, LOCAL, true);
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    t.draw(|f| widgets::draw(f, &vm)).unwrap();
    let buf = t.backend().buffer().clone();
    let text: Vec<String> = (0..40)
        .map(|y| (0..120).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect();
    let all = text.join("\n");
    assert!(all.contains(" keys "), "{all}");
    assert!(all.contains("space         pause / resume"));
    assert!(text[0].contains("[disconnected]"));
    assert!(text[39].starts_with("disconnected (Connection refused)  url=ws://x/ws  retry in 2s"));
}

#[test]
fn tiny_and_narrow_terminals_render_without_panicking() {
    let s = corpus_state(45.0);
    for v in View::ALL {
        for (w, h) in [(1, 1), (20, 5), (40, 12), (60, 9)] {
            let ui = UiState {
                view: v,
                help: true,
                ..UiState::default()
            };
            render(&s, &ui, w, h);
        }
    }
    // Narrow latency view: buckets are binned, labels still fit.
    let ui = UiState {
        view: View::Latency,
        ..UiState::default()
    };
    let out = render(&s, &ui, 40, 30).join("\n");
    assert!(out.contains('█'), "{out}");
    assert!(out.lines().all(|l| l.chars().count() <= 40));
}

#[test]
fn lists_scroll_and_clamp() {
    let mut app = App::new(
        UiState {
            view: View::Slow,
            ..UiState::default()
        },
        "u".into(),
        false,
    );
    app.replica = corpus_state(45.0);
    let rows = view_model::slow_list(&app.replica, &app.ui, LOCAL).rows;
    assert!(rows.len() > 40);
    for _ in 0..3 {
        app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE), LOCAL);
    }
    assert_eq!(app.ui.scroll, 3);
    let out = render(&app.replica, &app.ui, 140, 50);
    assert!(out[8].contains("(from row 4)"), "{}", out[8]);
    assert!(out[10].contains(&rows[3].log_id), "{}", out[10]);
    for _ in 0..30 {
        app.on_key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE), LOCAL);
    }
    assert_eq!(app.ui.scroll, rows.len() - 1);
    app.on_key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE), LOCAL);
    assert_eq!(app.ui.scroll, 0);
}

#[test]
fn ctrl_c_and_q_quit() {
    let mut app = App::new(UiState::default(), "u".into(), false);
    assert_eq!(
        app.on_key(
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            0.0
        ),
        Action::Quit
    );
    assert_eq!(
        app.on_key(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE), 0.0),
        Action::Quit
    );
}

/// Prints every view (for eyes, not for CI): `cargo test dump_screens -- --ignored --nocapture`.
#[test]
#[ignore]
fn dump_screens() {
    let s = corpus_state(45.0);
    for v in View::ALL {
        println!("{}\n{}", "=".repeat(140), screen(&s, v));
    }
}

#[test]
fn range_key_cycles_and_stale_history_answers_are_dropped() {
    use super::history::{HistoryAnswer, HistoryState};
    let mut app = App::new(
        UiState {
            view: View::Processes,
            ..UiState::default()
        },
        "u".into(),
        false,
    );
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    assert_eq!(app.history_key(), None, "live: nothing to fetch");
    assert_eq!(app.on_key(key('t'), LOCAL), Action::Redraw);
    assert_eq!(app.ui.view, View::Overview, "t shows the overview");
    assert_eq!(app.history_key(), Some(("1h", None)));
    assert_eq!(app.conn.history, HistoryState::Loading);
    let answer = |step| {
        HistoryState::Ready(HistoryAnswer {
            from: 0.0,
            to: 3600.0,
            step,
            points: Vec::new(),
        })
    };
    // an answer for the range before is not shown
    assert_eq!(app.on_history(("7d", None), answer(60.0)), Action::None);
    assert_eq!(app.conn.history, HistoryState::Loading);
    assert_eq!(app.on_history(("1h", None), answer(20.0)), Action::Redraw);
    assert_eq!(app.conn.history, answer(20.0));
    for r in ["6h", "24h", "7d"] {
        app.on_key(key('t'), LOCAL);
        assert_eq!(app.history_key(), Some((r, None)));
    }
    app.on_key(key('t'), LOCAL);
    assert_eq!(app.history_key(), None, "back to live");
    assert_eq!(app.conn.history, HistoryState::Idle);
}

#[test]
fn custom_key_polls_the_filter_shown_and_f_cycles_its_groups() {
    use super::fixture::app_stats;
    let mut app = App::new(UiState::default(), "u".into(), false);
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    assert_eq!(app.stats_key(), None, "overview: nothing to poll");
    assert_eq!(app.on_key(key('c'), LOCAL), Action::Redraw);
    assert_eq!(app.ui.view, View::Custom);
    assert_eq!(app.stats_key(), Some(None), "every group");
    // Three polls of every group (fixture): the groups with metrics are
    // `` (embedded) and `app`.
    let polled = app_stats();
    let answer = polled.answer.clone().unwrap();
    app.conn.stats = polled;
    // An answer for another filter is dropped.
    assert_eq!(
        app.on_stats(Some("app".into()), Ok(answer.clone()), LOCAL),
        Action::None
    );
    assert_eq!(app.conn.stats.points["orders.placed"].len(), 3);
    assert_eq!(app.on_stats(None, Ok(answer.clone()), 6.0), Action::Redraw);
    assert_eq!(app.conn.stats.points["orders.placed"].len(), 4);
    app.on_key(key('f'), LOCAL);
    assert_eq!(app.ui.group.as_deref(), Some(""));
    app.on_key(key('f'), LOCAL);
    assert_eq!(app.ui.group.as_deref(), Some("app"));
    assert_eq!(app.stats_key(), Some(Some("app".to_string())));
    // The view waits for `app`'s own answer, then starts its points anew.
    let frame = app.frame(LOCAL);
    let view_model::Body::Custom(c) = &frame.body else {
        panic!("{:?}", frame.body)
    };
    assert_eq!(c.note.as_deref(), Some("loading…"));
    assert_eq!(
        app.on_stats(Some("app".into()), Ok(answer), 7.0),
        Action::Redraw
    );
    assert_eq!(app.conn.stats.points["orders.placed"].len(), 1);
    app.on_key(key('f'), LOCAL);
    assert_eq!(app.ui.group, None, "after the last group, all again");
    app.on_key(key('6'), LOCAL);
    assert_eq!(app.ui.view, View::Custom);
    app.on_key(key('1'), LOCAL);
    assert_eq!(app.stats_key(), None);
}
