//! `--only instructions`: the receive path in this process, without
//! sockets or threads, for instruction counts (wall clock on a shared
//! machine says little). The ladder's datagrams ([`Feed`]: the corpus as
//! `--procs` processes, `--passes` times over the capture) are built in
//! memory first, in batches of at most 32 (one `recvmmsg` call's worth),
//! then applied to a state made as `serve` makes it with its default flags,
//! through the same call `serve`'s ingest thread makes for a batch
//! (`Shared::ingest_batch`: one lock and one clock read per batch, then
//! `State::ingest_quiet` per datagram when no WebSocket client listens).
//! Count [`ingest_all`] alone and divide by the datagrams printed:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*ingest_all*' \
//!     target/release/examples/bench_ingest --only instructions [--procs N] [--passes K]
//! ```
//!
//! The checksum printed identifies the datagrams (FNV-1a of their bytes
//! and lengths), so runs of two builds can be seen to count the same work.

use crate::corpus::{Corpus, Feed};
use mwt_ingester::ingest::receive::{Batch, Shared};
use mwt_ingester::ingest::state::{Limits, State};

/// Datagrams one `recvmmsg` call returns at most (`ingest::receive`).
const VLEN: usize = 32;

/// Builds the datagrams, applies them, and says what was applied.
pub(crate) fn run(corpus: &Corpus, procs: usize, passes: u64) -> String {
    let mut feed = Feed::new(corpus, procs);
    let mut batches: Vec<Batch> = Vec::new();
    let (mut count, mut bytes) = (0usize, 0usize);
    let mut sum = Fnv::default();
    for _ in 0..passes as usize * corpus.all.len() {
        let d = feed.next();
        sum.add(&(d.len() as u32).to_le_bytes());
        sum.add(d);
        if count % VLEN == 0 {
            batches.push(Batch::default());
        }
        batches.last_mut().expect("pushed above").push(d);
        count += 1;
        bytes += d.len();
    }
    let shared = Shared::new(State::new(Limits::default()), 1024);
    ingest_all(&shared, &batches);
    std::hint::black_box(&shared);
    format!(
        "instructions: {count} datagrams ({bytes} bytes, checksum {:016x}) applied: {passes} passes over the corpus as {procs} processes\n",
        sum.0
    )
}

/// What is counted: every batch applied as `serve` applies it.
#[inline(never)]
fn ingest_all(shared: &Shared, batches: &[Batch]) {
    for b in batches {
        shared.ingest_batch(b);
    }
}

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
