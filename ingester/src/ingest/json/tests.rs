//! The messages against serde_json and the serde oracle, on the corpus and
//! on edge cases.

use super::live::*;
use super::serde_oracle;
use super::snapshot::*;
use super::writer::*;
use crate::ingest::state::Limits;
use crate::ingest::state::State;
use std::time::Instant;
use wire::{Sample, Value};

#[test]
fn every_message_is_valid_json_with_text_interpreter_names() {
    let bin = testkit::corpus_capture();
    let mut st = State::new(Limits::default());
    let now = Instant::now();
    let mut gc_named = 0;
    for d in wire::capture::records(&bin).map(|r| r.unwrap()) {
        let u = st.ingest(d, now);
        let js = update_json(&u).unwrap();
        let v: serde_json::Value = serde_json::from_str(&js).unwrap();
        if let Some(name) = v["fields"].get("interpreter_name") {
            assert!(name.is_string());
            gc_named += 1;
        }
    }
    assert_eq!(gc_named, 3610);
    let snap = snapshot_json(&capture(&st), None);
    let v: serde_json::Value = serde_json::from_str(&snap).unwrap();
    assert_eq!(v["type"], "snapshot");
    assert_eq!(v["processes"].as_array().unwrap().len(), 22);
    assert_eq!(v["total_received"], 11888);
    assert_eq!(v["decode_errors"], 0);
    assert_eq!(v["seq_gaps"], 0);
    let samples = testkit::sample_count(&v);
    assert_eq!(samples, 386);
    assert_eq!(v["lifecycle_events"].as_array().unwrap().len(), 66);
    // budgeted: smaller, still one sample per process that has any
    let small = snapshot_json(&capture(&st), Some(300_000));
    assert!(small.len() < 400_000, "{}", small.len());
    let v: serde_json::Value = serde_json::from_str(&small).unwrap();
    assert_eq!(v["history_truncated"], true);
    let procs = v["processes"].as_array().unwrap();
    for p in procs {
        assert!(!p["samples"].as_array().unwrap().is_empty());
    }
    // Every process keeps the same number of newest samples (or all of
    // its own), so windowed rates stay unbiased.
    let counts: Vec<usize> = procs
        .iter()
        .map(|p| p["samples"].as_array().unwrap().len())
        .collect();
    let k = *counts.iter().max().unwrap();
    for (p, c) in st.processes.values().zip(&counts) {
        assert_eq!(*c, p.samples.len().min(k));
    }
    // With the default budget, GC events go before any sample does.
    let js = snapshot_json(&capture(&st), Some(3_500_000));
    assert!(js.len() <= 3_500_000, "{}", js.len());
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    let samples = testkit::sample_count(&v);
    assert_eq!(samples, 386);
    assert_eq!(v["history_truncated"], true);
}

/// Equality of long texts, reporting the first difference briefly.
#[track_caller]
fn assert_same(ours: &[u8], want: &[u8], what: &str) {
    if ours == want {
        return;
    }
    let i = ours.iter().zip(want).take_while(|(a, b)| a == b).count();
    let ctx = |b: &[u8]| {
        String::from_utf8_lossy(&b[i.saturating_sub(60)..(i + 60).min(b.len())]).into_owned()
    };
    panic!(
        "{what}: differs at byte {i} (lengths {} vs {}):\n ours: {}\n want: {}",
        ours.len(),
        want.len(),
        ctx(ours),
        ctx(want)
    );
}

fn edge_sample(pid: u32, seq: u32) -> Sample {
    let floats = vec![
        0.0,
        -0.0,
        1.0,
        0.1,
        1e16,
        1e-7,
        123456789.123,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -2.5,
    ];
    let mut sparse_f = vec![0.0; 40];
    sparse_f[3] = -0.0;
    sparse_f[17] = 1e21;
    sparse_f[39] = f64::NAN;
    let mut sparse_i = vec![0i32; 40];
    sparse_i[0] = -1;
    sparse_i[39] = i32::MAX;
    sparse_i[5] = i32::MIN;
    Sample {
        header: wire::Header {
            version: 1,
            kind: wire::Kind::REQUEST,
            flags: 0,
            pid,
            seq,
            stamp: 1.7e9 + 0.123456789,
        },
        fields: vec![
            (
                wire::id::HOSTNAME,
                Value::Bytes(b"h\"o\\st\n\x01\x7f\xff\xfe".to_vec()),
            ),
            (2, Value::U64(u64::MAX)),
            (3, Value::I64(i64::MIN)),
            (4, Value::F64(f64::NAN)),
            (9, Value::F64(-0.0)),
            (100, Value::F64Array(floats.clone())),
            (101, Value::F64Array(sparse_f)),
            (
                102,
                Value::I32Array(vec![1, -1, 10, 9, -10, i32::MIN, 0, 0, 0]),
            ),
            (103, Value::I32Array(sparse_i)),
            (104, Value::I32Array(vec![])),
            (105, Value::F64Array(vec![])),
            (106, Value::Bytes(vec![])),
            (499, Value::U64(7)),
            (600, Value::F64(3.0)),
            (65535, Value::F64(1e300)),
        ],
    }
}

#[test]
fn direct_sample_writer_matches_serde() {
    let bin = testkit::corpus_capture();
    let mut n = 0;
    for d in wire::capture::records(&bin).map(|r| r.unwrap()) {
        let s = wire::decode(d).unwrap();
        let p = crate::ingest::state::packed::pack(&s);
        let mut out = Vec::new();
        push_sample_msg(&mut out, &p);
        assert_same(&out, to_string(&SampleMsg(&s)).as_bytes(), "corpus sample");
        n += 1;
    }
    assert_eq!(n, 11888);
    let s = edge_sample(42, 7);
    let p = crate::ingest::state::packed::pack(&s);
    let mut out = Vec::new();
    push_sample_msg(&mut out, &p);
    assert_same(&out, to_string(&SampleMsg(&s)).as_bytes(), "edge sample");
    let ours = String::from_utf8(out).unwrap();
    // sanity: what the edge cases look like
    assert!(ours.contains("\"id65535\":1e+300"), "{ours}");
    assert!(ours.contains("[0.0,-0.0,1.0,0.1,1e+16,1e-7,"), "{ours}");
    assert!(ours.contains("null,null,null,-2.5]"), "{ours}");
}

#[test]
fn direct_snapshot_matches_serde_whole_and_chunked() {
    let bin = testkit::corpus_capture();
    let mut st = State::new(Limits::default());
    let now = Instant::now();
    for d in wire::capture::records(&bin).map(|r| r.unwrap()) {
        st.ingest(d, now);
    }
    for seq in 1..30 {
        st.apply(edge_sample(4242, seq), now);
    }
    let refs = capture(&st);
    for budget in [None, Some(300_000), Some(3_500_000), Some(1)] {
        let want = serde_oracle::snapshot_json_serde(&refs, budget);
        assert_same(
            snapshot_json(&refs, budget).as_bytes(),
            want.as_bytes(),
            &format!("budget {budget:?}"),
        );
        let mut pieces = Vec::new();
        write_snapshot(&refs, budget, 10_000, &mut |p| {
            pieces.push(p);
            true
        });
        assert!(budget.is_some() || pieces.len() > 10, "{}", pieces.len());
        assert_same(
            &pieces.concat(),
            want.as_bytes(),
            &format!("chunked, budget {budget:?}"),
        );
    }
    // A receiver that goes away stops the writer.
    let mut calls = 0;
    write_snapshot(&refs, None, 10_000, &mut |_| {
        calls += 1;
        calls < 3
    });
    assert_eq!(calls, 3);
}

/// A whole snapshot message as one string.
fn snapshot_json(r: &SnapshotRefs, budget: Option<usize>) -> String {
    let mut all = Vec::new();
    write_snapshot(r, budget, usize::MAX, &mut |piece| {
        all = piece;
        true
    });
    // Only serde_json's strings and ASCII were written.
    String::from_utf8(all).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}
