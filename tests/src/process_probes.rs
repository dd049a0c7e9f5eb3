//! Looking at the module's processes from outside, through `/proc` and
//! the socket: descriptors and threads, the signal masks of our threads,
//! the reporter thread's ticks, a full receive queue.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use testkit::{read_lossy, PATIENCE};

/// Number of open descriptors and threads of a process.
pub fn fds_and_threads(pid: i32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let th = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    (fds, th)
}

/// The signals a thread must never take from the process it lives in: the
/// ones httpd and mod_wsgi use to stop, restart and wake their processes.
pub const PROCESS_SIGNALS: [i32; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGXCPU,
];

/// `(thread name, blocked-signal mask)` of every thread of `pid` whose name
/// starts with `prefix` (from `/proc/PID/task/*/{comm,status}`).
pub fn thread_signal_masks(pid: u32, prefix: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let comm = read_lossy(&t.path().join("comm")).trim().to_string();
        if !comm.starts_with(prefix) {
            continue;
        }
        let status = read_lossy(&t.path().join("status"));
        if let Some(hex) = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .map(str::trim)
        {
            out.push((comm, u64::from_str_radix(hex, 16).unwrap_or(0)));
        }
    }
    out
}

/// Asserts that `pid` runs at least one of our threads (named
/// `wsgi-telemetry…`) and that each blocks every [`PROCESS_SIGNALS`]: a
/// signal sent to the process must reach httpd's or mod_wsgi's own thread
/// (prefork runs its exit path from the handler, on whatever thread took
/// the signal).
pub fn assert_our_threads_block_process_signals(pid: u32) {
    // STARTED goes out just before the reporter thread is created, and a
    // new thread names itself when it first runs: wait for the name.
    let t0 = Instant::now();
    let masks = loop {
        let m = thread_signal_masks(pid, "wsgi-telemetry");
        if m.iter().any(|(n, _)| n == "wsgi-telemetry") {
            break m;
        }
        assert!(
            t0.elapsed() < PATIENCE,
            "pid {pid}: no wsgi-telemetry thread (threads: {:?})",
            thread_signal_masks(pid, "")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for (name, m) in &masks {
        for sig in PROCESS_SIGNALS {
            assert!(
                m & (1u64 << (sig - 1)) != 0,
                "pid {pid}: thread {name} takes signal {sig} (SigBlk {m:016x})"
            );
        }
    }
}

/// Whether the receive queue of the datagram socket bound at `path` is
/// full, so that the next datagram sent to it is refused (`EAGAIN`): a
/// probe socket connected to it is not writable (`poll(2)`; nothing is
/// sent). The kernel holds `net.unix.max_dgram_qlen` + 1 datagrams.
pub fn socket_queue_full(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let probe = UnixDatagram::unbound().expect("probe socket");
    if probe.connect(path).is_err() {
        return false;
    }
    let mut p = libc::pollfd {
        fd: probe.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd on a socket we own, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 0 || p.revents & libc::POLLOUT == 0
}

/// Read syscalls so far of the reporter thread (`wsgi-telemetry`) of `pid`
/// (`syscr` in `/proc/PID/task/TID/io`). The thread reads only
/// `/proc/self/statm`, first thing in each tick, before the tick's sends.
pub fn reporter_reads(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|t| {
        if read_lossy(&t.path().join("comm")).trim() != "wsgi-telemetry" {
            return None;
        }
        read_lossy(&t.path().join("io"))
            .lines()
            .find_map(|l| l.strip_prefix("syscr:"))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Most read syscalls one tick's `read_to_string("/proc/self/statm")`
/// makes (std: a 32-byte probe read, the rest, the read that returns 0;
/// 2 or 3 by the length of the text; 2 seen with Debian's httpd), with
/// room to spare.
const READS_PER_TICK_MAX: u64 = 4;

/// Waits until the reporter of each of `pids` has run one whole tick (all
/// its sends) after this call: its read count has grown by more than two
/// ticks' worth ([`READS_PER_TICK_MAX`]), so a tick that began after this
/// call has finished and the next one has begun (the reads of a tick in
/// progress at the call, and of the next one, are at most twice that).
pub fn wait_for_a_whole_tick_of_each(pids: &[u32]) {
    let base: Vec<(u32, u64)> = pids
        .iter()
        .map(|&p| {
            let r = reporter_reads(p)
                .unwrap_or_else(|| panic!("pid {pid}: no readable wsgi-telemetry thread", pid = p));
            (p, r)
        })
        .collect();
    let t0 = Instant::now();
    for (pid, b) in base {
        while reporter_reads(pid).is_none_or(|r| r <= b + 2 * READS_PER_TICK_MAX) {
            assert!(
                t0.elapsed() < PATIENCE,
                "pid {pid}: its reporter did not tick (syscr {:?}, from {b})",
                reporter_reads(pid)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// With the receiver at `path` no longer reading: waits until its queue is
/// full and then until every reporter in `pids` has run a whole tick, so
/// each of them has had at least one datagram refused (counted in field 19,
/// `reporter_dropped_datagrams`). However fast or slow the machine, no
/// fixed amount of load or time is assumed.
pub fn overflow_receiver_queue(path: &Path, pids: &[u32]) {
    let t0 = Instant::now();
    while !socket_queue_full(path) {
        assert!(
            t0.elapsed() < PATIENCE,
            "the receive queue of {} never filled up",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for_a_whole_tick_of_each(pids);
}
