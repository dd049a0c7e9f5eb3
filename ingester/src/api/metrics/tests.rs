use super::*;
use crate::ingest::state::Limits;
use wire::{id, Header, Kind, Sample, Value};

fn datagram(kind: Kind, pid: u32, seq: u32, fields: Vec<(u16, Value)>) -> Sample {
    Sample {
        header: Header::new(kind, pid, seq, 1000.0 + f64::from(seq)),
        fields,
    }
}

/// Encodes and ingests, as the receive thread does.
fn feed(st: &mut State, s: Sample, now: Instant) {
    st.ingest_quiet(&s.encode().unwrap(), now);
}

fn text(v: &str) -> Value {
    Value::Bytes(v.as_bytes().to_vec())
}

/// 65 bucket counts with `n` in bucket `i` for each `(i, n)`.
fn hist(at: &[(usize, i32)]) -> Value {
    let mut b = vec![0; wire::histogram::BUCKETS];
    for &(i, n) in at {
        b[i] = n;
    }
    Value::I32Array(b)
}

/// A REQUEST interval of 4 requests (3 × 2xx, 1 × 5xx) from a process
/// of 4 threads, half busy, 0.3 s of CPU in a 2 s period.
fn tick(pid: u32, seq: u32, host: &str, group: &str) -> Sample {
    let mut f = vec![
        (id::HOSTNAME, text(host)),
        (id::PROCESS_GROUP, text(group)),
        (id::SAMPLE_PERIOD, Value::F64(2.0)),
        (id::REQUEST_COUNT, Value::U64(4)),
        (id::CAPACITY_UTILIZATION, Value::F64(0.5)),
        (id::CPU_USER_UTILIZATION, Value::F64(0.125)),
        (id::CPU_SYSTEM_UTILIZATION, Value::F64(0.25)),
        (id::MEMORY_RSS, Value::U64(50_000_000)),
        (id::REQUEST_THREADS_MAXIMUM, Value::U64(4)),
        (id::SERVER_TIME, Value::F64(0.0005)),
        (id::APPLICATION_TIME, Value::F64(0.25)),
        (id::REQUEST_TIME, Value::F64(0.25)),
        // 3 in [10, 12) ms, 1 at 65.536 s and above.
        (id::SERVER_TIME_BUCKETS, hist(&[(0, 4)])),
        (id::APPLICATION_TIME_BUCKETS, hist(&[(13, 3), (64, 1)])),
        (id::REQUEST_TIME_BUCKETS, hist(&[(13, 3), (64, 1)])),
        (id::INPUT_BYTES_TOTAL, Value::U64(100)),
        (id::OUTPUT_BYTES_TOTAL, Value::U64(2000)),
    ];
    for (k, n) in [0, 3, 0, 0, 1].into_iter().enumerate() {
        f.push((id::STATUS_1XX_TOTAL + k as u16, Value::U64(n)));
    }
    if !group.is_empty() {
        f.push((id::QUEUE_TIME, Value::F64(0.002)));
        f.push((id::DAEMON_TIME, Value::F64(0.001)));
        f.push((id::QUEUE_TIME_BUCKETS, hist(&[(4, 4)])));
        f.push((id::DAEMON_TIME_BUCKETS, hist(&[(0, 4)])));
    }
    datagram(Kind::REQUEST, pid, seq, f)
}

/// A fixed state: an embedded process on `web1` (two intervals, a GC
/// snapshot and event, one active and one completed slow request
/// sent twice) and a daemon process of group `app` that stopped and
/// was dropped after one interval.
fn fixed_state() -> (State, Instant) {
    let t0 = Instant::now();
    let mut st = State::new(Limits::default());
    let id_fields = |host: &str, group: &str| {
        vec![(id::HOSTNAME, text(host)), (id::PROCESS_GROUP, text(group))]
    };
    feed(
        &mut st,
        datagram(Kind::PROCESS_STARTED, 20, 1, id_fields("web1", "app")),
        t0,
    );
    feed(&mut st, tick(20, 2, "web1", "app"), t0);
    let mut stop = id_fields("web1", "app");
    stop.push((id::SHUTDOWN_REASON, text("maximum_requests")));
    feed(&mut st, datagram(Kind::PROCESS_STOPPED, 20, 3, stop), t0);
    let t1 = t0 + Duration::from_secs(400);
    feed(
        &mut st,
        datagram(Kind::PROCESS_STARTED, 10, 1, id_fields("web1", "")),
        t1,
    );
    feed(&mut st, tick(10, 2, "web1", ""), t1);
    feed(&mut st, tick(10, 3, "web1", ""), t1);
    let mut gc = vec![(id::GC_COLLECTIONS0, Value::U64(5))];
    gc.push((id::GC_COLLECTIONS1, Value::U64(2)));
    gc.push((id::GC_COLLECTIONS2, Value::U64(1)));
    feed(&mut st, datagram(Kind::GC_SNAPSHOT, 10, 4, gc), t1);
    let ev = vec![
        (id::GC_EVENT_GENERATION, Value::U64(0)),
        (id::GC_EVENT_DURATION, Value::F64(0.25)),
    ];
    feed(&mut st, datagram(Kind::GC_EVENT, 10, 5, ev), t1);
    let slow = |state: u64, thread: u64| {
        vec![
            (id::SLOW_RECORD_STATE, Value::U64(state)),
            (id::SLOW_THREAD_ID, Value::U64(thread)),
            (id::SLOW_START_STAMP, Value::F64(990.0)),
        ]
    };
    feed(&mut st, datagram(Kind::SLOW_REQUEST, 10, 6, slow(0, 1)), t1);
    feed(&mut st, datagram(Kind::SLOW_REQUEST, 10, 7, slow(1, 2)), t1);
    feed(&mut st, datagram(Kind::SLOW_REQUEST, 10, 8, slow(1, 2)), t1);
    // Application metrics: pid 20 counted 4 orders before it went;
    // pid 10 counts 3 more, holds a queue of 2 and timed three calls.
    use crate::ingest::app_metrics::test_datagram;
    use wire::app::{AppMetric, AppValue, Distribution};
    let counter = |v| AppMetric {
        name: b"orders",
        value: AppValue::Counter(v),
    };
    st.ingest_quiet(&test_datagram(20, 4, "web1", "app", &[counter(4.0)]), t0);
    let mut b = [0u32; wire::histogram::BUCKETS];
    b[0] = 1;
    b[9] = 1;
    b[13] = 1;
    let app = [
        counter(3.0),
        AppMetric {
            name: b"queue.depth",
            value: AppValue::Gauge(2.0),
        },
        AppMetric {
            name: b"db.{0}",
            value: AppValue::Distribution(Distribution {
                count: 3,
                sum: 0.0155,
                min: 0.0005,
                max: 0.01,
                buckets: &b,
            }),
        },
    ];
    st.ingest_quiet(&test_datagram(10, 9, "web1", "", &app), t1);
    // Drops pid 20 (stale), keeps pid 10.
    assert_eq!(st.expire(t1), vec![20]);
    (st, t1)
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(name)
}

/// Compares with the fixture (`METRICS_BLESS=1` rewrites it).
fn assert_fixture(name: &str, got: &str) {
    let path = fixture(name);
    if std::env::var_os("METRICS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert!(got == want, "{name} differs:\n{got}");
}

fn own() -> IngesterCounters {
    IngesterCounters {
        receive_pauses: 2,
        websocket_clients: 1,
        ws_messages_dropped: 4,
        http: std::array::from_fn(|i| 10 + i as u64),
    }
}

/// The whole exposition of the fixed state, in both formats.
#[test]
fn exposition_of_a_fixed_state() {
    let (st, now) = fixed_state();
    let om = render(capture(&st, false, own(), now), true, || 0.001);
    assert_fixture("fixed-state.om.txt", &om);
    let text = render(capture(&st, false, own(), now), false, || 0.001);
    assert_fixture("fixed-state.prom.txt", &text);
    let per_process = render(capture(&st, true, own(), now), true, || 0.001);
    assert_fixture("fixed-state-per-process.om.txt", &per_process);
}

/// Dropping a process leaves its group's counters where they were.
#[test]
fn group_counters_survive_their_processes() {
    let (mut st, now) = fixed_state();
    let before = render(capture(&st, false, own(), now), true, || 0.0);
    let later = now + Duration::from_secs(1000);
    assert_eq!(st.expire(later), vec![10]);
    assert!(st.processes.is_empty());
    let after = render(capture(&st, false, own(), later), true, || 0.0);
    let counters = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.contains("_total{") || l.contains("_bucket{") || l.contains("_count{"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(counters(&before), counters(&after));
    assert!(counters(&after).len() > 100);
    assert!(after.contains("mod_wsgi_processes{host=\"web1\",process_group=\"\"} 0\n"));
}

/// A new reporter reusing a pid starts its GC counts over: the
/// process's total keeps what the old one counted.
#[test]
fn gc_collections_survive_a_reused_pid() {
    let mut st = State::new(Limits::default());
    let now = Instant::now();
    for (seq, n) in [(1, 7), (2, 9), (3, 2)] {
        let f = vec![(id::GC_COLLECTIONS0, Value::U64(n))];
        feed(&mut st, datagram(Kind::GC_SNAPSHOT, 5, seq, f), now);
    }
    assert_eq!(st.processes[&5].metrics.totals().gc_collections, [11, 0, 0]);
}

#[test]
fn accept_negotiation() {
    assert!(wants_openmetrics(Some(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )));
    assert!(!wants_openmetrics(Some("text/plain")));
    assert!(!wants_openmetrics(None));
}
