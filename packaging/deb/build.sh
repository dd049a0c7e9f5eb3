#!/bin/sh
# Builds the two .deb packages from binaries already compiled on this
# Debian system (scripts/containers/build-debs.sh runs it in a release's
# builder container, so each package is built against its release):
#
#   mod-wsgi-telemetry             the ingester: /usr/bin/mod_wsgi-telemetry,
#                                  its systemd unit (shared-group socket),
#                                  /etc/default options, a sysctl.d file;
#                                  postinst creates the system user
#   libapache2-mod-wsgi-telemetry  mod_wsgi_telemetry.so, the attach code,
#                                  mods-available/wsgi_telemetry.{load,conf}
#
# A staged tree and `dpkg-deb --build`, nothing else: every Debian has
# dpkg-deb, objdump comes with gcc, apxs with apache2-dev.
# Version: the workspace's, with Debian revision 1~<codename>.
# Depends: the package owning each shared library the binary needs
# (libc6 at least the newest GLIBC_ symbol version it uses), as
# dpkg-shlibdeps would give.
#
# Usage: packaging/deb/build.sh <cargo release dir> <output dir> [ingester|module]
# Builds both packages, or only the one named (its binary is then the only
# one needed). Prints the path of each package built.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
release_dir="${1:?usage: build.sh <cargo release dir> <output dir>}"
out="${2:?usage: build.sh <cargo release dir> <output dir>}"
die() { echo "packaging/deb/build.sh: $*" >&2; exit 1; }
which="${3:-both}"
case "$which" in
    both | ingester | module) ;;
    *) die "'$which': expected ingester or module" ;;
esac

version="$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")"
[ -n "$version" ] || die "no version in [workspace.package] of $root/Cargo.toml"
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
[ -n "$codename" ] || die "no VERSION_CODENAME in /etc/os-release"
debversion="$version-1~$codename"
arch="$(dpkg --print-architecture)"
# Where this architecture's libraries are (not lib32/ or another arch's).
triplet="$(gcc -print-multiarch)"

shlib_depends() { # elf
    deps=""
    for lib in $(objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }'); do
        pkg=""
        for dir in "/lib/$triplet" "/usr/lib/$triplet"; do
            pkg="$(dpkg -S "$dir/$lib" 2>/dev/null | grep -v '^diversion ' | sed 's/[:,].*//' | head -1)"
            [ -z "$pkg" ] || break
        done
        [ -n "$pkg" ] || die "no installed package has $lib (needed by $1)"
        if [ "$pkg" = libc6 ]; then
            glibc="$(objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
            pkg="libc6 (>= $glibc)"
        fi
        case ", $deps, " in
            *", $pkg, "*) ;;
            *) deps="${deps:+$deps, }$pkg" ;;
        esac
    done
    echo "$deps"
}

# stage_and_build <package> <depends> [KEY=VALUE substitutions...]
# The tree under $stage is complete except DEBIAN/.
stage_and_build() {
    pkg="$1" depends="$2"
    shift 2
    install -d "$stage/DEBIAN" "$stage/usr/share/doc/$pkg"
    cat >"$stage/usr/share/doc/$pkg/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mod_wsgi-telemetry

Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
    size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
    sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
        -e "s/@DEPENDS@/$depends/" "$@" "$here/$pkg/control" >"$stage/DEBIAN/control"
    for script in preinst postinst prerm postrm; do
        if [ -f "$here/$pkg/$script" ]; then
            install -m 755 "$here/$pkg/$script" "$stage/DEBIAN/$script"
        fi
    done
    if [ -d "$stage/etc" ]; then
        (cd "$stage" && find etc -type f | sort | sed 's|^|/|') >"$stage/DEBIAN/conffiles"
    fi
    (cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' \
        | sort | xargs md5sum) >"$stage/DEBIAN/md5sums"
    deb="$out/${pkg}_${debversion}_$arch.deb"
    dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
    echo "$deb"
}

mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The ingester.
ingester_deb() {
    stage="$work/mod-wsgi-telemetry"
    bin="$release_dir/mod_wsgi-telemetry"
    [ -x "$bin" ] || die "$bin missing (cargo build --release -p mod_wsgi-telemetry)"
    install -d "$stage/usr/bin"
    strip --strip-debug -o "$stage/usr/bin/mod_wsgi-telemetry" "$bin"
    install -D -m 644 "$here/mod-wsgi-telemetry/mod_wsgi-telemetry.service" \
        "$stage/usr/lib/systemd/system/mod_wsgi-telemetry.service"
    install -D -m 644 "$root/conf-examples/sysctl.d/60-mod_wsgi-telemetry.conf" \
        "$stage/usr/lib/sysctl.d/60-mod_wsgi-telemetry.conf"
    install -D -m 644 "$here/mod-wsgi-telemetry/default" "$stage/etc/default/mod_wsgi-telemetry"
    install -D -m 644 "$root/README.md" "$stage/usr/share/doc/mod-wsgi-telemetry/README.md"
    stage_and_build mod-wsgi-telemetry "$(shlib_depends "$bin")"
}

# The Apache module, where this release's apxs puts modules.
module_deb() {
    stage="$work/libapache2-mod-wsgi-telemetry"
    so="$release_dir/libmod_wsgi_telemetry.so"
    [ -f "$so" ] || die "$so missing (cargo build --release -p mod_wsgi_reporter)"
    modules="$(apxs -q LIBEXECDIR)"
    # The module magic number this httpd was built with, as Debian's modules
    # depend on it (apache2-bin provides apache2-api-<MMN>).
    api="$(dpkg-query -W -f '${Provides}' apache2-bin | grep -o 'apache2-api-[0-9]*' | head -1)"
    [ -n "$api" ] || die "apache2-bin provides no apache2-api-<MMN>"
    install -d "$stage$modules"
    strip --strip-debug -o "$stage$modules/mod_wsgi_telemetry.so" "$so"
    chmod 644 "$stage$modules/mod_wsgi_telemetry.so"
    install -m 644 "$root/mod_wsgi_reporter/python/mod_wsgi_telemetry_attach.py" "$stage$modules/"
    for f in wsgi_telemetry.load wsgi_telemetry.conf; do
        install -D -m 644 "$root/conf-examples/debian/mods-available/$f" \
            "$stage/etc/apache2/mods-available/$f"
    done
    stage_and_build libapache2-mod-wsgi-telemetry "$(shlib_depends "$so")" -e "s/@APACHE_API@/$api/"
}

case "$which" in
    ingester) ingester_deb ;;
    module) module_deb ;;
    both) ingester_deb && module_deb ;;
esac
