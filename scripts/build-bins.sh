#!/usr/bin/env bash
# Builds every binary `make dev` starts, for a profile (debug | release):
#   scripts/build-bins.sh [debug|release]
#   scripts/build-bins.sh --check [debug|release]   fails when one of them is missing
# The check reads the binaries from scripts/dev.sh itself (every "$BIN/<name>" it runs), so a
# binary added there and not built here fails `make test` on a clean clone, not a user's first run.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
profile=${1:-debug}
case "$profile" in
  debug) flags=() ;;
  release) flags=(--release) ;;
  *) die "unknown profile '$profile' (debug or release)" ;;
esac
[ "${CI:-}" = true ] && flags+=(--locked)

if [ "$check" = 0 ]; then
  # --workspace: a plain `cargo build --bins` at the root builds only the root package's binaries.
  cargo build --workspace --bins "${flags[@]}"
fi

bin_dir="${CARGO_TARGET_DIR:-$ROOT/target}/$profile"
mapfile -t wanted < <(grep -oE '"\$BIN/[A-Za-z0-9_-]+"' scripts/dev.sh | sed -E 's/"\$BIN\/(.*)"/\1/' | sort -u)
[ "${#wanted[@]}" -gt 0 ] || die "found no \"\$BIN/<name>\" in scripts/dev.sh"
missing=()
for name in "${wanted[@]}"; do
  [ -x "$bin_dir/$name" ] || missing+=("$name")
done
[ "${#missing[@]}" = 0 ] || die "make dev starts binaries the build did not produce in $bin_dir: ${missing[*]}"
say "built for make dev ($profile): ${wanted[*]}"
