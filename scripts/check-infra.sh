#!/usr/bin/env bash
# Infrastructure and CI-definition checks, for `make test` and CI:
#   1. infra/bicep: every .bicep parses, module params/outputs match, .bicepparam files fit
#      main.bicep (infra/tools/check_bicep.py, after its self-test)
#   2. checkov on infra/bicep: 0 failed checks, 0 parse errors, no check that crashed
#   3. actionlint on .github/workflows (shellcheck runs on each `run:` script)
#   4. shellcheck on the shell scripts this check owns
# Tools (pinned in infra/requirements-checks.txt) go into .dev/infra-venv on first use (~40 s
# with a cold pip cache); later runs reuse it unless the requirements file changed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.dev/infra-venv"
REQUIREMENTS="$ROOT/infra/requirements-checks.txt"
STAMP="$VENV/.requirements.sha256"
cd "$ROOT"

log() { echo "check-infra: $*" >&2; }

ensure_tools() {
  local want
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$want" ]; then
    return 0
  fi
  log "installing pinned tools into .dev/infra-venv"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # The file pins the whole tree: --no-deps keeps pip from resolving anything else.
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$REQUIREMENTS"
  "$VENV/bin/pip" check --disable-pip-version-check >/dev/null
  echo "$want" >"$STAMP"
}

run_checkov() {
  local out err summary passed failed skipped parse_errors
  out=$(mktemp)
  err=$(mktemp)
  # --skip-download: no calls to the vendor's API (unreachable here, and not needed).
  if ! "$VENV/bin/checkov" -d infra/bicep --framework bicep --skip-download --compact \
      --output json >"$out" 2>"$err"; then
    "$VENV/bin/checkov" -d infra/bicep --framework bicep --skip-download --quiet --compact >&2 || true
  fi
  if grep -q "Failed to run check" "$err"; then
    grep -A3 "Failed to run check" "$err" >&2
    log "checkov: a check crashed on an expression it could not evaluate; treat as failed"
    rm -f "$out" "$err"
    return 1
  fi
  summary=$("$VENV/bin/python" - "$out" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
reports = report if isinstance(report, list) else [report]
total = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
for r in reports:
    for key in total:
        total[key] += r.get("summary", {}).get(key, 0)
    for check in r.get("results", {}).get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        print(f"  skipped {check['check_id']} on {check['resource']}: {reason}", file=sys.stderr)
print(f"{total['passed']} {total['failed']} {total['skipped']} {total['parsing_errors']}")
PY
)
  rm -f "$out" "$err"
  read -r passed failed skipped parse_errors <<<"$summary"
  log "checkov: passed $passed, failed $failed, skipped $skipped, parsing errors $parse_errors"
  [ "$failed" -eq 0 ] && [ "$parse_errors" -eq 0 ] && [ "$passed" -gt 0 ]
}

ensure_tools
export PATH="$VENV/bin:$PATH" # actionlint finds shellcheck here

passed=0
failed=0
step() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    log "FAILED: $name"
  fi
}

step "bicep checker self-test" python infra/tools/check_bicep.py --self-test
step "bicep parse and cross-file checks" python infra/tools/check_bicep.py infra/bicep
step "checkov" run_checkov
step "actionlint" actionlint .github/workflows/*.yml
step "shellcheck" shellcheck -x scripts/check-infra.sh scripts/check-deps.sh scripts/package.sh infra/scripts/*.sh

echo "check-infra: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
