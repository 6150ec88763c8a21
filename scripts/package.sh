#!/usr/bin/env bash
# Assembles the app as the real Functions host expects it (function folders at the app root):
#   dist/app/host.json
#   dist/app/<name>/function.json   for each functions/<name>/function.json, except the
#                                   diagnostics functions (the root Cargo.toml's `diagnostics`
#                                   feature lists them; `make build` compiles them out)
#   dist/app/meshpay                the static (musl) release handler (host.json
#                                   defaultExecutablePath), checked by scripts/check-static.sh
# and zips it to dist/meshpay.zip (zip deploy). Run after `make build-static` (make package does).
# dist/app also gets a local.settings.json (not zipped) for `cd dist/app && func start`.
#
# Optional environment (relative paths are relative to the repository root):
#   MESHPAY_PACKAGE_BINARY   handler to package (default target/x86_64-unknown-linux-musl/release/meshpay)
#   MESHPAY_PACKAGE_ALLOW_DYNAMIC=1  package a dynamically linked handler (tests package the debug one)
#   MESHPAY_PACKAGE_OUT      output directory instead of dist (gets app/ and meshpay.zip)
#   MESHPAY_PACKAGE_CHAINS   chains file copied to the app root as chains.toml (MESHPAY_CHAINS_CONFIG)
#   MESHPAY_PACKAGE_SIGNERS  signers file copied to the app root as signers.toml (MESHPAY_SIGNERS_CONFIG)
# Without the last two the package is code only: the app does not start without a chains file.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

BINARY=${MESHPAY_PACKAGE_BINARY:-target/x86_64-unknown-linux-musl/release/meshpay}
OUT=${MESHPAY_PACKAGE_OUT:-dist}
[ -x "$BINARY" ] || die "$BINARY missing: run make build-static"
# The Flex Consumption image's glibc is unknown: a dynamically linked handler may not start.
[ "${MESHPAY_PACKAGE_ALLOW_DYNAMIC:-}" = 1 ] || "$ROOT/scripts/check-static.sh" "$BINARY"
for config in "${MESHPAY_PACKAGE_CHAINS:-}" "${MESHPAY_PACKAGE_SIGNERS:-}"; do
  [ -z "$config" ] || [ -f "$config" ] || die "$config not found"
done
rm -rf "$OUT/app" "$OUT/meshpay.zip"
mkdir -p "$OUT/app"
cp host.json "$OUT/app/"
# `diagnostics = ["dep:meshpay-fn-probe", ...]` in Cargo.toml: the folder names after `meshpay-fn-`.
diagnostics=$(sed -n 's/^diagnostics *= *\[\(.*\)\]/\1/p' Cargo.toml | grep -o 'meshpay-fn-[a-z0-9_-]*' | sed 's/^meshpay-fn-//')
[ -n "$diagnostics" ] || die "no diagnostics feature in Cargo.toml"
count=0
for fj in functions/*/function.json; do
  [ -f "$fj" ] || continue
  name=$(basename "$(dirname "$fj")")
  if grep -qxF "$name" <<<"$diagnostics"; then
    continue
  fi
  mkdir -p "$OUT/app/$name"
  cp "$fj" "$OUT/app/$name/function.json"
  count=$((count + 1))
done
[ "$count" -gt 0 ] || die "no functions/*/function.json found"
cp "$BINARY" "$OUT/app/meshpay"
chmod +x "$OUT/app/meshpay"
[ -z "${MESHPAY_PACKAGE_CHAINS:-}" ] || cp "$MESHPAY_PACKAGE_CHAINS" "$OUT/app/chains.toml"
[ -z "${MESHPAY_PACKAGE_SIGNERS:-}" ] || cp "$MESHPAY_PACKAGE_SIGNERS" "$OUT/app/signers.toml"
# Python's zipfile keeps the executable bit (zip may not be installed on a fresh machine).
# dist/app/local.settings.json lets `cd dist/app && func start` run the package against the
# local stack (the repository's dev settings, config paths made absolute unless the package
# carries its own). It is for local use only and never goes into the zip: in Azure the app
# settings come from Bicep.
python3 - "$OUT" "$ROOT" <<'PY'
import json, os, sys, zipfile
out, root = sys.argv[1], sys.argv[2]
app = os.path.join(out, "app")
with open(os.path.join(root, "local.settings.json")) as f:
    local = json.load(f)
values = local.setdefault("Values", {})
for setting, packaged, dev in [
    ("MESHPAY_CHAINS_CONFIG", "chains.toml", "chains.dev.toml"),
    ("MESHPAY_SIGNERS_CONFIG", "signers.toml", "signers.dev.toml"),
]:
    if not os.path.exists(os.path.join(app, packaged)):
        values[setting] = os.path.join(root, dev)
with open(os.path.join(app, "local.settings.json"), "w") as f:
    json.dump(local, f, indent=2)
    f.write("\n")
with zipfile.ZipFile(os.path.join(out, "meshpay.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for base, _, files in os.walk(app):
        for f in sorted(files):
            path = os.path.join(base, f)
            name = os.path.relpath(path, app)
            if name == "local.settings.json":
                continue
            z.write(path, name)
PY
say "$OUT/app ($count functions) and $OUT/meshpay.zip"
