#!/usr/bin/env bash
# `make chaos`: the fault harness. `meshpay-dev chaos` starts a stack of its own through
# meshpay-testkit (a fresh database on the shared PostgreSQL, anvil behind the RPC fault proxy,
# Azurite, devhost + meshpay, a webhook receiver), drives N payments while injecting seeded
# faults, checks every money invariant and ends with `N passed, M failed` (exit 1 on a failure).
#   scripts/chaos.sh [meshpay-dev chaos options...]
#   CHAOS_PAYMENTS=5000 (default)   CHAOS_SEED=<seed> replays a run   CHAOS_PROFILE=debug|release
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

profile=${CHAOS_PROFILE:-debug}
[ -x node_modules/.bin/anvil ] && [ -x node_modules/.bin/azurite-queue ] \
  || die "anvil/azurite missing: run \`make deps\`"
scripts/postgres.sh ensure
# devhost, meshpay and meshpay-dev of the same profile: the harness starts the first two
# from the directory it runs from.
scripts/build-bins.sh "$profile"
exec "${CARGO_TARGET_DIR:-$ROOT/target}/$profile/meshpay-dev" chaos \
  --payments "${CHAOS_PAYMENTS:-5000}" "$@"
