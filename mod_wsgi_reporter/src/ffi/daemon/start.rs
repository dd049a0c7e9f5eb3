//! Starting daemon mode: the Apache parent's `post_config` (reads the
//! daemon groups, finds mod_wsgi's globals, registers the fork handler),
//! and in each forked child the watcher thread that tells a daemon process
//! from an MPM child, starts the daemon's reporter and follows its life
//! until mod_wsgi begins the shutdown.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::*};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apache_headers as ap;
use apache_headers::macros as m;
use reporter_core::daemon::{self, DaemonRequests, GroupTable};
use reporter_core::gc::GcRegistry;

use super::auto_attach::{auto_attach, python_ready};
use super::request_hooks;
use super::state::{
    daemon, daemon_process_symbol, find_mod_wsgi_globals, group_name, in_daemon, reason_published,
    send_stopped, send_stopping, set_daemon, shutdown_begun, Daemon,
};
use crate::ffi::base::capabilities::capabilities;
use crate::ffi::base::conf::{config, daemon_group, set_daemon_groups};
use crate::ffi::base::guard;
use crate::ffi::base::log::log;
use crate::ffi::process::{identity, is_mpm_child, new_process, process};
use crate::ffi::signals::install_signal_spies;

/// The Apache parent's pid (set in post_config).
static PARENT_PID: AtomicI32 = AtomicI32::new(0);
static ATFORK_REGISTERED: AtomicBool = AtomicBool::new(false);
/// Serialises the creation of this daemon's reporter.
static DAEMON_INIT: Mutex<()> = Mutex::new(());

/// Collects `WSGIDaemonProcess` directives anywhere in the tree.
///
/// # Safety
/// `d` is NULL or a node of httpd's parsed configuration tree (alive in
/// pconf while the configuration is processed).
unsafe fn collect_groups(mut d: *const ap::ap_directive_t, out: &mut GroupTable) {
    while !d.is_null() {
        // SAFETY: per the contract; its children and siblings are nodes of
        // the same tree.
        let n = unsafe { &*d };
        // SAFETY: NUL-terminated strings of the tree.
        let name = unsafe { m::cstr(n.directive) };
        if name.eq_ignore_ascii_case(b"WSGIDaemonProcess") {
            // SAFETY: as above.
            if let Some(g) = daemon::parse_daemon_args(unsafe { m::cstr(n.args) }) {
                out.add(g);
            }
        }
        // SAFETY: a node of the same tree.
        unsafe { collect_groups(n.first_child, out) };
        d = n.next;
    }
}

/// httpd's `post_config` hook (Apache parent, before mod_wsgi's).
///
/// # Safety
/// Only for httpd, as its `post_config` hook in the Apache parent.
pub(in crate::ffi) unsafe extern "C" fn post_config(
    _p: *mut ap::apr_pool_t,
    _pl: *mut ap::apr_pool_t,
    _pt: *mut ap::apr_pool_t,
    _s: *mut ap::server_rec,
) -> c_int {
    guard(0, || {
        if !config().enabled {
            return 0;
        }
        let mut t = GroupTable::EMPTY;
        // SAFETY: httpd's exported root of the configuration tree, read
        // in post_config while the tree is alive.
        unsafe { collect_groups(std::ptr::addr_of!(ap::ap_conftree).read(), &mut t) };
        set_daemon_groups(t);
        find_mod_wsgi_globals();
        // SAFETY: no preconditions.
        PARENT_PID.store(unsafe { libc::getpid() }, Relaxed);
        if !daemon_process_symbol().is_null() && !ATFORK_REGISTERED.swap(true, AcqRel) {
            // SAFETY: a plain function pointer; glibc ties the registration
            // to this DSO and drops it when the module is unloaded.
            unsafe { libc::pthread_atfork(None, None, Some(atfork_child)) };
        }
        0
    })
}

extern "C" fn atfork_child() {
    guard((), || {
        // Only children of the Apache parent (MPM children, daemons);
        // never a fork made by an application inside a daemon.
        // SAFETY: no preconditions.
        if unsafe { libc::getppid() } != PARENT_PID.load(Relaxed) {
            return;
        }
        let _ = reporter_core::sys::spawn_masked("wsgi-telemetry-w", || {
            let _ = std::panic::catch_unwind(watch);
        });
    })
}

/// The watcher thread of a freshly forked child.
fn watch() {
    let t0 = Instant::now();
    loop {
        if is_mpm_child() {
            return; // an MPM child: embedded mode handles it
        }
        if in_daemon() {
            break;
        }
        let waited = t0.elapsed();
        if waited > Duration::from_secs(30) {
            return; // neither (a piped logger, a CGI fork, ...)
        }
        // mod_wsgi sets its global right after the fork: poll fast at first.
        std::thread::sleep(Duration::from_millis(if waited < Duration::from_secs(2) {
            2
        } else {
            50
        }));
    }
    let Some(d) = ensure_daemon() else { return };
    let mut next_attach = Instant::now();
    let attach_deadline = Instant::now() + Duration::from_secs(120);
    let mut next_spy = Instant::now();
    loop {
        if shutdown_begun() {
            // mod_wsgi's main thread names the reason right after setting
            // the flag (through the hooked publish call): give it a moment.
            if request_hooks::publish_hooked() {
                let until = Instant::now() + Duration::from_millis(500);
                while !reason_published() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            send_stopping(d);
            return;
        }
        // mod_wsgi installs its handlers at some point after the fork:
        // keep our spies in front of whatever is there (often at first,
        // then once a second).
        if Instant::now() >= next_spy {
            install_signal_spies();
            next_spy = Instant::now()
                + if d.started.elapsed() < Duration::from_secs(5) {
                    Duration::from_millis(20)
                } else {
                    Duration::from_secs(1)
                };
        }
        let now = Instant::now();
        let attaching = now < attach_deadline && !d.p.gc.has(b"");
        if attaching && now >= next_attach && python_ready() {
            auto_attach();
            next_attach = now + Duration::from_millis(250);
        }
        // Once the daemon is set up (spies settled, main interpreter
        // attached or given up on) and mod_wsgi names its shutdown through
        // the hooked publish call (which sends STOPPING itself), the flag
        // above is only a fallback: poll it once a second. Every 20 ms,
        // each wake-up preempts a worker on a busy core (about 100
        // wake-ups a second for two daemons, for nothing).
        let settled = !attaching
            && d.started.elapsed() >= Duration::from_secs(5)
            && request_hooks::publish_hooked();
        std::thread::sleep(Duration::from_millis(if settled { 1000 } else { 20 }));
    }
}

/// Creates and starts this daemon's reporter (once).
fn ensure_daemon() -> Option<&'static Daemon> {
    if let Some(d) = daemon() {
        return Some(d);
    }
    let _g = DAEMON_INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = daemon() {
        return Some(d);
    }
    let cfg = config();
    // Daemon reporters rest on mod_wsgi's internals (its globals, its GOT):
    // only beside a tested version (the parent's start-up line says so).
    if !cfg.enabled || !capabilities().0.daemon_accounting.on() || !in_daemon() {
        return None;
    }
    let name = group_name();
    let group = daemon_group(&name).or_else(|| daemon::parse_daemon_args(&name))?;
    if group.threads == 0 {
        // A service-script daemon (`threads=0`) serves no requests; as in
        // mod_wsgi 6.x it gets no reporter.
        return None;
    }
    let mut ident = identity();
    ident.process_group = name;
    let p = new_process(&cfg, ident, group.threads.max(1) as usize, true);
    let req = DaemonRequests::new(&p.acc);
    if let Err(e) = p.start() {
        log(
            ap::APLOG_WARNING,
            std::ptr::null(),
            &format!("Unable to create telemetry reporter thread ({e}); metrics will not be sent."),
        );
        return None;
    }
    let d = Box::new(Daemon {
        p,
        req,
        group,
        started: Instant::now(),
    });
    set_daemon(d);
    // Before the daemon's worker threads start (the watcher gets here
    // within milliseconds of the fork; Python is not even initialised).
    // SAFETY: in a daemon process right after the fork: mod_wsgi starts
    // its request threads only once Python is initialised, and a GOT entry
    // is changed with one aligned store (a caller sees the old or the new
    // target, both valid); the address is inside mod_wsgi.so.
    match unsafe { request_hooks::install(daemon_process_symbol()) } {
        Ok(_) => {}
        Err(e) => log(
            ap::APLOG_NOTICE,
            std::ptr::null(),
            &format!(
                "Daemon request hooks unavailable ({e}); requests are counted from mod_wsgi's events once the attach code runs."
            ),
        ),
    }
    // SAFETY: a plain function pointer, run by exit().
    unsafe { libc::atexit(at_exit) };
    install_signal_spies();
    daemon()
}

extern "C" fn at_exit() {
    guard((), || {
        let Some(d) = daemon() else { return };
        send_stopped(d);
    })
}

/// Whether this process reports, or will once our `child_init` has run: a
/// daemon process with a reporter, or any other child of the Apache
/// parent (an MPM child: mod_wsgi may run the application's imports in
/// its own `child_init`, before ours). Never the Apache parent.
pub(in crate::ffi) fn reporting_child() -> bool {
    if in_daemon() {
        return ensure_daemon().is_some();
    }
    // SAFETY: no preconditions.
    process().is_some() || unsafe { libc::getppid() } == PARENT_PID.load(Relaxed)
}

/// The GC registry of this process's reporter (a daemon's, started on
/// first use, or an MPM child's), and whether it is a daemon's.
pub(super) fn registry() -> Option<(&'static GcRegistry, bool)> {
    if let Some(d) = ensure_daemon() {
        return Some((&d.p.gc, true));
    }
    process().map(|p| (&p.gc, false))
}
