#!/usr/bin/env python3
"""The cost of one application-metrics call from Python in a real mod_wsgi
process (Debian mod_wsgi 4.9, one daemon process with 8 request threads):
8 concurrent requests, each looping CALLS times over one call, in
alternating rounds:

  loop        the bare Python loop (baseline)
  pyfunc      a no-op Python function with the same arguments
  incr        mwt.incr('bench.incr')       (the package, our module, +AppMetrics)
  record      mwt.record('bench.{0}', 0.0042)
  incr-off    the same calls with -AppMetrics (the package's no-op path)
  record-off

Per variant: CPU of the request threads per call (time.thread_time, the
figure other load on the machine moves least) and wall time per call of
the 8 together (they take turns holding the GIL), each also minus the
loop's. Prints figures; asserts nothing about time.

    python3 mod_wsgi_reporter/benches/app-call-cost.py [ROUNDS [CALLS]]

Builds the module (release) with cargo; needs apache2 and mod_wsgi 4.9
(scripts/install-deps.sh).
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
CALLS = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
THREADS = 8

APP = """
import json, sys, time
sys.path.insert(0, %(pylib)r)
import mod_wsgi_telemetry as mwt

def nop(name, value=1):
    return None

def run(variant, n):
    r = range(n)
    if variant == 'loop':
        for _ in r:
            pass
    elif variant == 'pyfunc':
        for _ in r:
            nop('bench.incr')
    elif variant.startswith('incr'):
        incr = mwt.incr
        for _ in r:
            incr('bench.incr')
    elif variant.startswith('record'):
        record = mwt.record
        for _ in r:
            record('bench.{0}', 0.0042)

def application(environ, start_response):
    _, variant, n = environ['PATH_INFO'].split('/')
    c0, w0 = time.thread_time(), time.perf_counter()
    run(variant, int(n))
    out = {'cpu': time.thread_time() - c0, 'wall': time.perf_counter() - w0,
           'enabled': mwt.enabled()}
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(out).encode()]
"""

CONF = """ServerRoot %(work)s
Listen 127.0.0.1:%(port)d
ServerName 127.0.0.1
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so
LoadModule wsgi_telemetry_module %(module)s
%(user)s
PidFile %(work)s/run/httpd.pid
ErrorLog %(work)s/error.log
DefaultRuntimeDir %(work)s/run
WSGISocketPrefix %(work)s/run/wsgi
WSGITelemetryService unix:%(work)s/run/t.sock interval=1
WSGITelemetryOptions %(flag)s
WSGIDaemonProcess bench processes=1 threads=%(threads)d
WSGIScriptAlias / %(work)s/cost.wsgi process-group=bench application-group=%%{GLOBAL}
<Directory %(work)s>
  Require all granted
</Directory>
"""


def build_module():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "mod_wsgi_reporter"],
                   cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=target))
    return os.path.join(target, "release", "libmod_wsgi_telemetry.so")


def drain(sock):
    """The telemetry socket's reader (the datagrams are not looked at)."""
    while True:
        try:
            sock.recv(65536)
        except OSError:
            return


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Httpd:
    def __init__(self, work, module, port, on):
        conf = os.path.join(work, "httpd.conf")
        with open(conf, "w") as f:
            f.write(CONF % {
                "work": work, "port": port, "module": module,
                "flag": "+AppMetrics" if on else "-AppMetrics", "threads": THREADS,
                "user": "User www-data\nGroup www-data" if os.geteuid() == 0 else "",
            })
        self.port = port
        self.proc = subprocess.Popen(["/usr/sbin/apache2", "-f", conf, "-DFOREGROUND"],
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get("/loop/1")
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("httpd did not answer; see %s/error.log" % work)
                time.sleep(0.1)

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=600) as r:
            return json.load(r)

    def stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait()

    def measure(self, variant):
        """(CPU ns per call, wall ns per call, every request enabled())."""
        out = [None] * THREADS

        def one(i):
            out[i] = self.get("/%s/%d" % (variant, CALLS))

        w0 = time.perf_counter()
        ts = [threading.Thread(target=one, args=(i,)) for i in range(THREADS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - w0
        calls = THREADS * CALLS
        cpu = sum(o["cpu"] for o in out)
        return cpu / calls * 1e9, wall / calls * 1e9, all(o["enabled"] for o in out)


def main():
    module = build_module()
    work = tempfile.mkdtemp(prefix="app-call-cost.")
    os.chmod(work, 0o755)
    os.mkdir(os.path.join(work, "run"))
    os.chmod(os.path.join(work, "run"), 0o777)
    pylib = os.path.join(work, "pylib", "mod_wsgi_telemetry")
    os.makedirs(pylib)
    shutil.copy(os.path.join(ROOT, "python", "mod_wsgi_telemetry", "__init__.py"), pylib)
    with open(os.path.join(work, "cost.wsgi"), "w") as f:
        f.write(APP % {"pylib": os.path.dirname(pylib)})
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(os.path.join(work, "run", "t.sock"))
    os.chmod(os.path.join(work, "run", "t.sock"), 0o666)
    threading.Thread(target=drain, args=(sock,), daemon=True).start()
    port = free_port()
    cpu, wall = {}, {}
    try:
        for r in range(1, ROUNDS + 1):
            for on in (True, False):
                variants = ["loop", "pyfunc", "incr", "record"] if on else ["incr-off", "record-off"]
                if r % 2 == 0:
                    variants.reverse()
                httpd = Httpd(work, module, port, on)
                try:
                    for v in variants:
                        c, w, enabled = httpd.measure(v)
                        if v in ("incr", "record") and not enabled:
                            raise SystemExit("%s: enabled() is False" % v)
                        cpu.setdefault(v, []).append(c)
                        wall.setdefault(v, []).append(w)
                        print("round %d %s: %.1f ns CPU/call, %.1f ns wall/call" % (r, v, c, w),
                              file=sys.stderr)
                finally:
                    httpd.stop()
    finally:
        sock.close()
        shutil.rmtree(work, ignore_errors=True)
    med = statistics.median
    print()
    print("%d concurrent requests x %d calls, one daemon process (threads=%d), %d rounds, "
          "medians (%d cores, load %s)" % (THREADS, CALLS, THREADS, ROUNDS, os.cpu_count(),
                                           open("/proc/loadavg").read().split()[0]))
    print("%-12s %14s %14s %14s %14s" % ("variant", "cpu_ns/call", "wall_ns/call",
                                         "cpu-loop", "wall-loop"))
    lc, lw = med(cpu["loop"]), med(wall["loop"])
    for v in ["loop", "pyfunc", "incr", "record", "incr-off", "record-off"]:
        c, w = med(cpu[v]), med(wall[v])
        print("%-12s %14.1f %14.1f %14.1f %14.1f" % (v, c, w, c - lc, w - lw))


if __name__ == "__main__":
    main()
