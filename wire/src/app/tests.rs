use super::*;

#[test]
fn names() {
    for ok in [
        &b"a"[..],
        b"orders.placed",
        b"cache:hits/total-2",
        b"latency.{0}",
        b"{0}",
        &[b'x'; 64],
    ] {
        assert_eq!(check_name(ok), Ok(()), "{}", String::from_utf8_lossy(ok));
    }
    assert_eq!(check_name(b""), Err(NameError::Empty));
    assert_eq!(check_name(&[b'x'; 65]), Err(NameError::TooLong { len: 65 }));
    assert_eq!(
        check_name(b"a b"),
        Err(NameError::BadByte {
            offset: 1,
            byte: b' '
        })
    );
    assert_eq!(
        check_name(b"a\nb"),
        Err(NameError::BadByte {
            offset: 1,
            byte: b'\n'
        })
    );
    assert_eq!(
        check_name(b"a{1}"),
        Err(NameError::BadByte {
            offset: 1,
            byte: b'{'
        })
    );
    assert_eq!(check_name(b"{0}{0}"), Err(NameError::TwoPlaceholders));
    assert_eq!(derived_name("latency.{0}.ms", "p99"), "latency.p99.ms");
    assert_eq!(derived_name("latency", "p99"), "latency.p99");
}

#[test]
fn fitting_matches_encoded_len() {
    let mut b = [0u32; BUCKETS];
    b[3] = 7;
    b[64] = 1;
    let names: Vec<String> = (0..400).map(|i| format!("metric.{i:03}")).collect();
    let metrics: Vec<AppMetric<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| AppMetric {
            name: n.as_bytes(),
            value: match i % 3 {
                0 => AppValue::Counter(i as f64),
                1 => AppValue::Gauge(-1.5),
                _ => AppValue::Distribution(Distribution {
                    count: 8,
                    sum: 1.0,
                    min: 0.001,
                    max: 70.0,
                    buckets: &b,
                }),
            },
        })
        .collect();
    let h = AppMetricsHead {
        hostname: b"web1",
        process_group: b"app",
        dropped_calls: 3,
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    for k in [0, 1, 2, 3, 50] {
        let n = encode(&mut buf, 1, 1, 0.0, &h, &metrics[..k]).unwrap();
        assert_eq!(n, encoded_len(&h, &metrics[..k]), "{k} metrics");
    }
    let k = fitting(&h, &metrics, MAX_DATAGRAM);
    assert!(k > 10 && k < metrics.len(), "{k}");
    assert!(encoded_len(&h, &metrics[..k]) <= MAX_DATAGRAM);
    assert!(encoded_len(&h, &metrics[..k + 1]) > MAX_DATAGRAM);
    assert!(encode(&mut buf, 1, 1, 0.0, &h, &metrics[..k + 1]).is_err());

    // encode_all splits and every datagram reads back.
    let mut seq = 10;
    let mut got = Vec::new();
    let sent = encode_all(
        &mut buf,
        7,
        || {
            seq += 1;
            seq
        },
        5.0,
        &h,
        &metrics,
        |d, k| {
            let s = crate::decode_ref(d).unwrap();
            let m = decode(&s).unwrap();
            assert_eq!(m.metrics.len(), k);
            got.extend(m.metrics);
            true
        },
    );
    assert_eq!(sent, metrics.len());
    assert_eq!(got.len(), metrics.len());
    assert_eq!(seq, 10 + metrics.len().div_ceil(k) as u32);
    for (m, g) in metrics.iter().zip(&got) {
        assert_eq!(m.name, g.name.as_bytes());
        assert_eq!(m.value.metric_type(), g.value.metric_type());
    }
}
