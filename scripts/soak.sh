#!/usr/bin/env bash
# Soak run (not part of the test suite): a real httpd + Debian mod_wsgi with
# our module and our ingester, under load at half capacity for SOAK_MINUTES
# (default 30) with graceful restarts, a stopped and a killed ingester and
# malformed datagrams; prints what held and exits non-zero if an invariant
# failed. What it checks and why: docs/benchmarks.md, "Soak".
#
#   scripts/soak.sh                    # build release binaries, 30 minutes
#   SOAK_MINUTES=3 scripts/soak.sh     # a short check
#   SOAK_SO=... SOAK_BIN=... scripts/soak.sh   # use these binaries instead
#   SOAK_KEEP=1                        # keep the ServerRoot (logs) afterwards
#
# Needs: apache2 + Debian's mod_wsgi (libapache2-mod-wsgi-py3), wrk, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk python3 /usr/sbin/apache2; do
    command -v "$tool" >/dev/null || { echo "soak: $tool is required" >&2; exit 2; }
done
target=${CARGO_TARGET_DIR:-target}
if [[ -z "${SOAK_SO:-}" || -z "${SOAK_BIN:-}" ]]; then
    cargo build --release --quiet -p mod_wsgi_reporter
    cargo build --release --quiet -p mod_wsgi-telemetry --bin mod_wsgi-telemetry
fi
export SOAK_SO=${SOAK_SO:-$target/release/libmod_wsgi_telemetry.so}
export SOAK_BIN=${SOAK_BIN:-$target/release/mod_wsgi-telemetry}
SOAK_SO=$(realpath "$SOAK_SO")
SOAK_BIN=$(realpath "$SOAK_BIN")
echo "soak: commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
exec python3 scripts/soak.py
