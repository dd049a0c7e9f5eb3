use super::*;
use testkit::DistTotals;
use wire::app::{AppMetric, AppMetricsHead, AppValue};
use wire::histogram::bucket_index;

/// Encodes and decodes, as the datagram would travel.
fn datagram(host: &str, group: &str, dropped: u64, m: &[AppMetric<'_>]) -> Datagram {
    let mut buf = [0u8; wire::MAX_DATAGRAM];
    let head = AppMetricsHead {
        hostname: host.as_bytes(),
        process_group: group.as_bytes(),
        dropped_calls: dropped,
    };
    let n = wire::app::encode(&mut buf, 1, 1, 0.0, &head, m).unwrap();
    wire::app::decode(&wire::decode_ref(&buf[..n]).unwrap()).unwrap()
}

fn counter<'a>(name: &'a str, v: f64) -> AppMetric<'a> {
    AppMetric {
        name: name.as_bytes(),
        value: AppValue::Counter(v),
    }
}

fn gauge<'a>(name: &'a str, v: f64) -> AppMetric<'a> {
    AppMetric {
        name: name.as_bytes(),
        value: AppValue::Gauge(v),
    }
}

fn stats(s: &AppMetricsState, f: Filter<'_>) -> J {
    serde_json::from_str(&s.stats_json(&f)).unwrap()
}

#[test]
fn counters_stay_monotonic_while_processes_come_and_go() {
    let mut s = AppMetricsState::default();
    s.ingest(1, &datagram("web1", "app", 0, &[counter("orders", 5.0)]));
    s.ingest(2, &datagram("web1", "app", 0, &[counter("orders", 7.0)]));
    assert_eq!(stats(&s, Filter::default())["orders"], 12);
    // A lost datagram changes nothing: the next total is whole.
    s.ingest(1, &datagram("web1", "app", 0, &[counter("orders", 9.0)]));
    assert_eq!(stats(&s, Filter::default())["orders"], 16);
    // Process 1 stops; its 9 stay in the sum.
    s.process_gone(1);
    assert_eq!(stats(&s, Filter::default())["orders"], 16);
    // Its pid is reused by a new process that starts from 0.
    s.ingest(1, &datagram("web1", "app", 0, &[counter("orders", 1.0)]));
    assert_eq!(stats(&s, Filter::default())["orders"], 17);
    // Reused without a stop seen: the total went down, the old is retired.
    s.ingest(2, &datagram("web1", "app", 0, &[counter("orders", 2.0)]));
    assert_eq!(stats(&s, Filter::default())["orders"], 19);
    // Fractions are kept.
    s.ingest(3, &datagram("web1", "app", 0, &[counter("orders", 0.5)]));
    assert_eq!(stats(&s, Filter::default())["orders"], 19.5);
}

#[test]
fn gauges_per_process_and_summed() {
    let mut s = AppMetricsState::default();
    s.ingest(1, &datagram("web1", "app", 0, &[gauge("depth", 3.0)]));
    s.ingest(2, &datagram("web1", "app", 0, &[gauge("depth", -1.5)]));
    s.ingest(1, &datagram("web1", "app", 0, &[gauge("depth", 4.0)]));
    let f = s.figures(&Filter::default());
    assert_eq!(
        f,
        vec![(
            "depth".to_string(),
            Figure::Gauge {
                sum: 2.5,
                per_process: vec![(1, 4.0), (2, -1.5)]
            }
        )]
    );
    s.process_gone(2);
    assert_eq!(stats(&s, Filter::default())["depth"], 4);
}

#[test]
fn distributions_merge_bucket_by_bucket() {
    let mut s = AppMetricsState::default();
    // Process 1: 90 fast values; process 2: 10 slow ones.
    let fast: Vec<f64> = (0..90).map(|i| 0.010 + i as f64 * 1e-5).collect();
    let slow: Vec<f64> = (0..10).map(|i| 0.500 + i as f64 * 0.001).collect();
    let (a, b) = (DistTotals::of(&fast), DistTotals::of(&slow));
    s.ingest(1, &datagram("web1", "app", 0, &[a.metric("db.{0}.s")]));
    s.ingest(2, &datagram("web1", "app", 0, &[b.metric("db.{0}.s")]));
    let st = stats(&s, Filter::default());
    assert_eq!(st["db.count.s"], 100);
    assert_eq!(st["db.min.s"], 0.010);
    assert_eq!(st["db.max.s"], 0.509);
    let (p50, p90, p99) = (
        st["db.p50.s"].as_f64().unwrap(),
        st["db.p90.s"].as_f64().unwrap(),
        st["db.p99.s"].as_f64().unwrap(),
    );
    // p50 inside the fast values' bucket, p99 inside the slow ones'.
    assert_eq!(bucket_index(p50), bucket_index(0.0105), "{p50}");
    // The 90th value is the last fast one: at most the top of their
    // bucket, [10, 12) ms, far below the slow ones.
    assert!(p90 > 0.010 && p90 <= 0.012, "{p90}");
    assert_eq!(bucket_index(p99), bucket_index(0.505), "{p99}");
    let sum = st["db.sum.s"].as_f64().unwrap();
    assert!((sum - (a.sum + b.sum)).abs() < 1e-12);
    let keys: Vec<&String> = st.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "db.count.s",
            "db.sum.s",
            "db.min.s",
            "db.max.s",
            "db.p50.s",
            "db.p90.s",
            "db.p95.s",
            "db.p99.s"
        ]
    );
}

#[test]
fn bucket_counts_wrap_modulo_2_32() {
    let mut s = AppMetricsState::default();
    let mut v = DistTotals::of(&[0.1]);
    v.buckets[bucket_index(0.1)] = u32::MAX - 1;
    v.count = u64::from(u32::MAX - 1);
    s.ingest(1, &datagram("h", "g", 0, &[v.metric("d")]));
    // Three more values: the bucket count wraps to 1 on the wire.
    v.buckets[bucket_index(0.1)] = 1;
    v.count += 3;
    s.ingest(1, &datagram("h", "g", 0, &[v.metric("d")]));
    let f = s.figures(&Filter::default());
    let Figure::Distribution(m) = &f[0].1 else {
        panic!()
    };
    assert_eq!(m.count, u64::from(u32::MAX) + 2);
    let Some(Live::Dist(d)) = s.series.values().next().unwrap().live.get(&1) else {
        panic!()
    };
    assert_eq!(
        d.0.buckets[bucket_index(0.1)],
        u64::from(u32::MAX) + 2,
        "64-bit bucket total"
    );
}

#[test]
fn views_per_host_and_group() {
    let mut s = AppMetricsState::default();
    s.ingest(1, &datagram("web1", "app", 0, &[counter("n", 1.0)]));
    s.ingest(2, &datagram("web1", "", 0, &[counter("n", 2.0)]));
    s.ingest(3, &datagram("web2", "app", 4, &[counter("n", 4.0)]));
    let view = |host, group| stats(&s, Filter { host, group })["n"].clone();
    assert_eq!(view(None, None), 7);
    assert_eq!(view(Some("web1"), None), 3);
    assert_eq!(view(None, Some("app")), 5);
    assert_eq!(view(Some("web1"), Some("")), 2);
    assert_eq!(
        stats(
            &s,
            Filter {
                host: Some("web3"),
                group: None
            }
        ),
        serde_json::json!({})
    );
    assert_eq!(
        s.groups(),
        [
            ("web1".to_string(), "".to_string()),
            ("web1".to_string(), "app".to_string()),
            ("web2".to_string(), "app".to_string())
        ]
    );
    assert_eq!(s.dropped().calls, 4);
    s.process_gone(3);
    assert_eq!(s.dropped().calls, 4, "retired, still counted");
}

#[test]
fn bounded_and_conflicts_counted() {
    let mut s = AppMetricsState::new(Limits {
        series: 2,
        processes: 2,
    });
    s.ingest(
        1,
        &datagram(
            "h",
            "g",
            0,
            &[counter("a", 1.0), counter("b", 1.0), counter("c", 1.0)],
        ),
    );
    s.ingest(2, &datagram("h", "g", 0, &[gauge("a", 1.0)]));
    s.ingest(3, &datagram("h", "g", 0, &[counter("a", 1.0)]));
    assert_eq!(
        s.dropped(),
        Dropped {
            series: 1,
            processes: 1,
            type_conflicts: 1,
            calls: 0
        }
    );
    assert_eq!(
        stats(&s, Filter::default()),
        serde_json::json!({"a": 1, "b": 1})
    );
    // A pid that moves to another group is a new process.
    s.ingest(1, &datagram("h", "other", 0, &[counter("a", 5.0)]));
    assert_eq!(s.dropped().series, 2, "no room for (h, other, a)");
    assert_eq!(stats(&s, Filter::default())["a"], 1, "pid 1's 1 retired");
}
