//! The simulated stream decodes and follows the emission rules.

use super::model::SLOW_THRESHOLD;
use super::*;
use std::collections::HashMap;
use wire::{id, Kind};

fn args(n: u32) -> SimulateArgs {
    SimulateArgs {
        target: PathBuf::from("/nonexistent"),
        processes: n,
        interval: 1.0,
        duration: 0.0,
        start: None,
        speed: 1.0,
        seed: Some(7),
        no_gc: false,
        load: 0.2,
        restart_probability: 0.05,
        first_pid: 100000,
    }
}

/// Ten minutes of a 6-process site, every datagram decoded.
fn run_sim(n: u32, ticks: usize) -> Vec<wire::Sample> {
    let mut sim = Simulator::new(&args(n));
    let mut all = Vec::new();
    for k in 0..ticks {
        for d in sim.tick(1_800_000_000.0 + k as f64) {
            assert!(d.len() <= wire::MAX_DATAGRAM);
            all.push(wire::decode(&d).expect("decodes"));
        }
    }
    all
}

#[test]
fn stream_has_every_kind_and_shape() {
    let all = run_sim(6, 300);
    let mut kinds: HashMap<u8, usize> = HashMap::new();
    for s in &all {
        *kinds.entry(s.header.kind.0).or_default() += 1;
    }
    for k in [2u8, 4, 5, 6, 7, 8, 9] {
        assert!(
            kinds.get(&k).copied().unwrap_or(0) > 0,
            "kind {k}: {kinds:?}"
        );
    }
    let groups: std::collections::BTreeSet<String> = all
        .iter()
        .filter(|s| s.header.kind == Kind::REQUEST)
        .map(|s| {
            s.text(id::PROCESS_GROUP)
                .map(|c| c.into_owned())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        groups.into_iter().collect::<Vec<_>>(),
        vec!["".to_string(), "app".into(), "reports".into()]
    );
    // Daemon ticks with requests carry queue/daemon; embedded never.
    for s in all.iter().filter(|s| s.header.kind == Kind::REQUEST) {
        let daemon = s.get(id::PROCESS_GROUP).is_some();
        if !daemon {
            assert!(s.get(id::QUEUE_TIME).is_none());
        } else if s.u64(id::REQUEST_COUNT).unwrap() > 0 {
            assert!(s.get(id::QUEUE_TIME_BUCKETS).is_some());
        }
        let total: u64 = (0..5)
            .map(|k| s.u64(id::STATUS_1XX_TOTAL + k).unwrap())
            .sum();
        assert_eq!(total, s.u64(id::REQUEST_COUNT).unwrap());
    }
    // Embedded GC datagrams of the sub-interpreter carry its name.
    assert!(all
        .iter()
        .any(|s| s.header.kind == Kind::GC_SNAPSHOT && s.get(id::INTERPRETER_NAME).is_some()));
}

#[test]
fn seq_is_per_process_from_one_and_lifecycle_is_ordered() {
    let all = run_sim(4, 300);
    let mut last: HashMap<u32, u32> = HashMap::new();
    let mut stopped: HashMap<u32, bool> = HashMap::new();
    for s in &all {
        let h = s.header;
        let prev = last.insert(h.pid, h.seq);
        match prev {
            None => {
                assert_eq!(h.seq, 1, "pid {} starts at 1", h.pid);
                assert_eq!(h.kind, Kind::PROCESS_STARTED);
            }
            Some(p) => assert_eq!(h.seq, p + 1, "pid {}", h.pid),
        }
        assert!(
            !stopped.get(&h.pid).copied().unwrap_or(false),
            "after STOPPED"
        );
        if h.kind == Kind::PROCESS_STOPPED {
            stopped.insert(h.pid, true);
        }
    }
    assert!(stopped.len() >= 2, "restarts happen: {}", stopped.len());
}

#[test]
fn slow_requests_go_active_then_complete() {
    let all = run_sim(4, 300);
    let mut active: HashMap<String, usize> = HashMap::new();
    let mut completed = 0;
    for s in all.iter().filter(|s| s.header.kind == Kind::SLOW_REQUEST) {
        let log = s.text(id::SLOW_LOG_ID).unwrap().into_owned();
        match s.u64(id::SLOW_RECORD_STATE).unwrap() {
            0 => {
                assert!(s.f64(id::SLOW_DURATION).unwrap() >= SLOW_THRESHOLD);
                *active.entry(log).or_default() += 1;
            }
            _ => {
                completed += 1;
                assert!(s.u64(id::SLOW_STATUS).unwrap() >= 200);
            }
        }
    }
    assert!(completed > 5, "{completed}");
    assert!(active.values().any(|n| *n >= 2), "heartbeats repeat");
}
