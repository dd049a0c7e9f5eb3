//! What a daemon process knows about itself: mod_wsgi's exported globals
//! (is this a daemon, its group, has its shutdown begun, is Python up),
//! this daemon's reporter, and the STOPPING / STOPPED state with the
//! shutdown reason.

use std::ffi::{c_char, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering::*};
use std::sync::Arc;
use std::time::Instant;

use apache_headers::macros as m;
use reporter_core::daemon::{self, DaemonRequests, GroupConf};
use reporter_core::runtime::Process;
use reporter_core::sys::{self, SocketSink};

use crate::ffi::base::sym::{read_int, read_ptr, sym};
use crate::ffi::signals::signal_seen;

/// mod_wsgi's exported globals (addresses, from dlsym in `post_config`).
static SYM_DAEMON_PROCESS: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static SYM_DAEMON_GROUP: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static SYM_DAEMON_SHUTDOWN: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
static SYM_PYTHON_INITIALIZED: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// Looks up mod_wsgi's globals (Apache parent, `post_config`); the
/// children inherit the addresses.
pub(super) fn find_mod_wsgi_globals() {
    SYM_DAEMON_PROCESS.store(sym(c"wsgi_daemon_process"), Relaxed);
    SYM_DAEMON_GROUP.store(sym(c"wsgi_daemon_group"), Relaxed);
    SYM_DAEMON_SHUTDOWN.store(sym(c"wsgi_daemon_shutdown"), Relaxed);
    SYM_PYTHON_INITIALIZED.store(sym(c"wsgi_python_initialized"), Relaxed);
}

/// The address of mod_wsgi's `wsgi_daemon_process` (NULL: a mod_wsgi
/// without daemon mode, or none loaded); any address inside mod_wsgi.so.
pub(super) fn daemon_process_symbol() -> *mut c_void {
    SYM_DAEMON_PROCESS.load(Relaxed)
}

/// Whether this process is a mod_wsgi daemon process.
pub(super) fn in_daemon() -> bool {
    // SAFETY: NULL or the address of mod_wsgi's `WSGIDaemonProcess
    // *wsgi_daemon_process`.
    !unsafe { read_ptr(SYM_DAEMON_PROCESS.load(Relaxed)) }.is_null()
}

/// Whether mod_wsgi has begun this daemon's shutdown.
pub(super) fn shutdown_begun() -> bool {
    // SAFETY: NULL or the address of mod_wsgi's `int wsgi_daemon_shutdown`.
    unsafe { read_int(SYM_DAEMON_SHUTDOWN.load(Relaxed)) != 0 }
}

/// Whether mod_wsgi has initialised Python in this process.
pub(super) fn python_initialized() -> bool {
    // SAFETY: NULL or the address of mod_wsgi's `int wsgi_python_initialized`.
    unsafe { read_int(SYM_PYTHON_INITIALIZED.load(Relaxed)) != 0 }
}

/// This daemon's group name (cut to what field 7 carries).
pub(super) fn group_name() -> Vec<u8> {
    // SAFETY: NULL or the address of mod_wsgi's `const char
    // *wsgi_daemon_group`.
    let p = unsafe { read_ptr(SYM_DAEMON_GROUP.load(Relaxed)) } as *const c_char;
    // SAFETY: NULL or mod_wsgi's NUL-terminated group name.
    let s = unsafe { m::cstr(p) };
    s[..s.len().min(daemon::GROUP_NAME_MAX)].to_vec()
}

/// This daemon's reporter (set once, never freed: the process is ending
/// when it stops being used).
pub(in crate::ffi) struct Daemon {
    pub(in crate::ffi) p: Arc<Process<SocketSink>>,
    pub(in crate::ffi) req: DaemonRequests,
    pub(super) group: GroupConf,
    pub(super) started: Instant,
}
static DAEMON: AtomicPtr<Daemon> = AtomicPtr::new(null_mut());
/// 0 = running, 1 = STOPPING sent, 2 = STOPPED sent.
static STOP_STATE: AtomicU8 = AtomicU8::new(0);
/// The reason mod_wsgi published for the shutdown: 0 = none published yet,
/// else 1 + `daemon::mod_wsgi_reason_code`.
static PUBLISHED: AtomicU8 = AtomicU8::new(0);

/// This daemon's reporter, once started.
pub(in crate::ffi) fn daemon() -> Option<&'static Daemon> {
    // SAFETY: NULL or set once from Box::into_raw in `set_daemon` and
    // never freed.
    unsafe { DAEMON.load(Acquire).as_ref() }
}

/// Publishes this daemon's started reporter (once).
pub(super) fn set_daemon(d: Box<Daemon>) {
    DAEMON.store(Box::into_raw(d), Release);
}

/// mod_wsgi begins this daemon's shutdown and names its reason (from the
/// hook on `wsgi_publish_process_stopping`, in the daemon's main thread):
/// STOPPING goes out at once with that reason.
pub(super) fn mod_wsgi_stopping(reason: &[u8]) {
    let code = daemon::mod_wsgi_reason_code(reason) + 1;
    let _ = PUBLISHED.compare_exchange(0, code, AcqRel, Relaxed);
    if let Some(d) = daemon() {
        send_stopping(d);
    }
}

/// Whether mod_wsgi has named its shutdown reason.
pub(super) fn reason_published() -> bool {
    PUBLISHED.load(Acquire) != 0
}

fn reason(d: &Daemon) -> &'static [u8] {
    let sig = signal_seen();
    let sig = (sig != 0).then_some(sig);
    let published = match PUBLISHED.load(Acquire) {
        0 => None,
        c => Some(daemon::mod_wsgi_reason(c - 1)),
    };
    if let Some(r) =
        daemon::published_stop_reason(published, sig, &d.group, d.p.acc.recorded_total())
    {
        return r;
    }
    let oldest = d.p.acc.oldest_in_flight_us(sys::now_us()) as f64 / 1e6;
    daemon::stop_reason(
        sig,
        &d.group,
        d.p.acc.recorded_total(),
        d.started.elapsed().as_secs_f64(),
        oldest,
    )
}

/// Sends STOPPING with the shutdown reason (once).
pub(super) fn send_stopping(d: &Daemon) {
    if STOP_STATE.compare_exchange(0, 1, AcqRel, Relaxed).is_ok() {
        d.p.stopping(reason(d));
    }
}

/// Sends STOPPING if not yet sent, then the final partial interval and
/// STOPPED (once; from the `atexit` handler).
pub(super) fn send_stopped(d: &Daemon) {
    send_stopping(d);
    if STOP_STATE.swap(2, AcqRel) != 2 {
        d.p.shutdown(reason(d));
    }
}
