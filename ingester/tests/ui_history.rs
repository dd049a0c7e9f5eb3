//! The Overview and Capacity tabs' time ranges in real headless Chromium
//! against the real `serve`, whose history is filled by the real `replay`
//! of the corpus in a loop (each pass shifts the stamps by the capture's
//! span, so a few seconds of replay are tens of minutes of history). What
//! each chart drew is compared with `GET /api/history` asked independently.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Screenshots go to
//! `target/ui-screenshots/`.

mod ui_support;

use serde_json::Value;
use ui_support::{bin, replay_corpus, select, Browser, Serve};

/// Datagrams replayed: several passes of the corpus, about 20 minutes of
/// stamps, so the 1 h range has tens of 12 s points and the 24 h range a
/// few 5 min points.
const DATAGRAMS: usize = 300_000;

fn history(serve: &Serve, query: &str) -> Value {
    let (status, body) = serve.get(&format!("/api/history?{query}"));
    assert_eq!(status, 200, "{query}: {body}");
    serde_json::from_str(&body).expect("history JSON")
}

/// Points of `answer` a chart value exists for.
fn count(answer: &Value, has: impl Fn(&Value) -> bool) -> u64 {
    answer["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| has(p))
        .count() as u64
}

/// Selects `range` (with the page's group), waits for its drawing and checks
/// every chart against `/api/history?query` fetched here.
async fn check_range(serve: &Serve, b: &Browser, range: &str, query: &str) -> Value {
    let before = b.js("return window.__telemetryHistory.fetches;").await;
    select(b, "range", range).await;
    b.wait_true(
        &format!(
            "const h = window.__telemetryHistory; return h.range === '{range}' && h.fetches > {before} && h.drawnUrl === h.url && !!document.querySelector('.tab.active.ranged #history-grid');"
        ),
        &format!("range {range} drawn"),
    )
    .await;
    let drawn = b.js("return window.__telemetryHistory;").await;
    assert_eq!(
        drawn["url"].as_str().unwrap(),
        format!("/api/history?{query}"),
        "the page asked for the range and group selected"
    );
    let answer = history(serve, query);
    let n = count(&answer, |_| true);
    assert!(n >= 2, "{query}: history too short to test: {answer}");
    assert_eq!(drawn["step"], answer["step"]);
    for id in [
        "throughput",
        "status",
        "cpu",
        "capacity",
        "memory",
        "latency",
    ] {
        let d = &drawn["drawn"][id];
        assert_eq!(d["from"], answer["from"], "{id}");
        assert_eq!(d["to"], answer["to"], "{id}");
    }
    // one value per point and series
    assert_eq!(drawn["drawn"]["throughput"]["points"], n);
    assert_eq!(drawn["drawn"]["status"]["points"], 5 * n);
    assert_eq!(drawn["drawn"]["cpu"]["points"], 2 * n);
    assert_eq!(drawn["drawn"]["memory"]["points"], 3 * n);
    let with_threads = count(&answer, |p| !p["capacity_utilization"].is_null());
    assert_eq!(drawn["drawn"]["capacity"]["points"], with_threads);
    let with_requests = count(&answer, |p| {
        p["latency"]["total"]["count"].as_u64() > Some(0)
    });
    assert!(with_requests > 0);
    assert_eq!(drawn["drawn"]["latency"]["points"], 3 * with_requests);
    // The axis ends are the answer's own span, in the page's local time.
    let labels = b
        .js(&format!(
            "const span = {to} - {from}; const f = (s) => {{ const d = new Date(s * 1000); const p = (n) => String(n).padStart(2, '0'); const hm = p(d.getHours()) + ':' + p(d.getMinutes()); return span > 86400 ? p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + hm : hm; }}; return [f({from}), f({to})];",
            from = answer["from"],
            to = answer["to"]
        ))
        .await;
    assert_eq!(drawn["drawn"]["throughput"]["labels"], labels);
    let status = b
        .js("return document.getElementById('history-status').textContent;")
        .await;
    assert!(
        status
            .as_str()
            .unwrap()
            .contains(&format!("{} series", answer["series"])),
        "{status}"
    );
    drawn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_draw_the_stored_history() {
    let serve = Serve::start(bin(), &[]);
    replay_corpus(&serve.sock, &["--loop", "--count", &DATAGRAMS.to_string()]);
    // every datagram applied: the history no longer moves
    serve.wait_received(DATAGRAMS);
    let b = Browser::start(1600, 1000).await;
    b.client.goto(&serve.page_url()).await.expect("open page");
    b.wait_true(
        "return !!(window.__telemetry && window.__telemetry.conn.state === 'open' && window.__telemetryHistory && document.querySelectorAll('#proc-cards .pcard').length > 0);",
        "page connected",
    )
    .await;
    // live: the tab's own charts, no request to the history
    let h = b.js("return window.__telemetryHistory;").await;
    assert_eq!(h["range"], "live");
    assert_eq!(h["fetches"], 0);

    let one = check_range(&serve, &b, "1h", "range=1h").await;
    b.screenshot("history-1h").await;
    let day = check_range(&serve, &b, "24h", "range=24h").await;
    assert!(
        day["step"].as_u64() > one["step"].as_u64(),
        "24 h reads a coarser step than 1 h: {} vs {}",
        day["step"],
        one["step"]
    );
    b.screenshot("history-24h").await;

    // The group filter narrows the request; the Capacity tab shows the
    // same ranged charts.
    select(&b, "group-filter", "app").await;
    b.wait_true(
        "return window.__telemetryHistory.url.endsWith('group=app') && window.__telemetryHistory.fetches > 2;",
        "refetched for group app",
    )
    .await;
    b.js("document.querySelector('.tab-btn[data-tab=capacity]').click(); return true;")
        .await;
    check_range(&serve, &b, "1h", "range=1h&group=app").await;
    b.screenshot("history-1h-app-capacity").await;

    // Back to live: the live content is shown again.
    select(&b, "range", "live").await;
    let shown = b
        .js("return [document.querySelectorAll('.tab.ranged').length, !!document.getElementById('history-grid'), getComputedStyle(document.getElementById('cap-cards')).display];")
        .await;
    assert_eq!(shown[0], 0);
    assert_eq!(shown[1], false);
    assert_ne!(shown[2], "none");
    // The selector belongs to Overview and Capacity only.
    b.js("document.querySelector('.tab-btn[data-tab=processes]').click(); return true;")
        .await;
    b.wait_true(
        "return getComputedStyle(document.getElementById('range-ctl')).display === 'none';",
        "range selector hidden on the Processes tab",
    )
    .await;
    let errors = b.errors().await;
    assert!(errors.is_empty(), "page errors: {errors:?}");
    b.close().await;
}
