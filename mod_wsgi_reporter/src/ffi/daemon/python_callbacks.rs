//! The Python-callable side of the attach code: two builtin functions made
//! with the Python C API (looked up with `dlsym`; the module never links
//! against Python), handed to the attach code through `ctypes.PyDLL`:
//!
//! * the mod_wsgi event callback (`callback(name, **kwargs)`), which reads
//!   the event's arguments straight from the kwargs dict and the WSGI
//!   environ and feeds the daemon's accumulators - no Python frame, no
//!   `ctypes` conversion, no allocation on the request path;
//! * the `gc.callbacks` hook (`hook(phase, info)`) of one interpreter.
//!
//! Both run with the GIL held, in the interpreter that called them.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_long, c_void, CStr};
use std::sync::OnceLock;

use reporter_core::accum::Io;
use reporter_core::daemon::{secs_to_us, Ended, Started, SLOW_ENV_KEYS};
use reporter_core::sys;

use super::request_hooks;
use super::start::registry;
use super::state::daemon;
use crate::ffi::base::guard;
use crate::ffi::base::sym::{fnptr, sym};

type PyObj = *mut c_void;

#[repr(C)]
struct PyMethodDef {
    name: *const c_char,
    meth: *const c_void,
    flags: c_int,
    doc: *const c_char,
}
// SAFETY: static, read-only definitions.
unsafe impl Sync for PyMethodDef {}

const METH_VARARGS: c_int = 0x1;
const METH_KEYWORDS: c_int = 0x2;

static EVENT_DEF: PyMethodDef = PyMethodDef {
    name: c"mod_wsgi_telemetry_event".as_ptr(),
    meth: on_event as *const c_void,
    flags: METH_VARARGS | METH_KEYWORDS,
    doc: c"mod_wsgi event subscriber of mod_wsgi_telemetry".as_ptr(),
};
static GC_DEF: PyMethodDef = PyMethodDef {
    name: c"mod_wsgi_telemetry_gc".as_ptr(),
    meth: on_gc as *const c_void,
    flags: METH_VARARGS,
    doc: c"gc.callbacks hook of mod_wsgi_telemetry".as_ptr(),
};

/// The C API functions we use (stable ABI, present since Python 3.3).
struct Api {
    cfunction_new: unsafe extern "C" fn(*const PyMethodDef, PyObj, PyObj) -> PyObj,
    long_from_long: unsafe extern "C" fn(c_long) -> PyObj,
    long_as_long_long: unsafe extern "C" fn(PyObj) -> i64,
    float_as_double: unsafe extern "C" fn(PyObj) -> f64,
    tuple_size: unsafe extern "C" fn(PyObj) -> isize,
    tuple_get_item: unsafe extern "C" fn(PyObj, isize) -> PyObj,
    dict_get_item_string: unsafe extern "C" fn(PyObj, *const c_char) -> PyObj,
    unicode_as_utf8: unsafe extern "C" fn(PyObj, *mut isize) -> *const c_char,
    err_occurred: unsafe extern "C" fn() -> PyObj,
    err_clear: unsafe extern "C" fn(),
    inc_ref: unsafe extern "C" fn(PyObj),
    none: PyObj,
}
// SAFETY: function pointers and the address of the static None object.
unsafe impl Send for Api {}
// SAFETY: as above.
unsafe impl Sync for Api {}

fn api() -> Option<&'static Api> {
    static API: OnceLock<Option<Api>> = OnceLock::new();
    API.get_or_init(|| {
        fn f(name: &CStr) -> Option<*mut c_void> {
            let p = sym(name);
            (!p.is_null()).then_some(p)
        }
        // SAFETY: each symbol has the C signature of the field it fills
        // (Python's documented stable ABI).
        unsafe {
            Some(Api {
                cfunction_new: fnptr(f(c"PyCFunction_NewEx")?),
                long_from_long: fnptr(f(c"PyLong_FromLong")?),
                long_as_long_long: fnptr(f(c"PyLong_AsLongLong")?),
                float_as_double: fnptr(f(c"PyFloat_AsDouble")?),
                tuple_size: fnptr(f(c"PyTuple_Size")?),
                tuple_get_item: fnptr(f(c"PyTuple_GetItem")?),
                dict_get_item_string: fnptr(f(c"PyDict_GetItemString")?),
                unicode_as_utf8: fnptr(f(c"PyUnicode_AsUTF8AndSize")?),
                err_occurred: fnptr(f(c"PyErr_Occurred")?),
                err_clear: fnptr(f(c"PyErr_Clear")?),
                inc_ref: fnptr(f(c"Py_IncRef")?),
                none: f(c"_Py_NoneStruct")?,
            })
        }
    })
    .as_ref()
}

impl Api {
    /// A borrowed value from a dict by key (NULL if absent or not a dict).
    ///
    /// # Safety
    /// The GIL is held; `d` is NULL or a live object.
    unsafe fn get(&self, d: PyObj, k: &CStr) -> PyObj {
        if d.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: GIL held; d is a live object (a non-dict gives NULL).
        let v = unsafe { (self.dict_get_item_string)(d, k.as_ptr()) };
        // SAFETY: GIL held.
        unsafe { self.clear() };
        v
    }

    /// Clears a pending Python exception, if any.
    ///
    /// # Safety
    /// The GIL is held.
    unsafe fn clear(&self) {
        // SAFETY: GIL held.
        unsafe {
            if !(self.err_occurred)().is_null() {
                (self.err_clear)();
            }
        }
    }

    /// A float (or int) value, 0 when absent or not a number.
    ///
    /// # Safety
    /// The GIL is held; `d` is NULL or a live object.
    unsafe fn f64(&self, d: PyObj, k: &CStr) -> f64 {
        // SAFETY: GIL held.
        unsafe { self.num(self.get(d, k)) }
    }

    /// The value of a float (or int) object, 0 when NULL, not a number or
    /// not finite.
    ///
    /// # Safety
    /// The GIL is held; `v` is NULL or a live object.
    unsafe fn num(&self, v: PyObj) -> f64 {
        // SAFETY: GIL held; v is NULL or a live object.
        unsafe {
            if v.is_null() {
                return 0.0;
            }
            let x = (self.float_as_double)(v);
            self.clear();
            if x.is_finite() {
                x
            } else {
                0.0
            }
        }
    }

    /// An int value, `default` when absent or not an int.
    ///
    /// # Safety
    /// The GIL is held; `d` is NULL or a live object.
    unsafe fn i64(&self, d: PyObj, k: &CStr, default: i64) -> i64 {
        // SAFETY: GIL held.
        unsafe {
            let v = self.get(d, k);
            if v.is_null() || v == self.none {
                return default;
            }
            let x = (self.long_as_long_long)(v);
            if !(self.err_occurred)().is_null() {
                (self.err_clear)();
                return default;
            }
            x
        }
    }

    /// The UTF-8 bytes of a str (empty when absent or not a str); valid
    /// while the object lives (Python caches the encoding in it).
    ///
    /// # Safety
    /// The GIL is held; `v` is NULL or a live object that outlives `'a`.
    unsafe fn str<'a>(&self, v: PyObj) -> &'a [u8] {
        if v.is_null() {
            return b"";
        }
        let mut n: isize = 0;
        // SAFETY: GIL held; a non-str gives NULL and an error we clear.
        unsafe {
            let p = (self.unicode_as_utf8)(v, &mut n);
            if p.is_null() {
                self.clear();
                return b"";
            }
            std::slice::from_raw_parts(p as *const u8, n.max(0) as usize)
        }
    }

    /// A new reference to `None`.
    ///
    /// # Safety
    /// The GIL is held.
    unsafe fn none(&self) -> PyObj {
        // SAFETY: GIL held; None is a static object.
        unsafe { (self.inc_ref)(self.none) };
        self.none
    }
}

thread_local! {
    /// (mod_wsgi thread number, HTTP status) of the request this worker
    /// thread is running: mod_wsgi calls the three events of a request on
    /// the thread that runs it.
    static CURRENT: Cell<(u32, i32)> = const { Cell::new((0, 0)) };
    /// Wall clock (s) and monotonic instant of the pending GC pass.
    static GC_START: Cell<(f64, Option<std::time::Instant>)> = const { Cell::new((0.0, None)) };
}

/// # Safety
/// Only for Python, as the builtin `EVENT_DEF` describes: the GIL held, live `args` and `kw`.
unsafe extern "C" fn on_event(_self: PyObj, args: PyObj, kw: PyObj) -> PyObj {
    let Some(a) = api() else {
        return std::ptr::null_mut();
    };
    guard((), || {
        // SAFETY: called by Python with the GIL held and live arguments.
        unsafe { event(a, args, kw) }
    });
    // SAFETY: GIL held.
    unsafe { a.none() }
}

/// One mod_wsgi event: `args` is `(name,)`, `kw` its keyword arguments.
///
/// # Safety
/// The GIL is held; `args` is a live tuple and `kw` NULL or a live dict.
unsafe fn event(a: &Api, args: PyObj, kw: PyObj) {
    let Some(d) = daemon() else { return };
    if request_hooks::hooked() {
        return; // counted by the request hooks; never twice
    }
    // SAFETY: GIL held, args is a tuple.
    let name = unsafe {
        if (a.tuple_size)(args) < 1 {
            a.clear();
            return;
        }
        a.str((a.tuple_get_item)(args, 0))
    };
    match name {
        b"request_started" => {
            // SAFETY: GIL held; kw is the event's kwargs dict.
            unsafe {
                let tid = a.i64(kw, c"thread_id", 0).clamp(0, u32::MAX as i64) as u32;
                CURRENT.with(|c| c.set((tid, 0)));
                let env = a.get(kw, c"request_environ");
                let spid = a.str(a.get(env, c"mod_wsgi_telemetry.server_pid"));
                let spid = std::str::from_utf8(spid)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                let mut strings: [&[u8]; 9] = [b""; 9];
                if d.p.acc.slow_threshold_us > 0 {
                    for (s, k) in strings.iter_mut().zip(SLOW_ENV_KEYS) {
                        *s = a.str(a.get(env, k));
                    }
                    if strings[2].is_empty() {
                        strings[2] = a.str(a.get(env, c"wsgi.url_scheme"));
                    }
                    if strings[3].is_empty() {
                        strings[3] = a.str(a.get(env, c"SERVER_NAME"));
                    }
                }
                let app = secs_to_us(a.f64(kw, c"application_start"));
                let app = if app == 0 { sys::now_us() } else { app };
                let rs = secs_to_us(a.f64(kw, c"request_start"));
                d.req.started(
                    &d.p.acc,
                    &Started {
                        thread_id: tid.max(1),
                        request_start_us: if rs == 0 { app } else { rs },
                        queue_start_us: secs_to_us(a.f64(kw, c"queue_start")),
                        daemon_start_us: secs_to_us(a.f64(kw, c"daemon_start")),
                        application_start_us: app,
                        server_pid: spid,
                        strings,
                        tid: sys::tid(),
                    },
                );
            }
        }
        b"response_started" => {
            // SAFETY: GIL held.
            let st = unsafe { a.str(a.get(kw, c"response_status")) };
            let code = st
                .get(..3)
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or(0);
            CURRENT.with(|c| c.set((c.get().0, code)));
        }
        b"request_finished" => {
            let (tid, status) = CURRENT.with(|c| c.replace((0, 0)));
            let us = secs_to_us;
            // SAFETY: GIL held.
            unsafe {
                let fin = secs_to_us(a.f64(kw, c"application_finish"));
                let cu = a.get(kw, c"cpu_user_time");
                let cs = a.get(kw, c"cpu_system_time");
                let cpu = (!cu.is_null() && !cs.is_null()).then(|| (us(a.num(cu)), us(a.num(cs))));
                d.req.ended(
                    &d.p.acc,
                    &Ended {
                        thread_id: tid.max(1),
                        status,
                        finish_us: if fin == 0 { sys::now_us() } else { fin },
                        application_start_us: 0,
                        io: Io {
                            input_bytes: a.i64(kw, c"input_length", 0).max(0) as u64,
                            input_reads: a.i64(kw, c"input_reads", 0).max(0) as u64,
                            input_read_us: us(a.f64(kw, c"input_time")),
                            output_bytes: a.i64(kw, c"output_length", 0).max(0) as u64,
                            output_writes: a.i64(kw, c"output_writes", 0).max(0) as u64,
                            output_write_us: us(a.f64(kw, c"output_time")),
                        },
                        cpu_us: cpu,
                    },
                );
            }
        }
        _ => {}
    }
}

/// # Safety
/// Only for Python, as the builtin `GC_DEF` describes: the GIL held, live `self_` and `args`.
unsafe extern "C" fn on_gc(self_: PyObj, args: PyObj) -> PyObj {
    let Some(a) = api() else {
        return std::ptr::null_mut();
    };
    guard((), || {
        // SAFETY: called by Python with the GIL held; self_ is the int we
        // bound (the interpreter's index).
        unsafe { gc(a, self_, args) }
    });
    // SAFETY: GIL held.
    unsafe { a.none() }
}

/// One `gc.callbacks` call: `args` is `(phase, info)`, `self_` the
/// interpreter's index bound at creation.
///
/// # Safety
/// The GIL is held; `self_` and `args` are live objects.
unsafe fn gc(a: &Api, self_: PyObj, args: PyObj) {
    // SAFETY: GIL held; args is a tuple (phase, info).
    let (phase, info, index) = unsafe {
        if (a.tuple_size)(args) < 2 {
            a.clear();
            return;
        }
        let index = (a.long_as_long_long)(self_);
        a.clear();
        (
            a.str((a.tuple_get_item)(args, 0)),
            (a.tuple_get_item)(args, 1),
            index,
        )
    };
    match phase {
        b"start" => {
            GC_START.with(|g| g.set((sys::now_us() as f64 / 1e6, Some(std::time::Instant::now()))))
        }
        b"stop" => {
            let (start, t0) = GC_START.with(|g| g.replace((0.0, None)));
            let Some(t0) = t0 else { return };
            // SAFETY: GIL held; info is the callback's dict.
            let (generation, collected, uncollectable) = unsafe {
                (
                    a.i64(info, c"generation", -1),
                    a.i64(info, c"collected", 0),
                    a.i64(info, c"uncollectable", 0),
                )
            };
            if !(0..=255).contains(&generation) || index < 0 {
                return;
            }
            let Some((reg, _)) = registry() else { return };
            reg.push_event(
                index as usize,
                wire::emit::GcEvent {
                    start_stamp: start,
                    duration: t0.elapsed().as_secs_f64(),
                    generation: generation as u64,
                    collected: collected.max(0) as u64,
                    uncollectable: uncollectable.max(0) as u64,
                },
            );
        }
        _ => {}
    }
}

/// The event subscriber, for `mod_wsgi.subscribe_events` (call through
/// `ctypes.PyDLL`, with the GIL; `restype = ctypes.py_object`). Returns a
/// borrowed reference (the object is kept for the life of the process) or
/// NULL when the Python API is not available.
#[no_mangle]
pub extern "C" fn wsgi_telemetry_event_callback() -> PyObj {
    let Some(a) = api() else {
        return std::ptr::null_mut();
    };
    // SAFETY: GIL held by the ctypes.PyDLL caller; a static method def.
    let f = unsafe { (a.cfunction_new)(&EVENT_DEF, std::ptr::null_mut(), std::ptr::null_mut()) };
    // SAFETY: GIL held.
    unsafe { a.clear() };
    f
}

/// The `gc.callbacks` hook of interpreter `index` (as above).
#[no_mangle]
pub extern "C" fn wsgi_telemetry_gc_callback(index: c_int) -> PyObj {
    let Some(a) = api() else {
        return std::ptr::null_mut();
    };
    // SAFETY: GIL held by the ctypes.PyDLL caller.
    unsafe {
        let idx = (a.long_from_long)(index as c_long);
        if idx.is_null() {
            a.clear();
            return std::ptr::null_mut();
        }
        let f = (a.cfunction_new)(&GC_DEF, idx, std::ptr::null_mut());
        a.clear();
        f
    }
}
