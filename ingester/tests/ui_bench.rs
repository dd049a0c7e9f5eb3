//! Smoothness benchmark of the browser UI (not a timed test: it prints
//! figures and asserts nothing about time).
//!
//! `replay --realtime --loop --restamp --processes N` plays the corpus as N
//! synthetic processes; the capture has ≈ 4.8 processes alive at any moment
//! out of 22, but restarts of looped copies overlap; the default N = 616 (28
//! copies) keeps ≈ 200 (150-300) processes
//! sending 1 sample/s each (plus their GC, slow-request and lifecycle
//! datagrams). The page's own instrumentation (`window.__telemetryPerf`,
//! performance.now() around every update and redraw) and the JS heap (after
//! a forced GC) are read every 30 s.
//!
//! Run: `cargo test --release -p mod_wsgi-telemetry --test ui_bench -- --ignored --nocapture`
//! Env: UI_BENCH_SECONDS (default 600), UI_BENCH_PROCESSES (default 616),
//! UI_BENCH_TABS=1 to also measure every other tab for 30 s at the end
//! (or a list, e.g. UI_BENCH_TABS=capacity,gc), UI_BENCH_WARMUP (default 75).

mod ui_support;

use serde_json::Value;
use std::time::{Duration, Instant};
use ui_support::{bin, replay_corpus_spawn, Browser, Serve};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

async fn reading(b: &Browser) -> Value {
    b.js("if (window.gc) window.gc(); const s = window.__telemetryPerf.summary(); const st = window.__telemetry.store; s.interval = window.__telemetryPerf.interval(); s.known = st.procs.size; s.lost = st.seqGaps; s.lag = Date.now() / 1000 - st.now; \
         let samples = 0, gcSeries = 0, gcEvents = 0; \
         for (const p of st.procs.values()) { samples += p.samples.length; gcEvents += p.gcEvents.length; gcSeries += p.gc.size; } \
         let bins = 0; for (const r of st.bins.values()) bins += r.fine.length + r.coarse.length; \
         s.counts = {procs: st.procs.size, samples, gcSnaps: st.gcSnaps.length, gcSeries, gcEvents, bins, lifecycle: st.lifecycle.length, life: st.life.size, slow: st.slow.size}; \
         return s;")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: minutes long, prints figures"]
async fn ui_smoothness_with_200_processes() {
    let seconds = env_num("UI_BENCH_SECONDS", 600);
    let procs = env_num("UI_BENCH_PROCESSES", 616);
    let serve = Serve::start(bin(), &[]);
    // replay must outlast warm-up, the measured run and the per-tab runs
    let duration = (env_num("UI_BENCH_WARMUP", 75) + seconds + 4 * 35 + 60).to_string();
    let procs_s = procs.to_string();
    let _replay = replay_corpus_spawn(
        &serve.sock,
        &[
            "--realtime",
            "--loop",
            "--restamp",
            "--processes",
            &procs_s,
            "--duration",
            &duration,
        ],
    );
    let b = Browser::start(1600, 1000).await;
    b.client.goto(&serve.page_url()).await.expect("open page");
    b.wait_true(
        "return !!(window.__telemetry && window.__telemetry.conn.state === 'open' && window.__telemetry.store.procs.size > 0);",
        "page shows data",
    )
    .await;
    // Warm-up: fill the 60 s windows and the JIT.
    let warm = Duration::from_secs(env_num("UI_BENCH_WARMUP", 75));
    tokio::time::sleep(warm).await;
    b.js("window.__telemetryPerf.reset(); return true;").await;
    println!("ui_bench: {procs} synthetic pids (replay --processes), {seconds} s measured after {warm:?} warm-up, tab overview");
    println!(
        "{:>6} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "t_s", "live", "redraws", "draw_p50", "draw_p95", "draw_max", "upd_p95", "heap_MB", "lost"
    );
    let t0 = Instant::now();
    let mut heaps = Vec::new();
    let mut intervals: Vec<f64> = Vec::new();
    b.js("window.__telemetryPerf.interval(); return true;")
        .await;
    let mut last = Value::Null;
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(
            Duration::from_secs(30).min(
                Duration::from_secs(seconds)
                    .saturating_sub(t0.elapsed())
                    .max(Duration::from_secs(1)),
            ),
        )
        .await;
        let r = reading(&b).await;
        let heap = f(&r["heap"]["used"]) / 1048576.0;
        heaps.push(heap);
        println!(
            "{:>6.0} {:>6} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.3} {:>9.1} {:>9}",
            t0.elapsed().as_secs_f64(),
            r["visible"],
            r["redraws"],
            f(&r["redrawP50"]),
            f(&r["redrawP95"]),
            f(&r["redrawMax"]),
            f(&r["updateP95"]),
            heap,
            r["lost"]
        );
        println!(
            "         this interval: {} redraws, p50 {:.2} p95 {:.2} max {:.2} ms; sections p95 ms (cumulative): {}; data lag {:.1} s; processes known {}; store {}",
            r["interval"]["n"],
            f(&r["interval"]["p50"]),
            f(&r["interval"]["p95"]),
            f(&r["interval"]["max"]),
            r["sectionsP95"],
            f(&r["lag"]),
            r["known"],
            r["counts"]
        );
        intervals.push(f(&r["interval"]["p95"]));
        last = r;
    }
    let (min, max) = heaps
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &h| (a.min(h), b.max(h)));
    let first = heaps.first().copied().unwrap_or(f64::NAN);
    let lastheap = heaps.last().copied().unwrap_or(f64::NAN);
    println!(
        "ui_bench overview: redraw p95 {:.2} ms (p50 {:.2}, max {:.2}) over {} redraws; update p95 {:.3} ms over {} messages",
        f(&last["redrawP95"]),
        f(&last["redrawP50"]),
        f(&last["redrawMax"]),
        last["redrawSamples"],
        f(&last["updateP95"]),
        last["updates"]
    );
    let mut sorted = intervals.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    println!(
        "ui_bench overview: per-30 s redraw p95: median {:.2} ms, worst {:.2} ms, {} of {} intervals under 16 ms",
        sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN),
        intervals.iter().filter(|&&v| v < 16.0).count(),
        intervals.len()
    );
    println!(
        "ui_bench heap: first {first:.1} MB, last {lastheap:.1} MB, min {min:.1}, max {max:.1} ({:+.1}% last vs first, spread {:.1}% of first)",
        (lastheap / first - 1.0) * 100.0,
        (max - min) / first * 100.0
    );
    let tabs = std::env::var("UI_BENCH_TABS").unwrap_or_default();
    let tabs: Vec<&str> = match tabs.as_str() {
        "" | "0" => vec![],
        "1" => vec!["capacity", "processes", "gc", "slow"],
        list => list.split(',').map(str::trim).collect(),
    };
    for tab in tabs {
        b.js(&format!(
            "document.querySelector('.tab-btn[data-tab={tab}]').click(); return true;"
        ))
        .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        b.js("window.__telemetryPerf.reset(); return true;").await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        let r = reading(&b).await;
        println!(
            "ui_bench tab {tab}: redraw p95 {:.2} ms (p50 {:.2}, max {:.2}) over {} redraws, {} live processes",
            f(&r["redrawP95"]),
            f(&r["redrawP50"]),
            f(&r["redrawMax"]),
            r["redrawSamples"],
            r["visible"]
        );
        println!("         sections p95 ms: {}", r["sectionsP95"]);
    }
    println!(
        "ui_bench page errors: {}",
        b.js("return window.__telemetryErrors || [];").await
    );
    assert!(
        last["redraws"].as_u64().unwrap_or(0) > 0,
        "the page redrew during the run"
    );
    b.close().await;
}
