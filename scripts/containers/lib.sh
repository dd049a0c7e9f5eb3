# Sourced by build-module.sh and build-debs.sh, after they set $root and
# $here: reads their arguments and runs a command in a release's builder
# image (build-images.sh) with the sources, the host's
# Rust toolchain and its downloaded crates mounted read-only, no network,
# and target/containers/<release> as the only writable directory
# (CARGO_TARGET_DIR=/target inside). Each release has its own target
# directory, so builds never mix headers or glibc versions and reruns are
# incremental.

# release_args <script name> <release> [builder-image]: sets rel and builder
# (by default the one build-images.sh prints for the release) and log().
release_args() {
    script_name="$1"
    log() { echo "$script_name: $*" >&2; }
    rel="${2:?usage: $script_name.sh <release> [builder-image]}"
    builder="${3:-}"
    [ -n "$builder" ] || builder="$(builder_image "$rel")"
}

# builder_image <release>: the builder image build-images.sh prints for it
# (building it if missing).
builder_image() {
    local b
    b="$("$here/build-images.sh" "$1" | awk -v r="$1" '$1 == r { print $3 }')"
    [ -n "$b" ] || { log "$1: no builder image"; exit 1; }
    echo "$b"
}

# run_in_builder <release> <builder-image> <command...>
run_in_builder() {
    local rel="$1" builder="$2" rustup_home cargo_home host_cargo toolchain_bin target
    shift 2
    rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
    cargo_home="${CARGO_HOME:-$HOME/.cargo}"
    # The toolchain the host would use here (rust-toolchain file or
    # default), called directly: no rustup proxy inside the container.
    host_cargo="$(cd "$root" && rustup which cargo)"
    case "$host_cargo" in
        "$rustup_home"/toolchains/*) ;;
        *) log "cargo ($host_cargo) is not under $rustup_home/toolchains"; return 1 ;;
    esac
    toolchain_bin="/rustup/${host_cargo#"$rustup_home"/}"
    toolchain_bin="${toolchain_bin%/cargo}"
    target="$root/target/containers/$rel"
    mkdir -p "$target" "$target/cargo-home"
    # CARGO_HOME is a writable directory of its own whose registry is the
    # host's (read-only), so cargo can take its lock files without writing
    # into the host's ~/.cargo. No debug info (the workspace's release
    # profile has line tables, for profiling on the host): the packages
    # strip it anyway, and it is a good part of the build's time and disk.
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
        -e CARGO_PROFILE_RELEASE_DEBUG=0 \
        -e PATH="$toolchain_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        -w /src \
        "$builder" \
        "$@"
}
