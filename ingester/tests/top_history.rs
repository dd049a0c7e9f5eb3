//! `top`'s range key (`t`: live, 1h, 6h, 24h, 7d) in a tmux pseudo-terminal:
//! against our `serve`, whose history the real `replay` fills, the overview
//! shows the stored history at the step `/api/history` answers; against the
//! reference's `serve` (no history endpoint) it says so and keeps running.

mod top_support;

use std::time::Duration;
use top_support::*;

const LIMIT: Duration = Duration::from_secs(30);

fn step_of(s: &Serve, range: &str) -> u64 {
    let (status, body) = s.get(&format!("/api/history?range={range}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(!v["points"].as_array().unwrap().is_empty(), "{body}");
    v["step"].as_u64().unwrap()
}

/// `fmt_window` of `top`: whole minutes from 60 s.
fn window(s: u64) -> String {
    if s >= 60 {
        format!("{}m", (s as f64 / 60.0).round())
    } else {
        format!("{s}s")
    }
}

#[test]
fn range_key_shows_the_stored_history() {
    let s = Serve::start(bin(), &[]);
    // Looped passes of the capture: each shifts the stamps by its span, so
    // the history covers tens of minutes.
    let count = 300_000;
    replay_corpus(&s.sock, &["--loop", "--count", &count.to_string()]);
    s.wait_received(count);
    let tmux = top_tui(&s, "");
    tmux.keys("t");
    let hour = step_of(&s, "1h");
    let screen = tmux.wait_for("1h range", LIMIT, |x| {
        x.contains(&format!(
            "Overview: last 1h from the history (t: live/1h/6h/24h/7d), one point per {}",
            window(hour)
        ))
    });
    for label in ["throughput", "p95 time", "capacity", "cpu", "rss mean"] {
        assert!(
            screen
                .lines()
                .any(|l| l.starts_with(label) && l.contains('█')),
            "{label} sparkline:\n{screen}"
        );
    }
    assert!(
        screen.contains("newest ") && screen.contains(" req/s  max "),
        "{screen}"
    );
    tmux.keys("tt");
    let day = step_of(&s, "24h");
    tmux.wait_for("24h range", LIMIT, |x| {
        x.contains(&format!(
            "last 24h from the history (t: live/1h/6h/24h/7d), one point per {}",
            window(day)
        ))
    });
    tmux.keys("tt");
    tmux.wait_for("back to live", LIMIT, |x| {
        x.contains("(use < > to change window)")
    });
    assert!(tmux.alive());
    tmux.keys("q");
}

#[test]
fn range_key_against_the_reference_serve_says_not_available() {
    let reference = Serve::reference();
    let tmux = top_tui(&reference, "");
    tmux.keys("t");
    tmux.wait_for("not available", LIMIT, |x| {
        x.contains("history not available: the server has no /api/history")
    });
    // still running, and the live overview comes back
    tmux.keys("tttt");
    tmux.wait_for("back to live", LIMIT, |x| {
        x.contains("(use < > to change window)")
    });
    assert!(tmux.alive());
    tmux.keys("q");
}
