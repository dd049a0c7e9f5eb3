use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering::*};
use std::sync::{Arc, Mutex};

use apache_headers as ap;
use apache_headers::macros as m;

use super::hooks::Ours;
use crate::accum::{text, Accounting, Claim, Detail, Finished, LiveIo};
use crate::config::{self, Config};
use crate::reporter::{self, OwnedIdentity, Reporter, Settings};
use crate::runtime::{Probes, Process};
use crate::sys::{self, SocketSink};

const DECLINED: c_int = -1;
const OK: c_int = 0;

/// Runs `f`, turning a panic into `fallback` (a panic must never unwind
/// into C or abort an Apache process).
pub(super) fn guard<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

// ---------------------------------------------------------------- state --

/// Directive values. Written while the parent reads its config (single
/// threaded), reset in pre_config on every (re)load; `Config` is `Copy`, so
/// this static owns no heap memory and has no destructor.
static CONFIG: Mutex<Config> = Mutex::new(Config::DEFAULT);

pub(super) fn config() -> Config {
    *CONFIG.lock().unwrap_or_else(|e| e.into_inner())
}

/// The child's reporter, set in child_init. Intentionally leaked at child
/// exit (the process is ending; a request thread may still hold it).
static PROCESS: AtomicPtr<Process<SocketSink>> = AtomicPtr::new(null_mut());
static OUT_FILTER: AtomicPtr<ap::ap_filter_rec_t> = AtomicPtr::new(null_mut());
static IN_FILTER: AtomicPtr<ap::ap_filter_rec_t> = AtomicPtr::new(null_mut());
static MAIN_SERVER: AtomicPtr<ap::server_rec> = AtomicPtr::new(null_mut());
/// Set at the start of child_init: this process is an MPM child (the
/// daemon-mode watcher leaves it alone).
pub(super) static CHILD_INIT_RAN: AtomicBool = AtomicBool::new(false);
/// This child's pid as a C string, passed to daemon processes in the
/// request environment as `mod_wsgi_telemetry.server_pid`.
static SERVER_PID_STR: AtomicPtr<c_char> = AtomicPtr::new(null_mut());
/// Connections accepted by this child (for `maximum_requests`).
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
/// Reason chosen in child_stopping (index into REASONS, 0 = none yet).
static STOP_REASON: AtomicU8 = AtomicU8::new(0);
const REASONS: [&[u8]; 4] = [
    b"",
    b"graceful_signal",
    b"shutdown_signal",
    b"maximum_requests",
];

pub(super) fn process() -> Option<&'static Process<SocketSink>> {
    let p = PROCESS.load(Acquire);
    // SAFETY: set once from Arc::into_raw in child_init and never freed.
    unsafe { p.as_ref() }
}

pub(super) fn log(level: u32, s: *const ap::server_rec, msg: &str) {
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
            std::ptr::addr_of!(wsgi_telemetry_module.module_index).read(),
            level as c_int,
            0,
            s,
            c"%s".as_ptr(),
            c.as_ptr(),
        )
    };
}

// --------------------------------------------------------- module record --

/// A NULL-terminated list of C strings for hook ordering.
struct PtrList([*const c_char; 2]);
// SAFETY: static string literals, read-only.
unsafe impl Sync for PtrList {}

#[repr(transparent)]
struct Commands([ap::command_rec; 4]);
// SAFETY: read-only after construction; httpd only reads it.
unsafe impl Sync for Commands {}

static COMMANDS: Commands = Commands([
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
        errmsg: c"[+|-]CaptureUserAgent ... | None | All".as_ptr(),
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

/// The module record (`LoadModule wsgi_telemetry_module ...`).
#[no_mangle]
pub static mut wsgi_telemetry_module: ap::module = ap::module_struct {
    version: ap::MODULE_MAGIC_NUMBER_MAJOR as c_int,
    minor_version: ap::MODULE_MAGIC_NUMBER_MINOR as c_int,
    module_index: -1,
    name: c"mod_wsgi_telemetry.c".as_ptr(),
    dynamic_load_handle: null_mut(),
    next: null_mut(),
    magic: ap::MODULE_MAGIC_COOKIE as std::ffi::c_ulong,
    rewrite_args: None,
    create_dir_config: None,
    merge_dir_config: None,
    create_server_config: None,
    merge_server_config: None,
    cmds: &COMMANDS as *const Commands as *const ap::command_rec,
    register_hooks: Some(register_hooks),
    flags: 0,
};

fn module_ptr() -> *const ap::module {
    // Only the address is taken (no reference to the mutable static).
    std::ptr::addr_of!(wsgi_telemetry_module)
}

unsafe extern "C" fn register_hooks(_p: *mut ap::apr_pool_t) {
    guard((), || {
        // Before mod_wsgi's handler (APR_HOOK_MIDDLE) so we see the start
        // of every request it will run.
        // SAFETY: registering hooks with valid function pointers during
        // register_hooks, as httpd expects.
        unsafe {
            ap::ap_hook_pre_config(Some(pre_config), null(), null(), ap::APR_HOOK_REALLY_FIRST);
            ap::ap_hook_check_config(
                Some(check_config),
                null(),
                null(),
                ap::APR_HOOK_MIDDLE as c_int,
            );
            ap::ap_hook_child_init(Some(child_init), null(), null(), ap::APR_HOOK_LAST as c_int);
            // Before mod_wsgi's post_config, which forks the daemon
            // processes on a restart.
            static BEFORE_MOD_WSGI: PtrList = PtrList([c"mod_wsgi.c".as_ptr(), null()]);
            ap::ap_hook_post_config(
                Some(super::daemon::post_config),
                null(),
                BEFORE_MOD_WSGI.0.as_ptr(),
                ap::APR_HOOK_REALLY_FIRST,
            );
            ap::ap_hook_child_stopping(
                Some(child_stopping),
                null(),
                null(),
                ap::APR_HOOK_MIDDLE as c_int,
            );
            ap::ap_hook_pre_connection(
                Some(pre_connection),
                null(),
                null(),
                ap::APR_HOOK_REALLY_FIRST,
            );
            ap::ap_hook_handler(Some(handler), null(), null(), ap::APR_HOOK_REALLY_FIRST);
            ap::ap_hook_insert_error_filter(
                Some(insert_error_filter),
                null(),
                null(),
                ap::APR_HOOK_MIDDLE as c_int,
            );
            let out = ap::ap_register_output_filter(
                c"WSGI_TELEMETRY_OUT".as_ptr(),
                Some(out_filter),
                None,
                ap::ap_filter_type_AP_FTYPE_RESOURCE,
            );
            OUT_FILTER.store(out, Release);
            let inp = ap::ap_register_input_filter(
                c"WSGI_TELEMETRY_IN".as_ptr(),
                Some(in_filter),
                None,
                ap::ap_filter_type_AP_FTYPE_RESOURCE,
            );
            IN_FILTER.store(inp, Release);
        }
    })
}

// ------------------------------------------------------------ directives --

/// Returns a directive error as a string in the command pool.
fn cmd_error(cmd: *mut ap::cmd_parms, msg: &str) -> *const c_char {
    let Ok(c) = CString::new(msg) else {
        return c"mod_wsgi_telemetry: invalid directive".as_ptr();
    };
    // SAFETY: cmd->pool is the live config pool; apr_pstrdup copies.
    unsafe { ap::apr_pstrdup((*cmd).pool, c.as_ptr()) }
}

/// `GLOBAL_ONLY` context check; httpd's own message on failure.
fn global_only(cmd: *mut ap::cmd_parms) -> Option<*const c_char> {
    // SAFETY: cmd is the live cmd_parms httpd passed us.
    let e = unsafe { ap::ap_check_cmd_context(cmd, m::GLOBAL_ONLY as u32) };
    (!e.is_null()).then_some(e)
}

fn arg(p: *const c_char) -> Option<String> {
    // SAFETY: httpd passes NULL or a NUL-terminated word.
    (!p.is_null()).then(|| String::from_utf8_lossy(unsafe { m::cstr(p) }).into_owned())
}

unsafe extern "C" fn cmd_service(
    cmd: *mut ap::cmd_parms,
    _m: *mut c_void,
    a1: *const c_char,
    a2: *const c_char,
) -> *const c_char {
    guard(c"mod_wsgi_telemetry: internal error".as_ptr(), || {
        if let Some(e) = global_only(cmd) {
            return e;
        }
        let mut c = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
        match config::telemetry_service(&mut c, &arg(a1).unwrap_or_default(), arg(a2).as_deref()) {
            Ok(()) => null(),
            Err(e) => cmd_error(cmd, &e),
        }
    })
}

unsafe extern "C" fn cmd_slow(
    cmd: *mut ap::cmd_parms,
    _m: *mut c_void,
    a1: *const c_char,
) -> *const c_char {
    guard(c"mod_wsgi_telemetry: internal error".as_ptr(), || {
        if let Some(e) = global_only(cmd) {
            return e;
        }
        let mut c = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
        match config::slow_requests(&mut c, &arg(a1).unwrap_or_default()) {
            Ok(()) => null(),
            Err(e) => cmd_error(cmd, &e),
        }
    })
}

unsafe extern "C" fn cmd_options(
    cmd: *mut ap::cmd_parms,
    _m: *mut c_void,
    args: *const c_char,
) -> *const c_char {
    guard(c"mod_wsgi_telemetry: internal error".as_ptr(), || {
        if let Some(e) = global_only(cmd) {
            return e;
        }
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
        let mut c = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
        match config::telemetry_options(&mut c, &words) {
            Ok(()) => null(),
            Err(e) => cmd_error(cmd, &e),
        }
    })
}

// -------------------------------------------------------- server phases --

unsafe extern "C" fn pre_config(
    _p: *mut ap::apr_pool_t,
    _pl: *mut ap::apr_pool_t,
    _pt: *mut ap::apr_pool_t,
) -> c_int {
    guard(OK, || {
        // The module may stay mapped across a restart: start from defaults.
        *CONFIG.lock().unwrap_or_else(|e| e.into_inner()) = Config::DEFAULT;
        OK
    })
}

unsafe extern "C" fn check_config(
    _p: *mut ap::apr_pool_t,
    _pl: *mut ap::apr_pool_t,
    _pt: *mut ap::apr_pool_t,
    s: *mut ap::server_rec,
) -> c_int {
    guard(OK, || {
        // mod_wsgi >= 6 has its own reporter and exports this symbol; httpd
        // loads modules RTLD_GLOBAL, so it is visible here.
        // SAFETY: dlsym with a NUL-terminated name.
        let builtin =
            unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"wsgi_telemetry_is_enabled".as_ptr()) };
        if !builtin.is_null() {
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

pub(super) fn identity() -> OwnedIdentity {
    // SAFETY: httpd returns static NUL-terminated strings.
    let desc = unsafe { m::cstr(ap::ap_get_server_description()) };
    let (apache, wsgi, py_short) = reporter::parse_server_description(desc);
    // The full Python version from the interpreter mod_wsgi loaded.
    // SAFETY: dlsym with a NUL-terminated name; Py_GetVersion needs no GIL
    // and returns a static string.
    let py = unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"Py_GetVersion".as_ptr());
        if f.is_null() {
            py_short
        } else {
            let f: extern "C" fn() -> *const c_char = std::mem::transmute(f);
            reporter::python_version_token(m::cstr(f()))
        }
    };
    OwnedIdentity {
        mod_wsgi_version: wsgi,
        python_version: py,
        apache_version: apache,
        // SAFETY: static string from the MPM.
        mpm_name: unsafe { m::cstr(ap::ap_show_mpm()) }.to_vec(),
        hostname: sys::hostname(),
        process_group: Vec::new(),
        // SAFETY: no preconditions.
        parent_pid: unsafe { libc::getppid() } as u64,
        switch_interval: 0.0,
    }
}

fn mpm_query(code: u32) -> c_int {
    let mut v: c_int = 0;
    // SAFETY: valid out-pointer.
    let rc = unsafe { ap::ap_mpm_query(code as c_int, &mut v) };
    if rc == 0 {
        v
    } else {
        0
    }
}

/// Our per-request and per-connection hook functions (hooks.rs).
fn our_hooks() -> Ours {
    Ours {
        handler: handler as *const () as usize,
        pre_connection: pre_connection as *const () as usize,
        insert_error_filter: insert_error_filter as *const () as usize,
    }
}

unsafe extern "C" fn child_init(p: *mut ap::apr_pool_t, s: *mut ap::server_rec) {
    guard((), || {
        CHILD_INIT_RAN.store(true, Release);
        MAIN_SERVER.store(s, Relaxed);
        let cfg = config();
        if !cfg.enabled {
            // SAFETY: child_init, before any request.
            unsafe { super::hooks::drop_unused(&our_hooks(), false, false) };
            return;
        }
        // Only worth a table entry (and a key in every WSGI environ,
        // which mod_wsgi sends to the daemon and turns into Python strings
        // there) when there are daemons to pass it to and slow records to
        // name this child in.
        if super::daemon::has_daemon_groups() && cfg.slow_threshold_us > 0 {
            if let Ok(c) = CString::new(std::process::id().to_string()) {
                SERVER_PID_STR.store(c.into_raw(), Release);
            }
        }
        if !embedded_python_possible() {
            // All WSGI applications run in daemon processes, which report
            // them (with the phases this child stamps into the request):
            // a reporter here would only add an idle process that never
            // serves Python. Our handler stays only to name this child in
            // the daemons' slow records.
            // SAFETY: child_init, before any request.
            unsafe {
                super::hooks::drop_unused(
                    &our_hooks(),
                    !SERVER_PID_STR.load(Relaxed).is_null(),
                    false,
                )
            };
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
            super::daemon::install_signal_spies();
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
        PROCESS.store(Arc::into_raw(proc_) as *mut _, Release);
        match super::direct::install() {
            Ok(()) => {
                // The connection count only serves MaxConnectionsPerChild.
                let keep_pre_connection = max_connections_per_child() > 0;
                // SAFETY: child_init, before any request.
                unsafe { super::hooks::drop_unused(&our_hooks(), false, keep_pre_connection) };
                log(
                    ap::APLOG_INFO,
                    s,
                    "Requests are accounted from mod_wsgi's own calls.",
                )
            }
            Err(e) => {
                log(
                    ap::APLOG_NOTICE,
                    s,
                    &format!("Requests are accounted with filters ({e})."),
                );
                hook_end_request();
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
/// exported (another mod_wsgi build): report, as before.
fn embedded_python_possible() -> bool {
    let p = super::daemon::sym(c"wsgi_python_required") as *const c_int;
    if p.is_null() {
        return true;
    }
    // SAFETY: mod_wsgi's exported `int wsgi_python_required`, set in the
    // parent's post_config and only read after the fork.
    unsafe { p.read_volatile() != 0 }
}

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
    let path = std::path::PathBuf::from(std::ffi::OsStr::from_encoded_bytes_unchecked_safe(
        cfg.target_path(),
    ));
    let ps = sys::process_stats();
    let rep = Reporter::new(
        SocketSink::open(&path),
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
    )
}

trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}
impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

fn log_warning(msg: &str) {
    log(ap::APLOG_WARNING, null(), msg);
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log(
            ap::APLOG_ERR,
            null(),
            &format!("internal panic (request served without telemetry): {info}"),
        );
    }));
}

/// (this child's generation, the generation the parent wants running).
fn generations() -> (c_int, i64) {
    let mine = mpm_query(ap::AP_MPMQ_GENERATION);
    // SAFETY: the scoreboard is mapped in every child; read-only access
    // to one integer the parent updates.
    let running = unsafe {
        let sb = std::ptr::addr_of!(ap::ap_scoreboard_image).read();
        if sb.is_null() || (*sb).global.is_null() {
            -1
        } else {
            std::ptr::addr_of!((*(*sb).global).running_generation).read_volatile() as i64
        }
    };
    (mine, running)
}

/// `MaxConnectionsPerChild` (0: unlimited).
fn max_connections_per_child() -> c_int {
    // SAFETY: plain read of an httpd global set at config time.
    unsafe { std::ptr::addr_of!(ap::ap_max_requests_per_child).read() }
}

/// prefork only: `Some(ungraceful)` when the parent had already been told
/// to stop or restart when it forked this child. prefork forks from its
/// main loop, so a child forked between the parent's signal and the end of
/// that loop iteration starts with the parent's `shutdown_pending` /
/// `restart_pending` set in its copy of the MPM's retained data, leaves as
/// soon as `child_init` returns, and never sees a signal of its own (the
/// parent's SIGTERM, if it comes at all, finds the handler set to ignore).
/// Read through `ap_unixd_mpm_get_retained_data` (httpd 2.4.35+, looked up
/// at run time, so an older httpd only loses this refinement).
fn parent_signalled_before_fork() -> Option<bool> {
    type Get = unsafe extern "C" fn() -> *mut ap::ap_unixd_mpm_retained_data;
    let f = super::daemon::sym(c"ap_unixd_mpm_get_retained_data");
    if f.is_null() {
        return None;
    }
    // SAFETY: the function httpd exports under that name, with the
    // signature of unixd.h; it returns the MPM's retained data (this
    // process's copy), or NULL.
    let r = unsafe { std::mem::transmute::<*mut c_void, Get>(f)() };
    if r.is_null() {
        return None;
    }
    // SAFETY: a live struct of the layout bindgen read from unixd.h; the
    // flags are volatile ints written only by signal handlers.
    unsafe {
        let shutdown = std::ptr::addr_of!((*r).shutdown_pending).read_volatile();
        let restart = std::ptr::addr_of!((*r).restart_pending).read_volatile();
        if shutdown == 0 && restart == 0 {
            return None;
        }
        Some(std::ptr::addr_of!((*r).is_ungraceful).read_volatile() != 0)
    }
}

/// Picks the shutdown reason from what httpd tells a child (see
/// docs/module.md for the mapping and its limits):
/// * prefork reports every exit as non-graceful, so there the signal the
///   child received decides (see below);
/// * same generation and the child reached `MaxConnectionsPerChild` (the
///   listener stops before the last connection reaches pre_connection, so
///   one short counts) = `maximum_requests`;
/// * otherwise graceful = `graceful_signal`, else `shutdown_signal`.
fn stop_reason(graceful: bool) -> u8 {
    let (mine, running) = generations();
    let restarted = running >= 0 && running != mine as i64;
    let max = max_connections_per_child();
    let threaded = mpm_query(ap::AP_MPMQ_IS_THREADED) != 0;
    if !restarted && max > 0 && CONNECTIONS.load(Relaxed) + 1 >= max as u64 {
        3
    } else if !threaded {
        // prefork says nothing about gracefulness; the signal does: SIGHUP
        // (hard restart), SIGTERM/SIGINT (stop) end a child at once, while
        // a graceful restart or an idle retirement comes through the pipe
        // of death (or SIGUSR1) and lets the connection finish.
        match super::daemon::signal_seen() {
            libc::SIGHUP | libc::SIGTERM | libc::SIGINT => 2,
            _ => match parent_signalled_before_fork() {
                Some(true) => 2,
                _ => 1,
            },
        }
    } else if graceful {
        1
    } else {
        2
    }
}

unsafe extern "C" fn child_stopping(_p: *mut ap::apr_pool_t, graceful: c_int) {
    guard((), || {
        let Some(p) = process() else { return };
        let r = stop_reason(graceful != 0);
        if STOP_REASON.compare_exchange(0, r, AcqRel, Relaxed).is_ok() {
            p.stopping(REASONS[r as usize]);
        }
    })
}

unsafe extern "C" fn child_exit(_data: *mut c_void) -> ap::apr_status_t {
    guard(0, || {
        let Some(p) = process() else { return 0 };
        let mut r = STOP_REASON.load(Acquire);
        if r == 0 {
            // No child_stopping notification (e.g. a signal-driven exit).
            r = stop_reason(false);
            STOP_REASON.store(r, Release);
            p.stopping(REASONS[r as usize]);
        }
        p.shutdown(REASONS[r as usize]);
        0
    })
}

unsafe extern "C" fn pre_connection(_c: *mut ap::conn_rec, _csd: *mut c_void) -> c_int {
    guard(OK, || {
        if !PROCESS.load(Relaxed).is_null() {
            CONNECTIONS.fetch_add(1, Relaxed);
        }
        OK
    })
}

// ---------------------------------------------------------- request path --

/// Per-request state, allocated in `r->pool` (filter mode, daemons) or in
/// the handler wrapper's frame (direct mode): the claim and what the
/// request path saw, kept as the [`Finished`] the accounting takes (no copy
/// at the end). In a daemon process (`daemon`) the claim lives in the
/// daemon's per-slot table and only `claim.slot` is used here.
#[repr(C)]
pub(super) struct ReqState {
    pub(super) r: *mut ap::request_rec,
    pub(super) claim: Claim,
    pub(super) finished: bool,
    /// Apache is sending its own error page: not application output.
    pub(super) error_response: bool,
    /// Recorded by daemon_hooks, not at the end of the output stream.
    pub(super) daemon: bool,
    /// mod_wsgi has finished running the application (embedded mode, seen
    /// through the `wsgi_end_request` hook): later reads are httpd
    /// discarding an unread body, not the application's input.
    pub(super) app_done: bool,
    pub(super) cpu0: Option<(u64, u64)>,
    /// Request start, claim and I/O so far (finish, status and CPU are set
    /// when it is recorded).
    pub(super) f: Finished,
    /// The slot's published I/O, for active slow records (None: slow
    /// requests off, or the overflow slot).
    pub(super) live: Option<&'static LiveIo>,
}

impl ReqState {
    pub(super) fn new(r: *mut ap::request_rec, claim: Claim, cpu0: Option<(u64, u64)>) -> ReqState {
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
        }
    }
}

impl ReqState {
    /// One output pass of the application: `us` inside it, `bytes` of data.
    /// Cannot panic.
    #[inline]
    pub(super) fn wrote(&mut self, bytes: u64, us: u64) {
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

    /// One successful read of the application into `bb`, `us` inside it.
    ///
    /// # Safety
    /// `bb` is the live brigade the read filled.
    #[inline]
    pub(super) unsafe fn read(&mut self, bb: *mut ap::apr_bucket_brigade, us: u64) {
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

thread_local! {
    /// This thread's worker slot and kernel thread id (u32::MAX: none yet).
    static WORKER: std::cell::Cell<(u32, i32)> = const { std::cell::Cell::new((u32::MAX, 0)) };
    /// The mod_wsgi request this thread is running (embedded mode), for
    /// the `wsgi_end_request` hook. Reset at the start of every handler
    /// call (ours runs before mod_wsgi's), so mod_wsgi never reaches the
    /// hook with an earlier request's state here.
    static CURRENT: std::cell::Cell<*mut ReqState> = const { std::cell::Cell::new(null_mut()) };
}

/// mod_wsgi's own `wsgi_end_request` (NULL: not hooked).
static REAL_END_REQUEST: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

/// mod_wsgi calls its exported `wsgi_end_request()` through its GOT when
/// the application (and the closing of its iterable) is done, in the
/// thread that ran it. In an MPM child (after the fork: nothing else is
/// touched) that entry is pointed here (crate::got), so input read after
/// it (httpd discarding a body the application left unread, on a
/// keep-alive connection) is not counted as the application's input.
/// Optional: without it such reads are counted.
fn hook_end_request() {
    crate::got::redirect_export(
        c"wsgi_end_request",
        end_request as *const () as usize,
        &REAL_END_REQUEST,
    );
}

unsafe extern "C" fn end_request() {
    guard((), || {
        let st = CURRENT.with(|c| c.replace(null_mut()));
        if !st.is_null() {
            // SAFETY: set by this thread's handler hook for the request
            // mod_wsgi is finishing now (its pool is alive).
            unsafe { (*st).app_done = true };
        }
    });
    let real = REAL_END_REQUEST.load(Acquire);
    if !real.is_null() {
        // SAFETY: mod_wsgi's `void wsgi_end_request(void)` (dlsym).
        unsafe { super::python::fnptr::<unsafe extern "C" fn()>(real)() };
    }
}

/// This thread's worker slot (assigned on its first request) and kernel
/// thread id: one thread-local read per request.
pub(super) fn thread_slot(acc: &crate::accum::Accounting) -> (u32, i32) {
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

fn is_wsgi_handler(h: &[u8]) -> bool {
    h == b"wsgi-script" || h == b"application/x-httpd-wsgi"
}

/// (ptr, len) of a C string that lives in the request pool.
fn span(p: *const c_char) -> (*const u8, usize) {
    // SAFETY: NULL or a NUL-terminated string from the request.
    let s = unsafe { m::cstr(p) };
    (s.as_ptr(), s.len())
}

pub(super) unsafe extern "C" fn handler(r: *mut ap::request_rec) -> c_int {
    if super::direct::installed() {
        // Requests are claimed from mod_wsgi's own calls (direct.rs; hooks.rs
        // normally takes this hook out of the array altogether).
        // SAFETY: httpd passes a live request.
        unsafe { note_daemon_pid(r) };
        return DECLINED;
    }
    // No reporter in this child (not configured, or no Python here): only
    // a request for a daemon may need this child's pid.
    let Some(p) = process() else {
        // SAFETY: httpd passes a live request.
        unsafe { note_daemon_pid(r) };
        return DECLINED;
    };
    // Before anything else: whatever handler runs next in this thread
    // (mod_wsgi's included) never sees an earlier request's state.
    CURRENT.with(|c| c.set(null_mut()));
    guard(DECLINED, || {
        // SAFETY: httpd passes a live request.
        let rr = unsafe { &mut *r };
        // SAFETY: NULL or NUL-terminated.
        if !is_wsgi_handler(unsafe { m::cstr(rr.handler) }) {
            return DECLINED;
        }
        // SAFETY: live request.
        let known = unsafe { tracked(r) };
        if !known.is_null() {
            CURRENT.with(|c| c.set(known));
            return DECLINED;
        }
        note_server_pid(rr);
        // A WSGIScriptAlias with `process-group=` tells mod_wsgi (through
        // r->notes, set at translate_name) to hand the request to a daemon
        // process, which reports it: nothing to claim here.
        // (Without a WSGIDaemonProcess no request can go to a daemon.)
        let daemons = super::daemon::has_daemon_groups();
        if daemons && proxied_to_daemon(rr) {
            return DECLINED;
        }
        // SAFETY: live request of this handler.
        let st = unsafe { begin(p, r) };
        let claim = st.claim;
        // SAFETY: live request of this handler.
        let st = unsafe { track(r, st) };
        if st.is_null() {
            p.acc.abandon(claim);
        }
        CURRENT.with(|c| c.set(st));
        DECLINED
    })
}

/// [`note_server_pid`] for a mod_wsgi request (direct mode: our handler
/// hook is not run).
///
/// # Safety
/// `r` is a live request.
pub(super) unsafe fn note_daemon_pid(r: *mut ap::request_rec) {
    if !SERVER_PID_STR.load(Relaxed).is_null() {
        guard((), || {
            // SAFETY: per the contract.
            let rr = unsafe { &*r };
            // SAFETY: NULL or NUL-terminated.
            if is_wsgi_handler(unsafe { m::cstr(rr.handler) }) {
                note_server_pid(rr);
            }
        });
    }
}

/// For a request mod_wsgi may hand to a daemon process: the daemon's slow
/// records name this child (`slow_server_pid`). Only when the
/// configuration has daemon groups.
fn note_server_pid(rr: &ap::request_rec) {
    let pid_str = SERVER_PID_STR.load(Relaxed);
    if !pid_str.is_null() {
        // Appended, not set: httpd has no such key of its own to replace,
        // and `setn` would first compare the key with every entry
        // (about 2,400 instructions per request).
        // SAFETY: live table; static key and a string leaked for the
        // life of the process.
        unsafe {
            ap::apr_table_addn(
                rr.subprocess_env,
                c"mod_wsgi_telemetry.server_pid".as_ptr(),
                pid_str,
            )
        };
    }
}

/// Claims this thread's slot for `r`: mod_wsgi is about to run it here.
///
/// # Safety
/// `r` is a live request.
pub(super) unsafe fn begin(p: &'static Process<SocketSink>, r: *mut ap::request_rec) -> ReqState {
    let mut st = std::mem::MaybeUninit::uninit();
    // SAFETY: per the contract; `begin_into` initialises st.
    unsafe {
        begin_into(p, r, &mut st);
        st.assume_init()
    }
}

/// [`begin`], built in place (no copy of the state).
///
/// # Safety
/// `r` is a live request.
pub(super) unsafe fn begin_into(
    p: &'static Process<SocketSink>,
    r: *mut ap::request_rec,
    out: &mut std::mem::MaybeUninit<ReqState>,
) {
    // SAFETY: per the contract.
    let rr = unsafe { &*r };
    let (slot, tid) = thread_slot(&p.acc);
    let now = sys::now_us();
    let request_start = rr.request_time.max(0) as u64;
    let mut cpu0 = None;
    let claim = if p.acc.slow_threshold_us > 0 {
        let mut detail = Detail::default();
        detail.strings[text::LOG_ID] = span(rr.log_id);
        detail.strings[text::METHOD] = span(rr.method);
        // SAFETY: live request; returns a static string.
        detail.strings[text::SCHEME] = span(unsafe { ap::ap_run_http_scheme(r) });
        detail.strings[text::HOSTNAME] = span(rr.hostname);
        let (up, ul) = span(rr.uri);
        let (pp, pl) = span(rr.path_info);
        // SCRIPT_NAME = the URI minus PATH_INFO (as mod_wsgi computes it).
        let sl = if pl <= ul { ul - pl } else { ul };
        detail.strings[text::SCRIPT_NAME] = (up, sl);
        detail.strings[text::PATH_INFO] = if pl > 0 { (pp, pl) } else { (null(), 0) };
        detail.strings[text::PROTOCOL] = span(rr.protocol);
        detail.strings[text::PEER_IP] = span(rr.useragent_ip);
        // SAFETY: live headers table.
        detail.strings[text::USER_AGENT] =
            span(unsafe { ap::apr_table_get(rr.headers_in, c"User-Agent".as_ptr()) });
        detail.active_at_start = p.acc.active() + 1;
        cpu0 = sys::thread_cpu_us();
        p.acc.claim(slot, tid, request_start, now, Some(&detail))
    } else {
        p.acc.claim(slot, tid, request_start, now, None)
    };
    let st = out.write(ReqState::new(r, claim, cpu0));
    st.live = p.acc.live_io(claim.slot);
    st.f.request_start_us = request_start;
    st.f.claim_us = now;
}

/// Puts `st` in `r->pool` and `r->request_config`, ends it with the pool
/// whatever happens, and adds our filters to the request. NULL when the
/// pool is out of memory.
///
/// # Safety
/// `r` is a live request that has no state of ours yet.
pub(super) unsafe fn track(r: *mut ap::request_rec, st: ReqState) -> *mut ReqState {
    // SAFETY: per the contract, r is live.
    let rr = unsafe { &mut *r };
    // SAFETY: pool allocation sized for ReqState, fully initialised with
    // ptr::write before use.
    let p = unsafe { m::pcalloc(rr.pool, std::mem::size_of::<ReqState>()) } as *mut ReqState;
    if p.is_null() {
        return p;
    }
    // SAFETY: p points to fresh pool memory of the right size; the tables,
    // pool and connection are the live request's.
    unsafe {
        p.write(st);
        m::set_module_config(rr.request_config, module_ptr(), p as *mut c_void);
        // Last resort: whatever happens, the claim ends with the pool.
        ap::apr_pool_cleanup_register(
            rr.pool,
            p as *const c_void,
            Some(request_cleanup),
            Some(ap::apr_pool_cleanup_null),
        );
        ap::ap_add_output_filter_handle(
            OUT_FILTER.load(Relaxed),
            p as *mut c_void,
            r,
            rr.connection,
        );
        // Only requests with a body can be read by the application.
        let cl = m::cstr(ap::apr_table_get(rr.headers_in, c"Content-Length".as_ptr()));
        let te = ap::apr_table_get(rr.headers_in, c"Transfer-Encoding".as_ptr());
        if !te.is_null() || (!cl.is_empty() && cl != b"0") {
            ap::ap_add_input_filter_handle(
                IN_FILTER.load(Relaxed),
                p as *mut c_void,
                r,
                rr.connection,
            );
        }
    }
    p
}

/// Our state of `r` (NULL when we do not track it).
///
/// # Safety
/// `r` is a live request.
pub(super) unsafe fn tracked(r: *mut ap::request_rec) -> *mut ReqState {
    // SAFETY: per the contract; our slot is NULL or our ReqState.
    unsafe { m::get_module_config((*r).request_config, module_ptr()) as *mut ReqState }
}

/// Whether mod_wsgi was told (by a `process-group=` script alias option)
/// to run this request in a daemon process.
fn proxied_to_daemon(r: &ap::request_rec) -> bool {
    // SAFETY: live notes table of a live request.
    let g = unsafe {
        m::cstr(ap::apr_table_get(
            r.notes,
            c"mod_wsgi.process_group".as_ptr(),
        ))
    };
    !g.is_empty() && g != b"%{GLOBAL}"
}

/// Records the request (or leaves it to a daemon process) exactly once.
pub(super) fn finish(st: &mut ReqState, now: u64) {
    if st.finished {
        return;
    }
    if st.daemon {
        super::daemon_hooks::finish(st, now);
        return;
    }
    st.finished = true;
    let me = st as *mut ReqState;
    CURRENT.with(|c| {
        if c.get() == me {
            c.set(null_mut());
        }
    });
    let Some(p) = process() else { return };
    // SAFETY: st.r is the live request that owns st.
    let r = unsafe { &*st.r };
    // `mod_wsgi.queue_start` is set by mod_wsgi in the child when it
    // connects to a daemon (a group chosen by WSGIProcessGroup: one named
    // by `process-group=` was left at the handler hook). Only possible
    // when the configuration has daemon groups.
    // SAFETY: live table.
    let queued = super::daemon::has_daemon_groups()
        && !unsafe { ap::apr_table_get(r.subprocess_env, c"mod_wsgi.queue_start".as_ptr()) }
            .is_null();
    if queued {
        // mod_wsgi handed it to a daemon process, which reports it.
        p.acc.abandon(st.claim);
        return;
    }
    record(p, st, now, r.status);
}

/// Records an embedded request mod_wsgi ran here, with its final status.
pub(super) fn record(p: &Process<SocketSink>, st: &mut ReqState, now: u64, status: c_int) {
    if p.acc.slow_threshold_us > 0 {
        if let Some((u0, s0)) = st.cpu0 {
            st.f.cpu_us =
                sys::thread_cpu_us().map(|(u, s)| (u.saturating_sub(u0), s.saturating_sub(s0)));
        }
    }
    st.f.finish_us = now;
    st.f.status = status;
    p.acc.finish(st.claim, &st.f);
}

unsafe extern "C" fn request_cleanup(data: *mut c_void) -> ap::apr_status_t {
    guard(0, || {
        // SAFETY: data is the ReqState registered with this pool; the pool
        // (and the request in it) is still intact while cleanups run.
        let st = unsafe { &mut *(data as *mut ReqState) };
        finish(st, sys::now_us());
        0
    })
}

unsafe extern "C" fn insert_error_filter(r: *mut ap::request_rec) {
    guard((), || {
        if process().is_none() {
            return;
        }
        // SAFETY: live request; our slot is NULL or our ReqState.
        unsafe {
            let st = tracked(r);
            // Error responses reset the filter chain: follow the response.
            if !st.is_null() && !(*st).finished {
                (*st).error_response = true;
                ap::ap_add_output_filter_handle(
                    OUT_FILTER.load(Relaxed),
                    st as *mut c_void,
                    r,
                    (*r).connection,
                );
            }
        }
    })
}

/// Data bytes in an output brigade, and whether it ends the response.
/// Cannot panic.
///
/// # Safety
/// `bb` is a live brigade.
#[inline]
pub(super) unsafe fn brigade_data(bb: *mut ap::apr_bucket_brigade) -> (u64, bool) {
    let mut bytes = 0u64;
    let mut eos = false;
    // SAFETY: walking the live brigade's bucket ring.
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

unsafe extern "C" fn out_filter(
    f: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
) -> ap::apr_status_t {
    // SAFETY: httpd passes a live filter whose ctx is our ReqState.
    let (st, next) = unsafe { ((*f).ctx as *mut ReqState, (*f).next) };
    // A recorded request has nothing left to count: pass it on without
    // the brigade walk and the two clock reads (a daemon's end of output
    // always comes this way: httpd's finalize, after the finalize hook
    // recorded the request).
    // SAFETY: NULL or our ReqState in r->pool, used by this thread only.
    if unsafe { st.as_ref() }.is_none_or(|s| s.finished) {
        // SAFETY: passing the brigade on, as every filter does.
        return unsafe { ap::ap_pass_brigade(next, bb) };
    }
    // SAFETY: the live brigade handed to this filter.
    let (bytes, eos) = guard((0u64, false), || unsafe { brigade_data(bb) });
    let t0 = sys::now_us();
    // SAFETY: passing the brigade on, as every filter does.
    let rv = unsafe { ap::ap_pass_brigade(next, bb) };
    let t1 = sys::now_us();
    guard((), || {
        if st.is_null() {
            return;
        }
        // SAFETY: ctx is our ReqState in r->pool.
        let st = unsafe { &mut *st };
        if st.finished {
            return;
        }
        // Apache's own error page is not application output; only its end
        // (which ends the request) matters.
        if !st.error_response {
            st.wrote(bytes, t1.saturating_sub(t0));
        }
        if eos && !st.daemon {
            finish(st, t1);
        }
    });
    rv
}

unsafe extern "C" fn in_filter(
    f: *mut ap::ap_filter_t,
    bb: *mut ap::apr_bucket_brigade,
    mode: ap::ap_input_mode_t,
    block: ap::apr_read_type_e,
    readbytes: ap::apr_off_t,
) -> ap::apr_status_t {
    // SAFETY: live filter; ctx is our ReqState.
    let (st, next) = unsafe { ((*f).ctx as *mut ReqState, (*f).next) };
    let t0 = sys::now_us();
    // SAFETY: reading through the rest of the input chain.
    let rv = unsafe { ap::ap_get_brigade(next, bb, mode, block, readbytes) };
    let t1 = sys::now_us();
    guard((), || {
        if st.is_null() || rv != 0 {
            return;
        }
        // SAFETY: ctx is our ReqState in r->pool.
        let st = unsafe { &mut *st };
        if st.finished || st.app_done {
            return;
        }
        // SAFETY: the brigade this read filled.
        unsafe { st.read(bb, t1.saturating_sub(t0)) };
    });
    rv
}
