//! `top` end to end: the real binary against a real `serve` fed by `replay`
//! with the mod_wsgi 6.1.1 capture — in a tmux pseudo-terminal for the
//! interactive views, and as `--once` for scripts and health checks.

mod top_support;

use std::time::Duration;
use top_support::*;

/// The first 45 s of the capture: several processes alive (app, aux and
/// embedded), some already restarted, slow requests in flight.
const PREFIX_SECONDS: f64 = 45.0;
const LIMIT: Duration = Duration::from_secs(30);

fn fed_server() -> (Serve, Prefix) {
    let prefix = corpus_prefix(PREFIX_SECONDS);
    let s = Serve::start(bin(), &[]);
    replay(&s.sock, prefix.count, &["--restamp"]);
    s.wait_received(prefix.count);
    (s, prefix)
}

/// `top --once --json` against `s` with `extra` options: must exit 0.
fn top_json(s: &Serve, extra: &[&str]) -> serde_json::Value {
    let url = s.url();
    let mut args = vec!["--once", "--once-timeout", "30", "--json"];
    args.extend(extra);
    args.extend(["--url", url.as_str()]);
    let out = top(&args);
    assert_eq!(out.status.code(), Some(0), "top {args:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn contains_pid(screen: &str, pid: u32) -> bool {
    screen
        .lines()
        .any(|l| l.split_whitespace().next() == Some(pid.to_string().as_str()))
}

/// `top` against `s` on its processes view, refreshing every 0.5 s, in a
/// tmux pane of its own; `then` runs in the pane's shell after top exits.
fn processes_view_in_tmux(s: &Serve, then: &str) -> Tmux {
    let cmd = format!(
        "{} top --url {} --refresh 0.5 --view processes; {then}",
        bin(),
        s.url()
    );
    Tmux::start(&["sh", "-c", &cmd], 160, 50)
}

/// `top` against `s` in a tmux pane of its own, running until it shows live
/// data; returns the pane and top's pid. `shell` turns the command that
/// writes its pid and execs top into the pane's shell command.
fn top_in_tmux(s: &Serve, shell: impl FnOnce(String) -> String) -> (Tmux, u32) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("top.pid");
    let exec_top = format!(
        "echo $$ > {}; exec {} top --url {}",
        pidfile.display(),
        bin(),
        s.url()
    );
    let tmux = Tmux::start(&["sh", "-c", &shell(exec_top)], 120, 40);
    // Drawn only after the signal handlers are installed.
    tmux.wait_for("top running", LIMIT, |x| x.contains("[live]"));
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (tmux, pid)
}

#[test]
fn top_tui_views_show_pids_and_paths() {
    let prefix = corpus_prefix(PREFIX_SECONDS);
    assert!(prefix.live.len() >= 4, "{:?}", prefix.live);
    let s = Serve::start(bin(), &[]);
    let tmux = processes_view_in_tmux(&s, "echo TOP-EXIT=$?; sleep 60");
    // Connected before any data: the header and the live label show.
    tmux.wait_for("connection", LIMIT, |x| {
        x.contains("[live]") && x.contains("connected to")
    });
    // Data arrives live (not only in the first snapshot), at the pace top
    // takes it in (see `feed_top`).
    feed_top(&tmux, &s.sock, 0, prefix.count);

    let row_of = |screen: &str, pid: u32| -> Option<String> {
        screen
            .lines()
            .find(|l| l.split_whitespace().next() == Some(pid.to_string().as_str()))
            .map(str::to_string)
    };
    // Messages flow replay -> serve -> top: wait until all have arrived.
    let screen = tmux.wait_for("every pid in the processes view", LIMIT, |x| {
        prefix.pids.iter().all(|p| contains_pid(x, *p))
            && prefix.live.iter().all(|p| {
                row_of(x, *p).is_some_and(|r| r.contains("live") || r.contains("stopping"))
            })
    });
    assert!(screen.contains("Processes - sort: rps"), "{screen}");
    for pid in &prefix.live {
        let row = screen
            .lines()
            .find(|l| l.split_whitespace().next() == Some(pid.to_string().as_str()))
            .unwrap();
        assert!(row.contains("live") || row.contains("stopping"), "{row}");
    }

    tmux.keys("w");
    // (Each wait names everything the screen must show: a capture can
    // catch a frame half drawn.)
    tmux.wait_for("workers view with a row per live pid", LIMIT, |x| {
        x.contains("! >=slow-threshold") && prefix.live.iter().all(|p| contains_pid(x, *p))
    });

    tmux.keys("l");
    tmux.wait_for("latency view with histogram", LIMIT, |x| {
        x.contains("Latency - phase: request") && x.contains("16ms") && x.contains('█')
    });
    tmux.keys("]");
    tmux.wait_for("server phase", LIMIT, |x| {
        x.contains("Latency - phase: server")
    });

    tmux.keys("5");
    tmux.wait_for("slow view with pids and paths", LIMIT, |x| {
        x.contains("Slow requests - sort:")
            && prefix.slow_paths.iter().any(|p| x.contains(p.as_str()))
            && prefix.pids.iter().any(|p| x.contains(&format!(" {p} ")))
    });

    tmux.keys("o");
    tmux.wait_for("overview", LIMIT, |x| {
        x.contains("Overview: last 1m")
            && x.contains("throughput")
            && x.contains("Phase mean times")
            && x.lines()
                .next()
                .unwrap_or("")
                .contains("(embedded),app,aux")
    });

    // Pause freezes the screen, space resumes.
    tmux.keys(" ");
    tmux.wait_for("paused", LIMIT, |x| {
        x.contains("[paused]") && x.contains("[PAUSED]")
    });
    tmux.keys(" ");
    tmux.wait_for("resumed", LIMIT, |x| x.contains("[live]"));

    tmux.keys("?");
    tmux.wait_for("help", LIMIT, |x| {
        x.contains(" keys ") && x.contains("quit")
    });
    tmux.keys("?");

    // q restores the terminal (the primary screen is back) and exits 0.
    tmux.keys("q");
    let screen = tmux.wait_for("exit", LIMIT, |x| x.contains("TOP-EXIT="));
    assert!(screen.contains("TOP-EXIT=0"), "{screen}");
    assert!(!screen.contains("mod_wsgi-telemetry top"), "{screen}");
}

#[test]
fn top_tui_shows_disconnect_and_reconnects() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let cmd = format!(
        "{} top --url {url} --refresh 0.5; echo TOP-EXIT=$?; sleep 60",
        bin()
    );
    let tmux = Tmux::start(&["sh", "-c", &cmd], 150, 40);
    // Nothing listens yet: the state is visible, and top keeps trying.
    tmux.wait_for("disconnected, with the url", LIMIT, |x| {
        x.contains("[disconnected]") && x.contains(&format!("url={url}"))
    });
    let mut s = Serve::start_at(bin(), dir, port, &[]);
    tmux.wait_for("connected", LIMIT, |x| {
        x.contains("[live]") && x.contains("connected to")
    });
    s.stop();
    tmux.wait_for("disconnected again", LIMIT, |x| {
        x.contains("[disconnected]")
    });
    // Ctrl-C quits cleanly too.
    tmux.key_name("C-c");
    let screen = tmux.wait_for("exit", LIMIT, |x| x.contains("TOP-EXIT="));
    assert!(screen.contains("TOP-EXIT=0"), "{screen}");
}

#[test]
fn top_once_prints_header_and_process_table() {
    let (s, prefix) = fed_server();
    let out = top(&["--once", "--once-timeout", "30", "--url", &s.url()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("mod_wsgi-telemetry top  host=vm  group=(embedded),app,aux"),
        "{text}"
    );
    for p in [
        "  rps:  now ",
        "  cap:  ",
        "  cpu:  user ",
        "  stat: 2xx ",
        "  lat:  p50 ",
        "  slow: ",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(p)), "{p} in\n{text}");
    }
    assert!(
        text.contains(&format!("  procs: {} live", prefix.live.len())),
        "{text}"
    );
    let table: Vec<&str> = lines
        .iter()
        .skip_while(|l| **l != "processes:")
        .skip(2)
        .copied()
        .collect();
    let pids: std::collections::BTreeSet<u32> = table
        .iter()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(pids, prefix.pids);
    // Live processes first.
    let states: Vec<&str> = table
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    let first_gone = states
        .iter()
        .position(|s| *s == "stopped" || *s == "stale")
        .unwrap();
    assert!(
        states[first_gone..]
            .iter()
            .all(|s| *s == "stopped" || *s == "stale"),
        "{text}"
    );

    let v = top_json(&s, &["--window", "10m"]);
    assert_eq!(v["received"], true);
    assert_eq!(v["window_seconds"], 600.0);
    assert_eq!(v["live_processes"], prefix.live.len());
    let live: std::collections::BTreeSet<u32> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "live" || p["state"] == "stopping")
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(live, prefix.live);
    // Figures, independently from the capture: "now" sums the latest
    // sample of each live process; p95 comes from the summed histograms of
    // every sample (the 10-minute window holds the whole 45 s prefix).
    let rps_now: f64 = prefix.live.iter().map(|p| prefix.latest[p].0).sum();
    assert!(
        (v["rps"]["now"].as_f64().unwrap() - rps_now).abs() < 1e-6,
        "{v}"
    );
    let threads: u64 = prefix.live.iter().map(|p| prefix.latest[p].1).sum();
    assert_eq!(v["threads"]["total"], threads);
    let p95 = wire::histogram::quantile_seconds(&prefix.buckets, 0.95).unwrap();
    assert!(
        (v["latency"]["p95"].as_f64().unwrap() - p95).abs() < 1e-9,
        "{v} vs {p95}"
    );
    assert_eq!(v["failing"].as_array().unwrap().len(), 0);
}

#[test]
fn top_once_times_out_with_exit_2() {
    // A port nothing listens on.
    let url = format!("ws://127.0.0.1:{}/ws", free_port());
    let out = top(&["--once", "--once-timeout", "0.5", "--url", &url]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("mod_wsgi-telemetry top  host=-  group=(any)"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no data from"));
}

#[test]
fn top_once_fail_if_exits_1_with_the_failing_conditions() {
    let (s, prefix) = fed_server();
    let out = top(&[
        "--once",
        "--once-timeout",
        "30",
        "--url",
        &s.url(),
        "--fail-if",
        "live_processes>0",
        "--fail-if",
        "p95>1000s",
        "--fail-if",
        "5xx_rate >= 0%",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failing: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "failing:")
        .skip(1)
        .collect();
    assert_eq!(failing.len(), 2, "{text}");
    assert_eq!(
        failing[0],
        format!("  live_processes = {} > 0", prefix.live.len())
    );
    assert!(failing[1].starts_with("  5xx_rate = "), "{text}");

    // Thresholds that hold nowhere: healthy, exit 0.
    let out = top(&[
        "--once",
        "--once-timeout",
        "30",
        "--url",
        &s.url(),
        "--fail-if",
        "capacity>1.5",
        "--fail-if",
        "p99>600s",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("failing:"));

    // A malformed condition is a usage error.
    let out = top(&["--once", "--url", &s.url(), "--fail-if", "latency?"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected METRIC OP VALUE"));
}

#[test]
fn top_once_against_serve_demo_shows_the_simulated_site() {
    let s = Serve::start(bin(), &["--demo"]);
    // The demo simulator needs a tick or two before samples exist.
    let t0 = std::time::Instant::now();
    loop {
        let v = top_json(&s, &[]);
        let groups: std::collections::BTreeSet<String> = v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["group"].as_str().unwrap().to_string())
            .collect();
        if v["live_processes"].as_u64().unwrap() >= 6 && v["rps"]["now"].as_f64().unwrap() > 0.0 {
            assert!(
                groups.contains("app")
                    && groups.contains("reports")
                    && groups.contains("(embedded)"),
                "{groups:?}"
            );
            break;
        }
        assert!(t0.elapsed() < LIMIT, "demo feed never showed up: {v}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn top_tui_restores_the_terminal_on_sigterm() {
    let s = Serve::start(bin(), &[]);
    // A shell stays in the pane, as a user's would: it reports top's exit
    // status and the terminal modes top left behind. (Not `exec top` with
    // remain-on-exit and `#{pane_dead_status}`: when the pane's last process
    // closes the pty, tmux 3.3a calls libutempter, which sets SIGCHLD to
    // SIG_DFL while its helper runs; a SIGCHLD from top landing in that
    // window is lost, top stays an unreaped zombie and the status never
    // appears. That, not top, failed this test on a loaded machine.)
    let (tmux, pid) = top_in_tmux(&s, |exec_top| {
        format!(
            "sh -c '{exec_top}'; echo TOP-EXIT=$?; \
             echo TTY: $(stty -a | tr -s ' ;' '\\n\\n' | grep -xE -- '-?(isig|icanon|echo)'); \
             sleep 60"
        )
    });
    assert_eq!(tmux.format("#{alternate_on} #{cursor_flag}"), "1 0");
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // 143 would be the signal's default action (or the watcher's forced
    // exit after its grace period): the quit event must win.
    let screen = tmux.wait_for("top's exit and the tty modes", LIMIT, |x| {
        x.contains("TOP-EXIT=") && x.contains("TTY:")
    });
    assert!(screen.contains("TOP-EXIT=0\n"), "{screen}");
    // Cooked mode again: line editing, echo and signal keys.
    let modes: Vec<&str> = screen
        .lines()
        .find_map(|l| l.split_once("TTY:").map(|(_, m)| m))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    for m in ["isig", "icanon", "echo"] {
        assert!(modes.contains(&m), "{m} not restored: {modes:?}\n{screen}");
    }
    // Back on the primary screen with the cursor shown: nothing of the
    // monitor is left.
    assert_eq!(tmux.format("#{alternate_on} #{cursor_flag}"), "0 1");
    assert!(!screen.contains("mod_wsgi-telemetry top"), "{screen}");
}

#[test]
fn top_tui_pause_freezes_the_screen_while_data_keeps_arriving() {
    let early = corpus_prefix(20.0);
    let late = corpus_prefix(PREFIX_SECONDS);
    let new_pids: Vec<u32> = late.pids.difference(&early.pids).copied().collect();
    assert!(!new_pids.is_empty());
    let s = Serve::start(bin(), &[]);
    let tmux = processes_view_in_tmux(&s, "sleep 60");
    tmux.wait_for("connection", LIMIT, |x| x.contains("[live]"));
    feed_top(&tmux, &s.sock, 0, early.count);
    tmux.wait_for("the first 20 s", LIMIT, |x| {
        early.pids.iter().all(|p| contains_pid(x, *p))
    });
    tmux.keys(" ");
    let frozen = tmux.wait_for("paused", LIMIT, |x| {
        x.contains("[paused]") && x.contains("[PAUSED]")
    });
    // While paused, the capture up to the first sample of the first new
    // process: fewer datagrams than serve queues for top, so none is lost
    // however slowly top takes them in (the rest follows at top's pace
    // after the resume; a paused screen cannot show that pace).
    let (paused_to, first_new) = corpus_records()[..late.count]
        .iter()
        .enumerate()
        .find_map(|(i, r)| {
            let h = wire::decode(r).unwrap().header;
            (h.kind == wire::Kind::REQUEST && new_pids.contains(&h.pid)).then_some((i + 1, h.pid))
        })
        .unwrap();
    assert!(paused_to - early.count <= SERVE_WS_QUEUE);
    send_corpus_range(&s.sock, early.count, paused_to);
    s.wait_received(paused_to);
    // Several refresh periods pass with new data in the model: the screen
    // must not move.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(tmux.capture(), frozen, "the paused screen changed");
    }
    assert!(!contains_pid(&frozen, first_new));
    tmux.keys(" ");
    tmux.wait_for("resumed with the new process", LIMIT, |x| {
        x.contains("[live]") && contains_pid(x, first_new)
    });
    feed_top(&tmux, &s.sock, paused_to, late.count);
    tmux.wait_for("the new processes", LIMIT, |x| {
        new_pids.iter().all(|p| contains_pid(x, *p))
    });
}

#[test]
fn top_once_group_filter_includes_the_embedded_set() {
    let (s, _) = fed_server();
    for (group, label) in [("(embedded)", "(embedded)"), ("app", "app")] {
        let v = top_json(&s, &["--group", group]);
        assert_eq!(v["groups"], label);
        let procs = v["processes"].as_array().unwrap();
        assert!(!procs.is_empty());
        assert!(procs.iter().all(|p| p["group"] == label), "{v}");
    }
}

#[test]
fn top_exits_when_its_terminal_hangs_up() {
    // An SSH session that drops: the terminal goes away under a running
    // top, which must exit rather than spin on the dead terminal.
    let s = Serve::start(bin(), &[]);
    let (tmux, pid) = top_in_tmux(&s, |exec_top| exec_top);
    tmux.hang_up();
    let t0 = std::time::Instant::now();
    while !process_gone(pid) {
        if t0.elapsed() > LIMIT {
            // Do not leave it behind, then fail.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("top (pid {pid}) outlived its terminal");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn top_without_a_terminal_says_to_use_once() {
    let out = top(&["--url", "ws://127.0.0.1:1/ws"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("top needs a terminal (use --once for scripts)"),
        "{err}"
    );
}
