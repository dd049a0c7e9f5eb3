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
    let ing = Serve::at_socket(ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let opts = Options::telemetry(mpm, &sock, 0.5, "WSGISlowRequests 0.25");
    let mut httpd = Httpd::start_in(root, &opts);
    let (n, s2, s4, s5, inb, outb) = mix(&httpd, || {
        let st = ing.wait_state("active slow request in /api/state", |st| {
            slow_entries(st).iter().any(|e| e["state"] == 0)
        });
        assert_eq!(st["decode_errors"], 0);
    });
    httpd.stop();
    let st = ing.wait_state("every child's STOPPED", |st| {
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
/// field 19 of its newest REQUEST that carries it: the reporter's count of
/// datagrams it could not send, cumulative).
fn gaps_and_drop_counters(st: &Value) -> Vec<(u64, u64, Option<u64>)> {
    st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let newest = p["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .rev()
                .filter(|s| s["kind"] == "request_metrics")
                .find_map(|s| drop_counter(&s["fields"]));
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
    let ing = Serve::at_socket(ingester_bin(), &sock, &["--socket-mode", "0666"]);
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
    let st = ing.wait_state("every child's first REQUEST", |st| {
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
        testkit::wall_now()
    });
    ing.freeze(false);
    // Both sides count every datagram lost: the reporter in field 19 of its
    // next REQUEST, the ingester as a gap in the sequence numbers. Compared
    // once each process's two newest REQUESTs come from ticks after the
    // thaw (so every datagram refused precedes them) and agree (nothing
    // refused between them: the ingester had caught up).
    let newer = |s: &Value| s["stamp"].as_f64().unwrap_or(0.0) > stopped_at + INTERVAL;
    let st = ing.wait_state("two REQUESTs of each process after the thaw", |st| {
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
    for (pid, gaps, newest) in gaps_and_drop_counters(&st) {
        let dropped = newest.unwrap();
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
    // Datagrams flow again: requests one at a time, each counted before the
    // next (a burst of slow records could fill the 10-deep queue again),
    // unless a datagram is refused once more, which the gaps then show.
    let before = state_sum(&st, "request_count");
    let gaps = st["seq_gaps"].as_u64().unwrap();
    for i in 1..=10 {
        assert_eq!(httpd.get("/app/hello").0, 200);
        ing.wait_state("datagrams flow again", |st| {
            let counted = state_sum(st, "request_count");
            counted >= before + i || (counted > before && st["seq_gaps"].as_u64().unwrap() > gaps)
        });
    }
    httpd.stop();
}

fn reference_ingester_interop(mpm: Mpm) {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Serve::at_socket(reference_exe(), &sock, &["--socket-mode", "0666"]);
    let opts = Options::telemetry(mpm, &sock, 0.5, "WSGISlowRequests 0.25");
    let mut httpd = Httpd::start_in(root, &opts);
    let (n, s2, _, s5, _, outb) = mix(&httpd, || {});
    httpd.stop();
    let st = ing.wait_state("every child's STOPPED in the reference", |st| {
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
    testkit::wait_for_path(&sock, "dump's socket");
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

/// More slow requests finish per thread and tick than the record ring
/// holds (64): every record the module loses is counted in field 19 and
/// takes a seq number, so the ingester's seq gaps equal the module's drop
/// counter and received records + field 19 == requests over the threshold.
/// (Before: 2,585 slow requests gave 320 records and field 19 = 0.)
fn lost_slow_records_are_counted_and_leave_seq_gaps(mpm: Mpm) {
    const CLIENTS: usize = 6;
    const EACH: usize = 300;
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Serve::at_socket(ingester_bin(), &sock, &["--socket-mode", "0666"]);
    // Every request sleeps 2 ms: over the 1 ms threshold.
    let opts = Options::telemetry(mpm, &sock, 1.0, "WSGISlowRequests 0.001");
    let mut httpd = Httpd::start_in(root, &opts);
    std::thread::scope(|sc| {
        for _ in 0..CLIENTS {
            sc.spawn(|| {
                for _ in 0..EACH {
                    assert_eq!(httpd.get("/app/sleep/2").0, 200);
                }
            });
        }
    });
    let n = (CLIENTS * EACH) as u64;
    httpd.stop();
    let st = ing.wait_state("every child's STOPPED", |st| {
        let stopped = stopped_pids_in(st);
        let c = state_counts(st);
        !c.is_empty() && c.keys().all(|p| stopped.contains(p))
    });
    assert_eq!(st["decode_errors"], 0);
    let received = st["slow_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entry"]["state"] == 1 && e["entry"]["path_info"] == "/sleep/2")
        .count() as u64;
    let drops = gaps_and_drop_counters(&st);
    let dropped: u64 = drops.iter().map(|d| d.2.unwrap_or(0)).sum();
    // What the module logged it lost: one line per tick with losses.
    let log = httpd.error_log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("completed slow-request records lost this interval"))
        .collect();
    let logged: u64 = lines
        .iter()
        .map(|l| {
            let after = l.split("mod_wsgi_telemetry: ").nth(1).unwrap();
            after.split(' ').next().unwrap().parse::<u64>().unwrap()
        })
        .sum();
    eprintln!(
        "{n} slow requests: {received} completed records received, field 19 {dropped} \
         (per pid {drops:?}), seq_gaps {}, {} loss lines logging {logged}",
        st["seq_gaps"],
        lines.len()
    );
    assert!(logged > 0, "the test must overflow the rings");
    // Field 19 = records lost to full rings (logged) + datagrams the socket
    // refused (its queue holds 10; a starved ingester can fall behind a
    // tick's burst). Seq gaps see both, so they match field 19 exactly.
    assert_eq!(
        st["seq_gaps"].as_u64(),
        Some(dropped),
        "seq gaps == field 19"
    );
    // The same per process: the ingester's gap count for each pid.
    for p in st["processes"].as_array().unwrap() {
        let pid = p["pid"].as_u64().unwrap();
        let f19 = drops.iter().find(|d| d.0 == pid).map(|d| d.2.unwrap_or(0));
        assert_eq!(p["drops"].as_u64(), f19, "pid {pid}");
    }
    assert!(logged <= dropped, "logged ring losses are part of field 19");
    let refused = dropped - logged;
    if refused == 0 {
        // Nothing refused by the socket: every slow request was received
        // or logged as lost, and every REQUEST datagram arrived.
        assert_eq!(
            received + logged,
            n,
            "every slow request: received or counted"
        );
        assert_eq!(state_sum(&st, "request_count"), n, "every request counted");
    } else {
        // Some datagrams (slow records or others) were refused and counted.
        assert!(
            received + logged <= n && n <= received + dropped,
            "every slow request: received, logged or among the {refused} refused"
        );
    }
}

/// An active (in-progress) slow record carries the I/O of the request so
/// far: the application has written 5,000 bytes and then sleeps past the
/// threshold. (Before: active records always carried zero I/O.)
fn active_slow_records_carry_io_so_far(mpm: Mpm) {
    const PATH: &str = "/write-then-sleep/5000/2500";
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Serve::at_socket(ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let opts = Options::telemetry(mpm, &sock, 0.5, "WSGISlowRequests 0.2");
    let mut httpd = Httpd::start_in(root, &opts);
    let entry = |st: &Value, state: u64| -> Option<Value> {
        st["slow_requests"]
            .as_array()?
            .iter()
            .map(|e| &e["entry"])
            .find(|e| e["path_info"] == PATH && e["state"] == state)
            .cloned()
    };
    std::thread::scope(|sc| {
        let h = sc.spawn(|| httpd.get(&format!("/app{PATH}")));
        let st = ing.wait_state("an active slow record", |st| entry(st, 0).is_some());
        let active = entry(&st, 0).unwrap();
        assert_eq!(active["output_bytes"], 5000, "{active}");
        assert!(active["output_writes"].as_u64().unwrap() >= 1, "{active}");
        assert_eq!(active["input_bytes"], 0, "{active}");
        let (status, body) = h.join().unwrap();
        assert_eq!((status, body.len()), (200, 5000));
    });
    let st = ing.wait_state("the completed record", |st| entry(st, 1).is_some());
    assert_eq!(entry(&st, 1).unwrap()["output_bytes"], 5000);
    httpd.stop();
}

both_mpms!(
    active_slow_records_carry_io_so_far,
    lost_slow_records_are_counted_and_leave_seq_gaps,
    our_ingester_api_state,
    our_ingester_frozen_then_resumed,
    reference_ingester_interop,
    dump_shows_our_datagrams
);
