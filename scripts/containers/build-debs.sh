#!/usr/bin/env bash
# Builds the .deb packages (packaging/deb/build.sh) for one Debian release:
#
#   libapache2-mod-wsgi-telemetry  compiled and packaged in <release>'s
#       builder image: bindgen reads that release's httpd/APR headers, the
#       .so links against its glibc, and the package depends on its
#       apache2-api-<MMN>;
#   mod-wsgi-telemetry             the ingester, compiled and packaged once
#       in the oldest release's builder (bullseye, glibc 2.31) and installed
#       unchanged on every release: it uses nothing of httpd, and a binary
#       linked against an older glibc runs on the newer ones (its Depends,
#       libc6 (>= 2.x) and passwd, hold on each).
#
# Usage: build-debs.sh <release> [builder-image]
#   builder-image defaults to the one build-images.sh prints for <release>
#   (bullseye's builder, for the ingester, is always build-images.sh's).
# Output: target/containers/<release>/debian/*.deb (the ingester's package
# is copied there from target/containers/bullseye/ingester/); stdout lists
# their paths on the host, the ingester's first.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$here/lib.sh"
release_args build-debs "$@"

# The release whose builder compiles the ingester for every release.
ingester_rel=bullseye
containers="$root/target/containers"

# lock <file>: holds an exclusive lock on <file> until this script exits.
# One per release (its debian/ directory) for the whole run, then one for
# the ingester's package: always in that order, so two runs never wait on
# each other in a circle. Cargo locks each target directory by itself.
lock() {
    local fd
    mkdir -p "$(dirname "$1")"
    exec {fd}>"$1"
    flock "$fd"
}

# build_package <release> <builder> <ingester|module> <out dir> <cargo package>
# Compiles and packages in <release>'s builder into
# target/containers/<release>/<out dir>; prints the package's host path.
build_package() {
    local brel="$1" bimage="$2" which="$3" out="$4" crate="$5" start=$SECONDS
    log "$brel: cargo build --release -p $crate in $bimage"
    # Old packages would be listed with the new ones.
    rm -rf "$containers/$brel/$out"
    run_in_builder "$brel" "$bimage" sh -c "
        cargo build --release --offline --locked -p $crate >&2 &&
        packaging/deb/build.sh /target/release /target/$out $which" \
        | sed "s|^/target/|$containers/$brel/|"
    log "$brel: $which built and packaged in $((SECONDS - start)) s"
}

if [ "$rel" = "$ingester_rel" ]; then
    ingester_builder="$builder"
else
    ingester_builder="$(builder_image "$ingester_rel")"
fi
lock "$containers/$rel.lock"
module="$(build_package "$rel" "$builder" module debian mod_wsgi_reporter)"
[ -f "$module" ] || { log "$rel: no module package ($module)"; exit 1; }
lock "$containers/ingester.lock"
ingester="$(build_package "$ingester_rel" "$ingester_builder" ingester ingester mod_wsgi-telemetry)"
[ -f "$ingester" ] || { log "$ingester_rel: no ingester package ($ingester)"; exit 1; }
cp "$ingester" "$(dirname "$module")/"
echo "$(dirname "$module")/$(basename "$ingester")"
echo "$module"
