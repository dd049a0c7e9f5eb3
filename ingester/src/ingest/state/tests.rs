//! Unit tests of the model as a whole (ingest, bounds, eviction, sequence
//! accounting); the parts have their own next to them.

use super::*;
use packed::pack_ref;
use wire::{Header, Value};

/// The index answers as `SampleRef` does and packs the same bytes, for
/// every corpus datagram, one with duplicated ids and one too long to
/// index.
#[test]
fn indexed_view_reads_as_the_sample_ref() {
    let mut datagrams = testkit::corpus_records();
    let header = Header::new(Kind::REQUEST, 1, 2, 3.5);
    let dup = Sample {
        header,
        fields: vec![
            (7, Value::U64(1)),
            (9, Value::Bytes(b"a".to_vec())),
            (7, Value::F64(2.5)),
            (600, Value::I64(-3)),
            (600, Value::U64(4)),
        ],
    };
    let long = Sample {
        header,
        fields: (0..Indexed::CAP as u16 + 6)
            .map(|i| (i, Value::U64(i as u64)))
            .collect(),
    };
    datagrams.push(dup.encode().unwrap());
    datagrams.push(long.encode().unwrap());
    for d in &datagrams {
        let r = wire::decode_ref(d).unwrap();
        let ix = Indexed::new(r);
        for fid in (0..700).chain(r.fields().map(|(i, _)| i)) {
            assert_eq!(ix.get(fid), r.get(fid), "field {fid}");
        }
        assert_eq!(View::pack(&ix), pack_ref(&r));
    }
    let r = wire::decode_ref(datagrams.last().unwrap()).unwrap();
    assert!(Indexed::new(r).n.is_none());
    let r = wire::decode_ref(&datagrams[datagrams.len() - 2]).unwrap();
    assert!(r.has_duplicates() && Indexed::new(r).n == Some(3));
}

/// A datagram of `kind` from pid 7, padded with an unknown field to
/// about `size` bytes (kept, as every unknown field is).
fn padded(kind: Kind, seq: u32, stamp: f64, interp: &str, size: usize) -> Vec<u8> {
    let mut fields = vec![(id::REQUEST_COUNT, Value::U64(u64::from(seq)))];
    if !interp.is_empty() {
        fields.push((id::INTERPRETER_NAME, Value::Bytes(interp.into())));
    }
    let mut d = Sample {
        header: Header::new(kind, 7, seq, stamp),
        fields,
    }
    .encode()
    .unwrap();
    // Beyond what the encoder writes (8 KB): a bytes record appended by
    // hand (id, tag 0x04, u16 length, body; the header counts nothing).
    d.extend_from_slice(&999u16.to_le_bytes());
    d.push(0x04);
    d.extend_from_slice(&(size as u16).to_le_bytes());
    d.resize(d.len() + size, b'x');
    d
}

/// Datagrams far larger than any reporter sends, of every stored kind,
/// interleaved: the history never exceeds the byte budget, the running
/// count always equals a recount, the newest record of the kind that
/// arrived is always kept, and ordinary records (a small GC event)
/// still get in.
#[test]
fn history_is_held_to_the_byte_budget() {
    let budget = 300_000;
    let mut st = State::new(Limits {
        bytes_per_process: budget,
        ..Limits::default()
    });
    let t = Instant::now();
    let mut seq = 0;
    let mut send = |st: &mut State, kind, stamp, interp: &str, size| {
        seq += 1;
        st.ingest_quiet(&padded(kind, seq, stamp, interp, size), t);
        let p = &st.processes[&7];
        assert_eq!(p.history_bytes(), p.history_bytes_recounted());
        assert!(p.history_bytes() <= budget, "{} bytes", p.history_bytes());
        seq
    };
    for round in 0..400u32 {
        let stamp = 1000.0 + f64::from(round);
        let size = 20_000 + (round as usize % 7) * 5_000;
        let s = send(&mut st, Kind::REQUEST, stamp, "", size);
        let newest = st.processes[&7].samples.back().map(packed::unpack);
        assert_eq!(newest.unwrap().header.seq, s);
        let interp = ["", "a", "b"][round as usize % 3];
        send(&mut st, Kind::GC_SNAPSHOT, stamp, interp, 9_000);
        let size = if round % 2 == 0 { 60_000 } else { 40 };
        let s = send(&mut st, Kind::GC_EVENT, stamp, "", size);
        let newest = st.processes[&7].gc_events.back();
        assert_eq!(
            newest.map(|g| packed::unpack(&g.packed).header.seq),
            Some(s)
        );
    }
    let p = &st.processes[&7];
    assert!(p.evicted_for_bytes > 0);
    assert!(!p.samples.is_empty() && !p.gc_events.is_empty());
    assert_eq!(p.gc_snapshots.len(), 3);
    assert_eq!(
        st.heap_bytes(),
        std::mem::size_of::<Process>() + p.history_bytes()
    );
}

/// Real traffic is held by the count limits alone, far inside the
/// byte budget, with the running count equal to a recount.
#[test]
fn ordinary_traffic_stays_far_inside_the_byte_budget() {
    let mut st = State::new(Limits::default());
    let t = Instant::now();
    for d in testkit::corpus_records() {
        st.ingest_quiet(&d, t);
    }
    assert!(st.processes.len() > 1);
    for p in st.processes.values() {
        assert_eq!(p.evicted_for_bytes, 0, "pid {}", p.pid);
        assert_eq!(p.history_bytes(), p.history_bytes_recounted());
        assert!(
            p.history_bytes() < Limits::default().bytes_per_process / 4,
            "pid {}: {} bytes",
            p.pid,
            p.history_bytes()
        );
    }
}

/// A slow-request record of `pid`, worker slot `thread`, `state` (0
/// active, 1 completed).
fn slow_datagram(pid: u32, seq: u32, thread: u64, state: u64) -> Vec<u8> {
    Sample {
        header: Header::new(Kind::SLOW_REQUEST, pid, seq, 1000.0),
        fields: vec![
            (id::SLOW_RECORD_STATE, Value::U64(state)),
            (id::SLOW_START_STAMP, Value::F64(999.0)),
            (id::SLOW_THREAD_ID, Value::U64(thread)),
        ],
    }
    .encode()
    .unwrap()
}

/// 50,000 slow records with the table full (10,000): 10,000 active
/// entries held ahead of the completed ones, then 40,000 completed
/// records, each evicting the oldest completed entry. Finding it must
/// not walk the active entries (a scan per record took 18 s in a debug
/// build): the table counts the entries its walks visit, and the 40,000
/// evictions visit none.
#[test]
fn slow_eviction_does_not_walk_the_held_records() {
    let mut st = State::new(Limits::default());
    let cap = st.limits.slow_entries as u32;
    let t = Instant::now();
    for i in 0..cap {
        // 100 pids, 100 active records each
        st.ingest_quiet(&slow_datagram(10_000 + i % 100, i + 1, u64::from(i), 0), t);
    }
    assert_eq!(st.slow.len(), cap as usize);
    let walked = st.slow.walked.get();
    for i in 0..40_000u32 {
        let pid = 20_000 + i % 100;
        st.ingest_quiet(&slow_datagram(pid, i + 1, u64::from(i), 1), t);
    }
    assert_eq!(
        st.slow.walked.get() - walked,
        0,
        "evictions walked the table"
    );
    assert_eq!(st.slow.len(), cap as usize);
    assert_eq!(st.slow_evicted, 40_000);
    // The active entries were all kept (a walk, which the count sees).
    assert_eq!(
        st.slow.values().filter(|e| e.state == 0).count(),
        cap as usize
    );
    assert_eq!(st.slow.walked.get() - walked, u64::from(cap));
}

/// A forged seq far ahead (2^31 after 1) or far behind is taken as a
/// reset, counted apart, and adds nothing to the gaps; ordinary gaps,
/// late datagrams and a restart at 1 count as before.
#[test]
fn implausible_sequence_jumps_are_not_counted_as_losses() {
    let mut st = State::new(Limits::default());
    let t = Instant::now();
    let send = |st: &mut State, seq: u32| {
        let d = Header::new(Kind::PROCESS, 9, seq, 1.0).to_bytes();
        st.ingest_quiet(&d, t);
    };
    send(&mut st, 1);
    send(&mut st, 1 << 31);
    assert_eq!((st.seq_gaps, st.seq_resets), (0, 1));
    send(&mut st, (1 << 31) + 3); // two lost: a real gap
    assert_eq!((st.seq_gaps, st.seq_resets), (2, 1));
    send(&mut st, (1 << 31) + 2); // late
    send(&mut st, 5); // far behind, not 1
    assert_eq!((st.seq_gaps, st.seq_resets), (2, 2));
    send(&mut st, 5 + (1 << 20)); // 2^20 ahead: still plausible
    let gaps = 2 + (1 << 20) - 1;
    assert_eq!((st.seq_gaps, st.seq_resets), (gaps, 2));
    send(&mut st, 1); // a new reporter with this pid
    send(&mut st, 2);
    assert_eq!((st.seq_gaps, st.seq_resets), (gaps, 2));
    assert_eq!(st.processes[&9].seq_resets, 2);
    assert_eq!(st.processes[&9].drops, gaps);
}

/// A datagram whose version byte is not 1 is a decode error of its own
/// reason and changes nothing else.
#[test]
fn unknown_wire_versions_are_refused() {
    let mut st = State::new(Limits::default());
    let t = Instant::now();
    let mut d = Sample {
        header: Header::new(Kind::REQUEST, 11, 1, 1.0),
        fields: vec![(id::REQUEST_COUNT, Value::U64(1))],
    }
    .encode()
    .unwrap();
    d[4] = 2;
    st.ingest_quiet(&d, t);
    assert_eq!((st.decode_errors, st.unsupported_version), (1, 1));
    assert!(st.processes.is_empty());
    assert!(st
        .last_decode_error
        .as_deref()
        .unwrap()
        .contains("unsupported wire version 2"));
    d[4] = 1;
    st.ingest_quiet(&d, t);
    assert_eq!((st.decode_errors, st.unsupported_version), (1, 1));
    assert_eq!(st.processes.len(), 1);
}

/// Past the process bound, datagrams of new pids are refused and
/// counted; tracked processes keep taking samples; a place frees when
/// one goes stale.
#[test]
fn processes_are_bounded() {
    let mut st = State::new(Limits {
        max_processes: 3,
        stale_after: Duration::from_secs(10),
        ..Limits::default()
    });
    let t = Instant::now();
    let req = |pid: u32, seq: u32| Header::new(Kind::REQUEST, pid, seq, 1.0).to_bytes();
    for pid in 1..=5 {
        st.ingest_quiet(&req(pid, 1), t);
    }
    st.ingest_quiet(&slow_datagram(6, 1, 1, 0), t);
    st.ingest_quiet(&padded(Kind::GC_EVENT, 1, 1.0, "", 10), t); // pid 7
    assert_eq!(st.processes.keys().copied().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(st.processes_refused, 4);
    st.ingest_quiet(&req(2, 2), t);
    assert_eq!(st.processes[&2].samples.len(), 2);
    // pid 1 goes stale, pid 2 and 3 stay: pid 4 gets the place.
    let later = t + Duration::from_secs(11);
    st.ingest_quiet(&req(2, 3), later);
    st.ingest_quiet(&req(3, 2), later);
    st.expire(later);
    st.ingest_quiet(&req(4, 2), later);
    assert_eq!(st.processes.keys().copied().collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(st.processes_refused, 4);
}

/// Lifecycle events of a pid the process bound refuses are counted as
/// refused and neither stored, counted per group nor kept for the state
/// directory; a tracked pid's events still are.
#[test]
fn lifecycle_events_of_refused_pids_are_not_stored() {
    let mut st = State::new(Limits {
        max_processes: 2,
        ..Limits::default()
    });
    st.keep_events();
    let t = Instant::now();
    let event = |kind: Kind, pid: u32, seq: u32| Header::new(kind, pid, seq, 1.0).to_bytes();
    st.ingest_quiet(&event(Kind::PROCESS_STARTED, 1, 1), t);
    st.ingest_quiet(&event(Kind::PROCESS_STARTED, 2, 1), t);
    assert_eq!((st.lifecycle.len(), st.processes_refused), (2, 0));
    let kept = st.take_kept_events().len();
    for pid in 100..110 {
        st.ingest_quiet(&event(Kind::PROCESS_STARTED, pid, 1), t);
        st.ingest_quiet(&event(Kind::PROCESS_STOPPING, pid, 2), t);
        st.ingest_quiet(&event(Kind::PROCESS_STOPPED, pid, 3), t);
    }
    assert_eq!(st.processes_refused, 30);
    assert_eq!(st.lifecycle.len(), 2, "refused events stored");
    assert!(st.take_kept_events().is_empty(), "refused events kept");
    let starts: u64 = st.groups.values().map(|g| g.starts).sum();
    assert_eq!(starts, 2);
    st.ingest_quiet(&event(Kind::PROCESS_STOPPED, 2, 2), t);
    assert_eq!((st.lifecycle.len(), st.processes_refused), (3, 30));
    assert_eq!(kept, 2);
}

/// Slow-request records of a pid the process bound refuses are counted
/// as refused and neither stored, published, counted as completed nor
/// kept for the state directory; a tracked pid's records still are, and
/// so are those of an untracked pid while the bound has room (a record
/// may arrive before its process's first tick).
#[test]
fn slow_records_of_refused_pids_are_not_stored() {
    let mut st = State::new(Limits {
        max_processes: 2,
        ..Limits::default()
    });
    st.keep_events();
    let t = Instant::now();
    let req = |pid: u32| Header::new(Kind::REQUEST, pid, 1, 1.0).to_bytes();
    st.ingest_quiet(&slow_datagram(9, 1, 1, 1), t);
    assert_eq!((st.slow.len(), st.processes_refused), (1, 0));
    st.ingest_quiet(&req(1), t);
    st.ingest_quiet(&req(2), t);
    let kept = st.take_kept_events().len();
    let completed =
        |st: &State| -> u64 { st.groups.values().map(|g| g.retired.slow_completed).sum() };
    let before = completed(&st);
    for pid in 100..110u32 {
        let u = st.ingest(&slow_datagram(pid, 2, 1, 1), t);
        assert!(matches!(u, Update::Nothing), "pid {pid} published");
        st.ingest_quiet(&slow_datagram(pid, 3, 2, 0), t);
    }
    assert_eq!(st.processes_refused, 20);
    assert_eq!(st.slow.len(), 1, "refused records stored");
    assert!(st.take_kept_events().is_empty(), "refused records kept");
    assert_eq!(completed(&st), before, "refused records counted");
    st.ingest_quiet(&slow_datagram(2, 2, 1, 1), t);
    assert_eq!((st.slow.len(), st.processes_refused), (2, 20));
    assert_eq!((kept, st.take_kept_events().len()), (1, 1));
}

/// Slow records are bounded per process and in all, and forged text
/// longer than a reporter sends is cut as the reporter cuts it.
#[test]
fn slow_records_are_bounded_per_process_and_cut() {
    let mut st = State::new(Limits {
        slow_entries: 50,
        slow_entries_per_process: 10,
        ..Limits::default()
    });
    let t = Instant::now();
    for i in 0..30u32 {
        st.ingest_quiet(&slow_datagram(1, i + 1, u64::from(i), 0), t);
    }
    assert_eq!(st.slow.len_of(1), 10);
    assert_eq!(st.slow_evicted_per_process, 20);
    for pid in 2..=10u32 {
        for i in 0..10u32 {
            st.ingest_quiet(&slow_datagram(pid, i + 1, u64::from(i), 1), t);
        }
    }
    assert_eq!(st.slow.len(), 50);
    assert_eq!(st.slow_evicted, 50);
    // The newest of pid 1 (active) were kept over completed ones.
    assert_eq!(st.slow.len_of(1), 10);
    let long = Sample {
        header: Header::new(Kind::SLOW_REQUEST, 1, 99, 1.0),
        fields: vec![
            (id::SLOW_THREAD_ID, Value::U64(77)),
            (id::SLOW_USER_AGENT, Value::Bytes(vec![b'u'; 3000])),
            (id::SLOW_METHOD, Value::Bytes(b"GET".to_vec())),
        ],
    }
    .encode()
    .unwrap();
    st.ingest_quiet(&long, t);
    let e = st.slow.values().find(|e| e.thread_id == 77).unwrap();
    assert_eq!(e.user_agent.len(), 511);
    assert!(e.user_agent.ends_with("u..."));
    assert_eq!(e.method, "GET");
}

/// Pids that share their low bits still land in different buckets
/// (the table indexes with the low bits of the hash).
#[test]
fn pid_hash_spreads_low_bits() {
    use std::hash::BuildHasher;
    for shift in [0, 8, 12, 16, 20] {
        let buckets: std::collections::HashSet<u64> = (0..1024u32)
            .map(|i| PidHash.hash_one(i << shift) & 1023)
            .collect();
        assert!(
            buckets.len() > 512,
            "pids spaced 2^{shift}: {} buckets",
            buckets.len()
        );
    }
}

/// Kind 10 feeds the application-metrics model, counts its sequence
/// number like every kind, and is never a sample nor a message.
#[test]
fn app_metrics_are_routed_apart_from_samples() {
    use crate::ingest::app_metrics::{test_datagram, Filter};
    use wire::app::{AppMetric, AppValue};
    let counter = |v| AppMetric {
        name: b"orders",
        value: AppValue::Counter(v),
    };
    let t0 = Instant::now();
    let mut st = State::new(Limits::default());
    let tick = |seq| Sample {
        header: Header::new(Kind::REQUEST, 7, seq, 1000.0),
        fields: vec![(id::HOSTNAME, Value::Bytes(b"web1".to_vec()))],
    };
    st.ingest_quiet(&tick(1).encode().unwrap(), t0);
    let u = st.ingest(&test_datagram(7, 2, "web1", "", &[counter(3.0)]), t0);
    assert!(matches!(u, Update::Nothing));
    st.ingest_quiet(&tick(3).encode().unwrap(), t0);
    st.ingest_quiet(&test_datagram(7, 4, "web1", "", &[counter(5.0)]), t0);
    // Seq 5 lost: one gap, not three.
    st.ingest_quiet(&test_datagram(7, 6, "web1", "", &[counter(6.0)]), t0);
    assert_eq!(st.seq_gaps, 1);
    assert_eq!(st.processes[&7].samples.len(), 2);
    assert_eq!(st.app.stats_json(&Filter::default()), r#"{"orders":6}"#);
    // Columns that disagree: counted, skipped, seq still counted.
    let mut bad = test_datagram(7, 7, "web1", "", &[counter(7.0)]);
    let types = bad
        .windows(4)
        .position(|w| w == [0x91, 0x01, 0x04, 0x01])
        .unwrap();
    bad[types + 5] = b'x';
    st.ingest_quiet(&bad, t0);
    assert_eq!(
        (st.decode_errors, st.app_decode_errors, st.seq_gaps),
        (1, 1, 1)
    );
    assert_eq!(st.app.stats_json(&Filter::default()), r#"{"orders":6}"#);
    // The process goes quiet and is expired: its total stays in the sum.
    let later = t0 + st.limits.stale_after + Duration::from_secs(1);
    assert_eq!(st.expire(later), vec![7]);
    // A new process (its STARTED first) on the reused pid starts from 0.
    let started = Sample {
        header: Header::new(Kind::PROCESS_STARTED, 7, 1, 2000.0),
        fields: vec![(id::HOSTNAME, Value::Bytes(b"web1".to_vec()))],
    };
    st.ingest_quiet(&started.encode().unwrap(), later);
    st.ingest_quiet(&test_datagram(7, 2, "web1", "", &[counter(1.0)]), later);
    assert_eq!(st.app.stats_json(&Filter::default()), r#"{"orders":7}"#);
}

/// A process that still ticks keeps its application metrics live however
/// long it sends no kind 10 (it sends only what changed).
#[test]
fn quiet_app_metrics_of_a_ticking_process_stay_live() {
    use crate::ingest::app_metrics::{test_datagram, Filter};
    use wire::app::{AppMetric, AppValue};
    let gauge = AppMetric {
        name: b"depth",
        value: AppValue::Gauge(4.0),
    };
    let t0 = Instant::now();
    let mut st = State::new(Limits::default());
    st.ingest_quiet(&test_datagram(9, 1, "h", "g", &[gauge]), t0);
    let later = t0 + st.limits.stale_after + Duration::from_secs(1);
    let tick = Sample {
        header: Header::new(Kind::REQUEST, 9, 2, 1000.0),
        fields: vec![(id::HOSTNAME, Value::Bytes(b"h".to_vec()))],
    };
    st.ingest_quiet(&tick.encode().unwrap(), later);
    assert!(st.expire(later).is_empty());
    assert_eq!(st.app.stats_json(&Filter::default()), r#"{"depth":4}"#);
    // Gone for good: its gauge leaves the sum.
    let much_later = later + st.limits.stale_after + Duration::from_secs(1);
    assert_eq!(st.expire(much_later), vec![9]);
    assert_eq!(st.app.stats_json(&Filter::default()), "{}");
}
