use super::*;
use crate::accum::tests::fin;
use crate::accum::{Detail, Finished};

#[derive(Default)]
pub struct VecSink {
    pub out: Vec<Vec<u8>>,
    pub refuse: bool,
}
impl Sink for VecSink {
    fn send(&mut self, d: &[u8]) -> bool {
        if self.refuse {
            return false;
        }
        self.out.push(d.to_vec());
        true
    }
}

pub fn settings(slow: u64) -> Settings {
    Settings {
        interval: 1.0,
        slow_threshold_us: slow,
        capture_user_agent: false,
        daemon: false,
    }
}

/// A reporter for pid 42 with the test identity, seeded at `now_us`.
fn reporter(settings: Settings, slots: usize, now_us: u64) -> Reporter<VecSink> {
    Reporter::new(
        VecSink::default(),
        settings,
        ident(),
        42,
        slots,
        now_us,
        (0.0, 0.0),
    )
}

/// Everything the reporter sent, decoded.
fn decoded(rep: &Reporter<VecSink>) -> Vec<wire::Sample> {
    rep.sink()
        .out
        .iter()
        .map(|d| wire::decode(d).unwrap())
        .collect()
}

fn ident() -> OwnedIdentity {
    OwnedIdentity {
        mod_wsgi_version: b"4.9.4".to_vec(),
        python_version: b"3.11.2".to_vec(),
        apache_version: b"Apache/2.4.71".to_vec(),
        mpm_name: b"event".to_vec(),
        hostname: b"web1".to_vec(),
        process_group: vec![],
        parent_pid: 1,
        switch_interval: 0.0,
    }
}

#[test]
fn description_parsing() {
    let (a, w, p) = parse_server_description(b"Apache/2.4.71 (Debian) mod_wsgi/4.9.4 Python/3.11");
    assert_eq!(
        (a.as_slice(), w.as_slice(), p.as_slice()),
        (&b"Apache/2.4.71"[..], &b"4.9.4"[..], &b"3.11"[..])
    );
    assert_eq!(
        python_version_token(b"3.11.2 (main, Mar 13 2023)"),
        b"3.11.2"
    );
}

#[test]
fn phase_spread() {
    let d: Vec<f64> = (1000..1100).map(|p| first_tick_delay(p, 2.0)).collect();
    assert!(d.iter().all(|&x| (0.2..=2.0).contains(&x)));
    let distinct = d
        .iter()
        .map(|x| (x * 1000.0) as u64)
        .collect::<std::collections::HashSet<_>>();
    assert!(distinct.len() > 90, "phases spread over the interval");
}

#[test]
fn first_tick_carries_requests_and_fields() {
    let acc = Accounting::new(4, 0, 1.0);
    let mut rep = reporter(settings(0), 4, 1_000_000);
    rep.started();
    let c = acc.claim(0, 0, 1_000_100, 1_000_200, None);
    acc.finish(
        c,
        &Finished {
            request_start_us: 1_000_100,
            claim_us: 1_000_200,
            finish_us: 1_003_200,
            status: 404,
            io: accum::Io {
                output_bytes: 9,
                output_writes: 1,
                ..accum::Io::default()
            },
            ..Default::default()
        },
    );
    let ps = ProcessStats {
        cpu_user: 0.5,
        cpu_system: 0.25,
        rss: 100,
        max_rss: 200,
    };
    rep.tick(&acc, 2_000_000, &ps, &|_| None);
    let out = &rep.sink().out;
    assert_eq!(out.len(), 2);
    let st = wire::decode(&out[0]).unwrap();
    assert_eq!(st.header.kind, wire::Kind::PROCESS_STARTED);
    assert_eq!(st.header.seq, 1);
    let t = wire::decode(&out[1]).unwrap();
    assert_eq!(t.header.kind, wire::Kind::REQUEST);
    assert_eq!(t.u64(wire::id::REQUEST_COUNT), Some(1));
    assert_eq!(t.u64(wire::id::STATUS_4XX_TOTAL), Some(1));
    assert_eq!(t.u64(wire::id::STATUS_2XX_TOTAL), Some(0));
    assert_eq!(t.u64(wire::id::OUTPUT_BYTES_TOTAL), Some(9));
    assert_eq!(t.f64(wire::id::SAMPLE_PERIOD), Some(1.0));
    assert_eq!(t.f64(wire::id::CPU_USER_UTILIZATION), Some(0.5));
    assert_eq!(t.u64(wire::id::REPORTER_DROPPED_DATAGRAMS), Some(0));
    assert_eq!(t.u64(wire::id::REQUEST_THREADS_MAXIMUM), Some(4));
    assert!(
        t.get(wire::id::GIL_WAIT_TIME).is_none(),
        "unobservable: absent, not zero"
    );
    assert!(t.get(wire::id::QUEUE_TIME).is_none());
    assert!(t.get(wire::id::SWITCH_INTERVAL).is_none());
    assert_eq!(t.f64(wire::id::REQUEST_TIME_MAX), Some(0.0031));
    assert_eq!(t.f64(wire::id::SERVER_TIME_MIN), Some(0.0001));
}

#[test]
fn daemon_ticks_carry_queue_and_daemon_time_and_gc() {
    let acc = Accounting::new(2, 0, 1.0);
    let mut set = settings(0);
    set.daemon = true;
    let mut id = ident();
    id.process_group = b"g".to_vec();
    let mut rep = Reporter::new(VecSink::default(), set, id, 42, 2, 1_000_000, (0.0, 0.0));
    rep.set_switch_interval(0.005);
    let ps = ProcessStats::default();
    // No request in the interval: no queue/daemon fields (as 6.x).
    rep.tick(&acc, 1_500_000, &ps, &|_| None);
    let c = acc.claim(1, 0, 1_600_000, 1_600_900, None);
    acc.finish(
        c,
        &Finished {
            request_start_us: 1_600_000,
            queue_start_us: 1_600_100,
            daemon_start_us: 1_600_400,
            claim_us: 1_600_900,
            finish_us: 1_601_900,
            status: 200,
            ..Default::default()
        },
    );
    rep.tick(&acc, 2_000_000, &ps, &|_| None);
    let reg = GcRegistry::default();
    let (a, _) = reg.register(b"").unwrap();
    let (b, _) = reg.register(b"site2").unwrap();
    reg.set_counters(a, &[1; 17]);
    reg.set_counters(b, &[2; 17]);
    reg.push_event(
        b,
        wire::emit::GcEvent {
            generation: 2,
            collected: 7,
            ..Default::default()
        },
    );
    rep.gc_tick(&reg, 2_000_000);
    let out = decoded(&rep);
    assert!(out[0].get(wire::id::QUEUE_TIME).is_none());
    let t = &out[1];
    assert_eq!(t.text(wire::id::PROCESS_GROUP).as_deref(), Some("g"));
    assert_eq!(t.f64(wire::id::SWITCH_INTERVAL), Some(0.005));
    assert_eq!(t.f64(wire::id::SERVER_TIME), Some(0.0001));
    assert_eq!(t.f64(wire::id::QUEUE_TIME), Some(0.0003));
    assert_eq!(t.f64(wire::id::DAEMON_TIME), Some(0.0005));
    assert_eq!(t.f64(wire::id::APPLICATION_TIME), Some(0.001));
    assert_eq!(t.f64(wire::id::REQUEST_TIME), Some(0.0019));
    assert!(t.get(wire::id::QUEUE_TIME_BUCKETS).is_some());
    let kinds: Vec<_> = out[2..].iter().map(|x| x.header.kind).collect();
    assert_eq!(
        kinds,
        [
            wire::Kind::GC_SNAPSHOT,
            wire::Kind::GC_SNAPSHOT,
            wire::Kind::GC_EVENT
        ]
    );
    // Two interpreters: the sub-interpreter is named, the main one not.
    assert!(out[2].get(wire::id::INTERPRETER_NAME).is_none());
    assert_eq!(
        out[3].text(wire::id::INTERPRETER_NAME).as_deref(),
        Some("site2")
    );
    assert_eq!(out[3].u64(wire::id::GC_COUNT0), Some(2));
    assert_eq!(out[4].u64(wire::id::GC_EVENT_COLLECTED), Some(7));
    assert_eq!(
        out[4].text(wire::id::INTERPRETER_NAME).as_deref(),
        Some("site2")
    );
    // One seq counter over all kinds.
    let seqs: Vec<u32> = out.iter().map(|x| x.header.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

/// A reporter whose sink refuses every datagram (until told otherwise).
fn refusing_reporter() -> Reporter<VecSink> {
    Reporter::new(
        VecSink {
            refuse: true,
            ..Default::default()
        },
        settings(0),
        ident(),
        42,
        1,
        0,
        (0.0, 0.0),
    )
}

#[test]
fn drops_are_counted_and_reported() {
    let acc = Accounting::new(1, 0, 1.0);
    let mut rep = refusing_reporter();
    rep.started();
    rep.tick(&acc, 1_000_000, &ProcessStats::default(), &|_| None);
    assert_eq!(rep.dropped(), 2);
    rep.sink.refuse = false;
    rep.tick(&acc, 2_000_000, &ProcessStats::default(), &|_| None);
    let t = wire::decode(&rep.sink().out[0]).unwrap();
    assert_eq!(t.u64(wire::id::REPORTER_DROPPED_DATAGRAMS), Some(2));
}

#[test]
fn an_app_metrics_datagram_not_sent_is_a_drop_and_goes_again() {
    let acc = Accounting::new(1, 0, 1.0);
    let app = AppMetrics::new(4);
    let mut rep = refusing_reporter();
    app.incr(b"orders", 1.0);
    rep.app_tick(&app, 1_000_000);
    assert_eq!((rep.dropped(), rep.sent()), (1, 0));
    rep.sink.refuse = false;
    rep.app_tick(&app, 2_000_000);
    rep.tick(&acc, 2_000_000, &ProcessStats::default(), &|_| None);
    let out: Vec<_> = rep
        .sink()
        .out
        .iter()
        .map(|d| wire::decode(d).unwrap())
        .collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].header.kind, wire::Kind::APP_METRICS);
    assert_eq!(out[0].header.seq, 2, "the lost one took seq 1");
    assert_eq!(
        out[1].u64(wire::id::REPORTER_DROPPED_DATAGRAMS),
        Some(1),
        "field 19 counts it"
    );
}

#[test]
fn slow_records_completed_before_active_and_user_agent_gated() {
    let acc = Accounting::new(2, 100_000, 1.0);
    let ua = b"probe-agent/1.0".to_vec();
    let path = b"/sleep/300".to_vec();
    let mut d = Detail::default();
    d.strings[accum::text::USER_AGENT] = (ua.as_ptr(), ua.len());
    d.strings[accum::text::PATH_INFO] = (path.as_ptr(), path.len());
    for capture in [false, true] {
        let mut s = settings(100_000);
        s.capture_user_agent = capture;
        let mut rep = Reporter::new(VecSink::default(), s, ident(), 42, 2, 0, (0.0, 0.0));
        let c1 = acc.claim(0, 0, 10, 20, Some(&d));
        let _c2 = acc.claim(1, 0, 10, 20, Some(&d));
        acc.finish(c1, &fin(10, 20, 300_020, 200));
        rep.tick(&acc, 400_000, &ProcessStats::default(), &|_| None);
        let out = decoded(&rep);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].u64(wire::id::SLOW_RECORD_STATE), Some(1));
        assert_eq!(out[1].u64(wire::id::SLOW_STATUS), Some(200));
        assert_eq!(out[1].f64(wire::id::SLOW_DURATION), Some(0.30001));
        assert_eq!(
            out[1].text(wire::id::SLOW_PATH_INFO).as_deref(),
            Some("/sleep/300")
        );
        assert_eq!(out[2].u64(wire::id::SLOW_RECORD_STATE), Some(0));
        assert_eq!(out[1].get(wire::id::SLOW_USER_AGENT).is_some(), capture);
        assert_eq!(out[2].get(wire::id::SLOW_USER_AGENT).is_some(), capture);
        // Release the in-flight one for the next round.
        acc.finish(_c2, &Finished::default());
        let mut v = Vec::new();
        acc.take_completed_slow(&mut v);
    }
}

#[test]
fn lost_slow_records_are_dropped_datagrams_with_seq_gaps() {
    // Threshold 1 µs, interval 1 s: the ring holds 64 records.
    let acc = Accounting::new(1, 1, 1.0);
    let mut rep = reporter(settings(1), 1, 0);
    rep.started();
    for _ in 0..100 {
        let c = acc.claim(0, 0, 10, 20, Some(&Detail::default()));
        acc.finish(c, &fin(10, 20, 40, 200));
    }
    rep.tick(&acc, 1_000_000, &ProcessStats::default(), &|_| None);
    assert_eq!(rep.slow_records_lost_last_tick(), 36);
    rep.tick(&acc, 2_000_000, &ProcessStats::default(), &|_| None);
    assert_eq!(rep.slow_records_lost_last_tick(), 0);
    assert_eq!(rep.slow_records_lost(), 36);
    let out = decoded(&rep);
    let slow = out
        .iter()
        .filter(|s| s.header.kind == wire::Kind::SLOW_REQUEST)
        .count();
    assert_eq!(slow, 64);
    let last = out
        .iter()
        .rfind(|s| s.header.kind == wire::Kind::REQUEST)
        .unwrap();
    assert_eq!(last.u64(wire::id::REPORTER_DROPPED_DATAGRAMS), Some(36));
    // What a receiver sees: the seq gaps sum to field 19, and the gap
    // comes before the REQUEST that reports it.
    let seqs: Vec<u32> = out.iter().map(|s| s.header.seq).collect();
    let gaps: u32 = seqs.windows(2).map(|w| w[1] - w[0] - 1).sum();
    assert_eq!(gaps, 36);
    assert_eq!(seqs[..2], [1, 38]);
    assert_eq!(out[1].u64(wire::id::REPORTER_DROPPED_DATAGRAMS), Some(36));
}

#[test]
fn lifecycle_payloads() {
    let mut rep = reporter(settings(0), 1, 1_000_000);
    rep.stopping(b"graceful_signal", 0);
    rep.stopped(b"graceful_signal", 0, 3_500_000);
    rep.stopped(b"graceful_signal", 0, 3_600_000);
    let out = decoded(&rep);
    assert_eq!(out.len(), 2, "STOPPED at most once");
    assert_eq!(
        out[0].text(wire::id::SHUTDOWN_REASON).as_deref(),
        Some("graceful_signal")
    );
    assert_eq!(out[1].f64(wire::id::PROCESS_UPTIME), Some(2.5));
    assert_eq!(out[1].u64(wire::id::GRACEFUL_DRAIN), Some(1));
}
