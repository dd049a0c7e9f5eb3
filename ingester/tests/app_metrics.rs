//! The applications' own metrics on a real `serve` fed over its real
//! socket with `wire::app`'s encoder: three processes in two groups (one
//! of them replaced by a new process on the same pid), counters, gauges and
//! distributions. `/api/stats` sums exactly, its percentiles are those of
//! every value recorded in one histogram (exact to the bucket), `/metrics`
//! shows the same, and the datagrams cost no sample and no sequence gap.

mod common;

use common::{app_datagram as app, bin, started, stopped, tick, DistTotals, Serve};
use serde_json::Value as J;
use wire::histogram::quantile_seconds;

fn stats(s: &Serve, query: &str) -> J {
    let (st, body) = s.get(&format!("/api/stats{query}"));
    assert_eq!(st, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The statistics the ingester must show for `values` recorded anywhere.
fn expected(name: &str, values: &[f64]) -> Vec<(String, f64)> {
    let t = DistTotals::of(values);
    let counts: Vec<i64> = t.buckets.iter().map(|&c| i64::from(c)).collect();
    let q = |q| quantile_seconds(&counts, q).unwrap().clamp(t.min, t.max);
    let d = |s: &str| name.replace("{0}", s);
    vec![
        (d("count"), t.count as f64),
        (d("sum"), t.sum),
        (d("min"), t.min),
        (d("max"), t.max),
        (d("p50"), q(0.5)),
        (d("p90"), q(0.9)),
        (d("p95"), q(0.95)),
        (d("p99"), q(0.99)),
    ]
}

fn assert_close(got: &J, name: &str, want: f64) {
    let g = got[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {got}"));
    assert!(
        (g - want).abs() <= 1e-12 * want.abs().max(1.0),
        "{name}: {g} != {want}"
    );
}

/// Group g1: pids 101 and 105; 105 is replaced by a new process on the
/// same pid. Group g2: pid 102.
fn fed() -> Serve {
    let s = Serve::start(bin(), &[]);
    let a = [0.002, 0.004, 0.1, 0.1];
    let b = [0.003, 0.5];
    let c = [0.02, 0.03];
    let b2 = [0.01];
    let all = vec![
        started(101, 1),
        started(105, 1),
        started(102, 1),
        // Each tick: kind 10 just before the REQUEST tick, as the module sends.
        app(101, 2, 4.0, 1.0, &a[..2]),
        tick(101, 3),
        app(105, 2, 5.0, 4.0, &b),
        tick(105, 3),
        app(102, 2, 7.0, 1.0, &c),
        tick(102, 3),
        app(101, 4, 10.0, 3.0, &a),
        tick(101, 5),
        // 105 goes; a new process takes its pid and starts from zero.
        started(105, 1),
        app(105, 2, 2.0, 6.0, &b2),
        tick(105, 3),
    ];
    s.send_all(&all);
    s.wait_received(all.len());
    s
}

/// A process that says it stopped takes its gauge levels out of the sums
/// at once, its counters and distributions stay (before: its levels stayed
/// until the ingester expired it, five minutes later, so a graceful
/// restart counted every gauge twice meanwhile).
#[test]
fn a_stopped_process_leaves_the_gauges_and_stays_in_the_totals() {
    let s = Serve::start(bin(), &[]);
    // Both in group g1 (pid % 4).
    let all = [
        started(101, 1),
        app(101, 2, 4.0, 1.0, &[0.01]),
        tick(101, 3),
        started(105, 1),
        app(105, 2, 5.0, 4.0, &[0.02, 0.03]),
        tick(105, 3),
        stopped(105, 4),
    ];
    s.send_all(&all);
    s.wait_received(all.len());
    let st = stats(&s, "");
    assert_eq!(st["queue.depth"], 1, "{st}");
    assert_eq!(st["orders"], 9, "{st}");
    assert_eq!(st["latency.count"], 3, "{st}");
    let (_, detail) = s.get("/api/stats/detail");
    let detail: J = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["processes"], 1, "{detail}");
    // Its pid taken by a new process: the old totals stay counted once.
    let again = [
        started(105, 1),
        app(105, 2, 2.0, 3.0, &[0.04]),
        tick(105, 3),
    ];
    s.send_all(&again);
    s.wait_received(all.len() + again.len());
    let st = stats(&s, "");
    assert_eq!(
        (&st["orders"], &st["queue.depth"], &st["latency.count"]),
        (&J::from(11), &J::from(4), &J::from(4)),
        "{st}"
    );
}

#[test]
fn sums_percentiles_and_exposition_are_exact() {
    let s = fed();
    let st = s.state();
    assert_eq!(st["seq_gaps"], 0, "kind 10 shares the sequence");
    assert_eq!(st["decode_errors"], 0);
    for p in st["processes"].as_array().unwrap() {
        let n = p["samples"].as_array().unwrap().len();
        // (the reused pid 105 keeps its first process's tick)
        let want = if p["pid"] == 102 { 1 } else { 2 };
        assert_eq!(n, want, "only REQUEST ticks are samples: {p}");
    }

    let g1 = stats(&s, "?group=g1");
    assert_eq!(g1["orders"], 10 + 5 + 2);
    assert_eq!(g1["queue.depth"], 3 + 6);
    let g1_values = [0.002, 0.004, 0.1, 0.1, 0.003, 0.5, 0.01];
    for (name, want) in expected("latency.{0}", &g1_values) {
        assert_close(&g1, &name, want);
    }
    let g2 = stats(&s, "?group=g2&host=web1");
    assert_eq!(g2["orders"], 7);
    assert_eq!(g2["queue.depth"], 1);
    let all = stats(&s, "");
    assert_eq!(all["orders"], 24);
    assert_eq!(all["queue.depth"], 10);
    let every = [0.002, 0.004, 0.1, 0.1, 0.003, 0.5, 0.01, 0.02, 0.03];
    for (name, want) in expected("latency.{0}", &every) {
        assert_close(&all, &name, want);
    }
    assert_eq!(all.as_object().unwrap().len(), 2 + 8);
    assert_eq!(stats(&s, "?host=web2"), serde_json::json!({}));
    let (code, body) = s.get("/api/stats?grup=g1");
    assert_eq!(code, 400, "{body}");

    let (code, body) = s.get("/api/stats/detail?group=g1");
    assert_eq!(code, 200);
    let d: J = serde_json::from_str(&body).unwrap();
    assert_eq!(
        d["groups"],
        serde_json::json!([
            {"host": "web1", "process_group": "g1"},
            {"host": "web1", "process_group": "g2"},
        ])
    );
    let types: Vec<_> = d["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["name"].as_str().unwrap(),
                m["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            "latency.{0} distribution",
            "orders counter",
            "queue.depth gauge"
        ]
    );

    let (code, metrics) = s.get("/metrics");
    assert_eq!(code, 200);
    let app: String = metrics
        .lines()
        .filter(|l| l.starts_with("mod_wsgi_app_") && !l.contains("_bucket{"))
        .map(|l| format!("{l}\n"))
        .collect();
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    assert_eq!(
        app,
        format!(
            "mod_wsgi_app_counter_total{{host=\"web1\",process_group=\"g1\",name=\"orders\"}} 17.0\n\
             mod_wsgi_app_counter_total{{host=\"web1\",process_group=\"g2\",name=\"orders\"}} 7.0\n\
             mod_wsgi_app_gauge{{host=\"web1\",process_group=\"g1\",name=\"queue.depth\"}} 9.0\n\
             mod_wsgi_app_gauge{{host=\"web1\",process_group=\"g2\",name=\"queue.depth\"}} 1.0\n\
             mod_wsgi_app_distribution_seconds_sum{{host=\"web1\",process_group=\"g1\",name=\"latency.{{0}}\"}} {:?}\n\
             mod_wsgi_app_distribution_seconds_count{{host=\"web1\",process_group=\"g1\",name=\"latency.{{0}}\"}} 7\n\
             mod_wsgi_app_distribution_seconds_sum{{host=\"web1\",process_group=\"g2\",name=\"latency.{{0}}\"}} {:?}\n\
             mod_wsgi_app_distribution_seconds_count{{host=\"web1\",process_group=\"g2\",name=\"latency.{{0}}\"}} 2\n\
             mod_wsgi_app_metrics_dropped_total{{reason=\"series\"}} 0\n\
             mod_wsgi_app_metrics_dropped_total{{reason=\"processes\"}} 0\n\
             mod_wsgi_app_metrics_dropped_total{{reason=\"type_conflicts\"}} 0\n\
             mod_wsgi_app_metrics_dropped_total{{reason=\"calls\"}} 0\n\
             mod_wsgi_app_metrics_decode_errors_total 0\n",
            // retired (the first 105), then live by pid: 101, the new 105.
            sum(&[0.003, 0.5]) + sum(&[0.002, 0.004, 0.1, 0.1]) + sum(&[0.01]),
            sum(&[0.02, 0.03]),
        )
    );
    // The g1 histogram: cumulative, 7 in +Inf, 0.5 s in the bucket up to 0.512.
    for line in [
        "mod_wsgi_app_distribution_seconds_bucket{host=\"web1\",process_group=\"g1\",name=\"latency.{0}\",le=\"+Inf\"} 7\n",
        "mod_wsgi_app_distribution_seconds_bucket{host=\"web1\",process_group=\"g1\",name=\"latency.{0}\",le=\"0.00125\"} 0\n",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
}
