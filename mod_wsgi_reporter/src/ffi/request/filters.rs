//! Where a request's state lives while httpd runs it (`r->pool`, found
//! again through `r->request_config`), and our filters on that request:
//! the output filter counts response writes and, in embedded mode, ends the
//! request at the end of the response; the input filter counts the
//! application's `wsgi.input` reads; a pool cleanup ends the request
//! whatever happens.

use std::ffi::c_void;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering::*};

use apache_headers as ap;
use apache_headers::macros as m;
use reporter_core::sys;

use super::state::{brigade_data, ReqState};
use crate::ffi::base::request::Request;
use crate::ffi::base::{guard, this_module};
use crate::ffi::process::process;

static OUT_FILTER: AtomicPtr<ap::ap_filter_rec_t> = AtomicPtr::new(null_mut());
static IN_FILTER: AtomicPtr<ap::ap_filter_rec_t> = AtomicPtr::new(null_mut());

/// Registers our two filters with httpd (`register_hooks`).
pub(in crate::ffi) fn register() {
    // SAFETY: registering filters with static names and valid function
    // pointers during register_hooks, as httpd expects.
    unsafe {
        let out = ap::ap_register_output_filter(
            c"WSGI_TELEMETRY_OUT".as_ptr(),
            Some(out_filter),
            None,
            ap::ap_filter_type_AP_FTYPE_RESOURCE,
        );
        OUT_FILTER.store(out, Release);
        let inp = ap::ap_register_input_filter(
            c"WSGI_TELEMETRY_IN".as_ptr(),
            Some(in_filter),
            None,
            ap::ap_filter_type_AP_FTYPE_RESOURCE,
        );
        IN_FILTER.store(inp, Release);
    }
}

/// Puts `st` in `r->pool` and `r->request_config`, ends it with the pool
/// whatever happens, and adds our filters to the request (the output
/// filter only with `out_filter`, the input filter only with `in_filter`
/// and a request body: false when the caller counts the response writes,
/// or the application's reads, itself). NULL when the pool is out of
/// memory. Called once per request (a second call would claim it twice).
pub(in crate::ffi) fn track(
    req: Request<'_>,
    st: ReqState,
    out_filter: bool,
    in_filter: bool,
) -> *mut ReqState {
    let (r, rr) = (req.as_ptr(), req.rec());
    // SAFETY: a pool allocation sized for ReqState, fully initialised with
    // ptr::write before use.
    let p = unsafe { m::pcalloc(rr.pool, std::mem::size_of::<ReqState>()) } as *mut ReqState;
    if p.is_null() {
        return p;
    }
    // SAFETY: p points to fresh pool memory of the right size; the tables,
    // pool and connection are the live request's.
    unsafe {
        p.write(st);
        m::set_module_config(rr.request_config, this_module(), p as *mut c_void);
        // Last resort: whatever happens, the claim ends with the pool.
        ap::apr_pool_cleanup_register(
            rr.pool,
            p as *const c_void,
            Some(request_cleanup),
            Some(ap::apr_pool_cleanup_null),
        );
        if out_filter {
            ap::ap_add_output_filter_handle(
                OUT_FILTER.load(Relaxed),
                p as *mut c_void,
                r,
                rr.connection,
            );
        }
        if !in_filter {
            return p;
        }
        // Only requests with a body can be read by the application.
        let cl = m::cstr(ap::apr_table_get(rr.headers_in, c"Content-Length".as_ptr()));
        let te = ap::apr_table_get(rr.headers_in, c"Transfer-Encoding".as_ptr());
        if !te.is_null() || (!cl.is_empty() && cl != b"0") {
            ap::ap_add_input_filter_handle(
                IN_FILTER.load(Relaxed),
                p as *mut c_void,
                r,
                rr.connection,
            );
        }
    }
    p
}

/// Our state of `r` (NULL when we do not track it).
pub(in crate::ffi) fn tracked(r: Request<'_>) -> *mut ReqState {
    // SAFETY: the live request's config vector; our slot is NULL or our
    // ReqState.
    unsafe { m::get_module_config(r.rec().request_config, this_module()) as *mut ReqState }
}

/// # Safety
/// Only for APR, as the cleanup `track` registered: `data` is our `ReqState` in the pool being cleaned up.
unsafe extern "C" fn request_cleanup(data: *mut c_void) -> ap::apr_status_t {
    guard(0, || {
        // SAFETY: data is the ReqState registered with this pool; the pool
        // (and the request in it) is still intact while cleanups run.
        let st = unsafe { &mut *(data as *mut ReqState) };
        st.finish(sys::now_us());
        0
    })
}

/// httpd's `insert_error_filter` hook: an error response resets the
/// filter chain, so ours is added again to follow the response. Only in
/// an MPM child with a reporter (a daemon process's error pages are left
/// as they are).
///
/// # Safety
/// Only for httpd, as its `insert_error_filter` hook: a live request.
pub(in crate::ffi) unsafe extern "C" fn insert_error_filter(r: *mut ap::request_rec) {
    guard((), || {
        if process().is_none() {
            return;
        }
        // SAFETY: httpd passes a live request, run by this thread.
        let Some(req) = (unsafe { Request::new(r) }) else {
            return;
        };
        let st = tracked(req);
        // SAFETY: NULL or our ReqState in the live request's pool; the
        // request's own connection.
        unsafe {
            if !st.is_null() && !(*st).finished {
                (*st).error_response = true;
                ap::ap_add_output_filter_handle(
                    OUT_FILTER.load(Relaxed),
                    st as *mut c_void,
                    r,
                    (*r).connection,
                );
            }
        }
    })
}

/// # Safety
/// Only for httpd, as our output filter: a live filter (ctx NULL or our `ReqState`) and brigade.
unsafe extern "C" fn out_filter(
    f: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
) -> ap::apr_status_t {
    // SAFETY: httpd passes a live filter whose ctx is our ReqState.
    let (st, next) = unsafe { ((*f).ctx as *mut ReqState, (*f).next) };
    // A recorded request has nothing left to count: pass it on without
    // the brigade walk and the two clock reads (a daemon's end of output
    // always comes this way: httpd's finalize, after the finalize hook
    // recorded the request).
    // SAFETY: NULL or our ReqState in r->pool, used by this thread only.
    if unsafe { st.as_ref() }.is_none_or(|s| s.finished) {
        // SAFETY: passing the brigade on, as every filter does.
        return unsafe { ap::ap_pass_brigade(next, bb) };
    }
    // SAFETY: the live brigade handed to this filter.
    let (bytes, eos) = guard((0u64, false), || unsafe { brigade_data(bb) });
    let t0 = sys::now_us();
    // SAFETY: passing the brigade on, as every filter does.
    let rv = unsafe { ap::ap_pass_brigade(next, bb) };
    let t1 = sys::now_us();
    guard((), || {
        if st.is_null() {
            return;
        }
        // SAFETY: ctx is our ReqState in r->pool, used by this thread only.
        let st = unsafe { &mut *st };
        if st.finished {
            return;
        }
        // Apache's own error page is not application output; only its end
        // (which ends the request) matters.
        if !st.error_response {
            st.wrote(bytes, t1.saturating_sub(t0));
        }
        if eos && !st.daemon {
            st.finish(t1);
        }
    });
    rv
}

/// # Safety
/// Only for httpd, as our input filter: a live filter (ctx NULL or our `ReqState`), brigade and read arguments.
unsafe extern "C" fn in_filter(
    f: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
    mode: ap::ap_input_mode_t,
    block: ap::apr_read_type_e,
    readbytes: ap::apr_off_t,
) -> ap::apr_status_t {
    // SAFETY: httpd passes a live filter whose ctx is our ReqState.
    let (st, next) = unsafe { ((*f).ctx as *mut ReqState, (*f).next) };
    let t0 = sys::now_us();
    // SAFETY: reading through the rest of the input chain with the
    // caller's own arguments.
    let rv = unsafe { ap::ap_get_brigade(next, bb, mode, block, readbytes) };
    let t1 = sys::now_us();
    guard((), || {
        if st.is_null() || rv != 0 {
            return;
        }
        // SAFETY: ctx is our ReqState in r->pool, used by this thread only.
        let st = unsafe { &mut *st };
        if st.finished || st.app_done {
            return;
        }
        // SAFETY: the brigade this read filled.
        unsafe { st.read(bb, t1.saturating_sub(t0)) };
    });
    rv
}
