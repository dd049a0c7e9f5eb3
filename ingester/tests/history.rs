//! The history end to end, with the real `serve` and a real state
//! directory: a simulated week (compressed time) fills every tier and comes
//! back whole after SIGTERM and a restart; merged views agree with the raw
//! seconds through `/api/history`; SIGKILL during writes, again and again,
//! never costs more than the last few seconds; directories that cannot be
//! used are refused or fall back to memory, each with one clear line; a
//! directory that fails while `serve` runs (full, read-only) costs nothing
//! once it works again; old stamps expire on disk as in memory.

mod common;

use common::*;
use serde_json::Value as J;
use std::path::Path;
use std::process::{Command, Stdio};

/// `serve --state-dir dir` at `--log-level info`, its log in `log`.
fn serve_on(dir: &Path, log: &Path, extra: &[&str]) -> Serve {
    let stderr = std::fs::File::create(log).unwrap();
    let mut args = vec!["--state-dir", dir.to_str().unwrap(), "--log-level", "info"];
    args.extend_from_slice(extra);
    Serve::start_logging(
        bin(),
        tempfile::tempdir().unwrap(),
        free_port(),
        &args,
        Stdio::from(stderr),
    )
}

fn history(s: &Serve, query: &str) -> J {
    let (status, body) = s.get(&format!("/api/history?{query}"));
    assert_eq!(status, 200, "/api/history?{query}: {body:.300}");
    serde_json::from_str(&body).unwrap()
}

fn points(v: &J) -> &Vec<J> {
    v["points"].as_array().expect("points")
}

fn requests(v: &J) -> u64 {
    points(v)
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum()
}

/// The same JSON, floats equal to 1e-9 relative (sums of the same floats
/// may be added in another order after a reload).
fn same(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Number(x), J::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A week of the simulated site (`simulate --start -7d --speed 0`, 1 min
/// ticks, the last 10 minutes 1 s ticks) into a serve with a state directory; SIGTERM; a new serve on the
/// same directory answers every range the same, and has the lifecycle
/// events and completed slow requests back.
#[test]
fn a_simulated_week_fills_every_tier_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("serve.log");
    let mut a = serve_on(&state, &log, &[]);
    // A light site: 7 days less 10 minutes of 1 min ticks, then the last
    // 10 minutes at 1 s (the simulator's cost grows with simulated
    // requests, so the load is low).
    let mut sent = 0u64;
    for (start, duration, interval, pid, load) in [
        ("-7d", "604200", "60", "100000", "0.01"),
        ("-10m", "600", "1", "200000", "0.05"),
    ] {
        let out = run_ok(
            Command::new(bin()).args([
                "simulate",
                "--target",
                &listen(&a.sock),
                "--start",
                start,
                "--speed",
                "0",
                "--duration",
                duration,
                "--interval",
                interval,
                "--first-pid",
                pid,
                "--processes",
                "3",
                "--seed",
                "21",
                "--no-gc",
                "--load",
                load,
            ]),
            "simulate",
        );
        sent += out
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("simulate said {out:?}"));
    }
    a.wait_received(sent as usize);
    // Every tier holds points: the finest over the last ten minutes, the
    // coarsest back to the first day.
    let newest = history(&a, "group=app&range=10m")["newest"]
        .as_u64()
        .unwrap();
    let ranges = [
        ("10m", 600u64),
        ("1h", 3600),
        ("24h", 86400),
        ("7d", 7 * 86400),
    ];
    let mut before = Vec::new();
    for (name, secs) in ranges {
        let q = format!("group=app&from={}&to={}", newest - secs, newest + 1);
        let v = history(&a, &q);
        let pts = points(&v);
        assert!(pts.len() > 9, "{name}: {} points", pts.len());
        let first = pts[0]["t"].as_u64().unwrap();
        assert!(
            first < newest - secs * 9 / 10,
            "{name}: first point {first}, newest {newest}"
        );
        before.push((name, q, v));
    }
    let st = a.state();
    let lifecycle = st["lifecycle_events"].as_array().unwrap().len();
    let slow = st["slow_requests"].as_array().unwrap().len();
    assert!(
        lifecycle > 0 && slow > 0,
        "{lifecycle} events, {slow} slow requests"
    );
    assert!(a.terminate().success());

    let b = serve_on(&state, &dir.path().join("restarted.log"), &[]);
    for (name, q, v) in &before {
        let w = history(&b, q);
        assert_eq!(requests(v), requests(&w), "{name}");
        assert!(
            same(&v["points"], &w["points"]),
            "{name}: {q}\nbefore {v:.2000}\nafter {w:.2000}"
        );
    }
    let st = b.state();
    assert_eq!(st["lifecycle_events"].as_array().unwrap().len(), lifecycle);
    // Completed slow requests come back (the store holds every one of the
    // week; they are restored while the table has room, --max-slow 10000).
    let slow_after = st["slow_requests"].as_array().unwrap().len();
    assert!(
        slow_after > 0 && slow_after <= 10_000,
        "{slow_after} (before: {slow})"
    );
    assert_eq!(st["history_write_errors"], 0);

    // Merged views agree with the raw seconds they came from: per minute
    // of the last ten, the raw tier (1 s), the 1 h view (10 s points) and
    // the 24 h view (1 min points) give the same requests, status classes,
    // latency counts and percentiles, to the bucket.
    let m0 = (newest - 540) - (newest - 540) % 60;
    let window = format!("from={m0}&to={}&step=60", m0 + 480);
    let raw = history(&b, &format!("group=app&{window}"));
    let hour = history(&b, "group=app&range=1h&step=60");
    let day = history(&b, "group=app&range=24h&step=60");
    assert_eq!(points(&raw).len(), 8);
    for p in points(&raw) {
        let t = &p["t"];
        for (name, view) in [("1h", &hour), ("24h", &day)] {
            let q = points(view)
                .iter()
                .find(|q| &q["t"] == t)
                .unwrap_or_else(|| panic!("{name}: no point at {t}"));
            for k in [
                "requests",
                "status",
                "request_bytes",
                "response_bytes",
                "slow_completed",
            ] {
                assert_eq!(p[k], q[k], "{name} at {t}: {k}");
            }
            assert!(
                same(&p["latency"], &q["latency"]),
                "{name} at {t}: {} vs {}",
                p["latency"],
                q["latency"]
            );
        }
    }
    assert!(requests(&raw) > 0);
}

/// A REQUEST tick of `pid` (group `g<pid % 4>`, 80 requests) stamped `t`.
fn tick_at(pid: u32, seq: u32, t: f64) -> Vec<u8> {
    let mut s = wire::decode(&tick(pid, seq)).unwrap();
    s.header.stamp = t;
    s.encode().unwrap()
}

/// SIGKILL during writes, twenty times in a row: every restart opens the
/// directory, keeps everything but the last few seconds of what was sent,
/// and reports nothing worse than a torn last write.
#[test]
fn sigkill_during_writes_loses_at_most_the_last_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let t0 = (wall_now() as u64 - 500) as f64;
    let per_second = 80u64;
    // Ticks come ten times faster than real time (stamps 1 s apart, sent
    // 100 ms apart): a round is 30 stamped seconds in 3 s.
    let round_secs = 30u32;
    let mut kept = 0u64;
    let mut seq = 0u32;
    // Ticks of the last round sent at least 2 s before the kill (the
    // writer pushes to the kernel every second).
    let mut old_enough = 0u64;
    for round in 0..20u32 {
        let log = dir.path().join(format!("serve{round}.log"));
        let mut s = serve_on(&state, &log, &[]);
        let text = read_lossy(&log);
        for bad in ["unreadable", "ERROR", "cannot write"] {
            assert!(!text.contains(bad), "round {round}: {text}");
        }
        let q = format!(
            "group=g1&from={}&to={}&step=60",
            t0 as u64,
            t0 as u64 + 1000
        );
        let now = requests(&history(&s, &q));
        if round > 0 {
            let sent_last = u64::from(round_secs) * per_second;
            // Of those old enough, the last 3 stamped seconds may still
            // have been open (the grace for late processes).
            let must_keep = old_enough.saturating_sub(4) * per_second;
            assert!(
                now <= kept + sent_last,
                "round {round}: {now} > {kept} + {sent_last}"
            );
            assert!(
                now >= kept + must_keep,
                "round {round}: {now} kept, {kept} before; {must_keep} of {sent_last} sent since were due on disk"
            );
        }
        kept = now;
        let first = round * round_secs;
        let mut sent_at = Vec::new();
        for k in first..first + round_secs {
            seq += 1;
            s.send_all([tick_at(1, seq, t0 + f64::from(k) + 0.5)]);
            sent_at.push(std::time::Instant::now());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        // Kill at a different moment of the writer's second each round.
        std::thread::sleep(std::time::Duration::from_millis(u64::from(round % 7) * 230));
        let killed = std::time::Instant::now();
        s.stop();
        old_enough = sent_at
            .iter()
            .filter(|t| killed.duration_since(**t).as_secs_f64() >= 2.0)
            .count() as u64;
    }
}

/// Directories that cannot be used: newer format and a second serve are
/// refused (exit 1, one line); a path that cannot be made keeps serving
/// from memory, says so once and counts it.
#[test]
fn unusable_directories_are_refused_or_fall_back_to_memory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("first.log");
    let first = serve_on(&state, &log, &[]);
    let refused = |what: &str| {
        let out = Command::new(bin())
            .args(["serve", "--listen", &listen(&dir.path().join("x.sock"))])
            .args(["--http-port", &free_port().to_string()])
            .args(["--state-dir", state.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        err
    };
    let e = refused("a second serve");
    assert!(e.contains("in use by another"), "{e}");
    drop(first);
    std::fs::write(state.join("FORMAT"), "mod_wsgi-telemetry state 9\n").unwrap();
    let e = refused("a newer format");
    assert!(e.contains("state format 9"), "{e}");

    // A regular file where the directory should be: memory only.
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    let log = dir.path().join("memory.log");
    let s = serve_on(&file.join("state"), &log, &[]);
    s.send_all((0..5).map(|k| tick_at(2, k + 1, wall_now() - 10.0 + f64::from(k))));
    let st = s.wait_received(5);
    assert!(
        st["history_write_errors"].as_u64().unwrap() > 0,
        "{}",
        state_summary(&st)
    );
    let text = read_lossy(&log);
    assert_eq!(text.matches("kept in memory only").count(), 1, "{text}");
}

/// A replay of stamps from a month ago (no `--restamp`): the disk keeps
/// what the memory keeps (both expire by the datagrams' stamps), so a
/// restart answers the same.
#[test]
fn old_stamps_stay_on_disk_as_long_as_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut a = serve_on(&state, &dir.path().join("a.log"), &[]);
    let t0 = wall_now() as u64 - 30 * 86400;
    a.send_all((0..120u32).map(|k| tick_at(1, k + 1, (t0 + u64::from(k)) as f64 + 0.5)));
    a.wait_received(120);
    let queries: Vec<String> = [1, 10, 60]
        .iter()
        .map(|step| format!("group=g1&from={t0}&to={}&step={step}", t0 + 200))
        .collect();
    let before: Vec<J> = queries.iter().map(|q| history(&a, q)).collect();
    assert_eq!(requests(&before[0]), 120 * 80);
    assert!(a.terminate().success());
    let b = serve_on(&state, &dir.path().join("b.log"), &[]);
    for (q, v) in queries.iter().zip(&before) {
        let w = history(&b, q);
        assert_eq!(requests(&w), requests(v), "{q}");
        assert!(
            same(&v["points"], &w["points"]),
            "{q}\nbefore {v:.1500}\nafter {w:.1500}"
        );
    }
}

/// One datagram stamped a month ahead (a broken clock, or forged) is kept
/// out of the history: a replay of three days ago and the last minutes stay
/// whole, in memory and after a restart from disk; the tick is counted in
/// `/api/state` and `/metrics` and logged once.
#[test]
fn a_far_future_stamp_erases_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join("a.log");
    let mut a = serve_on(&state, &log, &[]);
    let now = wall_now() as u64;
    // Whole minutes: a query counts the points that start in its range.
    let replayed = (now - 3 * 86400) / 60 * 60;
    let recent = (now - 120) / 60 * 60;
    let mut seq = 0;
    let mut send = |s: &Serve, t0: u64, n: u32| {
        s.send_all((0..n).map(|k| {
            seq += 1;
            tick_at(1, seq, (t0 + u64::from(k)) as f64 + 0.5)
        }));
    };
    send(&a, replayed, 60);
    send(&a, recent, 60);
    a.wait_received(120);
    let queries = [
        format!("group=g1&from={replayed}&to={}&step=60", replayed + 120),
        format!("group=g1&from={recent}&to={}&step=10", recent + 120),
    ];
    let counts = |s: &Serve| {
        queries
            .iter()
            .map(|q| requests(&history(s, q)))
            .collect::<Vec<_>>()
    };
    // The recent second still open for the grace are closed once the
    // writer has seen the last stamp.
    poll("the sent ticks in the history", || match counts(&a) {
        c if c == [60 * 80, 60 * 80] => Ok(()),
        c => Err(format!("{c:?}")),
    });
    let newest = history(&a, &queries[1])["newest"].as_u64().unwrap();
    let far = (now + 30 * 86400) as f64;
    seq += 1;
    a.send_all([tick_at(1, seq, far), tick_at(2, seq, far)]);
    a.wait_received(122);
    assert_eq!(history(&a, &queries[1])["newest"].as_u64(), Some(newest));
    assert_eq!(counts(&a), [60 * 80, 60 * 80], "nothing expired");
    a.wait_state("history_ticks_future", |st| st["history_ticks_future"] == 2);
    wait_for_log(&log, "ahead of this host's clock");
    let (status, metrics) = a.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("mod_wsgi_telemetry_history_ticks_refused_total{reason=\"future\"} 2\n"),
        "{metrics}"
    );
    // Nor after the writer's second (it wrote the line).
    assert_eq!(history(&a, &queries[1])["newest"].as_u64(), Some(newest));
    assert_eq!(counts(&a), [60 * 80, 60 * 80]);
    assert!(a.terminate().success());
    let text = read_lossy(&log);
    assert_eq!(
        text.matches("ahead of this host's clock").count(),
        1,
        "{text}"
    );
    let b = serve_on(&state, &dir.path().join("b.log"), &[]);
    assert_eq!(counts(&b), [60 * 80, 60 * 80], "after a restart, from disk");
}

/// A group that stops sending keeps its series while a tier holds a point
/// of it, then loses it (listed no more, in memory or after a restart).
#[test]
fn a_group_gone_past_every_tier_loses_its_series() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tiers = ["--history-tiers", "1s:20s,10s:60s"];
    let mut a = serve_on(&state, &dir.path().join("a.log"), &tiers);
    let now = wall_now() as u64;
    // g1 (pid 1) for 10 s, then g2 (pid 2) for 150 s: g1's last point is
    // then more than 60 s older than the newest stamp.
    a.send_all((0..10u32).map(|k| tick_at(1, k + 1, (now - 200 + u64::from(k)) as f64)));
    a.send_all((0..150u32).map(|k| tick_at(2, k + 1, (now - 150 + u64::from(k)) as f64)));
    a.wait_received(160);
    let groups = |s: &Serve| {
        let (status, body) = s.get("/api/history/series");
        assert_eq!(status, 200, "{body}");
        let v: J = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| k["group"].as_str().unwrap_or("(host)").to_string())
            .collect::<Vec<_>>()
    };
    poll("g1's series removed", || match groups(&a) {
        g if g == ["g2", "(host)"] => Ok(()),
        g => Err(format!("{g:?}")),
    });
    assert_eq!(a.state()["history_series_removed"], 1);
    assert!(a.terminate().success());
    let b = serve_on(&state, &dir.path().join("b.log"), &tiers);
    assert_eq!(groups(&b), ["g2", "(host)"]);
}

/// A tmpfs of our own, unmounted (and its mount point removed) on drop.
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts a `size` tmpfs at `path`; `None` where this test may not
    /// mount (not root, no CAP_SYS_ADMIN).
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// `mount -o remount,OPTS`, retried while the file system is busy (a
    /// write of the history's second may be under way).
    fn remount(&self, opts: &str) {
        wait_until(&format!("remount {opts}"), || {
            Command::new("mount")
                .args(["-o", &format!("remount,{opts}")])
                .arg(&self.path)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Fills the file system of `dir` with `dir/filler` until a write fails.
fn fill_up(dir: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

/// The state directory fails while `serve` runs (`break_it`), then works
/// again (`mend`): one clear log line when it starts failing, live
/// telemetry and `/api/history` go on from memory, the failures are
/// counted, and once writing works the points that waited are written, so
/// a restart afterwards has lost nothing.
fn outage(what: &str, break_it: impl Fn(&Tmpfs), mend: impl Fn(&Tmpfs)) {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("mnt"), "4m") else {
        eprintln!("{what}: skipped, cannot mount a tmpfs here (needs root)");
        return;
    };
    let state = fs.path.join("state");
    let log = dir.path().join("serve.log");
    let mut s = serve_on(&state, &log, &[]);
    let t0 = wall_now() as u64 - 600;
    let mut seq = 0u32;
    let mut send = |s: &Serve, from: u64, to: u64| {
        for k in from..to {
            seq += 1;
            s.send_all([tick_at(1, seq, (t0 + k) as f64 + 0.5)]);
        }
        s.wait_received(seq as usize);
    };
    let q = format!("group=g1&from={t0}&to={}&step=10", t0 + 600);
    send(&s, 0, 60);
    // The writer has pushed the first minute.
    wait_until("first points written", || {
        std::fs::read_dir(state.join("t0")).is_ok_and(|d| d.count() > 0)
    });
    break_it(&fs);
    send(&s, 60, 120);
    let st = s.wait_state("write errors counted", |st| {
        st["history_write_errors"].as_u64().unwrap_or(0) > 0
    });
    // Live telemetry and the history from memory are whole.
    assert_eq!(
        st["processes"].as_array().map(Vec::len),
        Some(1),
        "{}",
        state_summary(&st)
    );
    assert_eq!(requests(&history(&s, &q)), 120 * 80);
    // A few more failing seconds: still one line.
    send(&s, 120, 150);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let text = read_lossy(&log);
    assert_eq!(text.matches("cannot write").count(), 1, "{what}: {text}");
    assert!(text.contains("serving from memory"), "{what}: {text}");
    mend(&fs);
    wait_until("writing works again", || {
        read_lossy(&log).contains("writing works again")
    });
    send(&s, 150, 180);
    let before = history(&s, &q);
    assert_eq!(requests(&before), 180 * 80);
    assert!(s.terminate().success());
    let b = serve_on(&state, &dir.path().join("restarted.log"), &[]);
    let after = history(&b, &q);
    assert_eq!(requests(&after), requests(&before), "{what}: lost on disk");
    assert!(same(&before["points"], &after["points"]), "{what}");
    let text = read_lossy(&dir.path().join("restarted.log"));
    assert!(!text.contains("unreadable"), "{what}: {text}");
    drop(b);
    drop(fs);
}

#[test]
fn a_full_disk_keeps_serving_and_catches_up() {
    outage(
        "full disk",
        |fs| fill_up(&fs.path),
        |fs| std::fs::remove_file(fs.path.join("filler")).unwrap(),
    );
}

#[test]
fn a_read_only_directory_keeps_serving_and_catches_up() {
    outage("read-only", |fs| fs.remount("ro"), |fs| fs.remount("rw"));
}
