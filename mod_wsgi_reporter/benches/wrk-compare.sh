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
# Rounds are interleaved, in alternating order (A B C D, D C B A, ...), so
# drift and order effects hit all alike; medians are reported with the
# ratios B/A, D/C, F/E and G/E, and httpd's CPU time per request (less sensitive to
# other load on the machine than req/s). VARIANTS="A B" runs a subset.
#
#   VARIANTS="A B C D" ROUNDS=3 DURATION=10 CONNECTIONS=32 THREADS=2 bash mod_wsgi_reporter/benches/wrk-compare.sh
# PERF=1: during each measured run of B, F and G, also sample every httpd
# process with `perf record --call-graph dwarf` and print the module's
# share of httpd's CPU samples (benches/perf-share.py): a figure that, unlike
# req/s, hardly moves with other load on a shared machine.
# Needs: scripts/install-deps.sh (apache2, mod_wsgi 4.9, wrk, python3-dev).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --quiet --release -p mod_wsgi_reporter
OURS=$CARGO_TARGET_DIR/release/libmod_wsgi_telemetry.so
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
cat > "$WORK/noop_subscriber.py" <<'PY'
import mod_wsgi
def _noop(name, **kwargs):
    pass
mod_wsgi.subscribe_events(_noop)
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
cleanup() {
    [ -n "$HTTPD" ] && kill "$HTTPD" 2>/dev/null && wait "$HTTPD" 2>/dev/null || true
    kill "$RECV" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
conf() { # $1 variant
    local wsgi=/usr/lib/apache2/modules/mod_wsgi.so extra="" mount="WSGIScriptAlias / $WORK/hello.wsgi"
    local daemon="WSGIDaemonProcess bench processes=2 threads=8
WSGIScriptAlias / $WORK/hello.wsgi process-group=bench application-group=%{GLOBAL}"
    case $1 in
        E) mount=$daemon ;;
        H) mount=$daemon; extra="WSGIImportScript $WORK/noop_subscriber.py process-group=bench application-group=%{GLOBAL}" ;;
        F) mount=$daemon; extra="LoadModule wsgi_telemetry_module $OURS
WSGITelemetryService unix:$WORK/run/t.sock interval=1" ;;
        G) mount=$daemon; extra="LoadModule wsgi_telemetry_module $OURS
WSGITelemetryService unix:$WORK/run/t.sock interval=1
WSGIImportScript $ATTACH process-group=bench application-group=%{GLOBAL}" ;;
        B) extra="LoadModule wsgi_telemetry_module $OURS
WSGITelemetryService unix:$WORK/run/t.sock interval=1" ;;
        C) wsgi=$MW6; extra="WSGIPythonHome $MW6_VENV" ;;
        D) wsgi=$MW6; extra="WSGIPythonHome $MW6_VENV
WSGITelemetryService unix:$WORK/run/t.sock interval=1" ;;
    esac
    local user=""
    [ "$(id -u)" = 0 ] && user=$'User www-data\nGroup www-data'
    cat > "$WORK/httpd-$1.conf" <<CONF
ServerRoot $WORK
Listen 127.0.0.1:$PORT
ServerName 127.0.0.1
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
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
    setsid /usr/sbin/apache2 -f "$WORK/httpd-$1.conf" -DFOREGROUND &
    HTTPD=$!
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break; sleep 0.1; done
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "http://127.0.0.1:$PORT/" >/dev/null   # warm-up
    local out c0 c1 perf=""
    if [ "${PERF:-0}" = 1 ] && [[ "$1" =~ ^[BFG]$ ]]; then
        perf record -q -F 1000 --call-graph dwarf,16384 -o "$WORK/perf.data" \
            -p "$(ps -s "$HTTPD" -o pid= | tr -s ' \n' ',' | sed 's/^,//; s/,$//')" \
            -- sleep "$((DURATION - 1))" >/dev/null 2>&1 &
        perf=$!
    fi
    c0=$(cpu_ticks)
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/")
    c1=$(cpu_ticks)
    if [ -n "$perf" ]; then
        wait "$perf" || true
        perf script -i "$WORK/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null > "$WORK/perf.txt" || true
        echo "  $1 perf: $(python3 mod_wsgi_reporter/benches/perf-share.py "$WORK/perf.txt")" >&2
        rm -f "$WORK/perf.data" "$WORK/perf.txt"
    fi
    kill "$HTTPD"; wait "$HTTPD" 2>/dev/null || true; HTTPD=""
    local rps p99 n cpu
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    # httpd CPU per request: less sensitive to other load than req/s.
    cpu=$(python3 -c "import os,sys; print((int(sys.argv[2])-int(sys.argv[1]))*1e6/os.sysconf('SC_CLK_TCK')/int(sys.argv[3]))" "$c0" "$c1" "$n")
    echo "$rps $p99 $cpu"
}
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
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS interleaved rounds, medians ($(nproc) cores)"
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
for pair in "A B" "C D" "E F" "E G" "E H"; do
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
