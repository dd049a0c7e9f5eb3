#!/usr/bin/env bash
# Builds the container images the integration tests run httpd in, without a
# registry: a Debian root filesystem made by `debootstrap --variant=minbase`,
# imported with `docker import` as mwt-base:<release>-<hash>, then
# containers/Dockerfile (one for every release: --build-arg RELEASE, BASE)
# built on it twice:
#
#   mwt-httpd:<release>-<hash>    apache2 + libapache2-mod-wsgi-py3 + python3
#   mwt-builder:<release>-<hash>  the above + apache2-dev, libclang-dev, gcc,
#                                 pkg-config (compiles the module and builds the
#                                 packages against this release's httpd/APR
#                                 headers and glibc)
#
# and, for the mod_wsgi releases from PyPI the test matrix runs on this
# release (pypi_versions below), containers/pypi.Dockerfile on the builder:
#
#   mwt-httpd:<release>-mod_wsgi-<version>-<hash>   the builder + that mod_wsgi
#                                 from PyPI as Apache's `wsgi` module
#
# <hash> covers every input (the build function's text, the release, the
# mirror, the base image, the Dockerfile), so an image is reused while its
# inputs are unchanged and rebuilt when one changes.
# Existing images are never removed; old tags are left for `docker image rm`.
#
# Usage: build-images.sh [--httpd-only] [release...]
#   (default: bookworm bullseye trixie; bookworm first, since the integration
#   tests' httpd runs in its image). --httpd-only builds a release's base and
#   httpd images only (what tests/src/backend.rs needs) and skips the builder
#   and PyPI images; the line it prints names the builder all the same.
# Prints lines on stdout, for scripts and tests to read: one per release
#   <release> mwt-httpd:<release>-<hash> mwt-builder:<release>-<hash> <base>
# then one per PyPI mod_wsgi on that release
#   <release>/mod_wsgi-<version> mwt-httpd:<release>-mod_wsgi-<version>-<hash>
# <base> is the bare release (mwt-base:<release>-<hash>, or debian:<release>
# with MWT_BASE=registry): the container tests install the ingester's
# package into it.
# Progress and timings go to stderr.
#
# Environment:
#   MWT_MIRROR=<url>      Debian mirror (default http://deb.debian.org/debian)
#   MWT_BASE=registry     build FROM debian:<release> (pulled from a registry)
#                         instead of the debootstrapped base
#   MWT_IMAGE_PREFIX=<p>  name the images <p>-base, <p>-httpd, <p>-builder
#                         (default mwt): a build from nothing beside the
#                         images others use, removable by that name
# Needs root (debootstrap), debootstrap and a Docker engine.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mirror="${MWT_MIRROR:-http://deb.debian.org/debian}"
dockerfile="$root/containers/Dockerfile"
pypi_dockerfile="$root/containers/pypi.Dockerfile"
prefix="${MWT_IMAGE_PREFIX:-mwt}"
httpd_only=""
if [ "${1:-}" = --httpd-only ]; then
    httpd_only=1
    shift
fi
releases=("$@")
all_releases=""
if [ ${#releases[@]} -eq 0 ]; then
    releases=(bookworm bullseye trixie)
    all_releases=1
fi

log() { echo "build-images: $*" >&2; }
die() { log "$*"; exit 1; }
short_hash() { sha256sum | cut -c1-12; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed)"

# The debootstrap directory being filled, if any: only it is ours to delete.
rootfs=""
trap '[ -n "$rootfs" ] && rm -rf --one-file-system "$rootfs"' EXIT
# Stopped (scripts/test.sh stops it when the suite ends early): the EXIT
# trap still runs, once the step under way returns.
trap 'exit 143' TERM INT

# Nice the heavy steps: the build machine is shared.
nice_cmd=(nice -n 10)

build_base() { # release tag
    local rel="$1" tag="$2" dir start
    command -v debootstrap >/dev/null || die "debootstrap not found (scripts/install-deps.sh installs it)"
    [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
    dir="$(mktemp -d "/var/tmp/mwt-rootfs-$rel.XXXXXX")"
    rootfs="$dir"
    start=$SECONDS
    log "$rel: debootstrap --variant=minbase into $dir"
    "${nice_cmd[@]}" debootstrap --variant=minbase "$rel" "$dir" "$mirror" >&2 \
        || die "$rel: debootstrap failed (see $dir/debootstrap/debootstrap.log)"
    # What the official debian images drop too: package caches, apt lists.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/debootstrap
    log "$rel: debootstrap took $((SECONDS - start)) s; importing as $tag"
    tar --numeric-owner -C "$dir" -c . | "${nice_cmd[@]}" docker import \
        --change 'CMD ["/bin/bash"]' \
        --change "LABEL org.mod-wsgi-telemetry.role=base org.mod-wsgi-telemetry.release=$rel org.mod-wsgi-telemetry.mirror=$mirror" \
        --message "debootstrap --variant=minbase $rel $mirror" \
        - "$tag" >/dev/null
    rm -rf --one-file-system "$dir"
    rootfs=""
    log "$rel: base image built in $((SECONDS - start)) s"
}

build_target() { # release base stage tag hash
    local rel="$1" base="$2" stage="$3" tag="$4" hash="$5" start=$SECONDS
    log "$rel: docker build --target $stage -> $tag"
    DOCKER_BUILDKIT=0 "${nice_cmd[@]}" docker build -q \
        --build-arg "RELEASE=$rel" \
        --build-arg "BASE=$base" \
        --target "$stage" \
        --label "org.mod-wsgi-telemetry.role=$stage" \
        --label "org.mod-wsgi-telemetry.release=$rel" \
        --label "org.mod-wsgi-telemetry.inputs=$hash" \
        -t "$tag" "$root/containers" >/dev/null
    log "$rel: $stage image built in $((SECONDS - start)) s"
}

# The mod_wsgi releases from PyPI the test matrix runs on each Debian
# release, each on the release whose Python it builds with: 4.6.8 (older
# than every Debian mod_wsgi, Python 3.9), 5.0.0 (the first 5.0, Python
# 3.11) and 6.1.1 (has its own reporter: our module must refuse it).
pypi_versions() {
    case "$1" in
        bullseye) echo 4.6.8 ;;
        bookworm) echo 5.0.0 6.1.1 ;;
    esac
}

build_pypi() { # release builder version tag hash
    local rel="$1" builder="$2" version="$3" tag="$4" hash="$5" start=$SECONDS ctx
    log "$rel: mod_wsgi $version from PyPI on $builder -> $tag"
    # pip trusts this machine's CA bundle for the download (behind a
    # TLS-inspecting proxy, the proxy's CA is there), the image keeps
    # Debian's own.
    ctx="$(mktemp -d)"
    cp "$pypi_dockerfile" "$ctx/Dockerfile"
    cp /etc/ssl/certs/ca-certificates.crt "$ctx/build-host-ca.crt" 2>/dev/null \
        || : >"$ctx/build-host-ca.crt"
    DOCKER_BUILDKIT=0 "${nice_cmd[@]}" docker build -q \
        --build-arg "BUILDER=$builder" \
        --build-arg "MOD_WSGI=$version" \
        --label "org.mod-wsgi-telemetry.role=httpd-pypi" \
        --label "org.mod-wsgi-telemetry.release=$rel" \
        --label "org.mod-wsgi-telemetry.inputs=$hash" \
        -t "$tag" "$ctx" >/dev/null || { rm -rf "$ctx"; die "$rel: mod_wsgi $version image failed"; }
    rm -rf "$ctx"
    log "$rel: mod_wsgi $version image built in $((SECONDS - start)) s"
}

case "$prefix" in
    *[!a-z0-9._-]* | "" | [!a-z0-9]*) die "MWT_IMAGE_PREFIX '$prefix' is not a repository name (lower case, digits, . _ -)" ;;
esac

# The tags of a release's images (its recipe's hashes), built or not:
# sets base, httpd, builder and pypi_tags ("<version> <tag>" lines).
names() { # release
    local rel="$1" version pypi_hash
    if [ "${MWT_BASE:-}" = registry ]; then
        base="debian:$rel"
    else
        # The recipe is the function's text (bash normalises it, so comments
        # and edits elsewhere in this script do not rebuild anything).
        base="$prefix-base:$rel-$( { declare -f build_base; echo "$rel $mirror"; } | short_hash)"
    fi
    local hash
    hash="$( { echo "$rel $base"; declare -f build_target; cat "$dockerfile"; } | short_hash)"
    httpd="$prefix-httpd:$rel-$hash"
    builder="$prefix-builder:$rel-$hash"
    pypi_tags=""
    [ -n "$httpd_only" ] && return
    for version in $(pypi_versions "$rel"); do
        pypi_hash="$( { echo "$rel $builder $version"; declare -f build_pypi; cat "$pypi_dockerfile"; } | short_hash)"
        pypi_tags+="$version $prefix-httpd:$rel-mod_wsgi-$version-$pypi_hash"$'\n'
    done
}

# The images of the request that are missing (none: all there).
missing() {
    local tag
    for tag in "$base" "$httpd" $([ -n "$httpd_only" ] || echo "$builder") \
        $(printf '%s' "$pypi_tags" | cut -d' ' -f2); do
        have_image "$tag" || echo "$tag"
    done
}

# Builds what `rel` misses (only its base and httpd images with
# httpd_only) and prints its lines.
build_release() { # release
    local rel="$1" lock total hash
    case "$rel" in
        *[!a-z]* | "") die "'$rel' is not a Debian code name (e.g. bookworm)" ;;
    esac
    names "$rel"
    if [ -n "$(missing)" ]; then
        # Two tests (or a test and a person) building the same release at
        # once would debootstrap twice and race on the tags; once every
        # image is there, nobody waits for the lock.
        exec {lock}>"/tmp/$prefix-build-images-$rel.lock"
        flock "$lock"
        total=$SECONDS
        if [ "${MWT_BASE:-}" != registry ]; then
            if have_image "$base"; then
                log "$rel: $base exists, reused"
            else
                build_base "$rel" "$base"
            fi
        fi
        hash="${httpd##*-}"
        for pair in "httpd $httpd" "builder $builder"; do
            set -- $pair
            [ -n "$httpd_only" ] && [ "$1" = builder ] && continue
            if have_image "$2"; then
                log "$rel: $2 exists, reused"
            else
                build_target "$rel" "$base" "$1" "$2" "$hash"
            fi
        done
        while read -r version pypi; do
            [ -n "$version" ] || continue
            if have_image "$pypi"; then
                log "$rel: $pypi exists, reused"
            else
                build_pypi "$rel" "$builder" "$version" "$pypi" "${pypi##*-}"
            fi
        done <<<"$pypi_tags"
        log "$rel: ready in $((SECONDS - total)) s"
        flock -u "$lock"
        exec {lock}>&-
    else
        log "$rel: every image exists, reused"
    fi
    echo "$rel $httpd $builder $base"
    while read -r version pypi; do
        if [ -n "$version" ]; then echo "$rel/mod_wsgi-$version $pypi"; fi
    done <<<"$pypi_tags"
}

# Asked for every release: bookworm's httpd image comes first, since every
# integration test's httpd runs in it (tests/src/backend.rs) and waits for
# it while the builders, the PyPI builds and the other releases follow.
if [ -z "$httpd_only" ] && [ -n "$all_releases" ]; then
    httpd_only=1
    build_release bookworm >/dev/null
    httpd_only=""
fi
for rel in "${releases[@]}"; do
    build_release "$rel"
done
