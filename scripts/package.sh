#!/usr/bin/env bash
# Assembles the app as the real Functions host expects it (function folders at the app root):
#   dist/app/host.json
#   dist/app/<name>/function.json   for each functions/<name>/function.json
#   dist/app/meshpay                the release handler (host.json defaultExecutablePath)
# and zips it to dist/meshpay.zip (zip deploy). Run after `make build` (make package does).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

[ -x target/release/meshpay ] || die "target/release/meshpay missing: run make build"
rm -rf dist/app dist/meshpay.zip
mkdir -p dist/app
cp host.json dist/app/
count=0
for fj in functions/*/function.json; do
  [ -f "$fj" ] || continue
  name=$(basename "$(dirname "$fj")")
  mkdir -p "dist/app/$name"
  cp "$fj" "dist/app/$name/function.json"
  count=$((count + 1))
done
[ "$count" -gt 0 ] || die "no functions/*/function.json found"
cp target/release/meshpay dist/app/meshpay
chmod +x dist/app/meshpay
# Python's zipfile keeps the executable bit (zip may not be installed on a fresh machine).
python3 - <<'PY'
import os, zipfile
with zipfile.ZipFile("dist/meshpay.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for base, _, files in os.walk("dist/app"):
        for f in sorted(files):
            path = os.path.join(base, f)
            z.write(path, os.path.relpath(path, "dist/app"))
PY
say "dist/app ($count functions) and dist/meshpay.zip"
