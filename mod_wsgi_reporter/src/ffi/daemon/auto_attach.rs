//! Zero-configuration attach: once Python is up in a daemon's main
//! interpreter, the watcher thread runs the embedded attach code there
//! (python/mod_wsgi_telemetry_attach.py), which registers the interpreter
//! for GC telemetry (and for request events when the request hooks are
//! unavailable) through the functions of `attach_api`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use super::state::{python_initialized, shutdown_begun};
use crate::ffi::base::sym::{fnptr, sym};

/// The attach code, embedded for the zero-configuration path.
const ATTACH_PY: &str = include_str!("../../../python/mod_wsgi_telemetry_attach.py");

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

/// Whether Python is initialised (by mod_wsgi) and not finalising.
pub(super) fn python_ready() -> bool {
    if !python_initialized() {
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
pub(super) fn auto_attach() {
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
    if python_finalizing() || shutdown_begun() {
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
