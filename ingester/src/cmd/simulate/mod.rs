//! `mod_wsgi-telemetry simulate`: synthetic telemetry for demos and UI work,
//! no Apache needed. Sends real wire-format datagrams (through the `wire`
//! encoders, following the 6.x emission rules) to a UNIX datagram socket.
//!
//! The model is a small Apache + mod_wsgi site:
//! * daemon group `app` (8 threads per process), the busy web application;
//! * daemon group `reports` (4 threads), slow report rendering and exports;
//! * embedded Apache children (25 threads, no process group) serving static
//!   and light dynamic pages, each with a sub-interpreter next to the main
//!   one (so their GC datagrams carry `interpreter_name`).
//!
//! Load follows a slow wave per group with noise and an occasional burst
//! (with a 5xx incident); queue time grows with utilisation; slow requests
//! occupy worker slots, are reported active on every tick past the
//! threshold and completed at the end; processes restart for the reasons
//! mod_wsgi gives (maximum requests, restart interval, signals, request
//! timeout cutting requests off), with STARTED / STOPPING / STOPPED; GC
//! snapshots and events follow the allocation rate. Nothing here blocks on
//! anything but the socket send.
//!
//! [`model`] is the site and its tick, [`request`] a process's requests
//! and slow requests, [`gc`] its GC datagrams, [`lifecycle`] its starts and
//! restarts, [`send`] the socket and the clock.

mod gc;
mod lifecycle;
mod model;
mod request;
mod send;

use crate::clock::{stopping, wall_now};
use model::Simulator;
use send::Sender;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of `simulate`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct SimulateArgs {
    /// Datagram socket of the ingester: `unix:<path>`.
    #[arg(long, value_name = "SPEC", value_parser = crate::cmd::args::parse_unix_spec)]
    pub(crate) target: PathBuf,
    /// Simulated processes (split over the `app` and `reports` daemon
    /// groups and embedded Apache children).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub(crate) processes: u32,
    /// Tick length in seconds (the reporter interval).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) interval: f64,
    /// Stop after this many seconds of simulated time (0 = run until
    /// interrupted).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) duration: f64,
    /// Stamp of the first tick: Unix seconds, or a time ago such as `-7d`,
    /// `-6h`, `-90m` (default: now). With `--speed 0 --duration 604800`,
    /// `--start -7d` sends a week ending about now, as fast as the
    /// ingester takes it (fills every history tier).
    #[arg(long, value_name = "WHEN", allow_hyphen_values = true, value_parser = parse_start)]
    pub(crate) start: Option<Start>,
    /// Simulated seconds per wall-clock second (0 = as fast as the
    /// ingester takes the datagrams, without loss).
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_speed)]
    pub(crate) speed: f64,
    /// Random seed (a fixed seed gives the same stream shape).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Do not send GC datagrams.
    #[arg(long)]
    pub(crate) no_gc: bool,
    /// Load multiplier (1 = a few hundred requests per second in total).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) load: f64,
    /// Probability per process and tick of an unplanned restart.
    #[arg(long, default_value_t = 0.0015)]
    pub(crate) restart_probability: f64,
    /// First pid to use.
    #[arg(long, default_value_t = 100000)]
    pub(crate) first_pid: u32,
}

/// `--start`: a Unix time, or seconds before now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Start {
    /// Unix seconds.
    At(f64),
    /// Seconds before the command starts.
    Ago(u64),
}

impl Start {
    fn resolve(self, now: f64) -> f64 {
        match self {
            Start::At(t) => t,
            Start::Ago(s) => now - s as f64,
        }
    }
}

fn parse_start(s: &str) -> Result<Start, String> {
    if let Some(ago) = s.strip_prefix('-') {
        return crate::ingest::history::parse_duration(ago)
            .map(Start::Ago)
            .map_err(|e| format!("{e} (e.g. -7d, -6h, -90m)"));
    }
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && (0.0..1e11).contains(&t) => Ok(Start::At(t)),
        _ => Err(format!(
            "{s:?}: expected Unix seconds or a time ago such as -7d"
        )),
    }
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?}: expected a factor >= 0 (0 = as fast as possible)"
        )),
    }
}

/// Runs `simulate`; returns the exit status.
pub(crate) fn run(args: SimulateArgs) -> anyhow::Result<i32> {
    crate::clock::stop_on_signals();
    let mut sim = Simulator::new(&args);
    let mut tx = Sender::new(&args.target, false)?;
    // Simulated time: tick k is stamped t0 + k intervals and sent when
    // k intervals / speed of wall time have passed (at once for speed 0).
    let t0 = args.start.map_or_else(wall_now, |s| s.resolve(wall_now()));
    let wall0 = Instant::now();
    let mut k = 0u64;
    while !stopping() {
        let simulated = k as f64 * sim.interval;
        if args.duration > 0.0 && simulated >= args.duration {
            break;
        }
        for d in sim.tick(t0 + simulated) {
            tx.send(&d);
        }
        k += 1;
        if args.speed > 0.0 {
            let next = wall0 + Duration::from_secs_f64(k as f64 * sim.interval / args.speed);
            while Instant::now() < next && !stopping() {
                std::thread::sleep((next - Instant::now()).min(Duration::from_millis(100)));
            }
        }
    }
    println!("sent {} datagrams ({} failed)", tx.sent, tx.failed);
    Ok(0)
}

/// Starts a simulator on a background thread, feeding `socket_path`
/// forever (for `serve --demo`): six processes over both daemon groups and
/// embedded children, 1 s ticks. Send failures are silent (the socket may
/// not be bound yet).
pub(crate) fn spawn_demo(socket_path: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("demo-simulator".into())
        .spawn(move || {
            let args = SimulateArgs {
                target: socket_path.clone(),
                processes: 6,
                interval: 1.0,
                duration: 0.0,
                start: None,
                speed: 1.0,
                seed: None,
                no_gc: false,
                load: 1.0,
                restart_probability: 0.0015,
                first_pid: 100000,
            };
            let mut sim = Simulator::new(&args);
            let Ok(mut tx) = Sender::new(&socket_path, true) else {
                return;
            };
            let interval = Duration::from_secs_f64(sim.interval);
            let mut next = Instant::now();
            loop {
                for d in sim.tick(wall_now()) {
                    tx.send(&d);
                }
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
        })
        .expect("spawn demo simulator thread")
}

#[cfg(test)]
mod tests;
