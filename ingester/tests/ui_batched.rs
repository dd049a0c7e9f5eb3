//! The UI's batched stream (`/ws?batch=MS`) in real Chromium against the
//! real `serve` and `replay`: a page on the batched stream and a page on the
//! per-datagram stream, both open while the same datagrams arrive, end up
//! with the same model and show the same figures (GC timeline, pauses and
//! rates, event log, slow requests, lifecycle, stopped processes, counters).

mod ui_support;

use serde_json::Value;
use ui_support::{bin, replay_corpus, replay_corpus_spawn, Browser, KillTree, Serve};

/// The page's model, reduced to what the views read: per process its
/// samples, statistics, lifecycle and GC series (10 s sums, pause
/// histograms, snapshots) and the timeline's raw events; the lifecycle
/// log, slow requests, histogram bins and counters.
const DIGEST: &str = r#"
const app = window.__telemetry, st = app.store;
const r = (x) => (x == null || !Number.isFinite(x) ? x : Math.round(x * 1e9) / 1e9);
const procs = [...st.procs.values()].sort((a, b) => a.pid - b.pid).map((p) => {
  const names = new Map([...p.gc.entries()].map(([n, gs]) => [gs.sid, n]));
  const gc = [...p.gc.entries()].sort().map(([interp, gs]) => {
    const bins = [];
    for (let o = 0; o < gs.sec.length; o += 6) if (!Number.isNaN(gs.sec[o])) bins.push([gs.sec[o], r(gs.sec[o + 1]), gs.sec[o + 2], gs.sec[o + 3], gs.sec[o + 4], r(gs.sec[o + 5])]);
    bins.sort((a, b) => a[0] - b[0]);
    const hist = [];
    for (let k = 0; k < gs.histSec.length; k++) if (!Number.isNaN(gs.histSec[k])) hist.push([gs.histSec[k], [...gs.hist.subarray(k * 65, k * 65 + 65)].join(' ')]);
    hist.sort((a, b) => a[0] - b[0]);
    const snap = gs.latest >= 0 ? st.gcSnaps.object(gs.latest) : null;
    return { interp, snaps: gs.snaps, bins, hist, latest: snap };
  });
  const evs = p.gcEvents, events = [];
  for (let i = 0; i < evs.length; i++) { const j = evs.slot(i); events.push([evs.t[j], evs.dur[j], evs.gen[j], names.get(evs.sid[j])]); }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const s = app.stats(p);
  // Series whose timeline events were thinned by the batched stream.
  const thinned = [...p.gc.values()].some((gs) => gs.rawFrom > -Infinity);
  return { pid: p.pid, thinned, group: p.group, samples: p.samples.length, lastT: p.lastT, startedAt: p.startedAt, stoppingAt: p.stoppingAt,
    stoppedAt: p.stoppedAt, live: st.isLive(p), stopped: st.isRecentlyStopped(p), stats: JSON.stringify(s.stats), verdict: JSON.stringify(s.verdict), gc, events };
});
const life = [...st.life.values()].sort((a, b) => a.pid - b.pid);
const slow = [...st.slow.values()].map((s) => [s.ks, s.entry.state, s.entry.duration, s.seen]).sort();
const h = st.histogram('request_time', 600, () => true);
return { procs, life, lifecycle: st.lifecycle.length, slow, now: st.now, datagrams: st.datagrams, decodeErrors: st.decodeErrors,
  seqGaps: st.seqGaps, requestHist: [...h.counts].join(' '), batched: st.batched };
"#;

/// Text the GC tab, the sidebar and the top bar show.
const SHOWN: &str = r#"
const t = (sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent).join(' | ');
return { gc: ['#gc-status', '#ro-gc-overhead', '#ro-gc-rate', '#ro-gc-events', '#ro-gc-pauses'].map(t),
  cards: t('#proc-cards .pcard'), counter: t('#counter') };
"#;

async fn open(serve: &Serve, query: &str) -> Browser {
    let b = Browser::start(1400, 900).await;
    b.client
        .goto(&format!("{}{query}", serve.page_url()))
        .await
        .expect("open page");
    b.wait_true(
        "return !!(window.__telemetry && window.__telemetry.conn.state === 'open' && window.__telemetry.store.snapshotCount > 0);",
        "connected",
    )
    .await;
    b
}

/// The WebSocket URL the page connected to.
async fn ws_url(b: &Browser) -> String {
    b.js("return window.__telemetry.conn.url;")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Both pages' event rings hold a process's newest events; compare the
/// stretch both still hold.
fn common_events(a: &Value, b: &Value) -> (Vec<Value>, Vec<Value>) {
    let (a, b) = (a.as_array().unwrap(), b.as_array().unwrap());
    let from = |l: &Vec<Value>| l.first().map_or(f64::MIN, |e| e[0].as_f64().unwrap());
    let cut = from(a).max(from(b));
    let keep = |l: &Vec<Value>| -> Vec<Value> {
        l.iter()
            .filter(|e| e[0].as_f64().unwrap() > cut)
            .cloned()
            .collect()
    };
    (keep(a), keep(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_page_shows_what_a_per_datagram_page_shows() {
    let serve = Serve::start(bin(), &[]);
    let per_datagram = open(&serve, "?stream=datagram").await;
    let batched = open(&serve, "?batch=250").await;
    assert!(ws_url(&per_datagram).await.ends_with("/ws"));
    assert!(ws_url(&batched).await.ends_with("/ws?batch=250"));
    // The capture up to its final shutdown (datagram 11,787: five
    // processes still live, three just stopped), twice as fast as recorded
    // (~37 s), stamps shifted to now: live messages, not a snapshot. (A
    // 250 ms frame then holds a few dozen GC events per series, within the
    // timeline's budget.)
    replay_corpus(
        &serve.sock,
        &[
            "--realtime",
            "--speed",
            "2",
            "--restamp",
            "--count",
            "11787",
        ],
    );
    let total = serve.total_received();
    assert_eq!(total, 11_787);
    for b in [&per_datagram, &batched] {
        b.wait_true(
            &format!("return window.__telemetry.store.datagrams === {total};"),
            "every datagram told to the page",
        )
        .await;
    }
    let perf = batched
        .js("const s = window.__telemetryPerf.summary(); return { byType: s.byType, redraws: s.redraws };")
        .await;
    let frames = perf["byType"]["batch"].as_u64().unwrap_or(0);
    assert!(frames >= 10, "{perf}");
    assert_eq!(perf["byType"].as_object().unwrap().len(), 2, "{perf}"); // snapshot + batch
    for b in [&per_datagram, &batched] {
        b.js("window.__telemetry.selectTab('gc'); return true;")
            .await;
    }
    // Both pages show everything they hold: the GC tab drawn, no redraw
    // scheduled (the sidebar's data redraws are throttled to one a second)
    // or spread over frames.
    for b in [&per_datagram, &batched] {
        b.wait_true(
            "return window.__telemetry.settled();",
            "the GC tab and the sidebar drawn from the newest data",
        )
        .await;
    }
    let (a, b) = (per_datagram.js(DIGEST).await, batched.js(DIGEST).await);
    assert_eq!(a["batched"], false);
    assert_eq!(b["batched"], true);
    for k in [
        "now",
        "datagrams",
        "decodeErrors",
        "seqGaps",
        "lifecycle",
        "life",
        "slow",
        "requestHist",
    ] {
        assert_eq!(a[k], b[k], "{k}");
    }
    let (pa, pb) = (
        a["procs"].as_array().unwrap(),
        b["procs"].as_array().unwrap(),
    );
    assert_eq!(pa.len(), pb.len());
    assert!(pa.len() >= 5);
    let mut events = 0;
    let mut thinned = 0;
    for (x, y) in pa.iter().zip(pb) {
        let pid = &x["pid"];
        for k in [
            "pid",
            "group",
            "samples",
            "lastT",
            "startedAt",
            "stoppingAt",
            "stoppedAt",
            "live",
            "stopped",
            "stats",
            "verdict",
            "gc",
        ] {
            assert_eq!(x[k], y[k], "pid {pid}: {k}");
        }
        // A handful of processes: every GC event goes to the timeline,
        // unless a frame held more than the budget (a burst on a loaded
        // machine): then the batched page has some of them.
        let (ea, eb) = common_events(&x["events"], &y["events"]);
        if y["thinned"] == true {
            thinned += 1;
            assert!(
                eb.iter().all(|e| ea.contains(e)),
                "pid {pid}: thinned events not a subset"
            );
        } else {
            assert_eq!(ea, eb, "pid {pid}: GC timeline events");
        }
        events += ea.len();
    }
    println!("{events} GC timeline events compared; {thinned} processes thinned");
    assert!(events > 100, "{events} GC events compared");
    assert!(!a["slow"].as_array().unwrap().is_empty());
    let (sa, sb) = (per_datagram.js(SHOWN).await, batched.js(SHOWN).await);
    if thinned == 0 {
        assert_eq!(sa, sb);
    } else {
        // "events N (newest M drawn)": M counts the dots drawn.
        assert_eq!(
            (&sa["cards"], &sa["counter"], &sa["gc"][4]),
            (&sb["cards"], &sb["counter"], &sb["gc"][4])
        );
    }
    assert!(sa["gc"][3].as_str().unwrap().starts_with("events "), "{sa}");
    for b in [&per_datagram, &batched] {
        assert_eq!(b.errors().await, Vec::<String>::new());
    }
    batched.screenshot("batched-gc").await;
    per_datagram.close().await;
    batched.close().await;
}

/// A batched page joining while datagrams arrive, and reconnecting, loses
/// and doubles nothing: its counters and samples match the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_page_joining_mid_stream_counts_every_datagram_once() {
    let serve = Serve::start(bin(), &[]);
    let replay = replay_corpus_spawn(&serve.sock, &["--realtime", "--speed", "8", "--restamp"]);
    // Joins a few seconds into the replay.
    ui_support::wait_until("the replay to start", || serve.total_received() > 2_000);
    let b = open(&serve, "").await;
    assert!(ws_url(&b).await.ends_with("/ws?batch=500"));
    // Reconnect half-way (a fresh snapshot, then frames from its batch_seq).
    ui_support::wait_until("more datagrams", || serve.total_received() > 6_000);
    b.js("window.__telemetry.conn.ws.close(); return true;")
        .await;
    drop(replay_wait(replay));
    let total = serve.total_received();
    assert_eq!(total, 11_888);
    b.wait_true(
        &format!("return window.__telemetry.store.datagrams === {total} && window.__telemetry.store.snapshotCount >= 2;"),
        "every datagram counted after the reconnect",
    )
    .await;
    // Samples kept per process equal the server's (within the page's
    // 90 s retention, which keeps all of an 81 s capture).
    let state = serve.api_state("");
    let page = b
        .js("const o = {}; for (const p of window.__telemetry.store.procs.values()) o[p.pid] = p.samples.length; return o;")
        .await;
    let mut compared = 0;
    for p in state["processes"].as_array().unwrap() {
        let pid = p["pid"].to_string();
        let want = p["samples"].as_array().unwrap().len() as u64;
        if let Some(got) = page[&pid].as_u64() {
            assert_eq!(got, want, "pid {pid}: samples");
            compared += 1;
        }
    }
    assert!(compared >= 5, "{compared} processes compared");
    assert_eq!(b.errors().await, Vec::<String>::new());
    b.close().await;
}

/// Waits for a background replay to end.
fn replay_wait(mut g: KillTree) -> KillTree {
    ui_support::wait_exit(&mut g.0, "replay");
    g
}

/// A bad interval is refused before the upgrade, with the range in one line.
#[test]
fn a_bad_batch_interval_is_refused() {
    let serve = Serve::start(bin(), &[]);
    for bad in ["5", "99999", "fast"] {
        let (status, _, body) = serve.http(&format!(
            "GET /ws?batch={bad} HTTP/1.1\r\nHost: {{HOST}}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ));
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(
            body.trim(),
            format!("batch must be milliseconds between 100 and 5000, got '{bad}'")
        );
    }
}
