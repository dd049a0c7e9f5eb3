//! Interop with the reference, mod_wsgi-telemetry 1.1.0 (PyPI):
//!
//! * replaying the real mod_wsgi 6.1.1 capture into OUR `serve` (unmodified)
//!   gives the same processes, samples, slow-request entries and lifecycle
//!   events as the reference ingester held after the same replay (with
//!   field 8 dropped, which it cannot serialise). The reference's state was
//!   recorded once by `scripts/record-reference-state.sh` into
//!   `tests/fixtures/reference-state-anchor-6.1.1.json`;
//! * the reference terminal monitor, `top --once`, connected to OUR `serve`,
//!   prints the process table, and with full history exactly what it prints
//!   against the reference ingester (`tests/fixtures/reference-top-once-*`).
//!
//! The `top` tests need the reference in a virtualenv; `scripts/ref-venv.sh`
//! makes one (from PyPI) if `REF_VENV` (default /tmp/refvenv) has none.

mod common;

use common::*;
use serde_json::Value as J;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Active slow-request entries live 5 s after their last heartbeat arrived
/// (the reference's TTL, on arrival time). The capture ends with 3 requests
/// still in flight, so what a reader sees depends on when it looks: within
/// 5 s of the replay, the reference's 118 entries (3 active); later, serve's
/// expiry timer has removed the 3 active ones and 115 completed ones remain.
/// (The reference expires lazily, on the next datagram, so with nothing more
/// arriving it would still show 118; issue 2 asks for expiry on a timer.)
/// Tests run one at a time so a loaded machine stays inside the window as far
/// as possible; past it they check the later picture.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The active-entry TTL, with a margin for the snapshot being built.
const ACTIVE_TTL_SAFE: Duration = Duration::from_millis(4000);
const CORPUS_DATAGRAMS: usize = 11_888;

/// Replays the whole capture, unmodified, with our `replay`, and returns the
/// first `/api/state` that counts every datagram, with how long after the end
/// of the replay it was complete (`replay` sends blocking, so when it exits
/// every datagram is in serve or in its socket queue).
fn replay_corpus(serve: &Serve) -> (J, Duration) {
    run_replay(&[
        corpus_path().to_str().unwrap(),
        "--socket",
        &listen(&serve.sock),
    ]);
    let t0 = Instant::now();
    let st = serve.wait_received(CORPUS_DATAGRAMS);
    (st, t0.elapsed())
}

#[test]
fn serve_state_matches_reference_after_corpus_replay() {
    let _serial = serial();
    let reference: J = serde_json::from_str(&fixture("reference-state-anchor-6.1.1.json")).unwrap();
    // Compared record by record with the reference's whole state: the
    // corpus state (3.7 MB) is over the default snapshot budget, so lift it.
    let serve = Serve::start(bin(), &["--snapshot-budget", "0"]);
    let (ours, after) = replay_corpus(&serve);

    assert_eq!(ours["type"], "snapshot");
    assert_eq!(ours["total_received"], reference["total_received"]);
    assert_eq!(ours["decode_errors"], reference["decode_errors"]);

    // Processes: same pids in the same (first-heard) order, same identity,
    // same samples.
    let rp = reference["processes"].as_array().unwrap();
    let op = ours["processes"].as_array().unwrap();
    let pids = |v: &[J]| {
        v.iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(pids(op), pids(rp), "process list");
    let gc_event_cap = mwt_ingester::ingest::state::Limits::default().gc_events_per_process as u64;
    let mut multi_interpreter = 0;
    for (r, o) in rp.iter().zip(op) {
        let pid = &r["pid"];
        for k in [
            "hostname",
            "process_group",
            "mod_wsgi_version",
            "python_version",
            "apache_version",
            "mpm_name",
            "process_parent_pid",
            "last_seq",
        ] {
            assert_eq!(o[k], r[k], "pid {pid}: {k}");
        }
        let samples = o["samples"].as_array().unwrap();
        assert_eq!(
            samples.len() as u64,
            r["samples"].as_u64().unwrap(),
            "pid {pid}: samples"
        );
        assert_eq!(
            samples[0]["seq"], r["first_sample_seq"],
            "pid {pid}: first sample"
        );
        assert_eq!(
            samples[samples.len() - 1]["seq"],
            r["last_sample_seq"],
            "pid {pid}: last sample"
        );
        let mut kinds: Vec<&str> = samples
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            serde_json::json!(kinds),
            r["sample_kinds"],
            "pid {pid}: sample kinds"
        );
        for s in samples {
            assert_eq!(s["type"], "sample");
            assert_eq!(s["pid"], *pid);
        }
        // GC: the reference saw no interpreter names (field 8 dropped), so
        // it kept every snapshot under ""; we keep them per interpreter.
        let snaps = o["gc_snapshots"].as_object().unwrap();
        let total: usize = snaps.values().map(|v| v.as_array().unwrap().len()).sum();
        assert_eq!(
            total as u64,
            r["gc_snapshots"].as_u64().unwrap(),
            "pid {pid}: gc snapshots"
        );
        if snaps.len() > 1 {
            multi_interpreter += 1;
            assert!(snaps.contains_key(""), "pid {pid}: main interpreter key");
        }
        // GC events: the reference keeps 300 s of them, unbounded in count;
        // we also bound them by count.
        let events = o["gc_events"].as_array().unwrap().len() as u64;
        assert_eq!(
            events,
            r["gc_events"].as_u64().unwrap().min(gc_event_cap),
            "pid {pid}: gc events"
        );
    }
    // The capture's embedded-mode children host a sub-interpreter: the
    // unmodified capture carries interpreter_name and serve keeps it apart.
    assert!(
        multi_interpreter >= 2,
        "{multi_interpreter} processes with a named interpreter"
    );

    // Slow requests and lifecycle events: exactly the reference's JSON
    // (keys, order, integer vs float), entry by entry.
    let all: Vec<&J> = reference["slow_requests"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let completed: Vec<&J> = all
        .iter()
        .copied()
        .filter(|e| e["entry"]["state"] == 1)
        .collect();
    assert_eq!((all.len(), completed.len()), (118, 115), "fixture");
    let os: Vec<&J> = ours["slow_requests"].as_array().unwrap().iter().collect();
    let rs = if after < ACTIVE_TTL_SAFE {
        &all
    } else if os.len() == completed.len() {
        eprintln!(
            "note: /api/state read {after:?} after the replay; active entries may have expired"
        );
        &completed
    } else {
        &all
    };
    assert_eq!(
        os.len(),
        rs.len(),
        "slow request entries ({after:?} after the replay)"
    );
    for (i, (o, r)) in os.iter().zip(rs).enumerate() {
        assert_eq!(o, r, "slow_requests[{i}]");
        let keys = |v: &J| {
            v["entry"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(o), keys(r), "slow_requests[{i}] key order");
    }
    let rl = reference["lifecycle_events"].as_array().unwrap();
    let ol = ours["lifecycle_events"].as_array().unwrap();
    assert_eq!(ol.len(), rl.len(), "lifecycle events");
    for (i, (o, r)) in ol.iter().zip(rl).enumerate() {
        assert_eq!(o, r, "lifecycle_events[{i}]");
        let keys = |v: &J| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(o), keys(r), "lifecycle_events[{i}] key order");
    }
}

/// `top`'s slow line within the active TTL after the replay, and after it.
const SLOW_WITHIN_TTL: &str = "slow: 3 active / 0 1m / 118 total";
const SLOW_AFTER_TTL: &str = "slow: 0 active / 0 1m / 115 total";

fn run_reference_top(url: &str) -> (i32, String, String) {
    let out = Command::new(reference_exe())
        .args(["top", "--once", "--once-timeout", "20", "--url", url])
        .stdin(Stdio::null())
        .output()
        .expect("run the reference top");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn reference_top_once_lists_the_replayed_processes() {
    let _serial = serial();
    let reference: J = serde_json::from_str(&fixture("reference-state-anchor-6.1.1.json")).unwrap();
    let serve = Serve::start(bin(), &[]);
    let _ = replay_corpus(&serve);
    let (code, out, err) = run_reference_top(&serve.url());
    assert_eq!(code, 0, "reference top exited {code}: {out}{err}");
    let table = out
        .split_once("processes:")
        .unwrap_or_else(|| panic!("no process table in:\n{out}{err}"))
        .1;
    let header = table.lines().nth(1).unwrap_or("");
    assert!(
        header.contains("PID") && header.contains("GROUP"),
        "table header: {header:?}"
    );
    let rows: Vec<u64> = table
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    for p in reference["processes"].as_array().unwrap() {
        let pid = p["pid"].as_u64().unwrap();
        assert!(rows.contains(&pid), "pid {pid} not in the table:\n{out}");
    }
    assert_eq!(
        rows.len(),
        reference["processes"].as_array().unwrap().len(),
        "{out}"
    );
    assert!(
        out.contains(SLOW_WITHIN_TTL) || out.contains(SLOW_AFTER_TTL),
        "{out}"
    );
}

#[test]
fn reference_top_once_with_full_history_prints_what_it_prints_for_the_reference() {
    for query in ["?history=full", ""] {
        reference_top_once_matches(query);
    }
}

/// The default (budgeted) snapshot leaves out GC history before any sample,
/// so the reference top's figures are the same as with the full history.
fn reference_top_once_matches(query: &str) {
    let _serial = serial();
    let serve = Serve::start(bin(), &[]);
    let _ = replay_corpus(&serve);
    let (code, out, err) = run_reference_top(&format!("{}{query}", serve.url()));
    assert_eq!(code, 0, "reference top exited {code}: {out}{err}");
    let want = fixture("reference-top-once-anchor-6.1.1.txt");
    assert!(want.contains(SLOW_WITHIN_TTL), "fixture");
    // Python start-up can take the reference top past the active TTL, after
    // which serve's timer has expired the 3 active entries (see SERIAL).
    let out = out.replace(SLOW_AFTER_TTL, SLOW_WITHIN_TTL);
    assert_eq!(
        out, want,
        "reference top against our serve (/ws{query}) vs against the reference"
    );
}
