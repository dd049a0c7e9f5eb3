//! Micro-benchmark of the application-metrics table (`src/app_metrics.rs`):
//! one `incr` and one `record` on a known name, from 1 thread and from 8
//! threads calling at once (all on the same few names, the worst case for
//! the atomics) while a reporter drains every millisecond; with the sums
//! checked at the end. Prints ns per call; asserts nothing about time. Run:
//!   cargo bench -p reporter-core --bench app_metrics
//! (The C ABI call from Python through ctypes comes on top of this.)

use reporter_core::app_metrics::{AppMetrics, Emit, Status};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const THREADS: usize = 8;
const NAMES: [&[u8]; 4] = [
    b"orders.placed",
    b"cache.hits",
    b"db.{0}",
    b"http.client.{0}",
];

/// `op` called `n` times on each of `threads` threads, with a reporter
/// draining every millisecond; returns (ns per call per thread, wall ns per
/// call). With more threads than cores, only the wall figure means much.
fn run(m: &Arc<AppMetrics>, threads: usize, n: u64, op: fn(&AppMetrics, u64)) -> (f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let rep = {
        let (m, stop) = (m.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut scratch = Vec::with_capacity(64);
            let mut buf = [0u8; wire::MAX_DATAGRAM];
            let mut datagrams = 0u64;
            while !stop.load(Ordering::Relaxed) {
                m.drain(
                    false,
                    &mut scratch,
                    &mut buf,
                    Emit {
                        pid: 1,
                        seq: || 1,
                        stamp: 0.0,
                        hostname: b"web1",
                        process_group: b"app",
                        send: |d: &[u8]| {
                            black_box(d);
                            datagrams += 1;
                            true
                        },
                    },
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            datagrams
        })
    };
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for k in 0..n {
                    op(&m, k);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let wall = t.elapsed().as_nanos() as f64;
    stop.store(true, Ordering::Relaxed);
    black_box(rep.join().unwrap());
    let calls = (threads as u64 * n) as f64;
    (wall * threads as f64 / calls, wall / calls)
}

fn incr(m: &AppMetrics, k: u64) {
    let st = m.incr(NAMES[(k & 1) as usize], 1.0);
    debug_assert_eq!(st, Status::Ok);
    black_box(st);
}

fn record(m: &AppMetrics, k: u64) {
    let st = m.record(NAMES[2 + (k & 1) as usize], (k % 1000) as f64 * 1e-4);
    black_box(st);
}

fn main() {
    const N: u64 = 1_000_000;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // Yardstick: one bare atomic add, same loop.
    let bare = std::sync::atomic::AtomicU64::new(0);
    let t = Instant::now();
    for k in 0..N {
        bare.fetch_add(black_box(k) & 1, Ordering::Relaxed);
    }
    let atomic = t.elapsed().as_nanos() as f64 / N as f64;
    println!("one bare atomic add: {atomic:.1} ns");
    for (what, op) in [("incr", incr as fn(&AppMetrics, u64)), ("record", record)] {
        let one = Arc::new(AppMetrics::new(256));
        let (single, _) = run(&one, 1, N, op);
        let many = Arc::new(AppMetrics::new(256));
        let (_, wall) = run(&many, THREADS, N / 2, op);
        // Every call counted: the table's totals agree with the calls made.
        let mut scratch = Vec::new();
        many.collect(true, &mut scratch);
        let total: f64 = scratch
            .iter()
            .map(|r| match r.metric().value {
                wire::app::AppValue::Counter(v) => v,
                wire::app::AppValue::Distribution(d) => d.count as f64,
                wire::app::AppValue::Gauge(_) => 0.0,
            })
            .sum();
        assert_eq!(total, (THREADS as u64 * N / 2) as f64, "{what}: calls lost");
        println!(
            "{what:>6}: 1 thread {single:6.1} ns/call ({:.1} bare atomic adds); {THREADS} threads + reporter on {cores} cores: {wall:6.1} ns of wall time per call (ratio to 1 thread {:.2})",
            single / atomic,
            wall / single
        );
    }
}
