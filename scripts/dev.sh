#!/usr/bin/env bash
# `make dev`: the whole local stack in one terminal.
#   Azurite (blob 10000, queue 10001, table 10002; data in .dev/azurite)
#   anvil   (8545, chain 31337, a block every second; fresh chain each run)
#   PostgreSQL (127.0.0.1:5432 via scripts/postgres.sh; database meshpay)
#   devhost + meshpay (http://127.0.0.1:7071/api)
# then migrates, deploys the dev USDC, creates a funded demo merchant, prints its API key and
# makes one demo payment (quote → settled, `meshpay-dev demo`), checked against the chain.
# Every run starts from empty data: anvil is a new chain each time, so the dev database and
# Azurite's storage are emptied at start (payments, nonces and queue messages of a chain that no
# longer exists would stall new payments: a hot wallet's next nonce would be ahead of the chain).
# Ctrl-C stops everything this script started (PostgreSQL only if it was not running before).
#
# Env: PROFILE=release to run release binaries (default debug, faster to build);
#      KEEP_PG=1 to leave PostgreSQL running on exit.
set -euo pipefail
shopt -s inherit_errexit
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

PROFILE=${PROFILE:-debug}
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE"
DEV="$ROOT/.dev"
LOGS="$DEV/logs"
mkdir -p "$LOGS" "$DEV/azurite"

PIDS=()
STARTED_PG=0
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  echo >&2
  say "shutting down"
  local pid
  # Reverse start order: devhost (and its meshpay) first, services last.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$STARTED_PG" = 1 ] && [ -z "${KEEP_PG:-}" ]; then
    scripts/postgres.sh stop || true
  fi
  rm -f "$DEV/dev.pids"
  exit "$code"
}
trap cleanup EXIT
# Ctrl-C is the normal way to stop: exit 0 after cleanup.
trap 'exit 0' INT TERM

# start <name> <command...>: runs in the background, output to .dev/logs/<name>.log.
start() {
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  PIDS+=($!)
  echo "$! $name" >>"$DEV/dev.pids"
}

# wait_up <name> <secs> <command...>: like wait_for, for the service last started by `start`,
# failing at once (with its log's tail) if it exits instead of becoming ready.
wait_up() {
  local name=$1 secs=$2; shift 2
  local pid=${PIDS[-1]}
  for _ in $(seq 1 $((secs * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOGS/$name.log" >&2 || true
      die "$name exited during start-up; log: .dev/logs/$name.log"
    fi
    sleep 0.2
  done
  die "$name did not become ready within ${secs}s; log: .dev/logs/$name.log"
}

# Exports local.settings.json Values (what `func start` puts in the handler's environment),
# without overriding what the caller already set.
load_settings() {
  local line
  while IFS= read -r line; do
    local key=${line%%=*}
    # shellcheck disable=SC2163 # exports KEY=VALUE
    [ -n "${!key:-}" ] || export "$line"
  done < <(node -e '
    const v = require("./local.settings.json").Values || {};
    for (const [k, x] of Object.entries(v)) console.log(`${k}=${x}`);')
}

for port in 10000 10001 10002 8545 7071; do
  port_busy "$port" && die "port $port is in use (another make dev? run make clean-stack, or stop it)"
done

phase "dependencies"
scripts/deps.sh
pg_was_up=0; scripts/postgres.sh status | grep -q '^up' && pg_was_up=1
scripts/postgres.sh ensure
[ "$pg_was_up" = 1 ] || STARTED_PG=1
load_settings
MESHPAY_CHAINS_CONFIG=${MESHPAY_CHAINS_CONFIG:-chains.dev.toml}
[[ $MESHPAY_CHAINS_CONFIG = /* ]] || MESHPAY_CHAINS_CONFIG="$ROOT/$MESHPAY_CHAINS_CONFIG"
export MESHPAY_CHAINS_CONFIG
# The broadcast step signs with the keys this file lists (dev: anvil accounts 1 and 2, the hot
# wallets of chains.dev.toml, through the local signer). Without it payments stop at authorized.
MESHPAY_SIGNERS_CONFIG=${MESHPAY_SIGNERS_CONFIG:-signers.dev.toml}
[[ $MESHPAY_SIGNERS_CONFIG = /* ]] || MESHPAY_SIGNERS_CONFIG="$ROOT/$MESHPAY_SIGNERS_CONFIG"
[ -f "$MESHPAY_SIGNERS_CONFIG" ] || die "signers file $MESHPAY_SIGNERS_CONFIG is missing"
export MESHPAY_SIGNERS_CONFIG

phase "build ($PROFILE)"
# Every binary this script starts (meshpay, devhost, meshpay-dev); `scripts/build-bins.sh --check`
# proves in make test that none is left out.
scripts/build-bins.sh "$PROFILE"

phase "fresh data (new chain)"
# The dev database is the one DATABASE_URL names (default meshpay on 127.0.0.1:5432); the
# server keeps running (tests and other work may share it).
rm -rf "$DEV/azurite" "$DEV/demo-merchant-id" "$DEV/demo.out"
mkdir -p "$DEV/azurite"
db=${DATABASE_URL##*/}
db=${db%%\?*}
psql "${DATABASE_URL%/*}/postgres" -XAtq -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" \
  || die "cannot recreate database $db (DATABASE_URL's role needs CREATEDB)"

phase "azurite + anvil"
rm -f "$DEV/dev.pids"
# --disableTelemetry: Azurite reports usage to Microsoft by default (and spools it under /tmp).
start azurite node_modules/.bin/azurite --silent --disableTelemetry --location "$DEV/azurite" --skipApiVersionCheck \
  --blobHost 127.0.0.1 --blobPort 10000 --queueHost 127.0.0.1 --queuePort 10001 \
  --tableHost 127.0.0.1 --tablePort 10002
wait_up azurite 30 port_busy 10001
start anvil node_modules/.bin/anvil --host 127.0.0.1 --port 8545 --chain-id 31337 --block-time 1
wait_up anvil 30 curl -sf -X POST -H 'content-type: application/json' \
  --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' http://127.0.0.1:8545

phase "database migrations"
"$BIN/meshpay" migrate

phase "dev chain: USDC"
node scripts/dev-chain.mjs --rpc http://127.0.0.1:8545

phase "demo merchant"
# A merchant funded with every asset of chain anvil and an all-scopes key (printed once).
out=$("$BIN/meshpay" admin demo-merchant --chain anvil)
DEMO_KEY=$(sed -n 's/^demo api key: //p' <<<"$out")
[ -n "$DEMO_KEY" ] || die "no demo api key in the output of meshpay admin demo-merchant"

phase "devhost + meshpay"
# devhost reads host.json and functions/*/function.json from the app root and spawns the
# handler just built (host.json's defaultExecutablePath is the packaged ./meshpay).
start devhost "$BIN/devhost" --app-root "$ROOT" --executable "$BIN/meshpay"
wait_up devhost 120 curl -sf http://127.0.0.1:7071/api/health
_phase_end

echo
echo "meshpay ready at http://127.0.0.1:7071/api"
[ -n "$DEMO_KEY" ] && echo "demo api key: $DEMO_KEY"

# One payment end to end (quote → authorized → broadcast → confirmed → settled), checked
# against the chain's receipt. A failure leaves the stack up to look into.
DEMO_PAYMENT="" DEMO_TX=""
if [ -n "$DEMO_KEY" ]; then
  echo
  if "$BIN/meshpay-dev" demo --api http://127.0.0.1:7071/api --api-key "$DEMO_KEY" --asset USDC \
    --amount 25.00 --rpc http://127.0.0.1:8545 | tee "$DEV/demo.out"; then
    DEMO_PAYMENT=$(grep -oE 'pay_[0-9a-zA-Z]+' "$DEV/demo.out" | head -n1 || true)
    DEMO_TX=$(grep -oE 'tx 0x[0-9a-f]{64}' "$DEV/demo.out" | head -n1 | cut -c4- || true)
  else
    say "the demo payment did not settle (above); the stack stays up. Logs: .dev/logs/devhost.log"
  fi
fi

API=http://127.0.0.1:7071/api
echo
echo "Try:"
echo "  curl -s $API/health"
echo "  curl -s $API/openapi.json | head -c 300"
if [ -n "$DEMO_KEY" ]; then
  AUTH="-H 'Authorization: Bearer $DEMO_KEY'"
  cat <<TXT
  curl -s $AUTH $API/balances
  curl -s $AUTH '$API/payments?limit=5'
TXT
  [ -z "$DEMO_PAYMENT" ] || echo "  curl -s $AUTH $API/payments/$DEMO_PAYMENT"
  cat <<TXT
  # a payment by hand: quote, then authorize the quote's id (any unique Idempotency-Key)
  curl -s $AUTH -H 'content-type: application/json' \\
    -d '{"chain":"anvil","asset":"ETH","amount":"0.01","recipient":"0x90F79bf6EB2c4f870365E785982E1f101E93b906"}' \\
    $API/quotes
  curl -s $AUTH -H 'content-type: application/json' -H "Idempotency-Key: \$(cat /proc/sys/kernel/random/uuid)" \\
    -d '{"quote_id":"quo_PASTE_THE_ID"}' $API/payments
  # or the whole demo again, in ETH:
  ${BIN#"$ROOT"/}/meshpay-dev demo --api-key $DEMO_KEY --asset ETH --amount 0.01
TXT
fi
if [ -n "$DEMO_TX" ]; then
  cat <<TXT
  # the chain's own view (anvil JSON-RPC):
  curl -s -H 'content-type: application/json' \\
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_getTransactionReceipt","params":["$DEMO_TX"]}' http://127.0.0.1:8545
TXT
fi
cat <<TXT

Logs: .dev/logs/*.log   Stop: Ctrl-C
TXT

# Stay up until Ctrl-C, or until one of the services dies (then shut the rest down).
while true; do
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
      name=$(awk -v p="${PIDS[i]}" '$1 == p {print $2}' "$DEV/dev.pids")
      die "$name exited; see .dev/logs/$name.log"
    fi
  done
  # `wait` (unlike a foreground sleep) returns as soon as Ctrl-C arrives, so the INT trap runs
  # before the loop could mistake a service stopped by the same Ctrl-C for a crash.
  sleep 1 &
  wait $! || true
done
