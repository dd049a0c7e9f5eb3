//! The application-metrics table never allocates on a call (its module
//! docs promise it; docs/app-metrics.md says so to the application): every
//! heap allocation of the calling thread is counted by a global allocator
//! while `incr`, `set` and `record` run on new names, known names, bad
//! names and values, type clashes and names past the table's limit.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use reporter_core::app_metrics::{AppMetrics, Status};

thread_local! {
    /// Allocations made by this thread (a const initialiser: reading it
    /// allocates nothing).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting per thread.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; counting touches only a thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn calls_never_allocate() {
    let t = AppMetrics::new(4);
    let names: [&[u8]; 6] = [b"hits", b"lat.{0}", b"depth", b"more", b"past.1", b"past.2"];
    let mut codes = Vec::with_capacity(64);
    let before = allocations();
    for round in 0..3 {
        let v = f64::from(round);
        codes.push(t.incr(names[0], 1.0));
        codes.push(t.record(names[1], 0.25 + v));
        codes.push(t.set(names[2], -v));
        codes.push(t.incr(names[3], 2.5));
        // The table holds 4 names: these two are refused and counted.
        codes.push(t.incr(names[4], 1.0));
        codes.push(t.record(names[5], 1.0));
        codes.push(t.set(names[0], 1.0));
        codes.push(t.incr(b"bad name", 1.0));
        codes.push(t.incr(names[0], f64::NAN));
        codes.push(t.record(names[1], -1.0));
    }
    let during = allocations() - before;
    assert_eq!(during, 0, "allocations during the calls");
    use Status::*;
    let round = [
        Ok, Ok, Ok, Ok, Dropped, Dropped, TypeClash, BadName, BadValue, BadValue,
    ];
    assert_eq!(codes, round.repeat(3));
    assert_eq!(t.names(), 4);
    assert_eq!(t.dropped_calls(), 6);
    // A control: this thread's allocations are counted.
    let start = allocations();
    let v = std::hint::black_box(vec![1u8; 10]);
    assert_eq!(allocations() - start, 1, "{v:?}");
}
