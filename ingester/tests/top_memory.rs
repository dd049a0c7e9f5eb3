//! `top --once` against a `serve` holding a big state (200 processes × 200
//! samples) must not take memory out of proportion to what it is sent.
//!
//! What it needs: the whole-history snapshot it asks for
//! (`?history=full`; the server here is run with `--snapshot-budget 0`,
//! as an operator who lifts the budget would, so it is sent), held once as the WebSocket frame while it is parsed,
//! plus the reduced samples it keeps (a few hundred bytes each). The bound
//! asserted is a fixed allowance for the runtime and the binary plus three
//! times the snapshot's JSON size (the frame as read, the message and the
//! reduced replica). A parser that builds a `serde_json::Value` tree of the
//! snapshot needs about ten times its text and fails it.

mod common;

use common::*;
use std::process::{Command, Stdio};

/// Allowance for the binary, its runtimes and the allocator, in kB.
const BASE_KB: u64 = 40 << 10;

/// REQUEST ticks `1..=ticks` of processes `1..=procs`.
fn state_of(procs: u32, ticks: u32) -> Vec<Vec<u8>> {
    (1..=procs)
        .flat_map(|pid| (1..=ticks).map(move |seq| tick(pid, seq)))
        .collect()
}

/// `top --once --json` against `s` under `/usr/bin/time`: (exit code, its
/// stdout, its peak RSS in kB, seconds it took).
fn top_once_peak(s: &Serve) -> (i32, Vec<u8>, u64, f64) {
    let t = std::time::Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M", bin(), "top", "--once", "--json"])
        .args(["--once-timeout", "120", "--url", &s.url()])
        .stdin(Stdio::null())
        .output()
        .expect("run top --once under /usr/bin/time");
    let kb = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .expect("maxrss_kb from /usr/bin/time");
    let secs = t.elapsed().as_secs_f64();
    (out.status.code().unwrap_or(-1), out.stdout, kb, secs)
}

#[test]
fn top_once_on_a_200_process_state_stays_within_its_snapshot_size() {
    let s = Serve::start(bin(), &["--snapshot-budget", "0"]);
    let dgrams = state_of(200, 200);
    s.send_all(&dgrams);
    s.wait_received(dgrams.len());
    // What `top` will be sent: the whole state, as `?history=full` gives it.
    let (status, _, body) = http_get(s.port, "/api/state?budget=0", "").expect("/api/state");
    assert_eq!(status, 200);
    let json_kb = body.len() as u64 / 1024;
    let (code, stdout, peak_kb, secs) = top_once_peak(&s);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "top --once: state {json_kb} kB of JSON, peak RSS {} MB, {secs:.2} s (load {})",
        peak_kb / 1024,
        load.split_whitespace().next().unwrap_or("?")
    );
    assert_eq!(code, 0, "top --once failed");
    let v: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    // It read the whole state: 200 processes of 80 requests a second.
    assert_eq!(v["live_processes"], 200);
    assert_eq!(v["rps"]["1m"], 16000.0);
    let bound = BASE_KB + 3 * json_kb;
    assert!(
        peak_kb < bound,
        "top --once peaked at {peak_kb} kB for {json_kb} kB of JSON (bound {bound} kB)"
    );
}
