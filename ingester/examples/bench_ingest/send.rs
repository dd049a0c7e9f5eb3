//! Sending: non-blocking or blocking sends on a connected socket, paced
//! ladder steps, and the probe stream that shows whether ingestion goes on
//! during a snapshot.

use crate::corpus::{patch_header, Feed};
use crate::{PROBE_PID, PROBE_RATE};
use anyhow::{anyhow, Context, Result};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::wall_now;

// ---------------------------------------------------------------- sending

pub(crate) struct Sender {
    pub(crate) sock: UnixDatagram,
}

impl Sender {
    pub(crate) fn connect(path: &Path) -> Result<Sender> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        sock.set_write_timeout(Some(Duration::from_secs(60)))?;
        Ok(Sender { sock })
    }

    /// Ok(true) sent, Ok(false) refused (EAGAIN/ENOBUFS, non-blocking only).
    pub(crate) fn send(&self, d: &[u8], nonblocking: bool) -> Result<bool> {
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        loop {
            // SAFETY: valid fd and buffer.
            let n = unsafe {
                libc::send(
                    self.sock.as_raw_fd(),
                    d.as_ptr() as *const libc::c_void,
                    d.len(),
                    flags,
                )
            };
            if n >= 0 {
                return Ok(true);
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) if nonblocking => return Ok(false),
                _ => return Err(anyhow!("send: {e}")),
            }
        }
    }
}

#[derive(Default, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) attempted: u64,
    pub(crate) ok: u64,
    pub(crate) refused: u64,
    pub(crate) secs: f64,
}

/// How a ladder step spaces its datagrams.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pacing {
    /// `rate / 1000` datagrams back to back every millisecond (as issue 2's
    /// benchmark asks). With `net.unix.max_dgram_qlen` = 10, a burst of
    /// more than ~10 datagrams overflows the kernel queue before the
    /// receiver on the other core has even woken up, whatever it does.
    Burst,
    /// Each datagram at its own time (`i / rate`), so the receiver only has
    /// to keep up on average: what the ingester itself sustains.
    Even,
}

impl Pacing {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pacing::Burst => "1 ms bursts",
            Pacing::Even => "even",
        }
    }
}

/// Sends `rate` datagrams/s for `dur`. The sender spins on its own core
/// (no sleep overshoot, so bursts stay `rate / 1000` unless it is preempted).
pub(crate) fn paced(
    feed: &mut Feed,
    tx: &Sender,
    rate: u64,
    dur: Duration,
    pacing: Pacing,
) -> Result<Sent> {
    let mut r = Sent::default();
    let start = Instant::now();
    let tick = match pacing {
        Pacing::Burst => 0.001,
        Pacing::Even => 0.0,
    };
    let mut next_tick = 0.0f64;
    loop {
        let el = start.elapsed().as_secs_f64();
        if el >= dur.as_secs_f64() {
            break;
        }
        if el < next_tick {
            // Sleep when far ahead (a SCHED_FIFO spinner would be throttled),
            // spin for the last stretch.
            if next_tick - el > 150e-6 {
                std::thread::sleep(Duration::from_secs_f64(next_tick - el - 100e-6));
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        next_tick = if tick > 0.0 {
            (el / tick).floor() * tick + tick
        } else {
            // the time the next datagram is due
            (rate as f64 * el).ceil() / rate as f64
        };
        let target = (rate as f64 * el).ceil() as u64;
        while r.attempted < target {
            r.attempted += 1;
            if tx.send(feed.next(), true)? {
                r.ok += 1;
            } else {
                r.refused += 1;
            }
        }
    }
    r.secs = start.elapsed().as_secs_f64();
    Ok(r)
}

/// A 1,000/s non-blocking stream of one slow-request heartbeat from a pid
/// without process state, run while an API/WS measurement is in progress.
pub(crate) struct Probe {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) handle: std::thread::JoinHandle<Sent>,
}

impl Probe {
    pub(crate) fn start(sock: &Path, template: &[u8]) -> Result<Probe> {
        let tx = Sender::connect(sock)?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let mut d = template.to_vec();
        let handle = std::thread::spawn(move || {
            let mut r = Sent::default();
            let start = Instant::now();
            let mut seq = 0u32;
            while !st.load(Ordering::Relaxed) {
                let target = (PROBE_RATE as f64 * start.elapsed().as_secs_f64()).ceil() as u64;
                while r.attempted < target {
                    seq += 1;
                    patch_header(&mut d, PROBE_PID, seq, wall_now());
                    r.attempted += 1;
                    match tx.send(&d, true) {
                        Ok(true) => r.ok += 1,
                        _ => r.refused += 1,
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            r.secs = start.elapsed().as_secs_f64();
            r
        });
        Ok(Probe { stop, handle })
    }

    pub(crate) fn finish(self) -> Sent {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}
