#!/usr/bin/env bash
# Stops what `make dev` started (from .dev/dev.pids, if a run was killed without cleanup) and
# deletes the local dev data in .dev/ (Azurite storage, logs, demo merchant id).
# PostgreSQL: the dev database (DATABASE_URL, default `meshpay`) is dropped and recreated empty; the server keeps
# running (tests and other work may share it). `scripts/postgres.sh stop` stops it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

if [ -f .dev/dev.pids ]; then
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping $name ($pid)"
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done <.dev/dev.pids
fi
rm -rf .dev/azurite .dev/logs .dev/dev.pids .dev/demo-merchant-id

# The dev database is the one DATABASE_URL names (default meshpay on 127.0.0.1:5432).
db=${DATABASE_URL##*/}
db=${db%%\?*}
admin_url="${DATABASE_URL%/*}/postgres"
if psql "$admin_url" -XAtqc 'select 1' >/dev/null 2>&1; then
  say "recreating database $db"
  psql "$admin_url" -XAtq -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\""
else
  say "PostgreSQL not reachable: database $db left as is"
fi
say "clean"
