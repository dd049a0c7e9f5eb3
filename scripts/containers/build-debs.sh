#!/usr/bin/env bash
# Builds the .deb packages (packaging/deb/build.sh) for one Debian release
# inside that release's builder image: the module and the ingester are
# compiled there (the release's httpd/APR headers, its glibc) and packaged
# with the release's dpkg-deb, so each package depends on what its release
# has (libc6 (>= ...), apache2-api-<MMN>).
#
# Usage: build-debs.sh <release> [builder-image]
#   builder-image defaults to the one build-images.sh prints for <release>.
# Output: target/containers/<release>/debian/*.deb; stdout lists their
# paths on the host, the ingester's first.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$here/lib.sh"
release_args build-debs "$@"

start=$SECONDS
log "$rel: cargo build --release -p mod_wsgi_reporter -p mod_wsgi-telemetry in $builder"
# Old packages would be listed with the new ones.
rm -rf "$root/target/containers/$rel/debian"
debs="$(run_in_builder "$rel" "$builder" sh -c '
    cargo build --release --offline --locked -p mod_wsgi_reporter -p mod_wsgi-telemetry >&2 &&
    packaging/deb/build.sh /target/release /target/debian')"
log "$rel: built and packaged in $((SECONDS - start)) s"
# Container paths -> host paths.
echo "$debs" | sed "s|^/target/|$root/target/containers/$rel/|"
