//! The C functions the attach code (python/mod_wsgi_telemetry_attach.py)
//! calls through `ctypes`, in a daemon process or an MPM child: register an
//! interpreter, read the interval, report an interpreter's GC counters.

use std::ffi::{c_char, c_int};

use apache_headers::macros as m;

use super::request_hooks;
use super::start::registry;
use super::state::daemon;
use crate::ffi::base::conf::config;
use crate::ffi::base::guard;

/// Attach modes returned to the attach code.
const MODE_NONE: c_int = -1;
const MODE_GC_ONLY: c_int = 0;
const MODE_REQUESTS: c_int = 1;
const MODE_ALREADY: c_int = -2;
const MODE_FULL: c_int = -3;

/// Registers the calling interpreter. Returns -1 when this process has no
/// reporter, -2 when the interpreter is already attached, -3 when the
/// interpreter table is full, 0 when only GC is to be reported (embedded
/// mode, or a daemon whose request hooks are installed: the hooks count
/// requests), 1 when request events are wanted too (a daemon without
/// them). `*index` receives the interpreter's handle.
///
/// # Safety
/// `name` is NULL or NUL-terminated; `index` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn wsgi_telemetry_attach(
    name: *const c_char,
    switch_interval: f64,
    index: *mut c_int,
) -> c_int {
    guard(MODE_NONE, || {
        let Some((reg, daemon_mode)) = registry() else {
            return MODE_NONE;
        };
        // SAFETY: per the contract above.
        let name = unsafe { m::cstr(name) };
        let Some((i, new)) = reg.register(name) else {
            return MODE_FULL;
        };
        if !new {
            return MODE_ALREADY;
        }
        if !index.is_null() {
            // SAFETY: valid out-pointer per the contract.
            unsafe { *index = i as c_int };
        }
        if let Some(d) = daemon() {
            d.p.with_reporter_mut(|r| r.set_switch_interval(switch_interval));
        }
        if daemon_mode && !request_hooks::hooked() {
            MODE_REQUESTS
        } else {
            MODE_GC_ONLY
        }
    })
}

/// Seconds between ticks (the attach code reports GC counters this often).
#[no_mangle]
pub extern "C" fn wsgi_telemetry_interval() -> f64 {
    config().interval
}

/// GC counters 300..=316 of interpreter `index`, in field order.
///
/// # Safety
/// `values` points to 17 u64.
#[no_mangle]
pub unsafe extern "C" fn wsgi_telemetry_gc_counters(index: c_int, values: *const u64) {
    guard((), || {
        if index < 0 || values.is_null() {
            return;
        }
        let Some((reg, _)) = registry() else { return };
        // SAFETY: per the contract above.
        let v = unsafe { &*(values as *const reporter_core::gc::Counters) };
        reg.set_counters(index as usize, v);
    })
}
