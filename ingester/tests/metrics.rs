//! `GET /metrics` on a real `serve` fed over its real socket: the format
//! follows the `Accept` header, the counters add up what was sent, the
//! output passes `promtool check metrics`, `--metrics-per-process` adds
//! the `pid` label, and a reverse proxy's prefix header changes nothing.

mod common;

use common::{bin, datagrams, Serve};
use std::io::Write;
use std::process::{Command, Stdio};

const OM: &str =
    "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";

fn get(s: &Serve, headers: &str) -> (u16, String, String) {
    s.http(&format!(
        "GET /metrics HTTP/1.0\r\nHost: {{HOST}}\r\n{headers}\r\n"
    ))
}

fn content_type(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn promtool_check(text: &str) {
    let mut child = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/promtool (Debian package prometheus, scripts/install-deps.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );
}

/// Two processes of group `g1` (pids 5 and 9: 5 ticks × 80 requests each).
fn fed(extra: &[&str]) -> Serve {
    let s = Serve::start(bin(), extra);
    let all: Vec<Vec<u8>> = [5, 9].into_iter().flat_map(datagrams).collect();
    s.send_all(&all);
    s.wait_received(all.len());
    s
}

#[test]
fn format_follows_accept_and_counts_add_up() {
    let s = fed(&[]);
    let (st, head, text) = get(&s, "");
    assert_eq!(st, 200);
    assert_eq!(
        content_type(&head),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    promtool_check(&text);
    // 2 processes × 5 ticks × 70 2xx.
    for line in [
        "mod_wsgi_requests_total{host=\"web1\",process_group=\"g1\",status_class=\"2xx\"} 700\n",
        "mod_wsgi_requests_total{host=\"web1\",process_group=\"g1\",status_class=\"5xx\"} 10\n",
        "mod_wsgi_response_body_bytes_total{host=\"web1\",process_group=\"g1\"} 655360\n",
        "mod_wsgi_request_phase_duration_seconds_count{host=\"web1\",process_group=\"g1\",phase=\"queue\"} 800\n",
        "mod_wsgi_processes{host=\"web1\",process_group=\"g1\"} 2\n",
        "mod_wsgi_threads_configured{host=\"web1\",process_group=\"g1\"} 16\n",
        "mod_wsgi_gc_collections_total{host=\"web1\",process_group=\"g1\",generation=\"0\"} 18\n",
        "mod_wsgi_telemetry_datagrams_received_total 14\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    assert!(!text.contains("pid=\""));
    assert!(!text.contains("# EOF"));

    let (st, head, om) = get(&s, OM);
    assert_eq!(st, 200);
    assert_eq!(
        content_type(&head),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# UNIT mod_wsgi_cpu_seconds seconds\n"));
    // Same numbers in both formats.
    assert!(om.contains(
        "mod_wsgi_requests_total{host=\"web1\",process_group=\"g1\",status_class=\"2xx\"} 700\n"
    ));

    // Behind a proxy that strips its mount point: the same route.
    let (st, _, proxied) = get(&s, "X-Forwarded-Prefix: /telemetry\r\n");
    assert_eq!(st, 200);
    assert!(proxied.contains("status_class=\"2xx\"} 700\n"));
}

#[test]
fn per_process_adds_the_pid() {
    let s = fed(&["--metrics-per-process"]);
    let (st, _, text) = get(&s, "");
    assert_eq!(st, 200);
    promtool_check(&text);
    for pid in [5, 9] {
        let line = format!(
            "mod_wsgi_requests_total{{host=\"web1\",process_group=\"g1\",pid=\"{pid}\",status_class=\"2xx\"}} 350\n"
        );
        assert!(text.contains(&line), "no {line:?}");
    }
    // Group-level families stay by group.
    assert!(text.contains("mod_wsgi_processes{host=\"web1\",process_group=\"g1\"} 2\n"));
}
