//! `decode_ref` (the borrowed, allocation-free path) agrees with `decode`
//! on every input: the same fields (ids, order, values, float bits) on the
//! whole corpus, the same errors on truncated, mutated, duplicated and
//! random inputs. Deterministic pseudo-random inputs, so a failure repeats.

use testkit::corpus_records as corpus;
use wire::{decode, decode_ref, Header, Kind, Sample, Value, HEADER_LEN};

mod common;
use common::Rng;

/// Bit-exact comparison (NaN payloads and -0.0 included).
fn bits(s: &Sample) -> Vec<(u16, Vec<u64>, Vec<u8>)> {
    s.fields
        .iter()
        .map(|(id, v)| match v {
            Value::U64(x) => (*id, vec![1, *x], vec![]),
            Value::F64(x) => (*id, vec![2, x.to_bits()], vec![]),
            Value::I64(x) => (*id, vec![3, *x as u64], vec![]),
            Value::Bytes(b) => (*id, vec![4], b.clone()),
            Value::I32Array(a) => (*id, a.iter().map(|&x| x as u32 as u64).collect(), vec![5]),
            Value::F64Array(a) => (*id, a.iter().map(|x| x.to_bits()).collect(), vec![6]),
        })
        .collect()
}

/// Asserts that both paths agree on `d`, field by field and through `get`.
fn agree(ctx: &str, d: &[u8]) {
    match (decode(d), decode_ref(d)) {
        (Ok(s), Ok(r)) => {
            let header_bits =
                |h: &Header| (h.version, h.kind, h.flags, h.pid, h.seq, h.stamp.to_bits());
            assert_eq!(
                header_bits(&s.header),
                header_bits(&r.header),
                "{ctx}: header"
            );
            let owned = r.to_sample();
            assert_eq!(bits(&owned), bits(&s), "{ctx}: fields");
            assert_eq!(r.fields().count(), s.fields.len(), "{ctx}: field count");
            for (i, (id, v)) in r.fields().enumerate() {
                assert_eq!(id, s.fields[i].0, "{ctx}: id of field {i}");
                assert_eq!(v.tag(), s.fields[i].1.tag(), "{ctx}: tag of field {i}");
            }
            for (id, v) in &s.fields {
                let got = r.get(*id).expect("present").to_value();
                assert_eq!(
                    bits(&Sample {
                        header: s.header,
                        fields: vec![(*id, got)]
                    }),
                    bits(&Sample {
                        header: s.header,
                        fields: vec![(*id, v.clone())]
                    }),
                    "{ctx}: get({id})"
                );
                assert_eq!(
                    r.f64(*id).map(f64::to_bits),
                    s.f64(*id).map(f64::to_bits),
                    "{ctx}: f64({id})"
                );
                assert_eq!(r.u64(*id), s.u64(*id), "{ctx}: u64({id})");
                assert_eq!(r.text(*id), s.text(*id), "{ctx}: text({id})");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{ctx}: error"),
        (a, b) => panic!("{ctx}: decode {:?} vs decode_ref {:?}", a.err(), b.err()),
    }
}

#[test]
fn whole_corpus_gives_the_same_fields() {
    let all = corpus();
    assert_eq!(all.len(), 11_888);
    for (i, d) in all.iter().enumerate() {
        let r = decode_ref(d).unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        assert!(!r.has_duplicates(), "datagram {i}");
        assert_eq!(r.bytes(), &d[..]);
        let s = wire::decode(d).unwrap();
        let arrays = s
            .fields
            .iter()
            .any(|(_, v)| matches!(v, Value::I32Array(_) | Value::F64Array(_)));
        assert_eq!(r.has_arrays(), arrays, "datagram {i}");
        agree(&format!("datagram {i}"), d);
    }
}

#[test]
fn truncations_and_mutations_give_the_same_errors() {
    let all = corpus();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for (i, d) in all.iter().enumerate().step_by(53) {
        for cut in 0..d.len() {
            agree(&format!("datagram {i} cut at {cut}"), &d[..cut]);
        }
        for m in 0..40 {
            let mut x = d.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(x.len());
                x[at] = rng.next() as u8;
            }
            agree(&format!("datagram {i} mutation {m}"), &x);
        }
    }
    for n in 0..2000 {
        let len = rng.below(200);
        let mut x: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 4 && n % 2 == 0 {
            x[..4].copy_from_slice(b"WSGI");
        }
        agree(&format!("random {n}"), &x);
    }
}

#[test]
fn duplicated_ids_keep_first_position_and_last_value() {
    let header = Header::new(Kind::REQUEST, 7, 1, 1.5).to_bytes();
    let rec = |id: u16, tag: u8, body: &[u8]| {
        let mut v = id.to_le_bytes().to_vec();
        v.push(tag);
        v.extend_from_slice(body);
        v
    };
    let u64v = |x: u64| x.to_le_bytes().to_vec();
    let bytes = |b: &[u8]| {
        let mut v = (b.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(b);
        v
    };
    let arr = {
        let mut v = 2u16.to_le_bytes().to_vec();
        v.extend_from_slice(&(-3i32).to_le_bytes());
        v.extend_from_slice(&9i32.to_le_bytes());
        v
    };
    // Registered and unregistered (>= 512) ids, each duplicated, with
    // changing types.
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![
            rec(3, 1, &u64v(1)),
            rec(4, 1, &u64v(2)),
            rec(3, 2, &u64v(5)),
        ],
        vec![
            rec(700, 4, &bytes(b"a")),
            rec(3, 1, &u64v(1)),
            rec(700, 5, &arr),
            rec(700, 1, &u64v(8)),
        ],
        vec![
            rec(600, 1, &u64v(1)),
            rec(601, 1, &u64v(2)),
            rec(600, 4, &bytes(b"xyz")),
            rec(601, 3, &u64v(u64::MAX)),
        ],
        vec![
            rec(9, 4, &bytes(b"")),
            rec(9, 4, &bytes(b"\xff\xfe")),
            rec(9, 6, &[0, 0]),
        ],
    ];
    for (n, recs) in cases.iter().enumerate() {
        let mut d = header.to_vec();
        recs.iter().for_each(|r| d.extend_from_slice(r));
        let r = decode_ref(&d).expect("valid");
        assert!(r.has_duplicates(), "case {n}");
        agree(&format!("duplicates {n}"), &d);
        // And every prefix of it.
        for cut in HEADER_LEN..d.len() {
            agree(&format!("duplicates {n} cut at {cut}"), &d[..cut]);
        }
    }
}
