//! The browser UI in real headless Chromium against the real `serve`, fed
//! with the anchor corpus by the real `replay` (no mock server).
//!
//! Needs Debian's `chromium` and `chromium-driver`; the corpus is read from
//! `tests/fixtures/corpus/` or `TELEMETRY_CORPUS_DIR`. Screenshots of every tab go
//! to `target/ui-screenshots/`.

mod ui_support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use ui_support::{bin, replay_corpus, select, tab, Browser, Serve};

/// What the page should consider live, computed independently from
/// `/api/state` with the UI's documented rule: windows end at the newest
/// reporter stamp; a process is live while its newest sample is within
/// max(10 s, 3 × sample_period) of it and it has not sent STOPPED; for 10 s
/// after STOPPED it is listed as stopped (counted nowhere).
struct Expected {
    live: BTreeSet<u64>,
    /// pid → shutdown reason as the page words it ("(unknown)" when none was given).
    stopped: BTreeMap<u64, String>,
    embedded: BTreeSet<u64>,
    daemon: BTreeSet<u64>,
    groups: BTreeSet<String>,
    throughput_total: f64,
    rpm_total: f64,
    with_gc: BTreeSet<u64>,
}

fn expected(state: &Value) -> Expected {
    let procs = state["processes"].as_array().expect("processes");
    let life = state["lifecycle_events"].as_array().expect("lifecycle");
    let mut now = f64::MIN;
    for p in procs {
        if let Some(s) = p["samples"].as_array().and_then(|s| s.last()) {
            now = now.max(s["stamp"].as_f64().unwrap());
        }
    }
    for e in life {
        now = now.max(e["stamp"].as_f64().unwrap());
    }
    let mut out = Expected {
        live: BTreeSet::new(),
        stopped: BTreeMap::new(),
        embedded: BTreeSet::new(),
        daemon: BTreeSet::new(),
        groups: BTreeSet::new(),
        throughput_total: 0.0,
        rpm_total: 0.0,
        with_gc: BTreeSet::new(),
    };
    for p in procs {
        let pid = p["pid"].as_u64().unwrap();
        let Some(samples) = p["samples"].as_array().filter(|s| !s.is_empty()) else {
            continue;
        };
        let last = samples.last().unwrap();
        let sp = last["fields"]["sample_period"].as_f64().unwrap_or(1.0);
        let newest = |kind: &str| {
            life.iter()
                .filter(|e| e["pid"] == p["pid"] && e["kind"] == kind)
                .filter_map(|e| e["stamp"].as_f64())
                .fold(None, |a: Option<f64>, s| Some(a.map_or(s, |a| a.max(s))))
        };
        let started = newest("process_started");
        let stopped = newest("process_stopped").filter(|&s| started.is_none_or(|t| s >= t));
        if let Some(s) = stopped {
            if now - s <= 10.0 {
                // STOPPED's reason, else STOPPING's
                let reason = life
                    .iter()
                    .filter(|e| e["pid"] == p["pid"] && e["stamp"].as_f64() <= Some(s))
                    .filter_map(|e| e["shutdown_reason"].as_str())
                    .rfind(|r| !r.is_empty())
                    .unwrap_or("(unknown)");
                out.stopped.insert(pid, reason.to_string());
            }
            continue;
        }
        if now - last["stamp"].as_f64().unwrap() > (3.0 * sp).max(10.0) {
            continue;
        }
        out.live.insert(pid);
        let group = p["process_group"].as_str().unwrap_or("").to_string();
        if group.is_empty() {
            out.embedded.insert(pid);
        } else {
            out.daemon.insert(pid);
            out.groups.insert(group);
        }
        out.throughput_total += last["fields"]["request_throughput"].as_f64().unwrap_or(0.0);
        let (mut rc, mut period) = (0.0, 0.0);
        for s in samples {
            if s["stamp"].as_f64().unwrap() >= now - 60.0 {
                rc += s["fields"]["request_count"].as_f64().unwrap_or(0.0);
                period += s["fields"]["sample_period"].as_f64().unwrap_or(1.0);
            }
        }
        if period > 0.0 {
            out.rpm_total += rc / period * 60.0;
        }
        let gc = p["gc_snapshots"].as_object().is_some_and(|m| {
            m.values()
                .any(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        });
        if gc {
            out.with_gc.insert(pid);
        }
    }
    out
}

/// Parses "1.2k" / "950" / "12.5" style numbers.
fn parse_num(s: &str) -> f64 {
    let s = s.trim().replace(',', "");
    if let Some(k) = s.strip_suffix('k') {
        k.parse::<f64>().unwrap() * 1e3
    } else if let Some(m) = s.strip_suffix('M') {
        m.parse::<f64>().unwrap() * 1e6
    } else {
        s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
    }
}

/// The duration after `label` in a readout such as "n 60 p50 81 µs … max 4.4ms", in ms.
fn pause_ms(readout: &str, label: &str) -> f64 {
    let t: Vec<&str> = readout.split_whitespace().collect();
    let i = t
        .iter()
        .position(|w| *w == label)
        .unwrap_or_else(|| panic!("{label} in {readout:?}"));
    let v = t[i + 1];
    if t.get(i + 2) == Some(&"µs") {
        return v.parse::<f64>().unwrap() / 1000.0;
    }
    if let Some(ms) = v.strip_suffix("ms") {
        ms.parse().unwrap()
    } else {
        v.strip_suffix('s').unwrap().parse::<f64>().unwrap() * 1000.0
    }
}

fn pids_of(v: &Value) -> BTreeSet<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| {
            x.as_str()
                .and_then(|s| s.parse().ok())
                .or(x.as_u64())
                .expect("pid")
        })
        .collect()
}

/// The capture's datagrams before its final shutdown: datagram 11,787 is
/// the first STOPPING of its last 10 s (pid 20714's). Replayed up to there,
/// five processes are live (two embedded, three daemon) and three have sent
/// STOPPED less than 10 s before the end.
const BEFORE_SHUTDOWN: u64 = 11_787;

/// Starts serve, replays the corpus up to its final shutdown (as fast as the
/// ingester takes it, no loss, stamps shifted to now) and opens the page
/// once it shows data.
async fn setup() -> (Serve, Browser) {
    let serve = Serve::start(bin(), &[]);
    replay_corpus(
        &serve.sock,
        &["--restamp", "--count", &BEFORE_SHUTDOWN.to_string()],
    );
    // The page's first snapshot must hold the whole capture: wait for serve
    // to have taken every datagram in, not only for the replay to return.
    serve.wait_received(BEFORE_SHUTDOWN as usize);
    let browser = Browser::start(1600, 1000).await;
    browser
        .client
        .goto(&serve.page_url())
        .await
        .expect("open page");
    browser
        .wait_true(
            "return !!(window.__telemetry && window.__telemetry.conn.state === 'open' && document.querySelectorAll('#proc-cards .pcard').length > 0 && !window.__telemetry.views.overview.pending());",
            "connected and showing process cards",
        )
        .await;
    (serve, browser)
}

const SIDEBAR_PIDS: &str =
    "return [...document.querySelectorAll('#proc-cards .pcard')].map(e => e.dataset.pid);";
const LIVE_CARD_PIDS: &str =
    "return [...document.querySelectorAll('#proc-cards .pcard:not(.stopped)')].map(e => e.dataset.pid);";
const STOPPED_CARD_PIDS: &str =
    "return [...document.querySelectorAll('#proc-cards .pcard.stopped')].map(e => e.dataset.pid);";
const CAPACITY_PIDS: &str =
    "return [...document.querySelectorAll('#cap-cards .ccard')].map(e => e.dataset.pid);";

fn text_of(v: Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tab_shows_the_corpus() {
    let (serve, b) = setup().await;
    // The WebSocket's first snapshot is budgeted; /api/state with the same
    // budget is byte-for-byte the same history the page received.
    let exp = expected(&serve.api_state("?budget=3500000"));
    assert!(
        exp.live.len() >= 3,
        "corpus end should leave live processes: {:?}",
        exp.live
    );
    assert!(!exp.embedded.is_empty() && !exp.daemon.is_empty());

    assert!(!exp.stopped.is_empty(), "and recently stopped ones");

    // --- Overview + sidebar ---------------------------------------------
    b.wait_true(
        &format!(
            "return document.querySelectorAll('#proc-cards .pcard:not(.stopped)').length === {} && document.querySelectorAll('#proc-cards .pcard.stopped').length === {};",
            exp.live.len(),
            exp.stopped.len()
        ),
        "one sidebar card per live process, then the stopped ones",
    )
    .await;
    assert_eq!(
        pids_of(&b.js(LIVE_CARD_PIDS).await),
        exp.live,
        "sidebar shows the live processes"
    );
    assert_eq!(
        pids_of(&b.js(STOPPED_CARD_PIDS).await),
        exp.stopped.keys().copied().collect(),
        "and the recently stopped ones, as stopped"
    );
    let procs = text_of(
        b.js("return document.getElementById('totals-procs').textContent;")
            .await,
    );
    assert!(
        procs.starts_with(&format!("{} procs across", exp.live.len()))
            && procs.ends_with(&format!("{} stopped (not counted)", exp.stopped.len())),
        "totals count the live processes: {procs}"
    );
    let sidebar = text_of(
        b.js("return document.getElementById('sidebar').innerText;")
            .await,
    );
    for g in &exp.groups {
        assert!(
            sidebar.contains(&format!("vm [{g}]")),
            "group {g} on a card:\n{sidebar}"
        );
    }
    assert!(
        sidebar.contains("vm (embedded)"),
        "embedded card:\n{sidebar}"
    );
    let total = text_of(
        b.js("return document.getElementById('ro-throughput').textContent;")
            .await,
    );
    let shown: f64 = parse_num(
        total
            .strip_prefix("total ")
            .and_then(|t| t.split(" req/s").next())
            .unwrap_or_else(|| panic!("throughput readout: {total:?}")),
    );
    let tol = (exp.throughput_total * 0.01).max(0.6);
    assert!(
        (shown - exp.throughput_total).abs() <= tol,
        "throughput total {shown} vs /api/state {}",
        exp.throughput_total
    );
    let head = text_of(
        b.js("return document.getElementById('totals-head').textContent;")
            .await,
    );
    let rpm = parse_num(head.split(" rpm").next().unwrap());
    assert!(
        (rpm - exp.rpm_total).abs() <= (exp.rpm_total * 0.02).max(1.0),
        "sidebar rpm {rpm} vs /api/state {}",
        exp.rpm_total
    );
    let health = text_of(
        b.js("return document.getElementById('health-body').innerText;")
            .await,
    );
    assert!(
        health.contains("datagrams received: 11,787"),
        "health: {health}"
    );
    assert!(health.contains("decode errors: 0"), "health: {health}");
    let hist = text_of(
        b.js("return document.getElementById('ro-hist').textContent;")
            .await,
    );
    assert!(
        hist.starts_with("n ") && hist.contains("p95"),
        "histogram readout: {hist}"
    );
    b.screenshot("1-overview").await;

    // --- Capacity ----------------------------------------------------------
    tab(&b, "capacity").await;
    assert_eq!(
        pids_of(&b.js(CAPACITY_PIDS).await),
        exp.live,
        "one heatmap per live process"
    );
    let slot_rows = b
        .js("return [...document.querySelectorAll('#cap-cards .ccard')].map(c => window.__telemetry.views.capacity.cards.get(Number(c.dataset.pid)).geom.slots);")
        .await;
    for n in slot_rows.as_array().unwrap() {
        assert!(n.as_u64().unwrap() >= 4, "slot rows: {slot_rows}");
    }
    b.screenshot("2-capacity").await;

    // --- Processes -----------------------------------------------------------
    tab(&b, "processes").await;
    select(&b, "life-window", "600").await;
    b.wait_true(
        "return window.__telemetry.views.processes.recs.length >= 20;",
        "gantt rows for the whole capture",
    )
    .await;
    let recs = b
        .js("return window.__telemetry.views.processes.recs.map(r => [r.pid, r.started != null, r.stopped != null, r.category]);")
        .await;
    let recs = recs.as_array().unwrap();
    assert_eq!(recs.len(), 22, "a lifetime bar per process of the capture");
    assert!(
        recs.iter().all(|r| r[1] == true),
        "every bar starts: {recs:?}"
    );
    let running: BTreeSet<u64> = recs
        .iter()
        .filter(|r| r[2] == false)
        .map(|r| r[0].as_u64().unwrap())
        .collect();
    assert_eq!(
        running, exp.live,
        "the live processes' bars have not stopped"
    );
    let log = text_of(
        b.js("return document.getElementById('life-log').innerText;")
            .await,
    );
    for needle in [
        "maximum_requests",
        "script_reload",
        "graceful_signal",
        "inactivity_timeout",
        "shutdown_signal",
        "started",
        "stopping",
        "stopped",
    ] {
        assert!(log.contains(needle), "event log lacks {needle}");
    }
    assert_eq!(
        b.js("return document.getElementById('gantt-empty').hidden;")
            .await,
        Value::Bool(true)
    );
    b.screenshot("3-processes").await;

    // --- GC ----------------------------------------------------------------
    tab(&b, "gc").await;
    let procs = b
        .js("return [...document.getElementById('gc-proc').options].map(o => o.value).filter(v => v !== '*');")
        .await;
    assert_eq!(
        pids_of(&procs),
        exp.with_gc,
        "GC process selector lists the live processes with GC data"
    );
    let status = text_of(
        b.js("return document.getElementById('gc-status').innerText;")
            .await,
    );
    assert!(
        status.contains("GC enabled") && status.contains("thresholds 700/10/10"),
        "GC status: {status}"
    );
    let interps = text_of(
        b.js(
            "return [...document.getElementById('gc-interp').options].map(o => o.text).join('|');",
        )
        .await,
    );
    assert!(
        interps.contains("(main)") && interps.contains("127.0.0.1:18000|/embedded"),
        "interpreters: {interps}"
    );
    assert_eq!(
        b.js("return document.getElementById('gc-interp-wrap').hidden;")
            .await,
        Value::Bool(false)
    );
    let rows = b
        .js("return document.querySelectorAll('#gc-pressure .pressure-row').length;")
        .await;
    assert!(
        rows.as_u64().unwrap() as usize > exp.with_gc.len(),
        "a pressure row per (pid, interpreter): {rows}"
    );
    let events = text_of(
        b.js("return document.getElementById('ro-gc-events').textContent;")
            .await,
    );
    assert!(
        !events.starts_with("events 0"),
        "GC events in window: {events}"
    );
    let pauses = text_of(
        b.js("return document.getElementById('ro-gc-pauses').textContent;")
            .await,
    );
    let max = pause_ms(&pauses, "max");
    for q in ["p50", "p95", "p99"] {
        assert!(pause_ms(&pauses, q) <= max, "{q} above max: {pauses}");
    }
    b.screenshot("4-gc").await;

    // --- Slow requests -------------------------------------------------------
    tab(&b, "slow").await;
    select(&b, "slow-state", "both").await;
    b.wait_true(
        "return document.querySelectorAll('#slow-table tbody tr.row').length > 0;",
        "slow rows",
    )
    .await;
    let urls = text_of(b.js("return [...document.querySelectorAll('#slow-table tbody tr.row .path')].map(e => e.textContent).join('\\n');").await);
    assert!(
        urls.contains("http://127.0.0.1/daemon/sleep"),
        "slow rows: {urls}"
    );
    assert!(
        urls.contains("http://127.0.0.1/embedded/sleep"),
        "slow rows: {urls}"
    );
    // expand the slowest row: the detail panel names its phases and client
    b.js("document.querySelector('#slow-table tbody tr.row').click(); return true;")
        .await;
    b.wait_true(
        "return !!document.querySelector('#slow-table tr.detail .kv');",
        "detail row",
    )
    .await;
    let detail = text_of(
        b.js("return document.querySelector('#slow-table tr.detail').innerText;")
            .await,
    );
    for needle in [
        "Phases",
        "User-Agent",
        "slow-lab/mixed seed=1",
        "CPU",
        "Concurrency",
    ] {
        assert!(detail.contains(needle), "detail lacks {needle}:\n{detail}");
    }
    b.screenshot("5-slow").await;

    // --- help and copy-stats --------------------------------------------------
    b.js("document.getElementById('help-btn').click(); return true;")
        .await;
    b.wait_true(
        "return !document.getElementById('modal-backdrop').hidden;",
        "help modal",
    )
    .await;
    // A real (trusted) click, as a user's: the clipboard needs one.
    b.client
        .find(fantoccini::Locator::Id("copy-stats"))
        .await
        .expect("copy-stats button")
        .click()
        .await
        .expect("click copy-stats");
    b.wait_true(
        "return typeof window.__telemetry.lastStatsSnapshot === 'string';",
        "stats snapshot",
    )
    .await;
    let snap = text_of(b.js("return window.__telemetry.lastStatsSnapshot;").await);
    assert!(
        snap.starts_with("# mod_wsgi telemetry: current state"),
        "{snap}"
    );
    for pid in &exp.live {
        assert!(
            snap.contains(&format!("### pid {pid} ")),
            "snapshot lacks pid {pid}"
        );
    }
    b.screenshot("6-help").await;

    assert_eq!(
        b.errors().await,
        Vec::<String>::new(),
        "uncaught page errors"
    );
    b.close().await;
    drop(serve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_filter_hides_daemon_processes() {
    let (serve, b) = setup().await;
    let exp = expected(&serve.api_state("?budget=3500000"));
    select(&b, "group-filter", "").await;
    b.wait_true(
        &format!(
            "return document.querySelectorAll('#proc-cards .pcard:not(.stopped)').length === {};",
            exp.embedded.len()
        ),
        "only embedded cards",
    )
    .await;
    assert_eq!(pids_of(&b.js(LIVE_CARD_PIDS).await), exp.embedded);
    let out = text_of(
        b.js("return document.getElementById('filtered-out').textContent;")
            .await,
    );
    assert_eq!(out, format!("{} filtered out", exp.daemon.len()));
    tab(&b, "capacity").await;
    assert_eq!(
        pids_of(&b.js(CAPACITY_PIDS).await),
        exp.embedded,
        "heatmaps of embedded processes only"
    );
    b.screenshot("7-embedded-filter").await;
    // and back: a daemon group shows only its processes
    let g = exp.groups.iter().next().unwrap().clone();
    select(&b, "group-filter", &g).await;
    tab(&b, "overview").await;
    let pids = pids_of(&b.js(LIVE_CARD_PIDS).await);
    assert!(
        !pids.is_empty() && pids.iter().all(|p| exp.daemon.contains(p)),
        "{g}: {pids:?}"
    );
    assert_eq!(
        b.errors().await,
        Vec::<String>::new(),
        "uncaught page errors"
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heatmap_run_without_record_shows_no_record() {
    let (serve, b) = setup().await;
    tab(&b, "capacity").await;
    // The corpus has slow-request records for its runs; clearing them on
    // the server (the page's Clear button) leaves heuristic runs only.
    tab(&b, "slow").await;
    b.js("document.getElementById('slow-clear').click(); return true;")
        .await;
    // The server keeps only recent active records; every completed one goes.
    b.wait_true(
        "return window.__telemetryPerf.byType.slow_clear > 0 && [...window.__telemetry.store.slow.values()].every(s => s.entry.state !== 1);",
        "slow_clear applied",
    )
    .await;
    // The replay stops with requests in flight, and their active records
    // match the newest runs. Reporter time moves 6 s on with no datagram,
    // as when a feed pauses: active records age out (5 s) while the
    // processes stay live (10 s).
    b.js("const s = window.__telemetry.store; s.advance(s.now + 6); s.pruneSlow(); s.rev.procs++; return true;")
        .await;
    b.wait_true(
        "return window.__telemetry.store.slow.size === 0;",
        "active records aged out",
    )
    .await;
    tab(&b, "capacity").await;
    b.wait_true(
        "return [...window.__telemetry.views.capacity.cards.values()].some(c => c.geom && c.geom.runRects.some(rr => !rr.run.record));",
        "a heatmap with a slow run that has no record",
    )
    .await;
    // Viewport coordinates of the first run without a record (an active
    // record the server still holds may match another run), then a real
    // pointer click there.
    let at = b
        .js(r#"
            for (const c of window.__telemetry.views.capacity.cards.values()) {
              const rr = c.geom && c.geom.runRects.find(rr => !rr.run.record);
              if (!rr) continue;
              c.el.scrollIntoView({block: 'center'});
              const r = c.canvas.getBoundingClientRect();
              return [r.left + (rr.x0 + rr.x1) / 2, r.top + (rr.y0 + rr.y1) / 2, c.proc.pid, rr.run.record];
            }
            return null;"#)
        .await;
    let at = at.as_array().expect("run position");
    assert_eq!(at[3], Value::Null, "the run has no record after the clear");
    use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
    let mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveTo {
            duration: None,
            x: at[0].as_f64().unwrap().round(),
            y: at[1].as_f64().unwrap().round(),
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.client.perform_actions(mouse).await.expect("click");
    b.wait_true(
        "return !document.getElementById('modal-backdrop').hidden;",
        "drill-down modal",
    )
    .await;
    let modal = text_of(
        b.js("return document.querySelector('.modal').innerText;")
            .await,
    );
    assert!(modal.contains("heuristic"), "{modal}");
    assert!(modal.contains("no record"), "{modal}");
    assert!(modal.contains(&format!("pid {}", at[2])), "{modal}");
    b.screenshot("8-no-record").await;
    // redraws keep working with the modal open (the reference stopped here)
    let before = b
        .js("return window.__telemetryPerf.redraws;")
        .await
        .as_u64()
        .unwrap();
    b.js("window.dispatchEvent(new Event('resize')); return true;")
        .await;
    b.wait_true(
        &format!("return window.__telemetryPerf.redraws > {before};"),
        "redraw after drill-down",
    )
    .await;
    b.js("document.getElementById('modal-close').click(); return true;")
        .await;
    assert_eq!(
        b.js("return document.getElementById('modal-backdrop').hidden;")
            .await,
        Value::Bool(true)
    );
    assert_eq!(
        b.errors().await,
        Vec::<String>::new(),
        "uncaught page errors"
    );
    b.close().await;
    drop(serve);
}

/// The whole capture ends with every process sending STOPPED (pids 20710-20714
/// within its last 10 s). Those five are listed as stopped, with their
/// shutdown reason and time, in the sidebar and the Processes tab, and no
/// total counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_processes_are_shown_as_stopped_and_not_counted() {
    let serve = Serve::start(bin(), &[]);
    replay_corpus(&serve.sock, &["--restamp"]);
    let b = Browser::start(1600, 1000).await;
    b.client.goto(&serve.page_url()).await.expect("open page");
    b.wait_true(
        "return !!(window.__telemetry && window.__telemetry.conn.state === 'open' && document.querySelectorAll('#proc-cards .pcard').length > 0);",
        "connected and showing process cards",
    )
    .await;
    let exp = expected(&serve.api_state("?budget=3500000"));
    assert!(exp.live.is_empty(), "every process stopped: {:?}", exp.live);
    assert_eq!(
        exp.stopped.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([20710, 20711, 20712, 20713, 20714]),
        "the capture's last 10 s stop five processes"
    );
    b.wait_true(
        "return document.querySelectorAll('#proc-cards .pcard.stopped').length === 5;",
        "five stopped cards",
    )
    .await;
    assert_eq!(
        pids_of(&b.js(SIDEBAR_PIDS).await),
        exp.stopped.keys().copied().collect(),
        "the sidebar lists the stopped processes, nothing else"
    );
    for (pid, reason) in &exp.stopped {
        let card = text_of(
            b.js(&format!(
                "return document.querySelector('#proc-cards .pcard[data-pid=\"{pid}\"]').innerText;"
            ))
            .await,
        );
        assert!(
            card.contains("STOPPED") && card.contains("stopped at ") && card.contains(reason),
            "pid {pid}'s card names the stop and its reason {reason}:\n{card}"
        );
    }
    let procs = text_of(
        b.js("return document.getElementById('totals-procs').textContent;")
            .await,
    );
    assert!(
        procs.starts_with("0 procs"),
        "totals count live processes only: {procs}"
    );
    let states = text_of(
        b.js("return document.getElementById('totals-states').textContent;")
            .await,
    );
    assert!(
        !states.contains("normal"),
        "no live process is normal: {states}"
    );
    b.screenshot("9-stopped-sidebar").await;

    tab(&b, "processes").await;
    let rows = b
        .js("return window.__telemetry.views.processes.recs.filter(r => r.live).map(r => r.pid);")
        .await;
    assert_eq!(rows, serde_json::json!([]), "no timeline row is live");
    let summary = text_of(
        b.js("return document.getElementById('life-stopped').innerText;")
            .await,
    );
    assert!(summary.starts_with("0 live · 5 stopped"), "{summary}");
    for (pid, reason) in &exp.stopped {
        assert!(
            summary.contains(&format!("pid {pid} ")) && summary.contains(reason),
            "Processes tab lists pid {pid} as stopped ({reason}):\n{summary}"
        );
    }
    b.screenshot("10-stopped-processes").await;
    assert_eq!(
        b.errors().await,
        Vec::<String>::new(),
        "uncaught page errors"
    );
    b.close().await;
}

#[test]
fn js_unit_tests_pass_under_node() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static/tests");
    let Ok(node) = which_node() else {
        eprintln!("node not found: skipping the JS unit tests");
        return;
    };
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    assert!(!files.is_empty(), "no JS tests in {}", dir.display());
    ui_support::run_ok(
        std::process::Command::new(node)
            .arg("--test")
            .args(&files)
            .env("TELEMETRY_CORPUS_DIR", ui_support::corpus_dir()),
        "node --test",
    );
}

fn which_node() -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("node"))
        .find(|p| p.is_file())
        .ok_or(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tab_redraws_with_hundreds_of_processes() {
    let serve = Serve::start(bin(), &[]);
    replay_corpus(&serve.sock, &["--restamp", "--processes", "616"]);
    let b = Browser::start(1600, 1000).await;
    b.client.goto(&serve.page_url()).await.expect("open page");
    b.wait_true(
        "return !!(window.__telemetry && window.__telemetry.conn.state === 'open' && window.__telemetry.store.procs.size > 100);",
        "hundreds of processes",
    )
    .await;
    for name in ["overview", "capacity", "processes", "gc", "slow"] {
        tab(&b, name).await;
        let before = b
            .js("return window.__telemetryPerf.redraws;")
            .await
            .as_u64()
            .unwrap();
        b.js("window.dispatchEvent(new Event('resize')); return true;")
            .await;
        b.wait_true(
            &format!("return window.__telemetryPerf.redraws > {before};"),
            &format!("{name} redraws"),
        )
        .await;
        assert_eq!(
            b.errors().await,
            Vec::<String>::new(),
            "uncaught page errors on {name}"
        );
    }
    select(&b, "slow-state", "both").await;
    b.wait_true(
        "return document.querySelectorAll('#slow-table tbody tr.row').length > 0;",
        "slow rows",
    )
    .await;
    assert!(
        b.js("return document.querySelectorAll('#slow-table tbody tr.row').length;")
            .await
            .as_u64()
            .unwrap()
            <= 200
    );
    assert_eq!(
        b.errors().await,
        Vec::<String>::new(),
        "uncaught page errors"
    );
    b.close().await;
}
