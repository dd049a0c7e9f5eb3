//! `top`'s custom view (key `c`: the application's own metrics) in a tmux
//! pseudo-terminal: against our `serve` fed `app_metrics` datagrams of two
//! processes in two groups, it shows their sums, and one group's alone
//! after `f`; against the reference's `serve` (no `/api/stats/detail`) it
//! says so and keeps running.

mod top_support;

use std::time::Duration;
use top_support::*;

const LIMIT: Duration = Duration::from_secs(30);

/// The row of `name` on the screen, its columns split on blanks.
fn row(screen: &str, name: &str) -> Vec<String> {
    screen
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn custom_view_sums_and_filters() {
    let s = Serve::start(bin(), &[]);
    // Pid 101 is in group g1, 102 in g2 (`app_datagram`).
    let all = [
        started(101, 1),
        app_datagram(101, 2, 4.0, 1.0, &[0.002, 0.004]),
        tick(101, 3),
        started(102, 1),
        app_datagram(102, 2, 7.0, 3.0, &[0.5]),
        tick(102, 3),
    ];
    s.send_all(&all);
    s.wait_received(all.len());
    let tmux = top_tui(&s, "--view custom");
    let screen = tmux.wait_for("both groups' metrics", LIMIT, |x| {
        row(x, "orders").get(2).map(String::as_str) == Some("11")
    });
    assert!(
        screen.contains("Application metrics - group: all  (3 names, 2 processes)"),
        "{screen}"
    );
    assert_eq!(row(&screen, "orders")[..3], ["orders", "counter", "11"]);
    // The gauge: 1 + 3 over 2 processes.
    assert_eq!(
        row(&screen, "queue.depth")[..4],
        ["queue.depth", "gauge", "×2", "4"]
    );
    // Three values merged: count 3, the largest (500 ms) clamps p95/p99.
    let lat = row(&screen, "latency.{0}");
    assert_eq!(lat[..3], ["latency.{0}", "distribution", "3"], "{screen}");
    assert_eq!(lat[4..6], ["500.0ms", "500.0ms"], "{screen}");
    // `f`: the first group with metrics, g1, alone.
    tmux.keys("f");
    let screen = tmux.wait_for("group g1", LIMIT, |x| {
        x.contains("group: g1") && row(x, "orders").get(2).map(String::as_str) == Some("4")
    });
    assert_eq!(
        row(&screen, "queue.depth")[..4],
        ["queue.depth", "gauge", "×1", "1"]
    );
    // Another view and back.
    tmux.keys("1");
    tmux.wait_for("the overview", LIMIT, |x| {
        x.contains("(use < > to change window)")
    });
    tmux.keys("c");
    tmux.wait_for("the custom view again", LIMIT, |x| x.contains("group: g1"));
    assert!(tmux.alive());
    tmux.keys("q");
}

#[test]
fn custom_view_against_the_reference_serve_says_not_available() {
    let reference = Serve::reference();
    let tmux = top_tui(&reference, "");
    tmux.keys("6");
    tmux.wait_for("not available", LIMIT, |x| {
        x.contains("application metrics not available: the server has no /api/stats/detail")
    });
    tmux.keys("1");
    tmux.wait_for("the overview", LIMIT, |x| {
        x.contains("(use < > to change window)")
    });
    assert!(tmux.alive());
    tmux.keys("q");
}
