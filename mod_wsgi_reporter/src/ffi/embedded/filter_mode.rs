//! Embedded mode with filters: our handler hook (before mod_wsgi's) claims
//! each request mod_wsgi will run in this child and tracks it in its pool
//! (`request::filters`); the output filter's end of stream records it with
//! its final status. mod_wsgi's `wsgi_end_request` is hooked, when it can
//! be, so that input httpd reads after the application is done is not
//! counted as the application's.
//!
//! Used when `mod_wsgi_calls` cannot be installed, or when the environment
//! variable `MOD_WSGI_TELEMETRY_FILTERS` is set.

use std::ffi::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering::*};

use apache_headers as ap;

use super::claim::{begin, record};
use super::{mod_wsgi_calls, server_pid};
use crate::ffi::base::conf::has_daemon_groups;
use crate::ffi::base::request::Request;
use crate::ffi::base::sym::fnptr;
use crate::ffi::base::{guard, DECLINED};
use crate::ffi::process::process;
use crate::ffi::request::filters::{track, tracked};
use crate::ffi::request::state::ReqState;

thread_local! {
    /// The mod_wsgi request this thread is running, for the
    /// `wsgi_end_request` hook. Reset at the start of every handler call
    /// (ours runs before mod_wsgi's), so mod_wsgi never reaches the hook
    /// with an earlier request's state here.
    static CURRENT: std::cell::Cell<*mut ReqState> = const { std::cell::Cell::new(null_mut()) };
}

/// mod_wsgi's own `wsgi_end_request` (NULL: not hooked).
static REAL_END_REQUEST: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// mod_wsgi calls its exported `wsgi_end_request()` through its GOT when
/// the application (and the closing of its iterable) is done, in the
/// thread that ran it. In an MPM child (after the fork: nothing else is
/// touched) that entry is pointed here (crate::got), so input read after
/// it (httpd discarding a body the application left unread, on a
/// keep-alive connection) is not counted as the application's input.
/// Optional: without it such reads are counted.
pub(in crate::ffi) fn hook_end_request() {
    // SAFETY: in an MPM child's child_init (no request running yet);
    // `end_request` has the signature of `void wsgi_end_request(void)` and
    // calls the real one, whose address redirect_export stores first.
    unsafe {
        crate::got::redirect_export(
            c"wsgi_end_request",
            end_request as *const () as usize,
            &REAL_END_REQUEST,
        )
    };
}

/// # Safety
/// Only for mod_wsgi.so, through the GOT entry pointed here (`wsgi_end_request`).
unsafe extern "C" fn end_request() {
    guard((), || {
        let st = CURRENT.with(|c| c.replace(null_mut()));
        if !st.is_null() {
            // SAFETY: set by this thread's handler hook for the request
            // mod_wsgi is finishing now (its pool is alive).
            unsafe { (*st).app_done = true };
        }
    });
    let real = REAL_END_REQUEST.load(Acquire);
    if !real.is_null() {
        // SAFETY: mod_wsgi's `void wsgi_end_request(void)` (dlsym).
        unsafe { fnptr::<unsafe extern "C" fn()>(real)() };
    }
}

/// httpd's `handler` hook, run before mod_wsgi's: claims the request if
/// mod_wsgi will run it in this process.
///
/// # Safety
/// Only for httpd, as its `handler` hook: a live request.
pub(in crate::ffi) unsafe extern "C" fn handler(r: *mut ap::request_rec) -> c_int {
    // SAFETY: httpd passes a live request, run by this thread.
    let Some(r) = (unsafe { Request::new(r) }) else {
        return DECLINED;
    };
    if mod_wsgi_calls::installed() {
        // Requests are claimed from mod_wsgi's own calls (and
        // `lifecycle::unused_hooks` normally takes this hook out of the
        // array altogether).
        server_pid::note_if_wsgi(r);
        return DECLINED;
    }
    // No reporter in this child (not configured, or no Python here): only
    // a request for a daemon may need this child's pid.
    let Some(p) = process() else {
        server_pid::note_if_wsgi(r);
        return DECLINED;
    };
    // Before anything else: whatever handler runs next in this thread
    // (mod_wsgi's included) never sees an earlier request's state.
    CURRENT.with(|c| c.set(null_mut()));
    guard(DECLINED, || {
        if !server_pid::is_wsgi_handler(r.handler()) {
            return DECLINED;
        }
        let known = tracked(r);
        if !known.is_null() {
            CURRENT.with(|c| c.set(known));
            return DECLINED;
        }
        server_pid::note(r);
        // A WSGIScriptAlias with `process-group=` tells mod_wsgi (through
        // r->notes, set at translate_name) to hand the request to a daemon
        // process, which reports it: nothing to claim here.
        // (Without a WSGIDaemonProcess no request can go to a daemon.)
        if has_daemon_groups() && proxied_to_daemon(r) {
            return DECLINED;
        }
        let st = begin(p, r, finish);
        let claim = st.claim;
        // Without state of ours (checked above).
        let st = track(r, st, true, true);
        if st.is_null() {
            p.acc.abandon(claim);
        }
        CURRENT.with(|c| c.set(st));
        DECLINED
    })
}

/// Whether mod_wsgi was told (by a `process-group=` script alias option)
/// to run this request in a daemon process.
fn proxied_to_daemon(r: Request<'_>) -> bool {
    let g = r.get(r.rec().notes, c"mod_wsgi.process_group");
    !g.is_empty() && g != b"%{GLOBAL}"
}

/// Records the request (or leaves it to a daemon process); called once,
/// through [`ReqState::finish`].
fn finish(st: &mut ReqState, now: u64) {
    let me = st as *mut ReqState;
    CURRENT.with(|c| {
        if c.get() == me {
            c.set(null_mut());
        }
    });
    let Some(p) = process() else { return };
    // SAFETY: st.r is the live request that owns st.
    let r = unsafe { &*st.r };
    // `mod_wsgi.queue_start` is set by mod_wsgi in the child when it
    // connects to a daemon (a group chosen by WSGIProcessGroup: one named
    // by `process-group=` was left at the handler hook). Only possible
    // when the configuration has daemon groups.
    let queued = has_daemon_groups()
        // SAFETY: the live request's table.
        && !unsafe { ap::apr_table_get(r.subprocess_env, c"mod_wsgi.queue_start".as_ptr()) }
            .is_null();
    if queued {
        // mod_wsgi handed it to a daemon process, which reports it.
        p.acc.abandon(st.claim);
        return;
    }
    record(p, st, now, r.status);
}
