//! The HTTP listener: accepts connections up to `--max-connections`, serves
//! each with hyper's HTTP/1 (upgrades allowed, for the WebSocket) and
//! enforces the per-connection timeouts in the socket layer, so no client
//! can hold a descriptor, a thread or a response's memory indefinitely:
//!
//! - `--header-timeout`: a request head must arrive within this time of the
//!   connection opening or of its first byte;
//! - `--idle-timeout`: a kept-alive connection between requests;
//! - `--write-timeout`: a write (response body, WebSocket frame) that makes
//!   no progress for this long fails, and the connection is closed.
//!
//! Each request carries a [`ConnHandle`] in its extensions: how long its
//! connection's write has stalled, and a way to cut it, with which a
//! stalled snapshot gives its place to a new request (`super::slots`).
//!
//! At `--max-connections`, a new connection takes the place of the one
//! that has waited longest for a request head (or, kept alive, for its
//! next request); only when every connection is busy answering or is a
//! WebSocket is it refused. Clients that hold connections open without
//! asking anything, and reopen them when closed, therefore cannot keep a
//! fresh client out: it is the newest, and the longest waiter goes.
//!
//! It knows nothing of the routes: it runs any warp filter.

use crate::api::http_counters::HttpCounters;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use warp::http::StatusCode;
use warp::hyper::body::{Body, Frame, SizeHint};

/// Connection limits and timeouts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnLimits {
    /// Most open HTTP connections (WebSocket ones included).
    pub(crate) max_connections: usize,
    /// See the module documentation.
    pub(crate) header_timeout: Duration,
    /// See the module documentation.
    pub(crate) idle_timeout: Duration,
    /// See the module documentation.
    pub(crate) write_timeout: Duration,
}

/// Descriptors kept free for the datagram socket, the listener, log files
/// and the accept that answers "too many connections".
const RESERVED_FDS: u64 = 32;

/// Raises the soft descriptor limit to the hard one and returns
/// `max_connections` lowered, if needed, to fit below it (with the
/// lowered value's reason, to log).
pub(crate) fn fit_connections(max_connections: usize) -> (usize, Option<String>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (max_connections, None);
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    let room = soft.saturating_sub(RESERVED_FDS).max(1);
    if (max_connections as u64) <= room {
        return (max_connections, None);
    }
    let fitted = room as usize;
    (
        fitted,
        Some(format!(
            "--max-connections {max_connections} lowered to {fitted}: the open-files limit is {soft} (raise LimitNOFILE= / ulimit -n)"
        )),
    )
}

/// Where a connection is in its request/response cycle; decides which
/// read deadline applies.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Waiting for (the rest of) a request head since this instant.
    Head(Instant),
    /// A request is being answered: no read deadline.
    Busy,
    /// Kept alive after a response since this instant.
    Idle(Instant),
    /// Handed over to the WebSocket: its own logic and the write timeout.
    Upgraded,
    /// Closed to make room for a new connection: its next read fails.
    Evicted,
}

/// The open connections, for [`make_room`]. Weak: a connection's slot is
/// freed by its drop, the list is only pruned.
#[derive(Default)]
struct Registry {
    conns: Mutex<Vec<std::sync::Weak<Conn>>>,
}

impl Registry {
    fn add(&self, c: &Arc<Conn>, max: usize) {
        if let Ok(mut v) = self.conns.lock() {
            if v.len() >= 2 * max.max(16) {
                v.retain(|w| w.strong_count() > 0);
            }
            v.push(Arc::downgrade(c));
        }
    }

    /// Evicts the open connection waiting longest for a request; false if
    /// every one is busy or upgraded. A walk of the open connections, made
    /// only at the cap.
    fn make_room(&self) -> bool {
        let Ok(mut v) = self.conns.lock() else {
            return false;
        };
        v.retain(|w| w.strong_count() > 0);
        // The phase may change between the walk and the eviction (a head
        // arrives): `evict` checks again, and the next oldest is tried.
        let mut waiting: Vec<(Instant, Arc<Conn>)> = v
            .iter()
            .filter_map(|w| w.upgrade())
            .filter_map(|c| c.waiting_since().map(|t| (t, c)))
            .collect();
        waiting.sort_by_key(|(t, _)| *t);
        waiting.iter().any(|(_, c)| c.evict())
    }
}

struct Conn {
    phase: Mutex<Phase>,
    /// The task last left waiting for a read: woken when the phase changes,
    /// so a new deadline is armed even if hyper does not read again.
    reader: Mutex<Option<Waker>>,
    /// Since when a write has been waiting for the client to read (none
    /// while writes progress or nothing is being written), and the bytes
    /// then queued in the kernel's send buffer.
    write_stalled_since: Mutex<Option<(Instant, i64)>>,
    /// The socket, to read its send queue; -1 once it is being closed. A
    /// lock, not an atomic: the close waits for a reading in progress, so
    /// the number is never read after it could be reused.
    fd: Mutex<std::os::fd::RawFd>,
    /// The task last left waiting for a write: woken by [`Conn::abort`].
    writer: Mutex<Option<Waker>>,
    /// Cut by [`ConnHandle::abort`]: every read and write fails.
    aborted: AtomicBool,
}

/// A connection as the routes see it (in each request's extensions): how
/// long its writes have stalled, and a way to cut it, for giving a
/// snapshot's place to a new request (see `super::slots`).
#[derive(Clone)]
pub(crate) struct ConnHandle(Arc<Conn>);

impl ConnHandle {
    /// How long its pending write has waited for the client to read;
    /// `None` if no write is waiting or it has been cut already.
    ///
    /// The kernel wakes a pending write only once much of a large send
    /// buffer (megabytes on loopback) has drained, so a reader that keeps
    /// reading can leave a write pending for seconds: a send queue that
    /// shrank since the wait began counts as progress, and the wait starts
    /// again.
    pub(crate) fn write_stalled_for(&self) -> Option<Duration> {
        if self.0.aborted.load(Ordering::SeqCst) {
            return None;
        }
        let mut g = self.0.write_stalled_since.lock().ok()?;
        let (since, queued) = (*g)?;
        let now_queued = self.0.send_queue();
        if now_queued < queued {
            *g = Some((Instant::now(), now_queued));
            return Some(Duration::ZERO);
        }
        Some(since.elapsed())
    }

    /// Cuts the connection: its next read or write fails, and the task
    /// waiting on either is woken so that happens now, not at
    /// `--write-timeout`.
    pub(crate) fn abort(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
        for w in [&self.0.writer, &self.0.reader] {
            if let Some(w) = w.lock().ok().and_then(|mut g| g.take()) {
                w.wake();
            }
        }
    }
}

impl Conn {
    fn new(fd: std::os::fd::RawFd) -> Conn {
        Conn {
            phase: Mutex::new(Phase::Head(Instant::now())),
            reader: Mutex::new(None),
            write_stalled_since: Mutex::new(None),
            fd: Mutex::new(fd),
            writer: Mutex::new(None),
            aborted: AtomicBool::new(false),
        }
    }

    fn set(&self, p: Phase) {
        if let Ok(mut g) = self.phase.lock() {
            *g = p;
        }
        if let Some(w) = self.reader.lock().ok().and_then(|mut r| r.take()) {
            w.wake();
        }
    }

    fn wait_read(&self, cx: &Context<'_>) {
        keep_waker(&self.reader, cx);
    }

    /// A write is pending: remembers its task, and since when it stalls.
    fn wait_write(&self, cx: &Context<'_>) {
        keep_waker(&self.writer, cx);
        if let Ok(mut g) = self.write_stalled_since.lock() {
            if g.is_none() {
                *g = Some((Instant::now(), self.send_queue()));
            }
        }
    }

    fn write_progressed(&self) {
        if let Ok(mut g) = self.write_stalled_since.lock() {
            *g = None;
        }
    }

    /// Bytes in the socket's send queue not yet acknowledged by the client
    /// (`SIOCOUTQ`); `i64::MAX` if unknown, which never reads as progress.
    fn send_queue(&self) -> i64 {
        let fd = self.fd.lock().unwrap_or_else(|e| e.into_inner());
        if *fd < 0 {
            return i64::MAX;
        }
        let mut n: libc::c_int = 0;
        // SAFETY: an ioctl that only writes one int through a valid pointer
        // to a local, on a descriptor that stays open while the lock is
        // held (`Timed::drop` sets -1 under it before the socket closes).
        let r = unsafe { libc::ioctl(*fd, libc::TIOCOUTQ, &mut n) };
        if r == 0 {
            i64::from(n)
        } else {
            i64::MAX
        }
    }

    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    fn get(&self) -> Phase {
        self.phase.lock().map(|g| *g).unwrap_or(Phase::Busy)
    }

    /// Since when it has waited for a request head, if it is waiting.
    fn waiting_since(&self) -> Option<Instant> {
        match self.get() {
            Phase::Head(t) | Phase::Idle(t) => Some(t),
            _ => None,
        }
    }

    /// Marks it evicted if it is still waiting for a request, and wakes
    /// its reader to fail; false if it no longer waits.
    fn evict(&self) -> bool {
        let evicted = match self.phase.lock() {
            Ok(mut g) if matches!(*g, Phase::Head(_) | Phase::Idle(_)) => {
                *g = Phase::Evicted;
                true
            }
            _ => false,
        };
        if evicted {
            if let Some(w) = self.reader.lock().ok().and_then(|mut r| r.take()) {
                w.wake();
            }
        }
        evicted
    }

    fn evicted(&self) -> bool {
        self.get() == Phase::Evicted
    }

    fn bytes_read(&self) {
        if let Ok(mut g) = self.phase.lock() {
            if matches!(*g, Phase::Idle(_)) {
                *g = Phase::Head(Instant::now());
            }
        }
    }

    fn read_deadline(&self, l: &ConnLimits) -> Option<Instant> {
        match self.get() {
            Phase::Head(t) => Some(t + l.header_timeout),
            Phase::Idle(t) => Some(t + l.idle_timeout),
            Phase::Busy | Phase::Upgraded | Phase::Evicted => None,
        }
    }
}

fn keep_waker(slot: &Mutex<Option<Waker>>, cx: &Context<'_>) {
    if let Ok(mut r) = slot.lock() {
        match &*r {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *r = Some(cx.waker().clone()),
        }
    }
}

/// A TCP stream with the read and write deadlines of [`ConnLimits`]; its
/// drop frees the connection's slot.
struct Timed {
    io: TcpStream,
    conn: Arc<Conn>,
    limits: ConnLimits,
    counters: Arc<HttpCounters>,
    open: Arc<AtomicUsize>,
    closed: Arc<tokio::sync::Notify>,
    read_sleep: Pin<Box<Sleep>>,
    read_deadline: Option<Instant>,
    write_sleep: Pin<Box<Sleep>>,
    write_deadline: Option<Instant>,
}

impl Drop for Timed {
    fn drop(&mut self) {
        // Before the socket (a field) closes: see `Conn::fd`.
        *self.conn.fd.lock().unwrap_or_else(|e| e.into_inner()) = -1;
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.closed.notify_waiters();
    }
}

impl Timed {
    /// After a write returned `Pending`: fails once the stall has lasted
    /// `--write-timeout`.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.conn.wait_write(cx);
        // An abort between the write and the waker being stored woke
        // nobody: look again now that it is stored.
        if self.conn.aborted() {
            return Poll::Ready(Err(aborted_error()));
        }
        let deadline = match self.write_deadline {
            Some(d) => d,
            None => {
                let d = Instant::now() + self.limits.write_timeout;
                self.write_sleep.as_mut().reset(d);
                self.write_deadline = Some(d);
                d
            }
        };
        if self.write_sleep.as_mut().poll(cx).is_ready() {
            self.counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("write stalled since {deadline:?}: closing the connection");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading (--write-timeout)",
            )));
        }
        Poll::Pending
    }

    fn wrote(
        &mut self,
        r: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Pending => self.write_stalled(cx),
            done => {
                self.write_deadline = None;
                self.conn.write_progressed();
                done
            }
        }
    }
}

fn aborted_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "stalled snapshot cut for a new request (--state-stall-timeout)",
    )
}

fn evicted_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "closed for a new connection (--max-connections)",
    )
}

impl AsyncRead for Timed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.conn.evicted() {
            return Poll::Ready(Err(evicted_error()));
        }
        if this.conn.aborted() {
            return Poll::Ready(Err(aborted_error()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.conn.wait_read(cx);
                // An eviction between the check above and the waker being
                // stored woke nobody: look again now that it is stored.
                if this.conn.evicted() {
                    return Poll::Ready(Err(evicted_error()));
                }
                if this.conn.aborted() {
                    return Poll::Ready(Err(aborted_error()));
                }
                let Some(deadline) = this.conn.read_deadline(&this.limits) else {
                    return Poll::Pending;
                };
                if this.read_deadline != Some(deadline) {
                    this.read_sleep.as_mut().reset(deadline);
                    this.read_deadline = Some(deadline);
                }
                if this.read_sleep.as_mut().poll(cx).is_ready() {
                    this.counters.read_timeouts.fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within --header-timeout / --idle-timeout",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Timed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.conn.aborted() {
            return Poll::Ready(Err(aborted_error()));
        }
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.conn.aborted() {
            return Poll::Ready(Err(aborted_error()));
        }
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A response body that tells its connection when the response is over
/// (hyper drops it after its last frame).
struct TrackedBody {
    inner: <warp::reply::Response as BodyOf>::Body,
    conn: Arc<Conn>,
    upgraded: bool,
}

/// Names warp's (private) response body type.
trait BodyOf {
    type Body;
}

impl<B> BodyOf for warp::http::Response<B> {
    type Body = B;
}

fn tracked(res: warp::reply::Response, conn: Arc<Conn>) -> warp::http::Response<TrackedBody> {
    let upgraded = res.status() == StatusCode::SWITCHING_PROTOCOLS;
    res.map(|inner| TrackedBody {
        inner,
        conn,
        upgraded,
    })
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.conn.set(if self.upgraded {
            Phase::Upgraded
        } else {
            Phase::Idle(Instant::now())
        });
    }
}

impl Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = warp::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Connections accepted past `--max-connections` while the ones evicted
/// for them are still closing: descriptors out of [`RESERVED_FDS`].
const EVICTION_SLACK: usize = 16;

/// How long the listener waits for an evicted connection to close before
/// it accepts the next one (it closes at its task's next poll).
const EVICTION_WAIT: Duration = Duration::from_millis(100);

/// Resolves once fewer than `below` connections are open.
async fn fewer_open(open: &AtomicUsize, closed: &tokio::sync::Notify, below: usize) {
    loop {
        let notified = closed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if open.load(Ordering::SeqCst) < below {
            return;
        }
        notified.await;
    }
}

/// The whole answer to a connection over `--max-connections`.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 31\r\n\r\ntoo many open HTTP connections\n";

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves `filter` on `listener` until `stop` turns true, then lets the
/// requests in flight finish (kept-alive connections are closed).
pub(crate) async fn serve<F>(
    listener: TcpListener,
    filter: F,
    limits: ConnLimits,
    counters: Arc<HttpCounters>,
    mut stop: watch::Receiver<bool>,
) where
    F: warp::Filter<Extract = (warp::reply::Response,), Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let open = Arc::new(AtomicUsize::new(0));
    let registry = Registry::default();
    let closed = Arc::new(tokio::sync::Notify::new());
    // Every connection task holds a clone; all gone = all finished.
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let mut last_accept_error: Option<std::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(&mut stop) => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of descriptors (or a connection reset before accept):
                // wait a little rather than spin, log once per interval.
                if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!("accept error: {e}");
                    last_accept_error = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let n = open.load(Ordering::SeqCst);
        if n >= limits.max_connections {
            if n < limits.max_connections + EVICTION_SLACK && registry.make_room() {
                counters.connections_evicted.fetch_add(1, Ordering::Relaxed);
                // Clients that reopen at once must not pile up evictions
                // in flight (and reach the slack, where all are refused).
                let _ = tokio::time::timeout(EVICTION_WAIT, fewer_open(&open, &closed, n)).await;
            } else {
                counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                // Best effort: the answer fits any fresh socket's buffer.
                let _ = stream.try_write(TOO_MANY);
                continue;
            }
        }
        open.fetch_add(1, Ordering::SeqCst);
        let conn = Arc::new(Conn::new(std::os::fd::AsRawFd::as_raw_fd(&stream)));
        registry.add(&conn, limits.max_connections);
        let far = Instant::now() + Duration::from_secs(86_400);
        let io = Timed {
            io: stream,
            conn: conn.clone(),
            limits,
            counters: counters.clone(),
            open: open.clone(),
            closed: closed.clone(),
            read_sleep: Box::pin(tokio::time::sleep_until(far)),
            read_deadline: None,
            write_sleep: Box::pin(tokio::time::sleep_until(far)),
            write_deadline: None,
        };
        let svc = warp::service(filter.clone());
        let service = warp::hyper::service::service_fn(move |mut req: warp::http::Request<_>| {
            conn.set(Phase::Busy);
            req.extensions_mut().insert(ConnHandle(conn.clone()));
            let mut svc = svc.clone();
            let conn = conn.clone();
            async move {
                let res = tower_service::Service::call(&mut svc, req).await?;
                Ok::<_, Infallible>(tracked(res, conn))
            }
        });
        let mut stop = stop.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let conn = warp::hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("HTTP connection: {e}");
            }
            drop(alive);
        });
    }
    drop(listener);
    drop(alive);
    let _ = all_done.recv().await;
}
