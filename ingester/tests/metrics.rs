//! `GET /metrics` on a real `serve` fed over its real socket: the format
//! follows the `Accept` header, the counters add up what was sent, the
//! output passes `promtool check metrics`, `--metrics-per-process` adds
//! the `pid` label, a reverse proxy's prefix header changes nothing, and
//! a sender cannot add series without bound through shutdown reasons or
//! group names.

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

/// PROCESS_STOPPED of `pid` (host `web1`, group `g1`) with `reason`.
fn stopped_because(pid: u32, seq: u32, reason: &str) -> Vec<u8> {
    wire::Sample {
        header: wire::Header::new(wire::Kind::PROCESS_STOPPED, pid, seq, 1000.0),
        fields: vec![
            (wire::id::HOSTNAME, wire::Value::Bytes(b"web1".to_vec())),
            (wire::id::PROCESS_GROUP, wire::Value::Bytes(b"g1".to_vec())),
            (
                wire::id::SHUTDOWN_REASON,
                wire::Value::Bytes(reason.as_bytes().to_vec()),
            ),
        ],
    }
    .encode()
    .unwrap()
}

#[test]
fn shutdown_reasons_add_a_bounded_number_of_series() {
    // Before the bound, each new reason was a series of its own: 100,000
    // forged reasons from one pid made an 8 MB exposition in a second.
    let s = Serve::start(bin(), &[]);
    let mut sent: Vec<Vec<u8>> = (1..=200)
        .map(|i| stopped_because(5, i, &format!("forged-{i}")))
        .collect();
    sent.push(stopped_because(5, 201, "graceful_signal"));
    sent.push(stopped_because(5, 202, "forged-1"));
    s.send_all(&sent);
    s.wait_received(sent.len());
    let (st, _, text) = get(&s, "");
    assert_eq!(st, 200);
    promtool_check(&text);
    let stops: Vec<(&str, u64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("mod_wsgi_process_stops_total{"))
        .map(|l| {
            let (labels, n) = l.rsplit_once("} ").unwrap();
            (labels, n.parse().unwrap())
        })
        .collect();
    // 32 reasons counted apart, the rest as `other`; nothing lost.
    assert_eq!(stops.len(), 33, "{stops:?}");
    assert_eq!(stops.iter().map(|s| s.1).sum::<u64>(), 202);
    let of = |reason: &str| {
        stops
            .iter()
            .find(|s| s.0.ends_with(&format!("reason=\"{reason}\"")))
            .map(|s| s.1)
    };
    assert_eq!(of("forged-1"), Some(2));
    assert_eq!(of("forged-33"), None);
    assert_eq!(of("other"), Some(202 - 33));
}

/// A datagram of `kind` from `pid` (host `web1`) naming group `group`.
fn of_group(kind: wire::Kind, pid: u32, seq: u32, group: &str) -> Vec<u8> {
    wire::Sample {
        header: wire::Header::new(kind, pid, seq, 1000.0 + f64::from(seq)),
        fields: vec![
            (wire::id::HOSTNAME, wire::Value::Bytes(b"web1".to_vec())),
            (
                wire::id::PROCESS_GROUP,
                wire::Value::Bytes(group.as_bytes().to_vec()),
            ),
            (wire::id::SAMPLE_PERIOD, wire::Value::F64(1.0)),
            (wire::id::REQUEST_COUNT, wire::Value::U64(3)),
            (wire::id::STATUS_2XX_TOTAL, wire::Value::U64(3)),
        ],
    }
    .encode()
    .unwrap()
}

/// The distinct `(host, process_group)` label pairs of a family.
fn groups_of<'a>(text: &'a str, family: &str) -> std::collections::BTreeSet<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(family)?.strip_prefix('{'))
        .map(|l| {
            let end = l.find("\",").unwrap() + 1;
            let end = end + l[end..].find('"').unwrap();
            let end = end + 1 + l[end + 1..].find('"').unwrap() + 1;
            &l[..end]
        })
        .collect()
}

#[test]
fn group_names_add_a_bounded_number_of_series() {
    // Before the bound, 20,000 PROCESS_STARTED datagrams from one pid, each
    // naming a new group, made a 779 MB exposition (430 series a group).
    let s = Serve::start(bin(), &["--max-groups", "8"]);
    let mut sent: Vec<Vec<u8>> = (1..=200)
        .map(|i| of_group(wire::Kind::PROCESS_STARTED, 7, i, &format!("forged-{i}")))
        .collect();
    // Live processes renaming their group, and one of a group counted apart.
    sent.extend(
        (1..=20).map(|pid| of_group(wire::Kind::REQUEST, 100 + pid, 1, &format!("tick-{pid}"))),
    );
    sent.push(of_group(wire::Kind::REQUEST, 7, 201, "forged-2"));
    s.send_all(&sent);
    s.wait_received(sent.len());
    let (st, _, text) = get(&s, "");
    assert_eq!(st, 200);
    promtool_check(&text);
    let starts = groups_of(&text, "mod_wsgi_process_starts_total");
    let requests = groups_of(&text, "mod_wsgi_requests_total");
    // 8 groups counted apart (the first 8 named), the others together.
    let other = r#"host="(other)",process_group="(other)""#;
    assert_eq!(starts.len(), 9, "{starts:?}");
    assert!(starts.contains(other), "{starts:?}");
    assert!(starts.contains(r#"host="web1",process_group="forged-8""#));
    assert!(requests.is_subset(&starts), "{requests:?}");
    // Nothing is lost: every start and request is counted somewhere.
    let sum = |family: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(family))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(sum("mod_wsgi_process_starts_total{"), 200);
    assert_eq!(sum("mod_wsgi_requests_total{"), 21 * 3);
    // pid 7 latched forged-200 (folded), then forged-2 (counted apart).
    let folded = s.state()["groups_folded"].as_u64().unwrap();
    assert_eq!(folded, 192 + 20, "{folded}");
    // And a scraper sees the same count.
    let scraped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("mod_wsgi_telemetry_groups_folded_total "))
        .and_then(|v| v.parse().ok())
        .expect("mod_wsgi_telemetry_groups_folded_total in the exposition");
    assert_eq!(scraped, folded);
}
