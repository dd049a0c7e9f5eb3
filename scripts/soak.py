#!/usr/bin/env python3
"""Soak run: a real httpd + Debian mod_wsgi with our module (embedded app and
a daemon process group) and our ingester, under steady load for
SOAK_MINUTES (default 30), while:

- httpd restarts gracefully (SIGUSR1 to the parent) every 20 s,
- the ingester is stopped (SIGSTOP) for 5 s every 2 min,
- the ingester is killed (SIGKILL) and started again every 5 min,
- a separate sender adds malformed datagrams, 1 % of what the ingester
  received.

Started by scripts/soak.sh (which builds the release binaries); see
docs/benchmarks.md ("Soak") for what it checks and the accounting of lost
datagrams. Exits 1 if an invariant fails. Python 3 standard library + wrk.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
SO = os.environ["SOAK_SO"]
BIN = os.environ["SOAK_BIN"]
LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "soak.lua")
KEEP = bool(os.environ.get("SOAK_KEEP"))

CALIBRATE_SECS = 5
GRACEFUL_EVERY = float(os.environ.get("SOAK_GRACEFUL_EVERY", "20"))
# A control run: the same httpd and load without our module.
WITHOUT_MODULE = bool(os.environ.get("SOAK_WITHOUT_MODULE"))
FREEZE_EVERY, FREEZE_FIRST, FREEZE_FOR = 120, 60, 5
KILL_EVERY, KILL_FIRST = 300, 150
MALFORMED_SHARE = 0.01
INTERVAL = 1.0
POLL_EVERY = 2.0
# A budgeted /api/state keeps the newest samples of each process: enough
# for the newest REQUEST, and for the oldest of a process seen since the
# previous poll.
STATE_BUDGET = 2_000_000

APP = r"""
import time
def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/error':
        raise RuntimeError('soak: deliberate failure')
    if path.startswith('/sleep/'):
        time.sleep(int(path[7:]) / 1000.0)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello']
"""


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_counts(pid):
    """(descriptors, threads, RSS bytes) of a process, a moment after our
    last request to it (so its side of that connection is closed too)."""
    time.sleep(0.3)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return fds, threads, rss


def wait_until(what, cond, timeout=60.0):
    t0 = time.monotonic()
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"soak: timed out waiting for {what}")
        time.sleep(0.1)


class Lifetime:
    """What one ingester process saw, merged over every poll of its
    /api/state (processes may leave its state before the last poll)."""

    def __init__(self, n):
        self.n = n
        self.procs = {}  # pid -> dict
        self.started = set()  # pids whose STARTED (seq 1) it received
        self.exited = set()  # pids whose STOPPING/STOPPED it received
        self.malformed_sent = 0
        self.state = None  # last /api/state
        self.counts = {}  # label -> (fds, threads, rss)

    def merge(self, st):
        self.state = st
        for e in st.get("lifecycle_events") or []:
            if e.get("kind") == "process_started":
                self.started.add(e["pid"])
            else:
                self.exited.add(e["pid"])
        for p in st.get("processes") or []:
            pid = p["pid"]
            q = self.procs.setdefault(
                pid, {"drops": 0, "oldest": None, "newest": None}
            )
            q["drops"] = max(q["drops"], p.get("drops", 0))
            for s in p.get("samples") or []:
                if s.get("kind") != "request_metrics":
                    continue
                f19 = s["fields"].get("reporter_dropped_datagrams")
                if f19 is None:
                    continue
                rec = (s["seq"], f19)
                if q["oldest"] is None or rec[0] < q["oldest"][0]:
                    q["oldest"] = rec
                if q["newest"] is None or rec[0] > q["newest"][0]:
                    q["newest"] = rec


class Ingester:
    def __init__(self, sock, root, n):
        self.sock = sock
        self.port = free_port()
        self.life = Lifetime(n)
        if os.path.exists(sock):
            os.unlink(sock)  # left by the killed one
        self.logf = open(os.path.join(root, f"ingester-{n}.log"), "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"unix:{sock}", "--socket-mode", "0666",
             "--http-host", "127.0.0.1", "--http-port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.logf, start_new_session=True)
        wait_until("the ingester's /api/state",
                   lambda: os.path.exists(sock) and self.try_state())
        self.t0 = time.monotonic()

    def try_state(self, budget=None):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
            c.request("GET", "/api/state" + (f"?budget={budget}" if budget else ""))
            body = c.getresponse().read()
            c.close()
            return json.loads(body)
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def poll(self, budget=STATE_BUDGET):
        st = self.try_state(budget)
        if st is not None:
            self.life.merge(st)
            # Its baseline once it has settled (threads it starts on demand).
            if "start" not in self.life.counts and time.monotonic() - self.t0 > 20:
                self.life.counts["start"] = proc_counts(self.proc.pid)
        return st

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill(self):
        self.signal(signal.SIGKILL)
        self.proc.wait()
        self.logf.close()


def write_config(root, port, sock):
    with open(os.path.join(root, "app.wsgi"), "w") as f:
        f.write(APP)
    user = "User www-data\nGroup www-data\n" if os.geteuid() == 0 else ""
    module = "" if WITHOUT_MODULE else f"LoadModule wsgi_telemetry_module {SO}\n"
    telemetry = "" if WITHOUT_MODULE else (
        f"WSGITelemetryService unix:{sock} interval={INTERVAL}\nWSGISlowRequests 0.25\n")
    conf = f"""ServerRoot {root}
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
StartServers 2
ServerLimit 4
ThreadsPerChild 8
ThreadLimit 8
MinSpareThreads 4
MaxSpareThreads 32
MaxRequestWorkers 32
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so
{module}{user}PidFile {root}/run/httpd.pid
ErrorLog {root}/error.log
LogLevel notice
DefaultRuntimeDir {root}/run
TypesConfig /etc/mime.types
WSGISocketPrefix {root}/run/wsgi
WSGIDaemonProcess soak-d processes=2 threads=4
WSGIScriptAlias /daemon {root}/app.wsgi process-group=soak-d application-group=%{{GLOBAL}}
WSGIScriptAlias /app {root}/app.wsgi
WSGIApplicationGroup %{{GLOBAL}}
<Directory {root}>
  Require all granted
</Directory>
{telemetry}"""
    path = os.path.join(root, "httpd.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def wrk(url, path, expected, conns, delay_ms, secs):
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--timeout", "10s",
         "-s", LUA, url, "--", path, str(expected), str(delay_ms)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(p):
    out = p.communicate()[0]
    for line in out.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"soak: no result from wrk:\n{out}")


def capacity(url):
    out = subprocess.run(
        ["wrk", "-t2", "-c8", "-d5s", "-H", "Connection: close", url + "/app/hello"],
        capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise SystemExit(f"soak: cannot read wrk's rate:\n{out}")
    return float(m.group(1))


def calibrate(url, plan, rate):
    """Per-connection delays (ms) that pace the plan at `rate` in all.

    A connection's cycle is its request's service time plus the delay, and
    the service time depends on the load, so the plan runs together for
    CALIBRATE_SECS with a first guess (1 ms of service), each path's service
    time is read off its achieved rate, and the delay is set again from it:
    twice, since the service time moves with the delay."""
    def delays_from(service):
        return [max(1, round(conns * 1000 / (rate * share) - svc))
                for (_, _, conns, share), svc in zip(plan, service)]

    service = [1.0] * len(plan)
    for round_ in range(2):
        delays = delays_from(service)
        runs = [wrk(url, path, status, conns, d, CALIBRATE_SECS)
                for (path, status, conns, _), d in zip(plan, delays)]
        results = [wrk_result(p) for p in runs]
        got = sum(r["requests"] for r in results) / CALIBRATE_SECS
        log(f"pacing, round {round_ + 1}: delays {delays} ms -> {got:.0f} req/s (target {rate:.0f})")
        for i, ((_, _, conns, _), r) in enumerate(zip(plan, results)):
            achieved = max(r["requests"], 1) / CALIBRATE_SECS
            service[i] = max(0.0, conns * 1000 / achieved - delays[i])
    return delays_from(service)


class Malformed:
    """Undecodable datagrams from a socket of its own: 1 % of what the live
    ingester has received; only those the kernel accepted are counted."""

    SHAPES = [b"XXXX" + bytes(28), b"WSGI\x01"]  # bad magic; truncated header

    def __init__(self, sock):
        self.path = sock
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.setblocking(False)
        self.n = 0

    def top_up(self, life):
        st = life.state or {}
        want = int(MALFORMED_SHARE * st.get("total_received", 0))
        while life.malformed_sent < want:
            try:
                self.s.sendto(self.SHAPES[self.n % 2], self.path)
            except OSError:
                return  # frozen (queue full) or gone: try again later
            self.n += 1
            life.malformed_sent += 1


def main():
    root = tempfile.mkdtemp(prefix="wsgi-soak-")
    os.chmod(root, 0o755)
    os.makedirs(os.path.join(root, "run"))
    os.chmod(os.path.join(root, "run"), 0o777)
    sock = os.path.join(root, "run", "telemetry.sock")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    conf = write_config(root, port, sock)
    log(f"ServerRoot {root}; module {'NOT LOADED (control run)' if WITHOUT_MODULE else SO}; ingester {BIN}")

    lifetimes = []
    ings = [Ingester(sock, root, 1)]  # the live one last
    lifetimes.append(ings[0].life)
    httpd = subprocess.Popen(["/usr/sbin/apache2", "-f", conf, "-DFOREGROUND"],
                             stdin=subprocess.DEVNULL, start_new_session=True)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until("httpd", up)
    failures = []
    try:
        run(root, url, httpd, ings, lifetimes, sock, failures)
    finally:
        if httpd.poll() is None:
            httpd.send_signal(signal.SIGTERM)
            try:
                httpd.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(httpd.pid, signal.SIGKILL)
                httpd.wait()
        ing = ings[-1]
        if ing.proc.poll() is None:
            ing.signal(signal.SIGCONT)
            ing.signal(signal.SIGTERM)
            ing.proc.wait()
    if failures:
        log("FAILED:\n  " + "\n  ".join(failures))
        log(f"kept {root} for inspection")
        sys.exit(1)
    log("every invariant held")
    if not KEEP:
        subprocess.run(["rm", "-rf", root])


def run(root, url, httpd, ings, lifetimes, sock, failures):
    ing = ings[-1]
    # Warm up (daemon processes, interpreters), then measure capacity.
    for p in ("/app/hello", "/daemon/hello"):
        subprocess.run(["wrk", "-t1", "-c2", "-d2s", url + p], capture_output=True)
    cap = capacity(url)
    rate = cap / 2
    secs = int(MINUTES * 60)
    plan = [  # path, status the app gives, connections, share of the rate
        ("/app/hello", 200, 8, 0.79),
        ("/daemon/hello", 200, 4, 0.20),
        ("/app/error", 500, 1, 0.01),
    ]
    log(f"capacity {cap:.0f} req/s (/app/hello, 8 connections); load at half: {rate:.0f} req/s for {secs} s")
    delays = calibrate(url, plan, rate)
    loads = []
    for (path, status, conns, _), delay in zip(plan, delays):
        loads.append(wrk(url, path, status, conns, delay, secs))
    # Slow requests in the daemon: about one a second (slow records).
    loads.append(wrk(url, "/daemon/sleep/300", 200, 1, 700, secs))

    time.sleep(10)  # settle: every child and daemon process up
    parent = httpd.pid
    apache_before = proc_counts(parent)
    malformed = Malformed(sock)
    t0 = time.monotonic()
    next_graceful = GRACEFUL_EVERY / 2
    next_freeze, next_kill = FREEZE_FIRST, KILL_FIRST
    thaw_at = None
    next_poll = 0.0
    gracefuls = freezes = kills = 0
    while True:
        now = time.monotonic() - t0
        if now >= secs - 15:
            break  # the load ends soon: stop disturbing, then check
        if now >= next_graceful:
            os.kill(parent, signal.SIGUSR1)
            gracefuls += 1
            next_graceful += GRACEFUL_EVERY
        if thaw_at is None and now >= next_freeze:
            ing.signal(signal.SIGSTOP)
            freezes += 1
            thaw_at = now + FREEZE_FOR
            next_freeze += FREEZE_EVERY
        if thaw_at is not None and now >= thaw_at:
            ing.signal(signal.SIGCONT)
            thaw_at = None
        if thaw_at is None and now >= next_kill:
            # Every malformed datagram sent has been read (so none is lost
            # with the queue), then the last look, then the kill.
            life = ing.life
            wait_until("the ingester to read the malformed datagrams",
                       lambda: (ing.poll() or {}).get("decode_errors", -1) >= life.malformed_sent)
            life.counts["end"] = proc_counts(ing.proc.pid)
            ing.poll(None)
            ing.kill()
            kills += 1
            time.sleep(2)  # reporters find no one there
            ing = Ingester(sock, root, len(lifetimes) + 1)
            ings.append(ing)
            lifetimes.append(ing.life)
            next_kill += KILL_EVERY
        if thaw_at is None and now >= next_poll:
            ing.poll()
            malformed.top_up(ing.life)
            next_poll = now + POLL_EVERY
        time.sleep(0.05)
    log(f"{gracefuls} graceful restarts, {freezes} stops of 5 s, {kills} kills of the ingester")
    results = [wrk_result(p) for p in loads]
    apache_after = proc_counts(parent)
    # The last generation's processes send STOPPED at the stop: wait for them.
    wait_until("the ingester to read the malformed datagrams",
               lambda: (ing.poll() or {}).get("decode_errors", -1) >= ing.life.malformed_sent)
    ing.life.counts["end"] = proc_counts(ing.proc.pid)
    time.sleep(2 * INTERVAL)
    ing.poll(None)
    httpd.send_signal(signal.SIGTERM)
    httpd.wait(60)
    time.sleep(2 * INTERVAL)
    ing.poll()
    ing.poll(None)
    report(root, results, secs, apache_before, apache_after, lifetimes, failures)


def report(root, results, secs, apache_before, apache_after, lifetimes, failures):
    def check(ok, what):
        if not ok:
            failures.append(what)

    text = open(os.path.join(root, "error.log"), errors="replace").read()
    log("--- requests")
    sent = served = daemon_other = 0
    for r in results:
        errs = r["connect"] + r["read"] + r["write"] + r["timeout"]
        sent += r["requests"] + errs
        served += r["expected_status"]
        log(f"{r['path']}: {r['requests']} answered, {r['expected_status']} with the app's status, "
            f"{r['other_status']} other, socket errors {errs} (p99 {r['p99_ms']:.1f} ms)")
        check(errs == 0, f"{r['path']}: socket errors")
        if r["path"].startswith("/daemon/"):
            daemon_other += r["other_status"]
        else:
            check(r["other_status"] == 0, f"{r['path']}: errors not produced by the app")
    # mod_wsgi's own failures around a graceful restart (the same without
    # our module: see docs/benchmarks.md, "Soak"): an old generation's
    # child finds its daemon socket gone (503), or the daemon process is
    # replaced in the middle of a request (500). One error-log line each.
    restart = len(re.findall(r"Unable to connect to WSGI daemon process|"
                             r"Truncated or oversized response headers received from daemon", text))
    log(f"requests sent {sent}, served {served}, errors not produced by the app {sent - served} "
        f"(mod_wsgi daemon-mode failures at graceful restarts, one error-log line each: {restart}); "
        f"{sent / secs:.0f} req/s")
    check(daemon_other == restart,
          f"daemon errors {daemon_other} != mod_wsgi's daemon-restart failures in the error log {restart}")
    crashes = [ln for ln in text.splitlines()
               if "exit signal" in ln or "egmentation fault" in ln]
    log(f"Apache children that crashed: {len(crashes)}")
    for ln in crashes[:10]:
        log("  " + ln)
    check(not crashes, "Apache children crashed")

    log("--- resources (descriptors, threads, RSS)")
    log(f"Apache parent: before {apache_before[:2]}, after {apache_after[:2]}")
    check(apache_before[:2] == apache_after[:2], "Apache parent: descriptors or threads grew")
    for life in lifetimes:
        s, e = life.counts.get("start"), life.counts.get("end")
        if s and e:
            log(f"ingester #{life.n}: fds {s[0]} -> {e[0]}, threads {s[1]} -> {e[1]}, "
                f"RSS {s[2] / 2**20:.1f} -> {e[2] / 2**20:.1f} MiB")
            check(e[0] <= s[0] and e[1] <= s[1], f"ingester #{life.n}: descriptors or threads grew")

    log("--- datagrams")
    # Reporter side: field 19 of the newest REQUEST of each process.
    final19 = {}
    for life in lifetimes:
        for pid, q in life.procs.items():
            if q["newest"]:
                final19[pid] = max(final19.get(pid, 0), q["newest"][1])
    refused = sum(final19.values())
    gaps = watched = tail = 0
    mism = []
    for life in lifetimes:
        st = life.state or {}
        life_gaps = 0
        for pid, q in life.procs.items():
            if q["newest"] is None:
                continue
            base = 0 if pid in life.started else q["oldest"][1]
            expect = q["newest"][1] - base
            g = q["drops"]
            life_gaps += g
            watched += expect
            if g == expect:
                continue
            if g > expect and pid in life.exited:
                tail += g - expect  # refused after its last REQUEST, seen before its STOPPED
                continue
            mism.append(f"ingester #{life.n} pid {pid}: gaps {g}, field 19 rose by {expect}")
        gaps += st.get("seq_gaps", 0)
        check(st.get("seq_gaps", 0) == life_gaps,
              f"ingester #{life.n}: seq_gaps {st.get('seq_gaps')} != per-process gaps {life_gaps}")
        log(f"ingester #{life.n}: received {st.get('total_received')}, seq gaps {st.get('seq_gaps')}, "
            f"decode errors {st.get('decode_errors')}, malformed sent {life.malformed_sent}")
        check(st.get("decode_errors") == life.malformed_sent,
              f"ingester #{life.n}: decode errors {st.get('decode_errors')} != malformed sent {life.malformed_sent}")
    unwatched = refused - watched
    log(f"reporters could not send (field 19, {len(final19)} processes): {refused}")
    log(f"  of which while an ingester was watching the process: {watched}, seen as gaps: "
        f"{watched} (exactly, per process and ingester)")
    log(f"  of which while no ingester was alive (killed) or before one first heard of the process: {unwatched}")
    log(f"gaps seen by the ingesters: {gaps} = {watched} + {tail} refused after a process's last "
        f"REQUEST (its exit datagrams; no field 19 can follow)")
    check(not mism, "field 19 and sequence gaps disagree:\n    " + "\n    ".join(mism[:20]))
    check(gaps == watched + tail, "gaps != watched refusals + exit tails")
    check(unwatched >= 0, "more gaps than refusals")


if __name__ == "__main__":
    main()
