//! The life of the configuration and of an MPM child: `pre_config` (start
//! from defaults), `check_config` (refuse to run beside a mod_wsgi that
//! has its own reporter), `post_config` after mod_wsgi's (say once per
//! start which capabilities the loaded mod_wsgi's version allows),
//! `child_init` (start this child's reporter and choose how its requests
//! are accounted), and the child's end (`stop`).
//!
//! Must never: start a thread or keep destructor-bearing state in the
//! Apache parent.

pub(super) mod stop;
pub(super) mod unused_hooks;

use std::ffi::c_int;
use std::ptr::null;

use apache_headers as ap;

use self::stop::{child_exit, max_connections_per_child, pre_connection};
use self::unused_hooks::{drop_unused, Ours};
use crate::ffi::base::capabilities::capabilities;
use crate::ffi::base::conf::{config, has_daemon_groups, update_config};
use crate::ffi::base::log::{install_panic_hook, log, set_main_server};
use crate::ffi::base::sym::{read_int, sym};
use crate::ffi::base::{guard, mpm_query, OK};
use crate::ffi::embedded::{filter_mode, mod_wsgi_calls, server_pid};
use crate::ffi::process::{identity, mark_mpm_child, new_process, set_process};
use crate::ffi::request::filters::insert_error_filter;
use crate::ffi::signals::install_signal_spies;
use reporter_core::capabilities::Verdict;
use reporter_core::config::Config;

/// httpd's `pre_config` hook.
///
/// # Safety
/// Only for httpd, as its `pre_config` hook.
pub(super) unsafe extern "C" fn pre_config(
    _p: *mut ap::apr_pool_t,
    _pl: *mut ap::apr_pool_t,
    _pt: *mut ap::apr_pool_t,
) -> c_int {
    guard(OK, || {
        // The module may stay mapped across a restart: start from defaults.
        update_config(|c| *c = Config::DEFAULT);
        OK
    })
}

/// httpd's `check_config` hook.
///
/// # Safety
/// Only for httpd, as its `check_config` hook.
pub(super) unsafe extern "C" fn check_config(
    _p: *mut ap::apr_pool_t,
    _pl: *mut ap::apr_pool_t,
    _pt: *mut ap::apr_pool_t,
    s: *mut ap::server_rec,
) -> c_int {
    guard(OK, || {
        // mod_wsgi >= 6 has its own reporter and exports this symbol; httpd
        // loads modules RTLD_GLOBAL, so it is visible here.
        if !sym(c"wsgi_telemetry_is_enabled").is_null() {
            log(
                ap::APLOG_ERR,
                s,
                "the loaded mod_wsgi already has a built-in telemetry reporter (mod_wsgi >= 6); \
                 use its WSGITelemetryService and remove the LoadModule line for \
                 wsgi_telemetry_module: one reporter per process, never two",
            );
            return 500;
        }
        OK
    })
}

/// httpd's `post_config` hook, after mod_wsgi's (which adds its version
/// to the server description): logs, in the Apache parent, one `notice`
/// line with the mod_wsgi version and what works with it, and for a
/// version outside the tested ones one `warn` line saying what was turned
/// off. Once per start and per restart: httpd's first configuration pass
/// at start-up (the one `apache2 -t` also makes; mod_wsgi adds no version
/// then) is skipped.
///
/// # Safety
/// Only for httpd, as its `post_config` hook in the Apache parent.
pub(super) unsafe extern "C" fn post_config_last(
    _p: *mut ap::apr_pool_t,
    _pl: *mut ap::apr_pool_t,
    _pt: *mut ap::apr_pool_t,
    s: *mut ap::server_rec,
) -> c_int {
    guard(OK, || {
        // SAFETY: no preconditions.
        let state = unsafe { ap::ap_state_query(ap::AP_SQ_MAIN_STATE as c_int) };
        if !config().enabled || state != ap::AP_SQ_MS_CREATE_CONFIG as c_int {
            return OK;
        }
        let (caps, version) = capabilities();
        log(ap::APLOG_NOTICE, s, &caps.notice_line(&version));
        if let Some(w) = caps.warning_line(&version) {
            log(ap::APLOG_WARNING, s, &w);
        }
        OK
    })
}

/// Our per-request and per-connection hook functions (`unused_hooks`).
fn our_hooks() -> Ours {
    Ours {
        handler: filter_mode::handler as *const () as usize,
        pre_connection: pre_connection as *const () as usize,
        insert_error_filter: insert_error_filter as *const () as usize,
    }
}

/// httpd's `child_init` hook.
///
/// # Safety
/// Only for httpd, as its `child_init` hook (in an MPM child).
pub(super) unsafe extern "C" fn child_init(p: *mut ap::apr_pool_t, s: *mut ap::server_rec) {
    guard((), || {
        mark_mpm_child();
        set_main_server(s);
        let cfg = config();
        if !cfg.enabled {
            // SAFETY: child_init, before any request.
            unsafe { drop_unused(&our_hooks(), false, false) };
            return;
        }
        // Only worth a table entry (and a key in every WSGI environ,
        // which mod_wsgi sends to the daemon and turns into Python strings
        // there) when there are daemons to pass it to and slow records to
        // name this child in.
        if has_daemon_groups() && cfg.slow_threshold_us > 0 {
            server_pid::enable();
        }
        let (caps, version) = capabilities();
        if caps.read_python_required && !embedded_python_possible() {
            // All WSGI applications run in daemon processes, which report
            // them (with the phases this child stamps into the request):
            // a reporter here would only add an idle process that never
            // serves Python. Our handler stays only to name this child in
            // the daemons' slow records.
            // SAFETY: child_init, before any request.
            unsafe { drop_unused(&our_hooks(), server_pid::enabled(), false) };
            log(
                ap::APLOG_INFO,
                s,
                "No telemetry reporter in this child: mod_wsgi runs no Python here \
                 (WSGIRestrictEmbedded On); daemon processes report their requests.",
            );
            return;
        }
        let threaded = mpm_query(ap::AP_MPMQ_IS_THREADED) != 0;
        if !threaded {
            // prefork installed its child handlers before child_init.
            install_signal_spies();
        }
        let threads = if threaded {
            mpm_query(ap::AP_MPMQ_MAX_THREADS).max(1) as usize
        } else {
            1
        };
        let proc_ = new_process(&cfg, identity(), threads, false);
        install_panic_hook();
        if let Err(e) = proc_.start() {
            log(
                ap::APLOG_WARNING,
                s,
                &format!(
                    "Unable to create telemetry reporter thread ({e}); metrics will not be sent."
                ),
            );
            return;
        }
        set_process(proc_);
        let direct = if caps.verdict == Verdict::Tested {
            // (`install` finds and names any other reason itself.)
            // SAFETY: child_init, before any request or worker thread.
            unsafe { mod_wsgi_calls::install() }.map_err(|e| e.to_string())
        } else {
            // Said once by the parent (`post_config_last`), not per child.
            Err(String::new())
        };
        match direct {
            Ok(()) => {
                // The connection count only serves MaxConnectionsPerChild.
                let keep_pre_connection = max_connections_per_child() > 0;
                // SAFETY: child_init, before any request.
                unsafe { drop_unused(&our_hooks(), false, keep_pre_connection) };
                log(
                    ap::APLOG_INFO,
                    s,
                    "Requests are accounted from mod_wsgi's own calls.",
                )
            }
            Err(e) => {
                if e.is_empty() {
                    log(
                        ap::APLOG_INFO,
                        s,
                        &format!(
                            "Requests are accounted with filters (mod_wsgi {} is not a tested version).",
                            String::from_utf8_lossy(&version)
                        ),
                    );
                } else {
                    log(
                        ap::APLOG_NOTICE,
                        s,
                        &format!("Requests are accounted with filters ({e})."),
                    );
                }
                filter_mode::hook_end_request();
            }
        }
        log(
            ap::APLOG_INFO,
            s,
            &format!(
                "Telemetry reporter started; target='unix:{}', interval={:.3}s.",
                String::from_utf8_lossy(cfg.target_path()),
                cfg.interval
            ),
        );
        // SAFETY: p is the child pool; the cleanup runs when it is
        // destroyed at child exit.
        unsafe {
            ap::apr_pool_cleanup_register(
                p,
                null(),
                Some(child_exit),
                Some(ap::apr_pool_cleanup_null),
            )
        };
    })
}

/// Whether mod_wsgi may run Python in this MPM child: false when it
/// decided in `post_config` not to initialise Python in the children
/// (`wsgi_python_required == 0`: `WSGIRestrictEmbedded On`, so every WSGI
/// application runs in a daemon process). True when the global is not
/// exported (another mod_wsgi build): a reporter is started.
fn embedded_python_possible() -> bool {
    let p = sym(c"wsgi_python_required");
    if p.is_null() {
        return true;
    }
    // SAFETY: mod_wsgi's exported `int wsgi_python_required`, set in the
    // parent's post_config and only read after the fork.
    unsafe { read_int(p) != 0 }
}
