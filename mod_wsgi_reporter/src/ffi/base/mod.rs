//! The bottom layer of the FFI: what every hook, filter and directive
//! handler builds on, and nothing that calls back up into them.
//!
//! * [`guard`]: the `catch_unwind` every `extern "C"` entry point runs its
//!   body in;
//! * `log`: the Apache error log, with the module's name as prefix, and
//!   the panic hook that logs a panic there in one line;
//! * `conf`: the directive values and the daemon groups of the
//!   configuration (`Copy` values, re-derived on every (re)load);
//! * `capabilities`: the loaded mod_wsgi's version and what the module
//!   uses beside it;
//! * `sym`: `dlsym` look-ups and function pointers made from them;
//! * `request`: a checked `request_rec` handed around safely;
//! * [`this_module`]: our module record, for per-request config vectors.
//!
//! Must never: import from another `ffi` module (they all import this).

pub(super) mod capabilities;
pub(super) mod conf;
pub(super) mod log;
pub(super) mod request;
pub(super) mod sym;

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering::*};

use apache_headers as ap;

/// A hook declined the request (httpd's `DECLINED`).
pub(super) const DECLINED: c_int = -1;
/// httpd's `OK`.
pub(super) const OK: c_int = 0;

/// Runs `f`, turning a panic into `fallback` (a panic must never unwind
/// into C or abort an Apache process).
pub(super) fn guard<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Our module record (`wsgi_telemetry_module`), set by `register_hooks`
/// before httpd reads any configuration.
static THIS_MODULE: AtomicPtr<ap::module> = AtomicPtr::new(null_mut());

/// Called by the module record's `register_hooks` with the record itself.
pub(super) fn set_this_module(m: *mut ap::module) {
    THIS_MODULE.store(m, Release);
}

/// Our module record (NULL before `register_hooks`).
pub(super) fn this_module() -> *const ap::module {
    THIS_MODULE.load(Acquire)
}

/// The module index httpd gave us (`APLOG_NO_MODULE`, -1, before
/// `register_hooks`).
pub(super) fn module_index() -> c_int {
    let m = this_module();
    if m.is_null() {
        return -1;
    }
    // SAFETY: `m` is our static module record; httpd writes its index once,
    // when the module is added, before any hook runs.
    unsafe { std::ptr::addr_of!((*m).module_index).read() }
}

/// `ap_mpm_query(code)`, 0 when the MPM does not answer.
pub(super) fn mpm_query(code: u32) -> c_int {
    let mut v: c_int = 0;
    // SAFETY: a valid out-pointer to a local int.
    let rc = unsafe { ap::ap_mpm_query(code as c_int, &mut v) };
    if rc == 0 {
        v
    } else {
        0
    }
}
