//! `--only instructions`: the receive path in this process, without
//! sockets or threads, for instruction counts (wall clock on a shared
//! machine says little). The ladder's datagrams ([`Feed`]: the corpus as
//! `--procs` processes, `--passes` times over the capture) are built in
//! memory first, then applied to a state made as `serve` makes it with its
//! default flags, as `serve`'s receive thread applies them when no
//! WebSocket client listens: one lock and one `Instant::now()` per
//! `recvmmsg` batch of 32, `State::ingest_quiet` per datagram. Count
//! [`ingest_all`] alone and divide by the datagrams printed:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*ingest_all*' \
//!     target/release/examples/bench_ingest --only instructions [--procs N] [--passes K]
//! ```
//!
//! The checksum printed identifies the datagrams (FNV-1a of their bytes
//! and lengths), so runs of two builds can be seen to count the same work.

use crate::corpus::{Corpus, Feed};
use mwt_ingester::ingest::state::{Limits, State};
use std::sync::Mutex;
use std::time::Instant;

/// Datagrams one `recvmmsg` call returns at most (`ingest::receive`).
const VLEN: usize = 32;

/// Datagrams back to back, with their ends.
struct Datagrams {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// Builds the datagrams, applies them, and says what was applied.
pub(crate) fn run(corpus: &Corpus, procs: usize, passes: u64) -> String {
    let mut feed = Feed::new(corpus, procs);
    let mut data = Datagrams {
        bytes: Vec::new(),
        ends: Vec::new(),
    };
    let mut sum = Fnv::default();
    for _ in 0..passes as usize * corpus.all.len() {
        let d = feed.next();
        sum.add(&(d.len() as u32).to_le_bytes());
        sum.add(d);
        data.bytes.extend_from_slice(d);
        data.ends.push(data.bytes.len());
    }
    let state = Mutex::new(State::new(Limits::default()));
    ingest_all(&state, &data);
    std::hint::black_box(&state);
    format!(
        "instructions: {} datagrams ({} bytes, checksum {:016x}) applied: {passes} passes over the corpus as {procs} processes\n",
        data.ends.len(),
        data.bytes.len(),
        sum.0
    )
}

/// What is counted: every datagram applied, [`VLEN`] per lock.
#[inline(never)]
fn ingest_all(state: &Mutex<State>, data: &Datagrams) {
    let mut start = 0;
    for batch in data.ends.chunks(VLEN) {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for &end in batch {
            st.ingest_quiet(&data.bytes[start..end], now);
            start = end;
        }
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
