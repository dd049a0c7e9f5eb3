//! Per-request state and the helpers the request path uses to fill it.

use apache_headers as ap;
use apache_headers::macros as m;
use reporter_core::accum::{Accounting, Claim, Finished, LiveIo};
use reporter_core::sys;

/// Per-request state, allocated in `r->pool` (filter mode, daemons) or in
/// the frame of the wrapper of mod_wsgi's handler (embedded mode accounted
/// from mod_wsgi's own calls): the claim and what the
/// request path saw, kept as the [`Finished`] the accounting takes (no copy
/// at the end). In a daemon process (`daemon`) the claim lives in the
/// daemon's per-slot table and only `claim.slot` is used here.
///
/// `record` is the accounting path's function that records the request
/// (embedded or daemon): the filters below end a request through
/// [`ReqState::finish`] without knowing which path claimed it.
#[repr(C)]
pub(in crate::ffi) struct ReqState {
    pub(in crate::ffi) r: *mut ap::request_rec,
    pub(in crate::ffi) claim: Claim,
    pub(in crate::ffi) finished: bool,
    /// Apache is sending its own error page: not application output.
    pub(in crate::ffi) error_response: bool,
    /// Recorded by the daemon's request hooks (at mod_wsgi's
    /// `ap_finalize_request_protocol`), not at the end of the output stream.
    pub(in crate::ffi) daemon: bool,
    /// mod_wsgi has finished running the application (embedded mode, seen
    /// through the `wsgi_end_request` hook): later reads are httpd
    /// discarding an unread body, not the application's input.
    pub(in crate::ffi) app_done: bool,
    pub(in crate::ffi) cpu0: Option<(u64, u64)>,
    /// Request start, claim and I/O so far (finish, status and CPU are set
    /// when it is recorded).
    pub(in crate::ffi) f: Finished,
    /// The slot's published I/O, for active slow records (None: slow
    /// requests off, or the overflow slot).
    pub(in crate::ffi) live: Option<&'static LiveIo>,
    /// Records the request; called once, by [`ReqState::finish`].
    pub(in crate::ffi) record: fn(&mut ReqState, u64),
}

impl ReqState {
    pub(in crate::ffi) fn new(
        r: *mut ap::request_rec,
        claim: Claim,
        cpu0: Option<(u64, u64)>,
        record: fn(&mut ReqState, u64),
    ) -> ReqState {
        ReqState {
            r,
            claim,
            finished: false,
            error_response: false,
            daemon: false,
            app_done: false,
            cpu0,
            f: Finished::default(),
            live: None,
            record,
        }
    }

    /// Records the request, ended at `now` (µs), exactly once.
    pub(in crate::ffi) fn finish(&mut self, now: u64) {
        if self.finished {
            return;
        }
        self.finished = true;
        (self.record)(self, now);
    }

    /// One output pass of the application: `us` inside it, `bytes` of data.
    /// Cannot panic.
    #[inline]
    pub(in crate::ffi) fn wrote(&mut self, bytes: u64, us: u64) {
        let f = &mut self.f;
        f.io.output_write_us = f.io.output_write_us.wrapping_add(us);
        if bytes > 0 {
            f.io.output_bytes = f.io.output_bytes.wrapping_add(bytes);
            f.io.output_writes = f.io.output_writes.wrapping_add(1);
        }
        if let Some(l) = self.live {
            l.publish(&f.io);
        }
    }

    /// The application's response write `ap_pass_brigade(next, bb)`,
    /// made and counted (wrappers of mod_wsgi.so's calls).
    ///
    /// # Safety
    /// The arguments of an `ap_pass_brigade` call: a live filter and brigade.
    #[inline]
    pub(in crate::ffi) unsafe fn pass(
        &mut self,
        next: *mut ap::ap_filter_t,
        bb: *mut ap::apr_bucket_brigade,
    ) -> ap::apr_status_t {
        // SAFETY: per the contract.
        let (bytes, _) = unsafe { brigade_data(bb) };
        let t0 = sys::now_us();
        // SAFETY: per the contract, passed on unchanged.
        let rv = unsafe { ap::ap_pass_brigade(next, bb) };
        self.wrote(bytes, sys::now_us().saturating_sub(t0));
        rv
    }

    /// The application's read `ap_get_brigade(next, bb, mode, block,
    /// readbytes)`, made and counted if it succeeded (wrappers of
    /// mod_wsgi.so's calls).
    ///
    /// # Safety
    /// The arguments of an `ap_get_brigade` call: a live filter and brigade.
    #[inline]
    pub(in crate::ffi) unsafe fn get(
        &mut self,
        next: *mut ap::ap_filter_t,
        bb: *mut ap::apr_bucket_brigade,
        mode: ap::ap_input_mode_t,
        block: ap::apr_read_type_e,
        readbytes: ap::apr_off_t,
    ) -> ap::apr_status_t {
        let t0 = sys::now_us();
        // SAFETY: per the contract, passed on unchanged.
        let rv = unsafe { ap::ap_get_brigade(next, bb, mode, block, readbytes) };
        let t1 = sys::now_us();
        if rv == 0 {
            // SAFETY: the brigade this read filled.
            unsafe { self.read(bb, t1.saturating_sub(t0)) };
        }
        rv
    }

    /// One successful read of the application into `bb`, `us` inside it.
    ///
    /// # Safety
    /// `bb` is the live brigade the read filled.
    #[inline]
    pub(in crate::ffi) unsafe fn read(&mut self, bb: *mut ap::apr_bucket_brigade, us: u64) {
        let mut len: ap::apr_off_t = 0;
        // SAFETY: per the contract; read_all = 0 never blocks.
        unsafe { ap::apr_brigade_length(bb, 0, &mut len) };
        let f = &mut self.f;
        f.io.input_read_us = f.io.input_read_us.wrapping_add(us);
        if len > 0 {
            f.io.input_bytes = f.io.input_bytes.wrapping_add(len as u64);
            f.io.input_reads = f.io.input_reads.wrapping_add(1);
        }
        if let Some(l) = self.live {
            l.publish(&f.io);
        }
    }
}

/// mod_wsgi.so's response write `ap_pass_brigade(next, bb)`: counted for
/// `st`, the request it writes, or passed on uncounted when we do not track
/// it. What the GOT wrappers of both accounting paths do once they have
/// looked up the request's state.
///
/// # Safety
/// The arguments of an `ap_pass_brigade` call: a live filter and brigade.
#[inline]
pub(in crate::ffi) unsafe fn pass_for(
    st: Option<&mut ReqState>,
    next: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
) -> ap::apr_status_t {
    match st {
        // SAFETY: per the contract.
        Some(st) => unsafe { st.pass(next, bb) },
        // SAFETY: per the contract, passed on unchanged.
        None => unsafe { ap::ap_pass_brigade(next, bb) },
    }
}

/// mod_wsgi.so's read `ap_get_brigade(next, bb, mode, block, readbytes)`:
/// counted for `st`, the request it reads, or passed on uncounted.
///
/// # Safety
/// The arguments of an `ap_get_brigade` call: a live filter and brigade.
#[inline]
pub(in crate::ffi) unsafe fn get_for(
    st: Option<&mut ReqState>,
    next: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
    mode: ap::ap_input_mode_t,
    block: ap::apr_read_type_e,
    readbytes: ap::apr_off_t,
) -> ap::apr_status_t {
    match st {
        // SAFETY: per the contract.
        Some(st) => unsafe { st.get(next, bb, mode, block, readbytes) },
        // SAFETY: per the contract, passed on unchanged.
        None => unsafe { ap::ap_get_brigade(next, bb, mode, block, readbytes) },
    }
}

thread_local! {
    /// This thread's worker slot and kernel thread id (u32::MAX: none yet).
    static WORKER: std::cell::Cell<(u32, i32)> = const { std::cell::Cell::new((u32::MAX, 0)) };
}

/// This thread's worker slot (assigned on its first request) and kernel
/// thread id: one thread-local read per request.
pub(in crate::ffi) fn thread_slot(acc: &Accounting) -> (u32, i32) {
    WORKER.with(|w| {
        let (slot, tid) = w.get();
        if slot != u32::MAX {
            return (slot, tid);
        }
        let v = (acc.assign_slot(), sys::tid());
        w.set(v);
        v
    })
}

/// Data bytes in an output brigade, and whether it ends the response.
/// Cannot panic.
///
/// # Safety
/// `bb` is a live brigade.
#[inline]
pub(in crate::ffi) unsafe fn brigade_data(bb: *mut ap::apr_bucket_brigade) -> (u64, bool) {
    let mut bytes = 0u64;
    let mut eos = false;
    // SAFETY: walking the live brigade's bucket ring (the caller's
    // contract), from its first bucket to its sentinel.
    unsafe {
        let sentinel = m::brigade_sentinel(bb);
        let mut e = m::brigade_first(bb);
        while e != sentinel {
            if m::bucket_is_eos(e) {
                eos = true;
            } else if !m::bucket_is_metadata(e) && (*e).length != usize::MAX as ap::apr_size_t {
                bytes = bytes.wrapping_add((*e).length as u64);
            }
            e = m::bucket_next(e);
        }
    }
    (bytes, eos)
}
