//! The batched stream against the per-datagram one, on the corpus.

use super::*;
use crate::ingest::state::Limits;
use serde_json::Value;
use std::time::Instant;

#[test]
fn intervals_are_whole_milliseconds_in_range() {
    assert_eq!(parse_interval("250"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_interval("100"), Ok(MIN_INTERVAL));
    assert_eq!(parse_interval("5000"), Ok(MAX_INTERVAL));
    for bad in ["99", "5001", "", "0.5", "-1", "1e3"] {
        let e = parse_interval(bad).unwrap_err();
        assert!(e.contains("between 100 and 5000"), "{bad}: {e}");
    }
}

#[test]
fn the_longest_pauses_are_kept_in_arrival_order() {
    let mut p = Picked::default();
    for (i, d) in [0.3, 0.1, 0.5, 0.1, 0.4].into_iter().enumerate() {
        p.events.push((10.0 + i as f64, d, 0));
    }
    p.keep_longest(3);
    let kept: Vec<f64> = p.events.iter().map(|e| e.0).collect();
    assert_eq!(kept, [10.0, 12.0, 14.0]);
    assert_eq!(p.omitted, 2);
    assert_eq!(p.cut, Some(13.0));
}

/// (pid, interpreter, second) of a GC aggregate.
type AggKey = (u64, String, i64);
/// Collections per generation, time, longest pause, collected, pauses.
type Agg = (Vec<u64>, f64, f64, u64, Vec<u64>);

/// The corpus through one state, told to a per-datagram listener and to a
/// batched stream: every message of the first is in the frames (samples,
/// GC snapshots and lifecycle verbatim and in order; GC events as
/// aggregates whose counts, times and pause histograms add up to the
/// events; the newest entry of every slow-request key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_carry_what_the_per_datagram_stream_carries() {
    let corpus = testkit::corpus_capture();
    let datagrams = wire::capture::records(&corpus).count() as u64;
    let batches = Arc::new(Batches::default());
    let (mut rx, first) = batches.subscribe(Duration::from_millis(100));
    assert_eq!(first, 1);
    // Frames are read while the corpus is applied (on a blocking thread).
    let reader = tokio::spawn(async move {
        let mut frames: Vec<Value> = Vec::new();
        while frames.last().map(|f| f["total_received"].as_u64()) != Some(Some(datagrams)) {
            let m = tokio::time::timeout(Duration::from_secs(60), rx.recv())
                .await
                .expect("a frame within 60 s")
                .expect("frame");
            frames.push(serde_json::from_str(&m).expect("frame JSON"));
        }
        frames
    });
    let b = batches.clone();
    let (st, messages, gc_events) = tokio::task::spawn_blocking(move || {
        let mut st = State::new(Limits::default());
        let now = Instant::now();
        let mut messages: Vec<String> = Vec::new();
        let mut gc_events = Vec::new();
        for (i, d) in wire::capture::records(&corpus)
            .map(|r| r.unwrap())
            .enumerate()
        {
            let u = st.ingest(d, now);
            if let Update::Gc {
                sample,
                interpreter,
            } = &u
            {
                if sample.header.kind == Kind::GC_EVENT {
                    gc_events.push((sample.header.pid, interpreter.to_string(), sample.clone()));
                }
            }
            let js = messages::update_json(&u);
            // Half the datagrams as if a per-datagram client had written
            // the message already.
            b.feed(&st, &u, js.as_deref().filter(|_| i % 2 == 0));
            messages.extend(js);
        }
        (st, messages, gc_events)
    })
    .await
    .unwrap();
    let frames = reader.await.unwrap();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["type"], "batch");
        assert_eq!(f["seq"], i as u64 + 1);
        assert_eq!(f["interval_ms"], 100);
    }
    assert_eq!(
        frames
            .iter()
            .map(|f| f["datagrams"].as_u64().unwrap())
            .sum::<u64>(),
        datagrams
    );
    let last = frames.last().unwrap();
    assert_eq!(last["decode_errors"], st.decode_errors);
    assert_eq!(last["seq_gaps"], st.seq_gaps);
    // Verbatim messages, by kind, in arrival order.
    let of_type = |t: &str| -> Vec<Value> {
        messages
            .iter()
            .map(|m| serde_json::from_str::<Value>(m).unwrap())
            .filter(|m| m["type"] == t)
            .collect()
    };
    let in_frames = |key: &str| -> Vec<Value> {
        frames
            .iter()
            .flat_map(|f| f[key].as_array().unwrap().clone())
            .collect()
    };
    let samples = of_type("sample");
    assert!(samples.len() > 100, "{} samples", samples.len());
    // Histograms travel as pairs of their non-zero buckets: expanded, the
    // samples are the per-datagram messages.
    assert!(frames.iter().all(|f| f["histograms"] == "pairs"));
    let mut pairs = 0;
    let expanded: Vec<Value> = in_frames("samples")
        .into_iter()
        .map(|mut m| {
            for (k, v) in m["fields"].as_object_mut().unwrap() {
                if k.ends_with("_buckets") {
                    let p = v.as_array().unwrap();
                    assert!(p.len() % 2 == 0 && p.len() < 130, "{k}: {p:?}");
                    pairs += p.len() / 2;
                    let mut dense = vec![0u64; wire::histogram::BUCKETS];
                    for c in p.chunks(2) {
                        assert_ne!(c[1], 0, "{k}: a zero bucket sent");
                        dense[c[0].as_u64().unwrap() as usize] = c[1].as_u64().unwrap();
                    }
                    *v = dense.into();
                }
            }
            m
        })
        .collect();
    assert!(pairs > 100, "{pairs} non-zero buckets");
    assert_eq!(expanded, samples);
    let snaps = of_type("gc_snapshot");
    assert!(!snaps.is_empty());
    assert_eq!(in_frames("gc_snapshots"), snaps);
    let life = of_type("lifecycle");
    assert!(!life.is_empty());
    assert_eq!(in_frames("lifecycle"), life);
    // GC aggregates add up to the events, per (pid, interpreter, second).
    assert!(gc_events.len() > 100, "{} GC events", gc_events.len());
    let mut want: IndexMap<AggKey, Agg> = IndexMap::new();
    for (pid, interp, s) in &gc_events {
        let start = s.f64(id::GC_EVENT_START_STAMP).unwrap();
        let dur = s.f64(id::GC_EVENT_DURATION).unwrap();
        let gen = s.u64(id::GC_EVENT_GENERATION).unwrap() as usize;
        let e = want
            .entry((u64::from(*pid), interp.clone(), start.floor() as i64))
            .or_insert_with(|| (vec![0; 3], 0.0, 0.0, 0, vec![0; 65]));
        e.0[gen.min(2)] += 1;
        e.1 += dur;
        e.2 = e.2.max(dur);
        e.3 += s.u64(id::GC_EVENT_COLLECTED).unwrap();
        e.4[wire::histogram::bucket_index(dur * 64.0)] += 1;
    }
    let mut got: IndexMap<AggKey, Agg> = IndexMap::new();
    for a in in_frames("gc") {
        let key = (
            a["pid"].as_u64().unwrap(),
            a["interpreter"].as_str().unwrap().to_string(),
            a["sec"].as_i64().unwrap(),
        );
        let e = got
            .entry(key)
            .or_insert_with(|| (vec![0; 3], 0.0, 0.0, 0, vec![0; 65]));
        for g in 0..3 {
            e.0[g] += a["n"][g].as_u64().unwrap();
        }
        e.1 += a["time"].as_f64().unwrap();
        e.2 = e.2.max(a["max"].as_f64().unwrap());
        e.3 += a["collected"].as_u64().unwrap();
        let p = a["pauses"].as_array().unwrap();
        for pair in p.chunks(2) {
            e.4[pair[0].as_u64().unwrap() as usize] += pair[1].as_u64().unwrap();
        }
    }
    assert_eq!(got.len(), want.len());
    for (k, w) in &want {
        let g = &got[k];
        assert_eq!((&g.0, g.3, &g.4), (&w.0, w.3, &w.4), "{k:?}");
        assert!((g.1 - w.1).abs() <= 1e-9 * w.1.max(1.0), "{k:?} time");
        assert_eq!(g.2, w.2, "{k:?} max");
    }
    // Timeline events: each series' kept + omitted are its events.
    let mut per_series: IndexMap<(u64, String), u64> = IndexMap::new();
    for (pid, interp, _) in &gc_events {
        *per_series
            .entry((u64::from(*pid), interp.clone()))
            .or_default() += 1;
    }
    let mut told: IndexMap<(u64, String), u64> = IndexMap::new();
    for e in in_frames("gc_events") {
        let n = e["t"].as_array().unwrap().len();
        assert_eq!(e["d"].as_array().unwrap().len(), n);
        assert_eq!(e["g"].as_array().unwrap().len(), n);
        assert!(n >= 1);
        if e["omitted"].as_u64().unwrap() > 0 {
            assert!(e["cut"].is_number());
        }
        *told
            .entry((
                e["pid"].as_u64().unwrap(),
                e["interpreter"].as_str().unwrap().into(),
            ))
            .or_default() += n as u64 + e["omitted"].as_u64().unwrap();
    }
    assert_eq!(told, per_series);
    // Slow requests: the newest entry of each key the stream told.
    let mut newest: IndexMap<String, Value> = IndexMap::new();
    for m in of_type("slow_request") {
        newest.insert(m["key"].to_string(), m["entry"].clone());
    }
    assert!(!newest.is_empty());
    let mut from_frames: IndexMap<String, Value> = IndexMap::new();
    for s in in_frames("slow_requests") {
        from_frames.insert(s["key"].to_string(), s["entry"].clone());
    }
    assert_eq!(from_frames.len(), newest.len());
    for (k, v) in &newest {
        assert_eq!(&from_frames[k], v, "slow key {k}");
    }
}

/// A client joining mid-frame gets the `seq` of the first frame holding
/// only datagrams after its snapshot; the ones before went out in an
/// earlier frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_client_starts_after_the_pending_frame() {
    let batches = Arc::new(Batches::default());
    // A long interval: only the join cuts the frame.
    let (mut rx1, first) = batches.subscribe(Duration::from_millis(5_000));
    assert_eq!(first, 1);
    let mut st = State::new(Limits::default());
    let now = Instant::now();
    let corpus = testkit::corpus_capture();
    let mut records = wire::capture::records(&corpus).map(|r| r.unwrap());
    for d in records.by_ref().take(10) {
        let u = st.ingest(d, now);
        batches.feed(&st, &u, None);
    }
    let (mut rx2, second) = batches.subscribe(Duration::from_millis(5_000));
    assert_eq!(second, 2);
    let f1: Value = serde_json::from_str(&rx1.recv().await.unwrap()).unwrap();
    assert_eq!(
        (f1["seq"].as_u64(), f1["datagrams"].as_u64()),
        (Some(1), Some(10))
    );
    // The second client is told the same frame, and skips it by its seq.
    let f1b: Value = serde_json::from_str(&rx2.recv().await.unwrap()).unwrap();
    assert_eq!(f1b["seq"], 1);
    assert!(batches.active());
    drop((rx1, rx2));
}
