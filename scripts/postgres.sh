#!/usr/bin/env bash
# Local PostgreSQL for meshpay dev and tests (never for production).
#
#   scripts/postgres.sh ensure   # make 127.0.0.1:5432 answer with role/db meshpay (idempotent)
#   scripts/postgres.sh stop     # stop the server this script manages
#   scripts/postgres.sh status
#
# As root (CI, containers): uses Debian's cluster manager (pg_lsclusters / pg_ctlcluster), creating
# a cluster on port 5432 when none exists; the server runs as the `postgres` user.
# As another user: initdb into the repo-local .dev/postgres and run it as that user.
# Either way the server is started with durability off (fsync, synchronous_commit,
# full_page_writes): these are throwaway dev/test databases, and tests create many of them.
# The settings are passed on the command line, so no config file of an existing cluster changes.
set -euo pipefail

HOST=127.0.0.1
PORT=${PGPORT_MESHPAY:-5432}
ROLE=meshpay
PASSWORD=meshpay   # dev-only well-known value
DB=meshpay
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL_DATA="$ROOT/.dev/postgres"
LOCAL_SOCK="$ROOT/.dev/postgres-run"
DEV_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c listen_addresses=127.0.0.1"

log() { echo "postgres.sh: $*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }
as_root() { if is_root; then "$@"; else sudo "$@"; fi; }

ready() { pg_isready -q -h "$HOST" -p "$PORT" >/dev/null 2>&1; }

# True when the meshpay role can log in to the meshpay database.
# The role logs in and has CREATEDB + CREATEROLE (tests create databases, and the Entra login
# tests create a throwaway role).
meshpay_ok() {
  local attrs
  attrs=$(PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=3 psql -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DB" \
    -XAtqc 'select rolcreatedb and rolcreaterole from pg_roles where rolname = current_user' 2>/dev/null) || return 1
  [ "$attrs" = t ]
}

pg_bindir() {
  local v
  v=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/postgres" ] && echo "/usr/lib/postgresql/$v/bin"
}

install_if_missing() {
  if pg_bindir >/dev/null && command -v psql >/dev/null && command -v pg_isready >/dev/null; then
    return
  fi
  log "installing PostgreSQL from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get -o DPkg::Lock::Timeout=300 update -qq
  as_root apt-get -o DPkg::Lock::Timeout=300 install -y -qq postgresql >/dev/null
}

wait_ready() {
  for _ in $(seq 1 100); do
    ready && return 0
    sleep 0.1
  done
  log "server did not answer on $HOST:$PORT"
  return 1
}

# Root: the Debian cluster on $PORT (created if missing).
start_system_cluster() {
  local line ver name status
  line=$(pg_lsclusters --no-header 2>/dev/null | awk -v p="$PORT" '$3 == p {print; exit}' || true)
  if [ -z "$line" ]; then
    ver=$(basename "$(dirname "$(pg_bindir)")")
    log "creating cluster $ver/meshpay on port $PORT"
    pg_createcluster "$ver" meshpay -p "$PORT" >/dev/null
    line=$(pg_lsclusters --no-header | awk -v p="$PORT" '$3 == p {print; exit}')
  fi
  read -r ver name _ status _ <<<"$line"
  if [ "$status" != online ]; then
    log "starting cluster $ver/$name"
    pg_ctlcluster "$ver" "$name" start -- -o "$DEV_OPTS" -w -t 30 >/dev/null
  fi
  wait_ready
}

# Non-root: a cluster of our own in .dev/postgres, superuser = the current user.
start_local_cluster() {
  local bin
  bin=$(pg_bindir)
  mkdir -p "$LOCAL_SOCK"
  if [ ! -f "$LOCAL_DATA/PG_VERSION" ]; then
    log "initdb $LOCAL_DATA"
    mkdir -p "$LOCAL_DATA"
    "$bin/initdb" -D "$LOCAL_DATA" -A trust -U "$(id -un)" -E UTF8 --no-locale >/dev/null
  fi
  "$bin/pg_ctl" -D "$LOCAL_DATA" -l "$ROOT/.dev/postgres.log" -w -t 30 \
    -o "$DEV_OPTS -p $PORT -k $LOCAL_SOCK" start >/dev/null
  wait_ready
}

# Runs SQL as the server's superuser (over the unix socket).
superuser_psql() {
  if [ -f "$LOCAL_DATA/postmaster.pid" ] && ! is_root; then
    psql -h "$LOCAL_SOCK" -p "$PORT" -d postgres -XAtq -v ON_ERROR_STOP=1 "$@"
  else
    as_root runuser -u postgres -- psql -p "$PORT" -d postgres -XAtq -v ON_ERROR_STOP=1 "$@"
  fi
}

create_role_and_db() {
  log "creating role/database $ROLE"
  superuser_psql <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB CREATEROLE PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB CREATEROLE PASSWORD '$PASSWORD';
  END IF;
END \$\$;
SQL
  if [ -z "$(superuser_psql -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    superuser_psql -c "CREATE DATABASE $DB OWNER $ROLE"
  fi
}

ensure() {
  if ready && meshpay_ok; then
    return 0
  fi
  if ! ready; then
    install_if_missing
    if is_root; then start_system_cluster; else start_local_cluster; fi
  fi
  meshpay_ok || create_role_and_db
  if ! meshpay_ok; then
    log "role $ROLE cannot log in to $HOST:$PORT/$DB (check pg_hba.conf allows md5/scram on 127.0.0.1)"
    return 1
  fi
  log "ready: postgres://$ROLE:$PASSWORD@$HOST:$PORT/$DB"
}

stop() {
  if [ -f "$LOCAL_DATA/postmaster.pid" ]; then
    "$(pg_bindir)/pg_ctl" -D "$LOCAL_DATA" -m fast -w stop >/dev/null && log "stopped $LOCAL_DATA"
    return 0
  fi
  if is_root && command -v pg_lsclusters >/dev/null; then
    local ver name status
    while read -r ver name _ status _; do
      if [ "$status" = online ]; then
        pg_ctlcluster "$ver" "$name" stop -m fast && log "stopped cluster $ver/$name"
      fi
    done < <(pg_lsclusters --no-header | awk -v p="$PORT" '$3 == p')
  fi
}

case "${1:-ensure}" in
  ensure) ensure ;;
  stop) stop ;;
  status) if ready; then echo "up ($HOST:$PORT)"; else echo down; fi ;;
  *) echo "usage: $0 ensure|stop|status" >&2; exit 2 ;;
esac
