//! Rate ladders (the sustained zero-loss rate) and the saturation step.

use crate::corpus::{Corpus, Feed};
use crate::opts::{saturation_step, RT};
use crate::send::{paced, Pacing, Sender, Sent};
use crate::server::{Floor, Impl, Server, Target};
use crate::system::clk_tck;
use anyhow::Result;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- ladder

#[derive(Clone, Copy)]
pub(crate) struct Step {
    pub(crate) rate: u64,
    pub(crate) sent: Sent,
    pub(crate) received: u64,
    pub(crate) cpu_s: f64,
    pub(crate) repeat: bool,
    /// Run-queue wait of all server threads during the sending, ms.
    pub(crate) wait_all_ms: f64,
    /// Run-queue wait of the receiving thread during the sending, ms.
    pub(crate) wait_recv_ms: f64,
    /// Times the receiving thread was scheduled during the sending.
    pub(crate) recv_slices: u64,
}

impl Step {
    pub(crate) fn loss(&self) -> u64 {
        self.sent.refused + self.sent.ok.saturating_sub(self.received)
    }
    pub(crate) fn achieved(&self) -> f64 {
        self.sent.attempted as f64 / self.sent.secs.max(1e-9)
    }
    pub(crate) fn cpu_per_10k(&self) -> f64 {
        if self.received == 0 {
            f64::NAN
        } else {
            self.cpu_s / self.received as f64 * 10_000.0
        }
    }
    /// The sender could not reach the nominal rate (its core is shared).
    pub(crate) fn sender_limited(&self) -> bool {
        self.achieved() < 0.95 * self.rate as f64
    }
}

pub(crate) struct Ladder {
    pub(crate) imp: Impl,
    pub(crate) pacing: Pacing,
    pub(crate) procs: usize,
    pub(crate) steps: Vec<Step>,
    /// The ladder ran to its top without loss.
    pub(crate) topped: bool,
    pub(crate) error: Option<String>,
    /// Run the saturation test after the ladder.
    pub(crate) saturate: bool,
    pub(crate) sat: Option<Sat>,
}

impl Ladder {
    /// The highest step without loss.
    pub(crate) fn best(&self) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| s.loss() == 0)
            .max_by_key(|s| s.rate)
    }
    /// The step that ended the ladder (lost twice).
    pub(crate) fn first_lossy(&self) -> Option<&Step> {
        if self.topped {
            None
        } else {
            self.steps.last().filter(|s| s.loss() > 0)
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_ladder(
    imp: Impl,
    pacing: Pacing,
    saturate: bool,
    bin: &Path,
    corpus: &Corpus,
    procs: usize,
    rates: &[u64],
    step: Duration,
) -> Ladder {
    let mut lad = Ladder {
        imp,
        pacing,
        procs,
        steps: Vec::new(),
        topped: false,
        error: None,
        saturate,
        sat: None,
    };
    if let Err(e) = ladder_inner(&mut lad, bin, corpus, rates, step) {
        progress!("{} {} processes: ladder aborted: {e:#}", imp.name(), procs);
        lad.error = Some(format!("{e:#}"));
    }
    lad
}

pub(crate) fn ladder_inner(
    lad: &mut Ladder,
    bin: &Path,
    corpus: &Corpus,
    rates: &[u64],
    step: Duration,
) -> Result<()> {
    let mut srv = match lad.imp {
        Impl::Floor => Target::Floor(Floor::start()?),
        imp => Target::Server(Server::start(bin, RT.load(Ordering::Relaxed), imp)?),
    };
    let tx = Sender::connect(&srv.sock())?;
    let mut feed = Feed::new(corpus, lad.procs);
    // Warm-up (not counted): creates the processes.
    let w = paced(
        &mut feed,
        &tx,
        1000,
        Duration::from_millis(700),
        Pacing::Even,
    )?;
    srv.wait_idle(Duration::from_secs(10));
    let mut base = srv.counters()?.total_received;
    progress!(
        "{} ({}) {} processes: warm-up {} datagrams, {} refused, received {}",
        lad.imp.name(),
        lad.pacing.name(),
        lad.procs,
        w.attempted,
        w.refused,
        base
    );
    let mut i = 0;
    let mut repeated = false;
    while i < rates.len() {
        let rate = rates[i];
        let cpu0 = srv.cpu();
        let sched0 = srv.sched();
        let sent = paced(&mut feed, &tx, rate, step, lad.pacing)?;
        let sched1 = srv.sched();
        srv.wait_idle(Duration::from_secs(20));
        let mut cpu1 = srv.cpu();
        let mut c1 = srv.counters()?;
        let mut total = c1.total_received;
        // A server descheduled by other load may still be working: re-read
        // until stable before calling a shortfall a loss.
        for _ in 0..3 {
            if total - base >= sent.ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            srv.wait_idle(Duration::from_secs(10));
            let c = srv.cpu();
            let c2 = srv.counters()?;
            if c2.total_received == total {
                break;
            }
            cpu1 = c;
            total = c2.total_received;
            c1 = c2;
        }
        srv.check_alive()?;
        let st = Step {
            rate,
            sent,
            received: total - base,
            cpu_s: (cpu1 - cpu0) as f64 / clk_tck(),
            repeat: repeated,
            wait_all_ms: (sched1.all_ns - sched0.all_ns) as f64 / 1e6,
            wait_recv_ms: (sched1.recv_ns - sched0.recv_ns) as f64 / 1e6,
            recv_slices: sched1.recv_slices - sched0.recv_slices,
        };
        base = total;
        progress!(
            "{} {} {:>4} procs {:>7}/s: sent {:>8} ({:>9.0}/s{}) refused {:>7} received {:>8} loss {:>7}  CPU {:.2} s = {:.3} s/10k; run-queue wait: recv thread {:.1} ms over {} slices, all threads {:.1} ms{}",
            lad.imp.name(),
            lad.pacing.name(),
            lad.procs,
            rate,
            st.sent.attempted,
            st.achieved(),
            if st.sender_limited() { ", sender-limited" } else { "" },
            st.sent.refused,
            st.received,
            st.loss(),
            st.cpu_s,
            st.cpu_per_10k(),
            st.wait_recv_ms,
            st.recv_slices,
            st.wait_all_ms,
            match (c1.seq_gaps, c1.queue_overflow) {
                (Some(g), Some(q)) => format!(" (seq_gaps {g}, queue_overflow {q} so far)"),
                _ => String::new(),
            }
        );
        lad.steps.push(st);
        if st.loss() > 0 {
            if repeated {
                break;
            }
            repeated = true;
            continue;
        }
        repeated = false;
        i += 1;
    }
    lad.topped = i == rates.len();
    if lad.saturate {
        lad.sat = Some(saturate(lad, &srv, &tx, &mut feed, step)?);
    }
    Ok(())
}

/// Saturation: blocking sends for `dur` (the server never waits for a
/// datagram, so wake-up latency and the 10-deep kernel queue do not
/// matter): how many datagrams/s one core drains, without loss.
pub(crate) fn saturate(
    lad: &Ladder,
    srv: &Target,
    tx: &Sender,
    feed: &mut Feed,
    dur: Duration,
) -> Result<Sat> {
    let dur = saturation_step(dur);
    srv.wait_idle(Duration::from_secs(10));
    let base = srv.counters()?.total_received;
    let cpu0 = srv.cpu();
    let t0 = Instant::now();
    let mut sent = 0u64;
    // Datagrams sent in each second of the step (with blocking sends the
    // kernel queue holds 11 at most, so this is what was drained).
    let mut per_sec: Vec<u64> = Vec::new();
    while t0.elapsed() < dur {
        let sec = t0.elapsed().as_secs() as usize;
        if per_sec.len() <= sec {
            per_sec.resize(sec + 1, 0);
        }
        per_sec[sec] += 64;
        for _ in 0..64 {
            tx.send(feed.next(), false)?;
        }
        sent += 64;
    }
    let send_end = t0.elapsed().as_secs_f64();
    // Ours may still hold a backlog in its in-process queue: its run ends
    // when everything is counted (a cheap counter read). The reference has
    // no queue of its own beyond the kernel's 10 datagrams: its run ends
    // with the last send (reading its counters costs it a full snapshot).
    let (secs, cpu_s) = if matches!(lad.imp, Impl::Ours | Impl::OursStateDir) {
        loop {
            let received = srv.counters()?.total_received - base;
            if received >= sent || t0.elapsed() > dur * 10 {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        (
            t0.elapsed().as_secs_f64(),
            (srv.cpu() - cpu0) as f64 / clk_tck(),
        )
    } else {
        std::thread::sleep(Duration::from_millis(5));
        (send_end, (srv.cpu() - cpu0) as f64 / clk_tck())
    };
    srv.wait_idle(Duration::from_secs(20));
    let received = srv.counters()?.total_received - base;
    let sat = Sat {
        sent,
        received,
        secs,
        cpu_s,
    };
    progress!(
        "{} {} procs saturation (blocking sends): {} sent, {} received in {:.2} s = {:.0}/s, CPU {:.2} s = {:.3} s/10k; sent per second: {:?}",
        lad.imp.name(),
        lad.procs,
        sent,
        received,
        secs,
        sat.rate(),
        cpu_s,
        cpu_s / received.max(1) as f64 * 1e4,
        per_sec
    );
    Ok(sat)
}

#[derive(Clone, Copy)]
pub(crate) struct Sat {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) secs: f64,
    pub(crate) cpu_s: f64,
}

impl Sat {
    pub(crate) fn rate(&self) -> f64 {
        self.received as f64 / self.secs.max(1e-9)
    }
    pub(crate) fn cpu_per_10k(&self) -> f64 {
        self.cpu_s / self.received.max(1) as f64 * 1e4
    }
}
