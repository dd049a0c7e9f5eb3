//! The three directives' handlers and the module's directive table: each
//! checks its context (main server only), hands its words to
//! `reporter_core::config` and turns an error into httpd's message, which
//! stops Apache at config time naming the directive.

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr::{null, null_mut};

use apache_headers as ap;
use apache_headers::macros as m;
use reporter_core::config::{self, Config};

use super::base::conf::update_config;
use super::base::guard;

/// The directive table of the module record (NULL-terminated).
#[repr(transparent)]
pub(super) struct Commands([ap::command_rec; 4]);
// SAFETY: read-only after construction; httpd only reads it.
unsafe impl Sync for Commands {}

pub(super) static COMMANDS: Commands = Commands([
    ap::command_rec {
        name: c"WSGITelemetryService".as_ptr(),
        func: ap::cmd_func {
            take2: Some(cmd_service),
        },
        cmd_data: null_mut(),
        req_override: ap::RSRC_CONF as c_int,
        args_how: ap::cmd_how_TAKE12,
        errmsg: c"unix:/path/to/socket [interval=SECONDS]: send telemetry datagrams to this socket"
            .as_ptr(),
    },
    ap::command_rec {
        name: c"WSGISlowRequests".as_ptr(),
        func: ap::cmd_func {
            take1: Some(cmd_slow),
        },
        cmd_data: null_mut(),
        req_override: ap::RSRC_CONF as c_int,
        args_how: ap::cmd_how_TAKE1,
        errmsg: c"SECONDS: report requests running at least this long (0 = off)".as_ptr(),
    },
    ap::command_rec {
        name: c"WSGITelemetryOptions".as_ptr(),
        func: ap::cmd_func {
            raw_args: Some(cmd_options),
        },
        cmd_data: null_mut(),
        req_override: ap::RSRC_CONF as c_int,
        args_how: ap::cmd_how_RAW_ARGS,
        errmsg: c"[+|-]CaptureUserAgent [+|-]AppMetrics ... | None | All".as_ptr(),
    },
    ap::command_rec {
        name: null(),
        func: ap::cmd_func { no_args: None },
        cmd_data: null_mut(),
        req_override: 0,
        args_how: 0,
        errmsg: null(),
    },
]);

/// Returns a directive error as a string in the command pool.
///
/// # Safety
/// `cmd` is the live `cmd_parms` httpd passed a directive handler.
unsafe fn cmd_error(cmd: *mut ap::cmd_parms, msg: &str) -> *const c_char {
    let Ok(c) = CString::new(msg) else {
        return c"mod_wsgi_telemetry: invalid directive".as_ptr();
    };
    // SAFETY: cmd->pool is the live config pool; apr_pstrdup copies.
    unsafe { ap::apr_pstrdup((*cmd).pool, c.as_ptr()) }
}

/// `GLOBAL_ONLY` context check; httpd's own message on failure.
///
/// # Safety
/// `cmd` is the live `cmd_parms` httpd passed a directive handler.
unsafe fn global_only(cmd: *mut ap::cmd_parms) -> Option<*const c_char> {
    // SAFETY: per the contract.
    let e = unsafe { ap::ap_check_cmd_context(cmd, m::GLOBAL_ONLY as u32) };
    (!e.is_null()).then_some(e)
}

/// A directive argument (None: absent).
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn arg(p: *const c_char) -> Option<String> {
    // SAFETY: per the contract.
    (!p.is_null()).then(|| String::from_utf8_lossy(unsafe { m::cstr(p) }).into_owned())
}

/// The body every directive handler shares: the context check (main
/// server only), then `set` on the directive values; an error becomes
/// httpd's message for the directive.
///
/// # Safety
/// `cmd` is the live `cmd_parms` httpd passed the handler.
unsafe fn apply(
    cmd: *mut ap::cmd_parms,
    set: impl FnOnce(&mut Config) -> Result<(), String>,
) -> *const c_char {
    guard(c"mod_wsgi_telemetry: internal error".as_ptr(), || {
        // SAFETY: per the contract.
        if let Some(e) = unsafe { global_only(cmd) } {
            return e;
        }
        match update_config(set) {
            Ok(()) => null(),
            // SAFETY: per the contract.
            Err(e) => unsafe { cmd_error(cmd, &e) },
        }
    })
}

/// # Safety
/// Only for httpd, as a directive handler: its live `cmd_parms` and NULL or NUL-terminated words.
unsafe extern "C" fn cmd_service(
    cmd: *mut ap::cmd_parms,
    _m: *mut c_void,
    a1: *const c_char,
    a2: *const c_char,
) -> *const c_char {
    // SAFETY: httpd passes its live cmd_parms and NULL or NUL-terminated
    // words.
    unsafe {
        apply(cmd, |c| {
            config::telemetry_service(c, &arg(a1).unwrap_or_default(), arg(a2).as_deref())
        })
    }
}

/// # Safety
/// Only for httpd, as a directive handler: its live `cmd_parms` and NULL or a NUL-terminated word.
unsafe extern "C" fn cmd_slow(
    cmd: *mut ap::cmd_parms,
    _m: *mut c_void,
    a1: *const c_char,
) -> *const c_char {
    // SAFETY: httpd passes its live cmd_parms and NULL or a NUL-terminated
    // word.
    unsafe {
        apply(cmd, |c| {
            config::slow_requests(c, &arg(a1).unwrap_or_default())
        })
    }
}

/// # Safety
/// Only for httpd, as a `RAW_ARGS` directive handler: its live `cmd_parms` and argument string.
unsafe extern "C" fn cmd_options(
    cmd: *mut ap::cmd_parms,
    _m: *mut c_void,
    args: *const c_char,
) -> *const c_char {
    // SAFETY: httpd passes its live cmd_parms and its argument string.
    unsafe { apply(cmd, |c| config::telemetry_options(c, &words(cmd, args))) }
}

/// The words of a `RAW_ARGS` directive's argument string.
///
/// # Safety
/// `cmd` is the live `cmd_parms`, `args` its NUL-terminated argument string.
unsafe fn words(cmd: *mut ap::cmd_parms, args: *const c_char) -> Vec<String> {
    let mut words = Vec::new();
    let mut p = args;
    loop {
        // SAFETY: ap_getword_conf advances `p` over the live argument
        // string and returns a word allocated in the temp pool.
        let w = unsafe { ap::ap_getword_conf((*cmd).temp_pool, &mut p) };
        // SAFETY: NUL-terminated word from the pool.
        let w = unsafe { m::cstr(w) };
        if w.is_empty() {
            break;
        }
        words.push(String::from_utf8_lossy(w).into_owned());
    }
    words
}
