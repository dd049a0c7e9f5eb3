//! A real Prometheus scrapes `serve`'s `/metrics` every second while a
//! known request mix runs through a real httpd + mod_wsgi 4.9 + our module
//! (daemon mode, group `g`); its HTTP API then agrees with the mix, its
//! `histogram_quantile` lands in the bucket of the slow request, and a
//! graceful restart of Apache (every daemon replaced) resets no counter.

use integration_tests::wire::histogram;
use integration_tests::*;
use std::process::Command;

const OK: u64 = 20;
const NOT_FOUND: u64 = 3;
const ERRORS: u64 = 2;
const SLEEP_MS: u64 = 700;
const AFTER_RESTART: u64 = 4;

fn daemon_conf(root: &ServerRoot, sock: &std::path::Path) -> Options {
    let directives = format!(
        "WSGISlowRequests 0.5\n\
         WSGIDaemonProcess g processes=2 threads=4\n\
         WSGIScriptAlias /d {} process-group=g application-group=%{{GLOBAL}}\n",
        root.path("app.wsgi").display()
    );
    Options::telemetry(Mpm::Event, sock, 0.5, &directives)
}

/// `sum(<metric>{process_group="g", <more>})`.
fn g(metric: &str, more: &str) -> String {
    let sep = if more.is_empty() { "" } else { "," };
    format!("sum({metric}{{process_group=\"g\"{sep}{more}}})")
}

/// The longest `request_time_max` of group `g` in `/api/state`.
fn longest_request(ing: &Serve) -> f64 {
    let st = ing.state();
    st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["process_group"] == "g")
        .flat_map(|p| p["samples"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["fields"]["request_time_max"].as_f64())
        .fold(0.0, f64::max)
}

#[test]
fn prometheus_scrapes_serve_during_a_request_mix() {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Serve::at_socket(ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let prom = Prometheus::start(&[ing.port]);
    let opts = daemon_conf(&root, &sock);
    let mut httpd = Httpd::start_in(root, &opts);

    // A scrape of both daemons before any request: the mix is then seen
    // whole by increase() as well as in the raw counters.
    let requests = g("mod_wsgi_requests_total", "");
    prom.wait_for("both daemons scraped", &g("mod_wsgi_processes", ""), |v| {
        v == 2.0
    });
    prom.wait_for("a scrape before the mix", &requests, |v| v == 0.0);

    for _ in 0..OK {
        assert_eq!(httpd.get("/d/hello").0, 200);
    }
    for _ in 0..NOT_FOUND {
        assert_eq!(httpd.get("/d/notfound").0, 404);
    }
    for _ in 0..ERRORS {
        assert_eq!(httpd.get("/d/error").0, 500);
    }
    assert_eq!(httpd.get(&format!("/d/sleep/{SLEEP_MS}")).0, 200);
    let total = OK + NOT_FOUND + ERRORS + 1;

    prom.wait_for("the whole mix", &requests, |v| v >= total as f64);
    let class = |c: &str| format!("status_class=\"{c}\"");
    let raw = |c| prom.scalar(&g("mod_wsgi_requests_total", &class(c)));
    assert_eq!(raw("1xx"), Some(0.0));
    assert_eq!(raw("2xx"), Some((OK + 1) as f64));
    assert_eq!(raw("3xx"), Some(0.0));
    assert_eq!(raw("4xx"), Some(NOT_FOUND as f64));
    assert_eq!(raw("5xx"), Some(ERRORS as f64));
    assert_eq!(prom.scalar(&requests), Some(total as f64));
    // increase() over a window holding the zero scrape and the mix: whole
    // numbers of requests, extrapolation aside (Prometheus stretches the
    // increase to the window's edges only where samples are missing).
    let inc = prom
        .scalar("sum(increase(mod_wsgi_requests_total{process_group=\"g\"}[10m]))")
        .unwrap();
    assert!(
        (total as f64..total as f64 * 1.5).contains(&inc),
        "increase {inc} for {total} requests"
    );
    // Bodies: 5 bytes per hello and sleep, 4 per 404, none for a 500.
    let out = (OK + 1) * 5 + NOT_FOUND * 4;
    assert_eq!(
        prom.scalar(&g("mod_wsgi_response_body_bytes_total", "")),
        Some(out as f64)
    );
    for phase in ["server", "queue", "daemon", "application", "total"] {
        let count = g(
            "mod_wsgi_request_phase_duration_seconds_count",
            &format!("phase=\"{phase}\""),
        );
        assert_eq!(prom.scalar(&count), Some(total as f64), "{phase}");
    }
    prom.wait_for(
        "the slow request completed",
        &g("mod_wsgi_slow_requests_completed_total", ""),
        |v| v == 1.0,
    );

    // The 99th percentile is the slow request (the 26th of 26): it lands
    // in the bucket of its measured duration.
    let q = prom
        .scalar(
            "histogram_quantile(0.99, sum by (le) \
             (mod_wsgi_request_phase_duration_seconds_bucket{process_group=\"g\",phase=\"total\"}))",
        )
        .unwrap();
    let measured = longest_request(&ing);
    let b = histogram::bucket_index(measured);
    assert!(
        histogram::lower_ms(b) / 1000.0 <= q && q <= histogram::upper_ms(b) / 1000.0,
        "quantile {q} s outside bucket {b} of the slow request ({measured} s)"
    );
    assert!(measured >= SLEEP_MS as f64 / 1000.0);
    if measured < 0.768 {
        assert_eq!(
            b,
            histogram::bucket_index(0.7),
            "[640, 768) ms holds 700 ms"
        );
    }

    // OpenMetrics when asked for it (`promtool check metrics` on both
    // label layouts: ingester/tests/metrics.rs).
    let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n";
    let (_, head, om) = http_get(ing.port, "/metrics", accept).unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.ends_with(b"# EOF\n"));
    assert_eq!(prom.scalar("min(up{job=\"mod_wsgi\"})"), Some(1.0));

    // Graceful restart: both daemons replaced, counters carry on.
    let starts = g("mod_wsgi_process_starts_total", "");
    let started = prom.scalar(&starts).unwrap();
    httpd.graceful();
    prom.wait_for("two new daemons", &starts, |v| v >= started + 2.0);
    prom.wait_for(
        "the old daemons' stops",
        &g("mod_wsgi_process_stops_total", ""),
        |v| v >= 2.0,
    );
    prom.wait_for("the new daemons live", &g("mod_wsgi_processes", ""), |v| {
        v == 2.0
    });
    for _ in 0..AFTER_RESTART {
        assert_eq!(httpd.get("/d/hello").0, 200);
    }
    prom.wait_for("the requests after the restart", &requests, |v| {
        v >= (total + AFTER_RESTART) as f64
    });
    assert_eq!(prom.scalar(&requests), Some((total + AFTER_RESTART) as f64));
    // One more scrape, then no counter of any series ever went down.
    let scrapes = "sum(count_over_time(up{job=\"mod_wsgi\"}[10m]))";
    let n = prom.scalar(scrapes).unwrap();
    prom.wait_for("one more scrape", scrapes, |v| v > n);
    // (resets() drops the name, so one family at a time.)
    let (_, _, names) = http_get(prom.port, "/api/v1/label/__name__/values", "").unwrap();
    let names: serde_json::Value = serde_json::from_slice(&names).unwrap();
    let counters: Vec<&str> = names["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .filter(|n| n.starts_with("mod_wsgi_"))
        .filter(|n| n.ends_with("_total") || n.ends_with("_count") || n.ends_with("_bucket"))
        .collect();
    assert!(counters.len() >= 15, "{counters:?}");
    let mut series = 0.0;
    for name in &counters {
        let went_down = prom.query(&format!("resets({name}[10m]) > 0")).unwrap();
        assert_eq!(went_down, serde_json::json!([]), "{name} went down");
        series += prom.scalar(&format!("count(resets({name}[10m]))")).unwrap();
    }
    assert!(series > 100.0, "{series} counter series checked");
    httpd.stop();
}

/// `promtool` in `conf-examples/prometheus/`: `check config`, `check rules`
/// and the rules' unit tests (`test rules`) pass.
fn promtool_in_examples(args: &[&str]) {
    let dir = workspace_root().join("conf-examples/prometheus");
    testkit::run_ok(
        Command::new("/usr/bin/promtool")
            .args(args)
            .current_dir(&dir),
        &format!("/usr/bin/promtool (Debian package prometheus) {args:?}"),
    );
}

#[test]
fn prometheus_examples_pass_promtool() {
    promtool_in_examples(&["check", "config", "prometheus.yml"]);
    promtool_in_examples(&["check", "rules", "mod_wsgi-rules.yml"]);
    promtool_in_examples(&["test", "rules", "mod_wsgi-rules.test.yml"]);
}

/// Every metric the example rules use is one `/metrics` exposes (names
/// taken from the exact exposition the ingester's unit test checks).
#[test]
fn example_rules_use_exposed_metrics() {
    let rules = std::fs::read_to_string(
        workspace_root().join("conf-examples/prometheus/mod_wsgi-rules.yml"),
    )
    .unwrap();
    let exposed = std::fs::read_to_string(
        workspace_root().join("ingester/tests/fixtures/metrics/fixed-state.prom.txt"),
    )
    .unwrap();
    let names: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("mod_wsgi_"))
        .collect();
    assert!(names.len() >= 7, "{names:?}");
    for n in names {
        assert!(
            exposed.contains(&format!("\n{n}{{")),
            "{n} is used by the example rules but not exposed"
        );
    }
}
