"""mod_wsgi-telemetry: attach the interpreter that runs this file.

Installed next to mod_wsgi_telemetry.so. It forwards Python GC activity
(every mode) and, only in a daemon process where the module could not
install its request hooks, mod_wsgi's request events to the module's
reporter thread through the module's exported C functions; the
reporter sends them to the ingester. Nothing here sends anything itself.

Zero configuration: in a daemon process the module runs this code in the
main interpreter by itself as soon as Python is ready (this covers
``WSGIApplicationGroup %{GLOBAL}``). Explicit, from process start, for
daemon group G and its main interpreter::

    WSGIImportScript /usr/lib/apache2/modules/mod_wsgi_telemetry_attach.py \\
        process-group=G application-group=%{GLOBAL}

and once more per sub-interpreter application group A the group runs::

    WSGIImportScript /usr/lib/apache2/modules/mod_wsgi_telemetry_attach.py \\
        process-group=G application-group=A

Embedded mode: ``process-group=%{GLOBAL}``. (Requests are counted by the
module's hooks in both modes; this file is for GC.)
"""

import ctypes
import gc
import sys
import threading
import time

_attached = []


def _libs():
    """(ctypes.CDLL, ctypes.PyDLL) over the process's global symbols, or
    None when mod_wsgi_telemetry.so is not loaded here."""
    lib = ctypes.CDLL(None)
    try:
        lib.wsgi_telemetry_attach
    except AttributeError:
        return None
    lib.wsgi_telemetry_attach.argtypes = [
        ctypes.c_char_p, ctypes.c_double, ctypes.POINTER(ctypes.c_int)]
    lib.wsgi_telemetry_attach.restype = ctypes.c_int
    lib.wsgi_telemetry_interval.restype = ctypes.c_double
    lib.wsgi_telemetry_gc_counters.argtypes = [
        ctypes.c_int, ctypes.POINTER(ctypes.c_uint64)]
    lib.wsgi_telemetry_gc_counters.restype = None
    # The callbacks themselves are C functions of the module (no Python
    # frame per event); they are made with the GIL held, hence PyDLL.
    py = ctypes.PyDLL(None)
    py.wsgi_telemetry_event_callback.restype = ctypes.py_object
    py.wsgi_telemetry_gc_callback.argtypes = [ctypes.c_int]
    py.wsgi_telemetry_gc_callback.restype = ctypes.py_object
    return lib, py


def _counters():
    c = gc.get_count()
    t = gc.get_threshold()
    s = gc.get_stats()[:3]
    try:
        frozen = gc.get_freeze_count()
    except AttributeError:
        frozen = 0
    v = (list(c[:3]) + list(t[:3]) + [g.get('collections', 0) for g in s]
         + [g.get('collected', 0) for g in s]
         + [g.get('uncollectable', 0) for g in s]
         + [1 if gc.isenabled() else 0, frozen])
    return (ctypes.c_uint64 * 17)(*[max(int(x), 0) for x in v])


def attach(auto=False):
    """Attach this interpreter. Returns True when attached. With
    ``auto`` (the module's own zero-configuration call), raises when
    mod_wsgi is not ready yet so that the module tries again."""
    if _attached:
        return True
    import mod_wsgi  # ImportError: not ready yet, or not under mod_wsgi
    libs = _libs()
    if libs is None:
        if not auto:
            sys.stderr.write('mod_wsgi_telemetry_attach: mod_wsgi_telemetry.so '
                             'is not loaded in this process; nothing to do\n')
        return False
    lib, py = libs
    name = (getattr(mod_wsgi, 'application_group', '') or '').encode(
        'utf-8', 'replace')
    out = ctypes.c_int(-1)
    mode = lib.wsgi_telemetry_attach(name, sys.getswitchinterval(),
                                     ctypes.byref(out))
    if mode == -2:
        return True  # attached before (the other path won)
    if mode == -3:
        sys.stderr.write('mod_wsgi_telemetry_attach: too many interpreters '
                         'in this process; GC data not reported\n')
        return False
    _attached.append(libs)
    if mode == 1:
        # A daemon process without the module's request hooks: request
        # events (the hooks count requests everywhere else).
        mod_wsgi.subscribe_events(py.wsgi_telemetry_event_callback())
    interval = max(lib.wsgi_telemetry_interval(), 0.1)

    def start_gc(index):
        gc.callbacks.append(py.wsgi_telemetry_gc_callback(index))

    def ticker(index):
        # In an Apache child the module's reporter may start after this
        # file ran (WSGIImportScript runs first): keep trying to register.
        deadline = time.time() + 120
        while index < 0:
            if time.time() > deadline:
                return
            time.sleep(0.5)
            m = lib.wsgi_telemetry_attach(name, sys.getswitchinterval(),
                                          ctypes.byref(out))
            if m >= 0:
                index = out.value
                start_gc(index)
            elif m != -1:
                return
        while True:
            try:
                lib.wsgi_telemetry_gc_counters(index, _counters())
            except Exception:
                pass
            time.sleep(interval)

    index = out.value if mode >= 0 else -1
    if index >= 0:
        start_gc(index)
    t = threading.Thread(target=ticker, args=(index,),
                         name='mod_wsgi_telemetry-gc')
    t.daemon = True
    t.start()
    return True


if not globals().get('_NO_AUTO_ATTACH'):
    attach()
