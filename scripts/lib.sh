# shellcheck shell=bash disable=SC2034
# Shared helpers for scripts/*.sh (sourced, not run).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DATABASE_URL=${DATABASE_URL:-postgres://meshpay:meshpay@127.0.0.1:5432/meshpay}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for <what> <seconds> <command...>: polls the command every 0.2 s.
wait_for() {
  local what=$1 secs=$2; shift 2
  local tries=$((secs * 5))
  for _ in $(seq 1 "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$what did not become ready within ${secs}s"
}

# Phase timing: `phase NAME` starts one (ending the previous); `phases_report` prints them all.
PHASES=()
_phase_name=""
_phase_start=0
phase() {
  _phase_end
  _phase_name=$1
  _phase_start=$(date +%s)
  say "$1"
}
_phase_end() {
  if [ -n "$_phase_name" ]; then
    PHASES+=("$(printf '%-28s %4ss' "$_phase_name" $(( $(date +%s) - _phase_start )))")
    _phase_name=""
  fi
}
phases_report() {
  _phase_end
  say "timings"
  printf '  %s\n' "${PHASES[@]}" >&2
}
