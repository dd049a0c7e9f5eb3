#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (Apache httpd, Debian's mod_wsgi, apache2-dev, libclang, Chromium and its
# driver, wrk, tmux, Prometheus and promtool, debootstrap, the reference
# ingester in a throwaway virtualenv), then every test of every crate.
# Exits non-zero if anything fails.
#
# The container matrix (tests/tests/containers.rs: each Debian release's
# own httpd and mod_wsgi, our .deb packages) is part of it wherever a
# Docker engine answers; MWT_CONTAINERS=0 leaves it out. Its images are
# built from Debian's archive (scripts/containers/build-images.sh, mostly
# downloads), so they start building in the background here, while the
# host's cargo build runs; the container tests wait for them (the script's
# per-release lock) and build the packages. The images' log:
# target/containers/images.log.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

images_pid=""
if [ "${MWT_CONTAINERS:-}" = 0 ]; then
    echo "test.sh: MWT_CONTAINERS=0: the container matrix is skipped (one SKIPPED line per test)"
elif ! docker info >/dev/null 2>&1; then
    echo "test.sh: no Docker engine answers (docker info failed): the container matrix is SKIPPED (one line per test)"
else
    mkdir -p target/containers
    scripts/containers/build-images.sh >target/containers/images.log 2>&1 &
    images_pid=$!
    echo "test.sh: building the container images in the background (pid $images_pid, log target/containers/images.log)"
fi
# On an early exit, the image build is stopped (it removes its own
# half-made root filesystem); otherwise it has ended before the tests do.
trap '[ -z "$images_pid" ] || kill "$images_pid" 2>/dev/null || true' EXIT

REF_VENV=$(bash scripts/ref-venv.sh)
export REF_VENV
cargo build --workspace --all-targets
status=0
cargo test --workspace --no-fail-fast || status=$?
if [ -n "$images_pid" ]; then
    if wait "$images_pid"; then
        # Built now ("ready in") or found ("every image exists"); a
        # summary only, never a failure.
        grep -h -E 'ready in|every image exists' target/containers/images.log \
            | sed 's/^/test.sh: /' || true
    else
        echo "test.sh: the background image build failed; its log:"
        tail -n 40 target/containers/images.log
        status=1
    fi
    images_pid=""
fi
exit "$status"
