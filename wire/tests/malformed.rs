//! Decoding is total: random and malformed inputs (empty, truncated at every
//! length, bad magic, bad type tag, counts past the end, random mutations of
//! real datagrams, random bytes) give a sample or the right typed error,
//! never a panic. Deterministic pseudo-random inputs, so a failure repeats.

use wire::{capture, decode, decode_header, DecodeError, Header, Kind, Sample, Value, HEADER_LEN};

mod common;
use common::Rng;

fn corpus_datagrams() -> Vec<Vec<u8>> {
    // One of each kind, plus every 97th datagram: variety without 12k copies.
    let mut seen_kinds = std::collections::HashSet::new();
    testkit::corpus_records()
        .into_iter()
        .enumerate()
        .filter(|(i, d)| seen_kinds.insert(d[5]) || i % 97 == 0)
        .map(|(_, d)| d)
        .collect()
}

/// A datagram with every wire type, built with the encoder.
fn all_types() -> Vec<u8> {
    Sample {
        header: Header::new(Kind::REQUEST, 7, 3, 1_700_000_000.25),
        fields: vec![
            (20, Value::U64(5)),
            (21, Value::F64(2.5)),
            (999, Value::I64(-4)),
            (5, Value::Bytes(b"web1".to_vec())),
            (100, Value::I32Array(vec![1, -2, 3])),
            (998, Value::F64Array(vec![0.5, 1.5])),
        ],
    }
    .encode()
    .unwrap()
}

/// The decoder must not panic; run it and return its verdict.
fn total(d: &[u8]) -> Result<Sample, DecodeError> {
    let r = std::panic::catch_unwind(|| decode(d));
    match r {
        Ok(r) => r,
        Err(_) => panic!(
            "decode panicked on {} bytes: {:02x?}",
            d.len(),
            &d[..d.len().min(64)]
        ),
    }
}

#[test]
fn empty_and_short_inputs_are_too_short() {
    for n in 0..HEADER_LEN {
        let d = &all_types()[..n];
        assert_eq!(total(d), Err(DecodeError::TooShort { len: n }));
        assert_eq!(decode_header(d), Err(DecodeError::TooShort { len: n }));
    }
}

#[test]
fn header_only_decodes_with_no_fields() {
    let d = &all_types()[..HEADER_LEN];
    let s = total(d).unwrap();
    assert!(s.fields.is_empty());
    assert_eq!(s.header.pid, 7);
}

#[test]
fn bad_magic_is_reported_with_the_bytes_found() {
    let mut d = all_types();
    d[3] = b'X';
    assert_eq!(total(&d), Err(DecodeError::BadMagic { found: *b"WSGX" }));
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..2000 {
        let mut d = all_types();
        let found = [
            rng.next() as u8,
            rng.next() as u8,
            rng.next() as u8,
            rng.next() as u8,
        ];
        if found == wire::MAGIC {
            continue;
        }
        d[..4].copy_from_slice(&found);
        assert_eq!(total(&d), Err(DecodeError::BadMagic { found }));
    }
}

#[test]
fn unknown_tags_are_typed_errors() {
    for tag in (0u8..=255).filter(|t| wire::Tag::from_u8(*t).is_none()) {
        let mut d = all_types();
        d[HEADER_LEN + 2] = tag;
        assert_eq!(
            total(&d),
            Err(DecodeError::UnknownTag {
                tag,
                offset: HEADER_LEN + 2
            }),
            "tag {tag:#04x}"
        );
    }
}

#[test]
fn every_truncation_of_every_datagram_is_an_error_or_a_prefix() {
    let mut all = corpus_datagrams();
    all.push(all_types());
    for d in &all {
        let full = total(d).expect("corpus datagrams decode");
        for n in HEADER_LEN..d.len() {
            match total(&d[..n]) {
                // A cut exactly between records: a prefix of the fields.
                Ok(s) => {
                    assert_eq!(s.header, full.header);
                    assert!(s.fields.len() < full.fields.len() || full.fields.is_empty());
                    assert_eq!(&full.fields[..s.fields.len()], &s.fields[..]);
                }
                Err(DecodeError::TruncatedTlvHeader { offset }) => {
                    assert!(offset < n && n - offset < 3)
                }
                Err(DecodeError::TruncatedValue {
                    offset,
                    needed,
                    available,
                    ..
                }) => {
                    assert_eq!(available, n - offset);
                    assert!(needed > available);
                }
                Err(e) => panic!("unexpected error for a truncation at {n}: {e}"),
            }
        }
    }
}

#[test]
fn counts_and_lengths_past_the_end_are_errors() {
    // BYTES, I32 array and F64 array records whose count claims more than is
    // there, up to the largest u16.
    for (tag, width) in [(0x04u8, 1usize), (0x05, 4), (0x06, 8)] {
        for count in [1u16, 2, 3, 255, 4096, u16::MAX] {
            let mut d = all_types()[..HEADER_LEN].to_vec();
            d.extend_from_slice(&5u16.to_le_bytes());
            d.push(tag);
            d.extend_from_slice(&count.to_le_bytes());
            let have = (count as usize * width).saturating_sub(1).min(100);
            d.extend(std::iter::repeat_n(0xAA, have));
            match total(&d) {
                Err(DecodeError::TruncatedValue {
                    field: 5,
                    needed,
                    available,
                    ..
                }) => {
                    assert_eq!(needed, count as usize * width);
                    assert_eq!(available, have);
                }
                other => panic!("tag {tag} count {count}: {other:?}"),
            }
        }
    }
    // scalar with fewer than 8 bytes; array with a count byte missing
    let mut d = all_types()[..HEADER_LEN].to_vec();
    d.extend_from_slice(&[20, 0, 0x01, 1, 2, 3]);
    assert!(matches!(
        total(&d),
        Err(DecodeError::TruncatedValue {
            needed: 8,
            available: 3,
            ..
        })
    ));
    let mut d = all_types()[..HEADER_LEN].to_vec();
    d.extend_from_slice(&[5, 0, 0x04, 9]);
    assert!(matches!(
        total(&d),
        Err(DecodeError::TruncatedValue {
            needed: 2,
            available: 1,
            ..
        })
    ));
}

#[test]
fn random_mutations_of_real_datagrams_never_panic() {
    let all = corpus_datagrams();
    let mut rng = Rng(0x0dd_ba11);
    let (mut ok, mut err) = (0u32, 0u32);
    for round in 0..40_000 {
        let mut d = all[round % all.len()].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(6) {
                // flip a byte after the magic
                0 if d.len() > 4 => {
                    let i = 4 + rng.below(d.len() - 4);
                    d[i] ^= 1 << rng.below(8);
                }
                // overwrite a byte with an extreme value
                1 => {
                    let i = rng.below(d.len());
                    d[i] = [0x00, 0xff, 0x7f, 0x80][rng.below(4)];
                }
                // cut
                2 => d.truncate(rng.below(d.len() + 1)),
                // append garbage
                3 => {
                    let n = rng.below(12);
                    let extra = rng.bytes(n);
                    d.extend_from_slice(&extra);
                }
                // corrupt a u16 count/id somewhere after the header
                4 if d.len() > HEADER_LEN + 2 => {
                    let i = HEADER_LEN + rng.below(d.len() - HEADER_LEN - 1);
                    d[i..i + 2].copy_from_slice(&(rng.next() as u16).to_le_bytes());
                }
                // duplicate a slice (repeated records)
                _ if d.len() > HEADER_LEN => {
                    let a = HEADER_LEN + rng.below(d.len() - HEADER_LEN);
                    let b = a + rng.below(d.len() - a);
                    let slice = d[a..b].to_vec();
                    d.extend_from_slice(&slice);
                }
                _ => {}
            }
            if d.is_empty() {
                break;
            }
        }
        match total(&d) {
            Ok(s) => {
                ok += 1;
                // Whatever decodes re-encodes to a fixed point (when it fits).
                if let Ok(bytes) = s.encode() {
                    assert_eq!(total(&bytes).unwrap().encode().unwrap(), bytes);
                }
            }
            Err(e) => {
                err += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    // Both outcomes were exercised (the mutations are not all fatal).
    assert!(ok > 1000 && err > 1000, "ok={ok} err={err}");
}

#[test]
fn random_bytes_with_a_valid_header_never_panic() {
    let mut rng = Rng(0xfeed_f00d);
    let header = all_types()[..HEADER_LEN].to_vec();
    for _ in 0..50_000 {
        let mut d = header.clone();
        let n = rng.below(80);
        // Bias the tag bytes towards the valid ones so records are walked.
        for i in 0..n {
            let b = if i % 11 == 2 {
                1 + rng.below(7) as u8
            } else {
                rng.next() as u8
            };
            d.push(b);
        }
        let _ = total(&d);
        let _ = total(&d[..rng.below(d.len() + 1)]);
    }
}

#[test]
fn random_captures_never_panic() {
    let mut rng = Rng(0xc0ff_ee00);
    for _ in 0..20_000 {
        let n = rng.below(64);
        let d = rng.bytes(n);
        let mut consumed = 0;
        let mut failed = false;
        for r in capture::records(&d) {
            assert!(!failed, "nothing after the error");
            match r {
                Ok(x) => {
                    consumed += 4 + x.len();
                    let _ = total(x);
                }
                Err(off) => {
                    assert_eq!(off, consumed);
                    failed = true;
                }
            }
        }
        assert!(failed || consumed == d.len());
    }
}
