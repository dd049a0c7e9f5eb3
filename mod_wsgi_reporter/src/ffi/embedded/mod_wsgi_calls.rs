//! Embedded-mode request accounting from mod_wsgi's own calls
//! (docs/module.md "Phase boundaries").
//!
//! In an MPM child (after the fork: nothing else is touched) `install`:
//! * wraps mod_wsgi's handler: its entry in httpd's handler hook array
//!   (`ap_hook_get_handler()`, the one registered by "mod_wsgi.c") is
//!   pointed at [`handler`], which calls mod_wsgi's function and records
//!   the request it claimed with the status mod_wsgi returned;
//! * points three of mod_wsgi.so's GOT entries (crate::got) at wrappers:
//!   `wsgi_start_request(r)` (mod_wsgi calls it in `wsgi_execute_script`
//!   just before loading and running the application, only for requests
//!   it runs in this process, so requests handed to a daemon are never
//!   claimed here), `ap_pass_brigade` (every response write of the
//!   adapter) and `ap_get_brigade` (every `wsgi.input` read).
//!
//! The request's state lives in the wrapper's stack frame and a
//! thread-local pointer to it: no pool allocation, cleanup or filter per
//! request. What httpd does on its own (its error pages, discarding a body
//! the application left unread) does not go through mod_wsgi's GOT and is
//! not counted. If any part cannot be installed nothing is changed and
//! `filter_mode` is used instead (also when the environment variable
//! `MOD_WSGI_TELEMETRY_FILTERS` is set).
//!
//! Must never: run in the Apache parent or a daemon process, or change
//! what mod_wsgi and httpd do with the request.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::mem::MaybeUninit;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::*};

use apache_headers as ap;
use apache_headers::macros as m;

use reporter_core::sys;

use super::claim::{begin_into, record};
use super::server_pid;
use crate::ffi::base::guard;
use crate::ffi::base::request::Request;
use crate::ffi::base::sym::{fnptr, sym};
use crate::ffi::process::process;
use crate::ffi::request::state::{get_for, pass_for, ReqState};
use crate::got::{self, GotError};

type HandlerFn = unsafe extern "C" fn(*mut ap::request_rec) -> c_int;
type StartFn = unsafe extern "C" fn(*mut ap::request_rec) -> *mut c_void;

static INSTALLED: AtomicBool = AtomicBool::new(false);
/// mod_wsgi's `wsgi_hook_handler` (from the hook array).
static REAL_HANDLER: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
/// mod_wsgi's exported `wsgi_start_request`.
static REAL_START: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// One call of mod_wsgi's handler.
struct Frame {
    r: *mut ap::request_rec,
    /// `st` is initialised: mod_wsgi runs the request in this process.
    claimed: bool,
    /// Inside a request this thread already claimed (a subrequest made
    /// while that request's response is filtered, e.g. an SSI include of
    /// another WSGI URL): counted as part of it, since both would need the
    /// thread's one slot. Not covered by a test: Debian's mod_wsgi 4.9.4
    /// itself crashes on that nesting (seen without our module loaded).
    nested: bool,
    st: MaybeUninit<ReqState>,
}

thread_local! {
    /// The innermost call of mod_wsgi's handler on this thread (NULL
    /// outside it).
    static FRAME: Cell<*mut Frame> = const { Cell::new(null_mut()) };
}

/// Whether requests are accounted here (not by `filter_mode`).
pub(in crate::ffi) fn installed() -> bool {
    INSTALLED.load(Relaxed)
}

/// Why requests are not accounted from mod_wsgi's calls.
#[derive(Debug)]
pub(in crate::ffi) enum Unavailable {
    /// `MOD_WSGI_TELEMETRY_FILTERS` is set.
    Disabled,
    /// No (or more than one) handler hook registered by mod_wsgi.c.
    NoHandler,
    /// mod_wsgi exports no `wsgi_start_request`.
    NoStartRequest,
    /// Its GOT entries could not be redirected.
    Got(GotError),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::Disabled => write!(f, "MOD_WSGI_TELEMETRY_FILTERS is set"),
            Unavailable::NoHandler => write!(f, "mod_wsgi's handler hook not found"),
            Unavailable::NoStartRequest => write!(f, "mod_wsgi exports no wsgi_start_request"),
            Unavailable::Got(e) => write!(f, "{e}"),
        }
    }
}

/// Installs this way of accounting in an MPM child.
///
/// # Safety
/// Only in an MPM child's `child_init`: before its worker threads run, so
/// no request goes through the hook array or the GOT entries meanwhile.
pub(in crate::ffi) unsafe fn install() -> Result<(), Unavailable> {
    if std::env::var_os("MOD_WSGI_TELEMETRY_FILTERS").is_some() {
        return Err(Unavailable::Disabled);
    }
    // mod_wsgi's one handler hook (by the name httpd recorded for it).
    let mut found = handler_hooks().filter(|&e| {
        // SAFETY: a live entry; its name is a static string.
        unsafe { m::cstr((*e).szName) == b"mod_wsgi.c" && (*e).pFunc.is_some() }
    });
    let entry = match (found.next(), found.next()) {
        (Some(e), None) => e,
        _ => return Err(Unavailable::NoHandler),
    };
    // SAFETY: entry points into the live hook array.
    let real_handler = unsafe { (*entry).pFunc }.ok_or(Unavailable::NoHandler)? as *mut c_void;
    const START: &CStr = c"wsgi_start_request";
    let start = sym(START);
    if start.is_null() {
        return Err(Unavailable::NoStartRequest);
    }
    REAL_HANDLER.store(real_handler, SeqCst);
    REAL_START.store(start, SeqCst);
    // mod_wsgi.so's own GOT (the object holding its handler): all or none.
    // SAFETY: in an MPM child before its worker threads run (the caller's
    // contract); each wrapper has the C signature of the function it
    // replaces and calls that function by its own linked name (or, for
    // wsgi_start_request, through the dlsym address stored above).
    unsafe {
        got::redirect(
            real_handler,
            &[
                (START, start_request as *const () as usize),
                (c"ap_pass_brigade", pass_brigade as *const () as usize),
                (c"ap_get_brigade", get_brigade as *const () as usize),
            ],
        )
    }
    .map_err(Unavailable::Got)?;
    // SAFETY: a plain store of a function pointer of the same type into a
    // live entry, in this process only (the array was copied at the fork),
    // while no request runs yet. (Our own handler entry, which only
    // filter_mode uses, is taken out by lifecycle::unused_hooks.)
    unsafe { (*entry).pFunc = Some(handler) };
    INSTALLED.store(true, SeqCst);
    Ok(())
}

/// The entries of httpd's `handler` hook array (sorted at startup).
fn handler_hooks() -> impl Iterator<Item = *mut ap::ap_LINK_handler_t> {
    // SAFETY: httpd's live hook array (NULL when no module registered one).
    let (elts, n) = unsafe {
        let arr = ap::ap_hook_get_handler();
        match arr.as_ref() {
            Some(a) => (
                a.elts as *mut ap::ap_LINK_handler_t,
                a.nelts.max(0) as usize,
            ),
            None => (std::ptr::null_mut(), 0),
        }
    };
    // SAFETY: i < nelts: within the array.
    (0..n).map(move |i| unsafe { elts.add(i) })
}

/// mod_wsgi's handler, wrapped.
///
/// # Safety
/// Only for httpd, as mod_wsgi's entry in the `handler` hook array: a live request.
unsafe extern "C" fn handler(r: *mut ap::request_rec) -> c_int {
    // One thread-local lookup: this thread's cell outlives the call.
    let cell: *const Cell<*mut Frame> = FRAME.with(|f| f as *const _);
    // SAFETY: this thread's own cell (see above).
    let prev = unsafe { (*cell).get() };
    let mut frame = Frame {
        r,
        claimed: false,
        // SAFETY: NULL or the frame of an outer call on this thread.
        nested: unsafe { prev.as_ref() }.is_some_and(|p| p.claimed || p.nested),
        st: MaybeUninit::uninit(),
    };
    // SAFETY: as above.
    unsafe { (*cell).set(&mut frame) };
    // SAFETY: httpd's live request, run by this thread.
    if let Some(req) = unsafe { Request::new(r) } {
        server_pid::note_if_wsgi(req);
    }
    // SAFETY: mod_wsgi's `int wsgi_hook_handler(request_rec *)`, taken from
    // the hook array; called with httpd's own argument.
    let rv = unsafe { fnptr::<HandlerFn>(REAL_HANDLER.load(Relaxed))(r) };
    // SAFETY: as above.
    unsafe { (*cell).set(prev) };
    if frame.claimed {
        guard((), || {
            let now = sys::now_us();
            // SAFETY: claimed => initialised by start_request.
            let st = unsafe { frame.st.assume_init_mut() };
            // mod_wsgi returns OK once the response has started (its
            // status is then r->status), or the error status httpd is
            // about to send (an exception before the response started:
            // 500; no callable in the script: 404).
            let status = if rv >= 100 {
                rv
            } else {
                // SAFETY: the live request of this call.
                unsafe { (*r).status }
            };
            if let Some(p) = process() {
                record(p, st, now, status);
            }
        });
    }
    rv
}

/// `wsgi_start_request(r)`: mod_wsgi runs `r` in this process, now.
///
/// # Safety
/// Only for mod_wsgi.so, through the GOT entry pointed here: the argument of `wsgi_start_request`.
unsafe extern "C" fn start_request(r: *mut ap::request_rec) -> *mut c_void {
    // SAFETY: mod_wsgi's `WSGIThreadInfo *wsgi_start_request(request_rec *)`
    // (dlsym), called with mod_wsgi's own argument.
    let info = unsafe { fnptr::<StartFn>(REAL_START.load(Relaxed))(r) };
    guard((), || {
        let f = FRAME.with(|f| f.get());
        if f.is_null() {
            return;
        }
        // SAFETY: the frame of the handler call running on this thread.
        let f = unsafe { &mut *f };
        if f.claimed || f.nested || f.r != r {
            return;
        }
        let Some(p) = process() else { return };
        // SAFETY: the live request mod_wsgi is about to run in this thread.
        let Some(req) = (unsafe { Request::new(r) }) else {
            return;
        };
        begin_into(p, req, &mut f.st, recorded_by_handler);
        f.claimed = true;
    });
    info
}

/// The `record` of a frame's [`ReqState`]: never called, since no filter or
/// pool cleanup ends such a request; [`handler`] records it when mod_wsgi's
/// handler returns, with the status mod_wsgi returned.
fn recorded_by_handler(_st: &mut ReqState, _now: u64) {}

/// The request this thread's mod_wsgi handler call claimed (NULL: none).
/// Valid until that call returns, which is after every call mod_wsgi
/// makes from inside it.
fn claimed() -> *mut ReqState {
    let f = FRAME.with(|f| f.get());
    // SAFETY: NULL or the frame of the handler call running on this thread.
    match unsafe { f.as_mut() } {
        Some(f) if f.claimed => f.st.as_mut_ptr(),
        _ => null_mut(),
    }
}

/// A response write of mod_wsgi (`ap_pass_brigade(r->output_filters, bb)`).
/// Nothing here can panic (pointer reads and wrapping sums), so there is
/// nothing to catch.
///
/// # Safety
/// Only for mod_wsgi.so, through the GOT entry pointed here: the arguments of `ap_pass_brigade`.
unsafe extern "C" fn pass_brigade(
    next: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
) -> ap::apr_status_t {
    // SAFETY: see `claimed`; used by this thread only.
    let st = unsafe { claimed().as_mut() };
    // SAFETY: the caller's own arguments.
    unsafe { pass_for(st, next, bb) }
}

/// A `wsgi.input` read of mod_wsgi.
///
/// # Safety
/// Only for mod_wsgi.so, through the GOT entry pointed here: the arguments of `ap_get_brigade`.
unsafe extern "C" fn get_brigade(
    next: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
    mode: ap::ap_input_mode_t,
    block: ap::apr_read_type_e,
    readbytes: ap::apr_off_t,
) -> ap::apr_status_t {
    // SAFETY: see `claimed`; used by this thread only.
    let st = unsafe { claimed().as_mut() };
    // SAFETY: the caller's own arguments.
    unsafe { get_for(st, next, bb, mode, block, readbytes) }
}
