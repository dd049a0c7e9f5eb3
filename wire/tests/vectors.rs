//! Five worked datagrams of wire format v1 (PROCESS_STARTED, PROCESS_STOPPED,
//! a GC_EVENT of a multi-interpreter process, a decoder-coverage datagram,
//! a realistic REQUEST tick), given as hex with their SHA-256, decoded and
//! re-encoded.

mod common;

use common::{sha256_hex, unhex};
use wire::emit::{self, Identity, Phase, RequestTick, Slots};
use wire::histogram::{bucket_index, BUCKETS};
use wire::{decode, id, DecodeError, Kind, Value};

const V1: &str = "5753474901050000921000000100000000002040fc54d9410100040500362e302e350200040600332e31322e330300040d004170616368652f322e342e363204000405006576656e74050004040077656231060004030061707007000168100000000000000d00027b14ae47e17a743f";
const V2: &str = "57534749010700009210000089030000000010c4ff54d941050004040077656231060004030061707082000410006d6178696d756d5f726571756573747383000200000000801fac40840001102700000000000086000100000000000000008700010100000000000000";
const V3: &str = "5753474901090000921000002500000000008042fc54d94140010200007042fc54d9414101027b14ae47e17a543f42010102000000000000004301013a010000000000004401010000000000000000080004060073697465327c";
const V4: &str = "5753474901020000070000000300000000000000000000001400010c000000000000006e000503000300000000000000070000006f00060200000000000000d03f000000000000f03fe70303fbffffffffffffffe603040000";

#[test]
fn v1_process_started() {
    let b = unhex(V1);
    assert_eq!(b.len(), 112);
    assert_eq!(
        sha256_hex(&b),
        "bfbd92febaf96d726a9d067a38d091973d593a5a92c4b8e4cde82cf454eca51f"
    );
    let s = decode(&b).unwrap();
    assert_eq!(s.header.kind, Kind::PROCESS_STARTED);
    assert_eq!(
        (s.header.pid, s.header.seq, s.header.stamp),
        (4242, 1, 1700000000.5)
    );
    assert_eq!(s.text(id::PROCESS_GROUP).unwrap(), "app");
    assert_eq!(s.u64(id::PROCESS_PARENT_PID), Some(4200));
    assert_eq!(s.f64(id::SWITCH_INTERVAL), Some(0.005));
    assert_eq!(s.encode().unwrap(), b);
    let ident = Identity {
        mod_wsgi_version: b"6.0.5",
        python_version: b"3.12.3",
        apache_version: b"Apache/2.4.62",
        mpm_name: b"event",
        hostname: b"web1",
        process_group: b"app",
        process_parent_pid: 4200,
        switch_interval: 0.005,
    };
    let mut buf = [0u8; 8192];
    let n = emit::process_started(&mut buf, 4242, 1, 1700000000.5, &ident).unwrap();
    assert_eq!(&buf[..n], &b[..]);
}

#[test]
fn v2_process_stopped() {
    let b = unhex(V2);
    assert_eq!(b.len(), 106);
    assert_eq!(
        sha256_hex(&b),
        "c15bb7b2ce922d9112e87e0db6856fa172b35ed3216d94305a1cf715ab1ce5ab"
    );
    let s = decode(&b).unwrap();
    assert_eq!(s.text(id::SHUTDOWN_REASON).unwrap(), "maximum_requests");
    assert_eq!(s.f64(id::PROCESS_UPTIME), Some(3599.75));
    assert_eq!(s.u64(id::LIFETIME_REQUEST_COUNT), Some(10000));
    assert_eq!(s.encode().unwrap(), b);
    let l = emit::Lifecycle {
        hostname: b"web1",
        process_group: b"app",
        shutdown_reason: b"maximum_requests",
        process_uptime: 3599.75,
        lifetime_request_count: 10000,
        active_requests_at_exit: 0,
        graceful_drain: true,
        ..Default::default()
    };
    let mut buf = [0u8; 8192];
    let n = emit::process_stopped(&mut buf, 4242, 905, 1700003600.25, &l).unwrap();
    assert_eq!(&buf[..n], &b[..]);
}

#[test]
fn v3_gc_event() {
    let b = unhex(V3);
    assert_eq!(b.len(), 90);
    assert_eq!(
        sha256_hex(&b),
        "5450ff832c03684eccd7227e790542a87e2cae15135729b21b047988319beaa2"
    );
    let s = decode(&b).unwrap();
    assert_eq!(s.header.kind.name(), "gc_event");
    assert_eq!(s.text(id::INTERPRETER_NAME).unwrap(), "site2|");
    assert_eq!(s.u64(id::GC_EVENT_COLLECTED), Some(314));
    assert_eq!(s.encode().unwrap(), b);
    let ev = emit::GcEvent {
        start_stamp: 1700000009.75,
        duration: 0.00125,
        generation: 2,
        collected: 314,
        uncollectable: 0,
    };
    let mut buf = [0u8; 8192];
    let n = emit::gc_event(&mut buf, 4242, 37, 1700000010.0, &ev, b"site2|").unwrap();
    assert_eq!(&buf[..n], &b[..]);
}

#[test]
fn v4_decoder_coverage_and_negatives() {
    let b = unhex(V4);
    assert_eq!(b.len(), 89);
    assert_eq!(
        sha256_hex(&b),
        "431b2f70853526eb6c86aaabc47346b2c09353082f12ddb7fa703814a350b2f9"
    );
    let s = decode(&b).unwrap();
    assert_eq!(
        s.fields,
        vec![
            (20, Value::U64(12)),
            (110, Value::I32Array(vec![3, 0, 7])),
            (111, Value::F64Array(vec![0.25, 1.0])),
            (999, Value::I64(-5)),
            (998, Value::Bytes(vec![])),
        ]
    );
    assert_eq!(wire::field_name(999), "id999");
    assert_eq!(s.encode().unwrap(), b);

    assert_eq!(
        decode(&b[..26]),
        Err(DecodeError::TruncatedTlvHeader { offset: 24 })
    );
    let mut bad = b.clone();
    bad[26] = 0x07;
    assert_eq!(
        decode(&bad),
        Err(DecodeError::UnknownTag { tag: 7, offset: 26 })
    );
    let mut bad = b.clone();
    bad[0..4].copy_from_slice(b"XXXX");
    assert!(matches!(decode(&bad), Err(DecodeError::BadMagic { .. })));
    assert_eq!(decode(&[]), Err(DecodeError::TooShort { len: 0 }));
    assert!(matches!(
        decode(&b[..30]),
        Err(DecodeError::TruncatedValue { .. })
    ));
}

#[test]
fn v5_realistic_request_tick() {
    // (server, application, gil_wait, input_read, output_write) in µs.
    let reqs: [[u64; 5]; 3] = [
        [1200, 10500, 0, 0, 80],
        [900, 4200, 40, 150, 60],
        [3000, 250000, 900, 0, 700],
    ];
    struct Acc {
        sum: f64,
        min: u64,
        max: u64,
        buckets: [i32; BUCKETS],
    }
    let mut acc: Vec<Acc> = (0..6)
        .map(|_| Acc {
            sum: 0.0,
            min: u64::MAX,
            max: 0,
            buckets: [0; BUCKETS],
        })
        .collect();
    for r in &reqs {
        // request = server + application in embedded mode
        let vals = [r[0], r[1], r[0] + r[1], r[2], r[3], r[4]];
        for (a, us) in acc.iter_mut().zip(vals) {
            let s = us as f64 / 1e6;
            a.sum += s;
            a.min = a.min.min(us);
            a.max = a.max.max(us);
            a.buckets[bucket_index(s)] += 1;
        }
    }
    let phase = |a: &'_ Acc| -> (f64, f64, f64) { (a.sum, a.min as f64 / 1e6, a.max as f64 / 1e6) };
    let mk = |i: usize| {
        let (sum, min, max) = phase(&acc[i]);
        Phase {
            sum,
            count: 3,
            min,
            max,
            buckets: &acc[i].buckets,
        }
    };
    let ident = Identity {
        mod_wsgi_version: b"6.0.5",
        python_version: b"3.12.3",
        apache_version: b"Apache/2.4.62",
        mpm_name: b"worker",
        hostname: b"web1",
        process_group: b"",
        process_parent_pid: 4200,
        switch_interval: 0.005,
    };
    let completed = [2, 1, 0, 0];
    let busy = [0.015988, 0.25312, 0.0, 0.0];
    let cpu = [0.012, 0.18, 0.0, 0.0];
    let cur = [0.0; 4];
    let maxd = [0.011, 0.253, 0.0, 0.0];
    let tick = RequestTick {
        identity: &ident,
        sample_period: 1.0,
        telemetry_interval: 1.0,
        slow_requests_threshold: 0.0,
        reporter_dropped_datagrams: None,
        request_count: 3,
        request_throughput: 3.0,
        capacity_utilization: 0.0665,
        cpu_user_utilization: 0.05,
        cpu_system_utilization: 0.01,
        cpu_utilization: 0.05 + 0.01,
        memory_rss: 52428800,
        memory_max_rss: 60817408,
        request_threads_maximum: 4,
        request_threads_started: 2,
        request_threads_active: 2,
        server: mk(0),
        application: mk(1),
        request: mk(2),
        gil_wait: Some(mk(3)),
        input_read: mk(4),
        output_write: mk(5),
        queue_daemon: None,
        input_bytes_total: 120,
        input_reads_total: 1,
        output_bytes_total: 712,
        output_writes_total: 2,
        status: [0, 1, 0, 1, 1],
        slots: Slots {
            completed: &completed,
            busy_time: &busy,
            cpu_time: &cpu,
            current_elapsed: &cur,
            max_duration: &maxd,
        },
    };
    let mut buf = [0u8; 8192];
    let n = emit::request(&mut buf, 4243, 57, 1700000100.0, &tick).unwrap();
    let first64 = unhex("5753474901020000931000003900000000000059fc54d9410100040500362e302e350200040600332e31322e330300040d004170616368652f322e342e363204");
    assert_eq!(&buf[..64], &first64[..]);
    assert_eq!(n, 2315);
    assert_eq!(
        sha256_hex(&buf[..n]),
        "8a4eaeb96b7fea7feccffbeaa72c5c8a9d0d9fbf668c9ca65e4a6c3ce2a6f9ef"
    );
    // buckets as the vector lists them
    assert_eq!(acc[0].buckets[0], 2);
    assert_eq!(acc[0].buckets[6], 1);
    assert_eq!(
        (acc[1].buckets[8], acc[1].buckets[13], acc[1].buckets[31]),
        (1, 1, 1)
    );
    let s = decode(&buf[..n]).unwrap();
    assert_eq!(s.encode().unwrap(), &buf[..n]);
}

#[test]
fn encoder_never_overruns() {
    let mut buf = [0u8; 8192];
    let header = wire::Header::new(Kind::REQUEST, 1, 1, 0.0);
    let mut e = wire::Encoder::new(&mut buf, &header);
    let big = vec![0.5f64; 1100];
    assert!(e.f64_array(111, &big).is_err());
    let mut count = 0;
    while e.bytes(1, &[b'x'; 100]).is_ok() {
        count += 1;
    }
    assert_eq!(count, (8192 - 24) / 105);
    let n = e.finish();
    assert!(n <= 8192);
    assert!(decode(&buf[..n]).is_ok());
    let mut small = [0u8; 30];
    let mut e = wire::Encoder::new(&mut small, &header);
    assert!(e.u64(20, 1).is_err());
    assert_eq!(e.finish(), 24);
}

#[test]
fn duplicate_field_keeps_first_position_and_last_value() {
    let mut buf = [0u8; 256];
    let mut e = wire::Encoder::new(&mut buf, &wire::Header::new(Kind::REQUEST, 1, 1, 0.0));
    e.u64(20, 1).unwrap();
    e.u64(1000, 5).unwrap();
    e.u64(21, 2).unwrap();
    e.u64(20, 3).unwrap();
    e.u64(1000, 6).unwrap();
    let n = e.finish();
    let s = decode(&buf[..n]).unwrap();
    assert_eq!(
        s.fields,
        vec![
            (20, Value::U64(3)),
            (1000, Value::U64(6)),
            (21, Value::U64(2))
        ]
    );
}
