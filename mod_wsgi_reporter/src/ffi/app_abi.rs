//! The C ABI of the application's own metrics (docs/app-metrics.md): the
//! five functions the `mod_wsgi_telemetry` Python package finds with
//! `dlsym` and calls through `ctypes`, from any thread of any interpreter,
//! in an MPM child or a daemon process. Each turns its arguments into a
//! slice and calls the process's `reporter_core::app_metrics` table (the
//! one the reporter drains each tick).
//!
//! Must never: allocate, lock or block once a process has decided whether
//! application metrics are on (the first call decides, then every call is
//! one atomic load before the table's own atomics); unwind into C.

use std::ffi::{c_char, c_int};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::*};
use std::sync::Arc;

use reporter_core::app_metrics::{AppMetrics, Status};
use wire::app::MAX_NAME_LEN;

use super::base::conf::config;
use super::base::guard;
use super::daemon::start::reporting_child;
use super::process::app_table;

/// The only ABI version so far.
const ABI_VERSION: c_int = 1;

/// This process's table once application metrics are known to be on.
static TABLE: AtomicPtr<AppMetrics> = AtomicPtr::new(null_mut());
/// Set once they are known to be off in this process.
static OFF: AtomicBool = AtomicBool::new(false);

/// The table, or None when application metrics are off here: decided on
/// the first call (configuration, and whether this process reports), then
/// one load.
fn table() -> Option<&'static AppMetrics> {
    let t = TABLE.load(Acquire);
    if !t.is_null() {
        // SAFETY: set below from the `Arc` in `app_table`'s static, which
        // is never dropped.
        return Some(unsafe { &*t });
    }
    if OFF.load(Relaxed) {
        return None;
    }
    let cfg = config();
    if !(cfg.enabled && cfg.app_metrics() && reporting_child()) {
        OFF.store(true, Relaxed);
        return None;
    }
    let t: &'static AppMetrics = app_table();
    TABLE.store(Arc::as_ptr(app_table()).cast_mut(), Release);
    Some(t)
}

/// One call: checks the name's pointer and length, then `f` on the table.
///
/// # Safety
/// `name` is NULL or points to `len` readable bytes.
unsafe fn call(
    name: *const c_char,
    len: usize,
    f: impl FnOnce(&AppMetrics, &[u8]) -> Status,
) -> c_int {
    // A panic (a bug) makes the package a no-op rather than raise.
    guard(Status::Disabled as c_int, || {
        let Some(t) = table() else {
            return Status::Disabled as c_int;
        };
        if name.is_null() || len > MAX_NAME_LEN {
            return Status::BadName as c_int;
        }
        // SAFETY: per the contract, `len` (at most 64) readable bytes,
        // only read during this call.
        let name = unsafe { std::slice::from_raw_parts(name.cast::<u8>(), len) };
        f(t, name) as c_int
    })
}

/// The ABI version (1): the package binds only to the version it speaks.
#[no_mangle]
pub extern "C" fn mwt_app_abi_version() -> c_int {
    guard(ABI_VERSION, || ABI_VERSION)
}

/// 1 when application metrics are on in this process (`+AppMetrics`, and
/// a process that reports), else 0.
#[no_mangle]
pub extern "C" fn mwt_app_enabled() -> c_int {
    guard(0, || table().is_some() as c_int)
}

/// Adds `value` (finite, >= 0) to the counter `name`.
///
/// # Safety
/// `name` is NULL or points to `name_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mwt_app_incr(name: *const c_char, name_len: usize, value: f64) -> c_int {
    // SAFETY: per the contract.
    unsafe { call(name, name_len, |t, n| t.incr(n, value)) }
}

/// Sets the gauge `name` to `value` (finite).
///
/// # Safety
/// `name` is NULL or points to `name_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mwt_app_set(name: *const c_char, name_len: usize, value: f64) -> c_int {
    // SAFETY: per the contract.
    unsafe { call(name, name_len, |t, n| t.set(n, value)) }
}

/// Adds `seconds` (finite, >= 0) to the distribution `name`.
///
/// # Safety
/// `name` is NULL or points to `name_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mwt_app_record(
    name: *const c_char,
    name_len: usize,
    seconds: f64,
) -> c_int {
    // SAFETY: per the contract.
    unsafe { call(name, name_len, |t, n| t.record(n, seconds)) }
}
