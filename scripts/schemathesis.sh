#!/usr/bin/env bash
# The API contract test: schemathesis (pinned below, from PyPI) against a stack the test starts
# (PostgreSQL database, Azurite, anvil, devhost + meshpay, a funded merchant's key).
#   scripts/schemathesis.sh                         a run with a fresh seed (printed)
#   SCHEMATHESIS_SEED=<seed> scripts/schemathesis.sh replays a run
#   SCHEMATHESIS_MAX_EXAMPLES=<n>                    cases per operation and phase (default 40)
# The CLI lives in .venv/ (git-ignored), created when missing or when the pin changes. The
# stack's binaries must be built (`scripts/build-bins.sh debug`; `make test` does it first).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

SCHEMATHESIS_VERSION=4.32.5
VENV="$ROOT/.venv"
PIN_FILE="$VENV/.schemathesis-version"

if [ ! -x "$VENV/bin/st" ] || [ "$(cat "$PIN_FILE" 2>/dev/null)" != "$SCHEMATHESIS_VERSION" ]; then
  command -v python3 >/dev/null || die "python3 is needed for schemathesis (apt-get install python3-venv)"
  say "installing schemathesis $SCHEMATHESIS_VERSION into .venv/"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  echo "$SCHEMATHESIS_VERSION" > "$PIN_FILE"
fi

LOCKED=()
[ "${CI:-}" = true ] && LOCKED=(--locked)
MESHPAY_SCHEMATHESIS="$VENV/bin/st" \
  cargo test -p meshpay --test e2e "${LOCKED[@]}" -- --ignored --nocapture contract::schemathesis
