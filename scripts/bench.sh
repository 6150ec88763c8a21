#!/usr/bin/env bash
# `make bench`: release build, then `meshpay-dev bench` on a local stack of its own (a fresh
# database on the local PostgreSQL, anvil with 1 s blocks, Azurite, devhost + release meshpay):
# API latency at concurrency 1/8/64, pipeline payments/s next to anvil/Azurite/PostgreSQL
# limits, single-payment overhead, peak RSS. Prints a table; writes target/bench/*.json.
#
#   scripts/bench.sh                                   # defaults (see meshpay-dev bench --help)
#   scripts/bench.sh --payments 1000 --concurrency 32  # the issue's pipeline figure
#   scripts/bench.sh --set MESHPAY_CONFIRM_POLL_MIN_MS=2000   # compare a handler setting
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

say "release build (meshpay, devhost, meshpay-dev)"
cargo build --release --bins -p meshpay -p devhost -p meshpay-dev
scripts/postgres.sh ensure
say "benchmark"
target/release/meshpay-dev bench "$@"
