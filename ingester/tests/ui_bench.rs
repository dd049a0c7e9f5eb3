//! Benchmarks of the browser UI (not timed tests: they print figures and
//! assert nothing about time).
//!
//! `ui_smoothness_with_200_processes`: redraw and update timings.
//!
//! `replay --realtime --loop --restamp --stagger --processes N` plays the
//! corpus as N synthetic processes; the capture has ≈ 4.8 processes alive
//! at any moment out of 22; the copies are staggered over the capture's
//! span (`--stagger`), so the default N = 616 (28 copies) keeps about 130
//! processes live at every moment (120-135 measured 2026-12-08) (in step, without `--stagger`, the live
//! count swung between 0 and 140 within seconds), each
//! sending 1 sample/s (plus their GC, slow-request and lifecycle
//! datagrams). The page's own instrumentation (`window.__telemetryPerf`,
//! performance.now() around every update and redraw) and the JS heap (after
//! a forced GC) are read every 30 s.
//!
//! Run: `cargo test --release -p mod_wsgi-telemetry --test ui_bench -- --ignored --nocapture`
//! Env: UI_BENCH_SECONDS (default 600), UI_BENCH_PROCESSES (default 616),
//! UI_BENCH_TABS=1 to also measure every other tab for 30 s at the end
//! (or a list, e.g. UI_BENCH_TABS=capacity,gc), UI_BENCH_WARMUP (default 75).
//!
//! `ui_cost_ours_against_the_reference`: what an open UI costs, ours
//! (batched and per-datagram stream) against the reference's
//! (mod_wsgi-telemetry 1.1.0), in the same run on the same feed (figures
//! and ratios, nothing asserted about time).
//!
//! For each size N (busy processes), our `serve` and the reference's are
//! each fed by their own `replay --realtime --loop --restamp --stagger
//! --processes P --drop-field 8` (P ≈ 3.08 × N synthetic pids: about 0.68 × N
//! live at every moment, as above; field 8 is dropped for both because the reference cannot
//! serialise GC datagrams carrying it, `docs/compatibility.md` C11). Then,
//! one window each:
//! - no client: each server's own CPU (ingest only);
//! - 1, then K raw WebSocket clients reading everything (ours batched plus
//!   the reference's stream; then ours per-datagram): `serve` CPU per extra
//!   client = (CPU with K − CPU with 1) / (K − 1), and bytes/s per client;
//! - three headless Chromiums, one per UI (ours batched, ours per-datagram,
//!   the reference's): each browser's CPU (every process under its
//!   chromedriver, utime + stime from /proc), the page's redraw p95 (ours:
//!   `window.__telemetryPerf`), JS heap after a forced GC at the start and
//!   end of the window.
//!
//! A page's "live processes shown" is the mean (and range) over the
//! window's redraws.
//!
//! CPU figures are in cores (CPU seconds per second of wall time); on a
//! machine loaded by other work they are inflated, so compare the ratios.
//!
//! Run: `cargo test --release -p mod_wsgi-telemetry --test ui_bench ui_cost -- --ignored --nocapture`
//! Env: UI_COST_SIZES (default "50,200,1000"), UI_COST_WINDOW (seconds per
//! window, default 60), UI_COST_WARMUP (default 45), UI_COST_CLIENTS (K,
//! default 5), UI_COST_BATCH_MS (default 500), UI_COST_HEAP_MINUTES (0: off;
//! else one extra run of that many minutes at the first size, batched page
//! only, heap read every minute).

mod ui_support;

use futures_util::StreamExt;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ui_support::{bin, replay_corpus_spawn, Browser, KillTree, Serve};

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
            "--stagger",
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

/// Clock ticks per second of /proc's utime/stime.
fn ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// (pid, ppid, utime + stime in ticks) of every process.
fn procs() -> Vec<(u32, u32, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let v: Vec<&str> = rest.split_whitespace().collect();
        // rest: state(0) ppid(1) ... utime(11) stime(12), all threads
        let num = |i: usize| v.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        out.push((pid, num(1) as u32, num(11) + num(12)));
    }
    out
}

/// CPU ticks of `root` and every process under it, now.
fn tree_ticks(root: u32) -> u64 {
    let all = procs();
    let mut total = 0;
    let mut frontier = vec![root];
    let mut seen = Vec::new();
    while let Some(p) = frontier.pop() {
        if seen.contains(&p) {
            continue;
        }
        seen.push(p);
        for &(pid, ppid, t) in &all {
            if pid == p {
                total += t;
            }
            if ppid == p {
                frontier.push(pid);
            }
        }
    }
    total
}

/// Children of this test process named `name` (to find a chromedriver).
fn own_children(name: &str) -> Vec<u32> {
    let me = std::process::id();
    procs()
        .into_iter()
        .filter(|&(pid, ppid, _)| {
            ppid == me
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim() == name)
                    .unwrap_or(false)
        })
        .map(|(pid, _, _)| pid)
        .collect()
}

/// A browser on a page, with the pid of its chromedriver (whose process
/// tree is the browser).
struct Ui {
    name: &'static str,
    browser: Browser,
    driver: u32,
    ours: bool,
}

async fn open_ui(name: &'static str, url: &str, ours: bool) -> Ui {
    let before = own_children("chromedriver");
    let browser = Browser::start(1600, 1000).await;
    let driver = own_children("chromedriver")
        .into_iter()
        .find(|p| !before.contains(p))
        .expect("the new chromedriver");
    browser.client.goto(url).await.expect("open page");
    Ui {
        name,
        browser,
        driver,
        ours,
    }
}

/// JS heap in use after a full collection (DevTools protocol), MB.
async fn heap(ui: &Ui) -> f64 {
    ui.browser.heap_after_gc().await / 1048576.0
}

/// The page's main-thread figures between two DevTools `Performance`
/// readings, per second of wall time: `ThreadTime` (CPU of the renderer's
/// main thread), `TaskDuration` (time inside tasks), `ScriptDuration` and
/// layout + style. Wall-clock task times grow when the machine is loaded;
/// the thread's CPU time less so.
fn main_thread(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, secs: f64) -> String {
    let d = |k: &str| {
        (b.get(k).copied().unwrap_or(f64::NAN) - a.get(k).copied().unwrap_or(f64::NAN)) / secs
    };
    format!(
        "main thread {:.3} core CPU (ThreadTime), in tasks {:.3} s/s, script {:.3} s/s, layout+style {:.4} s/s",
        d("ThreadTime"),
        d("TaskDuration"),
        d("ScriptDuration"),
        d("LayoutDuration") + d("RecalcStyleDuration")
    )
}

/// A raw WebSocket client reading everything (no message size limit: the
/// reference's first snapshot is not bounded); counts messages and bytes.
fn reader(url: String, count: Arc<(AtomicU64, AtomicU64)>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let Ok((ws, _)) =
            tokio_tungstenite::connect_async_with_config(&url, Some(config), false).await
        else {
            eprintln!("ui_cost: cannot connect {url}");
            return;
        };
        let (_tx, mut rx) = ws.split();
        loop {
            match rx.next().await {
                Some(Ok(m)) => {
                    count.0.fetch_add(1, Ordering::Relaxed);
                    count.1.fetch_add(m.len() as u64, Ordering::Relaxed);
                }
                Some(Err(e)) => {
                    eprintln!("ui_cost: {url}: {e}");
                    break;
                }
                None => break,
            }
        }
    })
}

type Count = Arc<(AtomicU64, AtomicU64)>;

/// CPU (cores) of each pid's tree over `secs`, and bytes/s of each reader.
async fn window(pids: &[u32], readers: &[Count], secs: u64) -> (Vec<f64>, Vec<f64>) {
    let t0 = Instant::now();
    let c0: Vec<u64> = pids.iter().map(|&p| tree_ticks(p)).collect();
    let b0: Vec<u64> = readers
        .iter()
        .map(|b| b.1.load(Ordering::Relaxed))
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let dt = t0.elapsed().as_secs_f64();
    let cpu = pids
        .iter()
        .zip(c0)
        .map(|(&p, c)| (tree_ticks(p).saturating_sub(c)) as f64 / ticks() / dt)
        .collect();
    let bps = readers
        .iter()
        .zip(b0)
        .map(|(b, s)| (b.1.load(Ordering::Relaxed) - s) as f64 / dt)
        .collect();
    (cpu, bps)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Runs `k` readers of `url` for one window; (serve CPU of both servers,
/// mean bytes/s per reader).
async fn with_readers(url: &str, k: usize, pids: &[u32], secs: u64) -> (Vec<f64>, f64) {
    let counters: Vec<Count> = (0..k).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = counters
        .iter()
        .map(|c| reader(url.to_string(), c.clone()))
        .collect();
    // Past the first snapshot (the reference's can take long): every
    // reader has had it and a live message, then 3 s more.
    let t0 = Instant::now();
    while counters.iter().any(|c| c.0.load(Ordering::Relaxed) < 2)
        && t0.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if t0.elapsed() >= Duration::from_secs(120) {
        println!("  (some {url} readers had no live message after 120 s)");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu, bps) = window(pids, &counters, secs).await;
    for t in tasks {
        t.abort();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    (cpu, mean(&bps))
}

async fn run_size(n: u64) {
    let secs = env_num("UI_COST_WINDOW", 60);
    let k = env_num("UI_COST_CLIENTS", 5).max(2) as usize;
    let batch_ms = env_num("UI_COST_BATCH_MS", 500);
    let pids_n = (n as f64 * 3.08).round() as u64;
    let ours = Serve::start(bin(), &["--max-processes", "20000"]);
    let theirs = Serve::reference();
    let args = |s: &Serve| -> KillTree {
        let p = pids_n.to_string();
        replay_corpus_spawn(
            &s.sock,
            &[
                "--realtime",
                "--loop",
                "--restamp",
                "--stagger",
                "--processes",
                &p,
                "--drop-field",
                "8",
                "--duration",
                "100000",
            ],
        )
    };
    let _feed_ours = args(&ours);
    let _feed_theirs = args(&theirs);
    let pids = [ours.child.id(), theirs.child.id()];
    tokio::time::sleep(Duration::from_secs(env_num("UI_COST_WARMUP", 45))).await;
    // Processes tracked (a snapshot within the default budget lists some
    // and counts the rest as omitted).
    let state = ours.api_state("?budget=3500000");
    let live = state["processes"].as_array().map_or(0, |a| a.len() as u64)
        + state["processes_omitted"].as_u64().unwrap_or(0);
    println!("ui_cost N={n}: {pids_n} synthetic pids, {live} processes tracked by our serve; windows of {secs} s; K={k} clients; batch {batch_ms} ms; load {}", load());
    let (idle, _) = window(&pids, &[], secs).await;
    println!(
        "  no client:        serve ours {:.3} core, reference {:.3} core",
        idle[0], idle[1]
    );
    let batched = format!("{}?batch={batch_ms}", ours.url());
    let datagram = ours.url();
    let reference = theirs.url();
    let mut rows = Vec::new();
    for (name, url, which) in [
        ("ours batched", &batched, 0),
        ("ours per-datagram", &datagram, 0),
        ("reference", &reference, 1),
    ] {
        let (c1, b1) = with_readers(url, 1, &pids, secs).await;
        let (ck, bk) = with_readers(url, k, &pids, secs).await;
        let per_extra = (ck[which] - c1[which]) / (k - 1) as f64;
        println!(
            "  {name:<18} serve {:.3} core with 1 client, {:.3} with {k}: {:.4} core per extra client (first client {:+.3}); {:.0} B/s per client (1), {:.0} (each of {k})",
            c1[which], ck[which], per_extra, c1[which] - idle[which], b1, bk
        );
        rows.push((name, per_extra, b1));
    }
    // Browsers, one per UI, all open in the same window.
    let uis = vec![
        open_ui(
            "ours batched",
            &format!("{}?batch={batch_ms}", ours.page_url()),
            true,
        )
        .await,
        open_ui(
            "ours per-datagram",
            &format!("{}?stream=datagram", ours.page_url()),
            true,
        )
        .await,
        open_ui("reference", &theirs.page_url(), false).await,
    ];
    // Every page connected and past its first snapshot (a 1,000-process
    // snapshot on a loaded machine takes a while), then 20 s to settle.
    for ui in &uis {
        let ready = if ui.ours {
            "return !!(window.__telemetry && window.__telemetry.conn.state === 'open' && window.__telemetry.store.snapshotCount > 0);"
        } else {
            "return document.readyState === 'complete';"
        };
        let t0 = Instant::now();
        while ui.browser.client.execute(ready, vec![]).await.ok() != Some(Value::Bool(true)) {
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "{} never got ready",
                ui.name
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut heap0 = Vec::new();
    for ui in &uis {
        heap0.push(heap(ui).await);
        if ui.ours {
            ui.browser
                .js("window.__telemetryPerf.reset(); window.__telemetryPerf.interval(); window.__bytes0 = window.__telemetryPerf.bytes; window.__t0 = performance.now(); return true;")
                .await;
        }
    }
    let drivers: Vec<u32> = uis.iter().map(|u| u.driver).collect();
    let mut m0 = Vec::new();
    for ui in &uis {
        m0.push(ui.browser.metrics().await);
    }
    let t0 = Instant::now();
    let (cpu, _) = window(&drivers, &[], secs).await;
    let mut m1 = Vec::new();
    for ui in &uis {
        m1.push(ui.browser.metrics().await);
    }
    let dt = t0.elapsed().as_secs_f64();
    let mut browser_cpu = Vec::new();
    for (i, ui) in uis.iter().enumerate() {
        let h1 = heap(ui).await;
        let extra = if ui.ours {
            let r = ui
                .browser
                .js("const s = window.__telemetryPerf.summary(); s.interval = window.__telemetryPerf.interval(); s.bps = (s.bytes - window.__bytes0) / ((performance.now() - window.__t0) / 1000); return s;")
                .await;
            format!(
                "redraw p95 {:.2} ms (p50 {:.2}, {} redraws), update p95 {:.3} ms, {:.0} chars/s received, live processes shown {:.0} on average over the window's redraws ({}-{})",
                f(&r["interval"]["p95"]),
                f(&r["interval"]["p50"]),
                r["interval"]["n"],
                f(&r["updateP95"]),
                f(&r["bps"]),
                f(&r["interval"]["shownMean"]),
                r["interval"]["shownMin"],
                r["interval"]["shownMax"]
            )
        } else {
            String::new()
        };
        println!(
            "  browser {:<18} {:.3} core; {}; JS heap {:.1} → {:.1} MB; {extra}",
            ui.name,
            cpu[i],
            main_thread(&m0[i], &m1[i], dt),
            heap0[i],
            h1
        );
        browser_cpu.push(cpu[i]);
    }
    println!(
        "  ratios ours/reference: browser batched {:.2}, per-datagram {:.2}; serve per extra client batched {:.2}, per-datagram {:.2}; bytes/s per client batched {:.2}, per-datagram {:.2}",
        browser_cpu[0] / browser_cpu[2],
        browser_cpu[1] / browser_cpu[2],
        rows[0].1 / rows[2].1,
        rows[1].1 / rows[2].1,
        rows[0].2 / rows[2].2,
        rows[1].2 / rows[2].2,
    );
    println!("  load after the browser window: {}", load());
    for ui in uis {
        ui.browser.close().await;
    }
}

async fn heap_run(n: u64, minutes: u64) {
    let batch_ms = env_num("UI_COST_BATCH_MS", 500);
    let ours = Serve::start(bin(), &["--max-processes", "20000"]);
    let p = ((n as f64 * 3.08).round() as u64).to_string();
    let _feed = replay_corpus_spawn(
        &ours.sock,
        &[
            "--realtime",
            "--loop",
            "--restamp",
            "--stagger",
            "--processes",
            &p,
            "--duration",
            "100000",
        ],
    );
    let ui = open_ui(
        "ours batched",
        &format!("{}?batch={batch_ms}", ours.page_url()),
        true,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    println!("ui_cost heap run, N={n} ({p} synthetic pids), {minutes} min, batched page: JS heap after a full GC (DevTools), each minute; load {}", load());
    println!(
        "{:>5} {:>8} {:>6}  main thread over the minute",
        "min", "heap_MB", "procs"
    );
    let mut heaps = Vec::new();
    let mut m0 = ui.browser.metrics().await;
    let mut t0 = Instant::now();
    for i in 0..=minutes {
        let h = heap(&ui).await;
        heaps.push(h);
        let m1 = ui.browser.metrics().await;
        let procs = ui
            .browser
            .js("const st = window.__telemetry.store; let n = 0; for (const p of st.procs.values()) if (st.isLive(p)) n++; return n;")
            .await;
        let during = if i == 0 {
            String::new()
        } else {
            main_thread(&m0, &m1, t0.elapsed().as_secs_f64())
        };
        println!("{i:>5} {h:>8.1} {procs:>6}  {during}");
        m0 = m1;
        t0 = Instant::now();
        if i < minutes {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
    // Least-squares slope over the run (MB per minute).
    let k = heaps.len() as f64;
    let mx = (k - 1.0) / 2.0;
    let my = mean(&heaps);
    let (num, den) = heaps
        .iter()
        .enumerate()
        .fold((0.0, 0.0), |(a, b), (i, &h)| {
            (a + (i as f64 - mx) * (h - my), b + (i as f64 - mx).powi(2))
        });
    let (lo, hi) = heaps
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &h| (a.min(h), b.max(h)));
    println!(
        "ui_cost heap: first {:.1} MB, last {:.1} MB, min {lo:.1}, max {hi:.1}; slope {:+.3} MB/min; load {}; page errors {}",
        heaps[0],
        heaps[heaps.len() - 1],
        num / den.max(1e-9),
        load(),
        ui.browser.js("return window.__telemetryErrors || [];").await
    );
    ui.browser.close().await;
}

/// `uptime`'s load averages.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The JS heap of one open batched page over a long run (default 30 min at
/// 200 busy processes), read each minute.
/// Run: `cargo test --release -p mod_wsgi-telemetry --test ui_bench ui_heap -- --ignored --nocapture`
/// Env: UI_HEAP_MINUTES (default 30), UI_HEAP_PROCESSES (busy processes,
/// default 200), UI_COST_BATCH_MS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: half an hour long, prints figures"]
async fn ui_heap_over_time() {
    heap_run(
        env_num("UI_HEAP_PROCESSES", 200),
        env_num("UI_HEAP_MINUTES", 30),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: many minutes long, prints figures"]
async fn ui_cost_ours_against_the_reference() {
    let sizes: Vec<u64> = std::env::var("UI_COST_SIZES")
        .unwrap_or_else(|_| "50,200,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for &n in &sizes {
        run_size(n).await;
    }
    let minutes = env_num("UI_COST_HEAP_MINUTES", 0);
    if minutes > 0 {
        heap_run(sizes.first().copied().unwrap_or(200), minutes).await;
    }
}
