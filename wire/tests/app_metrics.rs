//! Kind 10, `app_metrics` (docs/wire.md): a worked datagram given as hex
//! with its SHA-256, built field by field from the layout (not by the
//! encoder), then encoded, decoded and re-encoded; and the decoder's refusals.

mod common;

use common::{sha256_hex, unhex};
use wire::app::{
    self, AppMetric, AppMetricsError, AppMetricsHead, AppValue, Distribution, MetricType,
    MetricValue, NameError,
};
use wire::histogram::{bucket_index, BUCKETS};
use wire::{decode, decode_ref, id, Kind, Value, MAX_DATAGRAM};

/// pid 4242, seq 77, stamp 1700000001.0, host `web1`, group `app`, two
/// calls dropped; `orders` counter 3, `queue.depth` gauge -2.5, `db.{0}`
/// distribution of 0.5 ms, 5 ms and 10 ms (buckets 0, 9 and 13).
const V: &str = concat!(
    "57534749010a0000921000004d00000000004040fc54d941", // header
    "050004040077656231",                               // 5 hostname "web1"
    "0600040300617070",                                 // 6 process_group "app"
    "90010419006f72646572730a71756575652e64657074680a64622e7b307d", // 400 names
    "9101040300636764",                                 // 401 types "cgd"
    "9201060300000000000000084000000000000004c05839b4c876be8f3f", // 402 values
    "930106010000000000000008409401060100fca9f1d24d62403f95010601007b14ae47e17a843f", // 403-405
    "960105070003000000000000000100000009000000010000000d00000001000000", // 406 buckets
    "9701010200000000000000",                           // 407 dropped calls
);

fn sum_of(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |a, v| a + v)
}

#[test]
fn worked_datagram() {
    let b = unhex(V);
    assert_eq!(b.len(), 191);
    assert_eq!(
        sha256_hex(&b),
        "cfc514afeb6a0314519d7319c1b01c72cd82392b0eac3c4de19b1b73ed53aaa9"
    );

    // Every v1 decoder reads it: one record per field id.
    let s = decode(&b).unwrap();
    assert_eq!(s.header.kind, Kind::APP_METRICS);
    assert_eq!(s.header.kind.name(), "app_metrics");
    assert_eq!((s.header.pid, s.header.seq), (4242, 77));
    assert_eq!(
        s.get(id::APP_METRIC_NAMES),
        Some(&Value::Bytes(b"orders\nqueue.depth\ndb.{0}".to_vec()))
    );
    assert_eq!(s.encode().unwrap(), b);

    // The metrics.
    let m = app::decode(&decode_ref(&b).unwrap()).unwrap();
    assert_eq!(m.hostname, "web1");
    assert_eq!(m.process_group, "app");
    assert_eq!(m.dropped_calls, 2);
    let names: Vec<&str> = m.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["orders", "queue.depth", "db.{0}"]);
    assert_eq!(m.metrics[0].value, MetricValue::Counter(3.0));
    assert_eq!(m.metrics[1].value, MetricValue::Gauge(-2.5));
    let values = [0.0005, 0.005, 0.01];
    let mut buckets = [0u32; BUCKETS];
    for v in values {
        buckets[bucket_index(v)] += 1;
    }
    assert_eq!(
        (
            bucket_index(0.0005),
            bucket_index(0.005),
            bucket_index(0.01)
        ),
        (0, 9, 13)
    );
    let MetricValue::Distribution(d) = &m.metrics[2].value else {
        panic!("{:?}", m.metrics[2]);
    };
    assert_eq!(
        (d.count, d.sum, d.min, d.max),
        (3, sum_of(&values), 0.0005, 0.01)
    );
    assert_eq!(d.buckets, buckets);

    // The encoder writes exactly these bytes.
    let metrics = [
        AppMetric {
            name: b"orders",
            value: AppValue::Counter(3.0),
        },
        AppMetric {
            name: b"queue.depth",
            value: AppValue::Gauge(-2.5),
        },
        AppMetric {
            name: b"db.{0}",
            value: AppValue::Distribution(Distribution {
                count: 3,
                sum: sum_of(&values),
                min: 0.0005,
                max: 0.01,
                buckets: &buckets,
            }),
        },
    ];
    let head = AppMetricsHead {
        hostname: b"web1",
        process_group: b"app",
        dropped_calls: 2,
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = wire::app::encode(&mut buf, 4242, 77, 1700000001.0, &head, &metrics).unwrap();
    assert_eq!(&buf[..n], &b[..]);
    assert_eq!(app::encoded_len(&head, &metrics), n);
}

#[test]
fn bucket_counts_travel_modulo_2_32() {
    let mut buckets = [0u32; BUCKETS];
    buckets[0] = u32::MAX; // -1 as an i32 on the wire
    buckets[64] = 1 << 31;
    let metrics = [AppMetric {
        name: b"big",
        value: AppValue::Distribution(Distribution {
            count: (1 << 32) + (1 << 31) - 1,
            sum: 1e9,
            min: 0.0,
            max: 100.0,
            buckets: &buckets,
        }),
    }];
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = app::encode(&mut buf, 1, 1, 0.0, &AppMetricsHead::default(), &metrics).unwrap();
    let s = decode(&buf[..n]).unwrap();
    assert_eq!(
        s.get(id::APP_METRIC_BUCKETS),
        Some(&Value::I32Array(vec![2, 0, -1, 64, i32::MIN]))
    );
    assert_eq!(s.get(id::HOSTNAME), None, "empty identity is omitted");
    let m = app::decode(&decode_ref(&buf[..n]).unwrap()).unwrap();
    let MetricValue::Distribution(d) = &m.metrics[0].value else {
        panic!()
    };
    assert_eq!(d.count, (1 << 32) + (1 << 31) - 1);
    assert_eq!(d.buckets, buckets);
}

#[test]
fn empty_datagram_carries_the_dropped_count() {
    let head = AppMetricsHead {
        dropped_calls: 9,
        ..Default::default()
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    let n = app::encode(&mut buf, 1, 1, 0.0, &head, &[]).unwrap();
    assert_eq!(n, app::encoded_len(&head, &[]));
    let m = app::decode(&decode_ref(&buf[..n]).unwrap()).unwrap();
    assert_eq!((m.metrics.len(), m.dropped_calls), (0, 9));
    assert_eq!(MetricType::from_u8(b'x'), None);
}

/// A kind-10 datagram with `fields` (in order).
fn with(fields: Vec<(u16, Value)>) -> Vec<u8> {
    wire::Sample {
        header: wire::Header::new(Kind::APP_METRICS, 1, 1, 0.0),
        fields,
    }
    .encode()
    .unwrap()
}

fn read(b: &[u8]) -> Result<app::AppMetrics, AppMetricsError> {
    app::decode(&decode_ref(b).unwrap())
}

#[test]
fn refusals() {
    let names = |s: &str| (id::APP_METRIC_NAMES, Value::Bytes(s.as_bytes().to_vec()));
    let types = |s: &str| (id::APP_METRIC_TYPES, Value::Bytes(s.as_bytes().to_vec()));
    let f64s = |fid, v: &[f64]| (fid, Value::F64Array(v.to_vec()));
    let dropped = (id::APP_METRIC_DROPPED_CALLS, Value::U64(0));
    let counter = |n: &str, v: f64| {
        with(vec![
            names(n),
            types("c"),
            f64s(id::APP_METRIC_VALUES, &[v]),
            dropped.clone(),
        ])
    };
    assert!(read(&counter("ok", 1.0)).is_ok());
    assert_eq!(
        read(&counter("a b", 1.0)),
        Err(AppMetricsError::Name {
            index: 0,
            error: NameError::BadByte {
                offset: 1,
                byte: b' '
            }
        })
    );
    assert_eq!(
        read(&counter("ok", -1.0)),
        Err(AppMetricsError::Value { index: 0 })
    );
    assert_eq!(
        read(&counter("ok", f64::NAN)),
        Err(AppMetricsError::Value { index: 0 })
    );
    assert_eq!(
        read(&with(vec![
            names("a\na"),
            types("cc"),
            f64s(id::APP_METRIC_VALUES, &[1.0, 2.0]),
            dropped.clone()
        ])),
        Err(AppMetricsError::DuplicateName { index: 1 })
    );
    assert_eq!(
        read(&with(vec![
            names("a\nb"),
            types("c"),
            f64s(id::APP_METRIC_VALUES, &[1.0, 2.0]),
            dropped.clone()
        ])),
        Err(AppMetricsError::Length {
            field: id::APP_METRIC_TYPES,
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        read(&with(vec![
            names("a"),
            types("x"),
            f64s(id::APP_METRIC_VALUES, &[1.0]),
            dropped.clone()
        ])),
        Err(AppMetricsError::Type {
            index: 0,
            byte: b'x'
        })
    );
    assert_eq!(
        read(&with(vec![
            names("a"),
            types("c"),
            f64s(id::APP_METRIC_VALUES, &[1.0])
        ])),
        Err(AppMetricsError::Missing {
            field: id::APP_METRIC_DROPPED_CALLS
        })
    );
    assert_eq!(
        read(&with(vec![types("c")])),
        Err(AppMetricsError::Missing {
            field: id::APP_METRIC_NAMES
        })
    );
    assert_eq!(
        read(&with(vec![
            (id::APP_METRIC_NAMES, Value::U64(1)),
            types("c")
        ])),
        Err(AppMetricsError::WrongType {
            field: id::APP_METRIC_NAMES
        })
    );
    let dist = |buckets: Vec<i32>, count: f64, min: f64, max: f64| {
        read(&with(vec![
            names("d"),
            types("d"),
            f64s(id::APP_METRIC_VALUES, &[1.0]),
            f64s(id::APP_METRIC_COUNTS, &[count]),
            f64s(id::APP_METRIC_MINS, &[min]),
            f64s(id::APP_METRIC_MAXES, &[max]),
            (id::APP_METRIC_BUCKETS, Value::I32Array(buckets)),
            dropped.clone(),
        ]))
    };
    assert!(dist(vec![1, 5, 2], 2.0, 0.1, 0.9).is_ok());
    assert_eq!(
        dist(vec![2, 5, 1], 2.0, 0.1, 0.9),
        Err(AppMetricsError::Buckets { offset: 0 })
    );
    assert_eq!(
        dist(vec![2, 5, 1, 5, 1], 2.0, 0.1, 0.9),
        Err(AppMetricsError::Buckets { offset: 3 })
    );
    assert_eq!(
        dist(vec![1, 65, 1], 2.0, 0.1, 0.9),
        Err(AppMetricsError::Buckets { offset: 1 })
    );
    assert_eq!(
        dist(vec![1, 5, 2, 0], 2.0, 0.1, 0.9),
        Err(AppMetricsError::Buckets { offset: 3 })
    );
    assert_eq!(
        dist(vec![1, 5, 2], 2.5, 0.1, 0.9),
        Err(AppMetricsError::Value { index: 0 })
    );
    assert_eq!(
        dist(vec![1, 5, 2], 2.0, 0.9, 0.1),
        Err(AppMetricsError::Value { index: 0 })
    );
    // Not kind 10.
    let mut b = counter("ok", 1.0);
    b[5] = 2;
    assert_eq!(read(&b), Err(AppMetricsError::NotAppMetrics { kind: 2 }));
}
