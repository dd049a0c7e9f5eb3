//! Micro-benchmark of the per-request accounting path: what a request
//! thread does for telemetry (slot claim, two clock reads, finish with all
//! phase aggregates), alone and with 4 threads while a reporter drains
//! every millisecond. Prints ns per request. Run:
//!   cargo bench -p reporter-core --bench accounting
//!
//! With `FOOTPRINT=N` it instead runs N requests through the accounting
//! path, each after evicting the L1 data cache, for `footprint.sh` to count
//! under callgrind: the data cache lines one request touches (its misses)
//! and its instructions, deterministic figures where wall time is not.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use reporter_core::accum::{Accounting, Finished, Io, Snapshot};
use reporter_core::sys;

fn one_request(acc: &Accounting, slot: u32, k: u64) {
    let start = sys::now_us();
    let c = acc.claim(slot, 1, start.saturating_sub(50), start, None);
    let end = sys::now_us();
    let f = Finished {
        request_start_us: start.saturating_sub(50),
        claim_us: start,
        finish_us: end + (k & 1023),
        io: Io {
            output_bytes: 12,
            output_writes: 1,
            ..Io::default()
        },
        status: if k.is_multiple_of(10) { 404 } else { 200 },
        ..Finished::default()
    };
    black_box(acc.finish(c, &f));
}

/// One daemon-mode request's claim and finish (all seven phases, one
/// write), the unit `footprint.sh` counts.
#[inline(never)]
fn footprint_request(acc: &Accounting, k: u64) {
    let now = 1_000_000 + k * 1_000;
    let c = acc.claim(3, 1, now - 300, now, None);
    let f = Finished {
        request_start_us: now - 300,
        queue_start_us: now - 200,
        daemon_start_us: now - 100,
        claim_us: now,
        finish_us: now + 150,
        io: Io {
            output_bytes: 12,
            output_writes: 1,
            output_write_us: 20,
            ..Io::default()
        },
        status: 200,
        ..Finished::default()
    };
    black_box(acc.finish(c, &f));
}

fn footprint(n: u64) {
    let acc = Accounting::new(8, 0, 1.0);
    // Four times the simulated L1 data cache: every line the accounting
    // touches is out of it again at the next request.
    let mut evict = vec![0u8; 4 << 20 >> 4];
    for k in 0..n {
        for i in (0..evict.len()).step_by(64) {
            evict[i] = evict[i].wrapping_add(1);
        }
        black_box(&mut evict);
        footprint_request(&acc, k);
    }
    println!("{n} requests through footprint_request");
}

fn main() {
    if let Some(n) = std::env::var("FOOTPRINT").ok().and_then(|v| v.parse().ok()) {
        return footprint(n);
    }
    const N: u64 = 2_000_000;
    // Single thread, no reporter.
    let acc = Accounting::new(4, 0, 1.0);
    for k in 0..10_000 {
        one_request(&acc, 0, k);
    }
    let t = Instant::now();
    for k in 0..N {
        one_request(&acc, 0, k);
    }
    let single = t.elapsed().as_nanos() as f64 / N as f64;

    // Accounting alone (synthetic clock).
    let t = Instant::now();
    for k in 0..N {
        let now = 1_000_000 + k * 3;
        let c = acc.claim(0, 1, now - 50, now, None);
        let f = Finished {
            request_start_us: now - 50,
            claim_us: now,
            finish_us: now + 2 + (k & 1023),
            io: Io {
                output_bytes: 12,
                output_writes: 1,
                ..Io::default()
            },
            status: if k.is_multiple_of(10) { 404 } else { 200 },
            ..Finished::default()
        };
        black_box(acc.finish(c, &f));
    }
    let pure = t.elapsed().as_nanos() as f64 / N as f64;

    // Clock reads alone (part of the above; the rest is accounting).
    let t = Instant::now();
    for _ in 0..N {
        black_box(sys::now_us());
        black_box(sys::now_us());
    }
    let clocks = t.elapsed().as_nanos() as f64 / N as f64;

    // 4 request threads + reporter draining every millisecond.
    let acc = Arc::new(Accounting::new(4, 0, 1.0));
    let stop = Arc::new(AtomicBool::new(false));
    let rep = {
        let (acc, stop) = (acc.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = Snapshot::new(4);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                acc.snapshot(sys::now_us(), &mut s);
                n += s.request_count;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            acc.snapshot(sys::now_us(), &mut s);
            n + s.request_count
        })
    };
    let per = N / 4;
    let t = Instant::now();
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let acc = acc.clone();
            std::thread::spawn(move || {
                let slot = acc.assign_slot();
                let _ = i;
                for k in 0..per {
                    one_request(&acc, slot, k);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let wall = t.elapsed().as_nanos() as f64;
    stop.store(true, Ordering::Relaxed);
    let counted = rep.join().unwrap();
    assert_eq!(counted, per * 4, "nothing lost");
    println!("accounting path, 1 thread:            {single:8.1} ns/request (2 clock reads alone: {clocks:.1} ns; accounting alone: {pure:.1} ns)");
    println!(
        "accounting path, 4 threads + reporter: {:8.1} ns/request per thread ({:.1} ns wall per request on this machine's {} cores)",
        wall * 4.0 / (per * 4) as f64,
        wall / (per * 4) as f64,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
}
