#!/usr/bin/env bash
# Builds the module (mod_wsgi_reporter) for one Debian release inside that
# release's builder image (scripts/containers/build-images.sh), so that
# bindgen reads the release's own httpd/APR headers and the .so links
# against the release's glibc. The host's Rust toolchain is mounted
# read-only (rustc and cargo need only glibc 2.17, which every target has);
# see docs/containers.md.
#
# Usage: build-module.sh <release> [builder-image]
#   builder-image defaults to the one build-images.sh prints for <release>.
# Output: target/containers/<release>/release/libmod_wsgi_telemetry.so
# (its path is the last line on stdout).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$here/lib.sh"
release_args build-module "$@"

start=$SECONDS
log "$rel: cargo build --release -p mod_wsgi_reporter in $builder"
run_in_builder "$rel" "$builder" \
    cargo build --release --offline --locked -p mod_wsgi_reporter >&2
so="$root/target/containers/$rel/release/libmod_wsgi_telemetry.so"
[ -f "$so" ] || { log "$rel: $so missing after the build"; exit 1; }
glibc="$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
log "$rel: built in $((SECONDS - start)) s; newest glibc symbol version $glibc"
echo "$so"
