#!/usr/bin/env bash
# Runs the template fuzz target for a bounded time: `fuzz/run.sh [SECONDS]`
# (default 60). Installs cargo-fuzz if it is missing. cargo-fuzz passes
# nightly-only flags to rustc; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them. Exits non-zero if the fuzzer finds a crash (saved in artifacts/).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --version '^0.13' --locked
fi
RUSTC_BOOTSTRAP=1 cargo fuzz run parse_conf -- -max_total_time="$seconds"
