#!/usr/bin/env bash
# `make fuzz`: the parsers' property tests (proptest, on the pinned stable toolchain) with many
# more cases than `make test` runs, one target at a time on one thread, then cases/s per target.
#
#   scripts/fuzz.sh              # FUZZ_CASES (default 20000) cases per property
#   FUZZ_CASES=200000 scripts/fuzz.sh
#
# Why proptest and not cargo-fuzz: cargo-fuzz needs a nightly toolchain and libFuzzer's
# sanitizer build; the project pins stable (rust-toolchain.toml) and CI installs only that.
# A failing property prints its shrunk input; rerun one with PROPTEST_CASES=... cargo test.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

CASES=${FUZZ_CASES:-20000}
# name | cargo test arguments | test-name filter
TARGETS=(
  "invocation envelope (shim)|-p meshpay-shim --test it|fuzz::"
  "amounts and decimals (domain money)|-p meshpay-domain --test fuzz|"
  "addresses and EIP-55 (chain)|-p meshpay-chain --test fuzz|address_"
  "chains.toml loader (chain)|-p meshpay-chain --test fuzz|chains_"
  "chain webhook signatures and payloads (confirm)|-p meshpay-confirm --test fuzz|"
)

say "building the fuzz targets"
cargo test --no-run -p meshpay-shim -p meshpay-domain -p meshpay-chain -p meshpay-confirm \
  --test it --test fuzz 2>&1 | grep -v '^ *Executable' >&2 || true

RESULTS=()
for target in "${TARGETS[@]}"; do
  IFS='|' read -r name args filter <<<"$target"
  say "$name: $CASES cases per property"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  output=$(PROPTEST_CASES=$CASES cargo test -q $args -- --test-threads=1 $filter 2>&1) || {
    printf '%s\n' "$output" >&2
    die "$name: a property failed (its shrunk input is above)"
  }
  end=$(date +%s.%N)
  properties=$(grep -oE 'test result: ok\. [0-9]+ passed' <<<"$output" | awk '{ s += $4 } END { print s + 0 }')
  RESULTS+=("$(awk -v n="$name" -v p="$properties" -v c="$CASES" -v s="$start" -v e="$end" \
    'BEGIN { t = e - s; printf "%-48s %4d %10d %8.1f %10.0f", n, p, p * c, t, p * c / t }')")
done

printf '\n%-48s %4s %10s %8s %10s\n' "target" "props" "cases" "secs" "cases/s"
printf '%s\n' "${RESULTS[@]}"
