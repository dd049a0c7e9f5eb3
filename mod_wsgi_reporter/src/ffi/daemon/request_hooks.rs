//! Request accounting in a mod_wsgi daemon process without Python events.
//!
//! A daemon runs no Apache request hook, but for every request its loop
//! (`wsgi_hook_daemon_handler` in mod_wsgi 4.x) builds a `request_rec`
//! from what the Apache child sent and calls two httpd functions around
//! the application:
//!
//! * `ap_add_input_filter("HTTP_IN", NULL, r, c)` after `r->subprocess_env`
//!   holds the request (with `mod_wsgi.request_start`, `queue_start`,
//!   `daemon_start`) and just before `wsgi_execute_script(r)`;
//! * `ap_finalize_request_protocol(r)` right after it, when `r->status` is
//!   final and `mod_wsgi.script_start` (the callable's start) is set.
//!
//! In the daemon (after the fork, so nothing else is touched) the module
//! points mod_wsgi.so's GOT entries for those two functions at the
//! wrappers below (crate::got), which call httpd's functions and claim / record
//! the request with the daemon's accumulators. The application's response
//! writes and its `wsgi.input` reads are counted as in embedded mode,
//! through mod_wsgi.so's GOT entries for `ap_pass_brigade` and
//! `ap_get_brigade` (our output / input filter on `r` when an entry cannot
//! be redirected). So every
//! request of every interpreter is counted from the first one, for the cost
//! of the embedded hooks, and mod_wsgi's Python event machinery (which
//! costs more than our whole embedded path once anyone subscribes) is not
//! needed. If the entries cannot be found, the attach code's event
//! subscriber is used instead (`python_callbacks`).
//!
//! Must never: run in the Apache parent or an MPM child, or record a
//! request twice.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::*};

use apache_headers as ap;
use apache_headers::macros as m;

use reporter_core::accum::{Claim, Finished};
use reporter_core::daemon::{env_number as num, EnvKeys, Started, SLOW_ENV_KEYS, STAMP_KEYS};
use reporter_core::sys;

use super::state::{daemon, mod_wsgi_stopping, Daemon};
use crate::ffi::base::guard;
use crate::ffi::base::request::Request;
use crate::ffi::base::sym::fnptr;
use crate::ffi::request::filters::{track, tracked};
use crate::ffi::request::state::{get_for, pass_for, thread_slot, ReqState};
use crate::got;

static HOOKED: AtomicBool = AtomicBool::new(false);
/// mod_wsgi.so's `ap_pass_brigade` calls come to [`pass_brigade`].
static PASS_HOOKED: AtomicBool = AtomicBool::new(false);
/// mod_wsgi.so's `ap_get_brigade` calls come to [`get_brigade`].
static GET_HOOKED: AtomicBool = AtomicBool::new(false);
/// mod_wsgi's own `wsgi_publish_process_stopping` (NULL: not hooked).
static REAL_PUBLISH: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// Whether mod_wsgi's shutdown reason reaches us (see [`install`]).
pub(super) fn publish_hooked() -> bool {
    !REAL_PUBLISH.load(Acquire).is_null()
}

/// Whether requests are counted by these hooks (not by Python events).
pub(super) fn hooked() -> bool {
    HOOKED.load(Acquire)
}

/// Redirects mod_wsgi.so's calls; `inside` is any address in mod_wsgi.so.
///
/// # Safety
/// Only in a daemon process, before mod_wsgi's request threads call these
/// functions (see `crate::got::redirect`).
pub(super) unsafe fn install(inside: *const c_void) -> Result<usize, got::GotError> {
    // SAFETY: the caller's contract; each wrapper has the C signature of
    // the httpd function it replaces and calls that function by name.
    let n = unsafe {
        got::redirect(
            inside,
            &[
                (
                    c"ap_add_input_filter",
                    add_input_filter as *const () as usize,
                ),
                (
                    c"ap_finalize_request_protocol",
                    finalize_request_protocol as *const () as usize,
                ),
            ],
        )
    }?;
    HOOKED.store(true, Release);
    // Optional: the response writes of the application (mod_wsgi's
    // `ap_pass_brigade(r->output_filters, bb)`), counted in the call
    // instead of by an output filter on each request (which costs a filter
    // record per request and a pass through it for httpd's own writes).
    // SAFETY: as above; `pass_brigade` has the signature of
    // `ap_pass_brigade` and calls it by name.
    if unsafe {
        got::redirect(
            inside,
            &[(c"ap_pass_brigade", pass_brigade as *const () as usize)],
        )
    }
    .is_ok()
    {
        PASS_HOOKED.store(true, Release);
    }
    // Optional: the application's `wsgi.input` reads (mod_wsgi's
    // `ap_get_brigade(r->input_filters, ...)`), counted in the call instead
    // of by an input filter, which costs a filter record and two look-ups
    // of the request's headers per request.
    // SAFETY: as above; `get_brigade` has the signature of
    // `ap_get_brigade` and calls it by name.
    if unsafe {
        got::redirect(
            inside,
            &[(c"ap_get_brigade", get_brigade as *const () as usize)],
        )
    }
    .is_ok()
    {
        GET_HOOKED.store(true, Release);
    }
    // Optional: mod_wsgi calls its own exported
    // `wsgi_publish_process_stopping(reason)` through its GOT when a
    // daemon's shutdown begins, with the reason it knows
    // (`inactivity_timeout`, `request_timeout`, ...): hooked, STOPPING goes
    // out at that moment with that reason.
    // SAFETY: as above; `publish_process_stopping` has the signature of
    // `void wsgi_publish_process_stopping(char *)` and calls the real one.
    unsafe {
        got::redirect_export(
            c"wsgi_publish_process_stopping",
            publish_process_stopping as *const () as usize,
            &REAL_PUBLISH,
        )
    };
    Ok(n)
}

/// # Safety
/// Only for mod_wsgi.so, through the GOT entry pointed here: the argument of `wsgi_publish_process_stopping`.
unsafe extern "C" fn publish_process_stopping(reason: *mut c_char) {
    guard((), || {
        // SAFETY: NULL or mod_wsgi's NUL-terminated reason string.
        mod_wsgi_stopping(unsafe { m::cstr(reason) });
    });
    let real = REAL_PUBLISH.load(Acquire);
    if !real.is_null() {
        // SAFETY: mod_wsgi's function of this exact signature (dlsym).
        unsafe { fnptr::<unsafe extern "C" fn(*mut c_char)>(real)(reason) };
    }
}

/// # Safety
/// Only for mod_wsgi.so, through the GOT entry pointed here: the arguments of `ap_add_input_filter`.
unsafe extern "C" fn add_input_filter(
    name: *const c_char,
    ctx: *mut c_void,
    r: *mut ap::request_rec,
    c: *mut ap::conn_rec,
) -> *mut ap::ap_filter_t {
    // SAFETY: the caller's own arguments, passed on unchanged.
    let f = unsafe { ap::ap_add_input_filter(name, ctx, r, c) };
    guard((), || {
        // SAFETY: NULL or a NUL-terminated filter name.
        if unsafe { m::cstr(name) } == b"HTTP_IN" {
            // SAFETY: NULL or mod_wsgi's live request (r->pool and tables
            // set up), run by this thread.
            if let (Some(d), Some(req)) = (daemon(), unsafe { Request::new(r) }) {
                begin(d, req);
            }
        }
    });
    f
}

/// # Safety
/// Only for mod_wsgi.so, through the GOT entry pointed here: the argument of `ap_finalize_request_protocol`.
unsafe extern "C" fn finalize_request_protocol(r: *mut ap::request_rec) {
    // Recorded first: the status is final and the application is done;
    // httpd's finalize then discards any body the application did not
    // read, which is not the application's input (our filters stop
    // counting once the request is recorded).
    guard((), || {
        // SAFETY: NULL or mod_wsgi's live request, run by this thread.
        let Some(req) = (unsafe { Request::new(r) }) else {
            return;
        };
        let st = tracked(req);
        if !st.is_null() {
            // SAFETY: our ReqState in r->pool, used by this thread only.
            unsafe { &mut *st }.finish(sys::now_us());
        }
    });
    // SAFETY: the caller's own argument, passed on unchanged.
    unsafe { ap::ap_finalize_request_protocol(r) };
}

/// A response write of mod_wsgi in a daemon (`ap_pass_brigade(r->output_filters,
/// bb)`): counted for the request it writes, if we track it and have not
/// recorded it yet. Nothing here can panic (pointer reads and wrapping
/// sums), so there is nothing to catch.
///
/// # Safety
/// Only for mod_wsgi.so, through the GOT entry pointed here: the arguments of `ap_pass_brigade`.
unsafe extern "C" fn pass_brigade(
    next: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
) -> ap::apr_status_t {
    // SAFETY: NULL or a live filter of a live request (or connection:
    // then `r` is NULL); our ReqState is used by this thread only.
    let st = unsafe { chain_of(next).as_mut() }.filter(|st| !st.finished);
    // SAFETY: the caller's own arguments.
    unsafe { pass_for(st, next, bb) }
}

/// A `wsgi.input` read of mod_wsgi in a daemon (`ap_get_brigade(r->input_filters,
/// ...)`): counted for the request it reads, if we track it and have not
/// recorded it yet (httpd's finalize discards an unread body by itself,
/// not through mod_wsgi.so, and after the request is recorded). Nothing
/// here can panic, so there is nothing to catch.
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
    // SAFETY: as in `pass_brigade`.
    let st = unsafe { chain_of(next).as_mut() }.filter(|st| !st.finished);
    // SAFETY: the caller's own arguments.
    unsafe { get_for(st, next, bb, mode, block, readbytes) }
}

/// Our state of the request whose output or input chain starts at `next`
/// (NULL: none, or not ours).
///
/// # Safety
/// `next` is NULL or a live filter.
unsafe fn chain_of(next: *mut ap::ap_filter_t) -> *mut ReqState {
    // SAFETY: per the contract; a filter's `r` is NULL or its live request.
    match unsafe { next.as_ref().and_then(|f| Request::new(f.r)) } {
        Some(req) => tracked(req),
        None => std::ptr::null_mut(),
    }
}

/// A string of `r->subprocess_env` ("" if absent).
///
/// # Safety
/// `env` is a live table; the result lives as long as the request pool.
unsafe fn env<'a>(env: *const ap::apr_table_t, key: &CStr) -> &'a [u8] {
    // SAFETY: per the contract.
    unsafe { m::cstr(ap::apr_table_get(env, key.as_ptr())) }
}

thread_local! {
    /// Where (index in `r->subprocess_env`) this thread last found each of
    /// `STAMP_KEYS`: requests of one kind give the same table layout, so
    /// the next request usually has them there too.
    static STAMP_AT: Cell<[u32; 5]> = const { Cell::new([u32::MAX; 5]) };
}

/// Whether table entry `e` is `STAMP_KEYS[i]`; its value if so. `exact`:
/// only with mod_wsgi's own spelling (one `strcmp`, no `strlen` and case
/// folding: the check of the place the key was last found); else ignoring
/// case, as `apr_table_get` does.
///
/// # Safety
/// `e` is an entry of a live table.
unsafe fn stamp_at<'a>(e: &ap::apr_table_entry_t, i: usize, exact: bool) -> Option<&'a [u8]> {
    if e.key.is_null() || e.val.is_null() {
        return None;
    }
    let want = STAMP_KEYS[i];
    let found = if exact {
        // SAFETY: two NUL-terminated strings.
        unsafe { libc::strcmp(e.key, want.as_ptr()) == 0 }
    } else {
        // SAFETY: NUL-terminated key of the live table.
        want.to_bytes()
            .eq_ignore_ascii_case(unsafe { m::cstr(e.key) })
    };
    // SAFETY: NUL-terminated value of the live table.
    found.then(|| unsafe { m::cstr(e.val) })
}

/// The values of `wanted` (indexes into `STAMP_KEYS`) in `env`, "" if
/// absent: first where this thread found them for its last request, else
/// in one pass over the table from its end, where mod_wsgi adds them (each
/// once, with `apr_table_setn`). `apr_table_get` per key would compare it
/// with each of the twenty-odd `mod_wsgi.*` entries, which share their
/// first four letters (APR's pre-check): about 1,200 instructions a key.
///
/// # Safety
/// `env` is a live table, not modified while the result is used; the
/// results live as long as the request pool.
unsafe fn stamps<'a>(env: *const ap::apr_table_t, wanted: &[usize]) -> [&'a [u8]; 5] {
    let mut out: [&[u8]; 5] = [b""; 5];
    // SAFETY: per the contract.
    let entries = unsafe { m::table_entries(env) };
    let at = STAMP_AT.with(|c| c.get());
    let mut left = 0;
    for &i in wanted {
        match entries
            .get(at[i] as usize)
            // SAFETY: an entry of the live table.
            .and_then(|e| unsafe { stamp_at(e, i, true) })
        {
            Some(v) => out[i] = v,
            None => left += 1,
        }
    }
    if left > 0 {
        // SAFETY: per the contract.
        unsafe { stamps_by_pass(entries, wanted, &mut out, left) };
    }
    out
}

/// The table pass of [`stamps`] for the `left` keys of `wanted` not found
/// where this thread last found them (a thread's first request, or a
/// request of another kind): out of line, so that the usual path stays
/// small.
///
/// # Safety
/// As for [`stamps`]: `entries` are a live table's.
#[cold]
#[inline(never)]
unsafe fn stamps_by_pass(
    entries: &[ap::apr_table_entry_t],
    wanted: &[usize],
    out: &mut [&[u8]; 5],
    mut left: usize,
) {
    let mut at = STAMP_AT.with(|c| c.get());
    for (n, e) in entries.iter().enumerate().rev() {
        if e.key.is_null() {
            continue;
        }
        // SAFETY: a table key is NUL-terminated: its first byte is readable.
        if (unsafe { *e.key } as u8) | 0x20 != b'm' {
            continue;
        }
        for &i in wanted {
            if out[i].is_empty() {
                // SAFETY: an entry of the live table.
                if let Some(v) = unsafe { stamp_at(e, i, false) } {
                    out[i] = v;
                    at[i] = n as u32;
                    left -= 1;
                }
            }
        }
        if left == 0 {
            break;
        }
    }
    STAMP_AT.with(|c| c.set(at));
}

/// The application is about to run: claim this worker's slot.
fn begin(d: &'static Daemon, req: Request<'_>) {
    if !tracked(req).is_null() {
        return;
    }
    let (r, e) = (req.as_ptr(), req.rec().subprocess_env);
    let now = sys::now_us();
    let acc = &d.p.acc;
    let (slot, tid) = thread_slot(acc);
    let slow = acc.slow_threshold_us > 0;
    let mut strings: [&[u8]; 9] = [b""; 9];
    if slow {
        for (s, k) in strings.iter_mut().zip(SLOW_ENV_KEYS) {
            // SAFETY: live table of the live request.
            *s = unsafe { env(e, k) };
        }
        if strings[2].is_empty() {
            // SAFETY: as above.
            let https = unsafe { env(e, c"HTTPS") };
            strings[2] = if https.eq_ignore_ascii_case(b"on") || https == b"1" {
                b"https"
            } else {
                b"http"
            };
        }
        if strings[3].is_empty() {
            // SAFETY: as above.
            strings[3] = unsafe { env(e, c"SERVER_NAME") };
        }
    }
    // Only slow records name the Apache child (which sends its pid only
    // then).
    let wanted: &[usize] = if slow {
        &[
            EnvKeys::REQUEST_START,
            EnvKeys::QUEUE_START,
            EnvKeys::DAEMON_START,
            EnvKeys::SERVER_PID,
        ]
    } else {
        &[
            EnvKeys::REQUEST_START,
            EnvKeys::QUEUE_START,
            EnvKeys::DAEMON_START,
        ]
    };
    // SAFETY: live table of the live request, not modified meanwhile.
    let v = unsafe { stamps(e, wanted) };
    let (rs, qs, ds) = (
        num(v[EnvKeys::REQUEST_START]),
        num(v[EnvKeys::QUEUE_START]),
        num(v[EnvKeys::DAEMON_START]),
    );
    let request_start = if rs == 0 { now } else { rs };
    let claim = if slow {
        d.req.claim(
            acc,
            &Started {
                thread_id: slot + 1,
                request_start_us: request_start,
                queue_start_us: qs,
                daemon_start_us: ds,
                application_start_us: now,
                // (Not a 16-digit stamp: parsed only when wanted.)
                server_pid: num(v[EnvKeys::SERVER_PID]),
                strings,
                tid,
            },
        )
    } else {
        // Nothing to keep for slow records: the slot alone.
        acc.claim(slot, tid, request_start, now, None)
    };
    let cpu0 = if slow { sys::thread_cpu_us() } else { None };
    // The stamps stay with the request (in its pool) until it is recorded.
    let started = Finished {
        request_start_us: request_start,
        queue_start_us: qs,
        daemon_start_us: ds,
        claim_us: now,
        ..Finished::default()
    };
    let mut st = ReqState::new(r, claim, cpu0, finish);
    st.daemon = true;
    st.live = acc.live_io(slot);
    st.f = started;
    // Without state of ours (checked above).
    if track(
        req,
        st,
        !PASS_HOOKED.load(Relaxed),
        !GET_HOOKED.load(Relaxed),
    )
    .is_null()
    {
        untracked(d, claim, &started, now);
    }
}

/// The request's state could not be kept (the pool is out of memory): its
/// slot is freed as a 5xx request.
#[cold]
#[inline(never)]
fn untracked(d: &Daemon, claim: Claim, started: &Finished, now: u64) {
    let f = Finished {
        finish_us: now,
        status: 0,
        ..*started
    };
    d.p.acc.finish(claim, &f);
}

/// Records a tracked daemon request; called once, through
/// [`ReqState::finish`] (from the finalize wrapper, or from the pool
/// cleanup if mod_wsgi never finalized it).
fn finish(st: &mut ReqState, end_us: u64) {
    let Some(d) = daemon() else { return };
    // SAFETY: st.r is the live request that owns st.
    let r = unsafe { &*st.r };
    // (mod_wsgi adds it just before running the application: near the end.)
    // SAFETY: live table.
    let app =
        num(unsafe { stamps(r.subprocess_env, &[EnvKeys::SCRIPT_START]) }[EnvKeys::SCRIPT_START]);
    if app > 0 && app <= end_us {
        st.f.claim_us = app;
    }
    st.f.cpu_us = st.cpu0.and_then(|(u0, s0)| {
        sys::thread_cpu_us().map(|(u, s)| (u.saturating_sub(u0), s.saturating_sub(s0)))
    });
    st.f.finish_us = end_us;
    st.f.status = r.status;
    d.p.acc.finish(st.claim, &st.f);
}
