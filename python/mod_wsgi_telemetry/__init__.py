"""The application's own metrics, summed across every process by the
mod_wsgi-telemetry ingester.

    import mod_wsgi_telemetry as mwt

    mwt.incr("orders.placed")             # counter: += 1
    mwt.incr("bytes.uploaded", 4096)      # counter: += 4096 (>= 0)
    mwt.set("queue.depth", 17)            # gauge: the level now
    mwt.record("payment.{0}", 0.042)      # distribution of seconds

Under Apache with mod_wsgi_telemetry.so loaded and ``WSGITelemetryOptions
+AppMetrics``, each call goes through the module's C ABI into its
per-process table (docs/app-metrics.md). Anywhere else (a development
server, the application's unit tests, the module loaded with application
metrics off) every call returns at once, does nothing and never raises;
``enabled()`` says which.

Names: 1 to 64 bytes of letters, digits and ``_ . : / -``, with at most
one ``{0}`` placeholder (where derived statistics such as ``p99`` go).
A bad name, or a bad value (not a finite number; negative for ``incr`` or
``record``), raises ``ValueError`` at the call while metrics are enabled;
``check_name`` applies the same rule anywhere, for tests.
"""

import ctypes
import os
import re

__all__ = ["incr", "set", "record", "enabled", "check_name", "MAX_NAME_LEN"]

#: The C ABI version this package speaks (``mwt_app_abi_version()``).
ABI_VERSION = 1
#: Longest name, in bytes.
MAX_NAME_LEN = 64

# Return codes of the C functions (docs/app-metrics.md).
OK = 0
DROPPED = 1  # the process's name table is full; counted by the module
DISABLED = 2  # module loaded, application metrics off
BAD_NAME = -1
BAD_VALUE = -2
TYPE_CLASH = -3

_NAME = re.compile(r"(?:[A-Za-z0-9_.:/-]|\{0\})+\Z")
# Names already checked and encoded; bounded so that an application
# inventing names cannot grow it without limit.
_CACHE_MAX = 4096
_names = {}

# The bound C functions, one cell per call (None: calls are no-ops).
_cells = {"incr": [None], "set": [None], "record": [None]}
_enabled = None
# Stands for "no value given" in set() and record(), which need one.
_MISSING = object()


def check_name(name):
    """Returns ``name`` encoded as ASCII bytes if it is a valid metric name;
    raises ``ValueError`` saying what is wrong otherwise."""
    if not isinstance(name, str):
        raise ValueError(
            "metric name must be a str, not %s" % type(name).__name__)
    if not name:
        raise ValueError("metric name is empty")
    if len(name) > MAX_NAME_LEN:
        raise ValueError(
            "metric name %r is %d characters, at most %d"
            % (name, len(name), MAX_NAME_LEN))
    if not _NAME.match(name):
        raise ValueError(
            "metric name %r: allowed are letters, digits, _ . : / - "
            "and one {0}" % (name,))
    if name.count("{0}") > 1:
        raise ValueError("metric name %r has {0} more than once" % (name,))
    return name.encode("ascii")


def _encoded(name):
    """(bytes, length) of a valid name; ValueError for an invalid one."""
    pair = _names.get(name) if isinstance(name, str) else None
    if pair is None:
        b = check_name(name)
        pair = (b, len(b))
        if len(_names) < _CACHE_MAX:
            _names[name] = pair
    return pair


def _disable():
    for cell in _cells.values():
        cell[0] = None


def _failed(rc, what, name, value):
    """A non-zero return code: nothing for DROPPED, switch to no-ops for
    DISABLED, ValueError for the rest."""
    if rc == DROPPED:
        return
    if rc == DISABLED:
        _disable()
        return
    if rc == BAD_NAME:
        raise ValueError("metric name %r refused by the module" % (name,))
    if rc == BAD_VALUE:
        need = "a finite number" if what == "set" else "a finite number >= 0"
        raise ValueError(
            "%s(%r, %r): the value must be %s (and keep the total finite)"
            % (what, name, value, need))
    if rc == TYPE_CLASH:
        raise ValueError(
            "%s(%r): the name is already used by another kind of metric "
            "in this process" % (what, name))
    raise ValueError("%s(%r): the module answered %d" % (what, name, rc))


def _slow(fn, what, name, value):
    """A call whose name is not cached yet, or whose arguments need a
    conversion ctypes refuses: checks, calls and explains."""
    b, n = _encoded(name)
    try:
        rc = fn(b, n, value)
    except ctypes.ArgumentError:
        raise ValueError(
            "%s(%r, %r): the value must be a number" % (what, name, value)
        ) from None
    if rc:
        _failed(rc, what, name, value)


_SLOW = (KeyError, TypeError, ctypes.ArgumentError)


def _metric(what, default, doc):
    """One of the three calls. Its fast path is inline (one cell, one dict
    lookup, the foreign call): a Python call frame costs as much as the
    rest."""
    cell = _cells[what]

    def call(name, value=default):
        fn = cell[0]
        if fn is None:
            return
        if value is _MISSING:
            raise TypeError("%s() needs a value" % what)
        try:
            b, n = _names[name]
            rc = fn(b, n, value)
        except _SLOW:
            return _slow(fn, what, name, value)
        if rc:
            _failed(rc, what, name, value)

    call.__name__ = call.__qualname__ = what
    call.__doc__ = doc
    return call


incr = _metric(
    "incr", 1, "incr(name, value=1): adds ``value`` (a finite number >= 0) "
    "to the counter ``name``.")
set = _metric(  # noqa: A001 (the statvent name)
    "set", _MISSING, "set(name, value): the gauge ``name`` is now "
    "``value`` (a finite number).")
record = _metric(
    "record", _MISSING, "record(name, value): adds ``value`` (seconds, "
    "finite, >= 0) to the distribution ``name``.")


def enabled():
    """True when the calls reach the module (loaded, same ABI version,
    application metrics on)."""
    if _cells["incr"][0] is None or _enabled is None:
        return False
    if not _enabled():
        _disable()
        return False
    return True


def _loaded_module():
    """The process's own symbols if they include the module's ABI (Apache
    loads modules RTLD_GLOBAL); else the module's file, if it is mapped
    into the process (``mod_wsgi_telemetry.so`` as installed, or cargo's
    ``libmod_wsgi_telemetry.so``); else None."""
    # PyDLL, not CDLL: the calls are a few atomic operations, so they keep
    # the GIL rather than release and take it back around each one.
    try:
        lib = ctypes.PyDLL(None)
        lib.mwt_app_abi_version
        return lib
    except (OSError, AttributeError):
        pass
    mode = getattr(os, "RTLD_NOLOAD", 0) | os.RTLD_NOW
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.rstrip("\n").split(None, 5)[-1] for line in maps}
    except OSError:
        return None
    for path in sorted(p for p in paths if p.endswith("mod_wsgi_telemetry.so")):
        try:
            lib = ctypes.PyDLL(path, mode=mode)
            lib.mwt_app_abi_version
            return lib
        except (OSError, AttributeError):
            continue
    return None


def _bind():
    global _enabled
    lib = _loaded_module()
    if lib is None:
        return
    try:
        version = lib.mwt_app_abi_version
        version.argtypes = []
        version.restype = ctypes.c_int
        if version() != ABI_VERSION:
            return
        fns = []
        for sym in ("mwt_app_incr", "mwt_app_set", "mwt_app_record"):
            fn = getattr(lib, sym)
            fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_double]
            fn.restype = ctypes.c_int
            fns.append(fn)
        on = lib.mwt_app_enabled
        on.argtypes = []
        on.restype = ctypes.c_int
    except AttributeError:
        return
    if not on():
        return
    for what, fn in zip(("incr", "set", "record"), fns):
        _cells[what][0] = fn
    _enabled = on


_bind()
