//! The receive path: one thread drains the socket and, whenever it can do
//! so without waiting, applies the datagrams to the state itself; another
//! thread applies what was handed over and runs expiry.
//!
//! The kernel queue of a UNIX datagram socket is tiny here
//! (`net.unix.max_dgram_qlen` = 10), so the receiving thread must never
//! wait for the state lock. After each `recvmmsg` it applies the datagrams
//! in place (inline: no copy, no hand-off, no wake-up of another thread)
//! when nothing handed over earlier is still waiting to be applied, no
//! WebSocket client subscribes (then each datagram is also serialised into
//! a message, work left to the ingest thread) and the state lock is free at
//! that moment; otherwise (a snapshot holds the lock, batches are pending,
//! messages are published) it copies them into a batch for the ingest
//! thread, exactly as before. Both paths apply through one function,
//! `Shared::apply`, and arrival order is kept: the ingest thread counts a
//! batch as applied only after applying it, and the receive thread goes
//! inline only when that count shows nothing pending. The ingest thread
//! also runs expiry on a 1 s timer (it wakes every 200 ms even when no
//! batch comes), so no per-datagram work depends on the number of
//! processes.

use crate::ingest::json;
use crate::ingest::state::State;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

pub(crate) use crate::ingest::json::Msg;

/// Datagrams held between the two threads at most, in bytes. Beyond it the
/// receive thread pauses until the ingest thread catches up, leaving
/// datagrams in the kernel queue: blocking senders (`replay`) then wait, and
/// non-blocking ones (reporters) count their own drops, which also show up
/// here as sequence gaps. Nothing accepted is ever thrown away.
pub(crate) const MAX_QUEUED_BYTES: usize = 64 << 20;

/// State and publication channel shared by the ingest thread and the HTTP
/// layer.
pub struct Shared {
    /// The model.
    pub(crate) state: Mutex<State>,
    /// Published messages; subscribe while holding the state lock to get
    /// exactly the messages after a snapshot.
    pub(crate) tx: broadcast::Sender<Msg>,
    /// Times the receive thread paused because the ingest thread was more
    /// than [`MAX_QUEUED_BYTES`] behind.
    pub(crate) receive_pauses: AtomicU64,
    /// Datagrams the receive thread applied itself (inline).
    applied_inline: AtomicU64,
    /// Batches the receive thread handed over to the ingest thread.
    batches_handed_over: AtomicU64,
    queued_bytes: AtomicUsize,
    /// Batches handed over and not yet applied: the inline path's guard.
    /// Counted apart from `queued_bytes`, which a batch of empty datagrams
    /// leaves at 0.
    pending_batches: AtomicUsize,
    /// Set to stop both threads.
    pub(crate) stop: AtomicBool,
    /// Messages subscribers missed because they were too slow.
    pub(crate) lagged: AtomicU64,
    /// The batched streams of the UI (fed by [`Shared::apply`] too).
    pub(crate) batches: Arc<crate::ingest::batch::Batches>,
    /// `slow_clear` messages published, changed under the state lock: a
    /// subscriber that lagged across one re-syncs its slow list.
    pub(crate) slow_clears: AtomicU64,
}

impl Shared {
    /// New shared state with a broadcast channel of `capacity` messages.
    pub fn new(state: State, capacity: usize) -> Arc<Shared> {
        let (tx, _) = broadcast::channel(capacity);
        Arc::new(Shared {
            state: Mutex::new(state),
            tx,
            receive_pauses: AtomicU64::new(0),
            applied_inline: AtomicU64::new(0),
            batches_handed_over: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
            pending_batches: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            lagged: AtomicU64::new(0),
            batches: Arc::default(),
            slow_clears: AtomicU64::new(0),
        })
    }

    /// Locks the state (a poisoned lock is still usable: the model is
    /// consistent between datagrams).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a message to current subscribers (no-op without any).
    pub(crate) fn publish(&self, msg: String) {
        let _ = self.tx.send(Arc::from(msg));
    }

    /// The state if nobody holds its lock right now (never waits).
    fn try_lock(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(st) => Some(st),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// True while any WebSocket client (per-datagram or batched) listens.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0 || self.batches.active()
    }

    /// Applies datagrams, in order, to the locked state and publishes what
    /// they changed: the one apply of both receive paths.
    fn apply<'a>(&self, st: &mut State, datagrams: impl IntoIterator<Item = &'a [u8]>) {
        let now = Instant::now();
        let publish = self.tx.receiver_count() > 0;
        let batching = self.batches.active();
        for d in datagrams {
            if publish || batching {
                let u = st.ingest(d, now);
                let js = if publish {
                    json::update_json(&u).map(Arc::<str>::from)
                } else {
                    None
                };
                if batching {
                    self.batches.feed(st, &u, js.as_deref());
                }
                if let Some(js) = js {
                    let _ = self.tx.send(js);
                }
            } else {
                // Nobody to tell: read in place, no owned sample.
                st.ingest_quiet(d, now);
            }
        }
    }

    /// Applies a batch of datagrams.
    pub fn ingest_batch(&self, batch: &Batch) {
        self.apply(&mut self.lock(), batch.iter());
    }
}

/// Handles of the two threads.
pub(crate) struct Threads {
    recv: std::thread::JoinHandle<()>,
    ingest: std::thread::JoinHandle<()>,
}

impl Threads {
    /// Waits for both threads after [`Shared::stop`] was set.
    pub(crate) fn join(self) {
        let _ = self.recv.join();
        let _ = self.ingest.join();
    }
}

/// Datagrams handed from the receive thread to the ingest thread, stored
/// back to back (one allocation per batch, not per datagram).
#[derive(Default)]
pub struct Batch {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    /// Appends one datagram.
    pub fn push(&mut self, d: &[u8]) {
        self.bytes.extend_from_slice(d);
        self.ends.push(self.bytes.len());
    }

    /// Datagrams held.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Bytes of all datagrams.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The datagrams in arrival order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let d = &self.bytes[start..end];
            start = end;
            d
        })
    }
}

/// Datagrams read per `recvmmsg` call at most.
const VLEN: usize = 32;

/// Bytes of a datagram received into its dense slot: every datagram a
/// reporter sends ([`wire::MAX_DATAGRAM`]), plus one cache line so that the
/// slots do not all start on the same cache set.
const SLOT: usize = wire::MAX_DATAGRAM + 64;

/// `recvmmsg` into `VLEN` messages of [`wire::RECV_CAPACITY`] bytes each: one
/// system call for every datagram queued (the kernel queue is shallow, so
/// under load each call returns several). Each message has two parts: a
/// [`SLOT`]-byte slot in one dense area (what every well-formed datagram
/// fits in: the kernel's copy and our reads stay in a few hot pages) and an
/// overflow region for the rest, touched only by a larger datagram, which
/// is then joined into one buffer. The datagrams stay in these buffers
/// until the next call.
struct MultiRecv {
    slots: Vec<u8>,
    overflow: Vec<u8>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Datagrams the last call received.
    received: usize,
    /// Larger-than-slot datagrams of the last call, joined, by index.
    joined: Vec<(usize, Vec<u8>)>,
}

// SAFETY: the raw pointers in `iovs`/`hdrs` point into `slots`, `overflow`
// and `iovs`, heap memory owned by the same value, used by one thread at a
// time.
unsafe impl Send for MultiRecv {}

impl MultiRecv {
    const OVERFLOW: usize = wire::RECV_CAPACITY - SLOT;

    fn new() -> MultiRecv {
        let mut slots = vec![0u8; VLEN * SLOT];
        let mut overflow = vec![0u8; VLEN * Self::OVERFLOW];
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(2 * VLEN);
        for i in 0..VLEN {
            iovs.push(libc::iovec {
                // SAFETY: in bounds: i < VLEN.
                iov_base: unsafe { slots.as_mut_ptr().add(i * SLOT) } as *mut libc::c_void,
                iov_len: SLOT,
            });
            iovs.push(libc::iovec {
                // SAFETY: in bounds: i < VLEN.
                iov_base: unsafe { overflow.as_mut_ptr().add(i * Self::OVERFLOW) }
                    as *mut libc::c_void,
                iov_len: Self::OVERFLOW,
            });
        }
        let hdrs = (0..VLEN)
            .map(|i| {
                // SAFETY: all-zero is a valid mmsghdr (null name/control).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                // SAFETY: in bounds: 2 * i + 1 < 2 * VLEN.
                h.msg_hdr.msg_iov = unsafe { iovs.as_mut_ptr().add(2 * i) };
                h.msg_hdr.msg_iovlen = 2;
                h
            })
            .collect();
        MultiRecv {
            slots,
            overflow,
            iovs,
            hdrs,
            received: 0,
            joined: Vec::new(),
        }
    }

    /// Receives up to `VLEN` datagrams (read them with
    /// [`MultiRecv::received`]); blocking (up to the socket's read timeout)
    /// for the first one unless `dontwait`.
    fn recv(&mut self, sock: &UnixDatagram, dontwait: bool) -> std::io::Result<usize> {
        debug_assert_eq!(self.iovs.len(), 2 * VLEN);
        let flags = if dontwait {
            libc::MSG_DONTWAIT
        } else {
            libc::MSG_WAITFORONE
        };
        // SAFETY: valid fd; `hdrs` holds VLEN headers whose two iovecs each
        // point at a distinct SLOT-byte region of `slots` and a distinct
        // OVERFLOW-byte region of `overflow`, all alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                VLEN as libc::c_uint,
                flags as _,
                std::ptr::null_mut(),
            )
        };
        self.received = 0;
        self.joined.clear();
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.received = n as usize;
        for i in 0..self.received {
            let len = (self.hdrs[i].msg_len as usize).min(wire::RECV_CAPACITY);
            if len > SLOT {
                let mut d = Vec::with_capacity(len);
                d.extend_from_slice(&self.slots[i * SLOT..(i + 1) * SLOT]);
                let off = i * Self::OVERFLOW;
                d.extend_from_slice(&self.overflow[off..off + len - SLOT]);
                self.joined.push((i, d));
            }
        }
        Ok(self.received)
    }

    /// The datagrams of the last call, in arrival order.
    fn received(&self) -> impl Iterator<Item = &[u8]> {
        let mut joined = self.joined.iter().peekable();
        self.hdrs[..self.received]
            .iter()
            .enumerate()
            .map(move |(i, h)| {
                if let Some((_, d)) = joined.next_if(|(j, _)| *j == i) {
                    return &d[..];
                }
                let len = (h.msg_len as usize).min(SLOT);
                &self.slots[i * SLOT..i * SLOT + len]
            })
    }
}

/// Exit status of `serve` when its receive or ingest thread panicked
/// (`EX_SOFTWARE`).
pub(crate) const EXIT_THREAD_PANICKED: i32 = 70;

/// Ends the process when the thread it lives in unwinds from a panic. A
/// dead receive or ingest thread would leave `serve` answering HTTP with a
/// state that never changes again, which nobody would notice; exiting
/// (after the panic message, which the default hook has printed) lets the
/// service manager restart it (conf-examples: `Restart=on-failure`).
struct ExitIfPanicking(&'static str);

impl Drop for ExitIfPanicking {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!(
                "the {} thread panicked; exiting with status {EXIT_THREAD_PANICKED}",
                self.0
            );
            std::process::exit(EXIT_THREAD_PANICKED);
        }
    }
}

/// Starts the receive and ingest threads on a bound socket.
pub(crate) fn start(socket: UnixDatagram, shared: Arc<Shared>) -> std::io::Result<Threads> {
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let (tx, rx) = mpsc::channel::<Batch>();
    // Applied batches go back to the receive thread for reuse, so batch
    // buffers are not allocated (and, when large, mapped) every time. Only
    // a few, and only small ones, are kept: what a fill once queued is
    // given back.
    let (spare_tx, spare_rx) = mpsc::sync_channel::<Batch>(8);
    let sh = shared.clone();
    let recv = std::thread::Builder::new()
        .name("telemetry-recv".into())
        .spawn(move || {
            let _exit = ExitIfPanicking("receive");
            let mut mr = MultiRecv::new();
            while !sh.stop.load(Ordering::Relaxed) {
                // Back-pressure: stop reading while the ingest thread is far
                // behind, rather than accept datagrams and drop them.
                if sh.queued_bytes.load(Ordering::Relaxed) > MAX_QUEUED_BYTES {
                    sh.receive_pauses.fetch_add(1, Ordering::Relaxed);
                    while sh.queued_bytes.load(Ordering::Relaxed) > MAX_QUEUED_BYTES / 2
                        && !sh.stop.load(Ordering::Relaxed)
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                match mr.recv(&socket, false) {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => {
                        tracing::error!("receive failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                };
                // Inline: with nothing handed over still to apply (the
                // ingest thread decrements only after applying, and only
                // this thread increments), these datagrams come next in
                // arrival order; apply them from the receive buffers if the
                // lock is free right now. Acquire pairs with the Release of
                // the decrement: the batch applied before it is visible.
                // Only while no WebSocket client subscribes: a subscriber's
                // messages are serialised per datagram (many µs), and that
                // work stays on the ingest thread so this one keeps the
                // 10-deep kernel queue drained.
                if sh.pending_batches.load(Ordering::Acquire) == 0 && !sh.has_subscribers() {
                    if let Some(mut st) = sh.try_lock() {
                        sh.apply(&mut st, mr.received());
                        drop(st);
                        sh.applied_inline
                            .fetch_add(mr.received as u64, Ordering::Relaxed);
                        continue;
                    }
                }
                // Hand-off: copy into a batch, drain whatever else is queued
                // without blocking, and leave it to the ingest thread.
                let mut batch = spare_rx.try_recv().unwrap_or_else(|_| Batch {
                    bytes: Vec::with_capacity(64 << 10),
                    ends: Vec::with_capacity(256),
                });
                loop {
                    mr.received().for_each(|d| batch.push(d));
                    if batch.len() >= 4096 {
                        break;
                    }
                    match mr.recv(&socket, true) {
                        Ok(n) if n > 0 => {}
                        _ => break,
                    }
                }
                sh.queued_bytes.fetch_add(batch.bytes(), Ordering::Relaxed);
                sh.pending_batches.fetch_add(1, Ordering::Relaxed);
                sh.batches_handed_over.fetch_add(1, Ordering::Relaxed);
                if tx.send(batch).is_err() {
                    break;
                }
            }
        })?;
    let sh = shared;
    let ingest = std::thread::Builder::new()
        .name("telemetry-ingest".into())
        .spawn(move || {
            let _exit = ExitIfPanicking("ingest");
            let mut next_expiry = Instant::now() + Duration::from_secs(1);
            loop {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(mut batch) => {
                        let bytes = batch.bytes();
                        sh.ingest_batch(&batch);
                        if batch.bytes.capacity() <= 1 << 20 {
                            batch.bytes.clear();
                            batch.ends.clear();
                            let _ = spare_tx.try_send(batch);
                        }
                        sh.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
                        // Only now, after the batch is applied and the lock
                        // released (see the inline path).
                        sh.pending_batches.fetch_sub(1, Ordering::Release);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if sh.stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                let now = Instant::now();
                if now >= next_expiry {
                    sh.lock().expire(now);
                    next_expiry = now + Duration::from_secs(1);
                }
            }
        })?;
    Ok(Threads { recv, ingest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::state::Limits;
    use std::path::Path;

    /// How long a condition gets to come true (the machine may be loaded).
    const PATIENCE: Duration = Duration::from_secs(60);

    /// Datagrams of every size up to the receive buffer come back whole and
    /// in order, whether they fit their slot or spill into the overflow
    /// region (one batch mixing both), and the next call forgets them.
    #[test]
    fn multi_recv_returns_datagrams_of_any_size_whole() {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let sizes = [
            0,
            1,
            300,
            SLOT - 1,
            SLOT,
            SLOT + 1,
            20_000,
            SLOT,
            wire::RECV_BUFFER,
            7,
            // Larger than any datagram taken: cut one byte past the limit,
            // so the model can refuse it.
            wire::RECV_BUFFER + 5_000,
        ];
        let make = |n: usize, k: usize| -> Vec<u8> {
            (0..n).map(|i| (i * 31 + k * 7 + i / 251) as u8).collect()
        };
        let mut mr = MultiRecv::new();
        let mut got: Vec<Vec<u8>> = Vec::new();
        for (k, &n) in sizes.iter().enumerate() {
            a.send(&make(n, k)).unwrap();
            // Keep the kernel queue (10 deep here) from filling.
            if k % 4 == 3 {
                mr.recv(&b, true).unwrap();
                got.extend(mr.received().map(<[u8]>::to_vec));
            }
        }
        while let Ok(n) = mr.recv(&b, true) {
            if n == 0 {
                break;
            }
            got.extend(mr.received().map(<[u8]>::to_vec));
        }
        assert_eq!(got.len(), sizes.len());
        for (k, (&n, d)) in sizes.iter().zip(&got).enumerate() {
            let n = n.min(wire::RECV_CAPACITY);
            assert_eq!(d.len(), n, "datagram {k}");
            assert!(d[..] == make(n, k)[..], "datagram {k} ({n} bytes) differs");
        }
        a.send(&make(5, 0)).unwrap();
        assert_eq!(mr.recv(&b, true).unwrap(), 1);
        assert_eq!(mr.received().collect::<Vec<_>>(), vec![&make(5, 0)[..]]);
    }

    /// A receive or ingest thread that panics ends the process with
    /// [`EXIT_THREAD_PANICKED`] (run in a child process: this test binary
    /// again, asked for the one test below with an environment variable).
    #[test]
    fn a_panicking_pipeline_thread_ends_the_process() {
        const CHILD: &str = "MOD_WSGI_TELEMETRY_TEST_PANIC_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let t = std::thread::spawn(|| {
                let _exit = ExitIfPanicking("test");
                panic!("deliberate");
            });
            let _ = t.join();
            // Not reached: the thread's guard exits the process.
            std::process::exit(0);
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ingest::receive::tests::a_panicking_pipeline_thread_ends_the_process",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(EXIT_THREAD_PANICKED),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("deliberate"));
    }

    /// A running receive path on a socket in its own directory.
    struct Pipeline {
        shared: Arc<Shared>,
        threads: Option<Threads>,
        _dir: tempfile::TempDir,
        sock: std::path::PathBuf,
    }

    impl Pipeline {
        fn start(limits: Limits) -> Pipeline {
            let dir = tempfile::tempdir().unwrap();
            let sock = dir.path().join("t.sock");
            let socket = UnixDatagram::bind(&sock).unwrap();
            let shared = Shared::new(State::new(limits), 16);
            let threads = start(socket, shared.clone()).unwrap();
            Pipeline {
                shared,
                threads: Some(threads),
                _dir: dir,
                sock,
            }
        }

        fn received(&self) -> u64 {
            self.shared.lock().total_received
        }
    }

    impl Drop for Pipeline {
        fn drop(&mut self) {
            self.shared.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.threads.take() {
                t.join();
            }
        }
    }

    /// A header-only periodic datagram of `pid` with `seq`.
    fn datagram(pid: u32, seq: u32) -> [u8; wire::HEADER_LEN] {
        wire::Header::new(wire::Kind::PROCESS, pid, seq, 1.0e9 + seq as f64).to_bytes()
    }

    /// Sends `seqs` of every pid of `pids`, interleaved, blocking while the
    /// socket's queue is full (lossless).
    fn send(sock: &Path, pids: &[u32], seqs: std::ops::RangeInclusive<u32>) {
        let tx = UnixDatagram::unbound().unwrap();
        for seq in seqs {
            for &pid in pids {
                tx.send_to(&datagram(pid, seq), sock).unwrap();
            }
        }
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !done() {
            assert!(t0.elapsed() < PATIENCE, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn arrival_order_is_kept_across_hand_off_and_inline() {
        let pids = [101, 102, 103];
        let per_round = 600u32;
        let rounds = 4u32;
        let p = Pipeline::start(Limits {
            samples_per_process: (per_round * rounds) as usize,
            ..Limits::default()
        });
        let mut sent = 0u64;
        for round in 0..rounds {
            let first = round * per_round + 1;
            let half = first + per_round / 2;
            {
                // Lock held: every datagram goes to a batch for the ingest
                // thread, which waits for the lock.
                let _held = p.shared.lock();
                send(&p.sock, &pids, first..=half - 1);
                sent += u64::from(half - first) * pids.len() as u64;
                let pending = (half - first) as usize * pids.len() * wire::HEADER_LEN;
                wait_until("the held-back datagrams to be handed over", || {
                    p.shared.queued_bytes.load(Ordering::Relaxed) == pending
                });
            }
            // Released with hundreds of datagrams pending: what arrives now
            // must wait for them (hand-off) until the ingest thread has
            // applied them all, and only then go inline.
            let last = first + per_round - 1;
            send(&p.sock, &pids, half..=last - 1);
            sent += u64::from(last - half) * pids.len() as u64;
            wait_until("every datagram applied", || p.received() == sent);
            // Nothing pending now: the round's last datagrams go inline
            // (unless the expiry timer holds the lock just then). On a busy
            // machine the ingest thread may not have caught up before the
            // burst above ended, so that burst alone may have gone inline
            // nowhere.
            send(&p.sock, &pids, last..=last);
            sent += pids.len() as u64;
            wait_until("the round's last datagrams applied", || {
                p.received() == sent
            });
        }
        assert!(p.shared.batches_handed_over.load(Ordering::Relaxed) > 0);
        assert!(
            p.shared.applied_inline.load(Ordering::Relaxed) > 0,
            "no datagram was applied inline"
        );
        let st = p.shared.lock();
        assert_eq!(st.total_received, sent);
        assert_eq!(st.decode_errors, 0);
        assert_eq!(st.seq_gaps, 0, "datagrams applied out of arrival order");
        for pid in pids {
            let seqs: Vec<u32> = st.processes[&pid]
                .samples
                .iter()
                .map(|s| s.header().seq)
                .collect();
            let want: Vec<u32> = (1..=per_round * rounds).collect();
            assert!(seqs == want, "pid {pid}: samples out of arrival order");
        }
    }

    #[test]
    fn with_a_subscriber_every_datagram_is_handed_over() {
        let p = Pipeline::start(Limits::default());
        let _rx = p.shared.tx.subscribe();
        send(&p.sock, &[301], 1..=50);
        wait_until("the datagrams applied", || p.received() == 50);
        assert_eq!(p.shared.applied_inline.load(Ordering::Relaxed), 0);
        assert!(p.shared.batches_handed_over.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn expiry_runs_when_every_datagram_is_applied_inline() {
        // The ingest thread gets no batch at all here; its timer alone
        // must drop the stale process. (A datagram that arrived while the
        // timer held the lock would be handed over: then start again.)
        for _attempt in 0..3 {
            let p = Pipeline::start(Limits {
                stale_after: Duration::from_millis(300),
                ..Limits::default()
            });
            let before_send = Instant::now();
            send(&p.sock, &[201], 1..=3);
            wait_until("the datagrams applied", || p.received() == 3);
            if p.shared.batches_handed_over.load(Ordering::Relaxed) > 0 {
                continue;
            }
            assert_eq!(p.shared.applied_inline.load(Ordering::Relaxed), 3);
            assert!(p.shared.lock().processes.contains_key(&201));
            wait_until("the stale process to expire", || {
                !p.shared.lock().processes.contains_key(&201)
            });
            assert!(
                before_send.elapsed() >= Duration::from_millis(300),
                "expired before it was stale"
            );
            assert_eq!(p.shared.batches_handed_over.load(Ordering::Relaxed), 0);
            return;
        }
        panic!("every attempt had a datagram handed over");
    }
}
