//! This process's reporter: built from the configuration and what httpd
//! and Python say about themselves, started in an MPM child's `child_init`
//! (embedded mode) or by a daemon process's watcher thread (`daemon/`).
//!
//! Must never: run in the Apache parent (no threads there).

use std::ffi::c_char;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering::*};
use std::sync::{Arc, OnceLock};

use apache_headers as ap;
use apache_headers::macros as m;
use reporter_core::accum::Accounting;
use reporter_core::app_metrics::{AppMetrics, DEFAULT_MAX_NAMES};
use reporter_core::config::Config;
use reporter_core::reporter::{self, OwnedIdentity, Reporter, Settings};
use reporter_core::runtime::{Probes, Process};
use reporter_core::sys::{self, SocketSink};

use super::base::log::log_warning;
use super::base::sym::{fnptr, sym};

/// An MPM child's reporter, set in `child_init`. Intentionally leaked at
/// child exit (the process is ending; a request thread may still hold it).
static PROCESS: AtomicPtr<Process<SocketSink>> = AtomicPtr::new(null_mut());
/// Set at the start of `child_init`: this process is an MPM child (the
/// daemon-mode watcher leaves it alone).
static MPM_CHILD: AtomicBool = AtomicBool::new(false);

/// The MPM child's reporter (None: not started, or not an MPM child).
pub(super) fn process() -> Option<&'static Process<SocketSink>> {
    let p = PROCESS.load(Acquire);
    // SAFETY: NULL or set once from Arc::into_raw in `set_process` and
    // never freed.
    unsafe { p.as_ref() }
}

/// This process's table of the application's own metrics, allocated on
/// first use: by the reporter's creation, or by the application's first
/// call if that comes first (mod_wsgi may import the application in its
/// own `child_init`, before ours). Only ever used in a child of the Apache
/// parent; a static, so it is never dropped.
pub(super) fn app_table() -> &'static Arc<AppMetrics> {
    static TABLE: OnceLock<Arc<AppMetrics>> = OnceLock::new();
    TABLE.get_or_init(|| Arc::new(AppMetrics::new(DEFAULT_MAX_NAMES)))
}

/// Publishes the started reporter of this MPM child.
pub(super) fn set_process(p: Arc<Process<SocketSink>>) {
    PROCESS.store(Arc::into_raw(p) as *mut _, Release);
}

/// Marks this process as an MPM child (`child_init`).
pub(super) fn mark_mpm_child() {
    MPM_CHILD.store(true, Release);
}

/// Whether `child_init` ran in this process.
pub(super) fn is_mpm_child() -> bool {
    MPM_CHILD.load(Acquire)
}

/// Identity fields of this process's datagrams (process group empty).
pub(super) fn identity() -> OwnedIdentity {
    // SAFETY: httpd returns a static NUL-terminated string.
    let desc = unsafe { m::cstr(ap::ap_get_server_description()) };
    let (apache, wsgi, py_short) = reporter::parse_server_description(desc);
    // The full Python version from the interpreter mod_wsgi loaded.
    let f = sym(c"Py_GetVersion");
    let py = if f.is_null() {
        py_short
    } else {
        // SAFETY: `const char *Py_GetVersion(void)` needs no GIL and
        // returns a static string.
        unsafe { reporter::python_version_token(m::cstr(fnptr::<VersionFn>(f)())) }
    };
    OwnedIdentity {
        mod_wsgi_version: wsgi,
        python_version: py,
        apache_version: apache,
        // SAFETY: a static string from the MPM.
        mpm_name: unsafe { m::cstr(ap::ap_show_mpm()) }.to_vec(),
        hostname: sys::hostname(),
        process_group: Vec::new(),
        // SAFETY: no preconditions.
        parent_pid: unsafe { libc::getppid() } as u64,
        switch_interval: 0.0,
    }
}

type VersionFn = unsafe extern "C" fn() -> *const c_char;

/// This process's reporter (embedded child or daemon), not yet started:
/// baselines seeded now, first tick after a per-pid offset.
pub(super) fn new_process(
    cfg: &Config,
    ident: OwnedIdentity,
    threads: usize,
    daemon: bool,
) -> Arc<Process<SocketSink>> {
    let pid = std::process::id();
    let settings = Settings {
        interval: cfg.interval,
        slow_threshold_us: cfg.slow_threshold_us,
        capture_user_agent: cfg.capture_user_agent(),
        daemon,
    };
    let path = std::path::Path::new(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(cfg.target_path()),
    );
    let ps = sys::process_stats();
    let rep = Reporter::new(
        SocketSink::open(path),
        settings,
        ident,
        pid,
        threads,
        sys::now_us(),
        (ps.cpu_user, ps.cpu_system),
    );
    let acc = Accounting::new(threads, cfg.slow_threshold_us, cfg.interval);
    Process::new(
        acc,
        rep,
        cfg.interval,
        reporter::first_tick_delay(pid, cfg.interval),
        Probes {
            warn: log_warning,
            ..Probes::SYSTEM
        },
        cfg.app_metrics().then(|| app_table().clone()),
    )
}
