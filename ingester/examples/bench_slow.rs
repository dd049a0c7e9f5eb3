//! Slow-request ingest rate with the table full: 10,000 active records
//! held (100 processes × 100 worker slots), then completed records that
//! each evict the oldest completed one, in process (the model alone, no
//! socket). Prints datagrams per second per phase.
//!
//!     cargo run --release -p mod_wsgi-telemetry --example bench_slow -- [COMPLETED]

use mwt_ingester::ingest::state::{Limits, State};
use std::time::Instant;
use wire::{id, Kind, Sample, Value};

/// The corpus's first slow-request record (the capture of
/// `tests/fixtures/corpus/`, or `$TELEMETRY_CORPUS_DIR`).
fn corpus_slow_record() -> Sample {
    let dir = std::env::var_os("TELEMETRY_CORPUS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/corpus")
        });
    let bin = std::fs::read(dir.join("anchor-6.1.1-mixed.bin")).expect("the corpus");
    wire::capture::records(&bin)
        .filter_map(|r| wire::decode(r.ok()?).ok())
        .find(|s| s.header.kind == Kind::SLOW_REQUEST)
        .expect("a slow request in the corpus")
}

/// That record as sent by `pid` for worker slot `thread`, `state` 0
/// (active) or 1 (completed), keyed by its slot (no log id).
fn slow(base: &Sample, pid: u32, seq: u32, thread: u64, state: u64) -> Vec<u8> {
    let mut s = base.clone();
    s.header.pid = pid;
    s.header.seq = seq;
    s.fields.retain(|(f, _)| *f != id::SLOW_LOG_ID);
    for (f, v) in &mut s.fields {
        match *f {
            id::SLOW_THREAD_ID => *v = Value::U64(thread),
            id::SLOW_RECORD_STATE => *v = Value::U64(state),
            _ => {}
        }
    }
    s.encode().expect("encodes")
}

fn main() {
    let completed: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let base = corpus_slow_record();
    let mut st = State::new(Limits::default());
    let held = st.limits.slow_entries as u32;
    let active: Vec<Vec<u8>> = (0..held)
        .map(|i| slow(&base, 10_000 + i % 100, i + 1, u64::from(i), 0))
        .collect();
    let done: Vec<Vec<u8>> = (0..completed)
        .map(|i| slow(&base, 20_000 + i % 100, i + 1, u64::from(i), 1))
        .collect();
    let now = Instant::now();
    let t = Instant::now();
    for d in &active {
        st.ingest_quiet(d, now);
    }
    let fill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for d in &done {
        st.ingest_quiet(d, now);
    }
    let full = t.elapsed().as_secs_f64();
    println!(
        "fill: {held} active records in {:.3} s ({:.0}/s)",
        fill,
        f64::from(held) / fill
    );
    println!(
        "full: {completed} completed records, each evicting, in {:.3} s ({:.0}/s); {} held, {} evicted",
        full,
        f64::from(completed) / full,
        st.slow.len(),
        st.slow_evicted
    );
}
