//! Does the reference ingester (mod_wsgi-telemetry 1.1.0) keep showing
//! correct figures when `app_metrics` datagrams (kind 10) arrive beside the
//! real mod_wsgi 6.1.1 capture? It does not know kind 10 and files it with
//! the periodic samples, so this test feeds it the capture three times,
//! each into a fresh reference `serve` through our `replay`:
//!
//! * plain;
//! * with one `app_metrics` datagram of the same process right **after**
//!   each `request_metrics` tick (same seq and stamp);
//! * with it right **before** each tick;
//!
//! and compares its `/api/state` and what its `top --once` prints.
//!
//! Findings, asserted below: the reference keeps every tick and decodes
//! every datagram, but the foreign samples sit in each process's sample
//! window, and whenever one is a process's newest sample, every "now"
//! figure of its `top` (throughput, capacity, CPU, memory, status mix)
//! reads as zero. Sending the app datagram before the tick hides that
//! from `top`, but the window still holds samples without any server figure
//! (its web UI plots every sample of the window) and fills twice as fast.
//! So the module sends kind 10 only with `WSGITelemetryOptions +AppMetrics`
//! (docs/app-metrics.md).

mod common;

use common::*;
use serde_json::Value as J;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use wire::app::{AppMetric, AppMetricsHead, AppValue, Distribution};
use wire::histogram::{bucket_index, BUCKETS};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mix {
    Plain,
    After,
    Before,
}

/// The capture with an `app_metrics` datagram beside each REQUEST tick, as
/// the module would send them (counter, gauge and distribution growing
/// tick by tick), and the number inserted per pid.
fn capture(mix: Mix) -> (Vec<u8>, BTreeMap<u32, usize>) {
    let mut out = Vec::new();
    let mut ticks: BTreeMap<u32, usize> = BTreeMap::new();
    let mut buf = [0u8; wire::MAX_DATAGRAM];
    for d in corpus_records() {
        let s = wire::decode(&d).unwrap();
        if mix == Mix::Plain || s.header.kind != wire::Kind::REQUEST {
            wire::capture::append_record(&mut out, &d);
            continue;
        }
        let k = ticks.entry(s.header.pid).or_default();
        *k += 1;
        let n = *k as f64;
        let mut buckets = [0u32; BUCKETS];
        buckets[bucket_index(0.012)] = *k as u32;
        let host = s.text(wire::id::HOSTNAME).unwrap_or_default();
        let group = s.text(wire::id::PROCESS_GROUP).unwrap_or_default();
        let metrics = [
            AppMetric {
                name: b"orders.placed",
                value: AppValue::Counter(3.0 * n),
            },
            AppMetric {
                name: b"queue.depth",
                value: AppValue::Gauge(n % 7.0),
            },
            AppMetric {
                name: b"payment.{0}",
                value: AppValue::Distribution(Distribution {
                    count: *k as u64,
                    sum: 0.012 * n,
                    min: 0.012,
                    max: 0.012,
                    buckets: &buckets,
                }),
            },
        ];
        let head = AppMetricsHead {
            hostname: host.as_bytes(),
            process_group: group.as_bytes(),
            dropped_calls: 0,
        };
        let h = s.header;
        let len = wire::app::encode(&mut buf, h.pid, h.seq, h.stamp, &head, &metrics).unwrap();
        let app = &buf[..len];
        if mix == Mix::Before {
            wire::capture::append_record(&mut out, app);
        }
        wire::capture::append_record(&mut out, &d);
        if mix == Mix::After {
            wire::capture::append_record(&mut out, app);
        }
    }
    (out, ticks)
}

/// Replays `mix` into a fresh reference `serve` (field 8 dropped: the
/// reference cannot serialise it) and returns its `/api/state` and its
/// `top --once`.
fn reference_view(mix: Mix) -> (J, String, BTreeMap<u32, usize>) {
    let (cap, inserted) = capture(mix);
    let n = wire::capture::records(&cap).count();
    let serve = Serve::reference();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.bin");
    std::fs::write(&path, &cap).unwrap();
    run_replay(&[
        path.to_str().unwrap(),
        "--socket",
        &listen(&serve.sock),
        "--drop-field",
        "8",
    ]);
    let state = serve.wait_received(n);
    let out = Command::new(reference_exe())
        .args([
            "top",
            "--once",
            "--once-timeout",
            "20",
            "--url",
            &serve.url(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run the reference top");
    assert!(out.status.success(), "reference top: {out:?}");
    (state, String::from_utf8(out.stdout).unwrap(), inserted)
}

/// Per pid: its samples of `kind`, as JSON.
fn samples_of(state: &J, kind: &str) -> BTreeMap<u64, Vec<J>> {
    state["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = p["samples"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["kind"] == kind)
                .cloned()
                .collect();
            (p["pid"].as_u64().unwrap(), s)
        })
        .collect()
}

/// The `top --once` header line that starts with `label`.
fn line<'a>(top: &'a str, label: &str) -> &'a str {
    top.lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in:\n{top}"))
}

#[test]
fn reference_ingester_beside_app_metrics() {
    // Three reference ingesters at once, each with its own socket and port.
    let [(plain, plain_top, _), (after, after_top, inserted), (before, before_top, _)] =
        std::thread::scope(|s| {
            [Mix::Plain, Mix::After, Mix::Before]
                .map(|mix| s.spawn(move || reference_view(mix)))
                .map(|h| h.join().unwrap())
        });

    let ticks = samples_of(&plain, "request_metrics");
    // One app datagram per tick of the capture (386 of them).
    assert_eq!(
        ticks.values().map(Vec::len).sum::<usize>(),
        inserted.values().sum::<usize>(),
        "capture ticks"
    );
    for (name, state) in [("after", &after), ("before", &before)] {
        // Every datagram decoded, every tick kept, identical.
        assert_eq!(state["decode_errors"], 0, "{name}");
        assert_eq!(samples_of(state, "request_metrics"), ticks, "{name}: ticks");
        // ... and every app datagram sits in the sample window too.
        let foreign = samples_of(state, "kind10");
        for (pid, n) in &inserted {
            assert_eq!(foreign[&u64::from(*pid)].len(), *n, "{name}: pid {pid}");
            for s in &foreign[&u64::from(*pid)] {
                let f = s["fields"].as_object().unwrap();
                assert!(f.contains_key("id400"), "{name}: {s}");
                assert!(!f.contains_key("memory_rss"), "{name}: {s}");
            }
        }
    }

    // Plain: the server's figures.
    assert!(
        line(&plain_top, "cap:").contains("38/258 threads"),
        "{plain_top}"
    );
    assert!(!line(&plain_top, "cpu:").contains("rss 0B"), "{plain_top}");

    // After each tick: every "now" figure reads zero.
    assert_ne!(after_top, plain_top);
    assert!(line(&after_top, "rps:").contains("now 0.0 "), "{after_top}");
    assert!(
        line(&after_top, "cap:").contains("0/0 threads"),
        "{after_top}"
    );
    assert!(
        line(&after_top, "cpu:").contains("rss 0B (max 0B)"),
        "{after_top}"
    );
    assert!(
        line(&after_top, "stat:").contains("2xx 0.0%"),
        "{after_top}"
    );
    // Windowed figures (built from every sample with the field) survive.
    assert_eq!(line(&after_top, "lat:"), line(&plain_top, "lat:"));

    // Before each tick: `top` prints the same, though the window holds the
    // foreign samples (above).
    assert_eq!(before_top, plain_top);
}
