//! A known request mix through a real httpd + mod_wsgi 4.9 gives exactly
//! those counts, status classes, byte totals, slow records and histogram
//! buckets in our datagrams (summed over all processes, first interval and
//! final partial interval included).

use integration_tests::wire::{histogram, id, Kind};
use integration_tests::*;

const N200: usize = 5;
const M404: usize = 3;
const K500: usize = 2;
const POST_BYTES: usize = 1000;
const SIZE: usize = 12345;
// Past threshold (0.25 s) + interval (0.5 s): at least one tick sees it active.
const SLEEP_MS: u64 = 1500;

fn request_mix(mpm: Mpm) {
    request_mix_accounted(mpm, false)
}

/// The same mix with the fallback (the input/output filters of
/// `mod_wsgi_reporter/src/ffi/request/filters.rs`) forced.
fn request_mix_with_filters(mpm: Mpm) {
    request_mix_accounted(mpm, true)
}

fn request_mix_accounted(mpm: Mpm, filters: bool) {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let mut opts = Options::telemetry(mpm, &col.path, 0.5, "WSGISlowRequests 0.25");
    if filters {
        opts.env
            .push(("MOD_WSGI_TELEMETRY_FILTERS".into(), "1".into()));
    }
    let mut httpd = Httpd::start_in(root, &opts);

    for _ in 0..N200 {
        assert_eq!(httpd.get("/app/hello"), (200, b"hello".to_vec()));
    }
    for _ in 0..M404 {
        assert_eq!(httpd.get("/app/notfound").0, 404);
    }
    for _ in 0..K500 {
        assert_eq!(httpd.get("/app/error").0, 500);
    }
    let body = vec![b'a'; POST_BYTES];
    assert_eq!(
        httpd.request("POST", "/app/post", &body, "t"),
        (200, POST_BYTES.to_string().into_bytes())
    );
    // A body the application never reads is not its input (on a
    // keep-alive connection httpd reads and discards it after mod_wsgi is
    // done).
    assert_eq!(
        httpd.post_keepalive("/app/size/5", &body),
        (200, b"xxxxx".to_vec())
    );
    let (st, big) = httpd.get(&format!("/app/size/{SIZE}"));
    assert_eq!((st, big.len()), (200, SIZE));
    // Not a WSGI request: must not be counted.
    assert_eq!(httpd.get("/missing.html").0, 404);

    let path = format!("/sleep/{SLEEP_MS}");
    assert_eq!(httpd.get(&format!("/app{path}")).0, 200);
    assert_eq!(httpd.get("/app/sleep/300").0, 200);
    httpd.stop();
    // Which of the two ways counted them (docs/module.md).
    let log = httpd.error_log();
    let mode = if filters {
        "Requests are accounted with filters (MOD_WSGI_TELEMETRY_FILTERS is set)."
    } else {
        "Requests are accounted from mod_wsgi's own calls."
    };
    assert!(log.contains(mode), "{mode} not in the error log:\n{log}");
    let s = col.wait_for("every process stopped", all_stopped);

    let total = (N200 + M404 + K500 + 5) as u64;
    assert_eq!(sum_u64(&s, id::REQUEST_COUNT), total);
    assert_eq!(sum_u64(&s, id::STATUS_1XX_TOTAL), 0);
    assert_eq!(sum_u64(&s, id::STATUS_2XX_TOTAL), (N200 + 5) as u64);
    assert_eq!(sum_u64(&s, id::STATUS_3XX_TOTAL), 0);
    assert_eq!(sum_u64(&s, id::STATUS_4XX_TOTAL), M404 as u64);
    assert_eq!(sum_u64(&s, id::STATUS_5XX_TOTAL), K500 as u64);
    assert_eq!(sum_u64(&s, id::INPUT_BYTES_TOTAL), POST_BYTES as u64);
    let out = N200 * 5 + M404 * 4 + POST_BYTES.to_string().len() + 5 + SIZE + 5 + 5;
    assert_eq!(sum_u64(&s, id::OUTPUT_BYTES_TOTAL), out as u64);
    let lifetime: u64 = of_kind(&s, Kind::PROCESS_STOPPED)
        .iter()
        .map(|x| x.u64(id::LIFETIME_REQUEST_COUNT).unwrap())
        .sum();
    assert_eq!(lifetime, total);

    // Every REQUEST tick carries all status classes and the identity.
    for r in of_kind(&s, Kind::REQUEST) {
        for f in id::STATUS_1XX_TOTAL..=id::STATUS_5XX_TOTAL {
            assert!(r.u64(f).is_some());
        }
        assert_eq!(r.text(id::MPM_NAME).as_deref(), Some(mpm.name()));
        assert_eq!(r.text(id::MOD_WSGI_VERSION).as_deref(), Some("4.9.4"));
        assert!(r.text(id::PYTHON_VERSION).unwrap().starts_with("3."));
        assert!(r
            .text(id::APACHE_VERSION)
            .unwrap()
            .starts_with("Apache/2.4"));
        assert!(r.get(id::GIL_WAIT_TIME).is_none() && r.get(id::QUEUE_TIME).is_none());
        let max = r.u64(id::REQUEST_THREADS_MAXIMUM).unwrap();
        assert_eq!(max, if mpm == Mpm::Event { 4 } else { 1 });
        assert!(r.u64(id::REPORTER_DROPPED_DATAGRAMS).is_some());
    }

    // Slow request: completed with status 200 and its full duration.
    let slow = slow_for(&s, &path);
    assert!(
        slow.iter().any(|r| r.u64(id::SLOW_RECORD_STATE) == Some(0)),
        "seen as active while it ran"
    );
    // While it ran, a tick showed it in the per-slot arrays and capacity.
    let busy_tick = of_kind(&s, Kind::REQUEST).into_iter().find(|r| {
        matches!(r.get(id::REQUEST_THREADS_CURRENT_ELAPSED),
            Some(wire::Value::F64Array(a)) if a.iter().any(|&e| e >= 0.25))
    });
    let busy_tick = busy_tick.expect("a tick with the sleeper in flight");
    assert!(busy_tick.u64(id::REQUEST_THREADS_ACTIVE).unwrap() >= 1);
    assert!(busy_tick.f64(id::CAPACITY_UTILIZATION).unwrap() > 0.0);
    let done: Vec<_> = slow
        .iter()
        .filter(|r| r.u64(id::SLOW_RECORD_STATE) == Some(1))
        .collect();
    assert_eq!(done.len(), 1, "exactly one completed record");
    let d = done[0];
    assert_eq!(d.u64(id::SLOW_STATUS), Some(200));
    assert!(d.f64(id::SLOW_DURATION).unwrap() >= SLEEP_MS as f64 / 1000.0);
    assert!(d.f64(id::SLOW_APPLICATION_TIME).unwrap() >= SLEEP_MS as f64 / 1000.0);
    assert_eq!(d.text(id::SLOW_SCRIPT_NAME).as_deref(), Some("/app"));
    assert_eq!(d.text(id::SLOW_METHOD).as_deref(), Some("GET"));
    assert_eq!(d.text(id::SLOW_PROTOCOL).as_deref(), Some("HTTP/1.0"));
    assert_eq!(d.text(id::SLOW_PEER_IP).as_deref(), Some("127.0.0.1"));
    assert_eq!(d.u64(id::SLOW_OUTPUT_BYTES), Some(5));
    assert!(
        d.get(id::SLOW_USER_AGENT).is_none(),
        "no User-Agent without the option"
    );
    // Any other slow record (a loaded machine can slow anything) is one
    // that really took at least the threshold.
    for r in of_kind(&s, Kind::SLOW_REQUEST) {
        assert!(
            r.f64(id::SLOW_DURATION).unwrap() >= 0.25,
            "record below the threshold"
        );
    }

    // Histogram: the sleeping request lands in the bucket of its measured
    // duration (the request_time max of its tick).
    let tick = of_kind(&s, Kind::REQUEST)
        .into_iter()
        .find(|r| r.f64(id::REQUEST_TIME_MAX).unwrap_or(0.0) >= SLEEP_MS as f64 / 1000.0)
        .expect("tick with the slow request");
    let measured = tick.f64(id::REQUEST_TIME_MAX).unwrap();
    let b = histogram::bucket_index(measured);
    // The bucket covers the sleep unless a loaded machine stretched the
    // request past the bucket's upper edge (then the next one holds it).
    if measured * 1000.0 < histogram::upper_ms(histogram::bucket_index(SLEEP_MS as f64 / 1000.0)) {
        assert!(histogram::lower_ms(b) <= SLEEP_MS as f64);
    }
    assert!(measured * 1000.0 < histogram::upper_ms(b));
    match tick.get(id::REQUEST_TIME_BUCKETS) {
        Some(wire::Value::I32Array(a)) => assert_eq!(a[b], 1, "bucket {b} for {measured}s"),
        other => panic!("no request histogram: {other:?}"),
    }
    let all = sum_buckets(&s, id::REQUEST_TIME_BUCKETS);
    assert_eq!(all.iter().sum::<i64>(), total as i64);
    assert!(all[b..].iter().sum::<i64>() >= 1);
    // The 300 ms sleeper: its exact duration (from its completed record,
    // = server + application, the same µs the histogram got) picks the
    // bucket, which covers 300 ms unless the machine slowed it further.
    let r300 = slow_for(&s, "/sleep/300")
        .into_iter()
        .find(|r| r.u64(id::SLOW_RECORD_STATE) == Some(1))
        .expect("completed record of the 300 ms request");
    let d300 = r300.f64(id::SLOW_DURATION).unwrap();
    let b300 = histogram::bucket_index(d300);
    assert!(d300 >= 0.3);
    assert!(all[b300] >= 1, "bucket {b300} of {d300}s is empty");
    if d300 < 0.32 {
        assert_eq!(
            b300,
            histogram::bucket_index(0.3),
            "[256, 320) ms covers 300 ms"
        );
    }
    assert_eq!(col.decode_errors(), 0);
}

fn user_agent_only_with_option(mpm: Mpm) {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let opts = Options::telemetry(
        mpm,
        &col.path,
        0.5,
        "WSGISlowRequests 0.05\nWSGITelemetryOptions +CaptureUserAgent",
    );
    let mut httpd = Httpd::start_in(root, &opts);
    assert_eq!(
        httpd
            .request("GET", "/app/sleep/100?secret=1", b"", "telemetry-probe/1.0")
            .0,
        200
    );
    httpd.stop();
    let s = col.wait_for("every process stopped", all_stopped);
    let slow = slow_for(&s, "/sleep/100");
    let done = slow
        .iter()
        .find(|r| r.u64(id::SLOW_RECORD_STATE) == Some(1))
        .expect("completed record");
    assert_eq!(
        done.text(id::SLOW_USER_AGENT).as_deref(),
        Some("telemetry-probe/1.0")
    );
    assert_eq!(
        done.text(id::SLOW_PATH_INFO).as_deref(),
        Some("/sleep/100"),
        "no query string"
    );
}

/// More than 16 requests slow at once: every one gets an active record in
/// the same tick (the reference stops at 16). Event MPM: one child with 32
/// threads, so the requests share one reporter.
#[test]
fn more_than_sixteen_active_slow_requests_in_one_tick() {
    const N: usize = 20;
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let extra = "WSGISlowRequests 0.25\nStartServers 1\nServerLimit 1\nThreadLimit 32\n\
                 ThreadsPerChild 32\nMinSpareThreads 1\nMaxSpareThreads 64\nMaxRequestWorkers 32";
    let opts = Options::telemetry(Mpm::Event, &col.path, 0.5, extra);
    let mut httpd = Httpd::start_in(root, &opts);
    std::thread::scope(|sc| {
        for _ in 0..N {
            sc.spawn(|| assert_eq!(httpd.get("/app/sleep/2500").0, 200));
        }
    });
    // Every completed record is sent by the tick after its request ends;
    // waiting for them (not for STOPPED) keeps this test about the slow scan
    // even when a loaded machine makes httpd kill its child at stop.
    let s = col.wait_for("every completed slow record", |s| {
        slow_for(s, "/sleep/2500")
            .iter()
            .filter(|r| r.u64(id::SLOW_RECORD_STATE) == Some(1))
            .count()
            >= N
    });
    httpd.stop();
    // Group active records by tick (they share the tick's header stamp).
    let mut per_tick = std::collections::BTreeMap::<u64, usize>::new();
    for r in slow_for(&s, "/sleep/2500") {
        if r.u64(id::SLOW_RECORD_STATE) == Some(0) {
            *per_tick.entry(r.header.stamp.to_bits()).or_default() += 1;
        }
    }
    let most = per_tick.values().copied().max().unwrap_or(0);
    assert_eq!(
        most, N,
        "one active record per slow in-flight request: {per_tick:?}"
    );
    let done = slow_for(&s, "/sleep/2500")
        .iter()
        .filter(|r| r.u64(id::SLOW_RECORD_STATE) == Some(1))
        .count();
    assert_eq!(done, N);
    let r = of_kind(&s, Kind::REQUEST)[0];
    assert_eq!(r.u64(id::REQUEST_THREADS_MAXIMUM), Some(32));
}

both_mpms!(
    request_mix,
    request_mix_with_filters,
    user_agent_only_with_option
);
