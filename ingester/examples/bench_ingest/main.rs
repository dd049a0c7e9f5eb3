//! Ingest benchmark: our `serve` against the reference ingester
//! (mod_wsgi-telemetry 1.1.0, Python) on the same machine in the same run.
//!
//!     cargo build --release
//!     bash scripts/ref-venv.sh            # once; prints the venv path
//!     cargo run --release -p mod_wsgi-telemetry --example bench_ingest -- [--quick]
//!         [--skip-reference] [--ours PATH] [--reference PATH]
//!
//! Each implementation runs `serve` pinned to core 0 with its own socket (in
//! a temporary directory) and a free 127.0.0.1 port; this process (the
//! sender and the HTTP/WebSocket clients) pins itself to core 1.
//!
//! 1. Sustained zero-loss rate. The corpus (`tests/fixtures/corpus/anchor-6.1.1-mixed.bin`,
//!    22 real processes) is rewritten to stand for 50, 200 and 1,000
//!    processes: every datagram of an original pid goes to the next of that
//!    pid's synthetic pids (round-robin), each synthetic pid keeps its own
//!    increasing seq, and every loop over the capture shifts the header
//!    stamps by the capture's span. Field 8 (`interpreter_name`) is dropped
//!    from GC datagrams for both implementations (the reference crashes on
//!    it). Sends are non-blocking (`MSG_DONTWAIT`), paced in small bursts
//!    every millisecond, for a few seconds per step on a rate ladder. Loss
//!    of a step = EAGAIN at the sender + (sent − delta of `total_received`).
//!    A lossy step is repeated once (the machine is shared); the ladder stops
//!    when the repeat loses too. CPU = utime+stime of the server (all
//!    threads) across the step, per 10,000 datagrams received.
//! 2. Fill: N processes × 600 REQUEST samples (blocking sends), then
//!    `GET /api/state` and the first WebSocket message are timed, with a
//!    1,000/s probe stream sent (non-blocking) meanwhile to show whether
//!    ingestion goes on. Peak RSS = VmHWM. Ours: 200 and 1,000 processes;
//!    reference: 200 only (1,000 × 600 would need more than 10 GB).
//!
//! Prints figures and ratios against the targets of issue 2; asserts nothing
//! about time. Everything started is killed by pid (Drop guards).
//!
//! The sections, one module each: [`opts`] (the command line), [`corpus`]
//! (the capture as N processes), [`system`] (pinning, scheduling, `/proc`
//! figures), [`server`] (the implementations under test and their
//! counters), [`http`], [`send`] (pacing and the probe stream), [`ladder`]
//! (rate ladders and saturation), [`fill`] (the rolling window, then the
//! API and the first WebSocket message), [`report`], and [`instructions`]
//! (`--only instructions`: the receive path in this process, no server, for
//! instruction counts under callgrind).

use anyhow::{bail, Result};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Seconds since the start of the run, then the message, on stderr.
macro_rules! progress {
    ($($t:tt)*) => {{
        let t = $crate::START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64();
        eprintln!("[{:7.1}s] {}", t, format!($($t)*));
    }};
}

mod corpus;
mod fill;
mod http;
mod instructions;
mod ladder;
mod opts;
mod report;
mod send;
mod server;
mod system;

use corpus::load_corpus;
use fill::run_fill;
use ladder::run_ladder;
use opts::{parse_opts, Part, RT};
use server::Impl;
use system::{pin_self, set_fifo, set_other};

/// Process counts of the ladder.
pub(crate) const LADDER_PROCS: [usize; 3] = [50, 200, 1000];
/// Samples per process in the fill (the rolling window).
pub(crate) const WINDOW: usize = 600;
/// First synthetic pid of the ladder / fill.
pub(crate) const PID_BASE: u32 = 2_000_000;
/// Pid of the probe stream (no process state: a slow-request heartbeat).
pub(crate) const PROBE_PID: u32 = 3_999_999;
/// Rate of the probe stream during API/WS measurements.
pub(crate) const PROBE_RATE: u64 = 1000;
/// Datagrams a fill of ours keeps in flight at most (so the fill measures
/// the state at rest, not a 64 MB in-process queue still being applied).
pub(crate) const FILL_WINDOW: u64 = 40_000;
/// Server core and sender core.
pub(crate) const SERVER_CPU: usize = 0;
pub(crate) const SENDER_CPU: usize = 1;

/// When the run started (the clock of [`progress!`]).
static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn main() -> Result<()> {
    START.get_or_init(Instant::now);
    let opts = parse_opts()?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pinned = cores > SENDER_CPU && pin_self(SENDER_CPU);
    if RT.load(Ordering::Relaxed) && !set_fifo() {
        bail!("--rt: cannot set SCHED_FIFO (needs CAP_SYS_NICE)");
    }
    let corpus = load_corpus()?;
    if opts.only == Some(Part::Instructions) {
        print!("{}", instructions::run(&corpus, opts.procs, opts.passes));
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut rates, step): (Vec<u64>, Duration) = if opts.quick {
        (
            vec![1_000, 5_000, 20_000, 50_000, 100_000, 200_000],
            Duration::from_secs(2),
        )
    } else {
        (
            vec![
                1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 150_000, 200_000, 300_000,
            ],
            Duration::from_secs(3),
        )
    };
    let head = report::head(&opts, &corpus, cores, pinned, &rates, step)?;
    eprint!("{head}");

    let mut impls = vec![(Impl::Ours, opts.ours.clone())];
    if opts.state_dir {
        impls.push((Impl::OursStateDir, opts.ours.clone()));
    }
    if let Some(r) = &opts.reference {
        impls.push((Impl::Reference, r.clone()));
    }

    if opts.only == Some(Part::Saturation) {
        rates.clear();
    }
    let ladders_wanted = opts.only != Some(Part::Fills);
    let fills_wanted = matches!(opts.only, None | Some(Part::Fills));

    // 1. ladders
    let mut ladders = Vec::new();
    for &pacing in opts.pacings.iter().filter(|_| ladders_wanted) {
        if rates.is_empty() && Some(&pacing) != opts.pacings.last() {
            continue;
        }
        let sat = Some(&pacing) == opts.pacings.last();
        ladders.push(run_ladder(
            Impl::Floor,
            pacing,
            sat,
            &opts.ours,
            &corpus,
            200,
            &rates,
            step,
        ));
        for (imp, bin) in &impls {
            for &n in &LADDER_PROCS {
                ladders.push(run_ladder(*imp, pacing, sat, bin, &corpus, n, &rates, step));
            }
        }
    }

    // 2. fills (always SCHED_OTHER: with SCHED_FIFO the snapshot thread
    // would never yield the core to the receive thread)
    set_other();
    let mut fills = Vec::new();
    if fills_wanted {
        fills.push(run_fill(
            Impl::Ours,
            &opts.ours,
            &corpus,
            200,
            &[("default", "/ws"), ("?history=full", "/ws?history=full")],
            &rt,
        ));
        if let Some(r) = &opts.reference {
            fills.push(run_fill(
                Impl::Reference,
                r,
                &corpus,
                200,
                &[("(only form)", "/ws")],
                &rt,
            ));
        }
        fills.push(run_fill(
            Impl::Ours,
            &opts.ours,
            &corpus,
            1000,
            &[("default", "/ws")],
            &rt,
        ));
    }
    let out = report::report(&head, &opts, &rates, step, &ladders, &fills)?;
    println!("\n{out}");
    Ok(())
}
