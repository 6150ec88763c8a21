#!/usr/bin/env bash
# Compiles contracts/*.sol with the solc pinned in package.json (npm, no native solc needed) and
# writes the committed artifacts contracts/*.json.
#   scripts/compile-contracts.sh          # (re)write contracts/*.json
#   scripts/compile-contracts.sh --check  # fail if a committed artifact is stale
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d node_modules/solc ] || npm ci --no-audit --no-fund
exec node scripts/compile-contracts.mjs "$@"
