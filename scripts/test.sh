#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (Apache httpd, Debian's mod_wsgi, apache2-dev, libclang, Chromium and its
# driver, wrk, tmux, Prometheus and promtool, the reference ingester in a
# throwaway virtualenv), then
# every test of every crate. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
REF_VENV=$(bash scripts/ref-venv.sh)
export REF_VENV
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
