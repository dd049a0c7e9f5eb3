#!/usr/bin/env bash
# Installs the system packages the project builds and tests against
# (Debian 12). Idempotent: packages already installed are skipped, and
# `apt-get update` runs at most once per invocation, only if something is
# missing. Other parts of the project append their packages to PACKAGES.
#
#   apache2 apache2-dev            httpd 2.4 + apxs/headers (module build, tests)
#   apache2-utils                  ab (benchmarks)
#   libapache2-mod-wsgi-py3        Debian's mod_wsgi 4.9 (embedded mode under test)
#   libclang-dev                   bindgen for apache-headers
#   wrk                            load generator (benchmarks)
#   python3-venv python3-dev       throwaway venvs: reference ingester,
#                                  mod_wsgi 6.1.1 built with apxs (comparison)
#   chromium chromium-driver       browser UI end-to-end tests
#   tmux                           `top` end-to-end tests in a real terminal
#   gdb                            backtrace of an httpd child's core file
#                                  when an integration test sees a crash
#   debootstrap                    root filesystems of the container images
#                                  (scripts/containers/build-images.sh)
#   time                           /usr/bin/time: peak RSS of `top --once`
#                                  (ingester/tests/top_memory.rs)
#   prometheus                     a real Prometheus (and promtool) scraping
#                                  `/metrics` in the tests; the tests start
#                                  /usr/bin/prometheus themselves, the
#                                  Debian service is not needed
set -euo pipefail
PACKAGES=(
    apache2 apache2-dev apache2-utils libapache2-mod-wsgi-py3 libclang-dev wrk
    python3-venv python3-dev
    chromium chromium-driver tmux gdb debootstrap time prometheus
)
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# Debian enables mpm_event and mod_wsgi system-wide; the tests use their own
# ServerRoot and never touch the system instance.
echo "install-deps: all packages present (${PACKAGES[*]})"
