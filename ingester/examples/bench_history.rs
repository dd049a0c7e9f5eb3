//! The history's costs, in process (the model alone, no socket; the ingest
//! ceiling with and without `--state-dir` is `bench_ingest --state-dir`):
//!
//!     cargo build --release -p mod_wsgi-telemetry --example bench_history
//!     target/release/examples/bench_history MODE [N]
//!
//! - `ingest [DATAGRAMS [on|off|both]]`: REQUEST datagrams of the corpus rewritten for
//!   200 processes in 20 groups on one host, one tick per process per
//!   stamped second, applied with `State::ingest_quiet` (each datagram also
//!   feeds its group's and its host's history), the writer's `advance`
//!   once per stamped second; then the same with the history refusing
//!   every series (off). Nanoseconds per datagram; for instruction counts
//!   run it under callgrind and read the inclusive cost of `ingest_quiet`
//!   and `History::record_cached` (`History::record` before 2026-12-07):
//!
//!       valgrind --tool=callgrind --toggle-collect='*ingest_quiet*' \
//!           target/release/examples/bench_history ingest 40000 on
//!
//! - `disk [DAYS]`: two groups of four processes, DAYS (default 8) stamped
//!   days through the model into a state directory in a temporary
//!   directory, closed points written as `serve`'s writer does (flushed
//!   every stamped second): bytes written per group per day by tier, and
//!   the bytes on disk at the end (every tier full after 7 days).
//! - `memory [GROUPS]`: GROUPS (default 50) groups with every tier full (7
//!   days), points taken from a stamped hour of the corpus ticks: resident
//!   memory before and after, then the time of `GET /api/history`'s answer
//!   for 7 days of one group and of the host, and of the part of it done
//!   under the state lock (`json::extract`, the copy). For instructions:
//!
//!       valgrind --tool=callgrind --toggle-collect='*json::extract*' \
//!           target/release/examples/bench_history memory 1
//!
//!   (and `--toggle-collect='*Answer::to_json*'` for the rest).
//!
//! Asserts nothing about time; prints figures with the load average.

use mwt_ingester::ingest::history::json::{extract, Query};
use mwt_ingester::ingest::history::point::Point;
use mwt_ingester::ingest::history::store::Store;
use mwt_ingester::ingest::history::{History, SeriesKey, DEFAULT_TIERS};
use mwt_ingester::ingest::state::{Limits, State};
use std::sync::Arc;
use std::time::Instant;
use wire::{id, Kind, Sample, Value};

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The corpus's first REQUEST datagram.
fn corpus_request() -> Sample {
    testkit::corpus_records()
        .iter()
        .filter_map(|d| wire::decode(d).ok())
        .find(|s| s.header.kind == Kind::REQUEST)
        .expect("a REQUEST datagram in the corpus")
}

/// Datagrams of `processes` processes in `groups` groups (`g<pid % groups>`
/// on host `web-1`) for one stamped second.
struct Site {
    base: Sample,
    processes: u32,
    groups: u32,
}

impl Site {
    fn second(&self, t: u64) -> Vec<Vec<u8>> {
        (0..self.processes)
            .map(|p| {
                let mut s = self.base.clone();
                s.header.pid = 10_000 + p;
                s.header.seq = t as u32;
                s.header.stamp = t as f64 + 0.25;
                for (f, v) in &mut s.fields {
                    match *f {
                        id::HOSTNAME => *v = Value::Bytes(b"web-1".to_vec()),
                        id::PROCESS_GROUP => {
                            *v = Value::Bytes(format!("g{}", p % self.groups).into_bytes())
                        }
                        _ => {}
                    }
                }
                s.encode().expect("encodes")
            })
            .collect()
    }
}

const T0: u64 = 1_700_000_000;

fn ingest(datagrams: u32, which: &str) {
    let site = Site {
        base: corpus_request(),
        processes: 200,
        groups: 20,
    };
    let seconds = datagrams / site.processes;
    let all: Vec<Vec<Vec<u8>>> = (0..u64::from(seconds))
        .map(|s| site.second(T0 + s))
        .collect();
    let n = f64::from(seconds * site.processes);
    for (label, series) in [("history on", 1000), ("history off", 0)] {
        if !(which == "both" || label.ends_with(which)) {
            continue;
        }
        let mut st = State::new(Limits::default());
        st.history = History::new(&DEFAULT_TIERS, series).expect("valid tiers");
        let now = Instant::now();
        let t = Instant::now();
        for second in &all {
            for d in second {
                st.ingest_quiet(d, now);
            }
            st.history.advance();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "ingest, {label}: {} REQUEST datagrams, {} processes in {} groups: {:.0} ns per datagram \
             (load {})",
            n,
            site.processes,
            site.groups,
            secs * 1e9 / n,
            load()
        );
    }
}

fn disk(days: u64) {
    let site = Site {
        base: corpus_request(),
        processes: 8,
        groups: 2,
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut store, ..) =
        Store::open(dir.path(), &DEFAULT_TIERS, 7 * 86400, u64::MAX).expect("opens");
    let mut st = State::new(Limits::default());
    st.history.set_persist(true);
    let now = Instant::now();
    let started = Instant::now();
    let mut per_tier = [0u64; 3];
    let mut points = [0u64; 3];
    // The same datagrams every second (only the stamp moves): the points'
    // sizes are those of the corpus's latency spread.
    let template = site.second(T0);
    for s in 0..days * 86400 {
        let t = T0 + s;
        for d in &template {
            let mut d = d.clone();
            // The fixed header's seq (bytes 12..16) and stamp (16..24).
            d[12..16].copy_from_slice(&(s as u32 + 1).to_le_bytes());
            d[16..24].copy_from_slice(&(t as f64 + 0.25).to_bits().to_le_bytes());
            st.ingest_quiet(&d, now);
        }
        st.history.advance();
        for (tier, key, start, bytes) in st.history.take_closed() {
            if key.group.is_some() {
                per_tier[tier] += bytes.len() as u64 + 8 + 16;
                points[tier] += 1;
            }
            store.append_point(tier, &key, start, &bytes);
        }
        assert!(
            store.flush(st.history.newest(), false),
            "{:?}",
            store.failing
        );
    }
    let groups = f64::from(site.groups);
    let d = days as f64;
    println!(
        "disk: {days} stamped days, {} groups of {} processes, written in {:.1} s (load {})",
        site.groups,
        site.processes / site.groups,
        started.elapsed().as_secs_f64(),
        load()
    );
    for (tier, t) in DEFAULT_TIERS.iter().enumerate() {
        println!(
            "  tier {tier} ({} s points): {:.0} bytes per group per day, {:.0} bytes per point",
            t.step,
            per_tier[tier] as f64 / groups / d,
            per_tier[tier] as f64 / points[tier].max(1) as f64
        );
    }
    println!(
        "  all tiers and the host series: {:.0} bytes written per group per day ({} bytes in all)",
        store.written_bytes as f64 / groups / d,
        store.written_bytes
    );
    println!(
        "  on disk at the end: {} bytes ({:.0} per group, the host series included)",
        store.disk_bytes(),
        store.disk_bytes() as f64 / groups
    );
}

fn memory(groups: u32) {
    // Real points of every tier: a stamped hour of the corpus ticks.
    let site = Site {
        base: corpus_request(),
        processes: 4,
        groups: 1,
    };
    let mut st = State::new(Limits::default());
    st.history.set_persist(true);
    let now = Instant::now();
    for s in 0..3600 {
        for d in site.second(T0 + s) {
            st.ingest_quiet(&d, now);
        }
        st.history.advance();
    }
    let mut sample: [Option<Vec<u8>>; 3] = Default::default();
    for (tier, key, _, bytes) in st.history.take_closed() {
        if key.group.is_some() {
            sample[tier] = Some(bytes.to_vec());
        }
    }
    let sample: Vec<Point> = sample
        .iter()
        .map(|b| Point::decode(b.as_deref().expect("a point of every tier")).expect("decodes"))
        .collect();
    drop(st);
    let before = rss_kib();
    let t = Instant::now();
    let mut h = History::new(&DEFAULT_TIERS, 10_000).expect("valid tiers");
    let newest = T0 + 30 * 86400;
    let mut loaded = 0u64;
    for g in 0..=groups {
        // The host's series (g == groups) holds as much as a group's.
        let key = SeriesKey {
            host: Arc::from("web-1"),
            group: (g < groups).then(|| Arc::from(format!("group-{g}"))),
        };
        for (tier, tr) in DEFAULT_TIERS.iter().enumerate().rev() {
            for i in 0..tr.retention / tr.step {
                let start = newest - tr.retention + i * tr.step;
                h.load(tier, key.clone(), start, sample[tier].clone());
                loaded += 1;
            }
        }
    }
    let fill = t.elapsed().as_secs_f64();
    let after = rss_kib();
    println!(
        "memory: {groups} groups and their host, 7 days in every tier ({loaded} points, loaded in {fill:.1} s): \
         resident {:.1} MB more ({:.2} MB per series; load {})",
        (after - before) as f64 / 1024.0,
        (after - before) as f64 / 1024.0 / f64::from(groups + 1),
        load()
    );
    // A group that exists whatever the count (group-7 does not below 8).
    let one = format!("group-{}", groups.saturating_sub(1) / 2);
    for (label, group) in [("one group", Some(one.as_str())), ("the host", None)] {
        let q = Query {
            group: group.map(String::from),
            range: Some(7 * 86400),
            ..Query::default()
        };
        let (mut locked, mut times) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for _ in 0..15 {
            let t = Instant::now();
            let found = extract(&h, &q);
            locked.push(t.elapsed().as_secs_f64() * 1e3);
            bytes = found.to_json().to_string().len();
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        locked.sort_by(f64::total_cmp);
        times.sort_by(f64::total_cmp);
        println!(
            "  /api/history?range=7d for {label}: median {:.2} ms, max {:.2} ms over 15, of which under the state lock (the copy) median {:.3} ms ({bytes} bytes; load {})",
            times[times.len() / 2],
            times[times.len() - 1],
            locked[locked.len() / 2],
            load()
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "ingest".into());
    let n = |a: Option<String>, default: u64| a.and_then(|v| v.parse().ok()).unwrap_or(default);
    match mode.as_str() {
        "ingest" => {
            let count = n(args.next(), 200_000) as u32;
            ingest(count, &args.next().unwrap_or_else(|| "both".into()))
        }
        "disk" => disk(n(args.next(), 8)),
        "memory" => memory(n(args.next(), 50) as u32),
        other => {
            eprintln!("bench_history: unknown mode {other:?} (ingest, disk, memory)");
            std::process::exit(2);
        }
    }
}
