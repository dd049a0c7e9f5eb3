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
# <hash> covers every input (the build function's text, the release, the
# mirror, the base image, the Dockerfile), so an image is reused while its
# inputs are unchanged and rebuilt when one changes.
# Existing images are never removed; old tags are left for `docker image rm`.
#
# Usage: build-images.sh [release...]      (default: bullseye bookworm trixie)
# Prints one line per release on stdout, for scripts and tests to read:
#   <release> mwt-httpd:<release>-<hash> mwt-builder:<release>-<hash> <base>
# <base> is the bare release (mwt-base:<release>-<hash>, or debian:<release>
# with MWT_BASE=registry): the container tests install the ingester's
# package into it.
# Progress and timings go to stderr.
#
# Environment:
#   MWT_MIRROR=<url>      Debian mirror (default http://deb.debian.org/debian)
#   MWT_BASE=registry     build FROM debian:<release> (pulled from a registry)
#                         instead of the debootstrapped base
# Needs root (debootstrap), debootstrap and a Docker engine.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mirror="${MWT_MIRROR:-http://deb.debian.org/debian}"
dockerfile="$root/containers/Dockerfile"
releases=("$@")
[ ${#releases[@]} -eq 0 ] && releases=(bullseye bookworm trixie)

log() { echo "build-images: $*" >&2; }
die() { log "$*"; exit 1; }
short_hash() { sha256sum | cut -c1-12; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed)"

# The debootstrap directory being filled, if any: only it is ours to delete.
rootfs=""
trap '[ -n "$rootfs" ] && rm -rf --one-file-system "$rootfs"' EXIT

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

for rel in "${releases[@]}"; do
    case "$rel" in
        *[!a-z]* | "") die "'$rel' is not a Debian code name (e.g. bookworm)" ;;
    esac
    # Two tests (or a test and a person) building the same release at once
    # would debootstrap twice and race on the tags.
    exec {lock}>"/tmp/mwt-build-images-$rel.lock"
    flock "$lock"
    total=$SECONDS

    if [ "${MWT_BASE:-}" = registry ]; then
        base="debian:$rel"
        base_hash="registry"
    else
        # The recipe is the function's text (bash normalises it, so comments
        # and edits elsewhere in this script do not rebuild anything).
        base_hash="$( { declare -f build_base; echo "$rel $mirror"; } | short_hash)"
        base="mwt-base:$rel-$base_hash"
        if have_image "$base"; then
            log "$rel: $base exists, reused"
        else
            build_base "$rel" "$base"
        fi
    fi

    hash="$( { echo "$rel $base"; declare -f build_target; cat "$dockerfile"; } | short_hash)"
    httpd="mwt-httpd:$rel-$hash"
    builder="mwt-builder:$rel-$hash"
    for pair in "httpd $httpd" "builder $builder"; do
        set -- $pair
        if have_image "$2"; then
            log "$rel: $2 exists, reused"
        else
            build_target "$rel" "$base" "$1" "$2" "$hash"
        fi
    done
    log "$rel: ready in $((SECONDS - total)) s"
    flock -u "$lock"
    exec {lock}>&-
    echo "$rel $httpd $builder $base"
done
