//! Naming this MPM child in the slow records of the daemon processes it
//! hands requests to: its pid goes into the request environment as
//! `mod_wsgi_telemetry.server_pid`, which mod_wsgi sends to the daemon
//! (`slow_server_pid`). Only when the configuration has daemon groups and
//! slow requests on.

use std::ffi::{c_char, CString};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering::*};

use crate::ffi::base::guard;
use crate::ffi::base::request::Request;
use apache_headers as ap;

/// This child's pid as a C string, leaked for the life of the process
/// (NULL: not wanted).
static SERVER_PID_STR: AtomicPtr<c_char> = AtomicPtr::new(null_mut());

/// Makes this child name itself in the requests it hands to daemons
/// (`child_init`).
pub(in crate::ffi) fn enable() {
    if let Ok(c) = CString::new(std::process::id().to_string()) {
        SERVER_PID_STR.store(c.into_raw(), Release);
    }
}

/// Whether [`enable`] ran.
pub(in crate::ffi) fn enabled() -> bool {
    !SERVER_PID_STR.load(Relaxed).is_null()
}

/// Whether `h` is one of mod_wsgi's handler names.
pub(in crate::ffi) fn is_wsgi_handler(h: &[u8]) -> bool {
    h == b"wsgi-script" || h == b"application/x-httpd-wsgi"
}

/// [`note`] for a mod_wsgi request, from a handler that has not looked at
/// the request yet.
pub(in crate::ffi) fn note_if_wsgi(r: Request<'_>) {
    if enabled() {
        guard((), || {
            if is_wsgi_handler(r.handler()) {
                note(r);
            }
        });
    }
}

/// For a request mod_wsgi may hand to a daemon process: the daemon's slow
/// records name this child (`slow_server_pid`).
pub(in crate::ffi) fn note(r: Request<'_>) {
    let pid_str = SERVER_PID_STR.load(Relaxed);
    if !pid_str.is_null() {
        // Appended, not set: httpd has no such key of its own to replace,
        // and `setn` would first compare the key with every entry
        // (about 2,400 instructions per request).
        // SAFETY: the live request's table; a static key and a string
        // leaked for the life of the process.
        unsafe {
            ap::apr_table_addn(
                r.rec().subprocess_env,
                c"mod_wsgi_telemetry.server_pid".as_ptr(),
                pid_str,
            )
        };
    }
}
