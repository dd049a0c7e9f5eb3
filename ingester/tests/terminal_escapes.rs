//! Datagram strings that try to drive the operator's terminal (`ESC ] 0 ;
//! … BEL` retitles it, `ESC [ 2 J` clears it, `U+009B` is a one-character
//! CSI, `U+202E` reverses text) reach `dump`'s text, `top --once`, the
//! live `top` and the label values of `/metrics` as visible escapes, and
//! `dump --json` as JSON escapes, never as the raw characters.

mod top_support;

use std::process::{Command, Stdio};
use std::time::Duration;
use top_support::*;

/// Retitle, clear, a C1 CSI (red), a bidi override, a forged line.
const HOSTILE_HOST: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2Jweb1";
const HOSTILE_GROUP: &str = "app\u{9b}31m\u{202e}x\ny";

fn hostile_datagrams() -> Vec<Vec<u8>> {
    let text = |s: &str| wire::Value::Bytes(s.as_bytes().to_vec());
    let now = wall_now();
    let started = wire::Sample {
        header: wire::Header::new(wire::Kind::PROCESS_STARTED, 4242, 1, now),
        fields: vec![
            (wire::id::HOSTNAME, text(HOSTILE_HOST)),
            (wire::id::PROCESS_GROUP, text(HOSTILE_GROUP)),
        ],
    };
    let sample = wire::Sample {
        header: wire::Header::new(wire::Kind::REQUEST, 4242, 2, now),
        fields: vec![
            (wire::id::HOSTNAME, text(HOSTILE_HOST)),
            (wire::id::PROCESS_GROUP, text(HOSTILE_GROUP)),
            (wire::id::SAMPLE_PERIOD, wire::Value::F64(1.0)),
            (wire::id::REQUEST_COUNT, wire::Value::U64(3)),
            (wire::id::REQUEST_THREADS_MAXIMUM, wire::Value::U64(5)),
        ],
    };
    [started, sample]
        .iter()
        .map(|s| s.encode().unwrap())
        .collect()
}

/// A `serve` that has taken in [`hostile_datagrams`].
fn hostile_serve() -> Serve {
    let serve = Serve::start(bin(), &["--log-level", "error"]);
    let datagrams = hostile_datagrams();
    serve.send_all(&datagrams);
    serve.wait_received(datagrams.len());
    serve
}

/// Fails naming the first byte sequence a terminal would act on.
fn assert_inert(what: &str, out: &[u8]) {
    for (i, b) in out.iter().enumerate() {
        let bad = match b {
            0x1b => Some("ESC"),
            0x07 => Some("BEL"),
            0x9b => Some("C1 CSI (8-bit)"),
            0xc2 if out.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) => {
                Some("C1 control (UTF-8)")
            }
            0xe2 if out.get(i + 1..i + 3) == Some(&[0x80, 0xae][..]) => Some("U+202E"),
            _ => None,
        };
        if let Some(bad) = bad {
            panic!(
                "{what}: {bad} at byte {i}:\n{}",
                String::from_utf8_lossy(out).escape_debug()
            );
        }
    }
}

#[test]
fn dump_text_from_a_capture_escapes_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("hostile.bin");
    let mut buf = Vec::new();
    for d in hostile_datagrams() {
        wire::capture::append_record(&mut buf, &d);
    }
    std::fs::write(&cap, &buf).unwrap();
    let out = Command::new(bin())
        .args(["dump", "--file", cap.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_inert("dump --file", &out.stdout);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("= \\x1b]0;pwned\\x07\\x1b[2Jweb1\n"),
        "{text}"
    );
    assert!(text.contains("= app\\x9b31m\\u{202e}x\\x0ay\n"), "{text}");
    // JSON output keeps the exact strings, as JSON escapes: serde_json
    // leaves C1 controls and bidi characters raw.
    let out = Command::new(bin())
        .args(["dump", "--json", "--file", cap.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_inert("dump --json --file", &out.stdout);
    let first: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(first["fields"]["hostname"], HOSTILE_HOST);
    assert_eq!(first["fields"]["process_group"], HOSTILE_GROUP);
}

#[test]
fn metrics_label_values_escape_control_characters() {
    let serve = hostile_serve();
    // A shutdown reason is a label value too.
    let stopped = wire::Sample {
        header: wire::Header::new(wire::Kind::PROCESS_STOPPED, 4243, 1, wall_now()),
        fields: vec![(
            wire::id::SHUTDOWN_REASON,
            wire::Value::Bytes(HOSTILE_HOST.as_bytes().to_vec()),
        )],
    };
    serve.send_all([stopped.encode().unwrap()]);
    serve.wait_received(hostile_datagrams().len() + 1);
    let (status, _, text) = serve.http("GET /metrics HTTP/1.0\r\nHost: {HOST}\r\n\r\n");
    assert_eq!(status, 200, "{text}");
    assert_inert("/metrics", text.as_bytes());
    // The visible escape's backslash is itself escaped in the exposition.
    let labels =
        r#"{host="\\x1b]0;pwned\\x07\\x1b[2Jweb1",process_group="app\\x9b31m\\u{202e}x\\x0ay"}"#;
    assert!(
        text.contains(&format!("mod_wsgi_processes{labels} 1\n")),
        "{text}"
    );
    assert!(
        text.contains(r#",reason="\\x1b]0;pwned\\x07\\x1b[2Jweb1"} 1"#),
        "{text}"
    );
}

#[test]
fn top_once_escapes_control_characters_with_and_without_colour() {
    let serve = hostile_serve();
    let url = serve.url();
    for extra in [&[][..], &["--no-color"][..]] {
        let mut args = vec!["top", "--once", "--once-timeout", "30", "--url", &url];
        args.extend(extra);
        let out = Command::new(bin())
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert_inert(&format!("{args:?}"), &out.stdout);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("host=\\x1b]0;pwned\\x07\\x1b[2Jweb1 "),
            "{args:?}:\n{text}"
        );
        // The process row: the group column holds its first 16 characters.
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("4242  app\\x9b31m\\u{2")),
            "{args:?}:\n{text}"
        );
    }
}

#[test]
fn live_top_shows_escapes_and_keeps_the_terminal_title() {
    let serve = hostile_serve();
    let cmd = format!("{} top --url {} --view processes", bin(), serve.url());
    let tmux = Tmux::start(&["sh", "-c", &cmd], 160, 30);
    let title_before = tmux.format("#{pane_title}");
    let screen = tmux.wait_for("the hostile process row", Duration::from_secs(30), |s| {
        s.lines().any(|l| l.trim_start().starts_with("4242"))
    });
    assert!(
        screen.contains("\\x1b]0;pwned\\x07\\x1b[2Jweb1"),
        "{screen}"
    );
    let row = screen
        .lines()
        .find(|l| l.trim_start().starts_with("4242"))
        .unwrap();
    assert!(row.contains(" app\\x9b31m\\u{20"), "{row}");
    let title = tmux.format("#{pane_title}");
    assert!(
        !title.contains("pwned") && title == title_before,
        "title changed from {title_before:?} to {title:?}"
    );
    tmux.keys("q");
    wait_until("top quits on q", || !tmux.alive());
}
