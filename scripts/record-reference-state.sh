#!/usr/bin/env bash
# Records, once, what the reference ingester (mod_wsgi-telemetry 1.1.0 from
# PyPI) holds after the real mod_wsgi 6.1.1 capture is replayed into it, as
# the fixture ingester/tests/fixtures/reference-state-anchor-6.1.1.json that
# ingester/tests/reference_compat.rs compares our `serve` against, and what
# the reference `top --once` prints when connected to it
# (reference-top-once-anchor-6.1.1.txt; its numbers come from the capture's
# stamps only, and the capture is old enough that "slow ... 1m" stays 0).
#
# The replay drops field 8 (interpreter_name) because the reference cannot
# serialise it (its /api/state answers 500 once it has seen one); our serve
# takes the capture unmodified. The replay is as fast as the reference takes
# it (blocking sends, no loss) and /api/state is read right after, so no
# TTL or stale-process expiry (which runs on the reference's arrival clock)
# has a chance to fire.
#
# Only what the comparison needs is kept: per process its identity, sample
# count, first/last sample seq, last_seq, drops and GC counts (no sample
# bodies); every slow-request entry; every lifecycle event; the counters.
#
#   REF_VENV            reference venv (default /tmp/refvenv; made by ref-venv.sh)
#   TELEMETRY_BIN       our binary (default: built with cargo)
#   TELEMETRY_CORPUS_DIR  corpus folder (default tests/fixtures/corpus)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=$(bash "$ROOT/scripts/ref-venv.sh")
CORPUS_DIR=${TELEMETRY_CORPUS_DIR:-$ROOT/tests/fixtures/corpus}
CAPTURE=$CORPUS_DIR/anchor-6.1.1-mixed.bin
OUT=$ROOT/ingester/tests/fixtures/reference-state-anchor-6.1.1.json
TOP_OUT=$ROOT/ingester/tests/fixtures/reference-top-once-anchor-6.1.1.txt
if [ -z "${TELEMETRY_BIN:-}" ]; then
    cargo build -q --manifest-path "$ROOT/Cargo.toml" -p mod_wsgi-telemetry
    TELEMETRY_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/mod_wsgi-telemetry
fi

tmp=$(mktemp -d)
ref_pid=
cleanup() {
    if [ -n "$ref_pid" ]; then kill "$ref_pid" 2>/dev/null || true; wait "$ref_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/mod_wsgi-telemetry" serve --listen "unix:$tmp/ref.sock" --http-port "$port" \
    --socket-mode 0666 --log-level WARNING > "$tmp/ref.log" 2>&1 &
ref_pid=$!
for _ in $(seq 100); do
    [ -S "$tmp/ref.sock" ] && curl -sf "http://127.0.0.1:$port/api/state" > /dev/null && break
    sleep 0.1
done
[ -S "$tmp/ref.sock" ] || { cat "$tmp/ref.log" >&2; echo "reference did not start" >&2; exit 1; }

"$TELEMETRY_BIN" replay "$CAPTURE" --socket "unix:$tmp/ref.sock" --drop-field 8 >&2
expected=$(python3 -c 'import sys,struct
b=open(sys.argv[1],"rb").read(); o=n=0
while o<len(b): o+=4+struct.unpack_from("<I",b,o)[0]; n+=1
print(n)' "$CAPTURE")
# The last datagrams may still sit in the socket queue: wait for them.
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/api/state" > "$tmp/state.json"
    got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_received"])' "$tmp/state.json")
    [ "$got" = "$expected" ] && break
    sleep 0.1
done
[ "$got" = "$expected" ] || { echo "reference received $got of $expected datagrams" >&2; exit 1; }

"$VENV/bin/mod_wsgi-telemetry" top --once --url "ws://127.0.0.1:$port/ws" > "$TOP_OUT"
echo "wrote $TOP_OUT" >&2

python3 - "$tmp/state.json" "$OUT" <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
procs = []
for p in state["processes"]:
    samples = p["samples"]
    procs.append({
        **{k: p[k] for k in ("pid", "hostname", "process_group", "mod_wsgi_version",
                             "python_version", "apache_version", "mpm_name",
                             "process_parent_pid", "last_seq", "drops")},
        "samples": len(samples),
        "first_sample_seq": samples[0]["seq"] if samples else None,
        "last_sample_seq": samples[-1]["seq"] if samples else None,
        "sample_kinds": sorted({s["kind"] for s in samples}),
        "gc_snapshots": sum(len(r) for r in p["gc_snapshots"].values()),
        "gc_events": len(p["gc_events"]),
    })
fixture = {
    "about": "mod_wsgi-telemetry 1.1.0 /api/state after replaying anchor-6.1.1-mixed.bin "
             "with field 8 dropped; made by scripts/record-reference-state.sh",
    "total_received": state["total_received"],
    "decode_errors": state["decode_errors"],
    "processes": procs,
    "slow_requests": state["slow_requests"],
    "lifecycle_events": state["lifecycle_events"],
}
# One line per process / entry / event: small, and diffs stay readable.
with open(sys.argv[2], "w") as f:
    f.write("{\n")
    items = list(fixture.items())
    for i, (k, v) in enumerate(items):
        if isinstance(v, list):
            rows = ",\n".join("  " + json.dumps(x, separators=(",", ":")) for x in v)
            f.write(f" {json.dumps(k)}: [\n{rows}\n ]")
        else:
            f.write(f" {json.dumps(k)}: {json.dumps(v)}")
        f.write(",\n" if i + 1 < len(items) else "\n")
    f.write("}\n")
json.load(open(sys.argv[2]))  # still valid JSON
print(f"wrote {sys.argv[2]}: {len(procs)} processes, {len(state['slow_requests'])} slow entries, "
      f"{len(state['lifecycle_events'])} lifecycle events", file=sys.stderr)
PY
