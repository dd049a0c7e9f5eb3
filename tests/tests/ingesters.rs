//! Our datagrams through real ingesters: ours (`mod_wsgi-telemetry serve`,
//! `/api/state`, `dump`) and the reference (mod_wsgi-telemetry 1.1.0 from
//! PyPI, in a throwaway venv created by scripts/ref-venv.sh).

use std::io::BufRead;
use std::process::{Command, Stdio};

use integration_tests::*;
use serde_json::Value;

// Long enough for several heartbeats: the active entry is replaced by the
// completed one under the same key, so it is only visible while running.
const SLEEP_MS: u64 = 1600;

/// A known mix; returns (requests, 2xx, 4xx, 5xx, input bytes, output bytes).
fn mix(httpd: &Httpd, during_sleep: impl FnOnce()) -> (u64, u64, u64, u64, u64, u64) {
    for _ in 0..4 {
        assert_eq!(httpd.get("/app/hello").0, 200);
    }
    for _ in 0..2 {
        assert_eq!(httpd.get("/app/notfound").0, 404);
    }
    assert_eq!(httpd.get("/app/error").0, 500);
    assert_eq!(httpd.request("POST", "/app/post", &[b'z'; 300], "t").0, 200);
    assert_eq!(httpd.get("/app/size/777").0, 200);
    std::thread::scope(|s| {
        let h = s.spawn(|| httpd.get(&format!("/app/sleep/{SLEEP_MS}")).0);
        during_sleep();
        assert_eq!(h.join().unwrap(), 200);
    });
    (10, 7, 2, 1, 300, 4 * 5 + 2 * 4 + 3 + 777 + 5)
}

fn slow_entries(state: &Value) -> Vec<Value> {
    state["slow_requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["entry"].clone())
        .filter(|e| e["path_info"] == format!("/sleep/{SLEEP_MS}"))
        .collect()
}

fn stopped_pids_in(state: &Value) -> Vec<u64> {
    state_stopped(state)
        .iter()
        .filter_map(|e| e["pid"].as_u64())
        .collect()
}

fn our_ingester_api_state(mpm: Mpm) {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Ingester::serve(&ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let opts = Options::telemetry(mpm, &sock, 0.5, "WSGISlowRequests 0.25");
    let mut httpd = Httpd::start_in(root, &opts);
    let (n, s2, s4, s5, inb, outb) = mix(&httpd, || {
        let st = ing.wait_for("active slow request in /api/state", |st| {
            slow_entries(st).iter().any(|e| e["state"] == 0)
        });
        assert_eq!(st["decode_errors"], 0);
    });
    httpd.stop();
    let st = ing.wait_for("every child's STOPPED", |st| {
        let stopped = stopped_pids_in(st);
        let pids: Vec<u64> = st["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["pid"].as_u64())
            .collect();
        !pids.is_empty() && pids.iter().all(|p| stopped.contains(p))
    });
    assert_eq!(st["decode_errors"], 0);
    assert_eq!(state_sum(&st, "request_count"), n);
    assert_eq!(state_sum(&st, "status_2xx_total"), s2);
    assert_eq!(state_sum(&st, "status_4xx_total"), s4);
    assert_eq!(state_sum(&st, "status_5xx_total"), s5);
    assert_eq!(
        state_sum(&st, "status_1xx_total") + state_sum(&st, "status_3xx_total"),
        0
    );
    assert_eq!(state_sum(&st, "input_bytes_total"), inb);
    assert_eq!(state_sum(&st, "output_bytes_total"), outb);
    let done: Vec<Value> = slow_entries(&st)
        .into_iter()
        .filter(|e| e["state"] == 1)
        .collect();
    assert_eq!(
        done.len(),
        1,
        "the heartbeat entry is replaced by the completed one"
    );
    assert_eq!(done[0]["status"], 200);
    assert!(done[0]["duration"].as_f64().unwrap() >= SLEEP_MS as f64 / 1000.0);
    for p in st["processes"].as_array().unwrap() {
        assert_eq!(p["mpm_name"], mpm.name());
        assert_eq!(p["mod_wsgi_version"], "4.9.4");
    }
}

/// Per process in an `/api/state`: (pid, sequence gaps the ingester saw,
/// newest REQUEST sample).
fn gaps_and_newest(st: &Value) -> Vec<(u64, u64, Value)> {
    st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let newest = p["samples"]
                .as_array()
                .and_then(|v| v.iter().rev().find(|s| s["kind"] == "request_metrics"))
                .cloned()
                .unwrap_or(Value::Null);
            (
                p["pid"].as_u64().unwrap(),
                p["drops"].as_u64().unwrap(),
                newest,
            )
        })
        .collect()
}

fn our_ingester_frozen_then_resumed(mpm: Mpm) {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Ingester::serve(&ingester_bin(), &sock, &["--socket-mode", "0666"]);
    const INTERVAL: f64 = 0.5;
    // Every child httpd may run is started now: none starts while the
    // ingester is frozen, whose first datagrams (STARTED, seq 1) would be
    // lost where no gap can show.
    let extra = format!(
        "WSGISlowRequests 0.000001\nStartServers {}",
        mpm.server_limit()
    );
    let opts = Options::telemetry(mpm, &sock, INTERVAL, &extra);
    let mut httpd = Httpd::start_in(root, &opts);
    let st = ing.wait_for("every child's first REQUEST", |st| {
        state_counts(st).len() == mpm.server_limit()
    });
    let pids: Vec<u32> = state_counts(&st).keys().map(|&p| p as u32).collect();
    assert_eq!(
        {
            let mut c = httpd.children();
            c.sort();
            c
        },
        pids,
        "the ingester knows every child"
    );
    ing.freeze(true);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stopped_at = std::thread::scope(|sc| {
        // Load flows all along (every request also makes a slow record,
        // one more datagram); one request at a time.
        let client = sc.spawn(|| {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                assert_eq!(
                    httpd.get("/app/hello").0,
                    200,
                    "served while the ingester is stopped"
                );
                n += 1;
            }
            n
        });
        // As long as it takes: queue full, then a tick of every reporter.
        overflow_receiver_queue(&sock, &pids);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let n = client.join().unwrap();
        eprintln!("{n} requests served while the ingester was stopped");
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    });
    ing.freeze(false);
    // Both sides count every datagram lost: the reporter in field 19 of its
    // next REQUEST, the ingester as a gap in the sequence numbers. Compared
    // once each process's two newest REQUESTs come from ticks after the
    // thaw (so every datagram refused precedes them) and agree (nothing
    // refused between them: the ingester had caught up).
    let newer = |s: &Value| s["stamp"].as_f64().unwrap_or(0.0) > stopped_at + INTERVAL;
    let st = ing.wait_for("two REQUESTs of each process after the thaw", |st| {
        st["processes"].as_array().unwrap().iter().all(|p| {
            let r: Vec<&Value> = p["samples"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["kind"] == "request_metrics")
                .collect();
            r.len() >= 2 && {
                let (a, b) = (r[r.len() - 2], r[r.len() - 1]);
                newer(a) && drop_counter(&a["fields"]) == drop_counter(&b["fields"])
            }
        })
    });
    let mut total = 0;
    for (pid, gaps, newest) in gaps_and_newest(&st) {
        let dropped = drop_counter(&newest["fields"]).unwrap();
        assert!(
            dropped > 0,
            "pid {pid} ticked with the queue full: a datagram refused"
        );
        assert_eq!(
            gaps, dropped,
            "pid {pid}: sequence gaps seen by the ingester vs datagrams the reporter could not send"
        );
        total += gaps;
    }
    assert_eq!(st["seq_gaps"], total);
    assert_eq!(st["decode_errors"], 0);
    let before = state_sum(&st, "request_count");
    for _ in 0..10 {
        assert_eq!(httpd.get("/app/hello").0, 200);
    }
    ing.wait_for("datagrams flow again", |st| {
        state_sum(st, "request_count") >= before + 10
    });
    httpd.stop();
}

fn reference_ingester_interop(mpm: Mpm) {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Ingester::serve(&reference_ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let opts = Options::telemetry(mpm, &sock, 0.5, "WSGISlowRequests 0.25");
    let mut httpd = Httpd::start_in(root, &opts);
    let (n, s2, _, s5, _, outb) = mix(&httpd, || {});
    httpd.stop();
    let st = ing.wait_for("every child's STOPPED in the reference", |st| {
        let stopped = stopped_pids_in(st);
        let c = state_counts(st);
        !c.is_empty() && c.keys().all(|p| stopped.contains(p))
    });
    assert_eq!(
        st["decode_errors"], 0,
        "the reference decodes every datagram"
    );
    // Same request counts per process as each process says it served.
    let counts = state_counts(&st);
    for e in state_stopped(&st) {
        let pid = e["pid"].as_u64().unwrap();
        assert_eq!(
            counts.get(&pid).copied(),
            e["lifetime_request_count"].as_u64(),
            "pid {pid}"
        );
    }
    assert_eq!(counts.values().sum::<u64>(), n);
    assert_eq!(state_sum(&st, "status_2xx_total"), s2);
    assert_eq!(state_sum(&st, "status_5xx_total"), s5);
    assert_eq!(state_sum(&st, "output_bytes_total"), outb);
    let done: Vec<Value> = slow_entries(&st)
        .into_iter()
        .filter(|e| e["state"] == 1)
        .collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["status"], 200);
}

fn dump_shows_our_datagrams(mpm: Mpm) {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let mut dump = Command::new(ingester_bin())
        .args(["dump", "--socket-mode", "0666", "--count", "4", "--listen"])
        .arg(format!("unix:{}", sock.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dump");
    let t0 = std::time::Instant::now();
    while !sock.exists() {
        assert!(t0.elapsed() < PATIENCE, "dump did not bind");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let opts = Options::telemetry(mpm, &sock, 0.5, "");
    let httpd = Httpd::start_in(root, &opts);
    assert_eq!(httpd.get("/app/hello").0, 200);
    let out = std::io::BufReader::new(dump.stdout.take().unwrap());
    let text: Vec<String> = out.lines().map_while(Result::ok).collect();
    let _ = dump.wait();
    drop(httpd);
    let all = text.join("\n");
    assert!(all.contains("kind=process_started"), "{all}");
    assert!(all.contains("kind=request_metrics"), "{all}");
    assert!(
        all.contains("mpm_name") && all.contains(mpm.name()),
        "{all}"
    );
    assert!(all.contains("status_2xx_total"), "{all}");
    assert!(!all.contains("decode error"), "{all}");
}

both_mpms!(
    our_ingester_api_state,
    our_ingester_frozen_then_resumed,
    reference_ingester_interop,
    dump_shows_our_datagrams
);
