#!/usr/bin/env bash
# Throughput/latency comparison on loopback, same machine, same run:
#   A  Debian mod_wsgi 4.9, embedded hello-world, no telemetry
#   B  A + mod_wsgi_telemetry.so + WSGITelemetryService (this project)
#   C  mod_wsgi 6.1.1 (PyPI, built with apxs), same app, no telemetry
#   D  C + its built-in reporter (WSGITelemetryService)
#   E  Debian mod_wsgi 4.9, the same app in a daemon process group
#      (WSGIDaemonProcess bench processes=2 threads=8), no telemetry
#   F  E + mod_wsgi_telemetry.so + WSGITelemetryService (zero configuration)
#   G  F + the explicit WSGIImportScript attach line
#   H  E + a no-op Python subscriber to mod_wsgi's events, no telemetry
#      (what mod_wsgi itself spends on events once anyone subscribes)
#   I  A + mod_wsgi_telemetry.so loaded without WSGITelemetryService (the
#      module inert: with INSTR, what merely loading a .so shifts in
#      Python's allocator, as against B)
#   J  A + Debian's mod_headers loaded, unused (the same kind of control
#      with a module that is not ours)
#   P  E + mod_wsgi_telemetry.so loaded without WSGITelemetryService
#      (daemon mode, the module inert: F - P is what the directive's work
#      costs with the same .so mapped; P - E what mapping it alone shifts)
#   Q  E + the inert 560 KB C module of N560 (daemon mode: what loading a
#      module of about our size shifts, with no code of ours)
#   R  E + a Python GC callback that does nothing (daemon mode: what
#      CPython spends per collection once any callback is registered, as
#      our GC telemetry's is)
#   N<KB>  A + an inert C module built here with apxs: KB kilobytes of
#      constant data and one handler hook that declines (N560 maps about
#      as much as ours): with INSTR, what the size of a loaded module alone
#      shifts
#   L  B + WSGITelemetryOptions +AppMetrics, an app that imports the
#      python/ package of application metrics and calls nothing
#   K  L with an app that also calls incr() 10 times per request (10
#      names): K - L is what 10 calls cost on the request path
# Rounds are interleaved, in alternating order (A B C D, D C B A, ...), so
# drift and order effects hit all alike; medians are reported with the
# ratios B/A, D/C, F/E and G/E, and httpd's CPU time per request (less sensitive to
# other load on the machine than req/s). VARIANTS="A B" runs a subset.
#
#   VARIANTS="A B C D" ROUNDS=3 DURATION=10 CONNECTIONS=32 THREADS=2 bash mod_wsgi_reporter/benches/wrk-compare.sh
# INSTR=N1,N2: deterministic instruction counts per request instead (see
# instr_run below; needs valgrind; CG_KEEP=DIR keeps the profiles;
# SEED=N sets PYTHONHASHSEED, 0 by default: other seeds lay Python's heap
# out differently, which shows how much of a difference between variants
# is layout rather than work).
# CACHESIM=1 (with INSTR): callgrind's simulated L1 and last-level cache
# misses per request too. KCOUNT=N: instead of timing, system calls and
# context switches per request of the MPM children and the daemons over
# `ab -n N` (see kcount_run). MODULE_SO=PATH: that build of the module
# instead of this tree's (before/after comparisons).
# PAD=KB: every variant also loads the inert module of KB kilobytes (as
# N<KB>, loaded before mod_wsgi): the same layout shift for all of them.
# With INSTR, running the comparison over several PAD values (0 140 280
# 560 1100) and averaging each difference over them takes the luck of one
# layout out of "B - A against D - C" (not with N<KB> variants).
# PERF=1: before each measured run, an extra unmeasured load run samples
# every httpd process with `perf record --call-graph dwarf` and prints the
# module's share of httpd's CPU samples and mod_wsgi's own .so share
# (benches/perf-share.py): figures that, unlike req/s, hardly move with
# other load on a shared machine (D's reporter runs inside mod_wsgi 6.1.1's
# .so, so its cost shows as D's .so share over C's).
# AB=N: each measured run is `ab -k -c CONNECTIONS -n N` (a fixed number
# of requests, one client thread) instead of wrk for DURATION; with many
# short ROUNDS the paired ratios then average over more of the machine's
# ups and downs.
# PIN=1: httpd (all its processes) on core 0, wrk and the receiver on
# core 1, so load generator and server do not take turns on the same core
# (steadier rounds on a 2-core machine; the throughput is one core's).
# Needs: scripts/install-deps.sh (apache2, mod_wsgi 4.9, wrk, python3-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# MODULE_SO=PATH: measure that build of the module (a copy of an older
# one, say) instead of building this tree's.
if [ -n "${MODULE_SO:-}" ]; then
    OURS=$(realpath "$MODULE_SO")
else
    cargo build --quiet --release -p mod_wsgi_reporter
    OURS=$CARGO_TARGET_DIR/release/libmod_wsgi_telemetry.so
fi
ATTACH=$PWD/mod_wsgi_reporter/python/mod_wsgi_telemetry_attach.py
MW6=$(bash scripts/mod-wsgi-6-venv.sh)
MW6_VENV=$(cd "$(dirname "$MW6")/../../../../.." && pwd)

WORK=$(mktemp -d /tmp/wrk-compare.XXXXXX)
chmod 755 "$WORK"
mkdir -m 777 "$WORK/run"
cat > "$WORK/hello.wsgi" <<'PY'
def application(environ, start_response):
    body = b'Hello World!'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
PY
# The same app with the application-metrics package (a copy, readable by
# www-data): importing it only (L), or also counting 10 names per request (K).
mkdir -p "$WORK/pylib/mod_wsgi_telemetry"
cp python/mod_wsgi_telemetry/__init__.py "$WORK/pylib/mod_wsgi_telemetry/"
for calls in 0 10; do
    cat > "$WORK/hello-app$calls.wsgi" <<PY
import sys
sys.path.insert(0, '$WORK/pylib')
import mod_wsgi_telemetry as mwt
NAMES = ['hello.%d' % i for i in range($calls)]
def application(environ, start_response):
    for n in NAMES:
        mwt.incr(n)
    body = b'Hello World!'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
PY
done
cat > "$WORK/noop_subscriber.py" <<'PY'
import mod_wsgi
def _noop(name, **kwargs):
    pass
mod_wsgi.subscribe_events(_noop)
PY
# R: a GC callback that does nothing, what CPython itself spends once any
# callback is registered (it builds an info dict for each phase of each
# collection and calls every callback twice per collection).
cat > "$WORK/noop_gc_callback.py" <<'PY'
import gc
def _noop(phase, info):
    pass
gc.callbacks.append(_noop)
PY
# A receiver that drains the socket (same cost for B and D).
python3 - "$WORK/run/t.sock" <<'PY' &
import os, socket, sys
p = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(p); os.chmod(p, 0o666)
n = 0
while True:
    s.recv(65536)
PY
RECV=$!
HTTPD=""
SERVER_CPU=()
LOAD_CPU=()
if [ "${PIN:-0}" = 1 ]; then
    SERVER_CPU=(taskset -c 0)
    LOAD_CPU=(taskset -c 1)
    taskset -pc 1 "$RECV" >/dev/null
fi
cleanup() {
    [ -n "$HTTPD" ] && kill "$HTTPD" 2>/dev/null && wait "$HTTPD" 2>/dev/null || true
    kill "$RECV" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Reporter interval. Under callgrind (INSTR) httpd runs ~50x slower, so
# a 1 s interval would charge each request ~50x the per-tick work it costs
# at full speed: ticks are kept out of the count there (a run takes under
# a minute; ours' first tick comes at a per-pid offset inside the
# interval, so a shorter one would land in some runs and not others).
TICK=1
[ -n "${INSTR:-}" ] && TICK=600
# CACHESIM=1 (with INSTR): callgrind also simulates the caches and prints
# the L1 and last-level misses per request (a deterministic stand-in for
# cache behaviour where the CPU has no counters, as in a VM).
CACHE_SIM=no
[ "${CACHESIM:-0}" = 1 ] && CACHE_SIM=yes
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
inert_module() { # $1 kilobytes -> path of the built module
    local d="$WORK/inert-$1"
    if [ ! -f "$d/.libs/mod_inert.so" ]; then
        mkdir -p "$d"
        cat > "$d/mod_inert.c" <<C
#include "httpd.h"
#include "http_config.h"
#include "http_request.h"
const unsigned char inert_bulk[$1 * 1000] = {1};
static int inert_handler(request_rec *r) { return inert_bulk[r->request_time % ($1 * 1000)] == 2 ? OK : DECLINED; }
static void inert_hooks(apr_pool_t *p) { ap_hook_handler(inert_handler, NULL, NULL, APR_HOOK_REALLY_FIRST); }
module AP_MODULE_DECLARE_DATA inert_module = { STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, inert_hooks };
C
        (cd "$d" && apxs -c mod_inert.c >build.log 2>&1) || { cat "$d/build.log" >&2; exit 1; }
    fi
    echo "$d/.libs/mod_inert.so"
}
conf() { # $1 variant
    local wsgi=/usr/lib/apache2/modules/mod_wsgi.so extra="" mount="WSGIScriptAlias / $WORK/hello.wsgi" calls=0
    # Under callgrind as root there is no `User` (below), so httpd's
    # default is uid/gid -1 and mod_wsgi's daemons fail to switch to it
    # ("Unable to set group id to gid=4294967295"): name the user there.
    local duser=""
    [ "$(id -u)" = 0 ] && [ -n "${INSTR:-}" ] && duser=" user=www-data group=www-data"
    local daemon="WSGIDaemonProcess bench processes=2 threads=8$duser
WSGIScriptAlias / $WORK/hello.wsgi process-group=bench application-group=%{GLOBAL}"
    case $1 in
        E) mount=$daemon ;;
        H) mount=$daemon; extra="WSGIImportScript $WORK/noop_subscriber.py process-group=bench application-group=%{GLOBAL}" ;;
        F) mount=$daemon; extra="LoadModule wsgi_telemetry_module $OURS
WSGITelemetryService unix:$WORK/run/t.sock interval=$TICK" ;;
        G) mount=$daemon; extra="LoadModule wsgi_telemetry_module $OURS
WSGITelemetryService unix:$WORK/run/t.sock interval=$TICK
WSGIImportScript $ATTACH process-group=bench application-group=%{GLOBAL}" ;;
        B) extra="LoadModule wsgi_telemetry_module $OURS
WSGITelemetryService unix:$WORK/run/t.sock interval=$TICK" ;;
        I) extra="LoadModule wsgi_telemetry_module $OURS" ;;
        P) mount=$daemon; extra="LoadModule wsgi_telemetry_module $OURS" ;;
        R) mount=$daemon; extra="WSGIImportScript $WORK/noop_gc_callback.py process-group=bench application-group=%{GLOBAL}" ;;
        Q) mount=$daemon; extra="LoadModule inert_module $(inert_module 560)" ;;
        K | L) [ "$1" = K ] && calls=10 || calls=0
            mount="WSGIScriptAlias / $WORK/hello-app$calls.wsgi"
            extra="LoadModule wsgi_telemetry_module $OURS
WSGITelemetryService unix:$WORK/run/t.sock interval=$TICK
WSGITelemetryOptions +AppMetrics" ;;
        J) extra="LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so" ;;
        N*) extra="LoadModule inert_module $(inert_module "${1#N}")" ;;
        C) wsgi=$MW6; extra="WSGIPythonHome $MW6_VENV" ;;
        D) wsgi=$MW6; extra="WSGIPythonHome $MW6_VENV
WSGITelemetryService unix:$WORK/run/t.sock interval=$TICK" ;;
    esac
    local pad=""
    if [ "${PAD:-0}" != 0 ]; then
        case $1 in N* | Q) echo "PAD and the N<KB> and Q variants do not mix (one inert_module)" >&2; exit 2 ;; esac
        pad="LoadModule inert_module $(inert_module "$PAD")"
    fi
    local user=""
    # (not under callgrind: it writes its profile at exit, as that user)
    [ "$(id -u)" = 0 ] && [ -z "${INSTR:-}" ] && user=$'User www-data\nGroup www-data'
    cat > "$WORK/httpd-$1.conf" <<CONF
ServerRoot $WORK
Listen 127.0.0.1:$PORT
ServerName 127.0.0.1
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
$pad
LoadModule wsgi_module $wsgi
$user
PidFile $WORK/run/httpd.pid
ErrorLog $WORK/error-$1.log
DefaultRuntimeDir $WORK/run
StartServers 2
ThreadsPerChild 25
MaxRequestWorkers 150
KeepAlive On
MaxKeepAliveRequests 0
WSGISocketPrefix $WORK/run/wsgi
$mount
WSGIApplicationGroup %{GLOBAL}
$extra
<Directory $WORK>
  Require all granted
</Directory>
CONF
}
to_ms() { # wrk latency value like 1.23ms / 456.00us / 1.2s
    python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)',v); x=float(m.group(1)); print({'us':x/1000,'ms':x,'s':x*1000}[m.group(2)])" "$1"
}
cpu_ticks() { # total utime+stime (clock ticks) of every process in httpd's session
    local t=0 p
    for p in $(ps -s "$HTTPD" -o pid= 2>/dev/null); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
run() { # $1 variant -> "rps p99ms cpu_us_per_request"
    conf "$1"
    setsid "${SERVER_CPU[@]}" /usr/sbin/apache2 -f "$WORK/httpd-$1.conf" -DFOREGROUND &
    HTTPD=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
    "${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT/" >/dev/null   # warm-up
    if [ "${PERF:-0}" = 1 ]; then
        # An extra, unmeasured load run for every variant (the same warm-up
        # history for all), sampled by perf (stack copies slow httpd down:
        # never during the measured run).
        perf record -q -F 1000 --call-graph dwarf,16384 -o "$WORK/perf.data" \
            -p "$(ps -s "$HTTPD" -o pid= | tr -s ' \n' ',' | sed 's/^,//; s/,$//')" \
            -- sleep 5 >/dev/null 2>&1 &
        local perf=$!
        "${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d6s "http://127.0.0.1:$PORT/" >/dev/null
        wait "$perf" || true
        perf script -i "$WORK/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null > "$WORK/perf.txt" || true
        echo "  $1 perf: $(python3 mod_wsgi_reporter/benches/perf-share.py "$WORK/perf.txt")" >&2
        rm -f "$WORK/perf.data" "$WORK/perf.txt"
    fi
    local out c0 c1 rps p99 n cpu
    c0=$(cpu_ticks)
    if [ -n "${AB:-}" ]; then
        # AB=N: a fixed number of requests with ab (one thread) instead.
        out=$("${LOAD_CPU[@]}" ab -q -k -c "$CONNECTIONS" -n "$AB" "http://127.0.0.1:$PORT/" 2>&1)
        c1=$(cpu_ticks)
        rps=$(echo "$out" | awk '/Requests per second/ {print $4}')
        p99=$(echo "$out" | awk '$1=="99%" {print $2}')
        n=$AB
    else
        out=$("${LOAD_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/")
        c1=$(cpu_ticks)
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        p99=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
        n=$(echo "$out" | awk '/requests in/ {print $1}')
    fi
    kill "$HTTPD"; wait "$HTTPD" 2>/dev/null || true; HTTPD=""
    # httpd CPU per request: less sensitive to other load than req/s.
    cpu=$(python3 -c "import os,sys; print((int(sys.argv[2])-int(sys.argv[1]))*1e6/os.sysconf('SC_CLK_TCK')/int(sys.argv[3]))" "$c0" "$c1" "$n")
    echo "$rps $p99 $cpu"
}
# INSTR=N1,N2: instead of wrk, count the instructions httpd executes per
# request (valgrind's callgrind, deterministic: no noise from other load).
# Each variant runs single-process (`apache2 -X`, under callgrind, daemons
# followed) twice, serving N1 and then N2 sequential keep-alive requests;
# (Ir(N2) - Ir(N1)) / (N2 - N1) removes start-up and shutdown.
instr_run() { # $1 variant $2 requests -> total instructions
    conf "$1"
    rm -f "$WORK"/run/cg.out.*
    PYTHONHASHSEED=${SEED:-0} setsid valgrind --tool=callgrind --cache-sim="$CACHE_SIM" --branch-sim=no --trace-children=yes \
        --callgrind-out-file="$WORK/run/cg.out.%p" \
        /usr/sbin/apache2 -X -f "$WORK/httpd-$1.conf" >/dev/null 2>&1 &
    HTTPD=$!
    for _ in $(seq 600); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || { echo "$1: httpd under callgrind does not answer (see $WORK/error-$1.log)" >&2; exit 1; }
    python3 - "$PORT" "$2" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=120)
for _ in range(int(sys.argv[2])):
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    assert r.status == 200
PY
    # Daemon processes (forked by the -X process, same session) write
    # their profiles as they exit. Stopped by the -X process, they get 3 s
    # (APR's kill-after-timeout) before SIGKILL, too short under callgrind
    # (no profile then): so they are sent SIGTERM first and waited for.
    local pids daemons p
    pids=$(ps -s "$HTTPD" -o pid= | tr -s ' \n' ' ')
    daemons=$(ps -s "$HTTPD" -o pid= | grep -vw "$HTTPD" | tr -s ' \n' ' ' || true)
    wait_gone() {
        for _ in $(seq 1500); do
            local alive=0 q
            # (a daemon that has exited stays a zombie: -X reaps none)
            for q in "$@"; do
                case $(ps -o stat= -p "$q" 2>/dev/null) in "" | Z*) ;; *) alive=1 ;; esac
            done
            [ $alive = 0 ] && return 0
            sleep 0.2
        done
        echo "processes $* still running after 300 s" >&2
        return 1
    }
    for p in $daemons; do kill "$p" 2>/dev/null || true; done
    wait_gone $daemons
    kill "$HTTPD"; wait "$HTTPD" 2>/dev/null || true; HTTPD=""
    wait_gone $pids
    # one profile per process, each complete (a daemon killed before it
    # could write its profile would silently leave its requests out)
    local want got
    want=$(echo $pids | wc -w)
    got=$(for p in $pids; do grep -l '^totals:' "$WORK/run/cg.out.$p" 2>/dev/null; done | wc -l)
    [ "$(ls "$WORK"/run/cg.out.* | wc -l)" = "$want" ] || { echo "$1: a process was started during the run" >&2; ls "$WORK"/run/cg.out.* >&2; exit 1; }
    [ "$got" = "$want" ] || { echo "$1: $got complete profiles for $want processes; error log:" >&2; tail -n 20 "$WORK/error-$1.log" >&2; exit 1; }
    # CG_KEEP=DIR keeps the profiles, DIR/<variant>-<requests>/ (for
    # callgrind_annotate: where the instructions go; diff the two runs).
    if [ -n "${CG_KEEP:-}" ]; then
        mkdir -p "$CG_KEEP/$1-$2"; rm -f "$CG_KEEP/$1-$2"/cg.out.*; cp "$WORK"/run/cg.out.* "$CG_KEEP/$1-$2/"
    fi
    # every process's totals (the Apache process and any daemon)
    # (with CACHESIM=1 also the simulated misses: Ir I1mr D1mr D1mw ILmr DLmr DLmw)
    cat "$WORK"/run/cg.out.* | awk '
        /^events:/ {for (i = 2; i <= NF; i++) col[$i] = i}
        /^summary:/ {for (i = 2; i <= NF; i++) s[i] += $i}
        END {n = split("Ir I1mr D1mr D1mw ILmr DLmr DLmw", ev, " ")
             for (k = 1; k <= n; k++) if (ev[k] in col) printf "%s%d", (k > 1 ? " " : ""), s[col[ev[k]]]
             printf "\n"}'
}
# KCOUNT=N: what the kernel is asked to do per request, counts that
# hardly depend on other load on the machine (callgrind sees none of
# it): each variant runs as in a measured run (not under callgrind), is
# warmed up (2,000 requests, then 2 s for the daemons' attach) and then
# serves `ab -k -c CONNECTIONS -n N` while `perf stat` counts the system
# calls (all, and each of the kinds in KSYSCALLS), context switches,
# page faults and CPU migrations of every thread of its processes, and
# /proc/<pid>/task/<tid>/status gives the voluntary and involuntary
# context switches. Printed per request for the MPM children (they proxy
# to the daemons; told apart by their ThreadsPerChild threads) and the
# daemons (the parent does nothing per request). What threads do on
# timers shows per request as (calls per second) / (requests per
# second): divide by the rate `ab` reached to compare across runs.
KSYSCALLS=${KSYSCALLS:-read write readv writev sendto recvfrom sendmsg recvmsg poll ppoll select pselect6 epoll_wait epoll_pwait epoll_ctl futex accept4 connect socket close shutdown setsockopt getsockopt getsockname getpeername fcntl ioctl mmap munmap mprotect brk madvise nanosleep clock_nanosleep clock_gettime gettid getpid getrusage times sched_yield rt_sigprocmask rt_sigaction openat newfstatat lseek getrandom}
ctxt_of() { # tids... -> "voluntary nonvoluntary", summed
    local t
    for t in "$@"; do cat /proc/*/task/"$t"/status 2>/dev/null || true; done |
        awk '/^voluntary_ctxt/ {v += $2} /^nonvoluntary_ctxt/ {n += $2} END {print v + 0, n + 0}'
}
kcount_run() { # $1 variant $2 output file: lines "class counter per_request"
    conf "$1"
    setsid "${SERVER_CPU[@]}" /usr/sbin/apache2 -f "$WORK/httpd-$1.conf" -DFOREGROUND &
    HTTPD=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
    "${LOAD_CPU[@]}" ab -q -k -c "$CONNECTIONS" -n 2000 "http://127.0.0.1:$PORT/" >/dev/null 2>&1
    sleep 2
    local p children="" daemons="" ev="raw_syscalls:sys_enter,context-switches,cpu-migrations,page-faults,task-clock" k
    for k in $KSYSCALLS; do ev+=",syscalls:sys_enter_$k"; done
    for p in $(ps -s "$HTTPD" -o pid=); do
        [ "$p" = "$HTTPD" ] && continue
        if [ "$(ls "/proc/$p/task" | wc -l)" -ge 25 ]; then children+="$p "; else daemons+="$p "; fi
    done
    local ct dt c0 d0 c1 d1 pc pd
    ct=$(for p in $children; do ls "/proc/$p/task"; done)
    dt=$(for p in $daemons; do ls "/proc/$p/task"; done)
    c0=$(ctxt_of $ct); d0=$(ctxt_of $dt)
    perf stat -x, -o "$WORK/child.stat" -e "$ev" -p "$(echo $children | tr ' ' ,)" &
    pc=$!
    perf stat -x, -o "$WORK/daemon.stat" -e "$ev" -p "$(echo $daemons | tr ' ' ,)" &
    pd=$!
    sleep 1
    "${LOAD_CPU[@]}" ab -q -k -c "$CONNECTIONS" -n "$KCOUNT" "http://127.0.0.1:$PORT/" >/dev/null 2>&1
    kill -INT "$pc" "$pd"; wait "$pc" "$pd" 2>/dev/null || true
    c1=$(ctxt_of $ct); d1=$(ctxt_of $dt)
    kill "$HTTPD"; wait "$HTTPD" 2>/dev/null || true; HTTPD=""
    python3 - "$KCOUNT" "$WORK/child.stat" "$WORK/daemon.stat" "$c0" "$c1" "$d0" "$d1" > "$2" <<'PY'
import sys
n = int(sys.argv[1])
for cls, path, a, b in (("child", sys.argv[2], sys.argv[4], sys.argv[5]),
                        ("daemon", sys.argv[3], sys.argv[6], sys.argv[7])):
    (v0, i0), (v1, i1) = (map(int, x.split()) for x in (a, b))
    print(cls, "ctxsw-voluntary", (v1 - v0) / n)
    print(cls, "ctxsw-involuntary", (i1 - i0) / n)
    for line in open(path):
        f = line.strip().split(",")
        if len(f) < 3 or line.startswith("#"):
            continue
        try:
            v = float(f[0])
        except ValueError:
            continue
        name = f[2].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "syscalls")
        if name == "task-clock":
            name = "task-clock-us"
            v *= 1000  # msec -> us
        print(cls, name, v / n)
PY
}
if [ -n "${KCOUNT:-}" ]; then
    # (a variant may be named more than once: "E F E F" shows the spread)
    declare -A KC
    names=()
    i=0
    for v in ${VARIANTS:-E F}; do
        i=$((i + 1))
        kcount_run "$v" "$WORK/kc-$i.txt"
        while read -r class k x; do
            KC[$i/$class/$k]=$x
            names+=("$class/$k")
        done < "$WORK/kc-$i.txt"
    done
    echo "ab -k -c$CONNECTIONS -n$KCOUNT, per request (perf stat; task-clock depends on load, the rest hardly)"
    set -- ${VARIANTS:-E F}
    printf '%-30s' "process/counter"; for v in "$@"; do printf ' %8s' "$v"; done; echo
    for k in $(printf '%s\n' "${names[@]}" | sort -u); do
        show=0
        for i in $(seq $#); do
            [ "$(printf '%.3f' "${KC[$i/$k]:-0}")" != 0.000 ] && show=1
        done
        [ $show = 1 ] || continue
        printf '%-30s' "$k"; for i in $(seq $#); do printf ' %8.3f' "${KC[$i/$k]:-0}"; done; echo
    done
    exit 0
fi
if [ -n "${INSTR:-}" ]; then
    N1=${INSTR%,*}; N2=${INSTR#*,}
    echo "PYTHONHASHSEED=${SEED:-0} PAD=${PAD:-0} KB"
    printf '%-48s %16s\n' variant "instructions/request"
    declare -A IR
    for v in ${VARIANTS:-A B C D}; do
        read -ra a < <(instr_run "$v" "$N1"); read -ra b < <(instr_run "$v" "$N2")
        IR[$v]=$(( (b[0] - a[0]) / (N2 - N1) ))
        printf '%-48s %16d\n' "$v" "${IR[$v]}"
        if [ "$CACHE_SIM" = yes ]; then
            # misses of callgrind's simulated caches (one per process,
            # sized from CPUID), per request
            python3 -c "import sys; n=int(sys.argv[1]); a=list(map(int,sys.argv[2].split())); b=list(map(int,sys.argv[3].split())); d=[(y-x)/n for x,y in zip(a,b)]; print(f'  simulated misses/request: L1 instr {d[1]:.1f}, L1 data read {d[2]:.1f}, write {d[3]:.1f}; last level instr {d[4]:.1f}, data {d[5]+d[6]:.1f}')" \
                "$((N2 - N1))" "${a[*]}" "${b[*]}"
        fi
    done
    pairs=("A B" "C D" "E F" "E G" "E H" "A I" "I B" "A J" "B L" "L K" "E P" "P F" "E Q" "Q F" "E R" "R F")
    for v in ${VARIANTS:-A B C D}; do case $v in N*) pairs+=("A $v") ;; esac; done
    for pair in "${pairs[@]}"; do
        set -- $pair
        [ -n "${IR[$1]:-}" ] && [ -n "${IR[$2]:-}" ] || continue
        python3 -c "import sys; a,b=map(int,sys.argv[3:]); print(f'{sys.argv[2]} vs {sys.argv[1]}: {b-a:+d} instructions/request ({(b/a-1)*100:+.2f}%)')" "$1" "$2" "${IR[$1]}" "${IR[$2]}"
    done
    exit 0
fi

declare -A RPS P99 CPU
VARIANTS=${VARIANTS:-A B C D}
for r in $(seq "$ROUNDS"); do
    # Alternate the order (A B C D, D C B A, ...) so order effects cancel.
    order=$VARIANTS
    [ $((r % 2)) -eq 0 ] && order=$(echo "$VARIANTS" | tr ' ' '\n' | tac | tr '\n' ' ')
    for v in $order; do
        read -r rps p99 cpu < <(run "$v")
        RPS[$v]+="$rps "; P99[$v]+="$p99 "; CPU[$v]+="$cpu "
        echo "round $r $v: $rps req/s, p99 $p99 ms, httpd CPU $cpu us/request" >&2
    done
done
median() { python3 -c "import sys,statistics; print(statistics.median(map(float, sys.argv[1:])))" $1; }
echo
if [ -n "${AB:-}" ]; then load="ab -k -c$CONNECTIONS -n$AB"; else load="wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"; fi
echo "$load, $ROUNDS interleaved rounds, medians ($(nproc) cores)"
printf '%-48s %12s %10s %14s\n' variant req/s p99_ms cpu_us/req
for v in $VARIANTS; do
    case $v in
        A) name="A mod_wsgi 4.9, no telemetry" ;;
        B) name="B mod_wsgi 4.9 + mod_wsgi_telemetry (ours)" ;;
        C) name="C mod_wsgi 6.1.1, no telemetry" ;;
        D) name="D mod_wsgi 6.1.1 + built-in reporter" ;;
        E) name="E 4.9 daemon mode, no telemetry" ;;
        F) name="F 4.9 daemon mode + ours (zero config)" ;;
        G) name="G 4.9 daemon mode + ours + WSGIImportScript" ;;
        H) name="H 4.9 daemon mode + no-op event subscriber" ;;
        I) name="I A + our module loaded, not configured" ;;
        P) name="P E + our module loaded, not configured" ;;
        Q) name="Q E + inert module of 560 KB" ;;
        R) name="R E + a no-op Python GC callback" ;;
        J) name="J A + mod_headers loaded, unused" ;;
        K) name="K L + 10 incr() per request" ;;
        L) name="L B + AppMetrics, app imports the package" ;;
        N*) name="$v A + inert module of ${v#N} KB" ;;
    esac
    printf '%-48s %12.1f %10.3f %14.1f\n' "$name" "$(median "${RPS[$v]}")" "$(median "${P99[$v]}")" "$(median "${CPU[$v]}")"
done
ratio() { # $1 $2 variant names: throughput and CPU of $2 relative to $1
    [ -n "${RPS[$1]:-}" ] && [ -n "${RPS[$2]:-}" ] || return 0
    python3 -c "import sys; a,b,ca,cb=map(float,sys.argv[3:]); print(f'{sys.argv[2]}/{sys.argv[1]} = {b/a*100:.1f}% of the throughput; httpd CPU {cb-ca:+.1f} us/request ({(cb/ca-1)*100:+.1f}%)')" \
        "$1" "$2" "$(median "${RPS[$1]}")" "$(median "${RPS[$2]}")" "$(median "${CPU[$1]}")" "$(median "${CPU[$2]}")"
}
paired() { # $1 $2: per-round ratios (each round runs both back to back), so
    # drift between rounds cancels; median and range over the rounds
    [ -n "${RPS[$1]:-}" ] && [ -n "${RPS[$2]:-}" ] || return 0
    python3 - "$1" "$2" "${RPS[$1]}" "${RPS[$2]}" "${CPU[$1]}" "${CPU[$2]}" <<'PY'
import statistics, sys
a, b = sys.argv[1:3]
ra, rb, ca, cb = ([float(x) for x in v.split()] for v in sys.argv[3:7])
t = [y / x * 100 for x, y in zip(ra, rb)]
c = [(y / x - 1) * 100 for x, y in zip(ca, cb)]
print(f"paired {b}/{a}: throughput median {statistics.median(t):.1f}% (rounds {min(t):.1f}..{max(t):.1f}%), "
      f"httpd CPU/request median {statistics.median(c):+.1f}% (rounds {min(c):+.1f}..{max(c):+.1f}%)")
PY
}
ratio E F
ratio E G
ratio E H
ratio H G
for pair in "A B" "C D" "E F" "E G" "E H" "B L" "L K" "E P" "P F" "E Q" "Q F" "E R" "R F"; do
    paired $pair
done
[ "$VARIANTS" = "A B C D" ] || exit 0
python3 - "$(median "${RPS[A]}")" "$(median "${RPS[B]}")" "$(median "${RPS[C]}")" "$(median "${RPS[D]}")" \
    "$(median "${CPU[A]}")" "$(median "${CPU[B]}")" "$(median "${CPU[C]}")" "$(median "${CPU[D]}")" <<'PY'
import sys
a, b, c, d, ca, cb, cc, cd = map(float, sys.argv[1:])
print(f"ours:     B/A = {b/a*100:.1f}% of the no-telemetry throughput; httpd CPU +{cb-ca:.1f} us/request ({(cb/ca-1)*100:+.1f}%)")
print(f"built-in: D/C = {d/c*100:.1f}% of the no-telemetry throughput; httpd CPU +{cd-cc:.1f} us/request ({(cd/cc-1)*100:+.1f}%)")
PY
