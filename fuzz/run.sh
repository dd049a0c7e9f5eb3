#!/usr/bin/env bash
# Runs one fuzz target for a while: fuzz/run.sh [decode|capture] [SECONDS]
# Uses the nightly toolchain when rustup has one, else stable with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags; stable ships the sanitizer
# runtimes). Installs cargo-fuzz from crates.io if it is missing. The working
# corpus grows in fuzz/corpus/<target> (not committed); seeds are in
# fuzz/seeds/<target>; a crash lands in fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:-decode}
seconds=${2:-600}
command -v cargo-fuzz > /dev/null || cargo install --locked cargo-fuzz
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    toolchain=(+stable)
    export RUSTC_BOOTSTRAP=1
fi
mkdir -p "corpus/$target"
exec nice -n 19 cargo "${toolchain[@]}" fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1
