//! Claiming and recording one embedded request: what both embedded ways
//! (`filter_mode`, `mod_wsgi_calls`) do at the start and at the end.

use std::ffi::{c_char, c_int};
use std::ptr::null;

use apache_headers as ap;
use apache_headers::macros as m;
use reporter_core::accum::{text, Detail};
use reporter_core::runtime::Process;
use reporter_core::sys::{self, SocketSink};

use crate::ffi::base::request::Request;
use crate::ffi::request::state::{thread_slot, ReqState};

/// (ptr, len) of a C string that lives in the request pool.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn span(p: *const c_char) -> (*const u8, usize) {
    // SAFETY: per the contract.
    let s = unsafe { m::cstr(p) };
    (s.as_ptr(), s.len())
}

/// Claims this thread's slot for `r`: mod_wsgi is about to run it here.
/// `record` records it at its end.
pub(in crate::ffi) fn begin(
    p: &'static Process<SocketSink>,
    r: Request<'_>,
    record: fn(&mut ReqState, u64),
) -> ReqState {
    let mut st = std::mem::MaybeUninit::uninit();
    begin_into(p, r, &mut st, record);
    // SAFETY: `begin_into` initialised st.
    unsafe { st.assume_init() }
}

/// [`begin`], built in place (no copy of the state).
pub(in crate::ffi) fn begin_into(
    p: &'static Process<SocketSink>,
    req: Request<'_>,
    out: &mut std::mem::MaybeUninit<ReqState>,
    record: fn(&mut ReqState, u64),
) {
    let (r, rr) = (req.as_ptr(), req.rec());
    let (slot, tid) = thread_slot(&p.acc);
    let now = sys::now_us();
    let request_start = rr.request_time.max(0) as u64;
    let mut cpu0 = None;
    let claim = if p.acc.slow_threshold_us > 0 {
        let mut detail = Detail::default();
        // SAFETY: the live request's strings (NULL or NUL-terminated, in
        // r->pool, which outlives the claim: the request is recorded or
        // abandoned before its pool is destroyed); ap_run_http_scheme
        // returns a static string; headers_in is its live table.
        unsafe {
            detail.strings[text::LOG_ID] = span(rr.log_id);
            detail.strings[text::METHOD] = span(rr.method);
            detail.strings[text::SCHEME] = span(ap::ap_run_http_scheme(r));
            detail.strings[text::HOSTNAME] = span(rr.hostname);
            let (up, ul) = span(rr.uri);
            let (pp, pl) = span(rr.path_info);
            // SCRIPT_NAME = the URI minus PATH_INFO (as mod_wsgi computes it).
            let sl = if pl <= ul { ul - pl } else { ul };
            detail.strings[text::SCRIPT_NAME] = (up, sl);
            detail.strings[text::PATH_INFO] = if pl > 0 { (pp, pl) } else { (null(), 0) };
            detail.strings[text::PROTOCOL] = span(rr.protocol);
            detail.strings[text::PEER_IP] = span(rr.useragent_ip);
            detail.strings[text::USER_AGENT] =
                span(ap::apr_table_get(rr.headers_in, c"User-Agent".as_ptr()));
        }
        detail.active_at_start = p.acc.active() + 1;
        cpu0 = sys::thread_cpu_us();
        p.acc.claim(slot, tid, request_start, now, Some(&detail))
    } else {
        p.acc.claim(slot, tid, request_start, now, None)
    };
    let st = out.write(ReqState::new(r, claim, cpu0, record));
    st.live = p.acc.live_io(claim.slot);
    st.f.request_start_us = request_start;
    st.f.claim_us = now;
}

/// Records an embedded request mod_wsgi ran here, with its final status.
pub(in crate::ffi) fn record(p: &Process<SocketSink>, st: &mut ReqState, now: u64, status: c_int) {
    if p.acc.slow_threshold_us > 0 {
        if let Some((u0, s0)) = st.cpu0 {
            st.f.cpu_us =
                sys::thread_cpu_us().map(|(u, s)| (u.saturating_sub(u0), s.saturating_sub(s0)));
        }
    }
    st.f.finish_us = now;
    st.f.status = status;
    p.acc.finish(st.claim, &st.f);
}
