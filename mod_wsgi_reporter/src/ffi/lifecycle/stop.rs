//! The end of an MPM child: picking the reason it stops (from what httpd
//! tells it, see docs/module.md), STOPPING at `child_stopping`, the final
//! partial interval and STOPPED when its pool is destroyed at exit, and the
//! connection count that tells `maximum_requests` apart.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};

use apache_headers as ap;

use crate::ffi::base::sym::{fnptr, sym};
use crate::ffi::base::{guard, mpm_query, OK};
use crate::ffi::process::process;
use crate::ffi::signals::signal_seen;

/// Connections accepted by this child (for `maximum_requests`).
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
/// Reason chosen in child_stopping (index into REASONS, 0 = none yet).
static STOP_REASON: AtomicU8 = AtomicU8::new(0);
const REASONS: [&[u8]; 4] = [
    b"",
    b"graceful_signal",
    b"shutdown_signal",
    b"maximum_requests",
];

/// (this child's generation, the generation the parent wants running).
fn generations() -> (c_int, i64) {
    let mine = mpm_query(ap::AP_MPMQ_GENERATION);
    // SAFETY: the scoreboard is mapped in every child; read-only access
    // to one integer the parent updates.
    let running = unsafe {
        let sb = std::ptr::addr_of!(ap::ap_scoreboard_image).read();
        if sb.is_null() || (*sb).global.is_null() {
            -1
        } else {
            std::ptr::addr_of!((*(*sb).global).running_generation).read_volatile() as i64
        }
    };
    (mine, running)
}

/// `MaxConnectionsPerChild` (0: unlimited).
pub(super) fn max_connections_per_child() -> c_int {
    // SAFETY: plain read of an httpd global set at config time.
    unsafe { std::ptr::addr_of!(ap::ap_max_requests_per_child).read() }
}

/// prefork only: `Some(ungraceful)` when the parent had already been told
/// to stop or restart when it forked this child. prefork forks from its
/// main loop, so a child forked between the parent's signal and the end of
/// that loop iteration starts with the parent's `shutdown_pending` /
/// `restart_pending` set in its copy of the MPM's retained data, leaves as
/// soon as `child_init` returns, and never sees a signal of its own (the
/// parent's SIGTERM, if it comes at all, finds the handler set to ignore).
/// Read through `ap_unixd_mpm_get_retained_data` (httpd 2.4.35+, looked up
/// at run time, so an older httpd only loses this refinement).
fn parent_signalled_before_fork() -> Option<bool> {
    type Get = unsafe extern "C" fn() -> *mut ap::ap_unixd_mpm_retained_data;
    let f = sym(c"ap_unixd_mpm_get_retained_data");
    if f.is_null() {
        return None;
    }
    // SAFETY: the function httpd exports under that name, with the
    // signature of unixd.h; it returns the MPM's retained data (this
    // process's copy), or NULL.
    let r = unsafe { fnptr::<Get>(f)() };
    if r.is_null() {
        return None;
    }
    // SAFETY: a live struct of the layout bindgen read from unixd.h; the
    // flags are volatile ints written only by signal handlers.
    unsafe {
        let shutdown = std::ptr::addr_of!((*r).shutdown_pending).read_volatile();
        let restart = std::ptr::addr_of!((*r).restart_pending).read_volatile();
        if shutdown == 0 && restart == 0 {
            return None;
        }
        Some(std::ptr::addr_of!((*r).is_ungraceful).read_volatile() != 0)
    }
}

/// Picks the shutdown reason from what httpd tells a child (see
/// docs/module.md for the mapping and its limits):
/// * prefork reports every exit as non-graceful, so there the signal the
///   child received decides (see below);
/// * same generation and the child reached `MaxConnectionsPerChild` (the
///   listener stops before the last connection reaches pre_connection, so
///   one short counts) = `maximum_requests`;
/// * otherwise graceful = `graceful_signal`, else `shutdown_signal`.
fn stop_reason(graceful: bool) -> u8 {
    let (mine, running) = generations();
    let restarted = running >= 0 && running != mine as i64;
    let max = max_connections_per_child();
    let threaded = mpm_query(ap::AP_MPMQ_IS_THREADED) != 0;
    if !restarted && max > 0 && CONNECTIONS.load(Relaxed) + 1 >= max as u64 {
        3
    } else if !threaded {
        // prefork says nothing about gracefulness; the signal does: SIGHUP
        // (hard restart), SIGTERM/SIGINT (stop) end a child at once, while
        // a graceful restart or an idle retirement comes through the pipe
        // of death (or SIGUSR1) and lets the connection finish.
        match signal_seen() {
            libc::SIGHUP | libc::SIGTERM | libc::SIGINT => 2,
            _ => match parent_signalled_before_fork() {
                Some(true) => 2,
                _ => 1,
            },
        }
    } else if graceful {
        1
    } else {
        2
    }
}

/// httpd's `child_stopping` hook: STOPPING with the reason.
///
/// # Safety
/// Only for httpd, as its `child_stopping` hook.
pub(in crate::ffi) unsafe extern "C" fn child_stopping(_p: *mut ap::apr_pool_t, graceful: c_int) {
    guard((), || {
        let Some(p) = process() else { return };
        let r = stop_reason(graceful != 0);
        if STOP_REASON.compare_exchange(0, r, AcqRel, Relaxed).is_ok() {
            p.stopping(REASONS[r as usize]);
        }
    })
}

/// The child pool's cleanup (child exit): the final partial interval and
/// STOPPED.
///
/// # Safety
/// Only for APR, as the child pool's cleanup registered in `child_init`.
pub(super) unsafe extern "C" fn child_exit(_data: *mut c_void) -> ap::apr_status_t {
    guard(0, || {
        let Some(p) = process() else { return 0 };
        let mut r = STOP_REASON.load(Acquire);
        if r == 0 {
            // No child_stopping notification (e.g. a signal-driven exit).
            r = stop_reason(false);
            STOP_REASON.store(r, Release);
            p.stopping(REASONS[r as usize]);
        }
        p.shutdown(REASONS[r as usize]);
        0
    })
}

/// httpd's `pre_connection` hook: counts the connection.
///
/// # Safety
/// Only for httpd, as its `pre_connection` hook.
pub(in crate::ffi) unsafe extern "C" fn pre_connection(
    _c: *mut ap::conn_rec,
    _csd: *mut c_void,
) -> c_int {
    guard(OK, || {
        if process().is_some() {
            CONNECTIONS.fetch_add(1, Relaxed);
        }
        OK
    })
}
