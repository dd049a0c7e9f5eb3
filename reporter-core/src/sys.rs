//! Small OS helpers for the reporter thread and request path (Linux).
//! Only the clock read and the cached `gettid` are used on the request path;
//! `clock_gettime(CLOCK_REALTIME)` is served by the vDSO, not a syscall.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Wall clock, µs since the epoch.
#[inline]
pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

thread_local! {
    static TID: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

/// Kernel thread id of the caller, cached per thread (one syscall per
/// thread, not per request).
#[inline]
pub fn tid() -> i32 {
    TID.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        // SAFETY: gettid has no preconditions.
        let v = unsafe { libc::gettid() };
        t.set(v);
        v
    })
}

/// CPU seconds (user+system) a thread of this process has used, from its
/// per-thread CPU clock; `None` once the thread is gone.
pub fn thread_cpu_seconds(tid: i32) -> Option<f64> {
    if tid <= 0 {
        return None;
    }
    // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_PROF) from the kernel's
    // posix-timers.h: ((~tid) << 3) | CPUCLOCK_PERTHREAD_MASK | PROF(0).
    let clock = ((!tid) << 3) | 4;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; an invalid clock id just fails.
    let rc = unsafe { libc::clock_gettime(clock as libc::clockid_t, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// (user, system) CPU µs of the calling thread (one syscall).
#[inline]
pub fn thread_cpu_us() -> Option<(u64, u64)> {
    // SAFETY: zeroed rusage is a valid out-buffer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    (rc == 0).then(|| (tv_us(ru.ru_utime), tv_us(ru.ru_stime)))
}

#[inline]
fn tv_us(t: libc::timeval) -> u64 {
    t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64
}

/// Process-wide figures read once per tick.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// Process user CPU, seconds since start.
    pub cpu_user: f64,
    /// Process system CPU, seconds since start.
    pub cpu_system: f64,
    /// Current RSS, bytes.
    pub rss: u64,
    /// Peak RSS, bytes.
    pub max_rss: u64,
}

/// Reads CPU (getrusage), RSS (/proc/self/statm) and peak RSS.
pub fn process_stats() -> ProcessStats {
    // SAFETY: zeroed rusage is a valid out-buffer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * page;
    ProcessStats {
        cpu_user: tv_us(ru.ru_utime) as f64 / 1e6,
        cpu_system: tv_us(ru.ru_stime) as f64 / 1e6,
        rss,
        max_rss: ru.ru_maxrss.max(0) as u64 * 1024,
    }
}

/// Signals our threads leave unblocked: the ones the kernel raises on the
/// thread that faulted (blocking them would not stop them), plus SIGPIPE,
/// as `apr_setup_signal_thread` does. Every other signal belongs to the
/// thread httpd or mod_wsgi handles it on.
const SYNCHRONOUS_SIGNALS: [libc::c_int; 8] = [
    libc::SIGILL,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGSEGV,
    libc::SIGPIPE,
    libc::SIGSYS,
];

/// Spawns one of our threads (256 KiB stack) with every asynchronous
/// signal blocked from its first instruction: the thread inherits the mask
/// the caller holds during `pthread_create`, which is then restored.
///
/// A process-directed signal goes to any thread that does not block it.
/// Without this, a SIGTERM or SIGHUP meant for a prefork child could run
/// prefork's exit path (every pool cleanup, Python's finalisation, our
/// final flush, which joins the reporter thread) on our thread while the
/// main thread runs on, and mod_wsgi's daemon signals could land on it.
/// httpd blocks signals around `child_init` for threads made there; our
/// watcher thread starts earlier, right after the fork.
pub fn spawn_masked<F>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    // SAFETY: sigset_t is plain data, filled by sigfillset before use;
    // pthread_sigmask changes only the calling thread's mask, restored
    // below whatever spawn returns.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut block);
        for s in SYNCHRONOUS_SIGNALS {
            libc::sigdelset(&mut block, s);
        }
        let masked = libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old) == 0;
        let r = std::thread::Builder::new()
            .name(name.into())
            .stack_size(256 * 1024)
            .spawn(f);
        if masked {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        r
    }
}

/// Blocked-signal mask of the calling thread (tests).
#[cfg(test)]
fn blocked_signals() -> libc::sigset_t {
    // SAFETY: out-pointer to a local; SIG_BLOCK with an empty set only reads.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        let mut cur: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_BLOCK, &empty, &mut cur);
        cur
    }
}

/// `gethostname()`.
pub fn hostname() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: buffer and its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return Vec::new();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf[..n].to_vec()
}

/// Where datagrams go. `send` never blocks for long (at most a small,
/// bounded wait for a full queue); false = dropped.
pub trait Sink: Send {
    /// Sends one datagram.
    fn send(&mut self, datagram: &[u8]) -> bool;

    /// From now on, waits up to `budget` for room in a full queue (instead
    /// of [`QUEUE_FULL_WAIT_BUDGET`]): the process's last datagrams, sent
    /// once as it exits, where a moment's wait for a busy receiver costs
    /// nothing on any request and saves its STOPPED.
    fn linger(&mut self, _budget: std::time::Duration) {}
}

/// How long, in total, the reporter thread may wait for room in the
/// ingester's queue before it counts datagrams as dropped. The kernel queue
/// of a UNIX datagram socket can be as short as 10 datagrams
/// (`net.unix.max_dgram_qlen`), so a tick with many slow records or GC
/// events needs the receiver to catch up in the middle of the burst. The
/// budget refills only after a successful send, so a stalled or stopped
/// ingester costs one wait and then every send fails at once.
const QUEUE_FULL_WAIT_BUDGET: std::time::Duration = std::time::Duration::from_millis(25);
const QUEUE_FULL_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_micros(200);

/// The same budget for a process's final flush ([`Sink::linger`]): its last
/// interval, its slow records and STOPPED go out in one burst as it exits,
/// when the receiver may be descheduled for longer than 25 ms on a loaded
/// machine; a stopped receiver delays the exit by this much once.
pub const FINAL_FLUSH_WAIT_BUDGET: std::time::Duration = std::time::Duration::from_millis(250);

/// An unconnected, non-blocking UNIX datagram socket sending to one path
/// (a restarted ingester that re-binds the path is picked up on the next
/// send). Used only by the reporter thread, never by request threads.
pub struct SocketSink {
    sock: Option<UnixDatagram>,
    path: std::path::PathBuf,
    wait_budget: std::time::Duration,
    /// What `wait_budget` refills to after a successful send.
    full_budget: std::time::Duration,
}

impl SocketSink {
    /// Opens the socket; on failure every send counts as dropped.
    pub fn open(path: &Path) -> SocketSink {
        let sock = UnixDatagram::unbound().ok().inspect(|s| {
            let _ = s.set_nonblocking(true);
            let size: libc::c_int = 65536;
            // SAFETY: valid fd and option buffer; errors are ignored as in
            // the reference.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(s),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    &size as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        });
        SocketSink {
            sock,
            path: path.to_path_buf(),
            wait_budget: QUEUE_FULL_WAIT_BUDGET,
            full_budget: QUEUE_FULL_WAIT_BUDGET,
        }
    }
}

impl Sink for SocketSink {
    fn send(&mut self, datagram: &[u8]) -> bool {
        let Some(s) = &self.sock else { return false };
        loop {
            // Non-blocking socket: equivalent to MSG_DONTWAIT on every send.
            match s.send_to(datagram, &self.path) {
                Ok(n) => {
                    self.wait_budget = self.full_budget;
                    return n == datagram.len();
                }
                // Queue full: give the receiver a moment, within the budget.
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        && !self.wait_budget.is_zero() =>
                {
                    std::thread::sleep(QUEUE_FULL_RETRY_PAUSE);
                    self.wait_budget = self.wait_budget.saturating_sub(QUEUE_FULL_RETRY_PAUSE);
                }
                Err(_) => return false,
            }
        }
    }

    fn linger(&mut self, budget: std::time::Duration) {
        self.wait_budget = budget;
        self.full_budget = budget;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_counts_absent_and_full_receivers_as_drops() {
        let dir = std::env::temp_dir().join(format!("wsgi-telemetry-sink-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let mut sink = SocketSink::open(&path);
        assert!(!sink.send(b"x"), "absent socket");
        let rx = UnixDatagram::bind(&path).unwrap();
        assert!(sink.send(b"hello"));
        let mut buf = [0u8; 16];
        assert_eq!(rx.recv(&mut buf).unwrap(), 5);
        // Nobody reads: the queue fills and sends fail instead of blocking.
        let big = vec![0u8; 4096];
        let mut failed = false;
        for _ in 0..10_000 {
            if !sink.send(&big) {
                failed = true;
                break;
            }
        }
        assert!(failed);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lingering_sink_waits_for_a_receiver_that_catches_up() {
        let dir =
            std::env::temp_dir().join(format!("wsgi-telemetry-linger-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let mut sink = SocketSink::open(&path);
        let big = vec![0u8; 4096];
        while sink.send(&big) {} // the queue is full
                                 // The receiver wakes up only after 100 ms, four times the usual
                                 // budget: a plain send gives up first, a lingering one (the final
                                 // flush) waits for it.
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let mut buf = vec![0u8; 8192];
            rx.set_nonblocking(true).unwrap();
            while rx.recv(&mut buf).is_ok() {}
            rx
        });
        assert!(!sink.send(&big), "25 ms is not enough");
        sink.linger(std::time::Duration::from_secs(30));
        assert!(sink.send(&big), "the final flush waits for the receiver");
        drop(reader.join().unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_burst_larger_than_the_kernel_queue_reaches_a_reading_receiver() {
        let dir = std::env::temp_dir().join(format!("wsgi-telemetry-burst-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            // The receiver starts late and reads slowly.
            std::thread::sleep(std::time::Duration::from_millis(2));
            (0..200).map(|_| rx.recv(&mut buf).unwrap()).count()
        });
        let mut sink = SocketSink::open(&path);
        let sent = (0..200).filter(|_| sink.send(b"slow record")).count();
        assert_eq!(sent, 200, "no datagram of the burst dropped");
        assert_eq!(reader.join().unwrap(), 200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn masked_threads_block_async_signals_and_the_caller_keeps_its_mask() {
        // SAFETY: sigismember reads a filled set.
        let has = |set: &libc::sigset_t, s| unsafe { libc::sigismember(set, s) } == 1;
        let before = blocked_signals();
        let h = spawn_masked("masked-test", move || {
            let m = blocked_signals();
            for s in [
                libc::SIGHUP,
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGUSR1,
                libc::SIGXCPU,
            ] {
                assert!(has(&m, s), "signal {s} not blocked");
            }
            for s in SYNCHRONOUS_SIGNALS {
                assert!(!has(&m, s), "signal {s} blocked");
            }
        })
        .unwrap();
        h.join().expect("assertions in the thread");
        let after = blocked_signals();
        for s in 1..32 {
            assert_eq!(has(&before, s), has(&after, s), "caller's mask, signal {s}");
        }
    }

    #[test]
    fn own_thread_cpu_clock_is_readable() {
        let t = tid();
        assert!(t > 0);
        assert_eq!(tid(), t);
        assert!(thread_cpu_seconds(t).is_some());
        assert!(thread_cpu_us().is_some());
        assert!(process_stats().rss > 0);
    }
}
