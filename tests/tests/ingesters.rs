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

fn our_ingester_frozen_then_resumed(mpm: Mpm) {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Ingester::serve(&ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let opts = Options::telemetry(mpm, &sock, 0.5, "WSGISlowRequests 0.000001");
    let mut httpd = Httpd::start_in(root, &opts);
    ing.wait_for("first samples", |st| !state_counts(st).is_empty());
    ing.freeze(true);
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| {
                for _ in 0..500 {
                    assert_eq!(
                        httpd.get("/app/hello").0,
                        200,
                        "served while the ingester is stopped"
                    );
                }
            });
        }
    });
    ing.freeze(false);
    let dropped = |st: &Value| -> u64 {
        st["processes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["samples"].as_array().cloned().unwrap_or_default())
            .filter_map(|s| drop_counter(&s["fields"]))
            .max()
            .unwrap_or(0)
    };
    ing.wait_for("drop counter in /api/state", |st| dropped(st) > 0);
    let before = state_sum(&ing.state(), "request_count");
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
