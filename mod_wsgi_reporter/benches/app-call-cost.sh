#!/usr/bin/env bash
# The cost of one application-metrics call from Python in a real mod_wsgi
# process (Debian mod_wsgi 4.9, a daemon process with 8 request threads):
# 8 concurrent requests, each looping CALLS times over one call, in
# alternating rounds:
#   loop    the bare Python loop (baseline)
#   pyfunc  a no-op Python function with the same arguments
#   incr    mwt.incr('bench.incr')          (the package, our module, +AppMetrics)
#   record  mwt.record('bench.{0}', 0.0042)
#   incr-off / record-off: the same calls with -AppMetrics (the package's
#           no-op path)
# Per variant: CPU of the request threads per call (time.thread_time, the
# figure load on the machine moves least) and wall time per call of all 8
# together (they take turns holding the GIL), each minus the loop's.
# Prints figures; asserts nothing about time.
# ROUNDS (3), CALLS (200000 per request).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
CALLS=${CALLS:-200000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --quiet --release -p mod_wsgi_reporter
OURS=$CARGO_TARGET_DIR/release/libmod_wsgi_telemetry.so

WORK=$(mktemp -d /tmp/app-call-cost.XXXXXX)
chmod 755 "$WORK"
mkdir -m 777 "$WORK/run"
mkdir -p "$WORK/pylib/mod_wsgi_telemetry"
cp python/mod_wsgi_telemetry/__init__.py "$WORK/pylib/mod_wsgi_telemetry/"
cat > "$WORK/cost.wsgi" <<PY
import json, sys, time
sys.path.insert(0, '$WORK/pylib')
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
PY
python3 - "$WORK/run/t.sock" <<'PY' &
import os, socket, sys
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(p); os.chmod(p, 0o666)
while True:
    s.recv(65536)
PY
RECV=$!
HTTPD=""
cleanup() {
    [ -n "$HTTPD" ] && kill "$HTTPD" 2>/dev/null && wait "$HTTPD" 2>/dev/null || true
    kill "$RECV" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
user=""
[ "$(id -u)" = 0 ] && user=$'User www-data\nGroup www-data'

serve() { # $1 on|off
    local flag=-AppMetrics
    [ "$1" = on ] && flag=+AppMetrics
    cat > "$WORK/httpd.conf" <<CONF
ServerRoot $WORK
Listen 127.0.0.1:$PORT
ServerName 127.0.0.1
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so
LoadModule wsgi_telemetry_module $OURS
$user
PidFile $WORK/run/httpd.pid
ErrorLog $WORK/error.log
DefaultRuntimeDir $WORK/run
WSGISocketPrefix $WORK/run/wsgi
WSGITelemetryService unix:$WORK/run/t.sock interval=1
WSGITelemetryOptions $flag
WSGIDaemonProcess bench processes=1 threads=8
WSGIScriptAlias / $WORK/cost.wsgi process-group=bench application-group=%{GLOBAL}
<Directory $WORK>
  Require all granted
</Directory>
CONF
    setsid /usr/sbin/apache2 -f "$WORK/httpd.conf" -DFOREGROUND &
    HTTPD=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/loop/1" >/dev/null 2>&1 && break; sleep 0.1; done
}
stop() {
    kill "$HTTPD"; wait "$HTTPD" 2>/dev/null || true; HTTPD=""
}
measure() { # $1 variant -> "cpu_ns_per_call wall_ns_per_call enabled"
    python3 - "$PORT" "$1" "$CALLS" <<'PY'
import json, sys, threading, urllib.request
port, variant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = [None] * 8
def one(i):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{variant}/{n}", timeout=600) as r:
        out[i] = json.load(r)
import time
w0 = time.perf_counter()
ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()
wall = time.perf_counter() - w0
calls = 8 * n
cpu = sum(o["cpu"] for o in out)
print(f"{cpu / calls * 1e9:.1f} {wall / calls * 1e9:.1f} {int(all(o['enabled'] for o in out))}")
PY
}
declare -A CPU WALL
for r in $(seq "$ROUNDS"); do
    for mode in on off; do
        serve $mode
        if [ $mode = on ]; then variants="loop pyfunc incr record"; else variants="incr-off record-off"; fi
        [ $((r % 2)) -eq 0 ] && variants=$(echo "$variants" | tr ' ' '\n' | tac | tr '\n' ' ')
        for v in $variants; do
            read -r c w e < <(measure "$v")
            case $v in incr | record) [ "$e" = 1 ] || { echo "$v: enabled() is False" >&2; exit 1; } ;; esac
            CPU[$v]+="$c "; WALL[$v]+="$w "
            echo "round $r $v: $c ns CPU/call, $w ns wall/call" >&2
        done
        stop
    done
done
median() { python3 -c "import sys,statistics; print(statistics.median(map(float, sys.argv[1:])))" $1; }
echo
echo "8 concurrent requests x $CALLS calls, one daemon process (threads=8), $ROUNDS rounds, medians ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
printf '%-12s %14s %14s %18s %18s\n' variant cpu_ns/call wall_ns/call cpu_ns-loop wall_ns-loop
lc=$(median "${CPU[loop]}"); lw=$(median "${WALL[loop]}")
for v in loop pyfunc incr record incr-off record-off; do
    c=$(median "${CPU[$v]}"); w=$(median "${WALL[$v]}")
    python3 -c "import sys; v,c,w,lc,lw=sys.argv[1],*map(float,sys.argv[2:]); print(f'{v:<12} {c:14.1f} {w:14.1f} {c-lc:18.1f} {w-lw:18.1f}')" "$v" "$c" "$w" "$lc" "$lw"
done
