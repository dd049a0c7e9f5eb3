//! The machine: pinning and scheduling of threads, and what `/proc` says of
//! a process (CPU ticks, memory, run-queue wait).

use std::path::Path;

pub(crate) fn pin_self(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; pid 0 = this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

pub(crate) fn clk_tck() -> f64 {
    // SAFETY: plain sysconf query.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime+stime (all threads) of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after ")": state is field 3, utime 14, stime 15
    let g = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    g(11) + g(12)
}

/// A `/proc/PID/status` value in kB (VmRSS, VmHWM).
pub(crate) fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub(crate) fn status_str(pid: u32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

/// Run-queue wait (ns) and timeslices from `/proc/<task>/schedstat`.
pub(crate) fn schedstat(task_dir: &Path) -> (u64, u64) {
    let s = std::fs::read_to_string(task_dir.join("schedstat")).unwrap_or_default();
    let f: Vec<u64> = s
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    (
        f.get(1).copied().unwrap_or(0),
        f.get(2).copied().unwrap_or(0),
    )
}

/// Run-queue wait of a process: (all threads ns, receive thread ns,
/// receive thread timeslices). The receive thread is `telemetry-recv`
/// (ours) or the main thread (the reference).
#[derive(Default, Clone, Copy)]
pub(crate) struct Sched {
    pub(crate) all_ns: u64,
    pub(crate) recv_ns: u64,
    pub(crate) recv_slices: u64,
}

pub(crate) fn sched_of(pid: u32) -> Sched {
    let mut r = Sched::default();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return r;
    };
    let (mut named, mut main) = (None, None);
    for e in rd.flatten() {
        let dir = e.path();
        let (d, n) = schedstat(&dir);
        r.all_ns += d;
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == "telemetry-recv" {
            named = Some((d, n));
        }
        if e.file_name().to_string_lossy() == pid.to_string() {
            main = Some((d, n));
        }
    }
    if let Some((d, n)) = named.or(main) {
        r.recv_ns = d;
        r.recv_slices = n;
    }
    r
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// SCHED_FIFO priority 1 for the calling thread (threads it creates later
/// inherit it).
pub(crate) fn set_fifo() -> bool {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: plain syscall on the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) == 0 }
}

/// Back to SCHED_OTHER for the calling thread.
pub(crate) fn set_other() {
    let p = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &p) };
}

pub(crate) fn machine_facts(cores: usize) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let qlen = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    format!(
        "{} cores ({cpu}), {:.1} GB RAM, Linux {}, net.unix.max_dgram_qlen = {}",
        cores,
        mem as f64 / 1024.0 / 1024.0,
        kernel.trim(),
        qlen.trim()
    )
}
