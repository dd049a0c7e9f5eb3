//! Daemon mode glue (docs/module.md, "Daemon mode").
//!
//! mod_wsgi daemon processes are forked from the Apache parent and run no
//! Apache hook, so:
//! * `post_config` (ours runs before mod_wsgi's, which forks the daemons on
//!   a restart) reads the `WSGIDaemonProcess` directives from httpd's
//!   configuration tree, looks up mod_wsgi's exported globals with `dlsym`
//!   and registers a `pthread_atfork` child handler (glibc unregisters it
//!   when the module is unloaded);
//! * in every child the Apache parent forks, that handler starts a short
//!   watcher thread. In an MPM child `child_init` runs and the watcher
//!   leaves; in a daemon mod_wsgi sets `wsgi_daemon_process`, and the
//!   watcher starts the reporter (same code as embedded mode), attaches to
//!   the main interpreter once Python is ready (zero configuration), and
//!   sends STOPPING when mod_wsgi begins its shutdown;
//! * the attach code (python/mod_wsgi_telemetry_attach.py, run by the
//!   watcher or by `WSGIImportScript`) calls the `extern "C"` functions at
//!   the end of this file through `ctypes`;
//! * STOPPED and the final partial interval are sent from an `atexit`
//!   handler, after mod_wsgi has drained its requests.
//!
//! Nothing here runs in the Apache parent but `post_config`, which keeps
//! only `Copy` values.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU8, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_headers as ap;
use apache_headers::macros as m;

use super::glue::{config, guard, identity, log, new_process, process, CHILD_INIT_RAN};
use super::python::fnptr;
use crate::daemon::{self, DaemonRequests, GroupConf, GroupTable};

use crate::runtime::Process;
use crate::sys::{self, SocketSink};

/// The attach code, embedded for the zero-configuration path.
const ATTACH_PY: &str = include_str!("../../python/mod_wsgi_telemetry_attach.py");

static GROUPS: Mutex<GroupTable> = Mutex::new(GroupTable::EMPTY);
static HAS_GROUPS: AtomicBool = AtomicBool::new(false);

/// Whether the configuration has daemon process groups (read in
/// post_config, inherited by the children).
pub(super) fn has_daemon_groups() -> bool {
    HAS_GROUPS.load(Relaxed)
}
/// The Apache parent's pid (set in post_config).
static PARENT_PID: AtomicI32 = AtomicI32::new(0);
static ATFORK_REGISTERED: AtomicBool = AtomicBool::new(false);

/// mod_wsgi's exported globals (addresses, from dlsym).
static SYM_DAEMON_PROCESS: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static SYM_DAEMON_GROUP: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static SYM_DAEMON_SHUTDOWN: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());
static SYM_PYTHON_INITIALIZED: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

/// This daemon's reporter (set once, never freed: the process is ending
/// when it stops being used).
pub(super) struct Daemon {
    pub(super) p: Arc<Process<SocketSink>>,
    pub(super) req: DaemonRequests,
    group: GroupConf,
    started: Instant,
}
static DAEMON: AtomicPtr<Daemon> = AtomicPtr::new(std::ptr::null_mut());
static DAEMON_INIT: Mutex<()> = Mutex::new(());
/// 0 = running, 1 = STOPPING sent, 2 = STOPPED sent.
static STOP_STATE: AtomicU8 = AtomicU8::new(0);
/// The first terminating signal seen (0 = none).
static SIGNAL_SEEN: AtomicI32 = AtomicI32::new(0);
/// The reason mod_wsgi published for the shutdown: 0 = none published yet,
/// else 1 + `daemon::mod_wsgi_reason_code`.
static PUBLISHED: AtomicU8 = AtomicU8::new(0);

/// mod_wsgi begins this daemon's shutdown and names its reason (from the
/// hook on `wsgi_publish_process_stopping`, in the daemon's main thread):
/// STOPPING goes out at once with that reason.
pub(super) fn mod_wsgi_stopping(reason: &[u8]) {
    let code = daemon::mod_wsgi_reason_code(reason) + 1;
    let _ = PUBLISHED.compare_exchange(0, code, AcqRel, Relaxed);
    if let Some(d) = daemon() {
        send_stopping(d);
    }
}

pub(super) fn daemon() -> Option<&'static Daemon> {
    // SAFETY: set once from Box::into_raw and never freed.
    unsafe { DAEMON.load(Acquire).as_ref() }
}

pub(super) fn sym(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with a NUL-terminated name; httpd loads modules
    // RTLD_GLOBAL, so mod_wsgi's exports are visible.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// Reads a pointer-sized global of mod_wsgi (NULL if absent).
fn read_ptr_global(addr: &AtomicPtr<c_void>) -> *const c_void {
    let a = addr.load(Relaxed) as *const *const c_void;
    if a.is_null() {
        return std::ptr::null();
    }
    // SAFETY: the address of a pointer variable exported by mod_wsgi.
    unsafe { a.read_volatile() }
}

fn read_int_global(addr: &AtomicPtr<c_void>) -> c_int {
    let a = addr.load(Relaxed) as *const c_int;
    if a.is_null() {
        return 0;
    }
    // SAFETY: the address of an int variable exported by mod_wsgi.
    unsafe { a.read_volatile() }
}

/// Whether this process is a mod_wsgi daemon process.
fn in_daemon() -> bool {
    !read_ptr_global(&SYM_DAEMON_PROCESS).is_null()
}

// ------------------------------------------------------------ the parent --

/// Collects `WSGIDaemonProcess` directives anywhere in the tree.
fn collect_groups(mut d: *const ap::ap_directive_t, out: &mut GroupTable) {
    while !d.is_null() {
        // SAFETY: nodes of httpd's parsed configuration tree (live in pconf).
        let n = unsafe { &*d };
        // SAFETY: NUL-terminated strings of the tree.
        let name = unsafe { m::cstr(n.directive) };
        if name.eq_ignore_ascii_case(b"WSGIDaemonProcess") {
            // SAFETY: as above.
            if let Some(g) = daemon::parse_daemon_args(unsafe { m::cstr(n.args) }) {
                out.add(g);
            }
        }
        collect_groups(n.first_child, out);
        d = n.next;
    }
}

pub(super) unsafe extern "C" fn post_config(
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
        // SAFETY: read of httpd's exported tree root.
        collect_groups(
            unsafe { std::ptr::addr_of!(ap::ap_conftree).read() },
            &mut t,
        );
        HAS_GROUPS.store(!t.is_empty(), Relaxed);
        *GROUPS.lock().unwrap_or_else(|e| e.into_inner()) = t;
        SYM_DAEMON_PROCESS.store(sym(c"wsgi_daemon_process"), Relaxed);
        SYM_DAEMON_GROUP.store(sym(c"wsgi_daemon_group"), Relaxed);
        SYM_DAEMON_SHUTDOWN.store(sym(c"wsgi_daemon_shutdown"), Relaxed);
        SYM_PYTHON_INITIALIZED.store(sym(c"wsgi_python_initialized"), Relaxed);
        // SAFETY: no preconditions.
        PARENT_PID.store(unsafe { libc::getpid() }, Relaxed);
        if !SYM_DAEMON_PROCESS.load(Relaxed).is_null() && !ATFORK_REGISTERED.swap(true, AcqRel) {
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
        let _ = crate::sys::spawn_masked("wsgi-telemetry-w", || {
            let _ = std::panic::catch_unwind(watch);
        });
    })
}

// ------------------------------------------------------------ the daemon --

/// The watcher thread of a freshly forked child.
fn watch() {
    let t0 = Instant::now();
    loop {
        if CHILD_INIT_RAN.load(Acquire) {
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
        if read_int_global(&SYM_DAEMON_SHUTDOWN) != 0 {
            // mod_wsgi's main thread names the reason right after setting
            // the flag (through the hooked publish call): give it a moment.
            if super::daemon_hooks::publish_hooked() {
                let until = Instant::now() + Duration::from_millis(500);
                while PUBLISHED.load(Acquire) == 0 && Instant::now() < until {
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
            && super::daemon_hooks::publish_hooked();
        std::thread::sleep(Duration::from_millis(if settled { 1000 } else { 20 }));
    }
}

fn group_name() -> Vec<u8> {
    let p = read_ptr_global(&SYM_DAEMON_GROUP) as *const c_char;
    // SAFETY: NULL or mod_wsgi's NUL-terminated group name.
    let s = unsafe { m::cstr(p) };
    s[..s.len().min(daemon::GROUP_NAME_MAX)].to_vec()
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
    if !cfg.enabled || !in_daemon() {
        return None;
    }
    let name = group_name();
    let group = GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .or_else(|| daemon::parse_daemon_args(&name))?;
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
    DAEMON.store(Box::into_raw(d), Release);
    // Before the daemon's worker threads start (the watcher gets here
    // within milliseconds of the fork; Python is not even initialised).
    match super::daemon_hooks::install(SYM_DAEMON_PROCESS.load(Relaxed)) {
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

fn reason(d: &Daemon) -> &'static [u8] {
    let sig = SIGNAL_SEEN.load(Relaxed);
    let sig = (sig != 0).then_some(sig);
    let published = match PUBLISHED.load(Acquire) {
        0 => None,
        c => Some(daemon::mod_wsgi_reason(c - 1)),
    };
    if let Some(r) = daemon::published_stop_reason(published, sig, &d.group, d.req.lifetime()) {
        return r;
    }
    let oldest = d.p.acc.oldest_in_flight_us(sys::now_us()) as f64 / 1e6;
    daemon::stop_reason(
        sig,
        &d.group,
        d.req.lifetime(),
        d.started.elapsed().as_secs_f64(),
        oldest,
    )
}

fn send_stopping(d: &Daemon) {
    if STOP_STATE.compare_exchange(0, 1, AcqRel, Relaxed).is_ok() {
        d.p.stopping(reason(d));
    }
}

extern "C" fn at_exit() {
    guard((), || {
        let Some(d) = daemon() else { return };
        send_stopping(d);
        if STOP_STATE.swap(2, AcqRel) != 2 {
            d.p.shutdown(reason(d));
        }
    })
}

// Terminating signals: mod_wsgi's daemon handlers (and prefork's child
// handlers) only set a flag or exit, so the reason (SIGUSR1 = graceful,
// SIGTERM/SIGINT/SIGHUP = shutdown) is read by a spy installed in front of
// them that records the number and calls the original handler.
const SPIED: [c_int; 5] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGUSR1,
    libc::SIGXCPU,
    libc::SIGHUP,
];
static PREV_HANDLERS: [AtomicPtr<c_void>; 5] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 5];

/// The first terminating signal this process received (0 = none), once
/// [`install_signal_spies`] ran.
pub(super) fn signal_seen() -> c_int {
    SIGNAL_SEEN.load(Relaxed)
}

extern "C" fn spy(sig: c_int) {
    let _ = SIGNAL_SEEN.compare_exchange(0, sig, Relaxed, Relaxed);
    if let Some(i) = SPIED.iter().position(|&s| s == sig) {
        let h = PREV_HANDLERS[i].load(Relaxed);
        if !h.is_null() && h as usize != libc::SIG_IGN && h as usize != libc::SIG_DFL {
            // SAFETY: the handler that was installed before ours.
            let f: extern "C" fn(c_int) = unsafe { std::mem::transmute(h) };
            f(sig);
        }
    }
}

/// Puts [`spy`] in front of the installed handlers (mod_wsgi's in a
/// daemon, prefork's in an MPM child); default and ignored dispositions are
/// left alone.
pub(super) fn install_signal_spies() {
    for (i, &sig) in SPIED.iter().enumerate() {
        // SAFETY: querying and setting signal dispositions with valid
        // structs; only plain (non-SA_SIGINFO) handlers are wrapped.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let h = old.sa_sigaction;
            if h == libc::SIG_DFL || h == libc::SIG_IGN || h == spy as *const () as usize {
                continue;
            }
            if old.sa_flags & libc::SA_SIGINFO != 0 {
                continue;
            }
            PREV_HANDLERS[i].store(h as *mut c_void, Relaxed);
            let mut new = old;
            new.sa_sigaction = spy as *const () as usize;
            libc::sigaction(sig, &new, std::ptr::null_mut());
        }
    }
}

// ------------------------------------------------ Python, zero config --

type GilEnsure = unsafe extern "C" fn() -> c_int;
type GilRelease = unsafe extern "C" fn(c_int);
type RunString = unsafe extern "C" fn(*const c_char) -> c_int;
type IntFn = unsafe extern "C" fn() -> c_int;
type ModuleDictFn = unsafe extern "C" fn() -> *mut c_void;
type DictGetFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *mut c_void;

/// libpython's functions the watcher calls (0: absent), looked up once per
/// process: libpython is loaded with mod_wsgi.so, before any daemon
/// exists. (Looked up at each attach attempt, every 250 ms until mod_wsgi
/// has put its module in the main interpreter, they cost eight `dlsym`
/// calls, one of them failing and formatting an error message:
/// `Py_IsFinalizing` is new in Python 3.13.)
struct PyApi {
    is_initialized: usize,
    is_finalizing: usize,
    gil_ensure: usize,
    gil_release: usize,
    run_string: usize,
    module_dict: usize,
    dict_get: usize,
}

fn py_api() -> &'static PyApi {
    static API: std::sync::OnceLock<PyApi> = std::sync::OnceLock::new();
    API.get_or_init(|| {
        let s = |name: &CStr| sym(name) as usize;
        PyApi {
            is_initialized: s(c"Py_IsInitialized"),
            is_finalizing: match s(c"Py_IsFinalizing") {
                0 => s(c"_Py_IsFinalizing"),
                f => f,
            },
            gil_ensure: s(c"PyGILState_Ensure"),
            gil_release: s(c"PyGILState_Release"),
            run_string: s(c"PyRun_SimpleString"),
            module_dict: s(c"PyImport_GetModuleDict"),
            dict_get: s(c"PyDict_GetItemString"),
        }
    })
}

fn python_ready() -> bool {
    if read_int_global(&SYM_PYTHON_INITIALIZED) == 0 {
        return false;
    }
    let init = py_api().is_initialized;
    if init == 0 {
        return false;
    }
    // SAFETY: Py_IsInitialized takes no arguments and needs no GIL.
    if unsafe { fnptr::<IntFn>(init as *mut c_void)() } == 0 {
        return false;
    }
    !python_finalizing()
}

fn python_finalizing() -> bool {
    match py_api().is_finalizing {
        0 => false,
        // SAFETY: both forms take no arguments and need no GIL.
        f => (unsafe { fnptr::<IntFn>(f as *mut c_void)() }) != 0,
    }
}

/// The Python that attaches the main interpreter: the embedded attach
/// code run as a module. Built once per process.
fn auto_attach_code() -> Option<&'static CString> {
    static CODE: std::sync::OnceLock<Option<CString>> = std::sync::OnceLock::new();
    CODE.get_or_init(|| {
        let hex: String = ATTACH_PY.bytes().map(|b| format!("{b:02x}")).collect();
        let code = format!(
            "def _mod_wsgi_telemetry_auto():\n\
             \x20   import sys, types\n\
             \x20   m = types.ModuleType('mod_wsgi_telemetry_attach')\n\
             \x20   m.__dict__['_NO_AUTO_ATTACH'] = True\n\
             \x20   exec(compile(bytes.fromhex('{hex}').decode(), 'mod_wsgi_telemetry_attach.py', 'exec'), m.__dict__)\n\
             \x20   m.attach(auto=True)\n\
             try:\n\
             \x20   _mod_wsgi_telemetry_auto()\n\
             except Exception:\n\
             \x20   pass\n\
             del _mod_wsgi_telemetry_auto\n"
        );
        CString::new(code).ok()
    })
    .as_ref()
}

/// Runs the attach code in the main interpreter from this thread, once
/// mod_wsgi has put its `mod_wsgi` module there (before that the attach
/// code's `import mod_wsgi` fails: a daemon's first attempts, while mod_wsgi
/// sets up the interpreter, would each compile the whole attach code for
/// nothing, about 10 million instructions apiece).
fn auto_attach() {
    let a = py_api();
    let (e, r, run, modules, get) = (
        a.gil_ensure as *mut c_void,
        a.gil_release as *mut c_void,
        a.run_string as *mut c_void,
        a.module_dict as *mut c_void,
        a.dict_get as *mut c_void,
    );
    if e.is_null() || r.is_null() || run.is_null() || modules.is_null() || get.is_null() {
        return;
    }
    let Some(code) = auto_attach_code() else {
        return;
    };
    if python_finalizing() || read_int_global(&SYM_DAEMON_SHUTDOWN) != 0 {
        return;
    }
    // SAFETY: the documented way for a foreign thread to run code in the
    // main interpreter: take the GIL, run, give it back. Python is
    // initialised and not finalising (checked just before).
    // `sys.modules` of the main interpreter is a dict (borrowed
    // references: nothing to release; a missing key sets no exception).
    unsafe {
        let st = fnptr::<GilEnsure>(e)();
        let dict = fnptr::<ModuleDictFn>(modules)();
        if !dict.is_null() && !fnptr::<DictGetFn>(get)(dict, c"mod_wsgi".as_ptr()).is_null() {
            fnptr::<RunString>(run)(code.as_ptr());
        }
        fnptr::<GilRelease>(r)(st);
    }
}

// --------------------------------------------- the API for attach code --

/// Attach modes returned to the attach code.
const MODE_NONE: c_int = -1;
const MODE_GC_ONLY: c_int = 0;
const MODE_REQUESTS: c_int = 1;
const MODE_ALREADY: c_int = -2;
const MODE_FULL: c_int = -3;

pub(super) fn registry() -> Option<(&'static crate::gc::GcRegistry, bool)> {
    if let Some(d) = ensure_daemon() {
        return Some((&d.p.gc, true));
    }
    process().map(|p| (&p.gc, false))
}

/// Registers the calling interpreter. Returns -1 when this process has no
/// reporter, -2 when the interpreter is already attached, -3 when the
/// interpreter table is full, 0 when only GC is to be reported (embedded
/// mode, or a daemon whose request hooks are installed: the hooks count
/// requests), 1 when request events are wanted too (a daemon without
/// them). `*index` receives the interpreter's handle.
///
/// # Safety
/// `name` and `group` are NULL or NUL-terminated; `index` is NULL or valid.
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
        if daemon_mode && !super::daemon_hooks::hooked() {
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
        let v = unsafe { &*(values as *const crate::gc::Counters) };
        reg.set_counters(index as usize, v);
    })
}
