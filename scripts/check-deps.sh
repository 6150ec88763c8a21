#!/usr/bin/env bash
# Supply-chain check of the Rust dependency graph with cargo-deny (policy: deny.toml).
#
#   scripts/check-deps.sh
#
# bans, licenses and sources need only crates.io. advisories need the RustSec database, a git
# repository on github.com. MESHPAY_DENY_ADVISORIES chooses what happens when it can't be fetched:
#   auto (default)  use a previously fetched copy if there is one (stale, said so), else skip
#                   advisories with a warning and still run the other three checks
#   require         fail (GitHub Actions sets this: github.com is reachable there)
#   skip            don't try
# Installs cargo-deny (pinned below) with `cargo install` on first use: ~2.5 min on 2 cores.
set -euo pipefail

CARGO_DENY_VERSION=0.20.2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${MESHPAY_DENY_ADVISORIES:-auto}
cd "$ROOT"

log() { echo "check-deps: $*" >&2; }

case "$MODE" in
  auto | require | skip) ;;
  *) log "MESHPAY_DENY_ADVISORIES must be auto, require or skip (got '$MODE')"; exit 2 ;;
esac

if [ "$(cargo deny --version 2>/dev/null || true)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
  log "installing cargo-deny $CARGO_DENY_VERSION (one-time, a few minutes)"
  cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked -j 2
fi

# The advisory database lands in ~/.cargo/advisory-dbs/<name>-<hash>/ (a git checkout).
cached_db() {
  local dir
  for dir in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-*/; do
    if [ -d "$dir/crates" ]; then echo "$dir"; return 0; fi
  done
  return 1
}

checks=(bans licenses sources)
offline=()
if [ "$MODE" = skip ]; then
  log "WARNING: advisories not checked (MESHPAY_DENY_ADVISORIES=skip)"
elif cargo deny fetch db >/dev/null 2>&1; then
  checks+=(advisories)
elif [ "$MODE" = require ]; then
  log "cannot fetch the RustSec advisory database (MESHPAY_DENY_ADVISORIES=require)"
  exit 1
elif db=$(cached_db); then
  fetched=$(git -C "$db" log -1 --format=%cs 2>/dev/null || echo "unknown date")
  log "WARNING: advisory database unreachable; checking against the copy fetched on $fetched"
  checks+=(advisories)
  offline=(--offline)
else
  log "WARNING: advisories NOT checked: the RustSec database (github.com) is unreachable and no copy is cached"
fi

log "cargo deny check ${checks[*]}"
cargo deny --workspace "${offline[@]}" check --hide-inclusion-graph "${checks[@]}"
