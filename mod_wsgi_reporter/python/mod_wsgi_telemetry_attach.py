"""mod_wsgi-telemetry: attach the interpreter that runs this file.

Installed next to mod_wsgi_telemetry.so. It forwards mod_wsgi's request
events (daemon processes) and Python GC activity (every mode) to the
module's reporter thread through the module's exported C functions; the
reporter sends them to the ingester. Nothing here sends anything itself.

Zero configuration: in a daemon process the module runs this code in the
main interpreter by itself as soon as Python is ready (this covers
``WSGIApplicationGroup %{GLOBAL}``). Explicit, from process start (no
request missed), for daemon group G and its main interpreter::

    WSGIImportScript /usr/lib/apache2/modules/mod_wsgi_telemetry_attach.py \\
        process-group=G application-group=%{GLOBAL}

and once more per sub-interpreter application group A the group runs::

    WSGIImportScript /usr/lib/apache2/modules/mod_wsgi_telemetry_attach.py \\
        process-group=G application-group=A

Embedded mode (GC telemetry only; the module's Apache hooks already count
requests): ``process-group=%{GLOBAL}``.
"""

import ctypes
import gc
import sys
import threading
import time

_attached = []


def _lib():
    lib = ctypes.CDLL(None)
    try:
        lib.wsgi_telemetry_attach
    except AttributeError:
        return None
    c_double, c_int, c_int64, c_char_p = (
        ctypes.c_double, ctypes.c_int, ctypes.c_int64, ctypes.c_char_p)
    lib.wsgi_telemetry_attach.argtypes = [
        c_char_p, c_double, ctypes.POINTER(c_int)]
    lib.wsgi_telemetry_attach.restype = c_int
    lib.wsgi_telemetry_interval.restype = c_double
    lib.wsgi_telemetry_slow_enabled.restype = c_int
    lib.wsgi_telemetry_request_started.argtypes = (
        [c_int, c_double, c_double, c_double, c_double, c_int64]
        + [c_char_p] * 9)
    lib.wsgi_telemetry_request_started.restype = None
    lib.wsgi_telemetry_request_finished.argtypes = [
        c_int, c_int, c_double, c_int64, c_int64, c_double, c_int64,
        c_int64, c_double, c_double, c_double]
    lib.wsgi_telemetry_request_finished.restype = None
    lib.wsgi_telemetry_gc_event.argtypes = [
        c_int, c_int, c_double, c_double, c_int64, c_int64]
    lib.wsgi_telemetry_gc_event.restype = None
    lib.wsgi_telemetry_gc_counters.argtypes = [
        c_int, ctypes.POINTER(ctypes.c_uint64)]
    lib.wsgi_telemetry_gc_counters.restype = None
    return lib


# Environ keys for a slow-request record, in the module's string order:
# log id, method, scheme, host, script name, path, protocol, peer, agent.
_SLOW_KEYS = ('mod_wsgi.request_id', 'REQUEST_METHOD', 'wsgi.url_scheme',
              'HTTP_HOST', 'SCRIPT_NAME', 'PATH_INFO', 'SERVER_PROTOCOL',
              'REMOTE_ADDR', 'HTTP_USER_AGENT')
_NO_STRINGS = (None,) * 9
_THREAD = 'mod_wsgi_telemetry.thread_id'
_STATUS = 'mod_wsgi_telemetry.status'
_SERVER_PID = 'mod_wsgi_telemetry.server_pid'


def _request_events(lib):
    started = lib.wsgi_telemetry_request_started
    finished = lib.wsgi_telemetry_request_finished
    slow = bool(lib.wsgi_telemetry_slow_enabled())
    keys = _SLOW_KEYS

    def strings(env):
        out = []
        for k in keys:
            v = env.get(k)
            if k == 'HTTP_HOST' and not v:
                v = env.get('SERVER_NAME')
            out.append(v.encode('latin-1', 'replace')
                       if isinstance(v, str) and v else None)
        return out

    def on_event(name, **kw):
        try:
            if name == 'request_started':
                env = kw.get('request_environ') or {}
                data = kw.get('request_data')
                tid = kw.get('thread_id') or 0
                if data is not None:
                    data[_THREAD] = tid
                try:
                    spid = int(env.get(_SERVER_PID) or 0)
                except ValueError:
                    spid = 0
                started(tid, kw.get('request_start') or 0.0,
                        kw.get('queue_start') or 0.0,
                        kw.get('daemon_start') or 0.0,
                        kw.get('application_start') or time.time(), spid,
                        *(strings(env) if slow else _NO_STRINGS))
            elif name == 'response_started':
                data = kw.get('request_data')
                if data is not None:
                    try:
                        data[_STATUS] = int(kw['response_status'][:3])
                    except (KeyError, TypeError, ValueError):
                        data[_STATUS] = 0
            elif name == 'request_finished':
                data = kw.get('request_data') or {}
                cpu_u = kw.get('cpu_user_time')
                cpu_s = kw.get('cpu_system_time')
                if cpu_u is None or cpu_s is None:
                    cpu_u = cpu_s = -1.0
                finished(data.get(_THREAD, 0), data.get(_STATUS, 0),
                         kw.get('application_finish') or time.time(),
                         kw.get('input_length') or 0,
                         kw.get('input_reads') or 0,
                         kw.get('input_time') or 0.0,
                         kw.get('output_length') or 0,
                         kw.get('output_writes') or 0,
                         kw.get('output_time') or 0.0, cpu_u, cpu_s)
        except Exception:
            # Telemetry must never break a request.
            pass

    return on_event


def _gc_callback(lib, index):
    event = lib.wsgi_telemetry_gc_event
    pending = [0.0, 0.0]
    now, clock = time.time, time.perf_counter

    def on_gc(phase, info):
        try:
            if phase == 'start':
                pending[0] = now()
                pending[1] = clock()
            elif phase == 'stop' and index[0] >= 0:
                event(index[0], info.get('generation', -1), pending[0],
                      max(clock() - pending[1], 0.0),
                      info.get('collected', 0) or 0,
                      info.get('uncollectable', 0) or 0)
        except Exception:
            pass

    return on_gc


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
    import mod_wsgi  # noqa: F401  (ImportError: not ready yet / not mod_wsgi)
    lib = _lib()
    if lib is None:
        if not auto:
            sys.stderr.write('mod_wsgi_telemetry_attach: mod_wsgi_telemetry.so '
                             'is not loaded in this process; nothing to do\n')
        return False
    name = (getattr(mod_wsgi, 'application_group', '') or '').encode(
        'utf-8', 'replace')
    index = [-1]
    out = ctypes.c_int(-1)
    mode = lib.wsgi_telemetry_attach(name, sys.getswitchinterval(),
                                     ctypes.byref(out))
    if mode == -2:
        return True  # attached before (the other path won)
    if mode == -3:
        sys.stderr.write('mod_wsgi_telemetry_attach: too many interpreters '
                         'in this process; GC data not reported\n')
        return False
    _attached.append(lib)
    if mode == 1:
        mod_wsgi.subscribe_events(_request_events(lib))
    if mode >= 0:
        index[0] = out.value
    gc.callbacks.append(_gc_callback(lib, index))
    interval = max(lib.wsgi_telemetry_interval(), 0.1)

    def ticker():
        # In an Apache child the module's reporter may start after this
        # file ran (WSGIImportScript runs first): keep trying to register.
        deadline = time.time() + 120
        while index[0] < 0:
            if time.time() > deadline:
                return
            time.sleep(0.5)
            m = lib.wsgi_telemetry_attach(name, sys.getswitchinterval(),
                                          ctypes.byref(out))
            if m >= 0:
                index[0] = out.value
            elif m == -3:
                return
        while True:
            try:
                lib.wsgi_telemetry_gc_counters(index[0], _counters())
            except Exception:
                pass
            time.sleep(interval)

    t = threading.Thread(target=ticker, name='mod_wsgi_telemetry-gc')
    t.daemon = True
    t.start()
    return True


if not globals().get('_NO_AUTO_ATTACH'):
    attach()
