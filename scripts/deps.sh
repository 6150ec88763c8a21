#!/usr/bin/env bash
# Installs what the local stack needs and is missing: Rust must already be there (rustup);
# Node.js/npm and Chromium + chromedriver from Debian packages if absent; the npm packages of package-lock.json (Azurite,
# anvil, solc) when node_modules is missing or older than the lock file.
# PostgreSQL is scripts/postgres.sh's job.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "installing Node.js and npm from Debian packages"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=300 install -y -qq nodejs npm >/dev/null
fi

# The pay page's browser test drives headless Chromium through chromedriver (WebDriver).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  say "installing Chromium and chromedriver from Debian packages"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium chromium-driver >/dev/null
fi

# The package's handler is a static musl binary (make package): its C dependencies (aws-lc,
# ring, secp256k1) compile with musl-gcc; scripts/check-static.sh reads it with `file`.
if ! command -v musl-gcc >/dev/null || ! command -v file >/dev/null; then
  say "installing musl-tools and file from Debian packages"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_=sudo
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get -o DPkg::Lock::Timeout=300 install -y -qq musl-tools file >/dev/null
fi

# npm writes node_modules/.package-lock.json on every install: newer than package-lock.json
# means node_modules matches the lock file.
if [ "${CI:-}" = true ] || [ ! -f node_modules/.package-lock.json ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
for bin in anvil azurite; do
  [ -x "node_modules/.bin/$bin" ] || die "node_modules/.bin/$bin missing after npm ci"
done
