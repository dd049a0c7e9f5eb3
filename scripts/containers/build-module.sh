#!/usr/bin/env bash
# Builds the module (mod_wsgi_reporter) for one Debian release inside that
# release's builder image (scripts/containers/build-images.sh), so that
# bindgen reads the release's own httpd/APR headers and the .so links
# against the release's glibc. The host's Rust toolchain is mounted
# read-only (rustc and cargo need only glibc 2.17, which every target has);
# see docs/module.md, "Modules for other distributions".
#
# Usage: build-module.sh <release> [builder-image]
#   builder-image defaults to the one build-images.sh prints for <release>.
# Output: target/containers/<release>/release/libmod_wsgi_telemetry.so
# (its path is the last line on stdout). Each release has its own
# CARGO_TARGET_DIR, target/containers/<release>, so builds never mix
# headers or glibc versions and reruns are incremental.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rel="${1:?usage: build-module.sh <release> [builder-image]}"
builder="${2:-}"
log() { echo "build-module: $*" >&2; }

if [ -z "$builder" ]; then
    builder="$("$here/build-images.sh" "$rel" | awk -v r="$rel" '$1 == r { print $3 }')"
fi
[ -n "$builder" ] || { log "$rel: no builder image"; exit 1; }

rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
# The toolchain the host would use here (rust-toolchain file or default),
# called directly: no rustup proxy inside the container.
host_cargo="$(cd "$root" && rustup which cargo)"
case "$host_cargo" in
    "$rustup_home"/toolchains/*) ;;
    *) log "cargo ($host_cargo) is not under $rustup_home/toolchains"; exit 1 ;;
esac
toolchain_bin="/rustup/${host_cargo#"$rustup_home"/}"
toolchain_bin="${toolchain_bin%/cargo}"

target="$root/target/containers/$rel"
mkdir -p "$target" "$target/cargo-home"
start=$SECONDS
log "$rel: cargo build --release -p mod_wsgi_reporter in $builder"
# The sources and the crates already downloaded on the host are read-only;
# only this release's target dir is writable. CARGO_HOME is a writable
# directory of its own whose registry is the host's (read-only), so cargo
# can take its lock files without writing into the host's ~/.cargo.
nice -n 10 docker run --rm --init \
    --network none \
    -v "$root:/src:ro" \
    -v "$target:/target" \
    -v "$rustup_home:/rustup:ro" \
    -v "$target/cargo-home:/cargo-home" \
    -v "$cargo_home/registry:/cargo-home/registry:ro" \
    -e RUSTUP_HOME=/rustup \
    -e CARGO_HOME=/cargo-home \
    -e CARGO_TARGET_DIR=/target \
    -e PATH="$toolchain_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    -w /src \
    "$builder" \
    cargo build --release --offline --locked -p mod_wsgi_reporter >&2
so="$target/release/libmod_wsgi_telemetry.so"
[ -f "$so" ] || { log "$rel: $so missing after the build"; exit 1; }
glibc="$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
log "$rel: built in $((SECONDS - start)) s; newest glibc symbol version $glibc"
echo "$so"
