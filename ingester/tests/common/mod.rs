//! The ingester's integration tests' own helpers (`mod common;`), on top of
//! the workspace's test kit (re-exported here: free ports, deadline waits,
//! the corpus, `serve` ours and the reference's, logs): the path of the
//! binary Cargo built for these tests, this crate's fixtures, `replay` of
//! the corpus, and datagrams of a busy daemon process.
//!
//! Every process started here is killed by its pid when its guard drops.

#![allow(dead_code)]

pub use testkit::*;

pub mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `mod_wsgi-telemetry` binary under test: the one Cargo built for
/// these tests, or `$MWT_TEST_BIN` (a release build, say, to rerun the
/// hostile-input tests and `probes.rs` against it).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("MWT_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_mod_wsgi-telemetry").to_string())
    })
}

/// A file of this crate's `tests/fixtures`.
pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `replay` with `args` to its end; returns its stdout (the summary).
pub fn run_replay(args: &[&str]) -> String {
    run_ok(
        Command::new(bin()).arg("replay").args(args),
        &format!("replay {args:?}"),
    )
}

/// The arguments of a `replay` of the corpus into `sock`, `extra` before
/// the capture's path.
fn replay_corpus_args(sock: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--socket".to_string(), listen(sock)];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push(corpus_path().display().to_string());
    args
}

/// `replay` of the corpus into `sock` with extra arguments, to its end.
pub fn replay_corpus(sock: &Path, extra: &[&str]) -> String {
    let args = replay_corpus_args(sock, extra);
    run_replay(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `replay` of the corpus into `sock` in the background, killed by pid
/// when the guard drops.
pub fn replay_corpus_spawn(sock: &Path, extra: &[&str]) -> KillTree {
    let child = Command::new(bin())
        .arg("replay")
        .args(replay_corpus_args(sock, extra))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn replay");
    KillTree(child, "replay")
}

// Datagrams of a busy daemon process, for `/metrics` tests and benchmarks.

fn text(v: &str) -> wire::Value {
    wire::Value::Bytes(v.as_bytes().to_vec())
}

/// A REQUEST datagram of `pid` (host `web1`, group `g<pid % 4>`): 80
/// requests (70 × 2xx, 5 × 3xx, 4 × 4xx, 1 × 5xx), all five phase
/// histograms filled, 8 threads 40 % busy.
pub fn tick(pid: u32, seq: u32) -> Vec<u8> {
    let group = format!("g{}", pid % 4);
    let mut buckets = vec![0i32; wire::histogram::BUCKETS];
    for (i, b) in buckets.iter_mut().enumerate().take(40) {
        *b = (i % 5) as i32;
    }
    let mut f = vec![
        (wire::id::HOSTNAME, text("web1")),
        (wire::id::PROCESS_GROUP, text(&group)),
        (wire::id::SAMPLE_PERIOD, wire::Value::F64(1.0)),
        (wire::id::REQUEST_COUNT, wire::Value::U64(80)),
        (wire::id::CAPACITY_UTILIZATION, wire::Value::F64(0.4)),
        (wire::id::CPU_USER_UTILIZATION, wire::Value::F64(0.2)),
        (wire::id::CPU_SYSTEM_UTILIZATION, wire::Value::F64(0.05)),
        (wire::id::MEMORY_RSS, wire::Value::U64(80 << 20)),
        (wire::id::REQUEST_THREADS_MAXIMUM, wire::Value::U64(8)),
        (wire::id::INPUT_BYTES_TOTAL, wire::Value::U64(4096)),
        (wire::id::OUTPUT_BYTES_TOTAL, wire::Value::U64(65536)),
    ];
    for fid in [
        wire::id::SERVER_TIME,
        wire::id::QUEUE_TIME,
        wire::id::DAEMON_TIME,
        wire::id::APPLICATION_TIME,
        wire::id::REQUEST_TIME,
    ] {
        f.push((fid, wire::Value::F64(0.01)));
        f.push((fid + 30, wire::Value::I32Array(buckets.clone())));
    }
    for (k, n) in [0, 70, 5, 4, 1].into_iter().enumerate() {
        f.push((wire::id::STATUS_1XX_TOTAL + k as u16, wire::Value::U64(n)));
    }
    wire::Sample {
        header: wire::Header::new(wire::Kind::REQUEST, pid, seq, 1000.0 + f64::from(seq)),
        fields: f,
    }
    .encode()
    .unwrap()
}

/// PROCESS_STARTED, five [`tick`]s and a GC snapshot of `pid`.
pub fn datagrams(pid: u32) -> Vec<Vec<u8>> {
    let group = format!("g{}", pid % 4);
    let started = wire::Sample {
        header: wire::Header::new(wire::Kind::PROCESS_STARTED, pid, 1, 1000.0),
        fields: vec![
            (wire::id::HOSTNAME, text("web1")),
            (wire::id::PROCESS_GROUP, text(&group)),
        ],
    };
    let mut out = vec![started.encode().unwrap()];
    for seq in 2..7 {
        out.push(tick(pid, seq));
    }
    let gc = wire::Sample {
        header: wire::Header::new(wire::Kind::GC_SNAPSHOT, pid, 7, 1007.0),
        fields: (0..18)
            .map(|k| (wire::id::GC_COUNT0 + k, wire::Value::U64(9)))
            .collect(),
    };
    out.push(gc.encode().unwrap());
    out
}

// The applications' own metrics (kind 10), for the app-metrics tests.

use wire::app::{AppMetric, AppMetricsHead, AppValue};

/// One `app_metrics` datagram (counter `orders`, gauge `queue.depth`,
/// distribution `latency.{0}` of `latency`) of `pid` in group `g<pid % 4>` on `web1`.
pub fn app_datagram(pid: u32, seq: u32, orders: f64, depth: f64, latency: &[f64]) -> Vec<u8> {
    let group = format!("g{}", pid % 4);
    let t = DistTotals::of(latency);
    let metrics = [
        AppMetric {
            name: b"orders",
            value: AppValue::Counter(orders),
        },
        AppMetric {
            name: b"queue.depth",
            value: AppValue::Gauge(depth),
        },
        t.metric("latency.{0}"),
    ];
    let head = AppMetricsHead {
        hostname: b"web1",
        process_group: group.as_bytes(),
        dropped_calls: 0,
    };
    let mut buf = [0u8; wire::MAX_DATAGRAM];
    let n =
        wire::app::encode(&mut buf, pid, seq, 1000.0 + f64::from(seq), &head, &metrics).unwrap();
    buf[..n].to_vec()
}

/// PROCESS_STARTED of `pid` (host `web1`, group `g<pid % 4>`).
pub fn started(pid: u32, seq: u32) -> Vec<u8> {
    lifecycle(wire::Kind::PROCESS_STARTED, pid, seq)
}

/// PROCESS_STOPPED of `pid` (host `web1`, group `g<pid % 4>`).
pub fn stopped(pid: u32, seq: u32) -> Vec<u8> {
    lifecycle(wire::Kind::PROCESS_STOPPED, pid, seq)
}

fn lifecycle(kind: wire::Kind, pid: u32, seq: u32) -> Vec<u8> {
    let group = format!("g{}", pid % 4);
    wire::Sample {
        header: wire::Header::new(kind, pid, seq, 1000.0),
        fields: vec![
            (wire::id::HOSTNAME, wire::Value::Bytes(b"web1".to_vec())),
            (
                wire::id::PROCESS_GROUP,
                wire::Value::Bytes(group.into_bytes()),
            ),
        ],
    }
    .encode()
    .unwrap()
}
