#!/usr/bin/env bash
# What one request's accounting (claim + finish, daemon mode: seven phases,
# one write) touches, counted by callgrind: instructions, and simulated L1
# data misses with the cache evicted before each request, i.e. the cache
# lines the request path reads and writes in the accumulators. Deterministic
# (no dependence on load). Needs valgrind.
#
#   bash reporter-core/benches/footprint.sh            # this tree
#   CARGO_TARGET_DIR=... bash reporter-core/benches/footprint.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-2000}
BIN=$(cargo bench --quiet -p reporter-core --bench accounting --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "accounting" and m.get("executable"):
        print(m["executable"])')
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
run() { # $1 requests -> "Ir D1mr D1mw"
    FOOTPRINT=$1 valgrind --tool=callgrind --cache-sim=yes --toggle-collect='*footprint_request*' \
        --callgrind-out-file="$OUT/cg.$1" "$BIN" >/dev/null 2>&1
    awk '/^events:/ {for (i = 2; i <= NF; i++) col[$i] = i}
         /^summary:/ {print $col["Ir"], $col["D1mr"], $col["D1mw"]}' "$OUT/cg.$1"
}
read -r i1 r1 w1 < <(run 100)
read -r i2 r2 w2 < <(run "$N")
python3 - "$((N - 100))" "$i1" "$r1" "$w1" "$i2" "$r2" "$w2" <<'PY'
import sys
n = int(sys.argv[1])
i1, r1, w1, i2, r2, w2 = map(int, sys.argv[2:])
print(f"accounting per request (claim + finish, cold L1): {(i2 - i1) / n:.1f} instructions, "
      f"{(r2 - r1) / n:.2f} L1 data read misses + {(w2 - w1) / n:.2f} write misses "
      f"= {((r2 - r1) + (w2 - w1)) / n:.2f} lines")
PY
