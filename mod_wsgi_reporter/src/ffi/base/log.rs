//! The Apache error log, every line prefixed `mod_wsgi_telemetry: `.

use std::ffi::{c_int, CString};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicPtr, Ordering::*};

use apache_headers as ap;

/// The main server, for lines logged without one (set in `child_init`).
static MAIN_SERVER: AtomicPtr<ap::server_rec> = AtomicPtr::new(null_mut());

/// Remembers this child's main server for [`log`] calls that have none.
pub(in crate::ffi) fn set_main_server(s: *mut ap::server_rec) {
    MAIN_SERVER.store(s, Relaxed);
}

/// Logs `msg` at `level` for server `s` (NULL: the main server).
pub(in crate::ffi) fn log(level: u32, s: *const ap::server_rec, msg: &str) {
    let Ok(c) = CString::new(format!("mod_wsgi_telemetry: {msg}")) else {
        return;
    };
    let s = if s.is_null() {
        MAIN_SERVER.load(Relaxed) as *const _
    } else {
        s
    };
    // SAFETY: format "%s" with one NUL-terminated argument; a NULL server is
    // accepted by ap_log_error_ (logs to the main log / stderr).
    unsafe {
        ap::ap_log_error_(
            c"mod_wsgi_telemetry".as_ptr(),
            0,
            super::module_index(),
            level as c_int,
            0,
            s,
            c"%s".as_ptr(),
            c.as_ptr(),
        )
    };
}

/// A warning for the main server's log (the reporter's `Probes::warn`).
pub(in crate::ffi) fn log_warning(msg: &str) {
    log(ap::APLOG_WARNING, null(), msg);
}

/// Replaces Rust's panic message on stderr with one line in the Apache
/// error log; `guard` then turns the panic into the hook's fallback.
pub(in crate::ffi) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log(
            ap::APLOG_ERR,
            null(),
            &format!("internal panic (request served without telemetry): {info}"),
        );
    }));
}
