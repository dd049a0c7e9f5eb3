//! `top --once` against the reference ingester (mod_wsgi-telemetry 1.1.0
//! from PyPI, in the throwaway virtualenv of `scripts/ref-venv.sh`) gives
//! the same process table as against our `serve`, both fed the same
//! datagrams by `replay`.
//!
//! The reference cannot serialise GC datagrams that carry field 8
//! (`interpreter_name`, `docs/compatibility.md` C11): its WebSocket and `/api/state` then fail.
//! Both servers are therefore fed the capture with field 8 dropped.

mod top_support;

use std::time::{Duration, Instant};
use top_support::*;

/// The process table of `top --once` (the lines after `processes:`).
fn table(url: &str) -> Vec<String> {
    let out = top(&["--once", "--once-timeout", "30", "--url", url]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    text.lines()
        .skip_while(|l| *l != "processes:")
        .map(str::to_string)
        .collect()
}

#[test]
fn top_once_gives_the_same_process_table_against_the_reference_serve() {
    let prefix = corpus_prefix(45.0);
    let ours = Serve::start(bin(), &[]);
    let reference = Serve::reference();
    let drop8 = ["--restamp", "--drop-field", "8"];
    replay(&ours.sock, prefix.count, &drop8);
    replay(&reference.sock, prefix.count, &drop8);
    ours.wait_received(prefix.count);
    // The reference has no quick counter to poll cheaply other than its
    // state; wait until its table has every pid of the prefix.
    let t0 = Instant::now();
    let theirs = loop {
        let t = table(&reference.url());
        let pids = t
            .iter()
            .filter_map(|l| l.split_whitespace().next()?.parse::<u32>().ok())
            .count();
        if pids == prefix.pids.len() && reference.total_received() >= prefix.count as u64 {
            break table(&reference.url());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "reference never took the replay in:\n{}",
            t.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mine = table(&ours.url());
    assert_eq!(mine.len(), prefix.pids.len() + 2, "{}", mine.join("\n"));
    assert_eq!(mine, theirs);
}
